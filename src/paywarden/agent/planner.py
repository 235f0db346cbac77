# ruff: noqa: RUF001 -- the Chinese texts use full-width punctuation on purpose
"""The offline planner: a deterministic brain that needs no network and no model.

It reads each message with :func:`~paywarden.agent.intent.read_intent` and runs a fixed plan of
tool calls for it, answering in the user's language (English or Chinese):

- order: search each item, start a checkout at the first item's merchant with the options the
  user named (matched to the product's option groups), choose the pickup time when one was
  said, show the cart and the total; over the stated budget, cancel and say so; else ask
  "pay?" and, on yes, complete the checkout: paid (the order), waiting for the user's
  approval (the link), or declined (the reasons);
- reorder: the same lines as the last order, shown and confirmed the same way;
- budget: the mandate's remaining amount and count per budget;
- status: the last order's status; refund: a refund of the last order, to the payer.

When there is no usable mandate it asks for one (the budget stated or the cart's total) and
gives the consent link; the conversation excerpt travels with the request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from paywarden.agent.intent import ITEMS, Intent, Kind, Wanted, read_intent
from paywarden.agent.session import ToolOutcome, ToolRunner
from paywarden.kernel.money import format_amount

__all__ = ["OfflinePlanner", "best_match", "match_options"]

Json = dict[str, Any]
# Refusals that mean "this mandate cannot pay": ask the user for a (new) mandate.
NEEDS_MANDATE = frozenset(
    {"mandate_missing", "mandate_not_active", "mandate_exhausted", "mandate_expired"}
)

TEXT: dict[str, dict[str, str]] = {
    "en": {
        "help": 'I can order ("two large oat lattes, pickup at 3pm, under 40 yuan"), '
        "reorder, tell you your budget, an order's status, or refund your last order.",
        "not_found": "I could not find {item}.",
        "cart": "Your cart at {merchant}:",
        "total": "Total: {total}",
        "pickup": "Pickup at {at}.",
        "over": "That is {total}, over your budget of {budget}: I cancelled the cart.",
        "ask": "Pay {total}? (yes/no)",
        "not_ready": "The cart cannot be paid yet: {why}",
        "paid": "Paid {total}. Order {order} is {status}.",
        "approval": "Your mandate needs your confirmation for this payment: approve it at "
        "{url} (payment {payment}).",
        "declined": "The payment was declined: {reasons}.",
        "refused": "The server refused: {code} ({message}).",
        "cancelled": "OK, I cancelled the cart; nothing was charged.",
        "nothing": "There is nothing waiting for your confirmation.",
        "budget": "Mandate {mandate} is {status}. {left}",
        "left_amount": "{amount} left{period}.",
        "left_count": "{count} payments left{period}.",
        "no_orders": "You have no orders yet.",
        "status": "Order {order} ({total}) is {status}.",
        "refund": "Refund request {refund} for {amount} on order {order}: {status} (the "
        "merchant decides; the money goes back to your wallet).",
        "mandate": "I need your permission first: please open {url} to allow payments up to "
        "{budget}.",
        "no_last": "I could not find your last order to repeat.",
    },
    "zh": {
        "help": "我可以帮你点单（“两杯大杯燕麦拿铁，少糖，下午3点自取，40元以内”）、再来一单、"
        "查预算、查订单状态，或退款上一单。",
        "not_found": "没有找到{item}。",
        "cart": "{merchant}的购物车：",
        "total": "合计：{total}",
        "pickup": "取餐时间：{at}。",
        "over": "合计{total}，超过了预算{budget}，已取消购物车。",
        "ask": "确认支付{total}吗？（好/不要）",
        "not_ready": "购物车暂时不能支付：{why}",
        "paid": "已支付{total}。订单{order}状态：{status}。",
        "approval": "这笔付款需要你确认：请在 {url} 批准（付款 {payment}）。",
        "declined": "付款被拒绝：{reasons}。",
        "refused": "服务器拒绝了：{code}（{message}）。",
        "cancelled": "好的，已取消购物车，没有扣款。",
        "nothing": "目前没有待确认的订单。",
        "budget": "授权 {mandate} 状态：{status}。{left}",
        "left_amount": "剩余{amount}{period}。",
        "left_count": "剩余{count}次{period}。",
        "no_orders": "你还没有订单。",
        "status": "订单{order}（{total}）状态：{status}。",
        "refund": "订单{order}的退款申请{refund}（{amount}）：{status}"
        "（由商家决定，退回你的钱包）。",
        "mandate": "需要先获得你的授权：请打开 {url}，允许最多{budget}的付款。",
        "no_last": "没有找到可以再来一单的上一笔订单。",
    },
}
ZH_WORDS = {"latte": "拿铁", "americano": "美式", "cappuccino": "卡布奇诺", "flat white": "澳白",
            "mocha": "摩卡", "espresso": "浓缩", "croissant": "可颂"}  # fmt: skip


# What a catalog may call the canonical option values ("less" sugar is "one" pump at the demo
# coffee chain), tried after the value itself.
SIMILAR: dict[str, tuple[str, ...]] = {
    "less": ("one", "half", "light"),
    "regular": ("two", "normal", "standard"),
    "whole": ("dairy", "full"),
}


GENERIC_WORDS = frozenset({"caffe", "caffè", "cafe", "café", "classic", "house", "the"})


def best_match(products: list[Json], item: str) -> Json:
    """The product most plainly called ``item``: its title without generic words ("Caffe
    Latte") is the item; else the shortest title holding the item's words ("Latte" before
    "Vanilla Latte"); else the search's first (best ranked) answer."""

    def words(title: str) -> list[str]:
        return [w for w in title.lower().split() if w not in GENERIC_WORDS]

    wanted = item.lower().split()
    exact = [p for p in products if words(str(p.get("title", ""))) == wanted]
    if exact:
        return exact[0]
    holding = [p for p in products if all(w in words(str(p.get("title", ""))) for w in wanted)]
    if holding:
        return min(holding, key=lambda p: len(str(p.get("title", ""))))
    return products[0]


