"""Statements built once and run on the driver directly: the hot path's SQL without the ORM.

SQLAlchemy Core spends about 40 µs around every statement it runs (cache key, execution
context, result metadata: a point read on SQLite took 44 µs through it, 3 µs on the
driver); an agent payment runs 32 statements. A statement built once at import and registered with
:func:`prepared` is compiled once per dialect and parameter set by SQLAlchemy itself (the
SQL text, the parameter order, and SQLAlchemy's own bind and result processors for every
type), then :meth:`~paywarden.store.unit_of_work.UnitOfWork.execute` runs it with the
driver's cursor, in the same transaction on the same connection.

What changes is who builds the result, nothing of what the database sees: the SQL text,
the values after their type processing and the rows are SQLAlchemy's. A statement that
needs what only SQLAlchemy's execution context does (Python-side column defaults, an empty
expanding ``IN``, escaped bind names, ``executemany`` with ``RETURNING``) runs through
SQLAlchemy as before, decided once per form; a non-empty expanding ``IN`` is expanded by
SQLAlchemy once per length of its list. Driver errors are raised as SQLAlchemy's
(``IntegrityError``, ``OperationalError``, …), so retries and conflict handling see what
they always saw, and a lost connection is invalidated as SQLAlchemy would.

Writes held back by :meth:`~paywarden.store.unit_of_work.UnitOfWork.write` (a
:class:`Pending` each) go to PostgreSQL ahead of the next statement in one round trip, in
pipeline mode, through libpq directly (:mod:`paywarden.store.pipeline`; psycopg's cursor
for SQL it does not handle): the server runs them in order and skips what follows a
failure up to the sync, so the first one without a result is the one whose error is
raised (with its own SQL in the error). Reads sent ahead (:class:`Pending` with a
``result``) go the same way. An agent payment makes 5 round trips of its own instead of
36 (its savepoint's release goes with the next), and its group 2 more, the second with
the ``COMMIT`` (see ``store.tail`` and ``UnitOfWork.commit``;
tests/payments/test_round_trips.py).

Only statements that live as long as the process may be registered: the registry keys on
the statement object's identity and keeps it alive.
"""

from __future__ import annotations

import functools
from collections import namedtuple
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple, TypeVar

from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import (
    DBAPIError,
    InvalidRequestError,
    MultipleResultsFound,
    NoResultFound,
    ResourceClosedError,
    StatementError,
)
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import Delete, Insert, Select, Update

from paywarden.kernel.errors import InvariantViolation
from paywarden.store import pipeline

__all__ = [
    "FastResult",
    "Pending",
    "form_of",
    "miscounted",
    "prepare_all",
    "prepared",
    "run_driver_sql",
    "run_prepared",
    "send_pending",
]

S = TypeVar("S")

_REGISTRY: dict[int, _Prepared] = {}
_CURSORS = "paywarden_cursors"  # the driver cursors kept with a pooled connection
_KINDS = (Select, Insert, Update, Delete)


def prepared(statement: S) -> S:
    """Register a statement built once at import to run on the driver directly; returns it."""
    if not isinstance(statement, _KINDS):
        raise TypeError(f"only SELECT, INSERT, UPDATE and DELETE are prepared, not {statement!r}")
    _REGISTRY[id(statement)] = _Prepared(statement)
    return statement


def prepare_all(namespace: Mapping[str, Any]) -> None:
    """Register every statement a module built at import (its globals, and the values of its
    dicts of statements); a module calls it last, with ``globals()``."""
    for value in list(namespace.values()):
        for candidate in value.values() if isinstance(value, dict) else (value,):
            if isinstance(candidate, _KINDS):
                prepared(candidate)


