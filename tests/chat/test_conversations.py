# ruff: noqa: RUF001 -- the Chinese requests use full-width punctuation on purpose
"""Conversations generated from templates x slot values (items, sizes, milks, quantities,
pickup times, budgets; English and Chinese) complete end to end through ``paywarden chat``'s
session, with the offline planner and with a scripted fake OpenAI-compatible model: each cart
holds exactly the intended product, quantity and options, its total is the catalog's price,
an over-budget cart is cancelled unpaid, and a paid one becomes an order."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest

from conftest import Api, make_api
from paywarden.agent.chat import build_session
from paywarden.agent.llm import LlmSettings
from paywarden.agent.session import ChatSession
from paywarden.kernel.clock import FakeClock
from paywarden.store.unit_of_work import Store
from sdk_support import (
    BASE,
    LENIENT_RISK,
    MILK,
    SIZE,
    ZONE,
    FakeModel,
    Shop,
    call,
    open_shop,
    say,
)

EN_QTY = {1: "one", 2: "two", 3: "three", 4: "four"}
ZH_QTY = {1: "一", 2: "两", 3: "三", 4: "四"}
ZH = {
    "latte": "拿铁",
    "cappuccino": "卡布奇诺",
    "mocha": "摩卡",
    "americano": "美式",
    "flat white": "澳白",
    "small": "小杯",
    "medium": "中杯",
    "large": "大杯",
    "whole": "全脂",
    "oat": "燕麦",
    "soy": "豆奶",
}
TIMES = [((15, 0), "3pm", "下午3点"), ((10, 30), "10:30 am", "上午10点半")]


@dataclass(frozen=True)
class Conversation:
    text: str
    yes: str
    item: str
    quantity: int
    size: str
    milk: str
    less_sugar: bool
    pickup: tuple[int, int] | None
    budget: int | None  # fen

    @property
    def unit(self) -> int:
        return BASE[self.item] + SIZE[self.size] + MILK[self.milk]

    @property
    def total(self) -> int:
        return self.unit * self.quantity

    @property
    def over_budget(self) -> bool:
        return self.budget is not None and self.total > self.budget

    @property
    def options(self) -> dict[str, str]:
        sugar = "one" if self.less_sugar else "none"
        return {"size": self.size, "milk": self.milk, "sugar": sugar, "temperature": "hot"}


def conversations() -> list[Conversation]:
    """32 conversations: 4 templates x 8 slot combinations, a quarter of them over budget."""
    made = []
    items = list(BASE)
    for i in range(32):
        item, quantity = items[i % 5], 1 + i % 4
        size, milk = list(SIZE)[i % 3], list(MILK)[(i // 3) % 3]
        pickup, en_time, zh_time = TIMES[i % 2]
        unit = BASE[item] + SIZE[size] + MILK[milk]
        over = i % 4 == 3
        yuan = (unit * quantity - 1) // 100 if over else (unit * quantity) // 100 + 5
        template = (i // 2) % 4
        if template == 0:
            plural = item + ("s" if quantity > 1 else "")
            text = (
                f"{EN_QTY[quantity]} {size} {milk} milk {plural}, less sugar, "
                f"pickup at {en_time}, under {yuan} yuan"
            )
            made.append(
                Conversation(text, "yes", item, quantity, size, milk, True, pickup, yuan * 100)
            )
        elif template == 1:
            drink = f"{ZH_QTY[quantity]}杯{ZH[size]}{ZH[milk]}{ZH[item]}"
            text = f"{drink}，少糖，{zh_time}自取，{yuan}元以内"
            made.append(
                Conversation(text, "好的", item, quantity, size, milk, True, pickup, yuan * 100)
            )
        elif template == 2:
            text = f"I'd like {quantity} {size} {item} with {milk} milk please"
            made.append(Conversation(text, "ok", item, quantity, size, milk, False, None, None))
        else:
            text = f"帮我点{ZH_QTY[quantity]}杯{ZH[size]}{ZH[milk]}{ZH[item]}"
            made.append(Conversation(text, "确认", item, quantity, size, milk, False, None, None))
    return made


@pytest.fixture
def api(sqlite_store: Store) -> Iterator[Api]:
    yield from make_api(sqlite_store, risk=LENIENT_RISK)


def check(shop: Shop, session: ChatSession, talk: Conversation, replies: list[str]) -> list[str]:
    """What is wrong with the conversation's outcome (nothing: an empty list)."""
    problems = []
    made = [o for o in session.runner.log if o.name == "create_checkout" and o.result]
    if len(made) != 1:
        return [f"{len(made)} checkouts made"]
    cart = [
        o for o in session.runner.log if o.result and o.result.get("object") == "checkout_session"
    ][-1].result
    assert cart is not None
    line = cart["line_items"][0] if len(cart["line_items"]) == 1 else {}
    if (line.get("product"), line.get("quantity"), line.get("options")) != (
        shop.products[talk.item],
        talk.quantity,
        talk.options,
    ):
        problems.append(f"cart line {line} is not {talk.item} x{talk.quantity} {talk.options}")
    if cart["amount_total"] != talk.total:
        problems.append(f"total {cart['amount_total']} != {talk.total}")
    if talk.pickup is not None:
        at = datetime.fromisoformat(
            (cart.get("fulfillment") or {}).get("pickup_at") or "2000-01-01T00:00:00+00:00"
        )
        if (at.astimezone(ZONE).hour, at.astimezone(ZONE).minute) != talk.pickup:
            problems.append(f"pickup at {at} is not {talk.pickup} in Shanghai")
    if talk.over_budget:
        if cart["status"] != "canceled" or cart.get("payment"):
            problems.append(f"over budget but {cart['status']}")
    elif cart["status"] != "completed" or not cart.get("order"):
        problems.append(f"not paid: {cart['status']} {cart.get('messages')} {replies}")
    else:
        paid = shop.agent.payments.get(cart["payment"])
        if (paid["status"], paid["amount"], paid["currency"]) != ("succeeded", talk.total, "cny"):
            problems.append(f"payment {paid}")
    return problems


