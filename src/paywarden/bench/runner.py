"""The benchmark runner behind ``paywarden bench``: scenarios, rounds, ratios, reports.

Runs are interleaved: round 1 runs every scenario once, then round 2, and so on, so that a
burst of noise from a neighbour on a shared machine spreads over all scenarios instead of
spoiling one. The reported rate is the median over the rounds, with the min-max spread;
p50/p99 pool the latency samples of all rounds.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from rich.console import Console
from rich.table import Table

import paywarden
from paywarden.bench import agents, crypto, ledger, loopback, mixed, pgbench, scale, storage
from paywarden.bench.databases import pg_reachable, scratch_postgres, scratch_sqlite
from paywarden.bench.model import Outcome, ScenarioResult, check, record
from paywarden.bench.pgbench import Pgbench, find_pgbench
from paywarden.bench.plot import write_svg

__all__ = ["PROFILES", "Config", "run", "run_cli"]

BACKENDS = ("sqlite", "postgres")
TARGET_P99_MS = 25  # issue 8: p99 at half the peak rate
SCALE_TOLERANCE = 0.2  # issue 8: the cost per payment at 1M stored within 20 % of 10k


@dataclass(frozen=True)
class Config:
    """How much each scenario does per run; see :data:`PROFILES`."""

    profile: str
    runs: int
    storage_payments: int  # commit_each: one commit per payment
    batched_payments: int  # batch: `batch_size` payments per commit
    batch_size: int
    crypto_s: float  # per operation and run
    http_s: float  # per HTTP limit run
    concurrency: int  # HTTP clients, for the limits and for paywarden over HTTP
    ledger_payments: int  # paywarden in-process, per run
    ledger_http_s: float  # paywarden over HTTP, per run
    agent_payments: int  # agent payments in-process, per run
    agent_http_s: float  # agent payments over HTTP at the peak, per run
    paced_s: float  # the one open-loop run at half the peak
    mixed_s: float  # the mixed load, per run
    pgbench_s: float  # pgbench TPC-B, per run (whole seconds, at least 1)
    pgbench_scale: int  # pgbench -i -s
    scale_sizes: tuple[int, ...] = ()  # stored payments to seed for the scale scenario
    scale_payments: int = 0  # agent payments measured at each size
    backends: tuple[str, ...] = BACKENDS
    pg_url: str = ""


SCALE_SIZES = (10_000, 1_000_000)
PROFILES: dict[str, Config] = {
    "full": Config(
        "full",
        5,
        1000,
        10_000,
        100,
        2.0,
        10.0,
        8,
        500,
        15.0,
        500,
        15.0,
        15.0,
        15.0,
        10.0,
        10,
        SCALE_SIZES,
        300,
    ),
    "quick": Config("quick", 3, 300, 2000, 100, 1.0, 2.0, 8, 80, 3.0, 60, 2.0, 3.0, 2.0, 2.0, 10),
    # For the test suite: every scenario, a few operations each; the figures mean nothing.
    "smoke": Config("smoke", 1, 10, 200, 100, 0.05, 0.3, 2, 4, 0.3, 4, 0.3, 0.5, 0.5, 1.0, 1),
}


@dataclass
class _Scenario:
    result: ScenarioResult
    measure: Callable[[], Outcome]
    limits: list[tuple[str, float]] = field(default_factory=list)  # (key, divisor)
    once: bool = False  # run once, after the rounds (it needs their figures)


def _storage(config: Config, backend: str, scratch: Path) -> list[_Scenario]:
    out: list[_Scenario] = []
    for mode, payments, batch in (
        ("commit_each", config.storage_payments, 1),
        ("batch", config.batched_payments, config.batch_size),
    ):
        title = f"raw SQL, {storage.STATEMENTS_PER_PAYMENT} writes/payment, " + (
            "1 commit per payment" if batch == 1 else f"{batch} payments per commit"
        )
        result = ScenarioResult(
            f"storage.{backend}.{mode}",
            "storage",
            f"{backend}: {title}",
            "payments",
            "commit",
        )

        def measure(payments: int = payments, batch: int = batch) -> Outcome:
            if backend == "sqlite":
                with scratch_sqlite(scratch, "raw") as path:
                    return storage.raw_sqlite(path, payments, batch)
            with scratch_postgres(config.pg_url) as url:
                return storage.raw_postgres(url, payments, batch)

        out.append(_Scenario(result, measure))
    return out


def _crypto(config: Config) -> list[_Scenario]:
    titles = {
        "ed25519_verify": "Ed25519 verify (PyNaCl)",
        "ed25519_sign": "Ed25519 sign (PyNaCl)",
        "es256_verify": "ES256 verify (cryptography)",
        "es256_sign": "ES256 sign (cryptography)",
        "rfc9421_verify": "RFC 9421 verify_request (Ed25519, full parse)",
    }
    out = []
    for name in crypto.OPERATIONS:
        unit = "signs" if name.endswith("_sign") else "verifies"
        result = ScenarioResult(f"crypto.{name}", "crypto", titles[name], unit, "operation")
        limits = [("crypto.ed25519_verify", 1.0)] if name == "rfc9421_verify" else []

        def measure(name: str = name) -> Outcome:
            return crypto.measure(name, config.crypto_s)

        out.append(_Scenario(result, measure, limits))
    return out


def _http(config: Config, scratch: Path) -> list[_Scenario]:
    out = []
    for app, title in (("bare_app", "bare ASGI"), ("fastapi_app", "FastAPI")):
        key = f"http.{app.removesuffix('_app')}"
        result = ScenarioResult(
            key,
            "http",
            f"uvicorn {title} POST, {config.concurrency} clients",
            "requests",
            "request",
        )

        def measure(app: str = app) -> Outcome:
            return loopback.echo_limit(
                app,
                concurrency=config.concurrency,
                duration_s=config.http_s,
                scratch=scratch,
                log_path=scratch / f"{app}.log",
            )

        limits = [("http.bare", 1.0)] if app == "fastapi_app" else []
        out.append(_Scenario(result, measure, limits))
    return out


class _Served(Protocol):
    def __call__(
        self,
        database_url: str,
        /,
        *,
        concurrency: int,
        duration_s: float,
        scratch: Path,
        log_path: Path,
    ) -> Outcome: ...


def _database(config: Config, backend: str, scratch: Path) -> AbstractContextManager[str]:
    if backend == "sqlite":
        return _sqlite_url(scratch)
    return scratch_postgres(config.pg_url)


def _in_process(
    config: Config, backend: str, scratch: Path, scenario: Callable[[str, int], Outcome], count: int
) -> Callable[[], Outcome]:
    """``scenario(url, count)`` on a fresh database of ``backend``."""

    def measure() -> Outcome:
        with _database(config, backend, scratch) as url:
            return scenario(url, count)

    return measure


def _served(
    config: Config, backend: str, scratch: Path, scenario: _Served, duration_s: float, name: str
) -> Callable[[], Outcome]:
    """An HTTP scenario on a fresh database of ``backend``, its server's log in the scratch."""

    def measure() -> Outcome:
        with _database(config, backend, scratch) as url:
            return scenario(
                url,
                concurrency=config.concurrency,
                duration_s=duration_s,
                scratch=scratch,
                log_path=scratch / f"serve-{name}-{backend}.log",
            )

    return measure


