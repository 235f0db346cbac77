"""Portable mandate tokens: an active mandate as an ES256 JWS, bound to the agent's key.

A mandate token lets an agent carry its mandate to a relying party (a merchant, another
platform) that can check it offline against the platform's published key set. It is a
*portable statement*, not the authority: the database stays the source of truth for a
mandate's status and usage, so a token says "this mandate, at this revision, with these
constraints, was active when issued"; revocation, pausing and spent budget are only ever
known by asking the platform. Keep tokens short-lived (``TTL_DEFAULT``, at most ``TTL_MAX``).

The token is a compact JWS (:mod:`paywarden.trust.jws`) with header
``{"alg": "ES256", "kid", "typ": "mandate+jwt"}`` and exactly these claims::

    iss       the issuing platform (a string the caller passes in)
    sub       the user who granted the mandate (usr_…)
    jti       the mandate id (mnd_…)
    iat, nbf  the issue instant, Unix seconds (nbf = iat)
    exp       Unix seconds: min(iat + ttl, the execution window's not_after), rounded down
    cnf       {"jkt": the RFC 7638 thumbprint of the agent's key}   (RFC 7800, RFC 9449 §6)
    vct       "paywarden.mandate.1": what the claims are, versioned
    mandate   {"id", "revision", "currency", "constraints", "timezone"}; constraints in
              their stored form (:func:`paywarden.authorization.constraints.to_json`)

Time, following RFC 7519 §4.1.4/§4.1.5: ``exp`` is the first instant at which the token is
NOT accepted, and ``nbf`` the first at which it is. A mandate window's ``not_after`` is its
last valid instant (inclusive, as in AP2), so ``exp`` is ``not_after`` rounded down to the
second: the token dies at, not after, that instant, and is never accepted at an instant the
mandate refuses. Verification allows at most ``LEEWAY_MAX`` of clock skew, none by default.

Proof of possession: ``cnf.jkt`` names the agent's key. A verifier that knows which key the
presenter proved possession of (an RFC 9421 signature's ``keyid``) passes its thumbprint and
a token bound to another key is refused; the token alone proves nothing about who holds it.

Failures all carry code ``mandate_token_invalid``: :class:`InvalidRequest` for what is not a
well-formed mandate token (encoding, JSON, header, claim shapes), :class:`AuthenticationFailed`
for a well-formed one that must not be trusted (unknown key, bad signature, another issuer,
expired, not yet valid, bound to another key).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from paywarden.authorization.constraints import ConstraintError, parse_constraints, to_json
from paywarden.authorization.mandates import Mandate, MandateStatus, window_end
from paywarden.kernel.clock import ensure_utc, rfc3339
from paywarden.kernel.errors import AuthenticationFailed, Conflict, InvalidRequest
from paywarden.kernel.invariant import invariant
from paywarden.kernel.money import parse_currency
from paywarden.trust import jws
from paywarden.trust.custody import ES256, PlatformSigner, Purpose
from paywarden.trust.keys import b64url_decode

__all__ = [
    "LEEWAY_MAX",
    "MANDATE_TOKEN_TYP",
    "MANDATE_VCT",
    "TOKEN_LENGTH_MAX",
    "TTL_DEFAULT",
    "TTL_MAX",
    "MandateClaims",
    "issue_mandate_token",
    "verify_mandate_token",
]

MANDATE_TOKEN_TYP = "mandate+jwt"  # noqa: S105 -- a media type, not a secret
MANDATE_VCT = "paywarden.mandate.1"
TOKEN_LENGTH_MAX = 65_536  # characters; a mandate with long payee lists stays well under
TTL_DEFAULT = timedelta(hours=1)
TTL_MAX = timedelta(hours=24)  # revocation is invisible offline: keep tokens short-lived
LEEWAY_MAX = timedelta(seconds=60)
CODE = "mandate_token_invalid"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)
_CLAIMS = frozenset({"iss", "sub", "jti", "iat", "nbf", "exp", "cnf", "vct", "mandate"})
_MANDATE_MEMBERS = frozenset({"id", "revision", "currency", "constraints", "timezone"})
_THUMBPRINT_BYTES = 32  # SHA-256


@dataclass(frozen=True, slots=True)
class MandateClaims:
    """A verified mandate token's claims (and the ``kid`` of the key that signed it)."""

    iss: str
    sub: str  # usr_…
    jti: str  # mnd_…, the mandate id
    iat: int
    nbf: int
    exp: int
    jkt: str  # cnf.jkt: the thumbprint of the agent key the token is bound to
    revision: int
    currency: str
    constraints: tuple[Mapping[str, Any], ...]  # stored form, as in the token
    timezone: str
    kid: str

    @property
    def mandate_id(self) -> str:
        return self.jti

    @property
    def expires_at(self) -> datetime:
        return _instant(self.exp)

    def claims(self) -> dict[str, Any]:
        """The JSON claims, exactly as signed."""
        return {
            "iss": self.iss,
            "sub": self.sub,
            "jti": self.jti,
            "iat": self.iat,
            "nbf": self.nbf,
            "exp": self.exp,
            "cnf": {"jkt": self.jkt},
            "vct": MANDATE_VCT,
            "mandate": {
                "id": self.jti,
                "revision": self.revision,
                "currency": self.currency,
                "constraints": [dict(c) for c in self.constraints],
                "timezone": self.timezone,
            },
        }


