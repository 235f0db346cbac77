"""Property: any sequence of reservations and releases keeps stock equal to a simple model,
never below zero, and a refused reservation changes nothing."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catalog_support import make_shop
from paywarden.commerce.catalog import LineRequest
from paywarden.kernel.errors import Conflict
from paywarden.services import catalog
from paywarden.store.unit_of_work import Store

SKUS = ("a", "b", "c")
operations = st.lists(
    st.tuples(
        st.sampled_from(["reserve", "release"]),
        st.lists(st.tuples(st.sampled_from(SKUS), st.integers(1, 4)), min_size=1, max_size=3),
    ),
    max_size=12,
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=operations, initial=st.tuples(*(st.integers(0, 6) for _ in SKUS)))
def test_stock_follows_the_model(
    sqlite_store: Store, steps: list[tuple[str, list[tuple[str, int]]]], initial: tuple[int, ...]
) -> None:
    shop = make_shop(sqlite_store)
    for sku, stock in zip(SKUS, initial, strict=True):
        shop.add({"sku": sku, "title": sku.upper(), "amount": 100, "stock": stock})
    model = dict(zip(SKUS, initial, strict=True))
    reserved: list[list[tuple[str, int]]] = []
    for action, wanted in steps:
        if action == "release" and not reserved:
            continue
        lines_spec = reserved.pop() if action == "release" else wanted
        lines = shop.price(*(LineRequest(sku, n) for sku, n in lines_spec))
        if action == "release":
            sqlite_store.run(
                lambda uow, ls=lines: catalog.release_stock(uow, shop.merchant_id, False, ls)
            )
            for sku, n in lines_spec:
                model[sku] += n
            continue
        need: dict[str, int] = {}
        for sku, n in wanted:
            need[sku] = need.get(sku, 0) + n
        try:
            sqlite_store.run(
                lambda uow, ls=lines: catalog.reserve_stock(uow, shop.merchant_id, False, ls)
            )
        except Conflict:
            assert any(model[sku] < n for sku, n in need.items())
        else:
            assert all(model[sku] >= n for sku, n in need.items())
            for sku, n in need.items():
                model[sku] -= n
            reserved.append(wanted)
        for sku in SKUS:
            stock = shop.product(sku).draft.stock
            assert stock == model[sku] and stock is not None and stock >= 0
