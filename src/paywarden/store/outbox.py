"""The transactional outbox: events written in the same transaction as their cause."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert

from paywarden.adapters.ids import new_id
from paywarden.kernel.events import EVENT_TYPES
from paywarden.kernel.invariant import invariant
from paywarden.store import schema
from paywarden.store.prepared import prepare_all
from paywarden.store.unit_of_work import UnitOfWork

__all__ = ["emit"]

# Built once: the hot path (a payment writes three events) skips building and keying it.
_INSERT = insert(schema.events)


def emit(uow: UnitOfWork, event_type: str, livemode: bool, data: dict[str, Any]) -> str:
    invariant(event_type in EVENT_TYPES, f"unlisted event type {event_type}")
    event_id = new_id("evt")
    uow.write(
        _INSERT,
        {
            "id": event_id,
            "livemode": livemode,
            "type": event_type,
            "data": {"object": data},
            "created_at": uow.clock.now(),
        },
    )
    return event_id


prepare_all(globals())  # the statements built above run on the driver (store.prepared)
