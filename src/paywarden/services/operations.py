"""What the operator view shows: the audit chain's state, the risk engine's recent decisions
and the platform's vital counts. Read-only; an admin principal only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from paywarden.kernel.errors import PermissionDenied
from paywarden.kernel.principals import Principal
from paywarden.services import audit, keys
from paywarden.services.payments import PaymentRecord, from_row
from paywarden.store import schema
from paywarden.store.tables_approvals import approvals
from paywarden.store.tables_mandates import payments
from paywarden.store.unit_of_work import UnitOfWork
from paywarden.trust.audit import VerifyReport

__all__ = ["Vitals", "audit_report", "risk_decisions", "vitals"]

RISK_SCAN_MAX = 500  # recent non-approved payments looked at for risk reasons


def _admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise PermissionDenied("the operator view is for admins")


@dataclass(frozen=True, slots=True)
class Vitals:
    users: int
    merchants: int
    payments: int
    pending_holds: int
    pending_approvals: int
    events: int
    audit_records: int
    audit_checkpoints: int
    idempotency_records: int


def _count(uow: UnitOfWork, table: Any, *conditions: Any) -> int:
    return int(uow.execute(select(func.count()).select_from(table).where(*conditions)).scalar_one())


def vitals(uow: UnitOfWork, principal: Principal) -> Vitals:
    _admin(principal)
    return Vitals(
        users=_count(uow, schema.users, schema.users.c.livemode == principal.livemode),
        merchants=_count(uow, schema.merchants, schema.merchants.c.livemode == principal.livemode),
        payments=_count(uow, payments, payments.c.livemode == principal.livemode),
        pending_holds=_count(uow, schema.holds, schema.holds.c.status == "pending"),
        pending_approvals=_count(uow, approvals, approvals.c.status == "pending"),
        events=_count(uow, schema.events),
        audit_records=_count(uow, schema.audit_records),
        audit_checkpoints=_count(uow, schema.audit_checkpoints),
        idempotency_records=_count(uow, schema.idempotency_keys),
    )


def risk_decisions(
    uow: UnitOfWork, principal: Principal, *, limit: int = 50
) -> list[PaymentRecord]:
    """The latest payments that a risk rule stepped up or declined, newest first."""
    _admin(principal)
    p = payments
    rows = uow.execute(
        select(p)
        .where(p.c.livemode == principal.livemode, p.c.status != "succeeded")
        .order_by(p.c.id.desc())
        .limit(RISK_SCAN_MAX)
    )
    found = [r for r in map(from_row, rows) if any(x.startswith("risk_") for x in r.reasons)]
    return found[:limit]


def audit_report(uow: UnitOfWork, principal: Principal) -> VerifyReport:
    """Verify every audit chain and checkpoint now, against the platform's own keys."""
    _admin(principal)
    return audit.verify(uow, keys.audit_public_keys(uow))