def issue_mandate_token(
    mandate: Mandate,
    agent_jwk_thumbprint: str,
    signer: PlatformSigner,
    now: datetime,
    ttl: timedelta = TTL_DEFAULT,
    *,
    issuer: str,
) -> str:
    """An active mandate as a compact JWS bound to the agent key ``agent_jwk_thumbprint``.

    Raises ``Conflict`` ``mandate_<status>`` unless the mandate is active, ``Conflict``
    ``mandate_window_ended`` when its window leaves no second of validity, and
    ``InvalidRequest`` for a bad ttl, thumbprint or issuer, or a token too large to carry.
    """
    invariant(signer.purpose == Purpose.MANDATE_TOKEN, f"a {signer.purpose} key signs no tokens")
    invariant(signer.alg == ES256, "mandate tokens are signed with ES256")
    invariant(
        _prefixed(mandate.id, "mnd_") and _prefixed(mandate.user, "usr_"),
        "a mandate has a mnd_ id and a usr_ user",
    )
    if mandate.status is not MandateStatus.ACTIVE:
        raise Conflict(
            f"mandate {mandate.id} is {mandate.status.value}: only an active mandate is issued "
            "as a token",
            code=f"mandate_{mandate.status.value}",
        )
    if not timedelta(0) < ttl <= TTL_MAX:
        raise InvalidRequest(
            f"a mandate token lives more than 0 s and at most {int(TTL_MAX / _SECOND)} s",
            code="invalid_ttl",
        )
    if not _is_thumbprint(agent_jwk_thumbprint):
        raise InvalidRequest(
            "the agent key thumbprint is a base64url SHA-256 (RFC 7638)", code="invalid_thumbprint"
        )
    if not isinstance(issuer, str) or not issuer:
        raise InvalidRequest("the issuer must be a non-empty string", code="invalid_issuer")
    now = ensure_utc(now)
    iat = _seconds(now)
    end = window_end(mandate)
    exp = _seconds(now + ttl) if end is None else min(_seconds(now + ttl), _seconds(end))
    if exp <= iat:
        raise Conflict(
            f"mandate {mandate.id}'s execution window has ended", code="mandate_window_ended"
        )
    claims = MandateClaims(
        iss=issuer,
        sub=mandate.user,
        jti=mandate.id,
        iat=iat,
        nbf=iat,
        exp=exp,
        jkt=agent_jwk_thumbprint,
        revision=mandate.revision,
        currency=mandate.currency,
        constraints=tuple(to_json(c) for c in mandate.constraints),
        timezone=mandate.timezone,
        kid=signer.key_id,
    )
    token = jws.sign(_PROFILE, claims.claims(), signer)
    if len(token) > TOKEN_LENGTH_MAX:
        raise InvalidRequest(
            f"mandate {mandate.id} is too large to carry as a token "
            f"({len(token)} > {TOKEN_LENGTH_MAX} characters)",
            code="mandate_token_too_large",
        )
    return token


def verify_mandate_token(
    token: str,
    jwks: Mapping[str, Any],
    now: datetime,
    *,
    presenter_thumbprint: str | None = None,
    issuer: str | None = None,
    leeway: timedelta = timedelta(0),
) -> MandateClaims:
    """Check a mandate token against a JWK set (``{"keys": [...]}``) at ``now``.

    ``presenter_thumbprint``, when given, is the thumbprint of the key the presenter proved it
    holds; the token must be bound to it. ``issuer``, when given, must equal ``iss``.
    ``leeway`` (at most ``LEEWAY_MAX``) widens ``nbf`` and ``exp`` for clock skew.
    """
    invariant(timedelta(0) <= leeway <= LEEWAY_MAX, f"leeway is 0 to {LEEWAY_MAX}")
    now = ensure_utc(now)
    kid, raw = jws.verify(_PROFILE, token, jwks)
    claims = _claims_from_json(raw, kid)
    if issuer is not None and claims.iss != issuer:
        raise _untrusted(f"issued by {claims.iss!r}, not {issuer!r}")
    if now >= _instant(claims.exp) + leeway:
        raise _untrusted(f"expired at {rfc3339(_instant(claims.exp))}")
    if now < _instant(claims.nbf) - leeway:
        raise _untrusted(f"not valid before {rfc3339(_instant(claims.nbf))}")
    if presenter_thumbprint is not None and presenter_thumbprint != claims.jkt:
        raise _untrusted(
            f"bound to key {claims.jkt} (cnf.jkt), not to the presenting key {presenter_thumbprint}"
        )
    return claims


