"""``Client``: the typed Python client of the native paywarden API.

::

    from paywarden.sdk import Client, load_agent_key

    with Client("http://127.0.0.1:8000", agent_key=load_agent_key("agent.jwk")) as pw:
        mandate = pw.mandates.get("mnd_…")
        payment = pw.payments.create(mandate="mnd_…", merchant="mer_…", amount=540,
                                     currency="usd")

Two modes: ``api_key=`` sends a secret key as Bearer (users, merchants, platforms, admins);
``agent_key=`` signs every request with RFC 9421 (see :mod:`paywarden.sdk.signing`).

What every request gets:

- POST: an ``Idempotency-Key`` (``sdk_`` + 32 hex digits unless given), kept across retries;
- retries (``retries_max``, default 3) on 429, 503, 409 ``idempotency_in_flight`` and
  connection errors, after ``backoff_s · 2^attempt`` seconds with full jitter, capped at
  ``backoff_max_s``, or the server's ``Retry-After`` when it is longer (still capped);
  an agent request is signed afresh (new nonce, new ``created``) for every attempt;
- errors: the server's error tree (:mod:`paywarden.kernel.errors`), see
  :mod:`paywarden.sdk.errors`.

The one I/O seam is ``transport``: any ``httpx.BaseTransport``. Tests pass the in-process
ASGI app's (``TestClient(app)._transport``), so the SDK runs against the real app.
Amounts are integers in minor units and currencies lowercase ISO 4217, as on the wire.
"""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from paywarden.kernel.errors import PaywardenError
from paywarden.sdk.errors import ConnectionFailed, from_response
from paywarden.sdk.resources import (
    Agents,
    Approvals,
    AsyncPayments,
    CheckoutSessions,
    Mandates,
    Orders,
    Payments,
    Products,
)
from paywarden.sdk.signing import AgentKey

__all__ = ["AsyncClient", "Client", "Json"]

Json = dict[str, Any]
RETRY_STATUSES = frozenset({429, 503})
DEFAULT_BASE_URL = "http://127.0.0.1:8000"


def _utc_now() -> datetime:
    return datetime.now(UTC)


class _Settings:
    """What the two clients share: credentials, the retry policy, signing and backoff."""

    def __init__(
        self,
        *,
        api_key: str | None,
        agent_key: AgentKey | None,
        retries_max: int,
        backoff_s: float,
        backoff_max_s: float,
        api_version: str | None,
        clock: Callable[[], datetime],
        jitter: Callable[[], float],
    ) -> None:
        if api_key and agent_key:
            raise ValueError("give api_key or agent_key, not both: a request has one principal")
        if retries_max < 0 or backoff_s < 0 or backoff_max_s < 0:
            raise ValueError("retries_max, backoff_s and backoff_max_s cannot be negative")
        self.api_key = api_key
        self.agent_key = agent_key
        self.retries_max = retries_max
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self._clock = clock
        self._jitter = jitter
        self._default_headers = {"User-Agent": "paywarden-sdk", "Accept": "application/json"}
        if api_version:
            self._default_headers["Paywarden-Version"] = api_version
        self.attempts = 0  # requests sent, retries included: for tests and diagnostics

    def _prepare(
        self,
        method: str,
        body: Mapping[str, Any] | None,
        params: Mapping[str, Any] | None,
        idempotency_key: str | None,
    ) -> tuple[bytes, dict[str, str], dict[str, str]]:
        """The body's bytes, the headers every attempt repeats, and the query."""
        content = json.dumps(body, separators=(",", ":")).encode() if body is not None else b""
        headers: dict[str, str] = {}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if method == "POST":
            headers["Idempotency-Key"] = idempotency_key or f"sdk_{secrets.token_hex(16)}"
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        query = {k: _query_value(v) for k, v in (params or {}).items() if v is not None}
        return content, headers, query

    def _sign(self, request: httpx.Request, content: bytes) -> None:
        """Sign this attempt (a new nonce and ``created`` each time) in agent mode."""
        self.attempts += 1
        if self.agent_key is None:
            return
        url = request.url
        signed = self.agent_key.headers(
            request.method,
            url.netloc.decode("ascii"),
            url.raw_path.decode("ascii").partition("?")[0],
            url.query.decode("ascii"),
            content,
            now=self._clock(),
            scheme=url.scheme,
        )
        request.headers.update(signed)

    def _delay(self, attempt: int, retry_after_s: float | None) -> float:
        backoff: float = min(self.backoff_max_s, self.backoff_s * 2.0**attempt) * self._jitter()
        if retry_after_s is not None:
            backoff = max(backoff, retry_after_s)
        return min(self.backoff_max_s, backoff)

    def _wait_before_retry(
        self, attempt: int, method: str, path: str, outcome: httpx.Response | Exception
    ) -> float | None:
        """Seconds to wait before the next attempt, or None to stop here (the answer is
        final, or this was the last attempt: a transport error then raises)."""
        last = attempt == self.retries_max
        if isinstance(outcome, Exception):
            if last:
                raise ConnectionFailed(
                    f"{method} {path}: {type(outcome).__name__}: {outcome}"
                ) from outcome
            return self._delay(attempt, None)
        if not last and _retryable(outcome):
            return self._delay(attempt, _retry_after(outcome))
        return None


