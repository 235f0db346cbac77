"""Routes served past FastAPI's router (``HotRoutes``): they must answer exactly as routed
ones, and the app refuses to start with a hot route that could not be served alike."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute

from conftest import Api
from paywarden.api.app import HOT_ROUTES, _hot_routes
from paywarden.api.middleware import HotRoutes
from paywarden.kernel.errors import InvariantViolation


def _router() -> APIRouter:
    router = APIRouter(prefix="/v1")

    @router.post("/things/{thing_id}/go")
    async def go(request: Request, thing_id: str) -> Response:
        return JSONResponse({"went": thing_id, "path": request.url.path})

    @router.post("/things")
    async def make(request: Request) -> Response:
        return JSONResponse({"made": True})

    @router.get("/things/{thing_id}")
    async def read(request: Request, thing_id: str, limit: int = 10) -> Response:
        return JSONResponse({"thing": thing_id, "limit": limit})

    @router.post("/others/{other_id}")
    async def other(request: Request, other_id: str) -> Response:
        return JSONResponse({"other": other_id})

    @router.post("/others/special")
    async def special(request: Request) -> Response:
        return JSONResponse({"special": True})

    return router


def _call(app: HotRoutes, method: str, path: str) -> tuple[int, bytes, dict[str, Any]]:
    """One request through ``app``: status, body and the scope it ran with."""
    scope: dict[str, Any] = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [],
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], body, scope


def test_a_templated_hot_route_gets_its_path_parameters_and_the_rest_falls_through() -> None:
    fell_through: list[str] = []

    async def routed(scope: Any, receive: Any, send: Any) -> None:
        fell_through.append(scope["path"])
        await JSONResponse({"routed": True}, status_code=299)(scope, receive, send)

    hot = [("POST", "/v1/things/{thing_id}/go"), ("POST", "/v1/things")]
    app = HotRoutes(routed, routes=_hot_routes([_router()], hot))
    status, body, scope = _call(app, "POST", "/v1/things/thg_1/go")
    assert (status, body) == (200, b'{"went":"thg_1","path":"/v1/things/thg_1/go"}')
    assert scope["route"].path == "/v1/things/{thing_id}/go"  # metrics label by template
    assert scope["path_params"] == {"thing_id": "thg_1"}
    assert _call(app, "POST", "/v1/things")[:2] == (200, b'{"made":true}')
    for method, path in [
        ("GET", "/v1/things/thg_1/go"),  # another method
        ("POST", "/v1/things/thg_1/go/more"),  # a longer path
        ("POST", "/v1/things//go"),  # an empty parameter
        ("POST", "/v1/things/"),
    ]:
        assert _call(app, method, path)[0] == 299, (method, path)
    assert fell_through == [
        "/v1/things/thg_1/go",
        "/v1/things/thg_1/go/more",
        "/v1/things//go",
        "/v1/things/",
    ]


@pytest.mark.parametrize(
    ("hot", "why"),
    [
        ([("GET", "/v1/things/{thing_id}")], "path parameters alone"),  # a query parameter
        ([("POST", "/v1/others/{other_id}")], "would shadow /v1/others/special"),
        ([("POST", "/v1/nowhere")], "every hot route is a route of the app"),
    ],
)
def test_a_hot_route_that_could_not_be_served_alike_is_refused(
    hot: list[tuple[str, str]], why: str
) -> None:
    with pytest.raises(InvariantViolation, match=why):
        _hot_routes([_router()], hot)


def test_the_apps_hot_routes_include_the_ledger_and_answer_as_routed_ones(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert ("POST", "/v1/holds/{hold_id}/capture") in HOT_ROUTES
    user, key = api.user(funded=5_000)
    merchant, merchant_key = api.merchant()
    routed: list[str] = []
    handle = APIRoute.handle

    async def through_the_router(self: APIRoute, scope: Any, receive: Any, send: Any) -> None:
        routed.append(self.path)
        await handle(self, scope, receive, send)

    monkeypatch.setattr(APIRoute, "handle", through_the_router)
    api.get(f"/v1/users/{user['id']}", key)  # a routed one is seen
    assert routed == ["/v1/users/{user_id}"]
    hold = api.post(
        "/v1/holds", key, {"destination": merchant["id"], "amount": 700, "currency": "usd"}
    )
    assert hold.status_code == 201, hold.text
    path = f"/v1/holds/{hold.json()['id']}/capture"
    stranger = api.client.post(path, json={})
    assert stranger.status_code == 401
    assert stranger.headers["www-authenticate"] == "Bearer"
    assert stranger.json()["error"]["request_id"] == stranger.headers["request-id"]
    missing = api.post("/v1/holds/hld_missing/capture", merchant_key, {})
    assert missing.status_code == 404, missing.text
    captured = api.post(path, merchant_key, {})
    assert (captured.status_code, captured.json()["status"]) == (200, "posted")
    assert captured.headers["paywarden-version"]
    assert routed == ["/v1/users/{user_id}"]  # the hold and its captures were served past it
    lines = api.client.get("/metrics").text.splitlines()
    for status in ("401", "404", "200"):
        label = f'method="POST",route="/v1/holds/{{hold_id}}/capture",status="{status}"'
        assert f"paywarden_http_requests_total{{{label}}} 1.0" in lines, status
