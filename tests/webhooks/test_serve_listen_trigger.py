"""The run command delivers out of the box: `paywarden serve` (a real process) delivers a
sample event fired by `paywarden trigger` to the merchant's endpoint, and `paywarden listen`
forwards the same event, signed with its session secret, to a local URL."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import httpx
from standardwebhooks import Webhook

from conftest import sqlite_url, wait_for
from live_server import prepare, server_env, serving
from paywarden.trust.webhook_signing import format_secret
from webhook_support import receiver

PAYWARDEN = str(Path(sys.executable).parent / "paywarden")
LISTEN_SECRET = format_secret(bytes(range(32)))


def test_serve_delivers_and_listen_forwards_a_triggered_event(tmp_path: Path) -> None:
    database_url = sqlite_url(tmp_path)
    admin_key = prepare(database_url)
    with (
        receiver() as hooks,
        serving(database_url, tmp_path / "server.log") as base_url,
        httpx.Client(base_url=base_url, timeout=30) as api,
    ):
        merchant = api.post(
            "/v1/merchants",
            json={"name": "Cafe", "category": "coffee", "currency": "usd", "fee_bps": 0},
            headers={"Authorization": f"Bearer {admin_key}", "Idempotency-Key": "m1"},
        ).json()
        key = merchant["secret_key"]
        endpoint = api.post(
            "/v1/webhook_endpoints",
            json={"url": hooks.url, "enabled_events": ["order.created"]},
            headers={"Authorization": f"Bearer {key}", "Idempotency-Key": "e1"},
        ).json()
        client = ["--api-key", key, "--api-base", base_url]
        listen = subprocess.Popen(
            [
                PAYWARDEN,
                "listen",
                "--forward-to",
                hooks.url.replace("/hooks", "/listen"),
                "--secret",
                LISTEN_SECRET,
                "--max-events",
                "1",
                "--poll-interval",
                "0.2",
                *client,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=server_env(),
            text=True,
        )
        try:
            ready = threading.Event()

            def watch() -> None:
                assert listen.stderr is not None
                for line in listen.stderr:
                    if "forwarding new events" in line:
                        ready.set()

            threading.Thread(target=watch, daemon=True).start()
            assert ready.wait(timeout=60), "listen did not start"
            fired = subprocess.run(
                [PAYWARDEN, "trigger", "order.created", *client],
                capture_output=True,
                text=True,
                env=server_env(),
                timeout=60,
                check=True,
            )
            event_id = fired.stdout.strip().rpartition(" ")[2]
            assert event_id.startswith("evt_"), fired.stdout
            out, _ = listen.communicate(timeout=60)
        finally:
            if listen.poll() is None:
                listen.kill()
        assert listen.returncode == 0
        assert event_id in out and "→ 200" in out
        wait_for(lambda: len(hooks.received) >= 2, timeout_s=30)  # serve's own delivery
    by_path = {r.path: r for r in hooks.received}
    delivered, forwarded = by_path["/hooks"], by_path["/listen"]
    assert (
        Webhook(endpoint["secret_key"]).verify(delivered.body, delivered.headers)["id"] == event_id
    )
    assert Webhook(LISTEN_SECRET).verify(forwarded.body, forwarded.headers)["id"] == event_id
