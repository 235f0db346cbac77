"""Agent platforms, their agents, and the keys agents sign their requests with.

An admin creates an agent platform (``plt_``), which gets a secret key. The platform registers
its agents (``agt_``), each with one or more public JWKs (Ed25519 or ES256, parsed strictly by
:mod:`paywarden.trust.keys`). An agent signs every request (RFC 9421) with one of its keys and
names it by its RFC 7638 thumbprint, the ``kid``.

A key's life:

- added: valid from now on, with no end;
- rotated away: when a key is added with ``rotate``, every other valid key of the agent gets
  ``not_after = now + overlap`` (24 h unless told otherwise; an earlier end is kept), so that
  requests signed with the old key keep working while the agent switches over;
- revoked: invalid at once, whatever its ``not_after``.

A revoked agent's keys all stop working, and it gets no new ones.

A signed request is admitted by :func:`admit_signed_request` after its signature verified:
in one transaction it checks that the key is still valid and its agent active, and remembers
the nonce. The primary key on (keyid, nonce) refuses a second insert (``ON CONFLICT DO
NOTHING RETURNING`` returns no row), so a replay fails whichever API node it reaches, on
SQLite and on PostgreSQL alike. Every key change is written to the audit log in the
transaction that makes it.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import and_, bindparam, delete, func, insert, or_, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from paywarden.adapters.ids import new_id
from paywarden.kernel.clock import rfc3339
from paywarden.kernel.errors import (
    AuthenticationFailed,
    Conflict,
    InvalidRequest,
    NotFound,
    PaywardenError,
    PermissionDenied,
)
from paywarden.kernel.invariant import invariant
from paywarden.kernel.principals import Principal, PrincipalType
from paywarden.services import audit
from paywarden.services.identity import API_VERSION, issue_key
from paywarden.services.records import ApiKeyRecord
from paywarden.store.prepared import prepare_all
from paywarden.store.tables_agents import (
    KID_LENGTH_MAX,
    agent_keys,
    agent_platforms,
    agents,
    request_nonces,
)
from paywarden.store.unit_of_work import UnitOfWork
from paywarden.trust.keys import ED25519, PublicKey, parse_public_jwk
from paywarden.trust.signatures import VerifiedSignature

__all__ = [
    "KEYS_PER_AGENT_MAX",
    "OVERLAP_DEFAULT",
    "OVERLAP_MAX",
    "AgentKeyRecord",
    "AgentRecord",
    "KeyCache",
    "PlatformRecord",
    "add_key",
    "admit_signed_request",
    "agent_jwks",
    "create_platform",
    "directory_keys",
    "get_agent",
    "key_material",
    "lookup_key",
    "normalize_origin",
    "purge_expired_nonces",
    "register_agent",
    "remember_nonce",
    "revoke_agent",
    "revoke_key",
    "wire_agent",
    "wire_platform",
]

OVERLAP_DEFAULT = timedelta(hours=24)
OVERLAP_MAX = timedelta(days=30)
KEYS_PER_AGENT_MAX = 10  # valid keys at once, rotation overlaps included
DIRECTORY_KEYS_MAX = 10_000
KEY_CACHE_SIZE_MAX = 10_000
NONCE_PURGE_BATCH_MAX = 10_000
ORIGIN_LENGTH_MAX = 300
ID_LENGTH_MAX = 40
ACTIVE, REVOKED = "active", "revoked"
_JOSE_ALG = {ED25519: "EdDSA"}  # RFC 8037; the other algorithm is ES256
_HOST = re.compile(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?|\[[0-9a-f:.]+\]")


# ---------------------------------------------------------------------------------------------
# Records and their wire form
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlatformRecord:
    id: str
    livemode: bool
    name: str
    origin: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class AgentKeyRecord:
    kid: str
    alg: str
    public_jwk: dict[str, str]
    status: str
    created_at: datetime
    not_after: datetime | None
    revoked_at: datetime | None

    def valid_at(self, now: datetime) -> bool:
        return self.status == ACTIVE and (self.not_after is None or now <= self.not_after)


@dataclass(frozen=True, slots=True)
class AgentRecord:
    id: str
    livemode: bool
    platform_id: str
    user_id: str | None
    name: str
    status: str
    created_at: datetime
    revoked_at: datetime | None
    keys: tuple[AgentKeyRecord, ...]


def _instant(value: datetime | None) -> str | None:
    return rfc3339(value) if value is not None else None


def wire_platform(platform: PlatformRecord) -> dict[str, Any]:
    return {
        "id": platform.id,
        "object": "agent_platform",
        "livemode": platform.livemode,
        "created": rfc3339(platform.created_at),
        "name": platform.name,
        "origin": platform.origin,
    }


def wire_agent(agent: AgentRecord) -> dict[str, Any]:
    return {
        "id": agent.id,
        "object": "agent",
        "livemode": agent.livemode,
        "created": rfc3339(agent.created_at),
        "platform": agent.platform_id,
        "user": agent.user_id,
        "name": agent.name,
        "status": agent.status,
        "revoked": _instant(agent.revoked_at),
        "keys": [
            {
                "kid": key.kid,
                "object": "agent_key",
                "alg": key.alg,
                "jwk": key.public_jwk,
                "status": key.status,
                "created": rfc3339(key.created_at),
                "not_after": _instant(key.not_after),
                "revoked": _instant(key.revoked_at),
            }
            for key in agent.keys
        ],
    }


def _published_jwk(kid: str, alg: str, jwk: Mapping[str, str]) -> dict[str, str]:
    """A key as a JWKS lists it: its required members, ``kid``, JOSE ``alg`` and ``use``."""
    return {**jwk, "kid": kid, "alg": _JOSE_ALG.get(alg, "ES256"), "use": "sig"}


# ---------------------------------------------------------------------------------------------
# Platforms
# ---------------------------------------------------------------------------------------------


def normalize_origin(text: str) -> str:
    """``https://host[:port]`` lowercased, without a default port; else ``invalid_origin``."""

    def invalid(why: str) -> InvalidRequest:
        return InvalidRequest(f"origin {why}", code="invalid_origin", param="$.origin")

    if len(text) > ORIGIN_LENGTH_MAX or not text.isascii():
        raise invalid(f"must be at most {ORIGIN_LENGTH_MAX} ASCII characters")
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError as error:
        raise invalid(f"is not a URL: {error}") from None
    if parts.scheme != "https":
        raise invalid("must be an https origin, such as https://agents.example.com")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise invalid("is scheme, host and port only: no path, query or fragment")
    if parts.username is not None or parts.password is not None:
        raise invalid("carries no user information")
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    if not _HOST.fullmatch(host):
        raise invalid(f"has an invalid host {host!r}")
    return f"https://{host}" if port in (None, 443) else f"https://{host}:{port}"


