"""AI-facing commands: ``paywarden mcp`` (the MCP server on stdio), ``paywarden chat`` (the
conversational shopping agent) and ``paywarden agent-key`` (a new agent key file)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

__all__ = ["register"]

console = Console()
AgentKeyOption = Annotated[
    Path, typer.Option("--agent-key", help="the agent's private JWK file (paywarden agent-key)")
]
BaseUrlOption = Annotated[
    str | None,
    typer.Option("--base-url", help="the paywarden API (PAYWARDEN_BASE_URL, else :8000)"),
]
MandateOption = Annotated[
    str | None, typer.Option("--mandate", help="the mandate (mnd_…) to pay under by default")
]
UserOption = Annotated[
    str | None, typer.Option("--user", help="the user (usr_…) new mandates are asked of")
]
ToolsOption = Annotated[
    str | None, typer.Option("--tools", help="comma-separated allow-list of tools (all)")
]


def _base_url(given: str | None) -> str:
    return given or os.environ.get("PAYWARDEN_BASE_URL") or "http://127.0.0.1:8000"


def register(app: typer.Typer) -> None:
    """Add this module's commands to the ``paywarden`` command line."""
    app.command("mcp")(mcp)
    app.command("chat")(chat)
    app.command("agent-key")(agent_key)


def mcp(
    agent_key: AgentKeyOption,
    base_url: BaseUrlOption = None,
    mandate: MandateOption = None,
    user: UserOption = None,
    tools: ToolsOption = None,
) -> None:
    """Serve the shopping tools over MCP on stdio, acting as one agent."""
    import anyio  # noqa: PLC0415

    from paywarden.mcp.server import build_server, parse_tool_list, run_stdio  # noqa: PLC0415
    from paywarden.sdk import Client, load_agent_key  # noqa: PLC0415

    try:
        allowed = parse_tool_list(tools)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--tools") from None
    client = Client(_base_url(base_url), agent_key=load_agent_key(agent_key))
    server = build_server(client, mandate=mandate, user=user, allowed=allowed)
    try:
        anyio.run(run_stdio, server)
    finally:
        client.close()


def chat(
    agent_key: AgentKeyOption,
    base_url: BaseUrlOption = None,
    mandate: MandateOption = None,
    user: UserOption = None,
    merchant: Annotated[
        str | None, typer.Option("--merchant", help="search only this merchant (mer_…)")
    ] = None,
    timezone: Annotated[
        str | None, typer.Option("--timezone", help="IANA zone of pickup times (local)")
    ] = None,
    llm_base_url: Annotated[
        str | None,
        typer.Option("--llm-base-url", help="OpenAI-compatible API (PAYWARDEN_LLM_BASE_URL)"),
    ] = None,
    llm_model: Annotated[
        str | None, typer.Option("--llm-model", help="model name (PAYWARDEN_LLM_MODEL)")
    ] = None,
    llm_key: Annotated[
        str | None, typer.Option("--llm-key", help="API key (PAYWARDEN_LLM_API_KEY)")
    ] = None,
    message: Annotated[
        list[str] | None,
        typer.Option("--message", "-m", help="say this and exit (repeatable)"),
    ] = None,
) -> None:
    """Chat to shop: the offline planner by default, or a model with --llm-base-url."""
    from zoneinfo import ZoneInfo  # noqa: PLC0415

    from paywarden.agent.chat import build_session  # noqa: PLC0415
    from paywarden.agent.llm import LlmSettings  # noqa: PLC0415
    from paywarden.sdk import Client, load_agent_key  # noqa: PLC0415

    client = Client(_base_url(base_url), agent_key=load_agent_key(agent_key))
    session = build_session(
        client,
        mandate=mandate,
        user=user,
        merchant=merchant,
        llm=LlmSettings.resolve(llm_base_url, llm_model, llm_key),
        timezone=ZoneInfo(timezone) if timezone else None,
    )
    try:
        if message:
            for text in message:
                console.print(f"[bold]you>[/] {text}")
                console.print(session.say(text), highlight=False)
            return
        console.print("paywarden chat: say what you want; 'quit' to leave.")
        while True:
            try:
                text = console.input("[bold]you> [/]").strip()
            except EOFError:
                break
            if text.lower() in ("quit", "exit", "退出"):
                break
            if text:
                console.print(session.say(text), highlight=False)
    finally:
        client.close()


def agent_key(
    path: Annotated[Path, typer.Argument(help="where to write the private JWK (mode 0600)")],
) -> None:
    """Make a new Ed25519 agent key; prints the public JWK to register with /v1/agents."""
    from paywarden.sdk import generate_agent_key  # noqa: PLC0415

    try:
        key, _ = generate_agent_key(path)
    except FileExistsError:
        console.print(f"[red]{path} exists: not overwritten[/]")
        raise typer.Exit(1) from None
    console.print(f"agent key written to {path} (keyid {key.keyid}); its public JWK:")
    console.print(json.dumps(key.public_jwk()), soft_wrap=True, highlight=False)
