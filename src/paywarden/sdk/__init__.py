"""The paywarden Python SDK: the light client in the base install (no server dependencies).

::

    from paywarden.sdk import AsyncClient, Client, load_agent_key
"""

from paywarden.sdk.client import AsyncClient, Client, Json
from paywarden.sdk.errors import ConnectionFailed, ErrorDetails, details
from paywarden.sdk.signing import AgentKey, generate_agent_key, load_agent_key

__all__ = [
    "AgentKey",
    "AsyncClient",
    "Client",
    "ConnectionFailed",
    "ErrorDetails",
    "Json",
    "details",
    "generate_agent_key",
    "load_agent_key",
]
