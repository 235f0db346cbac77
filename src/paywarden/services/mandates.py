"""Mandates as use cases: an agent asks, the user consents, pauses, resumes, amends, revokes.

::

    view = mandates.request_mandate(uow, agent, user="usr_…", currency="usd",
                                    constraints=[...], timezone="Europe/Paris")
    mandates.consent(uow, user, view.mandate.id)          # pending_consent -> active

The lifecycle rules are the pure ones of :mod:`paywarden.authorization.mandates`; this
module loads the row ``FOR UPDATE``, checks who may act, applies the transition, and writes
the row, an audit record and an outbox event in the caller's transaction. Who may act:

- request: the agent (for a user of its own mode); the user then consents with their key;
- consent, pause, resume, amend: the mandate's user (amend also its agent: an amendment
  only ever returns the mandate to ``pending_consent``, so the user consents afresh);
- revoke: the user or an admin; read: the user, the agent or an admin.

A mandate another principal may not see answers 404, so mandate ids leak nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select

from paywarden.adapters.ids import new_id
from paywarden.authorization import mandates as rules
from paywarden.authorization.constraints import parse_constraints, to_json
from paywarden.authorization.mandates import BudgetRemaining, Mandate
from paywarden.kernel.clock import rfc3339
from paywarden.kernel.errors import InvalidRequest, NotFound, PermissionDenied
from paywarden.kernel.principals import Principal, PrincipalType
from paywarden.services import audit
from paywarden.services.listing import page_rows
from paywarden.services.records import Page
from paywarden.store import schema
from paywarden.store.mandate_repo import (
    MandateRow,
    insert_mandate,
    load_mandate,
    load_usage,
    save_mandate,
)
from paywarden.store.outbox import emit
from paywarden.store.tables_mandates import EXCERPT_LENGTH_MAX, mandates
from paywarden.store.unit_of_work import UnitOfWork

__all__ = [
    "CONSENT_PATH",
    "EXCERPT_TTL",
    "MandateView",
    "amend",
    "consent",
    "get_mandate",
    "list_mandates",
    "pause",
    "request_mandate",
    "resume",
    "revoke",
    "wire_mandate",
    "zone",
]

# How long the conversation excerpt is kept for the consent page; after that it is not shown.
EXCERPT_TTL = timedelta(days=30)
# The consent page on the trusted surface (paywarden.web), relative to the server's base URL.
CONSENT_PATH = "/mandates/{id}/consent"


@dataclass(frozen=True, slots=True)
class MandateView:
    mandate: Mandate
    livemode: bool
    conversation_excerpt: str | None
    remaining: tuple[BudgetRemaining, ...]


def zone(mandate: Mandate) -> tzinfo:
    return _zone(mandate.timezone)


def _zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidRequest(
            f"{name!r} is not a known IANA time zone", code="invalid_timezone", param="$.timezone"
        ) from None


def _view(uow: UnitOfWork, stored: MandateRow) -> MandateView:
    mandate, now = stored.mandate, uow.clock.now()
    excerpt = stored.conversation_excerpt
    if stored.excerpt_expires_at is not None and now > stored.excerpt_expires_at:
        excerpt = None
    left = rules.remaining(mandate, load_usage(uow, mandate.id), now, zone(mandate))
    return MandateView(mandate, stored.livemode, excerpt, tuple(left))


def _hidden(mandate_id: str) -> NotFound:
    return NotFound(f"no such mandate: {mandate_id}", param="$.mandate")


def _may_see(principal: Principal, stored: MandateRow) -> bool:
    if principal.livemode != stored.livemode:
        return False
    return principal.is_admin or principal.id in {stored.mandate.user, stored.mandate.agent}


def _require_user(principal: Principal, stored: MandateRow, *, admin: bool = False) -> None:
    if not _may_see(principal, stored):
        raise _hidden(stored.mandate.id)
    if admin and principal.is_admin:
        return
    if principal.type is not PrincipalType.USER or principal.id != stored.mandate.user:
        raise PermissionDenied("only the mandate's user may do this with their own key")


def request_mandate(
    uow: UnitOfWork,
    principal: Principal,
    *,
    user: str,
    currency: str,
    constraints: Any,
    timezone: str,
    conversation_excerpt: str | None = None,
    excerpt_ttl: timedelta = EXCERPT_TTL,
) -> MandateView:
    """An agent asks ``user`` for a mandate; it waits in ``pending_consent``. The excerpt
    is kept ``excerpt_ttl`` (the ``excerpt_retention_days`` setting), then hidden."""
    if principal.type is not PrincipalType.AGENT or principal.id is None:
        raise PermissionDenied("only an agent (a signed request) asks for a mandate")
    u = schema.users
    found = uow.execute(select(u.c.id).where(u.c.id == user, u.c.livemode == principal.livemode))
    if found.first() is None:
        raise NotFound(f"no such user: {user}", param="$.user")
    if conversation_excerpt is not None and len(conversation_excerpt) > EXCERPT_LENGTH_MAX:
        raise InvalidRequest(
            f"conversation_excerpt is at most {EXCERPT_LENGTH_MAX} characters",
            param="$.conversation_excerpt",
        )
    now = uow.clock.now()
    parsed = parse_constraints(constraints, currency=currency)
    mandate = rules.new_mandate(new_id("mnd"), user, principal.id, currency, timezone, parsed, now)
    _zone(timezone)
    expiry = now + excerpt_ttl if conversation_excerpt is not None else None
    stored = MandateRow(mandate, principal.livemode, conversation_excerpt, expiry)
    insert_mandate(uow, stored)
    return _announce(uow, "mandate.requested", principal, stored)


def _announce(uow: UnitOfWork, event: str, principal: Principal, stored: MandateRow) -> MandateView:
    """The audit record and the outbox event of a change, in the change's transaction."""
    mandate = stored.mandate
    audit.record(
        uow,
        event,
        principal,
        mandate.id,
        {"status": mandate.status.value, "revision": mandate.revision, "agent": mandate.agent},
    )
    view = _view(uow, stored)
    emit(uow, event, stored.livemode, wire_mandate(view))
    return view


