# ruff: noqa: RUF001 -- the Chinese requests use full-width punctuation on purpose
"""The offline planner's reading of English and Chinese requests: items, quantities, options,
pickup times and budgets, deterministic."""

from __future__ import annotations

import pytest

from paywarden.agent.intent import Kind, Wanted, read_intent
from paywarden.agent.planner import best_match, match_options


@pytest.mark.parametrize(
    ("text", "lines", "pickup", "budget"),
    [
        (
            "two large oat lattes, less sugar, pickup at 3pm, under 40 yuan",
            [Wanted("latte", 2, {"size": "large", "milk": "oat", "sugar": "less"})],
            (15, 0),
            (4000, "cny"),
        ),
        (
            "两杯大杯燕麦拿铁，少糖，下午3点自取，40元以内",
            [Wanted("latte", 2, {"size": "large", "milk": "oat", "sugar": "less"})],
            (15, 0),
            (4000, "cny"),
        ),
        (
            "3 small soy cappuccinos and an iced americano at 10:30 am, under $25",
            [
                Wanted("cappuccino", 3, {"size": "small", "milk": "soy"}),
                Wanted("americano", 1, {"temperature": "iced"}),
            ],
            (10, 30),
            (2500, "usd"),
        ),
        ("一杯美式和两个可颂", [Wanted("americano", 1), Wanted("croissant", 2)], None, None),
        ("a mocha", [Wanted("mocha", 1)], None, None),
        (
            "四杯中杯拿铁，无糖，下午三点半",
            [Wanted("latte", 4, {"size": "medium", "sugar": "none"})],
            (15, 30),
            None,
        ),
        (
            "5 espressos by 9:15, no more than 60.50 yuan",
            [Wanted("espresso", 5)],
            (9, 15),
            (6050, "cny"),
        ),
    ],
)
def test_orders_are_read_exactly(
    text: str,
    lines: list[Wanted],
    pickup: tuple[int, int] | None,
    budget: tuple[int, str] | None,
) -> None:
    intent = read_intent(text)
    assert intent.kind is Kind.ORDER
    assert list(intent.lines) == lines
    assert intent.pickup_time == pickup
    assert intent.budget == budget


@pytest.mark.parametrize(
    ("text", "kind", "language"),
    [
        ("再来一杯上次的咖啡", Kind.REORDER, "zh"),
        ("same as last time please", Kind.REORDER, "en"),
        ("how much budget do I have left?", Kind.BUDGET, "en"),
        ("还剩多少预算？", Kind.BUDGET, "zh"),
        ("where is my order?", Kind.STATUS, "en"),
        ("我的订单到哪了", Kind.STATUS, "zh"),
        ("refund my last order", Kind.REFUND, "en"),
        ("退款", Kind.REFUND, "zh"),
        ("yes", Kind.YES, "en"),
        ("好的", Kind.YES, "zh"),
        ("no", Kind.NO, "en"),
        ("取消", Kind.NO, "zh"),
        ("what's the weather", Kind.HELP, "en"),
    ],
)
def test_other_intents(text: str, kind: Kind, language: str) -> None:
    intent = read_intent(text)
    assert (intent.kind, intent.language) == (kind, language)


def test_same_words_same_intent() -> None:
    text = "two large oat lattes, less sugar, pickup at 3pm, under 40 yuan"
    assert read_intent(text) == read_intent(text)


def test_options_match_the_product_groups_or_are_left_out() -> None:
    product = {
        "option_groups": [
            {"name": "Size", "values": [{"name": "Small"}, {"name": "Large"}]},
            {"name": "milk", "values": [{"name": "whole"}, {"name": "oat milk"}]},
        ]
    }
    wanted = {"size": "large", "milk": "oat", "sugar": "less"}
    assert match_options(product, wanted) == {"Size": "Large", "milk": "oat milk"}


def test_the_plainest_product_is_chosen() -> None:
    found = [{"title": t} for t in ("Vanilla Latte", "Chai Latte", "Caffe Latte", "Matcha Latte")]
    assert best_match(found, "latte")["title"] == "Caffe Latte"
    assert best_match([{"title": "Vanilla Latte"}, {"title": "Latte Macchiato XL"}], "latte") == {
        "title": "Vanilla Latte"
    }
    assert best_match([{"title": "Flat White"}], "flat white")["title"] == "Flat White"
    assert best_match([{"title": "Oat Drink"}], "latte") == {"title": "Oat Drink"}
