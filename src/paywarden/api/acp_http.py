"""The ACP request pipeline: version → bearer token (+ RFC 9421 signature) → idempotency →
effect → ACP's ``Error`` shape.

It follows the native pipeline (:mod:`paywarden.api.http`) step for step and reuses its
pieces (the JSON guards, the idempotency service with ACP section 6's body equivalence, the
RFC 9421 verifier with its nonce store); what differs is what ACP fixes:

- ``API-Version`` is required: missing or unknown is a 400 ``Error`` whose message lists the
  supported versions (``missing_api_version`` / ``unsupported_api_version``);
- ``Authorization: Bearer <ACP token>`` authenticates the agent
  (:mod:`paywarden.services.agent_tokens`); when ``Signature-Input`` is present the signature
  is verified too, and its key must belong to the same agent;
- every error is ACP's ``Error`` (``type``, ``code``, ``message``, ``param`` a JSONPath),
  never the native envelope; the response echoes ``Idempotency-Key``, and ``Request-Id``
  echoes the client's (see :class:`AcpRequestId`) or is generated.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from paywarden.api import acp_render
from paywarden.api.http import (
    _checked_body,
    _signed_agent,
    grouped_unit,
    refuse_nul,
    runtime,
)
from paywarden.kernel.errors import (
    AuthenticationFailed,
    InvalidRequest,
    PaywardenError,
)
from paywarden.kernel.principals import Principal
from paywarden.services import agent_tokens
from paywarden.store.unit_of_work import UnitOfWork

__all__ = ["AcpRequestId", "acp_get", "acp_post", "base_url", "error_response"]

M = TypeVar("M", bound=BaseModel)
Work = Callable[[UnitOfWork, Principal, M], tuple[int, dict[str, Any]]]
log = logging.getLogger("paywarden.acp")
REQUEST_ID_LENGTH_MAX = 200


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def error_response(error: PaywardenError, *, idempotency_key: str | None = None) -> Response:
    headers = {}
    if error.retry_after_s is not None:
        headers["Retry-After"] = str(error.retry_after_s)
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="acp"'
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    return Response(
        json.dumps(acp_render.error_body(error)),
        status_code=error.status,
        headers=headers,
        media_type="application/json",
    )


def _check_version(request: Request) -> None:
    version = request.headers.get("api-version")
    supported = ", ".join(acp_render.SUPPORTED_VERSIONS)
    if not version:
        raise InvalidRequest(
            f"the API-Version header is required; supported versions: {supported}",
            code="missing_api_version",
            param="$.headers.API-Version",
        )
    if version not in acp_render.SUPPORTED_VERSIONS:
        raise InvalidRequest(
            f"API-Version {version[:40]!r} is not supported; supported versions: {supported}",
            code="unsupported_api_version",
            param="$.headers.API-Version",
        )


def _token(request: Request) -> str:
    """The request's bearer token (its syntax only)."""
    scheme, _, secret = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise AuthenticationFailed(
            "send the agent's ACP token as `Authorization: Bearer acp_test_…`",
            code="missing_bearer_token",
        )
    return secret.strip()


async def _principal(request: Request) -> Principal:
    """The agent behind the bearer token; with ``Signature-Input``, also the signer, who must
    be the same agent."""
    secret = _token(request)
    store = runtime(request).store
    principal: Principal = await run_in_threadpool(
        store.run, lambda uow: agent_tokens.authenticate(uow, secret), read_only=True
    )
    if "signature-input" in request.headers:
        signer = await _signed_agent(request, allowed=True)
        if signer.id != principal.id or signer.livemode != principal.livemode:
            raise AuthenticationFailed(
                "the signing key belongs to another agent than the bearer token",
                code="signature_agent_mismatch",
            )
    return principal


