"""The MCP server over stdio (``paywarden mcp``), driven by the official ``mcp`` client, acting
as a registered agent against the real ``paywarden serve``: it lists its tools, pays under a
mandate, meets a payment that needs the user's confirmation and sees it succeed once the user
approves."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client as McpClient
from mcp.client.stdio import StdioServerParameters

from live_server import LiveServer
from paywarden.mcp.tools import TOOL_NAMES
from paywarden.sdk import Client
from sdk_support import (
    active_mandate,
    agent_world,
    budget,
    confirm_above,
    payees,
    stock_shop,
)

PAYWARDEN = str(Path(sys.executable).parent / "paywarden")


def poster(server: LiveServer, http: httpx.Client) -> Any:
    return lambda path, key, body: http.post(path, json=body, headers=server.headers(key))


def stdio_server(key_file: Path, base_url: str, mandate: str) -> StdioServerParameters:
    """``paywarden mcp`` as the agent whose key is in ``key_file``, paying under ``mandate``."""
    args = ["mcp", "--agent-key", str(key_file), "--base-url", base_url, "--mandate", mandate]
    return StdioServerParameters(command=PAYWARDEN, args=args, cwd=str(key_file.parent))


def result_of(answer: Any) -> dict[str, Any]:
    text = answer.content[0].text
    body: dict[str, Any] = json.loads(text)
    return body


@pytest.mark.parametrize("live_server", ["sqlite"], indirect=True)
def test_mcp_over_stdio_pays_and_waits_for_approval(
    live_server: LiveServer, tmp_path: Path
) -> None:
    with live_server.client() as http:
        world = agent_world(poster(live_server, http), live_server.admin_key)
    key_file = tmp_path / "agent.jwk"
    key_file.write_text(json.dumps(world.agent_jwk))
    with (
        Client(live_server.base_url, agent_key=world.agent_key) as agent,
        Client(live_server.base_url, api_key=world.user_key) as user,
    ):
        mandate = active_mandate(
            agent,
            user,
            world.user["id"],
            [budget(10_000), payees(world.merchant["id"]), confirm_above(2_000)],
        )
        params = stdio_server(key_file, live_server.base_url, mandate)
        seen: dict[str, Any] = {}

        async def session() -> None:
            async with McpClient(params, read_timeout_seconds=60) as mcp:
                listed = await mcp.list_tools()
                seen["tools"] = sorted(tool.name for tool in listed.tools)
                seen["mandate"] = result_of(await mcp.call_tool("get_mandate", {}))
                seen["paid"] = result_of(
                    await mcp.call_tool(
                        "pay_merchant",
                        {"merchant": world.merchant["id"], "amount": 1_500, "currency": "usd"},
                    )
                )
                big = result_of(
                    await mcp.call_tool(
                        "pay_merchant",
                        {"merchant": world.merchant["id"], "amount": 3_000, "currency": "usd"},
                    )
                )
                seen["big"] = big
                approval = result_of(
                    await mcp.call_tool("get_approval", {"approval_id": big["approval"]})
                )
                await anyio.to_thread.run_sync(
                    lambda: user.approvals.approve(
                        approval["id"], binding_hash=approval["binding_hash"]
                    )
                )
                seen["approval"] = result_of(
                    await mcp.call_tool("get_approval", {"approval_id": big["approval"]})
                )
                seen["after"] = result_of(
                    await mcp.call_tool("get_payment", {"payment_id": big["id"]})
                )
                refused = await mcp.call_tool(
                    "pay_merchant",
                    {"merchant": world.other_merchant["id"], "amount": 100, "currency": "usd"},
                )
                seen["other"] = result_of(refused)

        anyio.run(session)
    assert seen["tools"] == sorted(TOOL_NAMES)
    assert seen["mandate"]["status"] == "active"
    assert seen["paid"]["status"] == "succeeded"
    assert seen["big"]["status"] == "requires_confirmation"
    assert seen["big"]["approval_url"].startswith(live_server.base_url + "/")
    assert seen["approval"]["status"] == "approved"
    assert seen["after"]["status"] == "succeeded"
    assert seen["other"]["status"] == "declined" and seen["other"]["reasons"]


@pytest.mark.parametrize("live_server", ["sqlite"], indirect=True)
def test_mcp_over_stdio_searches_checks_out_and_pays(
    live_server: LiveServer, tmp_path: Path
) -> None:
    """Search, build a checkout, pay it under the mandate; a bigger cart needs the user's
    confirmation: it waits (approval link) and completes once the user approves."""
    with live_server.client() as http:
        post = poster(live_server, http)
        world = agent_world(post, live_server.admin_key, funded=1_000_000, currency="cny")
        stock_shop(post, world.merchant["id"], world.merchant_key)
    key_file = tmp_path / "agent.jwk"
    key_file.write_text(json.dumps(world.agent_jwk))
    shop = world.merchant["id"]
    with (
        Client(live_server.base_url, agent_key=world.agent_key) as agent,
        Client(live_server.base_url, api_key=world.user_key) as user,
    ):
        mandate = active_mandate(
            agent,
            user,
            world.user["id"],
            [budget(100_000, "cny"), payees(shop), confirm_above(5_000, "cny")],
            "cny",
        )
        params = stdio_server(key_file, live_server.base_url, mandate)
        seen: dict[str, Any] = {}

        async def tool(mcp: McpClient, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
            answer = await mcp.call_tool(name, arguments)
            assert not answer.is_error, (name, answer.content[0].text)
            return result_of(answer)

        async def session() -> None:
            async with McpClient(params, read_timeout_seconds=60) as mcp:
                seen["tools"] = len((await mcp.list_tools()).tools)
                found = await tool(mcp, "search_products", {"query": "latte", "merchant": shop})
                latte = found["data"][0]
                seen["latte"] = latte["title"]
                small = await tool(
                    mcp,
                    "create_checkout",
                    {
                        "merchant": shop,
                        "items": [
                            {
                                "item": latte["id"],
                                "quantity": 2,
                                "options": {"size": "large", "milk": "oat"},
                            }
                        ],
                    },
                )
                seen["small_total"] = small["amount_total"]
                paid = await tool(mcp, "complete_checkout", {"checkout_id": small["id"]})
                seen["paid"] = (paid["status"], paid["order"])
                seen["order"] = await tool(mcp, "get_order", {"order_id": paid["order"]})
                big = await tool(
                    mcp,
                    "create_checkout",
                    {
                        "merchant": shop,
                        "items": [
                            {"item": latte["id"], "quantity": 3, "options": {"size": "large"}}
                        ],
                    },
                )
                waiting = await tool(mcp, "complete_checkout", {"checkout_id": big["id"]})
                seen["waiting"] = (waiting["status"], waiting["approval_url"])
                approval = await tool(mcp, "get_approval", {"approval_id": waiting["approval"]})
                await anyio.to_thread.run_sync(
                    lambda: user.approvals.approve(
                        approval["id"], binding_hash=approval["binding_hash"]
                    )
                )
                seen["approved"] = (
                    await tool(mcp, "get_approval", {"approval_id": approval["id"]})
                )["status"]
                seen["done"] = (await tool(mcp, "get_checkout", {"checkout_id": big["id"]}))[
                    "status"
                ]
                seen["orders"] = len((await tool(mcp, "list_orders", {}))["data"])

        anyio.run(session)
    assert seen["latte"] == "Latte"
    assert seen["small_total"] == 2 * (1500 + 300 + 300)
    assert seen["paid"][0] == "completed" and seen["paid"][1].startswith("ord_")
    assert seen["order"]["amount_total"] == seen["small_total"]
    assert seen["waiting"][0] == "pending_approval"
    assert seen["waiting"][1].startswith(live_server.base_url + "/")
    assert (seen["approved"], seen["done"], seen["orders"]) == ("approved", "completed", 2)