def create_platform(
    uow: UnitOfWork, principal: Principal, *, name: str, origin: str
) -> tuple[PlatformRecord, ApiKeyRecord]:
    """A new agent platform and its secret key (shown once). Admin only."""
    if not principal.is_admin:
        raise PermissionDenied("creating an agent platform needs an admin key")
    record = PlatformRecord(
        id=new_id("plt"),
        livemode=principal.livemode,
        name=_check_name(name),
        origin=normalize_origin(origin),
        created_at=uow.clock.now(),
    )
    values = {name: getattr(record, name) for name in PlatformRecord.__slots__}
    if not _insert_new(uow, agent_platforms, values, ["origin", "livemode"]):
        raise Conflict(
            f"a platform with origin {record.origin} exists", code="origin_taken", param="$.origin"
        )
    audit.record(uow, "agent_platform.created", principal, record.id, {"origin": record.origin})
    return record, issue_key(
        uow, PrincipalType.PLATFORM, record.id, record.livemode, actor=principal
    )


# ---------------------------------------------------------------------------------------------
# Agents and their keys
# ---------------------------------------------------------------------------------------------


def register_agent(
    uow: UnitOfWork, principal: Principal, *, name: str, keys: Sequence[Mapping[str, object]]
) -> AgentRecord:
    """Register an agent of the calling platform with its public keys."""
    if principal.type is not PrincipalType.PLATFORM or principal.id is None:
        raise PermissionDenied("registering an agent needs an agent platform's key")
    if not 1 <= len(keys) <= KEYS_PER_AGENT_MAX:
        raise InvalidRequest(
            f"an agent registers 1 to {KEYS_PER_AGENT_MAX} keys",
            code="invalid_keys",
            param="$.keys",
        )
    parsed = [_parse_key(jwk, f"$.keys[{index}]") for index, jwk in enumerate(keys)]
    if len({key.keyid for key in parsed}) != len(parsed):
        raise InvalidRequest("the same key is listed twice", code="duplicate_key", param="$.keys")
    now = uow.clock.now()
    agent_id = new_id("agt")
    uow.execute(
        insert(agents).values(
            id=agent_id,
            livemode=principal.livemode,
            platform_id=principal.id,
            user_id=None,
            name=_check_name(name),
            status=ACTIVE,
            created_at=now,
        )
    )
    for index, key in enumerate(parsed):
        _insert_key(uow, agent_id, key, now, f"$.keys[{index}]")
    kids = [key.keyid for key in parsed]
    audit.record(uow, "agent.registered", principal, agent_id, {"keys": kids})
    return _load_agent(uow, agent_id)


