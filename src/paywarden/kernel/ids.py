"""Prefixed, sortable ids: ``acct_01JD6Z…``.

Underneath is a ULID: 48 bits of milliseconds since the epoch, then 80 random bits, in
Crockford base32 (26 characters). Ids sort by creation time, which gives cursor pagination
a stable order for free. Generating one needs the clock and randomness, so this module only
formats and checks; the generator lives in ``paywarden.adapters.ids``.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["PREFIXES", "format_id", "id_prefix", "is_id"]

# Every prefix the platform issues, and what it names. Keep docs/api.md in step.
PREFIXES: Final[dict[str, str]] = {
    "usr": "user",
    "mer": "merchant",
    "plt": "agent platform",
    "agt": "agent",
    "key": "api key",
    "mnd": "mandate",
    "apr": "approval",
    "prd": "product",
    "cs": "checkout session",
    "ord": "order",
    "pay": "payment",
    "hold": "hold",
    "ref": "refund",
    "txf": "transfer",
    "acct": "account",
    "evt": "event",
    "whe": "webhook endpoint",
    "dev": "device",
    "tap": "tap",
    "top": "top-up",
    "req": "request",
    "sto": "merchant store (a shop location)",
    "var": "product variant",
    "imp": "catalog import",
    "po": "payout",
    "whd": "webhook delivery",
    "trm": "terminal or gate",
    "qr": "QR payment request",
    "dtk": "device payment token",
    "cnf": "device confirmation",
    "ent": "gate entry",
    "dlg": "delegated payment token",
    "rfr": "refund request",
    "ba": "payout bank account",
    "atk": "ACP agent bearer token",
    "psk": "passkey",
}

_CROCKFORD: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_DIGIT_PAIRS: Final = tuple(high + low for high in _CROCKFORD for low in _CROCKFORD)
_SHIFTS: Final = tuple(range(120, -1, -10))
_ULID_RE: Final = re.compile(r"^[0-7][0-9A-HJKMNP-TV-Z]{25}$")
_TIMESTAMP_MS_MAX: Final = 2**48 - 1


def format_id(prefix: str, timestamp_ms: int, randomness: bytes) -> str:
    """Build ``prefix_ULID`` from a millisecond timestamp and 10 random bytes."""
    if prefix not in PREFIXES:
        raise ValueError(f"unknown id prefix {prefix!r}")
    if not 0 <= timestamp_ms <= _TIMESTAMP_MS_MAX:
        raise ValueError("timestamp_ms out of the 48-bit range")
    if len(randomness) != 10:
        raise ValueError("randomness must be exactly 10 bytes")
    value = (timestamp_ms << 80) | int.from_bytes(randomness, "big")
    # 26 base32 digits (130 bits, the first one 0 to 7), two digits at a time.
    return prefix + "_" + "".join([_DIGIT_PAIRS[(value >> shift) & 0x3FF] for shift in _SHIFTS])


def id_prefix(value: str) -> str | None:
    """The prefix of a well-formed id, or ``None``."""
    prefix, sep, body = value.partition("_")
    if not sep or prefix not in PREFIXES or not _ULID_RE.match(body):
        return None
    return prefix


def is_id(value: object, prefix: str) -> bool:
    """Whether ``value`` is a well-formed id with the given prefix."""
    return isinstance(value, str) and id_prefix(value) == prefix
