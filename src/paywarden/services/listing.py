"""Cursor pagination: newest first, ``starting_after`` an id from the previous page.

Ids sort by creation time, so the id itself is the cursor: no offsets, and rows inserted
while a client pages through never shift what it sees.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Table, select

from paywarden.kernel.errors import InvalidRequest
from paywarden.services.records import Page
from paywarden.store.unit_of_work import UnitOfWork

__all__ = ["LIMIT_DEFAULT", "LIMIT_MAX", "check_limit", "page", "page_rows"]

LIMIT_DEFAULT = 10
LIMIT_MAX = 100


def check_limit(limit: int | None) -> int:
    if limit is None:
        return LIMIT_DEFAULT
    if not 1 <= limit <= LIMIT_MAX:
        raise InvalidRequest(
            f"limit must be 1 to {LIMIT_MAX}", code="invalid_limit", param="$.limit"
        )
    return limit


def page_rows(
    uow: UnitOfWork,
    table: Table,
    conditions: list[ColumnElement[bool]],
    *,
    limit: int | None,
    starting_after: str | None,
) -> tuple[list[Any], bool]:
    """Rows of ``table`` matching ``conditions``, newest first, and whether more follow."""
    size = check_limit(limit)
    query = select(table).where(*conditions)
    if starting_after is not None:
        query = query.where(table.c.id < starting_after)
    rows = list(uow.execute(query.order_by(table.c.id.desc()).limit(size + 1)))
    return rows[:size], len(rows) > size


def page(items: list[Any], has_more: bool) -> Page:
    return Page(items=items, has_more=has_more)
