"""The request pipeline every handler uses: authenticate → idempotency → effect → render.

Handlers stay a few lines long; this module owns the order of checks that the contracts
fix, the error shape, and the threadpool hop to the synchronous store.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, NoReturn, Protocol, TypeVar

from fastapi import Request
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from paywarden.api.runtime import Runtime
from paywarden.kernel.errors import (
    AuthenticationFailed,
    InvalidRequest,
    NotFound,
    PaywardenError,
)
from paywarden.kernel.principals import Principal
from paywarden.services import agents, idempotency, identity
from paywarden.services.records import Page, wire
from paywarden.store.unit_of_work import Store, UnitOfWork
from paywarden.trust.keys import PublicKey
from paywarden.trust.pan import card_number_path
from paywarden.trust.signatures import Policy, RequestParts, VerifiedSignature, verify_request

__all__ = [
    "Answer",
    "authenticated",
    "body_docs",
    "claim_in",
    "error_response",
    "grouped_unit",
    "json_response",
    "list_body",
    "post",
    "read",
    "read_json",
    "signed_admission",
    "verify_agent",
]

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")
# Threads that read an agent's key the cache does not hold yet, off the event loop; the rest
# of a grouped POST runs on the loop and on a lane's thread (Store.grouped).
HOT_WORKERS_MAX = 16
VERSION_HEADER = "Paywarden-Version"
JSON_DEPTH_MAX = 32
PATH_LENGTH_MAX = 500  # the length of idempotency_keys.path
AGENT_POLICY = Policy(allowed_tags=("agent-payer-auth", "web-bot-auth"))
_AGENT_KEYS = agents.KeyCache()  # keyid -> parsed key; statuses are read on every request


def runtime(request: Request) -> Runtime:
    value: Runtime = request.app.state.runtime
    return value


def request_id(request: Request) -> str | None:
    value = request.scope.get("state", {}).get("request_id")
    return str(value) if value else None


def error_payload(error: PaywardenError, req_id: str | None) -> str:
    body = error.to_wire()
    if req_id:
        body["request_id"] = req_id
    return json.dumps({"error": body})


def error_response(error: PaywardenError, req_id: str | None) -> Response:
    headers = {}
    if error.retry_after_s is not None:
        headers["Retry-After"] = str(error.retry_after_s)
    if error.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return Response(
        error_payload(error, req_id),
        status_code=error.status,
        headers=headers,
        media_type="application/json",
    )


def json_response(status: int, text: str, *, version: str, replayed: bool = False) -> Response:
    headers = {VERSION_HEADER: version}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return Response(text, status_code=status, headers=headers, media_type="application/json")


async def authenticated(request: Request, *, allow_agents: bool = False) -> tuple[Principal, str]:
    """The principal behind the Bearer key, and the API version this request speaks.

    A request without an Authorization header but with a ``Signature-Input`` is an agent's
    (RFC 9421); only routes that pass ``allow_agents`` accept it (see :func:`_signed_agent`).
    """
    secret = _bearer(request)
    if secret is None:
        principal = await _signed_agent(request, allowed=allow_agents)
    else:
        principal = await run_in_threadpool(
            runtime(request).store.run, partial(_key_holder, request, secret), read_only=True
        )
    return principal, _version(request, principal.api_version)


def _is_signed(request: Request) -> bool:
    """An agent's request: no Authorization header, a ``Signature-Input`` (RFC 9421)."""
    return not request.headers.get("authorization") and "signature-input" in request.headers


def _bearer(request: Request) -> str | None:
    """The secret of the request's Bearer key; None for an agent's signed request."""
    if _is_signed(request):
        return None
    scheme, _, secret = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise AuthenticationFailed("send your secret key as `Authorization: Bearer pw_test_…`")
    return secret.strip()


def _key_holder(request: Request, secret: str, uow: UnitOfWork) -> Principal:
    """The principal behind the Bearer key ``secret``, read in the caller's unit of work, once
    the request's API version is known to be one we speak (its key's by default)."""
    principal = identity.authenticate(uow, secret)
    _version(request, principal.api_version)
    return principal