class Client(_Settings):
    """A synchronous client; thread-safe as ``httpx.Client`` is. Close it (or use ``with``)."""

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        api_key: str | None = None,
        agent_key: AgentKey | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout_s: float = 30.0,
        retries_max: int = 3,
        backoff_s: float = 0.25,
        backoff_max_s: float = 8.0,
        api_version: str | None = None,
        clock: Callable[[], datetime] = _utc_now,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        super().__init__(
            api_key=api_key,
            agent_key=agent_key,
            retries_max=retries_max,
            backoff_s=backoff_s,
            backoff_max_s=backoff_max_s,
            api_version=api_version,
            clock=clock,
            jitter=jitter,
        )
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=base_url, transport=transport, timeout=timeout_s, headers=self._default_headers
        )
        self.agents = Agents(self)
        self.mandates = Mandates(self)
        self.payments = Payments(self)
        self.approvals = Approvals(self)
        self.products = Products(self)
        self.checkout_sessions = CheckoutSessions(self)
        self.orders = Orders(self)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    @property
    def base_url(self) -> str:
        return str(self._http.base_url).rstrip("/")

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Json:
        return self.request("GET", path, params=params)

    def post(
        self,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Json:
        return self.request("POST", path, body=body or {}, idempotency_key=idempotency_key)

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Json:
        """Send one request (with its retries) and return the JSON object answered, or raise
        the server's error."""
        method = method.upper()
        content, headers, query = self._prepare(method, body, params, idempotency_key)
        for attempt in range(self.retries_max + 1):
            request = self._http.build_request(
                method, path, content=content or None, params=query or None, headers=headers
            )
            self._sign(request, content)
            outcome: httpx.Response | Exception
            try:
                outcome = self._http.send(request)
            except httpx.TransportError as error:
                outcome = error
            wait_s = self._wait_before_retry(attempt, method, path, outcome)
            if wait_s is None:
                assert isinstance(outcome, httpx.Response)
                return _result(outcome)
            self._sleep(wait_s)
        raise AssertionError("unreachable: the last attempt returns or raises")


class AsyncClient(_Settings):
    """The asynchronous twin of :class:`Client`: the same options and resources, whose
    methods are awaited (``await pw.payments.create(...)``). Close it with ``aclose`` (or use
    ``async with``). Its transport is an ``httpx.AsyncBaseTransport`` (``httpx.ASGITransport``
    runs it against the ASGI app in-process)."""

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        api_key: str | None = None,
        agent_key: AgentKey | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout_s: float = 30.0,
        retries_max: int = 3,
        backoff_s: float = 0.25,
        backoff_max_s: float = 8.0,
        api_version: str | None = None,
        clock: Callable[[], datetime] = _utc_now,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        super().__init__(
            api_key=api_key,
            agent_key=agent_key,
            retries_max=retries_max,
            backoff_s=backoff_s,
            backoff_max_s=backoff_max_s,
            api_version=api_version,
            clock=clock,
            jitter=jitter,
        )
        self._sleep = sleep
        self._http = httpx.AsyncClient(
            base_url=base_url, transport=transport, timeout=timeout_s, headers=self._default_headers
        )
        self.agents = Agents(self)
        self.mandates = Mandates(self)
        self.payments = AsyncPayments(self)
        self.approvals = Approvals(self)
        self.products = Products(self)
        self.checkout_sessions = CheckoutSessions(self)
        self.orders = Orders(self)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    @property
    def base_url(self) -> str:
        return str(self._http.base_url).rstrip("/")

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Awaitable[Json]:
        return self.request("GET", path, params=params)

    def post(
        self,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Awaitable[Json]:
        return self.request("POST", path, body=body or {}, idempotency_key=idempotency_key)

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Json:
        """As :meth:`Client.request`, awaited."""
        method = method.upper()
        content, headers, query = self._prepare(method, body, params, idempotency_key)
        for attempt in range(self.retries_max + 1):
            request = self._http.build_request(
                method, path, content=content or None, params=query or None, headers=headers
            )
            self._sign(request, content)
            outcome: httpx.Response | Exception
            try:
                outcome = await self._http.send(request)
            except httpx.TransportError as error:
                outcome = error
            wait_s = self._wait_before_retry(attempt, method, path, outcome)
            if wait_s is None:
                assert isinstance(outcome, httpx.Response)
                return _result(outcome)
            await self._sleep(wait_s)
        raise AssertionError("unreachable: the last attempt returns or raises")


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _retryable(response: httpx.Response) -> bool:
    if response.status_code in RETRY_STATUSES:
        return True
    return response.status_code == 409 and _code(response) == "idempotency_in_flight"


def _code(response: httpx.Response) -> str | None:
    try:
        error = response.json().get("error", {})
    except (ValueError, AttributeError):
        return None
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, str) else None


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    return float(value) if value.isdigit() else None


def _result(response: httpx.Response) -> Json:
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    if response.is_success and isinstance(body, dict):
        return body
    if response.is_success:
        raise PaywardenError(
            f"HTTP {response.status_code} answered something other than a JSON object",
            code="invalid_response",
        )
    retry_after = _retry_after(response)
    raise from_response(
        response.status_code,
        body,
        response.headers.get("request-id"),
        int(retry_after) if retry_after is not None else None,
    )
