"""Webhook signatures and webhook secrets at rest. Pure: times and randomness come in.

Two signature schemes, one per endpoint format:

Standard Webhooks (``standard``, https://www.standardwebhooks.com)
    Headers ``webhook-id`` (the event id, the same on every retry: receivers dedupe on it),
    ``webhook-timestamp`` (integer Unix seconds) and ``webhook-signature``: space-separated
    ``v1,<base64 HMAC-SHA256>`` over ``"{id}.{timestamp}.{body}"``, keyed with the base64
    decoding of the secret after its ``whsec_`` prefix. During a secret rotation the header
    carries one signature per live secret, newest first.

ACP ``Merchant-Signature`` (``acp``, openapi.agentic_checkout_webhook.yaml)
    ``t=<unix seconds>,v1=<64 hex>``: HMAC-SHA256 over ``"{timestamp}.{raw body}"``. The spec
    names only "the shared secret" as key; paywarden keys it with the UTF-8 bytes of the
    secret exactly as shown (``whsec_…``). The header pattern admits a single ``v1``, so
    only the newest secret signs; a receiver accepts either secret during a rotation.

Secrets at rest (``pws1``)
    A secret is 32 random bytes, sealed like the platform's keys in
    :mod:`paywarden.trust.custody`: AES-256-GCM under the master key (named by its
    :func:`~paywarden.trust.custody.master_key_id`), with associated data binding it to its
    endpoint, so a sealed secret copied to another endpoint's row does not open.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from paywarden.kernel.errors import PaywardenError
from paywarden.kernel.invariant import invariant
from paywarden.trust.canonical import canonical
from paywarden.trust.custody import NONCE_BYTES, master_key_id
from paywarden.trust.keys import b64url_decode, b64url_encode

__all__ = [
    "SECRET_BYTES",
    "SECRET_PREFIX",
    "TOLERANCE_S",
    "StandardHeaders",
    "format_secret",
    "merchant_signature",
    "open_webhook_secret",
    "parse_merchant_signature",
    "parse_secret",
    "seal_webhook_secret",
    "standard_headers",
    "standard_signature",
    "verify_merchant_signature",
    "verify_standard",
]

SECRET_PREFIX = "whsec_"  # noqa: S105 -- a prefix, not a secret
SECRET_BYTES = 32
TOLERANCE_S = 300  # both specs recommend five minutes
_SEALED_FORMAT = "pws1"
_MERCHANT_SIGNATURE = re.compile(r"^t=(\d{1,12}),v1=([a-fA-F0-9]{64})$")


def format_secret(secret: bytes) -> str:
    """``whsec_<base64>`` of 32 random bytes, as shown to the endpoint's owner once."""
    invariant(len(secret) == SECRET_BYTES, f"a webhook secret is {SECRET_BYTES} bytes")
    return SECRET_PREFIX + base64.b64encode(secret).decode("ascii")


