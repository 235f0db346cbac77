"""Custody of the platform's own signing keys: sealed at rest, rotated with an overlap.

Envelope encryption
    A private key is stored only as ``pwk1.<master key id>.<nonce>.<ciphertext>`` (base64url
    parts): AES-256-GCM under the 32-byte master key, with a random 96-bit nonce that the
    caller draws and passes in. The plaintext is the key's 32-byte secret (the Ed25519 seed or
    the P-256 scalar). The associated data is the RFC 8785 canonical JSON of
    ``{"v": 1, "kid": ..., "purpose": ...}``, so a ciphertext copied into another key's row,
    or relabelled with another purpose, no longer opens. The master key id (the first 8 bytes
    of a domain-separated SHA-256 of the master key) only names the master key, so that a
    wrong master key is reported as such rather than as corruption; it reveals nothing about
    the key. After opening, the key is rebuilt and must match its ``kid`` (its RFC 7638
    thumbprint), a second, independent check.

Rotation
    Each purpose has at most one ``active`` key, the one that signs. Rotating makes a new key
    active and the old one ``retired``: it signs nothing more, is still published until
    ``publish_until`` (the overlap, 30 days unless chosen otherwise) so that relying parties
    that cache the key set pick up the new key before anything signed by it reaches them, and
    stays in the verification set for good, so that old receipts keep verifying. ``revoked``
    (compromised) keys are neither published nor trusted for verification.

Nothing here reads the clock, draws randomness or touches storage: nonces, secrets and
``now`` come in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from paywarden.kernel.clock import ensure_utc
from paywarden.kernel.errors import PaywardenError
from paywarden.kernel.invariant import invariant
from paywarden.trust.canonical import canonical
from paywarden.trust.keys import (
    ECDSA_P256_SHA256,
    ED25519,
    PrivateKey,
    b64url_decode,
    b64url_encode,
    ed25519_private_key,
    es256_private_key,
)

__all__ = [
    "ALG_FOR_PURPOSE",
    "EDDSA",
    "ES256",
    "MASTER_KEY_BYTES",
    "NONCE_BYTES",
    "PUBLISH_OVERLAP_DEFAULT",
    "RANDOM_BYTES",
    "KeyRecord",
    "KeyStatus",
    "PlatformSigner",
    "Purpose",
    "active_key",
    "is_published",
    "is_trusted",
    "master_key_id",
    "new_key",
    "open_secret",
    "open_signer",
    "private_key_from_secret",
    "public_jwk",
    "revoke",
    "rotate",
    "seal_secret",
]

MASTER_KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # 96 bits, the GCM nonce size
SECRET_BYTES = 32  # an Ed25519 seed or a P-256 scalar
PUBLISH_OVERLAP_DEFAULT = timedelta(days=30)
_FORMAT = "pwk1"
_MASTER_KEY_ID_BYTES = 8
_MASTER_KEY_ID_DOMAIN = b"paywarden custody master key id v1\x00"
_TAG_BYTES = 16
# NIST P-256 group order: scalars are taken modulo n - 1, plus one (FIPS 186-5 A.2.1).
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551

# JOSE algorithm names, as stored in the ``alg`` column and published in the JWKS.
ES256 = "ES256"
EDDSA = "EdDSA"  # RFC 8037; understood by more verifiers than RFC 9864's "Ed25519"
_KEYS_ALG = {ES256: ECDSA_P256_SHA256, EDDSA: ED25519}
# Randomness each algorithm needs to make a key: 64 extra bits for P-256 make the reduction
# modulo n - 1 unbiased to 2**-64 (FIPS 186-5 A.2.1); an Ed25519 seed is used as is.
RANDOM_BYTES = {ES256: SECRET_BYTES + 8, EDDSA: SECRET_BYTES}


class Purpose(StrEnum):
    RECEIPT = "receipt"
    MANDATE_TOKEN = "mandate_token"  # noqa: S105 -- a purpose name, not a secret
    AUDIT_CHECKPOINT = "audit_checkpoint"
    CART = "cart"


ALG_FOR_PURPOSE: dict[Purpose, str] = {
    Purpose.RECEIPT: ES256,
    Purpose.MANDATE_TOKEN: ES256,
    Purpose.AUDIT_CHECKPOINT: EDDSA,  # what paywarden.trust.audit checkpoints are signed with
    Purpose.CART: ES256,
}


class KeyStatus(StrEnum):
    ACTIVE = "active"  # signs; one per purpose
    RETIRED = "retired"  # signs nothing more; published until publish_until; still verifies
    REVOKED = "revoked"  # compromised or withdrawn: neither published nor trusted


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """One platform key as stored. ``private_ciphertext`` is the sealed secret, never clear."""

    kid: str  # the RFC 7638 thumbprint of the public key
    purpose: Purpose
    alg: str  # ES256 or EdDSA
    public_jwk: dict[str, str]  # required members only (kty, crv, x[, y])
    private_ciphertext: str
    status: KeyStatus
    created_at: datetime
    activated_at: datetime | None
    retired_at: datetime | None
    publish_until: datetime | None  # set when retired


@dataclass(frozen=True, slots=True)
class PlatformSigner:
    """An opened platform key, ready to sign. It satisfies :class:`paywarden.trust.audit.Signer`
    (``key_id`` and ``sign``); signatures are raw (ES256 as ``r || s``, as JWS wants them)."""

    purpose: Purpose
    alg: str  # ES256 or EdDSA
    private_key: PrivateKey = field(repr=False)

    @property
    def key_id(self) -> str:
        return self.private_key.keyid

    def sign(self, message: bytes) -> bytes:
        return self.private_key.sign(message)

    def public_jwk(self) -> dict[str, str]:
        return self.private_key.public_jwk()


# --- the envelope ------------------------------------------------------------------------


def master_key_id(master_key: bytes) -> str:
    """A short public name for a master key (base64url of 8 bytes of a hash)."""
    _check_master_key(master_key)
    digest = hashlib.sha256(_MASTER_KEY_ID_DOMAIN + master_key).digest()
    return b64url_encode(digest[:_MASTER_KEY_ID_BYTES])


def seal_secret(master_key: bytes, nonce: bytes, kid: str, purpose: Purpose, secret: bytes) -> str:
    """Encrypt a key's secret for the row ``(kid, purpose)``; ``nonce`` must be fresh."""
    _check_master_key(master_key)
    invariant(len(nonce) == NONCE_BYTES, f"the nonce is {NONCE_BYTES} random bytes")
    invariant(len(secret) == SECRET_BYTES, f"a key's secret is {SECRET_BYTES} bytes")
    sealed = AESGCM(master_key).encrypt(nonce, secret, _associated_data(kid, purpose))
    parts = (master_key_id(master_key), b64url_encode(nonce), b64url_encode(sealed))
    return ".".join((_FORMAT, *parts))


