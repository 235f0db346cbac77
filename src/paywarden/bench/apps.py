"""The HTTP limit's servers: a bare ASGI app and a tiny FastAPI app, each with one POST.

Both read a small JSON body and answer with a small JSON object, as a paywarden endpoint
does, but touch no database: what they cost is the HTTP stack (uvicorn, and for the
FastAPI app its routing and request handling). ``paywarden bench`` serves them with
``python -m uvicorn paywarden.bench.apps:bare_app`` (or ``:fastapi_app``) in a subprocess.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI, Request

__all__ = ["bare_app", "fastapi_app"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


async def bare_app(scope: Scope, receive: Receive, send: Send) -> None:
    """A bare ASGI app: any request is answered 200 with the amount from its JSON body."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    amount = json.loads(body)["amount"] if body else None
    payload = json.dumps({"ok": True, "amount": amount}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


fastapi_app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)


@fastapi_app.get("/readyz")
async def readyz() -> dict[str, bool]:
    return {"ok": True}


@fastapi_app.post("/v1/echo")
async def echo(request: Request) -> dict[str, Any]:
    body = await request.json()
    return {"ok": True, "amount": body["amount"]}
