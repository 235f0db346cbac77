"""`paywarden catalog import` and `search` on a SQLite file: a progress bar, the refused rows
reported by row and field, exit 1 when some row failed, and a re-run that updates by sku."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from catalog_support import make_shop
from conftest import sqlite_url
from paywarden.cli.main import app
from paywarden.store.unit_of_work import Store

CSV = """sku,title,description,category,amount,stock
beans-house,House Blend Beans,medium roast,coffee,1400,20
beans-decaf,Decaf Beans,swiss water,coffee,1500,0
beans-bad,Bad Beans,,coffee,fourteen,
"""


def run_cli(tmp_path: Path, *arguments: str) -> Any:
    env = {name: None for name in os.environ if name.startswith("PAYWARDEN_")}
    runner = CliRunner(env=env)
    return runner.invoke(
        app, [*arguments, "--database-url", sqlite_url(tmp_path)], catch_exceptions=False
    )


def test_import_reports_bad_rows_and_re_runs_update_by_sku(
    sqlite_store: Store, tmp_path: Path
) -> None:
    shop = make_shop(sqlite_store)
    source = tmp_path / "beans.csv"
    source.write_text(CSV)
    first = run_cli(tmp_path, "catalog", "import", str(source), "--merchant", shop.merchant_id)
    assert first.exit_code == 1, first.output  # a row was refused
    assert "3 row(s): 2 created, 0 updated, 1 refused" in first.output
    assert "amount" in first.output and "importing beans.csv" in first.output
    again = run_cli(tmp_path, "catalog", "import", str(source), "--merchant", shop.merchant_id)
    assert "0 created, 2 updated, 1 refused" in again.output

    found = run_cli(tmp_path, "catalog", "search", "beans", "--in-stock")
    assert found.exit_code == 0, found.output
    assert "beans-house" in found.output and "beans-decaf" not in found.output


def test_import_of_an_unknown_merchant_or_format_stops_early(
    sqlite_store: Store, tmp_path: Path
) -> None:
    source = tmp_path / "beans.xml"
    source.write_text("<beans/>")
    missing = run_cli(tmp_path, "catalog", "import", str(source), "--merchant", "mer_nope")
    assert missing.exit_code == 2 and "no such merchant" in missing.output
    shop = make_shop(sqlite_store)
    wrong = run_cli(tmp_path, "catalog", "import", str(source), "--merchant", shop.merchant_id)
    assert wrong.exit_code == 2 and "format is one of" in wrong.output
