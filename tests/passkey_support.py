"""A software authenticator for the passkey tests: an EC P-256 key that answers WebAuthn
ceremonies the way a platform authenticator would (attestation ``none``, a discoverable
credential, user presence and verification flags, a signature counter), so tests can build
exactly the responses a browser posts, and bend any part of them (origin, RP ID, counter,
user verification, user handle)."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import struct
from dataclasses import dataclass, field
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from web_support import Browser

ORIGIN = "http://testserver"  # the TestClient's base URL: RP ID "testserver"
FLAG_UP, FLAG_UV, FLAG_AT = 0x01, 0x04, 0x40


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class SoftAuthenticator:
    """One credential on one authenticator; ``counter`` goes up by one per signature."""

    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    credential_id: bytes = field(default_factory=lambda: secrets.token_bytes(16))
    counter: int = 0
    user_handle: bytes | None = None

    def _cose_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps(
            {
                1: 2,  # kty: EC2
                3: -7,  # alg: ES256
                -1: 1,  # crv: P-256
                -2: numbers.x.to_bytes(32, "big"),
                -3: numbers.y.to_bytes(32, "big"),
            }
        )

    def _auth_data(self, rp_id: str, flags: int, attested: bytes = b"") -> bytes:
        rp_hash = hashlib.sha256(rp_id.encode("utf-8")).digest()
        return rp_hash + bytes([flags]) + struct.pack(">I", self.counter) + attested

    def create(
        self,
        options: dict[str, Any],
        origin: str = ORIGIN,
        *,
        rp_id: str | None = None,
        verified: bool = True,
    ) -> dict[str, Any]:
        """The credential ``navigator.credentials.create`` gives for ``options``."""
        self.user_handle = unb64url(options["user"]["id"])
        self.counter += 1
        client_data = _client_data("webauthn.create", options["challenge"], origin)
        attested = (
            bytes(16)  # AAGUID: none
            + struct.pack(">H", len(self.credential_id))
            + self.credential_id
            + self._cose_key()
        )
        flags = FLAG_UP | FLAG_AT | (FLAG_UV if verified else 0)
        auth_data = self._auth_data(rp_id or options["rp"]["id"], flags, attested)
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return {
            "id": b64url(self.credential_id),
            "rawId": b64url(self.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "attestationObject": b64url(attestation),
                "transports": ["internal"],
            },
            "clientExtensionResults": {},
        }

    def get(
        self,
        options: dict[str, Any],
        origin: str = ORIGIN,
        *,
        rp_id: str | None = None,
        verified: bool = True,
        counter: int | None = None,
        user_handle: bytes | None = None,
    ) -> dict[str, Any]:
        """The assertion ``navigator.credentials.get`` gives for ``options``; ``counter``
        forces the signature counter (a clone's)."""
        self.counter = self.counter + 1 if counter is None else counter
        client_data = _client_data("webauthn.get", options["challenge"], origin)
        flags = FLAG_UP | (FLAG_UV if verified else 0)
        auth_data = self._auth_data(rp_id or options["rpId"], flags)
        signed = auth_data + hashlib.sha256(client_data).digest()
        signature = self.key.sign(signed, ec.ECDSA(hashes.SHA256()))
        handle = user_handle or self.user_handle
        response = {
            "clientDataJSON": b64url(client_data),
            "authenticatorData": b64url(auth_data),
            "signature": b64url(signature),
        }
        if handle is not None:
            response["userHandle"] = b64url(handle)
        return {
            "id": b64url(self.credential_id),
            "rawId": b64url(self.credential_id),
            "type": "public-key",
            "response": response,
            "clientExtensionResults": {},
        }


def _client_data(kind: str, challenge: str, origin: str) -> bytes:
    body = {"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": False}
    return json.dumps(body, separators=(",", ":")).encode("utf-8")


# --- the ceremonies through the web routes ----------------------------------------------------


def ceremony(browser: Browser, path: str, body: Any, *, page: str, origin: str = ORIGIN) -> Any:
    """A ceremony POST as passkeys.js sends it: the page's CSRF token in a header."""
    headers = {"X-CSRF-Token": browser.csrf(page), "Origin": origin}
    return browser.post_json(path, body, headers)


def add_passkey(
    browser: Browser, authenticator: SoftAuthenticator, name: str = "Laptop"
) -> dict[str, Any]:
    """Register ``authenticator`` for the browser's signed-in user through the routes."""
    begun = ceremony(browser, "/passkeys/register/begin", {}, page="/settings")
    assert begun.status_code == 200, begun.text
    credential = authenticator.create(begun.json()["publicKey"])
    body = {"credential": credential, "name": name}
    done = ceremony(browser, "/passkeys/register/finish", body, page="/settings")
    assert done.status_code == 200, done.text
    added: dict[str, Any] = done.json()
    return added


def sign_in_options(browser: Browser) -> dict[str, Any]:
    begun = ceremony(browser, "/passkeys/signin/begin", {}, page="/signin")
    assert begun.status_code == 200, begun.text
    options: dict[str, Any] = begun.json()["publicKey"]
    return options


def finish_sign_in(browser: Browser, credential: dict[str, Any], next_path: str = "") -> Any:
    body = {"credential": credential, "next": next_path}
    return ceremony(browser, "/passkeys/signin/finish", body, page="/signin")
