"""Webhook endpoints, the events their owners may read, and the delivery log.

::

    endpoint = webhooks.create_endpoint(uow, merchant, url=..., event_types=["order.*"],
                                        endpoint_format="standard", master_key=key)
    endpoint["secret_key"]          # whsec_…, shown once; stored sealed under the master key
    webhooks.rotate_secret(uow, merchant, endpoint["id"], overlap_s=86400, master_key=key)

Owners are admins, users, merchants and agent platforms (agents never: their credentials
never manage endpoints). An owner sees only its own endpoints, and receives and lists only
events about its own objects (see :mod:`paywarden.services.webhook_owners`); an admin's
endpoints may receive every event of their mode. Objects a caller may not see answer 404.

Every change to an endpoint is audited and announced (``webhook_endpoint.*``) in its
transaction. The delivery machinery is in :mod:`paywarden.services.webhook_delivery`.
"""

from __future__ import annotations

import ipaddress
import secrets
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import insert, select, update

from paywarden.adapters.ids import new_id
from paywarden.kernel.clock import rfc3339
from paywarden.kernel.errors import InvalidRequest, NotFound, PermissionDenied
from paywarden.kernel.events import EVENT_TYPES
from paywarden.kernel.ids import PREFIXES
from paywarden.kernel.principals import Principal, PrincipalType
from paywarden.services import audit, webhook_payloads
from paywarden.services.listing import check_limit
from paywarden.services.records import Page
from paywarden.services.webhook_delivery import RetryPolicy, fan_out, new_delivery
from paywarden.store import schema
from paywarden.store.outbox import emit
from paywarden.store.tables_webhooks import (
    URL_LENGTH_MAX,
    event_owners,
    webhook_attempts,
    webhook_deliveries,
    webhook_endpoints,
)
from paywarden.store.unit_of_work import UnitOfWork
from paywarden.trust.custody import NONCE_BYTES
from paywarden.trust.webhook_signing import SECRET_BYTES, format_secret, seal_webhook_secret

__all__ = [
    "ENDPOINT_FORMATS",
    "OVERLAP_S_DEFAULT",
    "OVERLAP_S_MAX",
    "check_event_types",
    "check_url",
    "create_endpoint",
    "delete_endpoint",
    "get_delivery",
    "get_endpoint",
    "get_event",
    "list_deliveries",
    "list_endpoints",
    "list_events",
    "resend_delivery",
    "resend_event",
    "rotate_secret",
    "trigger",
    "update_endpoint",
    "webhook_history",
]

ENDPOINT_FORMATS = ("standard", "acp")
EVENT_TYPES_MAX = 64
OVERLAP_S_DEFAULT = 24 * 3600
OVERLAP_S_MAX = 7 * 24 * 3600
ATTEMPTS_SHOWN_MAX = 50
_OWNER_TYPE = {
    PrincipalType.ADMIN: "admin",
    PrincipalType.USER: "user",
    PrincipalType.MERCHANT: "merchant",
    PrincipalType.PLATFORM: "platform",
}


# --- checks ---------------------------------------------------------------------------------


def _owner(principal: Principal) -> tuple[str, str | None]:
    owner_type = _OWNER_TYPE.get(principal.type)
    if owner_type is None:
        raise PermissionDenied("webhook endpoints belong to admins, users, merchants or platforms")
    return owner_type, None if principal.is_admin else principal.id


def check_url(url: str, livemode: bool) -> str:
    """http or https with a host; in live mode https only and no loopback or private
    address (loopback over http is for development, in test mode)."""
    parts = urlsplit(url)
    if len(url) > URL_LENGTH_MAX or parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequest(
            "url must be an http(s) URL with a host", code="invalid_url", param="$.url"
        )
    if parts.username or parts.password:
        raise InvalidRequest("url must not carry credentials", code="invalid_url", param="$.url")
    if livemode:
        host = parts.hostname
        try:
            private = not ipaddress.ip_address(host).is_global
        except ValueError:
            private = host == "localhost" or host.endswith((".localhost", ".local"))
        if parts.scheme != "https" or private:
            raise InvalidRequest(
                "live-mode endpoints need https on a public host", code="invalid_url", param="$.url"
            )
    return url


