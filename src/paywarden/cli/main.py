"""The ``paywarden`` command line."""

from __future__ import annotations

import os
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
    return Runtime(settings=settings, store=Store(engine, lanes=settings.group_lanes))


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
    _ensure_master_key(rt.settings)


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
    console.print("[bold]Dashboard sign-in (/signin), shown only this once:[/]")
    for email, password in result.passwords.items():
        console.print(f"  {email:<28} {password}", soft_wrap=True)
    console.print(f"demo catalogs: {result.products} products in three shops")


@app.command()
def serve(
    config: ConfigOption = None,
    database_url: DatabaseOption = None,
    host: Annotated[str | None, typer.Option(help="interface to bind")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port")] = None,
    no_migrate: Annotated[bool, typer.Option("--no-migrate", help="skip migrations")] = False,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=64,
            help="server processes (PAYWARDEN_WORKERS, default 1); on PostgreSQL more use"
            " more cores; SQLite has one writer, so more do not pay faster there",
        ),
    ] = None,
) -> None:
    """Serve the API (and, as they land, the dashboard) on HTTP."""
    import uvicorn  # noqa: PLC0415

    from paywarden.store import migrate as migrations  # noqa: PLC0415

    rt = _runtime(config, database_url)
    settings = rt.settings.model_copy(
        update={
            k: v
            for k, v in {"host": host, "port": port, "workers": workers}.items()
            if v is not None
        }
    )
    if not no_migrate:
        migrations.upgrade(rt.store.engine)
        _ensure_master_key(rt.settings)
        _show_admin_key(rt)
    base = f"http://{settings.host}:{settings.port}"
    console.print(f"paywarden {paywarden.__version__} on {base}")
    console.print(f"  API docs:  {base}/docs")
    console.print(f"  OpenAPI:   {base}/openapi.json")
    console.print(f"  health:    {base}/healthz   metrics: {base}/metrics")
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "access_log": False,
    }
    if settings.workers == 1:
        # Imported here, not above: with several workers this process only supervises, and
        # each worker imports the app itself (the import takes seconds; spawned workers
        # would not inherit it, so importing it here too only delayed their start).
        from paywarden.api.app import create_app, freeze_heap  # noqa: PLC0415

        application = create_app(settings, rt.store)
        freeze_heap()
        uvicorn.run(application, **options)
        return
    console.print(f"  {settings.workers} worker processes (metrics are per process)")
    rt.store.engine.dispose()
    # The workers read their settings as this process did: the same TOML file, and the
    # database URL given on the command line, through the environment they inherit.
    os.environ["PAYWARDEN_DATABASE_URL"] = settings.database_url
    if config is not None:
        os.environ["PAYWARDEN_CONFIG"] = str(config.resolve())
    uvicorn.run(
        "paywarden.api.app:create_app_from_environment",
        factory=True,
        workers=settings.workers,
        **options,
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


# --- audit: `paywarden audit verify` -------------------------------------------------------

audit_app = typer.Typer(help="Check the tamper-evident audit log.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
PublicKeyOption = Annotated[
    list[str] | None,
    typer.Option(
        "--public-key",
        help="KEY_ID=HEX Ed25519 checkpoint key (repeatable); default: the platform's own",
    ),
]


@audit_app.command("verify")
def audit_verify(
    config: ConfigOption = None,
    database_url: DatabaseOption = None,
    public_key: PublicKeyOption = None,
) -> None:
    """Verify every hash chain and checkpoint; exit 1 naming the first bad record."""
    from sqlalchemy import inspect  # noqa: PLC0415

    from paywarden.services import audit  # noqa: PLC0415
    from paywarden.services import keys as key_service  # noqa: PLC0415

    keys = _public_keys(public_key or [])
    rt = _runtime(config, database_url)
    if not inspect(rt.store.engine).has_table("audit_records"):
        console.print("[red]this database has no audit log yet: run `paywarden migrate`[/]")
        raise typer.Exit(2)
    if not keys:  # by default, the platform's own checkpoint keys (public halves only)
        keys = rt.store.run(key_service.audit_public_keys, read_only=True)
    report = rt.store.run(lambda uow: audit.verify(uow, keys), read_only=True)
    _print_audit_report(report)
    if not report.ok:
        raise typer.Exit(1)


def _public_keys(options: list[str]) -> dict[str, bytes]:
    keys: dict[str, bytes] = {}
    for option in options:
        key_id, _, value = option.partition("=")
        try:
            keys[key_id] = bytes.fromhex(value)
        except ValueError:
            keys[key_id] = b""
        if not key_id or len(keys[key_id]) != 32:
            console.print(f"[red]--public-key {option!r}: expected KEY_ID=<64 hex digits>[/]")
            raise typer.Exit(2)
    return keys


def _print_audit_report(report: Any) -> None:
    from rich.markup import escape  # noqa: PLC0415

    console.print(
        f"audit log: {report.records} record(s) in {report.partitions} partition(s), "
        f"{report.checkpoints} checkpoint(s)"
    )
    if report.signatures_unverified:
        console.print(
            f"[yellow]unverified signature: no platform keys yet[/] — the signatures of "
            f"{report.signatures_unverified} checkpoint(s) were not checked (pass --public-key); "
            "the hash chains and the checkpoints' heads were",
            soft_wrap=True,
        )
    elif report.signatures_verified:
        console.print(f"checkpoint signatures verified: {report.signatures_verified}")
    if report.ok:
        console.print("[green]the audit log verifies[/]")
        return
    console.print(f"[red]FAILED[/]: {len(report.problems)} problem(s)")
    for number, problem in enumerate(report.problems):
        if problem.checkpoint_id is not None:
            where = f"checkpoint {problem.checkpoint_id}"
        else:
            label = "first bad record" if number == 0 else "bad record"
            where = (
                f"{label}: partition {problem.partition}, sequence {problem.sequence} "
                f"(index {problem.index} in (partition, sequence) order)"
            )
        console.print(f"  {where}: {problem.kind.value}: {escape(problem.detail)}", soft_wrap=True)


# --- keys: `paywarden keys rotate|list`, `paywarden verify RECEIPT` -------------------------

keys_app = typer.Typer(help="The platform's signing keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
PURPOSES = ("receipt", "mandate_token", "audit_checkpoint", "cart")


def _ensure_master_key(settings: Any) -> None:
    from paywarden.config import create_master_key_file  # noqa: PLC0415

    if settings.master_key is not None:
        console.print("master key: from PAYWARDEN_MASTER_KEY")
        return
    path = settings.master_key_file
    created = create_master_key_file(path)
    console.print(
        f"master key: {path.resolve()} ({'created, mode 0600' if created else 'present'})"
    )
    if created:
        console.print("  back it up: without it the platform's signing keys cannot be opened")


def _master_key(settings: Any) -> bytes:
    from paywarden.config import load_master_key  # noqa: PLC0415

    try:
        return load_master_key(settings)
    except (FileNotFoundError, ValueError) as error:
        console.print(f"[red]{error}[/]")
        raise typer.Exit(2) from None


@keys_app.command("rotate")
def keys_rotate(
    purpose: Annotated[str, typer.Option(help=f"one of {', '.join(PURPOSES)}")],
    overlap_days: Annotated[int, typer.Option(min=0, help="days the old key stays published")] = 30,
    config: ConfigOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Make a new active key for PURPOSE; the old one is retired, published for the overlap,
    and keeps verifying what it signed."""
    from datetime import timedelta  # noqa: PLC0415

    from paywarden.services import keys  # noqa: PLC0415
    from paywarden.trust.custody import Purpose  # noqa: PLC0415

    if purpose not in PURPOSES:
        console.print(f"[red]--purpose must be one of {', '.join(PURPOSES)}[/]")
        raise typer.Exit(2)
    rt = _runtime(config, database_url)
    master_key = _master_key(rt.settings)
    record = rt.store.run(
        lambda uow: keys.rotate(
            uow,
            Purpose(purpose),
            master_key,
            overlap=timedelta(days=overlap_days),
            actor=_admin(False),
        )
    )
    console.print(f"{purpose}: new active key {record.kid} ({record.alg})")


@keys_app.command("list")
def keys_list(config: ConfigOption = None, database_url: DatabaseOption = None) -> None:
    """Every platform key with its status and publication window (no secrets)."""
    from paywarden.kernel.clock import rfc3339  # noqa: PLC0415
    from paywarden.services import keys  # noqa: PLC0415

    rt = _runtime(config, database_url)
    records = rt.store.run(keys.list_keys, read_only=True)
    table = Table(title="platform keys")
    for column in ("purpose", "kid", "alg", "status", "activated", "published until"):
        table.add_column(column)
    for r in records:
        table.add_row(
            r.purpose.value,
            r.kid,
            r.alg,
            r.status.value,
            rfc3339(r.activated_at) if r.activated_at else "",
            rfc3339(r.publish_until) if r.publish_until else "",
        )
    console.print(table)


@app.command("verify")
def verify_receipt(
    receipt: Annotated[str, typer.Argument(help="the receipt (compact JWS) or a file holding it")],
    jwks: Annotated[
        str | None,
        typer.Option("--jwks", help="JWKS file or URL; default: this platform's database"),
    ] = None,
    config: ConfigOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Verify a signed receipt offline and print its claims; exit 1 if it does not verify."""
    import json  # noqa: PLC0415
    import os.path  # noqa: PLC0415

    from paywarden.kernel.errors import InvalidRequest  # noqa: PLC0415
    from paywarden.trust.receipts import verify_receipt as verify  # noqa: PLC0415

    # os.path.isfile, unlike Path.is_file, says False to a token too long to be a file name.
    token = Path(receipt).read_text("utf-8") if os.path.isfile(receipt) else receipt
    key_set = _key_set(jwks, config, database_url)
    try:
        claims = verify(token.strip(), key_set)
    except InvalidRequest as error:
        console.print(f"[red]{error.message}[/]", soft_wrap=True)
        raise typer.Exit(1) from None
    console.print_json(json.dumps(claims.claims()))
    console.print("[green]the receipt verifies[/]")


def _key_set(source: str | None, config: Path | None, database_url: str | None) -> Any:
    """The JWK set to verify against: a file, a URL, or this platform's trusted keys."""
    import json  # noqa: PLC0415

    import httpx  # noqa: PLC0415

    if source is None:
        from paywarden.services import keys  # noqa: PLC0415

        return _runtime(config, database_url).store.run(keys.verification_keys, read_only=True)
    try:
        if source.startswith(("https://", "http://")):
            response = httpx.get(source, timeout=10.0, follow_redirects=True)
            response.raise_for_status()
            return response.json()
        return json.loads(Path(source).read_text("utf-8"))
    except (OSError, ValueError, httpx.HTTPError) as error:
        console.print(f"[red]cannot read the key set {source}: {error}[/]", soft_wrap=True)
        raise typer.Exit(2) from None


# --- bench: `paywarden bench` (the runner lives in paywarden.bench) -------------------------


@app.command()
def bench(
    quick: Annotated[bool, typer.Option("--quick", help="3 short runs (under 5 minutes)")] = False,
    backend: Annotated[str, typer.Option(help="sqlite, postgres or both")] = "both",
    runs: Annotated[
        int | None, typer.Option(min=1, help="runs per scenario; the median is reported")
    ] = None,
    out: Annotated[
        Path, typer.Option(help="folder for the reports: JSON, SVG plot, Markdown")
    ] = Path("benchmarks/results"),
    pg_url: Annotated[
        str,
        typer.Option(
            "--pg-url",
            envvar="PAYWARDEN_BENCH_PG_URL",
            help="PostgreSQL server; a scratch database pw_bench_* is made and dropped on it",
        ),
    ] = "postgresql://postgres@127.0.0.1:5432/test",
    scale: Annotated[
        bool | None,
        typer.Option(
            "--scale/--no-scale",
            help="also pay with 10k and 1M payments stored (default: full profile only)",
        ),
    ] = None,
    smoke: Annotated[bool, typer.Option("--smoke", hidden=True)] = False,
) -> None:
    """Measure paywarden side by side with its limits (storage, crypto, HTTP); see
    benchmarks/README.md. Exits 1 if a run fails verification."""
    try:
        from paywarden.bench.runner import SCALE_SIZES, run_cli  # noqa: PLC0415
    except ImportError as error:
        console.print(f"[red]bench needs the server install ({error.name} is missing)[/]")
        raise typer.Exit(2) from None
    flags = [*(["--quick"] if quick else []), *(["--smoke"] if smoke else [])]
    flags += ["--backend", backend, *(["--runs", str(runs)] if runs else []), "--out", str(out)]
    flags += [] if scale is None else ["--scale" if scale else "--no-scale"]
    command = " ".join(["paywarden", "bench", *flags])
    status = run_cli(
        console,
        quick=quick,
        smoke=smoke,
        backend=backend,
        runs=runs,
        out=out,
        pg_url=pg_url,
        command=command,
        scale_sizes=None if scale is None else (SCALE_SIZES if scale else ()),
    )
    if status:
        raise typer.Exit(status)


def _register_commands() -> None:
    """Command groups kept in their own modules add themselves here."""
    from paywarden.cli import catalog, device, ops, payouts, webhooks  # noqa: PLC0415

    for module in (catalog, webhooks, payouts, device, ops):
        module.register(app)
    __import__("paywarden.cli.assistant", fromlist=["register"]).register(app)


_register_commands()


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
