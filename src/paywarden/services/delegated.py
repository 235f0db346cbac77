"""One-time delegated payment tokens (``dlg_…``) for ACP checkout completion.

ACP's delegate-payment flow has the agent's platform vault a card with the PSP and hand the
merchant a token limited by an *allowance*. paywarden vaults no card: the money comes from the
user's wallet under a mandate, so the token is minted from one of the agent's own mandates,
with the same allowance shape (``reason: one_time``, ``max_amount``, lowercase ``currency``,
``checkout_session_id``, ``merchant_id``, ``expires_at``). The agent puts it in the
complete call's ``payment_data``; the merchant side (our ACP face) redeems it:

- it exists, and was minted by the same agent (else it is unknown to this caller);
- it is unused and not expired (``expires_at`` is its last valid instant);
- it names this checkout session and this merchant;
- the amount to charge is at most ``max_amount``, in the token's currency.

:func:`reserve` checks all that with the token's row locked; :func:`spend` marks it used with
a conditional UPDATE (``used_at IS NULL``) in the caller's transaction, the one that completes
the checkout, so it is spent at most once under any concurrency, on either backend, and is
not spent when that transaction rolls back. The ACP face spends it only when a payment was
attempted (a completion that re-prices the cart leaves it unspent). The
mandate still decides the payment: a token never widens what the mandate allows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update

from paywarden.adapters.ids import new_id
from paywarden.authorization.mandates import MandateStatus
from paywarden.kernel.clock import rfc3339
from paywarden.kernel.errors import Conflict, InvalidRequest, NotFound, PermissionDenied
from paywarden.kernel.ids import is_id
from paywarden.kernel.money import parse_amount, parse_currency
from paywarden.kernel.principals import Principal, PrincipalType
from paywarden.services import audit, checkout, identity, mandates
from paywarden.store.outbox import emit
from paywarden.store.tables_acp import delegated_tokens
from paywarden.store.unit_of_work import UnitOfWork

__all__ = [
    "REASON_ONE_TIME",
    "TOKEN_TTL_DEFAULT",
    "TOKEN_TTL_MAX",
    "Allowance",
    "DelegatedToken",
    "mint",
    "parse_allowance",
    "reserve",
    "spend",
    "wire_delegated_token",
]

REASON_ONE_TIME = "one_time"
TOKEN_TTL_DEFAULT = timedelta(minutes=15)
TOKEN_TTL_MAX = timedelta(hours=24)
CREDENTIAL_PATH = "$.payment_data.instrument.credential.token"


@dataclass(frozen=True, slots=True)
class Allowance:
    reason: str
    max_amount: int
    currency: str
    checkout_session_id: str
    merchant_id: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class DelegatedToken:
    id: str
    livemode: bool
    agent_id: str
    mandate_id: str
    allowance: Allowance
    created_at: datetime
    used_at: datetime | None


def wire_delegated_token(token: DelegatedToken) -> dict[str, Any]:
    allowance = token.allowance
    return {
        "id": token.id,
        "object": "delegated_token",
        "livemode": token.livemode,
        "created": rfc3339(token.created_at),
        "mandate": token.mandate_id,
        "agent": token.agent_id,
        "allowance": {
            "reason": allowance.reason,
            "max_amount": allowance.max_amount,
            "currency": allowance.currency,
            "checkout_session_id": allowance.checkout_session_id,
            "merchant_id": allowance.merchant_id,
            "expires_at": rfc3339(allowance.expires_at),
        },
        "used_at": rfc3339(token.used_at) if token.used_at else None,
    }


def parse_allowance(body: Mapping[str, Any], now: datetime) -> Allowance:
    """An allowance from its wire form (``$.allowance``), checked field by field."""
    reason = body.get("reason", REASON_ONE_TIME)
    if reason != REASON_ONE_TIME:
        raise InvalidRequest(
            "allowance.reason must be one_time", code="invalid_value", param="$.allowance.reason"
        )
    session_id = body.get("checkout_session_id")
    if not isinstance(session_id, str) or not is_id(session_id, "cs"):
        raise InvalidRequest(
            "allowance.checkout_session_id must be a cs_… id",
            code="invalid_value",
            param="$.allowance.checkout_session_id",
        )
    merchant_id = body.get("merchant_id")
    if not isinstance(merchant_id, str) or not is_id(merchant_id, "mer"):
        raise InvalidRequest(
            "allowance.merchant_id must be a mer_… id",
            code="invalid_value",
            param="$.allowance.merchant_id",
        )
    return Allowance(
        reason=reason,
        max_amount=parse_amount(body.get("max_amount"), "$.allowance.max_amount"),
        currency=parse_currency(body.get("currency"), "$.allowance.currency"),
        checkout_session_id=session_id,
        merchant_id=merchant_id,
        expires_at=_expiry(body.get("expires_at"), now),
    )


def _expiry(value: Any, now: datetime) -> datetime:
    if value is None:
        return now + TOKEN_TTL_DEFAULT
    param = "$.allowance.expires_at"
    try:
        instant = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRequest("expires_at must be an RFC 3339 instant", param=param) from None
    if instant.tzinfo is None:
        raise InvalidRequest("expires_at needs a time zone offset", param=param)
    if not now < instant <= now + TOKEN_TTL_MAX:
        raise InvalidRequest(
            f"expires_at must be in the future and at most {TOKEN_TTL_MAX} away",
            code="invalid_value",
            param=param,
        )
    return instant


def mint(
    uow: UnitOfWork, principal: Principal, mandate_id: str, raw_allowance: Mapping[str, Any]
) -> DelegatedToken:
    """A one-time token under the agent's own active mandate (agent only), for one of its
    own checkout sessions with the allowance's merchant."""
    if principal.type is not PrincipalType.AGENT:
        raise PermissionDenied("only the mandate's agent mints delegated tokens")
    allowance = parse_allowance(raw_allowance, uow.clock.now())
    view = mandates.get_mandate(uow, principal, mandate_id)  # 404 unless user/agent/admin
    mandate = view.mandate
    if mandate.agent != principal.id:
        raise NotFound(f"no such mandate: {mandate_id}", param="$.mandate")
    if mandate.status is not MandateStatus.ACTIVE:
        raise Conflict(
            f"the mandate is {mandate.status.value}, not active", code="mandate_not_active"
        )
    if allowance.currency != mandate.currency:
        raise InvalidRequest(
            f"the mandate spends {mandate.currency}, not {allowance.currency}",
            code="currency_mismatch",
            param="$.allowance.currency",
        )
    identity.get_merchant(uow, allowance.merchant_id, principal.livemode)  # 404 if unknown
    session = checkout.get(uow, principal, allowance.checkout_session_id)  # 404 unless its agent
    if session.merchant_id != allowance.merchant_id or session.agent_id != principal.id:
        raise InvalidRequest(
            "the checkout session is not this agent's session with this merchant",
            code="payment_token_mismatch",
            param="$.allowance.checkout_session_id",
        )
    token = DelegatedToken(
        id=new_id("dlg"),
        livemode=principal.livemode,
        agent_id=mandate.agent,
        mandate_id=mandate.id,
        allowance=allowance,
        created_at=uow.clock.now(),
        used_at=None,
    )
    uow.execute(
        insert(delegated_tokens).values(
            id=token.id,
            livemode=token.livemode,
            agent_id=token.agent_id,
            mandate_id=token.mandate_id,
            merchant_id=allowance.merchant_id,
            checkout_session_id=allowance.checkout_session_id,
            reason=allowance.reason,
            max_amount=allowance.max_amount,
            currency=allowance.currency,
            expires_at=allowance.expires_at,
            created_at=token.created_at,
        )
    )
    public = wire_delegated_token(token)
    emit(uow, "delegated_token.created", token.livemode, public)
    audit.record(uow, "delegated_token.created", principal, token.id, public)
    return token


