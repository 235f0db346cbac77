"""The MCP server: :mod:`paywarden.mcp.tools` on the official ``mcp`` SDK's low-level server.

It acts as one agent (its key signs every API call through the SDK), so what the tools may do
is exactly what the agent's mandates allow, decided by the API; ``allowed`` narrows the tools
offered (``paywarden mcp --tools a,b``). A refusal comes back as a tool error whose text is
JSON: ``{"refused": true, "error": {"type", "code", "message", "param", "status"}}``; a result
is the API's object as JSON text, and also as structured content.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import anyio.to_thread
from mcp import types
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

import paywarden
from paywarden.mcp.tools import TOOL_NAMES, Refused, ShoppingTools
from paywarden.sdk import Client

__all__ = ["build_server", "parse_tool_list", "run_stdio"]

INSTRUCTIONS = (
    "Shop and pay for the user through paywarden. Amounts are integers in minor units "
    "(cents, fen) with a lowercase ISO 4217 currency. You cannot authorize anything: the "
    "user's mandate and the server decide. When a payment needs confirmation, give the user "
    "the approval_url and poll get_approval; never claim it succeeded before it did."
)


def parse_tool_list(text: str | None) -> frozenset[str]:
    """The ``--tools`` allow-list: comma-separated tool names; all tools when empty."""
    if not text:
        return frozenset(TOOL_NAMES)
    names = frozenset(name.strip() for name in text.split(",") if name.strip())
    unknown = sorted(names - set(TOOL_NAMES))
    if unknown:
        raise ValueError(f"unknown tools {unknown}; known: {', '.join(TOOL_NAMES)}")
    return names


def build_server(
    client: Client,
    *,
    mandate: str | None = None,
    user: str | None = None,
    allowed: Iterable[str] = TOOL_NAMES,
) -> Server[Any]:
    """An MCP server whose tools call the API through ``client`` (an agent's)."""
    tools = ShoppingTools(client, mandate=mandate, user=user, allowed=frozenset(allowed))
    listed = [
        types.Tool(
            name=spec.name,
            description=spec.description,
            input_schema=spec.parameters,
            annotations=types.ToolAnnotations(
                read_only_hint=spec.read_only, destructive_hint=False, open_world_hint=True
            ),
        )
        for spec in tools.specs()
    ]

    async def list_tools(_ctx: Any, _params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=listed)

    async def call_tool(_ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        arguments = dict(params.arguments or {})
        try:
            result = await anyio.to_thread.run_sync(tools.call, params.name, arguments)
        except Refused as refused:
            return types.CallToolResult(
                content=[types.TextContent(type="text", text=str(refused))], is_error=True
            )
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=json.dumps(result))],
            structured_content=result,
        )

    return Server(
        "paywarden",
        version=paywarden.__version__,
        instructions=INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


async def run_stdio(server: Server[Any]) -> None:
    """Serve one MCP client on this process's stdin and stdout until it hangs up."""
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())