def check_event_types(types: list[str], endpoint_format: str) -> list[str]:
    """Known types, ``resource.*`` or ``*``; an ACP endpoint takes only order events."""
    if not 1 <= len(types) <= EVENT_TYPES_MAX:
        raise InvalidRequest(
            f"enabled_events lists 1 to {EVENT_TYPES_MAX} types",
            code="invalid_event_types",
            param="$.enabled_events",
        )
    resources = {name.partition(".")[0] for name in EVENT_TYPES}
    for index, name in enumerate(types):
        resource, _, action = name.partition(".")
        known = name == "*" or name in EVENT_TYPES or (action == "*" and resource in resources)
        if not known:
            raise InvalidRequest(
                f"unknown event type {name!r}",
                code="invalid_event_types",
                param=f"$.enabled_events[{index}]",
            )
    if endpoint_format == "acp" and not all(
        t in ("*", "order.*", *webhook_payloads.ACP_EVENT_TYPES) for t in types
    ):
        raise InvalidRequest(
            "an acp endpoint receives only order.created and order.updated",
            code="invalid_event_types",
            param="$.enabled_events",
        )
    return sorted(set(types))


def _check_format(endpoint_format: str, principal: Principal) -> None:
    if endpoint_format not in ENDPOINT_FORMATS:
        raise InvalidRequest("format is standard or acp", code="invalid_value", param="$.format")
    if endpoint_format == "acp" and principal.type not in (
        PrincipalType.PLATFORM,
        PrincipalType.ADMIN,
    ):
        raise PermissionDenied("acp endpoints are for agent platforms")


# --- endpoints ------------------------------------------------------------------------------


def _wire_endpoint(row: Any, secret: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": row.id,
        "object": "webhook_endpoint",
        "livemode": row.livemode,
        "created": rfc3339(row.created_at),
        "owner_type": row.owner_type,
        "owner": row.owner_id,
        "url": row.url,
        "description": row.description,
        "enabled_events": list(row.event_types),
        "format": row.format,
        "status": row.status,
        "secret_hint": row.secret_hint,
        "previous_secret_expires_at": (
            rfc3339(row.previous_secret_expires_at) if row.previous_secret_expires_at else None
        ),
    }
    if secret is not None:
        body["secret_key"] = secret
    return body


def _new_secret(master_key: bytes, endpoint_id: str) -> tuple[str, str]:
    secret = format_secret(secrets.token_bytes(SECRET_BYTES))
    sealed = seal_webhook_secret(master_key, secrets.token_bytes(NONCE_BYTES), endpoint_id, secret)
    return secret, sealed


def _hint(secret: str) -> str:
    return secret[:10] + "…"


def create_endpoint(
    uow: UnitOfWork,
    principal: Principal,
    *,
    url: str,
    event_types: list[str],
    endpoint_format: str,
    description: str | None,
    master_key: bytes,
) -> dict[str, Any]:
    """Register an endpoint; its ``secret_key`` appears in this answer only."""
    owner_type, owner_id = _owner(principal)
    _check_format(endpoint_format, principal)
    now = uow.clock.now()
    endpoint_id = new_id("whe")
    secret, sealed = _new_secret(master_key, endpoint_id)
    values = {
        "id": endpoint_id,
        "livemode": principal.livemode,
        "owner_type": owner_type,
        "owner_id": owner_id,
        "url": check_url(url, principal.livemode),
        "description": description,
        "event_types": check_event_types(event_types, endpoint_format),
        "format": endpoint_format,
        "status": "enabled",
        "secret_sealed": sealed,
        "secret_hint": _hint(secret),
        "created_at": now,
        "updated_at": now,
    }
    uow.execute(insert(webhook_endpoints).values(**values))
    row = _endpoint_row(uow, principal, endpoint_id)
    audit.record(
        uow,
        "webhook_endpoint.created",
        principal,
        endpoint_id,
        {"url": url, "format": endpoint_format},
    )
    emit(uow, "webhook_endpoint.created", principal.livemode, _wire_endpoint(row))
    return _wire_endpoint(row, secret)


