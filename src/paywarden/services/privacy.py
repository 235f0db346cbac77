"""A user's data: export all of it; erase what no rule requires keeping.

::

    user = privacy.subject(principal, "usr_…")      # the user itself or an admin; else 404
    body = privacy.export(uow, user)                 # a JSON-ready dict
    summary = privacy.erase(uow, user, actor=principal)

:func:`export` gathers the user, their wallets and balances, the transfers, holds, refunds
and top-ups touching their accounts, their mandates (with usage), payments, the agents bound
to them, their API keys (the hint only: the secret is never stored, its hash never leaves),
and the ids and types of the audit records about them.

:func:`erase` keeps what financial and audit retention require, intact: accounts, transfers
and postings (the ledger), holds, refunds, top-ups, payments and their receipts, and the
audit log (whose records carry ids, never names, e-mails or excerpts; rewriting them would
also break the hash chain). It removes or blanks the rest, in one transaction:

- revokes the user's live mandates (through :func:`paywarden.services.mandates.revoke`, so
  each takes the mandate lock and "revocation wins" holds) and their active API keys;
- removes their passkeys (a passkey needs no e-mail to sign in) and their password hash,
  and ends all their dashboard sessions;
- name → ``erased user``, e-mail → ``erased+<user id>@erased.invalid`` (unique per user);
- every mandate's conversation excerpt, and the same fields in the outbox events that
  carried them (``user.created``, ``mandate.*``);
- records the audit event and outbox event ``user.erased``.

It refuses (409 ``money_pending``) while a hold on or towards the user's accounts is
pending: that money is neither theirs nor the payee's yet, and settling it needs the user.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update

from paywarden.kernel.clock import rfc3339
from paywarden.kernel.errors import Conflict, NotFound
from paywarden.kernel.principals import Principal, PrincipalType
from paywarden.services import audit, identity, mandates, passkeys, payments, web_access
from paywarden.services.records import wire
from paywarden.store import schema
from paywarden.store.outbox import emit
from paywarden.store.tables_agents import agents
from paywarden.store.tables_mandates import mandate_usage
from paywarden.store.tables_mandates import mandates as mandates_table
from paywarden.store.tables_mandates import payments as payments_table
from paywarden.store.unit_of_work import UnitOfWork

__all__ = ["ERASED_NAME", "erase", "erased_email", "export", "subject"]

ERASED_NAME = "erased user"
_LIVE_MANDATES = ("pending_consent", "active", "paused")
_PERSONAL_FIELDS = ("email", "name", "conversation_excerpt")


def erased_email(user_id: str) -> str:
    return f"erased+{user_id.lower()}@erased.invalid"


def subject(principal: Principal, user_id: str) -> Principal:
    """The user whose data ``principal`` may export or erase: itself, or any user for an
    admin. Anyone else gets 404, so user ids leak nothing."""
    if principal.is_admin:
        return Principal(
            PrincipalType.USER,
            user_id,
            principal.livemode,
            f"admin:{principal.key_id}",
            principal.api_version,
        )
    if principal.type is PrincipalType.USER and principal.id == user_id:
        return principal
    raise NotFound(f"no such user: {user_id}", param="$.user")


def _user_id(user: Principal) -> str:
    if user.type is not PrincipalType.USER or user.id is None:
        raise NotFound("no such user", param="$.user")
    return user.id


def _plain(value: Any) -> Any:
    return rfc3339(value) if isinstance(value, datetime) else value


def _rows(uow: UnitOfWork, query: Any, *, omit: Iterable[str] = ()) -> list[dict[str, Any]]:
    skip = set(omit)
    return [
        {name: _plain(value) for name, value in row._mapping.items() if name not in skip}
        for row in uow.execute(query)
    ]


def export(uow: UnitOfWork, user: Principal) -> dict[str, Any]:
    """Everything stored about ``user`` (see the module docstring), JSON-ready."""
    user_id = _user_id(user)
    record = identity.get_user(uow, user_id, user.livemode)
    account_ids = [account.id for account in record.wallets]
    t, h, r, top = schema.transfers, schema.holds, schema.refunds, schema.top_ups
    touching = or_(
        t.c.source_account_id.in_(account_ids), t.c.destination_account_id.in_(account_ids)
    )
    transfers = _rows(uow, select(t).where(touching).order_by(t.c.id))
    postings = _rows(
        uow,
        select(schema.postings).where(
            schema.postings.c.transfer_id.in_([item["id"] for item in transfers])
        ),
        omit=("id",),
    )
    for item in transfers:
        item["postings"] = [p for p in postings if p["transfer_id"] == item["id"]]
    holds = _rows(
        uow,
        select(h)
        .where(
            or_(
                h.c.source_account_id.in_(account_ids),
                h.c.destination_account_id.in_(account_ids),
            )
        )
        .order_by(h.c.id),
    )
    refunds = _rows(
        uow, select(r).where(r.c.hold_id.in_([item["id"] for item in holds])).order_by(r.c.id)
    )
    top_ups = _rows(
        uow,
        select(top).where(top.c.account_id.in_(account_ids)).order_by(top.c.id),
        omit=("card_token",),
    )
    mandate_ids = list(
        uow.execute(
            select(mandates_table.c.id)
            .where(mandates_table.c.user_id == user_id)
            .order_by(mandates_table.c.id)
        ).scalars()
    )
    mandate_list = []
    for mandate_id in mandate_ids:
        body = mandates.wire_mandate(mandates.get_mandate(uow, user, mandate_id))
        body["usage"] = _rows(
            uow,
            select(mandate_usage).where(mandate_usage.c.mandate_id == mandate_id),
            omit=("mandate_id",),
        )
        mandate_list.append(body)
    payment_ids = list(
        uow.execute(
            select(payments_table.c.id)
            .where(payments_table.c.user_id == user_id)
            .order_by(payments_table.c.id)
        ).scalars()
    )
    payment_list = [
        payments.wire_payment(payments.get_payment(uow, user, payment_id))
        for payment_id in payment_ids
    ]
    agent_ids = {body["agent"] for body in mandate_list}
    bound = _rows(
        uow,
        select(agents.c.id, agents.c.name, agents.c.platform_id, agents.c.status)
        .where(or_(agents.c.id.in_(agent_ids), agents.c.user_id == user_id))
        .order_by(agents.c.id),
    )
    k = schema.api_keys
    keys = _rows(
        uow,
        select(k.c.id, k.c.secret_hint, k.c.api_version, k.c.created_at, k.c.revoked_at)
        .where(k.c.principal_type == PrincipalType.USER.value, k.c.principal_id == user_id)
        .order_by(k.c.id),
    )
    related = {
        user_id,
        *account_ids,
        *mandate_ids,
        *payment_ids,
        *(item["id"] for item in keys),
        *(item["id"] for item in holds),
        *(item["id"] for item in refunds),
        *(item["id"] for item in top_ups),
        *(item["id"] for item in transfers),
    }
    a = schema.audit_records
    audit_records = _rows(
        uow,
        select(a.c.id, a.c.event_type, a.c.subject_id, a.c.occurred_at)
        .where(or_(a.c.actor_id == user_id, a.c.subject_id.in_(related)))
        .order_by(a.c.id),
    )
    return {
        "object": "user_export",
        "user": wire(record),
        "wallets": [wire(account) for account in record.wallets],
        "transfers": transfers,
        "holds": holds,
        "refunds": refunds,
        "top_ups": top_ups,
        "mandates": mandate_list,
        "payments": payment_list,
        "agents": bound,
        "api_keys": keys,
        "audit_records": audit_records,
    }


def erase(uow: UnitOfWork, user: Principal, *, actor: Principal | None = None) -> dict[str, Any]:
    """Erase ``user`` as the module docstring says; ``actor`` (default: the user) is who
    asked, for the audit. Returns a summary."""
    user_id = _user_id(user)
    actor = actor or user
    identity.get_user(uow, user_id, user.livemode)  # 404 for an unknown user
    a, h, m = schema.accounts, schema.holds, mandates_table
    # Locks in the order a payment takes them (mandates, then accounts, then the audit
    # heads), so an erasure and a payment never deadlock; a hold being placed on the
    # accounts, or a payment under the mandates, waits for this commit.
    uow.execute(select(m.c.id).where(m.c.user_id == user_id).order_by(m.c.id).with_for_update())
    account_ids = list(
        uow.execute(
            select(a.c.id).where(a.c.owner_id == user_id).order_by(a.c.id).with_for_update()
        ).scalars()
    )
    pending = uow.execute(
        select(h.c.id).where(
            h.c.status == "pending",
            or_(
                h.c.source_account_id.in_(account_ids),
                h.c.destination_account_id.in_(account_ids),
            ),
        )
    ).first()
    if pending is not None:
        raise Conflict(
            f"hold {pending.id} is still pending; capture or void it before erasing the user",
            code="money_pending",
        )
    live = uow.execute(
        select(m.c.id).where(m.c.user_id == user_id, m.c.status.in_(_LIVE_MANDATES))
    ).scalars()
    revoked = [mandates.revoke(uow, actor, mandate_id).mandate.id for mandate_id in list(live)]
    k = schema.api_keys
    active_keys = uow.execute(
        select(k.c.id).where(
            k.c.principal_type == PrincipalType.USER.value,
            k.c.principal_id == user_id,
            k.c.revoked_at.is_(None),
        )
    ).scalars()
    keys_revoked = list(active_keys)
    for key_id in keys_revoked:
        identity.revoke_key(uow, key_id, actor=actor)
    passkeys.remove_all(uow, user_id)
    web_access.forget_password(uow, user_id)
    web_access.end_all_sessions(uow, actor, user_id)
    uow.execute(
        update(schema.users)
        .where(schema.users.c.id == user_id)
        .values(name=ERASED_NAME, email=erased_email(user_id))
    )
    mandate_ids = list(uow.execute(select(m.c.id).where(m.c.user_id == user_id)).scalars())
    uow.execute(
        update(m)
        .where(m.c.user_id == user_id)
        .values(conversation_excerpt=None, excerpt_expires_at=None)
    )
    scrubbed = _scrub_events(uow, user_id, set(mandate_ids))
    summary = {
        "object": "user_erasure",
        "user": user_id,
        "mandates_revoked": revoked,
        "api_keys_revoked": keys_revoked,
        "events_scrubbed": scrubbed,
    }
    audit.record(
        uow,
        "user.erased",
        actor,
        user_id,
        {"mandates_revoked": len(revoked), "api_keys_revoked": len(keys_revoked)},
    )
    emit(uow, "user.erased", user.livemode, wire(identity.get_user(uow, user_id, user.livemode)))
    return summary


def _scrub_events(uow: UnitOfWork, user_id: str, mandate_ids: set[str]) -> int:
    """Blank the personal fields of the outbox events about the user and their mandates."""
    e = schema.events
    rows = uow.execute(
        select(e.c.sequence, e.c.data).where(
            or_(e.c.type == "user.created", e.c.type.like("mandate.%"))
        )
    ).all()
    changed = 0
    for row in rows:
        body = row.data.get("object") if isinstance(row.data, dict) else None
        if not isinstance(body, dict) or (
            body.get("id") != user_id and body.get("id") not in mandate_ids
        ):
            continue
        replaced = {"email": erased_email(user_id), "name": ERASED_NAME}
        blanked = {
            name: (replaced.get(name) if name in _PERSONAL_FIELDS else value)
            for name, value in body.items()
        }
        if blanked != body:
            data = {**row.data, "object": blanked}
            uow.execute(update(e).where(e.c.sequence == row.sequence).values(data=data))
            changed += 1
    return changed
