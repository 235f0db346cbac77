"""Idempotency keys, as ACP section 6 defines them, for every POST.

A request claims its key in a short transaction of its own (``claim``), which records it
*in flight* with a lock token. The effect then runs in a second transaction that also
stores the response against the key (``complete``): effect and key record commit together
or not at all. So a crash can leave only an in-flight marker with no effect; once its lock
expires (``lock_s``) a retry takes the key over and runs the request afresh. A request that
finds its lock taken over at completion rolls back its effect, so the effect happens once.

- same key, same body, finished → the stored response, replayed (``Idempotent-Replayed``);
- same key, different body → 422 ``idempotency_conflict`` (permanent);
- same key while the first is still running → 409 ``idempotency_in_flight``, Retry-After;
- a 5xx is never stored: the key is released and the next try runs afresh;
- keys are scoped to (principal, method, path) and kept ``retention`` (≥ 24 h); after that a
  reused key counts as new.

Bodies are compared semantically: key order ignored, ``1.0`` equal to ``1``, ``null``
different from absent, arrays ordered. The fingerprint is an HMAC under the instance secret,
so a stored fingerprint of a body that held a card number cannot be brute-forced back.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from paywarden.kernel.errors import IdempotencyConflict, IdempotencyInFlight, InvalidRequest
from paywarden.kernel.invariant import invariant
from paywarden.store import schema
from paywarden.store.prepared import prepare_all
from paywarden.store.unit_of_work import UnitOfWork

__all__ = [
    "KEY_LENGTH_MAX",
    "PURGE_BATCH_MAX",
    "Claimed",
    "Replay",
    "Scope",
    "check_key",
    "claim",
    "complete",
    "fingerprint",
    "purge_expired",
    "release",
]

KEY_LENGTH_MAX = 255
IN_FLIGHT_RETRY_AFTER_S = 1
PURGE_BATCH_MAX = 5_000  # keys forgotten in one transaction (api.app.drain repeats it)
KEYS = schema.idempotency_keys
# The statements every POST runs, built once (building and keying one costs more than
# running it); a scope's columns come as parameters (``Scope.params``).
_SCOPED = (
    (KEYS.c.principal == bindparam("s_principal"))
    & (KEYS.c.method == bindparam("s_method"))
    & (KEYS.c.path == bindparam("s_path"))
    & (KEYS.c.key == bindparam("s_key"))
)
_CLAIM_ROW = select(KEYS).where(_SCOPED).with_for_update()
_INSERT_KEY = {
    dialect_insert.__module__: dialect_insert(KEYS).on_conflict_do_nothing().returning(KEYS.c.id)
    for dialect_insert in (pg_insert, sqlite_insert)
}
_COMPLETE = (
    update(KEYS)
    .where(_SCOPED, KEYS.c.lock_token == bindparam("s_token"), KEYS.c.state == "in_flight")
    .values(
        state="done",
        response_status=bindparam("new_status"),
        response_body=bindparam("new_body"),
        lock_token=None,
        locked_until=None,
    )
)


@dataclass(frozen=True, slots=True)
class Scope:
    principal: str
    method: str
    path: str
    key: str

    def params(self) -> dict[str, str]:
        return {
            "s_principal": self.principal,
            "s_method": self.method,
            "s_path": self.path,
            "s_key": self.key,
        }

    def where(self) -> Any:
        return (
            (KEYS.c.principal == self.principal)
            & (KEYS.c.method == self.method)
            & (KEYS.c.path == self.path)
            & (KEYS.c.key == self.key)
        )


@dataclass(frozen=True, slots=True)
class Claimed:
    lock_token: str


@dataclass(frozen=True, slots=True)
class Replay:
    status: int
    body: str


def check_key(value: str | None) -> str:
    if value is None or value == "":
        raise InvalidRequest(
            "Idempotency-Key header is required on all POST requests",
            code="idempotency_key_required",
            param="$.headers.Idempotency-Key",
        )
    if len(value) > KEY_LENGTH_MAX or not value.isascii() or not value.isprintable():
        raise InvalidRequest(
            f"Idempotency-Key must be at most {KEY_LENGTH_MAX} printable ASCII characters",
            code="invalid_idempotency_key",
            param="$.headers.Idempotency-Key",
        )
    return value


def _normalise(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _normalise(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_normalise(item) for item in value]
    return value


def fingerprint(body: Any, secret: bytes) -> str:
    """A keyed fingerprint of a parsed JSON body under ACP's equivalence rules."""
    canonical = json.dumps(
        _normalise(body),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )
    return hmac.new(secret, canonical.encode(), hashlib.sha256).hexdigest()