def get_agent(uow: UnitOfWork, principal: Principal, agent_id: str) -> AgentRecord:
    """The agent, for the admin, its platform, or the agent itself."""
    if principal.type is PrincipalType.AGENT:
        if principal.id != agent_id:
            raise NotFound(f"no such agent: {agent_id}", param="$.agent")
    else:
        _managed_agent(uow, principal, agent_id)
    return _load_agent(uow, agent_id)


def add_key(
    uow: UnitOfWork,
    principal: Principal,
    agent_id: str,
    jwk: Mapping[str, object],
    *,
    rotate: bool = False,
    overlap: timedelta = OVERLAP_DEFAULT,
) -> AgentRecord:
    """Add a key; with ``rotate``, the agent's other valid keys end after ``overlap``."""
    if not timedelta(0) <= overlap <= OVERLAP_MAX:
        raise InvalidRequest(
            f"overlap_s must be 0 to {int(OVERLAP_MAX.total_seconds())}",
            code="invalid_overlap",
            param="$.overlap_s",
        )
    agent = _managed_agent(uow, principal, agent_id, lock=True)
    if agent.status != ACTIVE:
        raise Conflict(f"agent {agent_id} is revoked", code="agent_revoked")
    key = _parse_key(jwk, "$.key")
    now = uow.clock.now()
    ended: list[str] = []
    if rotate:
        ends_at = now + overlap
        k = agent_keys
        ending = and_(
            k.c.agent_id == agent_id,
            k.c.status == ACTIVE,
            or_(k.c.not_after.is_(None), k.c.not_after > ends_at),
        )
        ended = [str(kid) for kid in uow.execute(select(k.c.kid).where(ending)).scalars()]
        uow.execute(update(k).where(ending).values(not_after=ends_at))
    if _valid_key_count(uow, agent_id, now) >= KEYS_PER_AGENT_MAX:
        raise Conflict(
            f"an agent has at most {KEYS_PER_AGENT_MAX} valid keys; revoke one first",
            code="too_many_keys",
        )
    _insert_key(uow, agent_id, key, now, "$.key")
    data: dict[str, Any] = {"kid": key.keyid}
    if rotate:
        data |= {"ending": ended, "not_after": rfc3339(now + overlap)}
    audit.record(
        uow, "agent_key.rotated" if rotate else "agent_key.added", principal, agent_id, data
    )
    return _load_agent(uow, agent_id)


def revoke_key(uow: UnitOfWork, principal: Principal, agent_id: str, kid: str) -> AgentRecord:
    """Revoke one key at once. Revoking a revoked key changes nothing."""
    _managed_agent(uow, principal, agent_id, lock=True)
    k = agent_keys
    status = uow.execute(
        select(k.c.status).where(k.c.kid == kid, k.c.agent_id == agent_id)
    ).scalar_one_or_none()
    if status is None:
        raise NotFound(f"agent {agent_id} has no key {kid}", param="$.kid")
    if status == ACTIVE:
        uow.execute(
            update(k).where(k.c.kid == kid).values(status=REVOKED, revoked_at=uow.clock.now())
        )
        audit.record(uow, "agent_key.revoked", principal, agent_id, {"kid": kid})
    return _load_agent(uow, agent_id)


def revoke_agent(uow: UnitOfWork, principal: Principal, agent_id: str) -> AgentRecord:
    """Revoke the agent: none of its keys authenticate from now on. Final."""
    agent = _managed_agent(uow, principal, agent_id, lock=True)
    if agent.status == ACTIVE:
        uow.execute(
            update(agents)
            .where(agents.c.id == agent_id)
            .values(status=REVOKED, revoked_at=uow.clock.now())
        )
        audit.record(uow, "agent.revoked", principal, agent_id, {})
    return _load_agent(uow, agent_id)


# ---------------------------------------------------------------------------------------------
# Published keys: per-agent JWKS and the Web Bot Auth directory
# ---------------------------------------------------------------------------------------------


