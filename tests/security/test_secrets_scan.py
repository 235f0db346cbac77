"""Secrets: after a run of the real server that takes card numbers (top-ups, declines
included) and issues keys, none of the card numbers sent, none of the secret keys, the
master key or an agent's private key appears in the database file, its WAL, the server log
or the outbox (webhook payloads); nor does any Luhn-valid digit run with a card-network
prefix. The scanner first proves itself on planted data.
"""

from __future__ import annotations

import base64
import json
import re
import sqlite3
from collections.abc import Iterable
from pathlib import Path

import httpx

from figures_support import report
from live_server import LiveServer, prepare, serving
from paywarden.config import create_master_key_file

CARDS = [
    "4242424242424242",
    "5555555555554444",
    "378282246310005",
    "6011111111111117",
    "4000000000000002",  # declined by the sandbox rail
    "4000000000009995",  # insufficient funds
]
NETWORK_PREFIX = re.compile(r"^(4|5[1-5]|2[2-7]|3[47]|6011|64[4-9]|65|62|35)")
DIGIT_RUN = re.compile(rb"(?<![0-9])[0-9]{13,19}(?![0-9])")
# A hash or key in hex (audit chain hashes, SHA-256 digests): its digits are not a number.
# One in a few thousand SHA-256 hex strings holds a 16-digit run that passes for a card
# (a network prefix, Luhn-valid); the audit head's hash is rewritten on every append, and
# such a run then showed up in the WAL on one run in a few dozen.
HEX_TOKEN = re.compile(rb"[0-9a-f]{40,}")


def luhn_ok(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _masked(token: re.Match[bytes]) -> bytes:
    """A hex token with a letter in it, blanked; a run of digits alone is left to the scan."""
    text = token.group()
    return b"x" * len(text) if re.search(rb"[a-f]", text) else text


def scan(blob: bytes, needles: Iterable[bytes]) -> list[str]:
    """What in ``blob`` is a secret: a needle, or a card-like Luhn-valid digit run."""
    found = [needle.decode(errors="replace") for needle in needles if needle and needle in blob]
    for match in DIGIT_RUN.finditer(HEX_TOKEN.sub(_masked, blob)):
        digits = match.group().decode()
        if NETWORK_PREFIX.match(digits) and luhn_ok(digits):
            found.append(f"card-like {digits[:4]}…{digits[-4:]}")
    return found


def test_the_scanner_finds_what_is_planted() -> None:
    planted = b"row\x00abc 4111111111111111 def" + b"pw_test_SECRET" + b"\x01 5105105105105100"
    found = scan(planted, [b"pw_test_SECRET"])
    assert "pw_test_SECRET" in found
    assert "card-like 4111…1111" in found and "card-like 5105…5100" in found
    assert scan(b"4111111111111112 1764403200000 ulid 01M8JV8N5TE57KMRKNQ", []) == []
    # a card-like run inside a hex digest is the digest's, not a card; beside one it is found
    digest = b"ab4111111111111111" + b"cd" * 23
    assert scan(b"hash " + digest + b" end", []) == []
    assert scan(b"hash " + digest + b" 4111111111111111", []) == ["card-like 4111…1111"]
    assert scan(b"4111111111111111" * 3, []) == []  # 48 digits: no card's length
    assert scan(b" " + b"5" * 40 + b" 5105105105105100", []) == ["card-like 5105…5100"]
    assert all(luhn_ok(card) for card in CARDS)


def _needles(tmp_path: Path, secrets: list[str]) -> list[bytes]:
    master = (tmp_path / "paywarden-data" / "master.key").read_text().strip()
    raw = base64.urlsafe_b64decode(master + "=" * (-len(master) % 4))
    return [c.encode() for c in CARDS] + [s.encode() for s in secrets] + [master.encode(), raw]


def _exercise(server: LiveServer) -> list[str]:
    secrets = [server.admin_key]
    with server.client() as client:
        user, user_key = server.create_user(client)
        secrets.append(user_key)
        for card in CARDS:
            response = client.post(
                "/v1/top_ups",
                json={
                    "amount": 1_000,
                    "currency": "usd",
                    "card": {"number": card, "exp_month": 12, "exp_year": 2099},
                },
                headers=server.headers(user_key),
            )
            assert response.status_code in (201, 402), response.text
            assert card not in response.text
        _merchant, merchant_key = server.create_merchant(client)
        secrets.append(merchant_key)
        wrong = client.post(
            "/v1/top_ups",
            json={"amount": 1, "currency": "usd", "card": {"number": CARDS[0] + "0"}},
            headers=server.headers(user_key),
        )
        assert wrong.status_code == 400 and CARDS[0] not in wrong.text
        _ = user
    return secrets


def test_no_card_number_or_key_is_stored_or_logged(tmp_path: Path) -> None:
    database = tmp_path / "paywarden.db"
    database_url = f"sqlite:///{database}"
    admin_key = prepare(database_url)
    create_master_key_file(tmp_path / "paywarden-data" / "master.key")
    config = tmp_path / "debug.toml"
    config.write_text('log_level = "debug"\n')  # the chattiest logs are the ones scanned
    log = tmp_path / "server.log"
    with serving(database_url, log, "--config", str(config)) as base_url:
        server = LiveServer("sqlite", base_url, database_url, admin_key, log)
        secrets = _exercise(server)
        needles = _needles(tmp_path, secrets)
        wal = Path(f"{database}-wal")
        live_files = {"database": database.read_bytes(), "WAL": wal.read_bytes()}
    live_files["log"] = log.read_bytes()
    live_files["database after close"] = database.read_bytes()
    live_files["outbox payloads"] = _outbox(database)
    scanned = 0
    for name, blob in live_files.items():
        found = scan(blob, needles)
        assert not found, f"{name}: {found}"
        scanned += len(blob)
    # the planted control: the same scan of the same bytes with one card added finds it
    assert scan(live_files["database"] + CARDS[1].encode(), needles)
    report(
        f"secrets scan: {len(CARDS)} cards and {len(secrets) + 2} keys sent; "
        f"{scanned >> 10} KiB of database, WAL, log and outbox scanned: nothing found"
    )


def _outbox(database: Path) -> bytes:
    connection = sqlite3.connect(database)
    try:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
        rows = [json.dumps(r) for r in connection.execute("SELECT type, data FROM events")]
        if "webhook_deliveries" in tables:
            rows += [json.dumps(r, default=str) for r in connection.execute(
                "SELECT * FROM webhook_deliveries"
            )]  # fmt: skip
    finally:
        connection.close()
    return "\n".join(rows).encode()


def test_a_card_number_in_a_free_text_field_is_not_stored(tmp_path: Path) -> None:
    database = tmp_path / "paywarden.db"
    database_url = f"sqlite:///{database}"
    admin_key = prepare(database_url)
    create_master_key_file(tmp_path / "paywarden-data" / "master.key")
    with (
        serving(database_url, tmp_path / "server.log") as base_url,
        httpx.Client(base_url=base_url) as client,
    ):
        response = client.post(
            "/v1/users",
            json={"email": "p@example.com", "name": "Pat 4111111111111111", "currency": "usd"},
            headers=LiveServer.headers(admin_key),
        )
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "card_number_in_text"
        assert "4111" not in response.text  # not echoed back either
    wal = Path(f"{database}-wal")
    stored = database.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
    assert not scan(stored + (tmp_path / "server.log").read_bytes(), [])
