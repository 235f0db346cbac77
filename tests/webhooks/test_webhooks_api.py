"""The webhook routes: endpoints (secret shown once, 404 to anyone but the owner), events
(only the caller's), the delivery log, re-sends, rotation and sample events."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from conftest import Api, make_api
from paywarden.services.webhook_delivery import RetryPolicy
from paywarden.store import schema
from paywarden.store.unit_of_work import Store
from paywarden.worker.delivery import DeliveryWorker
from webhook_support import emit_event, order_object

HOOK = "http://127.0.0.1:9/hooks"


@pytest.fixture
def hooks_api(store: Store) -> Iterator[Api]:
    # No in-process delivery: these tests drive the worker themselves, on the fake clock.
    yield from make_api(store, webhook_delivery_in_process=False)


def create(api: Api, key: str, idempotency_key: str = "auto", **body: Any) -> Any:
    return api.post(
        "/v1/webhook_endpoints", key, {"url": HOOK, **body}, idempotency_key=idempotency_key
    )


def master_key(api: Api) -> bytes:
    value: bytes = api.client.app.state.runtime.master_key  # type: ignore[attr-defined]
    return value


def run_worker(api: Api, status: int) -> list[httpx.Request]:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, text="nope" if status >= 300 else "ok")

    client = httpx.Client(transport=httpx.MockTransport(answer))
    worker = DeliveryWorker(api.store, master_key(api), RetryPolicy(), client=client)
    worker.run_once()
    return seen


def test_an_endpoint_secret_is_shown_once_and_never_replayed(hooks_api: Api) -> None:
    _merchant, key = hooks_api.merchant()
    response = create(hooks_api, key, enabled_events=["order.*"], idempotency_key="same")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["id"].startswith("whe_") and body["object"] == "webhook_endpoint"
    assert body["secret_key"].startswith("whsec_")
    assert body["enabled_events"] == ["order.*"] and body["format"] == "standard"
    replay = create(hooks_api, key, enabled_events=["order.*"], idempotency_key="same")
    assert replay.headers.get("Idempotent-Replayed") == "true"
    assert replay.json()["secret_key"] is None and replay.json()["secret_key_redacted"]
    shown = hooks_api.get(f"/v1/webhook_endpoints/{body['id']}", key).json()
    assert "secret_key" not in shown and shown["secret_hint"] == body["secret_hint"]
    stored = hooks_api.store.run(
        lambda uow: uow.execute(select(schema.metadata.tables["webhook_endpoints"])).all(),
        read_only=True,
    )
    assert all(body["secret_key"] not in str(tuple(row)) for row in stored)  # sealed at rest


def test_another_owners_endpoint_is_not_found(hooks_api: Api) -> None:
    _mine, my_key = hooks_api.merchant()
    _theirs, their_key = hooks_api.merchant()
    endpoint = create(hooks_api, my_key).json()
    path = f"/v1/webhook_endpoints/{endpoint['id']}"
    assert hooks_api.get(path, their_key).status_code == 404
    assert hooks_api.post(path, their_key, {"url": HOOK + "x"}).status_code == 404
    assert hooks_api.post(path + "/rotate_secret", their_key, {}).status_code == 404
    assert hooks_api.get(path + "/deliveries", their_key).status_code == 404
    deleted = hooks_api.client.delete(path, headers=hooks_api.headers(their_key, None))
    assert deleted.status_code == 404
    assert hooks_api.get("/v1/webhook_endpoints", their_key).json()["data"] == []
    assert [e["id"] for e in hooks_api.get("/v1/webhook_endpoints", my_key).json()["data"]] == [
        endpoint["id"]
    ]
    admin_list = hooks_api.get("/v1/webhook_endpoints", hooks_api.admin_key).json()["data"]
    assert endpoint["id"] in {e["id"] for e in admin_list}


def test_bad_endpoints_are_refused_with_a_param(hooks_api: Api) -> None:
    _merchant, key = hooks_api.merchant()
    bad_url = create(hooks_api, key, url="ftp://example.com/x")
    assert bad_url.status_code == 400 and bad_url.json()["error"]["param"] == "$.url"
    unknown = create(hooks_api, key, enabled_events=["order.created", "nope.never"])
    assert unknown.status_code == 400
    assert unknown.json()["error"]["param"] == "$.enabled_events[1]"
    acp = create(hooks_api, key, format="acp", enabled_events=["order.*"])
    assert acp.status_code == 403  # acp endpoints are an agent platform's


def test_events_list_only_the_callers_own(hooks_api: Api) -> None:
    mine, my_key = hooks_api.merchant()
    theirs, their_key = hooks_api.merchant()
    order_event = emit_event(hooks_api.store, "order.created", order_object("ord_1", mine["id"]))
    listed = hooks_api.get("/v1/events", my_key).json()["data"]
    ids = {e["id"] for e in listed}
    assert order_event in ids
    assert all(theirs["id"] not in str(e["data"]) for e in listed)
    assert hooks_api.get(f"/v1/events/{order_event}", my_key).status_code == 200
    assert hooks_api.get(f"/v1/events/{order_event}", their_key).status_code == 404
    their_list = hooks_api.get("/v1/events", their_key, params={"type": "order.*"}).json()
    assert their_list["data"] == []
    newer = hooks_api.get("/v1/events", my_key, params={"ending_before": "evt_0"}).json()
    assert order_event in {e["id"] for e in newer["data"]}


def test_the_delivery_log_and_a_resend(hooks_api: Api) -> None:
    mine, key = hooks_api.merchant()
    endpoint = create(hooks_api, key, enabled_events=["order.*"]).json()
    event_id = emit_event(hooks_api.store, "order.updated", order_object("ord_2", mine["id"]))
    assert len(run_worker(hooks_api, 500)) == 1
    log = hooks_api.get(f"/v1/webhook_endpoints/{endpoint['id']}/deliveries", key).json()
    (delivery,) = log["data"]
    assert delivery["event"] == event_id and delivery["status"] == "pending"
    assert delivery["attempt_count"] == 1 and delivery["last_status_code"] == 500
    detail = hooks_api.get(f"/v1/webhook_deliveries/{delivery['id']}", key).json()
    (attempt,) = detail["attempts"]
    assert attempt["status_code"] == 500 and attempt["response_excerpt"] == "nope"
    assert attempt["outcome"] == "failed" and attempt["url"] == HOOK
    by_event = hooks_api.get(f"/v1/events/{event_id}/deliveries", key).json()["data"]
    assert [d["id"] for d in by_event] == [delivery["id"]]
    resent = hooks_api.post(f"/v1/webhook_deliveries/{delivery['id']}/resend", key, {})
    assert resent.status_code == 200 and resent.json()["status"] == "pending"
    assert len(run_worker(hooks_api, 200)) == 1  # due at once, not at the backoff time
    done = hooks_api.get(f"/v1/webhook_deliveries/{delivery['id']}", key).json()
    assert done["status"] == "delivered" and len(done["attempts"]) == 2
    _other, other_key = hooks_api.merchant()
    again = hooks_api.post(f"/v1/webhook_deliveries/{delivery['id']}/resend", other_key, {})
    assert again.status_code == 404
    event_resend = hooks_api.post(f"/v1/events/{event_id}/resend", key, {})
    assert [d["status"] for d in event_resend.json()["data"]] == ["pending"]


def test_a_sample_event_reaches_only_the_callers_endpoints(hooks_api: Api) -> None:
    _mine, my_key = hooks_api.merchant()
    _theirs, their_key = hooks_api.merchant()
    create(hooks_api, my_key, enabled_events=["order.created"])
    create(hooks_api, their_key, enabled_events=["order.created"])
    triggered = hooks_api.post("/v1/events/trigger", my_key, {"type": "order.created"})
    assert triggered.status_code == 201, triggered.text
    sent = run_worker(hooks_api, 200)
    assert [r.headers["webhook-id"] for r in sent] == [triggered.json()["id"]]
    unknown = hooks_api.post("/v1/events/trigger", my_key, {"type": "order.nope"})
    assert unknown.status_code == 400


def test_rotation_returns_a_new_secret_and_keeps_the_old_one_for_the_overlap(
    hooks_api: Api,
) -> None:
    _merchant, key = hooks_api.merchant()
    endpoint = create(hooks_api, key).json()
    rotated = hooks_api.post(
        f"/v1/webhook_endpoints/{endpoint['id']}/rotate_secret",
        key,
        {"expire_previous_in_s": 600},
    ).json()
    assert rotated["secret_key"].startswith("whsec_")
    assert rotated["secret_key"] != endpoint["secret_key"]
    assert rotated["previous_secret_expires_at"] is not None
    too_long = hooks_api.post(
        f"/v1/webhook_endpoints/{endpoint['id']}/rotate_secret",
        key,
        {"expire_previous_in_s": 10**9},
    )
    assert too_long.status_code == 400


def test_update_and_delete(hooks_api: Api) -> None:
    _merchant, key = hooks_api.merchant()
    endpoint = create(hooks_api, key).json()
    path = f"/v1/webhook_endpoints/{endpoint['id']}"
    updated = hooks_api.post(path, key, {"status": "disabled", "enabled_events": ["payout.*"]})
    assert updated.json()["status"] == "disabled"
    assert updated.json()["enabled_events"] == ["payout.*"]
    deleted = hooks_api.client.delete(path, headers=hooks_api.headers(key, None))
    assert deleted.status_code == 200 and deleted.json()["deleted"] is True
    assert hooks_api.get(path, key).status_code == 404
    audit = hooks_api.store.run(
        lambda uow: [
            row.event_type
            for row in uow.execute(
                select(schema.audit_records).where(
                    schema.audit_records.c.subject_id == endpoint["id"]
                )
            )
        ],
        read_only=True,
    )
    assert {
        "webhook_endpoint.created",
        "webhook_endpoint.updated",
        "webhook_endpoint.deleted",
    } <= set(audit)
