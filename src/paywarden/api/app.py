"""The ASGI application: ``create_app(settings)``, used by ``paywarden serve`` and tests."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.routing import APIRoute
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException

import paywarden
from paywarden.api.acp import router as acp_router
from paywarden.api.acp_http import AcpRequestId
from paywarden.api.http import error_response, request_id
from paywarden.api.middleware import BodyLimit, HotRoutes, Metrics, RequestId
from paywarden.api.ratelimit import RateLimit, rate_limiters
from paywarden.api.route_index import index_included_routers
from paywarden.api.routes import router
from paywarden.api.routes_agents import router as agents_router
from paywarden.api.routes_approvals import router as approvals_router
from paywarden.api.routes_catalog import router as catalog_router
from paywarden.api.routes_checkout import router as checkout_router
from paywarden.api.routes_devices import router as devices_router
from paywarden.api.routes_mandates import router as mandates_router
from paywarden.api.routes_payouts import router as payouts_router
from paywarden.api.routes_privacy import router as privacy_router
from paywarden.api.routes_refund_requests import router as refund_requests_router
from paywarden.api.routes_webhooks import router as webhooks_router
from paywarden.api.runtime import Runtime
from paywarden.config import Settings, load_settings
from paywarden.kernel.errors import InvalidRequest, NotFound, PaywardenError
from paywarden.kernel.invariant import invariant
from paywarden.mcp import http as mcp_http
from paywarden.services import agents, approvals, audit, checkout, holds, idempotency, keys
from paywarden.services import payouts as payout_service
from paywarden.store import migrate
from paywarden.store.engine import make_engine
from paywarden.store.unit_of_work import Store, UnitOfWork
from paywarden.trust.custody import Purpose
from paywarden.web.routes import router as web_router
from paywarden.worker.delivery import deliver_in_process

__all__ = ["create_app", "create_app_from_environment", "freeze_heap"]

DESCRIPTION = """The paywarden API: wallets, a double-entry ledger, holds, captures,
refunds and transfers. Authenticate with `Authorization: Bearer pw_test_…`; send an
`Idempotency-Key` on every POST. Amounts are integers in minor units."""


def create_app(settings: Settings, store: Store | None = None) -> FastAPI:
    if store is None:
        engine = make_engine(
            settings.database_url,
            pool_size=settings.database_pool_size,
            sqlite_synchronous=settings.sqlite_synchronous,
        )
        store = Store(engine, lanes=settings.group_lanes)
    runtime = Runtime(settings=settings, store=store)
    _ = runtime.risk  # a bad risk setting fails at start, not on the first payment

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Background work runs on threads of this executor, never the shared pool: a task
        # cancelled at shutdown leaves its thread running, so the executor is drained (the
        # round in flight finishes) before the engine closes, and no connection outlives it.
        background = ThreadPoolExecutor(max_workers=2, thread_name_prefix="paywarden-background")

        async def in_thread(work: Callable[[], Any]) -> Any:
            return await asyncio.get_running_loop().run_in_executor(background, work)

        tasks = [asyncio.create_task(_maintain(runtime, in_thread))]
        if settings.webhook_delivery_in_process:
            delivery = deliver_in_process(store, settings, lambda: runtime.master_key, in_thread)
            tasks.append(asyncio.create_task(delivery))
        try:
            async with mcp_http.running(_app):
                yield
        finally:
            for running in tasks:
                running.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await running
            await asyncio.get_running_loop().run_in_executor(
                None, partial(background.shutdown, wait=True)
            )
            await asyncio.get_running_loop().run_in_executor(None, store.close)
            store.engine.dispose()

    app = FastAPI(
        title="paywarden", version=paywarden.__version__, description=DESCRIPTION, lifespan=lifespan
    )
    app.state.runtime = runtime
    registry = CollectorRegistry()
    routers = (
        router,
        agents_router,
        mandates_router,
        privacy_router,
        approvals_router,
        catalog_router,
        checkout_router,
        refund_requests_router,
        webhooks_router,
        payouts_router,
        devices_router,
        acp_router,
        web_router,
    )
    for included in routers:
        app.include_router(included)
    index_included_routers(app)  # a router without a route for the path is skipped at once
    _add_operational_routes(app, runtime, registry)
    mcp_http.mount(app, settings)  # /mcp, when an MCP agent key is configured
    _add_error_handlers(app)
    # The last added runs first: RequestId → Metrics → RateLimit → BodyLimit → HotRoutes →
    # the app, so a 413 or 429 is counted as such, and every response carries its request id.
    app.add_middleware(HotRoutes, routes=_hot_routes(routers))
    app.add_middleware(BodyLimit, body_bytes_max=settings.body_bytes_max)
    app.add_middleware(RateLimit, **rate_limiters(settings))  # before the body is read
    app.add_middleware(Metrics, registry=registry)
    app.add_middleware(RequestId)
    app.add_middleware(AcpRequestId)  # outermost: on /acp/ the client's Request-Id wins
    return app


def create_app_from_environment() -> FastAPI:
    """The app of one of several ``paywarden serve --workers N`` processes: its settings read
    as the parent read them (``serve`` puts its database URL and TOML file in the
    environment the workers inherit); the parent migrated the database already."""
    app = create_app(load_settings())
    freeze_heap()
    return app


def freeze_heap() -> None:
    """Exempt what the process holds once it is set up (modules, the app, its routes and
    models: about 200,000 objects) from the garbage collector's full collections. Each of
    those otherwise took 100 to 170 ms with the GIL held, and every request waiting on the
    process paid for it (the tail latency of ``paywarden serve``); with them exempt a full
    collection takes about a millisecond. For server processes only: what is frozen is
    never collected, so a process that makes many apps (a test run) must not call it."""
    gc.collect()
    gc.freeze()


log = logging.getLogger("paywarden")
# Served by HotRoutes, past the router: the agent payment, and the busiest routes of the
# ledger, checkout and mandate reads (see the benchmark's mixed load).
HOT_ROUTES = (
    ("POST", "/v1/payments"),
    ("GET", "/v1/payments/{payment_id}"),
    ("GET", "/v1/mandates/{mandate_id}"),
    ("POST", "/v1/checkout_sessions"),
    ("POST", "/v1/transfers"),
    ("POST", "/v1/holds"),
    ("POST", "/v1/holds/{hold_id}/capture"),
    ("POST", "/v1/holds/{hold_id}/void"),
    ("POST", "/v1/refunds"),
)


def _hot_routes(
    routers: Sequence[APIRouter], hot: Sequence[tuple[str, str]] = HOT_ROUTES
) -> dict[tuple[str, str], APIRoute]:
    """The ``hot`` routes (:data:`HOT_ROUTES`) of the app's ``routers``, each checked to be
    served alike past the router: its endpoint takes the request and its path parameters
    alone (plain strings), and no other route answers the same method on a path its
    template matches."""
    api_routes = [r for routes in routers for r in routes.routes if isinstance(r, APIRoute)]
    found = {
        (method, route.path): route
        for route in api_routes
        for method in route.methods or ()
        if (method, route.path) in hot
    }
    invariant(len(found) == len(hot), "every hot route is a route of the app")
    for (method, path), route in found.items():
        parameters = inspect.signature(route.endpoint).parameters
        invariant(
            list(parameters) == ["request", *route.param_convertors],
            f"hot route {method} {path} takes the request and its path parameters alone",
        )
        invariant(
            all(p.annotation in (str, "str") for name, p in parameters.items() if name != "request")
            and all(c.regex == "[^/]+" for c in route.param_convertors.values()),
            f"hot route {method} {path}: its path parameters are plain strings",
        )
        for other in api_routes:
            invariant(
                other is route
                or method not in (other.methods or ())
                or route.path_regex.match(other.path) is None,
                f"hot route {method} {path} would shadow {other.path}",
            )
    return found


InThread = Callable[[Callable[[], Any]], Awaitable[Any]]


PURGE_BATCHES_MAX = 200  # a maintenance round forgets at most this many batches of a kind


def drain(store: Store, purge: Callable[[UnitOfWork], int], batch_size_max: int) -> int:
    """Run ``purge`` (at most ``batch_size_max`` rows, one transaction each, so the writer
    is never held for long) until a batch comes back short: a round keeps up with however
    many expired since the last one, up to :data:`PURGE_BATCHES_MAX` batches."""
    total = 0
    for _ in range(PURGE_BATCHES_MAX):
        done = store.run(purge)
        total += done
        if done < batch_size_max:
            break
    return total


async def _maintain(runtime: Runtime, in_thread: InThread) -> None:
    """Every ``hold_expiry_interval_s``: release holds past their deadline, forget
    idempotency keys and nonces past retention, settle pending payouts; every
    ``audit_checkpoint_interval_s``: seal the audit log with a signed checkpoint. Errors are
    logged and retried next round: the work is idempotent and a missed round only delays it."""
    settings = runtime.settings
    last_checkpoint = asyncio.get_running_loop().time()
    while True:
        await asyncio.sleep(settings.hold_expiry_interval_s)
        try:
            await in_thread(partial(runtime.store.run, holds.expire_holds))
            await in_thread(
                partial(
                    drain,
                    runtime.store,
                    idempotency.purge_expired,
                    idempotency.PURGE_BATCH_MAX,
                )
            )
            await in_thread(
                partial(
                    drain,
                    runtime.store,
                    agents.purge_expired_nonces,
                    agents.NONCE_PURGE_BATCH_MAX,
                )
            )
            await in_thread(partial(runtime.store.run, approvals.expire_due))
            await in_thread(partial(runtime.store.run, checkout.expire_due))
            await in_thread(partial(payout_service.process_payouts, runtime.store))
            now = asyncio.get_running_loop().time()
            if now - last_checkpoint >= settings.audit_checkpoint_interval_s:
                await in_thread(
                    partial(runtime.store.run, partial(seal_audit_log, runtime=runtime))
                )
                last_checkpoint = now
        except Exception:
            log.exception("maintenance round failed; retrying next round")


def seal_audit_log(uow: UnitOfWork, runtime: Runtime) -> None:
    """Write a signed checkpoint over every audit partition's head."""
    signer = keys.active_signer(uow, Purpose.AUDIT_CHECKPOINT, runtime.master_key)
    audit.checkpoint(uow, signer)


