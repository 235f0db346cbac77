"""The demo loads its three catalogs once, on both backends, and they are searchable."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from paywarden.commerce.catalog import LineRequest
from paywarden.services import catalog, merchants
from paywarden.services.catalog import SearchQuery
from paywarden.services.demo import load_demo
from paywarden.store import schema
from paywarden.store.unit_of_work import Store


def merchant_named(store: Store, name: str) -> str:
    m = schema.merchants
    return str(
        store.run(lambda uow: uow.execute(select(m.c.id).where(m.c.name == name)).scalar_one())
    )


def test_the_demo_catalogs_load_once_and_are_searchable(store: Store) -> None:
    first = store.run(lambda uow: load_demo(uow, b"k" * 32))
    assert first.created and first.products >= 250
    assert not store.run(lambda uow: load_demo(uow, b"k" * 32)).created  # idempotent

    cafe = merchant_named(store, "Harbour Coffee")
    grocer = merchant_named(store, "Quick Basket")
    shop = merchant_named(store, "Volt Electronics")

    profile = store.run(lambda uow: merchants.get_profile(uow, cafe, False), read_only=True)
    assert len(profile.stores) == 3 and all(s.hours["mon"] for s in profile.stores)
    pickup = profile.method("pickup")
    assert pickup is not None and len(pickup.stores) == 3
    assert profile.method("local_delivery") is not None

    def search(**query: Any) -> list[str]:
        found = store.run(
            lambda uow: catalog.search(uow, False, SearchQuery(**query)), read_only=True
        )
        return [p.title for p in found.products]

    assert "Caffe Latte" in search(text="latte", merchant=cafe)
    everything = search(merchant=grocer, limit=100, offset=0)
    assert len(everything) == 100
    all_grocery = store.run(
        lambda uow: catalog.search(uow, False, SearchQuery(merchant=grocer, limit=100, offset=200)),
        read_only=True,
    )
    assert all_grocery.products  # more than 200 grocery items
    in_stock = len(search(merchant=grocer, text="organic", in_stock=True, limit=100))
    assert 0 < in_stock < len(search(merchant=grocer, text="organic", limit=100))
    assert search(text="usb cable", merchant=shop) == ["USB-C Cable 2 m"]

    [line] = store.run(
        lambda uow: catalog.price_lines(
            uow,
            cafe,
            False,
            [LineRequest("drink-01", 1, {"size": "large", "milk": "oat", "temperature": "iced"})],
        )
    )
    assert line.title == "Caffe Latte" and line.unit_amount == 450 + 70 + 70 + 30
    shipping = store.run(lambda uow: merchants.get_profile(uow, shop, False)).method("shipping")
    assert shipping is not None and shipping.amount == 999
