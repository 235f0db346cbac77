# ruff: noqa: RUF001 -- the Chinese texts use full-width punctuation on purpose
"""What the user asked, read deterministically from English or Chinese text.

:func:`read_intent` turns "two large oat lattes, less sugar, pickup at 3pm, under 40 yuan" or
"再来一杯上次的咖啡" into an :class:`Intent`: its kind (order, reorder, budget, status, refund,
yes, no, help), the drinks or goods with quantity and wanted options, a pickup time of day and
a budget (integer minor units) when stated, and the language to answer in. No model is
involved: the same words always give the same intent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

from paywarden.kernel.money import minor_units

__all__ = ["ITEMS", "Intent", "Kind", "Wanted", "read_intent"]


class Kind(StrEnum):
    ORDER = "order"
    REORDER = "reorder"
    BUDGET = "budget"
    STATUS = "status"
    REFUND = "refund"
    YES = "yes"
    NO = "no"
    HELP = "help"


@dataclass(frozen=True)
class Wanted:
    """One line the user wants: ``item`` is the canonical English name searched for."""

    item: str
    quantity: int
    options: dict[str, str] = field(default_factory=dict)  # aspect -> canonical value


@dataclass(frozen=True)
class Intent:
    kind: Kind
    language: str  # "en" or "zh"
    lines: tuple[Wanted, ...] = ()
    pickup_time: tuple[int, int] | None = None  # (hour, minute), local time of day
    budget: tuple[int, str] | None = None  # (amount in minor units, currency)


# Canonical item -> the words that name it (lowercase; Chinese as written).
ITEMS: dict[str, tuple[str, ...]] = {
    "latte": ("lattes", "latte", "拿铁"),
    "americano": ("americanos", "americano", "美式"),
    "cappuccino": ("cappuccinos", "cappuccino", "卡布奇诺"),
    "flat white": ("flat whites", "flat white", "澳白", "馥芮白"),
    "mocha": ("mochas", "mocha", "摩卡"),
    "espresso": ("espressos", "espresso", "浓缩"),
    "croissant": ("croissants", "croissant", "可颂", "牛角包"),
    "bananas": ("bananas", "banana", "香蕉"),
    "milk": ("milk carton", "牛奶"),
}
# aspect -> canonical value -> words.
OPTIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "size": {
        "large": ("large", "big", "大杯", "超大杯"),
        "medium": ("medium", "regular size", "中杯"),
        "small": ("small", "小杯"),
    },
    "milk": {
        "oat": ("oat milk", "oat", "燕麦奶", "燕麦"),
        "soy": ("soy milk", "soy", "豆奶", "豆浆"),
        "whole": ("whole milk", "dairy", "全脂", "牛奶"),
        "none": ("no milk", "black", "不加奶"),
    },
    "sugar": {
        "less": ("less sugar", "less sweet", "half sugar", "少糖", "半糖"),
        "none": ("no sugar", "sugar free", "unsweetened", "无糖", "不加糖"),
        "regular": ("regular sugar", "normal sugar", "标准糖", "正常糖"),
    },
    "temperature": {
        "iced": ("iced", "cold", "冰", "冰的"),
        "hot": ("hot", "热", "热的"),
    },
}
EN_NUMBERS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
    "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10, "a couple of": 2,
}  # fmt: skip
ZH_NUMBERS = {"一": 1, "两": 2, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8,
              "九": 9, "十": 10}  # fmt: skip
CURRENCIES = {
    "yuan": "cny", "rmb": "cny", "cny": "cny", "元": "cny", "块": "cny", "¥": "cny",
    "dollars": "usd", "dollar": "usd", "usd": "usd", "$": "usd", "bucks": "usd",
    "euros": "eur", "euro": "eur", "eur": "eur", "€": "eur",
}  # fmt: skip
QUANTITY_MAX = 20

_KIND_WORDS: tuple[tuple[Kind, tuple[str, ...]], ...] = (
    (Kind.REFUND, ("refund", "money back", "退款", "退钱", "退单")),
    (Kind.REORDER, ("same as last", "reorder", "again", "last time", "上次", "再来", "老样子")),
    (Kind.STATUS, ("order status", "where is my", "status", "my order", "订单状态", "到哪",
                   "订单")),
    (Kind.BUDGET, ("budget", "how much can", "left to spend", "remaining", "limit", "预算",
                   "还剩", "额度", "还能花")),
    (Kind.HELP, ("help", "what can you", "帮助", "你能做什么")),
)  # fmt: skip
_YES = ("yes", "y", "ok", "okay", "sure", "confirm", "pay", "go ahead", "好", "好的", "是",
        "确认", "可以", "付款", "行")  # fmt: skip
_NO = ("no", "n", "cancel", "stop", "don't", "不", "不要", "取消", "算了")


def _has_chinese(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


def read_intent(text: str) -> Intent:
    """The intent of one user message; see the module docstring."""
    language = "zh" if _has_chinese(text) else "en"
    lowered = " ".join(text.lower().split())
    bare = lowered.strip(" .!。！?？")
    if bare in _YES:
        return Intent(Kind.YES, language)
    if bare in _NO:
        return Intent(Kind.NO, language)
    lines = tuple(_lines(lowered))
    for kind, words in _KIND_WORDS:
        if any(_contains(lowered, word) for word in words):
            if kind is Kind.STATUS and lines and not _contains(lowered, "status"):
                break  # "my order: two lattes" is an order
            if kind is Kind.REORDER or not lines:
                return Intent(kind, language, lines, _pickup(lowered), _budget(lowered))
    if lines:
        return Intent(Kind.ORDER, language, lines, _pickup(lowered), _budget(lowered))
    return Intent(Kind.HELP, language)


def _contains(text: str, word: str) -> bool:
    if _has_chinese(word) or not word[0].isalnum():
        return word in text
    return re.search(rf"(?<![a-z]){re.escape(word)}(?![a-z])", text) is not None


def _lines(text: str) -> list[Wanted]:
    """Each item named, with the quantity just before it and the options of its clause."""
    found: list[tuple[int, int, str]] = []  # (start, end, item)
    for item, words in ITEMS.items():
        for word in words:
            for match in re.finditer(re.escape(word), text):
                start, end = match.span()
                if not _has_chinese(word) and not _word_bounded(text, start, end):
                    continue
                if any(s <= start < e for s, e, _ in found):
                    continue
                found.append((start, end, item))
    found.sort()
    lines = []
    for index, (start, end, item) in enumerate(found):
        clause_start = found[index - 1][1] if index else 0
        clause_end = found[index + 1][0] if index + 1 < len(found) else len(text)
        before = text[clause_start:start]
        clause = text[clause_start:clause_end]
        options = _options(clause if len(found) == 1 else before + text[start:end])
        lines.append(Wanted(item, _quantity(before), options))
    return lines


def _word_bounded(text: str, start: int, end: int) -> bool:
    left = start == 0 or not text[start - 1].isalpha()
    right = end == len(text) or not text[end].isalpha()
    return left and right


def _quantity(before: str) -> int:
    """The quantity named closest before the item (1 when none)."""
    tail = before[-40:]
    best: tuple[int, int] | None = None  # (position, quantity)
    for match in re.finditer(r"(\d+)\s*(?:x\s*|杯|个|份|瓶|袋)?", tail):
        best = (match.start(), int(match.group(1)))
        if match.group(0).strip().endswith(("x",)):
            pass
    for word, value in EN_NUMBERS.items():
        for match in re.finditer(rf"(?<![a-z]){re.escape(word)}(?![a-z])", tail):
            if best is None or match.start() > best[0]:
                best = (match.start(), value)
    for match in re.finditer(r"([一两二三四五六七八九十])\s*(?:杯|个|份|瓶|袋)", tail):
        if best is None or match.start() > best[0]:
            best = (match.start(), ZH_NUMBERS[match.group(1)])
    if best is not None and _is_time_or_money(tail, best[0]):
        best = None
    quantity = best[1] if best else 1
    return max(1, min(QUANTITY_MAX, quantity))


def _is_time_or_money(text: str, position: int) -> bool:
    after = text[position : position + 12]
    return re.match(r"\d+\s*(?::\d|pm|am|点|元|块|yuan|dollars?|usd|cny)", after) is not None


def _options(text: str) -> dict[str, str]:
    chosen: dict[str, str] = {}
    for aspect, values in OPTIONS.items():
        best: tuple[int, str] | None = None  # the longest matching word wins ("oat milk")
        for value, words in values.items():
            for word in words:
                if _contains(text, word) and (best is None or len(word) > best[0]):
                    best = (len(word), value)
        if best is not None:
            chosen[aspect] = best[1]
    if chosen.get("milk") == "whole" and "牛奶" in text and "全脂" not in text:
        chosen.pop("milk")  # 牛奶 alone is the grocery item, not a milk choice
    return chosen


_ZH_TIME = re.compile(
    r"(上午|早上|中午|下午|晚上)?\s*([0-9]{1,2}|[一两二三四五六七八九十]{1,3})\s*[点:：]\s*(半|[0-9]{1,2}分?)?"
)
_EN_TIME = re.compile(r"(?:at|by|for|around)\s+(\d{1,2})(?::(\d{2}))?\s*(am|pm|a\.m\.|p\.m\.)?")


def _pickup(text: str) -> tuple[int, int] | None:
    match = _EN_TIME.search(text)
    if match and (match.group(3) or match.group(2)):
        hour, minute = int(match.group(1)), int(match.group(2) or 0)
        if (match.group(3) or "").startswith("p") and hour < 12:
            hour += 12
        return (hour, minute) if hour < 24 and minute < 60 else None
    match = _ZH_TIME.search(text)
    if match:
        hour = _zh_int(match.group(2))
        minute = 30 if match.group(3) == "半" else int((match.group(3) or "0").rstrip("分") or 0)
        if match.group(1) in ("下午", "晚上") and hour < 12:
            hour += 12
        return (hour, minute) if hour < 24 and minute < 60 else None
    return None


def _zh_int(text: str) -> int:
    if text.isdigit():
        return int(text)
    if text.startswith("十"):
        return 10 + (ZH_NUMBERS.get(text[1:], 0) if len(text) > 1 else 0)
    if len(text) == 3 and text[1] == "十":
        return ZH_NUMBERS[text[0]] * 10 + ZH_NUMBERS[text[2]]
    if len(text) == 2 and text[1] == "十":
        return ZH_NUMBERS[text[0]] * 10
    return ZH_NUMBERS.get(text, 0)


_BUDGET = re.compile(
    r"(?:under|below|at most|max(?:imum)?|no more than|less than|budget(?: of)?|不超过|以内|最多)"
    r"\s*([$¥€])?\s*(\d+(?:\.\d{1,2})?)\s*(yuan|rmb|cny|元|块|dollars?|usd|bucks|euros?|eur)?"
)
_BUDGET_AFTER = re.compile(r"([$¥€])?\s*(\d+(?:\.\d{1,2})?)\s*(元|块|yuan)\s*(?:以内|以下|之内)")


def _budget(text: str) -> tuple[int, str] | None:
    match = _BUDGET.search(text) or _BUDGET_AFTER.search(text)
    if not match:
        return None
    symbol, number, word = match.group(1), match.group(2), match.group(3)
    currency = CURRENCIES.get(word or symbol or "", "")
    if not currency:
        return None
    whole, _, fraction = number.partition(".")
    exponent = minor_units(currency)
    amount = int(whole) * 10**exponent + int((fraction + "00")[:exponent] or 0)
    return amount, currency