def run_all(shop: Shop, session_for: Any, script: Any = None) -> None:
    failures = []
    talks = conversations()
    for talk in talks:
        session = session_for()
        if script:
            script(talk)
        replies = [session.say(talk.text)]
        if not talk.over_budget:
            replies.append(session.say(talk.yes))
        problems = check(shop, session, talk, replies)
        print(
            f"{'FAIL' if problems else 'ok':<4} {talk.text!r} -> {replies[-1].splitlines()[-1]!r}"
        )
        failures += [(talk.text, problem) for problem in problems]
    assert len(talks) >= 30
    assert not failures, failures


def test_conversations_with_the_offline_planner(api: Api, clock: FakeClock) -> None:
    shop = open_shop(api, clock)
    run_all(
        shop, lambda: build_session(shop.agent, mandate=shop.mandate, timezone=ZONE, now=clock.now)
    )


def test_the_same_conversations_through_an_openai_compatible_model(
    api: Api, clock: FakeClock
) -> None:
    shop = open_shop(api, clock)
    with FakeModel() as model:
        settings = LlmSettings(model.base_url, "fake-qwen")

        def script(talk: Conversation) -> None:
            model.script(
                call("search_products", {"query": talk.item, "merchant": shop.merchant}),
                call(
                    "create_checkout",
                    lambda r: {
                        "merchant": shop.merchant,
                        "items": [
                            {
                                "item": r[-1]["data"][0]["id"],
                                "quantity": talk.quantity,
                                "options": talk.options,
                            }
                        ],
                    },
                ),
            )
            if talk.pickup is not None:
                model.script(
                    call(
                        "update_checkout",
                        lambda r: {
                            "checkout_id": r[-1]["id"],
                            "fulfillment": {
                                "option_id": r[-1]["fulfillment_options"][0]["id"],
                                "pickup_at": next_local(clock, talk.pickup),
                            },
                        },
                    )
                )
            if talk.over_budget:
                model.script(
                    call("cancel_checkout", lambda r: {"checkout_id": r[-1]["id"]}),
                    say("That is over your budget, so I cancelled it."),
                )
                return
            model.script(
                say(
                    lambda r: (
                        f"Your cart: {json.dumps(r[-1]['line_items'])}. "
                        f"Total {r[-1]['amount_total']} fen. Pay?"
                    )
                ),
                call("complete_checkout", lambda r: {"checkout_id": r[-1]["id"]}),
                say(lambda r: f"Paid: order {r[-1].get('order')}."),
            )

        run_all(shop, lambda: build_session(shop.agent, mandate=shop.mandate, llm=settings), script)


def next_local(clock: FakeClock, at: tuple[int, int]) -> str:
    local = clock.now().astimezone(ZONE)
    when = local.replace(hour=at[0], minute=at[1], second=0, microsecond=0)
    if when <= local:
        when = when.replace(day=when.day + 1)
    return when.isoformat()
