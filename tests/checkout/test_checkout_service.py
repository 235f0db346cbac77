"""Checkout sessions through the services, on both backends: pricing, signing, completion
under a mandate, declines, approvals, cancel, expiry."""

from __future__ import annotations

from datetime import timedelta

import pytest

from commerce_support import ADDRESS, TAX_BPS, Shop, make_shop, merchant_principal
from payment_support import MASTER_KEY
from paywarden.commerce.cart import hash_payload
from paywarden.commerce.catalog import LineRequest
from paywarden.kernel.clock import FakeClock
from paywarden.kernel.errors import Conflict, NotFound, PermissionDenied
from paywarden.services import checkout, merchants, orders
from paywarden.store.unit_of_work import Store


@pytest.fixture
def shop(store: Store, clock: FakeClock) -> Shop:
    return make_shop(store, clock)


def test_a_session_is_priced_signed_and_ready(shop: Shop) -> None:
    session = shop.create(
        LineRequest("latte", 2, {"size": "large", "milk": "oat"}), LineRequest("beans", 1)
    )
    assert session.status == "ready_for_payment", session.messages
    latte = 450 + 100 + 50
    subtotal = 2 * latte + 2000
    tax = (2 * latte * TAX_BPS + 5000) // 10000 + (2000 * TAX_BPS + 5000) // 10000
    totals = dict(session.totals)
    assert totals["subtotal"] == subtotal
    assert totals["tax"] == tax
    assert totals["fulfillment"] == 0
    assert session.amount_total == totals["total"] == subtotal + tax
    assert hash_payload(session.cart) == session.cart_hash
    assert len(session.cart["salt"]) >= 32
    assert session.cart_signature is not None
    shop.run(
        lambda uow: merchants.verify_cart_signature(
            uow, shop.world.merchant, False, session.cart_hash, session.cart_signature
        )
    )


def test_each_priced_state_gets_a_new_salt_and_hash(shop: Shop) -> None:
    session = shop.create()
    again = shop.run(
        lambda uow: checkout.update(
            uow,
            shop.world.agent,
            session.id,
            items=[LineRequest("latte", 1)],
            master_key=MASTER_KEY,
        )
    )
    assert again.cart["line_items"] == session.cart["line_items"]
    assert again.cart["salt"] != session.cart["salt"]
    assert again.cart_hash != session.cart_hash


def test_completion_under_a_mandate_creates_an_order(shop: Shop) -> None:
    session = shop.create(LineRequest("beans", 2))
    done = shop.complete(session, shop.mandate())
    assert done.status == "completed", done.messages
    assert done.order_id is not None and done.payment_id is not None
    assert shop.stock("beans") == 1
    order = shop.run(lambda uow: orders.get(uow, shop.world.agent, done.order_id))
    assert order.amount_total == session.amount_total
    assert order.status == "created"
    assert shop.world.balance(shop.world.merchant) == session.amount_total


def test_a_declined_payment_releases_the_stock_and_explains(shop: Shop) -> None:
    session = shop.create(LineRequest("beans", 2))
    done = shop.complete(session, shop.mandate(max_amount=1000))
    assert done.status == "ready_for_payment"
    assert done.messages[0]["code"] == "payment_declined"
    assert "budget" in done.messages[0]["content"] or "exceed" in done.messages[0]["content"]
    assert shop.stock("beans") == 3
    assert done.order_id is None


def test_a_wrong_cart_hash_is_refused(shop: Shop) -> None:
    session = shop.create()
    with pytest.raises(Conflict) as caught:
        shop.complete(session, shop.mandate(), cart_hash="0" * 64)
    assert caught.value.code == "cart_hash_mismatch"


def test_out_of_stock_is_a_message(shop: Shop) -> None:
    session = shop.create(LineRequest("mug", 2))
    assert session.status == "not_ready_for_payment"
    assert session.messages[0]["code"] == "out_of_stock"
    assert session.messages[0]["param"] == "$.line_items[0]"


def test_delivery_needs_an_address(shop: Shop) -> None:
    session = shop.create(fulfillment={"option_id": "local_delivery"})
    assert session.status == "not_ready_for_payment"
    assert session.messages[0]["param"] == "$.fulfillment_details.address"
    fixed = shop.create(fulfillment={"option_id": "local_delivery"}, details={"address": ADDRESS})
    assert fixed.status == "ready_for_payment"
    assert dict(fixed.totals)["fulfillment"] == 300


def test_pickup_outside_opening_hours_is_refused(shop: Shop) -> None:
    # START is 09:00 UTC = 10:00 in Paris; 22:30 Paris is closed.
    late = (shop.clock.now() + timedelta(hours=12, minutes=30)).isoformat()
    session = shop.create(fulfillment={"option_id": f"pickup_{shop.store_id}", "pickup_at": late})
    assert session.status == "not_ready_for_payment"
    assert session.messages[0]["param"] == "$.fulfillment.pickup_at"


def test_others_get_404_and_only_the_agent_changes_it(shop: Shop) -> None:
    session = shop.create()
    world = shop.world
    with pytest.raises(NotFound):
        shop.run(lambda uow: checkout.get(uow, world.user, session.id))
    seen = shop.run(lambda uow: checkout.get(uow, merchant_principal(world), session.id))
    assert seen.id == session.id
    with pytest.raises(PermissionDenied):
        shop.run(lambda uow: checkout.cancel(uow, merchant_principal(world), session.id))


def test_cancel_and_expiry(shop: Shop) -> None:
    first = shop.create()
    canceled = shop.run(lambda uow: checkout.cancel(uow, shop.world.agent, first.id))
    assert canceled.status == "canceled"
    session = shop.create()
    shop.clock.advance(checkout.SESSION_TTL + timedelta(seconds=1))
    assert shop.run(lambda uow: checkout.get(uow, shop.world.agent, session.id)).status == "expired"
    with pytest.raises(Conflict):
        shop.complete(session, shop.mandate())
    assert shop.run(checkout.expire_due) == 1
    assert shop.run(checkout.expire_due) == 0


def test_the_default_pickup_time_stays_valid_until_it_passes(shop: Shop) -> None:
    """With no pickup time asked, the earliest one is offered (10:15 Paris for 10:00 plus
    five minutes' preparation); completing twelve minutes later still pays for it."""
    session = shop.create()
    assert session.fulfillment is not None
    assert session.fulfillment["pickup_at"] == "2026-11-29T09:15:00.000Z"
    shop.clock.advance(timedelta(minutes=12))
    done = shop.complete(session, shop.mandate())
    assert done.status == "completed", done.messages
    shop.clock.advance(timedelta(minutes=10))
    late = shop.create()
    shop.clock.advance(timedelta(minutes=20))  # past the pickup time, not the session's end
    again = shop.complete(late, shop.mandate())
    assert again.status == "not_ready_for_payment"
    assert again.messages[0]["param"] == "$.fulfillment.pickup_at"
    assert again.payment_id is None and again.cart_hash != late.cart_hash
