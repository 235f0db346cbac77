"""Merchant profiles (stores, fulfillment methods, tax rate) and cart-signing keys.

::

    profile = merchants.get_profile(uow, merchant_id, livemode)
    signature = merchants.sign_cart(uow, merchant_id, livemode, cart_hash, master_key=key)
    merchants.verify_cart_signature(uow, merchant_id, livemode, cart_hash, signature)

Cart signatures
    A cart signature is a compact JWS (:mod:`paywarden.trust.jws`) with the header
    ``{"alg": "ES256", "kid": <RFC 7638 thumbprint>, "typ": "cart+jws"}`` and the payload
    ``{"cart_hash": <the cart hash, as given>, "merchant": <mer_ id>}``, both as RFC 8785
    canonical JSON, base64url without padding; the signature is ``r || s``. Verification
    accepts exactly those two payload members (and an optional integer ``iat``) and any key
    of the merchant that is not revoked, so carts signed before a rotation keep verifying.

Hosted or own key
    A hosted merchant's key (ES256, P-256) is made by the platform on first use, sealed under
    the master key with :mod:`paywarden.trust.custody`; :func:`sign_cart` signs with it. A
    merchant may instead register its own public JWK (:func:`register_cart_key`); then it signs
    its carts itself and :func:`sign_cart` returns ``None``. Rotating (hosted) or registering a
    new key retires the active one: it stays published for the overlap and trusted for good.
    Each key change is audited and announced as ``merchant.updated``.
"""

from __future__ import annotations

import secrets
import zoneinfo
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from paywarden.adapters.ids import new_id
from paywarden.commerce.stores import Hours, parse_hours
from paywarden.kernel.clock import rfc3339
from paywarden.kernel.errors import Conflict, InvalidRequest, InvariantViolation, NotFound
from paywarden.kernel.invariant import invariant
from paywarden.kernel.money import parse_amount
from paywarden.kernel.principals import Principal
from paywarden.services import audit, identity, keys
from paywarden.store.outbox import emit
from paywarden.store.prepared import prepare_all
from paywarden.store.tables_catalog import merchant_cart_keys, merchant_profiles, merchant_stores
from paywarden.store.unit_of_work import UnitOfWork
from paywarden.trust import custody, jws
from paywarden.trust.custody import (
    ES256,
    NONCE_BYTES,
    PUBLISH_OVERLAP_DEFAULT,
    RANDOM_BYTES,
    KeyRecord,
    KeyStatus,
    Purpose,
)
from paywarden.trust.keys import ECDSA_P256_SHA256, parse_public_jwk

__all__ = [
    "CART_SIGNATURE_TYP",
    "FULFILLMENT_TYPES",
    "FulfillmentMethod",
    "MerchantProfile",
    "StoreRecord",
    "cart_keys",
    "create_store",
    "get_profile",
    "list_stores",
    "register_cart_key",
    "revoke_cart_key",
    "rotate_cart_key",
    "sign_cart",
    "update_profile",
    "update_store",
    "verify_cart_signature",
    "wire_profile",
    "wire_store",
]

CART_SIGNATURE_TYP = "cart+jws"
CART_SIGNATURE_LENGTH_MAX = 2000
CART_HASH_LENGTH_MAX = 100
FULFILLMENT_TYPES = ("pickup", "local_delivery", "shipping", "digital")
STORES_MAX = 200
_K = merchant_cart_keys
_S = merchant_stores


@dataclass(frozen=True, slots=True)
class StoreRecord:
    id: str
    merchant_id: str
    livemode: bool
    name: str
    address: str
    timezone: str
    hours: Hours
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class FulfillmentMethod:
    type: str  # pickup, local_delivery, shipping, digital
    amount: int  # minor units of the merchant's currency
    stores: tuple[str, ...] = ()  # pickup only: the sto_ ids where it can be collected


@dataclass(frozen=True, slots=True)
class MerchantProfile:
    merchant_id: str
    livemode: bool
    name: str
    category: str
    currency: str
    fee_bps: int
    tax_bps: int
    fulfillment: tuple[FulfillmentMethod, ...]
    stores: tuple[StoreRecord, ...]
    cart_key_mode: str  # hosted or own

    def method(self, kind: str) -> FulfillmentMethod | None:
        return next((m for m in self.fulfillment if m.type == kind), None)


