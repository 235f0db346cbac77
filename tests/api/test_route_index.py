"""Included routers skipped at once for a path none of their routes has (``route_index``):
each indexed router must answer every path as FastAPI's own loop answers it."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute, _IncludedRouter
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.routing import Match

from paywarden.api.app import create_app
from paywarden.api.route_index import IndexedRouter, index_included_routers
from paywarden.config import Settings

METHODS = ("GET", "POST", "DELETE", "PUT")


def _scope(method: str, path: str, root_path: str = "") -> dict[str, Any]:
    return {
        "type": "http",
        "method": method,
        "path": root_path + path,
        "root_path": root_path,
        "headers": [],
        "query_string": b"",
    }


def _plain(indexed: IndexedRouter) -> _IncludedRouter:
    """The router as FastAPI includes it, without the index."""
    return _IncludedRouter(
        original_router=indexed.original_router, include_context=indexed.include_context
    )


def _templates(included: Any, outer: str = "") -> Iterator[str]:
    prefix = outer + included.include_context.prefix
    for route in included.original_router.routes:
        if isinstance(route, _IncludedRouter):
            yield from _templates(route, prefix)
        else:
            yield prefix + route.path


def _near(template: str) -> Iterator[str]:
    """Paths of the template's route, and paths just beside it."""
    path = re.sub(r"\{[^}]*\}", "x_1", template)
    literal = template.split("{", 1)[0]
    yield from (path, path + "/", path.rstrip("/") or "/", path + "/more", path[:-1] or "/")
    yield from (literal, literal + "y", literal[:-1] or "/", path.upper(), "/v1" + path)


Pairs = list[tuple[IndexedRouter, _IncludedRouter]]


def _pairs(indexed: list[IndexedRouter]) -> Pairs:
    """Each indexed router with its plain twin (made once: a router builds its routes'
    contexts on first use)."""
    return [(router, _plain(router)) for router in indexed]


def _agree(pairs: Pairs, method: str, path: str, root_path: str = "") -> None:
    for router, plain in pairs:
        got = router.matches(_scope(method, path, root_path))
        expected = plain.matches(_scope(method, path, root_path))
        assert got == expected, (method, path, router.index)


def _app() -> FastAPI:
    return create_app(Settings(database_url="sqlite://"))


def _indexed(app: FastAPI) -> list[IndexedRouter]:
    return [route for route in app.router.routes if isinstance(route, IndexedRouter)]


def test_every_router_of_the_app_is_indexed() -> None:
    app = _app()
    included = [r for r in app.router.routes if isinstance(r, _IncludedRouter)]
    assert included and all(isinstance(r, IndexedRouter) for r in included)


def test_the_app_routes_every_path_near_its_routes_as_fastapi_does() -> None:
    pairs = _app_pairs()
    templates = {t for router, _ in pairs for t in _templates(router)}
    assert len(templates) > 100
    for template in sorted(templates):
        for path in _near(template):
            for method in METHODS:
                _agree(pairs, method, path)


_SEGMENTS = st.sampled_from(
    ["v1", "payments", "mandates", "holds", "x", "", "acp", ".well-known", "devices", "agents"]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_SEGMENTS, max_size=5), st.sampled_from(METHODS), st.booleans())
def test_any_path_is_routed_as_fastapi_routes_it(
    segments: list[str], method: str, slash: bool
) -> None:
    path = "/" + "/".join(segments) + ("/" if slash else "")
    _agree(_app_pairs(), method, path)


@functools.cache
def _app_pairs() -> Pairs:
    return _pairs(_indexed(_app()))


def test_prefixes_of_nested_and_prefixed_routers_and_the_root_path() -> None:
    inner = APIRouter()

    @inner.get("/items/{item_id}")
    def item(item_id: str) -> dict[str, str]:
        return {"item": item_id}

    @inner.get("/items")
    def items() -> list[str]:
        return []

    outer = APIRouter(prefix="/shop")
    outer.include_router(inner, prefix="/v2")

    @outer.post("/orders")
    def order() -> dict[str, bool]:
        return {"ordered": True}

    app = FastAPI()
    app.include_router(outer, prefix="/api")
    assert index_included_routers(app) == 1
    (router,) = _indexed(app)
    pairs = _pairs([router])
    assert router.matches(_scope("GET", "/api/shop/orders"))[0] is Match.PARTIAL
    assert router.index is not None and router.index.whole
    assert router.index.exact == {"/api/shop/v2/items", "/api/shop/orders"}
    assert router.index.prefixes == ("/api/shop/v2/items/",)
    for path in ("/api/shop/v2/items/7", "/api/shop/v2/items", "/api/shop/orders", "/api/x"):
        for method in METHODS:
            _agree(pairs, method, path)
            _agree(pairs, method, path, root_path="/mounted")
    assert router.matches(_scope("GET", "/api/shop/v2/items/7"))[0] is Match.FULL
    assert router.matches(_scope("POST", "/api/shop/v2/items/7"))[0] is Match.PARTIAL
    assert router.matches(_scope("GET", "/api/shop/v2/item"))[0] is Match.NONE

    client = TestClient(app)
    assert client.get("/api/shop/v2/items/7").json() == {"item": "7"}
    assert client.post("/api/shop/orders").json() == {"ordered": True}
    assert client.get("/api/shop/orders").status_code == 405
    assert client.get("/api/shop/nothing").status_code == 404


def test_a_router_with_a_route_of_another_kind_is_left_alone() -> None:
    router = APIRouter()

    @router.get("/ok")
    def ok() -> dict[str, bool]:
        return {"ok": True}

    @router.websocket("/ws")
    async def ws(websocket: Any) -> None:
        await websocket.accept()

    app = FastAPI()
    app.include_router(router)
    assert index_included_routers(app) == 0
    assert not _indexed(app)
    assert any(type(r) is _IncludedRouter for r in app.router.routes)
    assert isinstance(router.routes[0], APIRoute)


def test_a_route_added_to_a_router_later_is_served() -> None:
    """As FastAPI serves it: the index is built again when the routes change."""
    router = APIRouter()

    @router.get("/early")
    def early() -> dict[str, bool]:
        return {"early": True}

    app = FastAPI()
    app.include_router(router)
    assert index_included_routers(app) == 1
    client = TestClient(app)
    assert client.get("/early").status_code == 200
    assert client.get("/late/1").status_code == 404

    @router.get("/late/{n}")
    def late(n: str) -> dict[str, str]:
        return {"late": n}

    assert client.get("/late/1").json() == {"late": "1"}
    assert client.get("/early").status_code == 200

    @router.websocket("/ws")
    async def ws(websocket: Any) -> None:
        await websocket.accept()

    (indexed,) = _indexed(app)
    assert indexed.matches(_scope("GET", "/nothing"))[0] is Match.NONE
    assert indexed.index is not None and not indexed.index.whole  # a websocket: no index
    assert client.get("/late/2").json() == {"late": "2"}