def _version(request: Request, default: str) -> str:
    """The API version the request asks for (``default``: its key's), if it is one we speak."""
    version = request.headers.get(VERSION_HEADER) or default
    if version not in identity.SUPPORTED_API_VERSIONS:
        supported = ", ".join(identity.SUPPORTED_API_VERSIONS)
        raise InvalidRequest(
            f"unknown {VERSION_HEADER} {version!r}; supported: {supported}",
            code="invalid_api_version",
            param=f"$.headers.{VERSION_HEADER}",
        )
    return version


async def _signed_agent(request: Request, *, allowed: bool) -> Principal:
    """The agent whose RFC 9421 signature the request carries. The signature is verified,
    then the key's status is checked and the nonce remembered in the store, before
    idempotency and the effect; a replayed nonce is ``nonce_replayed`` on every node."""
    if not allowed:
        _refuse_agent()
    parts = await _request_parts(request)
    return await run_in_threadpool(_admit_agent, runtime(request).store, parts)


def _refuse_agent() -> NoReturn:
    raise AuthenticationFailed(
        "this route does not accept agent signatures; send a secret key as Bearer",
        code="agent_not_allowed",
    )


async def _request_parts(request: Request) -> RequestParts:
    raw_path: bytes = request.scope.get("raw_path") or request.url.path.encode()
    return RequestParts(
        method=request.method,
        scheme=request.url.scheme,
        authority=request.headers.get("host", ""),
        path=raw_path.decode("latin-1").partition("?")[0],
        query=request.scope.get("query_string", b"").decode("latin-1"),
        headers=[
            (name.decode("latin-1"), value.decode("latin-1")) for name, value in request.headers.raw
        ],
        body=await request.body(),  # Starlette keeps it: post() reads it again
    )


def verify_agent(store: Store, parts: RequestParts) -> VerifiedSignature:
    """The request's RFC 9421 signature, verified with the (cached) key its keyid names."""

    def load(keyid: str) -> PublicKey | None:
        return store.run(lambda uow: agents.key_material(uow, keyid), read_only=True)

    return verify_request(
        parts,
        keys=lambda keyid: _AGENT_KEYS.get(keyid, lambda: load(keyid)),
        now=store.clock.now(),
        policy=AGENT_POLICY,
    )


class _KeyNotCached(Exception):
    """The key a signature names is not in the cache (see :func:`_verify_cached`)."""


def _verify_cached(store: Store, parts: RequestParts) -> VerifiedSignature | None:
    """:func:`verify_agent` where its key is cached already, as it is for every agent that
    has signed before: CPU alone, fit for the event loop. None where the key would have to
    be read from the store (then :func:`verify_agent`, on a worker thread)."""

    def cached(keyid: str) -> PublicKey:
        key = _AGENT_KEYS.cached(keyid)
        if key is None:
            raise _KeyNotCached(keyid)
        return key

    try:
        return verify_request(parts, keys=cached, now=store.clock.now(), policy=AGENT_POLICY)
    except _KeyNotCached:
        return None


def _admit_agent(store: Store, parts: RequestParts) -> Principal:
    return store.run(signed_admission(store, verify_agent(store, parts)))