def _valid_keys_query(now: datetime) -> Any:
    k, a = agent_keys, agents
    return (
        select(k.c.kid, k.c.alg, k.c.public_jwk)
        .join(a, a.c.id == k.c.agent_id)
        .where(
            a.c.status == ACTIVE,
            k.c.status == ACTIVE,
            or_(k.c.not_after.is_(None), k.c.not_after >= now),
        )
        .order_by(k.c.created_at, k.c.kid)
    )


def agent_jwks(uow: UnitOfWork, agent_id: str) -> list[dict[str, str]]:
    """The agent's valid keys as JWKs (none once it is revoked); public."""
    if (
        len(agent_id) > ID_LENGTH_MAX
        or uow.execute(select(agents.c.id).where(agents.c.id == agent_id)).first() is None
    ):
        raise NotFound(f"no such agent: {agent_id}", param="$.agent")
    query = _valid_keys_query(uow.clock.now()).where(agent_keys.c.agent_id == agent_id)
    return [_published_jwk(row.kid, row.alg, row.public_jwk) for row in uow.execute(query)]


def directory_keys(uow: UnitOfWork, host: str | None) -> list[dict[str, str]]:
    """The keys a Web Bot Auth directory served at ``host`` lists.

    When ``host`` is the origin of registered platforms (in either mode), their agents' valid
    keys; otherwise every valid agent key of this installation, which is exactly the set of
    keys it accepts signatures from. At most ``DIRECTORY_KEYS_MAX`` keys, oldest first.
    """
    query = _valid_keys_query(uow.clock.now()).limit(DIRECTORY_KEYS_MAX)
    origin = _origin_of_host(host)
    if origin is not None:
        p = agent_platforms
        platform_ids = list(uow.execute(select(p.c.id).where(p.c.origin == origin)).scalars())
        if platform_ids:
            query = query.where(agents.c.platform_id.in_(platform_ids))
    return [_published_jwk(row.kid, row.alg, row.public_jwk) for row in uow.execute(query)]


def _origin_of_host(host: str | None) -> str | None:
    if not host:
        return None
    try:
        return normalize_origin(f"https://{host}")
    except InvalidRequest:
        return None


# ---------------------------------------------------------------------------------------------
# Signed requests: keys, admission, nonces
# ---------------------------------------------------------------------------------------------


class KeyCache:
    """keyid → parsed public key, bounded, least recently used out first; thread-safe.

    A keyid is the thumbprint of its key, so what it maps to can never change: entries need
    no invalidation. Whether the key may still be used is not cached; it is read from the
    store on every request (:func:`admit_signed_request`). Unknown keyids are not cached.
    """

    def __init__(self, size_max: int = KEY_CACHE_SIZE_MAX) -> None:
        invariant(size_max >= 1, "a key cache holds at least one key")
        self._size_max = size_max
        self._keys: OrderedDict[str, PublicKey] = OrderedDict()
        self._lock = threading.Lock()

    def cached(self, keyid: str) -> PublicKey | None:
        """The key if it is cached, without loading it."""
        with self._lock:
            key = self._keys.get(keyid)
            if key is not None:
                self._keys.move_to_end(keyid)
            return key

    def get(self, keyid: str, load: Callable[[], PublicKey | None]) -> PublicKey | None:
        """The key, cached or else loaded (and cached when found)."""
        key = self.cached(keyid)
        if key is not None:
            return key
        key = load()
        if key is None:
            return None
        invariant(key.thumbprint == keyid, f"stored key {keyid} has another thumbprint")
        with self._lock:
            self._keys[keyid] = key
            while len(self._keys) > self._size_max:
                self._keys.popitem(last=False)
        return key


def key_material(uow: UnitOfWork, keyid: str) -> PublicKey | None:
    """The registered key named ``keyid``, whatever its status, or ``None``."""
    if len(keyid) > KID_LENGTH_MAX:
        return None
    jwk = uow.execute(
        select(agent_keys.c.public_jwk).where(agent_keys.c.kid == keyid)
    ).scalar_one_or_none()
    return None if jwk is None else parse_public_jwk(jwk)


def lookup_key(uow: UnitOfWork, kid: str, now: datetime) -> PublicKey | None:
    """The key named ``kid`` if it may sign now: active (or inside its rotation overlap) and
    its agent active; else ``None``."""
    row = _key_row(uow, kid, lock=False)
    if row is None or _refusal(row, now) is not None:
        return None
    return parse_public_jwk(row.public_jwk)


