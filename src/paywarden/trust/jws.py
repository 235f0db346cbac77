"""The compact JWS (RFC 7515) that the platform signs with: one shape, strictly checked.

Every token the platform issues (payment receipts, mandate tokens) is a compact JWS with the
header ``{"alg": "ES256", "kid", "typ"}``, header and claims serialised as RFC 8785 canonical
JSON, and an ES256 signature as raw ``r || s``. ``typ`` names what the token is, so that one
kind is never mistaken for another (RFC 8725 §3.11); ``kid`` is the RFC 7638 thumbprint of
the signing key.

Verification is strict, so that each token has one accepted spelling and any changed byte is
caught, and runs in this order:

1. ASCII text of at most ``length_max`` characters, in three dot-separated parts;
2. the header: canonical base64url, a JSON object without duplicate members, exactly
   ``alg``/``kid``/``typ``, ``alg`` ES256, the expected ``typ``, a non-empty ``kid``;
3. the key: exactly one JWK in the set with that ``kid``, which parses, is the key the
   ``kid`` names (its thumbprint) and is a P-256 key;
4. the signature: canonical base64url, 64 bytes, valid over the bytes as received;
5. only then the payload: canonical base64url and a JSON object without duplicate members.

What the claims mean is the caller's business. Failures are reported through the caller's
:class:`Profile`: ``malformed`` for what is not a well-formed token of this kind (steps 1, 2
and 5), ``untrusted`` for a well-formed token that this key set does not vouch for (steps 3
and 4). Messages name the token by the profile's ``noun``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from paywarden.kernel.errors import InvalidRequest
from paywarden.kernel.invariant import invariant
from paywarden.trust.canonical import canonical
from paywarden.trust.custody import ES256, PlatformSigner
from paywarden.trust.keys import (
    ECDSA_P256_SHA256,
    PublicKey,
    b64url_decode,
    b64url_encode,
    parse_public_jwk,
)

__all__ = ["HEADER_MEMBERS", "JWKS_KEYS_MAX", "SIGNATURE_BYTES", "Profile", "sign", "verify"]

HEADER_MEMBERS = frozenset({"alg", "kid", "typ"})
JWKS_KEYS_MAX = 1000
SIGNATURE_BYTES = 64  # ES256 as r || s


@dataclass(frozen=True, slots=True)
class Profile:
    """One kind of token: its ``typ``, how messages name it, and how failures are raised."""

    typ: str  # the header's typ, such as payment-receipt+jwt
    noun: str  # "receipt": "a receipt is a compact JWS", "not a receipt", "receipts are ES256"
    length_max: int  # characters
    malformed: Callable[[str], Exception]  # not a well-formed token of this kind
    untrusted: Callable[[str], Exception]  # well-formed, but the key set does not vouch for it


def sign(profile: Profile, claims: Mapping[str, Any], signer: PlatformSigner) -> str:
    """``claims`` as a compact JWS of ``profile``'s ``typ``, signed by ``signer`` (ES256)."""
    invariant(signer.alg == ES256, f"{profile.noun}s are signed with ES256")
    header = {"alg": ES256, "kid": signer.key_id, "typ": profile.typ}
    signing_input = b64url_encode(canonical(header)) + "." + b64url_encode(canonical(dict(claims)))
    signature = signer.sign(signing_input.encode("ascii"))
    return signing_input + "." + b64url_encode(signature)


def verify(profile: Profile, token: str, jwks: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """Check ``token`` against a JWK set (``{"keys": [...]}``); return its ``kid`` and claims."""
    if not isinstance(token, str) or not token.isascii() or len(token) > profile.length_max:
        raise profile.malformed(
            f"a {profile.noun} is a compact JWS: ASCII text of at most "
            f"{profile.length_max} characters"
        )
    parts = token.split(".")
    if len(parts) != 3:
        raise profile.malformed("a compact JWS has three dot-separated parts")
    header = _json_object(profile, _decode(profile, parts[0], "header"), "header")
    kid = _check_header(profile, header)
    public_key = _find_key(profile, jwks, kid)
    signature = _decode(profile, parts[2], "signature")
    signing_input = (parts[0] + "." + parts[1]).encode("ascii")
    if len(signature) != SIGNATURE_BYTES or not public_key.verify(signing_input, signature):
        raise profile.untrusted(f"the signature does not verify under key {kid}")
    return kid, _json_object(profile, _decode(profile, parts[1], "payload"), "payload")


# --- helpers -----------------------------------------------------------------------------


def _decode(profile: Profile, part: str, name: str) -> bytes:
    try:
        return b64url_decode(part)
    except ValueError as error:
        raise profile.malformed(f"the {name} is not canonical base64url: {error}") from None


def _json_object(profile: Profile, data: bytes, name: str) -> dict[str, Any]:
    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        names = [pair[0] for pair in pairs]
        if len(set(names)) != len(names):
            raise ValueError("duplicate member")
        return dict(pairs)

    try:
        value = json.loads(data.decode("utf-8"), object_pairs_hook=no_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise profile.malformed(f"the {name} is not a JSON object") from None
    if not isinstance(value, dict):
        raise profile.malformed(f"the {name} is not a JSON object")
    return value


def _check_header(profile: Profile, header: Mapping[str, Any]) -> str:
    if set(header) != HEADER_MEMBERS:
        raise profile.malformed(f"the header must have exactly {sorted(HEADER_MEMBERS)}")
    if header["alg"] != ES256:
        raise profile.malformed(f"alg {header['alg']!r} is not ES256")
    if header["typ"] != profile.typ:
        raise profile.malformed(
            f"typ {header['typ']!r} is not {profile.typ!r}: not a {profile.noun}"
        )
    kid = header["kid"]
    if not isinstance(kid, str) or not kid:
        raise profile.malformed("kid must be a non-empty string")
    return kid


def _find_key(profile: Profile, jwks: Mapping[str, Any], kid: str) -> PublicKey:
    keys = jwks.get("keys") if isinstance(jwks, Mapping) else None
    if not isinstance(keys, list) or len(keys) > JWKS_KEYS_MAX:
        raise profile.untrusted('the key set must be {"keys": [...]}')
    named = [jwk for jwk in keys if isinstance(jwk, Mapping) and jwk.get("kid") == kid]
    if len(named) != 1:
        found = "no key" if not named else f"{len(named)} keys"
        raise profile.untrusted(f"the key set has {found} with kid {kid}")
    try:
        public_key = parse_public_jwk(named[0])
    except InvalidRequest as error:
        raise profile.untrusted(f"key {kid} in the key set: {error.message}") from None
    if public_key.thumbprint != kid:
        raise profile.untrusted(
            f"key {kid} in the key set is a different key (its thumbprint differs)"
        )
    if public_key.alg != ECDSA_P256_SHA256:
        raise profile.untrusted(f"key {kid} is not a P-256 key; {profile.noun}s are ES256")
    return public_key
