"""A cart tampered after signing is never charged, and a cart swapped under an existing
approval is rejected: on both backends, through the services."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from commerce_support import Shop, make_shop
from payment_support import ISSUER, MASTER_KEY
from paywarden.commerce.cart import cart_from_payload, cart_hash, hash_payload
from paywarden.commerce.catalog import LineRequest
from paywarden.kernel.clock import FakeClock
from paywarden.kernel.errors import Conflict, InvalidRequest
from paywarden.services import approvals, checkout
from paywarden.services.checkout import CheckoutRecord
from paywarden.store.tables_approvals import approvals as approvals_table
from paywarden.store.tables_checkout import checkout_sessions
from paywarden.store.tables_mandates import payments
from paywarden.store.unit_of_work import Store, UnitOfWork

THRESHOLD = {"type": "paywarden.confirmation_threshold", "currency": "usd", "above": 1000}


@pytest.fixture
def shop(store: Store, clock: FakeClock) -> Shop:
    return make_shop(store, clock)


def _bump_line(field: str) -> Callable[[dict[str, Any]], None]:
    def change(cart: dict[str, Any]) -> None:
        cart["line_items"][0][field] += 1

    return change


def _total(cart: dict[str, Any]) -> None:
    cart["totals"]["total"] -= 1


def _currency(cart: dict[str, Any]) -> None:
    cart["currency"] = "eur"


def _merchant(cart: dict[str, Any]) -> None:
    cart["merchant"] = "mer_01JD6Z0000000000000000000A"


TAMPERS: dict[str, Callable[[dict[str, Any]], None]] = {
    "price": _bump_line("unit_amount"),
    "quantity": _bump_line("quantity"),
    "total": _total,
    "currency": _currency,
    "merchant": _merchant,
}


def _balances(shop: Shop) -> tuple[int, int]:
    return shop.world.balance(str(shop.world.user.id)), shop.world.balance(shop.world.merchant)


def test_a_cart_tampered_before_it_is_shown_is_refused(shop: Shop) -> None:
    """The agent (or anyone between the merchant and the user) changes the cart it shows,
    in any of price, quantity, total, currency, merchant: its hash is not the session's."""
    mandate = shop.mandate()
    for field, tamper in TAMPERS.items():
        session = shop.create(LineRequest("beans", 1))
        shown = copy.deepcopy(session.cart)
        tamper(shown)
        assert hash_payload(shown) == cart_hash(cart_from_payload(shown))
        before = _balances(shop)
        with pytest.raises(Conflict) as caught:
            shop.complete(session, mandate, cart_hash=hash_payload(shown))
        assert caught.value.code == "cart_hash_mismatch", field
        assert _balances(shop) == before


def _rewrite(shop: Shop, session_id: str, **values: Any) -> None:
    def write(uow: UnitOfWork) -> None:
        s = checkout_sessions
        uow.execute(sa.update(s).where(s.c.id == session_id).values(**values))

    shop.run(write)


@pytest.mark.parametrize("rehash", [False, True], ids=["same-hash", "rehashed"])
def test_a_stored_cart_tampered_after_signing_is_refused(shop: Shop, rehash: bool) -> None:
    """Someone with write access to the database changes the stored cart; rehashing it too
    still fails, because the merchant's signature covers the old hash."""
    mandate = shop.mandate()
    for field, tamper in TAMPERS.items():
        session = shop.create(LineRequest("beans", 1))
        cart = copy.deepcopy(session.cart)
        tamper(cart)
        new_hash = hash_payload(cart) if rehash else session.cart_hash
        _rewrite(shop, session.id, cart=cart, cart_hash=new_hash)
        before = _balances(shop)
        with pytest.raises((Conflict, InvalidRequest)) as caught:
            shop.complete(session, mandate, cart_hash=new_hash)
        # price and quantity are only in the cart: its signature catches a rehashed one;
        # total, currency and merchant also disagree with the session's own columns.
        expected = (
            "cart_signature_invalid"
            if rehash and field in ("price", "quantity")
            else "cart_tampered"
        )
        assert caught.value.code == expected, field
        assert _balances(shop) == before


@pytest.mark.parametrize(
    "column,value",
    [("amount_total", 1), ("currency", "eur"), ("merchant_id", None)],
    ids=["total", "currency", "merchant"],
)
def test_stored_columns_that_disagree_with_the_signed_cart_are_refused(
    shop: Shop, column: str, value: Any
) -> None:
    session = shop.create(LineRequest("beans", 1))
    _rewrite(
        shop, session.id, **{column: value if value is not None else shop.world.other_merchant}
    )
    before = _balances(shop)
    with pytest.raises(Conflict) as caught:
        shop.complete(session, shop.mandate())
    assert caught.value.code == "cart_tampered"
    assert _balances(shop) == before