def _depth(value: Any) -> int:
    """Nesting depth, computed without recursion (a hostile body may nest very deep)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
    return deepest


# The only places a card number may arrive: a top-up's card, tokenized by the rail at once.
CARD_NUMBER_FIELDS = frozenset({"$.card.number"})


def parse_json_object(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as error:
        raise InvalidRequest(
            f"the body is not valid JSON: {str(error)[:120]}", code="invalid_json"
        ) from None
    if not isinstance(body, dict):
        raise InvalidRequest("the body must be a JSON object", code="invalid_json")
    if _depth(body) > JSON_DEPTH_MAX:
        raise InvalidRequest(
            f"the body nests deeper than {JSON_DEPTH_MAX} levels", code="invalid_json"
        )
    try:  # Python's parser lets through what JSON forbids and later steps choke on
        json.dumps(body, ensure_ascii=False, allow_nan=False).encode()
    except ValueError:  # NaN/Infinity (or 1e999), or an unpaired surrogate escape
        raise InvalidRequest(
            "the body holds NaN, Infinity or an unpaired \\u surrogate", code="invalid_json"
        ) from None
    at = _nul_path(body)
    if at is not None:
        raise InvalidRequest(f"{at[2:]} holds a NUL character", code="invalid_value", param=at)
    at = card_number_path(body, allowed=CARD_NUMBER_FIELDS)
    if at is not None:  # never stored, logged or echoed: refused before anything keeps it
        raise InvalidRequest(
            f"{at[2:]} holds what looks like a card number; paywarden never stores card "
            "numbers (only a top-up's card.number takes one)",
            code="card_number_in_text",
            param=at,
        )
    return body


def _nul_path(value: Any) -> str | None:
    """The JSON path of the first string or key holding NUL, which PostgreSQL text refuses."""
    stack: list[tuple[Any, str]] = [(value, "$")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str) and "\x00" in item:
            return path
        if isinstance(item, dict):
            for name, child in item.items():
                if "\x00" in name:
                    return path
                stack.append((child, f"{path}.{name}"))
        elif isinstance(item, list):
            stack.extend((child, f"{path}[{index}]") for index, child in enumerate(item))
    return None


def refuse_nul(request: Request) -> None:
    """NUL in the (decoded) path or query would reach PostgreSQL, which refuses it."""
    texts = [request.url.path, *(t for pair in request.query_params.multi_items() for t in pair)]
    if any("\x00" in text for text in texts):
        raise InvalidRequest("the path or query holds a NUL character", code="invalid_value")


def _json_path(location: tuple[int | str, ...]) -> str:
    path = "$"
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def validate(model: type[M], body: dict[str, Any]) -> M:
    """Check a body's shape; the first problem becomes one clear 400."""
    try:
        return model.model_validate(body)
    except ValidationError as error:
        first = error.errors()[0]
        param = _json_path(tuple(first["loc"]))
        code = {
            "extra_forbidden": "unknown_parameter",
            "missing": "parameter_missing",
        }.get(first["type"], "invalid_value")
        raise InvalidRequest(f"{param[2:]}: {first['msg']}", code=code, param=param) from None


async def post(
    request: Request,
    model: type[M],
    work: Callable[[UnitOfWork, Principal, M], Any],
    *,
    status: int = 200,
    render: Callable[[Any], tuple[int, dict[str, Any]]] | None = None,
    allow_agents: bool = False,
) -> Response:
    """Run one POST: authenticate, then claim the idempotency key, run ``work`` and store the
    response with the effect as one unit of work under group commit, or replay what the key
    already holds; see :func:`_post_grouped`. ``allow_agents``: a signed agent request
    (RFC 9421) may call this route."""
    return await _post_grouped(
        request, model, work, status=status, render=render, allow_agents=allow_agents
    )


def claim_in(
    rt: Runtime, scope: idempotency.Scope, fingerprint: str
) -> Callable[[UnitOfWork], idempotency.Claimed | idempotency.Replay]:
    """The claim of ``scope``'s key for a request body's ``fingerprint``, as a unit of work,
    with this server's retention and lock time."""
    return lambda uow: idempotency.claim(
        uow,
        scope,
        fingerprint,
        retention=rt.idempotency_retention,
        lock_s=rt.settings.idempotency_lock_s,
    )


async def _checked_body(request: Request) -> tuple[str, dict[str, Any]]:
    """The Idempotency-Key and the parsed body, once path and body passed their screens."""
    return _checked_body_of(request, request.url.path, await request.body())


def _checked_body_of(request: Request, path: str, body: bytes) -> tuple[str, dict[str, Any]]:
    key = idempotency.check_key(request.headers.get("idempotency-key"))
    refuse_nul(request)
    if len(path) > PATH_LENGTH_MAX:  # no id is that long; the key could not be kept
        raise NotFound("no such object: the path is too long to name one")
    return key, parse_json_object(body)


@dataclass(frozen=True, slots=True)
class Answer:
    """What one grouped POST answers: status and body, whether it is a replay, and the
    error behind a 4xx the request itself caused (for its headers)."""

    status: int
    body: str
    replayed: bool = False
    error: PaywardenError | None = None


class Admitted(Protocol):
    """Who a grouped POST runs for (a principal, a device): its keys' scope."""

    @property
    def scope(self) -> str: ...


A = TypeVar("A", bound=Admitted)


