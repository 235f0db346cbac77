"""paywarden: the trust layer for agentic payments.

The base install is the SDK and CLI client; ``paywarden[server]`` adds the server.
``paywarden.Client`` (and ``paywarden.AsyncClient``) are the SDK's clients
(:mod:`paywarden.sdk`), loaded on first use so that ``import paywarden`` stays light.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["AsyncClient", "Client", "__version__"]


def __getattr__(name: str) -> Any:
    if name in ("Client", "AsyncClient"):
        from paywarden import sdk  # noqa: PLC0415  (lazy: see the module docstring)

        return getattr(sdk, name)
    raise AttributeError(f"module 'paywarden' has no attribute {name!r}")
