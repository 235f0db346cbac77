"""The ``paywarden`` command line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

import paywarden

app = typer.Typer(
    name="paywarden",
    help="paywarden: the trust layer for agentic payments.",
    no_args_is_help=True,
    add_completion=False,
)
accounts_app = typer.Typer(help="Inspect accounts and balances.", no_args_is_help=True)
holds_app = typer.Typer(help="Maintain holds.", no_args_is_help=True)
app.add_typer(accounts_app, name="accounts")
app.add_typer(holds_app, name="holds")
console = Console()
ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="TOML settings file (PAYWARDEN_CONFIG)")
]
DatabaseOption = Annotated[
    str | None, typer.Option("--database-url", help="overrides PAYWARDEN_DATABASE_URL")
]


def _runtime(config: Path | None, database_url: str | None) -> Any:
    """Settings and store, importing the server parts only when a command needs them."""
    try:
        from paywarden.api.runtime import Runtime  # noqa: PLC0415
        from paywarden.config import load_settings  # noqa: PLC0415
        from paywarden.store.engine import make_engine  # noqa: PLC0415
        from paywarden.store.unit_of_work import Store  # noqa: PLC0415
    except ImportError as error:
        console.print(
            f"[red]this command needs the server install:[/] pip install "
            f"'paywarden[server]' ({error.name} is missing)"
        )
        raise typer.Exit(2) from None
    settings = load_settings(config, database_url=database_url)
    _ensure_sqlite_folder(settings.database_url)
    engine = make_engine(
        settings.database_url,
        pool_size=settings.database_pool_size,
        sqlite_synchronous=settings.sqlite_synchronous,
    )
    return Runtime(settings=settings, store=Store(engine))


def _ensure_sqlite_folder(url: str) -> None:
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)


@app.command()
def version() -> None:
    """Print the installed version."""
    console.print(paywarden.__version__)


@app.command()
def migrate(config: ConfigOption = None, database_url: DatabaseOption = None) -> None:
    """Create or upgrade the database schema (safe to run again)."""
    from paywarden.store import migrate as migrations  # noqa: PLC0415

    rt = _runtime(config, database_url)
    before = migrations.current_revision(rt.store.engine)
    migrations.upgrade(rt.store.engine)
    after = migrations.current_revision(rt.store.engine)
    console.print(f"schema: {before or 'empty'} → {after}")
    _show_admin_key(rt)


def _show_admin_key(rt: Any) -> None:
    from paywarden.services import platform  # noqa: PLC0415

    key = rt.store.run(platform.bootstrap_admin)
    if key is not None:
        console.print("\n[bold]Admin key (test mode), shown only this once — keep it:[/]")
        console.print(f"  {key.secret}\n")


@app.command()
def demo(config: ConfigOption = None, database_url: DatabaseOption = None) -> None:
    """Load demo users, merchants and payments (does nothing if already loaded)."""
    from paywarden.services.demo import load_demo  # noqa: PLC0415
    from paywarden.store import migrate as migrations  # noqa: PLC0415

    rt = _runtime(config, database_url)
    migrations.upgrade(rt.store.engine)
    _show_admin_key(rt)
    secret = rt.secret
    result = rt.store.run(lambda uow: load_demo(uow, secret))
    if not result.created:
        console.print("demo data: already loaded")
        return
    console.print("[bold]Demo keys (test mode), shown only this once:[/]")
    for who, key in result.keys.items():
        console.print(f"  {who:<28} {key}", soft_wrap=True)


@app.command()
def serve(
    config: ConfigOption = None,
    database_url: DatabaseOption = None,
    host: Annotated[str | None, typer.Option(help="interface to bind")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port")] = None,
    no_migrate: Annotated[bool, typer.Option("--no-migrate", help="skip migrations")] = False,
) -> None:
    """Serve the API (and, as they land, the dashboard) on HTTP."""
    import uvicorn  # noqa: PLC0415

    from paywarden.api.app import create_app  # noqa: PLC0415
    from paywarden.store import migrate as migrations  # noqa: PLC0415

    rt = _runtime(config, database_url)
    settings = rt.settings.model_copy(
        update={k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    )
    if not no_migrate:
        migrations.upgrade(rt.store.engine)
        _show_admin_key(rt)
    application = create_app(settings, rt.store)
    base = f"http://{settings.host}:{settings.port}"
    console.print(f"paywarden {paywarden.__version__} on {base}")
    console.print(f"  API docs:  {base}/docs")
    console.print(f"  OpenAPI:   {base}/openapi.json")
    console.print(f"  health:    {base}/healthz   metrics: {base}/metrics")
    uvicorn.run(
        application,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
    )


@app.command("admin-key")
def admin_key(
    config: ConfigOption = None,
    database_url: DatabaseOption = None,
    live: Annotated[bool, typer.Option("--live", help="a live-mode key")] = False,
) -> None:
    """Issue a new admin key (for example when the first one was lost); shown once."""
    from paywarden.kernel.principals import PrincipalType  # noqa: PLC0415
    from paywarden.services.identity import issue_key  # noqa: PLC0415

    rt = _runtime(config, database_url)
    key = rt.store.run(lambda uow: issue_key(uow, PrincipalType.ADMIN, None, live))
    console.print(f"admin key ({'live' if live else 'test'} mode), shown only this once:")
    console.print(f"  {key.secret}", soft_wrap=True)


@accounts_app.command("list")
def accounts_list(
    config: ConfigOption = None,
    database_url: DatabaseOption = None,
    live: Annotated[bool, typer.Option("--live", help="live mode instead of test")] = False,
    owner: Annotated[str | None, typer.Option(help="only this user's or merchant's")] = None,
) -> None:
    """Every account with its posted, pending and available balance."""
    from paywarden.kernel.money import format_amount  # noqa: PLC0415
    from paywarden.services import ledger  # noqa: PLC0415

    rt = _runtime(config, database_url)
    admin = _admin(live)
    table = Table(title=f"accounts ({'live' if live else 'test'} mode)")
    for column in ("id", "kind", "owner", "posted", "pending", "available"):
        table.add_column(
            column, justify="right" if column in {"posted", "pending", "available"} else "left"
        )
    cursor: str | None = None
    while True:
        page = rt.store.run(
            lambda uow, after=cursor: ledger.list_accounts(
                uow, admin, limit=100, starting_after=after, owner=owner
            ),
            read_only=True,
        )
        for a in page.items:
            table.add_row(
                a.id,
                a.kind.value,
                a.owner_id or "platform",
                format_amount(a.posted, a.currency),
                format_amount(a.pending_out, a.currency),
                format_amount(a.available, a.currency),
            )
        if not page.has_more:
            break
        cursor = page.items[-1].id
    console.print(table)


@accounts_app.command("balances")
def balances(
    config: ConfigOption = None,
    database_url: DatabaseOption = None,
    live: Annotated[bool, typer.Option("--live", help="live mode instead of test")] = False,
) -> None:
    """Totals per currency and kind; every currency's total must be zero."""
    from paywarden.services.reports import balance_totals  # noqa: PLC0415

    rt = _runtime(config, database_url)
    totals = rt.store.run(lambda uow: balance_totals(uow, livemode=live), read_only=True)
    table = Table(title="balances by currency and kind")
    for column in ("currency", "kind", "accounts", "posted", "pending"):
        table.add_column(column)
    unbalanced = False
    for row in totals:
        table.add_row(row.currency, row.kind, str(row.accounts), str(row.posted), str(row.pending))
    for currency, total in _sum_by_currency(totals).items():
        if total != 0:
            unbalanced = True
            console.print(f"[red]{currency}: balances sum to {total}, not zero[/]")
    console.print(table)
    if unbalanced:
        raise typer.Exit(1)
    console.print("every currency sums to zero")


def _sum_by_currency(totals: Any) -> dict[str, int]:
    sums: dict[str, int] = {}
    for row in totals:
        sums[row.currency] = sums.get(row.currency, 0) + row.posted
    return sums


@holds_app.command("expire")
def holds_expire(config: ConfigOption = None, database_url: DatabaseOption = None) -> None:
    """Release every pending hold past its deadline (``serve`` also does this)."""
    from paywarden.services import holds  # noqa: PLC0415

    rt = _runtime(config, database_url)
    total = 0
    while count := rt.store.run(holds.expire_holds):
        total += count
    console.print(f"expired {total} hold(s)")


def _admin(live: bool) -> Any:
    from paywarden.kernel.principals import Principal, PrincipalType  # noqa: PLC0415
    from paywarden.services.identity import API_VERSION  # noqa: PLC0415

    return Principal(PrincipalType.ADMIN, None, live, "key_cli", API_VERSION)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