def _cart_profile() -> jws.Profile:
    def invalid(message: str) -> Exception:
        return InvalidRequest(
            f"the cart signature is not valid: {message}",
            code="cart_signature_invalid",
            param="$.cart_signature",
        )

    return jws.Profile(
        CART_SIGNATURE_TYP, "cart signature", CART_SIGNATURE_LENGTH_MAX, invalid, invalid
    )


_CART_PROFILE = _cart_profile()
_OPENED = keys.OpenedSigners()  # hosted cart keys, opened once a kid


# --- profile and stores ------------------------------------------------------------------


def get_profile(uow: UnitOfWork, merchant_id: str, livemode: bool) -> MerchantProfile:
    """The merchant with its stores, fulfillment methods, tax rate and cart-key mode; a
    merchant that never set a profile has no methods, no stores, 0 tax and a hosted key."""
    merchant = identity.get_merchant(uow, merchant_id, livemode)
    row = uow.execute(_PROFILE, {"merchant_id": merchant_id}).one_or_none()
    methods = tuple(
        FulfillmentMethod(m["type"], int(m["amount"]), tuple(m.get("stores", ())))
        for m in (row.fulfillment if row else [])
    )
    return MerchantProfile(
        merchant_id=merchant.id,
        livemode=merchant.livemode,
        name=merchant.name,
        category=merchant.category,
        currency=merchant.currency,
        fee_bps=merchant.fee_bps,
        tax_bps=int(row.tax_bps) if row else 0,
        fulfillment=methods,
        stores=tuple(list_stores(uow, merchant_id, livemode)),
        cart_key_mode=row.cart_key_mode if row else "hosted",
    )


def update_profile(
    uow: UnitOfWork,
    actor: Principal | None,
    merchant_id: str,
    livemode: bool,
    *,
    tax_bps: int | None = None,
    fulfillment: Sequence[Mapping[str, Any]] | None = None,
) -> MerchantProfile:
    """Change the tax rate and/or the fulfillment methods (the list replaces the old one)."""
    current = get_profile(uow, merchant_id, livemode)
    if tax_bps is not None and (
        isinstance(tax_bps, bool) or not isinstance(tax_bps, int) or not 0 <= tax_bps <= 10_000
    ):
        raise InvalidRequest("tax_bps is 0 to 10000 basis points", param="$.tax_bps")
    methods = (
        current.fulfillment
        if fulfillment is None
        else _fulfillment(fulfillment, {s.id for s in current.stores})
    )
    _write_profile(
        uow,
        merchant_id,
        tax_bps=current.tax_bps if tax_bps is None else tax_bps,
        methods=methods,
        mode=current.cart_key_mode,
    )
    return _changed(uow, actor, merchant_id, livemode, "profile")


def _fulfillment(
    raw: Sequence[Mapping[str, Any]], store_ids: set[str]
) -> tuple[FulfillmentMethod, ...]:
    if not isinstance(raw, Sequence) or len(raw) > len(FULFILLMENT_TYPES):
        raise InvalidRequest("fulfillment is a list of methods", param="$.fulfillment")
    methods: list[FulfillmentMethod] = []
    for index, item in enumerate(raw):
        at = f"$.fulfillment[{index}]"
        if not isinstance(item, Mapping) or item.get("type") not in FULFILLMENT_TYPES:
            raise InvalidRequest(f"type is one of {list(FULFILLMENT_TYPES)}", param=f"{at}.type")
        if any(m.type == item["type"] for m in methods):
            raise InvalidRequest(f"{item['type']} is listed twice", param=f"{at}.type")
        unknown = set(item) - {"type", "amount", "stores"}
        if unknown:
            raise InvalidRequest(
                f"unknown field {sorted(unknown)[0]!r}", code="unknown_parameter", param=at
            )
        stores = item.get("stores") or []
        if item["type"] != "pickup" and stores:
            raise InvalidRequest("only pickup names stores", param=f"{at}.stores")
        if not isinstance(stores, list) or any(s not in store_ids for s in stores):
            raise InvalidRequest("stores are this merchant's sto_ ids", param=f"{at}.stores")
        if item["type"] == "pickup" and not stores:
            raise InvalidRequest("pickup names at least one store", param=f"{at}.stores")
        amount = parse_amount(item.get("amount", 0), f"{at}.amount", allow_zero=True)
        methods.append(FulfillmentMethod(item["type"], amount, tuple(dict.fromkeys(stores))))
    return tuple(methods)