def _paywarden(config: Config, backend: str, scratch: Path) -> list[_Scenario]:
    in_process = _in_process(config, backend, scratch, ledger.in_process, config.ledger_payments)
    over_http = _served(config, backend, scratch, ledger.over_http, config.ledger_http_s, "hold")
    storage_limit = f"storage.{backend}.commit_each"
    return [
        _Scenario(
            ScenarioResult(
                f"paywarden.{backend}.in_process",
                "paywarden",
                f"{backend}: hold + capture via services (Store.run), 1 thread",
                "payments",
                "payment",
                notes="2 transactions a payment, as the API: claim, effect and answer in one",
            ),
            in_process,
            [(storage_limit, 1.0)],
        ),
        _Scenario(
            ScenarioResult(
                f"paywarden.{backend}.http",
                "paywarden",
                f"{backend}: POST /v1/holds + capture, paywarden serve, "
                f"{config.concurrency} clients",
                "payments",
                "payment (2 requests)",
                notes="limit: the lower of the storage limit and FastAPI requests/s / 2",
            ),
            over_http,
            [(storage_limit, 1.0), ("http.fastapi", 2.0)],
        ),
    ]


def _agent(config: Config, backend: str, scratch: Path) -> list[_Scenario]:
    in_process = _in_process(config, backend, scratch, agents.in_process, config.agent_payments)
    over_http = _served(config, backend, scratch, agents.over_http, config.agent_http_s, "agent")
    load = _served(config, backend, scratch, mixed.mixed, config.mixed_s, "mixed")
    peak = ScenarioResult(
        f"paywarden.{backend}.agent_http",
        "paywarden",
        f"{backend}: POST /v1/payments (RFC 9421 signed), paywarden serve, "
        f"{config.concurrency} clients",
        "payments",
        "payment (1 request)",
        notes="limit: the lowest of the storage limit, FastAPI requests/s and RFC 9421 verifies/s",
    )

    def half_peak() -> Outcome:
        check(peak.median is not None, "the peak (agent_http) has no verified figure")
        assert peak.median is not None
        with _database(config, backend, scratch) as url:
            return agents.paced(
                url,
                rate=peak.median / 2,
                connections=config.concurrency,
                duration_s=config.paced_s,
                scratch=scratch,
                log_path=scratch / f"serve-paced-{backend}.log",
            )

    storage_limit = f"storage.{backend}.commit_each"
    return [
        _Scenario(
            ScenarioResult(
                f"paywarden.{backend}.agent_in_process",
                "paywarden",
                f"{backend}: agent payment (verify, admit, idempotency, pay), 1 thread",
                "payments",
                "payment",
                notes="1 grouped unit of work a payment (admission with the nonce, "
                f"idempotency claim, payment); {agents.IN_PROCESS_MANDATES} mandates in turn",
            ),
            in_process,
            [(storage_limit, 1.0), ("crypto.rfc9421_verify", 1.0)],
        ),
        _Scenario(
            peak,
            over_http,
            [(storage_limit, 1.0), ("http.fastapi", 1.0), ("crypto.rfc9421_verify", 1.0)],
        ),
        _Scenario(
            ScenarioResult(
                f"paywarden.{backend}.mixed",
                "paywarden",
                f"{backend}: mixed load (payments, search, mandate reads, checkout, refunds), "
                f"{config.concurrency} clients",
                "requests",
                "request",
                notes="shares " + ", ".join(f"{k} {v:.0%}" for k, v in mixed.SHARES.items()),
            ),
            load,
            [("http.fastapi", 1.0)],
        ),
        _Scenario(
            ScenarioResult(
                f"paywarden.{backend}.agent_http_half_peak",
                "paywarden",
                f"{backend}: agent payments paced at half the agent_http median (open loop)",
                "payments",
                "payment, from the time it was due",
                notes=f"one run of {config.paced_s:g} s; target p99 <= {TARGET_P99_MS} ms",
            ),
            half_peak,
            once=True,
        ),
    ]


