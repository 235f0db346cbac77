"""What operators and client authors rely on: health, readiness, metrics, the published
OpenAPI document, and cursor pagination."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from conftest import Api, sqlite_url
from live_server import prepare, serving
from paywarden.api.app import create_app
from paywarden.config import Settings
from paywarden.store import migrate
from paywarden.store.engine import make_engine
from paywarden.store.unit_of_work import Store


def api_routes(routes: Iterable[Any]) -> Iterator[APIRoute]:
    """Every APIRoute the app serves, through included routers (which FastAPI may wrap)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "original_router"):
            yield from api_routes(route.original_router.routes)


def served_v1_routes(app: Any) -> list[tuple[str, str]]:
    return sorted(
        (method.lower(), route.path)
        for route in api_routes(app.routes)
        if route.path.startswith("/v1/") and route.include_in_schema
        for method in route.methods or ()
    )


def test_healthz_answers_200_without_credentials(sqlite_api: Api) -> None:
    response = sqlite_api.client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response.headers["Request-Id"].startswith("req_")


def test_readyz_answers_200_on_a_migrated_database(api: Api) -> None:
    response = api.client.get("/readyz")
    assert response.status_code == 200, response.text
    head = migrate.head_revision()
    assert response.json() == {"status": "ok", "schema": head, "expected": head}


def test_readyz_answers_503_while_migrations_are_pending(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    app = create_app(Settings(database_url="sqlite://"), Store(engine))
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "migrations pending"
    assert response.json()["schema"] is None


def test_metrics_count_requests_by_route_template(sqlite_api: Api) -> None:
    user, key = sqlite_api.user()
    assert sqlite_api.get(f"/v1/users/{user['id']}", key).status_code == 200
    response = sqlite_api.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    lines = response.text.splitlines()
    assert "# TYPE paywarden_http_requests_total counter" in lines
    assert (
        'paywarden_http_requests_total{method="GET",route="/v1/users/{user_id}",status="200"} 1.0'
        in lines
    )
    assert user["id"] not in response.text  # templates, not raw paths: no id explosion


def test_the_hot_payment_route_answers_as_a_routed_one(sqlite_api: Api) -> None:
    """POST /v1/payments is served past FastAPI's router (HotRoutes): the same middleware,
    the same error shape and headers, and metrics under its template."""
    refused = sqlite_api.client.post("/v1/payments", json={})
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"
    assert refused.headers["request-id"].startswith("req_")
    error = refused.json()["error"]
    assert error["request_id"] == refused.headers["request-id"]
    assert error["type"] == "authentication_error"
    _user, key = sqlite_api.user()
    wrong = sqlite_api.client.post(
        "/v1/payments", json={}, headers={**sqlite_api.headers(key), "Idempotency-Key": "k1"}
    )
    assert wrong.status_code == 400, wrong.text  # the body is checked before the effect
    assert wrong.json()["error"]["param"] == "$.mandate"
    assert wrong.headers["paywarden-version"]
    lines = sqlite_api.client.get("/metrics").text.splitlines()
    for status in ("401", "400"):
        assert (
            f'paywarden_http_requests_total{{method="POST",route="/v1/payments",status="{status}"}}'
            " 1.0"
        ) in lines


def test_metrics_count_a_streamed_oversized_body_as_413_not_500(sqlite_api: Api) -> None:
    chunk = b"x" * 65_536

    def body() -> Any:  # no Content-Length: the limit must trip while streaming
        for _ in range(20):  # 1.25 MiB, over the 1 MiB default
            yield chunk

    response = sqlite_api.client.post(
        "/v1/transfers", content=body(), headers=sqlite_api.headers(sqlite_api.admin_key)
    )
    assert response.status_code == 413
    lines = sqlite_api.client.get("/metrics").text.splitlines()
    assert any('status="413"' in line for line in lines)
    assert not any('status="500"' in line for line in lines)


def test_openapi_lists_every_v1_route_with_its_idempotency_key_and_body(
    sqlite_api: Api,
) -> None:
    response = sqlite_api.client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    published = sorted(
        (method, path)
        for path, operations in document["paths"].items()
        if path.startswith("/v1/")
        for method in operations
    )
    served = served_v1_routes(sqlite_api.client.app)
    assert published == served
    assert ("post", "/v1/holds/{hold_id}/capture") in served and len(served) >= 18
    for method, path in served:
        operation = document["paths"][path][method]
        headers = {p["name"]: p for p in operation.get("parameters", []) if p["in"] == "header"}
        if method == "post":
            key = headers.get("Idempotency-Key")
            assert key is not None, path
            assert key["required"] is True
            assert key["schema"]["maxLength"] == 255
            schema = operation["requestBody"]["content"]["application/json"]["schema"]
            assert schema["type"] == "object", path
            assert schema["additionalProperties"] is False, path
        else:
            assert "Idempotency-Key" not in headers, path
            assert "requestBody" not in operation, path
    amount = document["paths"]["/v1/holds"]["post"]["requestBody"]["content"]["application/json"][
        "schema"
    ]["properties"]["amount"]
    assert amount["type"] == "integer"
    assert amount["minimum"] == 1


def test_docs_serve_an_html_page(sqlite_api: Api) -> None:
    response = sqlite_api.client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "/openapi.json" in response.text


def test_25_transfers_page_by_10_as_10_10_5_newest_first_without_repeats(api: Api) -> None:
    _user, user_key = api.user(funded=100_000)
    merchant, merchant_key = api.merchant()
    made = []
    for amount in range(1, 26):
        response = api.post(
            "/v1/transfers",
            user_key,
            {"destination": merchant["id"], "amount": amount, "currency": "usd"},
        )
        assert response.status_code == 201, response.text
        made.append(response.json()["id"])

    pages: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 10}
    while True:
        response = api.get("/v1/transfers", merchant_key, params=params)
        assert response.status_code == 200, response.text
        pages.append(response.json())
        if not pages[-1]["has_more"]:
            break
        params["starting_after"] = pages[-1]["next_cursor"]
        assert len(pages) < 5, "pagination does not end"

    assert [len(page["data"]) for page in pages] == [10, 10, 5]
    assert [page["has_more"] for page in pages] == [True, True, False]
    assert [page["next_cursor"] for page in pages] == [
        pages[0]["data"][-1]["id"],
        pages[1]["data"][-1]["id"],
        None,
    ]
    seen = [item["id"] for page in pages for item in page["data"]]
    assert seen == list(reversed(made))  # newest first, each once, none missing
    assert [item["amount"] for item in pages[0]["data"][:3]] == [25, 24, 23]


