"""The async twin: the same resources awaited, against the real ASGI app in-process through
``httpx.ASGITransport``; retries keep the Idempotency-Key and re-sign."""

from __future__ import annotations

from typing import Any

import anyio
import httpx

from conftest import Api
from paywarden.kernel.clock import FakeClock
from paywarden.kernel.errors import NotFound
from paywarden.sdk import AsyncClient
from sdk_support import active_mandate, agent_world, budget, in_process, payees


def test_async_agent_pays_and_reads(sqlite_api: Api, clock: FakeClock) -> None:
    world = agent_world(sqlite_api.post, sqlite_api.admin_key)
    user = in_process(sqlite_api, clock, api_key=world.user_key)
    setup = in_process(sqlite_api, clock, agent_key=world.agent_key)
    mandate = active_mandate(
        setup, user, world.user["id"], [budget(1_000), payees(world.merchant["id"])]
    )
    seen: dict[str, Any] = {}

    async def shop() -> None:
        transport = httpx.ASGITransport(app=sqlite_api.client.app)
        async with AsyncClient(
            "http://testserver", transport=transport, agent_key=world.agent_key, clock=clock.now
        ) as agent:
            paid = await agent.payments.create(
                mandate=mandate, merchant=world.merchant["id"], amount=250, currency="usd"
            )
            seen["paid"] = await agent.payments.wait(paid["id"], timeout_s=5)
            seen["left"] = (await agent.mandates.get(mandate))["remaining"][0]["amount_left"]
            try:
                await agent.approvals.get("apr_missing")
            except NotFound as error:
                seen["missing"] = error.code

    anyio.run(shop)
    assert seen["paid"]["status"] == "succeeded"
    assert (seen["left"], seen["missing"]) == (750, "resource_missing")


def test_async_retries_keep_the_key_and_sign_afresh(sqlite_api: Api, clock: FakeClock) -> None:
    world = agent_world(sqlite_api.post, sqlite_api.admin_key)
    requests: list[httpx.Request] = []
    answers = [
        httpx.Response(503, json={"error": {"code": "service_unavailable"}}),
        httpx.Response(201, json={"id": "pay_1", "object": "payment"}),
    ]

    async def handle(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return answers.pop(0)

    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async def pay() -> dict[str, Any]:
        async with AsyncClient(
            "http://x",
            transport=httpx.MockTransport(handle),
            agent_key=world.agent_key,
            clock=clock.now,
            sleep=sleep,
            jitter=lambda: 1.0,
        ) as agent:
            return await agent.post("/v1/payments", {"amount": 1})

    assert anyio.run(pay)["id"] == "pay_1"
    first, second = requests
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"]
    assert first.headers["signature-input"] != second.headers["signature-input"]
    assert slept == [0.25]
