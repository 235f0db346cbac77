"""Runs, scenarios and their statistics; a run either verifies or carries no figure."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Outcome",
    "Run",
    "ScenarioResult",
    "VerificationFailed",
    "check",
    "percentile",
    "record",
]


class VerificationFailed(Exception):
    """What a run did is not what it claims: the run reports no figure."""


def check(condition: bool, message: str) -> None:
    """Raise :class:`VerificationFailed` with ``message`` unless ``condition``."""
    if not condition:
        raise VerificationFailed(message)


@dataclass
class Run:
    """One measured run: ``count`` operations in ``elapsed_s``, with per-operation latency."""

    count: int
    elapsed_s: float
    latencies_s: list[float]
    checks: list[str]  # what verification confirmed, in words
    kinds: dict[str, int] = field(default_factory=dict)  # a mixed run: operations per kind

    @property
    def rate(self) -> float:
        return self.count / self.elapsed_s if self.elapsed_s > 0 else 0.0


@dataclass
class Outcome:
    """A run's result: a verified :class:`Run`, or the reason it failed."""

    run: Run | None
    failure: str | None = None


@dataclass
class ScenarioResult:
    key: str  # stable identifier, e.g. "storage.sqlite.commit_each"
    group: str  # storage, crypto, http, paywarden
    title: str
    unit: str  # what the rate counts per second: payments, verifies, requests
    latency_of: str  # what one latency sample times
    limit: str | None = None  # key of the matching limit, for paywarden scenarios
    runs: list[Run] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    limit_per_s: float | None = None  # the limit in this scenario's unit
    ratio: float | None = None
    notes: str = ""
    skipped: str | None = None
    wall_s: float = 0.0  # all runs, setup and verification included: where a run's time goes

    @property
    def verified(self) -> bool:
        return bool(self.runs) and not self.failures and self.skipped is None

    def rates(self) -> list[float]:
        return [run.rate for run in self.runs]

    @property
    def median(self) -> float | None:
        return statistics.median(self.rates()) if self.verified else None

    def to_json(self) -> dict[str, Any]:
        latencies = [s for run in self.runs for s in run.latencies_s] if self.verified else []
        rates = self.rates() if self.verified else []
        return {
            "key": self.key,
            "group": self.group,
            "title": self.title,
            "unit": self.unit,
            "latency_of": self.latency_of,
            "limit": self.limit,
            "limit_per_s": self.limit_per_s,
            "verified": self.verified,
            "skipped": self.skipped,
            "failures": self.failures,
            "median_per_s": self.median,
            "min_per_s": min(rates) if rates else None,
            "max_per_s": max(rates) if rates else None,
            "p50_ms": percentile(latencies, 50) * 1000 if latencies else None,
            "p99_ms": percentile(latencies, 99) * 1000 if latencies else None,
            "ratio": self.ratio,
            "notes": self.notes,
            "wall_s": round(self.wall_s, 2),
            "kinds": self.kinds() if self.verified else {},
            "runs": [
                {
                    "count": run.count,
                    "elapsed_s": run.elapsed_s,
                    "per_s": run.rate if self.verified else None,
                    "checks": run.checks,
                    "kinds": run.kinds,
                }
                for run in self.runs
            ],
        }

    def kinds(self) -> dict[str, dict[str, float]]:
        """A mixed scenario's kinds: the median rate of each, and its share of all operations."""
        names = list(dict.fromkeys(name for run in self.runs for name in run.kinds))
        total = sum(sum(run.kinds.values()) for run in self.runs)
        return {
            name: {
                "median_per_s": statistics.median(
                    run.kinds.get(name, 0) / run.elapsed_s for run in self.runs
                ),
                "share": sum(run.kinds.get(name, 0) for run in self.runs) / total,
            }
            for name in names
        }


def percentile(values: Sequence[float], pct: float) -> float:
    """The nearest-rank percentile of ``values`` (not empty)."""
    ordered = sorted(values)
    rank = max(1, round(pct / 100 * len(ordered) + 0.4999))
    return ordered[min(rank, len(ordered)) - 1]


def record(result: ScenarioResult, measure: Callable[[], Outcome]) -> None:
    """Run ``measure`` once into ``result``; a failure stops the scenario's later runs."""
    if result.failures or result.skipped:
        return
    started = time.perf_counter()
    try:
        outcome = measure()
    except VerificationFailed as error:
        outcome = Outcome(None, f"verification failed: {error}")
    except Exception as error:  # a crash is reported as this scenario's failure
        outcome = Outcome(None, f"{type(error).__name__}: {error}")
    result.wall_s += time.perf_counter() - started
    if outcome.run is None:
        result.failures.append(outcome.failure or "no result")
    else:
        result.runs.append(outcome.run)
