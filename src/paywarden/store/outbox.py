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

__all__ = ["emit", "insert_all"]

# Built once: the hot path (a payment writes three events) skips building and keying it.
_INSERT = insert(schema.events)


def emit(
    uow: UnitOfWork, event_type: str, livemode: bool, data: dict[str, Any], *, at_end: bool = False
) -> str:
    """Write the event in the caller's transaction. With ``at_end`` it is inserted at the
    transaction's end (``UnitOfWork.event_at_end``: a group inserts all of its units' events
    in one statement), and reads of the outbox in this transaction do not see it before:
    for the payment path, which reads no events. An event that follows one put off is put
    off too, so that their order (their ``sequence``) is the order they were emitted in."""
    invariant(event_type in EVENT_TYPES, f"unlisted event type {event_type}")
    event_id = new_id("evt")
    row = {
        "id": event_id,
        "livemode": livemode,
        "type": event_type,
        "data": {"object": data},
        "created_at": uow.clock.now(),
    }
    if at_end or uow.tail.events:
        uow.event_at_end(row)
    else:
        uow.write(_INSERT, row)
    return event_id


def insert_all(uow: UnitOfWork, rows: list[dict[str, Any]]) -> None:
    """Insert outbox events put off to the end of a transaction, in order, in one statement."""
    uow.write(_INSERT, rows)


prepare_all(globals())  # the statements built above run on the driver (store.prepared)
