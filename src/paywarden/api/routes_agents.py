"""Agent platforms, agents and their keys, and the public key documents.

Platforms (admin-created) register agents and manage their keys with their secret key.
An agent authenticates by signing its requests (RFC 9421, see ``http.authenticated``); for
now the only route that accepts an agent's signature is reading its own agent object.

Two public documents list the keys that may sign:

- ``GET /v1/agents/{id}/jwks.json``: one agent's valid keys, as a JWK Set;
- ``GET /.well-known/http-message-signatures-directory``: the Web Bot Auth key directory.
  Served at the origin a platform registered (its Host matches), it lists that platform's
  agents' keys, so the platform can point its own directory here; served at any other Host,
  it lists every valid agent key of this installation, which is exactly the set of keys
  this installation accepts signatures from. The directory is not signed: paywarden does not
  hold the agents' private keys, which the directory draft's response signatures need.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import Field, StrictBool, StrictInt, StrictStr
from starlette.concurrency import run_in_threadpool

from paywarden.api import schemas as s
from paywarden.api.http import (
    body_docs,
    post,
    read_json,
    refuse_nul,
    runtime,
)
from paywarden.kernel.principals import Principal
from paywarden.services import agents
from paywarden.store.unit_of_work import UnitOfWork

__all__ = ["router"]

router = APIRouter()
DIRECTORY_MEDIA_TYPE = "application/http-message-signatures-directory+json"
JWKS_MEDIA_TYPE = "application/jwk-set+json"
# Public key documents may be cached briefly; a revoked key leaves them within this time.
KEYS_CACHE_CONTROL = "public, max-age=60"
Jwk = dict[str, Any]


class PlatformCreate(s.Body):
    name: StrictStr = Field(max_length=200)
    origin: StrictStr = Field(
        max_length=300, description="https origin whose key directory lists the agents"
    )


class AgentCreate(s.Body):
    name: StrictStr = Field(max_length=200)
    keys: list[Jwk] = Field(
        min_length=1,
        max_length=agents.KEYS_PER_AGENT_MAX,
        description="public JWKs: OKP/Ed25519 or EC/P-256, no private members",
    )


class KeyAdd(s.Body):
    key: Jwk = Field(description="a public JWK: OKP/Ed25519 or EC/P-256")
    rotate: StrictBool = Field(
        False, description="end the agent's other valid keys after overlap_s"
    )
    overlap_s: StrictInt = Field(
        int(agents.OVERLAP_DEFAULT.total_seconds()),
        ge=0,
        le=int(agents.OVERLAP_MAX.total_seconds()),
        description="with rotate: seconds the old keys keep working (default 24 h)",
    )


def _agent(status: int) -> Callable[[Any], tuple[int, dict[str, Any]]]:
    return lambda record: (status, agents.wire_agent(record))


@router.post(
    "/v1/agent_platforms",
    status_code=201,
    openapi_extra=body_docs(PlatformCreate),
    tags=["agents"],
)
async def create_platform(request: Request) -> Response:
    """Create an agent platform and its secret key (shown once). Admin only."""

    def work(uow: UnitOfWork, p: Principal, b: PlatformCreate) -> Any:
        return agents.create_platform(uow, p, name=b.name, origin=b.origin)

    def render(pair: Any) -> tuple[int, dict[str, Any]]:
        platform, key = pair
        return 201, {**agents.wire_platform(platform), "secret_key": key.secret}

    return await post(request, PlatformCreate, work, render=render)


@router.post("/v1/agents", status_code=201, openapi_extra=body_docs(AgentCreate), tags=["agents"])
async def register_agent(request: Request) -> Response:
    """Register an agent of your platform with its public keys. Platform key only."""

    def work(uow: UnitOfWork, p: Principal, b: AgentCreate) -> Any:
        return agents.register_agent(uow, p, name=b.name, keys=b.keys)

    return await post(request, AgentCreate, work, render=_agent(201))


@router.get("/v1/agents/{agent_id}", tags=["agents"])
async def get_agent(request: Request, agent_id: str) -> Response:
    """The agent with its keys: for its platform, an admin, or the agent itself (signed)."""
    return await read_json(
        request,
        lambda uow, p: agents.wire_agent(agents.get_agent(uow, p, agent_id)),
        allow_agents=True,
    )


@router.post("/v1/agents/{agent_id}/keys", openapi_extra=body_docs(KeyAdd), tags=["agents"])
async def add_key(request: Request, agent_id: str) -> Response:
    """Add a key to the agent; with ``rotate``, its other keys end after ``overlap_s``."""

    def work(uow: UnitOfWork, p: Principal, b: KeyAdd) -> Any:
        overlap = timedelta(seconds=b.overlap_s)
        return agents.add_key(uow, p, agent_id, b.key, rotate=b.rotate, overlap=overlap)

    return await post(request, KeyAdd, work, render=_agent(200))


@router.post(
    "/v1/agents/{agent_id}/keys/{kid}/revoke", openapi_extra=body_docs(s.Empty), tags=["agents"]
)
async def revoke_key(request: Request, agent_id: str, kid: str) -> Response:
    """Revoke one of the agent's keys, at once."""

    def work(uow: UnitOfWork, p: Principal, b: s.Empty) -> Any:
        return agents.revoke_key(uow, p, agent_id, kid)

    return await post(request, s.Empty, work, render=_agent(200))


@router.post("/v1/agents/{agent_id}/revoke", openapi_extra=body_docs(s.Empty), tags=["agents"])
async def revoke_agent(request: Request, agent_id: str) -> Response:
    """Revoke the agent: none of its keys authenticate any more. Final."""

    def work(uow: UnitOfWork, p: Principal, b: s.Empty) -> Any:
        return agents.revoke_agent(uow, p, agent_id)

    return await post(request, s.Empty, work, render=_agent(200))


async def _public_keys(
    request: Request, work: Callable[[UnitOfWork], list[dict[str, str]]], media_type: str
) -> Response:
    refuse_nul(request)
    store = runtime(request).store
    keys = await run_in_threadpool(store.run, work, read_only=True)
    return Response(
        json.dumps({"keys": keys}),
        media_type=media_type,
        headers={"Cache-Control": KEYS_CACHE_CONTROL},
    )


@router.get("/v1/agents/{agent_id}/jwks.json", tags=["agents"])
async def agent_jwks(request: Request, agent_id: str) -> Response:
    """The agent's valid public keys as a JWK Set. Public."""
    return await _public_keys(
        request, lambda uow: agents.agent_jwks(uow, agent_id), JWKS_MEDIA_TYPE
    )


@router.get("/.well-known/http-message-signatures-directory", tags=["agents"])
async def key_directory(request: Request) -> Response:
    """The Web Bot Auth key directory: a registered platform's agents' keys when served at
    that platform's origin, else every valid agent key of this installation. Public."""
    host = request.headers.get("host")
    return await _public_keys(
        request, lambda uow: agents.directory_keys(uow, host), DIRECTORY_MEDIA_TYPE
    )
