"""Passkeys (WebAuthn): a signed-in user registers one; anyone signs in with one, no email.

A ceremony has two steps. *Begin* stores a fresh 32-byte challenge (as its SHA-256) bound
to the browser session that asked, its purpose and, for a registration, the user; it lives
five minutes. *Finish* first takes the challenge the browser signed out of the table
(:func:`take_challenge`, its own transaction: a challenge is used once, whatever the outcome
of the check that follows), then verifies the response with the ``webauthn`` library:

- the origin is exactly the relying party's ``scheme://host[:port]`` and the RP ID hash is
  that of its host; the user was present and verified (UV); attestation ``none`` is enough;
- a sign-in names a credential that exists now (a removed passkey is refused at once), and
  the user handle it carries, if any, is that credential's user;
- the signature counter moves forward (a counter of 0 that stays 0 is a passkey that does
  not count). A counter that went backwards under a valid signature means a cloned
  authenticator: refused and audited as ``web.passkey_clone_suspected``.

A failed sign-in returns None and leaves an audit record, like a wrong password. Removing a
passkey also ends the sessions it opened.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import delete, func, insert, select, update
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    base64url_to_bytes,
    bytes_to_base64url,
    parse_authentication_credential_json,
    parse_client_data_json,
    parse_registration_credential_json,
)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from paywarden.adapters.ids import new_id
from paywarden.kernel.errors import Conflict, InvalidRequest, NotFound
from paywarden.kernel.invariant import invariant
from paywarden.kernel.principals import Principal, PrincipalType
from paywarden.services import audit
from paywarden.store import schema
from paywarden.store.tables_web import passkeys, web_sessions, webauthn_challenges
from paywarden.store.unit_of_work import UnitOfWork

__all__ = [
    "CHALLENGE_TTL",
    "NAME_LENGTH_MAX",
    "PASSKEYS_PER_USER_MAX",
    "Challenge",
    "PasskeySignIn",
    "PasskeyView",
    "Purpose",
    "RelyingParty",
    "begin_authentication",
    "begin_registration",
    "finish_authentication",
    "finish_registration",
    "list_passkeys",
    "purge_challenges",
    "remove_all",
    "remove_passkey",
    "take_challenge",
]

CHALLENGE_TTL = timedelta(minutes=5)
CEREMONY_TIMEOUT_MS = 120_000
PASSKEYS_PER_USER_MAX = 20
NAME_LENGTH_MAX = 60
RP_NAME = "paywarden"
Purpose = Literal["register", "authenticate"]


@dataclass(frozen=True, slots=True)
class RelyingParty:
    """Who the browser must think it talks to: the RP ID (a host, no port) and the exact
    origin (``scheme://host[:port]``)."""

    id: str
    origin: str


@dataclass(frozen=True, slots=True)
class Challenge:
    """A challenge taken out of the table by :func:`take_challenge`."""

    challenge: bytes
    purpose: Purpose
    user_id: str | None


@dataclass(frozen=True, slots=True)
class PasskeyView:
    id: str
    name: str
    created_at: datetime
    last_used_at: datetime | None


@dataclass(frozen=True, slots=True)
class PasskeySignIn:
    user_id: str
    livemode: bool
    passkey_id: str


def _digest(challenge: bytes) -> str:
    return hashlib.sha256(challenge).hexdigest()


def _store_challenge(
    uow: UnitOfWork, challenge: bytes, purpose: Purpose, user_id: str | None, session: str
) -> None:
    """Keep one challenge per session and purpose (a new one replaces the old), and purge
    the expired ones of everyone."""
    c = webauthn_challenges
    now = uow.clock.now()
    purge_challenges(uow, now)
    uow.execute(delete(c).where(c.c.session_id == session, c.c.purpose == purpose))
    uow.execute(
        insert(c).values(
            id=_digest(challenge),
            purpose=purpose,
            user_id=user_id,
            session_id=session,
            expires_at=now + CHALLENGE_TTL,
        )
    )


def purge_challenges(uow: UnitOfWork, before: datetime) -> int:
    """Delete the challenges that expired before ``before``."""
    result = uow.execute(
        delete(webauthn_challenges).where(webauthn_challenges.c.expires_at < before)
    )
    return int(result.rowcount or 0)


def _client_challenge(credential: Mapping[str, Any]) -> bytes | None:
    """The challenge inside a credential's clientDataJSON; None if unreadable."""
    try:
        response = credential["response"]
        raw = parse_client_data_json(
            base64url_to_bytes(str(response["clientDataJSON"])),
        )
    except (KeyError, TypeError, ValueError, WebAuthnException):
        return None
    return bytes(raw.challenge)


def take_challenge(
    uow: UnitOfWork, purpose: Purpose, session: str, credential: Mapping[str, Any]
) -> Challenge | None:
    """Delete and return the live challenge that ``credential`` signed, if this session and
    purpose asked for it. Run it in its own transaction, before the check: used once."""
    signed = _client_challenge(credential)
    if signed is None:
        return None
    c = webauthn_challenges
    row = uow.execute(select(c).where(c.c.id == _digest(signed))).first()
    if row is None:
        return None
    deleted = uow.execute(delete(c).where(c.c.id == row.id))
    if int(deleted.rowcount or 0) != 1:  # taken by a concurrent finish
        return None
    if row.session_id != session or row.purpose != purpose:
        return None
    if uow.clock.now() >= row.expires_at:
        return None
    return Challenge(signed, purpose, row.user_id)


# --- registration -------------------------------------------------------------------------


def _require_user(uow: UnitOfWork, user: Principal) -> Any:
    invariant(user.type is PrincipalType.USER and user.id is not None, "passkeys are users'")
    u = schema.users
    row = uow.execute(select(u.c.id, u.c.email, u.c.name).where(u.c.id == user.id)).first()
    if row is None:
        raise NotFound(f"no such user: {user.id}", param="$.user")
    return row


def begin_registration(
    uow: UnitOfWork, user: Principal, rp: RelyingParty, session: str
) -> dict[str, Any]:
    """The options for ``navigator.credentials.create`` (WebAuthn JSON): a discoverable
    credential with user verification, none of the user's existing passkeys again."""
    row = _require_user(uow, user)
    p = passkeys
    existing = uow.execute(
        select(p.c.credential_id).where(p.c.user_id == row.id).order_by(p.c.created_at)
    ).all()
    if len(existing) >= PASSKEYS_PER_USER_MAX:
        raise Conflict(f"a user has at most {PASSKEYS_PER_USER_MAX} passkeys", code="passkey_limit")
    options = generate_registration_options(
        rp_id=rp.id,
        rp_name=RP_NAME,
        user_id=str(row.id).encode("utf-8"),
        user_name=str(row.email),
        user_display_name=str(row.name),
        timeout=CEREMONY_TIMEOUT_MS,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
        exclude_credentials=[
            PublicKeyCredentialDescriptor(id=base64url_to_bytes(e.credential_id)) for e in existing
        ],
    )
    _store_challenge(uow, options.challenge, "register", str(row.id), session)
    result: dict[str, Any] = json.loads(options_to_json(options))
    return result


def _check_name(name: str) -> str:
    cleaned = " ".join((name or "").split())[:NAME_LENGTH_MAX]
    return cleaned or "Passkey"


def finish_registration(
    uow: UnitOfWork,
    user: Principal,
    rp: RelyingParty,
    challenge: Challenge | None,
    credential: Mapping[str, Any],
    name: str,
) -> PasskeyView:
    """Verify a new credential against the challenge taken for it and keep it."""
    row = _require_user(uow, user)
    if challenge is None or challenge.purpose != "register" or challenge.user_id != row.id:
        raise InvalidRequest("the passkey request expired; try again", code="passkey_challenge")
    try:
        verified = verify_registration_response(
            credential=parse_registration_credential_json(dict(credential)),
            expected_challenge=challenge.challenge,
            expected_rp_id=rp.id,
            expected_origin=rp.origin,
            require_user_verification=True,
        )
    except WebAuthnException as error:
        raise InvalidRequest("the passkey could not be verified", code="passkey_invalid") from error
    credential_id = bytes_to_base64url(verified.credential_id)
    p = passkeys
    if uow.execute(select(p.c.id).where(p.c.credential_id == credential_id)).first():
        raise Conflict("this passkey is registered already", code="passkey_exists")
    count = uow.execute(select(func.count()).where(p.c.user_id == row.id)).scalar_one()
    if int(count) >= PASSKEYS_PER_USER_MAX:
        raise Conflict(f"a user has at most {PASSKEYS_PER_USER_MAX} passkeys", code="passkey_limit")
    view = PasskeyView(new_id("psk"), _check_name(name), uow.clock.now(), None)
    uow.execute(
        insert(p).values(
            id=view.id,
            user_id=row.id,
            credential_id=credential_id,
            public_key=verified.credential_public_key,
            sign_count=verified.sign_count,
            transports=_transports(credential),
            name=view.name,
            created_at=view.created_at,
        )
    )
    audit.record(uow, "user.passkey_added", user, str(row.id), {"passkey": view.id})
    return view


def _transports(credential: Mapping[str, Any]) -> str:
    response = credential.get("response")
    named = response.get("transports") if isinstance(response, dict) else None
    known = {t.value for t in AuthenticatorTransport}
    chosen = (
        [t for t in named if isinstance(t, str) and t in known] if isinstance(named, list) else []
    )
    return ",".join(sorted(set(chosen)))[:200]


# --- authentication -----------------------------------------------------------------------


def begin_authentication(uow: UnitOfWork, rp: RelyingParty, session: str) -> dict[str, Any]:
    """The options for ``navigator.credentials.get``: no credential list (the authenticator
    offers its discoverable passkeys for this RP ID), user verification required."""
    options = generate_authentication_options(
        rp_id=rp.id,
        timeout=CEREMONY_TIMEOUT_MS,
        user_verification=UserVerificationRequirement.REQUIRED,
    )
    _store_challenge(uow, options.challenge, "authenticate", None, session)
    result: dict[str, Any] = json.loads(options_to_json(options))
    return result


def _failed(uow: UnitOfWork, user_id: str | None, reason: str) -> None:
    audit.record(uow, "web.sign_in_failed", None, user_id, {"method": "passkey", "reason": reason})


def finish_authentication(
    uow: UnitOfWork,
    rp: RelyingParty,
    challenge: Challenge | None,
    credential: Mapping[str, Any],
) -> PasskeySignIn | None:
    """Who signed in, or None (and an audit record saying why not)."""
    if challenge is None or challenge.purpose != "authenticate":
        _failed(uow, None, "challenge")
        return None
    try:
        parsed = parse_authentication_credential_json(dict(credential))
    except WebAuthnException:
        _failed(uow, None, "malformed")
        return None
    p, u = passkeys, schema.users
    row = uow.execute(
        select(p, u.c.livemode)
        .join(u, u.c.id == p.c.user_id)
        .where(p.c.credential_id == bytes_to_base64url(parsed.raw_id))
    ).first()
    if row is None:
        _failed(uow, None, "unknown_passkey")
        return None
    handle = parsed.response.user_handle
    if handle is not None and handle != str(row.user_id).encode("utf-8"):
        _failed(uow, str(row.user_id), "user_handle")
        return None
    try:
        # The counter is checked below, once the signature is known to be good: only then
        # does a counter that went backwards mean a clone rather than a forgery.
        verified = verify_authentication_response(
            credential=parsed,
            expected_challenge=challenge.challenge,
            expected_rp_id=rp.id,
            expected_origin=rp.origin,
            credential_public_key=bytes(row.public_key),
            credential_current_sign_count=0,
            require_user_verification=True,
        )
    except WebAuthnException:
        _failed(uow, str(row.user_id), "verification")
        return None
    return _counted(uow, row, verified.new_sign_count)


def _counted(uow: UnitOfWork, row: Any, new_count: int) -> PasskeySignIn | None:
    stored = int(row.sign_count)
    if (stored > 0 or new_count > 0) and new_count <= stored:
        audit.record(
            uow,
            "web.passkey_clone_suspected",
            None,
            str(row.user_id),
            {"passkey": row.id, "stored_count": stored, "presented_count": new_count},
        )
        _failed(uow, str(row.user_id), "sign_count")
        return None
    p = passkeys
    moved = uow.execute(
        update(p)
        .where(p.c.id == row.id, p.c.sign_count == stored)  # no concurrent sign-in moved it
        .values(sign_count=new_count, last_used_at=uow.clock.now())
    )
    if int(moved.rowcount or 0) != 1:
        _failed(uow, str(row.user_id), "sign_count")
        return None
    return PasskeySignIn(str(row.user_id), bool(row.livemode), str(row.id))


# --- the user's list ----------------------------------------------------------------------


def list_passkeys(uow: UnitOfWork, user: Principal) -> list[PasskeyView]:
    p = passkeys
    rows = uow.execute(
        select(p.c.id, p.c.name, p.c.created_at, p.c.last_used_at)
        .where(p.c.user_id == user.id)
        .order_by(p.c.created_at, p.c.id)
        .limit(PASSKEYS_PER_USER_MAX)
    ).all()
    return [PasskeyView(r.id, r.name, r.created_at, r.last_used_at) for r in rows]


def _end_sessions_of(uow: UnitOfWork, passkey_ids: list[str]) -> None:
    s = web_sessions
    uow.execute(
        update(s)
        .where(s.c.passkey_id.in_(passkey_ids), s.c.ended_at.is_(None))
        .values(ended_at=uow.clock.now())
    )


def remove_passkey(uow: UnitOfWork, user: Principal, passkey_id: str) -> None:
    """Remove one of the user's own passkeys (another's is a 404, like a missing one): it
    signs no one in from now on, and the sessions it opened end."""
    p = passkeys
    removed = uow.execute(delete(p).where(p.c.id == passkey_id, p.c.user_id == user.id))
    if int(removed.rowcount or 0) != 1:
        raise NotFound(f"no such passkey: {passkey_id}", param="$.passkey")
    _end_sessions_of(uow, [passkey_id])
    audit.record(uow, "user.passkey_removed", user, str(user.id), {"passkey": passkey_id})


def remove_all(uow: UnitOfWork, user_id: str) -> int:
    """Remove every passkey of a user being erased (a passkey needs no email, so it would
    still sign the erased user in); their sessions end. Returns how many."""
    p = passkeys
    ids = list(uow.execute(select(p.c.id).where(p.c.user_id == user_id)).scalars())
    if ids:
        uow.execute(delete(p).where(p.c.user_id == user_id))
        _end_sessions_of(uow, ids)
    return len(ids)
