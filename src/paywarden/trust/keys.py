"""Signing keys as JWKs: Ed25519 and ES256 (ECDSA on P-256 with SHA-256), and nothing else.

An agent registers its public key as a JWK (RFC 7517) and signs its requests with the private
half; the key's RFC 7638 thumbprint is the ``keyid`` it puts in its signatures, so the key
names itself and no registry can hand out a name that points at another key.

Parsing is strict because a registered key is a trust anchor:

- ``kty``/``crv`` must be ``OKP``/``Ed25519`` or ``EC``/``P-256``; anything else is refused as
  unsupported rather than half-understood;
- ``x`` (and ``y``) are canonical base64url without padding and exactly 32 bytes;
- an Ed25519 ``x`` must encode a point of the prime-order subgroup (libsodium's check): a
  small-order key would accept forged signatures on some messages;
- a P-256 point must lie on the curve (invalid-curve attacks);
- a *public* JWK that carries private members (``d`` …) is refused: whoever stores it would
  keep a secret it must never hold;
- ``alg`` and ``use``, when present, must agree with the key; other members (``kid`` …) are
  ignored, as RFC 7517 §4 requires.

Signatures are raw bytes as RFC 9421 §3.3 defines them: Ed25519's 64 bytes, and ES256's
``r || s`` (two 32-byte big-endian integers), never DER. ES256 signing uses deterministic
nonces (RFC 6979), so this domain draws no randomness and a signature is reproducible;
Ed25519 is deterministic by design. Ed25519 runs on PyNaCl (libsodium), which is faster than
the alternatives on the verification hot path; ES256 runs on ``cryptography``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from nacl.bindings import crypto_core_ed25519_is_valid_point
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from paywarden.kernel.errors import InvalidRequest

__all__ = [
    "ECDSA_P256_SHA256",
    "ED25519",
    "SUPPORTED_ALGORITHMS",
    "PrivateKey",
    "PublicKey",
    "b64url_decode",
    "b64url_encode",
    "ed25519_private_key",
    "es256_private_key",
    "jwk_thumbprint",
    "parse_private_jwk",
    "parse_public_jwk",
]

# Algorithm names from the RFC 9421 "HTTP Signature Algorithms" registry (§6.2.2).
ED25519 = "ed25519"
ECDSA_P256_SHA256 = "ecdsa-p256-sha256"
SUPPORTED_ALGORITHMS = frozenset({ED25519, ECDSA_P256_SHA256})

_KEY_BYTES = 32  # an Ed25519 public key or seed, a P-256 coordinate or scalar
_SIGNATURE_BYTES = 64  # Ed25519, and ES256 as r || s
_JWK_MEMBER_LENGTH_MAX = 64  # characters; the longest member we accept is 43

# JOSE `alg` values (RFC 7518, RFC 8037, RFC 9864) that name each of our algorithms.
_JOSE_ALGS: dict[str, frozenset[str]] = {
    ED25519: frozenset({"EdDSA", "Ed25519"}),
    ECDSA_P256_SHA256: frozenset({"ES256"}),
}
_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")
# RFC 7638 §3.2: the required members of each key type, which alone enter the thumbprint.
_THUMBPRINT_MEMBERS: dict[str, tuple[str, ...]] = {
    "EC": ("crv", "kty", "x", "y"),
    "OKP": ("crv", "kty", "x"),
    "RSA": ("e", "kty", "n"),
    "oct": ("k", "kty"),
}
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")


def b64url_encode(data: bytes) -> str:
    """Base64url without padding (RFC 7515 §2), as JWK members and thumbprints use it."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode canonical base64url without padding; raise ``ValueError`` on anything else.

    Padding, whitespace, the standard alphabet's ``+/`` and non-zero trailing bits are all
    refused, so that each byte string has exactly one accepted spelling.
    """
    if not _BASE64URL.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not canonical base64url without padding")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as error:
        raise ValueError("not base64url") from error
    if b64url_encode(data) != text:
        raise ValueError("base64url with non-zero trailing bits")
    return data


def jwk_thumbprint(jwk: Mapping[str, object]) -> str:
    """The RFC 7638 thumbprint: SHA-256 over the required members, base64url, no padding.

    Works for any key type RFC 7638 knows (RSA included), so that thumbprints can be checked
    against published examples; parsing (:func:`parse_public_jwk`) is what limits the types.
    """
    kty = jwk.get("kty")
    members = _THUMBPRINT_MEMBERS.get(kty) if isinstance(kty, str) else None
    if members is None:
        raise InvalidRequest(f"no thumbprint for key type {kty!r}", code="unsupported_key_type")
    required = {name: _string_member(jwk, name) for name in members}
    # Members in lexicographic order, no whitespace (RFC 7638 §3.3); sort_keys gives the
    # order, and the values are base64url or short ASCII names, which JSON leaves as they are.
    canonical = json.dumps(required, sort_keys=True, separators=(",", ":"))
    return b64url_encode(hashlib.sha256(canonical.encode("utf-8")).digest())


@dataclass(frozen=True, slots=True)
class PublicKey:
    """A parsed, checked public key; build it with :func:`parse_public_jwk`."""

    alg: str  # ED25519 or ECDSA_P256_SHA256
    crv: str  # "Ed25519" or "P-256"
    x: str  # base64url, as in the JWK
    y: str | None  # base64url for P-256, None for Ed25519
    thumbprint: str
    _verifier: VerifyKey | ec.EllipticCurvePublicKey = field(repr=False, compare=False)

    @property
    def keyid(self) -> str:
        """The ``keyid`` agents sign with: the RFC 7638 thumbprint."""
        return self.thumbprint

    @property
    def kty(self) -> str:
        return "OKP" if self.alg == ED25519 else "EC"

    def jwk(self) -> dict[str, str]:
        """The public JWK with exactly its required members."""
        members = {"kty": self.kty, "crv": self.crv, "x": self.x}
        if self.y is not None:
            members["y"] = self.y
        return members

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` (raw RFC 9421 bytes) signs ``message``; never raises."""
        if len(signature) != _SIGNATURE_BYTES:
            return False
        if isinstance(self._verifier, VerifyKey):
            try:
                self._verifier.verify(message, signature)
            except BadSignatureError:
                return False
            return True
        r = int.from_bytes(signature[:_KEY_BYTES], "big")
        s = int.from_bytes(signature[_KEY_BYTES:], "big")
        try:
            self._verifier.verify(encode_dss_signature(r, s), message, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True, slots=True)
