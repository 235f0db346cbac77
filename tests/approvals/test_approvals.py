"""Step-up approvals through the services, on SQLite and PostgreSQL, with a fake clock.

A payment above the mandate's confirmation threshold waits for the user; the user's
approval makes the platform complete it (once, under the mandate lock, rechecking every
hard limit), a decline or an expiry declines it, and nothing moves unless it is approved.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from payment_support import ISSUER, MASTER_KEY, NO_RISK, World, budget, make_world
from paywarden.kernel.clock import FakeClock
from paywarden.kernel.errors import Conflict, NotFound, PaywardenError, PermissionDenied
from paywarden.kernel.principals import Principal
from paywarden.services import approvals, mandates, payments, receipts
from paywarden.services.approvals import ApprovalPolicy, ApprovalRecord
from paywarden.services.payments import PaymentRecord
from paywarden.store import schema
from paywarden.store.tables_mandates import mandate_usage
from paywarden.store.tables_mandates import payments as payments_table
from paywarden.store.unit_of_work import Store, UnitOfWork
from paywarden.trust.receipts import ReceiptStatus

THRESHOLD = 1_000
TTL = timedelta(seconds=ApprovalPolicy().ttl_s)
REAUTH_ABOVE = ApprovalPolicy().reauth_above


@pytest.fixture
def world(store: Store, clock: FakeClock) -> World:
    return make_world(store, clock)


def threshold(above: int = THRESHOLD) -> dict[str, Any]:
    return {"type": "paywarden.confirmation_threshold", "currency": "usd", "above": above}


def pending(world: World, amount: int = 2_500, *, mandate_id: str | None = None) -> PaymentRecord:
    mandate_id = mandate_id or world.mandate([budget(), threshold()])
    record = world.pay(mandate_id, amount, cart_hash="sha256-of-the-cart")
    assert record.status == "requires_confirmation", record
    assert record.approval_id is not None
    return record


def get(world: World, approval_id: str, who: Principal | None = None) -> ApprovalRecord:
    principal = who or world.user
    return world.store.run(lambda uow: approvals.get(uow, principal, approval_id), read_only=True)


def approve(
    world: World,
    approval_id: str,
    binding: str | None = None,
    *,
    reauthenticated: bool = False,
    who: Principal | None = None,
) -> ApprovalRecord:
    expected = binding or get(world, approval_id).binding_hash
    return world.run(
        lambda uow: approvals.approve(
            uow,
            who or world.user,
            approval_id,
            expected_binding_hash=expected,
            reauthenticated=reauthenticated,
            master_key=MASTER_KEY,
            issuer=ISSUER,
            risk=NO_RISK,
        )
    )


def payment(world: World, payment_id: str) -> PaymentRecord:
    return world.store.run(
        lambda uow: payments.get_payment(uow, world.user, payment_id), read_only=True
    )


def captures(world: World) -> int:
    t = schema.transfers
    return int(
        world.store.run(
            lambda uow: uow.execute(
                select(func.count()).select_from(t).where(t.c.kind == "capture")
            ).scalar_one(),
            read_only=True,
        )
    )


def events(world: World, prefix: str) -> list[str]:
    e = schema.events
    rows = world.store.run(
        lambda uow: uow.execute(
            select(e.c.type).where(e.c.type.like(f"{prefix}%")).order_by(e.c.created_at, e.c.id)
        ).all(),
        read_only=True,
    )
    return [row.type for row in rows]


def untouched(world: World) -> None:
    assert world.balance(str(world.user.id)) == 100_000
    assert world.balance(world.merchant) == 0
    assert captures(world) == 0


def test_above_the_threshold_the_payment_waits_with_an_approval(world: World) -> None:
    record = pending(world)
    assert record.reasons == ("above_confirmation_threshold",)
    wired = payments.wire_payment(record)
    assert wired["approval"] == record.approval_id
    assert wired["approval_url"] == f"/approvals/{record.approval_id}"
    assert payment(world, record.id).approval_id == record.approval_id
    approval = get(world, str(record.approval_id))
    assert (approval.status, approval.payment_id, approval.amount) == ("pending", record.id, 2_500)
    assert approval.binding_hash == approvals.binding_hash(
        2_500, "usd", world.merchant, "sha256-of-the-cart", record.id
    )
    assert approval.reasons == ("above_confirmation_threshold",)
    assert approval.expires_at == approval.created_at + TTL
    assert not approval.reauth_required
    assert events(world, "approval.") == ["approval.requested"]
    assert events(world, "payment.") == ["payment.requires_confirmation"]
    untouched(world)


def test_approving_completes_the_payment_once(world: World) -> None:
    record = pending(world)
    approved = approve(world, str(record.approval_id))
    assert approved.status == "approved" and approved.decided_at is not None
    paid = payment(world, record.id)
    assert paid.status == "succeeded" and paid.reasons == ()
    assert paid.hold_id is not None and paid.transfer_id is not None
    assert world.balance(world.merchant) == 2_500
    assert world.balance(str(world.user.id)) == 100_000 - 2_500
    assert captures(world) == 1
    assert paid.receipt is not None
    receipt = world.store.run(lambda uow: receipts.verify(uow, str(paid.receipt)), read_only=True)
    assert receipt.status is ReceiptStatus.SUCCESS
    assert receipt.payment_id == record.id
    assert events(world, "payment.") == ["payment.requires_confirmation", "payment.succeeded"]
    assert events(world, "approval.") == ["approval.requested", "approval.approved"]
    view = world.run(lambda uow: mandates.get_mandate(uow, world.user, record.mandate_id))
    assert [entry.amount_left for entry in view.remaining] == [50_000 - 2_500]

    with pytest.raises(Conflict) as raised:
        approve(world, str(record.approval_id), approved.binding_hash)
    assert raised.value.code == "approval_not_pending"
    assert captures(world) == 1 and world.balance(world.merchant) == 2_500


def test_declining_moves_nothing(world: World) -> None:
    record = pending(world)
    declined = world.run(lambda uow: approvals.decline(uow, world.user, str(record.approval_id)))
    assert (declined.status, declined.reasons) == ("declined", ("declined_by_user",))
    after = payment(world, record.id)
    assert (after.status, after.reasons) == ("declined", ("declined_by_user",))
    assert events(world, "approval.") == ["approval.requested", "approval.declined"]
    assert events(world, "payment.")[-1] == "payment.declined"
    with pytest.raises(Conflict):
        approve(world, str(record.approval_id), declined.binding_hash)
    untouched(world)


def test_an_approval_expires_after_its_ttl(world: World, clock: FakeClock) -> None:
    mandate_id = world.mandate([budget(), threshold()])
    late = pending(world, mandate_id=mandate_id)
    swept = pending(world, mandate_id=mandate_id)
    binding = get(world, str(late.approval_id)).binding_hash
    clock.advance(TTL + timedelta(seconds=1))
    assert get(world, str(late.approval_id)).status == "expired"  # before any sweep

    ended = approve(world, str(late.approval_id), binding)
    assert ended.status == "expired"
    assert payment(world, late.id).reasons == ("approval_expired",)

    assert world.run(approvals.expire_due) == 1
    assert world.run(approvals.expire_due) == 0
    assert get(world, str(swept.approval_id)).status == "expired"
    assert payment(world, swept.id).status == "declined"
    assert events(world, "approval.").count("approval.expired") == 2
    untouched(world)


def test_the_last_valid_instant_still_approves(world: World, clock: FakeClock) -> None:
    record = pending(world)
    clock.advance(TTL)
    assert approve(world, str(record.approval_id)).status == "approved"


def test_a_binding_for_another_amount_or_payee_is_refused(world: World) -> None:
    record = pending(world)
    approval_id = str(record.approval_id)
    for amount, payee in ((2_501, world.merchant), (2_500, world.other_merchant)):
        other = approvals.binding_hash(amount, "usd", payee, "sha256-of-the-cart", record.id)
        with pytest.raises(Conflict) as raised:
            approve(world, approval_id, other)
        assert raised.value.code == "approval_binding_mismatch"
    assert get(world, approval_id).status == "pending"
    untouched(world)
    assert approve(world, approval_id).status == "approved"


def test_a_payment_changed_under_its_approval_voids_it(world: World) -> None:
    record = pending(world)
    binding = get(world, str(record.approval_id)).binding_hash
    p = payments_table
    for values in ({"amount": 2_400}, {"merchant_id": world.other_merchant}):
        again = pending(world, mandate_id=record.mandate_id)
        world.run(
            lambda uow, v=values, i=again.id: uow.execute(update(p).where(p.c.id == i).values(**v))
        )
        ended = approve(
            world, str(again.approval_id), get(world, str(again.approval_id)).binding_hash
        )
        assert ended.status == "voided"
        assert payment(world, again.id).reasons == ("approval_voided",)
    untouched(world)
    assert approve(world, str(record.approval_id), binding).status == "approved"


def test_above_the_level_approving_needs_reauthentication(world: World) -> None:
    record = pending(world, REAUTH_ABOVE + 1)
    approval = get(world, str(record.approval_id))
    assert approval.reauth_required
    with pytest.raises(PermissionDenied) as raised:
        approve(world, approval.id, reauthenticated=False)
    assert raised.value.code == "reauthentication_required"
    untouched(world)
    assert approve(world, approval.id, reauthenticated=True).status == "approved"
    assert world.balance(world.merchant) == REAUTH_ABOVE + 1


def test_at_the_level_no_reauthentication_is_needed(world: World) -> None:
    record = pending(world, REAUTH_ABOVE)
    assert approve(world, str(record.approval_id)).status == "approved"


def test_a_revocation_before_the_approval_declines_it(world: World) -> None:
    record = pending(world)
    world.run(lambda uow: mandates.revoke(uow, world.user, record.mandate_id))
    ended = approve(world, str(record.approval_id))
    assert (ended.status, ended.reasons) == ("declined", ("mandate_not_active",))
    assert payment(world, record.id).reasons == ("mandate_not_active",)
    untouched(world)


def test_hard_limits_are_rechecked_with_the_current_usage(world: World) -> None:
    mandate_id = world.mandate([budget(5_000), threshold()])
    first = pending(world, 3_000, mandate_id=mandate_id)
    second = pending(world, 3_000, mandate_id=mandate_id)
    assert approve(world, str(first.approval_id)).status == "approved"
    ended = approve(world, str(second.approval_id))
    assert (ended.status, ended.reasons) == ("declined", ("budget_exceeded",))
    assert world.balance(world.merchant) == 3_000 and captures(world) == 1


def test_only_the_user_decides_and_the_parties_read(
    world: World, store: Store, clock: FakeClock
) -> None:
    record = pending(world)
    approval_id = str(record.approval_id)
    for who in (world.agent, world.admin):
        assert get(world, approval_id, who).id == approval_id
        with pytest.raises(PermissionDenied):
            approve(world, approval_id, who=who)
    stranger = make_world(store, clock)
    with pytest.raises(NotFound):
        get(world, approval_id, stranger.user)
    with pytest.raises(NotFound):
        approve(world, approval_id, get(world, approval_id).binding_hash, who=stranger.user)
    untouched(world)


APPROVERS = 8


def test_concurrent_approvals_capture_exactly_once(world: World) -> None:
    record = pending(world)
    approval_id = str(record.approval_id)
    binding = get(world, approval_id).binding_hash
    barrier = threading.Barrier(APPROVERS, timeout=60)
    outcomes: list[Any] = []
    lock = threading.Lock()

    def attempt() -> None:
        try:
            barrier.wait()
            result: Any = approve(world, approval_id, binding)
        except PaywardenError as error:
            result = error.code
        except BaseException as error:
            result = error
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=attempt) for _ in range(APPROVERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(thread.is_alive() for thread in threads)
    approved = [o for o in outcomes if isinstance(o, ApprovalRecord)]
    assert len(approved) == 1 and approved[0].status == "approved"
    assert sorted(o for o in outcomes if isinstance(o, str)) == ["approval_not_pending"] * 7
    assert captures(world) == 1
    assert world.balance(world.merchant) == 2_500


def _usage_rows(uow: UnitOfWork, mandate_id: str) -> int:
    return int(
        uow.execute(
            select(func.count())
            .select_from(mandate_usage)
            .where(mandate_usage.c.mandate_id == mandate_id)
        ).scalar_one()
    )


def test_a_pending_payment_reserves_no_usage(world: World) -> None:
    record = pending(world)
    assert world.store.run(lambda uow: _usage_rows(uow, record.mandate_id), read_only=True) == 0
