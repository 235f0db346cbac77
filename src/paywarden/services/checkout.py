"""Checkout sessions (``cs_``): an agent's priced, merchant-signed cart, paid through the
same payment service as ``POST /v1/payments``.

::

    session = create(uow, agent, merchant_id=..., items=[LineRequest("latte", 1)], ...)
    # the agent shows the user session.line_items / totals, and session.cart_hash
    session = complete(uow, agent, session.id, mandate_id=..., cart_hash=session.cart_hash, ...)

Every priced state (create, update, a re-price at completion) gets a fresh 128-bit salt, its
:func:`~paywarden.commerce.cart.cart_hash` and the merchant's signature over it
(``services.merchants.sign_cart``; a merchant that signs with its own key attaches the
signature with :func:`attach_signature`, and until then the session is not payable).

:func:`complete` checks, in this order: the session is the agent's and still payable; the
``cart_hash`` the agent names is the session's (else ``cart_hash_mismatch``: the user saw
another cart); the stored cart still hashes to it and the merchant's signature verifies (else
``cart_tampered`` / ``cart_signature_invalid``); the stored amount, currency and merchant are
the signed cart's. Then it re-prices: a changed price or missing stock gives a new priced
state with a ``price_change`` warning or an ``out_of_stock`` error, and nothing is paid. Else
it reserves the stock and calls :func:`~paywarden.services.payments.pay` with the cart hash:

- ``succeeded``: the session is ``completed`` and an order (``ord_``) is created;
- ``declined``: the stock is released; the session stays payable, with a ``payment_declined``
  message carrying the reason codes;
- ``requires_confirmation``: the session is ``pending_approval`` (stock held) with an
  ``approval_required`` message naming the approval; when the user decides
  (:mod:`~paywarden.services.approvals` calls :func:`payment_decided`), the session completes
  with its order, or releases its stock and is payable again.

A session past ``expires_at`` reads as ``expired``; :func:`expire_due` writes it. Who may see
a session: its agent, its merchant, the user whose wallet paid (or was asked to), an admin;
anyone else gets 404.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import insert, select

from paywarden.adapters.ids import new_id
from paywarden.authorization.risk import RiskConfig
from paywarden.commerce import checkout as rules
from paywarden.commerce.cart import SALT_BYTES_MIN, Cart, CartLine, cart_hash, hash_payload
from paywarden.commerce.cart import cart_payload as payload_of
from paywarden.commerce.catalog import LineRequest, PricedLine
from paywarden.commerce.checkout import FulfillmentOption, Message, Status
from paywarden.kernel.clock import rfc3339
from paywarden.kernel.errors import Conflict, InvalidRequest, NotFound, PermissionDenied
from paywarden.kernel.invariant import invariant
from paywarden.kernel.principals import Principal, PrincipalType
from paywarden.services import approvals, audit, catalog, merchants, payments
from paywarden.services import checkout_fulfillment as fulfillment_offer
from paywarden.services.listing import page_rows
from paywarden.services.records import Page
from paywarden.store.outbox import emit
from paywarden.store.prepared import prepare_all
from paywarden.store.tables_approvals import approvals as approvals_table
from paywarden.store.tables_checkout import checkout_sessions
from paywarden.store.unit_of_work import UnitOfWork

__all__ = [
    "SESSION_TTL",
    "CheckoutRecord",
    "attach_signature",
    "cancel",
    "complete",
    "create",
    "expire_due",
    "get",
    "list_sessions",
    "payment_decided",
    "payment_still_wanted",
    "totals_json",
    "update",
    "wire_checkout",
]

SESSION_TTL = timedelta(minutes=30)
LINES_MAX = 100
EXPIRE_BATCH_MAX = 500
DETAILS_KEYS_MAX = 32
_S = checkout_sessions


@dataclass(frozen=True, slots=True)
class CheckoutRecord:
    id: str
    livemode: bool
    merchant_id: str
    agent_id: str
    user_id: str | None
    status: str
    currency: str
    items: tuple[dict[str, Any], ...]  # the lines as asked
    line_items: tuple[dict[str, Any], ...]  # the lines as priced
    fulfillment_options: tuple[dict[str, Any], ...]
    fulfillment: dict[str, Any] | None
    fulfillment_details: dict[str, Any] | None
    buyer: dict[str, Any] | None
    totals: tuple[tuple[str, int], ...]
    messages: tuple[dict[str, Any], ...]
    amount_total: int
    cart: dict[str, Any]
    cart_hash: str
    cart_signature: str | None
    expires_at: datetime
    mandate_id: str | None
    payment_id: str | None
    order_id: str | None
    stock_reserved: bool
    revision: int
    created_at: datetime
    updated_at: datetime
    approval_id: str | None = None  # from the approvals table


# --- reading -------------------------------------------------------------------------------


def _from_row(row: Any) -> CheckoutRecord:
    return CheckoutRecord(
        id=row.id,
        livemode=bool(row.livemode),
        merchant_id=row.merchant_id,
        agent_id=row.agent_id,
        user_id=row.user_id,
        status=row.status,
        currency=row.currency,
        items=tuple(row.items),
        line_items=tuple(row.line_items),
        fulfillment_options=tuple(row.fulfillment_options),
        fulfillment=row.fulfillment,
        fulfillment_details=row.fulfillment_details,
        buyer=row.buyer,
        totals=tuple((str(kind), int(amount)) for kind, amount in row.totals),
        messages=tuple(row.messages),
        amount_total=int(row.amount_total),
        cart=dict(row.cart),
        cart_hash=row.cart_hash,
        cart_signature=row.cart_signature,
        expires_at=row.expires_at,
        mandate_id=row.mandate_id,
        payment_id=row.payment_id,
        order_id=row.order_id,
        stock_reserved=bool(row.stock_reserved),
        revision=int(row.revision),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _load(uow: UnitOfWork, session_id: str, *, lock: bool) -> CheckoutRecord | None:
    by = {"session_id": session_id}
    row = uow.execute(_SESSION_LOCKED if lock else _SESSION, by).first()
    if row is None:
        return None
    record = _from_row(row)
    if record.payment_id is None:
        return record
    found = uow.execute(_APPROVAL_OF_PAYMENT, {"payment_id": record.payment_id}).first()
    return replace(record, approval_id=found.id if found is not None else None)


def _may_see(principal: Principal, record: CheckoutRecord) -> bool:
    if principal.livemode != record.livemode:
        return False
    parties = {record.agent_id, record.merchant_id, record.user_id} - {None}
    return principal.is_admin or principal.id in parties


def _hidden(session_id: str) -> NotFound:
    return NotFound(f"no such checkout session: {session_id}", param="$.checkout_session")


def _as_of(record: CheckoutRecord, now: datetime) -> CheckoutRecord:
    """An open session past its deadline reads as expired before the sweep writes it."""
    if record.status in rules.ACTIVE and now > record.expires_at:
        return replace(record, status=Status.EXPIRED.value)
    return record


def get(uow: UnitOfWork, principal: Principal, session_id: str) -> CheckoutRecord:
    """The session, for its agent, its merchant, the paying user or an admin; else 404."""
    record = _load(uow, session_id, lock=False)
    if record is None or not _may_see(principal, record):
        raise _hidden(session_id)
    return _as_of(record, uow.clock.now())


def list_sessions(
    uow: UnitOfWork,
    principal: Principal,
    *,
    limit: int | None,
    starting_after: str | None,
) -> Page:
    """The principal's sessions, newest first (an agent's own, a merchant's, a user's)."""
    conditions = [_S.c.livemode == principal.livemode]
    column = {
        PrincipalType.AGENT: _S.c.agent_id,
        PrincipalType.MERCHANT: _S.c.merchant_id,
        PrincipalType.USER: _S.c.user_id,
    }.get(principal.type)
    if not principal.is_admin:
        if column is None:
            raise PermissionDenied("checkout sessions are listed by agents, merchants and users")
        conditions.append(column == principal.id)
    rows, has_more = page_rows(uow, _S, conditions, limit=limit, starting_after=starting_after)
    now = uow.clock.now()
    return Page([_as_of(_from_row(row), now) for row in rows], has_more)


def _own(uow: UnitOfWork, principal: Principal, session_id: str) -> CheckoutRecord:
    """The agent's own session, locked; others' sessions are 404 and others can't act."""
    record = _load(uow, session_id, lock=True)
    if record is None or not _may_see(principal, record):
        raise _hidden(session_id)
    if principal.type is not PrincipalType.AGENT or principal.id != record.agent_id:
        raise PermissionDenied("only the session's agent (a signed request) changes it")
    return record