def match_options(product: Mapping[str, Any], wanted: Mapping[str, str]) -> dict[str, str]:
    """The product's option values for what the user wanted: for each aspect (size, milk, …)
    the group named like it, or holding a value like the wanted one; the value whose name
    is or contains the canonical word. Aspects the product does not offer are left out."""
    chosen: dict[str, str] = {}
    groups = [g for g in product.get("option_groups") or [] if isinstance(g, Mapping)]
    for aspect, value in wanted.items():
        # The group named like the aspect first ("Size" for size), then any other.
        ordered = sorted(groups, key=lambda g: aspect not in str(g.get("name", "")).lower())
        for group in ordered:
            names = [str(v.get("name", "")) for v in group.get("values") or []]
            words = (value, *SIMILAR.get(value, ()))
            hit = next((n for w in words for n in names if n.lower() == w), None) or next(
                (n for w in words for n in names if w in n.lower()), None
            )
            if hit is not None and str(group["name"]) not in chosen:
                chosen[str(group["name"])] = hit
                break
    return chosen


@dataclass
class OfflinePlanner:
    """The deterministic brain. ``now`` and ``timezone`` place a pickup time of day;
    ``merchant`` narrows searches to one merchant."""

    now: Any = None  # () -> datetime (aware); the pickup time is the next one after it
    timezone: Any = None  # a tzinfo for pickup times; UTC when None
    merchant: str | None = None
    pending: str | None = None  # the checkout waiting for the user's yes
    pending_total: str = ""
    language: str = "en"
    _texts: dict[str, str] = field(default_factory=dict)

    def turn(self, text: str, runner: ToolRunner) -> str:
        intent = read_intent(text)
        if intent.kind not in (Kind.YES, Kind.NO):
            self.language = intent.language
        self._texts = TEXT[self.language]
        handler = {
            Kind.ORDER: self._order,
            Kind.REORDER: self._reorder,
            Kind.BUDGET: self._budget,
            Kind.STATUS: self._status,
            Kind.REFUND: self._refund,
            Kind.YES: self._yes,
            Kind.NO: self._no,
        }.get(intent.kind)
        return handler(intent, runner) if handler else self._texts["help"]

    def _say(self, key: str, **values: Any) -> str:
        return self._texts[key].format(**values)

    def _refused(self, outcome: ToolOutcome) -> str:
        error = outcome.refusal or {}
        return self._say("refused", code=error.get("code"), message=error.get("message"))

    # --- ordering ------------------------------------------------------------------------

    def _order(self, intent: Intent, runner: ToolRunner) -> str:
        items: list[Json] = []
        merchant: str | None = self.merchant
        for wanted in intent.lines:
            product = self._find(wanted, merchant, runner)
            if product is None:
                name = (
                    ZH_WORDS.get(wanted.item, wanted.item) if self.language == "zh" else wanted.item
                )
                return self._say("not_found", item=name)
            merchant = merchant or str(product["merchant"])
            line: Json = {"item": product["id"], "quantity": wanted.quantity}
            options = match_options(product, wanted.options)
            if options:
                line["options"] = options
            items.append(line)
        assert merchant is not None
        return self._checkout(merchant, items, intent, runner)

    def _find(self, wanted: Wanted, merchant: str | None, runner: ToolRunner) -> Json | None:
        words = [wanted.item, *[w for w in ITEMS.get(wanted.item, ()) if w != wanted.item]]
        for word in words:
            query: Json = {"query": word, "limit": 5}
            if merchant:
                query["merchant"] = merchant
            found = runner.call("search_products", query)
            products = (found.result or {}).get("data") or []
            in_stock = [p for p in products if p.get("in_stock", True)]
            if in_stock:
                return dict(best_match(in_stock, wanted.item))
        return None

    def _checkout(
        self, merchant: str, items: list[Json], intent: Intent, runner: ToolRunner
    ) -> str:
        made = runner.call("create_checkout", {"merchant": merchant, "items": items})
        if made.result is None:
            return self._refused(made)
        session = made.result
        if intent.pickup_time is not None:
            session = self._choose_pickup(session, intent.pickup_time, runner) or session
        shown = self._show(session)
        total = format_amount(int(session["amount_total"]), str(session["currency"]))
        if intent.budget is not None:
            budget, currency = intent.budget
            if currency == session["currency"] and int(session["amount_total"]) > budget:
                runner.call("cancel_checkout", {"checkout_id": session["id"]})
                over = self._say("over", total=total, budget=format_amount(budget, currency))
                return f"{shown}\n{over}"
        if session.get("status") != "ready_for_payment":
            why = "; ".join(str(m.get("content", m.get("code"))) for m in session["messages"])
            return f"{shown}\n{self._say('not_ready', why=why)}"
        self.pending, self.pending_total = str(session["id"]), total
        return f"{shown}\n{self._say('ask', total=total)}"

    def _choose_pickup(self, session: Json, at: tuple[int, int], runner: ToolRunner) -> Json | None:
        options = [o for o in session.get("fulfillment_options") or [] if o["type"] == "pickup"]
        if not options:
            return None
        now: datetime = self.now() if self.now else datetime.now().astimezone()
        local = now.astimezone(self.timezone) if self.timezone else now
        when = local.replace(hour=at[0], minute=at[1], second=0, microsecond=0)
        if when <= local:
            when += timedelta(days=1)
        choice = {"option_id": options[0]["id"], "pickup_at": when.isoformat()}
        updated = runner.call(
            "update_checkout", {"checkout_id": session["id"], "fulfillment": choice}
        )
        return updated.result

    def _show(self, session: Json) -> str:
        currency = str(session["currency"])
        lines = [self._say("cart", merchant=session["merchant"])]
        for line in session.get("line_items") or []:
            options = ", ".join(f"{v}" for _, v in sorted(_options_of(line).items()))
            unit = format_amount(int(line.get("unit_amount", 0)), currency)
            title = line.get("title") or line.get("item")
            lines.append(f"  {line.get('quantity')} x {title}"
                         + (f" ({options})" if options else "") + f" @ {unit}")  # fmt: skip
        fulfillment = session.get("fulfillment") or {}
        if fulfillment.get("pickup_at"):
            lines.append(self._say("pickup", at=self._local(str(fulfillment["pickup_at"]))))
        total = format_amount(int(session["amount_total"]), currency)
        lines.append(self._say("total", total=total))
        return "\n".join(lines)

    def _local(self, instant: str) -> str:
        """An RFC 3339 instant as the user's local date and time: ``2026-11-30 15:00``, with
        the zone's name when one is set."""
        try:
            when = datetime.fromisoformat(instant)
        except ValueError:
            return instant
        if self.timezone is None:
            return when.strftime("%Y-%m-%d %H:%M %Z").strip()
        return f"{when.astimezone(self.timezone):%Y-%m-%d %H:%M} ({self.timezone})"

    def _yes(self, intent: Intent, runner: ToolRunner) -> str:
        if self.pending is None:
            return self._say("nothing")
        session_id, total = self.pending, self.pending_total
        self.pending = None
        done = runner.call("complete_checkout", {"checkout_id": session_id})
        if done.result is None:
            code = (done.refusal or {}).get("code")
            if code in NEEDS_MANDATE:
                return self._ask_mandate(session_id, runner) or self._refused(done)
            return self._refused(done)
        return self._outcome(done.result, total)

    def _outcome(self, session: Json, total: str) -> str:
        status = session.get("status")
        if status == "completed":
            order = session.get("order")
            return self._say("paid", total=total, order=order, status=status)
        if status == "pending_approval" or session.get("approval_url"):
            return self._say(
                "approval", url=session.get("approval_url"), payment=session.get("payment")
            )
        reasons = [
            str(m.get("content") or m.get("code"))
            for m in session.get("messages") or []
            if m.get("type") == "error"
        ]
        return self._say("declined", reasons="; ".join(reasons) or str(status))

    def _ask_mandate(self, session_id: str, runner: ToolRunner) -> str | None:
        session = runner.call("get_checkout", {"checkout_id": session_id}).result
        if session is None:
            return None
        asked = runner.call(
            "request_mandate",
            {
                "currency": session["currency"],
                "max_amount": int(session["amount_total"]),
                "merchants": [session["merchant"]],
            },
        )
        if asked.result is None:
            return self._refused(asked)
        budget = format_amount(int(session["amount_total"]), str(session["currency"]))
        return self._say("mandate", url=asked.result.get("consent_url"), budget=budget)

    def _no(self, intent: Intent, runner: ToolRunner) -> str:
        if self.pending is None:
            return self._say("nothing")
        runner.call("cancel_checkout", {"checkout_id": self.pending})
        self.pending = None
        return self._say("cancelled")

    # --- after the order -----------------------------------------------------------------

    def _last_order(self, runner: ToolRunner) -> Json | None:
        listed = runner.call("list_orders", {"limit": 1}).result or {}
        orders = listed.get("data") or []
        return dict(orders[0]) if orders else None

    def _reorder(self, intent: Intent, runner: ToolRunner) -> str:
        order = self._last_order(runner)
        if order is None:
            return self._say("no_last")
        items = [
            {k: v for k, v in (("item", line.get("product") or line.get("item")),
                               ("quantity", line.get("quantity")),
                               ("options", _options_of(line) or None),
                               ("variant", line.get("variant"))) if v}
            for line in order.get("line_items") or []
        ]  # fmt: skip
        if not items:
            return self._say("no_last")
        return self._checkout(str(order["merchant"]), items, intent, runner)

    def _budget(self, intent: Intent, runner: ToolRunner) -> str:
        got = runner.call("get_mandate", {})
        if got.result is None:
            return self._refused(got)
        mandate = got.result
        left = []
        for entry in mandate.get("remaining") or []:
            period = f" ({entry['period']})" if entry.get("period") else ""
            if "amount_left" in entry:
                amount = format_amount(int(entry["amount_left"]), str(entry["currency"]))
                left.append(self._say("left_amount", amount=amount, period=period))
            if "count_left" in entry:
                left.append(self._say("left_count", count=entry["count_left"], period=period))
        return self._say("budget", mandate=mandate["id"], status=mandate["status"],
                         left=" ".join(left))  # fmt: skip

    def _status(self, intent: Intent, runner: ToolRunner) -> str:
        order = self._last_order(runner)
        if order is None:
            return self._say("no_orders")
        total = format_amount(int(order.get("amount_total", 0)), str(order.get("currency")))
        return self._say("status", order=order["id"], total=total, status=order.get("status"))

    def _refund(self, intent: Intent, runner: ToolRunner) -> str:
        order = self._last_order(runner)
        if order is None:
            return self._say("no_orders")
        asked = runner.call("request_refund", {"order_id": order["id"], "reason": "requested"})
        if asked.result is None:
            return self._refused(asked)
        refund = asked.result
        remaining = int(order.get("amount_total", 0)) - int(order.get("amount_refunded", 0))
        amount = format_amount(int(refund.get("amount") or remaining), str(refund.get("currency")))
        return self._say("refund", refund=refund.get("id"), amount=amount, order=order["id"],
                         status=refund.get("status"))  # fmt: skip


def _options_of(line: Mapping[str, Any]) -> dict[str, str]:
    options = line.get("options") or {}
    if isinstance(options, Mapping):
        return {str(k): str(v) for k, v in options.items()}
    return {str(pair[0]): str(pair[1]) for pair in options if len(pair) == 2}
