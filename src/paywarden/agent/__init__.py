"""The reference conversational shopping agent behind ``paywarden chat``.

Two brains behind one interface (:class:`~paywarden.agent.session.Brain`): the offline
deterministic planner (:mod:`.planner`, the default) and any OpenAI-compatible
chat-completions endpoint with tool calling (:mod:`.llm`). Both call the same tools
(:mod:`paywarden.mcp.tools`) through the same signed API; neither authorizes anything.
"""
