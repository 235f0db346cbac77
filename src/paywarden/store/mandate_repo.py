"""Mandates and their usage, between rows and the pure domain of ``authorization.mandates``.

:func:`load_mandate` with ``lock=True`` takes the mandate row ``FOR UPDATE``: every payment
and every lifecycle change does so first, which serializes them per mandate on PostgreSQL
(SQLite serializes all writers with ``BEGIN IMMEDIATE``). That lock is what makes "usage
never exceeds its limits" and "revocation wins" hold across API nodes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from paywarden.authorization.constraints import Period, parse_constraints, to_json
from paywarden.authorization.mandates import Mandate, MandateStatus, PeriodKey, Spent, Usage
from paywarden.kernel.errors import NotFound
from paywarden.kernel.invariant import invariant
from paywarden.store.prepared import prepare_all
from paywarden.store.tables_mandates import LIFETIME, mandate_usage, mandates
from paywarden.store.unit_of_work import UnitOfWork

__all__ = [
    "MandateRow",
    "insert_mandate",
    "load_mandate",
    "load_usage",
    "save_mandate",
    "save_usage",
]


@dataclass(frozen=True, slots=True)
class MandateRow:
    """A mandate with what only the store keeps: its mode and the conversation excerpt."""

    mandate: Mandate
    livemode: bool
    conversation_excerpt: str | None
    excerpt_expires_at: datetime | None


def _mandate_from_row(row: Any) -> Mandate:
    return Mandate(
        id=row.id,
        user=row.user_id,
        agent=row.agent_id,
        currency=row.currency,
        timezone=row.timezone,
        constraints=parse_constraints(row.constraints, currency=row.currency),
        status=MandateStatus(row.status),
        created=row.created_at,
        revision=row.revision,
        consented_at=row.consented_at,
        paused_at=row.paused_at,
        revoked_at=row.revoked_at,
        ended_at=row.ended_at,
    )


def _values(mandate: Mandate) -> dict[str, Any]:
    return {
        "status": mandate.status.value,
        "constraints": [to_json(c) for c in mandate.constraints],
        "revision": mandate.revision,
        "consented_at": mandate.consented_at,
        "paused_at": mandate.paused_at,
        "revoked_at": mandate.revoked_at,
        "ended_at": mandate.ended_at,
    }


# Every payment runs these: built once (building and keying costs more than running).
_MANDATE = select(mandates).where(mandates.c.id == bindparam("mandate_id"))
_MANDATE_LOCKED = _MANDATE.with_for_update()
_USAGE = select(mandate_usage).where(mandate_usage.c.mandate_id == bindparam("mandate_id"))
_DROP_PERIODS = delete(mandate_usage).where(
    mandate_usage.c.mandate_id == bindparam("mandate_id"),
    mandate_usage.c.period.in_(bindparam("periods", expanding=True)),
)
_UPSERT_USAGE = {
    dialect: (
        (usage_insert := dialect_insert(mandate_usage)).on_conflict_do_update(
            index_elements=[mandate_usage.c.mandate_id, mandate_usage.c.period],
            set_={
                "amount": usage_insert.excluded.amount,
                "count": usage_insert.excluded.count,
                "last_payment_at": usage_insert.excluded.last_payment_at,
            },
        )
    )
    for dialect, dialect_insert in (("postgresql", postgresql_insert), ("sqlite", sqlite_insert))
}


def prefetch_mandate_and_usage(uow: UnitOfWork, mandate_id: str) -> None:
    """Send ahead (``UnitOfWork.prefetch``) what a payment reads first: the mandate, locked,
    then its usage (read after the lock, as :func:`load_mandate` and :func:`load_usage`)."""
    uow.prefetch(_MANDATE_LOCKED, {"mandate_id": mandate_id})
    uow.prefetch(_USAGE, {"mandate_id": mandate_id})


def load_mandate(uow: UnitOfWork, mandate_id: str, *, lock: bool) -> MandateRow:
    row = uow.execute(_MANDATE_LOCKED if lock else _MANDATE, {"mandate_id": mandate_id}).first()
    if row is None:
        raise NotFound(f"no such mandate: {mandate_id}", param="$.mandate")
    return MandateRow(
        _mandate_from_row(row), row.livemode, row.conversation_excerpt, row.excerpt_expires_at
    )


def insert_mandate(uow: UnitOfWork, stored: MandateRow) -> None:
    mandate = stored.mandate
    uow.execute(
        insert(mandates).values(
            id=mandate.id,
            livemode=stored.livemode,
            user_id=mandate.user,
            agent_id=mandate.agent,
            currency=mandate.currency,
            timezone=mandate.timezone,
            created_at=mandate.created,
            conversation_excerpt=stored.conversation_excerpt,
            excerpt_expires_at=stored.excerpt_expires_at,
            **_values(mandate),
        )
    )


def save_mandate(uow: UnitOfWork, before: Mandate, after: Mandate) -> None:
    """Write a transition; the caller holds the row lock, so the revision must match."""
    invariant(after.revision == before.revision + 1, "a transition adds one to the revision")
    done = uow.execute(
        update(mandates)
        .where(mandates.c.id == before.id, mandates.c.revision == before.revision)
        .values(**_values(after))
    )
    invariant(done.rowcount == 1, f"mandate {before.id} changed under its row lock")


def _period_key(text: str) -> PeriodKey:
    period, _, start = text.partition(":")
    return PeriodKey(Period(period), date.fromisoformat(start))


def load_usage(uow: UnitOfWork, mandate_id: str) -> Usage:
    rows = uow.execute(_USAGE, {"mandate_id": mandate_id})
    lifetime, periods, last = Spent(), {}, None
    for row in rows:
        spent = Spent(int(row.amount), int(row.count))
        if row.period == LIFETIME:
            lifetime, last = spent, row.last_payment_at
        else:
            periods[_period_key(row.period)] = spent
    return Usage(lifetime, periods, last)


def save_usage(uow: UnitOfWork, mandate_id: str, before: Usage, after: Usage) -> None:
    """Store ``after`` in place of ``before``, the usage :func:`load_usage` read under the
    mandate's lock: its rows are upserted (one statement), and the periods that ended
    (``after`` keeps only the current ones) deleted."""
    ended = [str(key) for key in before.periods if key not in after.periods]
    if ended:
        uow.write(_DROP_PERIODS, {"mandate_id": mandate_id, "periods": ended})
    rows = [
        {
            "mandate_id": mandate_id,
            "period": LIFETIME,
            "amount": after.lifetime.amount,
            "count": after.lifetime.count,
            "last_payment_at": after.last_payment_at,
        }
    ]
    rows += [
        {
            "mandate_id": mandate_id,
            "period": str(key),
            "amount": spent.amount,
            "count": spent.count,
            "last_payment_at": None,
        }
        for key, spent in sorted(after.periods.items())
    ]
    uow.write(_UPSERT_USAGE[uow.dialect], rows)


prepare_all(globals())  # the statements built above run on the driver (store.prepared)
