"""``paywarden serve`` with an MCP agent key serves the tools over streamable HTTP at /mcp: the
official client lists them and pays under a mandate through the same signed API; without the
setting there is no /mcp."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import httpx
from mcp import Client as McpClient

from conftest import sqlite_url
from live_server import prepare, serving
from paywarden.sdk import Client, generate_agent_key
from sdk_support import active_mandate, agent_world, budget, payees


def test_mcp_over_streamable_http_in_serve(tmp_path: Path) -> None:
    database_url = sqlite_url(tmp_path)
    admin_key = prepare(database_url)
    key_file = tmp_path / "mcp-agent.jwk"
    key, _ = generate_agent_key(key_file)
    config = tmp_path / "paywarden.toml"
    config.write_text(
        f'mcp_agent_key_file = "{key_file}"\nmcp_tools = "get_mandate,pay_merchant"\n'
    )
    with serving(database_url, tmp_path / "server.log", "--config", str(config)) as base_url:
        with httpx.Client(base_url=base_url, timeout=30) as http:

            def post(path: str, secret: str, body: Any) -> Any:
                headers = {
                    "Authorization": f"Bearer {secret}",
                    "Idempotency-Key": path + "-" + json.dumps(body)[:40],
                }
                return http.post(path, json=body, headers=headers)

            world = agent_world(post, admin_key)
            made = http.post(
                "/v1/agents",
                json={"name": "MCP", "keys": [key.public_jwk()]},
                headers={
                    "Authorization": f"Bearer {world.platform_key}",
                    "Idempotency-Key": "mcp-agent",
                },
            )
            assert made.status_code == 201, made.text
        with (
            Client(base_url, agent_key=key) as agent,
            Client(base_url, api_key=world.user_key) as user,
        ):
            mandate = active_mandate(
                agent, user, world.user["id"], [budget(5_000), payees(world.merchant["id"])]
            )
        seen: dict[str, Any] = {}

        async def session() -> None:
            async with McpClient(f"{base_url}/mcp", read_timeout_seconds=60) as mcp:
                seen["tools"] = sorted(t.name for t in (await mcp.list_tools()).tools)
                paid = await mcp.call_tool(
                    "pay_merchant",
                    {
                        "merchant": world.merchant["id"],
                        "amount": 700,
                        "currency": "usd",
                        "mandate": mandate,
                    },
                )
                seen["paid"] = json.loads(paid.content[0].text)
                hidden = await mcp.call_tool("get_approval", {"approval_id": "apr_x"})
                seen["hidden"] = (hidden.is_error, hidden.content[0].text)

        anyio.run(session)
    assert seen["tools"] == ["get_mandate", "pay_merchant"]
    assert seen["paid"]["status"] == "succeeded", seen["paid"]
    assert seen["hidden"][0] and "tool_not_allowed" in seen["hidden"][1]


def test_no_mcp_route_without_an_agent_key(tmp_path: Path) -> None:
    database_url = sqlite_url(tmp_path)
    prepare(database_url)
    with serving(database_url, tmp_path / "server.log") as base_url:
        answer = httpx.post(f"{base_url}/mcp", json={}, timeout=30)
    assert answer.status_code == 404