def _require_open(record: CheckoutRecord, now: datetime) -> None:
    current = _as_of(record, now)
    if current.status not in rules.ACTIVE:
        raise Conflict(
            f"the checkout session is {current.status}",
            code=f"checkout_session_{current.status}",
        )


# --- pricing -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Priced:
    lines: tuple[PricedLine, ...]
    options: tuple[FulfillmentOption, ...]
    fulfillment: dict[str, Any] | None
    totals: rules.Totals
    messages: tuple[Message, ...]
    profile: merchants.MerchantProfile  # read once a unit of work: the offer and the signing


def _items(items: Sequence[Any]) -> tuple[dict[str, Any], ...]:
    if not items or len(items) > LINES_MAX:
        raise InvalidRequest(
            f"line_items holds 1 to {LINES_MAX} lines", code="invalid_value", param="$.line_items"
        )
    out = []
    for line in items:
        request = line if isinstance(line, LineRequest) else _line_request(line)
        out.append(
            {
                "item": request.item,
                "quantity": request.quantity,
                "options": dict(request.options),
                "variant": request.variant,
            }
        )
    return tuple(out)


def _line_request(raw: Mapping[str, Any]) -> LineRequest:
    return LineRequest(
        item=raw["item"],
        quantity=raw["quantity"],
        options=dict(raw.get("options") or {}),
        variant=raw.get("variant"),
    )


