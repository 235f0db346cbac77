"""Demo data for a fresh installation: a few users and merchants with money moving, and
the merchants' stores and catalogs (see :mod:`paywarden.services.demo_catalog`).

Idempotent: it looks for its own marker and does nothing the second time.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from sqlalchemy import select

from paywarden.kernel.principals import Principal, PrincipalType
from paywarden.services import holds, identity, ledger, web_access
from paywarden.services.demo_catalog import load_catalogs
from paywarden.store import schema
from paywarden.store.unit_of_work import UnitOfWork

__all__ = ["DemoResult", "load_demo"]

DEMO_EMAIL = "ada@demo.paywarden.dev"
_TEST_CARD = ledger.Card("4242424242424242", 12, 2099)
_ADMIN = Principal(PrincipalType.ADMIN, None, False, "demo", identity.API_VERSION)


@dataclass
class DemoResult:
    created: bool
    keys: dict[str, str] = field(default_factory=dict)
    passwords: dict[str, str] = field(default_factory=dict)  # email -> dashboard password
    products: int = 0  # catalog products loaded for the three demo merchants


def load_demo(uow: UnitOfWork, token_key: bytes) -> DemoResult:
    users = schema.users
    if uow.execute(select(users.c.id).where(users.c.email == DEMO_EMAIL)).first():
        return DemoResult(created=False)
    result = DemoResult(created=True)
    ada, ada_key = identity.create_user(
        uow, email=DEMO_EMAIL, name="Ada Lovelace", currency="usd", livemode=False
    )
    lin, lin_key = identity.create_user(
        uow, email="lin@demo.paywarden.dev", name="Lin Wei", currency="cny", livemode=False
    )
    cafe, cafe_key = identity.create_merchant(
        uow, name="Harbour Coffee", category="coffee", currency="usd", fee_bps=250, livemode=False
    )
    grocer, grocer_key = identity.create_merchant(
        uow,
        name="Quick Basket",
        category="grocery",
        currency="cny",
        fee_bps=150,
        livemode=False,
    )
    shop, shop_key = identity.create_merchant(
        uow,
        name="Volt Electronics",
        category="electronics",
        currency="usd",
        fee_bps=300,
        livemode=False,
    )
    for name, key in (
        ("ada (user)", ada_key),
        ("lin (user)", lin_key),
        ("Harbour Coffee (merchant)", cafe_key),
        ("Quick Basket (merchant)", grocer_key),
        ("Volt Electronics (merchant)", shop_key),
    ):
        result.keys[name] = key.secret or ""
    # Random dashboard passwords for the demo users, shown once like the keys.
    for user in (ada, lin):
        password = secrets.token_urlsafe(12)
        web_access.set_password(uow, _ADMIN, user.id, password)
        result.passwords[user.email] = password
    ada_p = _principal(PrincipalType.USER, ada.id, ada_key.id)
    lin_p = _principal(PrincipalType.USER, lin.id, lin_key.id)
    cafe_p = _principal(PrincipalType.MERCHANT, cafe.id, cafe_key.id)
    ledger.top_up(uow, ada_p, amount=50_00, currency="usd", card=_TEST_CARD, token_key=token_key)
    ledger.top_up(uow, lin_p, amount=300_00, currency="cny", card=_TEST_CARD, token_key=token_key)
    latte = holds.create_hold(
        uow, ada_p, destination=cafe.id, amount=5_40, currency="usd", description="oat latte, large"
    )
    holds.capture_hold(uow, cafe_p, latte.hold.id)
    holds.create_hold(
        uow,
        ada_p,
        destination=shop.id,
        amount=19_99,
        currency="usd",
        description="usb-c cable (awaiting shipment)",
    )
    ledger.transfer(
        uow, lin_p, destination=grocer.id, amount=42_50, currency="cny", description="groceries"
    )
    result.products = load_catalogs(uow, cafe.id, grocer.id, shop.id)
    return result


def _principal(kind: PrincipalType, principal_id: str, key_id: str) -> Principal:
    return Principal(kind, principal_id, False, key_id, identity.API_VERSION)