def reserve(
    uow: UnitOfWork,
    principal: Principal,
    token_id: str,
    *,
    merchant_id: str,
    checkout_session_id: str,
    amount: int,
    currency: str,
) -> DelegatedToken:
    """Check the token against this completion, locking its row; :func:`spend` spends it.

    Refusals (all 4xx, ``param`` the token's JSON path in the ACP complete request):
    ``invalid_payment_token`` (unknown, or another agent's), ``payment_token_used``,
    ``payment_token_expired``, ``payment_token_mismatch`` (other session or merchant),
    ``amount_exceeds_allowance``, ``currency_mismatch``. Each refusal is audited in the
    caller's transaction, which should commit it (the ACP face commits the refusal response
    with it) rather than roll it back.
    """
    row = _load(uow, principal, token_id)
    now = uow.clock.now()
    refusal = (
        _unknown()
        if row is None
        else _refusal(row, now, merchant_id, checkout_session_id, amount, currency)
    )
    if refusal is not None:
        audit.record(
            uow,
            "delegated_token.refused",
            principal,
            token_id if row is not None else None,
            {"code": refusal.code, "checkout_session_id": checkout_session_id},
        )
        raise refusal
    if row is None:  # unreachable: a missing row is refused above; keeps the types exact
        raise _unknown()
    return _from_row(row, used_at=None)