class PrivateKey:
    """A signing key and its public half. Its repr never shows the secret."""

    public_key: PublicKey
    _signer: SigningKey | ec.EllipticCurvePrivateKey = field(repr=False, compare=False)

    @property
    def alg(self) -> str:
        return self.public_key.alg

    @property
    def keyid(self) -> str:
        return self.public_key.thumbprint

    def public_jwk(self) -> dict[str, str]:
        return self.public_key.jwk()

    def sign(self, message: bytes) -> bytes:
        """Sign ``message``; the result is the raw RFC 9421 signature (64 bytes)."""
        if isinstance(self._signer, SigningKey):
            return self._signer.sign(message).signature
        # RFC 6979 nonces: no randomness drawn, and the same message gives the same signature.
        algorithm = ec.ECDSA(hashes.SHA256(), deterministic_signing=True)
        r, s = decode_dss_signature(self._signer.sign(message, algorithm))
        return r.to_bytes(_KEY_BYTES, "big") + s.to_bytes(_KEY_BYTES, "big")


def parse_public_jwk(jwk: Mapping[str, object]) -> PublicKey:
    """Parse and check a public JWK; raise :class:`InvalidRequest` with a specific code.

    Codes: ``unsupported_key_type`` (kty/crv we do not accept), ``private_key_in_public_jwk``
    and ``invalid_jwk`` (missing or malformed members, a point not on the curve, a
    disagreeing ``alg`` or ``use``).
    """
    _check_is_jwk(jwk)
    _public_kind(jwk)  # an unsupported key type is named as such before anything else
    for name in _PRIVATE_MEMBERS:
        if name in jwk:
            raise InvalidRequest(
                f"a public JWK must not contain the private member {name!r}",
                code="private_key_in_public_jwk",
                param=f"$.{name}",
            )
    return _public_from_members(jwk)


def parse_private_jwk(jwk: Mapping[str, object]) -> PrivateKey:
    """Parse a private JWK (with ``d``) for signing; ``d`` must match the public members."""
    _check_is_jwk(jwk)
    public = _public_from_members(jwk)
    secret = _decode_member(jwk, "d", _KEY_BYTES)
    if public.alg == ED25519:
        private = ed25519_private_key(secret)
    else:
        try:
            key = ec.derive_private_key(int.from_bytes(secret, "big"), ec.SECP256R1())
        except ValueError as error:
            raise _invalid("d is not a valid P-256 private scalar", "d") from error
        private = es256_private_key(key)
    if private.public_key != public:
        raise _invalid("d does not belong to the public key in x (and y)", "d")
    return private


def ed25519_private_key(seed: bytes) -> PrivateKey:
    """The Ed25519 key for a 32-byte seed (the JWK ``d``); the caller supplies the randomness."""
    if len(seed) != _KEY_BYTES:
        raise InvalidRequest(f"an Ed25519 seed is {_KEY_BYTES} bytes", code="invalid_jwk")
    signer = SigningKey(seed)
    public = _ed25519_public(bytes(signer.verify_key))
    return PrivateKey(public, signer)


