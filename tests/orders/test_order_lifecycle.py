"""The order lifecycle, table-tested: every (status, target, fulfillment) triple against the
table in the docs; and the service refuses what the table forbids (409) and refunds what
remains when a paid order is canceled."""

from __future__ import annotations

import itertools

import pytest

from commerce_support import Shop, make_shop, merchant_principal
from paywarden.commerce.catalog import LineRequest
from paywarden.commerce.orders import OrderStatus, allowed_next, check_transition
from paywarden.kernel.clock import FakeClock
from paywarden.kernel.errors import Conflict, NotFound, PermissionDenied
from paywarden.services import orders
from paywarden.store.unit_of_work import Store

C, CF, PR, RP, OD, SH, DONE, X = (
    "created",
    "confirmed",
    "preparing",
    "ready_for_pickup",
    "out_for_delivery",
    "shipped",
    "completed",
    "canceled",
)
HANDOVER = {"pickup": RP, "local_delivery": OD, "shipping": SH, "digital": DONE}
FULFILLMENTS = sorted(HANDOVER)


def expected(status: str, target: str, fulfillment: str) -> bool:
    """The lifecycle, written out independently of the code under test."""
    if status in (DONE, X):
        return False
    if target == X:
        return True
    table = {
        C: {CF},
        CF: {PR},
        PR: {HANDOVER[fulfillment]},
        RP: {DONE},
        OD: {DONE},
        SH: {DONE},
    }
    return target in table[status]


@pytest.mark.parametrize(
    "status,target,fulfillment",
    list(
        itertools.product(
            [s.value for s in OrderStatus], [s.value for s in OrderStatus], FULFILLMENTS
        )
    ),
)
def test_every_transition(status: str, target: str, fulfillment: str) -> None:
    allowed = expected(status, target, fulfillment)
    assert (OrderStatus(target) in allowed_next(OrderStatus(status), fulfillment)) is allowed
    if allowed:
        check_transition(OrderStatus(status), OrderStatus(target), fulfillment)
    else:
        with pytest.raises(Conflict) as caught:
            check_transition(OrderStatus(status), OrderStatus(target), fulfillment)
        assert caught.value.code == "invalid_order_transition"


@pytest.fixture
def shop(store: Store, clock: FakeClock) -> Shop:
    return make_shop(store, clock)


def _order(shop: Shop) -> str:
    done = shop.complete(shop.create(LineRequest("beans", 1)), shop.mandate())
    assert done.order_id is not None
    return done.order_id


def test_the_merchant_walks_a_pickup_order_to_completed(shop: Shop) -> None:
    order_id = _order(shop)
    merchant = merchant_principal(shop.world)
    for status in (CF, PR, RP, DONE):
        record = shop.run(lambda uow, s=status: orders.update_status(uow, merchant, order_id, s))
        assert record.status == status
    with pytest.raises(Conflict):
        shop.run(lambda uow: orders.update_status(uow, merchant, order_id, X))


def test_only_the_merchant_moves_an_order(shop: Shop) -> None:
    order_id = _order(shop)
    with pytest.raises((NotFound, PermissionDenied)):
        shop.run(lambda uow: orders.update_status(uow, shop.world.agent, order_id, CF))
    with pytest.raises((NotFound, PermissionDenied)):
        shop.run(lambda uow: orders.update_status(uow, shop.world.user, order_id, CF))


def test_canceling_a_paid_order_refunds_what_remains(shop: Shop) -> None:
    order_id = _order(shop)
    merchant = merchant_principal(shop.world)
    paid_before = shop.world.balance(str(shop.world.user.id))
    shop.run(lambda uow: orders.refund(uow, merchant, order_id, amount=500, reason="late"))
    canceled = shop.run(lambda uow: orders.update_status(uow, merchant, order_id, X))
    assert canceled.status == X
    assert canceled.amount_refunded == canceled.amount_total
    assert [r.reason for r in canceled.refunds] == ["late", "order_canceled"]
    assert shop.world.balance(str(shop.world.user.id)) == paid_before + canceled.amount_total
    assert shop.world.balance(shop.world.merchant) == 0
