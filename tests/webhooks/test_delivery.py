"""Delivery from the outbox on both backends, with a fake clock and an in-memory transport:
fan-out by ownership, the retry schedule up to the dead letter at three days, leases,
re-sends, and the attempt log."""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from payment_support import budget, make_world, payees
from paywarden.kernel.clock import FakeClock
from paywarden.kernel.errors import NotFound
from paywarden.kernel.principals import Principal, PrincipalType
from paywarden.services import webhook_delivery, webhooks
from paywarden.services.webhook_delivery import RetryPolicy
from paywarden.store.tables_webhooks import webhook_attempts, webhook_deliveries
from paywarden.store.unit_of_work import Store
from paywarden.trust.webhook_signing import verify_standard
from paywarden.worker.delivery import DeliveryWorker
from webhook_support import ADMIN, emit_event, make_merchant, order_object, principal

MASTER_KEY = secrets.token_bytes(32)
POLICY = RetryPolicy()
URL = "http://127.0.0.1:9/hooks"


class Transport:
    """Answers each POST with ``status(request)``; records what it got."""

    def __init__(self, status: Callable[[httpx.Request], int] = lambda _r: 200) -> None:
        self.status = status
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(self.status(request), text="ok" * 1000)


def worker(store: Store, transport: Transport, fraction: float = 0.5) -> DeliveryWorker:
    client = httpx.Client(transport=httpx.MockTransport(transport))
    return DeliveryWorker(store, MASTER_KEY, POLICY, client=client, fraction=lambda: fraction)


def endpoint(store: Store, owner: Principal, events: list[str] | None = None, **kw: Any) -> Any:
    return store.run(
        lambda uow: webhooks.create_endpoint(
            uow,
            owner,
            url=kw.get("url", URL),
            event_types=events or ["*"],
            endpoint_format=kw.get("endpoint_format", "standard"),
            description=None,
            master_key=MASTER_KEY,
        )
    )


def deliveries(store: Store, endpoint_id: str) -> list[Any]:
    d = webhook_deliveries
    return list(
        store.run(
            lambda uow: list(uow.execute(select(d).where(d.c.endpoint_id == endpoint_id))),
            read_only=True,
        )
    )


def test_a_delivery_is_signed_per_standard_webhooks_and_recorded(
    store: Store, clock: FakeClock
) -> None:
    merchant = make_merchant(store)
    hook = endpoint(store, merchant, ["order.*"])
    event_id = emit_event(store, "order.created", order_object("ord_1", str(merchant.id)))
    transport = Transport()
    outcomes = worker(store, transport).run_once()
    assert [o.outcome for o in outcomes] == ["delivered"]
    request = transport.requests[0]
    assert request.headers["webhook-id"] == event_id
    assert verify_standard(
        hook["secret_key"],
        dict(request.headers),
        request.content,
        now_s=int(clock.now().timestamp()),
    )
    body = json.loads(request.content)
    assert body["id"] == event_id and body["type"] == "order.created"
    assert body["data"]["object"]["merchant_id"] == merchant.id
    (row,) = deliveries(store, hook["id"])
    assert row.status == "delivered" and row.attempt_count == 1
    logged = store.run(lambda uow: webhooks.get_delivery(uow, merchant, row.id), read_only=True)
    (attempt,) = logged["attempts"]
    assert attempt["status_code"] == 200 and attempt["outcome"] == "delivered"
    assert attempt["latency_ms"] is not None
    assert len(attempt["response_excerpt"]) <= 1024  # the 2000-character answer, truncated


def test_each_owner_receives_only_events_about_its_own_objects(
    store: Store, clock: FakeClock
) -> None:
    world = make_world(store, clock)
    mine = principal(PrincipalType.MERCHANT, world.merchant)
    theirs = principal(PrincipalType.MERCHANT, world.other_merchant)
    mine_hook = endpoint(store, mine)
    theirs_hook = endpoint(store, theirs)
    user_hook = endpoint(store, world.user)
    admin_hook = endpoint(store, ADMIN)
    mandate_id = world.mandate([budget(), payees(world.merchant)])
    world.pay(mandate_id, 450)
    emit_event(store, "order.created", order_object("ord_2", world.merchant))
    worker(store, Transport()).run_once()

    def types(hook: dict[str, Any]) -> set[str]:
        event_ids = {r.event_id for r in deliveries(store, hook["id"])}
        listed = store.run(
            lambda uow: webhooks.list_events(
                uow, ADMIN, event_type=None, limit=100, starting_after=None
            ),
            read_only=True,
        )
        return {e["type"] for e in listed.items if e["id"] in event_ids}

    assert {"payment.succeeded", "order.created"} <= types(mine_hook)
    # Another merchant never gets my events: only those about its own objects.
    assert types(theirs_hook) <= {"merchant.created", "api_key.created", "webhook_endpoint.created"}
    assert "payment.succeeded" in types(user_hook)
    assert "mandate.granted" in types(user_hook)
    assert "order.created" not in types(user_hook)
    assert types(mine_hook) | types(user_hook) <= types(admin_hook)
    # Listing follows the same rule.
    listed = store.run(
        lambda uow: webhooks.list_events(
            uow, theirs, event_type=None, limit=100, starting_after=None
        ),
        read_only=True,
    )
    listed_types = {e["type"] for e in listed.items}
    assert listed_types <= {"merchant.created", "api_key.created", "webhook_endpoint.created"}
    assert "merchant.created" in listed_types


