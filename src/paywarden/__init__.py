"""paywarden: the trust layer for agentic payments.

The base install is the SDK and CLI client; ``paywarden[server]`` adds the server.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
