"""Prepared statements sent to PostgreSQL through libpq directly, in one pipeline.

psycopg's cursor spends about 27 µs of Python around every statement in pipeline mode
(query conversion, its prepared-statement cache, a wait on the socket per ``execute``);
the same ten inserts sent through its libpq wrapper (``PGconn``), dumped by its own
``Transformer``, cost a fifth of the CPU and a third of the time (one pipeline of ten
inserts: 267 vs 51 µs CPU, 396 vs 135 µs wall, measured on these machines). An agent
payment sends about 35 statements, so this is where :mod:`paywarden.store.prepared`
sends its statements on PostgreSQL: its client CPU fell by about a fifth, its system
calls from about 140 to 30 (``poll`` 87 to 9: psycopg polled the socket at every
``execute``), its client instructions from 10.8 to 9.1 million (callgrind).

What the server sees is what psycopg would send: the same SQL (``%(name)s`` placeholders
numbered ``$1…`` in order of first use), the values dumped by psycopg's adapters of that
connection (so the same types and formats), each statement prepared once per connection
and parameter types under a name of ours (``pw_N``; psycopg's own are ``_pg3_N``), and a
transaction opened as psycopg opens it (``BEGIN`` with the connection's isolation level)
when none is open. Rows are loaded by the same adapters. A batch is one round trip: every
statement, then a sync; the server skips what follows a failed statement up to the sync,
so the first failed result names the statement whose error is raised, as psycopg's own
exception class (``UniqueViolation``, …). A named statement counts as prepared only once
the server confirmed it, so a batch that failed before it prepares it again.
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import psycopg
from psycopg import abc, pq
from psycopg import errors as pg_errors
from psycopg.adapt import PyFormat, Transformer
from psycopg.generators import fetch_many, send

__all__ = ["BatchFailed", "Outcome", "Statement", "convert", "run_batch", "supported"]

_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%%|%")
_STATE = "paywarden_pipeline"  # kept in the pooled connection's info, as the cursors are
_OK = (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK)


@functools.cache
def supported() -> bool:
    """Whether libpq here has pipeline mode (14 or later; the ``psycopg[binary]`` wheel
    brings its own): else psycopg's cursor sends every statement on its own, and writes
    are not held back (``UnitOfWork.write``)."""
    return bool(psycopg.Pipeline.is_supported())


def convert(sql: str) -> tuple[bytes, tuple[str, ...]] | None:
    """``sql`` with psycopg's ``%(name)s`` placeholders numbered ``$1…`` (a name used twice
    keeps its number), and the names in that order; None for SQL this does not handle
    (a ``%`` that is neither a placeholder nor ``%%``): psycopg's cursor runs it."""
    names: list[str] = []
    numbers: dict[str, int] = {}
    unhandled = False

    def number(match: re.Match[str]) -> str:
        nonlocal unhandled
        name = match.group(1)
        if name is None:
            if match.group(0) == "%%":
                return "%"
            unhandled = True
            return ""
        if name not in numbers:
            names.append(name)
            numbers[name] = len(names)
        return f"${numbers[name]}"

    converted = _PLACEHOLDER.sub(number, sql)
    if unhandled:
        return None
    return converted.encode(), tuple(names)


@dataclass(frozen=True, slots=True)
class Statement:
    """One statement of a batch: SQL converted by :func:`convert` with one sequence of
    values per execution (several: an ``executemany``), or plain SQL without parameters
    (``values`` None: ``SAVEPOINT …``, ``COMMIT``)."""

    sql: bytes
    values: Sequence[Sequence[Any]] | None = None


@dataclass(slots=True)
class Outcome:
    """One statement's answer: its rows (None: it returns none), their column type oids,
    and the rows it touched (summed over its executions; -1 where the server tells none)."""

    rows: list[tuple[Any, ...]] | None
    types: list[int]
    rowcount: int


@dataclass(slots=True)
class _State:
    """What one driver connection keeps: its dumper/loader and its named statements."""

    pgconn: Any
    transformer: abc.Transformer
    names: dict[tuple[bytes, tuple[int, ...]], bytes] = field(default_factory=dict)
    count: int = 0  # names given so far: a name is never given twice on a connection


class BatchFailed(Exception):
    """The statement at ``index`` failed with ``error`` (what the caller raises)."""

    def __init__(self, index: int, error: Exception) -> None:
        super().__init__(str(error))
        self.index = index
        self.error = error


def _state(info: dict[str, Any], driver: psycopg.Connection[Any]) -> _State:
    state: _State | None = info.get(_STATE)
    if state is None or state.pgconn is not driver.pgconn:  # a new server connection
        state = info[_STATE] = _State(driver.pgconn, Transformer(driver))
    return state


def _begin(driver: psycopg.Connection[Any]) -> bytes:
    """The ``BEGIN`` psycopg sends for this connection when a statement finds none open."""
    parts = [b"BEGIN"]
    if driver.isolation_level is not None:
        parts.append(b"ISOLATION LEVEL " + driver.isolation_level.name.replace("_", " ").encode())
    if driver.read_only is not None:
        parts.append(b"READ ONLY" if driver.read_only else b"READ WRITE")
    if driver.deferrable is not None:
        parts.append(b"DEFERRABLE" if driver.deferrable else b"NOT DEFERRABLE")
    return b" ".join(parts)