def _price(
    uow: UnitOfWork,
    merchant_id: str,
    livemode: bool,
    items: Sequence[Mapping[str, Any]],
    choice: Mapping[str, Any] | None,
    details: Mapping[str, Any] | None,
    *,
    preparing: bool = True,
    profile: merchants.MerchantProfile | None = None,
) -> _Priced:

    now = uow.clock.now()
    lines = tuple(
        catalog.price_lines(uow, merchant_id, livemode, [_line_request(i) for i in items])
    )
    if profile is None:  # else read by the caller in this unit of work
        profile = merchants.get_profile(uow, merchant_id, livemode)
    offer = fulfillment_offer.offer(profile)
    messages: list[Message] = []
    for index, line in enumerate(lines):
        if not line.available:
            left = "none" if not line.stock_available else str(line.stock_available)
            messages.append(
                rules.error(
                    "out_of_stock",
                    f"{line.title} is out of stock (asked {line.quantity}, {left} left)",
                    f"$.line_items[{index}]",
                )
            )
    option, pickup_at, problems = fulfillment_offer.choose(
        uow, offer, choice, details, now, preparing=preparing
    )
    messages.extend(problems)
    selected = rules.selected_fulfillment(option, pickup_at) if option is not None else None
    totals = rules.compute_totals(
        [(line.unit_amount, line.quantity) for line in lines],
        fulfillment=option.amount if option is not None else None,
        tax_bps=offer.tax_bps,
        fee=offer.fee,
    )
    return _Priced(lines, offer.options, selected, totals, tuple(messages), profile)


def _line_json(line: PricedLine, index: int, totals: rules.LineTotals) -> dict[str, Any]:
    return {
        "id": f"line_{index + 1}",
        "product": line.product_id,
        "variant": line.variant_id,
        "sku": line.sku,
        "title": line.title,
        "options": dict(line.options),
        "quantity": line.quantity,
        "unit_amount": line.unit_amount,
        "currency": line.currency,
        "stock_available": line.stock_available,
        "available": line.available,
        "totals": [list(pair) for pair in totals.as_pairs()],
    }


