"""The SDK and the chat agent work in the base install: importing them loads no server
dependency (in a fresh interpreter, so that other tests' imports cannot hide one)."""

from __future__ import annotations

import json
import subprocess
import sys

SERVER_ONLY = [
    "fastapi",
    "starlette",
    "sqlalchemy",
    "alembic",
    "psycopg",
    "pydantic_settings",
    "jinja2",
    "joserfc",
    "rfc8785",
    "mcp",
    "uvicorn",
]


def test_sdk_and_chat_load_no_server_dependency() -> None:
    code = (
        "import json, sys; import paywarden.sdk, paywarden.agent.chat, paywarden.mcp.tools; "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    loaded = set(json.loads(done.stdout))
    assert loaded.isdisjoint(SERVER_ONLY), sorted(loaded & set(SERVER_ONLY))
