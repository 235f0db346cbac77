"""Idempotency keys on every POST under /v1, rule by rule, as ACP section 6 sets them.

Each test is one rule, shown with a user placing holds (or sending transfers) to a
merchant: the effect is easy to count (holds in the list, money reserved in the wallet),
so "exactly one effect" is checked on the money, not on the response alone.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from conftest import Api
from paywarden.kernel.clock import FakeClock
from paywarden.kernel.principals import PrincipalType
from paywarden.services import holds as hold_service
from paywarden.services import idempotency, identity, platform


def payer_and_shop(api: Api, funded: int = 10_000) -> tuple[dict[str, Any], str, dict[str, Any]]:
    user, user_key = api.user(funded=funded)
    merchant, _ = api.merchant()
    return user, user_key, merchant


def hold_body(merchant: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"destination": merchant["id"], "amount": 1_000, "currency": "usd", **extra}


def wallet(api: Api, user: dict[str, Any], key: str) -> dict[str, int]:
    response = api.get(f"/v1/accounts/{user['wallets'][0]['id']}", key)
    assert response.status_code == 200, response.text
    balance: dict[str, int] = response.json()["balance"]
    return balance


def holds(api: Api, key: str) -> list[dict[str, Any]]:
    response = api.get("/v1/holds", key, params={"limit": 100})
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def post_raw(api: Api, path: str, key: str, content: str, idempotency_key: str) -> Any:
    return api.client.post(
        path,
        content=content.encode(),
        headers={**api.headers(key, idempotency_key), "Content-Type": "application/json"},
    )


def error_code(response: Any) -> str:
    return str(response.json()["error"]["code"])


def settings(api: Api) -> Any:
    app: Any = api.client.app
    return app.state.runtime.settings


# --- the key itself ---------------------------------------------------------------------


def test_a_post_without_an_idempotency_key_is_refused_and_does_nothing(sqlite_api: Api) -> None:
    user, key, merchant = payer_and_shop(sqlite_api)
    for missing in (None, ""):
        response = sqlite_api.post("/v1/holds", key, hold_body(merchant), idempotency_key=missing)
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["code"] == "idempotency_key_required"
        assert error["param"] == "$.headers.Idempotency-Key"
        assert error["message"] == "Idempotency-Key header is required on all POST requests"
    assert holds(sqlite_api, key) == []
    assert wallet(sqlite_api, user, key)["pending"] == 0


def test_a_key_of_256_characters_is_refused_and_255_is_accepted(sqlite_api: Api) -> None:
    _user, key, merchant = payer_and_shop(sqlite_api)
    too_long = sqlite_api.post("/v1/holds", key, hold_body(merchant), idempotency_key="k" * 256)
    assert too_long.status_code == 400, too_long.text
    assert error_code(too_long) == "invalid_idempotency_key"
    assert holds(sqlite_api, key) == []
    longest = sqlite_api.post("/v1/holds", key, hold_body(merchant), idempotency_key="k" * 255)
    assert longest.status_code == 201, longest.text


def test_authentication_is_checked_before_the_idempotency_key(sqlite_api: Api) -> None:
    """Order of checks: authenticate → idempotency → effect. A stranger without a key
    learns only that it is a stranger."""
    response = sqlite_api.client.post(
        "/v1/holds", json={}, headers={"Authorization": "Bearer nope"}
    )
    assert response.status_code == 401, response.text


def test_a_body_that_is_not_json_never_claims_the_key(sqlite_api: Api) -> None:
    """Unparseable bodies are refused before the key is claimed (there is no body to
    fingerprint), so the corrected request may reuse the key."""
    _user, key, merchant = payer_and_shop(sqlite_api)
    broken = post_raw(sqlite_api, "/v1/holds", key, '{"amount": ', "order-7")
    assert broken.status_code == 400
    assert error_code(broken) == "invalid_json"
    fixed = sqlite_api.post("/v1/holds", key, hold_body(merchant), idempotency_key="order-7")
    assert fixed.status_code == 201, fixed.text
    assert "Idempotent-Replayed" not in fixed.headers


# --- replay -----------------------------------------------------------------------------


def test_the_same_key_and_body_replays_the_first_response_and_moves_money_once(
    api: Api,
) -> None:
    user, key, merchant = payer_and_shop(api)
    body = {"destination": merchant["id"], "amount": 2_500, "currency": "usd"}
    first = api.post("/v1/transfers", key, body, idempotency_key="pay-coffee-1")
    assert first.status_code == 201, first.text
    assert "Idempotent-Replayed" not in first.headers
    for _ in range(2):
        again = api.post("/v1/transfers", key, body, idempotency_key="pay-coffee-1")
        assert again.status_code == 201
        assert again.text == first.text
        assert again.headers["Idempotent-Replayed"] == "true"
    assert wallet(api, user, key)["posted"] == 7_500
    transfers = api.get("/v1/transfers", key).json()["data"]
    assert [t["kind"] for t in transfers].count("transfer") == 1


def test_key_order_and_trailing_zeros_do_not_make_a_body_different(api: Api) -> None:
    """``{"a": 1, "b": 60}`` and ``{"b": 60.0, "a": 1}`` are the same request (ACP 6.2).
    The replay answers without validating again: 60.0 on its own is refused."""
    _user, key, merchant = payer_and_shop(api)
    first = api.post("/v1/holds", key, hold_body(merchant, expires_in_s=60), idempotency_key="h-1")
    assert first.status_code == 201, first.text
    reordered = (
        f'{{"expires_in_s": 60.0, "currency": "usd", "amount": 1000,'
        f' "destination": "{merchant["id"]}"}}'
    )
    again = post_raw(api, "/v1/holds", key, reordered, "h-1")
    assert again.status_code == 201, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert len(holds(api, key)) == 1
    fresh = post_raw(api, "/v1/holds", key, reordered, "h-2")
    assert fresh.status_code == 400
    assert error_code(fresh) == "invalid_expiry"


def test_an_amount_of_10_0_is_refused_and_the_same_key_with_10_replays_that_refusal(
    api: Api,
) -> None:
    """``10.0`` is not an amount (400 invalid_amount), yet under ACP's body equivalence
    ``10.0`` equals ``10``: the corrected body is "the same request", so it gets the stored
    400 back. A client that fixes a refused body must use a new key."""
    _user, key, merchant = payer_and_shop(api)
    template = '{{"destination": "{}", "amount": {}, "currency": "usd"}}'
    first = post_raw(api, "/v1/holds", key, template.format(merchant["id"], "10.0"), "h-10")
    assert first.status_code == 400
    assert error_code(first) == "invalid_amount"
    corrected = post_raw(api, "/v1/holds", key, template.format(merchant["id"], "10"), "h-10")
    assert corrected.status_code == 400
    assert corrected.headers["Idempotent-Replayed"] == "true"
    assert corrected.json() == first.json()
    assert holds(api, key) == []
    new_key = post_raw(api, "/v1/holds", key, template.format(merchant["id"], "10"), "h-11")
    assert new_key.status_code == 201, new_key.text


def test_a_4xx_is_stored_and_replayed_even_after_its_cause_is_gone(api: Api) -> None:
    _user, key, merchant = payer_and_shop(api, funded=500)
    short = api.post("/v1/holds", key, hold_body(merchant), idempotency_key="h-1")
    assert short.status_code == 422
    assert error_code(short) == "insufficient_funds"
    top_up = api.post(
        "/v1/top_ups",
        key,
        {
            "amount": 5_000,
            "currency": "usd",
            "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2099},
        },
    )
    assert top_up.status_code == 201, top_up.text
    retry = api.post("/v1/holds", key, hold_body(merchant), idempotency_key="h-1")
    assert retry.status_code == 422
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json() == short.json()
    assert holds(api, key) == []
    assert api.post("/v1/holds", key, hold_body(merchant)).status_code == 201


def test_a_5xx_is_not_stored_and_the_retry_runs_the_effect_once(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    user, key, merchant = payer_and_shop(api)
    real = hold_service.create_hold
    calls = {"n": 0}

    def fails_once(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("the database went away mid-request")
        return real(*args, **kwargs)

    monkeypatch.setattr(hold_service, "create_hold", fails_once)
    crashed = api.post("/v1/holds", key, hold_body(merchant), idempotency_key="h-1")
    assert crashed.status_code == 500
    assert crashed.headers["Request-Id"].startswith("req_")
    assert crashed.json()["error"]["type"] == "api_error"
    assert "database went away" not in crashed.text
    assert holds(api, key) == []
    assert wallet(api, user, key)["pending"] == 0

    retry = api.post("/v1/holds", key, hold_body(merchant), idempotency_key="h-1")
    assert retry.status_code == 201, retry.text
    assert "Idempotent-Replayed" not in retry.headers
    assert calls["n"] == 2
    assert len(holds(api, key)) == 1
    assert wallet(api, user, key)["pending"] == 1_000


# --- conflicts --------------------------------------------------------------------------


def test_a_different_body_with_the_same_key_is_a_permanent_conflict(api: Api) -> None:
    _user, key, merchant = payer_and_shop(api)
    first = api.post("/v1/holds", key, hold_body(merchant), idempotency_key="h-1")
    assert first.status_code == 201
    other = api.post("/v1/holds", key, hold_body(merchant, amount=1_001), idempotency_key="h-1")
    assert other.status_code == 422
    error = other.json()["error"]
    assert error["code"] == "idempotency_conflict"
    assert error["type"] == "invalid_request_error"
    assert "Idempotent-Replayed" not in other.headers
    # The stored response is untouched: the original body still replays it.
    again = api.post("/v1/holds", key, hold_body(merchant), idempotency_key="h-1")
    assert again.status_code == 201
    assert again.json() == first.json()
    assert [h["amount"] for h in holds(api, key)] == [1_000]


def test_null_differs_from_absent(api: Api) -> None:
    """``null`` means "clear this field", absent means "leave it" (ACP 6.2)."""
    _user, key, merchant = payer_and_shop(api)
    absent = api.post("/v1/holds", key, hold_body(merchant), idempotency_key="h-1")
    assert absent.status_code == 201
    null = api.post("/v1/holds", key, hold_body(merchant, description=None), idempotency_key="h-1")
    assert null.status_code == 422
    assert error_code(null) == "idempotency_conflict"
    assert len(holds(api, key)) == 1


def test_arrays_are_compared_in_order(api: Api) -> None:
    """``[1, 2]`` and ``[2, 1]`` differ. (No route takes an array yet, so the first body is
    a stored 400 for the unknown field; what matters is how the second is compared.)"""
    _user, key, merchant = payer_and_shop(api)
    first = api.post("/v1/holds", key, hold_body(merchant, tags=[1, 2]), idempotency_key="h-1")
    assert first.status_code == 400
    assert error_code(first) == "unknown_parameter"
    swapped = api.post("/v1/holds", key, hold_body(merchant, tags=[2, 1]), idempotency_key="h-1")
    assert swapped.status_code == 422
    assert error_code(swapped) == "idempotency_conflict"
    same = api.post("/v1/holds", key, hold_body(merchant, tags=[1, 2]), idempotency_key="h-1")
    assert same.headers["Idempotent-Replayed"] == "true"


# --- scope ------------------------------------------------------------------------------


def test_the_same_key_on_another_path_runs_independently(api: Api) -> None:
    user, key, merchant = payer_and_shop(api)
    hold = api.post("/v1/holds", key, hold_body(merchant), idempotency_key="k-1")
    transfer = api.post(
        "/v1/transfers",
        key,
        {"destination": merchant["id"], "amount": 300, "currency": "usd"},
        idempotency_key="k-1",
    )
    assert hold.status_code == 201, hold.text
    assert transfer.status_code == 201, transfer.text
    assert "Idempotent-Replayed" not in transfer.headers
    assert wallet(api, user, key) == {"posted": 9_700, "pending": 1_000, "available": 8_700}


def test_the_same_key_and_body_from_another_user_runs_independently(api: Api) -> None:
    first_user, first_key, merchant = payer_and_shop(api)
    second_user, second_key = api.user(funded=10_000)
    one = api.post("/v1/holds", first_key, hold_body(merchant), idempotency_key="k-1")
    two = api.post("/v1/holds", second_key, hold_body(merchant), idempotency_key="k-1")
    assert one.status_code == two.status_code == 201
    assert "Idempotent-Replayed" not in two.headers
    assert one.json()["id"] != two.json()["id"]
    assert wallet(api, first_user, first_key)["pending"] == 1_000
    assert wallet(api, second_user, second_key)["pending"] == 1_000


def test_two_secret_keys_of_one_user_share_the_scope(api: Api) -> None:
    """Keys are scoped to the principal, not to the API key that spoke: a retry through
    the user's second key still replays."""
    user, key, merchant = payer_and_shop(api)
    second = api.store.run(
        lambda uow: identity.issue_key(uow, PrincipalType.USER, user["id"], False)
    )
    assert second.secret is not None
    first = api.post("/v1/holds", key, hold_body(merchant), idempotency_key="k-1")
    again = api.post("/v1/holds", second.secret, hold_body(merchant), idempotency_key="k-1")
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert len(holds(api, key)) == 1