def grouped_unit(
    rt: Runtime,
    admit: Callable[[UnitOfWork], A],
    *,
    path: str,
    key: str,
    raw: dict[str, Any],
    model: type[M],
    work: Callable[[UnitOfWork, A, M], Any],
    render: Callable[[Any], tuple[int, dict[str, Any]]] | None = None,
    status: int = 200,
    req_id: str | None = None,
    error_body: Callable[[PaywardenError], str] | None = None,
) -> Callable[[UnitOfWork], Answer]:
    """The unit of work of one grouped POST (see :func:`_post_grouped`), for
    ``Store.grouped``: admission, the key's claim, the effect in a savepoint, and the stored
    response. ``paywarden bench`` runs the same unit in-process (``Store.run_grouped``).
    ``error_body`` renders a 4xx for the record (default: the native error envelope)."""
    fingerprint = idempotency.fingerprint(raw, rt.secret)

    def unit(uow: UnitOfWork) -> Answer:
        admitted = admit(uow)
        scope = idempotency.Scope(admitted.scope, "POST", path, key)
        claimed = claim_in(rt, scope, fingerprint)(uow)
        if isinstance(claimed, idempotency.Replay):
            return Answer(claimed.status, claimed.body, replayed=True)
        savepoint = uow.savepoint()
        try:
            result = work(uow, admitted, validate(model, raw))
            code, payload = render(result) if render else (status, wire(result))
            text = json.dumps(payload)
            answer = Answer(code, text)
        except PaywardenError as error:
            savepoint.rollback()
            if error.status >= 500:
                raise
            body = error_body(error) if error_body else error_payload(error, req_id)
            answer = Answer(error.status, body, error=error)
            idempotency.complete_claimed_here(uow, scope, claimed, answer.status, answer.body)
        else:
            # Stored before the release, so that on PostgreSQL it goes out in the release's
            # round trip; if the release fails, the unit fails whole, its claim with it. A
            # secret key in the answer is shown once and never stored.
            stored = _without_secrets(payload, text)
            idempotency.complete_claimed_here(uow, scope, claimed, code, stored)
            savepoint.commit()
        return answer

    return unit


def signed_admission(
    store: Store, verified: VerifiedSignature
) -> Callable[[UnitOfWork], Principal]:
    """The admission of an agent whose signature verified: key status and nonce, in the
    caller's unit of work."""
    now = store.clock.now()

    def admit(uow: UnitOfWork) -> Principal:
        return agents.admit_signed_request(uow, verified, now=now, max_age=AGENT_POLICY.max_age)

    return admit


async def _post_grouped(
    request: Request,
    model: type[M],
    work: Callable[[UnitOfWork, Principal, M], Any],
    *,
    status: int,
    render: Callable[[Any], tuple[int, dict[str, Any]]] | None,
    allow_agents: bool,
) -> Response:
    """One POST as one unit of work under group commit (``Store.grouped``).

    The caller's admission (a signed agent's key status and nonce, or the read of a secret
    key), the key's claim, the effect and the stored response run in one transaction, which
    commits with the concurrent requests' units: they are durable together or not at all. A
    request that fails (4xx) keeps its admission and its stored error; its effect is rolled
    back to a savepoint. A 5xx rolls everything back, so a retry runs afresh. A second
    request with the same key waits for the first to commit (SQLite: one writer;
    PostgreSQL: the key's unique index) and then replays its answer. A signature is checked
    before, outside any transaction, on the event loop when its key is cached (CPU alone),
    else on a worker thread that reads the key; the unit is awaited with
    ``Store.grouped``, so no thread waits for the commit."""
    rt = runtime(request)
    secret = _bearer(request)
    if secret is None and not allow_agents:
        _refuse_agent()
    path, req_id = request.url.path, request_id(request)
    admit: Callable[[UnitOfWork], Principal]
    admitted: list[Principal] = []
    if secret is None:  # an agent's: the signature is verified before anything else
        admit, parts = await _verified_agent(request, rt.store)
        version = _version(request, identity.API_VERSION)
        key, raw = _checked_body_of(request, path, parts.body)
    else:
        try:
            key, raw = await _checked_body(request)
        except PaywardenError:
            await authenticated(request)  # a stranger learns only that it is one
            raise
        bearer = secret

        def admit(uow: UnitOfWork) -> Principal:
            # The key is read in the unit itself: no transaction and no thread hop of its own.
            admitted.append(_key_holder(request, bearer, uow))
            return admitted[-1]

    unit = grouped_unit(
        rt,
        admit,
        path=path,
        key=key,
        raw=raw,
        model=model,
        work=work,
        render=render,
        status=status,
        req_id=req_id,
    )
    answer = await rt.store.grouped(unit)
    if admitted:
        version = _version(request, admitted[-1].api_version)
    if answer.error is not None:
        response = error_response(answer.error, req_id)
        response.headers[VERSION_HEADER] = version
        return response
    return json_response(answer.status, answer.body, version=version, replayed=answer.replayed)


