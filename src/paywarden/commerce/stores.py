"""A merchant's shop locations: weekly opening hours, checked and asked "open at?".

Hours are a JSON object from weekday (``mon`` … ``sun``) to a list of ``["HH:MM", "HH:MM"]``
intervals in the store's local time, opening inclusive and closing exclusive, sorted and not
overlapping; ``"24:00"`` closes at midnight. A day left out is closed. Converting an instant
to local time needs the time zone database, so callers pass the local weekday and time.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import time
from typing import Any

from paywarden.kernel.errors import InvalidRequest

__all__ = ["WEEKDAYS", "Hours", "is_open", "parse_hours"]

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # index = date.weekday()
INTERVALS_PER_DAY_MAX = 6
_CLOCK_RE = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")

Hours = dict[str, list[list[str]]]


def parse_hours(raw: Any, param: str = "$.hours") -> Hours:
    """Check weekly hours; return them with every weekday present (closed days empty)."""
    if not isinstance(raw, Mapping):
        raise InvalidRequest(
            "hours is an object from weekday (mon … sun) to intervals", param=param
        )
    for day in raw:
        if day not in WEEKDAYS:
            raise InvalidRequest(f"{day!r} is not one of {list(WEEKDAYS)}", param=f"{param}.{day}")
    return {day: _day(raw.get(day) or [], f"{param}.{day}") for day in WEEKDAYS}


def _day(raw: Any, param: str) -> list[list[str]]:
    if not isinstance(raw, list) or len(raw) > INTERVALS_PER_DAY_MAX:
        raise InvalidRequest(
            f"a day is a list of at most {INTERVALS_PER_DAY_MAX} intervals", param=param
        )
    intervals: list[list[str]] = []
    for index, interval in enumerate(raw):
        at = f"{param}[{index}]"
        if not isinstance(interval, list) or len(interval) != 2:
            raise InvalidRequest('an interval is ["HH:MM", "HH:MM"]', param=at)
        opens, closes = interval
        if not all(isinstance(t, str) and _CLOCK_RE.match(t) for t in (opens, closes)):
            raise InvalidRequest('times are "HH:MM", 00:00 to 24:00', param=at)
        if opens >= closes or opens == "24:00":
            raise InvalidRequest("an interval opens before it closes", param=at)
        if intervals and opens < intervals[-1][1]:
            raise InvalidRequest("intervals are sorted and do not overlap", param=at)
        intervals.append([opens, closes])
    return intervals


def is_open(hours: Mapping[str, list[list[str]]], weekday: int, local: time) -> bool:
    """Whether the store is open at local wall-clock ``local`` on ``weekday`` (0 = Monday)."""
    now = f"{local.hour:02d}:{local.minute:02d}"
    return any(opens <= now < closes for opens, closes in hours.get(WEEKDAYS[weekday], []))