# --- in flight, lapsed locks and retention ----------------------------------------------


def claim_as_if_in_flight(api: Api, user: dict[str, Any], key: str, body: dict[str, Any]) -> Any:
    """Claim ``key`` the way a request still running would have, straight in the store."""
    secret = api.store.run(platform.instance_secret)
    scope = idempotency.Scope(f"user:{user['id']}:test", "POST", "/v1/holds", key)
    claimed = api.store.run(
        lambda uow: idempotency.claim(
            uow,
            scope,
            idempotency.fingerprint(json.loads(json.dumps(body)), secret),
            retention=timedelta(hours=settings(api).idempotency_retention_h),
            lock_s=settings(api).idempotency_lock_s,
        )
    )
    assert isinstance(claimed, idempotency.Claimed)
    return scope, claimed


def test_a_retry_while_the_first_request_runs_is_409_in_flight_with_retry_after(
    api: Api,
) -> None:
    user, key, merchant = payer_and_shop(api)
    claim_as_if_in_flight(api, user, "h-1", hold_body(merchant))
    retry = api.post("/v1/holds", key, hold_body(merchant), idempotency_key="h-1")
    assert retry.status_code == 409, retry.text
    assert error_code(retry) == "idempotency_in_flight"
    assert int(retry.headers["Retry-After"]) >= 1
    assert holds(api, key) == []
    # A different body under the running key is still a conflict, not a wait.
    other = api.post("/v1/holds", key, hold_body(merchant, amount=5), idempotency_key="h-1")
    assert other.status_code == 422
    assert error_code(other) == "idempotency_conflict"