def parse_secret(text: str) -> bytes:
    """The key bytes of a ``whsec_…`` secret (Standard Webhooks' HMAC key)."""
    if not text.startswith(SECRET_PREFIX):
        raise ValueError("a webhook secret starts with whsec_")
    try:
        key = base64.b64decode(text.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error:
        raise ValueError("a webhook secret is whsec_ and base64") from None
    if not key:
        raise ValueError("a webhook secret is not empty")
    return key


# --- Standard Webhooks ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StandardHeaders:
    webhook_id: str
    timestamp: int
    signature: str

    def as_dict(self) -> dict[str, str]:
        return {
            "webhook-id": self.webhook_id,
            "webhook-timestamp": str(self.timestamp),
            "webhook-signature": self.signature,
        }


def standard_signature(key: bytes, webhook_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64>`` for one key."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def standard_headers(
    secrets: Sequence[str], webhook_id: str, timestamp: int, body: bytes
) -> StandardHeaders:
    """The three headers, signed with every live secret (newest first)."""
    invariant(bool(secrets), "at least one secret signs")
    signatures = [standard_signature(parse_secret(s), webhook_id, timestamp, body) for s in secrets]
    return StandardHeaders(webhook_id, timestamp, " ".join(signatures))


def verify_standard(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now_s: int,
    tolerance_s: int = TOLERANCE_S,
) -> bool:
    """Whether ``headers`` carry a valid signature of ``body`` by ``secret``, at ``now_s``."""
    lower = {k.lower(): v for k, v in headers.items()}
    webhook_id, stamp = lower.get("webhook-id"), lower.get("webhook-timestamp", "")
    if not webhook_id or not stamp.isdigit() or abs(now_s - int(stamp)) > tolerance_s:
        return False
    expected = standard_signature(parse_secret(secret), webhook_id, int(stamp), body)
    offered = lower.get("webhook-signature", "").split(" ")
    return any(hmac.compare_digest(expected, candidate) for candidate in offered)


# --- ACP Merchant-Signature ----------------------------------------------------------------


def merchant_signature(secret: str, timestamp: int, body: bytes) -> str:
    """``t=<timestamp>,v1=<hex HMAC-SHA256(secret, "{timestamp}.{body}")>``."""
    signed = f"{timestamp}.".encode() + body
    digest = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def parse_merchant_signature(header: str) -> tuple[int, str] | None:
    """``(timestamp, hex)`` of a well-formed header, else ``None``."""
    match = _MERCHANT_SIGNATURE.fullmatch(header.strip())
    return (int(match.group(1)), match.group(2).lower()) if match else None


def verify_merchant_signature(
    secret: str, header: str, body: bytes, *, now_s: int, tolerance_s: int = TOLERANCE_S
) -> bool:
    parsed = parse_merchant_signature(header)
    if parsed is None or abs(now_s - parsed[0]) > tolerance_s:
        return False
    expected = merchant_signature(secret, parsed[0], body).partition(",v1=")[2]
    return hmac.compare_digest(expected, parsed[1])


# --- secrets at rest ------------------------------------------------------------------------


def _associated_data(endpoint_id: str) -> bytes:
    return canonical({"v": 1, "endpoint": endpoint_id, "purpose": "webhook_secret"})


def seal_webhook_secret(master_key: bytes, nonce: bytes, endpoint_id: str, secret: str) -> str:
    """``pws1.<master key id>.<nonce>.<ciphertext>`` of a ``whsec_…`` secret."""
    invariant(len(nonce) == NONCE_BYTES, f"the nonce is {NONCE_BYTES} random bytes")
    key = parse_secret(secret)
    sealed = AESGCM(master_key).encrypt(nonce, key, _associated_data(endpoint_id))
    parts = (master_key_id(master_key), b64url_encode(nonce), b64url_encode(sealed))
    return ".".join((_SEALED_FORMAT, *parts))


def open_webhook_secret(master_key: bytes, endpoint_id: str, sealed: str) -> str:
    """The ``whsec_…`` secret :func:`seal_webhook_secret` sealed for this endpoint."""
    parts = sealed.split(".")
    if len(parts) != 4 or parts[0] != _SEALED_FORMAT:
        raise _unseal_failed(endpoint_id, "it is not a pws1 envelope")
    if parts[1] != master_key_id(master_key):
        raise PaywardenError(
            f"the secret of {endpoint_id} is sealed under another master key",
            code="master_key_mismatch",
        )
    try:
        nonce, ciphertext = b64url_decode(parts[2]), b64url_decode(parts[3])
        key = AESGCM(master_key).decrypt(nonce, ciphertext, _associated_data(endpoint_id))
    except (ValueError, InvalidTag):
        raise _unseal_failed(endpoint_id, "altered, or moved from another endpoint") from None
    return format_secret(key)


def _unseal_failed(endpoint_id: str, why: str) -> PaywardenError:
    return PaywardenError(
        f"the webhook secret of {endpoint_id} does not open: {why}", code="key_unseal_failed"
    )
