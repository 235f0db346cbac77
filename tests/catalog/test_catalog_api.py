"""The catalog over HTTP: who may read and change profiles, stores, keys and products;
signed agents search and read but never write."""

from __future__ import annotations

import json
from typing import Any

from catalog_support import LATTE, signed_search
from conftest import Api
from payment_support import register_agent
from paywarden.kernel.clock import FakeClock

HOURS = {"mon": [["07:00", "12:00"], ["13:00", "19:00"]], "sat": [["08:00", "24:00"]]}


def make_store(api: Api, merchant: dict[str, Any], key: str) -> dict[str, Any]:
    made = api.post(
        f"/v1/merchants/{merchant['id']}/stores",
        key,
        {"name": "Pier 1", "address": "1 Pier St", "timezone": "Europe/Paris", "hours": HOURS},
    )
    assert made.status_code == 201, made.text
    body: dict[str, Any] = made.json()
    return body


def test_a_merchant_sets_up_its_profile_and_another_merchant_sees_nothing(api: Api) -> None:
    merchant, key = api.merchant()
    _other, other_key = api.merchant()
    store = make_store(api, merchant, key)
    assert store["id"].startswith("sto_") and store["hours"]["sun"] == []
    profile_path = f"/v1/merchants/{merchant['id']}/profile"
    updated = api.post(
        profile_path,
        key,
        {
            "tax_bps": 825,
            "fulfillment": [
                {"type": "pickup", "amount": 0, "stores": [store["id"]]},
                {"type": "local_delivery", "amount": 399},
            ],
        },
    )
    assert updated.status_code == 200, updated.text
    body = updated.json()
    assert body["tax_bps"] == 825
    assert [m["type"] for m in body["fulfillment"]] == ["pickup", "local_delivery"]
    assert api.get(profile_path, key).json() == body
    assert api.get(profile_path, api.admin_key).json() == body
    for path in (profile_path, f"/v1/merchants/{merchant['id']}/stores"):
        assert api.get(path, other_key).status_code == 404
    assert api.post(profile_path, other_key, {"tax_bps": 0}).status_code == 404
    _user, user_key = api.user()
    assert api.get(profile_path, user_key).status_code == 404


def test_profile_input_is_checked(api: Api) -> None:
    merchant, key = api.merchant()
    path = f"/v1/merchants/{merchant['id']}/profile"
    cases = [
        ({"tax_bps": 10_001}, "$.tax_bps"),
        ({"fulfillment": [{"type": "teleport", "amount": 0}]}, "$.fulfillment[0].type"),
        ({"fulfillment": [{"type": "pickup", "amount": 0, "stores": ["sto_x"]}]}, None),
        ({"fulfillment": [{"type": "shipping", "amount": 4.5}]}, "$.fulfillment[0].amount"),
    ]
    for body, param in cases:
        response = api.post(path, key, body)
        assert response.status_code == 400, body
        if param:
            assert response.json()["error"]["param"] == param
    bad_zone = api.post(
        f"/v1/merchants/{merchant['id']}/stores",
        key,
        {"name": "X", "address": "Y", "timezone": "Mars/Olympus", "hours": {}},
    )
    assert bad_zone.json()["error"]["code"] == "unknown_timezone"
    bad_hours = api.post(
        f"/v1/merchants/{merchant['id']}/stores",
        key,
        {"name": "X", "address": "Y", "timezone": "UTC", "hours": {"mon": [["19:00", "07:00"]]}},
    )
    assert bad_hours.json()["error"]["param"] == "$.hours.mon[0]"


def test_products_crud_for_the_merchant_only(api: Api) -> None:
    merchant, key = api.merchant()
    _other, other_key = api.merchant()
    created = api.post("/v1/products", key, LATTE)
    assert created.status_code == 201, created.text
    product = created.json()
    assert product["id"].startswith("prd_") and product["merchant"] == merchant["id"]
    assert api.post("/v1/products", key, LATTE).status_code == 200  # same sku: replaced
    path = f"/v1/products/{product['id']}"
    changed = api.post(path, key, {"amount": 480, "stock": 3})
    assert changed.status_code == 200, changed.text
    assert (changed.json()["amount"], changed.json()["stock"]) == (480, 3)
    assert changed.json()["option_groups"] == product["option_groups"]
    assert api.post(path, other_key, {"amount": 1}).status_code == 404
    assert api.client.delete(path, headers=api.headers(other_key, None)).status_code == 404
    assert api.get(path, other_key).json()["amount"] == 480  # anyone may read
    deleted = api.client.delete(path, headers=api.headers(key, None))
    assert deleted.status_code == 200 and deleted.json()["deleted"] is True
    assert api.get(path, key).status_code == 404


