"""The offline planner with the demo data that ``paywarden demo`` loads: Ada orders at Harbour
Coffee in English (drinks named "Caffe Latte", sugar counted in pumps, tax added), reorders
in Chinese, and asks what her mandate has left."""

from __future__ import annotations

from collections.abc import Iterator
from zoneinfo import ZoneInfo

import pytest

from conftest import Api, make_api
from paywarden.agent.chat import build_session
from paywarden.kernel.clock import FakeClock
from paywarden.services import platform
from paywarden.services.demo import load_demo
from paywarden.store.unit_of_work import Store
from sdk_support import LENIENT_RISK, active_mandate, agent_world, budget, in_process, payees

LOS_ANGELES = ZoneInfo("America/Los_Angeles")


@pytest.fixture
def api(sqlite_store: Store) -> Iterator[Api]:
    yield from make_api(sqlite_store, risk=LENIENT_RISK)


def test_ada_orders_and_reorders_at_harbour_coffee(api: Api, clock: FakeClock) -> None:
    loaded = api.store.run(lambda uow: load_demo(uow, platform.instance_secret(uow)))
    ada_key = loaded.keys["ada (user)"]
    card = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2099}
    top = api.post("/v1/top_ups", ada_key, {"amount": 100_00, "currency": "usd", "card": card})
    assert top.status_code == 201, top.text
    shopper = agent_world(api.post, api.admin_key, funded=0)  # its platform and agent only
    agent = in_process(api, clock, agent_key=shopper.agent_key)
    ada = in_process(api, clock, api_key=ada_key)
    found = agent.products.search("latte")["data"]
    harbour = next(p["merchant"] for p in found if p["title"] == "Caffe Latte")
    ada_id = ada.get("/v1/accounts")["data"][0]["owner"]
    mandate = active_mandate(agent, ada, ada_id, [budget(50_00), payees(harbour)])
    chat = build_session(agent, mandate=mandate, timezone=LOS_ANGELES, now=clock.now)

    cart = chat.say("two large oat lattes, less sugar, pickup at 3pm")
    session = chat.runner.log[-1].result
    assert session is not None, chat.runner.log[-1]
    line = session["line_items"][0]
    assert (line["title"], line["quantity"]) == ("Caffe Latte", 2)
    assert (line["options"]["size"], line["options"]["milk"], line["options"]["sugar"]) == (
        "large",
        "oat",
        "one",
    )
    assert line["unit_amount"] == 450 + 70 + 70
    total = session["amount_total"]
    assert total == 2 * 590 + round(2 * 590 * 863 / 10_000), session["totals"]  # tax 8.63 %
    assert "15:00 (America/Los_Angeles)" in cart and f"{total / 100:.2f} USD" in cart, cart
    assert "Paid" in chat.say("yes")

    again = chat.say("再来一杯上次的咖啡")
    assert "Caffe Latte" in again and "确认支付" in again, again
    assert "已支付" in chat.say("好")
    left = chat.say("how much is left on my budget?")
    assert f"{(50_00 - 2 * total) / 100:.2f} USD left" in left, left
