"""The round trips a test's statements make on PostgreSQL, as the SQL each one sends."""

from __future__ import annotations

from typing import Any

import pytest

from paywarden.store import prepared


def record_round_trips(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """From now on (until ``monkeypatch.undo()``), each call to the driver: a round trip, as
    the SQL of what was held back for it, then its own (``SAVEPOINT …``, ``COMMIT`` as sent)."""
    rounds: list[list[str]] = []
    run = prepared._execute

    def recorded(connection: Any, form: Any, parameters: Any, before: Any = (), *rest: Any) -> Any:
        sent = [(p.form, p.parameters) for p in before] + [(form, parameters)]
        rounds.append([str(sql) if shape is None else shape.sql for shape, sql in sent])
        return run(connection, form, parameters, before, *rest)

    monkeypatch.setattr(prepared, "_execute", recorded)
    return rounds
