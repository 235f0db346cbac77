"""The device registry, device-signed requests, and a device as the user's trusted surface.

::

    device = devices.register_device(uow, user, kind="glasses", name="Frames",
                                     public_jwk=key.public_jwk(), tap_limit=2_000,
                                     daily_limit=10_000, currency="usd")
    terminal = devices.register_terminal(uow, merchant, kind="pos", name="Till 1",
                                         public_jwk=terminal_key.public_jwk())
    token = devices.issue_token(uow, user, device.id)           # dtk_, for taps

- A user binds devices (``dev_``: phone, glasses, watch, card, tag) with the device's
  public key; a merchant registers terminals (``trm_``: ``pos``, ``gate``) with theirs, and
  table tags (``table_tag``, no key: a tag only points at a menu). The private keys stay on
  the devices.
- :func:`revoke` takes effect at once: every device request, confirmation and tap reads the
  device's status in its own transaction (a revoked device's requests are refused with
  ``device_revoked``; its taps are declined with that reason).
- Device requests are RFC 9421 signed like agents' (tag ``paywarden-device``, ``keyid`` the
  device key's thumbprint, a nonce remembered in the shared nonce store): :func:`admit`.
- :func:`confirm_approval`: the device confirms a pending step-up approval for its user by
  signing exactly (amount, currency, payee, cart hash, nonce) and its local user check
  (:mod:`paywarden.trust.devices`). It counts as the user's approval: the platform then
  completes the payment through :func:`paywarden.services.approvals.approve`, acting as the
  user with the device named in ``key_id``; a PIN or biometric check counts as the
  re-authentication an approval above the level needs, a spoken phrase does not.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import func, insert, select, update

from paywarden.adapters.ids import new_id
from paywarden.authorization.risk import RiskConfig
from paywarden.kernel.clock import rfc3339
from paywarden.kernel.errors import (
    AuthenticationFailed,
    Conflict,
    InvalidRequest,
    NotFound,
    PermissionDenied,
)
from paywarden.kernel.money import parse_currency
from paywarden.kernel.principals import Principal, PrincipalType
from paywarden.services import agents, approvals, audit, holds, identity, receipts
from paywarden.services.ledger import own_account
from paywarden.store import schema
from paywarden.store.outbox import emit
from paywarden.store.tables_approvals import approvals as approvals_table
from paywarden.store.tables_devices import device_confirmations, device_tokens, devices, taps
from paywarden.store.unit_of_work import UnitOfWork
from paywarden.trust.devices import (
    STRONG_VERIFICATION,
    VERIFIED,
    Confirmation,
    verify_confirmation,
)
from paywarden.trust.keys import PublicKey, parse_public_jwk
from paywarden.trust.receipts import AuthorizedPayment
from paywarden.trust.signatures import Policy, VerifiedSignature
from paywarden.trust.tap import fare_rule

__all__ = [
    "DEVICE_POLICY",
    "USER_KINDS",
    "ConfirmationRecord",
    "DeviceRecord",
    "TokenRecord",
    "acting_user",
    "admit",
    "capture",
    "confirm_approval",
    "confirmation_outcome",
    "current",
    "get_device",
    "get_token",
    "hold",
    "issue_token",
    "key_material",
    "list_devices",
    "load_device",
    "pending_approvals",
    "receipt_for",
    "register_device",
    "register_terminal",
    "revoke",
    "settle",
    "spent_today",
    "table_tag",
    "wire_confirmation",
    "wire_device",
    "wire_token",
]

USER_KINDS = ("phone", "glasses", "watch", "card", "tag")
TERMINAL_KINDS = ("pos", "gate", "online", "table_tag")
TAP_KINDS = ("phone", "watch", "card", "tag")  # devices that hold a tap token
DEVICE_POLICY = Policy(allowed_tags=("paywarden-device",))
NAME_LENGTH_MAX = 200
LIMIT_MAX = 10**15
DEVICES_PER_OWNER_MAX = 100


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    id: str
    livemode: bool
    kind: str
    user_id: str | None
    merchant_id: str | None
    name: str
    kid: str | None
    public_jwk: dict[str, str] | None
    status: str
    currency: str | None
    tap_limit: int | None
    daily_limit: int | None
    settings: dict[str, Any]
    created_at: datetime
    revoked_at: datetime | None

    @property
    def is_terminal(self) -> bool:
        return self.merchant_id is not None

    @property
    def scope(self) -> str:
        """What the device's Idempotency-Keys are scoped to."""
        return f"device:{self.id}:{'live' if self.livemode else 'test'}"


