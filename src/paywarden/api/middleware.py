"""Pure ASGI middleware: request ids, body size limits, metrics.

Written against ASGI directly rather than Starlette's BaseHTTPMiddleware, which buffers
and adds a task per request on what will become the payment hot path.
"""

from __future__ import annotations

import json
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from paywarden.adapters.ids import new_id
from paywarden.api.http import error_response
from paywarden.kernel.errors import PaywardenError

__all__ = ["BodyLimit", "HotRoutes", "Metrics", "RequestId"]


class RequestId:
    """Give every request a ``req_…`` id, echoed in the ``Request-Id`` response header."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_id("req")
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_id)


class BodyTooLarge(Exception):
    pass


def error_body(status: int, code: str, message: str, request_id: str | None) -> bytes:
    kind = "invalid_request_error" if status < 500 else "api_error"
    payload: dict[str, Any] = {
        "error": {"type": kind, "code": code, "message": message, "param": None}
    }
    if request_id:
        payload["error"]["request_id"] = request_id
    return json.dumps(payload).encode()


class BodyLimit:
    """Refuse bodies over ``body_bytes_max`` with 413, by header and while streaming."""

    def __init__(self, app: ASGIApp, body_bytes_max: int) -> None:
        self.app = app
        self.body_bytes_max = body_bytes_max

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                declared = int(value) if value.isdigit() else -1
                if declared < 0 or declared > self.body_bytes_max:
                    await self._refuse(scope, send)
                    return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.body_bytes_max:
                    raise BodyTooLarge
            return message

        try:
            await self.app(scope, limited_receive, send)
        except BodyTooLarge:
            await self._refuse(scope, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        request_id = scope.get("state", {}).get("request_id")
        body = error_body(
            413,
            "request_too_large",
            f"the request body exceeds {self.body_bytes_max} bytes",
            request_id,
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class Metrics:
    """Count requests and time them, labelled by route template (not raw path)."""

    def __init__(self, app: ASGIApp, registry: CollectorRegistry) -> None:
        self.app = app
        self.requests = Counter(
            "paywarden_http_requests_total",
            "HTTP requests",
            ["method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "paywarden_http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route"],
            registry=registry,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            method = scope.get("method", "")
            self.requests.labels(method, template, str(status)).inc()
            self.latency.labels(method, template).observe(time.perf_counter() - started)


class HotRoutes:
    """Serve the hot path's routes (``POST /v1/payments`` and a few more) without FastAPI's
    router.

    Matching a path against every route, and the request/response wrappers around an
    endpoint, cost more than a third of the event loop's time per payment. A hot route is a
    method and a path, exact or a template whose parameters are plain strings, whose
    endpoint takes the ``Request`` and those parameters alone (``app._hot_routes`` checks
    it): this middleware, the innermost, calls that same endpoint, inside the same
    middleware (request id, metrics, rate limit, body limit). A
    :class:`~paywarden.kernel.errors.PaywardenError` is answered as the app's handler answers
    it; anything else propagates to the app's last-resort handler, as from a routed
    endpoint. The routes stay in the app, for their OpenAPI entries.
    """

    def __init__(self, app: ASGIApp, routes: dict[tuple[str, str], Any]) -> None:
        self.app = app
        self.exact = {key: route for key, route in routes.items() if not route.param_convertors}
        self.templates: dict[str, list[Any]] = {}
        for (method, _path), route in routes.items():
            if route.param_convertors:
                self.templates.setdefault(method, []).append(route)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        route = self.exact.get((method, path))
        params: dict[str, str] = {}
        if route is None:
            for template in self.templates.get(method, ()):
                match = template.path_regex.match(path)
                if match is not None:
                    route, params = template, match.groupdict()
                    break
            else:
                await self.app(scope, receive, send)
                return
        scope["route"] = route  # as the router sets it: metrics label by its template
        scope["path_params"] = params
        request = Request(scope, receive)
        try:
            response = await route.endpoint(request, **params)
        except PaywardenError as error:
            response = error_response(error, scope.get("state", {}).get("request_id"))
        await response(scope, receive, send)