def _endpoint_row(
    uow: UnitOfWork, principal: Principal, endpoint_id: str, *, for_update: bool = False
) -> Any:
    e = webhook_endpoints
    query = select(e).where(e.c.id == endpoint_id, e.c.status != "deleted")
    if for_update and uow.dialect == "postgresql":
        query = query.with_for_update()
    row = uow.execute(query).first()
    if (
        row is None
        or row.livemode != principal.livemode
        or not (principal.is_admin or (principal.id is not None and row.owner_id == principal.id))
    ):
        raise NotFound(f"no such webhook endpoint: {endpoint_id}", param="$.endpoint")
    return row


def get_endpoint(uow: UnitOfWork, principal: Principal, endpoint_id: str) -> dict[str, Any]:
    _owner(principal)
    return _wire_endpoint(_endpoint_row(uow, principal, endpoint_id))


def list_endpoints(
    uow: UnitOfWork, principal: Principal, *, limit: int | None, starting_after: str | None
) -> Page:
    _owner(principal)
    e = webhook_endpoints
    query = select(e).where(e.c.livemode == principal.livemode, e.c.status != "deleted")
    if not principal.is_admin:
        query = query.where(e.c.owner_id == principal.id)
    return _page(uow, query, e.c.id, limit, starting_after, _wire_endpoint)


def _page(
    uow: UnitOfWork,
    query: Any,
    id_column: Any,
    limit: int | None,
    starting_after: str | None,
    render: Any,
) -> Page:
    size = check_limit(limit)
    if starting_after is not None:
        query = query.where(id_column < starting_after)
    rows = list(uow.execute(query.order_by(id_column.desc()).limit(size + 1)))
    return Page(items=[render(r) for r in rows[:size]], has_more=len(rows) > size)


def update_endpoint(
    uow: UnitOfWork,
    principal: Principal,
    endpoint_id: str,
    *,
    url: str | None = None,
    event_types: list[str] | None = None,
    description: str | None = None,
    status: str | None = None,
) -> dict[str, Any]:
    """Change the URL, the event types, the description, or enable/disable."""
    row = _endpoint_row(uow, principal, endpoint_id, for_update=True)
    values: dict[str, Any] = {"updated_at": uow.clock.now()}
    if url is not None:
        values["url"] = check_url(url, row.livemode)
    if event_types is not None:
        values["event_types"] = check_event_types(event_types, row.format)
    if description is not None:
        values["description"] = description
    if status is not None:
        if status not in ("enabled", "disabled"):
            raise InvalidRequest(
                "status is enabled or disabled", code="invalid_value", param="$.status"
            )
        values["status"] = status
    uow.execute(
        update(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id).values(**values)
    )
    changed = sorted(set(values) - {"updated_at"})
    audit.record(uow, "webhook_endpoint.updated", principal, endpoint_id, {"changed": changed})
    wire = _wire_endpoint(_endpoint_row(uow, principal, endpoint_id))
    emit(uow, "webhook_endpoint.updated", row.livemode, wire)
    return wire


def delete_endpoint(uow: UnitOfWork, principal: Principal, endpoint_id: str) -> dict[str, Any]:
    """Remove the endpoint; its pending deliveries are canceled, its log is kept."""
    row = _endpoint_row(uow, principal, endpoint_id, for_update=True)
    now = uow.clock.now()
    e, d = webhook_endpoints, webhook_deliveries
    uow.execute(
        update(e)
        .where(e.c.id == endpoint_id)
        .values(status="deleted", deleted_at=now, updated_at=now)
    )
    uow.execute(
        update(d)
        .where(d.c.endpoint_id == endpoint_id, d.c.status == "pending")
        .values(
            status="canceled",
            next_attempt_at=None,
            lease_until=None,
            lease_token=None,
            updated_at=now,
        )
    )
    audit.record(uow, "webhook_endpoint.deleted", principal, endpoint_id, {"url": row.url})
    wire = {**_wire_endpoint(row), "status": "deleted", "deleted": True}
    emit(uow, "webhook_endpoint.deleted", row.livemode, wire)
    return wire