class _Form:
    """One statement compiled for one dialect and one set of parameter names (and, for an
    expanding ``IN``, one length of each list)."""

    __slots__ = ("expansion", "many", "pg", "plan", "positional", "rows", "sql")

    def __init__(
        self,
        compiled: SQLCompiler,
        dialect: Dialect,
        many: bool,
        lists: Mapping[str, int] | None = None,
    ) -> None:
        self.many = many
        self.positional = dialect.positional
        processors: dict[str, Any] = dict(compiled._bind_processors)
        self.expansion: dict[str, list[str]] = {}
        if lists:  # SQLAlchemy's own expansion of each list into one parameter per item
            state = compiled.construct_expanded_state(
                {
                    **compiled.construct_params(_check=False),
                    **{name: [None] * length for name, length in lists.items()},
                }
            )
            self.sql, positions = state.statement, state.positiontup
            self.expansion = dict(state.parameter_expansion)
            processors.update(state.processors)
            defaults = dict(state.parameters)
        else:
            self.sql, positions = compiled.string, compiled.positiontup
            defaults = dict(compiled.construct_params(_check=False))
        # Each parameter the driver gets, in its order: name, processor, and the value when
        # the call gives none (a bound literal such as ``status == "succeeded"`` keeps its own).
        self.plan = tuple(
            (name, processors.get(name), defaults.get(name))
            for name in ((positions or ()) if self.positional else defaults)
        )
        self.rows: _RowShape | None = None
        if compiled._result_columns:
            self.rows = _RowShape(compiled, dialect)
        # On PostgreSQL through libpq (store.pipeline): the SQL numbered, and where each
        # number's value is among this form's values; None where psycopg's cursor runs it.
        self.pg: tuple[bytes, tuple[int, ...]] | None = None
        if dialect.driver == "psycopg" and not self.positional:
            converted = pipeline.convert(self.sql)
            names = [step[0] for step in self.plan]
            if converted is not None and set(converted[1]) <= set(names):
                self.pg = converted[0], tuple(names.index(name) for name in converted[1])

    def values(self, parameters: Mapping[str, Any]) -> Any:
        got = self._processed(parameters)
        if self.positional:
            return tuple(got)
        return dict(zip((step[0] for step in self.plan), got, strict=True))

    def numbered(self, parameters: Mapping[str, Any], order: tuple[int, ...]) -> list[Any]:
        """The values for the SQL numbered by :func:`~paywarden.store.pipeline.convert`, in
        the order of its numbers (``order``: their places in the plan)."""
        got = self._processed(parameters)
        return [got[at] for at in order]

    def _processed(self, parameters: Mapping[str, Any]) -> list[Any]:
        """Each value of the plan, in its order, after its type's bind processing."""
        if self.expansion:  # each list's items under the names SQLAlchemy gave them
            parameters = dict(parameters)
            for name, expanded in self.expansion.items():
                parameters.update(zip(expanded, parameters.pop(name), strict=True))
        get = parameters.get
        return [
            get(name, default) if process is None else process(get(name, default))
            for name, process, default in self.plan
        ]


class _RowShape:
    """The columns of a statement's rows: names for attribute access, result processors."""

    __slots__ = ("columns", "dialect", "processed", "processors", "row")

    def __init__(self, compiled: SQLCompiler, dialect: Dialect) -> None:
        self.columns = compiled._result_columns
        self.dialect = dialect
        base = namedtuple("Row", [c[0] for c in self.columns], rename=True)  # type: ignore[misc]
        self.row: Any = type("Row", (base,), {"__slots__": (), "_mapping": property(base._asdict)})
        self.processors: list[Any] | None = None
        self.processed: list[tuple[int, Any]] = []  # (column, processor) where there is one

    def build(self, cursor: Any, raw: list[Any]) -> list[Any]:
        if self.processors is None:
            # Read once: psycopg builds the description afresh at every access, an object
            # a column (about 80 a payment, 0.3 ms under cProfile).
            self._processors([described[1] for described in cursor.description])
        return self.build_typed(raw)

    def _processors(self, types: Sequence[Any]) -> None:
        """SQLAlchemy's result processors, by the driver's column types (as it picks them)."""
        if len(types) != len(self.columns):
            raise InvalidRequestError("a prepared statement's columns changed")
        self.processors = [
            column[3]._cached_result_processor(self.dialect, type_code)
            for column, type_code in zip(self.columns, types, strict=True)
        ]
        self.processed = [(at, p) for at, p in enumerate(self.processors) if p is not None]

    def build_typed(self, raw: list[Any], types: Sequence[Any] = ()) -> list[Any]:
        """Rows of ``raw``; ``types``: the columns' type codes, for the first rows built."""
        if self.processors is None:
            self._processors(types)
        assert self.processors is not None
        make, processed = self.row._make, self.processed
        if not processed:
            return [make(row) for row in raw]
        rows = []
        for row in raw:  # only the columns with a processor are touched (a third of the time)
            values = list(row)
            for at, process in processed:
                values[at] = process(values[at])
            rows.append(make(values))
        return rows