def open_secret(master_key: bytes, kid: str, purpose: Purpose, sealed: str) -> bytes:
    """Decrypt what :func:`seal_secret` made for this row, or raise ``key_unseal_failed``
    (altered, moved from another row, unknown format) or ``master_key_mismatch``."""
    parts = sealed.split(".")
    if len(parts) != 4 or parts[0] != _FORMAT:
        raise _unseal_failed(kid, "it is not a pwk1 envelope")
    expected_master = master_key_id(master_key)
    if parts[1] != expected_master:
        raise PaywardenError(
            f"key {kid} is sealed under master key {parts[1]!r}, but the configured master "
            f"key is {expected_master!r}: restore the master key this database was made with",
            code="master_key_mismatch",
        )
    try:
        nonce, ciphertext = b64url_decode(parts[2]), b64url_decode(parts[3])
    except ValueError:
        raise _unseal_failed(kid, "its parts are not base64url") from None
    if len(nonce) != NONCE_BYTES or len(ciphertext) != SECRET_BYTES + _TAG_BYTES:
        raise _unseal_failed(kid, "its parts have the wrong length")
    try:
        return AESGCM(master_key).decrypt(nonce, ciphertext, _associated_data(kid, purpose))
    except InvalidTag:
        raise _unseal_failed(kid, "altered, or moved from another key's row") from None


def private_key_from_secret(alg: str, secret: bytes) -> PrivateKey:
    """The signing key for a 32-byte secret of a JOSE ``alg`` (ES256 or EdDSA)."""
    invariant(alg in _KEYS_ALG, f"unknown key algorithm {alg!r}")
    invariant(len(secret) == SECRET_BYTES, f"a key's secret is {SECRET_BYTES} bytes")
    if _KEYS_ALG[alg] == ED25519:
        return ed25519_private_key(secret)
    scalar = int.from_bytes(secret, "big")
    invariant(0 < scalar < _P256_ORDER, "a P-256 scalar lies in [1, n - 1]")
    return es256_private_key(ec.derive_private_key(scalar, ec.SECP256R1()))


def open_signer(record: KeyRecord, master_key: bytes) -> PlatformSigner:
    """Open a stored key for signing; the rebuilt key must be the one its ``kid`` names."""
    invariant(record.status == KeyStatus.ACTIVE, f"only the active key signs, not {record.kid}")
    invariant(ALG_FOR_PURPOSE[record.purpose] == record.alg, f"{record.kid}: wrong algorithm")
    secret = open_secret(master_key, record.kid, record.purpose, record.private_ciphertext)
    private = private_key_from_secret(record.alg, secret)
    if private.keyid != record.kid:
        raise _unseal_failed(record.kid, "it opens to a different key than the kid names")
    return PlatformSigner(record.purpose, record.alg, private)


