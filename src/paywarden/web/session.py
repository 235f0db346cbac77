"""Dashboard session cookies and CSRF tokens.

A session cookie is a small JSON payload authenticated with HMAC-SHA256 under a key derived
from the platform's instance secret (:func:`paywarden.services.platform.instance_secret`), so
only this installation can mint one::

    base64url(payload) "." base64url(HMAC(session_key, base64url(payload)))

The payload holds a random session id (``sid``), its expiry, and once the user has signed in
(with a password or a secret key), the user's id. The cookie alone never signs anyone in: a
signed-in ``sid`` must also have a live row in ``web_sessions``
(:mod:`paywarden.services.web_access`), read on every request, so signing out, a password
change or the revocation of the key used to sign in ends the session at once.

- Before sign-in the browser gets an anonymous session: a ``sid`` alone, enough to bind the
  sign-in form's CSRF token.
- Signing in issues a new ``sid`` (session fixation: a ``sid`` planted before sign-in is
  worthless after it); signing out clears the cookie.
- A CSRF token is ``HMAC(csrf_key, sid)``: each form carries it and each POST must send back
  the token of the cookie's ``sid`` (double submit, bound to the session). SameSite=Lax on
  the cookie is a second line.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

__all__ = [
    "COOKIE_NAME",
    "SESSION_TTL",
    "Session",
    "SessionKeys",
    "anonymous",
    "signed_in",
]

COOKIE_NAME = "paywarden_session"
SESSION_TTL = timedelta(hours=8)
COOKIE_LENGTH_MAX = 2048
ROLES = ("user", "merchant", "admin")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class Session:
    sid: str
    expires: int  # Unix seconds
    user: str | None = None
    key_id: str | None = None
    livemode: bool = False
    api_version: str | None = None
    role: str = "user"  # "user", "merchant" (console), or "admin" (operator, the admin key)

    @property
    def signed_in(self) -> bool:
        return self.user is not None or self.role == "admin"

    @property
    def operator(self) -> bool:
        return self.role == "admin"


def anonymous(now: datetime) -> Session:
    """A session for the sign-in form alone: a fresh id, no user."""
    return Session(sid=secrets.token_urlsafe(24), expires=int((now + SESSION_TTL).timestamp()))


def signed_in(
    now: datetime,
    *,
    user: str | None,
    key_id: str | None,
    livemode: bool,
    api_version: str,
    role: str = "user",
) -> Session:
    """The session after sign-in: always a new ``sid``, never the anonymous one's."""
    fresh = anonymous(now)
    return replace(
        fresh, user=user, key_id=key_id, livemode=livemode, api_version=api_version, role=role
    )


class SessionKeys:
    """The keys of one installation: one for cookies, one for CSRF tokens, both derived from
    the instance secret (separate purposes, separate keys)."""

    def __init__(self, instance_secret: bytes) -> None:
        self._cookie_key = hmac.new(instance_secret, b"paywarden web session v1", "sha256").digest()
        self._csrf_key = hmac.new(instance_secret, b"paywarden web csrf v1", "sha256").digest()

    def _mac(self, text: str) -> str:
        return _b64(hmac.new(self._cookie_key, text.encode("ascii"), hashlib.sha256).digest())

    def seal(self, session: Session) -> str:
        body: dict[str, Any] = {"sid": session.sid, "exp": session.expires}
        if session.signed_in:
            body |= {
                "usr": session.user,
                "kid": session.key_id,
                "live": session.livemode,
                "ver": session.api_version,
                "rol": session.role,
            }
        payload = _b64(json.dumps(body, separators=(",", ":"), sort_keys=True).encode())
        return f"{payload}.{self._mac(payload)}"

    def open(self, cookie: str | None, now: datetime) -> Session | None:
        """The session in a cookie whose MAC verifies and that has not expired; else None."""
        if not cookie or len(cookie) > COOKIE_LENGTH_MAX or cookie.count(".") != 1:
            return None
        payload, mac = cookie.split(".")
        if not hmac.compare_digest(mac, self._mac(payload)):
            return None
        try:
            body = json.loads(_unb64(payload))
            session = Session(
                sid=str(body["sid"]),
                expires=int(body["exp"]),
                user=body.get("usr"),
                key_id=body.get("kid"),
                livemode=bool(body.get("live", False)),
                api_version=body.get("ver"),
                role=body.get("rol") if body.get("rol") in ROLES else "user",
            )
        except (binascii.Error, ValueError, KeyError, TypeError):
            return None
        return session if now.timestamp() < session.expires else None

    def csrf_token(self, session: Session) -> str:
        return _b64(hmac.new(self._csrf_key, session.sid.encode(), hashlib.sha256).digest())

    def csrf_ok(self, session: Session, token: str | None) -> bool:
        if not token:
            return False
        expected = self.csrf_token(session).encode("ascii")
        return hmac.compare_digest(token.encode("utf-8"), expected)
