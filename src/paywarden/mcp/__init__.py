"""paywarden over the Model Context Protocol: the shopping tools (:mod:`.tools`, light, used by
the chat agent too) and the MCP server on the official ``mcp`` SDK (:mod:`.server`, stdio, and
:mod:`.http`, streamable HTTP at ``/mcp`` in ``paywarden serve``)."""
