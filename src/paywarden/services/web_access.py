"""Who may use the trusted surface: user passwords and server-side dashboard sessions.

Passwords are hashed with scrypt (memory-hard; ``scrypt$<log2 N>$<r>$<p>$<salt>$<hash>``, so
the cost can be raised later and old hashes still verify). An unknown email costs the same
work as a wrong password, so sign-in timing does not tell which emails exist. Every failed
sign-in is an audit record.

A browser session is a row keyed by the SHA-256 of the random session id its cookie carries:
signing out ends the row, so a copied cookie stops working at once; a session signed in with
a secret key also ends when that key is revoked, and one signed in with a passkey when that
passkey is removed (:mod:`paywarden.services.passkeys`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, select, update

from paywarden.kernel.errors import InvalidRequest, NotFound, PermissionDenied
from paywarden.kernel.invariant import invariant
from paywarden.kernel.principals import Principal, PrincipalType
from paywarden.services import audit
from paywarden.store import schema
from paywarden.store.tables_web import user_passwords, web_sessions
from paywarden.store.unit_of_work import UnitOfWork

__all__ = [
    "PASSWORD_LENGTH_MAX",
    "PASSWORD_LENGTH_MIN",
    "SessionRow",
    "check_password",
    "end_all_sessions",
    "end_session",
    "forget_password",
    "hash_password",
    "live_session",
    "password_sign_in",
    "purge_sessions",
    "session_digest",
    "set_password",
    "start_session",
]

PASSWORD_LENGTH_MIN = 10
PASSWORD_LENGTH_MAX = 200
SCRYPT_LOG2_N = 15  # 32 MiB of memory per hash with r = 8
SCRYPT_R = 8
SCRYPT_P = 1
_MAXMEM = 64 * 1024 * 1024
_SESSION_TYPES = frozenset({PrincipalType.USER, PrincipalType.MERCHANT, PrincipalType.ADMIN})
_DUMMY = "scrypt$15$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, *, log2_n: int = SCRYPT_LOG2_N) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=2**log2_n, r=SCRYPT_R, p=SCRYPT_P, maxmem=_MAXMEM
    )
    return f"scrypt${log2_n}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def check_password(password: str, stored: str) -> bool:
    """True when ``password`` matches ``stored``; a malformed hash never matches."""
    try:
        scheme, log2_n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt" or not (10 <= int(log2_n) <= 20):
            return False
        expected = _unb64(digest)
        actual = hashlib.scrypt(
            password.encode("utf-8"),
            salt=_unb64(salt),
            n=2 ** int(log2_n),
            r=int(r),
            p=int(p),
            maxmem=_MAXMEM,
            dklen=len(expected) or 32,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def _check_new_password(password: str) -> str:
    if not isinstance(password, str) or not (
        PASSWORD_LENGTH_MIN <= len(password) <= PASSWORD_LENGTH_MAX
    ):
        raise InvalidRequest(
            f"a password is {PASSWORD_LENGTH_MIN} to {PASSWORD_LENGTH_MAX} characters",
            code="invalid_password",
            param="$.password",
        )
    if "\x00" in password:
        raise InvalidRequest("a password may not contain NUL", code="invalid_password")
    return password


def set_password(uow: UnitOfWork, principal: Principal, user_id: str, password: str) -> None:
    """Set (or replace) a user's password: the user itself or an admin. Replacing it ends the
    user's password sessions."""
    if not (
        principal.is_admin or (principal.type is PrincipalType.USER and principal.id == user_id)
    ):
        raise NotFound(f"no such user: {user_id}", param="$.user")
    u = schema.users
    if uow.execute(select(u.c.id).where(u.c.id == user_id)).first() is None:
        raise NotFound(f"no such user: {user_id}", param="$.user")
    hashed = hash_password(_check_new_password(password))
    now = uow.clock.now()
    p = user_passwords
    if uow.execute(select(p.c.user_id).where(p.c.user_id == user_id)).first() is None:
        uow.execute(insert(p).values(user_id=user_id, hash=hashed, updated_at=now))
    else:
        uow.execute(update(p).where(p.c.user_id == user_id).values(hash=hashed, updated_at=now))
        s = web_sessions
        uow.execute(
            update(s)
            .where(
                s.c.principal_type == PrincipalType.USER.value,
                s.c.principal_id == user_id,
                s.c.method == "password",
                s.c.ended_at.is_(None),
            )
            .values(ended_at=now)
        )
    audit.record(uow, "user.password_set", principal, user_id, {})


