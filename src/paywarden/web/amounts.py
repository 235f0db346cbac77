"""Amounts as people type and read them in a form: ``"12.34"`` ↔ ``1234`` minor units, by the
currency's ISO 4217 exponent, with integer arithmetic only (never a float)."""

from __future__ import annotations

from paywarden.kernel.errors import InvalidRequest
from paywarden.kernel.money import minor_units

__all__ = ["decimal_text", "parse_decimal", "step"]


def decimal_text(amount: int, currency: str) -> str:
    """``1234`` usd → ``"12.34"``; ``1234`` jpy → ``"1234"``."""
    exponent = minor_units(currency)
    whole, fraction = divmod(amount, 10**exponent)
    return f"{whole}.{fraction:0{exponent}d}" if exponent else str(whole)


def step(currency: str) -> str:
    """The smallest amount a number input takes: ``"0.01"`` for usd, ``"1"`` for jpy."""
    exponent = minor_units(currency)
    return f"0.{'0' * (exponent - 1)}1" if exponent else "1"


def parse_decimal(text: str | None, currency: str, param: str = "$.amount") -> int | None:
    """A typed decimal amount in minor units; blank → None; anything else is a 400."""
    text = (text or "").strip()
    if not text:
        return None
    exponent = minor_units(currency)
    whole, _, fraction = text.partition(".")
    if not whole.isdigit() or (fraction and not fraction.isdigit()) or len(fraction) > exponent:
        raise InvalidRequest(f"{text!r} is not an amount in {currency.upper()}", param=param)
    scale: int = 10**exponent
    return int(whole) * scale + int(fraction.ljust(exponent, "0") or "0")
