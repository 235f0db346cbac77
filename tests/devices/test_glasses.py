"""Scan to pay and the device as a trusted surface, through the API on both backends: the
glasses read a QR request, the wearer says their phrase, it is paid within the device's
limits; an agent's payment waiting for approval is confirmed from the glasses."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from conftest import Api, make_api
from device_support import PHRASE, DeviceWorld, captures_for, make_device_world
from payment_support import SignedAgent, register_agent
from paywarden.devices.client import DeviceClient
from paywarden.devices.simulators import Glasses
from paywarden.kernel.clock import FakeClock
from paywarden.store.unit_of_work import Store
from paywarden.trust.receipts import ReceiptStatus, verify_receipt

REAUTH_ABOVE = 5_000
PAY = "/v1/device/payment_requests/pay"


@pytest.fixture
def api(store: Store) -> Iterator[Api]:
    yield from make_api(store, approval_reauth_above=REAUTH_ABOVE, approval_ttl_s=600)


@pytest.fixture
def world(api: Api, clock: FakeClock) -> DeviceWorld:
    return make_device_world(api.client, api.admin_key, clock)


def _code(response: Any) -> str:
    return str(response.json()["error"]["code"])


def test_the_glasses_pay_a_dynamic_qr_by_voice(world: DeviceWorld, api: Api) -> None:
    request = world.qr(450, reference="flat white")
    assert request["kind"] == "dynamic" and request["status"] == "open"
    heard = world.glasses.read(request["payload"])
    assert heard == "Pay 4.50 USD to Corner Coffee for flat white? Say your phrase to confirm."
    with pytest.raises(ValueError, match="phrase"):
        world.glasses.confirm(request["payload"], heard="yes")
    body = world.glasses.confirm(request["payload"], heard="Pay it  NOW")
    paid = world.glasses_client.post(PAY, body)
    assert paid.status_code == 200, paid.text
    confirmation = paid.json()
    assert confirmation["status"] == "succeeded", confirmation
    assert confirmation["user_verification"] == "voice"
    assert confirmation["id"].startswith("cnf_") and confirmation["target"] == request["id"]
    jwks = api.client.get("/.well-known/jwks.json").json()
    assert verify_receipt(confirmation["receipt"], jwks).status is ReceiptStatus.SUCCESS
    assert captures_for(api.store.engine, world.merchant["id"]) == (1, 450)
    shown = world.get(f"/v1/payment_requests/{request['id']}", world.merchant_key).json()
    assert (shown["status"], shown["paid_by"]) == ("paid", confirmation["id"])

    # The same signed confirmation again: its nonce counts once.
    replayed = world.glasses_client.post(PAY, body)
    assert replayed.status_code in {400, 409}
    # A fresh confirmation for the paid request: a dynamic request is paid once.
    again = world.glasses_client.post(PAY, world.glasses.confirm(request["payload"], PHRASE))
    assert (again.status_code, _code(again)) == (400, "payment_request_paid")
    assert captures_for(api.store.engine, world.merchant["id"]) == (1, 450)


def test_a_static_qr_takes_the_payers_amount(world: DeviceWorld, api: Api) -> None:
    request = world.qr(None)
    assert request["kind"] == "static" and request["amount"] is None
    body = world.glasses.confirm(request["payload"], PHRASE, amount=300)
    paid = world.glasses_client.post(PAY, body)
    assert paid.json()["status"] == "succeeded", paid.text
    replayed = world.glasses_client.post(PAY, body)  # the same signed confirmation again
    assert (replayed.status_code, _code(replayed)) == (409, "confirmation_replayed")
    second = world.glasses_client.post(
        PAY, world.glasses.confirm(request["payload"], PHRASE, amount=200)
    )
    assert second.json()["status"] == "succeeded"
    assert captures_for(api.store.engine, world.merchant["id"]) == (2, 500)


def test_above_the_glasses_limit_a_spoken_phrase_is_not_enough(
    world: DeviceWorld, api: Api
) -> None:
    request = world.qr(6_000)  # the tap_limit is 5 000
    spoken = world.glasses_client.post(PAY, world.glasses.confirm(request["payload"], PHRASE))
    assert spoken.json()["status"] == "declined"
    assert spoken.json()["reasons"] == ["step_up_required"]
    pin = world.glasses.confirm(request["payload"], PHRASE, user_verification="pin")
    stepped_up = world.glasses_client.post(PAY, pin)
    assert stepped_up.json()["status"] == "succeeded", stepped_up.text
    assert captures_for(api.store.engine, world.merchant["id"]) == (1, 6_000)


def test_a_confirmation_must_be_the_devices_signature_over_exactly_the_request(
    world: DeviceWorld, api: Api
) -> None:
    request = world.qr(450)
    body = world.glasses.confirm(request["payload"], PHRASE)
    body["confirmation"]["amount"] = 45  # what the glasses signed was 450
    wrong = world.glasses_client.post(PAY, body)
    assert wrong.json()["reasons"] == ["confirmation_mismatch"]
    other = Glasses.new(PHRASE)  # another key signs what the request asks
    forged = other.confirm(request["payload"], PHRASE)
    refused = world.glasses_client.post(PAY, forged)
    assert refused.json()["reasons"] == ["confirmation_invalid"]
    tampered = world.glasses.confirm(request["payload"], PHRASE)
    tampered["payload"] = tampered["payload"][:-2] + (
        "AA" if tampered["payload"][-2:] != "AA" else "BB"
    )
    bad_tag = world.glasses_client.post(PAY, tampered)
    assert (bad_tag.status_code, _code(bad_tag)) == (400, "payment_request_invalid")
    assert captures_for(api.store.engine, world.merchant["id"]) == (0, 0)


def test_an_expired_request_is_refused(world: DeviceWorld, clock: FakeClock) -> None:
    request = world.qr(450, expires_in_s=60)
    clock.advance(timedelta(seconds=61))
    late = world.glasses_client.post(PAY, world.glasses.confirm(request["payload"], PHRASE))
    assert (late.status_code, _code(late)) == (400, "payment_request_expired")


def test_revoked_glasses_are_refused_at_once(world: DeviceWorld, api: Api) -> None:
    request = world.qr(450)
    revoked = world.post(f"/v1/devices/{world.glasses.device_id}/revoke", world.user_key, {})
    assert revoked.status_code == 200
    refused = world.glasses_client.post(PAY, world.glasses.confirm(request["payload"], PHRASE))
    assert (refused.status_code, _code(refused)) == (401, "device_revoked")
    assert world.glasses_client.get("/v1/device").status_code == 401
    assert captures_for(api.store.engine, world.merchant["id"]) == (0, 0)


def test_the_qr_code_renders(world: DeviceWorld) -> None:
    request = world.qr(450)
    svg = world.get(request["qr_svg_url"], world.merchant_key)
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert "<svg" in svg.text
    png = world.get(f"/v1/payment_requests/{request['id']}/qr.png", world.merchant_key)
    assert png.content.startswith(b"\x89PNG")
    assert world.get(request["qr_svg_url"], world.user_key).status_code == 404


# --- the glasses as the trusted surface for an agent's payment ------------------------------


def _mandate(world: DeviceWorld, agent: SignedAgent, api: Api) -> str:
    asked = agent.post(
        "/v1/mandates",
        {
            "user": world.user["id"],
            "currency": "usd",
            "constraints": [
                {"type": "payment.budget", "currency": "usd", "max": 50_000},
                {"type": "payment.allowed_payees", "allowed": [world.merchant["id"]]},
                {"type": "paywarden.confirmation_threshold", "currency": "usd", "above": 1_000},
            ],
        },
    )
    assert asked.status_code == 201, asked.text
    consented = api.post(f"/v1/mandates/{asked.json()['id']}/consent", world.user_key)
    assert consented.status_code == 200, consented.text
    return str(asked.json()["id"])


def _confirm(world: DeviceWorld, approval: dict[str, Any], uv: str = "voice") -> Any:
    body = world.glasses.sign(
        amount=approval["amount"],
        currency=approval["currency"],
        payee=approval["merchant"],
        cart_hash=approval["cart_hash"],
        heard=PHRASE,
        user_verification=uv,
    )
    return world.glasses_client.post(f"/v1/device/approvals/{approval['id']}/confirm", body)


def test_an_agent_pays_a_qr_and_the_glasses_confirm_the_approval(
    world: DeviceWorld, api: Api, clock: FakeClock
) -> None:
    agent = register_agent(api, clock)
    mandate = _mandate(world, agent, api)
    request = world.qr(2_000, reference="lunch")
    paid = agent.post(
        "/v1/payment_requests/pay", {"payload": request["payload"], "mandate": mandate}
    )
    assert paid.status_code == 201, paid.text
    payment = paid.json()
    assert payment["status"] == "requires_confirmation", payment
    listed = world.glasses_client.get("/v1/device/approvals")
    assert listed.status_code == 200, listed.text
    (approval,) = listed.json()["data"]
    assert approval["id"] == payment["approval"] and approval["amount"] == 2_000

    wrong = dict(approval, amount=1_999)
    mismatch = _confirm(world, wrong)
    assert mismatch.json()["reasons"] == ["confirmation_mismatch"]
    confirmed = _confirm(world, approval)
    assert confirmed.status_code == 200, confirmed.text
    body = confirmed.json()
    assert body["status"] == "succeeded" and body["approval"]["status"] == "approved"
    after = agent.get(f"/v1/payments/{payment['id']}").json()
    assert after["status"] == "succeeded" and after["transfer"]
    assert captures_for(api.store.engine, world.merchant["id"]) == (1, 2_000)
    qr = world.get(f"/v1/payment_requests/{request['id']}", world.merchant_key).json()
    assert qr["status"] == "paid" and qr["paid_by"] == payment["id"]
    again = _confirm(world, approval)
    assert (again.status_code, _code(again)) == (409, "approval_not_pending")


def test_above_the_reauthentication_level_the_glasses_need_a_pin(
    world: DeviceWorld, api: Api, clock: FakeClock
) -> None:
    agent = register_agent(api, clock)
    mandate = _mandate(world, agent, api)
    paid = agent.post(
        "/v1/payments",
        {
            "mandate": mandate,
            "merchant": world.merchant["id"],
            "amount": REAUTH_ABOVE + 1,
            "currency": "usd",
        },
    )
    payment = paid.json()
    approval = agent.get(f"/v1/approvals/{payment['approval']}").json()
    spoken = _confirm(world, approval)
    assert spoken.json()["reasons"] == ["step_up_required"]
    assert agent.get(f"/v1/payments/{payment['id']}").json()["status"] == "requires_confirmation"
    pin = _confirm(world, approval, uv="pin")
    assert pin.json()["approval"]["status"] == "approved", pin.text
    assert captures_for(api.store.engine, world.merchant["id"]) == (1, REAUTH_ABOVE + 1)


def test_another_users_device_cannot_confirm(
    world: DeviceWorld, api: Api, clock: FakeClock
) -> None:
    agent = register_agent(api, clock)
    mandate = _mandate(world, agent, api)
    paid = agent.post(
        "/v1/payments",
        {"mandate": mandate, "merchant": world.merchant["id"], "amount": 2_000, "currency": "usd"},
    )
    approval = agent.get(f"/v1/approvals/{paid.json()['approval']}").json()
    stranger = make_device_world(api.client, api.admin_key, clock)
    refused = _confirm(stranger, approval)
    assert (refused.status_code, _code(refused)) == (404, "resource_missing")
    assert captures_for(api.store.engine, world.merchant["id"]) == (0, 0)


def test_a_table_tag_opens_the_merchants_menu(world: DeviceWorld, api: Api) -> None:
    made = world.post(
        "/v1/terminals",
        world.merchant_key,
        {"kind": "table_tag", "name": "Table 12", "settings": {"table": "12"}},
    )
    assert made.status_code == 201, made.text
    tag = api.client.get(f"/v1/tags/{made.json()['id']}")
    assert tag.status_code == 200, tag.text
    body = tag.json()
    assert (body["merchant"], body["table"], body["merchant_name"]) == (
        world.merchant["id"],
        "12",
        "Corner Coffee",
    )
    assert body["deep_link"].startswith("paywarden://order?merchant=mer_")
    assert "table=12" in body["deep_link"]
    assert api.client.get(f"/v1/tags/{world.terminal.terminal_id}").status_code == 404


def test_devices_are_listed_for_their_owner_only(world: DeviceWorld, api: Api) -> None:
    mine = world.get("/v1/devices", world.user_key).json()["data"]
    assert {d["kind"] for d in mine} == {"phone", "glasses"}
    terminals = world.get("/v1/devices", world.merchant_key).json()["data"]
    assert [t["id"] for t in terminals] == [world.terminal.terminal_id]
    _, stranger = api.user()
    assert world.get(f"/v1/devices/{world.phone.device_id}", stranger).status_code == 404
    same_key = world.post(
        "/v1/devices",
        world.user_key,
        {"kind": "watch", "name": "Watch", "public_jwk": world.glasses.public_jwk()},
    )
    assert (same_key.status_code, _code(same_key)) == (409, "device_key_taken")
    signed_twice = DeviceClient(api.client, world.glasses.key, api.store.clock.now)
    assert signed_twice.get("/v1/device").json()["id"] == world.glasses.device_id
    assert secrets.compare_digest(PHRASE, "pay it now")