def test_an_admin_names_the_merchant(api: Api) -> None:
    merchant, _key = api.merchant()
    missing = api.post("/v1/products", api.admin_key, LATTE)
    assert missing.status_code == 400
    made = api.post("/v1/products", api.admin_key, {**LATTE, "merchant": merchant["id"]})
    assert made.status_code == 201 and made.json()["merchant"] == merchant["id"]


def test_agents_search_and_read_but_cannot_write(api: Api, clock: FakeClock) -> None:
    merchant, key = api.merchant()
    product = api.post("/v1/products", key, LATTE).json()
    agent = register_agent(api, clock)
    query = f"q=latte&merchant={merchant['id']}&in_stock=true"
    found = signed_search(agent, "/v1/products", query)
    assert found.status_code == 200, found.text
    assert [p["id"] for p in found.json()["data"]] == [product["id"]]
    assert agent.get(f"/v1/products/{product['id']}").status_code == 200
    for path, body in (
        ("/v1/products", {**LATTE, "sku": "mocha"}),
        (f"/v1/products/{product['id']}", {"amount": 1}),
        (f"/v1/merchants/{merchant['id']}/profile", {"tax_bps": 0}),
        (f"/v1/merchants/{merchant['id']}/cart_keys/rotate", {}),
        ("/v1/catalog/imports", {"format": "json", "content": "[]"}),
    ):
        response = agent.post(path, body)
        assert response.status_code == 401, path
        assert response.json()["error"]["code"] == "agent_not_allowed"
    assert agent.get(f"/v1/merchants/{merchant['id']}/profile").status_code == 401


def test_search_parameters_are_checked(api: Api) -> None:
    _merchant, key = api.merchant()
    for query, param in (
        ("max_amount=-1", "$.max_amount"),
        ("limit=0", "$.limit"),
        ("in_stock=maybe", "$.in_stock"),
    ):
        response = api.get(f"/v1/products?{query}", key)
        assert response.status_code == 400, query
        assert response.json()["error"]["param"] == param


def test_cart_keys_are_published_and_rotated_over_http(api: Api) -> None:
    merchant, key = api.merchant()
    path = f"/v1/merchants/{merchant['id']}/cart_keys"
    assert api.client.get(path).json() == {"keys": []}  # public, and none until first use
    rotated = api.post(f"{path}/rotate", key, {})
    assert rotated.status_code == 201, rotated.text
    jwks = api.client.get(path)
    assert jwks.headers["content-type"].startswith("application/jwk-set+json")
    assert [k["kid"] for k in jwks.json()["keys"]] == [rotated.json()["kid"]]
    assert all("d" not in k for k in jwks.json()["keys"])
    _other, other_key = api.merchant()
    assert api.post(f"{path}/rotate", other_key, {}).status_code == 404
    assert api.client.get("/v1/merchants/mer_nope/cart_keys").status_code == 404


def test_import_over_http_reports_rows(api: Api) -> None:
    _merchant, key = api.merchant()
    content = json.dumps([{"sku": "a", "title": "A", "amount": 1}, {"sku": "b", "title": "B"}])
    response = api.post("/v1/catalog/imports", key, {"format": "json", "content": content})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["id"].startswith("imp_") and body["object"] == "catalog_import"
    assert (body["created_count"], body["failed_count"]) == (1, 1)
    assert body["errors"] == [{"row": 2, "field": "amount", "reason": body["errors"][0]["reason"]}]
    bad = api.post("/v1/catalog/imports", key, {"format": "xml", "content": ""})
    assert bad.status_code == 400
