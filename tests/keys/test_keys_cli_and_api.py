"""The entry points: `paywarden migrate` makes the master key file, `paywarden keys` rotates and
lists, `paywarden verify` checks a receipt offline (exit 1 when tampered), and
`GET /.well-known/jwks.json` serves the published keys."""

from __future__ import annotations

import json
import os
import stat
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from conftest import Api, sqlite_url
from paywarden.cli.main import app
from paywarden.config import Settings, create_master_key_file, load_master_key
from paywarden.kernel.clock import FakeClock
from paywarden.services import keys, receipts
from paywarden.store.unit_of_work import Store
from paywarden.trust.custody import Purpose
from paywarden.trust.receipts import AuthorizedPayment, verify_receipt

AUTHORIZED = AuthorizedPayment(990, "usd", "mer_cafe", "mnd_coffee", None)


@pytest.fixture(autouse=True)
def no_master_key_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings() read here must not pick up the master key of the shell running the tests."""
    for name in ("PAYWARDEN_MASTER_KEY", "PAYWARDEN_MASTER_KEY_FILE", "PAYWARDEN_CONFIG"):
        monkeypatch.delenv(name, raising=False)


def run_cli(*arguments: str, master_key_file: Path, **env: str) -> Any:
    # The user's own PAYWARDEN_* settings must not leak in.
    clean: dict[str, str | None] = {n: None for n in os.environ if n.startswith("PAYWARDEN_")}
    clean |= {"PAYWARDEN_MASTER_KEY_FILE": str(master_key_file), **env}
    return CliRunner(env=clean).invoke(app, list(arguments), catch_exceptions=False)


def issue(store: Store, master_key: bytes, number: int) -> str:
    return store.run(
        lambda uow: receipts.issue_receipt(
            uow,
            master_key,
            issuer="https://pay.example",
            payment_id=f"pay_{number}",
            authorized=AUTHORIZED,
            transfer_id=f"txf_{number}",
        )
    )


def tamper(token: str) -> str:
    header, payload, signature = token.split(".")
    position = len(payload) // 2
    changed = "A" if payload[position] != "A" else "B"
    return ".".join((header, payload[:position] + changed + payload[position + 1 :], signature))


# --- the master key ----------------------------------------------------------------------


def test_migrate_creates_the_master_key_file_with_mode_0600_once(tmp_path: Path) -> None:
    key_file = tmp_path / "secrets" / "master.key"
    database = sqlite_url(tmp_path)
    first = run_cli("migrate", "--database-url", database, master_key_file=key_file)
    assert first.exit_code == 0, first.output
    assert str(key_file.resolve()) in first.output.replace("\n", "")
    assert "created" in first.output
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = load_master_key(Settings(master_key_file=key_file))
    assert len(key) == 32
    second = run_cli("migrate", "--database-url", database, master_key_file=key_file)
    assert "present" in second.output
    assert load_master_key(Settings(master_key_file=key_file)) == key


def test_the_environment_variable_wins_over_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = tmp_path / "master.key"
    assert create_master_key_file(key_file)
    assert not create_master_key_file(key_file)  # never overwritten
    from_env = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA"  # base64url of bytes 1..32
    monkeypatch.setenv("PAYWARDEN_MASTER_KEY", from_env)
    settings = Settings(master_key_file=key_file)
    assert load_master_key(settings) == bytes(range(1, 33))
    assert from_env not in repr(settings)  # a SecretStr
    for bad in ("short", from_env + "AAAA", from_env[:-1] + "+"):
        monkeypatch.setenv("PAYWARDEN_MASTER_KEY", bad)
        with pytest.raises(ValueError, match="base64url of 32 bytes"):
            load_master_key(Settings(master_key_file=key_file))
    monkeypatch.delenv("PAYWARDEN_MASTER_KEY")
    with pytest.raises(FileNotFoundError, match="paywarden migrate"):
        load_master_key(Settings(master_key_file=tmp_path / "absent.key"))


# --- keys and verify ---------------------------------------------------------------------


def test_keys_rotate_and_list(sqlite_store: Store, tmp_path: Path) -> None:
    key_file = tmp_path / "master.key"
    create_master_key_file(key_file)
    database = sqlite_url(tmp_path)
    rotated = run_cli(
        "keys", "rotate", "--purpose", "receipt", "--database-url", database,
        master_key_file=key_file,
    )  # fmt: skip
    assert rotated.exit_code == 0, rotated.output
    again = run_cli(
        "keys", "rotate", "--purpose", "receipt", "--overlap-days", "7",
        "--database-url", database, master_key_file=key_file,
    )  # fmt: skip
    assert again.exit_code == 0, again.output
    records = sqlite_store.run(keys.list_keys)
    assert sorted(r.status.value for r in records) == ["active", "retired"]
    listed = run_cli("keys", "list", "--database-url", database, master_key_file=key_file)
    assert listed.exit_code == 0, listed.output
    assert "retired" in listed.output and "active" in listed.output
    unknown = run_cli(
        "keys", "rotate", "--purpose", "nonsense", "--database-url", database,
        master_key_file=key_file,
    )  # fmt: skip
    assert unknown.exit_code == 2


def test_rotate_without_a_master_key_says_to_migrate(sqlite_store: Store, tmp_path: Path) -> None:
    result = run_cli(
        "keys", "rotate", "--purpose", "receipt", "--database-url", sqlite_url(tmp_path),
        master_key_file=tmp_path / "absent.key",
    )  # fmt: skip
    assert result.exit_code == 2
    assert "paywarden migrate" in result.output


@pytest.fixture
def issued(sqlite_store: Store, tmp_path: Path) -> tuple[str, Path, Path]:
    """A receipt issued on the SQLite database, its key set in a file, and the key file."""
    key_file = tmp_path / "master.key"
    create_master_key_file(key_file)
    master_key = load_master_key(Settings(master_key_file=key_file))
    token = issue(sqlite_store, master_key, 1)
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps(sqlite_store.run(keys.published_jwks)), "utf-8")
    return token, jwks_file, key_file


def test_verify_prints_the_claims_of_a_good_receipt(issued: tuple[str, Path, Path]) -> None:
    token, jwks_file, key_file = issued
    result = run_cli("verify", token, "--jwks", str(jwks_file), master_key_file=key_file)
    assert result.exit_code == 0, result.output
    assert '"payment_id": "pay_1"' in result.output
    assert '"network_confirmation_id": "txf_1"' in result.output
    assert "the receipt verifies" in result.output


def test_verify_exits_1_on_a_tampered_receipt(issued: tuple[str, Path, Path]) -> None:
    token, jwks_file, key_file = issued
    result = run_cli("verify", tamper(token), "--jwks", str(jwks_file), master_key_file=key_file)
    assert result.exit_code == 1
    assert "receipt invalid" in result.output
    assert "the receipt verifies" not in result.output


def test_verify_reads_the_receipt_from_a_file_and_keys_from_the_database(
    issued: tuple[str, Path, Path], tmp_path: Path
) -> None:
    token, _jwks_file, key_file = issued
    receipt_file = tmp_path / "receipt.jws"
    receipt_file.write_text(token + "\n", "utf-8")
    result = run_cli(
        "verify", str(receipt_file), "--database-url", sqlite_url(tmp_path),
        master_key_file=key_file,
    )  # fmt: skip
    assert result.exit_code == 0, result.output


def test_verify_fetches_a_jwks_url(
    issued: tuple[str, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    token, jwks_file, key_file = issued
    fetched: list[str] = []

    def fake_get(url: str, **_options: Any) -> httpx.Response:
        fetched.append(url)
        request = httpx.Request("GET", url)
        return httpx.Response(200, content=jwks_file.read_bytes(), request=request)

    monkeypatch.setattr(httpx, "get", fake_get)
    url = "https://pay.example/.well-known/jwks.json"
    assert run_cli("verify", token, "--jwks", url, master_key_file=key_file).exit_code == 0
    assert run_cli("verify", tamper(token), "--jwks", url, master_key_file=key_file).exit_code == 1
    assert fetched == [url, url]


# --- the well-known key set --------------------------------------------------------------


def test_the_jwks_endpoint_serves_the_published_keys(sqlite_api: Api, clock: FakeClock) -> None:
    store = sqlite_api.store
    empty = sqlite_api.client.get("/.well-known/jwks.json")
    assert empty.status_code == 200
    assert empty.json() == {"keys": []}

    master_key = bytes(range(32))
    old_receipt = issue(store, master_key, 1)
    old = store.run(keys.list_keys)[0].kid
    new = store.run(lambda uow: keys.rotate(uow, Purpose.RECEIPT, master_key)).kid
    response = sqlite_api.client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    jwks = response.json()
    assert [jwk["kid"] for jwk in jwks["keys"]] == [new, old]
    assert all(jwk["use"] == "sig" and jwk["alg"] == "ES256" for jwk in jwks["keys"])
    assert not any("d" in jwk for jwk in jwks["keys"])
    assert verify_receipt(old_receipt, jwks).payment_id == "pay_1"

    clock.advance(timedelta(days=31))
    later = sqlite_api.client.get("/.well-known/jwks.json").json()
    assert [jwk["kid"] for jwk in later["keys"]] == [new]
