"""Tap to enter, on both backends: a flat fare charged at the gate, a distance fare held at
the tap in and charged at the tap out, a free gate, a wrong fare refused."""

from __future__ import annotations

from typing import Any

from conftest import Api
from device_support import captures_for, make_device_world
from paywarden.devices import flows
from paywarden.devices.client import DeviceClient
from paywarden.devices.simulators import Terminal
from paywarden.kernel.clock import FakeClock
from paywarden.trust.keys import b64url_decode, ed25519_private_key

DISTANCE = {"zone": 1, "fare": {"mode": "distance", "base": 150, "per_zone": 50, "max": 600}}


def _balance(api: Api, user_key: str) -> int:
    accounts = api.get("/v1/accounts", user_key).json()["data"]
    return int(accounts[0]["balance"]["available"])


def test_a_flat_fare_is_charged_at_the_gate(api: Api, clock: FakeClock) -> None:
    world = make_device_world(
        api.client, api.admin_key, clock, gate={"zone": 2, "fare": {"mode": "flat", "amount": 250}}
    )
    wrong = world.terminal.charge(world.phone, 100, "usd")
    assert wrong["status"] == "declined" and wrong["reasons"] == ["fare_mismatch"]
    entered = world.terminal.charge(world.phone, 250, "usd")
    assert (entered["status"], entered["kind"], entered["fare"]) == ("approved", "entry", 250)
    assert entered["journey"].startswith("ent_") and entered["transfer"]
    assert captures_for(api.store.engine, world.merchant["id"]) == (1, 250)


def test_a_free_gate_lets_in_without_money(api: Api, clock: FakeClock) -> None:
    world = make_device_world(api.client, api.admin_key, clock, gate={"zone": 0})
    entered = world.terminal.charge(world.phone, 0, "usd")
    assert (entered["status"], entered["kind"], entered["hold"]) == ("approved", "entry", None)
    assert captures_for(api.store.engine, world.merchant["id"]) == (0, 0)


def _exit_gate(api: Api, world: Any, clock: FakeClock, zone: int) -> Terminal:
    made = flows.register_terminal(
        api.client, world.merchant_key, kind="gate", name="Exit", settings={"zone": zone}
    )
    key = ed25519_private_key(b64url_decode(made["seed"]))
    return Terminal(
        DeviceClient(api.client, key, clock.now), made["terminal_id"], made["merchant_id"]
    )


def test_a_distance_fare_is_held_in_and_charged_out(api: Api, clock: FakeClock) -> None:
    world = make_device_world(api.client, api.admin_key, clock, gate=DISTANCE)
    out = _exit_gate(api, world, clock, zone=4)
    before = _balance(api, world.user_key)
    entered = world.terminal.charge(world.phone, 600, "usd")  # the maximum, held
    assert (entered["status"], entered["kind"], entered["transfer"]) == ("approved", "entry", None)
    assert _balance(api, world.user_key) == before - 600
    left = out.charge(world.phone, 0, "usd")
    assert (left["status"], left["kind"], left["journey"]) == (
        "approved",
        "exit",
        entered["journey"],
    )
    assert left["fare"] == 150 + 3 * 50 and left["transfer"]
    assert _balance(api, world.user_key) == before - 300
    assert captures_for(api.store.engine, world.merchant["id"]) == (1, 300)
    again = out.charge(world.phone, 0, "usd")  # no journey open: a tap in at a free gate
    assert again["kind"] == "entry" and again["status"] == "approved"
    assert captures_for(api.store.engine, world.merchant["id"]) == (1, 300)
