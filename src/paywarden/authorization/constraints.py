"""The constraint vocabulary of a mandate, and its fail-closed parser.

A mandate is a list of constraints that must *all* hold (a conjunction, so their order never
matters and a repeated type simply adds a limit). Amounts are JSON integers in minor units and
currencies are ISO 4217 codes (lowercase stored, uppercase accepted), as everywhere in paywarden.

AP2 v0.2 types (``open_payment_mandate.json``)::

    {"type": "payment.amount_range", "currency": "usd", "max": 5000, "min": 100}
    {"type": "payment.budget", "currency": "usd", "max": 100000}
    {"type": "payment.agent_recurrence", "frequency": "MONTHLY", "max_occurrences": 12}
    {"type": "payment.allowed_payees", "allowed": ["mer_…", {"id": "mer_…", "name": "…"}]}
    {"type": "payment.execution_date", "not_before": "2026-03-31T00:00:00Z",
     "not_after": "2026-04-30T23:59:59Z"}

paywarden's own types::

    {"type": "paywarden.period_budget", "period": "daily|weekly|monthly", "currency": "usd",
     "max": 20000}
    {"type": "paywarden.merchant_categories", "allowed": ["groceries", "5411"]}
    {"type": "paywarden.count_cap", "max": 10, "period": "daily"}   (period optional: lifetime)
    {"type": "paywarden.confirmation_threshold", "currency": "usd", "above": 10000}

Mapping from AP2. AP2's ``types/amount.json`` and ``amount_range`` say integer minor units, but
``budget.max`` is a JSON ``number`` and the prose examples write ``100.50`` and ``1000.00``;
paywarden reads every ``max``/``min`` as an integer count of minor units and refuses a number
with a fraction or exponent (``1000.00`` included) rather than guess the unit. ``min`` absent
means 0. ``frequency`` takes AP2's enum (any case, stored uppercase). ``allowed_payees`` takes
AP2 Merchant objects (matched on ``id``; ``name`` and ``website`` are ignored) or bare merchant
ids. ``not_before``/``not_after`` are RFC 3339 instants with an offset, both inclusive; a bare
date is refused (which zone, which end of the day?). AP2's ``payment.reference``,
``payment.allowed_payment_instruments`` and ``payment.allowed_pisps`` are refused as
``unknown_constraint``: a constraint paywarden cannot evaluate must not be silently dropped.

Failing closed: an unknown type or field, a missing, null, malformed or out-of-range value, a
float amount, an unknown currency or one that differs from the mandate's, and a list with no
spending limit at all (none of amount_range, budget, period_budget) each become a
:class:`Problem` with a JSON path; :func:`parse_constraints` collects them all and raises one
:class:`ConstraintError` (an ``InvalidRequest``; code and param are the first problem's).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum, StrEnum
from typing import Any, ClassVar, Final

from paywarden.kernel.errors import InvalidRequest
from paywarden.kernel.money import parse_amount, parse_currency

__all__ = [
    "AgentRecurrence",
    "AllowedPayees",
    "AmountRange",
    "Budget",
    "ConfirmationThreshold",
    "Constraint",
    "ConstraintError",
    "CountCap",
    "ExecutionDate",
    "Frequency",
    "MerchantCategories",
    "Period",
    "PeriodBudget",
    "Problem",
    "parse_constraints",
    "to_json",
]


class Period(StrEnum):
    """A calendar period in the mandate's zone: a day, a Monday-to-Sunday week, a month."""

    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"


class Frequency(StrEnum):
    """AP2's ``agent_recurrence.frequency``: the least spacing between two payments."""

    ON_DEMAND = "ON_DEMAND"
    DAILY = "DAILY"
    WEEKLY = "WEEKLY"
    BIWEEKLY = "BIWEEKLY"
    MONTHLY = "MONTHLY"
    QUARTERLY = "QUARTERLY"
    ANNUALLY = "ANNUALLY"


@dataclass(frozen=True, slots=True)
class AmountRange:
    """Each payment is between ``min_amount`` and ``max_amount``, both inclusive."""

    type: ClassVar[str] = "payment.amount_range"
    currency: str
    max_amount: int
    min_amount: int = 0