# --- helpers -----------------------------------------------------------------------------


def _malformed(message: str) -> InvalidRequest:
    return InvalidRequest(f"mandate token invalid: {message}", code=CODE)


def _untrusted(message: str) -> AuthenticationFailed:
    return AuthenticationFailed(f"mandate token invalid: {message}", code=CODE)


_PROFILE = jws.Profile(
    typ=MANDATE_TOKEN_TYP,
    noun="mandate token",
    length_max=TOKEN_LENGTH_MAX,
    malformed=_malformed,
    untrusted=_untrusted,
)


def _seconds(instant: datetime) -> int:
    """Unix seconds, rounded down, in exact integer arithmetic."""
    return (ensure_utc(instant) - _EPOCH) // _SECOND


def _instant(seconds: int) -> datetime:
    return _EPOCH + seconds * _SECOND


def _is_thumbprint(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return len(b64url_decode(value)) == _THUMBPRINT_BYTES
    except ValueError:
        return False


def _is_uint(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _prefixed(value: object, prefix: str) -> bool:
    return isinstance(value, str) and value.startswith(prefix) and len(value) > len(prefix)


def _claims_from_json(claims: Mapping[str, Any], kid: str) -> MandateClaims:
    """The claims, checked member by member: exactly the set above, each of its type."""
    if set(claims) != _CLAIMS:
        missing, unknown = sorted(_CLAIMS - set(claims)), sorted(set(claims) - _CLAIMS)
        raise _malformed(
            f"the claims must be exactly {sorted(_CLAIMS)}; missing {missing}, unknown {unknown}"
        )
    if claims["vct"] != MANDATE_VCT:
        raise _malformed(f"vct {claims['vct']!r} is not {MANDATE_VCT!r}")
    if not isinstance(claims["iss"], str) or not claims["iss"]:
        raise _malformed("claim 'iss' must be a non-empty string")
    if not _prefixed(claims["sub"], "usr_"):
        raise _malformed("claim 'sub' must be a user id (usr_…)")
    if not _prefixed(claims["jti"], "mnd_"):
        raise _malformed("claim 'jti' must be a mandate id (mnd_…)")
    iat, nbf, exp = claims["iat"], claims["nbf"], claims["exp"]
    if not (_is_uint(iat) and _is_uint(nbf) and _is_uint(exp)):
        raise _malformed("claims 'iat', 'nbf' and 'exp' must be non-negative integers")
    if not iat <= nbf < exp or _instant(exp) - _instant(iat) > TTL_MAX:
        raise _malformed(f"the times must satisfy iat <= nbf < exp <= iat + {TTL_MAX}")
    cnf = claims["cnf"]
    if not isinstance(cnf, dict) or set(cnf) != {"jkt"} or not _is_thumbprint(cnf["jkt"]):
        raise _malformed("claim 'cnf' must be {\"jkt\": <base64url SHA-256 thumbprint>}")
    mandate = claims["mandate"]
    if not isinstance(mandate, dict) or set(mandate) != _MANDATE_MEMBERS:
        raise _malformed(f"claim 'mandate' must have exactly {sorted(_MANDATE_MEMBERS)}")
    if mandate["id"] != claims["jti"]:
        raise _malformed("mandate.id must equal jti")
    revision = mandate["revision"]
    if not _is_uint(revision) or revision < 1:
        raise _malformed("mandate.revision must be a positive integer")
    currency = _currency(mandate["currency"])
    if not isinstance(mandate["timezone"], str) or not mandate["timezone"]:
        raise _malformed("mandate.timezone must be an IANA zone name")
    constraints = _stored_constraints(mandate["constraints"], currency)
    return MandateClaims(
        iss=claims["iss"],
        sub=claims["sub"],
        jti=claims["jti"],
        iat=iat,
        nbf=nbf,
        exp=exp,
        jkt=cnf["jkt"],
        revision=revision,
        currency=currency,
        constraints=constraints,
        timezone=mandate["timezone"],
        kid=kid,
    )


def _currency(value: object) -> str:
    try:
        code = parse_currency(value)
    except InvalidRequest as error:
        raise _malformed(f"mandate.currency: {error.message}") from None
    if code != value:
        raise _malformed("mandate.currency must be lowercase ISO 4217")
    return code


def _stored_constraints(raw: object, currency: str) -> tuple[Mapping[str, Any], ...]:
    """Constraints that parse (fail closed) and are already in their one stored spelling."""
    try:
        parsed = parse_constraints(raw, currency=currency, param="$.mandate.constraints")
    except ConstraintError as error:
        raise _malformed(f"mandate.constraints do not parse: {error.message}") from None
    stored = tuple(to_json(c) for c in parsed)
    if not isinstance(raw, list) or list(stored) != raw:
        raise _malformed("mandate.constraints are not in their stored form")
    return stored
