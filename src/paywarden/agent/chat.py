"""``build_session``: a ready chat session for an agent, with the offline planner or an
OpenAI-compatible model; the code behind ``paywarden chat`` and its tests.

::

    session = build_session(Client(url, agent_key=key), mandate="mnd_…")
    print(session.say("two large oat lattes, less sugar, pickup at 3pm, under 40 yuan"))
    print(session.say("yes"))
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, tzinfo

import httpx

from paywarden.agent.llm import LlmSettings, OpenAIBrain
from paywarden.agent.planner import OfflinePlanner
from paywarden.agent.session import Brain, ChatSession, ToolRunner
from paywarden.mcp.tools import TOOL_NAMES, ShoppingTools
from paywarden.sdk import Client

__all__ = ["build_session"]


def build_session(
    client: Client,
    *,
    mandate: str | None = None,
    user: str | None = None,
    merchant: str | None = None,
    llm: LlmSettings | None = None,
    llm_transport: httpx.BaseTransport | None = None,
    timezone: tzinfo | None = None,
    now: Callable[[], datetime] | None = None,
    tools: Iterable[str] = TOOL_NAMES,
) -> ChatSession:
    """A session acting as ``client``'s agent; the planner unless ``llm`` names a model."""
    shopping = ShoppingTools(client, mandate=mandate, user=user, allowed=frozenset(tools))
    brain: Brain
    if llm is not None:
        brain = OpenAIBrain(llm, transport=llm_transport)
    else:
        brain = OfflinePlanner(now=now, timezone=timezone, merchant=merchant)
    return ChatSession(brain, ToolRunner(shopping))
