"""The chat loop shared by both brains: a :class:`ChatSession` takes the user's messages one at
a time and answers with text; its brain decides which tools to call.

Every tool call goes through :class:`ToolRunner`, which calls the shopping tools (the signed
API as the configured agent), records each call and its outcome (``log``), and adds the
conversation excerpt to mandate requests the brain makes without one, so that the consent
page shows the user what they asked for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from paywarden.mcp.tools import Refused, ShoppingTools, ToolSpec

__all__ = ["Brain", "ChatSession", "ToolOutcome", "ToolRunner"]

Json = dict[str, Any]
EXCERPT_MESSAGES_MAX = 6
EXCERPT_LENGTH_MAX = 2000


@dataclass(frozen=True)
class ToolOutcome:
    name: str
    arguments: Json
    result: Json | None  # the API object, or None when refused
    refusal: Json | None  # the server's wire error (with its code), or None

    def to_model(self) -> Json:
        """What the model is shown: the result, or the refusal."""
        if self.refusal is not None:
            return {"refused": True, "error": self.refusal}
        return self.result or {}


@dataclass
class ToolRunner:
    tools: ShoppingTools
    transcript: list[tuple[str, str]] = field(default_factory=list)  # (role, text)
    log: list[ToolOutcome] = field(default_factory=list)

    def specs(self) -> list[ToolSpec]:
        return self.tools.specs()

    def excerpt(self) -> str:
        said = [f"{role}: {text}" for role, text in self.transcript[-EXCERPT_MESSAGES_MAX:]]
        return "\n".join(said)[-EXCERPT_LENGTH_MAX:]

    def call(self, name: str, arguments: Mapping[str, Any]) -> ToolOutcome:
        """Run one tool; a refusal is an outcome (with the server's code), not an exception."""
        arguments = dict(arguments)
        if name == "request_mandate" and not arguments.get("conversation_excerpt"):
            arguments["conversation_excerpt"] = self.excerpt()
        try:
            outcome = ToolOutcome(name, arguments, self.tools.call(name, arguments), None)
        except Refused as refused:
            outcome = ToolOutcome(name, arguments, None, refused.error)
        self.log.append(outcome)
        return outcome


class Brain(Protocol):
    """Turns the user's latest message into tool calls (through ``runner``) and a reply."""

    def turn(self, text: str, runner: ToolRunner) -> str: ...


@dataclass
class ChatSession:
    brain: Brain
    runner: ToolRunner

    def say(self, text: str) -> str:
        """The user says ``text``; the answer, after whatever tool calls the brain made."""
        self.runner.transcript.append(("user", text))
        reply = self.brain.turn(text, self.runner)
        self.runner.transcript.append(("assistant", reply))
        return reply