@dataclass(frozen=True, slots=True)
class Budget:
    """All payments over the mandate's life add up to at most ``max_amount``."""

    type: ClassVar[str] = "payment.budget"
    currency: str
    max_amount: int


@dataclass(frozen=True, slots=True)
class AgentRecurrence:
    """Payments at most ``max_occurrences`` times, each one ``frequency`` after the last.

    "After" is counted in local calendar days: after a payment on 15 January at 14:00, a
    MONTHLY mandate allows the next one from 15 February 00:00 in the mandate's zone (clamped
    to the month's last day), so a merchant that bills a little earlier each cycle still fits.
    """

    type: ClassVar[str] = "payment.agent_recurrence"
    frequency: Frequency
    max_occurrences: int | None = None


@dataclass(frozen=True, slots=True)
class AllowedPayees:
    """The payee must be one of these merchant ids."""

    type: ClassVar[str] = "payment.allowed_payees"
    merchant_ids: frozenset[str]


@dataclass(frozen=True, slots=True)
class ExecutionDate:
    """Payments only from ``not_before`` to ``not_after``, both instants inclusive (UTC)."""

    type: ClassVar[str] = "payment.execution_date"
    not_before: datetime | None = None
    not_after: datetime | None = None


@dataclass(frozen=True, slots=True)
class PeriodBudget:
    """Payments within one calendar ``period`` add up to at most ``max_amount``."""

    type: ClassVar[str] = "paywarden.period_budget"
    period: Period
    currency: str
    max_amount: int


@dataclass(frozen=True, slots=True)
class MerchantCategories:
    """The merchant's category must be one of these (a payment without one is refused)."""

    type: ClassVar[str] = "paywarden.merchant_categories"
    categories: frozenset[str]


@dataclass(frozen=True, slots=True)
class CountCap:
    """At most ``max_count`` payments, over the mandate's life or per calendar ``period``."""

    type: ClassVar[str] = "paywarden.count_cap"
    max_count: int
    period: Period | None = None


@dataclass(frozen=True, slots=True)
class ConfirmationThreshold:
    """A payment above ``above_amount`` needs the user's confirmation (not a denial)."""

    type: ClassVar[str] = "paywarden.confirmation_threshold"
    currency: str
    above_amount: int


Constraint = (
    AmountRange
    | Budget
    | AgentRecurrence
    | AllowedPayees
    | ExecutionDate
    | PeriodBudget
    | MerchantCategories
    | CountCap
    | ConfirmationThreshold
)


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason a constraint list was refused: a wire error code and the JSON path."""

    code: str  # invalid_constraint or unknown_constraint
    param: str  # $.constraints[2].max
    message: str


class ConstraintError(InvalidRequest):
    """A refused constraint list; ``problems`` holds every problem, the first sets the code."""

    def __init__(self, problems: list[Problem]) -> None:
        first = problems[0]
        listing = "; ".join(f"{problem.param}: {problem.message}" for problem in problems)
        super().__init__(listing, code=first.code, param=first.param)
        self.problems = tuple(problems)


# Bounds on what a client may send: a mandate is read on every payment.
CONSTRAINTS_MAX: Final = 64
ALLOWED_ITEMS_MAX: Final = 1000
COUNT_MAX: Final = 1_000_000
_MERCHANT_ID_RE: Final = re.compile(r"[\x21-\x7e]{1,128}")  # printable ASCII, no spaces
_CATEGORY_RE: Final = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
_INSTANT_RE: Final = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})"
)
_AP2_UNSUPPORTED: Final = frozenset(
    {"payment.reference", "payment.allowed_payment_instruments", "payment.allowed_pisps"}
)
_SPENDING_LIMITS: Final = (AmountRange, Budget, PeriodBudget)


class _Bad(Exception):
    """A field's value is refused; ``suffix`` narrows the path (``[3]`` for a list item)."""

    def __init__(self, message: str, field: str | None = None, suffix: str = "") -> None:
        super().__init__(message)
        self.message, self.field, self.suffix = message, field, suffix


def _amount(value: object, *, allow_zero: bool = False) -> int:
    try:
        return parse_amount(value, allow_zero=allow_zero)
    except InvalidRequest as error:
        raise _Bad(error.message) from None


