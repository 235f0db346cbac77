"""Payouts and the reconciliation export from the terminal.

- ``paywarden payouts process``: settle every pending payout through the sandbox rail
  (``serve`` does this in its maintenance loop too).
- ``paywarden payouts reconcile --out FILE``: the reconciliation CSV (every merchant, or one
  with ``--merchant``) over ``(--from, --to]``; with no ``--from`` it also checks that the
  platform fee account holds the sum of net fees, and exits 1 when anything fails to tie out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

__all__ = ["register"]

console = Console()
notes = Console(stderr=True)  # reconcile may write its CSV to stdout
payouts_app = typer.Typer(help="Payouts to merchants and the reconciliation.", no_args_is_help=True)
ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="TOML settings file (PAYWARDEN_CONFIG)")
]
DatabaseOption = Annotated[
    str | None, typer.Option("--database-url", help="overrides PAYWARDEN_DATABASE_URL")
]
LiveOption = Annotated[bool, typer.Option("--live", help="live mode instead of test")]


def register(app: typer.Typer) -> None:
    """Add this module's commands to the ``paywarden`` command line."""
    app.add_typer(payouts_app, name="payouts")


def _runtime_and_admin(config: Path | None, database_url: str | None, live: bool) -> Any:
    from paywarden.cli.main import _admin, _runtime  # noqa: PLC0415

    return _runtime(config, database_url), _admin(live)


@payouts_app.command("process")
def process(config: ConfigOption = None, database_url: DatabaseOption = None) -> None:
    """Settle every pending payout: paid, or failed with the money back."""
    from paywarden.services import payouts  # noqa: PLC0415

    rt, _admin = _runtime_and_admin(config, database_url, False)
    total = 0
    while count := payouts.process_payouts(rt.store):
        total += count
    console.print(f"settled {total} payout(s)")


@payouts_app.command("reconcile")
def reconcile(
    out: Annotated[Path, typer.Option("--out", help="the CSV file to write ('-': stdout)")],
    start: Annotated[
        str | None, typer.Option("--from", help="period start, exclusive (RFC 3339 or date)")
    ] = None,
    end: Annotated[
        str | None, typer.Option("--to", help="period end, inclusive (default: now)")
    ] = None,
    merchant: Annotated[str | None, typer.Option(help="only this merchant")] = None,
    live: LiveOption = False,
    config: ConfigOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Write the reconciliation CSV and check it ties out to the ledger."""
    from paywarden.kernel.errors import PaywardenError  # noqa: PLC0415
    from paywarden.services import reconciliation  # noqa: PLC0415

    rt, admin = _runtime_and_admin(config, database_url, live)
    try:
        lower = reconciliation.parse_instant(start, "$.from")
        upper = reconciliation.parse_instant(end, "$.to")
        report = rt.store.run(
            lambda uow: reconciliation.reconcile(
                uow, admin, start=lower, end=upper, merchant=merchant
            ),
            read_only=True,
        )
    except PaywardenError as error:
        notes.print(f"[red]{error}[/]")
        raise typer.Exit(2) from None
    text = reconciliation.to_csv(report)
    if str(out) == "-":
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        notes.print(f"wrote {len(report.rows)} merchant row(s) to {out}")
    if not _fees_tie_out(report, whole=start is None and merchant is None):
        raise typer.Exit(1)


def _fees_tie_out(report: Any, *, whole: bool) -> bool:
    """Every row ties out already (the export refuses otherwise); over the whole history of
    every merchant, the fee account must also hold exactly the net fees."""
    if not whole:
        return True
    ok = True
    totals = report.totals()
    for currency in sorted(set(totals) | set(report.platform_fees)):
        row = totals.get(currency)
        net_fees = (row.fees - row.fees_returned) if row else 0
        held = report.platform_fees.get(currency, 0)
        if net_fees != held:
            ok = False
            notes.print(f"[red]{currency}: net fees {net_fees}, fee account holds {held}[/]")
        else:
            notes.print(f"{currency}: net fees {net_fees} = platform fee account")
    return ok
