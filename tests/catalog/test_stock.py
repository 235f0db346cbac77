"""Stock reservation: all or nothing, released on cancel, and never oversold when many
checkouts reserve the last items at once (threads, on SQLite and on PostgreSQL)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from catalog_support import make_shop
from paywarden.commerce.catalog import LineRequest, PricedLine
from paywarden.kernel.errors import Conflict
from paywarden.services import catalog
from paywarden.store.unit_of_work import Store

THREADS = 8


def _reserve(store: Store, merchant_id: str, lines: list[PricedLine]) -> None:
    store.run(lambda uow: catalog.reserve_stock(uow, merchant_id, False, lines))


def test_reserving_takes_stock_and_releasing_puts_it_back(store: Store) -> None:
    shop = make_shop(store)
    shop.add({"sku": "beans", "title": "Beans", "amount": 1200, "stock": 5})
    lines = shop.price(LineRequest("beans", 2), LineRequest("beans", 1))
    _reserve(store, shop.merchant_id, lines)
    assert shop.product("beans").draft.stock == 2  # both lines of the same item count
    store.run(lambda uow: catalog.release_stock(uow, shop.merchant_id, False, lines))
    assert shop.product("beans").draft.stock == 5


def test_a_short_item_reserves_nothing_even_when_the_caller_commits(store: Store) -> None:
    shop = make_shop(store)
    shop.add({"sku": "aaa", "title": "Plenty", "amount": 100, "stock": 10})
    shop.add({"sku": "zzz", "title": "Scarce", "amount": 100, "stock": 1})
    lines = shop.price(LineRequest("aaa", 3), LineRequest("zzz", 2))

    def reserve_and_commit(uow: Any) -> str:
        try:
            catalog.reserve_stock(uow, shop.merchant_id, False, lines)
        except Conflict as error:  # a checkout records the problem and commits
            assert error.code == "out_of_stock"
            return str(error.param)
        return "reserved"

    assert store.run(reserve_and_commit) == "$.line_items[1]"
    assert shop.product("aaa").draft.stock == 10
    assert shop.product("zzz").draft.stock == 1


def test_unlimited_items_always_reserve(store: Store) -> None:
    shop = make_shop(store)
    shop.add({"sku": "tea", "title": "Tea", "amount": 300})
    lines = shop.price(LineRequest("tea", 1000))
    _reserve(store, shop.merchant_id, lines)
    _reserve(store, shop.merchant_id, lines)
    assert shop.product("tea").draft.stock is None


def test_an_item_taken_off_sale_after_pricing_does_not_reserve(store: Store) -> None:
    shop = make_shop(store)
    shop.add({"sku": "cake", "title": "Cake", "amount": 500, "stock": 3})
    lines = shop.price(LineRequest("cake", 1))
    shop.add({"sku": "cake", "title": "Cake", "amount": 500, "stock": 3, "available": False})
    with pytest.raises(Conflict):
        _reserve(store, shop.merchant_id, lines)


def test_another_merchant_cannot_reserve_my_stock(store: Store) -> None:
    mine, theirs = make_shop(store), make_shop(store)
    mine.add({"sku": "cake", "title": "Cake", "amount": 500, "stock": 3})
    lines = mine.price(LineRequest("cake", 1))
    with pytest.raises(Conflict):
        _reserve(store, theirs.merchant_id, lines)
    assert mine.product("cake").draft.stock == 3


@pytest.mark.parametrize("with_variant", [False, True])
def test_concurrent_reservations_never_oversell(store: Store, with_variant: bool) -> None:
    stock = 5
    shop = make_shop(store, category="grocery")
    if with_variant:
        shop.add(
            {
                "sku": "milk",
                "title": "Milk",
                "amount": 0,
                "variants": [{"sku": "milk-1l", "title": "1 l", "amount": 129, "stock": stock}],
            }
        )
    else:
        shop.add({"sku": "milk", "title": "Milk", "amount": 129, "stock": stock})
    shop.add({"sku": "bread", "title": "Bread", "amount": 250, "stock": 100})
    # Each checkout takes two milk and one bread; ordering the lines differently per thread
    # would deadlock a naive implementation.
    carts = [
        shop.price(LineRequest("milk", 2), LineRequest("bread", 1)),
        shop.price(LineRequest("bread", 1), LineRequest("milk", 2)),
    ]
    outcomes: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(THREADS)

    def checkout(n: int) -> None:
        barrier.wait()
        try:
            _reserve(store, shop.merchant_id, carts[n % 2])
            result = "reserved"
        except Conflict:
            result = "short"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=checkout, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(outcomes) == THREADS
    sold = outcomes.count("reserved")
    assert sold == stock // 2  # exactly as many as there is milk for, never more
    milk = shop.product("milk")
    left = milk.variants[0].stock if with_variant else milk.draft.stock
    assert left == stock - 2 * sold
    assert shop.product("bread").draft.stock == 100 - sold
