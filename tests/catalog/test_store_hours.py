"""Weekly opening hours: checked on input, and 'open at?' inclusive at opening, exclusive at
closing, with midnight written as 24:00."""

from __future__ import annotations

from datetime import time
from typing import Any

import pytest

from paywarden.commerce.stores import WEEKDAYS, is_open, parse_hours
from paywarden.kernel.errors import InvalidRequest

HOURS = parse_hours({"mon": [["07:00", "12:00"], ["13:00", "19:00"]], "sat": [["08:00", "24:00"]]})


def test_every_weekday_is_present_and_days_left_out_are_closed() -> None:
    assert list(HOURS) == list(WEEKDAYS)
    assert HOURS["sun"] == []
    assert not any(is_open(HOURS, 6, time(hour, 0)) for hour in range(24))


@pytest.mark.parametrize(
    ("weekday", "at", "expected"),
    [
        (0, time(7, 0), True),  # opening is inclusive
        (0, time(6, 59), False),
        (0, time(12, 0), False),  # closing is exclusive: the lunch break
        (0, time(18, 59), True),
        (0, time(19, 0), False),
        (5, time(23, 59), True),  # open until midnight
        (1, time(9, 0), False),
    ],
)
def test_open_at(weekday: int, at: time, expected: bool) -> None:
    assert is_open(HOURS, weekday, at) is expected


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        ({"monday": []}, "$.hours.monday"),
        ({"mon": [["19:00", "07:00"]]}, "$.hours.mon[0]"),
        ({"mon": [["07:00", "12:00"], ["11:00", "13:00"]]}, "$.hours.mon[1]"),
        ({"mon": [["7:00", "12:00"]]}, "$.hours.mon[0]"),
        ({"mon": [["24:00", "24:00"]]}, "$.hours.mon[0]"),
        ({"mon": "07:00-19:00"}, "$.hours.mon"),
        ([], "$.hours"),
    ],
)
def test_bad_hours_are_refused_naming_the_interval(raw: Any, param: str) -> None:
    with pytest.raises(InvalidRequest) as error:
        parse_hours(raw)
    assert error.value.param == param
