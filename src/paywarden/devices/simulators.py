"""What a device does, without the hardware: a tap device (phone, watch, card), a pair of
glasses, and a merchant's terminal. Each holds its own private key; the platform only ever
sees public keys, signatures and cryptograms.

::

    phone = TapDevice.new()                      # then bind phone.public_jwk() and get a dtk_
    terminal = Terminal(client, "trm_…", "mer_…")
    answer = terminal.charge(phone, amount=450, currency="usd")

    glasses = Glasses.new(phrase="pay it")
    shown = glasses.read(payload)                # what the wearer hears
    body = glasses.confirm(payload, heard="pay it")
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from paywarden.devices.client import DeviceClient
from paywarden.kernel.money import format_amount
from paywarden.trust.devices import (
    Confirmation,
    confirmation_bytes,
    decode_payment_request,
)
from paywarden.trust.keys import PrivateKey, b64url_decode, b64url_encode, ed25519_private_key
from paywarden.trust.pan import looks_like_card_number
from paywarden.trust.tap import TapData, sign_tap

__all__ = [
    "Glasses",
    "TapDevice",
    "Terminal",
    "load_state",
    "save_state",
    "unpredictable_number",
]

RETRIES_MAX = 20
RETRY_PAUSE_S = 0.5


def _key(seed: str | None = None) -> tuple[str, PrivateKey]:
    raw = b64url_decode(seed) if seed else secrets.token_bytes(32)
    return b64url_encode(raw), ed25519_private_key(raw)


@dataclass
class TapDevice:
    """A phone, watch or card: its key, its tap token and its transaction counter."""

    seed: str
    key: PrivateKey = field(repr=False)
    device_id: str | None = None
    token: str | None = None
    counter: int = 0
    user_verification: str = "none"  # what the next tap reports (a PIN or biometric check)

    @classmethod
    def new(cls) -> TapDevice:
        seed, key = _key()
        return cls(seed, key)

    def public_jwk(self) -> dict[str, str]:
        return self.key.public_jwk()

    def tap(
        self, terminal: str, merchant: str, amount: int, currency: str, unpredictable: str
    ) -> dict[str, Any]:
        """Answer a terminal's tap request: the next counter, and the cryptogram over it."""
        if self.token is None:
            raise ValueError("this device holds no tap token yet")
        self.counter += 1
        data = TapData(
            token=self.token,
            amount=amount,
            currency=currency,
            merchant=merchant,
            terminal=terminal,
            unpredictable_number=unpredictable,
            counter=self.counter,
            user_verification=self.user_verification,
        )
        return {"tap": data.to_json(), "cryptogram": sign_tap(data, self.key.sign)}

    def state(self) -> dict[str, Any]:
        return {
            "kind": "tap_device",
            "seed": self.seed,
            "device_id": self.device_id,
            "token": self.token,
            "counter": self.counter,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> TapDevice:
        seed, key = _key(state["seed"])
        return cls(seed, key, state.get("device_id"), state.get("token"), state["counter"])


@dataclass
class Terminal:
    """A merchant's terminal or gate: it draws the unpredictable number, relays the tap to
    the device, and submits the message, signed with its own key, retrying a lost answer
    with the identical message and the same Idempotency-Key."""

    client: DeviceClient
    terminal_id: str
    merchant_id: str

    def submit(self, message: dict[str, Any]) -> dict[str, Any]:
        key = "tap-" + hashlib.sha256(json.dumps(message, sort_keys=True).encode()).hexdigest()
        last: str = "no answer"
        for _attempt in range(RETRIES_MAX):
            try:
                response = self.client.post("/v1/device/taps", message, idempotency_key=key)
            except httpx.TransportError as error:
                last = f"transport: {error}"
            else:
                if response.status_code == 200:
                    answer: dict[str, Any] = response.json()
                    return answer
                if response.status_code < 500 and response.status_code != 409:
                    raise RuntimeError(f"tap refused: {response.status_code} {response.text}")
                last = f"{response.status_code} {response.text[:200]}"
            time.sleep(RETRY_PAUSE_S)
        raise RuntimeError(f"the tap got no answer after {RETRIES_MAX} tries: {last}")

    def charge(
        self, device: TapDevice, amount: int, currency: str, unpredictable: str | None = None
    ) -> dict[str, Any]:
        number = unpredictable or unpredictable_number()
        message = device.tap(self.terminal_id, self.merchant_id, amount, currency, number)
        return self.submit(message)


def unpredictable_number() -> str:
    """A terminal's fresh unpredictable number: 16 hex digits, drawn again in the rare case
    (about 1 in 50,000) that they are all decimal digits forming what the platform's card
    number screen refuses (``trust.pan``), as a real terminal's 8-digit number never does."""
    while True:
        number = secrets.token_hex(8)
        if not looks_like_card_number(number):
            return number


@dataclass
class Glasses:
    """AI glasses: they read a QR request aloud and pay it when the wearer says their
    phrase. The phrase is checked on the glasses (only its salted hash is kept); the
    platform sees a signed ``user_verification: voice``."""

    seed: str
    key: PrivateKey = field(repr=False)
    phrase_salt: str
    phrase_hash: str
    device_id: str | None = None

    @classmethod
    def new(cls, phrase: str) -> Glasses:
        seed, key = _key()
        salt = secrets.token_hex(16)
        return cls(seed, key, salt, _phrase_hash(salt, phrase))

    def public_jwk(self) -> dict[str, str]:
        return self.key.public_jwk()

    def read(self, payload: str) -> str:
        """What the glasses say about a scanned QR request."""
        claims = decode_payment_request(payload)
        amount = (
            format_amount(claims.amount, claims.currency)
            if claims.amount is not None
            else "an amount you choose"
        )
        reference = f" for {claims.reference}" if claims.reference else ""
        return f"Pay {amount} to {claims.merchant_name}{reference}? Say your phrase to confirm."

    def heard_phrase(self, heard: str) -> bool:
        return hmac.compare_digest(_phrase_hash(self.phrase_salt, heard), self.phrase_hash)

    def sign(
        self,
        *,
        amount: int,
        currency: str,
        payee: str,
        cart_hash: str | None,
        heard: str,
        user_verification: str = "voice",
    ) -> dict[str, Any]:
        """The signed confirmation, once the wearer said their phrase; else ValueError.
        ``user_verification`` "pin" when the wearer also typed their PIN on a paired phone."""
        if not self.heard_phrase(heard):
            raise ValueError("that is not the wearer's phrase: nothing was confirmed")
        confirmation = Confirmation(
            amount=amount,
            currency=currency,
            payee=payee,
            cart_hash=cart_hash,
            nonce=secrets.token_urlsafe(24),
            user_verification=user_verification,
        )
        signature = b64url_encode(self.key.sign(confirmation_bytes(confirmation)))
        body = {
            "amount": amount,
            "currency": currency,
            "payee": payee,
            "cart_hash": cart_hash,
            "nonce": confirmation.nonce,
            "user_verification": user_verification,
        }
        return {"confirmation": body, "signature": signature}

    def confirm(
        self,
        payload: str,
        heard: str,
        amount: int | None = None,
        user_verification: str = "voice",
    ) -> dict[str, Any]:
        """The body that pays a scanned QR request (``amount`` for a static one)."""
        claims = decode_payment_request(payload)
        value = claims.amount if claims.amount is not None else amount
        if value is None:
            raise ValueError("this request has no amount: say how much to pay")
        signed = self.sign(
            amount=value,
            currency=claims.currency,
            payee=claims.merchant,
            cart_hash=None,
            heard=heard,
            user_verification=user_verification,
        )
        body = {"payload": payload, **signed}
        if claims.amount is None:
            body["amount"] = value
        return body

    def state(self) -> dict[str, Any]:
        return {
            "kind": "glasses",
            "seed": self.seed,
            "phrase_salt": self.phrase_salt,
            "phrase_hash": self.phrase_hash,
            "device_id": self.device_id,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Glasses:
        seed, key = _key(state["seed"])
        return cls(seed, key, state["phrase_salt"], state["phrase_hash"], state.get("device_id"))


def _phrase_hash(salt: str, phrase: str) -> str:
    normalized = " ".join(phrase.lower().split())
    return hashlib.sha256(f"{salt}:{normalized}".encode()).hexdigest()


def save_state(path: Path, state: dict[str, Any]) -> None:
    """Write a simulator's state (it holds a private key) readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(state, handle, indent=2)
    os.replace(temporary, path)


def load_state(path: Path) -> dict[str, Any]:
    state: dict[str, Any] = json.loads(path.read_text())
    return state
