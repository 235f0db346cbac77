"""Webhook delivery worker, `listen` and `trigger`.

- ``paywarden webhooks worker``: deliver webhooks until SIGTERM (or Ctrl-C), one line per
  attempt. Run as many as you like beside ``paywarden serve``; claims are leases.
- ``paywarden listen --forward-to URL``: stream the caller's new events (polling
  ``GET /v1/events``) and forward each, signed per Standard Webhooks with a session secret
  printed at start (or ``--secret``), to a local endpoint, printing its answer.
- ``paywarden trigger EVENT``: fire a sample event (test mode) at the caller's endpoints.

``listen`` and ``trigger`` are clients of a running server: ``--api-key`` (or
``PAYWARDEN_API_KEY``) and ``--api-base`` (default ``http://127.0.0.1:8000``).
"""

from __future__ import annotations

import secrets
import signal
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import httpx
import typer

from paywarden.services.webhook_payloads import standard_body
from paywarden.trust.webhook_signing import format_secret, standard_headers

__all__ = ["register"]

ApiKey = Annotated[
    str, typer.Option("--api-key", envvar="PAYWARDEN_API_KEY", help="your secret key")
]
ApiBase = Annotated[
    str, typer.Option("--api-base", envvar="PAYWARDEN_API_BASE", help="the server's base URL")
]
DEFAULT_BASE = "http://127.0.0.1:8000"
LISTEN_PAGE_MAX = 100


def register(app: typer.Typer) -> None:
    """Add this module's commands to the ``paywarden`` command line."""
    group = typer.Typer(help="Webhook delivery.", no_args_is_help=True)
    group.command("worker")(worker)
    app.add_typer(group, name="webhooks")
    app.command("listen")(listen)
    app.command("trigger")(trigger)


def worker(
    config: Annotated[Path | None, typer.Option("--config", help="TOML settings file")] = None,
    database_url: Annotated[
        str | None, typer.Option("--database-url", help="overrides PAYWARDEN_DATABASE_URL")
    ] = None,
    poll_interval_s: Annotated[
        float | None, typer.Option("--poll-interval", help="seconds between idle rounds")
    ] = None,
    batch_max: Annotated[
        int, typer.Option("--batch-max", min=1, max=500, help="deliveries claimed per round")
    ] = 50,
) -> None:
    """Deliver webhooks until SIGTERM, printing a line per attempt."""
    # Only what delivery needs is imported (not the API): a restarted worker is back fast.
    from paywarden.config import load_master_key, load_settings  # noqa: PLC0415
    from paywarden.store.engine import make_engine  # noqa: PLC0415
    from paywarden.store.unit_of_work import Store  # noqa: PLC0415
    from paywarden.worker.delivery import DeliveryWorker, Outcome, retry_policy  # noqa: PLC0415

    settings = load_settings(config, database_url=database_url)
    try:
        master_key = load_master_key(settings)
    except (FileNotFoundError, ValueError) as error:
        typer.echo(f"webhook worker: {error}", err=True)
        raise typer.Exit(2) from None
    engine = make_engine(
        settings.database_url,
        pool_size=min(settings.database_pool_size, 10),
        sqlite_synchronous=settings.sqlite_synchronous,
    )
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def show(outcome: Outcome) -> None:
        typer.echo(outcome.line())
        sys.stdout.flush()

    delivery = DeliveryWorker(
        Store(engine), master_key, retry_policy(settings), on_outcome=show, batch_max=batch_max
    )
    typer.echo("webhook worker: delivering; SIGTERM stops", err=True)
    try:
        delivery.run(stop, poll_interval_s or settings.webhook_poll_interval_s)
    finally:
        delivery.close()
        engine.dispose()
    typer.echo("webhook worker: stopped", err=True)


def _client(api_key: str, api_base: str) -> httpx.Client:
    return httpx.Client(
        base_url=api_base.rstrip("/"),
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=10.0,
        trust_env=False,
    )


def _fail(response: httpx.Response) -> None:
    typer.echo(f"error {response.status_code}: {response.text[:500]}", err=True)
    raise typer.Exit(1)


def trigger(
    event: Annotated[str, typer.Argument(help="the event type, e.g. order.created")],
    api_key: ApiKey,
    api_base: ApiBase = DEFAULT_BASE,
) -> None:
    """Fire a sample event of a type (test mode) at your own endpoints."""
    with _client(api_key, api_base) as client:
        response = client.post(
            "/v1/events/trigger",
            json={"type": event},
            headers={"Idempotency-Key": secrets.token_hex(16)},
        )
    if response.status_code != 201:
        _fail(response)
    typer.echo(f"triggered {event}: {response.json()['id']}")


def listen(
    forward_to: Annotated[str, typer.Option("--forward-to", help="local URL to POST events to")],
    api_key: ApiKey,
    api_base: ApiBase = DEFAULT_BASE,
    events: Annotated[
        str | None, typer.Option("--events", help="one type or resource.* (default: all)")
    ] = None,
    secret: Annotated[
        str | None, typer.Option("--secret", help="whsec_… to sign with (default: a new one)")
    ] = None,
    poll_interval_s: Annotated[float, typer.Option("--poll-interval")] = 1.0,
    max_events: Annotated[
        int | None, typer.Option("--max-events", help="stop after forwarding this many")
    ] = None,
) -> None:
    """Stream your new events to a local endpoint, signed (Standard Webhooks)."""
    signing = secret or format_secret(secrets.token_bytes(32))
    forwarded = 0
    with _client(api_key, api_base) as client, httpx.Client(timeout=10.0) as local:
        cursor = _newest_event(client, events)
        typer.echo(f"forwarding new events to {forward_to}; signing secret: {signing}", err=True)
        while max_events is None or forwarded < max_events:
            batch = _events_after(client, cursor, events)
            for event in batch:
                _forward(local, forward_to, signing, event)
                cursor = event["id"]
                forwarded += 1
            if not batch:
                time.sleep(poll_interval_s)


def _query(events: str | None, **extra: Any) -> dict[str, Any]:
    params = {k: v for k, v in extra.items() if v is not None}
    if events:
        params["type"] = events
    return params


def _newest_event(client: httpx.Client, events: str | None) -> str:
    """Start after the newest existing event: only new ones are streamed."""
    response = client.get("/v1/events", params=_query(events, limit=1))
    if response.status_code != 200:
        _fail(response)
    data = response.json()["data"]
    return str(data[0]["id"]) if data else "evt_0"  # sorts before every event id


def _events_after(client: httpx.Client, cursor: str, events: str | None) -> list[dict[str, Any]]:
    response = client.get(
        "/v1/events", params=_query(events, ending_before=cursor, limit=LISTEN_PAGE_MAX)
    )
    if response.status_code != 200:
        _fail(response)
    return list(reversed(response.json()["data"]))  # oldest first


def _forward(local: httpx.Client, url: str, signing: str, event: dict[str, Any]) -> None:
    body = standard_body(event)
    stamp = int(datetime.now(UTC).timestamp())
    headers = {"content-type": "application/json"}
    headers.update(standard_headers([signing], event["id"], stamp, body).as_dict())
    try:
        answer = local.post(url, content=body, headers=headers)
        status = str(answer.status_code)
    except httpx.HTTPError as error:
        status = f"failed ({type(error).__name__})"
    typer.echo(f"{event['type']:<32} {event['id']} → {status}")