def admit_signed_request(
    uow: UnitOfWork, verified: VerifiedSignature, *, now: datetime, max_age: timedelta | None
) -> Principal:
    """The agent behind a verified signature, once its key is checked and its nonce is new.

    Raises :class:`AuthenticationFailed`: ``unknown_key``, ``agent_revoked``, ``key_revoked``,
    ``key_expired`` (past its rotation overlap) or ``nonce_replayed``. The key and agent rows
    are read with a share lock, so a revocation waits for this admission or wins over it.
    """
    if verified.nonce is None:  # the agent policy requires one; refuse rather than assume
        raise AuthenticationFailed("the signature has no nonce", code="signature_param_missing")
    row = _key_row(uow, verified.keyid, lock=True)
    if row is None:
        raise AuthenticationFailed(
            f"no registered key has keyid {verified.keyid!r}", code="unknown_key"
        )
    refusal = _refusal(row, now)
    if refusal is not None:
        raise refusal
    remember_nonce(uow, verified.keyid, verified.nonce, _nonce_expiry(verified, now, max_age))
    return Principal(
        type=PrincipalType.AGENT,
        id=row.agent_id,
        livemode=bool(row.livemode),
        key_id=verified.keyid,
        api_version=API_VERSION,
    )


def remember_nonce(uow: UnitOfWork, keyid: str, nonce: str, expires_at: datetime) -> None:
    """Record ``nonce`` for ``keyid`` until ``expires_at``; a nonce seen before (and not yet
    expired) raises ``nonce_replayed``. One statement: the nonce is inserted, or takes over
    its expired row; expired rows are otherwise purged in batches (``purge_expired_nonces``).

    It is a write held back (``UnitOfWork.write``): on PostgreSQL it goes out with the next
    statement that needs an answer (the key's idempotency claim), and a replay raises
    there, before that answer is looked at; the unit then rolls back whatever went with it."""
    values = {"keyid": keyid, "nonce": nonce, "expires_at": expires_at, "now": uow.clock.now()}
    replayed = AuthenticationFailed(
        "this signature's nonce was used already; sign every request with a fresh nonce",
        code="nonce_replayed",
    )
    uow.write(_INSERT_NONCE[uow.dialect], values, rows=1, lost=replayed)


def purge_expired_nonces(uow: UnitOfWork, batch_size_max: int = NONCE_PURGE_BATCH_MAX) -> int:
    """Forget up to ``batch_size_max`` nonces whose signatures can no longer verify."""
    n = request_nonces
    expired = (
        select(n.c.keyid, n.c.nonce)
        .where(n.c.expires_at < uow.clock.now())
        .limit(batch_size_max)
        .subquery()
    )
    keys = select(expired.c.keyid, expired.c.nonce)
    result = uow.execute(delete(n).where(tuple_(n.c.keyid, n.c.nonce).in_(keys)))
    return int(result.rowcount)


def _nonce_expiry(
    verified: VerifiedSignature, now: datetime, max_age: timedelta | None
) -> datetime:
    """When the signature stops verifying on its times alone; its nonce is needed until then."""
    ends = [verified.expires] if verified.expires is not None else []
    if verified.created is not None and max_age is not None:
        ends.append(verified.created + max_age)
    invariant(bool(ends), "the agent policy requires expires or a maximum age")
    return max(min(ends), now)


# Read on every signed request: built once (building and keying costs more than running).
_KEY_ROW = (
    select(
        agent_keys.c.status,
        agent_keys.c.not_after,
        agent_keys.c.public_jwk,
        agent_keys.c.agent_id,
        agents.c.status.label("agent_status"),
        agents.c.livemode,
    )
    .join(agents, agents.c.id == agent_keys.c.agent_id)
    .where(agent_keys.c.kid == bindparam("kid"))
)
_KEY_ROW_SHARED = _KEY_ROW.with_for_update(read=True)
# One row is written when the nonce is new, or when its earlier use has expired (the row is
# taken over); none when it is still remembered: a replay.
_INSERT_NONCE = {
    dialect: (
        (nonce_insert := dialect_insert(request_nonces)).on_conflict_do_update(
            index_elements=[request_nonces.c.keyid, request_nonces.c.nonce],
            set_={"expires_at": nonce_insert.excluded.expires_at},
            where=request_nonces.c.expires_at < bindparam("now"),
        )
    )
    for dialect, dialect_insert in (("postgresql", pg_insert), ("sqlite", sqlite_insert))
}


