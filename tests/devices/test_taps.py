"""Taps through the API on both backends: one capture per message, counters, tampering,
domains, revocation, limits and step-up."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

import pytest

from conftest import Api
from device_support import DeviceWorld, captures_for, make_device_world
from paywarden.devices.client import DeviceClient
from paywarden.devices.simulators import Terminal
from paywarden.kernel.clock import FakeClock
from paywarden.kernel.errors import AuthenticationFailed
from paywarden.services import devices, taps
from paywarden.trust.keys import ed25519_private_key
from paywarden.trust.tap import TapData


@pytest.fixture
def world(api: Api, clock: FakeClock) -> DeviceWorld:
    return make_device_world(api.client, api.admin_key, clock)


def _tap(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_a_tap_pays_the_merchant_with_a_receipt(world: DeviceWorld, api: Api) -> None:
    answer = _tap(world.send(world.message(450)))
    assert answer["status"] == "approved", answer
    assert answer["object"] == "tap" and answer["id"].startswith("tap_")
    assert answer["transfer"].startswith("txf_") and answer["receipt"]
    assert captures_for(api.store.engine, world.merchant["id"]) == (1, 450)
    seen = world.get(f"/v1/taps/{answer['id']}", world.user_key)
    assert seen.status_code == 200 and seen.json() == answer


def test_the_identical_message_twice_is_one_capture_and_one_answer(
    world: DeviceWorld, api: Api
) -> None:
    message = world.message(450)
    first = _tap(world.send(message))
    again = _tap(world.send(message))  # a new Idempotency-Key: the message itself decides
    replay = world.send(message, idempotency_key="same-key")
    replay_again = world.send(message, idempotency_key="same-key")
    assert first == again == _tap(replay) == _tap(replay_again)
    assert first["status"] == "approved"
    assert captures_for(api.store.engine, world.merchant["id"]) == (1, 450)


@pytest.mark.parametrize("offset", [0, -1])
def test_a_different_message_reusing_an_equal_or_lower_counter_is_declined(
    world: DeviceWorld, api: Api, offset: int
) -> None:
    _tap(world.send(world.message(100)))
    _tap(world.send(world.message(100)))  # counter 2
    world.phone.counter = 1 + offset  # the next tap reuses counter 2 (or 1)
    answer = _tap(world.send(world.message(300)))
    assert answer["status"] == "declined" and answer["reasons"] == ["counter_replayed"]
    assert answer["transfer"] is None
    assert captures_for(api.store.engine, world.merchant["id"]) == (2, 200)


CHANGES: list[dict[str, Any]] = [
    {"amount": 451},
    {"currency": "eur"},
    {"merchant": "mer_01JD6Z0000000000000000000A"},
    {"unpredictable_number": "00000000deadbeef"},
    {"counter": 99},
    {"user_verification": "pin"},
]


def test_a_changed_field_breaks_the_cryptogram(world: DeviceWorld, api: Api) -> None:
    """Amount, currency, merchant, unpredictable number, counter, user check: each change
    after the device signed is declined, and moves neither money nor the counter."""
    for change in CHANGES:
        answer = _tap(world.send(world.message(450, **change)))
        assert answer["status"] == "declined", change
        assert answer["reasons"] == ["cryptogram_invalid"], change
    assert captures_for(api.store.engine, world.merchant["id"]) == (0, 0)
    # The genuine tap that follows still works: a forged message moved no counter.
    world.phone.counter = 1
    assert _tap(world.send(world.message(450)))["status"] == "approved"


def test_a_cryptogram_relayed_through_another_terminal_is_declined(
    world: DeviceWorld, api: Api, clock: FakeClock
) -> None:
    other = make_device_world(api.client, api.admin_key, clock)
    message = world.message(450)
    answer = _tap(other.send(message))  # the message names world's terminal and merchant
    assert answer["status"] == "declined" and answer["reasons"] == ["terminal_mismatch"]
    assert captures_for(api.store.engine, other.merchant["id"]) == (0, 0)


def test_a_revoked_device_is_declined_at_once(world: DeviceWorld, api: Api) -> None:
    assert _tap(world.send(world.message(100)))["status"] == "approved"
    revoked = world.post(f"/v1/devices/{world.phone.device_id}/revoke", world.user_key, {})
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    answer = _tap(world.send(world.message(100)))
    assert answer["status"] == "declined" and answer["reasons"] == ["token_revoked"]
    assert captures_for(api.store.engine, world.merchant["id"]) == (1, 100)


def test_a_revoked_terminal_cannot_submit(world: DeviceWorld) -> None:
    terminal = world.terminal.terminal_id
    assert world.post(f"/v1/devices/{terminal}/revoke", world.merchant_key, {}).status_code == 200
    refused = world.send(world.message(100))
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "device_revoked"


def test_a_tap_token_used_online_is_declined(world: DeviceWorld, api: Api) -> None:
    """An in_person token pays at a point of sale or a gate, never through a merchant's
    online checkout, even with a cryptogram the device really signed for it."""
    key = ed25519_private_key(secrets.token_bytes(32))
    online = world.post(
        "/v1/terminals",
        world.merchant_key,
        {"kind": "online", "name": "Web shop", "public_jwk": key.public_jwk()},
    )
    assert online.status_code == 201, online.text
    checkout = Terminal(
        DeviceClient(api.client, key, api.store.clock.now),
        online.json()["id"],
        world.merchant["id"],
    )
    message = world.phone.tap(checkout.terminal_id, checkout.merchant_id, 450, "usd", "0a1b2c3d")
    answer = checkout.submit(message)
    assert answer["status"] == "declined" and answer["reasons"] == ["token_domain_mismatch"]
    relayed = checkout.submit(world.message(450))  # a tap made at the till, replayed online
    assert relayed["reasons"] == ["token_domain_mismatch"]
    assert captures_for(api.store.engine, world.merchant["id"]) == (0, 0)


def test_a_tap_message_is_no_agent_or_user_request(world: DeviceWorld, api: Api) -> None:
    as_user = api.client.post(
        "/v1/device/taps",
        json=world.message(450),
        headers={"Authorization": f"Bearer {world.user_key}", "Idempotency-Key": "k1"},
    )
    assert as_user.status_code == 401
    assert captures_for(api.store.engine, world.merchant["id"]) == (0, 0)


def test_above_the_tap_limit_a_step_up_is_required(world: DeviceWorld, api: Api) -> None:
    answer = _tap(world.send(world.message(6_000)))  # tap_limit is 5 000
    assert answer["status"] == "declined" and answer["reasons"] == ["step_up_required"]
    world.phone.user_verification = "biometric"
    verified = _tap(world.send(world.message(6_000)))
    assert verified["status"] == "approved" and verified["user_verification"] == "biometric"
    assert captures_for(api.store.engine, world.merchant["id"]) == (1, 6_000)


def test_the_daily_cumulative_limit_asks_for_a_step_up(
    world: DeviceWorld, clock: FakeClock
) -> None:
    for _ in range(4):
        assert _tap(world.send(world.message(5_000)))["status"] == "approved"
    answer = _tap(world.send(world.message(1)))  # 20 000 spent today: the limit
    assert answer["reasons"] == ["step_up_required"]
    clock.advance(timedelta(days=1))
    assert _tap(world.send(world.message(1)))["status"] == "approved"


def test_a_counter_jump_beyond_the_window_is_flagged_and_needs_a_step_up(
    world: DeviceWorld,
) -> None:
    world.phone.counter = 500
    answer = _tap(world.send(world.message(100)))
    assert answer["status"] == "declined" and answer["flagged"] is True
    assert answer["reasons"] == ["step_up_required"]
    world.phone.user_verification = "pin"
    verified = _tap(world.send(world.message(100)))
    assert verified["status"] == "approved" and verified["flagged"] is True
    world.phone.user_verification = "none"
    assert _tap(world.send(world.message(100)))["flagged"] is False


def test_insufficient_funds_declines_and_moves_nothing(api: Api, clock: FakeClock) -> None:
    world = make_device_world(api.client, api.admin_key, clock, funded=300)
    answer = _tap(world.send(world.message(450)))
    assert answer["reasons"] == ["insufficient_funds"]
    assert captures_for(api.store.engine, world.merchant["id"]) == (0, 0)


def test_an_unknown_token_is_declined(world: DeviceWorld) -> None:
    world.phone.token = "dtk_" + "0" * 26
    answer = _tap(world.send(world.message(450)))
    assert answer["status"] == "declined" and answer["reasons"] == ["token_unknown"]


def test_a_user_device_cannot_submit_taps(world: DeviceWorld) -> None:
    message = world.message(450)
    refused = world.glasses_client.post("/v1/device/taps", message, secrets.token_hex(8))
    assert refused.status_code == 403


def test_a_revocation_committed_after_admission_wins(world: DeviceWorld, api: Api) -> None:
    """The tap's own transaction re-reads (and locks) the terminal and the device: a
    request admitted just before a revocation commits nothing after it."""
    admitted = api.store.run(lambda uow: devices.load_device(uow, world.terminal.terminal_id))
    assert admitted is not None and admitted.status == "active"
    assert (
        world.post(f"/v1/devices/{admitted.id}/revoke", world.merchant_key, {}).status_code == 200
    )
    message = world.message(450)

    def late(uow: Any) -> Any:
        return taps.submit(
            uow, admitted, TapData(**message["tap"]), message["cryptogram"],
            master_key=bytes(32), issuer="https://paywarden.test",
        )  # fmt: skip

    with pytest.raises(AuthenticationFailed) as refused:
        api.store.run(late)
    assert refused.value.code == "device_revoked"
    assert captures_for(api.store.engine, world.merchant["id"]) == (0, 0)