def test_failures_back_off_with_full_jitter_until_dead_at_three_days(
    store: Store, clock: FakeClock
) -> None:
    merchant = make_merchant(store)
    hook = endpoint(store, merchant, ["order.created"])
    emit_event(store, "order.created", order_object("ord_3", str(merchant.id)))
    transport = Transport(lambda _r: 503)
    delivery_worker = worker(store, transport, fraction=1.0)  # the top of each jitter range
    start = clock.now()
    waits: list[float] = []
    for _ in range(200):
        outcomes = delivery_worker.run_once()
        assert len(outcomes) == 1
        (row,) = deliveries(store, hook["id"])
        if row.status == "dead":
            break
        waits.append((row.next_attempt_at - clock.now()).total_seconds())
        clock.set(row.next_attempt_at)
    (row,) = deliveries(store, hook["id"])
    assert row.status == "dead" and outcomes[0].outcome == "dead"
    assert clock.now() - start == timedelta(days=3)  # the last attempt is at the deadline
    ceilings = [min(POLICY.cap_s, POLICY.base_s * 2**n) for n in range(len(waits))]
    assert waits[:-1] == ceilings[:-1]  # with fraction 1.0: exactly base * 2**n, capped
    assert 0 < waits[-1] <= ceilings[-1]  # clamped to the deadline
    assert row.attempt_count == len(waits) + 1 == len(transport.requests)
    attempts = store.run(
        lambda uow: uow.execute(
            select(func.count()).where(webhook_attempts.c.delivery_id == row.id)
        ).scalar_one(),
        read_only=True,
    )
    assert attempts == row.attempt_count
    clock.advance(timedelta(days=30))
    assert delivery_worker.run_once() == []  # a dead letter is never sent again by itself


def test_jitter_stays_within_the_exponential_ceiling() -> None:
    now = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
    until = now + timedelta(days=3)
    for attempts in range(1, 30):
        for fraction in (0.0, 0.3, 0.999):
            when = webhook_delivery.next_attempt_at(POLICY, attempts, now, until, fraction)
            assert when is not None
            wait = (when - now).total_seconds()
            assert 1.0 <= wait <= min(POLICY.cap_s, POLICY.base_s * 2 ** (attempts - 1)) + 1
    assert webhook_delivery.next_attempt_at(POLICY, 3, until, until, 0.5) is None


def test_a_dead_delivery_is_resent_and_delivered(store: Store, clock: FakeClock) -> None:
    merchant = make_merchant(store)
    hook = endpoint(store, merchant, ["order.*"])
    emit_event(store, "order.updated", order_object("ord_4", str(merchant.id), "confirmed"))
    failing = worker(store, Transport(lambda _r: 500), fraction=1.0)
    while True:
        failing.run_once()
        (row,) = deliveries(store, hook["id"])
        if row.status == "dead":
            break
        clock.set(row.next_attempt_at)
    resent = store.run(lambda uow: webhooks.resend_delivery(uow, merchant, row.id, POLICY))
    assert resent["status"] == "pending"
    transport = Transport()
    (outcome,) = worker(store, transport).run_once()
    assert outcome.outcome == "delivered"
    assert transport.requests[0].headers["webhook-id"] == row.event_id  # same id: dedupe
    assert deliveries(store, hook["id"])[0].status == "delivered"
    other = make_merchant(store, "Other")
    with pytest.raises(NotFound):
        store.run(lambda uow: webhooks.resend_delivery(uow, other, row.id, POLICY))


def test_a_lease_hides_a_claimed_delivery_until_it_lapses(store: Store, clock: FakeClock) -> None:
    merchant = make_merchant(store)
    endpoint(store, merchant, ["order.*"])
    emit_event(store, "order.created", order_object("ord_5", str(merchant.id)))
    store.run(lambda uow: webhook_delivery.fan_out(uow, POLICY))
    first = store.run(lambda uow: webhook_delivery.claim(uow, POLICY, MASTER_KEY))
    assert len(first) == 1  # ...and this worker dies without recording anything
    assert store.run(lambda uow: webhook_delivery.claim(uow, POLICY, MASTER_KEY)) == []
    clock.advance(timedelta(seconds=POLICY.lease_s))
    second = store.run(lambda uow: webhook_delivery.claim(uow, POLICY, MASTER_KEY))
    assert [c.delivery_id for c in second] == [first[0].delivery_id]
    assert second[0].attempt == 2 and second[0].lease_token != first[0].lease_token
    # The first worker comes back late and fails: the schedule stays with the new holder.
    late = webhook_delivery.AttemptResult(clock.now(), 500, 5, "HTTP 500")
    store.run(lambda uow: webhook_delivery.record(uow, first[0], late, POLICY, 0.5))
    row = deliveries(store, first[0].endpoint_id)[0]
    assert row.lease_token == second[0].lease_token and row.status == "pending"