def _scale(config: Config, backend: str, scratch: Path, stack: ExitStack) -> list[_Scenario]:
    """The agent payment in-process with ``scale_sizes`` payments stored; each size against
    the smallest."""
    scaled = scale.Scaled(lambda: _database(config, backend, scratch), agents.IN_PROCESS_MANDATES)
    stack.callback(scaled.close)
    first = f"paywarden.{backend}.scale_{scale.label(config.scale_sizes[0])}"
    out = []
    for size in config.scale_sizes:
        result = ScenarioResult(
            f"paywarden.{backend}.scale_{scale.label(size)}",
            "paywarden",
            f"{backend}: agent payment in-process, {size:,} payments stored",
            "payments",
            "payment",
            notes=f"seeded once by bulk SQL; target: within {SCALE_TOLERANCE:.0%} of {first}",
        )

        def measure(size: int = size) -> Outcome:
            return scaled.measure(size, config.scale_payments)

        out.append(_Scenario(result, measure, [(first, 1.0)] if result.key != first else []))
    return out


def _pgbench(config: Config, scratch: Path, stack: ExitStack) -> list[_Scenario]:
    binary = find_pgbench()
    result = ScenarioResult(
        "storage.postgres.pgbench_tpcb",
        "storage",
        f"postgres: pgbench TPC-B -c {pgbench.CLIENTS} -j {pgbench.THREADS} -M prepared, "
        f"scale {config.pgbench_scale}",
        "transactions",
        "transaction",
    )
    if binary is None:
        result.skipped = "no pgbench binary (PATH, /usr/lib/postgresql/*/bin)"
        return [_Scenario(result, lambda: Outcome(None, "skipped"))]
    bench = Pgbench(binary, config.pg_url, config.pgbench_scale, scratch)
    stack.callback(bench.close)
    return [_Scenario(result, lambda: bench.measure(config.pgbench_s))]