def _transition(
    uow: UnitOfWork,
    principal: Principal,
    mandate_id: str,
    event: str,
    move: Callable[[Mandate, datetime], Mandate],
    *,
    admin: bool = False,
    agent: bool = False,
) -> MandateView:
    """Lock, check who acts, move. ``now`` is read under the lock, so a revocation's instant
    is after every payment that committed before it and before every one that follows."""
    stored = load_mandate(uow, mandate_id, lock=True)
    if not (agent and principal.type is PrincipalType.AGENT and _may_see(principal, stored)):
        _require_user(principal, stored, admin=admin)
    after = move(stored.mandate, uow.clock.now())
    save_mandate(uow, stored.mandate, after)
    changed = MandateRow(
        after, stored.livemode, stored.conversation_excerpt, stored.excerpt_expires_at
    )
    return _announce(uow, event, principal, changed)


def consent(uow: UnitOfWork, principal: Principal, mandate_id: str) -> MandateView:
    return _transition(uow, principal, mandate_id, "mandate.granted", rules.consent)


def pause(uow: UnitOfWork, principal: Principal, mandate_id: str) -> MandateView:
    return _transition(uow, principal, mandate_id, "mandate.paused", rules.pause)


def resume(uow: UnitOfWork, principal: Principal, mandate_id: str) -> MandateView:
    return _transition(uow, principal, mandate_id, "mandate.resumed", rules.resume)


def revoke(uow: UnitOfWork, principal: Principal, mandate_id: str) -> MandateView:
    """Revoke for good. It takes the mandate row lock, as every payment does, so a payment
    either committed before this commit or re-reads ``revoked`` and is declined."""
    return _transition(uow, principal, mandate_id, "mandate.revoked", rules.revoke, admin=True)


def amend(uow: UnitOfWork, principal: Principal, mandate_id: str, constraints: Any) -> MandateView:
    """New constraints; the mandate waits for fresh consent, and past usage still counts."""

    def move(mandate: Mandate, now: datetime) -> Mandate:
        parsed = parse_constraints(constraints, currency=mandate.currency)
        return rules.amend(mandate, parsed, now)

    return _transition(uow, principal, mandate_id, "mandate.amended", move, agent=True)


def get_mandate(uow: UnitOfWork, principal: Principal, mandate_id: str) -> MandateView:
    stored = load_mandate(uow, mandate_id, lock=False)
    if not _may_see(principal, stored):
        raise _hidden(mandate_id)
    return _view(uow, stored)


def list_mandates(
    uow: UnitOfWork,
    principal: Principal,
    *,
    limit: int | None = None,
    starting_after: str | None = None,
) -> Page:
    """The user's mandates, or the agent's (an admin sees every mandate of its mode)."""
    conditions = [mandates.c.livemode == principal.livemode]
    if principal.type is PrincipalType.USER:
        conditions.append(mandates.c.user_id == principal.id)
    elif principal.type is PrincipalType.AGENT:
        conditions.append(mandates.c.agent_id == principal.id)
    elif not principal.is_admin:
        raise PermissionDenied("mandates are listed for their user, their agent or an admin")
    rows, has_more = page_rows(
        uow, mandates, conditions, limit=limit, starting_after=starting_after
    )
    items = [_view(uow, load_mandate(uow, row.id, lock=False)) for row in rows]
    return Page(items=items, has_more=has_more)


def _instant(value: datetime | None) -> str | None:
    return rfc3339(value) if value is not None else None


def _remaining(entry: BudgetRemaining) -> dict[str, Any]:
    body: dict[str, Any] = {
        "constraint": entry.constraint,
        "period": entry.period.value if entry.period else None,
        "currency": entry.currency,
        "amount_left": entry.amount_left,
        "count_left": entry.count_left,
        "period_end": _instant(entry.period_end),
        "next_allowed_at": _instant(entry.next_allowed_at),
    }
    return {name: value for name, value in body.items() if value is not None}


def wire_mandate(view: MandateView, *, base_url: str = "") -> dict[str, Any]:
    """The wire object; ``consent_url`` is absolute when ``base_url`` is given."""
    mandate = view.mandate
    pending = mandate.status is rules.MandateStatus.PENDING_CONSENT
    return {
        "id": mandate.id,
        "object": "mandate",
        "livemode": view.livemode,
        "created": rfc3339(mandate.created),
        "user": mandate.user,
        "agent": mandate.agent,
        "status": mandate.status.value,
        "currency": mandate.currency,
        "timezone": mandate.timezone,
        "constraints": [to_json(c) for c in mandate.constraints],
        "revision": mandate.revision,
        "consented_at": _instant(mandate.consented_at),
        "paused_at": _instant(mandate.paused_at),
        "revoked_at": _instant(mandate.revoked_at),
        "ended_at": _instant(mandate.ended_at),
        "conversation_excerpt": view.conversation_excerpt,
        "consent_url": base_url + CONSENT_PATH.format(id=mandate.id) if pending else None,
        "remaining": [_remaining(entry) for entry in view.remaining],
    }
