"""What the catalog tests share: a merchant made through the services, products from JSON,
and a coffee drink with options (size, milk, sugar, temperature)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from payment_support import SignedAgent
from paywarden.commerce.catalog import LineRequest, PricedLine, Product, parse_draft
from paywarden.services import catalog, identity
from paywarden.store.unit_of_work import Store
from paywarden.trust.signatures import RequestParts, sign_request

MASTER_KEY = bytes(range(32))

LATTE: dict[str, Any] = {
    "sku": "latte",
    "title": "Caffe Latte",
    "description": "Espresso with steamed milk",
    "category": "coffee",
    "amount": 450,
    "option_groups": [
        {
            "name": "size",
            "required": True,
            "values": [
                {"name": "small", "amount_delta": -50},
                {"name": "medium", "amount_delta": 0, "default": True},
                {"name": "large", "amount_delta": 70},
            ],
        },
        {
            "name": "milk",
            "values": [
                {"name": "whole", "default": True},
                {"name": "oat", "amount_delta": 60},
            ],
        },
        {"name": "sugar", "values": [{"name": "none"}, {"name": "one"}, {"name": "two"}]},
        {
            "name": "temperature",
            "required": True,
            "values": [{"name": "hot"}, {"name": "iced", "amount_delta": 20}],
        },
    ],
}


@dataclass
class Shop:
    store: Store
    merchant_id: str

    def add(self, raw: dict[str, Any]) -> Product:
        draft = parse_draft(raw)
        product, _created = self.store.run(
            lambda uow: catalog.upsert_product(uow, None, self.merchant_id, False, draft)
        )
        return product

    def price(self, *lines: LineRequest) -> list[PricedLine]:
        return self.store.run(
            lambda uow: catalog.price_lines(uow, self.merchant_id, False, list(lines))
        )

    def product(self, ref: str) -> Product:
        return self.store.run(
            lambda uow: catalog.get_product(uow, self.merchant_id, False, ref), read_only=True
        )


def make_shop(store: Store, *, category: str = "coffee", currency: str = "usd") -> Shop:
    merchant, _key = store.run(
        lambda uow: identity.create_merchant(
            uow,
            name=f"{category.title()} shop",
            category=category,
            currency=currency,
            fee_bps=0,
            livemode=False,
        )
    )
    return Shop(store, merchant.id)


def signed_search(agent: SignedAgent, path: str, query: str) -> Any:
    """A signed GET with a query string (the signature covers ``@query`` too)."""
    parts = RequestParts("GET", "http", "testserver", path, query, [], b"")
    signature_input, signature = sign_request(
        parts,
        key=agent.key,
        components=["@method", "@authority", "@path", "@query"],
        created=agent.clock.now(),
        expires=agent.clock.now() + timedelta(seconds=60),
        nonce=secrets.token_urlsafe(16),
        tag="agent-payer-auth",
    )
    headers = {"Signature-Input": signature_input, "Signature": signature}
    return agent.api.client.get(f"{path}?{query}", headers=headers)
