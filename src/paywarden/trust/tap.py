"""Contactless taps: the message a device signs, and the rules a tap is judged by.

A tap is two signatures. The **device** holding a payment token (``dtk_``) signs the
*cryptogram*: its key over the RFC 8785 canonical JSON of ::

    {"typ": "paywarden-tap/1", "token": "dtk_…", "amount": 450, "currency": "usd",
     "merchant": "mer_…", "terminal": "trm_…", "unpredictable_number": "9f3a…",
     "counter": 17, "user_verification": "none" | "pin" | "biometric"}

The **terminal** generates the unpredictable number (8 to 32 hex digits) for each tap, then
submits the tap data and the cryptogram in a request signed with its own key. Changing any
field (amount, merchant, currency, the number …) breaks the cryptogram.

:func:`judge` applies the rules, cheapest first; every refusal is a reason code:

1. ``token_unknown``: no such token (so no key to check the cryptogram with);
2. ``cryptogram_invalid``: the token's device key did not sign exactly this;
   ``token_revoked`` / ``device_revoked``;
3. ``token_domain_mismatch``: an ``in_person`` token is used only at an in-person terminal
   (a point of sale or a gate), never online;
4. ``terminal_mismatch``: the message names another terminal or merchant than the one that
   submits it (a cryptogram relayed through another terminal);
5. ``counter_replayed``: the application transaction counter must exceed the last one
   accepted (equal or lower is a replay or a clone);
6. a counter more than ``counter_window`` ahead is *flagged*: it needs a strong user
   verification (PIN or biometric) or is declined ``step_up_required``;
7. limits, in the spirit of contactless low-value rules: above the device's ``tap_limit``
   for one tap, or beyond ``daily_limit`` cumulated over the UTC day, or in another
   currency than the limits', the tap needs a strong user verification, else
   ``step_up_required``.

The counter *advances* to this tap's when the rules got past 5 and 6 (the cryptogram is
genuine and its counter acceptable), whatever happens after: a counter is used once.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from paywarden.kernel.errors import InvalidRequest
from paywarden.trust.canonical import canonical
from paywarden.trust.devices import STRONG_VERIFICATION, USER_VERIFICATIONS
from paywarden.trust.keys import PublicKey, b64url_decode, b64url_encode

__all__ = [
    "COUNTER_MAX",
    "COUNTER_WINDOW_DEFAULT",
    "IN_PERSON_TERMINALS",
    "TAP_TYPE",
    "Limits",
    "TapData",
    "TapState",
    "Verdict",
    "cryptogram_bytes",
    "distance_fare",
    "entry_amount",
    "fare_rule",
    "judge",
    "message_hash",
    "over_limits",
    "sign_tap",
    "verify_cryptogram",
]

TAP_TYPE = "paywarden-tap/1"
ACTIVE = "active"
COUNTER_MAX = 2**32 - 1
COUNTER_WINDOW_DEFAULT = 50
IN_PERSON_TERMINALS = frozenset({"pos", "gate"})
_UNPREDICTABLE = re.compile(r"[0-9a-f]{8,32}")
_CURRENCY = re.compile(r"[a-z]{3}")
AMOUNT_MAX = 999_999_999_999_999


@dataclass(frozen=True, slots=True)
class TapData:
    """The fields the cryptogram covers, as the terminal submits them."""

    token: str
    amount: int
    currency: str
    merchant: str
    terminal: str
    unpredictable_number: str
    counter: int
    user_verification: str = "none"

    def __post_init__(self) -> None:
        if not _UNPREDICTABLE.fullmatch(self.unpredictable_number):
            raise InvalidRequest(
                "unpredictable_number is 8 to 32 lowercase hex digits",
                code="invalid_value",
                param="$.tap.unpredictable_number",
            )
        if not 1 <= self.counter <= COUNTER_MAX:
            raise InvalidRequest(
                f"counter is 1 to {COUNTER_MAX}", code="invalid_value", param="$.tap.counter"
            )
        if not 0 <= self.amount <= AMOUNT_MAX:
            raise InvalidRequest(
                f"amount is 0 to {AMOUNT_MAX} minor units",
                code="invalid_amount",
                param="$.tap.amount",
            )
        if not _CURRENCY.fullmatch(self.currency):
            raise InvalidRequest(
                "currency is a lowercase ISO 4217 code",
                code="invalid_currency",
                param="$.tap.currency",
            )
        if self.user_verification not in USER_VERIFICATIONS:
            raise InvalidRequest(
                f"user_verification is one of {', '.join(USER_VERIFICATIONS)}",
                code="invalid_value",
                param="$.tap.user_verification",
            )

    def to_json(self) -> dict[str, Any]:
        return {
            "token": self.token,
            "amount": self.amount,
            "currency": self.currency,
            "merchant": self.merchant,
            "terminal": self.terminal,
            "unpredictable_number": self.unpredictable_number,
            "counter": self.counter,
            "user_verification": self.user_verification,
        }


def cryptogram_bytes(tap: TapData) -> bytes:
    """The bytes the device signs."""
    return canonical({"typ": TAP_TYPE, **tap.to_json()})


def sign_tap(tap: TapData, sign: Callable[[bytes], bytes]) -> str:
    """The cryptogram (base64url) made by ``sign`` (a device key's ``sign`` method)."""
    return b64url_encode(sign(cryptogram_bytes(tap)))


def verify_cryptogram(key: PublicKey, tap: TapData, cryptogram: str) -> bool:
    try:
        raw = b64url_decode(cryptogram)
    except (InvalidRequest, ValueError):
        return False
    return b64url_encode(raw) == cryptogram and key.verify(cryptogram_bytes(tap), raw)


def message_hash(tap: TapData, cryptogram: str) -> str:
    """SHA-256 (hex) of the whole message: the identity of a tap, for retries."""
    return hashlib.sha256(canonical({"tap": tap.to_json(), "cryptogram": cryptogram})).hexdigest()


@dataclass(frozen=True, slots=True)
class Limits:
    """A device's limits: ``None`` means no limit of that kind."""

    currency: str | None
    tap_limit: int | None
    daily_limit: int | None


@dataclass(frozen=True, slots=True)
class TapState:
    """What the platform knows when it judges a tap."""

    cryptogram_valid: bool
    token_status: str | None  # None: no such token
    device_status: str | None
    terminal_kind: str
    terminal_id: str
    terminal_merchant: str
    last_counter: int
    counter_window: int
    limits: Limits
    spent_today: int  # approved amounts on the device today, in the limits' currency


@dataclass(frozen=True, slots=True)
class Verdict:
    approved: bool
    reasons: tuple[str, ...]
    flagged: bool  # a counter jump beyond the window
    advance_counter: bool


def _declined(reason: str, *, flagged: bool = False, advance: bool = False) -> Verdict:
    return Verdict(False, (reason,), flagged, advance)


def _refusal(tap: TapData, state: TapState) -> str | None:
    """Rules 1 to 5: the message itself, who holds it and where it is used."""
    if state.token_status is None:
        return "token_unknown"
    if not state.cryptogram_valid:
        return "cryptogram_invalid"
    if state.token_status != ACTIVE:
        return "token_revoked"
    if state.device_status != ACTIVE:
        return "device_revoked"
    if state.terminal_kind not in IN_PERSON_TERMINALS:
        return "token_domain_mismatch"
    if tap.terminal != state.terminal_id or tap.merchant != state.terminal_merchant:
        return "terminal_mismatch"
    if tap.counter <= state.last_counter:
        return "counter_replayed"
    return None


def over_limits(amount: int, currency: str, limits: Limits, spent_today: int) -> bool:
    """Whether a payment of ``amount`` needs a step-up under ``limits``."""
    if amount == 0:
        return False
    if limits.currency is not None and currency != limits.currency:
        return True
    if limits.tap_limit is not None and amount > limits.tap_limit:
        return True
    return limits.daily_limit is not None and spent_today + amount > limits.daily_limit


def judge(tap: TapData, state: TapState) -> Verdict:
    """Rules 1 to 7 (see the module docstring); funds are the service's to check."""
    refusal = _refusal(tap, state)
    if refusal is not None:
        return _declined(refusal)
    strong = tap.user_verification in STRONG_VERIFICATION
    flagged = tap.counter > state.last_counter + state.counter_window
    if flagged and not strong:
        return _declined("step_up_required", flagged=True)
    if not strong and over_limits(tap.amount, tap.currency, state.limits, state.spent_today):
        return _declined("step_up_required", flagged=flagged, advance=True)
    return Verdict(True, (), flagged, True)


# --- gates: fares ------------------------------------------------------------------------

FARE_MODES = ("free", "flat", "distance")
FARE_MAX = 10**9
ZONE_MAX = 1000


def _fare_amount(rule: dict[str, Any], name: str) -> int:
    value = rule.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= FARE_MAX:
        raise InvalidRequest(
            f"a fare's {name} is an integer of minor units, 0 or more",
            code="invalid_amount",
            param=f"$.settings.fare.{name}",
        )
    return value


def fare_rule(settings: dict[str, Any]) -> dict[str, Any]:
    """A gate's settings, checked: ``{"zone": 0.., "fare": {"mode":
    "free"}``, ``{"mode": "flat", "amount": 250}`` (charged at the tap in) or ``{"mode":
    "distance", "base": 150, "per_zone": 50, "max": 600}`` (``max`` held at the tap in; at
    the tap out, ``base + per_zone * zones travelled``, at most ``max``, is captured)."""
    zone = settings.get("zone", 0)
    if isinstance(zone, bool) or not isinstance(zone, int) or not 0 <= zone <= ZONE_MAX:
        raise InvalidRequest(
            f"zone is 0 to {ZONE_MAX}", code="invalid_value", param="$.settings.zone"
        )
    fare = settings.get("fare", {"mode": "free"})
    mode = fare.get("mode") if isinstance(fare, dict) else None
    if mode not in FARE_MODES:
        raise InvalidRequest(
            f"fare.mode is one of {', '.join(FARE_MODES)}",
            code="invalid_value",
            param="$.settings.fare.mode",
        )
    names = {"free": (), "flat": ("amount",), "distance": ("base", "per_zone", "max")}[mode]
    checked = {"mode": mode, **{name: _fare_amount(fare, name) for name in names}}
    return {"zone": zone, "fare": checked}


def entry_amount(rule: dict[str, Any]) -> int:
    """What a tap in authorizes: the flat fare, the distance maximum, or nothing."""
    fare = rule["fare"]
    return int(
        {"free": 0, "flat": fare.get("amount", 0), "distance": fare.get("max", 0)}[fare["mode"]]
    )


def distance_fare(entry_rule: dict[str, Any], exit_zone: int) -> int:
    """The fare of a journey from the entry gate's zone to ``exit_zone``, under the entry
    gate's rule, never above its maximum (what the tap in held)."""
    fare = entry_rule["fare"]
    zones = abs(int(entry_rule["zone"]) - exit_zone)
    return min(int(fare["base"]) + int(fare["per_zone"]) * zones, int(fare["max"]))
