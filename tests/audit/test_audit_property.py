"""Property: a random audit log, then one changed byte in any stored field of any record, and
``verify`` fails, unless the change left the record's meaning as it was (JSON whitespace).

Twice: over records in their stored form decoded by the store's own ``record_from_row`` (many
logs, no database), and over a real SQLite file where the byte is changed with SQL.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from conftest import START, sqlite_url
from paywarden.kernel.clock import FakeClock
from paywarden.kernel.principals import Principal, PrincipalType
from paywarden.services import audit as audit_service
from paywarden.store import audit_repo, migrate
from paywarden.store.engine import make_engine
from paywarden.store.unit_of_work import Store, UnitOfWork
from paywarden.trust.audit import GENESIS_HASH, AuditRecord, entry, seal, verify

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Every column of audit_records but the surrogate id, as the store keeps them.
FIELDS = (
    "partition",
    "sequence",
    "event_type",
    "actor_type",
    "actor_id",
    "subject_id",
    "data",
    "occurred_at",
    "prev_hash",
    "hash",
)
INTEGER_FIELDS = {"partition", "sequence", "occurred_at"}
PRINTABLE = [chr(code) for code in range(0x20, 0x7F)]

json_leaf = st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=8)
json_data = st.dictionaries(
    st.text(max_size=6),
    st.recursive(
        json_leaf,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
        max_leaves=6,
    ),
    max_size=4,
)
entries = st.lists(
    st.tuples(
        st.sampled_from(["mandate.approved", "mandate.denied", "key.revoked"]),
        st.sampled_from([None, ("user", "usr_ada"), ("admin", None), ("agent", "agt_bot")]),
        st.sampled_from([None, "mnd_1", "mnd_2", "pay_3", "key_4", "acct_5"]),
        json_data,
        st.integers(0, 10**9),
    ),
    min_size=1,
    max_size=25,
)


def micros(instant: datetime) -> int:
    delta = instant - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def instant(value: int) -> datetime:
    seconds, rest = divmod(value, 1_000_000)
    return datetime.fromtimestamp(seconds, UTC).replace(microsecond=rest)


def build_log(raw: list[Any], partitions: int) -> dict[int, list[AuditRecord]]:
    chains: dict[int, list[AuditRecord]] = {}
    for event_type, actor, subject, data, offset_us in raw:
        made = entry(
            event_type=event_type,
            actor_type=actor[0] if actor else None,
            actor_id=actor[1] if actor else None,
            subject_id=subject,
            data=data,
            occurred_at=START + timedelta(microseconds=offset_us),
            partitions=partitions,
        )
        chain = chains.setdefault(made.partition, [])
        chain.append(seal(made, len(chain) + 1, chain[-1].hash if chain else GENESIS_HASH))
    return chains


def stored_row(record: AuditRecord) -> dict[str, Any]:
    """The record as the store keeps it: data as JSON text, the instant in microseconds."""
    row = {name: getattr(record, name) for name in FIELDS}
    row["data"] = json.dumps(dict(record.data))
    row["occurred_at"] = micros(record.occurred_at)
    return row


def change_one_byte(value: Any, position: int, replacement: str) -> Any:
    """``value`` with the character at ``position`` (modulo its length) replaced. Integers
    change one decimal digit, so they stay integers as a typed column would keep them."""
    if isinstance(value, int):
        digits = str(value)
        at = position % len(digits)
        digit = str((int(digits[at]) + 1 + ord(replacement) % 9) % 10)
        return int(digits[:at] + digit + digits[at + 1 :])
    at = position % len(value)
    if value[at] == replacement:
        replacement = PRINTABLE[(PRINTABLE.index(replacement) + 1) % len(PRINTABLE)]
    return value[:at] + replacement + value[at + 1 :]


def loaded(row: dict[str, Any]) -> AuditRecord:
    return audit_repo.record_from_row({**row, "occurred_at": instant(row["occurred_at"])})


def regroup(records: list[AuditRecord]) -> dict[int, list[AuditRecord]]:
    """As the store loads them: by partition, each in sequence order."""
    chains: dict[int, list[AuditRecord]] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.sequence)):
        chains.setdefault(record.partition, []).append(record)
    return chains


@settings(max_examples=300, deadline=None)
@given(
    raw=entries,
    partitions=st.integers(1, 5),
    pick=st.integers(0, 10_000),
    field=st.sampled_from(FIELDS),
    position=st.integers(0, 10_000),
    replacement=st.sampled_from(PRINTABLE),
)
def test_one_changed_byte_in_any_stored_field_fails_verification(
    raw: list[Any], partitions: int, pick: int, field: str, position: int, replacement: str
) -> None:
    chains = build_log(raw, partitions)
    records = [record for _, chain in sorted(chains.items()) for record in chain]
    assert verify(chains, [], {}).ok
    victim = pick % len(records)
    row = stored_row(records[victim])
    if row[field] is None or row[field] == "":
        reject()  # no byte to change
    row[field] = change_one_byte(row[field], position, replacement)
    tampered = loaded(row)
    if tampered == records[victim]:
        return  # the same record (JSON whitespace): nothing was tampered with
    records[victim] = tampered
    report = verify(regroup(records), [], {})
    assert not report.ok


# --- the same on a real SQLite file -------------------------------------------------------


@dataclass
class StoredLog:
    store: Store
    ids: list[int]


@pytest.fixture(scope="module")
def stored_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoredLog]:
    engine = make_engine(sqlite_url(Path(tmp_path_factory.mktemp("audit_property"))))
    migrate.upgrade(engine)
    store = Store(engine, FakeClock(START))
    ada = Principal(PrincipalType.USER, "usr_ada", False, "key_ada", "2026-11-29")

    def work(uow: UnitOfWork) -> None:
        for number in range(24):
            audit_service.record(
                uow,
                "mandate.approved",
                ada if number % 3 else None,
                f"mnd_{number % 7}" if number % 5 else None,
                {"amount": 1_000 + number, "items": [{"sku": f"prd_{number}", "qty": 2}]},
                partitions=3,
            )

    store.run(work)
    ids = store.run(
        lambda uow: list(uow.execute(text("SELECT id FROM audit_records")).scalars()),
        read_only=True,
    )
    yield StoredLog(store, ids)
    engine.dispose()


def stored_value(store: Store, record_id: int, field: str) -> Any:
    column = "CAST(data AS TEXT)" if field == "data" else field
    sql = f"SELECT {column} FROM audit_records WHERE id = :id"
    return store.run(lambda uow: uow.execute(text(sql), {"id": record_id}).scalar_one())


def store_value(store: Store, record_id: int, field: str, value: Any) -> None:
    sql = f"UPDATE audit_records SET {field} = :value WHERE id = :id"
    store.run(lambda uow: uow.execute(text(sql), {"value": value, "id": record_id}))


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much],
)
@given(
    pick=st.integers(0, 10_000),
    field=st.sampled_from(FIELDS),
    position=st.integers(0, 10_000),
    replacement=st.sampled_from(PRINTABLE),
)
def test_one_changed_byte_in_a_stored_sqlite_row_fails_verification(
    stored_log: StoredLog, pick: int, field: str, position: int, replacement: str
) -> None:
    store = stored_log.store
    record_id = stored_log.ids[pick % len(stored_log.ids)]
    original = stored_value(store, record_id, field)
    if original is None:
        reject()
    before = store.run(audit_repo.load_records, read_only=True)
    try:
        store_value(store, record_id, field, change_one_byte(original, position, replacement))
    except IntegrityError:
        reject()  # the schema refused it (unique or check constraint): not storable
    try:
        after = store.run(audit_repo.load_records, read_only=True)
        report = store.run(lambda uow: audit_service.verify(uow, {}), read_only=True)
        assert after == before or not report.ok, (field, report)
    finally:
        store_value(store, record_id, field, original)
    assert store.run(lambda uow: audit_service.verify(uow, {}), read_only=True).ok