@contextmanager
def _sqlite_url(scratch: Path) -> Iterator[str]:
    with scratch_sqlite(scratch, "paywarden") as path:
        yield f"sqlite:///{path}"


def _ratios(scenarios: list[_Scenario]) -> None:
    by_key = {s.result.key: s.result for s in scenarios}
    for scenario in scenarios:
        result = scenario.result
        candidates = []
        for key, divisor in scenario.limits:
            limit = by_key.get(key)
            if limit is not None and limit.median is not None:
                candidates.append((limit.median / divisor, key))
        if not candidates or len(candidates) < len(scenario.limits):
            continue  # a limit failed or was skipped: no ratio rather than a wrong one
        limit_per_s, key = min(candidates)
        result.limit = key if len(scenario.limits) == 1 else f"{key} (lowest)"
        result.limit_per_s = limit_per_s
        if result.median is not None and limit_per_s > 0:
            result.ratio = result.median / limit_per_s


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _machine(config: Config) -> dict[str, Any]:
    info: dict[str, Any] = {
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "sqlite": sqlite3.sqlite_version,
        "paywarden": paywarden.__version__,
        # `paywarden serve --workers` of the HTTP scenarios, by backend (see ledger.serve_workers)
        "serve_workers": {
            backend: ledger.serve_workers("sqlite://" if backend == "sqlite" else config.pg_url)
            for backend in sorted(config.backends)
        },
    }
    if "postgres" in config.backends:
        import psycopg  # noqa: PLC0415

        with psycopg.connect(config.pg_url, connect_timeout=3) as connection:
            row = connection.execute("SHOW server_version").fetchone()
            info["postgres"] = None if row is None else row[0]
    return info


def run(
    config: Config,
    out: Path,
    *,
    command: str,
    skipped: dict[str, str] | None = None,
    progress: Callable[[str], None] = lambda _m: None,
) -> tuple[dict[str, Any], list[ScenarioResult], Path]:
    """Run every scenario ``config.runs`` times; write the JSON (and SVG) report to ``out``."""
    out = out.resolve()  # the servers run in the scratch folder: no relative paths
    out.mkdir(parents=True, exist_ok=True)
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    scratch = Path(tempfile.mkdtemp(prefix=".scratch-", dir=out))
    try:
        with ExitStack() as stack:
            scenarios: list[_Scenario] = []
            for backend in config.backends:
                scenarios += _storage(config, backend, scratch)
            if "postgres" in config.backends:
                scenarios += _pgbench(config, scratch, stack)
            scenarios += _crypto(config) + _http(config, scratch)
            for backend in config.backends:
                scenarios += _paywarden(config, backend, scratch)
                scenarios += _agent(config, backend, scratch)
            for backend in config.backends if config.scale_sizes else ():
                scenarios += _scale(config, backend, scratch, stack)
            rounds = [s for s in scenarios if not s.once]
            for round_index in range(config.runs):
                for scenario in rounds:
                    progress(f"run {round_index + 1}/{config.runs}: {scenario.result.key}")
                    record(scenario.result, scenario.measure)
            for scenario in scenarios:
                if scenario.once:
                    progress(f"once: {scenario.result.key}")
                    record(scenario.result, scenario.measure)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    _ratios(scenarios)
    results = [s.result for s in scenarios]
    report = {
        "schema": "paywarden.bench/1",
        "started_at": started_at.isoformat(),
        "duration_s": round(time.perf_counter() - started, 1),
        "command": command,
        "machine": _machine(config),
        "config": asdict(replace(config, pg_url=_redact(config.pg_url))),
        "skipped_backends": skipped or {},
        "verified": all(r.verified for r in results if r.skipped is None),
        "scenarios": [r.to_json() for r in results],
    }
    stamp = started_at.strftime("%Y%m%dT%H%M%SZ")
    path = out / f"{stamp}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    write_svg(results, out / f"{stamp}.svg", title=f"paywarden bench ({config.profile}) {stamp}")
    (out / f"{stamp}.md").write_text(markdown(report, results))
    return report, results, path