def rotate_secret(
    uow: UnitOfWork,
    principal: Principal,
    endpoint_id: str,
    *,
    overlap_s: int,
    master_key: bytes,
) -> dict[str, Any]:
    """A new secret (shown once); the old one keeps signing beside it for ``overlap_s``."""
    if not 0 <= overlap_s <= OVERLAP_S_MAX:
        raise InvalidRequest(
            f"expire_previous_in_s is 0 to {OVERLAP_S_MAX}",
            code="invalid_value",
            param="$.expire_previous_in_s",
        )
    row = _endpoint_row(uow, principal, endpoint_id, for_update=True)
    now = uow.clock.now()
    secret, sealed = _new_secret(master_key, endpoint_id)
    uow.execute(
        update(webhook_endpoints)
        .where(webhook_endpoints.c.id == endpoint_id)
        .values(
            secret_sealed=sealed,
            secret_hint=_hint(secret),
            previous_secret_sealed=row.secret_sealed if overlap_s else None,
            previous_secret_expires_at=now + timedelta(seconds=overlap_s) if overlap_s else None,
            updated_at=now,
        )
    )
    audit.record(
        uow, "webhook_endpoint.secret_rotated", principal, endpoint_id, {"overlap_s": overlap_s}
    )
    updated = _endpoint_row(uow, principal, endpoint_id)
    emit(uow, "webhook_endpoint.updated", row.livemode, _wire_endpoint(updated))
    return _wire_endpoint(updated, secret)


# --- events ---------------------------------------------------------------------------------


def _wire_event(row: Any) -> dict[str, Any]:
    return webhook_payloads.event_object(row.id, row.type, row.livemode, row.created_at, row.data)


def _events_query(principal: Principal) -> Any:
    ev = schema.events
    query = select(ev).where(ev.c.livemode == principal.livemode)
    if not principal.is_admin:
        owned = select(event_owners.c.event_id).where(event_owners.c.owner_id == principal.id)
        query = query.where(ev.c.id.in_(owned))
    return query


def list_events(
    uow: UnitOfWork,
    principal: Principal,
    *,
    event_type: str | None,
    limit: int | None,
    starting_after: str | None,
    ending_before: str | None = None,
) -> Page:
    """The caller's events, newest first (``ending_before``: the oldest ones newer than that
    id, still newest first, as a stream reader wants them)."""
    _owner(principal)
    ev = schema.events
    query = _events_query(principal)
    if event_type:
        resource, _, action = event_type.partition(".")
        query = query.where(
            ev.c.type.like(f"{resource}.%") if action == "*" else ev.c.type == event_type
        )
    if ending_before is None:
        return _page(uow, query, ev.c.id, limit, starting_after, _wire_event)
    size = check_limit(limit)
    rows = list(uow.execute(query.where(ev.c.id > ending_before).order_by(ev.c.id).limit(size + 1)))
    return Page(items=[_wire_event(r) for r in reversed(rows[:size])], has_more=len(rows) > size)


def _event_row(uow: UnitOfWork, principal: Principal, event_id: str) -> Any:
    _owner(principal)
    row = uow.execute(_events_query(principal).where(schema.events.c.id == event_id)).first()
    if row is None:
        raise NotFound(f"no such event: {event_id}", param="$.event")
    return row


def get_event(uow: UnitOfWork, principal: Principal, event_id: str) -> dict[str, Any]:
    return _wire_event(_event_row(uow, principal, event_id))


