"""The authorization sweep: every route the application answers, taken from its own route
table (included routers, pages and mounted apps), compared with the OpenAPI document and the
allow-lists below, then tried with credentials that must not reach it.

- Every id-bearing route, filled with a victim's objects (by the id prefix of each path
  parameter), answers another user, another merchant, another agent platform and another
  agent (signed) with 401 (this credential may not use the route), 403 or 404 (pages:
  403/404, or a redirect to /signin for those who cannot sign in), and no response names a
  victim object that the request did not name itself.
- The victim's *own* agent, signing, reaches no route outside :data:`AGENT_ALLOWED`: none
  that grants or widens mandates, changes limits, manages keys or administers.

A route added later is swept automatically. If its path parameter's prefix cannot be told,
or it is not in the OpenAPI document and not a page, the test fails saying what to add.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import Api, make_api
from figures_support import report
from paywarden.kernel.clock import FakeClock
from paywarden.store.unit_of_work import Store
from security_support import (
    ACP_VERSION,
    NON_ID_PARAMS,
    Principals,
    RouteInfo,
    all_routes,
    body_schema,
    make_principals,
    minimal_body,
    param_prefix,
    signed,
)

# Routes anyone may read, by design: public key documents and operational probes.
PUBLIC: dict[tuple[str, str], str] = {
    ("GET", "/v1/agents/{agent_id}/jwks.json"): "an agent's public keys, published on purpose",
    ("GET", "/v1/merchants/{merchant_id}/cart_keys"): "a merchant's public cart-signing keys",
    ("GET", "/acp/{merchant_id}/.well-known/acp.json"): "a merchant's public ACP discovery",
    ("GET", "/v1/products/{product_id}"): "the catalog is public: anyone may read a product",
}
# Routes outside the OpenAPI document that are not HTML pages.
NOT_IN_SCHEMA: dict[tuple[str, str], str] = {
    ("GET", "/openapi.json"): "the document itself",
    ("GET", "/docs"): "Swagger UI",
    ("GET", "/docs/oauth2-redirect"): "Swagger UI",
    ("GET", "/redoc"): "ReDoc",
    ("GET", "/metrics"): "Prometheus metrics (loopback/operator scrape)",
}
# What an agent's own signature may reach, and why that neither grants nor widens authority.
AGENT_ALLOWED: dict[tuple[str, str], str] = {
    ("POST", "/v1/mandates"): "asks a user for a mandate; only the user's consent grants it",
    ("POST", "/v1/payments"): "pays inside a mandate; the mandate's limits decide",
    ("GET", "/v1/mandates/{mandate_id}"): "reads its own mandate",
    ("GET", "/v1/payments/{payment_id}"): "reads its own payment",
    ("GET", "/v1/agents/{agent_id}"): "reads itself",
    ("GET", "/v1/approvals/{approval_id}"): "polls the approval of its own payment",
    ("POST", "/v1/mandates/{mandate_id}/token"): "a portable token of a mandate it holds",
    ("POST", "/v1/mandates/{mandate_id}/amend"): (
        "asks for new constraints: the mandate returns to pending_consent and pays nothing "
        "until its user consents again (test_an_agent_amend_needs_fresh_consent)"
    ),
    ("GET", "/v1/products"): "searches the catalog",
    ("POST", "/v1/checkout_sessions"): "checks out a cart; paying still needs a mandate",
    ("GET", "/v1/checkout_sessions"): "lists its own checkout sessions",
    ("GET", "/v1/orders"): "lists its own orders",
    ("POST", "/v1/payment_requests/pay"): "pays a merchant's QR request inside a mandate",
    ("POST", "/v1/orders/{order_id}/refund_requests"): (
        "asks the merchant to refund its own order to the wallet that paid; nothing moves "
        "until the merchant approves (tests/orders/test_refund_requests.py)"
    ),
    ("GET", "/v1/orders/{order_id}/refund_requests"): "reads its own order's refund requests",
    ("GET", "/v1/refund_requests/{refund_request_id}"): "reads its own refund request",
    ("POST", "/v1/mandates/{mandate_id}/delegated_tokens"): (
        "an ACP delegated payment token bounded by a mandate it holds (allowance within it)"
    ),
}
# Routes open without credentials (probes, documents, the sign-in form, static files).
OPEN: set[tuple[str, str]] = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/.well-known/jwks.json"),
    ("GET", "/.well-known/http-message-signatures-directory"),
    ("GET", "/signin"),
    ("POST", "/signin"),
    ("POST", "/signout"),
    ("GET", "/static/paywarden.css"),
    ("GET", "/.well-known/acp.json"),
    *NOT_IN_SCHEMA,
    *PUBLIC,
}
REFUSED = {401, 403, 404, 405}
CSRF = re.compile(r'name="csrf_token"\s+value="([^"]+)"')


@pytest.fixture
def world(sqlite_store: Store, clock: FakeClock) -> Iterator[tuple[Api, Principals]]:
    for api in make_api(sqlite_store):
        principals = make_principals(api, clock)  # agents sign with the store's clock
        _VICTIM["p"] = principals
        yield api, principals


def _fill(route: RouteInfo, principals: Principals) -> tuple[str, int]:
    """The route's path with the victim's ids; how many parameters named a real object."""
    path, real = route.path, 0
    for name in route.all_params:
        if name in NON_ID_PARAMS:
            path = re.sub(r"{" + re.escape(name) + r"(:[^}]*)?}", NON_ID_PARAMS[name], path)
            continue
        prefix = param_prefix(name)
        assert prefix is not None, (
            f"{route.method} {route.path}: cannot tell the id prefix of {{{name}}}; add it to "
            "PARAM_PREFIX in tests/security_support.py (and a victim factory if it is new)"
        )
        value, is_real = principals.victim.id_for(prefix)
        real += is_real
        path = re.sub(r"{" + re.escape(name) + r"(:[^}]*)?}", value, path)
    return path, real


def _bearer(api: Api, method: str, path: str, key: str, body: Any) -> Any:
    headers = api.headers(key, None if method == "GET" else "auto") | ACP_VERSION
    content = None if method == "GET" else json.dumps(body).encode()
    headers["Content-Type"] = "application/json"
    return api.client.request(
        method, path, content=content, headers=headers, follow_redirects=False
    )


def test_route_table_matches_the_openapi_document(world: tuple[Api, Principals]) -> None:
    api, _ = world
    app: Any = api.client.app
    routes = all_routes(app)
    documented = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    }
    in_schema = {(r.method, r.path) for r in routes if r.in_schema}
    assert documented == in_schema, documented ^ in_schema
    stray = [
        (r.method, r.path)
        for r in routes
        if not r.in_schema and r.kind != "page" and (r.method, r.path) not in NOT_IN_SCHEMA
    ]
    assert not stray, (
        f"{stray}: JSON routes missing from the OpenAPI document; document them, or add them "
        "to NOT_IN_SCHEMA in tests/security/test_authorization_sweep.py with a reason"
    )
    mounts = [r.path for r in routes if r.kind == "mount"]
    assert not mounts or all(param_prefix is not None for _ in mounts)


def test_other_principals_reach_no_victim_object(world: tuple[Api, Principals]) -> None:
    api, principals = world
    app: Any = api.client.app
    openapi = app.openapi()
    routes = [r for r in all_routes(app) if r.params and (r.method, r.path) not in PUBLIC]
    tried, real_objects, prefix_only = 0, 0, []
    for route in routes:
        path, real = _fill(route, principals)
        real_objects += real
        if real < len(route.params):
            prefix_only.append(f"{route.method} {route.path}")
        if route.kind == "page":
            tried += _sweep_page(api, principals, route, path)
            continue
        body = minimal_body(
            body_schema(openapi, route.method, route.path), principals.victim, openapi
        )
        keys = {
            "other user": principals.other_user_key,
            "other merchant": principals.other_merchant_key,
            "other platform": principals.other_platform_key,
        }
        for who, key in keys.items():
            tried += 1
            response = _bearer(api, route.method, path, key, body)
            _assert_refused(route, who, path, body, response)
        tried += 1
        response = signed(principals.other_agent, route.method, path, body)
        who = "other agent"
        _assert_refused(route, who, path, body, response)
    report(
        f"authorization sweep: {len(routes)} id-bearing routes x 4 foreign principals, "
        f"{tried} requests, all refused; {real_objects} parameters named a real victim object"
        f"; prefix only (no victim factory yet): {prefix_only or 'none'}; refused by body "
        f"validation before the object was read: {sorted(VALIDATED_FIRST) or 'none'}"
    )


def _assert_refused(route: RouteInfo, who: str, path: str, body: Any, response: Any) -> None:
    where = f"{route.method} {path} as {who}"
    assert response.status_code < 500, f"{where}: {response.status_code} {response.text[:300]}"
    if response.status_code == 400 and _body_error(response):
        VALIDATED_FIRST.add(f"{route.method} {route.path}")
        return
    assert response.status_code in REFUSED, (
        f"{where}: answered {response.status_code}, not 401/403/404: {response.text[:300]}"
    )
    asked = path + str(body)
    leaked = [value for value in _victim_ids(response.text) if value not in asked]
    assert not leaked, f"{where}: the response names victim objects {leaked}"


_VICTIM: dict[str, Principals] = {}
# Routes whose minimal body still failed validation, which runs before the object is read:
# refused, but the authorization check itself was not reached (reported, not hidden).
VALIDATED_FIRST: set[str] = set()


def _body_error(response: Any) -> bool:
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return False
    return str(error.get("param") or "").startswith("$.") and "headers" not in str(error["param"])


def _victim_ids(text: str) -> list[str]:
    principals = _VICTIM.get("p")
    return principals.victim.leaks(text) if principals else []


@pytest.fixture(autouse=True)
def _remember(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    _VICTIM.clear()


def _sweep_page(api: Api, principals: Principals, route: RouteInfo, path: str) -> int:
    """The page as the other user, signed in (403/404), and as no one (to /signin)."""
    client = TestClient(api.client.app, raise_server_exceptions=False)
    with client:
        form = client.get("/signin")
        token = CSRF.search(form.text)
        assert token, "the sign-in form carries no csrf_token"
        signed_in = client.post(
            "/signin",
            data={"secret_key": principals.other_user_key, "csrf_token": token.group(1)},
            follow_redirects=False,
        )
        assert signed_in.status_code in (302, 303), signed_in.text[:300]
        page = client.get(path, follow_redirects=False)
        data: dict[str, str] = {"decision": "decline"}  # a choice both decision forms take
        found = CSRF.search(page.text) or CSRF.search(client.get("/settings").text)
        if found:
            data["csrf_token"] = found.group(1)
        response = (
            page if route.method == "GET" else client.post(path, data=data, follow_redirects=False)
        )
        where = f"{route.method} {path} as the other user, signed in"
        if response.status_code == 400:  # the form's own fields refused first
            VALIDATED_FIRST.add(f"{route.method} {route.path}")
        else:
            assert response.status_code in (403, 404), f"{where}: {response.status_code}"
        leaked = principals.victim.leaks(response.text.replace(path, ""))
        assert not leaked, f"{where}: the page names {leaked}"
    anonymous = TestClient(api.client.app, raise_server_exceptions=False)
    with anonymous:
        response = anonymous.request(route.method, path, follow_redirects=False)
        assert response.status_code in (302, 303, 401, 403, 404), response.status_code
        assert not principals.victim.leaks(response.text.replace(path, ""))
    return 2


def test_an_agent_reaches_no_route_that_grants_or_administers(
    world: tuple[Api, Principals],
) -> None:
    api, principals = world
    app: Any = api.client.app
    openapi = app.openapi()
    routes = [r for r in all_routes(app) if r.kind != "mount"]
    reached: list[str] = []
    tried = 0
    for route in routes:
        key = (route.method, route.path)
        if key in OPEN or route.path.startswith("/static/"):
            continue
        tried += 1
        path, _ = _fill(route, principals)
        body = minimal_body(
            body_schema(openapi, route.method, route.path), principals.victim, openapi
        )
        response = signed(principals.victim_agent, route.method, path, body)
        assert response.status_code < 500, f"{route.method} {path}: {response.text[:300]}"
        refused = response.status_code in REFUSED or (
            route.kind == "page" and response.status_code in (302, 303)
        )
        if key in AGENT_ALLOWED:
            continue
        if not refused:
            reached.append(f"{route.method} {route.path} → {response.status_code}")
    assert not reached, (
        f"an agent's signature reaches {reached}; if agents may use a route by design, add it "
        "to AGENT_ALLOWED in tests/security/test_authorization_sweep.py with the reason it "
        "neither grants nor widens a mandate, changes limits, manages keys nor administers"
    )
    report(
        f"agent reach: {tried} routes tried with the victim's own agent "
        f"signature; reachable only the {len(AGENT_ALLOWED)} allowed ones"
    )
