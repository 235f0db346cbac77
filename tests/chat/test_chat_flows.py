"""The planner's other flows, in English and Chinese: the budget left, an order's status,
reordering the last order, a refund request, asking for a mandate (the conversation excerpt
travels with it to the consent page) and a payment that needs the user's approval."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from conftest import Api, make_api
from paywarden.agent.chat import build_session
from paywarden.kernel.clock import FakeClock
from paywarden.store.unit_of_work import Store
from sdk_support import LENIENT_RISK, ZONE, Shop, active_mandate, budget, confirm_above, open_shop


@pytest.fixture
def api(sqlite_store: Store) -> Iterator[Api]:
    yield from make_api(sqlite_store, risk=LENIENT_RISK)


def test_budget_status_reorder_and_refund(api: Api, clock: FakeClock) -> None:
    shop = open_shop(api, clock)
    chat = build_session(shop.agent, mandate=shop.mandate, timezone=ZONE, now=clock.now)
    asked = chat.say("two large oat lattes, less sugar, pickup at 3pm, under 100 yuan")
    assert "42.00 CNY" in asked and "Pay 42.00 CNY?" in asked, asked
    paid = chat.say("yes")
    assert "Paid 42.00 CNY" in paid, paid
    order = paid.split("Order ")[1].split(" ")[0]
    left = chat.say("how much budget do I have left?")
    assert "49958.00 CNY left" in left, left
    assert order in chat.say("where is my order?")
    again = chat.say("再来一杯上次的咖啡")
    assert "42.00 CNY" in again and "确认支付" in again, again
    reorder = chat.runner.log[-1].result
    assert reorder is not None and reorder["line_items"][0]["options"]["milk"] == "oat"
    assert "已支付" in chat.say("好")
    refund = chat.say("refund my last order")
    # The agent asks; the merchant decides (POST /v1/refund_requests/{id}/approve).
    assert "Refund request rfr_" in refund and "42.00 CNY" in refund, refund
    asked = chat.runner.log[-1].result
    assert asked is not None and asked["status"] == "requested" and asked["order"] in refund
    paid_back = api.post(f"/v1/refund_requests/{asked['id']}/approve", shop.merchant_key)
    assert paid_back.status_code == 200 and paid_back.json()["status"] == "approved"


def test_no_mandate_asks_for_one_with_the_conversation(api: Api, clock: FakeClock) -> None:
    shop = open_shop(api, clock)
    user_id = shop.user.get("/v1/mandates/" + shop.mandate)["user"]
    chat = build_session(shop.agent, user=user_id, timezone=ZONE, now=clock.now)
    chat.say("一杯中杯美式")
    reply = chat.say("好的")
    asked = chat.runner.log[-1].result
    assert asked is not None and asked["status"] == "pending_consent"
    assert "需要先获得你的授权" in reply and asked["consent_url"] in reply, reply
    assert "一杯中杯美式" in (asked["conversation_excerpt"] or "")
    assert asked["consent_url"].startswith("http://testserver/")


def test_payment_over_the_threshold_waits_for_the_user(api: Api, clock: FakeClock) -> None:
    shop: Shop = open_shop(api, clock)
    user_id = shop.user.get("/v1/mandates/" + shop.mandate)["user"]
    mandate = active_mandate(
        shop.agent, shop.user, user_id, [budget(100_000, "cny"), confirm_above(2_000, "cny")], "cny"
    )
    chat = build_session(shop.agent, mandate=mandate, timezone=ZONE, now=clock.now)
    chat.say("three large mochas")
    reply = chat.say("yes")
    assert "approve it at http://testserver/" in reply, reply
    session = chat.runner.log[-1].result
    assert session is not None and session["status"] == "pending_approval"
    approval = shop.user.approvals.get(session["approval"])
    shop.user.approvals.approve(approval["id"], binding_hash=approval["binding_hash"])
    assert shop.agent.checkout_sessions.get(session["id"])["status"] == "completed"
    done = shop.agent.checkout_sessions.get(session["id"])
    assert f"Order {done['order']} (57.00 CNY) is created." == chat.say("where is my order?")