def _write_profile(
    uow: UnitOfWork,
    merchant_id: str,
    *,
    tax_bps: int,
    methods: Sequence[FulfillmentMethod],
    mode: str,
) -> None:
    values = {
        "tax_bps": tax_bps,
        "fulfillment": [
            {"type": m.type, "amount": m.amount, **({"stores": list(m.stores)} if m.stores else {})}
            for m in methods
        ],
        "cart_key_mode": mode,
        "updated_at": uow.clock.now(),
    }
    dialect_insert = postgresql_insert if uow.dialect == "postgresql" else sqlite_insert
    statement = dialect_insert(merchant_profiles).values(merchant_id=merchant_id, **values)
    # One statement, so that two first updates at once cannot both insert.
    uow.execute(statement.on_conflict_do_update(index_elements=["merchant_id"], set_=values))


def _changed(
    uow: UnitOfWork, actor: Principal | None, merchant_id: str, livemode: bool, what: str
) -> MerchantProfile:
    profile = get_profile(uow, merchant_id, livemode)
    emit(uow, "merchant.updated", livemode, {**wire_profile(profile), "changed": what})
    _ = actor
    return profile


def list_stores(uow: UnitOfWork, merchant_id: str, livemode: bool) -> list[StoreRecord]:
    rows = uow.execute(_STORES, {"merchant_id": merchant_id, "livemode": livemode}).all()
    return [_store(row) for row in rows]


def create_store(
    uow: UnitOfWork,
    actor: Principal | None,
    merchant_id: str,
    livemode: bool,
    fields: Mapping[str, Any],
) -> StoreRecord:
    """A new shop location: ``name``, ``address``, ``timezone`` (IANA) and ``hours``."""
    identity.get_merchant(uow, merchant_id, livemode)
    if len(list_stores(uow, merchant_id, livemode)) >= STORES_MAX:
        raise Conflict(f"a merchant has at most {STORES_MAX} stores", code="too_many_stores")
    checked = _store_fields(fields, partial=False)
    now = uow.clock.now()
    store_id = new_id("sto")
    uow.execute(
        insert(_S).values(
            id=store_id,
            merchant_id=merchant_id,
            livemode=livemode,
            created_at=now,
            updated_at=now,
            **checked,
        )
    )
    _changed(uow, actor, merchant_id, livemode, "stores")
    return _get_store(uow, merchant_id, livemode, store_id)


def update_store(
    uow: UnitOfWork,
    actor: Principal | None,
    merchant_id: str,
    livemode: bool,
    store_id: str,
    fields: Mapping[str, Any],
) -> StoreRecord:
    _get_store(uow, merchant_id, livemode, store_id)
    checked = _store_fields(fields, partial=True)
    uow.execute(update(_S).where(_S.c.id == store_id).values(updated_at=uow.clock.now(), **checked))
    _changed(uow, actor, merchant_id, livemode, "stores")
    return _get_store(uow, merchant_id, livemode, store_id)


def _get_store(uow: UnitOfWork, merchant_id: str, livemode: bool, store_id: str) -> StoreRecord:
    row = uow.execute(
        select(_S).where(
            _S.c.id == store_id, _S.c.merchant_id == merchant_id, _S.c.livemode == livemode
        )
    ).one_or_none()
    if row is None:
        raise NotFound(f"no such store: {store_id}", param="$.store")
    return _store(row)


def _store_fields(fields: Mapping[str, Any], *, partial: bool) -> dict[str, Any]:
    checked: dict[str, Any] = {}
    for name, limit in (("name", 200), ("address", 500)):
        value = fields.get(name)
        if value is None and partial:
            continue
        if not isinstance(value, str) or not value.strip() or len(value) > limit:
            raise InvalidRequest(f"{name} is 1 to {limit} characters", param=f"$.{name}")
        checked[name] = value.strip()
    zone = fields.get("timezone")
    if zone is not None or not partial:
        checked["timezone"] = _timezone(zone)
    if fields.get("hours") is not None or not partial:
        checked["hours"] = parse_hours(fields.get("hours") or {})
    return checked


def _timezone(value: Any) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 64:
        raise InvalidRequest("timezone is an IANA time zone name", param="$.timezone")
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise InvalidRequest(
            f"{value!r} is not an IANA time zone (such as Europe/Paris)",
            code="unknown_timezone",
            param="$.timezone",
        ) from None
    return value


def _store(row: Any) -> StoreRecord:
    return StoreRecord(
        row.id,
        row.merchant_id,
        bool(row.livemode),
        row.name,
        row.address,
        row.timezone,
        row.hours,
        row.created_at,
        row.updated_at,
    )