def _add_operational_routes(app: FastAPI, runtime: Runtime, registry: CollectorRegistry) -> None:
    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"])
    def readyz() -> Response:
        """The database answers and its schema is current."""
        try:
            runtime.store.ping()
            current = migrate.current_revision(runtime.store.engine)
        except Exception:
            return Response(
                json.dumps({"status": "database unavailable"}),
                status_code=503,
                media_type="application/json",
            )
        head = migrate.head_revision()
        ready = current == head
        body = {
            "status": "ok" if ready else "migrations pending",
            "schema": current,
            "expected": head,
        }
        return Response(
            json.dumps(body), status_code=200 if ready else 503, media_type="application/json"
        )

    @app.get("/metrics", tags=["operations"], include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/.well-known/jwks.json", tags=["operations"])
    def jwks() -> Response:
        """The platform's published signing keys (receipts, tokens, audit checkpoints)."""
        body = runtime.store.run(keys.published_jwks, read_only=True)
        return Response(
            json.dumps(body),
            media_type="application/json",
            headers={"Cache-Control": "public, max-age=300"},
        )


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(PaywardenError)
    async def paywarden_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, PaywardenError)
        return error_response(error, request_id(request))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, RequestValidationError)
        first: dict[str, Any] = error.errors()[0]
        location = [str(part) for part in first.get("loc", ())]
        param = "$." + ".".join(location[1:]) if len(location) > 1 else None
        return error_response(
            InvalidRequest(f"{param}: {first.get('msg')}", code="invalid_value", param=param),
            request_id(request),
        )

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        wrapped: PaywardenError
        if error.status_code == 404:
            wrapped = NotFound("no such route", code="route_not_found")
        else:
            wrapped = InvalidRequest(str(error.detail), code="invalid_request")
            wrapped.status = error.status_code  # type: ignore[misc]
        return error_response(wrapped, request_id(request))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> Response:
        # Starlette answers this one outside the middleware stack, past RequestId.
        req_id = request_id(request)
        log.error(
            "unexpected error in %s %s (%s)",
            request.method,
            request.url.path,
            req_id,
            exc_info=error,
        )
        response = error_response(
            PaywardenError("an internal error occurred; it has been logged"), req_id
        )
        if req_id:
            response.headers["Request-Id"] = req_id
        return response