def _amount_or_zero(value: object) -> int:
    return _amount(value, allow_zero=True)


def _currency(value: object) -> str:
    try:
        return parse_currency(value)
    except InvalidRequest as error:
        raise _Bad(error.message) from None


def _count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= COUNT_MAX:
        raise _Bad(f"must be an integer from 1 to {COUNT_MAX}")
    return value


def _period(value: object) -> Period:
    if isinstance(value, str) and value.lower() in set(Period):
        return Period(value.lower())
    raise _Bad(f"must be one of {', '.join(Period)}")


def _frequency(value: object) -> Frequency:
    if isinstance(value, str) and value.upper() in set(Frequency):
        return Frequency(value.upper())
    raise _Bad(f"must be one of {', '.join(Frequency)}")


def _instant(value: object) -> datetime:
    if isinstance(value, str) and _INSTANT_RE.fullmatch(value.upper()):
        try:
            return datetime.fromisoformat(value.upper()).astimezone(UTC)
        except ValueError:
            pass
    raise _Bad("must be an RFC 3339 instant with an offset, such as 2026-04-30T23:59:59Z")


def _listing(value: object, item: Callable[[object], str]) -> frozenset[str]:
    if not isinstance(value, list | tuple) or not 1 <= len(value) <= ALLOWED_ITEMS_MAX:
        raise _Bad(f"must be an array of 1 to {ALLOWED_ITEMS_MAX} entries")
    found: set[str] = set()
    for index, entry in enumerate(value):
        try:
            found.add(item(entry))
        except _Bad as error:
            raise _Bad(error.message, suffix=f"[{index}]") from None
    return frozenset(found)


def _merchant_id(entry: object) -> str:
    # AP2 lists Merchant objects ({"id", "name", "website"}); only the id identifies a payee.
    if isinstance(entry, Mapping) and set(entry) <= {"id", "name", "website"}:
        entry = entry.get("id")
    if isinstance(entry, str) and _MERCHANT_ID_RE.fullmatch(entry):
        return entry
    raise _Bad("must be a merchant id or an AP2 Merchant object with an id")


def _category(entry: object) -> str:
    if isinstance(entry, str) and _CATEGORY_RE.fullmatch(entry):
        return entry
    raise _Bad("must be a lowercase category name (a-z, 0-9, '_', '.', '-'; at most 64)")


def _payees(value: object) -> frozenset[str]:
    return _listing(value, _merchant_id)


def _categories(value: object) -> frozenset[str]:
    return _listing(value, _category)


def _cross_check(kind: str, values: dict[str, Any]) -> None:
    if {"min_amount", "max_amount"} <= set(values) and values["min_amount"] > values["max_amount"]:
        raise _Bad("must not exceed max", field="min")
    if kind == ExecutionDate.type and not values:
        raise _Bad("needs not_before, not_after or both")
    if {"not_before", "not_after"} <= set(values) and values["not_before"] > values["not_after"]:
        raise _Bad("must not be after not_after", field="not_before")


_Reader = Callable[[object], object]
_Field = tuple[str, str, _Reader, bool]  # wire name, attribute, reader, required
_CURRENCY: Final[_Field] = ("currency", "currency", _currency, True)
_MAX: Final[_Field] = ("max", "max_amount", _amount, True)
# The whole grammar: each type's class and fields. to_json writes the same fields back.
_GRAMMAR: Final[dict[str, tuple[Callable[..., Constraint], tuple[_Field, ...]]]] = {
    AmountRange.type: (
        AmountRange,
        (_CURRENCY, _MAX, ("min", "min_amount", _amount_or_zero, False)),
    ),
    Budget.type: (Budget, (_CURRENCY, _MAX)),
    AgentRecurrence.type: (
        AgentRecurrence,
        (
            ("frequency", "frequency", _frequency, True),
            ("max_occurrences", "max_occurrences", _count, False),
        ),
    ),
    AllowedPayees.type: (AllowedPayees, (("allowed", "merchant_ids", _payees, True),)),
    ExecutionDate.type: (
        ExecutionDate,
        (
            ("not_before", "not_before", _instant, False),
            ("not_after", "not_after", _instant, False),
        ),
    ),
    PeriodBudget.type: (PeriodBudget, (("period", "period", _period, True), _CURRENCY, _MAX)),
    MerchantCategories.type: (MerchantCategories, (("allowed", "categories", _categories, True),)),
    CountCap.type: (
        CountCap,
        (("max", "max_count", _count, True), ("period", "period", _period, False)),
    ),
    ConfirmationThreshold.type: (
        ConfirmationThreshold,
        (_CURRENCY, ("above", "above_amount", _amount_or_zero, True)),
    ),
}


