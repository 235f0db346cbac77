"""Search ranking and filters (the same results on SQLite FTS5 and PostgreSQL), and bulk
import from JSON and CSV with a per-row error report and idempotent re-import by sku."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import func, select

from catalog_support import Shop, make_shop
from paywarden.services import catalog, catalog_import
from paywarden.services.catalog import SearchQuery
from paywarden.store import schema
from paywarden.store.tables_catalog import products
from paywarden.store.unit_of_work import Store

GROCERIES: list[dict[str, Any]] = [
    {"sku": "milk-oat", "title": "Oat milk", "category": "dairy", "amount": 249, "stock": 10},
    {
        "sku": "cookies",
        "title": "Cookies",
        "category": "snacks",
        "amount": 199,
        "description": "butter cookies, best with milk",
    },
    {"sku": "milk-whole", "title": "Whole milk", "category": "dairy", "amount": 129, "stock": 0},
    {"sku": "bread", "title": "Sourdough bread", "category": "bakery", "amount": 450},
    {"sku": "milkshake", "title": "Milkshake vanilla", "category": "drinks", "amount": 399},
    {
        "sku": "apples",
        "title": "Apples",
        "category": "fruit",
        "amount": 0,
        "variants": [
            {"sku": "apples-6", "title": "6 apples", "amount": 299, "stock": 0},
            {"sku": "apples-1kg", "title": "1 kg", "amount": 349, "unit": "kg", "stock": 7},
        ],
    },
]


def find(store: Store, **query: Any) -> list[str]:
    result = store.run(lambda uow: catalog.search(uow, False, SearchQuery(**query)), read_only=True)
    return [product.sku for product in result.products]


@pytest.fixture
def grocery(store: Store) -> str:
    shop = make_shop(store, category="grocery")
    for raw in GROCERIES:
        shop.add(raw)
    return shop.merchant_id


def test_title_matches_rank_above_description_matches(store: Store, grocery: str) -> None:
    found = find(store, text="milk")
    assert set(found) == {"milk-oat", "milk-whole", "milkshake", "cookies"}  # prefixes match
    assert found[-1] == "cookies"  # only its description says milk


def test_every_word_must_match_as_a_word_prefix(store: Store, grocery: str) -> None:
    assert find(store, text="oat MILK") == ["milk-oat"]
    assert find(store, text="sour") == ["bread"]
    assert find(store, text="dough") == []  # inside a word, not its start
    assert find(store, text="milk bread") == []
    assert find(store, text="  ") == sorted(
        [raw["sku"] for raw in GROCERIES], key=_title
    )  # no words: everything, by title


def _title(sku: str) -> str:
    return next(raw["title"] for raw in GROCERIES if raw["sku"] == sku)


def test_filters_category_price_ceiling_and_stock(store: Store, grocery: str) -> None:
    assert set(find(store, text="milk", category="Dairy")) == {"milk-oat", "milk-whole"}
    assert set(find(store, text="milk", max_amount=250)) == {"milk-oat", "milk-whole", "cookies"}
    assert set(find(store, text="milk", in_stock=True)) == {"milk-oat", "milkshake", "cookies"}
    assert find(store, text="apples", in_stock=True) == ["apples"]  # one variant in stock
    assert find(store, text="apples", max_amount=300) == ["apples"]  # priced from 2.99


def test_search_is_scoped_to_a_merchant_when_asked(store: Store, grocery: str) -> None:
    other = make_shop(store, category="grocery")
    other.add({"sku": "milk", "title": "Goat milk", "amount": 500})
    assert "milk" in find(store, text="goat")
    assert find(store, text="goat", merchant=grocery) == []
    assert find(store, text="goat", merchant=other.merchant_id) == ["milk"]


def test_pagination_walks_the_ranked_list_without_repeats(store: Store, grocery: str) -> None:
    everything = find(store, text="", limit=100)
    seen: list[str] = []
    offset: int | None = 0
    while offset is not None:
        page = store.run(
            lambda uow, at=offset: catalog.search(uow, False, SearchQuery(limit=4, offset=at)),
            read_only=True,
        )
        seen += [product.sku for product in page.products]
        offset = page.next_offset
    assert seen == everything


def test_deleted_and_updated_products_leave_the_index(store: Store, grocery: str) -> None:
    shop = Shop(store, grocery)
    store.run(lambda uow: catalog.delete_product(uow, None, grocery, False, "bread"))
    assert find(store, text="sourdough") == []
    shop.add({"sku": "cookies", "title": "Shortbread", "category": "snacks", "amount": 199})
    assert find(store, text="butter") == []  # the old description is gone
    assert find(store, text="shortbread") == ["cookies"]
    shop.add({"sku": "bread", "title": "Rye bread", "amount": 300})  # a deleted sku returns
    assert find(store, text="rye") == ["bread"]


# --- import ------------------------------------------------------------------------------

CSV = """sku,title,description,category,amount,stock,available,option_groups,variants
tea,Green tea,loose leaf,drinks,350,,true,,
cup,Paper cup,,supplies,25,1000,yes,,
bad-amount,Broken,,x,3.50,,,,
,No sku,,x,100,,,,
eggs,Eggs,free range,dairy,0,,,,"[{""sku"": ""eggs-6"", ""title"": ""6 eggs"", \
""amount"": 289, ""stock"": 12}]"
tea,Green tea again,,drinks,360,,,,
"""


def run_import(store: Store, merchant_id: str, content: str, fmt: str) -> dict[str, Any]:
    def work(uow: Any) -> dict[str, Any]:
        rows = catalog_import.parse_import(content, fmt)
        report = catalog_import.import_rows(uow, None, merchant_id, False, rows)
        return catalog_import.record_import(uow, merchant_id, False, fmt, report)

    return store.run(work)


def test_a_csv_import_writes_valid_rows_and_reports_the_rest(store: Store) -> None:
    shop = make_shop(store)
    first = run_import(store, shop.merchant_id, CSV, "csv")
    assert (first["rows_total"], first["created_count"], first["updated_count"]) == (6, 3, 0)
    assert first["failed_count"] == 3
    assert [(e["row"], e["field"]) for e in first["errors"]] == [
        (3, "amount"),
        (4, "sku"),
        (6, "sku"),  # repeats row 1
    ]
    assert all(e["reason"] for e in first["errors"])
    eggs = shop.product("eggs")
    assert eggs.variants[0].amount == 289 and eggs.variants[0].stock == 12
    assert shop.product("tea").draft.amount == 350

    again = run_import(store, shop.merchant_id, CSV, "csv")
    assert (again["created_count"], again["updated_count"]) == (0, 3)  # by sku, no duplicates
    assert shop.product("eggs").variants[0].id == eggs.variants[0].id  # variant ids are kept
    count = store.run(
        lambda uow: uow.execute(
            select(func.count()).where(products.c.merchant_id == shop.merchant_id)
        ).scalar_one(),
        read_only=True,
    )
    assert count == 3
    events = store.run(
        lambda uow: uow.execute(
            select(schema.events.c.data).where(schema.events.c.type == "catalog.imported")
        ).all(),
        read_only=True,
    )
    assert [event.data["object"]["updated_count"] for event in events] == [0, 3]


def test_a_json_import_reports_nested_fields(store: Store) -> None:
    shop = make_shop(store)
    rows = [
        {"sku": "a", "title": "A", "amount": 100},
        {"sku": "b", "title": "B", "amount": 100, "variants": [{"sku": "b1", "title": "B1"}]},
        "not an object",
        {
            "sku": "c",
            "title": "C",
            "amount": 100,
            "option_groups": [{"name": "Size", "values": []}],
        },
    ]
    report = run_import(store, shop.merchant_id, json.dumps({"products": rows}), "json")
    assert report["created_count"] == 1
    assert [(e["row"], e["field"]) for e in report["errors"]] == [
        (2, "variants[0].amount"),
        (3, None),
        (4, "option_groups[0].name"),
    ]


def test_imported_products_are_searchable(store: Store) -> None:
    shop = make_shop(store)
    run_import(store, shop.merchant_id, CSV, "csv")
    assert find(store, text="leaf") == ["tea"]
    assert find(store, text="eggs", in_stock=True) == ["eggs"]
