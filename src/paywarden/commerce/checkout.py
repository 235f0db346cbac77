"""Checkout sessions as pure rules: statuses, totals, fulfillment choices, messages.

The shapes mirror ACP (2026-04-17) so the ACP face is a thin mapping:

- statuses: ``not_ready_for_payment`` (something blocks payment: a message of type
  ``error`` says what), ``ready_for_payment``, ``pending_approval`` (the payment awaits the
  user's approval), ``completed``, ``canceled``, ``expired``;
- totals, in display order: ``items_base_amount``, ``discount``, ``subtotal``,
  ``fulfillment`` (when one is selected), ``tax``, ``fee`` (when the merchant charges one),
  ``total``; each line item carries its own ``items_base_amount``, ``discount``,
  ``subtotal``, ``tax``, ``total``;
- fulfillment option types ``pickup``, ``local_delivery``, ``shipping``, ``digital``;
- messages ``{type: error|warning|info, code, content, param}`` with ``param`` a JSON path.

Tax is computed per line (``subtotal * tax_bps / 10000``, rounded half up) and summed;
fulfillment is not taxed. Everything is integer minor units.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from paywarden.kernel.clock import rfc3339
from paywarden.kernel.invariant import invariant

__all__ = [
    "ACTIVE",
    "BPS_DENOMINATOR",
    "NON_BLOCKING",
    "TOTAL_TITLES",
    "FulfillmentOption",
    "FulfillmentType",
    "LineTotals",
    "Message",
    "Status",
    "Totals",
    "compute_totals",
    "error",
    "needs_address",
    "payable_status",
    "selected_fulfillment",
    "tax_on",
    "warning",
]

BPS_DENOMINATOR = 10_000


class Status(StrEnum):
    NOT_READY_FOR_PAYMENT = "not_ready_for_payment"
    READY_FOR_PAYMENT = "ready_for_payment"
    PENDING_APPROVAL = "pending_approval"
    COMPLETED = "completed"
    CANCELED = "canceled"
    EXPIRED = "expired"


# Statuses in which the agent may still change, complete or cancel the session.
ACTIVE = frozenset({Status.NOT_READY_FOR_PAYMENT, Status.READY_FOR_PAYMENT})


class FulfillmentType(StrEnum):
    PICKUP = "pickup"
    LOCAL_DELIVERY = "local_delivery"
    SHIPPING = "shipping"
    DIGITAL = "digital"


TOTAL_TITLES = {
    "items_base_amount": "Item(s) total",
    "discount": "Discount",
    "subtotal": "Subtotal",
    "fulfillment": "Fulfillment",
    "tax": "Tax",
    "fee": "Fee",
    "total": "Total",
    "amount_refunded": "Refunded",
}


@dataclass(frozen=True, slots=True)
class Message:
    type: str  # error | warning | info
    code: str
    content: str
    param: str | None = None
    resolution: str = "recoverable"

    def to_json(self) -> dict[str, str]:
        body = {"type": self.type, "code": self.code, "content_type": "plain"}
        body["content"] = self.content
        body["resolution"] = self.resolution
        if self.param is not None:
            body["param"] = self.param
        return body


def error(
    code: str, content: str, param: str | None = None, resolution: str = "recoverable"
) -> Message:
    return Message("error", code, content, param, resolution)


def warning(code: str, content: str, param: str | None = None) -> Message:
    return Message("warning", code, content, param)


@dataclass(frozen=True, slots=True)
class LineTotals:
    items_base_amount: int
    discount: int
    subtotal: int
    tax: int
    total: int

    def as_pairs(self) -> tuple[tuple[str, int], ...]:
        return (
            ("items_base_amount", self.items_base_amount),
            ("discount", self.discount),
            ("subtotal", self.subtotal),
            ("tax", self.tax),
            ("total", self.total),
        )


@dataclass(frozen=True, slots=True)
class Totals:
    lines: tuple[LineTotals, ...]
    items_base_amount: int
    discount: int
    subtotal: int
    fulfillment: int | None
    tax: int
    fee: int
    total: int

    def as_pairs(self) -> tuple[tuple[str, int], ...]:
        pairs: list[tuple[str, int]] = [
            ("items_base_amount", self.items_base_amount),
            ("discount", self.discount),
            ("subtotal", self.subtotal),
        ]
        if self.fulfillment is not None:
            pairs.append(("fulfillment", self.fulfillment))
        pairs.append(("tax", self.tax))
        if self.fee:
            pairs.append(("fee", self.fee))
        pairs.append(("total", self.total))
        return tuple(pairs)


def tax_on(amount: int, tax_bps: int) -> int:
    """``amount * tax_bps / 10000``, rounded half up (amounts are never negative)."""
    invariant(amount >= 0 and tax_bps >= 0, "tax is computed on non-negative amounts and rates")
    return (amount * tax_bps + BPS_DENOMINATOR // 2) // BPS_DENOMINATOR


def compute_totals(
    lines: Sequence[tuple[int, int]],
    *,
    fulfillment: int | None,
    tax_bps: int,
    fee: int = 0,
) -> Totals:
    """Totals of ``(unit_amount, quantity)`` lines, the selected fulfillment's amount (None
    when none is selected) and the merchant's tax rate and buyer fee."""
    invariant(fee >= 0 and (fulfillment is None or fulfillment >= 0), "charges are not negative")
    line_totals = []
    for unit_amount, quantity in lines:
        invariant(unit_amount >= 0 and quantity >= 1, "a line has a price and a quantity")
        base = unit_amount * quantity
        tax = tax_on(base, tax_bps)
        line_totals.append(LineTotals(base, 0, base, tax, base + tax))
    base = sum(line.items_base_amount for line in line_totals)
    discount = sum(line.discount for line in line_totals)
    subtotal = sum(line.subtotal for line in line_totals)
    tax = sum(line.tax for line in line_totals)
    total = subtotal + (fulfillment or 0) + tax + fee
    invariant(
        total == sum(line.total for line in line_totals) + (fulfillment or 0) + fee, "totals add up"
    )
    return Totals(tuple(line_totals), base, discount, subtotal, fulfillment, tax, fee, total)


