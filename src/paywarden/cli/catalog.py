"""Catalog import and search from the terminal.

- ``paywarden catalog import FILE --merchant mer_… [--format json|csv]``: creates or updates
  products by sku in batches (one transaction each) behind a progress bar, then prints the
  rows it refused (row, field, reason) and records the import (event ``catalog.imported``).
  Running the same file again updates the same products. Exit status 1 when a row failed.
- ``paywarden catalog search [QUERY] [--merchant] [--category] [--max-amount] [--in-stock]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

__all__ = ["register"]

console = Console()
catalog_app = typer.Typer(help="Import and search merchants' catalogs.", no_args_is_help=True)
ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="TOML settings file (PAYWARDEN_CONFIG)")
]
DatabaseOption = Annotated[
    str | None, typer.Option("--database-url", help="overrides PAYWARDEN_DATABASE_URL")
]
LiveOption = Annotated[bool, typer.Option("--live", help="live mode instead of test")]
BATCH_ROWS = 200  # rows per transaction: short transactions, steady progress
ERRORS_SHOWN_MAX = 200


def register(app: typer.Typer) -> None:
    """Add this module's commands to the ``paywarden`` command line."""
    app.add_typer(catalog_app, name="catalog")


def _runtime(config: Path | None, database_url: str | None) -> Any:
    from paywarden.cli.main import _runtime as runtime  # noqa: PLC0415

    return runtime(config, database_url)


@catalog_app.command("import")
def import_file(
    file: Annotated[Path, typer.Argument(help="a JSON or CSV file", exists=True, dir_okay=False)],
    merchant: Annotated[str, typer.Option("--merchant", help="the merchant (mer_…)")],
    fmt: Annotated[
        str | None, typer.Option("--format", help="json or csv (default: from the extension)")
    ] = None,
    live: LiveOption = False,
    config: ConfigOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Import products: valid rows are created or updated by sku, invalid ones reported."""
    from paywarden.kernel.errors import PaywardenError  # noqa: PLC0415
    from paywarden.services import catalog_import, identity  # noqa: PLC0415

    fmt = (fmt or file.suffix.lstrip(".")).lower()
    rt = _runtime(config, database_url)
    try:
        rt.store.run(lambda uow: identity.get_merchant(uow, merchant, live), read_only=True)
        rows = catalog_import.parse_import(file.read_text(encoding="utf-8-sig"), fmt)
    except PaywardenError as error:
        console.print(f"[red]{error.message}[/]")
        raise typer.Exit(2) from None
    report = catalog_import.ImportReport()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task(f"importing {file.name}", total=len(rows))
        for start in range(0, len(rows), BATCH_ROWS):
            batch = rows[start : start + BATCH_ROWS]
            done = rt.store.run(
                lambda uow, b=batch, s=start: catalog_import.import_rows(
                    uow, None, merchant, live, b, first_row=s + 1
                )
            )
            report.add(done)
            progress.advance(task, len(batch))
    record = rt.store.run(
        lambda uow: catalog_import.record_import(uow, merchant, live, fmt, report)
    )
    _print_report(record)
    if report.errors:
        raise typer.Exit(1)


def _print_report(record: dict[str, Any]) -> None:
    console.print(
        f"{record['id']}: {record['rows_total']} row(s): {record['created_count']} created, "
        f"{record['updated_count']} updated, {record['failed_count']} refused"
    )
    errors = record["errors"]
    if not errors:
        return
    table = Table("row", "field", "reason", title="refused rows")
    for error in errors[:ERRORS_SHOWN_MAX]:
        table.add_row(str(error["row"]), error["field"] or "", error["reason"])
    console.print(table)
    if len(errors) > ERRORS_SHOWN_MAX:
        console.print(f"… and {len(errors) - ERRORS_SHOWN_MAX} more")


@catalog_app.command("search")
def search(
    query: Annotated[str, typer.Argument(help="words to look for")] = "",
    merchant: Annotated[str | None, typer.Option("--merchant")] = None,
    category: Annotated[str | None, typer.Option("--category")] = None,
    max_amount: Annotated[
        int | None, typer.Option("--max-amount", help="price ceiling in minor units")
    ] = None,
    in_stock: Annotated[bool, typer.Option("--in-stock", help="only what is in stock")] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, max=100)] = 20,
    live: LiveOption = False,
    config: ConfigOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Search every catalog, best matches first."""
    from paywarden.kernel.money import format_amount  # noqa: PLC0415
    from paywarden.services import catalog  # noqa: PLC0415

    rt = _runtime(config, database_url)
    wanted = catalog.SearchQuery(query, merchant, category, max_amount, in_stock, limit)
    found = rt.store.run(lambda uow: catalog.search(uow, live, wanted), read_only=True)
    table = Table("sku", "title", "price", "in stock", "merchant", "id")
    for product in found.products:
        price = format_amount(catalog.wire_product(product)["price_from"], product.currency)
        stocked = "yes" if product.in_stock() else "no"
        table.add_row(product.sku, product.title, price, stocked, product.merchant_id, product.id)
    console.print(table)
    if found.has_more:
        console.print("(more results: narrow the search or raise --limit)")
