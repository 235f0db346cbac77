"""The identical tap message against the real server, on SQLite and PostgreSQL: twice, then
32 times at once (with 32 Idempotency-Keys, and with one), is one capture in the ledger and
one answer for every sender."""

from __future__ import annotations

import threading
from typing import Any

from device_support import approved_taps, captures_for, make_device_world
from live_server import InFlight, LiveServer, release_together
from paywarden.devices.client import DeviceClient
from paywarden.devices.simulators import Terminal

SENDERS = 32
JOIN_TIMEOUT_S = 240.0


def test_the_identical_tap_message_is_one_capture_for_every_sender(
    live_server: LiveServer, in_flight: InFlight
) -> None:
    with live_server.client() as http:
        world = make_device_world(http, live_server.admin_key)
        twice = world.message(450)
        first, second = world.send(twice), world.send(twice)
        assert first.status_code == second.status_code == 200, first.text
        assert first.json() == second.json() and first.json()["status"] == "approved"

        many = world.message(300)

        def send(barrier: threading.Barrier) -> tuple[int, dict[str, Any]]:
            with live_server.client() as own:
                client = DeviceClient(own, world.terminal_key)
                in_flight.enter()
                barrier.wait()
                try:
                    response = client.post("/v1/device/taps", many)  # 32 Idempotency-Keys
                finally:
                    in_flight.leave()
                return response.status_code, response.json()

        answers, failures = release_together(SENDERS, send, JOIN_TIMEOUT_S)
        assert not failures, failures[0]
        assert in_flight.peak >= SENDERS
        assert {status for status, _ in answers} == {200}
        bodies = [body for _, body in answers]
        assert all(body == bodies[0] for body in bodies) and bodies[0]["status"] == "approved"

        one_key = world.message(200)

        def submit(barrier: threading.Barrier) -> dict[str, Any]:
            with live_server.client() as own:
                terminal = Terminal(
                    DeviceClient(own, world.terminal_key),
                    world.terminal.terminal_id,
                    world.terminal.merchant_id,
                )
                barrier.wait()
                return terminal.submit(one_key)  # one Idempotency-Key; in-flight 409s retried

        same_key, failures = release_together(SENDERS, submit, JOIN_TIMEOUT_S)
        assert not failures, failures[0]
        assert all(body == same_key[0] for body in same_key)
        assert same_key[0]["status"] == "approved"

    engine = live_server.engine()
    try:
        assert captures_for(engine, world.merchant["id"]) == (3, 950)
        taps = approved_taps(engine)
        assert len(taps) == 3 and len({(t.token_id, t.counter) for t in taps}) == 3
        assert {t.id for t in taps} == {first.json()["id"], bodies[0]["id"], same_key[0]["id"]}
    finally:
        engine.dispose()