# Error messages that report what happened without blocking another try.
NON_BLOCKING = frozenset({"payment_declined"})


def payable_status(messages: Sequence[Message]) -> Status:
    """``not_ready_for_payment`` while a blocking error message stands, else
    ``ready_for_payment``."""
    if any(m.type == "error" and m.code not in NON_BLOCKING for m in messages):
        return Status.NOT_READY_FOR_PAYMENT
    return Status.READY_FOR_PAYMENT


@dataclass(frozen=True, slots=True)
class FulfillmentOption:
    """One way the merchant hands the order over, with its price (minor units)."""

    id: str
    type: FulfillmentType
    title: str
    amount: int
    description: str = ""
    store_id: str | None = None  # pickup: the shop location (sto_)
    location: str = ""  # pickup: the shop's name and address
    preparation_s: int = 0  # pickup: the earliest ready time is now + this

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "type": self.type.value,
            "title": self.title,
            "amount": self.amount,
            "description": self.description,
        }
        if self.type is FulfillmentType.PICKUP:
            body["store"] = self.store_id
            body["location"] = self.location
        return body


def needs_address(option: FulfillmentOption) -> bool:
    return option.type in (FulfillmentType.LOCAL_DELIVERY, FulfillmentType.SHIPPING)


def selected_fulfillment(option: FulfillmentOption, pickup_at: datetime | None) -> dict[str, Any]:
    """The chosen fulfillment as it enters the cart hash: type, option, price, time."""
    return {
        "type": option.type.value,
        "option_id": option.id,
        "amount": option.amount,
        "store": option.store_id,
        "pickup_at": rfc3339(pickup_at) if pickup_at is not None else None,
    }