def password_sign_in(uow: UnitOfWork, email: str, password: str) -> tuple[str, bool] | None:
    """``(user_id, livemode)`` when the email and password match; else None (and an audit
    record of the failure)."""
    u, p = schema.users, user_passwords
    row = uow.execute(
        select(u.c.id, u.c.livemode, p.c.hash)
        .join(p, p.c.user_id == u.c.id)
        .where(u.c.email == email.strip().lower())
    ).first()
    if row is None:
        check_password(password, _DUMMY)  # the same work as a wrong password
    elif check_password(password, row.hash):
        return str(row.id), bool(row.livemode)
    audit.record(uow, "web.sign_in_failed", None, row.id if row else None, {"method": "password"})
    return None


def session_digest(sid: str) -> str:
    return hashlib.sha256(sid.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class SessionRow:
    principal_type: PrincipalType  # USER, MERCHANT or ADMIN
    principal_id: str | None  # usr_ or mer_; None for an operator (admin) session
    livemode: bool
    key_id: str | None
    method: str


def start_session(
    uow: UnitOfWork,
    *,
    sid: str,
    principal_type: PrincipalType,
    principal_id: str | None,
    livemode: bool,
    key_id: str | None,
    expires_at: datetime,
    passkey_id: str | None = None,
) -> None:
    """Record a signed-in browser session: a user's (password, passkey or key), a merchant's
    (its secret key) or an operator's (the admin key; no principal id)."""
    invariant(principal_type in _SESSION_TYPES, "web sessions are for users, merchants, admins")
    invariant(
        (principal_type is PrincipalType.ADMIN) == (principal_id is None),
        "a user or merchant session names its principal; an operator session names none",
    )
    invariant(
        principal_type is PrincipalType.USER or key_id is not None, "only users use passwords"
    )
    invariant(key_id is None or passkey_id is None, "one way of signing in per session")
    invariant(passkey_id is None or principal_type is PrincipalType.USER, "only users use passkeys")
    method = "secret_key" if key_id else "passkey" if passkey_id else "password"
    uow.execute(
        insert(web_sessions).values(
            id=session_digest(sid),
            principal_type=principal_type.value,
            principal_id=principal_id,
            livemode=livemode,
            key_id=key_id,
            method=method,
            created_at=uow.clock.now(),
            expires_at=expires_at,
            passkey_id=passkey_id,
        )
    )
    audit.record(
        uow, "web.signed_in", None, principal_id, {"method": method, "as": principal_type.value}
    )


def live_session(uow: UnitOfWork, sid: str) -> SessionRow | None:
    """The session of ``sid`` if it has not ended or expired (and, when signed in with a
    secret key, that key is still active)."""
    s, k = web_sessions, schema.api_keys
    row = uow.execute(select(s).where(s.c.id == session_digest(sid))).first()
    if row is None or row.ended_at is not None or uow.clock.now() >= row.expires_at:
        return None
    kind = PrincipalType(row.principal_type)
    if row.key_id is not None:
        key = uow.execute(
            select(k.c.id).where(
                k.c.id == row.key_id,
                k.c.principal_type == kind.value,
                k.c.principal_id == row.principal_id
                if row.principal_id is not None
                else k.c.principal_id.is_(None),
                k.c.revoked_at.is_(None),
            )
        ).first()
        if key is None:
            return None
    return SessionRow(kind, row.principal_id, bool(row.livemode), row.key_id, str(row.method))


def end_session(uow: UnitOfWork, sid: str) -> None:
    s = web_sessions
    uow.execute(
        update(s)
        .where(s.c.id == session_digest(sid), s.c.ended_at.is_(None))
        .values(ended_at=uow.clock.now())
    )


def end_all_sessions(uow: UnitOfWork, principal: Principal, user_id: str) -> int:
    """Sign a user out everywhere: the user itself or an admin."""
    if not (
        principal.is_admin or (principal.type is PrincipalType.USER and principal.id == user_id)
    ):
        raise PermissionDenied("only the user or an admin ends the user's sessions")
    s = web_sessions
    result = uow.execute(
        update(s)
        .where(
            s.c.principal_type == PrincipalType.USER.value,
            s.c.principal_id == user_id,
            s.c.ended_at.is_(None),
        )
        .values(ended_at=uow.clock.now())
    )
    return int(result.rowcount or 0)


def forget_password(uow: UnitOfWork, user_id: str) -> bool:
    """Delete the user's password hash (their erasure); whether there was one."""
    result = uow.execute(delete(user_passwords).where(user_passwords.c.user_id == user_id))
    return bool(result.rowcount)


def purge_sessions(uow: UnitOfWork, before: datetime) -> int:
    """Delete sessions that expired before ``before`` (kept a while for the audit trail)."""
    result = uow.execute(delete(web_sessions).where(web_sessions.c.expires_at < before))
    return int(result.rowcount or 0)