def _secret_from_random(alg: str, randomness: bytes) -> bytes:
    invariant(alg in RANDOM_BYTES, f"unknown key algorithm {alg!r}")
    invariant(len(randomness) == RANDOM_BYTES[alg], f"{alg} needs {RANDOM_BYTES[alg]} bytes")
    if alg == EDDSA:
        return randomness
    scalar = int.from_bytes(randomness, "big") % (_P256_ORDER - 1) + 1
    return scalar.to_bytes(SECRET_BYTES, "big")


def _associated_data(kid: str, purpose: Purpose) -> bytes:
    return canonical({"v": 1, "kid": kid, "purpose": str(purpose)})


def _check_master_key(master_key: bytes) -> None:
    invariant(len(master_key) == MASTER_KEY_BYTES, f"the master key is {MASTER_KEY_BYTES} bytes")


def _unseal_failed(kid: str, why: str) -> PaywardenError:
    return PaywardenError(
        f"the private key of {kid} does not open: {why}", code="key_unseal_failed"
    )


# --- records and rotation ----------------------------------------------------------------


def new_key(
    purpose: Purpose,
    *,
    randomness: bytes,
    nonce: bytes,
    master_key: bytes,
    now: datetime,
) -> tuple[KeyRecord, PrivateKey]:
    """A fresh active key for ``purpose``, sealed; ``randomness`` is ``RANDOM_BYTES[alg]``
    bytes from a CSPRNG, ``nonce`` ``NONCE_BYTES`` more."""
    alg = ALG_FOR_PURPOSE[purpose]
    secret = _secret_from_random(alg, randomness)
    private = private_key_from_secret(alg, secret)
    now = ensure_utc(now)
    record = KeyRecord(
        kid=private.keyid,
        purpose=purpose,
        alg=alg,
        public_jwk=private.public_jwk(),
        private_ciphertext=seal_secret(master_key, nonce, private.keyid, purpose, secret),
        status=KeyStatus.ACTIVE,
        created_at=now,
        activated_at=now,
        retired_at=None,
        publish_until=None,
    )
    return record, private


def active_key(records: Sequence[KeyRecord], purpose: Purpose) -> KeyRecord | None:
    """The key that signs for ``purpose`` now, if any."""
    active = [r for r in records if r.purpose == purpose and r.status == KeyStatus.ACTIVE]
    invariant(len(active) <= 1, f"{len(active)} active keys for {purpose}")
    return active[0] if active else None


def rotate(
    records: Sequence[KeyRecord],
    new: KeyRecord,
    now: datetime,
    overlap: timedelta = PUBLISH_OVERLAP_DEFAULT,
) -> list[KeyRecord]:
    """The records that change when ``new`` becomes the active key of its purpose: the old
    active key retired (published until ``now + overlap``), then ``new``, active."""
    invariant(overlap >= timedelta(0), "the publication overlap is not negative")
    invariant(new.status == KeyStatus.ACTIVE, "the new key is active")
    invariant(all(r.kid != new.kid for r in records), "the new key is new")
    now = ensure_utc(now)
    old = active_key(records, new.purpose)
    changed = [new]
    if old is not None:
        retired = replace(
            old, status=KeyStatus.RETIRED, retired_at=now, publish_until=now + overlap
        )
        changed.insert(0, retired)
    return changed


def revoke(record: KeyRecord, now: datetime) -> KeyRecord:
    """Withdraw a key (compromised): it is no longer published nor trusted to verify."""
    now = ensure_utc(now)
    return replace(
        record,
        status=KeyStatus.REVOKED,
        retired_at=record.retired_at or now,
        publish_until=None,
    )


def is_published(record: KeyRecord, now: datetime) -> bool:
    """Whether the key belongs in the public key set at ``now``: active, or retired with
    ``now`` at or before ``publish_until`` (the last instant of the overlap, inclusive)."""
    if record.status == KeyStatus.ACTIVE:
        return True
    if record.status == KeyStatus.RETIRED and record.publish_until is not None:
        return ensure_utc(now) <= record.publish_until
    return False


def is_trusted(record: KeyRecord) -> bool:
    """Whether signatures by the key are accepted: every key but a revoked one, forever."""
    return record.status != KeyStatus.REVOKED


def public_jwk(record: KeyRecord) -> dict[str, Any]:
    """The key as published: its JWK with ``kid``, ``alg`` and ``use``."""
    return {**record.public_jwk, "kid": record.kid, "alg": record.alg, "use": "sig"}