async def _verified_agent(
    request: Request, store: Store
) -> tuple[Callable[[UnitOfWork], Principal], RequestParts]:
    """An agent's signed request, its signature verified (on the event loop when its key is
    cached, else on a worker thread that reads the key): its admission, to run in the
    request's unit of work, and its parts."""
    parts = await _request_parts(request)
    verified = _verify_cached(store, parts)
    if verified is None:  # its key is not cached: read it off the event loop
        verified = await _on_hot_worker(partial(verify_agent, store, parts))
    return signed_admission(store, verified), parts


_HOT_WORKERS = ThreadPoolExecutor(max_workers=HOT_WORKERS_MAX, thread_name_prefix="paywarden-hot")


async def _on_hot_worker(work: Callable[[], T]) -> T:
    """Run ``work`` on a worker thread of the hot path's own pool, with this request's
    context. asyncio's executor hop costs a fraction of anyio's (``run_in_threadpool``),
    whose cancel scopes and limiter took about 8 % of the server's CPU per payment (py-spy,
    two hops a payment then; a payment by a cached key now makes none)."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_HOT_WORKERS, contextvars.copy_context().run, work)


def _without_secrets(payload: dict[str, Any], text: str) -> str:
    """What the idempotency record keeps of a response: a secret key is shown once and
    never stored in clear, so a replay answers ``secret_key: null`` with
    ``secret_key_redacted: true``."""
    if payload.get("secret_key") is None:
        return text
    return json.dumps({**payload, "secret_key": None, "secret_key_redacted": True})


async def read(request: Request, work: Callable[[UnitOfWork, Principal], Any]) -> Response:
    """Run one GET in a read-only transaction and render its record or page."""
    result, version = await _read(request, work)
    payload = list_body(result, request.url.path) if isinstance(result, Page) else wire(result)
    return json_response(200, json.dumps(payload), version=version)


async def read_json(
    request: Request,
    work: Callable[[UnitOfWork, Principal], dict[str, Any]],
    *,
    allow_agents: bool = False,
) -> Response:
    """Run one GET in a read-only transaction and answer the JSON object ``work`` returns.
    ``allow_agents``: a signed agent request (RFC 9421) may call this route."""
    body, version = await _read(request, work, allow_agents=allow_agents)
    return json_response(200, json.dumps(body), version=version)


async def _read(
    request: Request, work: Callable[[UnitOfWork, Principal], T], *, allow_agents: bool = False
) -> tuple[T, str]:
    """``work``'s result for the request's principal, and the API version it speaks. A
    Bearer key is read in the same read-only transaction, on the same worker thread, as the
    work. An agent's signature is verified first; its admission (key status, nonce
    remembered) and the work then run as one unit of work under group commit, answered
    once the nonce is durable."""
    store = runtime(request).store
    secret = _bearer(request)
    if secret is None:
        if not allow_agents:
            _refuse_agent()
        admit, _parts = await _verified_agent(request, store)
        version = _version(request, identity.API_VERSION)

        def admitted(uow: UnitOfWork) -> T:
            principal = admit(uow)
            refuse_nul(request)
            return work(uow, principal)

        return await store.grouped(admitted), version
    bearer = secret

    def unit(uow: UnitOfWork) -> tuple[Principal, T]:
        principal = _key_holder(request, bearer, uow)
        refuse_nul(request)
        return principal, work(uow, principal)

    principal, result = await run_in_threadpool(store.run, unit, read_only=True)
    return result, _version(request, principal.api_version)


def list_body(page: Page, url: str) -> dict[str, Any]:
    return {
        "object": "list",
        "url": url,
        "data": [wire(item) for item in page.items],
        "has_more": page.has_more,
        "next_cursor": wire(page.items[-1])["id"] if page.has_more and page.items else None,
    }


def body_docs(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI extras for a POST handler: ``model`` as its JSON body, and Idempotency-Key."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        },
        "parameters": [
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": True,
                "schema": {"type": "string", "maxLength": 255},
            }
        ],
    }
