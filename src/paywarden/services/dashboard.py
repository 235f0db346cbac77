"""What the user's pages on the trusted surface show: read models over wallets, mandates,
approvals, payments and agents, each scoped to one signed-in user.

Nothing here decides anything; the pages call the same services as the API to change state
(:mod:`~paywarden.services.mandates`, :mod:`~paywarden.services.approvals`, ...). Every function
takes the user's :class:`~paywarden.kernel.principals.Principal` and reads only that user's rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select

from paywarden.authorization.constraints import Budget, Period, PeriodBudget
from paywarden.authorization.mandates import MandateStatus
from paywarden.kernel.errors import NotFound
from paywarden.kernel.principals import Principal, PrincipalType
from paywarden.payments.ledger import Account, AccountKind
from paywarden.services import approvals, mandates, payments
from paywarden.services.identity import get_user
from paywarden.store import schema
from paywarden.store.tables_agents import agent_keys, agent_platforms, agents
from paywarden.store.tables_approvals import approvals as approvals_table
from paywarden.store.tables_mandates import mandates as mandates_table
from paywarden.store.tables_mandates import payments as payments_table
from paywarden.store.unit_of_work import UnitOfWork

__all__ = [
    "AgentSummary",
    "BudgetBar",
    "Overview",
    "agent_summary",
    "connected_agents",
    "merchant_names",
    "overview",
    "pending_approval_count",
    "pending_approvals",
    "user_payments",
    "wallets",
    "week_start",
]

LIST_SIZE_MAX = 50


@dataclass(frozen=True, slots=True)
class AgentSummary:
    id: str
    name: str
    status: str
    platform: str
    origin: str
    thumbprints: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class BudgetBar:
    """One mandate's spending in the current week against the limit that bounds it."""

    mandate_id: str
    agent_name: str
    currency: str
    spent: int  # succeeded payments since the week began (the mandate's zone, Monday 00:00)
    limit: int | None  # the weekly budget, else the lifetime budget; None: no amount limit
    limit_kind: str  # "weekly" | "lifetime" | "none"
    left: int | None


@dataclass(frozen=True, slots=True)
class Overview:
    wallets: tuple[Account, ...]
    bars: tuple[BudgetBar, ...]
    pending_approvals: int
    recent: tuple[payments.PaymentRecord, ...]


def _user_only(user: Principal) -> str:
    if user.type is not PrincipalType.USER or user.id is None:
        raise NotFound("no such page")
    return user.id


def agent_summary(uow: UnitOfWork, agent_id: str) -> AgentSummary:
    a, p, k = agents, agent_platforms, agent_keys
    row = uow.execute(
        select(a.c.id, a.c.name, a.c.status, p.c.name.label("platform"), p.c.origin)
        .join(p, p.c.id == a.c.platform_id)
        .where(a.c.id == agent_id)
    ).one()
    now = uow.clock.now()
    valid = and_(
        k.c.agent_id == agent_id,
        k.c.status == "active",
        or_(k.c.not_after.is_(None), k.c.not_after >= now),
    )
    kids = uow.execute(select(k.c.kid).where(valid).order_by(k.c.created_at, k.c.kid))
    return AgentSummary(
        row.id, row.name, row.status, row.platform, row.origin, tuple(kids.scalars())
    )


def merchant_names(uow: UnitOfWork, ids: Iterable[str], livemode: bool) -> dict[str, str]:
    wanted = set(ids)
    if not wanted:
        return {}
    m = schema.merchants
    rows = uow.execute(select(m.c.id, m.c.name).where(m.c.id.in_(wanted), m.c.livemode == livemode))
    return {row.id: row.name for row in rows}


def wallets(uow: UnitOfWork, user: Principal) -> tuple[Account, ...]:
    user_id = _user_only(user)
    record = get_user(uow, user_id, user.livemode)
    return tuple(a for a in record.wallets if a.kind is AccountKind.USER_WALLET)


def week_start(now: datetime, zone: Any) -> datetime:
    """Monday 00:00 of ``now``'s week in ``zone``, as an aware instant."""
    local = now.astimezone(zone)
    monday = (local - timedelta(days=local.weekday())).date()
    return datetime(monday.year, monday.month, monday.day, tzinfo=zone)


def _spent_since(uow: UnitOfWork, mandate_id: str, since: datetime) -> int:
    p = payments_table
    total = uow.execute(
        select(func.coalesce(func.sum(p.c.amount), 0)).where(
            p.c.mandate_id == mandate_id, p.c.status == "succeeded", p.c.created_at >= since
        )
    ).scalar_one()
    return int(total)


