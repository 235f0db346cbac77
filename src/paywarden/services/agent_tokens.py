"""ACP bearer tokens: the ``Authorization: Bearer`` credential ACP requires of an agent.

An agent's platform (or an admin) issues tokens to one of its agents
(``POST /v1/agents/{id}/acp_tokens``); the secret (``acp_test_…`` / ``acp_live_…``) is shown
once and only its SHA-256 is stored. A token speaks for exactly one agent, in one mode, until
it is revoked or reaches ``expires_at``; a revoked agent's tokens stop working with it. On the
ACP face the token authenticates the agent; when the request also carries an RFC 9421
signature, the signing key must belong to the same agent (checked by the API layer).
Issuing and revoking are audited and announced (``acp_token.created`` / ``.revoked``).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update

from paywarden.adapters.ids import new_id
from paywarden.kernel.clock import rfc3339
from paywarden.kernel.errors import AuthenticationFailed, InvalidRequest, NotFound, PermissionDenied
from paywarden.kernel.principals import Principal, PrincipalType
from paywarden.services import agents, audit
from paywarden.services.identity import API_VERSION
from paywarden.store.outbox import emit
from paywarden.store.tables_acp import acp_tokens
from paywarden.store.tables_agents import agents as agents_table
from paywarden.store.unit_of_work import UnitOfWork

__all__ = [
    "TOKEN_TTL_DAYS_MAX",
    "AgentToken",
    "authenticate",
    "issue",
    "revoke",
    "wire_token",
]

TOKEN_TTL_DAYS_MAX = 366
SECRET_LENGTH_MAX = 200
_PREFIX = {False: "acp_test_", True: "acp_live_"}


@dataclass(frozen=True, slots=True)
class AgentToken:
    id: str
    livemode: bool
    agent_id: str
    secret_hint: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    secret: str | None = None  # only on the record that issue() returns


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def wire_token(token: AgentToken) -> dict[str, Any]:
    return {
        "id": token.id,
        "object": "acp_token",
        "livemode": token.livemode,
        "created": rfc3339(token.created_at),
        "agent": token.agent_id,
        "secret_hint": token.secret_hint,
        "expires_at": rfc3339(token.expires_at) if token.expires_at else None,
        "revoked_at": rfc3339(token.revoked_at) if token.revoked_at else None,
        "secret_key": token.secret,
    }


def issue(
    uow: UnitOfWork, principal: Principal, agent_id: str, *, ttl_days: int | None = None
) -> AgentToken:
    """A new bearer token for ``agent_id`` (its platform or an admin); the secret is in
    the returned record only."""
    if principal.type is PrincipalType.AGENT:
        raise PermissionDenied("an agent cannot issue its own ACP tokens; ask its platform")
    agent = agents.get_agent(uow, principal, agent_id)  # 404 unless the principal manages it
    if agent.status != "active":
        raise InvalidRequest("the agent is revoked", code="agent_revoked", param="$.agent")
    if ttl_days is not None and not 1 <= ttl_days <= TOKEN_TTL_DAYS_MAX:
        raise InvalidRequest(
            f"ttl_days must be 1 to {TOKEN_TTL_DAYS_MAX}", code="invalid_value", param="$.ttl_days"
        )
    now = uow.clock.now()
    secret = _PREFIX[agent.livemode] + secrets.token_urlsafe(32)
    token = AgentToken(
        id=new_id("atk"),
        livemode=agent.livemode,
        agent_id=agent.id,
        secret_hint=secret[:12] + "…" + secret[-4:],
        created_at=now,
        expires_at=now + timedelta(days=ttl_days) if ttl_days else None,
        revoked_at=None,
        secret=secret,
    )
    uow.execute(
        insert(acp_tokens).values(
            id=token.id,
            livemode=token.livemode,
            agent_id=token.agent_id,
            secret_hash=_hash(secret),
            secret_hint=token.secret_hint,
            created_at=now,
            expires_at=token.expires_at,
        )
    )
    public = wire_token(AgentToken(**{**_fields(token), "secret": None}))
    emit(uow, "acp_token.created", token.livemode, public)
    audit.record(uow, "acp_token.created", principal, token.id, public)
    return token


def revoke(uow: UnitOfWork, principal: Principal, agent_id: str, token_id: str) -> AgentToken:
    """Revoke one of the agent's tokens (its platform or an admin); at once, for good."""
    if principal.type is PrincipalType.AGENT:
        raise PermissionDenied("ask the agent's platform to revoke its ACP tokens")
    agents.get_agent(uow, principal, agent_id)
    now = uow.clock.now()
    result = uow.execute(
        update(acp_tokens)
        .where(
            acp_tokens.c.id == token_id,
            acp_tokens.c.agent_id == agent_id,
            acp_tokens.c.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )
    if result.rowcount != 1:
        raise NotFound(f"no active ACP token {token_id} for this agent", param="$.token")
    row = uow.execute(select(acp_tokens).where(acp_tokens.c.id == token_id)).one()
    token = _from_row(row)
    public = wire_token(token)
    emit(uow, "acp_token.revoked", token.livemode, public)
    audit.record(uow, "acp_token.revoked", principal, token.id, public)
    return token


def authenticate(uow: UnitOfWork, secret: str) -> Principal:
    """The agent behind a bearer token, or :class:`AuthenticationFailed`
    (``invalid_api_key``) when it is unknown, revoked, expired, or its agent is revoked."""
    if not secret.startswith(tuple(_PREFIX.values())) or len(secret) > SECRET_LENGTH_MAX:
        raise AuthenticationFailed(
            "the bearer token is malformed; ACP tokens start with acp_test_ or acp_live_",
            code="invalid_api_key",
        )
    row = uow.execute(
        select(acp_tokens, agents_table.c.status.label("agent_status"))
        .join(agents_table, agents_table.c.id == acp_tokens.c.agent_id)
        .where(acp_tokens.c.secret_hash == _hash(secret))
    ).one_or_none()
    now = uow.clock.now()
    if (
        row is None
        or row.revoked_at is not None
        or (row.expires_at is not None and row.expires_at <= now)
        or row.agent_status != "active"
    ):
        raise AuthenticationFailed(
            "the bearer token is unknown, expired or revoked", code="invalid_api_key"
        )
    return Principal(
        type=PrincipalType.AGENT,
        id=row.agent_id,
        livemode=bool(row.livemode),
        key_id=row.id,
        api_version=API_VERSION,
    )


def _fields(token: AgentToken) -> dict[str, Any]:
    return {name: getattr(token, name) for name in token.__slots__}


def _from_row(row: Any) -> AgentToken:
    return AgentToken(
        id=row.id,
        livemode=bool(row.livemode),
        agent_id=row.agent_id,
        secret_hint=row.secret_hint,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
    )