def _redact(url: str) -> str:
    """The URL without a password, for the report."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at or ":" not in credentials:
        return url
    return f"{scheme}{sep}{credentials.split(':', 1)[0]}:***@{host}"


def _figure(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


COLUMNS = (
    ("scenario", "left"),
    ("unit", "left"),  # or why there is no figure
    ("median /s", "right"),
    ("spread (min-max)", "right"),
    ("p50 ms", "right"),
    ("p99 ms", "right"),
    ("limit /s", "right"),
    ("ratio", "right"),
)


def rows(results: list[ScenarioResult], *, markup: bool = True) -> list[list[str]]:
    """The table's rows as text: a mixed scenario's kinds follow it, with their shares."""
    out: list[list[str]] = []
    failed = "[red]FAILED[/]" if markup else "FAILED"
    for r in results:
        if r.skipped is not None:
            out.append([r.key, f"skipped: {r.skipped}", *[""] * 6])
            continue
        if not r.verified:
            lines = "; ".join(r.failures).splitlines() or ["no run"]
            failure = lines[0] if len(lines[0]) <= 90 else lines[0][:89] + "…"
            out.append([r.key, f"{failed} {failure}", *[""] * 6])
            continue
        data = r.to_json()
        out.append(
            [
                r.key,
                r.unit,
                _figure(data["median_per_s"]),
                f"{_figure(data['min_per_s'])}-{_figure(data['max_per_s'])}",
                _figure(data["p50_ms"], 2),
                _figure(data["p99_ms"], 2),
                _figure(r.limit_per_s) if r.limit_per_s is not None else "",
                f"{r.ratio:.2f}" if r.ratio is not None else "",
            ]
        )
        for kind, figures in data["kinds"].items():
            share = f"share {figures['share']:.0%}"
            out.append([f"  {kind}", share, _figure(figures["median_per_s"]), *[""] * 5])
    return out


def table(results: list[ScenarioResult]) -> Table:
    grid = Table(title="paywarden bench: median of the runs", title_justify="left")
    for name, justify in COLUMNS:
        grid.add_column(name, justify=justify, no_wrap=name != "unit")  # type: ignore[arg-type]
    for row in rows(results):
        grid.add_row(*row)
    return grid


def markdown(report: dict[str, Any], results: list[ScenarioResult]) -> str:
    """The table as Markdown, with the machine and the command: ready to paste."""
    machine = report["machine"]
    head = "| " + " | ".join(name for name, _j in COLUMNS) + " |"
    rule = "|" + "|".join("---" if j == "left" else "---:" for _n, j in COLUMNS) + "|"
    body = [
        "| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |"
        for row in rows(results, markup=False)
    ]
    return (
        "\n".join(
            [
                f"`{report['command']}`, {report['started_at'][:16]} UTC, took "
                f"{report['duration_s']} s; machine: {machine['nproc']} cores "
                f"({machine['cpu_model']}), python {machine['python']}, sqlite {machine['sqlite']}"
                + (f", postgres {machine['postgres']}" if "postgres" in machine else "")
                + f"; served by {_workers(machine)}",
                "",
                head,
                rule,
                *body,
                "",
                *_targets(results),
            ]
        )
        + "\n"
    )


def _workers(machine: dict[str, Any]) -> str:
    """``serve --workers`` of the HTTP scenarios, in words."""
    counts = machine.get("serve_workers", {})
    return ", ".join(
        f"{count} process{'es' if count > 1 else ''} on {backend}"
        for backend, count in counts.items()
    )


def _targets(results: list[ScenarioResult]) -> list[str]:
    """Issue 8's targets, met or not, in words."""
    lines = []
    for r in results:
        if r.key.endswith(".agent_http_half_peak") and r.verified:
            p99 = r.to_json()["p99_ms"]
            verdict = "met" if p99 <= TARGET_P99_MS else "NOT met"
            lines.append(
                f"- {r.key}: p99 {p99:.1f} ms at {r.median:,.0f} payments/s; "
                f"target p99 <= {TARGET_P99_MS} ms: {verdict}"
            )
        if ".scale_" in r.key and r.verified and r.ratio is not None:
            verdict = "met" if r.ratio >= 1 - SCALE_TOLERANCE else "NOT met"
            lines.append(
                f"- {r.key}: {r.ratio:.2f} of the small-table rate; "
                f"target within {SCALE_TOLERANCE:.0%}: {verdict}"
            )
    return lines