def spend(uow: UnitOfWork, principal: Principal, token: DelegatedToken) -> DelegatedToken:
    """Mark a reserved token used: a conditional UPDATE, so it is spent at most once even
    when two completions race (the loser gets ``payment_token_used``)."""
    now = uow.clock.now()
    spent = uow.execute(
        update(delegated_tokens)
        .where(
            delegated_tokens.c.id == token.id,
            delegated_tokens.c.agent_id == principal.id,
            delegated_tokens.c.used_at.is_(None),
        )
        .values(used_at=now)
    )
    if spent.rowcount != 1:
        raise _used()
    used = replace(token, used_at=now)
    public = wire_delegated_token(used)
    emit(uow, "delegated_token.used", used.livemode, public)
    audit.record(uow, "delegated_token.used", principal, used.id, public)
    return used


def _load(uow: UnitOfWork, principal: Principal, token_id: str) -> Any:
    if not is_id(token_id, "dlg"):
        return None
    row = uow.execute(
        select(delegated_tokens).where(delegated_tokens.c.id == token_id).with_for_update()
    ).one_or_none()
    if row is None or row.agent_id != principal.id or bool(row.livemode) != principal.livemode:
        return None  # another agent's token is as good as unknown to this caller
    return row


def _unknown() -> InvalidRequest:
    return InvalidRequest(
        "unknown delegated payment token; mint one with "
        "POST /v1/mandates/{mandate_id}/delegated_tokens",
        code="invalid_payment_token",
        param=CREDENTIAL_PATH,
    )


def _used() -> Conflict:
    return Conflict(
        "the delegated payment token was already used",
        code="payment_token_used",
        param=CREDENTIAL_PATH,
    )


def _refusal(
    row: Any,
    now: datetime,
    merchant_id: str,
    checkout_session_id: str,
    amount: int,
    currency: str,
) -> InvalidRequest | Conflict | None:
    if row.used_at is not None:
        return _used()
    if row.expires_at < now:
        return InvalidRequest(
            "the delegated payment token has expired",
            code="payment_token_expired",
            param=CREDENTIAL_PATH,
        )
    if row.merchant_id != merchant_id or row.checkout_session_id != checkout_session_id:
        return InvalidRequest(
            "the delegated payment token was minted for another checkout session or merchant",
            code="payment_token_mismatch",
            param=CREDENTIAL_PATH,
        )
    if row.currency != currency:
        return InvalidRequest(
            f"the token allows {row.currency}, the checkout charges {currency}",
            code="currency_mismatch",
            param=CREDENTIAL_PATH,
        )
    if amount > row.max_amount:
        return InvalidRequest(
            f"the checkout total {amount} exceeds the token's max_amount {row.max_amount}",
            code="amount_exceeds_allowance",
            param=CREDENTIAL_PATH,
        )
    return None


def _from_row(row: Any, *, used_at: datetime | None) -> DelegatedToken:
    return DelegatedToken(
        id=row.id,
        livemode=bool(row.livemode),
        agent_id=row.agent_id,
        mandate_id=row.mandate_id,
        allowance=Allowance(
            reason=row.reason,
            max_amount=int(row.max_amount),
            currency=row.currency,
            checkout_session_id=row.checkout_session_id,
            merchant_id=row.merchant_id,
            expires_at=row.expires_at,
        ),
        created_at=row.created_at,
        used_at=used_at,
    )
