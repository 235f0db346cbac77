"""The SDK against the real ASGI app in-process: signed agent requests, idempotency keys kept
across retries with fresh signatures, backoff, and the server's error tree."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from conftest import Api
from paywarden.kernel.clock import FakeClock
from paywarden.kernel.errors import (
    AuthenticationFailed,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    RateLimited,
)
from paywarden.sdk import Client, ConnectionFailed, details, generate_agent_key, load_agent_key
from sdk_support import (
    ThroughTestClient,
    active_mandate,
    agent_world,
    budget,
    confirm_above,
    in_process,
    payees,
)


@pytest.fixture
def world(api: Api) -> Any:
    return agent_world(api.post, api.admin_key)


def test_agent_pays_under_a_mandate_with_signed_requests(
    api: Api, clock: FakeClock, world: Any
) -> None:
    agent = in_process(api, clock, agent_key=world.agent_key)
    user = in_process(api, clock, api_key=world.user_key)
    mandate = active_mandate(
        agent, user, world.user["id"], [budget(1_000), payees(world.merchant["id"])]
    )
    paid = agent.payments.create(
        mandate=mandate, merchant=world.merchant["id"], amount=400, currency="usd"
    )
    assert paid["status"] == "succeeded", paid
    assert agent.payments.get(paid["id"])["amount"] == 400
    remaining = agent.mandates.get(mandate)["remaining"]
    assert remaining[0]["amount_left"] == 600, remaining
    over = agent.payments.create(
        mandate=mandate, merchant=world.merchant["id"], amount=601, currency="usd"
    )
    assert over["status"] == "declined" and over["reasons"], over


def test_confirmation_then_user_approves(api: Api, clock: FakeClock, world: Any) -> None:
    agent = in_process(api, clock, agent_key=world.agent_key)
    user = in_process(api, clock, api_key=world.user_key)
    mandate = active_mandate(agent, user, world.user["id"], [budget(5_000), confirm_above(1_000)])
    payment = agent.payments.create(
        mandate=mandate, merchant=world.merchant["id"], amount=2_000, currency="usd"
    )
    assert payment["status"] == "requires_confirmation", payment
    approval = agent.approvals.get(payment["approval"])
    assert approval["status"] == "pending"
    user.approvals.approve(approval["id"], binding_hash=approval["binding_hash"])
    assert agent.payments.get(payment["id"])["status"] == "succeeded"


def test_errors_are_the_server_tree(api: Api, clock: FakeClock, world: Any) -> None:
    agent = in_process(api, clock, agent_key=world.agent_key)
    with pytest.raises(NotFound) as missing:
        agent.mandates.get("mnd_nothing")
    found = details(missing.value)
    assert found is not None and found.status == 404 and found.request_id
    with pytest.raises(AuthenticationFailed) as refused:  # agents never consent
        agent.mandates.consent("mnd_nothing")
    assert refused.value.code == "agent_not_allowed"
    with pytest.raises(InvalidRequest) as bad:
        agent.payments.create(mandate="mnd_x", merchant="mer_x", amount=1, currency="zzz")
    assert bad.value.param == "$.currency"
    stranger, _ = generate_agent_key()
    with pytest.raises(AuthenticationFailed) as unknown:
        in_process(api, clock, agent_key=stranger).mandates.get("mnd_x")
    assert unknown.value.code == "unknown_key"


def test_a_retry_keeps_the_key_and_signs_afresh(api: Api, clock: FakeClock, world: Any) -> None:
    """The first attempt dies on the wire after the server did the work; the retry carries
    the same Idempotency-Key with a new nonce: one payment, replayed."""
    inner = ThroughTestClient(api.client)
    seen: list[httpx.Request] = []

    class LosesFirstAnswer(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            seen.append(request)
            response = inner.handle_request(request)
            if request.url.path == "/v1/payments" and len(seen) == 1:
                response.read()
                raise httpx.ReadError("connection reset")
            return response

    user = in_process(api, clock, api_key=world.user_key)
    setup = in_process(api, clock, agent_key=world.agent_key)
    mandate = active_mandate(
        setup, user, world.user["id"], [budget(1_000), payees(world.merchant["id"])]
    )
    sleeps: list[float] = []
    agent = Client(
        "http://testserver",
        transport=LosesFirstAnswer(),
        agent_key=world.agent_key,
        clock=clock.now,
        sleep=sleeps.append,
        jitter=lambda: 1.0,
    )
    paid = agent.payments.create(
        mandate=mandate, merchant=world.merchant["id"], amount=300, currency="usd"
    )
    assert paid["status"] == "succeeded"
    first, second = seen
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"]
    assert first.headers["signature"] != second.headers["signature"]
    assert first.headers["signature-input"] != second.headers["signature-input"]  # new nonce
    assert sleeps == [0.25]
    assert setup.mandates.get(mandate)["remaining"][0]["amount_left"] == 700  # paid once


def scripted(answers: list[httpx.Response | Exception]) -> tuple[httpx.MockTransport, list[Any]]:
    requests: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return httpx.MockTransport(handle), requests


def error(status: int, code: str, **headers: str) -> httpx.Response:
    body = {"error": {"type": "x", "code": code, "message": code, "param": None}}
    return httpx.Response(status, json=body, headers=headers)


def test_backoff_doubles_with_jitter_and_honours_retry_after() -> None:
    transport, requests = scripted(
        [
            error(503, "service_unavailable"),
            error(429, "rate_limited", **{"Retry-After": "3"}),
            error(409, "idempotency_in_flight"),
            httpx.Response(201, json={"id": "pay_1", "object": "payment"}),
        ]
    )
    sleeps: list[float] = []
    client = Client(
        "http://x", api_key="k", transport=transport, sleep=sleeps.append, jitter=lambda: 0.5
    )
    assert client.post("/v1/payments", {"amount": 1})["id"] == "pay_1"
    assert sleeps == [0.125, 3.0, 0.5]  # 0.25·2^n·jitter, or Retry-After when longer
    assert len({r.headers["idempotency-key"] for r in requests}) == 1
    assert all(json.loads(r.content) == {"amount": 1} for r in requests)


def test_retries_are_bounded_then_the_error_is_raised() -> None:
    transport, requests = scripted([error(429, "rate_limited")] * 3)
    client = Client("http://x", transport=transport, retries_max=2, sleep=lambda _: None)
    with pytest.raises(RateLimited):
        client.get("/v1/anything")
    assert len(requests) == 3
    transport, _ = scripted([httpx.ConnectError("refused")] * 2)
    client = Client("http://x", transport=transport, retries_max=1, sleep=lambda _: None)
    with pytest.raises(ConnectionFailed):
        client.get("/v1/anything")


def test_client_errors_are_not_retried() -> None:
    transport, requests = scripted([error(403, "permission_denied")])
    client = Client("http://x", transport=transport, sleep=lambda _: None)
    with pytest.raises(PermissionDenied):
        client.post("/v1/x")
    assert len(requests) == 1


def test_key_file_round_trip(tmp_path: Any) -> None:
    key, jwk = generate_agent_key(tmp_path / "agent.jwk")
    assert (tmp_path / "agent.jwk").stat().st_mode & 0o077 == 0
    loaded = load_agent_key(tmp_path / "agent.jwk")
    assert loaded.keyid == key.keyid and "d" in jwk and jwk["d"] not in repr(loaded)
    with pytest.raises(FileExistsError):
        generate_agent_key(tmp_path / "agent.jwk")


def test_path_ids_cannot_climb_to_another_route() -> None:
    transport, requests = scripted([httpx.Response(200, json={"id": "x"})])
    Client("http://x", transport=transport).mandates.get("../payments/pay_1")
    assert requests[0].url.raw_path == b"/v1/mandates/..%2Fpayments%2Fpay_1"
