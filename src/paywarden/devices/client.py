"""An HTTP client that signs as a device: RFC 9421 with the device's key.

::

    client = DeviceClient(httpx.Client(base_url="http://127.0.0.1:8000"), key)
    client.get("/v1/device")
    client.post("/v1/device/taps", {"tap": {...}, "cryptogram": "..."})

Every request is signed over ``@method``, ``@authority``, ``@path`` (and ``Content-Digest``
when it has a body) with tag ``paywarden-device``, a fresh nonce, and a 60-second life;
POSTs carry an ``Idempotency-Key`` (a fresh one unless given: a retry passes the first).
The ``httpx.Client`` may be a real one or the in-process test client.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from paywarden.trust.keys import PrivateKey
from paywarden.trust.signatures import RequestParts, content_digest, sign_request

__all__ = ["DEVICE_TAG", "DeviceClient"]

DEVICE_TAG = "paywarden-device"
SIGNATURE_LIFE_S = 60


def _utc_now() -> datetime:
    return datetime.now(UTC)


class DeviceClient:
    def __init__(
        self,
        http: httpx.Client,
        key: PrivateKey,
        now: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.http = http
        self.key = key
        self.now = now

    def _headers(self, method: str, path: str, body: bytes) -> dict[str, str]:
        fields = [("Content-Digest", content_digest(body))] if body else []
        components = ["@method", "@authority", "@path"] + (["content-digest"] if body else [])
        url = self.http.base_url
        authority = url.netloc.decode("ascii")
        request = RequestParts(method, url.scheme, authority, path, "", fields, body)
        created = self.now()
        signature_input, signature = sign_request(
            request,
            key=self.key,
            components=components,
            created=created,
            expires=created + timedelta(seconds=SIGNATURE_LIFE_S),
            nonce=secrets.token_urlsafe(16),
            tag=DEVICE_TAG,
        )
        return {**dict(fields), "Signature-Input": signature_input, "Signature": signature}

    def get(self, path: str) -> httpx.Response:
        return self.http.get(path, headers=self._headers("GET", path, b""))

    def post(
        self, path: str, body: dict[str, Any], idempotency_key: str | None = None
    ) -> httpx.Response:
        raw = json.dumps(body).encode()
        headers = self._headers("POST", path, raw)
        headers["Content-Type"] = "application/json"
        headers["Idempotency-Key"] = idempotency_key or secrets.token_hex(12)
        return self.http.post(path, content=raw, headers=headers)