def _pending(shop: Shop) -> tuple[CheckoutRecord, str]:
    session = shop.create(LineRequest("beans", 1))
    mandate = shop.mandate(50_000, THRESHOLD)
    pending = shop.complete(session, mandate)
    assert pending.status == "pending_approval", pending.messages
    assert pending.approval_id is not None
    return pending, pending.approval_id


def _approve(shop: Shop, approval_id: str) -> approvals.ApprovalRecord:
    def work(uow: UnitOfWork) -> approvals.ApprovalRecord:
        record = approvals.get(uow, shop.world.user, approval_id)
        return approvals.approve(
            uow,
            shop.world.user,
            approval_id,
            expected_binding_hash=record.binding_hash,
            reauthenticated=True,
            master_key=MASTER_KEY,
            issuer=ISSUER,
        )

    result: approvals.ApprovalRecord = shop.run(work)
    return result


def test_the_approval_is_bound_to_the_cart_hash(shop: Shop) -> None:
    pending, approval_id = _pending(shop)
    approval = shop.run(lambda uow: approvals.get(uow, shop.world.user, approval_id))
    assert approval.cart_hash == pending.cart_hash
    assert approval.binding_hash == approvals.binding_hash(
        approval.amount,
        approval.currency,
        approval.merchant_id,
        pending.cart_hash,
        approval.payment_id,
    )
    other = approvals.binding_hash(
        approval.amount, approval.currency, approval.merchant_id, "0" * 64, approval.payment_id
    )
    assert other != approval.binding_hash


def test_a_cart_swapped_under_the_session_voids_the_approval(shop: Shop) -> None:
    """The session's cart is replaced while the user is asked: approving moves nothing."""
    pending, approval_id = _pending(shop)
    swapped = dict(pending.cart, salt="ab" * 16)
    _rewrite(shop, pending.id, cart=swapped, cart_hash=hash_payload(swapped))
    before = _balances(shop)
    ended = _approve(shop, approval_id)
    assert ended.status == "voided"
    assert _balances(shop) == before
    assert shop.stock("beans") == 3  # the stock held for it came back


def test_a_payment_swapped_to_another_cart_voids_the_approval(shop: Shop) -> None:
    pending, approval_id = _pending(shop)

    def swap(uow: UnitOfWork) -> None:
        uow.execute(
            sa.update(payments)
            .where(payments.c.id == pending.payment_id)
            .values(cart_hash="1" * 64)
        )

    shop.run(swap)
    before = _balances(shop)
    assert _approve(shop, approval_id).status == "voided"
    assert _balances(shop) == before


def test_completing_a_pending_session_with_another_cart_hash_is_refused(shop: Shop) -> None:
    pending, _ = _pending(shop)
    with pytest.raises(Conflict) as caught:
        shop.complete(pending, str(pending.mandate_id), cart_hash="2" * 64)
    assert caught.value.code == "cart_hash_mismatch"


def test_the_approved_cart_completes_with_an_order(shop: Shop) -> None:
    pending, approval_id = _pending(shop)
    assert _approve(shop, approval_id).status == "approved"
    done = shop.run(lambda uow: checkout.get(uow, shop.world.agent, pending.id))
    assert done.status == "completed" and done.order_id is not None
    status = shop.run(
        lambda uow: uow.execute(
            sa.select(approvals_table.c.status).where(approvals_table.c.id == approval_id)
        ).scalar_one()
    )
    assert status == "approved"


def test_an_expired_approval_releases_the_stock(shop: Shop) -> None:
    pending, _ = _pending(shop)
    assert shop.stock("beans") == 2
    shop.clock.advance(timedelta(seconds=approvals.ApprovalPolicy().ttl_s + 1))
    assert shop.run(approvals.expire_due) == 1
    assert shop.stock("beans") == 3
    after = shop.run(lambda uow: checkout.get(uow, shop.world.agent, pending.id))
    assert after.status == "ready_for_payment"
    assert after.messages[0]["code"] == "payment_declined"
    assert "approval_expired" in after.messages[0]["content"]


def test_a_session_total_changed_under_the_approval_voids_it(shop: Shop) -> None:
    pending, approval_id = _pending(shop)
    _rewrite(shop, pending.id, amount_total=pending.amount_total + 1)
    before = _balances(shop)
    assert _approve(shop, approval_id).status == "voided"
    assert _balances(shop) == before
