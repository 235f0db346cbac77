"""Bulk catalog import from JSON and CSV: valid rows created or updated by sku, invalid ones
reported by row, field and reason.

::

    rows = catalog_import.parse_import(text, "csv")
    report = catalog_import.import_rows(uow, actor, merchant_id, livemode, rows)
    record = catalog_import.record_import(uow, merchant_id, livemode, "csv", report)

The CLI calls :func:`import_rows` once per batch (one transaction each, behind a progress
bar) and :func:`record_import` at the end; the API does all three in one transaction.
Re-importing a file updates the same products (by sku) and creates no duplicates.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert

from paywarden.adapters.ids import new_id
from paywarden.commerce import catalog as domain
from paywarden.kernel.clock import rfc3339
from paywarden.kernel.errors import InvalidRequest
from paywarden.kernel.principals import Principal
from paywarden.services.catalog import upsert_product
from paywarden.store.outbox import emit
from paywarden.store.tables_catalog import catalog_imports
from paywarden.store.unit_of_work import UnitOfWork

__all__ = [
    "CSV_COLUMNS",
    "IMPORT_FORMATS",
    "IMPORT_ROWS_MAX",
    "ImportReport",
    "RowError",
    "import_rows",
    "parse_import",
    "record_import",
]

IMPORT_ROWS_MAX = 50_000
IMPORT_FORMATS = ("json", "csv")
CSV_COLUMNS = (
    "sku",
    "title",
    "description",
    "category",
    "amount",
    "stock",
    "available",
    "option_groups",
    "variants",
)


@dataclass(frozen=True, slots=True)
class RowError:
    row: int  # 1-based, counting data rows only (a CSV header is not a row)
    field: str | None  # the JSON path inside the row, without "$." (variants[0].amount)
    reason: str


@dataclass
class ImportReport:
    rows_total: int = 0
    created: int = 0
    updated: int = 0
    errors: list[RowError] = field(default_factory=list)
    product_ids: list[str] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return len({error.row for error in self.errors})

    def add(self, other: ImportReport) -> None:
        self.rows_total += other.rows_total
        self.created += other.created
        self.updated += other.updated
        self.errors.extend(other.errors)
        self.product_ids.extend(other.product_ids)


def parse_import(content: str, fmt: str) -> list[Any]:
    """The rows of an import file (JSON: a list of products or ``{"products": [...]}``; CSV:
    a header with :data:`CSV_COLUMNS`, JSON text in ``option_groups`` and ``variants``); a
    CSV row whose cells do not convert is a :class:`RowError` in its place."""
    if fmt not in IMPORT_FORMATS:
        raise InvalidRequest(f"format is one of {list(IMPORT_FORMATS)}", param="$.format")
    rows = _json_rows(content) if fmt == "json" else _csv_rows(content)
    if len(rows) > IMPORT_ROWS_MAX:
        raise InvalidRequest(f"an import has at most {IMPORT_ROWS_MAX} rows", param="$.content")
    return rows


def _json_rows(content: str) -> list[Any]:
    try:
        data = json.loads(content)
    except ValueError as error:
        raise InvalidRequest(f"the file is not JSON: {error}", code="invalid_json") from None
    if isinstance(data, dict) and isinstance(data.get("products"), list):
        data = data["products"]
    if not isinstance(data, list):
        raise InvalidRequest('a JSON import is a list of products or {"products": [...]}')
    return list(data)


def _csv_rows(content: str) -> list[Any]:
    reader = csv.DictReader(io.StringIO(content))
    header = reader.fieldnames or []
    missing = [name for name in ("sku", "title", "amount") if name not in header]
    unknown = [name for name in header if name not in CSV_COLUMNS]
    if missing or unknown:
        raise InvalidRequest(
            f"CSV header: missing {missing}, unknown {unknown}; columns are {list(CSV_COLUMNS)}",
            param="$.content",
        )
    return [_csv_row(number, raw) for number, raw in enumerate(reader, start=1)]


def _csv_row(number: int, raw: dict[str, Any]) -> dict[str, Any] | RowError:
    row: dict[str, Any] = {}
    for name, cell in raw.items():
        if name is None:
            return RowError(number, None, "the row has more cells than the header")
        value = (cell or "").strip()
        if name in ("amount", "stock"):
            if value == "" and name == "stock":
                continue
            if not value.isdigit():
                return RowError(number, name, f"{name} is a whole number of minor units")
            row[name] = int(value)
        elif name == "available":
            if value.lower() not in ("", "true", "false", "yes", "no", "1", "0"):
                return RowError(number, name, "available is true or false")
            row[name] = value.lower() not in ("false", "no", "0")
        elif name in ("option_groups", "variants"):
            try:
                row[name] = json.loads(value) if value else []
            except ValueError:
                return RowError(number, name, f"{name} is JSON text")
        elif value or name in ("sku", "title"):
            row[name] = value
    return row


def import_rows(
    uow: UnitOfWork,
    actor: Principal | None,
    merchant_id: str,
    livemode: bool,
    rows: Sequence[Any],
    *,
    first_row: int = 1,
) -> ImportReport:
    """Write the valid rows (create, or update by sku), report the invalid ones. A sku seen
    twice in the same batch is reported at its second row. No events: see
    :func:`record_import`."""
    report = ImportReport(rows_total=len(rows))
    seen: dict[str, int] = {}
    for offset, raw in enumerate(rows):
        number = first_row + offset
        if isinstance(raw, RowError):
            report.errors.append(raw)
            continue
        try:
            draft = domain.parse_draft(raw, "$")
        except InvalidRequest as error:
            path = error.param[2:] if error.param and error.param != "$" else None
            report.errors.append(RowError(number, path, error.message))
            continue
        if draft.sku in seen:
            report.errors.append(RowError(number, "sku", f"sku repeats row {seen[draft.sku]}"))
            continue
        seen[draft.sku] = number
        product, created = upsert_product(uow, actor, merchant_id, livemode, draft, events=False)
        report.created += created
        report.updated += not created
        report.product_ids.append(product.id)
    return report


def record_import(
    uow: UnitOfWork, merchant_id: str, livemode: bool, fmt: str, report: ImportReport
) -> dict[str, Any]:
    """Keep the import's counts and error report, and announce ``catalog.imported``."""
    import_id = new_id("imp")
    now = uow.clock.now()
    errors = [{"row": e.row, "field": e.field, "reason": e.reason} for e in report.errors]
    uow.execute(
        insert(catalog_imports).values(
            id=import_id,
            merchant_id=merchant_id,
            livemode=livemode,
            format=fmt,
            rows_total=report.rows_total,
            created=report.created,
            updated=report.updated,
            failed=report.failed,
            errors=errors,
            created_at=now,
        )
    )
    body = {
        "id": import_id,
        "object": "catalog_import",
        "livemode": livemode,
        "created": rfc3339(now),
        "merchant": merchant_id,
        "format": fmt,
        "rows_total": report.rows_total,
        "created_count": report.created,
        "updated_count": report.updated,
        "failed_count": report.failed,
        "errors": errors,
    }
    emit(uow, "catalog.imported", livemode, {k: v for k, v in body.items() if k != "errors"})
    return body