class _Prepared:
    __slots__ = ("compiled", "forms", "quick", "statement")

    def __init__(self, statement: Any) -> None:
        self.statement = statement
        # (dialect, names, many) -> the compiled statement and its expanding IN names, or
        # None where SQLAlchemy must run it; then one form per length of each IN list.
        self.compiled: dict[tuple[Any, ...], tuple[SQLCompiler, tuple[str, ...]] | None] = {}
        self.forms: dict[tuple[Any, ...], _Form | None] = {}
        self.quick: dict[tuple[Any, ...], _Form | None] = {}

    def form(self, dialect: Dialect, parameters: Mapping[str, Any], many: bool) -> _Form | None:
        called = (dialect.name, tuple(parameters), many)  # as the caller orders its names
        try:
            return self.quick[called]
        except KeyError:
            pass
        at = (dialect.name, tuple(sorted(parameters)), many)
        try:
            base = self.compiled[at]
        except KeyError:
            base = self.compiled[at] = self._compile(dialect, at[1], many)
        if base is None:
            return None
        compiled, expanding = base
        lists = {name: _length(parameters[name]) for name in expanding}
        shape = (*at, tuple(lists.values()))
        try:
            return self.forms[shape]
        except KeyError:
            pass
        form = None if 0 in lists.values() else _Form(compiled, dialect, many, lists)
        self.forms[shape] = form
        if not expanding:  # no list lengths to tell forms apart: found by the names alone
            self.quick[called] = form
        return form

    def _compile(
        self, dialect: Dialect, keys: tuple[str, ...], many: bool
    ) -> tuple[SQLCompiler, tuple[str, ...]] | None:
        compiled = self.statement.compile(
            dialect=dialect, column_keys=list(keys), for_executemany=many
        )
        expanding = tuple(sorted({bind.key for bind in compiled.post_compile_params}))
        needs_context = (
            compiled.insert_prefetch
            or compiled.update_prefetch
            or compiled.literal_execute_params
            or compiled.escaped_bind_names
            or (many and (compiled._result_columns or expanding))
        )
        required = {
            bind.key for bind in compiled.binds.values() if bind.required and bind.callable is None
        }
        # A missing value: SQLAlchemy's own error says which.
        if needs_context or not required <= set(keys):
            return None
        return compiled, expanding


def _length(value: Any) -> int:
    """The length of an expanding IN's list; 0 (SQLAlchemy's own SQL for an empty IN, and
    its error for what is not a list) for anything else."""
    return len(value) if isinstance(value, list | tuple) else 0


class Pending(NamedTuple):
    """A write sent later, in one round trip with the next statement that needs an answer
    (see :meth:`~paywarden.store.unit_of_work.UnitOfWork.write`): its form (None for SQL
    without parameters, such as ``SAVEPOINT …``, held in ``parameters``), its values, and
    the row count it must report (None: not checked) with what it means when it does not
    (an :class:`~paywarden.kernel.errors.InvariantViolation` with that message, or the
    error given).
    A read sent ahead (:meth:`~paywarden.store.unit_of_work.UnitOfWork.prefetch`) gets its
    result put in ``result`` once it is in."""

    form: _Form | None
    parameters: Any
    rows: int | None
    lost: str | Exception
    result: list[FastResult] | None = None


def form_of(connection: Connection, statement: Any, parameters: Any) -> _Form | None:
    """The form ``statement`` runs raw in, for these parameters; None if it is not
    registered or needs SQLAlchemy for them."""
    entry = _REGISTRY.get(id(statement))
    if entry is None:
        return None
    many = isinstance(parameters, list)
    if many and not parameters:
        return None
    first: Mapping[str, Any] = (parameters[0] if many else parameters) or {}
    if type(first) is not dict and not isinstance(first, Mapping):  # a dict: no ABC check
        return None
    return entry.form(connection.dialect, first, many)


def run_prepared(
    connection: Connection, statement: Any, parameters: Any, before: Sequence[Pending] = ()
) -> FastResult | None:
    """Run ``statement`` on the driver if it is registered and its form runs raw, after the
    writes ``before`` it in the same round trip; else None, with nothing sent (the caller
    sends ``before`` with :func:`send_pending` and runs the statement through SQLAlchemy)."""
    form = form_of(connection, statement, parameters)
    if form is None:
        return None
    return _execute(connection, form, parameters if form.many else (parameters or {}), before)


def run_driver_sql(connection: Connection, sql: str, before: Sequence[Pending] = ()) -> None:
    """Run SQL without parameters or rows (``SAVEPOINT …``) on the driver, after the writes
    ``before`` it in the same round trip, errors raised as SQLAlchemy's."""
    _execute(connection, None, sql, before)


def send_pending(connection: Connection, pending: Sequence[Pending]) -> None:
    """Send writes held back, in one round trip, and check them."""
    if pending:
        last = pending[-1]
        _execute(connection, last.form, last.parameters, pending[:-1], last)


