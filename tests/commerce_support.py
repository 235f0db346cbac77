"""What the checkout and order tests share: a payment world (tests/payment_support.py) whose
merchant has a profile (a store open every day 07:00-19:00 in Europe/Paris, pickup, local
delivery, shipping, 10% tax) and a small catalog, plus one-call checkout helpers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from conftest import Api
from payment_support import (
    ISSUER,
    MASTER_KEY,
    NO_RISK,
    SignedAgent,
    World,
    budget,
    make_world,
    payees,
    register_agent,
)
from paywarden.commerce.catalog import LineRequest, parse_draft
from paywarden.kernel.clock import FakeClock
from paywarden.kernel.principals import Principal, PrincipalType
from paywarden.services import approvals, catalog, checkout, merchants
from paywarden.services.checkout import CheckoutRecord
from paywarden.store.unit_of_work import Store, UnitOfWork

HOURS = {day: [["07:00", "19:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
TAX_BPS = 1000
ADDRESS = {
    "name": "Ada",
    "line_one": "1 Rue de Rivoli",
    "city": "Paris",
    "state": "IDF",
    "country": "FR",
    "postal_code": "75001",
}
PRODUCTS: list[dict[str, Any]] = [
    {
        "sku": "latte",
        "title": "Latte",
        "amount": 450,
        "option_groups": [
            {
                "name": "size",
                "required": True,
                "values": [
                    {"name": "small", "amount_delta": 0, "default": True},
                    {"name": "large", "amount_delta": 100},
                ],
            },
            {"name": "milk", "values": [{"name": "oat", "amount_delta": 50}]},
        ],
    },
    {"sku": "beans", "title": "Beans 1 kg", "amount": 2000, "stock": 3},
    {"sku": "mug", "title": "Mug", "amount": 1200, "stock": 1},
]


@dataclass
class Shop:
    world: World
    store_id: str

    @property
    def store(self) -> Store:
        return self.world.store

    @property
    def clock(self) -> FakeClock:
        return self.world.clock

    def run(self, work: Any) -> Any:
        return self.world.store.run(work)

    def create(
        self,
        *lines: LineRequest,
        fulfillment: dict[str, Any] | None = None,
        details: dict[str, Any] | None = None,
    ) -> CheckoutRecord:
        chosen = fulfillment or {"option_id": f"pickup_{self.store_id}"}
        return self.run(
            lambda uow: checkout.create(
                uow,
                self.world.agent,
                merchant_id=self.world.merchant,
                items=list(lines) or [LineRequest("latte", 1)],
                fulfillment=chosen,
                buyer=None,
                master_key=MASTER_KEY,
                fulfillment_details=details,
            )
        )

    def complete(
        self, session: CheckoutRecord, mandate_id: str, cart_hash: str | None = None, **kw: Any
    ) -> CheckoutRecord:
        return self.run(
            lambda uow: checkout.complete(
                uow,
                self.world.agent,
                session.id,
                mandate_id=mandate_id,
                cart_hash=cart_hash if cart_hash is not None else session.cart_hash,
                master_key=MASTER_KEY,
                issuer=ISSUER,
                risk=kw.get("risk", NO_RISK),
                approval=approvals.ApprovalPolicy(),
            )
        )

    def mandate(self, max_amount: int = 50_000, *extra: dict[str, Any]) -> str:
        return self.world.mandate([budget(max_amount), payees(self.world.merchant), *extra])

    def stock(self, sku: str) -> int | None:
        def read(uow: UnitOfWork) -> int | None:
            product = catalog.get_product(uow, self.world.merchant, False, sku)
            return product.draft.stock

        result: int | None = self.store.run(read, read_only=True)
        return result


def merchant_principal(world: World) -> Principal:
    """The world's merchant, as its secret key would authenticate it."""
    return Principal(
        PrincipalType.MERCHANT, world.merchant, False, "key_m", world.admin.api_version
    )


def make_shop(store: Store, clock: FakeClock, *, funded: int = 100_000) -> Shop:
    world = make_world(store, clock, funded=funded)

    def setup(uow: UnitOfWork) -> str:
        shop = merchants.create_store(
            uow,
            world.admin,
            world.merchant,
            False,
            {
                "name": "Louvre",
                "address": "1 Rue de Rivoli",
                "timezone": "Europe/Paris",
                "hours": HOURS,
            },
        )
        merchants.update_profile(
            uow,
            world.admin,
            world.merchant,
            False,
            tax_bps=TAX_BPS,
            fulfillment=[
                {"type": "pickup", "amount": 0, "stores": [shop.id]},
                {"type": "local_delivery", "amount": 300},
                {"type": "shipping", "amount": 500},
            ],
        )
        for raw in PRODUCTS:
            catalog.upsert_product(uow, world.admin, world.merchant, False, parse_draft(raw))
        return shop.id

    return Shop(world, store.run(setup))


# --- over the API ---------------------------------------------------------------------------


@dataclass
class ApiShop:
    """A merchant set up through the API (store, profile, catalog), a funded user, a signed
    agent and a mandate the user granted it for this merchant."""

    api: Api
    agent: SignedAgent
    merchant: dict[str, Any]
    merchant_key: str
    store_id: str
    user: dict[str, Any]
    user_key: str
    mandate: str

    def create(self, lines: list[dict[str, Any]] | None = None, **extra: Any) -> Any:
        body = {
            "merchant": self.merchant["id"],
            "line_items": lines or [{"item": "latte", "quantity": 1}],
            "fulfillment": {"option_id": f"pickup_{self.store_id}"},
            **extra,
        }
        return self.agent.post("/v1/checkout_sessions", body)

    def complete(self, session: dict[str, Any], cart_hash: str | None = None) -> Any:
        body = {"mandate": self.mandate, "cart_hash": cart_hash or session["cart_hash"]}
        return self.agent.post(f"/v1/checkout_sessions/{session['id']}/complete", body)


def _ok(response: Any, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


def make_api_shop(
    api: Api, clock: FakeClock, *, constraints: list[dict[str, Any]] | None = None
) -> ApiShop:
    merchant, merchant_key = api.merchant()
    base = f"/v1/merchants/{merchant['id']}"
    store = _ok(
        api.post(
            f"{base}/stores",
            merchant_key,
            {
                "name": "Louvre",
                "address": "1 Rue de Rivoli",
                "timezone": "Europe/Paris",
                "hours": HOURS,
            },
        ),
        201,
    )
    _ok(
        api.post(
            f"{base}/profile",
            merchant_key,
            {
                "tax_bps": TAX_BPS,
                "fulfillment": [
                    {"type": "pickup", "amount": 0, "stores": [store["id"]]},
                    {"type": "shipping", "amount": 500},
                ],
            },
        )
    )
    for product in PRODUCTS:
        _ok(api.post("/v1/products", merchant_key, product), 201)
    user, user_key = api.user(funded=100_000)
    agent = register_agent(api, clock)
    asked = _ok(
        agent.post(
            "/v1/mandates",
            {
                "user": user["id"],
                "currency": "usd",
                "constraints": constraints or [budget(50_000), payees(merchant["id"])],
            },
        ),
        201,
    )
    _ok(api.post(f"/v1/mandates/{asked['id']}/consent", user_key))
    return ApiShop(api, agent, merchant, merchant_key, store["id"], user, user_key, asked["id"])