def es256_private_key(key: ec.EllipticCurvePrivateKey) -> PrivateKey:
    """Wrap a ``cryptography`` P-256 private key (generated or loaded by the caller)."""
    if not isinstance(key.curve, ec.SECP256R1):
        raise InvalidRequest(
            f"ES256 needs a P-256 key, not {key.curve.name}", code="unsupported_key_type"
        )
    numbers = key.public_key().public_numbers()
    public = _p256_public(
        numbers.x.to_bytes(_KEY_BYTES, "big"), numbers.y.to_bytes(_KEY_BYTES, "big")
    )
    return PrivateKey(public, key)


# ---------------------------------------------------------------------------------------------
# Parsing helpers
# ---------------------------------------------------------------------------------------------


def _check_is_jwk(jwk: Mapping[str, object]) -> None:
    if not isinstance(jwk, Mapping) or not all(isinstance(name, str) for name in jwk):
        raise _invalid("a JWK is a JSON object", None)


def _public_kind(jwk: Mapping[str, object]) -> str:
    """The algorithm a JWK's kty/crv pair stands for, or ``unsupported_key_type``."""
    kty = _string_member(jwk, "kty")
    crv = jwk.get("crv")
    if kty == "OKP" and crv == "Ed25519":
        return ED25519
    if kty == "EC" and crv == "P-256":
        return ECDSA_P256_SHA256
    shown = kty if crv is None else f"{kty}/{crv}"
    raise InvalidRequest(
        f"unsupported key type {shown}: only OKP/Ed25519 and EC/P-256 are accepted",
        code="unsupported_key_type",
        param="$.kty" if kty not in ("OKP", "EC") else "$.crv",
    )


def _public_from_members(jwk: Mapping[str, object]) -> PublicKey:
    alg = _public_kind(jwk)
    x = _decode_member(jwk, "x", _KEY_BYTES)
    if alg == ED25519:
        if "y" in jwk:
            raise _invalid("an OKP key has no y", "y")
        public = _ed25519_public(x)
    else:
        public = _p256_public(x, _decode_member(jwk, "y", _KEY_BYTES))
    _check_alg_and_use(jwk, alg)
    return public


def _ed25519_public(x: bytes) -> PublicKey:
    # Canonical encoding of a point on the curve, in the prime-order subgroup, not of small
    # order: the keys for which "valid signature" means what it should.
    if not crypto_core_ed25519_is_valid_point(x):
        raise _invalid("x is not a valid Ed25519 public key", "x")
    encoded = b64url_encode(x)
    thumbprint = jwk_thumbprint({"kty": "OKP", "crv": "Ed25519", "x": encoded})
    return PublicKey(ED25519, "Ed25519", encoded, None, thumbprint, VerifyKey(x))


def _p256_public(x: bytes, y: bytes) -> PublicKey:
    numbers = ec.EllipticCurvePublicNumbers(
        int.from_bytes(x, "big"), int.from_bytes(y, "big"), ec.SECP256R1()
    )
    try:
        verifier = numbers.public_key()  # checks that the point lies on the curve
    except ValueError as error:
        raise _invalid("(x, y) is not a point on P-256", "x") from error
    x_text, y_text = b64url_encode(x), b64url_encode(y)
    thumbprint = jwk_thumbprint({"kty": "EC", "crv": "P-256", "x": x_text, "y": y_text})
    return PublicKey(ECDSA_P256_SHA256, "P-256", x_text, y_text, thumbprint, verifier)


def _check_alg_and_use(jwk: Mapping[str, object], alg: str) -> None:
    if "alg" in jwk and _string_member(jwk, "alg") not in _JOSE_ALGS[alg]:
        expected = " or ".join(sorted(_JOSE_ALGS[alg]))
        raise _invalid(f"alg {jwk['alg']!r} does not fit this key; expected {expected}", "alg")
    if "use" in jwk and _string_member(jwk, "use") != "sig":
        raise _invalid("a signing key's use must be 'sig'", "use")


def _string_member(jwk: Mapping[str, object], name: str) -> str:
    value = jwk.get(name)
    if not isinstance(value, str):
        raise _invalid(f"member {name!r} must be a string", name)
    return value


def _decode_member(jwk: Mapping[str, object], name: str, length: int) -> bytes:
    text = _string_member(jwk, name)
    if len(text) > _JWK_MEMBER_LENGTH_MAX:
        raise _invalid(f"member {name!r} is too long", name)
    try:
        data = b64url_decode(text)
    except ValueError as error:
        raise _invalid(f"member {name!r}: {error}", name) from error
    if len(data) != length:
        raise _invalid(f"member {name!r} must decode to {length} bytes, not {len(data)}", name)
    return data


def _invalid(message: str, member: str | None) -> InvalidRequest:
    return InvalidRequest(
        message, code="invalid_jwk", param=None if member is None else f"$.{member}"
    )