def _key_row(uow: UnitOfWork, kid: str, *, lock: bool) -> Any:
    if len(kid) > KID_LENGTH_MAX:
        return None
    return uow.execute(_KEY_ROW_SHARED if lock else _KEY_ROW, {"kid": kid}).one_or_none()


def _refusal(row: Any, now: datetime) -> PaywardenError | None:
    if row.agent_status != ACTIVE:
        return AuthenticationFailed(f"agent {row.agent_id} is revoked", code="agent_revoked")
    if row.status != ACTIVE:
        return AuthenticationFailed("the signing key is revoked", code="key_revoked")
    if row.not_after is not None and now > row.not_after:
        return AuthenticationFailed(
            f"the signing key was rotated out at {rfc3339(row.not_after)}", code="key_expired"
        )
    return None


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def _check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidRequest("name must be 1 to 200 characters", param="$.name")
    return name


def _parse_key(jwk: Mapping[str, object], param: str) -> PublicKey:
    """Parse a public JWK strictly, naming the offending member under ``param``."""
    try:
        return parse_public_jwk(jwk)
    except InvalidRequest as error:
        member = error.param[1:] if error.param else ""
        raise InvalidRequest(error.message, code=error.code, param=param + member) from None


def _insert_new(
    uow: UnitOfWork, table: Any, values: Mapping[str, Any], unique: Sequence[str]
) -> bool:
    """Insert unless a row with the same ``unique`` columns exists; whether it inserted.

    ``ON CONFLICT DO NOTHING RETURNING``: concurrent inserters agree on one winner on both
    backends, without an error to catch and without a read that another writer could race.
    """
    dialect_insert = pg_insert if uow.dialect == "postgresql" else sqlite_insert
    statement = (
        dialect_insert(table)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[table.c[name] for name in unique])
        .returning(table.c[unique[0]])
    )
    return uow.execute(statement).first() is not None


def _insert_key(uow: UnitOfWork, agent_id: str, key: PublicKey, now: datetime, param: str) -> None:
    values = {
        "kid": key.keyid,
        "agent_id": agent_id,
        "alg": key.alg,
        "public_jwk": key.jwk(),
        "status": ACTIVE,
        "created_at": now,
    }
    if not _insert_new(uow, agent_keys, values, ["kid"]):
        raise Conflict(
            f"key {key.keyid} is registered already; an agent key belongs to one agent",
            code="key_already_registered",
            param=param,
        )


def _managed_agent(
    uow: UnitOfWork, principal: Principal, agent_id: str, *, lock: bool = False
) -> Any:
    """The agent row, if the principal manages it (admin, or its platform); else 404."""
    missing = NotFound(f"no such agent: {agent_id}", param="$.agent")
    if len(agent_id) > ID_LENGTH_MAX:
        raise missing
    if not (principal.is_admin or principal.type is PrincipalType.PLATFORM):
        raise PermissionDenied("managing agents needs an agent platform's key")
    query = select(agents).where(agents.c.id == agent_id, agents.c.livemode == principal.livemode)
    if lock:
        query = query.with_for_update()
    row = uow.execute(query).one_or_none()
    if row is None or not (principal.is_admin or row.platform_id == principal.id):
        raise missing
    return row


def _valid_key_count(uow: UnitOfWork, agent_id: str, now: datetime) -> int:
    k = agent_keys
    return int(
        uow.execute(
            select(func.count()).where(
                k.c.agent_id == agent_id,
                k.c.status == ACTIVE,
                or_(k.c.not_after.is_(None), k.c.not_after >= now),
            )
        ).scalar_one()
    )


def _load_agent(uow: UnitOfWork, agent_id: str) -> AgentRecord:
    row = uow.execute(select(agents).where(agents.c.id == agent_id)).one()
    k = agent_keys
    keys = tuple(
        AgentKeyRecord(
            kid=key.kid,
            alg=key.alg,
            public_jwk=dict(key.public_jwk),
            status=key.status,
            created_at=key.created_at,
            not_after=key.not_after,
            revoked_at=key.revoked_at,
        )
        for key in uow.execute(
            select(k).where(k.c.agent_id == agent_id).order_by(k.c.created_at, k.c.kid)
        )
    )
    return AgentRecord(
        id=row.id,
        livemode=bool(row.livemode),
        platform_id=row.platform_id,
        user_id=row.user_id,
        name=row.name,
        status=row.status,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        keys=keys,
    )


prepare_all(globals())  # the statements built above run on the driver (store.prepared)
