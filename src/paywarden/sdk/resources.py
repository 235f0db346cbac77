"""The native API's resources, one small class each, hanging off :class:`Client`.

Each method is one request; the answer is the wire object as a ``dict`` (``id``, ``object``,
``livemode``, ``created`` and the object's fields) for :class:`~paywarden.sdk.Client`, and an
awaitable of it for :class:`~paywarden.sdk.AsyncClient`: the resources are generic in ``R``.
Amounts are integers in minor units, currencies lowercase ISO 4217. ``idempotency_key`` may be
given on any POST; by default the client draws one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Generic, Protocol, TypeVar
from urllib.parse import quote

__all__ = [
    "Agents",
    "Approvals",
    "AsyncPayments",
    "CheckoutSessions",
    "Mandates",
    "Orders",
    "Payments",
    "Products",
]

Json = dict[str, Any]
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)


class _Caller(Protocol[R_co]):
    def get(self, path: str, params: Mapping[str, Any] | None = None) -> R_co: ...

    def post(
        self,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> R_co: ...


def _id(value: str) -> str:
    """An id as one path segment: a hostile id cannot climb to another route."""
    return quote(value, safe="")


def _body(**fields: Any) -> Json:
    return {name: value for name, value in fields.items() if value is not None}


class _Resource(Generic[R]):
    def __init__(self, client: _Caller[R]) -> None:
        self._client = client


class Agents(_Resource[R]):
    def get(self, agent_id: str) -> R:
        return self._client.get(f"/v1/agents/{_id(agent_id)}")


class Mandates(_Resource[R]):
    def request(
        self,
        *,
        user: str,
        currency: str,
        constraints: Sequence[Mapping[str, Any]],
        timezone: str = "UTC",
        conversation_excerpt: str | None = None,
        idempotency_key: str | None = None,
    ) -> R:
        """Ask ``user`` for a mandate (agent). Answers ``pending_consent`` with
        ``consent_url``, the page where the user reads and consents."""
        body = _body(
            user=user,
            currency=currency,
            constraints=list(constraints),
            timezone=timezone,
            conversation_excerpt=conversation_excerpt,
        )
        return self._client.post("/v1/mandates", body, idempotency_key=idempotency_key)

    def get(self, mandate_id: str) -> R:
        """The mandate with ``status`` and ``remaining`` (amount and count per budget)."""
        return self._client.get(f"/v1/mandates/{_id(mandate_id)}")

    def amend(self, mandate_id: str, constraints: Sequence[Mapping[str, Any]]) -> R:
        path = f"/v1/mandates/{_id(mandate_id)}/amend"
        return self._client.post(path, {"constraints": list(constraints)})

    def token(self, mandate_id: str) -> R:
        return self._client.post(f"/v1/mandates/{_id(mandate_id)}/token")

    def consent(self, mandate_id: str) -> R:
        """The user consents (the user's secret key; agent signatures are refused)."""
        return self._client.post(f"/v1/mandates/{_id(mandate_id)}/consent")

    def pause(self, mandate_id: str) -> R:
        return self._client.post(f"/v1/mandates/{_id(mandate_id)}/pause")

    def resume(self, mandate_id: str) -> R:
        return self._client.post(f"/v1/mandates/{_id(mandate_id)}/resume")

    def revoke(self, mandate_id: str) -> R:
        return self._client.post(f"/v1/mandates/{_id(mandate_id)}/revoke")


class _Payments(_Resource[R]):
    def create(
        self,
        *,
        mandate: str,
        merchant: str,
        amount: int,
        currency: str,
        cart_hash: str | None = None,
        idempotency_key: str | None = None,
    ) -> R:
        """Pay ``merchant`` under ``mandate`` (agent). ``status`` is ``succeeded``,
        ``requires_confirmation`` (with ``approval`` and ``approval_url``) or ``declined``
        (with ``reasons``)."""
        body = _body(
            mandate=mandate,
            merchant=merchant,
            amount=amount,
            currency=currency,
            cart_hash=cart_hash,
        )
        return self._client.post("/v1/payments", body, idempotency_key=idempotency_key)

    def get(self, payment_id: str) -> R:
        return self._client.get(f"/v1/payments/{_id(payment_id)}")


class Payments(_Payments[Json]):
    def wait(
        self,
        payment_id: str,
        *,
        until: Callable[[Json], bool] = lambda p: p["status"] != "requires_confirmation",
        timeout_s: float = 30.0,
        interval_s: float = 0.2,
    ) -> Json:
        """Poll the payment until ``until`` holds (by default: no longer waiting for the
        user) or ``timeout_s`` passes; the last state either way."""
        deadline = time.monotonic() + timeout_s
        payment = self.get(payment_id)
        while not until(payment) and time.monotonic() < deadline:
            time.sleep(interval_s)
            payment = self.get(payment_id)
        return payment


class AsyncPayments(_Payments[Awaitable[Json]]):
    async def wait(
        self,
        payment_id: str,
        *,
        until: Callable[[Json], bool] = lambda p: p["status"] != "requires_confirmation",
        timeout_s: float = 30.0,
        interval_s: float = 0.2,
    ) -> Json:
        """As :meth:`Payments.wait`, without blocking the event loop."""
        deadline = time.monotonic() + timeout_s
        payment = await self.get(payment_id)
        while not until(payment) and time.monotonic() < deadline:
            await asyncio.sleep(interval_s)
            payment = await self.get(payment_id)
        return payment


class Approvals(_Resource[R]):
    def get(self, approval_id: str) -> R:
        return self._client.get(f"/v1/approvals/{_id(approval_id)}")

    def approve(self, approval_id: str, *, binding_hash: str) -> R:
        """The user approves (the user's key): the platform completes the payment."""
        path = f"/v1/approvals/{_id(approval_id)}/approve"
        return self._client.post(path, {"binding_hash": binding_hash})

    def decline(self, approval_id: str) -> R:
        return self._client.post(f"/v1/approvals/{_id(approval_id)}/decline")


class Products(_Resource[R]):
    def search(
        self,
        query: str = "",
        *,
        merchant: str | None = None,
        category: str | None = None,
        max_amount: int | None = None,
        in_stock: bool | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> R:
        """Products whose words begin with every word of ``query``, best first (a list
        object with ``next_offset``); ``max_amount`` is a price ceiling in minor units."""
        params = {
            "q": query or None,
            "merchant": merchant,
            "category": category,
            "max_amount": max_amount,
            "in_stock": in_stock,
            "limit": limit,
            "offset": offset,
        }
        return self._client.get("/v1/products", params)

    def get(self, product_id: str) -> R:
        return self._client.get(f"/v1/products/{_id(product_id)}")


class CheckoutSessions(_Resource[R]):
    def create(self, body: Mapping[str, Any], *, idempotency_key: str | None = None) -> R:
        return self._client.post("/v1/checkout_sessions", body, idempotency_key=idempotency_key)

    def update(self, session_id: str, body: Mapping[str, Any]) -> R:
        return self._client.post(f"/v1/checkout_sessions/{_id(session_id)}", body)

    def get(self, session_id: str) -> R:
        return self._client.get(f"/v1/checkout_sessions/{_id(session_id)}")

    def complete(
        self, session_id: str, body: Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> R:
        path = f"/v1/checkout_sessions/{_id(session_id)}/complete"
        return self._client.post(path, body, idempotency_key=idempotency_key)

    def cancel(self, session_id: str) -> R:
        return self._client.post(f"/v1/checkout_sessions/{_id(session_id)}/cancel")


class Orders(_Resource[R]):
    def get(self, order_id: str) -> R:
        return self._client.get(f"/v1/orders/{_id(order_id)}")

    def list(self, **filters: Any) -> R:
        return self._client.get("/v1/orders", filters)

    def refund(self, order_id: str, *, amount: int | None = None, reason: str | None = None) -> R:
        """Refund to the original payer now (a merchant's or admin's key; full when
        ``amount`` is None)."""
        path = f"/v1/orders/{_id(order_id)}/refunds"
        return self._client.post(path, _body(amount=amount, reason=reason))

    def request_refund(
        self, order_id: str, *, amount: int | None = None, reason: str = "requested by the user"
    ) -> R:
        """Ask the merchant for a refund to the original payer (an agent's request: nothing
        moves until the merchant approves; full when ``amount`` is None)."""
        path = f"/v1/orders/{_id(order_id)}/refund_requests"
        return self._client.post(path, _body(amount=amount, reason=reason))