def test_a_claim_whose_lock_lapsed_is_taken_over_by_the_retry(api: Api, clock: FakeClock) -> None:
    """The first request died holding the key. Until its lock lapses a retry waits (409);
    from then on the retry takes the key over and runs, and the first request, should it
    wake up, can no longer complete (its effect would be rolled back)."""
    user, key, merchant = payer_and_shop(api)
    scope, first = claim_as_if_in_flight(api, user, "h-1", hold_body(merchant))
    lock_s = settings(api).idempotency_lock_s

    clock.advance(timedelta(seconds=lock_s - 1))
    waiting = api.post("/v1/holds", key, hold_body(merchant), idempotency_key="h-1")
    assert waiting.status_code == 409

    clock.advance(timedelta(seconds=1))
    retry = api.post("/v1/holds", key, hold_body(merchant), idempotency_key="h-1")
    assert retry.status_code == 201, retry.text
    assert "Idempotent-Replayed" not in retry.headers
    assert len(holds(api, key)) == 1
    assert not api.store.run(lambda uow: idempotency.complete(uow, scope, first, 201, "{}"))
    replay = api.post("/v1/holds", key, hold_body(merchant), idempotency_key="h-1")
    assert replay.json() == retry.json()


def test_a_key_is_kept_24_hours_then_a_reuse_is_a_new_request(api: Api, clock: FakeClock) -> None:
    _user, key, merchant = payer_and_shop(api)
    retention = timedelta(hours=settings(api).idempotency_retention_h)
    assert retention == timedelta(hours=24)
    first = api.post("/v1/holds", key, hold_body(merchant), idempotency_key="h-1")
    assert first.status_code == 201

    clock.advance(retention - timedelta(seconds=1))
    kept = api.post("/v1/holds", key, hold_body(merchant, amount=2_000), idempotency_key="h-1")
    assert kept.status_code == 422
    assert error_code(kept) == "idempotency_conflict"

    clock.advance(timedelta(seconds=2))
    reused = api.post("/v1/holds", key, hold_body(merchant, amount=2_000), idempotency_key="h-1")
    assert reused.status_code == 201, reused.text
    assert "Idempotent-Replayed" not in reused.headers
    assert sorted(h["amount"] for h in holds(api, key)) == [1_000, 2_000]


def test_a_replayed_creation_never_returns_or_stores_the_secret_key(sqlite_api: Api) -> None:
    body = {"email": "once@example.com", "name": "Once", "currency": "usd"}
    first = sqlite_api.post("/v1/users", sqlite_api.admin_key, body, idempotency_key="create-1")
    assert first.status_code == 201
    secret = first.json()["secret_key"]
    assert secret.startswith("pw_test_")
    replay = sqlite_api.post("/v1/users", sqlite_api.admin_key, body, idempotency_key="create-1")
    assert replay.status_code == 201
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json()["id"] == first.json()["id"]
    assert replay.json()["secret_key"] is None
    assert replay.json()["secret_key_redacted"] is True
    with sqlite_api.store.engine.connect() as connection:
        stored = connection.exec_driver_sql("SELECT response_body FROM idempotency_keys").all()
    assert stored and all(secret not in (row[0] or "") for row in stored)
