"""The simulators' conversations with a running server, one function per step a person
takes (the ``paywarden device`` commands call these; so do the tests).

Owners speak with their secret keys (binding a device, registering a terminal); devices and
terminals with their own keys (:class:`~paywarden.devices.client.DeviceClient`).
"""

from __future__ import annotations

import secrets
from typing import Any

import httpx

from paywarden.devices.client import DeviceClient
from paywarden.devices.simulators import Glasses, TapDevice, Terminal
from paywarden.trust.keys import PrivateKey, b64url_decode, b64url_encode, ed25519_private_key

__all__ = [
    "FlowError",
    "confirm_approval",
    "enroll_glasses",
    "enroll_tap_device",
    "pay_qr",
    "pending_approvals",
    "register_terminal",
    "terminal_from",
]


class FlowError(RuntimeError):
    """The server refused a step; the message carries its error."""


def _owner_post(http: httpx.Client, key: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": secrets.token_hex(12)}
    response = http.post(path, json=body, headers=headers)
    return _answer(response)


def _answer(response: httpx.Response) -> dict[str, Any]:
    if response.status_code >= 400:
        raise FlowError(f"{response.status_code}: {response.text[:500]}")
    body: dict[str, Any] = response.json()
    return body


def _bind(
    http: httpx.Client,
    user_key: str,
    kind: str,
    name: str,
    public_jwk: dict[str, str],
    currency: str,
    tap_limit: int | None,
    daily_limit: int | None,
) -> dict[str, Any]:
    """Bind a device's public key to the user, with its limits; the device."""
    body = {
        "kind": kind,
        "name": name,
        "public_jwk": public_jwk,
        "currency": currency,
        "tap_limit": tap_limit,
        "daily_limit": daily_limit,
    }
    return _owner_post(http, user_key, "/v1/devices", body)


def enroll_glasses(
    http: httpx.Client,
    user_key: str,
    phrase: str,
    *,
    name: str = "Glasses",
    currency: str = "usd",
    tap_limit: int | None = 5_000,
    daily_limit: int | None = 20_000,
) -> Glasses:
    """New glasses: a key made here, bound to the user with its limits."""
    glasses = Glasses.new(phrase)
    bound = _bind(http, user_key, "glasses", name, glasses.public_jwk(), currency, tap_limit,
                  daily_limit)  # fmt: skip
    glasses.device_id = bound["id"]
    return glasses


def enroll_tap_device(
    http: httpx.Client,
    user_key: str,
    *,
    kind: str = "phone",
    name: str = "Phone",
    currency: str = "usd",
    tap_limit: int | None = 5_000,
    daily_limit: int | None = 20_000,
) -> TapDevice:
    """A phone, watch or card: bound with its key and limits, then given its tap token."""
    device = TapDevice.new()
    bound = _bind(http, user_key, kind, name, device.public_jwk(), currency, tap_limit,
                  daily_limit)  # fmt: skip
    device.device_id = bound["id"]
    device.token = _owner_post(http, user_key, f"/v1/devices/{bound['id']}/tokens", {})["id"]
    return device


def register_terminal(
    http: httpx.Client,
    merchant_key: str,
    *,
    kind: str = "pos",
    name: str = "Terminal",
    settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A terminal's state: its key's seed (kept here), its id and its merchant's."""
    seed = secrets.token_bytes(32)
    key = ed25519_private_key(seed)
    body: dict[str, Any] = {"kind": kind, "name": name, "public_jwk": key.public_jwk()}
    if settings is not None:
        body["settings"] = settings
    made = _owner_post(http, merchant_key, "/v1/terminals", body)
    return {
        "kind": "terminal",
        "seed": b64url_encode(seed),
        "terminal_id": made["id"],
        "merchant_id": made["merchant"],
    }


def terminal_from(http: httpx.Client, state: dict[str, Any]) -> Terminal:
    key: PrivateKey = ed25519_private_key(b64url_decode(state["seed"]))
    return Terminal(DeviceClient(http, key), state["terminal_id"], state["merchant_id"])


def pay_qr(
    http: httpx.Client,
    glasses: Glasses,
    payload: str,
    heard: str,
    *,
    amount: int | None = None,
    pin: bool = False,
) -> dict[str, Any]:
    """The glasses pay a scanned QR request once the wearer said their phrase."""
    body = glasses.confirm(payload, heard, amount, "pin" if pin else "voice")
    client = DeviceClient(http, glasses.key)
    return _answer(client.post("/v1/device/payment_requests/pay", body))


def pending_approvals(http: httpx.Client, glasses: Glasses) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = _answer(
        DeviceClient(http, glasses.key).get("/v1/device/approvals")
    )["data"]
    return data


def confirm_approval(
    http: httpx.Client, glasses: Glasses, approval: dict[str, Any], heard: str, *, pin: bool
) -> dict[str, Any]:
    """The glasses confirm an approval they showed: exactly its amount, payee and cart."""
    body = glasses.sign(
        amount=approval["amount"],
        currency=approval["currency"],
        payee=approval["merchant"],
        cart_hash=approval["cart_hash"],
        heard=heard,
        user_verification="pin" if pin else "voice",
    )
    client = DeviceClient(http, glasses.key)
    return _answer(client.post(f"/v1/device/approvals/{approval['id']}/confirm", body))
