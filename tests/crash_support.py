"""The crash harness: the real server under signed payment load, killed with SIGKILL at
random moments and restarted, with every invariant checked after every restart.

Pieces (tests/reliability/test_crash_safety.py puts them together):

- :class:`Launcher` starts ``paywarden serve`` on one fixed port. Importing the server costs
  about two seconds on these machines, so most restarts fork it from a *zygote*: a process
  that imported the package and built the command line parser once and, per restart, forks
  a child that runs the very ``paywarden serve`` command line (``paywarden.cli.main.app``)
  with the same config (and, per start, extra environment variables). Every
  ``cold_every``-th start execs the console script instead. Either way the server is a
  separate process killed with SIGKILL: no atexit, no flush, no clean close.
- :class:`Payers`: client threads, each an agent paying under its own mandate. A payment is
  retried with the same Idempotency-Key (re-signed with a fresh nonce) until the server
  gives a definite answer; every answer is appended to the acknowledgement file and
  fsynced before the client sends anything else.
- :func:`check_invariants`: with the server down, the database is opened afresh and checked.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select, text

from live_server import InFlight, server_env
from payment_support import signed_headers
from paywarden.services import audit
from paywarden.services import keys as key_service
from paywarden.store import schema
from paywarden.store.engine import make_engine
from paywarden.store.mandate_repo import LIFETIME
from paywarden.store.tables_mandates import mandate_usage, payments
from paywarden.store.unit_of_work import Store
from paywarden.trust.keys import ed25519_private_key

__all__ = ["Ack", "CycleReport", "Launcher", "Payers", "check_invariants", "write_config"]

READY_TIMEOUT_S = 45.0
READY_POLL_S = 0.01
KILL_TIMEOUT_S = 10.0
ATTEMPTS_MAX = 2_000  # per payment; a payment that never gets an answer fails the run
RETRY_SLEEP_S = 0.05
CLIENT_TIMEOUT = httpx.Timeout(10.0, connect=2.0)
# Risk rules that never fire: the harness is about durability, not about risk.
NO_RISK = {
    "agent_step_up_min": 1_000_000,
    "agent_deny_min": 1_000_000,
    "mandate_step_up_min": 1_000_000,
    "mandate_deny_min": 1_000_000,
    "outlier_history_min": 1_000,
    "new_merchant_step_up": False,
    "failure_step_up_min": 1_000_000,
    "failure_deny_min": 1_000_000,
}


def write_config(path: Path, database_url: str, master_key_file: Path) -> Path:
    """The TOML the server runs with: production defaults, except that an abandoned
    idempotency key may be retaken after 1 s (not 30) and the maintenance loop and audit
    checkpoints run every second, so kills also land in them."""
    risk = "\n".join(f"{k} = {str(v).lower()}" for k, v in NO_RISK.items())
    path.write_text(
        f'database_url = "{database_url}"\n'
        f'master_key_file = "{master_key_file}"\n'
        "idempotency_lock_s = 1\n"
        "hold_expiry_interval_s = 1.0\n"
        "audit_checkpoint_interval_s = 1.0\n"
        'log_level = "warning"\n'
        f"[risk]\n{risk}\n"
    )
    return path


# --- the server ------------------------------------------------------------------------------

_ZYGOTE = r"""
import faulthandler, json, os, signal, sys
import typer.main
import paywarden.cli.main as cli
import paywarden.api.app, uvicorn  # noqa: F401  (the expensive imports, done once)
# What `cli.app(...)` builds on every call (the click command tree, tens of milliseconds),
# built once; a child runs it exactly as `paywarden` does.
command = typer.main.get_command(cli.app)
signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
for line in sys.stdin:
    order = json.loads(line)
    pid = os.fork()
    if pid == 0:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.setsid()
        log = os.open(order["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.chdir(order["cwd"])
        os.environ.update(order["env"])
        faulthandler.register(signal.SIGUSR1, all_threads=True)  # stacks on demand, to the log
        try:
            command.main(args=order["argv"], prog_name="paywarden")
        finally:
            os._exit(1)
    sys.stdout.write(f"{pid}\n")
    sys.stdout.flush()
"""


class Launcher:
    """Starts, kills and restarts ``paywarden serve`` on one port; ``cold_every=0``: every
    start is forked."""

    def __init__(self, workdir: Path, config: Path, port: int, *, cold_every: int = 10) -> None:
        self.workdir = workdir
        self.config = config
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.cold_every = cold_every
        self.log = workdir / "server.log"
        self.starts = 0
        self.cold_starts = 0
        self._pid: int | None = None
        self._cold: subprocess.Popen[bytes] | None = None
        self._zygote = subprocess.Popen(
            [sys.executable, "-c", _ZYGOTE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=server_env(),
            cwd=workdir,
        )

    def _argv(self, *, cold: bool) -> list[str]:
        # A cold start runs `serve` exactly as in production (migrations checked first);
        # a forked one skips the migration check, which costs seconds on PostgreSQL.
        argv = ["serve", "--config", str(self.config), "--port", str(self.port)]
        return argv if cold else [*argv, "--no-migrate"]

    def start(self, env: dict[str, str] | None = None) -> None:
        """Start the server (with ``env`` added to its environment) and wait until ready."""
        env = env or {}
        cold = bool(self.cold_every) and self.starts % self.cold_every == 0
        if cold:
            executable = Path(sys.executable).parent / "paywarden"
            with self.log.open("ab") as log:
                self._cold = subprocess.Popen(
                    [str(executable), *self._argv(cold=True)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=server_env() | env,
                    cwd=self.workdir,
                )
            self._pid = self._cold.pid
            self.cold_starts += 1
        else:
            order = {
                "argv": self._argv(cold=False),
                "log": str(self.log),
                "cwd": str(self.workdir),
                "env": env,
            }
            assert self._zygote.stdin is not None and self._zygote.stdout is not None
            self._zygote.stdin.write((json.dumps(order) + "\n").encode())
            self._zygote.stdin.flush()
            self._pid = int(self._zygote.stdout.readline())
        self.starts += 1
        self._wait_ready()

    def _alive(self) -> bool:
        if self._cold is not None:
            return self._cold.poll() is None
        if self._pid is None:
            return False
        try:
            os.kill(self._pid, 0)
        except ProcessLookupError:
            return False
        return True

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        with httpx.Client(base_url=self.base_url, timeout=2.0) as probe:
            while time.monotonic() < deadline:
                if not self._alive():
                    break
                try:
                    if probe.get("/readyz").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(READY_POLL_S)
        if self._alive() and self._cold is None and self._pid is not None:
            os.kill(self._pid, signal.SIGUSR1)  # a forked server dumps its threads' stacks
            time.sleep(1.0)
        tail = self.log.read_text(errors="replace")[-6000:]
        raise RuntimeError(f"the server did not become ready:\n{tail}")

    def wait_exit(self, timeout_s: float) -> bool:
        """Whether the server exits (by itself) within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while self._alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        return not self._alive()

    def kill(self) -> None:
        """SIGKILL, then wait until the process is gone (a no-op once it has exited)."""
        if self._pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self._pid, signal.SIGKILL)
        if self._cold is not None:
            self._cold.wait(timeout=KILL_TIMEOUT_S)
            self._cold = None
        assert self.wait_exit(KILL_TIMEOUT_S), "the server survived SIGKILL"
        self._pid = None

    def close(self) -> None:
        self.kill()
        if self._zygote.stdin is not None:
            self._zygote.stdin.close()
        self._zygote.terminate()
        self._zygote.wait(timeout=KILL_TIMEOUT_S)
        if self._zygote.stdout is not None:
            self._zygote.stdout.close()


# --- the load -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Payer:
    agent_seed: bytes
    mandate_id: str
    merchant_id: str


@dataclass(frozen=True)
class Ack:
    key: str
    mandate_id: str
    amount: int
    status_code: int
    payment_id: str | None
    status: str | None


@dataclass
class Payers:
    """Client threads paying under their mandates until :meth:`finish`."""

    base_url: str
    payers: list[Payer]
    ack_path: Path
    seed: int
    in_flight: InFlight = field(default_factory=InFlight)
    acks: list[Ack] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    retries: int = 0
    keys_sent: set[str] = field(default_factory=set)
    retry_reasons: Counter[str] = field(default_factory=Counter)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        self._file = self.ack_path.open("a", encoding="utf-8")
        for index, payer in enumerate(self.payers):
            thread = threading.Thread(target=self._run, args=(index, payer), daemon=True)
            self._threads.append(thread)
            thread.start()

    def finish(self, timeout_s: float = 120.0) -> None:
        """Stop starting payments; every payment under way still gets its answer."""
        self._stop.set()
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        alive = any(t.is_alive() for t in self._threads)
        self._file.close()
        assert not alive, "a payer never got an answer"

    def abandon(self) -> None:
        """After a failure: stop the threads without waiting for answers."""
        self._stop.set()
        if not self._file.closed:
            self._file.close()

    def wait_for_acks(self, count: int, timeout_s: float = 60.0) -> None:
        """Until at least ``count`` payments are acknowledged (bounded; polls)."""
        deadline = time.monotonic() + timeout_s
        while len(self.acks) < count and not self.failures:
            assert time.monotonic() < deadline, f"no progress: {len(self.acks)} < {count} acks"
            time.sleep(0.01)

    def _run(self, index: int, payer: Payer) -> None:
        rng = random.Random(self.seed * 1000 + index)
        key = ed25519_private_key(payer.agent_seed)
        number = 0
        with httpx.Client(base_url=self.base_url, timeout=CLIENT_TIMEOUT) as client:
            while not self._stop.is_set():
                number += 1
                idem = f"crash-{self.seed}-{index}-{number}"
                amount = rng.randint(1, 99)
                try:
                    ack = self._pay(client, key, payer, idem, amount)
                except Exception as error:
                    with self._lock:
                        self.failures.append(f"{idem}: {error!r}")
                    return
                self._acknowledge(ack)

    def _pay(self, client: httpx.Client, key: Any, payer: Payer, idem: str, amount: int) -> Ack:
        body = {
            "mandate": payer.mandate_id,
            "merchant": payer.merchant_id,
            "amount": amount,
            "currency": "usd",
        }
        raw = json.dumps(body).encode()
        authority = self.base_url.removeprefix("http://")
        with self._lock:
            self.keys_sent.add(idem)
        for _attempt in range(ATTEMPTS_MAX):
            # Re-signed on every attempt: a fresh nonce and `created`, the same key.
            headers = signed_headers(
                key, "POST", "/v1/payments", created=datetime.now(UTC), body=raw,
                authority=authority,
            )  # fmt: skip
            headers["Content-Type"] = "application/json"
            headers["Idempotency-Key"] = idem
            self.in_flight.enter()
            try:
                response: httpx.Response | None = client.post(
                    "/v1/payments", content=raw, headers=headers
                )
            except httpx.TransportError:
                response = None
            finally:
                self.in_flight.leave()
            if response is not None and _definite(response):
                payload = response.json()
                return Ack(
                    idem,
                    payer.mandate_id,
                    amount,
                    response.status_code,
                    payload.get("id"),
                    payload.get("status"),
                )
            reason = "no connection" if response is None else _reason(response)
            with self._lock:
                self.retries += 1
                self.retry_reasons[reason] += 1
            time.sleep(RETRY_SLEEP_S)
        raise AssertionError(f"no definite answer after {ATTEMPTS_MAX} attempts")

    def _acknowledge(self, ack: Ack) -> None:
        with self._lock:
            self.acks.append(ack)
            self._file.write(json.dumps(ack.__dict__) + "\n")
            self._file.flush()
            os.fsync(self._file.fileno())


def _reason(response: httpx.Response) -> str:
    try:
        code = response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        code = "?"
    return f"{response.status_code} {code}"


def _definite(response: httpx.Response) -> bool:
    """An answer the client may act on: not a 5xx, not 'your earlier attempt still runs'."""
    if response.status_code >= 500:
        return False
    return not (response.status_code == 409 and "idempotency_in_flight" in response.text)


# --- the checks -------------------------------------------------------------------------


@dataclass
class CycleReport:
    payments: int
    succeeded: int
    acked: int


def check_invariants(
    database_url: str, acks: list[Ack], keys_sent: set[str], *, final: bool = False
) -> CycleReport:
    """Open the database afresh (the server is down) and check every invariant; with
    ``final``, also that exactly the acknowledged payments exist."""
    if database_url.startswith("sqlite"):
        _sqlite_integrity(database_url)
    engine = make_engine(database_url)
    try:
        store = Store(engine)
        report = store.run(lambda uow: _check(uow, acks, keys_sent, final), read_only=True)
        keys = store.run(key_service.audit_public_keys, read_only=True)
        verified = store.run(lambda uow: audit.verify(uow, keys), read_only=True)
        assert verified.ok, f"the audit chain does not verify: {verified.problems[:3]}"
    finally:
        engine.dispose()
    return report


def _sqlite_integrity(database_url: str) -> None:
    import sqlite3  # noqa: PLC0415

    path = database_url.removeprefix("sqlite:///")
    connection = sqlite3.connect(path)
    try:
        (result,) = connection.execute("PRAGMA integrity_check").fetchone()
    finally:
        connection.close()
    assert result == "ok", f"PRAGMA integrity_check: {result}"


def _check(uow: Any, acks: list[Ack], keys_sent: set[str], final: bool) -> CycleReport:
    p, a = schema.postings, schema.accounts
    by_currency = uow.execute(select(p.c.currency, func.sum(p.c.amount)).group_by(p.c.currency))
    assert all(total == 0 for _c, total in by_currency), "postings do not sum to zero"
    sums = select(p.c.account_id, func.sum(p.c.amount).label("total")).group_by(p.c.account_id)
    totals = {row.account_id: int(row.total) for row in uow.execute(sums)}
    for row in uow.execute(select(a.c.id, a.c.posted)):
        assert row.posted == totals.get(row.id, 0), f"{row.id}: balance != sum of postings"

    rows = {r.id: r for r in uow.execute(select(payments))}
    for ack in acks:  # no acknowledged payment lost, and it is what the client was told
        assert ack.status_code == 201, f"{ack.key}: answered {ack.status_code}"
        stored = rows.get(str(ack.payment_id))
        assert stored is not None, f"acknowledged payment {ack.payment_id} ({ack.key}) lost"
        assert (stored.status, stored.amount) == (ack.status, ack.amount), ack
    assert len(rows) <= len(keys_sent), f"{len(rows)} payments from {len(keys_sent)} keys"
    _check_once_each(uow, rows)
    _check_usage(uow, rows)
    _check_outbox(uow, rows)
    succeeded = [r for r in rows.values() if r.status == "succeeded"]
    transfers = {r.id for r in uow.execute(select(schema.transfers.c.id))}
    assert all(r.transfer_id in transfers for r in succeeded), "a capture transfer is missing"
    if final:
        assert set(rows) == {ack.payment_id for ack in acks}, "payments nobody was told of"
    return CycleReport(len(rows), len(succeeded), len(acks))


def _check_once_each(uow: Any, rows: dict[str, Any]) -> None:
    """Every payment is the stored response of exactly one idempotency key: a key applied
    twice would leave a payment that no key answers with."""
    i = schema.idempotency_keys
    named: Counter[str] = Counter()
    query = select(i.c.key, i.c.response_body).where(i.c.path == "/v1/payments")
    for row in uow.execute(query.where(i.c.state != "in_flight")):
        body = json.loads(row.response_body or "{}")
        if isinstance(body.get("id"), str):
            named[body["id"]] += 1
    orphans = set(rows) - set(named)
    assert not orphans, f"payments no idempotency key answers with: {sorted(orphans)[:5]}"
    assert all(count == 1 for count in named.values()), "one payment answers two keys"
    assert set(named) <= set(rows), "a stored response names a payment that is not there"


def _check_usage(uow: Any, rows: dict[str, Any]) -> None:
    spent: dict[str, tuple[int, int]] = {}
    for row in rows.values():
        if row.status == "succeeded":
            amount, count = spent.get(row.mandate_id, (0, 0))
            spent[row.mandate_id] = (amount + row.amount, count + 1)
    query = select(mandate_usage).where(mandate_usage.c.period == LIFETIME)
    usage = {r.mandate_id: (int(r.amount), int(r.count)) for r in uow.execute(query)}
    for mandate_id in set(spent) | set(usage):
        assert usage.get(mandate_id, (0, 0)) == spent.get(mandate_id, (0, 0)), (
            f"{mandate_id}: usage {usage.get(mandate_id)} != payments {spent.get(mandate_id)}"
        )


def _check_outbox(uow: Any, rows: dict[str, Any]) -> None:
    e = schema.events
    announced: set[str] = set()
    for row in uow.execute(select(e.c.type, e.c.data).where(e.c.type.like("payment.%"))):
        data = row.data if isinstance(row.data, dict) else json.loads(row.data)
        announced.add(str(data.get("object", {}).get("id")))
    missing = set(rows) - announced
    assert not missing, f"payments without their outbox event: {sorted(missing)[:5]}"


def wait_until_down(url: str) -> None:
    """Nothing answers on ``url`` any more (the kill has landed)."""
    deadline = time.monotonic() + KILL_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "/healthz", timeout=0.5)
        except httpx.TransportError:
            return
        time.sleep(0.02)
    raise AssertionError("the server still answers after SIGKILL")


def sql_ping(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    finally:
        engine.dispose()
