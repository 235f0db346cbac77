"""What the device tests share: a world made through the API (a funded user with a phone
holding a tap token and a pair of glasses, a merchant with a terminal), the simulators from
``paywarden.devices`` signing as the devices, and SQL counts of what reached the ledger."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import Engine, func, select

from paywarden.devices.client import DeviceClient
from paywarden.devices.simulators import Glasses, TapDevice, Terminal, unpredictable_number
from paywarden.kernel.clock import FakeClock
from paywarden.store import schema
from paywarden.store.tables_devices import taps
from paywarden.trust.keys import PrivateKey, ed25519_private_key

PHRASE = "pay it now"


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "Idempotency-Key": secrets.token_hex(12)}


@dataclass
class DeviceWorld:
    http: httpx.Client
    user: dict[str, Any]
    user_key: str
    merchant: dict[str, Any]
    merchant_key: str
    phone: TapDevice
    glasses: Glasses
    glasses_client: DeviceClient
    terminal: Terminal
    terminal_key: PrivateKey

    def post(self, path: str, key: str, body: dict[str, Any]) -> httpx.Response:
        return self.http.post(path, json=body, headers=auth(key))

    def get(self, path: str, key: str) -> httpx.Response:
        return self.http.get(path, headers={"Authorization": f"Bearer {key}"})

    def qr(self, amount: int | None = 450, **extra: Any) -> dict[str, Any]:
        body = {"currency": "usd", **extra}
        if amount is not None:
            body["amount"] = amount
        made = self.post("/v1/payment_requests", self.merchant_key, body)
        assert made.status_code == 201, made.text
        request: dict[str, Any] = made.json()
        return request

    def message(self, value: int = 450, /, **changes: Any) -> dict[str, Any]:
        """A signed tap message from the phone for the terminal, not yet sent."""
        message = self.phone.tap(
            self.terminal.terminal_id,
            self.terminal.merchant_id,
            value,
            "usd",
            unpredictable_number(),
        )
        message["tap"].update(changes)
        return message

    def send(self, message: dict[str, Any], idempotency_key: str | None = None) -> httpx.Response:
        return self.terminal.client.post("/v1/device/taps", message, idempotency_key)


def _created(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def make_device_world(
    http: httpx.Client,
    admin_key: str,
    clock: FakeClock | None = None,
    *,
    funded: int = 100_000,
    tap_limit: int = 5_000,
    daily_limit: int = 20_000,
    gate: dict[str, Any] | None = None,
) -> DeviceWorld:
    """Everything through the HTTP API; ``clock`` signs device requests in fake time."""
    now = clock.now if clock is not None else None
    tag = secrets.token_hex(4)
    user = _created(
        http.post(
            "/v1/users",
            json={"email": f"dev-{tag}@example.com", "name": "Wearer", "currency": "usd"},
            headers=auth(admin_key),
        )
    )
    if funded:
        card = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2099}
        _created(
            http.post(
                "/v1/top_ups",
                json={"amount": funded, "currency": "usd", "card": card},
                headers=auth(user["secret_key"]),
            )
        )
    merchant = _created(
        http.post(
            "/v1/merchants",
            json={"name": "Corner Coffee", "category": "coffee", "currency": "usd", "fee_bps": 0},
            headers=auth(admin_key),
        )
    )
    limits = {"currency": "usd", "tap_limit": tap_limit, "daily_limit": daily_limit}
    phone = TapDevice.new()
    bound = _created(
        http.post(
            "/v1/devices",
            json={"kind": "phone", "name": "Phone", "public_jwk": phone.public_jwk(), **limits},
            headers=auth(user["secret_key"]),
        )
    )
    phone.device_id = bound["id"]
    token = _created(
        http.post(f"/v1/devices/{bound['id']}/tokens", json={}, headers=auth(user["secret_key"]))
    )
    phone.token = token["id"]
    glasses = Glasses.new(PHRASE)
    worn = _created(
        http.post(
            "/v1/devices",
            json={
                "kind": "glasses",
                "name": "Frames",
                "public_jwk": glasses.public_jwk(),
                **limits,
            },
            headers=auth(user["secret_key"]),
        )
    )
    glasses.device_id = worn["id"]
    terminal_key = ed25519_private_key(secrets.token_bytes(32))
    registered = _created(
        http.post(
            "/v1/terminals",
            json={
                "kind": "gate" if gate is not None else "pos",
                "name": "Till",
                "public_jwk": terminal_key.public_jwk(),
                **({"settings": gate} if gate is not None else {}),
            },
            headers=auth(merchant["secret_key"]),
        )
    )
    terminal_client = (
        DeviceClient(http, terminal_key, now) if now else DeviceClient(http, terminal_key)
    )
    glasses_key = glasses.key
    glasses_client = (
        DeviceClient(http, glasses_key, now) if now else DeviceClient(http, glasses_key)
    )
    return DeviceWorld(
        http=http,
        user=user,
        user_key=user["secret_key"],
        merchant=merchant,
        merchant_key=merchant["secret_key"],
        phone=phone,
        glasses=glasses,
        glasses_client=glasses_client,
        terminal=Terminal(terminal_client, registered["id"], merchant["id"]),
        terminal_key=terminal_key,
    )


def captures_for(engine: Engine, merchant_id: str) -> tuple[int, int]:
    """(capture transfers into the merchant's accounts, their total) from the ledger."""
    a, t = schema.accounts, schema.transfers
    with engine.connect() as connection:
        accounts = select(a.c.id).where(a.c.owner_id == merchant_id)
        row = connection.execute(
            select(func.count(), func.coalesce(func.sum(t.c.amount), 0)).where(
                t.c.kind == "capture", t.c.destination_account_id.in_(accounts)
            )
        ).one()
    return int(row[0]), int(row[1])


def approved_taps(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        return list(
            connection.execute(
                select(taps.c.id, taps.c.token_id, taps.c.counter, taps.c.transfer_id).where(
                    taps.c.status == "approved"
                )
            )
        )
