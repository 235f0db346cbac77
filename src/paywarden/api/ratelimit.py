"""Rate limits per credential: a token bucket for each API key and for each agent key.

A request with ``Authorization: Bearer …`` spends a token from its key's bucket; a request
signed by an agent (RFC 9421, no Authorization header) spends one from the bucket of the
``keyid`` its ``Signature-Input`` names. An empty bucket answers 429 ``rate_limited`` with
``Retry-After`` (whole seconds until a token is back), before the request reaches
authentication, idempotency or the database, so a flood costs almost nothing.

The buckets are identified by a hash of the credential (no secret is kept in memory) and
live in this process: with several API nodes each node has its own buckets, so the limit a
client sees is up to ``nodes`` times the configured one. That is the documented
multi-node caveat (docs/security.md); a shared limiter belongs in front of the nodes (the
load balancer or a gateway) when the exact figure matters. At most ``buckets_max`` buckets
are kept; the least recently used one is dropped first (it starts full again if its
credential comes back), so memory stays bounded whatever credentials a flood invents.

A request that carries neither credential is not limited here: it is refused by
authentication, or it is a public document or a page.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from paywarden.config import Settings

__all__ = ["RateLimit", "TokenBucketLimiter", "rate_limiters"]

BUCKETS_MAX = 100_000
_KEYID = re.compile(rb'keyid="([^"]{1,200})"')
_HEADER_BYTES_MAX = 4096  # the prefix of Signature-Input searched for a keyid


@dataclass
class _Bucket:
    tokens: float
    updated_s: float


class TokenBucketLimiter:
    """``rate_per_s`` tokens a second up to ``burst`` for each key; thread-safe."""

    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        *,
        buckets_max: int = BUCKETS_MAX,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate_per_s <= 0 or burst < 1 or buckets_max < 1:
            raise ValueError("a rate limit needs rate_per_s > 0, burst >= 1, buckets_max >= 1")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.buckets_max = buckets_max
        self._clock = clock
        self._buckets: OrderedDict[bytes, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: bytes) -> float | None:
        """Spend one token of ``key``'s bucket: None if there was one, else the seconds
        until there is."""
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = _Bucket(float(self.burst), now)
                self._buckets[key] = bucket
                if len(self._buckets) > self.buckets_max:
                    self._buckets.popitem(last=False)
            else:
                self._buckets.move_to_end(key)
                elapsed = max(0.0, now - bucket.updated_s)
                bucket.tokens = min(float(self.burst), bucket.tokens + elapsed * self.rate_per_s)
                bucket.updated_s = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return None
            return (1.0 - bucket.tokens) / self.rate_per_s


def credential(headers: list[tuple[bytes, bytes]]) -> tuple[str, bytes] | None:
    """("key", hash) for a Bearer key, ("agent", hash) for an agent's keyid, or None."""
    authorization = signature_input = None
    for name, value in headers:
        if name == b"authorization":
            authorization = value
        elif name == b"signature-input":
            signature_input = value
    if authorization:
        scheme, _, secret = authorization.partition(b" ")
        if scheme.lower() == b"bearer" and secret.strip():
            return "key", hashlib.sha256(secret.strip()).digest()[:16]
        return None
    if signature_input:
        found = _KEYID.search(signature_input[:_HEADER_BYTES_MAX])
        if found:
            return "agent", hashlib.sha256(found.group(1)).digest()[:16]
    return None


def rate_limiters(settings: Settings) -> dict[str, TokenBucketLimiter | None]:
    """The limiters ``settings`` configure (a rate of 0 means no limit), as keyword
    arguments of :class:`RateLimit`."""
    per_key = per_agent = None
    if settings.rate_limit_key_per_s > 0:
        per_key = TokenBucketLimiter(settings.rate_limit_key_per_s, settings.rate_limit_key_burst)
    if settings.rate_limit_agent_per_s > 0:
        per_agent = TokenBucketLimiter(
            settings.rate_limit_agent_per_s, settings.rate_limit_agent_burst
        )
    return {"per_key": per_key, "per_agent": per_agent}


class RateLimit:
    """ASGI middleware: one :class:`TokenBucketLimiter` for API keys, one for agent keys
    (either may be None: not limited)."""

    def __init__(
        self,
        app: ASGIApp,
        per_key: TokenBucketLimiter | None,
        per_agent: TokenBucketLimiter | None,
    ) -> None:
        self.app = app
        self.limiters = {"key": per_key, "agent": per_agent}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        found = credential(scope.get("headers", []))
        limiter = self.limiters[found[0]] if found else None
        wait_s = limiter.take(found[1]) if limiter is not None and found else None
        if wait_s is None:
            await self.app(scope, receive, send)
            return
        await _refuse(scope, send, max(1, math.ceil(wait_s)))


async def _refuse(scope: Scope, send: Send, retry_after_s: int) -> None:
    request_id = scope.get("state", {}).get("request_id")
    error: dict[str, object] = {
        "type": "rate_limit_error",
        "code": "rate_limited",
        "message": f"too many requests with this credential; retry in {retry_after_s} s",
        "param": None,
    }
    if request_id:
        error["request_id"] = request_id
    body = json.dumps({"error": error}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 429,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(retry_after_s).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
