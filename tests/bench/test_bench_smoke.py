"""A tiny run of ``paywarden bench`` (the smoke profile): the runner works end to end, its
JSON report has the promised structure, and every figure comes from a verified run.

No test asserts a time or a rate: the figures of a smoke run mean nothing.
"""

from __future__ import annotations

import json
import xml.dom.minidom
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from conftest import PG_URL, require_pg
from paywarden.bench.model import Outcome, Run, ScenarioResult, VerificationFailed, check, record
from paywarden.bench.runner import table
from paywarden.cli.main import app

SCENARIO_FIELDS = {
    "key",
    "group",
    "title",
    "unit",
    "latency_of",
    "limit",
    "limit_per_s",
    "verified",
    "skipped",
    "failures",
    "median_per_s",
    "min_per_s",
    "max_per_s",
    "p50_ms",
    "p99_ms",
    "ratio",
    "notes",
    "runs",
}


def _bench(tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.chdir(tmp_path)  # a relative --out, as the default is: the servers run elsewhere
    out = tmp_path / "results"
    result = CliRunner().invoke(
        app,
        ["bench", "--smoke", "--backend", backend, "--out", "results", "--pg-url", PG_URL],
    )
    assert result.exit_code == 0, result.output
    reports = list(out.glob("*.json"))
    assert len(reports) == 1, reports
    assert len(list(out.glob("*.svg"))) == 1
    xml.dom.minidom.parse(str(next(out.glob("*.svg"))))  # well-formed
    assert not list(out.glob(".scratch-*")), "the scratch folder was left behind"
    report: dict[str, Any] = json.loads(reports[0].read_text())
    assert f"paywarden.{backend}.in_process" in result.output
    return report


def _check_report(report: dict[str, Any], backend: str) -> None:
    assert report["schema"] == "paywarden.bench/1"
    assert report["verified"] is True
    assert report["config"]["profile"] == "smoke"
    assert report["config"]["backends"] == [backend]
    assert report["machine"]["cpu_model"]
    assert report["command"].startswith("paywarden bench")
    scenarios = {s["key"]: s for s in report["scenarios"]}
    expected = {
        f"storage.{backend}.commit_each",
        f"storage.{backend}.batch",
        "crypto.ed25519_verify",
        "crypto.ed25519_sign",
        "crypto.es256_verify",
        "crypto.es256_sign",
        "crypto.rfc9421_verify",
        "http.bare",
        "http.fastapi",
        f"paywarden.{backend}.in_process",
        f"paywarden.{backend}.http",
    }
    assert set(scenarios) == expected
    for key, scenario in scenarios.items():
        assert set(scenario) == SCENARIO_FIELDS, key
        assert scenario["verified"] is True, (key, scenario["failures"])
        assert scenario["failures"] == []
        assert len(scenario["runs"]) == 1
        run = scenario["runs"][0]
        assert run["count"] > 0
        assert run["checks"], f"{key}: verification did not run"
        assert scenario["median_per_s"] > 0
        assert scenario["min_per_s"] <= scenario["median_per_s"] <= scenario["max_per_s"]
        assert 0 < scenario["p50_ms"] <= scenario["p99_ms"]
    for key in (f"paywarden.{backend}.in_process", f"paywarden.{backend}.http"):
        scenario = scenarios[key]
        assert scenario["ratio"] is not None and scenario["ratio"] > 0
        assert scenario["limit_per_s"] > 0
        checks = " | ".join(scenario["runs"][0]["checks"])
        for promised in ("holds captured", "sum to zero", "sum of postings", "idempotency"):
            assert promised in checks, (key, checks)
    assert scenarios[f"paywarden.{backend}.in_process"]["limit"] == (
        f"storage.{backend}.commit_each"
    )
    assert scenarios["crypto.rfc9421_verify"]["limit"] == "crypto.ed25519_verify"


def test_smoke_run_sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _check_report(_bench(tmp_path, "sqlite", monkeypatch), "sqlite")


@pytest.mark.postgres
def test_smoke_run_postgres(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require_pg()
    _check_report(_bench(tmp_path, "postgres", monkeypatch), "postgres")


def test_a_run_that_fails_verification_reports_no_figure() -> None:
    result = ScenarioResult("paywarden.x", "paywarden", "x", "payments", "payment")
    record(result, lambda: Outcome(Run(10, 1.0, [0.1] * 10, ["10 holds captured"])))

    def lying() -> Outcome:
        check(False, "3 holds captured, 10 payments made")
        raise AssertionError("unreachable")

    record(result, lying)
    data = result.to_json()
    assert data["verified"] is False
    assert data["failures"] == ["verification failed: 3 holds captured, 10 payments made"]
    for figure in ("median_per_s", "min_per_s", "max_per_s", "p50_ms", "p99_ms"):
        assert data[figure] is None
    assert all(run["per_s"] is None for run in data["runs"])
    columns = table([result]).columns
    assert "FAILED" in str(columns[1]._cells)
    assert all(column._cells == [""] for column in columns[2:])  # no rate, latency, ratio


def test_a_crash_is_a_failure_not_a_figure() -> None:
    result = ScenarioResult("http.bare", "http", "x", "requests", "request")

    def crash() -> Outcome:
        raise VerificationFailed("the server did not start")

    record(result, crash)
    record(result, lambda: Outcome(Run(5, 1.0, [0.1] * 5, ["ok"])))  # not run after a failure
    assert result.runs == [] and result.median is None and not result.verified