def _execute(
    connection: Connection,
    form: _Form | None,
    parameters: Any,
    before: Sequence[Pending] = (),
    checked: Pending | None = None,
) -> FastResult:
    if connection.dialect.driver == "psycopg" and pipeline.supported():
        batch = _batch(form, parameters, before)
        if batch is not None:
            return _on_libpq(connection, batch, form, parameters, before, checked)
    if before:
        return _pipelined(connection, form, parameters, before, checked)
    cursor = _cursors(connection, 1)[0]
    try:
        result = _send(cursor, form, parameters)
        if checked is not None:
            _answered(checked, cursor.rowcount, lambda: result)
        return result
    except connection.dialect.loaded_dbapi.Error as error:
        raise _wrapped(
            connection, error, cursor, parameters if form is None else form.sql, parameters
        ) from error


def _batch(
    form: _Form | None, parameters: Any, before: Sequence[Pending]
) -> list[pipeline.Statement] | None:
    """``before`` and the statement as one batch for libpq; None if one of them needs
    psycopg's cursor (its SQL has a ``%`` of its own)."""
    batch = []
    for one_form, values in (*((w.form, w.parameters) for w in before), (form, parameters)):
        if one_form is None:
            batch.append(pipeline.Statement(values.encode()))
            continue
        if one_form.pg is None:
            return None
        sql, order = one_form.pg
        rows = values if one_form.many else (values,)
        batch.append(pipeline.Statement(sql, [one_form.numbered(row, order) for row in rows]))
    return batch


def _on_libpq(
    connection: Connection,
    batch: list[pipeline.Statement],
    form: _Form | None,
    parameters: Any,
    before: Sequence[Pending],
    checked: Pending | None,
) -> FastResult:
    """``before``, then the statement, in one round trip on libpq (:mod:`.pipeline`)."""
    fairy = connection.connection
    try:
        outcomes = pipeline.run_batch(fairy.info, fairy.driver_connection, batch)  # type: ignore[arg-type]
    except pipeline.BatchFailed as failed:
        if failed.index < len(before):
            form, parameters = before[failed.index].form, before[failed.index].parameters
        sql = parameters if form is None else form.sql
        raise _wrapped(connection, failed.error, None, sql, parameters) from failed.error
    result = _outcome(form, outcomes[-1])
    for write, outcome in zip(before, outcomes, strict=False):
        _answered(write, outcome.rowcount, functools.partial(_outcome, write.form, outcome))
    if checked is not None:
        _answered(checked, outcomes[-1].rowcount, lambda: result)
    return result


def _outcome(form: _Form | None, outcome: pipeline.Outcome) -> FastResult:
    if form is None or form.many or form.rows is None or outcome.rows is None:
        return FastResult([], outcome.rowcount, returns_rows=False)
    rows = form.rows.build_typed(outcome.rows, outcome.types)
    return FastResult(rows, outcome.rowcount, returns_rows=True)


def _cursors(connection: Connection, count: int) -> list[Any]:
    """At least ``count`` cursors of the connection's driver, kept with the pooled connection
    and reused (each ``execute`` starts a cursor afresh): a new psycopg cursor costs about
    45 µs more per statement than a reused one, a third of what psycopg spends on it."""
    fairy = connection.connection  # the pooled DBAPI connection of this transaction
    kept: list[Any] | None = fairy.info.get(_CURSORS)
    if kept is None:
        kept = fairy.info[_CURSORS] = []
    while len(kept) < count:
        kept.append(fairy.driver_connection.cursor())  # type: ignore[union-attr]
    return kept


def _send(cursor: Any, form: _Form | None, parameters: Any) -> FastResult:
    _start(cursor, form, parameters)
    return _finish(cursor, form)


def _start(cursor: Any, form: _Form | None, parameters: Any) -> None:
    if form is None:
        cursor.execute(parameters)
    elif form.many:
        cursor.executemany(form.sql, [form.values(one) for one in parameters])
    else:
        cursor.execute(form.sql, form.values(parameters))


def _finish(cursor: Any, form: _Form | None) -> FastResult:
    """The statement's result (in pipeline mode, fetching rows waits for them)."""
    if form is None or form.many or form.rows is None:
        return FastResult([], cursor.rowcount, returns_rows=False)
    raw = cursor.fetchall()
    return FastResult(form.rows.build(cursor, raw), cursor.rowcount, returns_rows=True)


