"""The MCP server over streamable HTTP, mounted at ``/mcp`` by ``paywarden serve``.

Off unless ``mcp_agent_key_file`` is set (``PAYWARDEN_MCP_AGENT_KEY_FILE`` or the TOML file):
then ``/mcp`` serves the shopping tools acting as that agent, which calls this same server's
signed API over loopback (``http://127.0.0.1:<port>``), so every call is verified, judged and
recorded exactly like any agent's. ``mcp_tools`` is the allow-list and ``mcp_mandate`` the
default mandate. Like the stdio server, whoever can reach ``/mcp`` acts as that agent inside
its mandates: bind it to loopback (the default host), where the SDK's DNS-rebinding
protection is on. MCP clients send no Idempotency-Key; the SDK adds one to each API POST.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from paywarden.config import Settings

__all__ = ["MCP_PATH", "mount", "running"]

MCP_PATH = "/mcp"


def _api_base_url(settings: Settings) -> str:
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host  # noqa: S104
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{settings.port}"


def mount(app: FastAPI, settings: Settings) -> None:
    """Add ``/mcp`` to ``app`` when an MCP agent key is configured."""
    app.state.mcp_session_manager = None
    if settings.mcp_agent_key_file is None:
        return
    # Imported only when /mcp is on: the MCP SDK's models take about a second to import,
    # which every server process (and every worker of ``serve --workers N``) paid at start.
    from paywarden.mcp.server import build_server, parse_tool_list  # noqa: PLC0415
    from paywarden.sdk import Client, load_agent_key  # noqa: PLC0415

    client = Client(_api_base_url(settings), agent_key=load_agent_key(settings.mcp_agent_key_file))
    server = build_server(
        client, mandate=settings.mcp_mandate, allowed=parse_tool_list(settings.mcp_tools)
    )
    routes: Any = server.streamable_http_app(streamable_http_path=MCP_PATH, host=settings.host)
    app.router.routes.extend(routes.routes)
    app.state.mcp_session_manager = server.session_manager
    app.state.mcp_client = client


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[None]:
    """Run the MCP session manager for as long as the app (a no-op when /mcp is off)."""
    manager = getattr(app.state, "mcp_session_manager", None)
    if manager is None:
        yield
        return
    try:
        async with manager.run():
            yield
    finally:
        app.state.mcp_client.close()
