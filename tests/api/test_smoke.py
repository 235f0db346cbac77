"""The shortest walk through the API: a user pays a merchant through a hold."""

from __future__ import annotations

from conftest import Api


def test_top_up_hold_capture_refund(api: Api) -> None:
    user, user_key = api.user(funded=10_000)
    merchant, merchant_key = api.merchant(fee_bps=300)
    hold = api.post(
        "/v1/holds", user_key, {"destination": merchant["id"], "amount": 4_000, "currency": "usd"}
    )
    assert hold.status_code == 201, hold.text
    captured = api.post(f"/v1/holds/{hold.json()['id']}/capture", merchant_key, {"amount": 3_000})
    assert captured.status_code == 200, captured.text
    assert captured.json()["status"] == "posted"
    assert captured.json()["fee_amount"] == 90
    refund = api.post("/v1/refunds", merchant_key, {"hold": hold.json()["id"], "amount": 1_000})
    assert refund.status_code == 201, refund.text
    wallet = api.get(f"/v1/accounts/{user['wallets'][0]['id']}", user_key).json()
    assert wallet["balance"] == {"posted": 8_000, "pending": 0, "available": 8_000}
