"""Mandates and payments through the services, on SQLite and PostgreSQL, with a fake clock.

Worked examples: the lifecycle from request to revocation, each with its audit record and
event; every boundary exactly at and one unit past its limit; a declined payment moves no
money; receipts verify, a declined one saying ``Error``; revocation wins.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from conftest import START
from payment_support import (
    ISSUER,
    World,
    budget,
    make_world,
    payees,
)
from paywarden.authorization.constraints import ConstraintError
from paywarden.kernel.clock import FakeClock
from paywarden.kernel.errors import Conflict, NotFound, PermissionDenied
from paywarden.services import mandates, payments, receipts
from paywarden.store import schema
from paywarden.store.tables_mandates import mandate_usage
from paywarden.store.tables_mandates import mandates as mandates_table
from paywarden.store.tables_mandates import payments as payments_table
from paywarden.store.unit_of_work import Store, UnitOfWork
from paywarden.trust.receipts import ReceiptStatus


@pytest.fixture
def world(store: Store, clock: FakeClock) -> World:
    return make_world(store, clock)


def _count(world: World, statement: Any) -> int:
    return int(world.store.run(lambda uow: uow.execute(statement).scalar_one(), read_only=True))


def _events(world: World, prefix: str) -> list[str]:
    e = schema.events
    rows = world.store.run(
        lambda uow: uow.execute(
            select(e.c.type).where(e.c.type.like(f"{prefix}%")).order_by(e.c.created_at, e.c.id)
        ).all(),
        read_only=True,
    )
    return [row.type for row in rows]


def _audited(world: World, subject: str) -> list[str]:
    a = schema.audit_records
    rows = world.store.run(
        lambda uow: uow.execute(
            select(a.c.event_type).where(a.c.subject_id == subject).order_by(a.c.occurred_at)
        ).all(),
        read_only=True,
    )
    return [row.event_type for row in rows]


def test_the_lifecycle_from_request_to_revocation_is_audited_and_announced(
    world: World,
) -> None:
    requested = world.request([budget(), payees(world.merchant)])
    mandate_id = requested.mandate.id
    wired = mandates.wire_mandate(requested)
    assert wired["status"] == "pending_consent"
    assert wired["consent_url"] == f"/mandates/{mandate_id}/consent"
    assert wired["conversation_excerpt"] == "buy me coffee, at most 5 a day"
    assert world.pay(mandate_id, 100).reasons == ("mandate_not_active",)

    steps = [mandates.consent, mandates.pause, mandates.resume, mandates.revoke]
    statuses = [world.run(lambda uow, s=s: s(uow, world.user, mandate_id)) for s in steps]
    assert [v.mandate.status.value for v in statuses] == ["active", "paused", "active", "revoked"]
    assert [v.mandate.revision for v in statuses] == [2, 3, 4, 5]

    with pytest.raises(Conflict) as raised:
        world.run(lambda uow: mandates.resume(uow, world.user, mandate_id))
    assert raised.value.code == "mandate_revoked"
    transitions = [
        "mandate.requested",
        "mandate.granted",
        "mandate.paused",
        "mandate.resumed",
        "mandate.revoked",
    ]
    assert _events(world, "mandate.") == transitions
    assert _audited(world, mandate_id) == transitions


def test_only_the_user_consents_and_an_admin_may_revoke(world: World) -> None:
    mandate_id = world.request([budget()]).mandate.id
    for who in (world.agent, world.admin):
        with pytest.raises(PermissionDenied):
            world.run(lambda uow, p=who: mandates.consent(uow, p, mandate_id))
    revoked = world.run(lambda uow: mandates.revoke(uow, world.admin, mandate_id))
    assert revoked.mandate.status.value == "revoked"


def test_a_stranger_sees_no_mandate(world: World, store: Store, clock: FakeClock) -> None:
    mandate_id = world.request([budget()]).mandate.id
    stranger = make_world(store, clock)
    for who in (stranger.user, stranger.agent):
        with pytest.raises(NotFound):
            world.run(lambda uow, p=who: mandates.get_mandate(uow, p, mandate_id))
    with pytest.raises(NotFound):
        stranger.pay(mandate_id, 100)


def test_an_amendment_needs_fresh_consent_and_keeps_what_was_spent(world: World) -> None:
    mandate_id = world.mandate([budget(10_000)])
    assert world.pay(mandate_id, 4_000).status == "succeeded"
    amended = world.run(lambda uow: mandates.amend(uow, world.agent, mandate_id, [budget(5_000)]))
    assert amended.mandate.status.value == "pending_consent"
    assert world.pay(mandate_id, 100).reasons == ("mandate_not_active",)
    world.run(lambda uow: mandates.consent(uow, world.user, mandate_id))
    assert world.pay(mandate_id, 1_001).reasons == ("budget_exceeded",)
    assert world.pay(mandate_id, 1_000).status == "succeeded"


def test_an_unknown_constraint_is_refused_at_creation(world: World) -> None:
    unknown = {"type": "payment.reference", "id": "x"}
    with pytest.raises(ConstraintError) as raised:
        world.request([budget(), unknown])
    assert raised.value.code == "unknown_constraint"
    assert _count(world, select(func.count()).select_from(mandates_table)) == 0


def test_the_maximum_amount_is_approved_and_one_unit_more_denied(world: World) -> None:
    amount_range = {"type": "payment.amount_range", "currency": "usd", "max": 5_000}
    mandate_id = world.mandate([amount_range])
    assert world.pay(mandate_id, 5_000).status == "succeeded"
    over = world.pay(mandate_id, 5_001)
    assert (over.status, over.reasons) == ("declined", ("amount_above_max",))


def test_the_last_valid_instant_pays_and_one_second_later_does_not(
    world: World, clock: FakeClock
) -> None:
    last = START + timedelta(hours=2)
    window = {
        "type": "payment.execution_date",
        "not_after": last.isoformat().replace("+00:00", "Z"),
    }
    mandate_id = world.mandate([budget(), window])
    clock.set(last)
    assert world.pay(mandate_id, 100).status == "succeeded"
    clock.set(last + timedelta(seconds=1))
    assert world.pay(mandate_id, 100).reasons == ("outside_execution_window",)


def test_a_daily_budget_resets_at_local_midnight(world: World, clock: FakeClock) -> None:
    daily = {"type": "paywarden.period_budget", "period": "daily", "currency": "usd", "max": 1_000}
    mandate_id = world.mandate([daily], timezone="America/New_York")
    assert world.pay(mandate_id, 1_000).status == "succeeded"
    assert world.pay(mandate_id, 1).reasons == ("period_budget_exceeded:daily",)
    view = world.run(lambda uow: mandates.get_mandate(uow, world.user, mandate_id))
    assert [entry.amount_left for entry in view.remaining] == [0]
    # 09:00 UTC is 04:00 in New York: local midnight is 20 hours away (UTC-5 in November).
    clock.advance(timedelta(hours=19, minutes=59))
    assert world.pay(mandate_id, 1).reasons == ("period_budget_exceeded:daily",)
    clock.advance(timedelta(minutes=1))
    assert world.pay(mandate_id, 1_000).status == "succeeded"


def test_another_merchant_is_denied(world: World) -> None:
    mandate_id = world.mandate([budget(), payees(world.merchant)])
    denied = world.pay(mandate_id, 100, world.other_merchant)
    assert (denied.status, denied.reasons) == ("declined", ("payee_not_allowed",))


def test_a_denied_payment_moves_no_money(world: World) -> None:
    mandate_id = world.mandate([budget(1_000)])
    before = (world.balance(str(world.user.id)), world.balance(world.merchant))
    denied = world.pay(mandate_id, 1_001)
    assert denied.status == "declined" and denied.hold_id is None and denied.transfer_id is None
    assert (world.balance(str(world.user.id)), world.balance(world.merchant)) == before
    assert _count(world, select(func.count()).select_from(schema.holds)) == 0
    assert _count(world, select(func.count()).select_from(mandate_usage)) == 0


def test_an_approved_payment_moves_exactly_its_amount(world: World) -> None:
    mandate_id = world.mandate([budget()])
    paid = world.pay(mandate_id, 2_500, cart_hash="sha256-of-the-cart")
    assert paid.status == "succeeded" and paid.reasons == ()
    assert world.balance(str(world.user.id)) == 100_000 - 2_500
    assert world.balance(world.merchant) == 2_500
    assert _events(world, "payment.") == ["payment.succeeded"]
    assert _audited(world, paid.id) == ["payment.succeeded"]


def test_a_payment_without_the_funds_is_declined(store: Store, clock: FakeClock) -> None:
    poor = make_world(store, clock, funded=500)
    mandate_id = poor.mandate([budget()])
    assert poor.pay(mandate_id, 501).reasons == ("insufficient_funds",)
    assert poor.balance(str(poor.user.id)) == 500


def test_above_the_confirmation_threshold_the_payment_waits_and_nothing_moves(
    world: World,
) -> None:
    threshold = {"type": "paywarden.confirmation_threshold", "currency": "usd", "above": 1_000}
    mandate_id = world.mandate([budget(), threshold])
    waiting = world.pay(mandate_id, 1_001)
    assert (waiting.status, waiting.reasons) == (
        "requires_confirmation",
        ("above_confirmation_threshold",),
    )
    assert waiting.receipt is None and waiting.transfer_id is None
    assert world.balance(world.merchant) == 0
    assert world.pay(mandate_id, 1_000).status == "succeeded"


def test_the_default_risk_rules_ask_before_paying_a_merchant_the_user_never_named(
    world: World,
) -> None:
    mandate_id = world.mandate([budget()])
    first = world.pay(mandate_id, 100, risk=payments.RISK_DEFAULT)
    assert (first.status, first.reasons) == ("requires_confirmation", ("risk_new_merchant",))
    named = world.mandate([budget(), payees(world.merchant)])
    assert world.pay(named, 100, risk=payments.RISK_DEFAULT).status == "succeeded"


def test_receipts_verify_and_a_declined_one_says_error(world: World) -> None:
    mandate_id = world.mandate([budget(1_000)])
    paid = world.pay(mandate_id, 600, cart_hash="cart-1")
    declined = world.pay(mandate_id, 600)

    def verify(token: str | None) -> Any:
        assert token is not None
        return world.store.run(lambda uow: receipts.verify(uow, token), read_only=True)

    good = verify(paid.receipt)
    assert good.status is ReceiptStatus.SUCCESS and good.iss == ISSUER
    assert (good.payment_id, good.network_confirmation_id) == (paid.id, paid.transfer_id)
    bad = verify(declined.receipt)
    assert bad.status is ReceiptStatus.ERROR
    assert (bad.payment_id, bad.error) == (declined.id, "budget_exceeded")


def test_revoke_then_pay_is_declined_as_not_active(world: World) -> None:
    mandate_id = world.mandate([budget()])
    world.run(lambda uow: mandates.revoke(uow, world.user, mandate_id))
    declined = world.pay(mandate_id, 100)
    assert (declined.status, declined.reasons) == ("declined", ("mandate_not_active",))
    assert world.balance(world.merchant) == 0


def test_payments_are_read_by_their_parties_only(
    world: World, store: Store, clock: FakeClock
) -> None:
    paid = world.pay(world.mandate([budget()]), 100)
    for who in (world.agent, world.user, world.admin):
        found = world.run(lambda uow, p=who: payments.get_payment(uow, p, paid.id))
        assert found == paid
    stranger = make_world(store, clock)
    with pytest.raises(NotFound):
        world.run(lambda uow: payments.get_payment(uow, stranger.user, paid.id))


def test_usage_is_stored_per_period_and_lifetime(world: World, clock: FakeClock) -> None:
    mandate_id = world.mandate([budget()])
    world.pay(mandate_id, 300)
    world.pay(mandate_id, 200)

    def periods(uow: UnitOfWork) -> dict[str, tuple[int, int]]:
        rows = uow.execute(select(mandate_usage).where(mandate_usage.c.mandate_id == mandate_id))
        return {row.period: (row.amount, row.count) for row in rows}

    stored = world.store.run(periods, read_only=True)
    assert stored == {
        "lifetime": (500, 2),
        "daily:2026-11-29": (500, 2),
        "weekly:2026-11-23": (500, 2),
        "monthly:2026-11-01": (500, 2),
    }
    assert _count(world, select(func.count()).select_from(payments_table)) == 2

    clock.advance(timedelta(days=2))  # Tuesday, December 1st: a new day, week and month
    world.pay(mandate_id, 50)
    assert world.store.run(periods, read_only=True) == {
        "lifetime": (550, 3),
        "daily:2026-12-01": (50, 1),  # the periods that ended are gone, not kept beside
        "weekly:2026-11-30": (50, 1),
        "monthly:2026-12-01": (50, 1),
    }


def test_a_paused_mandate_pays_nothing_until_resumed(world: World) -> None:
    mandate_id = world.mandate([budget()])
    world.run(lambda uow: mandates.pause(uow, world.user, mandate_id))
    assert world.pay(mandate_id, 100).reasons == ("mandate_not_active",)
    world.run(lambda uow: mandates.resume(uow, world.user, mandate_id))
    assert world.pay(mandate_id, 100).status == "succeeded"


def test_mandates_are_listed_for_their_user_and_their_agent(
    world: World, store: Store, clock: FakeClock
) -> None:
    first = world.request([budget()]).mandate.id
    second = world.mandate([budget()])
    stranger = make_world(store, clock)
    stranger.request([budget()])
    for who in (world.user, world.agent):
        listed = world.run(lambda uow, p=who: mandates.list_mandates(uow, p))
        assert [view.mandate.id for view in listed.items] == [second, first]
    page = world.run(lambda uow: mandates.list_mandates(uow, world.user, limit=1))
    assert page.has_more and [view.mandate.id for view in page.items] == [second]


def test_the_conversation_excerpt_is_dropped_from_view_after_its_expiry(
    world: World, clock: FakeClock
) -> None:
    mandate_id = world.request([budget()]).mandate.id

    def excerpt() -> str | None:
        view = world.run(lambda uow: mandates.get_mandate(uow, world.user, mandate_id))
        return view.conversation_excerpt

    clock.advance(mandates.EXCERPT_TTL)
    assert excerpt() == "buy me coffee, at most 5 a day"
    clock.advance(timedelta(seconds=1))
    assert excerpt() is None


def test_the_excerpt_retention_is_configurable(world: World, clock: FakeClock) -> None:
    view = world.run(
        lambda uow: mandates.request_mandate(
            uow,
            world.agent,
            user=str(world.user.id),
            currency="usd",
            constraints=[budget()],
            timezone="UTC",
            conversation_excerpt="one coffee",
            excerpt_ttl=timedelta(days=1),
        )
    )
    clock.advance(timedelta(days=1, seconds=1))
    later = world.run(lambda uow: mandates.get_mandate(uow, world.user, view.mandate.id))
    assert later.conversation_excerpt is None