def _pipelined(
    connection: Connection,
    form: _Form | None,
    parameters: Any,
    before: Sequence[Pending],
    checked: Pending | None,
) -> FastResult:
    """``before``, then the statement, in one round trip (psycopg's pipeline mode). The
    server skips what follows a failed statement up to the sync, so the first of
    ``before`` without a result is the one that failed; if all have one, the statement
    did."""
    driver: Any = connection.connection.driver_connection
    cursor, *cursors = _cursors(connection, len(before) + 1)[: len(before) + 1]
    started = 0
    try:
        with driver.pipeline():
            for write, sent in zip(before, cursors, strict=True):
                started += 1
                _start(sent, write.form, write.parameters)
            _start(cursor, form, parameters)
        result = _finish(cursor, form)  # all answers are in: the pipeline synced on leaving
        for write, sent in zip(before, cursors, strict=True):
            _answered(write, sent.rowcount, functools.partial(_finish, sent, write.form))
        if checked is not None:
            _answered(checked, cursor.rowcount, lambda: result)
        return result
    except connection.dialect.loaded_dbapi.Error as error:
        failed = next(
            (w for w, c in zip(before[:started], cursors, strict=False) if c.pgresult is None),
            None,
        )
        if failed is not None:
            form, parameters = failed.form, failed.parameters
        raise _wrapped(
            connection, error, cursor, parameters if form is None else form.sql, parameters
        ) from error


def _answered(write: Pending, rowcount: int, result: Callable[[], FastResult]) -> None:
    """A held statement's answer is in: check its row count, hand a read sent ahead its
    result (built by ``result`` only then)."""
    if write.rows is not None and rowcount != write.rows:
        raise miscounted(write.lost)
    if write.result is not None:
        write.result.append(result())


def miscounted(lost: str | Exception) -> Exception:
    """What a write that reported the wrong row count raises (see :class:`Pending`)."""
    return lost if isinstance(lost, Exception) else InvariantViolation(lost)


def _wrapped(
    connection: Connection, error: Any, cursor: Any, sql: str, parameters: Any
) -> StatementError:
    """The driver's error as SQLAlchemy raises it; a lost connection is invalidated."""
    dialect = connection.dialect
    fairy = connection.connection
    disconnect = dialect.is_disconnect(error, fairy.dbapi_connection, cursor)
    if disconnect:
        connection.invalidate(error)
    wrapped: StatementError = DBAPIError.instance(
        sql,
        parameters,
        error,
        dialect.loaded_dbapi.Error,
        connection_invalidated=disconnect,
        dialect=dialect,
    )
    return wrapped


class FastResult:
    """The rows of one prepared statement, fetched at once; the subset of SQLAlchemy's
    ``Result`` the services use."""

    __slots__ = ("_returns_rows", "_rows", "rowcount")

    def __init__(self, rows: list[Any], rowcount: int, *, returns_rows: bool) -> None:
        self._rows = rows
        self.rowcount = rowcount
        self._returns_rows = returns_rows

    def _all(self) -> list[Any]:
        if not self._returns_rows:
            raise ResourceClosedError("This result object does not return rows.")
        return self._rows

    def __iter__(self) -> Iterator[Any]:
        return iter(self._all())

    def all(self) -> list[Any]:
        return list(self._all())

    fetchall = all

    def fetchone(self) -> Any:
        rows = self._all()
        return rows.pop(0) if rows else None

    def first(self) -> Any:
        rows = self._all()
        return rows[0] if rows else None

    def one_or_none(self) -> Any:
        rows = self._all()
        if len(rows) > 1:
            raise MultipleResultsFound("Multiple rows were found when one or none was required")
        return rows[0] if rows else None

    def one(self) -> Any:
        row = self.one_or_none()
        if row is None:
            raise NoResultFound("No row was found when one was required")
        return row

    def scalar_one(self) -> Any:
        return self.one()[0]

    def scalar_one_or_none(self) -> Any:
        row = self.one_or_none()
        return None if row is None else row[0]

    def scalar(self) -> Any:
        row = self.first()
        return None if row is None else row[0]

    def scalars(self) -> _Scalars:
        return _Scalars([row[0] for row in self._all()])

    def mappings(self) -> _Scalars:
        return _Scalars([row._asdict() for row in self._all()])


class _Scalars:
    __slots__ = ("_values",)

    def __init__(self, values: list[Any]) -> None:
        self._values = values

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def all(self) -> list[Any]:
        return list(self._values)

    def first(self) -> Any:
        return self._values[0] if self._values else None

    def one(self) -> Any:
        if len(self._values) != 1:
            raise (NoResultFound if not self._values else MultipleResultsFound)(
                "exactly one row was required"
            )
        return self._values[0]

    def one_or_none(self) -> Any:
        if len(self._values) > 1:
            raise MultipleResultsFound("Multiple rows were found when one or none was required")
        return self._values[0] if self._values else None
