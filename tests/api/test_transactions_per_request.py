"""How many database transactions one request costs, on both backends.

A POST with a secret key is one unit of work under group commit: the key is read, the
Idempotency-Key claimed, the effect run and the answer stored in one transaction (its
group's). A GET reads the key and runs its read in one read-only transaction. Each
transaction more is a commit (an fsync on SQLite) or a round trip more, and on SQLite a
turn more at the single writer: a change that splits a request again fails here."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

import acp_support
from acp_support import AcpWorld, default_create
from conftest import Api
from payment_support import signed_headers

acp_api, world = acp_support.acp_api, acp_support.world


@contextmanager
def _transactions(api: Api) -> Iterator[list[str]]:
    """The transactions begun on the store's engine inside the block."""
    begun: list[str] = []

    def on_begin(connection: Any) -> None:
        begun.append("begin")

    event.listen(api.store.engine, "begin", on_begin)
    try:
        yield begun
    finally:
        event.remove(api.store.engine, "begin", on_begin)


def _payer_and_shop(api: Api) -> tuple[str, str, str]:
    """A funded user's key, a merchant's key and the merchant's id."""
    _user, key = api.user(funded=10_000)
    merchant, merchant_key = api.merchant()
    return key, merchant_key, merchant["id"]


def test_a_post_with_a_secret_key_is_one_transaction(api: Api) -> None:
    key, merchant_key, merchant = _payer_and_shop(api)
    body = {"destination": merchant, "amount": 1_000, "currency": "usd"}
    with _transactions(api) as begun:
        hold = api.post("/v1/holds", key, body)
    assert hold.status_code == 201, hold.text
    assert len(begun) == 1, begun
    with _transactions(api) as begun:
        capture = api.post(f"/v1/holds/{hold.json()['id']}/capture", merchant_key, {})
    assert capture.status_code == 200, capture.text
    assert len(begun) == 1, begun


def test_a_refused_post_is_one_transaction_and_a_replay_too(api: Api) -> None:
    key, _merchant_key, merchant = _payer_and_shop(api)
    too_much = {"destination": merchant, "amount": 1_000_000, "currency": "usd"}
    with _transactions(api) as begun:
        refused = api.post("/v1/holds", key, too_much, idempotency_key="big")
    assert refused.status_code == 422, refused.text
    assert len(begun) == 1, begun
    with _transactions(api) as begun:
        replayed = api.post("/v1/holds", key, too_much, idempotency_key="big")
    assert replayed.headers.get("Idempotent-Replayed") == "true"
    assert replayed.json() == refused.json()
    assert len(begun) == 1, begun


def test_a_get_with_a_secret_key_is_one_transaction(api: Api) -> None:
    key, _merchant_key, merchant = _payer_and_shop(api)
    body = {"destination": merchant, "amount": 1_000, "currency": "usd"}
    hold = api.post("/v1/holds", key, body).json()
    for path in (f"/v1/holds/{hold['id']}", "/v1/holds"):
        with _transactions(api) as begun:
            read = api.get(path, key)
        assert read.status_code == 200, read.text
        assert len(begun) == 1, (path, begun)


def test_an_acp_post_with_a_bearer_token_is_one_transaction(world: AcpWorld) -> None:
    with _transactions(world.api) as begun:
        created = world.post("/checkout_sessions", default_create())
    assert created.status_code == 201, created.text
    assert len(begun) == 1, begun


def test_a_signed_agent_read_is_one_transaction_and_its_nonce_is_kept(world: AcpWorld) -> None:
    """The agent's admission (its nonce remembered) and the read are one unit of work: the
    answer comes once the nonce is durable, and the same request again is a replay."""
    path = f"/v1/mandates/{world.mandate_id}"
    headers = signed_headers(world.agent.key, "GET", path, created=world.clock.now())
    with _transactions(world.api) as begun:
        read = world.api.client.get(path, headers=headers)
    assert read.status_code == 200, read.text
    assert read.json()["id"] == world.mandate_id
    assert len(begun) == 1, begun
    again = world.api.client.get(path, headers=headers)
    assert (again.status_code, again.json()["error"]["code"]) == (401, "nonce_replayed")
