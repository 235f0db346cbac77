"""Cart binding: the one hash every part computes over a priced cart.

The merchant signs, and the user approves, exactly this: SHA-256 (hex) over the RFC 8785
canonical JSON of ::

    {"merchant", "currency",
     "line_items": [{"product", "variant", "options": {name: value}, "quantity", "unit_amount"}],
     "totals": {type: amount}, "fulfillment": {...} | null, "expires_at", "salt"}

Options and totals are JSON objects, so their order never matters (RFC 8785 sorts keys);
line items keep their order. The salt (at least 128 bits, hex) makes every priced state's
hash unique and unguessable, so a hash seen once says nothing about another cart. Trust,
commerce and devices all call :func:`cart_hash`; a checkout's wire form carries the exact
payload as ``cart``, so anyone can recompute the hash from it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from paywarden.kernel.clock import rfc3339
from paywarden.kernel.invariant import invariant
from paywarden.trust.canonical import canonical

__all__ = [
    "SALT_BYTES_MIN",
    "Cart",
    "CartLine",
    "cart_from_payload",
    "cart_hash",
    "cart_payload",
    "hash_payload",
]

SALT_BYTES_MIN = 16
_SALT_RE = re.compile(r"^[0-9a-f]+$")


@dataclass(frozen=True, slots=True)
class CartLine:
    product: str
    quantity: int
    unit_amount: int
    options: tuple[tuple[str, str], ...] = ()
    variant: str | None = None

    def __post_init__(self) -> None:
        invariant(self.quantity >= 1, "a cart line holds at least one unit")
        invariant(self.unit_amount >= 0, "a unit amount is not negative")
        names = [name for name, _ in self.options]
        invariant(len(names) == len(set(names)), "an option is chosen once per line")


@dataclass(frozen=True, slots=True)
class Cart:
    merchant: str
    currency: str
    lines: tuple[CartLine, ...]
    totals: tuple[tuple[str, int], ...]
    expires_at: datetime
    salt: str
    fulfillment: Mapping[str, Any] | None = field(default=None, hash=False)

    def __post_init__(self) -> None:
        invariant(bool(self.lines), "a cart holds at least one line")
        invariant(
            len(self.salt) >= 2 * SALT_BYTES_MIN and bool(_SALT_RE.match(self.salt)),
            f"a cart salt is at least {SALT_BYTES_MIN} bytes, in lowercase hex",
        )
        kinds = [kind for kind, _ in self.totals]
        invariant(len(kinds) == len(set(kinds)), "each total type appears once")


def cart_payload(cart: Cart) -> dict[str, Any]:
    """The JSON object that is hashed (and shown as a checkout's ``cart``)."""
    return {
        "merchant": cart.merchant,
        "currency": cart.currency,
        "line_items": [
            {
                "product": line.product,
                "variant": line.variant,
                "options": dict(line.options),
                "quantity": line.quantity,
                "unit_amount": line.unit_amount,
            }
            for line in cart.lines
        ],
        "totals": dict(cart.totals),
        "fulfillment": dict(cart.fulfillment) if cart.fulfillment is not None else None,
        "expires_at": rfc3339(cart.expires_at),
        "salt": cart.salt,
    }


def hash_payload(payload: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the RFC 8785 canonical JSON of a cart payload."""
    return hashlib.sha256(canonical(dict(payload))).hexdigest()


def cart_hash(cart: Cart) -> str:
    """The cart binding hash; see the module docstring."""
    return hash_payload(cart_payload(cart))


def cart_from_payload(payload: Mapping[str, Any]) -> Cart:
    """The cart a payload describes (the inverse of :func:`cart_payload`)."""
    return Cart(
        merchant=str(payload["merchant"]),
        currency=str(payload["currency"]),
        lines=tuple(
            CartLine(
                product=str(line["product"]),
                variant=line.get("variant"),
                options=tuple(sorted((str(k), str(v)) for k, v in line["options"].items())),
                quantity=int(line["quantity"]),
                unit_amount=int(line["unit_amount"]),
            )
            for line in payload["line_items"]
        ),
        totals=tuple(sorted((str(k), int(v)) for k, v in payload["totals"].items())),
        fulfillment=payload.get("fulfillment"),
        expires_at=datetime.fromisoformat(str(payload["expires_at"])),
        salt=str(payload["salt"]),
    )