async def _guarded(request: Request, run: Callable[[], Any]) -> Response:
    """Run one ACP call; every failure leaves as ACP's ``Error``."""
    key = request.headers.get("idempotency-key")
    try:
        response: Response = await run()
    except PaywardenError as error:
        return error_response(error, idempotency_key=key)
    except Exception:
        log.exception("unexpected error in ACP %s %s", request.method, request.url.path)
        return error_response(PaywardenError("an internal error occurred; it has been logged"))
    return response


def _json(status: int, text: str, *, key: str | None = None, replayed: bool = False) -> Response:
    headers = {"API-Version": acp_render.VERSION}
    if key:
        headers["Idempotency-Key"] = key
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return Response(text, status_code=status, headers=headers, media_type="application/json")


async def acp_get(
    request: Request, work: Callable[[UnitOfWork, Principal], tuple[int, dict[str, Any]]]
) -> Response:
    async def run() -> Response:
        _check_version(request)
        principal = await _principal(request)
        refuse_nul(request)
        store = runtime(request).store
        status, payload = await run_in_threadpool(
            store.run, lambda uow: work(uow, principal), read_only=True
        )
        return _json(status, json.dumps(payload))

    return await _guarded(request, run)


async def acp_post(request: Request, model: type[M], work: Work[M]) -> Response:
    """One ACP POST: the effect and its stored response commit together; a retry with the
    same ``Idempotency-Key`` and an equivalent body replays it (``Idempotent-Replayed``)."""

    async def run() -> Response:
        _check_version(request)
        if "signature-input" in request.headers:  # the signer is admitted first, on its own
            principal = await _principal(request)
            key, raw = await _checked_body(request)
            return await _claimed(request, lambda uow: principal, key, raw, model, work)
        secret = _token(request)
        try:
            key, raw = await _checked_body(request)
        except PaywardenError:
            await _principal(request)  # a stranger learns only that it is one
            raise
        # The token is read in the unit itself: no transaction and no thread hop of its own.
        return await _claimed(
            request, lambda uow: agent_tokens.authenticate(uow, secret), key, raw, model, work
        )

    return await _guarded(request, run)


async def _claimed(
    request: Request,
    admit: Callable[[UnitOfWork], Principal],
    key: str,
    raw: dict[str, Any],
    model: type[M],
    work: Work[M],
) -> Response:
    """The key's claim, the effect and its stored answer as one unit of work under group
    commit (as the native POSTs run: see ``paywarden.api.http.post``); a 4xx is stored in
    ACP's ``Error`` shape and raised for :func:`_guarded` to answer."""
    rt = runtime(request)
    unit = grouped_unit(
        rt,
        admit,
        path=request.url.path,
        key=key,
        raw=raw,
        model=model,
        work=work,
        render=lambda answer: answer,
        error_body=lambda error: json.dumps(acp_render.error_body(error)),
    )
    answer = await rt.store.grouped(unit)
    if answer.error is not None:
        raise answer.error
    return _json(answer.status, answer.body, key=key, replayed=answer.replayed)


def _client_request_id(scope: Scope) -> bytes | None:
    for name, value in scope.get("headers", []):
        if name == b"request-id":
            if 0 < len(value) <= REQUEST_ID_LENGTH_MAX and all(33 <= c <= 126 for c in value):
                return bytes(value)
            return None
    return None


class AcpRequestId:
    """On the ACP routes, echo the client's ``Request-Id`` (ACP: "echo of the request
    correlation id") in place of the generated one; a missing or unprintable one keeps the
    generated ``req_…``. Added outside :class:`~paywarden.api.middleware.RequestId`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client_id = None
        if scope["type"] == "http" and str(scope.get("path", "")).startswith("/acp/"):
            client_id = _client_request_id(scope)
        if client_id is None:
            await self.app(scope, receive, send)
            return
        echoed: bytes = client_id

        async def send_with_echo(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(n, v) for n, v in message.get("headers", []) if n != b"request-id"]
                headers.append((b"request-id", echoed))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_echo)