def run_batch(
    info: dict[str, Any], driver: psycopg.Connection[Any], batch: Sequence[Statement]
) -> list[Outcome]:
    """Run ``batch`` in order in one round trip on ``driver`` (``info``: the pooled
    connection's, where the connection's state is kept); the answers in the same order.
    Raises :class:`BatchFailed` with the index of the statement that failed."""
    state = _state(info, driver)
    pgconn, transformer = state.pgconn, state.transformer
    if driver.closed:
        raise BatchFailed(0, psycopg.OperationalError("the connection is closed"))
    # Everything is dumped before anything is sent: a value psycopg cannot adapt fails here.
    sends: list[_Send] = []
    preparing: dict[tuple[bytes, tuple[int, ...]], bytes] = {}
    for index, statement in enumerate(batch):
        if statement.values is None:
            sends.append(_Send(index, True, pgconn.send_query_params, (statement.sql, None)))
            continue
        for values in statement.values:
            try:
                dumped = transformer.dump_sequence(values, [PyFormat.AUTO] * len(values))
            except psycopg.Error as error:
                raise BatchFailed(index, error) from error
            types = tuple(transformer.types or ())
            key = (statement.sql, types)
            name = state.names.get(key) or preparing.get(key)
            if name is None:
                state.count += 1
                name = preparing[key] = b"pw_%d" % state.count
                prepare = _Send(
                    index, False, pgconn.send_prepare, (name, statement.sql, types), key
                )
                sends.append(prepare)
            formats = list(transformer.formats or ())
            sends.append(_Send(index, True, pgconn.send_query_prepared, (name, dumped, formats)))
    if pgconn.transaction_status == pq.TransactionStatus.IDLE and not driver.autocommit:
        sends.insert(0, _Send(0, False, pgconn.send_query_params, (_begin(driver), None)))
    answers = _round_trip(driver, sends)
    outcomes, failed = _outcomes(batch, sends, answers, transformer, pgconn, state)
    if failed is not None:
        if isinstance(failed.error, pg_errors.InvalidSqlStatementName):
            state.names.clear()  # deallocated behind our back: prepared afresh next time
        raise failed
    return outcomes


class _Send(NamedTuple):
    """One command of a batch: the statement it is for, whether it answers for it (an
    execution; not its ``PREPARE`` nor the ``BEGIN`` before it), and the libpq call."""

    statement: int
    answers: bool
    call: Any
    args: tuple[Any, ...]
    prepares: tuple[bytes, tuple[int, ...]] | None = None  # a PREPARE: its statement's key


def _round_trip(driver: psycopg.Connection[Any], sends: list[_Send]) -> list[list[Any]]:
    """Send every command and a sync in pipeline mode; each command's results, in order
    (waiting on the socket as psycopg waits, the GIL released)."""
    pgconn = driver.pgconn
    done = False
    try:
        pgconn.enter_pipeline_mode()
        for command in sends:
            command.call(*command.args)
        pgconn.pipeline_sync()
        driver.wait(send(pgconn))
        answers = [_answer(driver, pgconn) for _ in sends]
        synced = _answer(driver, pgconn)
        if not synced or synced[0].status != pq.ExecStatus.PIPELINE_SYNC:
            raise psycopg.OperationalError("the pipeline lost its sync")
        pgconn.exit_pipeline_mode()
        done = True
    except psycopg.Error as error:
        raise BatchFailed(0, error) from error
    finally:
        if not done:  # left mid-protocol: closed, so that the pool never hands it out again
            with contextlib.suppress(Exception):
                driver.close()
    return answers


def _answer(driver: psycopg.Connection[Any], pgconn: Any) -> list[Any]:
    """The next command's results (up to libpq's end of them), or the sync's. What has
    arrived already is taken from libpq's buffer as it is; only a wait for more goes
    through psycopg's wait on the socket (one such wait a result cost 1.4 % more of a
    payment's client instructions, callgrind: 9.21 against 9.09 million)."""
    results: list[Any] = []
    while True:
        if pgconn.is_busy():
            results.extend(driver.wait(fetch_many(pgconn)))
            return results
        result = pgconn.get_result()
        if result is None:
            return results
        results.append(result)
        if result.status == pq.ExecStatus.PIPELINE_SYNC:
            return results


def _outcomes(
    batch: Sequence[Statement],
    sends: list[_Send],
    answers: list[list[Any]],
    transformer: abc.Transformer,
    pgconn: Any,
    state: _State,
) -> tuple[list[Outcome], BatchFailed | None]:
    """Each statement's outcome, or the first failure; a statement the server prepared is
    known as prepared from now on, even in a batch that failed after it."""
    outcomes = [Outcome(None, [], -1) for _ in batch]
    counted = [False] * len(batch)
    for command, results in zip(sends, answers, strict=True):
        index = command.statement
        for result in results:
            if result.status == pq.ExecStatus.PIPELINE_ABORTED:
                continue  # after the failure reported below
            if result.status not in _OK:
                error = pg_errors.error_from_result(result, encoding=pgconn._encoding)
                return outcomes, BatchFailed(index, error)
            if command.prepares is not None:
                state.names[command.prepares] = command.args[0]
            if not command.answers:
                continue
            outcome = outcomes[index]
            count = result.command_tuples
            if count is not None:
                outcome.rowcount = (outcome.rowcount if counted[index] else 0) + count
                counted[index] = True
            if result.status == pq.ExecStatus.TUPLES_OK:
                transformer.set_pgresult(result)
                rows = transformer.load_rows(0, result.ntuples, tuple)
                outcome.rows = rows if outcome.rows is None else outcome.rows + rows
                outcome.types = [result.ftype(i) for i in range(result.nfields)]
    return outcomes, None
