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
from mcp.client.stdio import StdioServerParameters

from live_server import LiveServer
from mcp import Client as McpClient
from paywarden.mcp.tools import TOOL_NAMES
from paywarden.sdk import Client
from sdk_support import active_mandate, agent_world, budget, confirm_above, payees

PAYWARDEN = str(Path(sys.executable).parent / "paywarden")


def poster(server: LiveServer, http: httpx.Client) -> Any:
    return lambda path, key, body: http.post(path, json=body, headers=server.headers(key))


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
        params = StdioServerParameters(
            command=PAYWARDEN,
            args=["mcp", "--agent-key", str(key_file), "--base-url", live_server.base_url,
                  "--mandate", mandate],
            cwd=str(tmp_path),
        )  # fmt: skip
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
