"""The payout routes over HTTP, on both backends: the fee route (admin, audited, used by the
captures that follow), payout accounts stored masked, idempotent payouts, and the
reconciliation CSV with its access rules."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

from sqlalchemy import MetaData, Table, inspect, select, text

from conftest import Api
from payout_support import PAID_ACCOUNT, ROUTING
from paywarden.store.unit_of_work import Store


def _capture(api: Api, user_key: str, merchant: dict[str, Any], amount: int) -> dict[str, Any]:
    hold = api.post(
        "/v1/holds", user_key, {"destination": merchant["id"], "amount": amount, "currency": "usd"}
    )
    assert hold.status_code == 201, hold.text
    captured = api.post(f"/v1/holds/{hold.json()['id']}/capture", merchant["secret_key"], {})
    assert captured.status_code == 200, captured.text
    body: dict[str, Any] = captured.json()
    return body


def _register(api: Api, merchant: dict[str, Any], account_number: str = PAID_ACCOUNT) -> Any:
    return api.post(
        f"/v1/merchants/{merchant['id']}/payout_account",
        merchant["secret_key"],
        {
            "routing_number": ROUTING,
            "account_number": account_number,
            "account_holder_name": "Corner Coffee LLC",
        },
    )


def test_the_fee_route_changes_the_fee_for_later_captures_only(api: Api) -> None:
    merchant, merchant_key = api.merchant(fee_bps=100)
    _user, user_key = api.user(funded=100_000)
    before = _capture(api, user_key, merchant, 10_000)

    refused = api.post(f"/v1/merchants/{merchant['id']}/fee", merchant_key, {"fee_bps": 0})
    assert refused.status_code == 403
    bad = api.post(f"/v1/merchants/{merchant['id']}/fee", api.admin_key, {"fee_bps": 10_001})
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "invalid_fee")
    changed = api.post(f"/v1/merchants/{merchant['id']}/fee", api.admin_key, {"fee_bps": 500})
    assert changed.status_code == 200, changed.text
    assert changed.json()["fee_bps"] == 500
    after = _capture(api, user_key, merchant, 10_000)

    assert (before["fee_amount"], after["fee_amount"]) == (100, 500)
    with api.store.engine.connect() as connection:
        audited = connection.execute(
            text("SELECT data FROM audit_records WHERE event_type = 'merchant.fee_changed'")
        ).all()
        events = connection.execute(
            text("SELECT COUNT(*) FROM events WHERE type = 'merchant.updated'")
        ).scalar_one()
    data = audited[0][0] if isinstance(audited[0][0], dict) else json.loads(audited[0][0])
    assert len(audited) == 1 and (data["previous_fee_bps"], data["fee_bps"]) == (100, 500)
    assert events == 1


def _every_text_value(store: Store) -> Iterator[str]:
    """Every stored value of every table in the database, as text."""
    with store.engine.connect() as connection:
        for name in inspect(connection).get_table_names():
            table = Table(name, MetaData(), autoload_with=connection)
            for row in connection.execute(select(table)):
                yield from (str(value) for value in row)


def test_a_payout_account_is_stored_masked_and_never_in_clear(api: Api) -> None:
    merchant, merchant_key = api.merchant()
    number = "000987654321"

    response = _register(api, merchant, number)

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["object"], body["last4"], body["account_number"]) == (
        "payout_account",
        "4321",
        "****4321",
    )
    assert body["id"].startswith("ba_") and number not in response.text
    again = api.get(f"/v1/merchants/{merchant['id']}/payout_account", merchant_key)
    assert again.status_code == 200 and again.json()["reference"] == body["reference"]
    assert not any(number in value for value in _every_text_value(api.store))


def test_payout_account_details_are_checked_and_owned(api: Api) -> None:
    merchant, _key = api.merchant()
    other, other_key = api.merchant()
    path = f"/v1/merchants/{merchant['id']}/payout_account"
    details = {"routing_number": ROUTING, "account_number": PAID_ACCOUNT}
    details["account_holder_name"] = "Corner Coffee LLC"

    bad_routing = api.post(path, api.admin_key, {**details, "routing_number": "110000001"})
    assert bad_routing.json()["error"]["code"] == "invalid_routing_number"
    short = api.post(path, api.admin_key, {**details, "account_number": "123"})
    assert short.json()["error"]["code"] == "invalid_account_number"
    named = {**details, "account_holder_name": "x"}
    blank = api.post(path, api.admin_key, {**details, "account_holder_name": " "})
    assert blank.json()["error"]["param"] == "$.account_holder_name"
    assert api.post(path, other_key, named).status_code == 404
    assert api.get(path, other_key).status_code == 404
    assert api.get(path, api.admin_key).json()["error"]["code"] == "payout_account_missing"
    assert api.post(path, api.admin_key, named).status_code == 200
    _ = other


def test_a_payout_request_is_idempotent_and_limited(api: Api) -> None:
    merchant, merchant_key = api.merchant()
    _user, user_key = api.user(funded=50_000)
    _capture(api, user_key, merchant, 3_000)
    assert api.post("/v1/payouts", merchant_key, {}).json()["error"]["code"] == (
        "payout_account_missing"
    )
    _register(api, merchant)

    first = api.post("/v1/payouts", merchant_key, {"amount": 1_000}, idempotency_key="po-1")
    replay = api.post("/v1/payouts", merchant_key, {"amount": 1_000}, idempotency_key="po-1")
    too_much = api.post("/v1/payouts", merchant_key, {"amount": 2_001})

    assert first.status_code == 201, first.text
    assert replay.json()["id"] == first.json()["id"]
    assert replay.headers.get("Idempotent-Replayed") == "true"
    assert (too_much.status_code, too_much.json()["error"]["code"]) == (422, "insufficient_funds")
    balance = api.get(f"/v1/merchants/{merchant['id']}/payout_balance", merchant_key).json()
    assert balance["data"][0]["posted"] == 2_000
    assert balance["data"][0]["pending_payouts"] == 1_000
    listed = api.get("/v1/payouts", merchant_key).json()
    assert [p["id"] for p in listed["data"]] == [first.json()["id"]]
    assert first.json()["destination"]["account_number"] == "****6789"


def test_agents_and_users_cannot_ask_for_payouts(api: Api) -> None:
    merchant, _key = api.merchant()
    _user, user_key = api.user(funded=1_000)
    refused = api.post("/v1/payouts", user_key, {"merchant": merchant["id"]})
    assert refused.status_code == 403


def _csv(response: Any) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.text)))


def test_the_reconciliation_csv_is_scoped_to_its_reader(api: Api) -> None:
    shop, shop_key = api.merchant(fee_bps=300)
    other, other_key = api.merchant()
    _user, user_key = api.user(funded=100_000)
    _capture(api, user_key, shop, 10_000)
    _capture(api, user_key, other, 5_000)

    own = _csv(api.get("/v1/reports/reconciliation", shop_key))
    everyone = _csv(api.get("/v1/reports/reconciliation", api.admin_key))
    one = _csv(api.get(f"/v1/reports/reconciliation?merchant={other['id']}", api.admin_key))
    nosy = api.get(f"/v1/reports/reconciliation?merchant={shop['id']}", other_key)
    bad = api.get("/v1/reports/reconciliation?from=yesterday", shop_key)

    assert [row["merchant"] for row in own] == [shop["id"], "total"]
    assert own[0]["gross_captured"] == "10000" and own[0]["fees"] == "300"
    assert own[0]["closing_balance"] == own[0]["net"] == "9700"
    assert {row["merchant"] for row in everyone} == {shop["id"], other["id"], "total"}
    assert [row["merchant"] for row in one] == [other["id"], "total"]
    assert nosy.status_code == 404 and bad.json()["error"]["code"] == "invalid_timestamp"
    _ = other_key
