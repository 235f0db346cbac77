"""``paywarden agent-key`` and ``paywarden chat`` as a person runs them, against the real
server: a new key registered, then an order placed and paid in two messages."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from live_server import LiveServer
from paywarden.sdk import Client, load_agent_key
from sdk_support import active_mandate, agent_world, budget, payees, stock_shop

PAYWARDEN = str(Path(sys.executable).parent / "paywarden")


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PAYWARDEN, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "200"},
    )


@pytest.mark.parametrize("live_server", ["sqlite"], indirect=True)
def test_chat_orders_and_pays_from_the_terminal(live_server: LiveServer, tmp_path: Path) -> None:
    made = run("agent-key", "agent.jwk", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    public = json.loads(made.stdout.strip().splitlines()[-1])
    assert "d" not in public
    assert run("agent-key", "agent.jwk", cwd=tmp_path).returncode == 1  # never overwritten
    key = load_agent_key(tmp_path / "agent.jwk")
    with live_server.client() as http:

        def post(path: str, secret: str, body: object) -> object:
            return http.post(path, json=body, headers=live_server.headers(secret))

        world = agent_world(post, live_server.admin_key, funded=1_000_000, currency="cny")
        stock_shop(post, world.merchant["id"], world.merchant_key)
        agent = post("/v1/agents", world.platform_key, {"name": "CLI", "keys": [public]})
    with (
        Client(live_server.base_url, agent_key=key) as pw,
        Client(live_server.base_url, api_key=world.user_key) as user,
    ):
        assert agent.status_code == 201  # type: ignore[attr-defined]
        shop_only = payees(world.merchant["id"])  # a payee the user named: no new-merchant step-up
        mandate = active_mandate(
            pw, user, world.user["id"], [budget(100_000, "cny"), shop_only], "cny"
        )
    said = run(
        "chat",
        "--agent-key",
        "agent.jwk",
        "--base-url",
        live_server.base_url,
        "--mandate",
        mandate,
        "--timezone",
        "Asia/Shanghai",
        "-m",
        "two large oat lattes, less sugar, under 50 yuan",
        "-m",
        "yes",
        cwd=tmp_path,
    )
    assert said.returncode == 0, said.stdout + said.stderr
    assert "2 x Latte (oat, large, one, hot) @ 21.00 CNY" in said.stdout, said.stdout
    # The earliest pickup, shown in the user's zone (a time of day would depend on the clock).
    assert re.search(r"Pickup at \d{4}-\d\d-\d\d \d\d:\d\d \(Asia/Shanghai\)\.", said.stdout)
    assert "Pay 42.00 CNY? (yes/no)" in said.stdout, said.stdout
    assert "Paid 42.00 CNY. Order ord_" in said.stdout, said.stdout