def priced_line(line: Mapping[str, Any]) -> PricedLine:
    """A stored line back as the catalog's ``PricedLine`` (to reserve or release stock)."""
    return PricedLine(
        product_id=line["product"],
        variant_id=line["variant"],
        sku=line["sku"],
        title=line["title"],
        options=tuple(sorted(line["options"].items())),
        quantity=int(line["quantity"]),
        unit_amount=int(line["unit_amount"]),
        currency=line["currency"],
        stock_available=line["stock_available"],
        available=bool(line["available"]),
    )


def _cart(merchant_id: str, currency: str, priced: _Priced, expires_at: datetime) -> Cart:
    return Cart(
        merchant=merchant_id,
        currency=currency,
        lines=tuple(
            CartLine(
                product=line.product_id,
                variant=line.variant_id,
                options=line.options,
                quantity=line.quantity,
                unit_amount=line.unit_amount,
            )
            for line in priced.lines
        ),
        totals=priced.totals.as_pairs(),
        fulfillment=priced.fulfillment,
        expires_at=expires_at,
        salt=secrets.token_hex(SALT_BYTES_MIN),
    )


def _priced_values(
    uow: UnitOfWork,
    merchant_id: str,
    livemode: bool,
    currency: str,
    priced: _Priced,
    *,
    master_key: bytes,
    extra: Sequence[Message] = (),
) -> dict[str, Any]:
    """The columns of a new priced state: salt, hash, signature, totals, messages."""

    now = uow.clock.now()
    expires_at = (now + SESSION_TTL).replace(microsecond=0)
    cart = _cart(merchant_id, currency, priced, expires_at)
    digest = cart_hash(cart)
    signature = merchants.sign_cart(
        uow, merchant_id, livemode, digest, master_key=master_key, profile=priced.profile
    )
    messages = [*priced.messages, *extra]
    if signature is None:
        messages.append(
            rules.error(
                "missing",
                "the merchant has not signed this cart yet",
                "$.cart_signature",
                "recoverable",
            )
        )
    return {
        "line_items": [
            _line_json(line, index, priced.totals.lines[index])
            for index, line in enumerate(priced.lines)
        ],
        "fulfillment_options": [option.to_json() for option in priced.options],
        "fulfillment": priced.fulfillment,
        "totals": [list(pair) for pair in priced.totals.as_pairs()],
        "messages": [message.to_json() for message in messages],
        "amount_total": priced.totals.total,
        "cart": payload_of(cart),
        "cart_hash": digest,
        "cart_signature": signature,
        "expires_at": expires_at,
        "status": rules.payable_status(messages).value,
        "updated_at": now,
    }


# --- the agent's use cases --------------------------------------------------------------


def create(
    uow: UnitOfWork,
    principal: Principal,
    *,
    merchant_id: str,
    items: Sequence[LineRequest],
    fulfillment: Mapping[str, Any] | None,
    buyer: Mapping[str, Any] | None,
    master_key: bytes,
    fulfillment_details: Mapping[str, Any] | None = None,
) -> CheckoutRecord:
    """An agent opens a session: priced, signed, ``ready_for_payment`` or, with messages
    saying why, ``not_ready_for_payment``."""
    if principal.type is not PrincipalType.AGENT or principal.id is None:
        raise PermissionDenied("only an agent (a signed request) opens a checkout session")
    if not isinstance(merchant_id, str):
        raise NotFound(f"no such merchant: {merchant_id}", param="$.merchant")
    profile = merchants.get_profile(uow, merchant_id, principal.livemode)  # NotFound first
    currency = profile.currency
    asked = _items(items)
    details = _details(fulfillment_details, "$.fulfillment_details")
    priced = _price(
        uow, merchant_id, principal.livemode, asked, fulfillment, details, profile=profile
    )
    now = uow.clock.now()
    session_id = new_id("cs")
    values = _priced_values(
        uow, merchant_id, principal.livemode, currency, priced, master_key=master_key
    )
    uow.execute(
        _INSERT_SESSION,
        {
            "id": session_id,
            "livemode": principal.livemode,
            "merchant_id": merchant_id,
            "agent_id": principal.id,
            "user_id": None,
            "currency": currency,
            "items": list(asked),
            "fulfillment_details": details,
            "buyer": _details(buyer, "$.buyer"),
            "mandate_id": None,
            "payment_id": None,
            "order_id": None,
            "stock_reserved": False,
            "revision": 1,
            "created_at": now,
            **values,
        },
    )
    return _announce(uow, "checkout_session.created", principal, session_id)