def test_concurrent_claims_never_share_a_delivery(store: Store, clock: FakeClock) -> None:
    merchant = make_merchant(store)
    endpoint(store, merchant, ["order.*"])
    for n in range(30):
        emit_event(store, "order.created", order_object(f"ord_c{n}", str(merchant.id)))
    store.run(lambda uow: webhook_delivery.fan_out(uow, POLICY))
    claimed: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(4)

    def claim_some() -> None:
        barrier.wait(timeout=30)
        for _ in range(5):
            got = store.run(
                lambda uow: webhook_delivery.claim(uow, POLICY, MASTER_KEY, batch_max=3)
            )
            with lock:
                claimed.extend(c.delivery_id for c in got)

    threads = [threading.Thread(target=claim_some) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(claimed) == len(set(claimed)) == 30


def test_rotation_signs_with_both_secrets_during_the_overlap(
    store: Store, clock: FakeClock
) -> None:
    merchant = make_merchant(store)
    hook = endpoint(store, merchant, ["order.*"])
    rotated = store.run(
        lambda uow: webhooks.rotate_secret(
            uow, merchant, hook["id"], overlap_s=3600, master_key=MASTER_KEY
        )
    )
    assert rotated["secret_key"] != hook["secret_key"]
    emit_event(store, "order.created", order_object("ord_6", str(merchant.id)))
    transport = Transport()
    worker(store, transport).run_once()
    now_s = int(clock.now().timestamp())
    request = transport.requests[-1]
    for secret in (hook["secret_key"], rotated["secret_key"]):
        assert verify_standard(secret, dict(request.headers), request.content, now_s=now_s)
    clock.advance(timedelta(hours=1, seconds=1))
    emit_event(store, "order.updated", order_object("ord_6", str(merchant.id), "confirmed"))
    worker(store, transport).run_once()
    request = transport.requests[-1]
    now_s = int(clock.now().timestamp())
    assert verify_standard(
        rotated["secret_key"], dict(request.headers), request.content, now_s=now_s
    )
    assert not verify_standard(
        hook["secret_key"], dict(request.headers), request.content, now_s=now_s
    )


def test_a_deleted_endpoint_gets_nothing_more(store: Store, clock: FakeClock) -> None:
    merchant = make_merchant(store)
    hook = endpoint(store, merchant, ["order.*"])
    emit_event(store, "order.created", order_object("ord_7", str(merchant.id)))
    store.run(lambda uow: webhook_delivery.fan_out(uow, POLICY))
    store.run(lambda uow: webhooks.delete_endpoint(uow, merchant, hook["id"]))
    transport = Transport()
    assert worker(store, transport).run_once() == []
    assert [r.status for r in deliveries(store, hook["id"])] == ["canceled"]


@given(
    attempts=st.integers(min_value=1, max_value=500),
    fraction=st.floats(min_value=0.0, max_value=1.0),
    elapsed_s=st.integers(min_value=0, max_value=4 * 86400),
)
def test_the_next_attempt_is_never_past_the_deadline_nor_above_the_ceiling(
    attempts: int, fraction: float, elapsed_s: int
) -> None:
    created = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
    until = created + timedelta(seconds=POLICY.window_s)
    now = created + timedelta(seconds=elapsed_s)
    when = webhook_delivery.next_attempt_at(POLICY, attempts, now, until, fraction)
    if now >= until:
        assert when is None  # dead-lettered
        return
    assert when is not None and now < when <= until
    ceiling_s = min(POLICY.cap_s, POLICY.base_s * 2 ** min(attempts - 1, 40))
    assert (when - now).total_seconds() <= max(1.0, ceiling_s)


def test_the_webhook_history_of_an_order(store: Store, clock: FakeClock) -> None:
    merchant = make_merchant(store)
    endpoint(store, merchant, ["order.*"])
    created = emit_event(store, "order.created", order_object("ord_h", str(merchant.id)))
    updated = emit_event(
        store, "order.updated", order_object("ord_h", str(merchant.id), "confirmed")
    )
    emit_event(store, "order.created", order_object("ord_other", str(merchant.id)))
    worker(store, Transport(lambda _r: 500)).run_once()
    history = store.run(lambda uow: webhooks.webhook_history(uow, "ord_h"), read_only=True)
    assert [h["id"] for h in history] == [created, updated]
    assert [len(h["deliveries"]) for h in history] == [1, 1]
    assert history[0]["deliveries"][0]["attempts"][0]["status_code"] == 500
