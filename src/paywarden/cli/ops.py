"""Operations: ``paywarden backup --out FILE`` and ``paywarden restore --from FILE``
(see paywarden.services.backup and docs/operations.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

__all__ = ["register"]

console = Console()
ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="TOML settings file (PAYWARDEN_CONFIG)")
]
DatabaseOption = Annotated[
    str | None, typer.Option("--database-url", help="overrides PAYWARDEN_DATABASE_URL")
]


def _database_url(config: Path | None, database_url: str | None) -> str:
    from paywarden.config import load_settings  # noqa: PLC0415

    return load_settings(config, database_url=database_url).database_url


def backup(
    out: Annotated[Path, typer.Option("--out", help="the backup file to write (must be new)")],
    config: ConfigOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Write an online backup of the database while the server keeps running (SQLite's
    backup API, or pg_dump). Back up the master key separately."""
    from paywarden.services import backup as service  # noqa: PLC0415

    try:
        result = service.backup(_database_url(config, database_url), out)
    except (OSError, ValueError, RuntimeError) as error:
        console.print(f"[red]backup failed: {error}[/]", soft_wrap=True)
        raise typer.Exit(1) from None
    console.print(f"backup of the {result.backend} database: {result.path} ({result.bytes} bytes)")
    console.print("the master key is not in it: keep a copy of master.key with it")


def restore(
    source: Annotated[Path, typer.Option("--from", help="the backup file to restore")],
    force: Annotated[bool, typer.Option("--force", help="replace an existing database")] = False,
    config: ConfigOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Restore a backup into the configured database (stop the server first), then run
    `paywarden audit verify` and `paywarden accounts balances`."""
    from paywarden.services import backup as service  # noqa: PLC0415

    try:
        service.restore(source, _database_url(config, database_url), force=force)
    except (OSError, ValueError, RuntimeError) as error:
        console.print(f"[red]restore failed: {error}[/]", soft_wrap=True)
        raise typer.Exit(1) from None
    console.print(f"restored {source}; now run `paywarden audit verify`")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the ``paywarden`` command line."""
    app.command("backup")(backup)
    app.command("restore")(restore)