def wire_store(store: StoreRecord) -> dict[str, Any]:
    return {
        "id": store.id,
        "object": "store",
        "livemode": store.livemode,
        "created": rfc3339(store.created_at),
        "merchant": store.merchant_id,
        "name": store.name,
        "address": store.address,
        "timezone": store.timezone,
        "hours": store.hours,
    }


def wire_profile(profile: MerchantProfile) -> dict[str, Any]:
    return {
        "id": profile.merchant_id,
        "object": "merchant_profile",
        "livemode": profile.livemode,
        "name": profile.name,
        "category": profile.category,
        "currency": profile.currency,
        "fee_bps": profile.fee_bps,
        "tax_bps": profile.tax_bps,
        "fulfillment": [
            {
                "type": m.type,
                "amount": m.amount,
                "currency": profile.currency,
                "stores": list(m.stores),
            }
            for m in profile.fulfillment
        ],
        "stores": [wire_store(store) for store in profile.stores],
        "cart_key_mode": profile.cart_key_mode,
    }


# --- cart-signing keys -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _CartKey:
    merchant_id: str
    kid: str
    public_jwk: dict[str, str]
    private_ciphertext: str | None
    hosted: bool
    status: KeyStatus
    created_at: datetime
    retired_at: datetime | None
    publish_until: datetime | None

    def record(self) -> KeyRecord:
        invariant(self.private_ciphertext is not None, "only a hosted key is opened")
        return KeyRecord(
            kid=self.kid,
            purpose=Purpose.CART,
            alg=ES256,
            public_jwk=self.public_jwk,
            private_ciphertext=self.private_ciphertext or "",
            status=self.status,
            created_at=self.created_at,
            activated_at=self.created_at,
            retired_at=self.retired_at,
            publish_until=self.publish_until,
        )

    def published(self, now: datetime) -> bool:
        if self.status == KeyStatus.ACTIVE:
            return True
        return (
            self.status == KeyStatus.RETIRED
            and self.publish_until is not None
            and now <= self.publish_until
        )

    def jwk(self) -> dict[str, Any]:
        return {**self.public_jwk, "kid": self.kid, "alg": ES256, "use": "sig"}


def _keys(uow: UnitOfWork, merchant_id: str) -> list[_CartKey]:
    rows = uow.execute(_CART_KEYS, {"merchant_id": merchant_id}).all()
    return [
        _CartKey(
            row.merchant_id,
            row.kid,
            dict(row.public_jwk),
            row.private_ciphertext,
            bool(row.hosted),
            KeyStatus(row.status),
            row.created_at,
            row.retired_at,
            row.publish_until,
        )
        for row in rows
    ]


def _active(uow: UnitOfWork, merchant_id: str, *, for_update: bool = False) -> _CartKey | None:
    if for_update:  # lock the active row, so two rotations cannot both retire it
        uow.execute(
            select(_K.c.kid)
            .where(_K.c.merchant_id == merchant_id, _K.c.status == "active")
            .with_for_update()
        ).all()
    return next((key for key in _keys(uow, merchant_id) if key.status == KeyStatus.ACTIVE), None)


def cart_keys(uow: UnitOfWork, merchant_id: str, livemode: bool) -> dict[str, Any]:
    """The merchant's published cart keys as a JWK set: the active key first, then retired
    keys within their overlap. A hosted merchant without a key yet publishes an empty set."""
    identity.get_merchant(uow, merchant_id, livemode)
    now = uow.clock.now()
    published = [key for key in _keys(uow, merchant_id) if key.published(now)]
    published.sort(key=lambda key: key.status != KeyStatus.ACTIVE)
    return {"keys": [key.jwk() for key in published]}


def _trusted_jwks(uow: UnitOfWork, merchant_id: str) -> dict[str, Any]:
    return {
        "keys": [key.jwk() for key in _keys(uow, merchant_id) if key.status != KeyStatus.REVOKED]
    }


def rotate_cart_key(
    uow: UnitOfWork,
    actor: Principal | None,
    merchant_id: str,
    livemode: bool,
    *,
    master_key: bytes,
    overlap: timedelta = PUBLISH_OVERLAP_DEFAULT,
) -> dict[str, Any]:
    """A new hosted key signs from now on (the merchant becomes hosted if it was not); the
    old active key is retired, published for ``overlap`` and still trusted. Returns its JWK."""
    identity.get_merchant(uow, merchant_id, livemode)
    old = _active(uow, merchant_id, for_update=True)
    record = _new_hosted_key(uow, master_key)
    _retire(uow, old, overlap)
    _insert_key(uow, merchant_id, record.kid, record.public_jwk, record.private_ciphertext)
    _set_mode(uow, merchant_id, livemode, "hosted")
    audit.record(
        uow,
        "merchant_cart_key.rotated",
        actor,
        merchant_id,
        {"kid": record.kid, "hosted": True, "retired_kid": old.kid if old else None},
    )
    _changed(uow, actor, merchant_id, livemode, "cart_key")
    return {**record.public_jwk, "kid": record.kid, "alg": ES256, "use": "sig"}


