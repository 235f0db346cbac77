"""The walkthrough of docs/devices.md, against the real server: a glasses purchase and a tap
purchase with the ``paywarden device`` simulators, checked in the ledger."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from device_support import captures_for
from live_server import LiveServer
from paywarden.cli.main import app


def _run(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("live_server", ["sqlite"], indirect=True)
def test_a_glasses_purchase_and_a_tap_purchase_end_to_end(
    live_server: LiveServer, tmp_path: Path
) -> None:
    url = live_server.base_url
    with live_server.client() as http:
        user, user_key = live_server.create_user(http, funded=10_000)
        merchant, merchant_key = live_server.create_merchant(http)
        made = http.post(
            "/v1/payment_requests",
            json={"amount": 450, "currency": "usd", "reference": "flat white"},
            headers=live_server.headers(merchant_key),
        )
        assert made.status_code == 201, made.text
        payload: str = made.json()["payload"]

    glasses = str(tmp_path / "glasses.json")
    _run("device", "glasses", "enroll", "--server", url, "--user-key", user_key,
         "--phrase", "pay it now", "--state", glasses)  # fmt: skip
    assert (tmp_path / "glasses.json").stat().st_mode & 0o077 == 0
    wrong = CliRunner().invoke(
        app, ["device", "glasses", "scan", payload, "--say", "sure", "--state", glasses]
    )
    assert wrong.exit_code == 1 and "not the wearer's phrase" in wrong.output
    said = _run("device", "glasses", "scan", payload, "--say", "pay it now", "--state", glasses)
    assert "Pay 4.50 USD to Shop for flat white?" in said and "glasses: paid" in said

    phone, terminal = str(tmp_path / "phone.json"), str(tmp_path / "terminal.json")
    _run("device", "phone", "enroll", "--server", url, "--user-key", user_key, "--state", phone)
    _run("device", "terminal", "register", "--server", url, "--merchant-key", merchant_key,
         "--state", terminal)  # fmt: skip
    tapped = _run("device", "terminal", "tap", "1250", "--phone", phone, "--state", terminal)
    assert "terminal: approved" in tapped
    big = _run("device", "terminal", "tap", "6000", "--phone", phone, "--state", terminal)
    assert "declined: step_up_required" in big
    verified = _run("device", "terminal", "tap", "6000", "--phone", phone, "--state", terminal,
                    "--verify", "biometric")  # fmt: skip
    assert "terminal: approved" in verified
    state: dict[str, Any] = json.loads(Path(phone).read_text())
    assert state["counter"] == 3

    engine = live_server.engine()
    try:
        assert captures_for(engine, merchant["id"]) == (3, 450 + 1250 + 6000)
    finally:
        engine.dispose()
    assert user["id"].startswith("usr_")