def test_a_limit_outside_1_to_100_is_refused(api: Api) -> None:
    _user, key = api.user()
    for limit in (0, 101, -1):
        response = api.get("/v1/transfers", key, params={"limit": limit})
        assert response.status_code == 400, (limit, response.text)
        error = response.json()["error"]
        assert error["param"] == "$.limit"
        assert error["type"] == "invalid_request_error"
    for limit in (1, 100):
        assert api.get("/v1/transfers", key, params={"limit": limit}).status_code == 200


def test_serve_with_workers_runs_them_on_the_parents_settings(tmp_path: Path) -> None:
    """``serve --workers 2``: two processes answer on one port, each with the settings the
    parent read (the TOML file named by --config, the --database-url): a body over the
    file's limit gets 413 on every fresh connection, whichever worker takes it."""
    database_url = sqlite_url(tmp_path)
    prepare(database_url)
    config = tmp_path / "paywarden.toml"
    config.write_text("body_bytes_max = 2048\n", encoding="ascii")
    log_path = tmp_path / "server.log"
    with serving(database_url, log_path, "--workers", "2", "--config", str(config)) as base:
        for _ in range(8):
            with httpx.Client(base_url=base, timeout=30) as fresh:  # a new connection each
                assert fresh.get("/readyz").status_code == 200
                too_big = fresh.post("/v1/transfers", content=b"x" * 4096)
                assert too_big.status_code == 413, too_big.text
    assert "2 worker processes" in log_path.read_text(errors="replace")


def test_a_server_process_exempts_its_setup_from_full_collections() -> None:
    """``serve`` freezes the heap it has once set up (``freeze_heap``): the app, its modules
    and models are no longer walked by every full collection, whose pause every request
    waiting on the process would pay."""
    script = (
        "import gc\n"
        "from paywarden.api.app import create_app, freeze_heap\n"
        "from paywarden.config import Settings\n"
        "app = create_app(Settings(database_url='sqlite://'))\n"
        "before = gc.get_freeze_count()\n"
        "freeze_heap()\n"
        "print(before, gc.get_freeze_count(), len(gc.get_objects()))\n"
    )
    done = subprocess.run(  # its own process: what is frozen stays frozen
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    before, frozen, tracked = (int(word) for word in done.stdout.split())
    assert before == 0
    assert frozen > 50_000  # the setup: tens of thousands of objects
    assert tracked < frozen // 10  # what a full collection still walks


def test_a_server_process_imports_only_what_it_serves(tmp_path: Path) -> None:
    """Starting is importing: the MCP SDK's models (about a second) load only where /mcp is
    on, and ``serve --workers 2``'s supervisor, which serves nothing, never imports the app
    (each worker imports it for itself; the supervisor's import only delayed their start)."""
    database_url = sqlite_url(tmp_path)
    app_script = (
        "import sys\n"
        "from paywarden.api.app import create_app\n"
        "from paywarden.config import Settings\n"
        f"create_app(Settings(database_url={database_url!r}))\n"
        "print(sorted({name.split('.')[0] for name in sys.modules} & {'mcp', 'mcp_types'}))\n"
    )
    supervisor_script = (
        "import sys, uvicorn\n"
        "from paywarden.cli.main import main\n"
        "uvicorn.run = lambda app, **options: print(app, options['workers'])\n"
        f"sys.argv = ['paywarden', 'serve', '--workers', '2', '--database-url', {database_url!r},"
        " '--no-migrate']\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('paywarden.api.app' in sys.modules)\n"
    )
    answers = [
        subprocess.run(  # a process of its own: this one has imported everything already
            [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
        ).stdout.splitlines()
        for script in (app_script, supervisor_script)
    ]
    assert answers[0][-1] == "[]"
    assert answers[1][-2] == "paywarden.api.app:create_app_from_environment 2"
    assert answers[1][-1] == "False"