def run_cli(
    console: Console,
    *,
    quick: bool,
    smoke: bool,
    backend: str,
    runs: int | None,
    out: Path,
    pg_url: str,
    command: str,
    scale_sizes: tuple[int, ...] | None = None,
) -> int:
    """``paywarden bench``; returns the exit status (1 when a run failed verification)."""
    if backend not in {"sqlite", "postgres", "both"}:
        console.print(f"[red]--backend must be sqlite, postgres or both, not {backend!r}[/]")
        return 2
    config = PROFILES["smoke" if smoke else "quick" if quick else "full"]
    backends = BACKENDS if backend == "both" else (backend,)
    skipped_pg = None
    if "postgres" in backends:
        skipped_pg = pg_reachable(pg_url)
        if skipped_pg is not None:
            if backend == "postgres":
                console.print(f"[red]PostgreSQL at {_redact(pg_url)} unreachable: {skipped_pg}[/]")
                return 2
            console.print(f"[yellow]PostgreSQL unreachable, sqlite only: {skipped_pg}[/]")
            backends = ("sqlite",)
    config = replace(config, backends=backends, pg_url=pg_url, runs=runs or config.runs)
    if scale_sizes is not None:  # --scale / --no-scale over the profile's choice
        config = replace(
            config, scale_sizes=scale_sizes, scale_payments=config.scale_payments or 300
        )
    console.print(
        f"paywarden bench: profile {config.profile}, {config.runs} runs, "
        f"backends {', '.join(config.backends)}"
        + (
            f", scale {', '.join(map(scale.label, config.scale_sizes))}"
            if config.scale_sizes
            else ""
        )
    )
    with console.status("benchmarking") as status:
        report, results, path = run(
            config,
            out,
            command=command,
            skipped={} if skipped_pg is None else {"postgres": skipped_pg},
            progress=status.update,
        )
    wide = Console(width=max(console.width, 130), highlight=False)  # the table needs 125
    wide.print(table(results))
    for line in _targets(results):
        wide.print(line)
    wide.print(
        "latency is per commit (storage), operation (crypto), request (http and mixed) and "
        "payment (hold + capture, or one agent payment); ratio = median / limit "
        "(see benchmarks/README.md)"
    )
    machine = report["machine"]
    console.print(
        f"machine: {machine['nproc']} cores, {machine['cpu_model']}; "
        f"python {machine['python']}, sqlite {machine['sqlite']}"
        + (f", postgres {machine['postgres']}" if "postgres" in machine else "")
        + f"; served by {_workers(machine)}"
    )
    console.print(f"took {report['duration_s']} s; report: {path} (and .svg, .md)")
    if not report["verified"]:
        console.print("[red]a run failed verification: its figures are not reported[/]")
        return 1
    return 0
