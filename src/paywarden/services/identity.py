"""Users, merchants, their accounts, and the secret keys they authenticate with.

A secret key is ``pw_test_`` or ``pw_live_`` followed by 43 url-safe characters (256 random
bits). Only its SHA-256 is stored; the key itself is returned once, on creation.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from sqlalchemy import bindparam, insert, select, update

from paywarden.adapters.ids import new_id
from paywarden.kernel.errors import AuthenticationFailed, Conflict, InvalidRequest, NotFound
from paywarden.kernel.principals import Principal, PrincipalType
from paywarden.payments.holds import FEE_BPS_MAX
from paywarden.payments.ledger import AccountKind
from paywarden.services import audit
from paywarden.services.records import ApiKeyRecord, MerchantRecord, UserRecord, wire
from paywarden.store import schema
from paywarden.store.ledger_repo import account_from_row, create_account
from paywarden.store.outbox import emit
from paywarden.store.prepared import prepare_all
from paywarden.store.unit_of_work import UnitOfWork

__all__ = [
    "API_VERSION",
    "add_wallet",
    "authenticate",
    "create_merchant",
    "create_user",
    "get_merchant",
    "get_user",
    "issue_key",
    "list_keys",
    "revoke_key",
]

# The dated API version; a key is pinned to the version current when it was created.
API_VERSION = "2026-11-29"
SUPPORTED_API_VERSIONS = (API_VERSION,)
_SECRET_PREFIX = {False: "pw_test_", True: "pw_live_"}


def _hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def issue_key(
    uow: UnitOfWork,
    principal_type: PrincipalType,
    principal_id: str | None,
    livemode: bool,
    *,
    actor: Principal | None = None,
) -> ApiKeyRecord:
    """Issue a secret key (returned once, in ``secret``); audited with ``actor`` (None when
    the platform itself acts, as at first run)."""
    secret = _SECRET_PREFIX[livemode] + secrets.token_urlsafe(32)
    record = ApiKeyRecord(
        id=new_id("key"),
        livemode=livemode,
        principal_type=principal_type.value,
        principal_id=principal_id,
        secret_hint=secret[:8] + "…" + secret[-4:],
        api_version=API_VERSION,
        created_at=uow.clock.now(),
        secret=secret,
    )
    uow.execute(
        insert(schema.api_keys).values(
            id=record.id,
            livemode=livemode,
            principal_type=principal_type.value,
            principal_id=principal_id,
            secret_hash=_hash_secret(secret),
            secret_hint=record.secret_hint,
            api_version=API_VERSION,
            created_at=record.created_at,
        )
    )
    public = wire(_without_secret(record))
    emit(uow, "api_key.created", livemode, public)
    audit.record(uow, "api_key.created", actor, record.id, public)
    return record


def _without_secret(record: ApiKeyRecord) -> ApiKeyRecord:
    return ApiKeyRecord(**{**_fields(record), "secret": None})


def _fields(record: ApiKeyRecord) -> dict[str, Any]:
    return {name: getattr(record, name) for name in record.__slots__}


def list_keys(
    uow: UnitOfWork, principal_type: PrincipalType, principal_id: str | None, livemode: bool
) -> list[ApiKeyRecord]:
    """A principal's secret keys, newest first, revoked ones included (never a secret)."""
    k = schema.api_keys
    rows = uow.execute(
        select(k)
        .where(
            k.c.principal_type == principal_type.value,
            k.c.principal_id == principal_id,
            k.c.livemode == livemode,
        )
        .order_by(k.c.id.desc())
    )
    return [
        ApiKeyRecord(
            id=row.id,
            livemode=bool(row.livemode),
            principal_type=row.principal_type,
            principal_id=row.principal_id,
            secret_hint=row.secret_hint,
            api_version=row.api_version,
            created_at=row.created_at,
            revoked_at=row.revoked_at,
        )
        for row in rows
    ]


def revoke_key(uow: UnitOfWork, key_id: str, *, actor: Principal | None = None) -> None:
    result = uow.execute(
        update(schema.api_keys)
        .where(schema.api_keys.c.id == key_id, schema.api_keys.c.revoked_at.is_(None))
        .values(revoked_at=uow.clock.now())
    )
    if result.rowcount != 1:
        raise NotFound(f"no active key {key_id}", param="$.key")
    audit.record(uow, "api_key.revoked", actor, key_id, {})


def authenticate(uow: UnitOfWork, secret: str) -> Principal:
    """The principal behind a secret key, or :class:`AuthenticationFailed`."""
    if not secret.startswith(("pw_test_", "pw_live_")) or len(secret) > 200:
        raise AuthenticationFailed("the API key is malformed; it starts with pw_test_ or pw_live_")
    row = uow.execute(_KEY_BY_HASH, {"secret_hash": _hash_secret(secret)}).one_or_none()
    if row is None or row.revoked_at is not None:
        raise AuthenticationFailed("the API key is unknown or revoked", code="invalid_api_key")
    return Principal(
        type=PrincipalType(row.principal_type),
        id=row.principal_id,
        livemode=bool(row.livemode),
        key_id=row.id,
        api_version=row.api_version,
    )


def _check_text(value: str, param: str, limit: int) -> str:
    value = value.strip()
    if not value or len(value) > limit:
        raise InvalidRequest(f"{param[2:]} must be 1 to {limit} characters", param=param)
    return value