def _details(value: Mapping[str, Any] | None, param: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or len(value) > DETAILS_KEYS_MAX:
        raise InvalidRequest(
            f"{param[2:]} is an object of at most {DETAILS_KEYS_MAX} fields", param=param
        )
    return dict(value)


def _announce(
    uow: UnitOfWork, event: str, principal: Principal | None, session_id: str
) -> CheckoutRecord:
    record = _load(uow, session_id, lock=False)
    invariant(record is not None, f"checkout session {session_id} vanished")
    assert record is not None
    emit(uow, event, record.livemode, wire_checkout(record))
    return record


def update(
    uow: UnitOfWork,
    principal: Principal,
    session_id: str,
    *,
    items: Sequence[LineRequest] | None = None,
    fulfillment: Mapping[str, Any] | None = None,
    buyer: Mapping[str, Any] | None = None,
    master_key: bytes,
    fulfillment_details: Mapping[str, Any] | None = None,
) -> CheckoutRecord:
    """Change the lines, the fulfillment choice, its details or the buyer: a new priced
    state (new salt, hash and signature). Only while the session is open."""
    record = _own(uow, principal, session_id)
    _require_open(record, uow.clock.now())
    asked = _items(items) if items is not None else record.items
    choice = fulfillment if fulfillment is not None else _choice_of(record.fulfillment)
    details = (
        _details(fulfillment_details, "$.fulfillment_details")
        if fulfillment_details is not None
        else record.fulfillment_details
    )
    priced = _price(uow, record.merchant_id, record.livemode, asked, choice, details)
    values = _priced_values(
        uow, record.merchant_id, record.livemode, record.currency, priced, master_key=master_key
    )
    _save(
        uow,
        record,
        items=list(asked),
        fulfillment_details=details,
        buyer=_details(buyer, "$.buyer") if buyer is not None else record.buyer,
        **values,
    )
    return _announce(uow, "checkout_session.updated", principal, session_id)


def _choice_of(selected: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if selected is None:
        return None
    return {"option_id": selected["option_id"], "pickup_at": selected.get("pickup_at")}


def _save(uow: UnitOfWork, record: CheckoutRecord, **values: Any) -> None:
    """Write ``values`` at the next revision (the row is locked by the caller)."""
    values.setdefault("updated_at", uow.clock.now())
    done = uow.execute(
        sa.update(_S)
        .where(_S.c.id == record.id, _S.c.revision == record.revision)
        .values(revision=record.revision + 1, **values)
    )
    invariant(done.rowcount == 1, f"checkout session {record.id} changed under its row lock")


def attach_signature(
    uow: UnitOfWork, principal: Principal, session_id: str, *, cart_hash: str, signature: str
) -> CheckoutRecord:
    """A merchant that signs with its own key attaches its signature over the current hash."""

    record = _load(uow, session_id, lock=True)
    if record is None or not _may_see(principal, record):
        raise _hidden(session_id)
    if principal.type is not PrincipalType.MERCHANT or principal.id != record.merchant_id:
        raise PermissionDenied("only the session's merchant signs its cart")
    _require_open(record, uow.clock.now())
    if cart_hash != record.cart_hash:
        raise Conflict(
            "that is not the session's current cart hash",
            code="cart_hash_mismatch",
            param="$.cart_hash",
        )
    merchants.verify_cart_signature(uow, record.merchant_id, record.livemode, cart_hash, signature)
    messages = [m for m in record.messages if m.get("param") != "$.cart_signature"]
    status = rules.payable_status([Message(m["type"], m["code"], m["content"]) for m in messages])
    _save(uow, record, cart_signature=signature, messages=messages, status=status.value)
    audit.record(uow, "checkout_session.signed", principal, session_id, {"cart_hash": cart_hash})
    return _announce(uow, "checkout_session.updated", principal, session_id)


def cancel(uow: UnitOfWork, principal: Principal, session_id: str) -> CheckoutRecord:
    """The agent cancels; a pending approval is voided and the stock it held released."""
    seen = _load(uow, session_id, lock=False)
    if seen is not None and seen.status == Status.PENDING_APPROVAL and seen.mandate_id:
        # Lock order as payments and approvals take it: the mandate first, then the rows.
        from paywarden.store.mandate_repo import load_mandate  # noqa: PLC0415

        load_mandate(uow, seen.mandate_id, lock=True)
    record = _own(uow, principal, session_id)
    if record.status == Status.PENDING_APPROVAL and record.payment_id is not None:
        approvals.void_pending(uow, principal, record.payment_id)
        record = _own(uow, principal, session_id)
    _require_open(record, uow.clock.now())
    _save(uow, record, status=Status.CANCELED.value)
    audit.record(uow, "checkout_session.canceled", principal, session_id, {})
    return _announce(uow, "checkout_session.canceled", principal, session_id)


# --- completion ----------------------------------------------------------------------------


def _check_binding(uow: UnitOfWork, record: CheckoutRecord, shown_hash: str) -> None:
    """The cart the user saw is the cart stored, and the stored cart is the one signed."""

    if not isinstance(shown_hash, str) or shown_hash != record.cart_hash:
        raise Conflict(
            "the cart hash is not this session's current cart: show the user the session "
            "again and complete with its cart_hash",
            code="cart_hash_mismatch",
            param="$.cart_hash",
        )
    cart = record.cart
    totals = dict(cart.get("totals") or {})
    if (
        hash_payload(cart) != record.cart_hash
        or cart.get("merchant") != record.merchant_id
        or cart.get("currency") != record.currency
        or totals.get("total") != record.amount_total
    ):
        audit.record(
            uow, "checkout_session.tampered", None, record.id, {"cart_hash": record.cart_hash}
        )
        raise Conflict(
            "the stored cart does not match its hash: refusing to charge it",
            code="cart_tampered",
            param="$.cart_hash",
        )
    if record.cart_signature is None:
        raise Conflict(
            "the merchant has not signed this cart", code="cart_unsigned", param="$.cart_signature"
        )
    merchants.verify_cart_signature(
        uow, record.merchant_id, record.livemode, record.cart_hash, record.cart_signature
    )


def _same_cart(record: CheckoutRecord, priced: _Priced) -> bool:
    """Whether a re-price gives the same lines, totals and fulfillment as the stored cart."""
    stored = record.cart
    fresh = payload_of(_cart(record.merchant_id, record.currency, priced, record.expires_at))
    keys = ("line_items", "totals", "fulfillment", "currency", "merchant")
    return all(stored.get(key) == fresh[key] for key in keys)


def complete(
    uow: UnitOfWork,
    principal: Principal,
    session_id: str,
    *,
    mandate_id: str,
    cart_hash: str,
    master_key: bytes,
    issuer: str,
    risk: RiskConfig = payments.RISK_DEFAULT,
    approval: approvals.ApprovalPolicy | None = None,
) -> CheckoutRecord:
    """Pay for the session under ``mandate_id``; see the module docstring."""
    record = _own(uow, principal, session_id)
    if record.status == Status.PENDING_APPROVAL:
        _check_binding(uow, record, cart_hash)
        return record  # completing again while the user decides: the agent polls
    now = uow.clock.now()
    if now > record.expires_at and record.status in rules.ACTIVE:
        raise Conflict("the checkout session has expired", code="checkout_session_expired")
    _require_open(record, now)
    _check_binding(uow, record, cart_hash)
    if record.status != Status.READY_FOR_PAYMENT:
        raise Conflict(
            "the checkout session is not ready for payment: see its messages",
            code="checkout_session_not_ready",
        )
    priced = _price(
        uow,
        record.merchant_id,
        record.livemode,
        record.items,
        _choice_of(record.fulfillment),
        record.fulfillment_details,
        preparing=False,
    )
    if priced.messages or not _same_cart(record, priced):
        return _repriced(uow, principal, record, priced, master_key=master_key)
    lines = [priced_line(line) for line in record.line_items]
    catalog.reserve_stock(uow, record.merchant_id, record.livemode, lines)
    payment = payments.pay(
        uow,
        principal,
        mandate_id,
        record.merchant_id,
        record.amount_total,
        record.currency,
        record.cart_hash,
        master_key=master_key,
        issuer=issuer,
        risk=risk,
        approval=approval,
    )
    _save(
        uow,
        record,
        payment_id=payment.id,
        mandate_id=payment.mandate_id,
        user_id=payment.user_id,
        stock_reserved=True,
    )
    paid = _load(uow, session_id, lock=True)
    assert paid is not None
    return _payment_outcome(uow, principal, paid, payment)


def _repriced(
    uow: UnitOfWork,
    principal: Principal,
    record: CheckoutRecord,
    priced: _Priced,
    *,
    master_key: bytes,
) -> CheckoutRecord:
    """Prices or stock changed since the user saw the cart: a new priced state, unpaid."""
    extra = []
    if not _same_cart(record, priced):
        extra.append(
            rules.warning(
                "price_change",
                "prices, stock or fulfillment changed since this cart was shown: show the "
                "user the new cart and complete with its cart_hash",
                "$.totals",
            )
        )
    values = _priced_values(
        uow,
        record.merchant_id,
        record.livemode,
        record.currency,
        priced,
        master_key=master_key,
        extra=extra,
    )
    _save(uow, record, **values)
    return _announce(uow, "checkout_session.updated", principal, record.id)


def _payment_outcome(
    uow: UnitOfWork,
    principal: Principal | None,
    record: CheckoutRecord,
    payment: payments.PaymentRecord,
) -> CheckoutRecord:
    """Move the session on from its payment's status (the row is locked)."""
    if payment.status == "succeeded":
        return _completed(uow, principal, record, payment)
    if payment.status == "requires_confirmation":
        approval_id = approvals.approval_for_payment(uow, payment.id)
        message = rules.error(
            "approval_required",
            f"the user must approve this payment on the trusted surface "
            f"({approvals.APPROVAL_URL.format(id=approval_id)})",
            "$.payment",
            "requires_buyer_review",
        )
        _save(uow, record, status=Status.PENDING_APPROVAL.value, messages=[message.to_json()])
        return _announce(uow, "checkout_session.updated", principal, record.id)
    return _released(uow, principal, record, payment.reasons)


def _released(
    uow: UnitOfWork,
    principal: Principal | None,
    record: CheckoutRecord,
    reasons: Sequence[str],
) -> CheckoutRecord:
    """The payment was declined: release the stock; the session is payable again."""

    if record.stock_reserved:
        lines = [priced_line(line) for line in record.line_items]
        catalog.release_stock(uow, record.merchant_id, record.livemode, lines)
    message = rules.error(
        "payment_declined",
        "the payment was declined: " + ", ".join(reasons),
        "$.payment",
    )
    # The cart stays signed and priced: the agent may try again (another mandate, later).
    _save(
        uow,
        record,
        status=Status.READY_FOR_PAYMENT.value,
        stock_reserved=False,
        messages=[message.to_json()],
    )
    return _announce(uow, "checkout_session.updated", principal, record.id)


def _completed(
    uow: UnitOfWork,
    principal: Principal | None,
    record: CheckoutRecord,
    payment: payments.PaymentRecord,
) -> CheckoutRecord:
    from paywarden.services import orders  # noqa: PLC0415 -- orders imports this module

    invariant(payment.hold_id is not None, f"payment {payment.id} succeeded without a hold")
    order_id = orders.create_for_checkout(uow, principal, record, payment)
    _save(
        uow,
        record,
        status=Status.COMPLETED.value,
        order_id=order_id,
        stock_reserved=False,  # the stock is sold now, not held
        messages=[],
    )
    audit.record(
        uow,
        "checkout_session.completed",
        principal,
        record.id,
        {"payment": payment.id, "order": order_id, "cart_hash": record.cart_hash},
    )
    return _announce(uow, "checkout_session.completed", principal, record.id)


# --- hooks for approvals, and the sweep ----------------------------------------------------


def _for_payment(uow: UnitOfWork, payment_id: str) -> CheckoutRecord | None:
    row = uow.execute(select(_S.c.id).where(_S.c.payment_id == payment_id)).first()
    return _load(uow, row.id, lock=True) if row is not None else None


def payment_still_wanted(uow: UnitOfWork, payment: payments.PaymentRecord) -> bool:
    """False when the payment belongs to a checkout that no longer waits for it (canceled,
    or its cart, total, currency or merchant is not what the payment is bound to): its
    approval must be voided."""
    record = _for_payment(uow, payment.id)
    if record is None:
        return True
    return (
        record.status == Status.PENDING_APPROVAL
        and record.cart_hash == payment.cart_hash
        and record.amount_total == payment.amount
        and record.currency == payment.currency
        and record.merchant_id == payment.merchant_id
    )


def payment_decided(
    uow: UnitOfWork, principal: Principal | None, payment: payments.PaymentRecord
) -> None:
    """An approval ended (approved, declined, expired, voided): complete the session and
    create its order, or release its stock. Called by approvals in the same transaction."""
    record = _for_payment(uow, payment.id)
    if record is None or record.status != Status.PENDING_APPROVAL:
        return
    _payment_outcome(uow, principal, record, payment)


def expire_due(uow: UnitOfWork, *, limit: int = EXPIRE_BATCH_MAX) -> int:
    """Expire up to ``limit`` open sessions past their deadline (they hold no stock: stock
    is held only while an approval is pending). How many expired."""
    now = uow.clock.now()
    open_statuses = [status.value for status in rules.ACTIVE]
    due = uow.execute(
        select(_S.c.id)
        .where(_S.c.status.in_(open_statuses), _S.c.expires_at < now)
        .order_by(_S.c.expires_at, _S.c.id)
        .limit(limit)
    ).all()
    expired = 0
    for row in due:
        record = _load(uow, row.id, lock=True)
        if record is None or record.status not in rules.ACTIVE or now <= record.expires_at:
            continue
        _save(uow, record, status=Status.EXPIRED.value)
        _announce(uow, "checkout_session.expired", None, record.id)
        expired += 1
    return expired


# --- the wire form -------------------------------------------------------------------------


def totals_json(pairs: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
    return [
        {"type": kind, "display_text": rules.TOTAL_TITLES.get(kind, kind), "amount": amount}
        for kind, amount in pairs
    ]


def wire_checkout(record: CheckoutRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "object": "checkout_session",
        "livemode": record.livemode,
        "created": rfc3339(record.created_at),
        "updated": rfc3339(record.updated_at),
        "expires_at": rfc3339(record.expires_at),
        "status": record.status,
        "merchant": record.merchant_id,
        "agent": record.agent_id,
        "user": record.user_id,
        "currency": record.currency,
        "line_items": [
            {**line, "totals": totals_json(line["totals"])} for line in record.line_items
        ],
        "fulfillment_options": list(record.fulfillment_options),
        "fulfillment": record.fulfillment,
        "fulfillment_details": record.fulfillment_details,
        "buyer": record.buyer,
        "totals": totals_json(record.totals),
        "amount_total": record.amount_total,
        "messages": list(record.messages),
        "cart": record.cart,
        "cart_hash": record.cart_hash,
        "cart_signature": record.cart_signature,
        "mandate": record.mandate_id,
        "payment": record.payment_id,
        "approval": record.approval_id,
        "approval_url": (
            approvals.APPROVAL_URL.format(id=record.approval_id) if record.approval_id else None
        ),
        "order": record.order_id,
    }


# A session's creation and reads run these, built once and run on the driver (store.prepared).
_SESSION = select(_S).where(_S.c.id == sa.bindparam("session_id"))
_SESSION_LOCKED = _SESSION.with_for_update()
_APPROVAL_OF_PAYMENT = select(approvals_table.c.id).where(
    approvals_table.c.payment_id == sa.bindparam("payment_id")
)
_INSERT_SESSION = insert(_S)

prepare_all(globals())
