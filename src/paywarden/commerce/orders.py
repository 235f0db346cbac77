"""The order lifecycle, as a table of allowed transitions.

::

    created → confirmed → preparing → ready_for_pickup   (pickup)         → completed
                                    → out_for_delivery   (local delivery) → completed
                                    → shipped            (shipping)       → completed
                                    → completed          (digital)
    any status before completed → canceled

The step after ``preparing`` must match the order's fulfillment type, so a shipped order
was really meant to ship. ``completed`` and ``canceled`` are final. Money is not moved
here: canceling a paid order refunds what remains, in the orders service.
"""

from __future__ import annotations

from enum import StrEnum

from paywarden.kernel.errors import Conflict

__all__ = ["FINAL", "OrderStatus", "allowed_next", "check_transition", "refundable"]


class OrderStatus(StrEnum):
    CREATED = "created"
    CONFIRMED = "confirmed"
    PREPARING = "preparing"
    READY_FOR_PICKUP = "ready_for_pickup"
    OUT_FOR_DELIVERY = "out_for_delivery"
    SHIPPED = "shipped"
    COMPLETED = "completed"
    CANCELED = "canceled"


FINAL = frozenset({OrderStatus.COMPLETED, OrderStatus.CANCELED})

# The status after ``preparing``, per fulfillment type.
_HANDOVER = {
    "pickup": OrderStatus.READY_FOR_PICKUP,
    "local_delivery": OrderStatus.OUT_FOR_DELIVERY,
    "shipping": OrderStatus.SHIPPED,
    "digital": OrderStatus.COMPLETED,
}


def allowed_next(status: OrderStatus, fulfillment_type: str | None) -> frozenset[OrderStatus]:
    """The statuses an order may move to next."""
    if status in FINAL:
        return frozenset()
    handover = _HANDOVER.get(fulfillment_type or "digital", OrderStatus.COMPLETED)
    following = {
        OrderStatus.CREATED: {OrderStatus.CONFIRMED},
        OrderStatus.CONFIRMED: {OrderStatus.PREPARING},
        OrderStatus.PREPARING: {handover},
        OrderStatus.READY_FOR_PICKUP: {OrderStatus.COMPLETED},
        OrderStatus.OUT_FOR_DELIVERY: {OrderStatus.COMPLETED},
        OrderStatus.SHIPPED: {OrderStatus.COMPLETED},
    }[status]
    return frozenset(following | {OrderStatus.CANCELED})


def check_transition(
    status: OrderStatus, target: OrderStatus, fulfillment_type: str | None
) -> None:
    """Refuse (409 ``invalid_order_transition``) a move the lifecycle does not allow."""
    allowed = allowed_next(status, fulfillment_type)
    if target not in allowed:
        names = ", ".join(sorted(allowed)) or "none: the order is final"
        raise Conflict(
            f"an order that is {status} cannot become {target} (allowed: {names})",
            code="invalid_order_transition",
            param="$.status",
        )


def refundable(captured: int, refunded: int) -> int:
    """What may still be refunded: never more than was captured."""
    return max(0, captured - refunded)
