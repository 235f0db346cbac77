"""Skip at once an included router that has no route for a request's path.

FastAPI (0.163) tries an app's included routers one after another, and each tries its
routes one after another, setting and restoring scope keys around every attempt: about
2.5 µs a route on these machines. A request to a route near the end of the app (``/healthz``,
the dashboard, the ACP endpoints) paid some 250 µs before its endpoint ran, more than the
rest of the stack (its middleware, on a hot route, is about 55 µs).

A route's path regex is anchored and begins with its template's text up to its first
parameter, verbatim: a path that does not start with that text cannot match it, whatever
the method; a template without parameters matches its own text alone.
:func:`index_included_routers` gives each included router those texts for all its routes
(nested routers' included, with their prefixes), and the router answers "no match" for a
path that is none of the exact ones and starts with none of the others, as its own loop
would have, without running it; routes added to a router later rebuild its index (as they
rebuild FastAPI's own list of its candidates). A router with a route of another kind (a
mount, a websocket, anything whose path is not such a template) is not filtered. Low-priority
routes, matched separately, and everything after a match (handling, redirects of a trailing
slash, which ask the router again with the other path) are unchanged.

``tests/api/test_route_index.py`` holds the indexed app to the same route, or the same "no
route", as FastAPI's own loop for every route of the app and for paths near them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from fastapi import FastAPI
from fastapi.routing import APIRoute, _IncludedRouter
from starlette._utils import get_route_path
from starlette.routing import PARAM_REGEX, Match, Route
from starlette.types import Scope

__all__ = ["IndexedRouter", "index_included_routers"]


class _Index(NamedTuple):
    version: int  # the routes' version (FastAPI's) it was built for
    exact: frozenset[str]  # the paths of the routes without parameters
    prefixes: tuple[str, ...]  # the literal prefixes of those with
    whole: bool  # every route is one of those: the index may turn a path away


@dataclass
class IndexedRouter(_IncludedRouter):
    """An included router that first checks the path against its routes' paths and literal
    prefixes (:class:`_Index`, built again if routes are added to the router later, as
    FastAPI's own candidates are)."""

    index: _Index | None = None

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        version = self.original_router._get_routes_version()
        index = self.index
        if index is None or index.version != version:
            index = self.index = _index_of(self, version)
        if index.whole:
            path = get_route_path(scope)
            if path not in index.exact and not path.startswith(index.prefixes):
                return Match.NONE, {}
        return super().matches(scope)


def index_included_routers(app: FastAPI) -> int:
    """Put an :class:`IndexedRouter` in place of each of the app's included routers whose
    routes all have a literal prefix; returns how many were indexed."""
    routes = app.router.routes
    indexed = 0
    for at, route in enumerate(routes):
        if type(route) is not _IncludedRouter:
            continue
        index = _index_of(route, route.original_router._get_routes_version())
        if not index.whole:
            continue
        routes[at] = IndexedRouter(
            original_router=route.original_router,
            include_context=route.include_context,
            index=index,
        )
        indexed += 1
    return indexed


def _index_of(included: Any, version: int) -> _Index:
    paths = _paths(included, "")
    if paths is None:
        return _Index(version, frozenset(), (), whole=False)
    return _Index(version, frozenset(paths[0]), tuple(sorted(paths[1])), whole=True)


def _paths(included: Any, outer: str) -> tuple[set[str], set[str]] | None:
    """The paths of the routes under ``included`` without parameters, and the literal
    prefixes of those with (``outer``: the prefix of the routers around it); None if a
    route is of another kind."""
    prefix = outer + included.include_context.prefix
    exact: set[str] = set()
    prefixes: set[str] = set()
    for route in included.original_router.routes:
        if isinstance(route, _IncludedRouter):
            nested = _paths(route, prefix)
            if nested is None:
                return None
            exact |= nested[0]
            prefixes |= nested[1]
        elif type(route) in (APIRoute, Route) and route.path.startswith("/"):
            first = PARAM_REGEX.search(route.path)
            if first is None:
                exact.add(prefix + route.path)
            else:
                prefixes.add(prefix + route.path[: first.start()])
        else:
            return None
    return exact, prefixes