def create_user(
    uow: UnitOfWork,
    *,
    email: str,
    name: str,
    currency: str,
    livemode: bool,
    actor: Principal | None = None,
) -> tuple[UserRecord, ApiKeyRecord]:
    email = _check_text(email, "$.email", 320).lower()
    if "@" not in email:
        raise InvalidRequest("email must contain @", code="invalid_email", param="$.email")
    users = schema.users
    taken = uow.execute(
        select(users.c.id).where(users.c.email == email, users.c.livemode == livemode)
    ).first()
    if taken is not None:
        raise Conflict(f"a user with email {email} exists", code="email_taken", param="$.email")
    now = uow.clock.now()
    user_id = new_id("usr")
    uow.execute(
        insert(users).values(
            id=user_id,
            livemode=livemode,
            email=email,
            name=_check_text(name, "$.name", 200),
            created_at=now,
        )
    )
    wallet = create_account(
        uow,
        kind=AccountKind.USER_WALLET,
        currency=currency,
        livemode=livemode,
        owner_id=user_id,
        non_negative=True,
    )
    user = UserRecord(user_id, livemode, email, name.strip(), now, (wallet,))
    emit(uow, "user.created", livemode, wire(user))
    audit.record(uow, "user.created", actor, user_id, {"wallet": wallet.id})
    return user, issue_key(uow, PrincipalType.USER, user_id, livemode, actor=actor)


def add_wallet(uow: UnitOfWork, user_id: str, currency: str, livemode: bool) -> UserRecord:
    user = get_user(uow, user_id, livemode)
    if any(wallet.currency == currency for wallet in user.wallets):
        raise Conflict(
            f"the user has a {currency} wallet already", code="wallet_exists", param="$.currency"
        )
    wallet = create_account(
        uow,
        kind=AccountKind.USER_WALLET,
        currency=currency,
        livemode=livemode,
        owner_id=user_id,
        non_negative=True,
    )
    emit(uow, "account.created", livemode, wire(wallet))
    return get_user(uow, user_id, livemode)


def get_user(uow: UnitOfWork, user_id: str, livemode: bool) -> UserRecord:
    users = schema.users
    row = uow.execute(
        select(users).where(users.c.id == user_id, users.c.livemode == livemode)
    ).one_or_none()
    if row is None:
        raise NotFound(f"no such user: {user_id}", param="$.user")
    return UserRecord(
        row.id,
        bool(row.livemode),
        row.email,
        row.name,
        row.created_at,
        tuple(_owned_accounts(uow, user_id)),
    )


def create_merchant(
    uow: UnitOfWork,
    *,
    name: str,
    category: str,
    currency: str,
    fee_bps: int,
    livemode: bool,
    actor: Principal | None = None,
) -> tuple[MerchantRecord, ApiKeyRecord]:
    if (
        isinstance(fee_bps, bool)
        or not isinstance(fee_bps, int)
        or not (0 <= fee_bps <= FEE_BPS_MAX)
    ):
        raise InvalidRequest(
            "fee_bps must be an integer from 0 to 10000", code="invalid_fee", param="$.fee_bps"
        )
    now = uow.clock.now()
    merchant_id = new_id("mer")
    uow.execute(
        insert(schema.merchants).values(
            id=merchant_id,
            livemode=livemode,
            name=_check_text(name, "$.name", 200),
            category=_check_text(category, "$.category", 100),
            currency=currency,
            fee_bps=fee_bps,
            created_at=now,
        )
    )
    account = create_account(
        uow,
        kind=AccountKind.MERCHANT,
        currency=currency,
        livemode=livemode,
        owner_id=merchant_id,
        non_negative=True,
    )
    merchant = MerchantRecord(
        merchant_id, livemode, name.strip(), category.strip(), currency, fee_bps, now, account
    )
    emit(uow, "merchant.created", livemode, wire(merchant))
    audit.record(uow, "merchant.created", actor, merchant_id, {"fee_bps": fee_bps})
    return merchant, issue_key(uow, PrincipalType.MERCHANT, merchant_id, livemode, actor=actor)


def get_merchant(uow: UnitOfWork, merchant_id: str, livemode: bool) -> MerchantRecord:
    row = uow.execute(_MERCHANT, {"merchant_id": merchant_id, "livemode": livemode}).one_or_none()
    if row is None:
        raise NotFound(f"no such merchant: {merchant_id}", param="$.merchant")
    accounts = _owned_accounts(uow, merchant_id)
    return MerchantRecord(
        row.id,
        bool(row.livemode),
        row.name,
        row.category,
        row.currency,
        int(row.fee_bps),
        row.created_at,
        accounts[0] if accounts else None,
    )


def _owned_accounts(uow: UnitOfWork, owner_id: str) -> list[Any]:
    rows = uow.execute(_OWNED_ACCOUNTS, {"owner_id": owner_id})
    return [account_from_row(row) for row in rows]


# Read at every request with a secret key, and at every checkout pricing: built once and
# run on the driver (store.prepared).
_KEY_BY_HASH = select(schema.api_keys).where(
    schema.api_keys.c.secret_hash == bindparam("secret_hash")
)
_MERCHANT = select(schema.merchants).where(
    schema.merchants.c.id == bindparam("merchant_id"),
    schema.merchants.c.livemode == bindparam("livemode"),
)
_OWNED_ACCOUNTS = (
    select(schema.accounts)
    .where(schema.accounts.c.owner_id == bindparam("owner_id"))
    .order_by(schema.accounts.c.id)
)
prepare_all(globals())
