"""Crash safety of taps: the real server on SQLite, under tap load, killed with SIGKILL at
random moments and made to exit at injected crash points just before and just after the
tap's commit (``PAYWARDEN_TEST_TAP_CRASH``). After every restart the database is opened
afresh and checked: no cryptogram (token, counter) approved twice, every acknowledged tap in
the ledger with its capture, every capture a tap's, counters never behind an approved tap.
Terminals retry an unanswered message identically after the restart and must get the
answer the first attempt committed, if it did.

The server restarts fork from a warm zygote (tests/crash_support.py's launcher, the crash
point passed per start in the environment); the fast run does 50 cycles, ``--long`` 300.
"""

from __future__ import annotations

import hashlib
import json
import random
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from crash_support import Launcher, write_config
from device_support import DeviceWorld, make_device_world
from live_server import free_port, prepare
from paywarden.devices.client import DeviceClient
from paywarden.store import schema
from paywarden.store.engine import make_engine
from paywarden.store.tables_devices import device_tokens, taps

WORLDS = 3  # terminals tapping at once, each with its own phone
CLIENT_TIMEOUT = httpx.Timeout(5.0, connect=1.0)
CRASH_WAIT_S = 5.0
IN_FLIGHT_RETRIES_MAX = 200


@dataclass
class Tapper:
    """One terminal tapping one phone, a message at a time; an unanswered message stays
    pending and is retried, identical, after the restart."""

    world: DeviceWorld
    pending: dict[str, Any] | None = None
    acks: list[dict[str, Any]] = field(default_factory=list)
    sent: int = 0

    def run(self, base_url: str, stop: threading.Event) -> None:
        with httpx.Client(base_url=base_url, timeout=CLIENT_TIMEOUT) as http:
            client = DeviceClient(http, self.world.terminal_key)
            while not stop.is_set():
                if self.pending is None:
                    self.pending = self.world.message(random.randint(1, 500))
                    self.sent += 1
                answer = _send(client, self.pending)
                if answer is None:
                    return  # the server is gone: retry after the restart
                self.acks.append({"message": self.pending, "answer": answer})
                self.pending = None


def _send(client: DeviceClient, message: dict[str, Any]) -> dict[str, Any] | None:
    key = "tap-" + hashlib.sha256(json.dumps(message, sort_keys=True).encode()).hexdigest()
    for _attempt in range(IN_FLIGHT_RETRIES_MAX):
        try:
            response = client.post("/v1/device/taps", message, idempotency_key=key)
        except httpx.TransportError:
            return None
        if response.status_code == 200:
            body: dict[str, Any] = response.json()
            return body
        assert response.status_code in {409, 503}, response.text
        time.sleep(0.05)
    return None


def _check(database_url: str, tappers: list[Tapper]) -> int:
    path = database_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = list(connection.execute(select(taps)))
            transfers = {
                r.id: r
                for r in connection.execute(
                    select(schema.transfers).where(schema.transfers.c.kind == "capture")
                )
            }
            counters = {
                r.id: int(r.last_counter) for r in connection.execute(select(device_tokens))
            }
    finally:
        engine.dispose()
    approved = [r for r in rows if r.status == "approved"]
    cryptograms = [(r.token_id, r.counter) for r in approved]
    assert len(cryptograms) == len(set(cryptograms)), "a cryptogram was approved twice"
    assert {r.transfer_id for r in approved} == set(transfers), "captures and taps differ"
    for row in approved:
        assert transfers[row.transfer_id].amount == row.amount
        assert counters[row.token_id] >= row.counter, "a counter fell behind an approved tap"
    by_id = {r.id: r for r in rows}
    for tapper in tappers:
        for ack in tapper.acks:
            stored = by_id.get(ack["answer"]["id"])
            assert stored is not None, f"acknowledged tap {ack['answer']['id']} lost"
            assert dict(stored.response) == ack["answer"]
    return len(approved)


def _crash_run(tmp_path: Path, cycles: int, seed: int) -> None:
    rng = random.Random(seed)
    database_url = f"sqlite:///{tmp_path / 'paywarden.db'}"
    admin_key = prepare(database_url)
    config = write_config(tmp_path / "paywarden.toml", database_url, tmp_path / "master.key")
    launcher = Launcher(tmp_path, config, free_port(), cold_every=0)
    kinds: dict[str, int] = {"sigkill": 0, "before_commit": 0, "after_commit": 0}
    exits = {"before_commit": 0, "after_commit": 0}
    timings = {"start": 0.0, "check": 0.0, "setup": time.monotonic()}
    try:
        launcher.start({})
        with httpx.Client(base_url=launcher.base_url, timeout=30.0) as http:
            tappers = [
                Tapper(make_device_world(http, admin_key, funded=10_000_000, daily_limit=10**9))
                for _ in range(WORLDS)
            ]
        timings["setup"] = time.monotonic() - timings["setup"]
        for cycle in range(cycles):
            kind = rng.choice(list(kinds))
            kinds[kind] += 1
            env = (
                {}
                if kind == "sigkill"
                else {"PAYWARDEN_TEST_TAP_CRASH": f"{kind}:{rng.randint(1, 3)}"}
            )
            if cycle:
                began = time.monotonic()
                launcher.start(env)
                timings["start"] += time.monotonic() - began
            stop = threading.Event()
            threads = [
                threading.Thread(target=t.run, args=(launcher.base_url, stop), daemon=True)
                for t in tappers
            ]
            for thread in threads:
                thread.start()
            if kind == "sigkill" or cycle == 0:
                time.sleep(rng.uniform(0.05, 0.5))
                launcher.kill()
            elif launcher.wait_exit(CRASH_WAIT_S):
                exits[kind] += 1  # the process reached the crash point and left
            else:
                launcher.kill()
            stop.set()
            for thread in threads:
                thread.join(timeout=30.0)
            assert not any(thread.is_alive() for thread in threads)
            launcher.kill()  # gone already: forget it
            began = time.monotonic()
            _check(database_url, tappers)
            timings["check"] += time.monotonic() - began
        launcher.start({})
        for tapper in tappers:
            if tapper.pending is not None:
                with httpx.Client(base_url=launcher.base_url, timeout=30.0) as http:
                    answer = _send(DeviceClient(http, tapper.world.terminal_key), tapper.pending)
                assert answer is not None
                tapper.acks.append({"message": tapper.pending, "answer": answer})
                tapper.pending = None
        launcher.kill()
        approved = _check(database_url, tappers)
        acked = sum(len(t.acks) for t in tappers)
        assert acked == sum(t.sent for t in tappers), "a tap never got its answer"
        answered = [a["answer"] for t in tappers for a in t.acks]
        assert approved == sum(a["status"] == "approved" for a in answered)
        assert exits["before_commit"] and exits["after_commit"], exits
        spent = {name: round(value, 1) for name, value in timings.items()}
        print(
            f"tap crash run: {cycles} cycles {kinds}, crash points reached {exits}, "
            f"{acked} taps answered, {approved} approved; seconds {spent}"
        )
    finally:
        launcher.close()


def test_taps_survive_crashes(tmp_path: Path) -> None:
    _crash_run(tmp_path, cycles=50, seed=7)


@pytest.mark.slow
def test_taps_survive_many_crashes(tmp_path: Path) -> None:
    _crash_run(tmp_path, cycles=300, seed=11)
