"""Pricing a line: option deltas, defaults, required groups, variants, bad input."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from catalog_support import LATTE, make_shop
from paywarden.commerce.catalog import LineRequest, Product, parse_draft, price_line
from paywarden.kernel.errors import InvalidRequest, NotFound
from paywarden.store.unit_of_work import Store


def test_a_large_oat_latte_adds_both_deltas_and_fills_defaults(store: Store) -> None:
    shop = make_shop(store)
    shop.add(LATTE)
    [line] = shop.price(
        LineRequest("latte", 2, {"size": "large", "milk": "oat", "temperature": "hot"})
    )
    assert line.unit_amount == 450 + 70 + 60
    assert line.quantity == 2
    assert line.options == (("milk", "oat"), ("size", "large"), ("temperature", "hot"))
    assert line.currency == "usd"
    assert line.stock_available is None and line.available


def test_defaults_apply_and_optional_groups_without_default_add_nothing(store: Store) -> None:
    shop = make_shop(store)
    product = shop.add(LATTE)
    [line] = shop.price(LineRequest(product.id, 1, {"temperature": "iced"}))
    assert line.unit_amount == 450 + 0 + 20
    assert dict(line.options) == {"size": "medium", "milk": "whole", "temperature": "iced"}


def test_a_required_group_without_default_must_be_chosen(store: Store) -> None:
    shop = make_shop(store)
    shop.add(LATTE)
    with pytest.raises(InvalidRequest) as error:
        shop.price(LineRequest("latte", 1))
    assert error.value.code == "option_required"
    assert error.value.param == "$.line_items[0].options.temperature"


@pytest.mark.parametrize(
    ("options", "code", "param"),
    [
        ({"temperature": "hot", "size": "huge"}, "unknown_option_value", "options.size"),
        ({"temperature": "hot", "syrup": "vanilla"}, "unknown_option", "options.syrup"),
    ],
)
def test_unknown_options_are_refused(
    store: Store, options: dict[str, str], code: str, param: str
) -> None:
    shop = make_shop(store)
    shop.add(LATTE)
    with pytest.raises(InvalidRequest) as error:
        shop.price(
            LineRequest("latte", 1, {"temperature": "hot"}), LineRequest("latte", 1, options)
        )
    assert error.value.code == code
    assert error.value.param == f"$.line_items[1].{param}"


@pytest.mark.parametrize("quantity", [0, -1, 1001])
def test_quantities_out_of_range_are_refused(store: Store, quantity: int) -> None:
    shop = make_shop(store)
    shop.add(LATTE)
    with pytest.raises(InvalidRequest) as error:
        shop.price(LineRequest("latte", quantity, {"temperature": "hot"}))
    assert error.value.code == "invalid_quantity"


def test_an_unknown_item_is_not_found_with_its_line_path(store: Store) -> None:
    shop = make_shop(store)
    shop.add(LATTE)
    with pytest.raises(NotFound) as error:
        shop.price(LineRequest("latte", 1, {"temperature": "hot"}), LineRequest("mocha", 1))
    assert error.value.param == "$.line_items[1].item"


def test_another_merchants_product_is_not_found(store: Store) -> None:
    mine, theirs = make_shop(store), make_shop(store)
    product = theirs.add(LATTE)
    with pytest.raises(NotFound):
        mine.price(LineRequest(product.id, 1, {"temperature": "hot"}))


def test_variants_carry_their_own_price_and_stock(store: Store) -> None:
    shop = make_shop(store, category="grocery")
    shop.add(
        {
            "sku": "bananas",
            "title": "Bananas",
            "amount": 0,
            "variants": [
                {"sku": "bananas-6", "title": "6 pack", "amount": 199, "stock": 4},
                {"sku": "bananas-1kg", "title": "1 kg", "amount": 249, "unit": "kg", "stock": 0},
            ],
        }
    )
    six, kilo = shop.price(
        LineRequest("bananas", 3, variant="bananas-6"),
        LineRequest("bananas", 1, variant="bananas-1kg"),
    )
    assert (six.unit_amount, six.stock_available, six.available) == (199, 4, True)
    assert six.sku == "bananas-6" and six.variant_id is not None
    assert (kilo.unit_amount, kilo.available) == (249, False)
    with pytest.raises(InvalidRequest) as error:
        shop.price(LineRequest("bananas", 1))
    assert error.value.code == "variant_required"


def test_not_enough_stock_prices_the_line_as_unavailable(store: Store) -> None:
    shop = make_shop(store)
    shop.add({"sku": "beans", "title": "Beans 250 g", "amount": 1200, "stock": 2})
    [line] = shop.price(LineRequest("beans", 3))
    assert line.stock_available == 2 and not line.available
    shop.add(
        {"sku": "beans", "title": "Beans 250 g", "amount": 1200, "stock": 2, "available": False}
    )
    [line] = shop.price(LineRequest("beans", 1))
    assert not line.available


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        ({**LATTE, "amount": 40}, "$.option_groups"),  # small (-50) would go below zero
        ({**LATTE, "amount": 4.5}, "$.amount"),
        ({**LATTE, "sku": "prd_x"}, "$.sku"),
        ({**LATTE, "colour": "red"}, "$.colour"),
        ({**LATTE, "variants": [{"sku": "a", "title": "A", "amount": 1}], "stock": 3}, "$.stock"),
    ],
)
def test_bad_products_are_refused_naming_the_field(raw: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as error:
        parse_draft(raw)
    assert error.value.param == param


@given(
    base=st.integers(0, 10_000),
    deltas=st.lists(st.integers(-500, 500), min_size=1, max_size=5),
    pick=st.integers(0, 10),
)
def test_a_line_always_prices_at_base_plus_the_chosen_delta(
    base: int, deltas: list[int], pick: int
) -> None:
    raw = {
        "sku": "x",
        "title": "X",
        "amount": base,
        "option_groups": [
            {
                "name": "g",
                "required": True,
                "values": [{"name": f"v{i}", "amount_delta": d} for i, d in enumerate(deltas)],
            }
        ],
    }
    try:
        draft = parse_draft(raw)
    except InvalidRequest:
        assert base + min(deltas) < 0  # refused only when some choice goes below zero
        return
    now = datetime(2026, 1, 1, tzinfo=UTC)
    product = Product("prd_x", "mer_x", False, "usd", draft, (), now, now)
    chosen = pick % len(deltas)
    line = price_line(product, LineRequest("x", 1, {"g": f"v{chosen}"}), "$.line_items[0]")
    assert line.unit_amount == base + deltas[chosen] >= 0