def claim(
    uow: UnitOfWork, scope: Scope, request_hash: str, *, retention: timedelta, lock_s: int
) -> Claimed | Replay:
    """Claim the key for this request, or answer with what an earlier request left."""
    now = uow.clock.now()
    # Insert first: a new key (nearly every request) costs one statement. A key already
    # there, or being inserted by a transaction not yet committed (PostgreSQL waits for it
    # on the unique index), is then read under its row lock.
    token = secrets.token_hex(16)
    if _insert(uow, scope, request_hash, token, now, retention, lock_s):
        return Claimed(token)
    row = uow.execute(_CLAIM_ROW, scope.params()).one()
    if row.expires_at <= now:
        return _take_over(uow, scope, request_hash, now, retention, lock_s)
    if row.request_hash != request_hash:
        raise IdempotencyConflict(
            "Idempotency-Key has already been used with a different request body"
        )
    if row.state == "done":
        return Replay(int(row.response_status), str(row.response_body))
    if row.locked_until is not None and row.locked_until > now:
        raise IdempotencyInFlight(
            "A request with this Idempotency-Key is currently being processed",
            retry_after_s=IN_FLIGHT_RETRY_AFTER_S,
        )
    # The request that held it died (its lock lapsed): this retry takes over.
    return _take_over(uow, scope, request_hash, now, retention, lock_s)


def _insert(
    uow: UnitOfWork,
    scope: Scope,
    request_hash: str,
    token: str,
    now: datetime,
    retention: timedelta,
    lock_s: int,
) -> bool:
    dialect_insert = pg_insert if uow.dialect == "postgresql" else sqlite_insert
    result = uow.execute(
        _INSERT_KEY[dialect_insert.__module__],
        {
            "principal": scope.principal,
            "method": scope.method,
            "path": scope.path,
            "key": scope.key,
            "request_hash": request_hash,
            "state": "in_flight",
            "lock_token": token,
            "locked_until": now + timedelta(seconds=lock_s),
            "created_at": now,
            "expires_at": now + retention,
        },
    )
    return result.first() is not None


def _take_over(
    uow: UnitOfWork,
    scope: Scope,
    request_hash: str,
    now: datetime,
    retention: timedelta,
    lock_s: int,
) -> Claimed:
    token = secrets.token_hex(16)
    uow.execute(
        update(KEYS)
        .where(scope.where())
        .values(
            request_hash=request_hash,
            state="in_flight",
            lock_token=token,
            locked_until=now + timedelta(seconds=lock_s),
            response_status=None,
            response_body=None,
            created_at=now,
            expires_at=now + retention,
        )
    )
    return Claimed(token)


def complete(uow: UnitOfWork, scope: Scope, claimed: Claimed, status: int, body: str) -> bool:
    """Store the response in the caller's transaction; False when the lock was taken over
    (the caller must then roll back its effect)."""
    if status >= 500:  # never stored; ACP 6.5
        return release(uow, scope, claimed)
    result = uow.execute(
        _COMPLETE,
        {**scope.params(), "s_token": claimed.lock_token, "new_status": status, "new_body": body},
    )
    return bool(result.rowcount == 1)


def complete_claimed_here(
    uow: UnitOfWork, scope: Scope, claimed: Claimed, status: int, body: str
) -> None:
    """:func:`complete` for a key claimed in this same transaction, whose row no one else
    can take over: it must be found, and the update is a write held back until the next
    statement (``UnitOfWork.write``). A 5xx answer is never stored (raise it instead)."""
    invariant(status < 500, "a 5xx answer is not stored under an Idempotency-Key (ACP 6.5)")
    uow.write(
        _COMPLETE,
        {**scope.params(), "s_token": claimed.lock_token, "new_status": status, "new_body": body},
        rows=1,
        lost="a key claimed in this unit of work is still this unit's",
    )


def release(uow: UnitOfWork, scope: Scope, claimed: Claimed) -> bool:
    """Forget an in-flight claim so the next try runs afresh."""
    result = uow.execute(
        delete(KEYS).where(
            scope.where(), KEYS.c.lock_token == claimed.lock_token, KEYS.c.state == "in_flight"
        )
    )
    return bool(result.rowcount == 1)


def purge_expired(uow: UnitOfWork, *, batch_size_max: int = PURGE_BATCH_MAX) -> int:
    """Delete keys past their retention; returns how many went."""
    now = uow.clock.now()
    due = select(KEYS.c.id).where(KEYS.c.expires_at <= now).limit(batch_size_max)
    ids = [row.id for row in uow.execute(due)]
    if ids:
        uow.execute(delete(KEYS).where(KEYS.c.id.in_(ids)))
    return len(ids)


prepare_all(globals())  # the statements built above run on the driver (store.prepared)