def _bar(uow: UnitOfWork, view: mandates.MandateView, agent_name: str) -> BudgetBar:
    mandate = view.mandate
    now = uow.clock.now()
    spent = _spent_since(uow, mandate.id, week_start(now, mandates.zone(mandate)))
    weekly = [
        c for c in mandate.constraints if isinstance(c, PeriodBudget) and c.period is Period.WEEKLY
    ]
    lifetime = [c for c in mandate.constraints if isinstance(c, Budget)]
    if weekly:
        limit = min(c.max_amount for c in weekly)
        return BudgetBar(
            mandate.id, agent_name, mandate.currency, spent, limit, "weekly", max(0, limit - spent)
        )
    if lifetime:
        limit = min(c.max_amount for c in lifetime)
        left = [r.amount_left for r in view.remaining if r.constraint == Budget.type]
        amount_left = min((x for x in left if x is not None), default=None)
        return BudgetBar(
            mandate.id, agent_name, mandate.currency, spent, limit, "lifetime", amount_left
        )
    return BudgetBar(mandate.id, agent_name, mandate.currency, spent, None, "none", None)


def user_mandates(uow: UnitOfWork, user: Principal) -> list[mandates.MandateView]:
    _user_only(user)
    listed = mandates.list_mandates(uow, user, limit=LIST_SIZE_MAX)
    return list(reversed(listed.items))


def overview(uow: UnitOfWork, user: Principal) -> Overview:
    views = [v for v in user_mandates(uow, user) if v.mandate.status is MandateStatus.ACTIVE]
    names = {v.mandate.agent: agent_summary(uow, v.mandate.agent).name for v in views}
    bars = tuple(_bar(uow, v, names[v.mandate.agent]) for v in views)
    return Overview(
        wallets=wallets(uow, user),
        bars=bars,
        pending_approvals=pending_approval_count(uow, user),
        recent=tuple(user_payments(uow, user, limit=5)),
    )


def pending_approval_count(uow: UnitOfWork, user: Principal) -> int:
    user_id = _user_only(user)
    a = approvals_table
    count = uow.execute(
        select(func.count())
        .select_from(a)
        .where(
            a.c.user_id == user_id,
            a.c.livemode == user.livemode,
            a.c.status == "pending",
            a.c.expires_at > uow.clock.now(),
        )
    ).scalar_one()
    return int(count)


def pending_approvals(uow: UnitOfWork, user: Principal) -> list[approvals.ApprovalRecord]:
    user_id = _user_only(user)
    a = approvals_table
    ids = uow.execute(
        select(a.c.id)
        .where(
            a.c.user_id == user_id,
            a.c.livemode == user.livemode,
            a.c.status == "pending",
            a.c.expires_at > uow.clock.now(),
        )
        .order_by(a.c.id.desc())
        .limit(LIST_SIZE_MAX)
    ).scalars()
    return [approvals.get(uow, user, approval_id) for approval_id in ids]


def user_payments(
    uow: UnitOfWork, user: Principal, *, mandate_id: str | None = None, limit: int = LIST_SIZE_MAX
) -> list[payments.PaymentRecord]:
    """The user's payments, newest first (optionally those under one mandate)."""
    user_id = _user_only(user)
    p = payments_table
    conditions = [p.c.user_id == user_id, p.c.livemode == user.livemode]
    if mandate_id is not None:
        conditions.append(p.c.mandate_id == mandate_id)
    rows = uow.execute(select(p).where(*conditions).order_by(p.c.id.desc()).limit(limit))
    records = [payments.from_row(row) for row in rows]
    found = {
        row.payment_id: row.id
        for row in uow.execute(
            select(approvals_table.c.payment_id, approvals_table.c.id).where(
                approvals_table.c.payment_id.in_([r.id for r in records])
            )
        )
    }
    return [replace(record, approval_id=found.get(record.id)) for record in records]


def connected_agents(uow: UnitOfWork, user: Principal) -> list[tuple[AgentSummary, int]]:
    """The agents that hold or asked for a mandate of the user, with their active count."""
    user_id = _user_only(user)
    m = mandates_table
    rows = uow.execute(
        select(m.c.agent_id, m.c.status)
        .where(m.c.user_id == user_id, m.c.livemode == user.livemode)
        .order_by(m.c.agent_id)
    )
    active: dict[str, int] = {}
    for row in rows:
        active[row.agent_id] = active.get(row.agent_id, 0) + (row.status == "active")
    return [(agent_summary(uow, agent_id), count) for agent_id, count in active.items()]
