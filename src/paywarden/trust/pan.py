"""Card numbers where none belongs: paywarden never stores a primary account number (PAN).

Only a top-up's ``card.number`` may carry one (the sandbox rail tokenizes it at once). Any
other text a client sends — a name, a description, a conversation excerpt, a refund reason —
is refused when it holds a run of 13 to 19 digits (spaces or dashes between them allowed)
that passes the Luhn check and starts like a card network's number. Long opaque tokens
(hashes, signatures, keys: no whitespace, 32 characters or more) are not inspected: their
digit runs are noise, and a person does not type a card number into one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

__all__ = ["card_number_path", "looks_like_card_number"]

_RUN = re.compile(r"(?<![0-9])(?:[0-9][ -]?){12,18}[0-9](?![0-9])")
_NETWORK = re.compile(r"^(4|5[1-5]|2[2-7]|3[0-9]|6011|62|64[4-9]|65)")
_TOKEN = re.compile(r"^[A-Za-z0-9_\-=.+/:~]{32,}$")
STRINGS_MAX = 10_000  # a body holds fewer; beyond, the depth and size limits already apply


def _luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def looks_like_card_number(text: str) -> bool:
    """True when ``text`` holds a Luhn-valid, network-prefixed run of 13 to 19 digits."""
    if len(text) < 13 or _TOKEN.match(text):  # most strings of a body end here, cheaply
        return False
    for match in _RUN.finditer(text):
        digits = match.group().replace(" ", "").replace("-", "")
        if 13 <= len(digits) <= 19 and _NETWORK.match(digits) and _luhn(digits):
            return True
    return False


def card_number_path(value: Any, *, allowed: Iterable[str] = ()) -> str | None:
    """The JSON path of the first string (or key) in ``value`` that holds a card number,
    paths in ``allowed`` aside; None when there is none."""
    exempt = frozenset(allowed)
    stack: list[tuple[Any, str]] = [(value, "$")]
    seen = 0
    while stack and seen < STRINGS_MAX:
        item, path = stack.pop()
        seen += 1
        if isinstance(item, str):
            if path not in exempt and looks_like_card_number(item):
                return path
        elif isinstance(item, dict):
            for name, child in item.items():
                if looks_like_card_number(str(name)):
                    return path
                stack.append((child, f"{path}.{name}"))
        elif isinstance(item, list):
            stack.extend((child, f"{path}[{index}]") for index, child in enumerate(item))
    return None
