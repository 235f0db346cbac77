"""Time as a parameter: domain code takes ``now``; services take a :class:`Clock`.

The system clock lives in ``paywarden.adapters.clock``; tests use :class:`FakeClock`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = ["Clock", "FakeClock", "ensure_utc", "rfc3339"]


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware, in UTC."""
        ...


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: datetime) -> None:
        self._now = ensure_utc(start)

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> None:
        self._now = self._now + delta

    def set(self, instant: datetime) -> None:
        self._now = ensure_utc(instant)


def ensure_utc(instant: datetime) -> datetime:
    """Refuse naive datetimes, and express aware ones in UTC."""
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError("naive datetime: paywarden handles only timezone-aware instants")
    return instant.astimezone(UTC)


def rfc3339(instant: datetime) -> str:
    """``2026-11-29T02:04:57.123Z`` (milliseconds, always UTC)."""
    return ensure_utc(instant).isoformat(timespec="milliseconds")[:-6] + "Z"  # "+00:00"