def trigger(uow: UnitOfWork, principal: Principal, event_type: str) -> dict[str, Any]:
    """Emit a sample ``event_type`` event (test mode) that only the caller's endpoints get."""
    owner_type, owner_id = _owner(principal)
    if principal.livemode:
        raise InvalidRequest("sample events are for test mode", code="livemode_not_allowed")
    if event_type not in EVENT_TYPES:
        raise InvalidRequest(
            f"unknown event type {event_type!r}", code="invalid_event_types", param="$.type"
        )
    resource = event_type.partition(".")[0]
    prefix = next((p for p, name in PREFIXES.items() if name.replace(" ", "_") == resource), "evt")
    obj = webhook_payloads.sample_object(
        event_type, owner_type, owner_id, new_id(prefix), uow.clock.now()
    )
    event_id = emit(uow, event_type, False, obj)
    audit.record(uow, "event.triggered", principal, event_id, {"type": event_type})
    return {
        "id": event_id,
        "object": "event",
        "type": event_type,
        "livemode": False,
        "sample": True,
    }


# --- deliveries -----------------------------------------------------------------------------


def _wire_delivery(row: Any, attempts: list[Any] | None = None) -> dict[str, Any]:
    def instant(value: datetime | None) -> str | None:
        return rfc3339(value) if value is not None else None

    body: dict[str, Any] = {
        "id": row.id,
        "object": "webhook_delivery",
        "livemode": row.livemode,
        "created": rfc3339(row.created_at),
        "event": row.event_id,
        "endpoint": row.endpoint_id,
        "status": row.status,
        "attempt_count": row.attempt_count,
        "next_attempt_at": instant(row.next_attempt_at) if row.status == "pending" else None,
        "retry_until": instant(row.retry_until),
        "delivered_at": instant(row.delivered_at),
        "last_status_code": row.last_status_code,
        "last_error": row.last_error,
    }
    if attempts is not None:
        body["attempts"] = [
            {
                "attempt": a.attempt,
                "started_at": rfc3339(a.started_at),
                "url": a.url,
                "status_code": a.status_code,
                "latency_ms": a.latency_ms,
                "error": a.error,
                "response_excerpt": a.response_excerpt,
                "outcome": a.outcome,
            }
            for a in attempts
        ]
    return body


def _visible_endpoint_ids(principal: Principal) -> Any:
    e = webhook_endpoints
    query = select(e.c.id).where(e.c.livemode == principal.livemode)
    return query if principal.is_admin else query.where(e.c.owner_id == principal.id)


def list_deliveries(
    uow: UnitOfWork,
    principal: Principal,
    *,
    endpoint_id: str | None = None,
    event_id: str | None = None,
    limit: int | None,
    starting_after: str | None,
) -> Page:
    """The delivery log of one endpoint, or of one event to the caller's endpoints."""
    d = webhook_deliveries
    query = select(d).where(d.c.endpoint_id.in_(_visible_endpoint_ids(principal)))
    if endpoint_id is not None:
        _endpoint_row(uow, principal, endpoint_id)
        query = query.where(d.c.endpoint_id == endpoint_id)
    if event_id is not None:
        _event_row(uow, principal, event_id)
        query = query.where(d.c.event_id == event_id)
    return _page(uow, query, d.c.id, limit, starting_after, _wire_delivery)


def _delivery_row(uow: UnitOfWork, principal: Principal, delivery_id: str) -> Any:
    _owner(principal)
    d = webhook_deliveries
    row = uow.execute(
        select(d).where(
            d.c.id == delivery_id, d.c.endpoint_id.in_(_visible_endpoint_ids(principal))
        )
    ).first()
    if row is None:
        raise NotFound(f"no such webhook delivery: {delivery_id}", param="$.delivery")
    return row


def get_delivery(uow: UnitOfWork, principal: Principal, delivery_id: str) -> dict[str, Any]:
    """One delivery with its most recent attempts (status, latency, error, response)."""
    row = _delivery_row(uow, principal, delivery_id)
    a = webhook_attempts
    attempts = list(
        uow.execute(
            select(a)
            .where(a.c.delivery_id == delivery_id)
            .order_by(a.c.id.desc())
            .limit(ATTEMPTS_SHOWN_MAX)
        )
    )
    return _wire_delivery(row, list(reversed(attempts)))