@dataclass(frozen=True, slots=True)
class TokenRecord:
    id: str
    livemode: bool
    device_id: str
    user_id: str
    domain: str
    status: str
    last_counter: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ConfirmationRecord:
    id: str
    livemode: bool
    device_id: str
    user_id: str
    target_id: str
    amount: int
    currency: str
    payee: str
    cart_hash: str | None
    nonce: str
    user_verification: str
    signature: str
    status: str
    reasons: tuple[str, ...]
    hold_id: str | None
    transfer_id: str | None
    receipt: str | None
    created_at: datetime


def _device(row: Any) -> DeviceRecord:
    return DeviceRecord(
        id=row.id,
        livemode=bool(row.livemode),
        kind=row.kind,
        user_id=row.user_id,
        merchant_id=row.merchant_id,
        name=row.name,
        kid=row.kid,
        public_jwk=row.public_jwk,
        status=row.status,
        currency=row.currency,
        tap_limit=None if row.tap_limit is None else int(row.tap_limit),
        daily_limit=None if row.daily_limit is None else int(row.daily_limit),
        settings=dict(row.settings),
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


def _token(row: Any) -> TokenRecord:
    return TokenRecord(
        id=row.id,
        livemode=bool(row.livemode),
        device_id=row.device_id,
        user_id=row.user_id,
        domain=row.domain,
        status=row.status,
        last_counter=int(row.last_counter),
        created_at=row.created_at,
    )


# --- registry -----------------------------------------------------------------------------


def _name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > NAME_LENGTH_MAX:
        raise InvalidRequest(
            f"name is 1 to {NAME_LENGTH_MAX} characters", code="invalid_value", param="$.name"
        )
    return name.strip()


def _limit(value: Any, param: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= LIMIT_MAX:
        raise InvalidRequest(
            f"{param[2:]} is an integer of minor units, 0 or more",
            code="invalid_amount",
            param=param,
        )
    return value


def _key(public_jwk: Any) -> PublicKey:
    if not isinstance(public_jwk, dict):
        raise InvalidRequest("public_jwk is a JWK object", code="invalid_jwk", param="$.public_jwk")
    return parse_public_jwk(public_jwk)


def _insert(uow: UnitOfWork, principal: Principal, record: DeviceRecord) -> DeviceRecord:
    d = devices
    owner = d.c.user_id if record.user_id else d.c.merchant_id
    count = uow.execute(
        select(func.count()).select_from(d).where(owner == (record.user_id or record.merchant_id))
    ).scalar_one()
    if count >= DEVICES_PER_OWNER_MAX:
        raise Conflict(f"at most {DEVICES_PER_OWNER_MAX} devices each", code="too_many_devices")
    if record.kid is not None:
        taken = uow.execute(select(d.c.id).where(d.c.kid == record.kid)).first()
        if taken is not None:
            raise Conflict(
                "this key is already bound to a device; every device has its own key",
                code="device_key_taken",
                param="$.public_jwk",
            )
    values = {name: getattr(record, name) for name in DeviceRecord.__slots__}
    uow.execute(insert(d).values(**values))
    audit.record(uow, "device.registered", principal, record.id, {"kind": record.kind})
    emit(uow, "device.registered", record.livemode, wire_device(record))
    return record


def _new(
    uow: UnitOfWork,
    principal: Principal,
    prefix: str,
    kind: str,
    name: Any,
    key: PublicKey | None,
    **fields: Any,
) -> DeviceRecord:
    """A new active device record; ``fields`` name its owner, limits and settings."""
    values: dict[str, Any] = {
        "id": new_id(prefix),
        "livemode": principal.livemode,
        "kind": kind,
        "user_id": None,
        "merchant_id": None,
        "name": _name(name),
        "kid": key.thumbprint if key is not None else None,
        "public_jwk": key.jwk() if key is not None else None,
        "status": "active",
        "currency": None,
        "tap_limit": None,
        "daily_limit": None,
        "settings": {},
        "created_at": uow.clock.now(),
        "revoked_at": None,
    }
    return DeviceRecord(**{**values, **fields})


def register_device(
    uow: UnitOfWork,
    principal: Principal,
    *,
    kind: str,
    name: Any,
    public_jwk: Any,
    currency: Any = None,
    tap_limit: Any = None,
    daily_limit: Any = None,
) -> DeviceRecord:
    """A user binds one of their devices, with its public key and its limits."""
    if principal.type is not PrincipalType.USER or principal.id is None:
        raise PermissionDenied("a user binds their own devices, with their own key")
    if kind not in USER_KINDS:
        raise InvalidRequest(
            f"kind is one of {', '.join(USER_KINDS)}", code="invalid_value", param="$.kind"
        )
    record = _new(
        uow,
        principal,
        "dev",
        kind,
        name,
        _key(public_jwk),
        user_id=principal.id,
        currency=parse_currency(currency) if currency is not None else None,
        tap_limit=_limit(tap_limit, "$.tap_limit"),
        daily_limit=_limit(daily_limit, "$.daily_limit"),
    )
    if (record.tap_limit is not None or record.daily_limit is not None) and not record.currency:
        raise InvalidRequest(
            "limits need their currency", code="parameter_missing", param="$.currency"
        )
    return _insert(uow, principal, record)


def _terminal_settings(kind: str, settings: Any) -> dict[str, Any]:
    """Gates: ``{"fare": {"mode": "free" | "flat" | "distance", ...}, "zone": int}``;
    table tags: ``{"table": "12"}``; points of sale: nothing."""
    settings = settings if settings is not None else {}
    if not isinstance(settings, dict):
        raise InvalidRequest("settings is an object", code="invalid_value", param="$.settings")
    if kind == "table_tag":
        table = settings.get("table")
        if not isinstance(table, str) or not 0 < len(table) <= 40:
            raise InvalidRequest(
                "a table tag names its table (1 to 40 characters)",
                code="parameter_missing",
                param="$.settings.table",
            )
        return {"table": table}
    if kind == "gate":
        return fare_rule(settings)
    return {}


def register_terminal(
    uow: UnitOfWork,
    principal: Principal,
    *,
    kind: str,
    name: Any,
    public_jwk: Any = None,
    settings: Any = None,
) -> DeviceRecord:
    """A merchant registers a terminal or gate (with its own key) or a table tag (none)."""
    if principal.type is not PrincipalType.MERCHANT or principal.id is None:
        raise PermissionDenied("a merchant registers its own terminals, with its own key")
    if kind not in TERMINAL_KINDS:
        raise InvalidRequest(
            f"kind is one of {', '.join(TERMINAL_KINDS)}", code="invalid_value", param="$.kind"
        )
    key = None if kind == "table_tag" else _key(public_jwk)
    settings = _terminal_settings(kind, settings)
    record = _new(
        uow, principal, "trm", kind, name, key, merchant_id=principal.id, settings=settings
    )
    return _insert(uow, principal, record)


def load_device(uow: UnitOfWork, device_id: str, *, lock: bool = False) -> DeviceRecord | None:
    query = select(devices).where(devices.c.id == device_id)
    row = uow.execute(query.with_for_update() if lock else query).first()
    return _device(row) if row is not None else None


def _owned(principal: Principal, record: DeviceRecord | None) -> bool:
    if record is None or record.livemode != principal.livemode:
        return False
    return principal.is_admin or principal.id in {record.user_id, record.merchant_id}


def get_device(uow: UnitOfWork, principal: Principal, device_id: str) -> DeviceRecord:
    record = load_device(uow, device_id)
    if not _owned(principal, record):
        raise NotFound(f"no such device: {device_id}", param="$.device")
    assert record is not None
    return record


def list_devices(uow: UnitOfWork, principal: Principal) -> list[DeviceRecord]:
    """The caller's devices (a user) or terminals (a merchant), newest first."""
    d = devices
    owner = d.c.merchant_id if principal.type is PrincipalType.MERCHANT else d.c.user_id
    rows = uow.execute(
        select(d)
        .where(owner == principal.id, d.c.livemode == principal.livemode)
        .order_by(d.c.id.desc())
        .limit(DEVICES_PER_OWNER_MAX)
    )
    return [_device(row) for row in rows]


def revoke(uow: UnitOfWork, principal: Principal, device_id: str) -> DeviceRecord:
    """Revoke a device (its owner or an admin), and its tokens, at once."""
    record = load_device(uow, device_id, lock=True)
    if not _owned(principal, record):
        raise NotFound(f"no such device: {device_id}", param="$.device")
    assert record is not None
    if record.status == "revoked":
        return record
    now = uow.clock.now()
    uow.execute(
        update(devices).where(devices.c.id == device_id).values(status="revoked", revoked_at=now)
    )
    t = device_tokens
    uow.execute(
        update(t)
        .where(t.c.device_id == device_id, t.c.status == "active")
        .values(status="revoked", revoked_at=now)
    )
    revoked = load_device(uow, device_id)
    assert revoked is not None
    audit.record(uow, "device.revoked", principal, device_id, {"kind": record.kind})
    emit(uow, "device.revoked", record.livemode, wire_device(revoked))
    return revoked


def issue_token(uow: UnitOfWork, principal: Principal, device_id: str) -> TokenRecord:
    """A tap payment token for one of the user's own active tap devices."""
    record = load_device(uow, device_id, lock=True)
    if principal.type is not PrincipalType.USER or not _owned(principal, record):
        raise NotFound(f"no such device: {device_id}", param="$.device")
    assert record is not None
    if record.status != "active":
        raise Conflict("the device is revoked", code="device_revoked")
    if record.kind not in TAP_KINDS:
        raise InvalidRequest(
            f"only a {', '.join(TAP_KINDS)} holds a tap token", code="invalid_value"
        )
    token = TokenRecord(
        id=new_id("dtk"),
        livemode=record.livemode,
        device_id=record.id,
        user_id=str(record.user_id),
        domain="in_person",
        status="active",
        last_counter=0,
        created_at=uow.clock.now(),
    )
    values = {name: getattr(token, name) for name in TokenRecord.__slots__}
    uow.execute(insert(device_tokens).values(**values))
    audit.record(uow, "device_token.created", principal, token.id, {"device": record.id})
    emit(uow, "device_token.created", token.livemode, wire_token(token))
    return token


def get_token(uow: UnitOfWork, token_id: str, *, lock: bool = False) -> TokenRecord | None:
    query = select(device_tokens).where(device_tokens.c.id == token_id)
    row = uow.execute(query.with_for_update() if lock else query).first()
    return _token(row) if row is not None else None


# --- device-signed requests -----------------------------------------------------------------


def key_material(uow: UnitOfWork, kid: str) -> PublicKey | None:
    """The key registered under thumbprint ``kid``, whatever its device's status."""
    row = uow.execute(select(devices.c.public_jwk).where(devices.c.kid == kid)).first()
    return parse_public_jwk(row.public_jwk) if row is not None and row.public_jwk else None


def admit(
    uow: UnitOfWork, verified: VerifiedSignature, *, now: datetime, max_age: timedelta | None
) -> DeviceRecord:
    """The device (or terminal) behind a verified signature: active, with a new nonce."""
    row = uow.execute(select(devices).where(devices.c.kid == verified.keyid)).first()
    if row is None:
        raise AuthenticationFailed("no device has this key", code="unknown_key")
    if row.status != "active":
        raise AuthenticationFailed("this device is revoked", code="device_revoked")
    if verified.nonce is None:
        raise AuthenticationFailed("the signature has no nonce", code="signature_param_missing")
    expires = [e for e in (verified.expires,) if e is not None]
    if verified.created is not None and max_age is not None:
        expires.append(verified.created + max_age)
    agents.remember_nonce(uow, verified.keyid, verified.nonce, max([now, *expires]))
    return _device(row)


def current(uow: UnitOfWork, device: DeviceRecord) -> DeviceRecord:
    """The device re-read and locked in the caller's transaction, still active: a
    revocation that committed after the request was admitted wins over it."""
    fresh = load_device(uow, device.id, lock=True)
    if fresh is None or fresh.status != "active":
        raise AuthenticationFailed("this device is revoked", code="device_revoked")
    return fresh


def acting_user(device: DeviceRecord) -> Principal:
    """The user a device speaks for, with the device named as the key that spoke."""
    return Principal(
        PrincipalType.USER, device.user_id, device.livemode, device.id, identity.API_VERSION
    )


def acting_merchant(merchant_id: str, livemode: bool, via: str) -> Principal:
    return Principal(PrincipalType.MERCHANT, merchant_id, livemode, via, identity.API_VERSION)


# --- money on a device's word ------------------------------------------------------------------


def spent_today(uow: UnitOfWork, device_id: str, currency: str, now: datetime) -> int:
    """What the device paid today (UTC day): approved taps and succeeded confirmations of
    QR payments (approvals are the mandate's business, not the device's limits)."""
    start = datetime.combine(now.date(), time(0), tzinfo=now.tzinfo)
    t, c = taps, device_confirmations
    tapped = uow.execute(
        select(func.coalesce(func.sum(t.c.amount), 0)).where(
            t.c.device_id == device_id,
            t.c.status == "approved",
            t.c.currency == currency,
            t.c.created_at >= start,
        )
    ).scalar_one()
    confirmed = uow.execute(
        select(func.coalesce(func.sum(c.c.amount), 0)).where(
            c.c.device_id == device_id,
            c.c.status == "succeeded",
            c.c.currency == currency,
            c.c.hold_id.is_not(None),
            c.c.created_at >= start,
        )
    ).scalar_one()
    return int(tapped) + int(confirmed)


def funded(uow: UnitOfWork, user: Principal, amount: int, currency: str) -> bool:
    wallet = own_account(uow, user, None, currency, "$.currency")
    return wallet.available >= amount


def hold(
    uow: UnitOfWork,
    user: Principal,
    merchant_id: str,
    amount: int,
    currency: str,
    description: str,
    *,
    expires_in_s: int | None = None,
) -> str:
    """A hold on the user's wallet for the merchant; its id."""
    made = holds.create_hold(
        uow,
        user,
        destination=merchant_id,
        amount=amount,
        currency=currency,
        description=description,
        expires_in_s=expires_in_s,
    )
    return made.hold.id


def capture(uow: UnitOfWork, user: Principal, merchant_id: str, hold_id: str, amount: int) -> str:
    """The merchant's capture of ``amount`` from the hold (the rest is released); the
    ledger transfer's id."""
    payee = acting_merchant(merchant_id, user.livemode, user.key_id)
    captured = holds.capture_hold(uow, payee, hold_id, amount=amount)
    transfer_id = captured.capture_transfer_id
    if transfer_id is None:
        raise InvalidRequest(f"hold {hold_id} was captured without a transfer")
    return transfer_id


def settle(
    uow: UnitOfWork,
    user: Principal,
    merchant_id: str,
    amount: int,
    currency: str,
    description: str,
) -> tuple[str, str]:
    """A hold on the user's wallet for the merchant, captured at once, as ``pay()`` does;
    (hold id, transfer id)."""
    hold_id = hold(uow, user, merchant_id, amount, currency, description)
    return hold_id, capture(uow, user, merchant_id, hold_id, amount)


JOURNEY_HOLD_S = 6 * 3600  # a journey's fare hold lasts six hours


def receipt_for(
    uow: UnitOfWork,
    master_key: bytes,
    issuer: str,
    payment_id: str,
    amount: int,
    currency: str,
    merchant_id: str,
    cart_hash: str | None,
    transfer_id: str,
) -> str:
    """The signed receipt of a device payment: no mandate, the device's own word."""
    return receipts.issue_receipt(
        uow,
        master_key,
        issuer=issuer,
        payment_id=payment_id,
        authorized=AuthorizedPayment(amount, currency, merchant_id, None, cart_hash),
        transfer_id=transfer_id,
    )


# --- confirmations ------------------------------------------------------------------------------


def record_confirmation(
    uow: UnitOfWork, device: DeviceRecord, record: ConfirmationRecord
) -> ConfirmationRecord:
    """Store the confirmation (its nonce counts once), audit it and announce it."""
    c = device_confirmations
    seen = uow.execute(
        select(c.c.id).where(c.c.device_id == device.id, c.c.nonce == record.nonce)
    ).first()
    if seen is not None:
        raise Conflict(
            "this confirmation's nonce was used already; confirm again with a fresh nonce",
            code="confirmation_replayed",
            param="$.confirmation.nonce",
        )
    values = {name: getattr(record, name) for name in ConfirmationRecord.__slots__}
    values["reasons"] = list(record.reasons)
    uow.execute(insert(c).values(**values))
    event = f"device_confirmation.{record.status}"
    audit.record(
        uow,
        event,
        acting_user(device),
        record.id,
        {
            "target": record.target_id,
            "amount": record.amount,
            "user_verification": record.user_verification,
            "reasons": list(record.reasons),
        },
    )
    emit(uow, event, record.livemode, wire_confirmation(record))
    return record


def confirmation_outcome(
    device: DeviceRecord,
    confirmation: Confirmation,
    signature: str,
    expected: tuple[int, str, str, str | None],
) -> tuple[str, ...]:
    """The refusals of a confirmation, before any money: it must be the device's signature
    over exactly what is asked (``expected``: amount, currency, payee, cart hash), after
    a local check of the user."""
    asked = (confirmation.amount, confirmation.currency, confirmation.payee)
    if (*asked, confirmation.cart_hash) != expected:
        return ("confirmation_mismatch",)
    key = parse_public_jwk(device.public_jwk or {})
    if not verify_confirmation(key, confirmation, signature):
        return ("confirmation_invalid",)
    if confirmation.user_verification not in VERIFIED:
        return ("user_verification_required",)
    return ()


def new_confirmation(
    uow: UnitOfWork,
    device: DeviceRecord,
    target_id: str,
    confirmation: Confirmation,
    signature: str,
    reasons: tuple[str, ...],
) -> ConfirmationRecord:
    return ConfirmationRecord(
        id=new_id("cnf"),
        livemode=device.livemode,
        device_id=device.id,
        user_id=str(device.user_id),
        target_id=target_id,
        amount=confirmation.amount,
        currency=confirmation.currency,
        payee=confirmation.payee,
        cart_hash=confirmation.cart_hash,
        nonce=confirmation.nonce,
        user_verification=confirmation.user_verification,
        signature=signature[:128],
        status="declined" if reasons else "succeeded",
        reasons=reasons,
        hold_id=None,
        transfer_id=None,
        receipt=None,
        created_at=uow.clock.now(),
    )


def user_device(device: DeviceRecord) -> DeviceRecord:
    if device.user_id is None:
        raise PermissionDenied("a terminal confirms nothing: only a user's device does")
    return device


def confirm_approval(
    uow: UnitOfWork,
    device: DeviceRecord,
    approval_id: str,
    confirmation: Confirmation,
    signature: str,
    *,
    master_key: bytes,
    issuer: str,
    risk: RiskConfig | None = None,
) -> tuple[ConfirmationRecord, approvals.ApprovalRecord]:
    """The device confirms its user's pending approval; see the module docstring."""
    device = current(uow, user_device(device))
    user = acting_user(device)
    pending = approvals.get(uow, user, approval_id)
    if pending.user_id != device.user_id:
        raise NotFound(f"no such approval: {approval_id}", param="$.approval")
    expected = (pending.amount, pending.currency, pending.merchant_id, pending.cart_hash)
    reasons = confirmation_outcome(device, confirmation, signature, expected)
    strong = confirmation.user_verification in STRONG_VERIFICATION
    if not reasons and pending.reauth_required and not strong:
        reasons = ("step_up_required",)
    if reasons:
        record = new_confirmation(uow, device, approval_id, confirmation, signature, reasons)
        return record_confirmation(uow, device, record), pending
    decided = approvals.approve(
        uow,
        user,
        approval_id,
        expected_binding_hash=pending.binding_hash,
        reauthenticated=strong,
        master_key=master_key,
        issuer=issuer,
        risk=risk,
    )
    outcome = () if decided.status == "approved" else (f"approval_{decided.status}",)
    record = new_confirmation(uow, device, approval_id, confirmation, signature, outcome)
    return record_confirmation(uow, device, record), decided


# --- wire forms ------------------------------------------------------------------------------


def wire_device(record: DeviceRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "object": "terminal" if record.is_terminal else "device",
        "livemode": record.livemode,
        "created": rfc3339(record.created_at),
        "kind": record.kind,
        "user": record.user_id,
        "merchant": record.merchant_id,
        "name": record.name,
        "kid": record.kid,
        "public_jwk": record.public_jwk,
        "status": record.status,
        "limits": {
            "currency": record.currency,
            "tap_limit": record.tap_limit,
            "daily_limit": record.daily_limit,
        },
        "settings": record.settings,
        "revoked": rfc3339(record.revoked_at) if record.revoked_at else None,
    }


def wire_token(record: TokenRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "object": "device_token",
        "livemode": record.livemode,
        "created": rfc3339(record.created_at),
        "device": record.device_id,
        "user": record.user_id,
        "domain": record.domain,
        "status": record.status,
        "last_counter": record.last_counter,
    }


def wire_confirmation(record: ConfirmationRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "object": "device_confirmation",
        "livemode": record.livemode,
        "created": rfc3339(record.created_at),
        "device": record.device_id,
        "user": record.user_id,
        "target": record.target_id,
        "amount": record.amount,
        "currency": record.currency,
        "payee": record.payee,
        "cart_hash": record.cart_hash,
        "user_verification": record.user_verification,
        "status": record.status,
        "reasons": list(record.reasons),
        "hold": record.hold_id,
        "transfer": record.transfer_id,
        "receipt": record.receipt,
    }


PENDING_LIST_MAX = 20


def pending_approvals(uow: UnitOfWork, device: DeviceRecord) -> list[dict[str, Any]]:
    """The user's approvals still awaiting a decision, newest first: what a device shows
    (or reads out) before its user confirms one."""
    user = acting_user(user_device(device))
    a = approvals_table
    rows = uow.execute(
        select(a.c.id)
        .where(a.c.user_id == device.user_id, a.c.livemode == device.livemode)
        .where(a.c.status == "pending", a.c.expires_at >= uow.clock.now())
        .order_by(a.c.id.desc())
        .limit(PENDING_LIST_MAX)
    )
    return [approvals.wire_approval(approvals.get(uow, user, row.id)) for row in rows]


def table_tag(uow: UnitOfWork, terminal_id: str, base_url: str) -> dict[str, Any]:
    """Tap to order: the merchant and table a tag names, with the links an agent opens
    (the merchant's menu, and a deep link carrying the merchant and the table)."""
    record = load_device(uow, terminal_id)
    if record is None or record.kind != "table_tag" or record.status != "active":
        raise NotFound(f"no such table tag: {terminal_id}", param="$.tag")
    merchant = str(record.merchant_id)
    table = str(record.settings["table"])
    name = uow.execute(
        select(schema.merchants.c.name).where(schema.merchants.c.id == merchant)
    ).scalar_one()
    query = urlencode({"merchant": merchant, "table": table, "tag": record.id})
    return {
        "object": "table_tag",
        "id": record.id,
        "livemode": record.livemode,
        "merchant": merchant,
        "merchant_name": name,
        "table": table,
        "menu_url": f"{base_url}/v1/products?{urlencode({'merchant': merchant})}",
        "deep_link": f"paywarden://order?{query}",
    }