def register_cart_key(
    uow: UnitOfWork,
    actor: Principal | None,
    merchant_id: str,
    livemode: bool,
    jwk: Mapping[str, Any],
    *,
    overlap: timedelta = PUBLISH_OVERLAP_DEFAULT,
) -> dict[str, Any]:
    """The merchant's own ES256 public key becomes its active cart key: it signs its carts
    itself from now on. The previous key is retired as in a rotation."""
    identity.get_merchant(uow, merchant_id, livemode)
    key = parse_public_jwk(jwk)
    if key.alg != ECDSA_P256_SHA256:
        raise InvalidRequest(
            "cart keys are ES256 (EC P-256) keys", code="invalid_key", param="$.jwk"
        )
    if any(k.kid == key.thumbprint for k in _keys(uow, merchant_id)):
        raise Conflict(
            "this key was registered before; register a new key", code="key_reused", param="$.jwk"
        )
    old = _active(uow, merchant_id, for_update=True)
    public = {name: str(jwk[name]) for name in ("kty", "crv", "x", "y")}
    _retire(uow, old, overlap)
    _insert_key(uow, merchant_id, key.thumbprint, public, None)
    _set_mode(uow, merchant_id, livemode, "own")
    audit.record(
        uow,
        "merchant_cart_key.registered",
        actor,
        merchant_id,
        {"kid": key.thumbprint, "hosted": False, "retired_kid": old.kid if old else None},
    )
    _changed(uow, actor, merchant_id, livemode, "cart_key")
    return {**public, "kid": key.thumbprint, "alg": ES256, "use": "sig"}


def revoke_cart_key(
    uow: UnitOfWork, actor: Principal | None, merchant_id: str, livemode: bool, kid: str
) -> None:
    """Withdraw a compromised key: neither published nor trusted any more. Revoking the
    active hosted key makes the next signature use a fresh one."""
    identity.get_merchant(uow, merchant_id, livemode)
    written = uow.execute(
        update(_K)
        .where(_K.c.merchant_id == merchant_id, _K.c.kid == kid, _K.c.status != "revoked")
        .values(status="revoked", publish_until=None, retired_at=uow.clock.now())
    ).rowcount
    if written != 1:
        raise NotFound(f"no such cart key: {kid}", param="$.kid")
    audit.record(uow, "merchant_cart_key.revoked", actor, merchant_id, {"kid": kid})
    _changed(uow, actor, merchant_id, livemode, "cart_key")


def _retire(uow: UnitOfWork, old: _CartKey | None, overlap: timedelta) -> None:
    if old is None:
        return
    now = uow.clock.now()
    written = uow.execute(
        update(_K)
        .where(_K.c.merchant_id == old.merchant_id, _K.c.kid == old.kid, _K.c.status == "active")
        .values(status="retired", retired_at=now, publish_until=now + overlap)
    ).rowcount
    if written != 1:
        raise Conflict("the cart key was rotated concurrently; run again", code="state_conflict")


def _insert_key(
    uow: UnitOfWork, merchant_id: str, kid: str, public_jwk: Mapping[str, str], sealed: str | None
) -> None:
    uow.execute(insert(_K).values(**_key_row(merchant_id, kid, public_jwk, sealed, uow)))


def _key_row(
    merchant_id: str,
    kid: str,
    public_jwk: Mapping[str, str],
    sealed: str | None,
    uow: UnitOfWork,
) -> dict[str, Any]:
    return {
        "merchant_id": merchant_id,
        "kid": kid,
        "alg": ES256,
        "public_jwk": dict(public_jwk),
        "private_ciphertext": sealed,
        "hosted": sealed is not None,
        "status": "active",
        "created_at": uow.clock.now(),
    }


def _set_mode(uow: UnitOfWork, merchant_id: str, livemode: bool, mode: str) -> None:
    current = get_profile(uow, merchant_id, livemode)
    _write_profile(
        uow, merchant_id, tax_bps=current.tax_bps, methods=current.fulfillment, mode=mode
    )