def _requeue(uow: UnitOfWork, delivery_id: str, policy: RetryPolicy) -> None:
    now = uow.clock.now()
    uow.execute(
        update(webhook_deliveries)
        .where(webhook_deliveries.c.id == delivery_id)
        .values(
            status="pending",
            next_attempt_at=now,
            retry_until=now + timedelta(seconds=policy.window_s),
            lease_until=None,
            lease_token=None,
            updated_at=now,
        )
    )


def resend_delivery(
    uow: UnitOfWork, principal: Principal, delivery_id: str, policy: RetryPolicy
) -> dict[str, Any]:
    """Send again now (delivered, dead or pending alike), with a fresh retry window."""
    row = _delivery_row(uow, principal, delivery_id)
    endpoint = _endpoint_row(uow, principal, row.endpoint_id)
    if endpoint.status != "enabled":
        raise InvalidRequest(
            "the endpoint is disabled", code="endpoint_disabled", param="$.endpoint"
        )
    _requeue(uow, delivery_id, policy)
    audit.record(uow, "webhook_delivery.resent", principal, delivery_id, {"event": row.event_id})
    return get_delivery(uow, principal, delivery_id)


def resend_event(
    uow: UnitOfWork,
    principal: Principal,
    event_id: str,
    endpoint_id: str | None,
    policy: RetryPolicy,
) -> Page:
    """Send an event again to one of the caller's endpoints (queued even if it was created
    after the event), or to every endpoint of the caller that already had it."""
    fan_out(uow, policy)
    event = _event_row(uow, principal, event_id)
    d = webhook_deliveries
    if endpoint_id is not None:
        endpoint = _endpoint_row(uow, principal, endpoint_id)
        if endpoint.format == "acp" and event.type not in webhook_payloads.ACP_EVENT_TYPES:
            raise InvalidRequest(
                "an acp endpoint receives only order events", code="invalid_event_types"
            )
        existing = uow.execute(
            select(d.c.id).where(d.c.event_id == event_id, d.c.endpoint_id == endpoint_id)
        ).first()
        if existing is None:
            now = uow.clock.now()
            row = new_delivery(event_id, endpoint_id, event.livemode, now, policy)
            uow.execute(insert(d).values(**row))
    query = select(d.c.id).where(
        d.c.event_id == event_id, d.c.endpoint_id.in_(_visible_endpoint_ids(principal))
    )
    if endpoint_id is not None:
        query = query.where(d.c.endpoint_id == endpoint_id)
    ids = [r.id for r in uow.execute(query)]
    for delivery_id in ids:
        _requeue(uow, delivery_id, policy)
    audit.record(uow, "event.resent", principal, event_id, {"deliveries": ids})
    rows = uow.execute(select(d).where(d.c.id.in_(ids)).order_by(d.c.id.desc()))
    return Page(items=[_wire_delivery(r) for r in rows], has_more=False)


def webhook_history(
    uow: UnitOfWork, object_id: str, *, events_max: int = 200
) -> list[dict[str, Any]]:
    """Every event about ``object_id`` (``data.object.id``), oldest first, each with its
    deliveries and their attempts: the webhook part of a dispute evidence bundle. It scans
    the outbox (no index on the object id): meant for an occasional download, not a hot path.
    No access check: the caller has already authorized access to the object."""
    ev, d, a = schema.events, webhook_deliveries, webhook_attempts
    rows = list(
        uow.execute(
            select(ev)
            .where(ev.c.data["object"]["id"].as_string() == object_id)
            .order_by(ev.c.sequence)
            .limit(events_max)
        )
    )
    history = []
    for row in rows:
        deliveries = []
        for delivery in uow.execute(select(d).where(d.c.event_id == row.id).order_by(d.c.id)):
            attempts = list(
                uow.execute(
                    select(a)
                    .where(a.c.delivery_id == delivery.id)
                    .order_by(a.c.id)
                    .limit(ATTEMPTS_SHOWN_MAX)
                )
            )
            deliveries.append(_wire_delivery(delivery, attempts))
        history.append({**_wire_event(row), "deliveries": deliveries})
    return history