def to_json(constraint: Constraint) -> dict[str, object]:
    """The stored (and API) form; :func:`parse_constraints` reads it back unchanged."""
    body: dict[str, object] = {"type": constraint.type}
    for wire, attribute, _, _ in _GRAMMAR[constraint.type][1]:
        value = getattr(constraint, attribute)
        if isinstance(value, frozenset):
            value = sorted(value)
        elif isinstance(value, datetime):
            value = value.astimezone(UTC).isoformat().replace("+00:00", "Z")
        elif isinstance(value, Enum):
            value = value.value
        if value is not None:
            body[wire] = value
    return body


def parse_constraints(
    raw: object, *, currency: str, param: str = "$.constraints"
) -> tuple[Constraint, ...]:
    """Parse a mandate's constraint list (JSON-like) for a mandate in ``currency``.

    Raises :class:`ConstraintError` listing every problem; never returns a partial list.
    """
    currency = parse_currency(currency, "$.currency")
    if not isinstance(raw, list | tuple) or len(raw) > CONSTRAINTS_MAX:
        message = f"must be an array of at most {CONSTRAINTS_MAX} constraint objects"
        raise ConstraintError([Problem("invalid_constraint", param, message)])
    problems: list[Problem] = []
    parsed = [_parse_one(item, f"{param}[{i}]", currency, problems) for i, item in enumerate(raw)]
    constraints = tuple(c for c in parsed if c is not None)
    if not problems and not any(isinstance(c, _SPENDING_LIMITS) for c in constraints):
        message = "a mandate needs a spending limit: payment.amount_range, payment.budget or "
        problems.append(Problem("invalid_constraint", param, message + "paywarden.period_budget"))
    if problems:
        raise ConstraintError(problems)
    return constraints


def _parse_one(
    item: object, path: str, currency: str, problems: list[Problem]
) -> Constraint | None:
    def refuse(field: str | None, message: str, code: str = "invalid_constraint") -> None:
        problems.append(Problem(code, path + (_member(field) if field else ""), message))

    kind = item.get("type") if isinstance(item, Mapping) else None
    if not isinstance(item, Mapping) or not isinstance(kind, str):
        refuse("type" if isinstance(item, Mapping) else None, "must be an object with a type")
        return None
    if kind not in _GRAMMAR:
        why = "is not supported by paywarden" if kind in _AP2_UNSUPPORTED else "is unknown"
        refuse("type", f"constraint type {kind!r} {why}", "unknown_constraint")
        return None
    build, fields = _GRAMMAR[kind]
    values: dict[str, Any] = {}
    before = len(problems)
    known = {wire for wire, *_ in fields} | {"type"}
    for name in sorted(str(key) for key in item if key not in known):
        refuse(name, f"is not a field of {kind}")
    for name, attribute, read, required in fields:
        if name not in item:
            if required:
                refuse(name, "is required")
            continue
        try:
            values[attribute] = read(item[name])
        except _Bad as error:
            problems.append(
                Problem("invalid_constraint", path + _member(name) + error.suffix, error.message)
            )
    if values.get("currency", currency) != currency:
        refuse("currency", f"is {values['currency']}, but the mandate is in {currency}")
    if len(problems) > before:
        return None
    try:
        _cross_check(kind, values)
        return build(**values)
    except _Bad as error:
        refuse(error.field, error.message)
        return None


def _member(name: str) -> str:
    """``.max`` for a plain name; ``["odd key"]`` for anything else, so the path stays valid."""
    return f".{name}" if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) else f"[{json.dumps(name)}]"
