"""A checkout session's creation and a catalog search run every statement on the driver
(``store.prepared``), none through SQLAlchemy's execution, which cost each of them about
40 µs more, and its building as much again: before, a session's creation cost about
two agent payments (the mixed benchmark, on SQLite: 358-363 requests a second with them,
455-476 without)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.engine import Connection

from commerce_support import Shop, make_shop
from paywarden.commerce.catalog import LineRequest
from paywarden.kernel.clock import FakeClock
from paywarden.services import catalog
from paywarden.services.catalog import SearchQuery
from paywarden.store.unit_of_work import Store


@pytest.fixture
def shop(store: Store, clock: FakeClock) -> Shop:
    return make_shop(store, clock)


def _through_sqlalchemy(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """From now on, the statements SQLAlchemy runs (each as its first words)."""
    seen: list[str] = []
    run = Connection.execute

    def spied(self: Connection, statement: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(" ".join(str(statement).split())[:60])
        return run(self, statement, *args, **kwargs)

    monkeypatch.setattr(Connection, "execute", spied)
    return seen


def _search(shop: Shop, query: SearchQuery) -> list[str]:
    def read(uow: Any) -> list[str]:
        return [product.draft.sku for product in catalog.search(uow, False, query).products]

    found: list[str] = shop.store.run(read, read_only=True)
    return found


QUERIES = [
    SearchQuery(),
    SearchQuery(text="latte"),
    SearchQuery(text="mug", in_stock=True, max_amount=5_000),
    SearchQuery(text="beans", category="Other", limit=1),
]


def test_a_checkout_session_and_searches_run_on_the_driver(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = shop.create()  # the merchant's first cart key is made here
    before = [_search(shop, query) for query in QUERIES]  # the search index too (SQLite)
    beans = shop.run(lambda uow: catalog.get_product(uow, shop.world.merchant, False, "beans"))
    seen = _through_sqlalchemy(monkeypatch)
    session = shop.create(LineRequest("latte", 1), LineRequest(beans.id, 2))
    after = [_search(shop, query) for query in QUERIES]
    again = _search(shop, SearchQuery(text="latte", merchant=shop.world.merchant))
    assert seen == []
    assert after == before and again == ["latte"]
    assert [(line["sku"], line["product"]) for line in session.line_items] == [
        (
            "latte",
            shop.run(lambda uow: catalog.get_product(uow, shop.world.merchant, False, "latte")).id,
        ),
        ("beans", beans.id),
    ]
    assert session.status == first.status == "ready_for_payment"
