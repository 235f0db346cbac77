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
    "wall_s",
    "kinds",
    "runs",
}
AGENT_CHECKS = (
    "payments succeeded",
    "idempotency records",
    "nonces remembered",
    "audit chain verifies",
    "receipts verify",
    "sum to zero",
    "sum of postings",
    "mandate usage equals the payments",
)


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
    markdown = next(out.glob("*.md")).read_text()
    assert f"| paywarden.{backend}.agent_http |" in markdown
    assert "target p99 <= 25 ms" in markdown
    svg = next(out.glob("*.svg"))
    xml.dom.minidom.parse(str(svg))  # well-formed
    assert f"paywarden.{backend}.agent_http_half_peak" in svg.read_text()
    assert "payments, p99 " in svg.read_text()  # the half-peak bar names its tail latency
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
        f"paywarden.{backend}.agent_in_process",
        f"paywarden.{backend}.agent_http",
        f"paywarden.{backend}.agent_http_half_peak",
        f"paywarden.{backend}.mixed",
    }
    if backend == "postgres":  # skipped, not absent, without the pgbench binary
        expected.add("storage.postgres.pgbench_tpcb")
    assert set(scenarios) == expected
    scenarios = {k: s for k, s in scenarios.items() if s["skipped"] is None}
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
    _check_agent_scenarios(scenarios, backend)


def _check_agent_scenarios(scenarios: dict[str, Any], backend: str) -> None:
    """The agent payment's scenarios ran their verification, and the mixed one its kinds."""
    for name in ("agent_in_process", "agent_http", "agent_http_half_peak", "mixed"):
        checks = " | ".join(scenarios[f"paywarden.{backend}.{name}"]["runs"][0]["checks"])
        for promised in AGENT_CHECKS:
            assert promised in checks, (name, promised, checks)
    for name in ("agent_in_process", "agent_http", "mixed"):
        scenario = scenarios[f"paywarden.{backend}.{name}"]
        assert scenario["ratio"] is not None and scenario["ratio"] > 0, name
    assert "(lowest)" in scenarios[f"paywarden.{backend}.agent_http"]["limit"]
    half = scenarios[f"paywarden.{backend}.agent_http_half_peak"]
    assert half["ratio"] is None and "p99" in half["notes"]
    mixed = scenarios[f"paywarden.{backend}.mixed"]
    assert set(mixed["kinds"]) == {"payment", "search", "mandate_read", "checkout", "refund"}
    assert sum(kind["share"] for kind in mixed["kinds"].values()) == pytest.approx(1)
    run = mixed["runs"][0]  # a short smoke run may not reach every kind: counts, not rates
    assert sum(run["kinds"].values()) == run["count"]
    assert run["kinds"]["payment"] > 0
    assert "refunds of 1 cent stored" in " | ".join(run["checks"])
    for key, scenario in scenarios.items():
        if key != mixed["key"]:
            assert scenario["kinds"] == {}, key
    pgbench = scenarios.get("storage.postgres.pgbench_tpcb")
    if pgbench is not None:
        assert "one per transaction" in " | ".join(pgbench["runs"][0]["checks"])


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


def test_scale_seeds_valid_payments_and_verifies(tmp_path: Path) -> None:
    """The scale scenario's bulk seeding, tiny: the seeded payments, with their holds,
    transfers and postings, leave books and usage that verify, and a measured run counts them."""
    from contextlib import nullcontext  # noqa: PLC0415

    from paywarden.bench import scale  # noqa: PLC0415

    assert [scale.label(n) for n in (10_000, 1_000_000, 1500)] == ["10k", "1m", "1500"]
    scaled = scale.Scaled(lambda: nullcontext(f"sqlite:///{tmp_path / 'scale.db'}"), 2)
    try:
        first = scaled.measure(40, 3)
        second = scaled.measure(40, 2)  # the same database: seeded once
    finally:
        scaled.close()
    for outcome in (first, second):
        assert outcome.run is not None, outcome.failure
        assert outcome.run.count > 0
    assert second.run is not None
    checks = " | ".join(second.run.checks)
    assert "47 payments succeeded (40 of them seeded)" in checks  # 2 templates + 3 + 2
    assert "mandate usage equals the payments" in checks and "sum of postings" in checks
