"""Refunds never exceed what was captured, whatever the sequence of requests (a property
test), and go back to the wallet that paid."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commerce_support import Shop, make_shop, merchant_principal
from paywarden.commerce.catalog import LineRequest
from paywarden.kernel.clock import FakeClock
from paywarden.kernel.errors import InvalidRequest, Unprocessable
from paywarden.services import orders
from paywarden.store.unit_of_work import Store


@pytest.fixture
def shop(store: Store, clock: FakeClock) -> Shop:
    return make_shop(store, clock, funded=10_000_000)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(requests=st.lists(st.none() | st.integers(min_value=-5, max_value=3000), max_size=6))
def test_refunds_never_exceed_the_capture(shop: Shop, requests: list[int | None]) -> None:
    done = shop.complete(shop.create(LineRequest("latte", 3)), shop.mandate(10_000_000))
    order_id = str(done.order_id)
    merchant = merchant_principal(shop.world)
    wallet_before = shop.world.balance(str(shop.world.user.id))
    refunded = 0
    for amount in requests:
        remaining = done.amount_total - refunded
        try:
            made = shop.run(
                lambda uow, a=amount: orders.refund(uow, merchant, order_id, amount=a, reason="r")
            )
        except Unprocessable as error:
            assert error.code == "refund_exceeds_captured"
            assert remaining == 0 or (amount is not None and amount > remaining)
            continue
        except InvalidRequest:
            assert amount is not None and amount <= 0
            continue
        assert made.amount == (remaining if amount is None else amount)
        assert 0 < made.amount <= remaining
        refunded += made.amount
    order = shop.run(lambda uow: orders.get(uow, merchant, order_id))
    assert order.amount_refunded == refunded <= order.amount_total
    assert sum(r.amount for r in order.refunds) == refunded
    assert shop.world.balance(str(shop.world.user.id)) == wallet_before + refunded