def sign_cart(
    uow: UnitOfWork,
    merchant_id: str,
    livemode: bool,
    cart_hash: str,
    *,
    master_key: bytes,
    profile: MerchantProfile | None = None,
) -> str | None:
    """The merchant's signature over ``cart_hash`` (see the module docstring for the exact
    JWS), or ``None`` when the merchant keeps its own key and signs carts itself. A hosted
    merchant's first key is made here. ``profile``: the merchant's, when the caller read it
    already in this unit of work."""
    _check_hash(cart_hash)
    if profile is None:
        profile = get_profile(uow, merchant_id, livemode)
    if profile.cart_key_mode == "own":
        return None
    active = _active(uow, merchant_id)
    if active is None:
        _create_first_hosted(uow, merchant_id, livemode, master_key)
        active = _active(uow, merchant_id)
    if active is None or not active.hosted:
        raise InvariantViolation(f"{merchant_id} is hosted but has no active hosted cart key")
    signer = _OPENED.open(active.record(), master_key)
    return jws.sign(_CART_PROFILE, {"cart_hash": cart_hash, "merchant": merchant_id}, signer)


def _create_first_hosted(
    uow: UnitOfWork, merchant_id: str, livemode: bool, master_key: bytes
) -> None:
    """A hosted merchant's first key. Two first signatures at once both insert with ON
    CONFLICT DO NOTHING (one active key per merchant, a unique index) and then both sign
    with whichever key won."""
    record = _new_hosted_key(uow, master_key)
    dialect_insert = postgresql_insert if uow.dialect == "postgresql" else sqlite_insert
    statement = (
        dialect_insert(_K)
        .values(
            **_key_row(merchant_id, record.kid, record.public_jwk, record.private_ciphertext, uow)
        )
        .on_conflict_do_nothing()
        .returning(_K.c.kid)  # rowcount is -1 for this statement on psycopg
    )
    if uow.execute(statement).all():
        audit.record(
            uow, "merchant_cart_key.created", None, merchant_id, {"kid": record.kid, "hosted": True}
        )
        _changed(uow, None, merchant_id, livemode, "cart_key")


def _new_hosted_key(uow: UnitOfWork, master_key: bytes) -> KeyRecord:
    record, _private = custody.new_key(
        Purpose.CART,
        randomness=secrets.token_bytes(RANDOM_BYTES[ES256]),
        nonce=secrets.token_bytes(NONCE_BYTES),
        master_key=master_key,
        now=uow.clock.now(),
    )
    return record


def verify_cart_signature(
    uow: UnitOfWork, merchant_id: str, livemode: bool, cart_hash: str, signature: str
) -> None:
    """Raise ``InvalidRequest(code="cart_signature_invalid")`` unless ``signature`` is the
    merchant's signature (any key not revoked) over exactly ``cart_hash`` and this merchant."""
    identity.get_merchant(uow, merchant_id, livemode)
    _kid, claims = jws.verify(_CART_PROFILE, signature, _trusted_jwks(uow, merchant_id))
    extra = set(claims) - {"cart_hash", "merchant", "iat"}
    iat = claims.get("iat", 0)
    if (
        extra
        or claims.get("cart_hash") != cart_hash
        or claims.get("merchant") != merchant_id
        or isinstance(iat, bool)
        or not isinstance(iat, int)
    ):
        raise InvalidRequest(
            "the cart signature does not cover this cart of this merchant",
            code="cart_signature_invalid",
            param="$.cart_signature",
        )


def _check_hash(cart_hash: str) -> None:
    if not isinstance(cart_hash, str) or not 1 <= len(cart_hash) <= CART_HASH_LENGTH_MAX:
        raise InvalidRequest(
            f"cart_hash is 1 to {CART_HASH_LENGTH_MAX} characters", param="$.cart_hash"
        )


# Read at every checkout pricing: built once and run on the driver (store.prepared).
_PROFILE = select(merchant_profiles).where(
    merchant_profiles.c.merchant_id == bindparam("merchant_id")
)
_STORES = (
    select(_S)
    .where(_S.c.merchant_id == bindparam("merchant_id"), _S.c.livemode == bindparam("livemode"))
    .order_by(_S.c.created_at, _S.c.id)
    .limit(STORES_MAX)
)
_CART_KEYS = (  # every cart signature reads them (the active key among them)
    select(_K)
    .where(_K.c.merchant_id == bindparam("merchant_id"))
    .order_by(_K.c.created_at.desc(), _K.c.kid)
)
prepare_all(globals())
