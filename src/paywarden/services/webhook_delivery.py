"""Delivery from the outbox: fan-out, claims with a lease, results, and the retry schedule.

Each step is one short transaction; the HTTP POST happens between them, outside any
transaction, in the worker (:mod:`paywarden.worker`)::

    store.run(lambda uow: fan_out(uow))                      # events → deliveries
    claims = store.run(lambda uow: claim(uow, ...))          # lease due deliveries
    ... POST each claim.request ...
    store.run(lambda uow: record(uow, claim, result, ...))   # delivered / retry / dead

Claims lock their rows with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite writers are
serialized by ``BEGIN IMMEDIATE``. A claim sets ``lease_until`` (and moves
``next_attempt_at`` to it), so a worker killed mid-delivery loses nothing: when the lease
lapses the delivery is due again and another worker sends it again. Receivers dedupe on the
``webhook-id`` header (the event id), which is the same on every attempt.

Retries: after the n-th failed attempt the next one waits a uniformly random time in
``[0, min(cap, base * 2**(n-1))]`` ("full jitter", at least one second), never past
``retry_until`` (three days after the delivery was queued, by default): the last attempt
happens at ``retry_until`` at the latest, and a failure at or after it dead-letters the
delivery.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, insert, or_, select, update

from paywarden.adapters.ids import new_id
from paywarden.kernel.clock import ensure_utc
from paywarden.kernel.invariant import invariant
from paywarden.services import webhook_owners, webhook_payloads
from paywarden.store import schema
from paywarden.store.tables_webhooks import (
    RESPONSE_EXCERPT_CHARS_MAX,
    event_owners,
    webhook_attempts,
    webhook_deliveries,
    webhook_endpoints,
)
from paywarden.store.unit_of_work import UnitOfWork
from paywarden.trust.webhook_signing import open_webhook_secret

__all__ = [
    "AttemptResult",
    "Claim",
    "RetryPolicy",
    "any_enabled_endpoint",
    "claim",
    "due_count",
    "endpoint_receives",
    "fan_out",
    "new_delivery",
    "next_attempt_at",
    "open_secrets",
    "record",
]

FAN_OUT_BATCH_MAX = 200
CLAIM_BATCH_MAX = 50
ERROR_CHARS_MAX = 500
_EXPONENT_MAX = 40


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    base_s: float = 10.0
    cap_s: float = 6 * 3600.0
    window_s: float = 3 * 86400.0
    lease_s: float = 60.0
    timeout_s: float = 10.0
    permalink_base: str = "http://127.0.0.1:8000"

    def __post_init__(self) -> None:
        invariant(0 < self.base_s <= self.cap_s, "0 < base_s <= cap_s")
        invariant(self.window_s > 0 and self.lease_s > self.timeout_s > 0, "lease > timeout > 0")


def next_attempt_at(
    policy: RetryPolicy, attempts: int, now: datetime, retry_until: datetime, fraction: float
) -> datetime | None:
    """When to try again after ``attempts`` failed attempts, or ``None``: dead-letter.
    ``fraction`` is uniform in [0, 1): the jitter, drawn by the caller."""
    invariant(attempts >= 1 and 0.0 <= fraction <= 1.0, "attempts >= 1, fraction in [0, 1]")
    if now >= retry_until:
        return None
    ceiling_s = min(policy.cap_s, policy.base_s * 2 ** min(attempts - 1, _EXPONENT_MAX))
    delay_s = max(1.0, fraction * ceiling_s)
    return min(now + timedelta(seconds=delay_s), retry_until)


# --- fan-out --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Endpoint:
    id: str
    livemode: bool
    owner_id: str | None
    event_types: tuple[str, ...]
    format: str
    created_at: datetime


def endpoint_receives(
    endpoint_owner: str | None,
    endpoint_format: str,
    event_types: Sequence[str],
    event_type: str,
    owners: set[str],
) -> bool:
    """Whether an endpoint gets an event: the type is wanted, the endpoint's owner owns the
    event (an admin endpoint, with no owner, may receive all), and an ACP endpoint only
    gets the order events ACP defines."""
    resource = event_type.partition(".")[0]
    wanted = any(t in ("*", event_type, f"{resource}.*") for t in event_types)
    if endpoint_format == "acp" and event_type not in webhook_payloads.ACP_EVENT_TYPES:
        return False
    return wanted and (endpoint_owner is None or endpoint_owner in owners)


def _enabled_endpoints(uow: UnitOfWork) -> list[_Endpoint]:
    e = webhook_endpoints
    rows = uow.execute(select(e).where(e.c.status == "enabled"))
    return [
        _Endpoint(
            r.id,
            r.livemode,
            r.owner_id,
            tuple(str(t) for t in r.event_types),
            r.format,
            r.created_at,
        )
        for r in rows
    ]


def fan_out(uow: UnitOfWork, policy: RetryPolicy, *, batch_max: int = FAN_OUT_BATCH_MAX) -> int:
    """Index the owners of up to ``batch_max`` undispatched events and queue one delivery per
    receiving endpoint; how many events were dispatched."""
    ev = schema.events
    query = (
        select(ev.c.id, ev.c.livemode, ev.c.type, ev.c.data, ev.c.created_at)
        .where(ev.c.dispatched_at.is_(None))
        .order_by(ev.c.sequence)
        .limit(batch_max)
    )
    if uow.dialect == "postgresql":
        query = query.with_for_update(skip_locked=True)
    rows = list(uow.execute(query))
    if not rows:
        return 0
    now = uow.clock.now()
    endpoints = _enabled_endpoints(uow)
    owner_rows: list[dict[str, Any]] = []
    delivery_rows: list[dict[str, Any]] = []
    for row in rows:
        data = row.data.get("object") if isinstance(row.data, dict) else None
        owners = webhook_owners.resolve_owners(uow, data)
        owner_rows.extend({"event_id": row.id, "owner_id": o} for o in sorted(owners))
        for endpoint in endpoints:
            if (
                endpoint.livemode == row.livemode
                and row.created_at >= endpoint.created_at
                and endpoint_receives(
                    endpoint.owner_id, endpoint.format, endpoint.event_types, row.type, owners
                )
            ):
                delivery_rows.append(new_delivery(row.id, endpoint.id, row.livemode, now, policy))
    if owner_rows:
        uow.execute(insert(event_owners), owner_rows)
    if delivery_rows:
        uow.execute(insert(webhook_deliveries), delivery_rows)
    ids = [row.id for row in rows]
    uow.execute(update(ev).where(ev.c.id.in_(ids)).values(dispatched_at=now))
    return len(rows)


def new_delivery(
    event_id: str, endpoint_id: str, livemode: bool, now: datetime, policy: RetryPolicy
) -> dict[str, Any]:
    """The row of a delivery queued now, due at once."""
    return {
        "id": new_id("whd"),
        "livemode": livemode,
        "event_id": event_id,
        "endpoint_id": endpoint_id,
        "status": "pending",
        "attempt_count": 0,
        "next_attempt_at": now,
        "retry_until": now + timedelta(seconds=policy.window_s),
        "created_at": now,
        "updated_at": now,
    }


# --- claims ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Claim:
    """A leased delivery, with everything the POST needs. ``secrets`` are newest first."""

    delivery_id: str
    event_id: str
    event_type: str
    endpoint_id: str
    url: str
    format: str
    attempt: int
    lease_token: str
    body: bytes
    secrets: tuple[str, ...] = field(repr=False)


def any_enabled_endpoint(uow: UnitOfWork) -> bool:
    e = webhook_endpoints
    return uow.execute(select(e.c.id).where(e.c.status == "enabled").limit(1)).first() is not None


def due_count(uow: UnitOfWork) -> int:
    d = webhook_deliveries
    rows = uow.execute(
        select(d.c.id)
        .where(d.c.status == "pending", d.c.next_attempt_at <= uow.clock.now())
        .limit(CLAIM_BATCH_MAX)
    )
    return len(list(rows))


def claim(
    uow: UnitOfWork, policy: RetryPolicy, master_key: bytes, *, batch_max: int = CLAIM_BATCH_MAX
) -> list[Claim]:
    """Lease up to ``batch_max`` due deliveries for ``policy.lease_s``."""
    d = webhook_deliveries
    now = uow.clock.now()
    query = (
        select(d.c.id, d.c.event_id, d.c.endpoint_id, d.c.attempt_count)
        .where(
            d.c.status == "pending",
            d.c.next_attempt_at <= now,
            or_(d.c.lease_until.is_(None), d.c.lease_until <= now),
        )
        .order_by(d.c.next_attempt_at, d.c.id)
        .limit(batch_max)
    )
    if uow.dialect == "postgresql":
        query = query.with_for_update(skip_locked=True)
    rows = list(uow.execute(query))
    lease_until = now + timedelta(seconds=policy.lease_s)
    claims = []
    for row in rows:
        token = secrets.token_hex(16)
        uow.execute(
            update(d)
            .where(d.c.id == row.id)
            .values(
                lease_until=lease_until,
                lease_token=token,
                next_attempt_at=lease_until,
                attempt_count=row.attempt_count + 1,
                updated_at=now,
            )
        )
        built = _build(uow, row, policy, master_key, now, token)
        if built is not None:
            claims.append(built)
    return claims


def _build(
    uow: UnitOfWork, row: Any, policy: RetryPolicy, master_key: bytes, now: datetime, token: str
) -> Claim | None:
    ev, e = schema.events, webhook_endpoints
    event = uow.execute(select(ev).where(ev.c.id == row.event_id)).one()
    endpoint = uow.execute(select(e).where(e.c.id == row.endpoint_id)).one()
    if endpoint.format == "acp":
        body = webhook_payloads.acp_body(event.type, event.data, policy.permalink_base)
    else:
        wire = webhook_payloads.event_object(
            event.id, event.type, event.livemode, event.created_at, event.data
        )
        body = webhook_payloads.standard_body(wire)
    if body is None:  # nothing ACP can carry: the delivery ends here
        _finish(uow, row.id, "canceled", now, error="no ACP form for this event")
        return None
    return Claim(
        delivery_id=row.id,
        event_id=event.id,
        event_type=event.type,
        endpoint_id=endpoint.id,
        url=endpoint.url,
        format=endpoint.format,
        attempt=row.attempt_count + 1,
        lease_token=token,
        body=body,
        secrets=open_secrets(endpoint, master_key, now),
    )


def open_secrets(endpoint: Any, master_key: bytes, now: datetime) -> tuple[str, ...]:
    """The endpoint's live secrets, newest first: the current one, and the previous one
    while its rotation overlap lasts."""
    current = open_webhook_secret(master_key, endpoint.id, endpoint.secret_sealed)
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret_sealed and expires is not None and ensure_utc(now) < expires:
        previous = open_webhook_secret(master_key, endpoint.id, endpoint.previous_secret_sealed)
        return (current, previous)
    return (current,)


# --- results --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AttemptResult:
    started_at: datetime
    status_code: int | None
    latency_ms: int | None
    error: str | None = None
    response_excerpt: str | None = None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def record(
    uow: UnitOfWork, claimed: Claim, result: AttemptResult, policy: RetryPolicy, fraction: float
) -> str:
    """Record one attempt and move the delivery on: ``delivered``, ``failed`` (retry
    scheduled) or ``dead``. A worker whose lease was taken over records its attempt but
    leaves the schedule to the new holder; a 2xx is a delivery whoever holds the lease."""
    d = webhook_deliveries
    now = uow.clock.now()
    query = select(d).where(d.c.id == claimed.delivery_id)
    if uow.dialect == "postgresql":
        query = query.with_for_update()
    row = uow.execute(query).one()
    holds_lease = row.lease_token == claimed.lease_token and row.status == "pending"
    if result.delivered:
        outcome = "delivered"
        if row.status == "pending":
            _finish(uow, row.id, "delivered", now, status_code=result.status_code)
    elif not holds_lease:
        outcome = "failed"
    else:
        when = next_attempt_at(policy, row.attempt_count, now, row.retry_until, fraction)
        outcome = "dead" if when is None else "failed"
        values: dict[str, Any] = {
            "last_status_code": result.status_code,
            "last_error": _clip(result.error, ERROR_CHARS_MAX),
            "lease_until": None,
            "lease_token": None,
            "updated_at": now,
        }
        if when is None:
            values.update(status="dead", next_attempt_at=None)
        else:
            values.update(next_attempt_at=when)
        uow.execute(update(d).where(d.c.id == row.id).values(**values))
    uow.execute(
        insert(webhook_attempts).values(
            delivery_id=claimed.delivery_id,
            attempt=claimed.attempt,
            started_at=result.started_at,
            url=claimed.url,
            status_code=result.status_code,
            latency_ms=result.latency_ms,
            error=_clip(result.error, ERROR_CHARS_MAX),
            response_excerpt=_clip(result.response_excerpt, RESPONSE_EXCERPT_CHARS_MAX),
            outcome=outcome,
        )
    )
    return outcome


def _finish(
    uow: UnitOfWork,
    delivery_id: str,
    status: str,
    now: datetime,
    *,
    status_code: int | None = None,
    error: str | None = None,
) -> None:
    d = webhook_deliveries
    values: dict[str, Any] = {
        "status": status,
        "next_attempt_at": None,
        "lease_until": None,
        "lease_token": None,
        "updated_at": now,
        "last_status_code": status_code,
        "last_error": error,
    }
    if status == "delivered":
        values["delivered_at"] = now
    uow.execute(update(d).where(and_(d.c.id == delivery_id)).values(**values))


def _clip(text: str | None, limit: int) -> str | None:
    if text is None:
        return None
    return text if len(text) <= limit else text[: limit - 1] + "…"
