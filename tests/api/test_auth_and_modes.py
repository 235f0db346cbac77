"""Who may do what: authentication, the principals' reach, test and live modes, versions.

Objects a principal may not see answer 404 exactly like objects that do not exist, so ids
of other people's objects leak nothing; a principal that may see an object but not act on
it (the payer capturing its own hold) gets 403.
"""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import func, select

from conftest import Api
from paywarden.services import identity, platform
from paywarden.store import schema

CARD = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2099}


def top_up(api: Api, key: str, amount: int) -> dict[str, Any]:
    response = api.post("/v1/top_ups", key, {"amount": amount, "currency": "usd", "card": CARD})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def hold(api: Api, key: str, merchant: dict[str, Any], amount: int = 1_000) -> dict[str, Any]:
    response = api.post(
        "/v1/holds", key, {"destination": merchant["id"], "amount": amount, "currency": "usd"}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def get_hold(api: Api, hold_id: str) -> dict[str, Any]:
    response = api.get(f"/v1/holds/{hold_id}", api.admin_key)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def assert_401(response: Any, code: str) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.headers["Request-Id"].startswith("req_")
    error = response.json()["error"]
    assert error["type"] == "authentication_error"
    assert error["code"] == code


def count_rows(api: Api, table: str) -> int:
    t = schema.metadata.tables[table]
    return int(
        api.store.run(
            lambda uow: uow.execute(select(func.count()).select_from(t)).scalar_one(),
            read_only=True,
        )
    )


# --- authentication ---------------------------------------------------------------------


def test_a_request_without_authorization_is_401_with_www_authenticate(api: Api) -> None:
    assert_401(api.client.get("/v1/accounts"), "authentication_required")
    assert_401(
        api.client.post("/v1/transfers", json={}, headers={"Idempotency-Key": "k"}),
        "authentication_required",
    )


MALFORMED_OR_UNKNOWN = {
    "no secret": ("Bearer", "authentication_required"),
    "blank secret": ("Bearer    ", "authentication_required"),
    "basic scheme": ("Basic dXNlcjpwYXNz", "authentication_required"),
    "no scheme": ("pw_test_abc", "authentication_required"),
    "another vendor's key": ("Bearer sk_test_4eC39HqLyjWDarjtT1zdp7dc", "authentication_required"),
    "too long": ("Bearer pw_test_" + "x" * 300, "authentication_required"),
    "unknown test key": (f"Bearer pw_test_{secrets.token_urlsafe(32)}", "invalid_api_key"),
    "unknown live key": (f"Bearer pw_live_{secrets.token_urlsafe(32)}", "invalid_api_key"),
}


def test_a_malformed_or_unknown_key_is_401(sqlite_api: Api) -> None:
    for case, (authorization, code) in MALFORMED_OR_UNKNOWN.items():
        response = sqlite_api.client.get("/v1/accounts", headers={"Authorization": authorization})
        try:
            assert_401(response, code)
        except AssertionError as error:
            raise AssertionError(f"{case}: {response.status_code} {response.text}") from error


def test_a_revoked_key_is_401_from_the_moment_it_is_revoked(api: Api) -> None:
    user, key = api.user()
    assert api.get(f"/v1/users/{user['id']}", key).status_code == 200
    principal = api.store.run(lambda uow: identity.authenticate(uow, key))
    api.store.run(lambda uow: identity.revoke_key(uow, principal.key_id))
    assert_401(api.get(f"/v1/users/{user['id']}", key), "invalid_api_key")
    assert_401(api.post("/v1/top_ups", key, {}), "invalid_api_key")


def test_the_bearer_scheme_is_case_insensitive(sqlite_api: Api) -> None:
    user, key = sqlite_api.user()
    response = sqlite_api.client.get(
        f"/v1/users/{user['id']}", headers={"Authorization": f"bearer {key}"}
    )
    assert response.status_code == 200, response.text


# --- what each principal may do ---------------------------------------------------------


def test_only_an_admin_creates_users_and_merchants(api: Api) -> None:
    keys = {"user": api.user()[1], "merchant": api.merchant()[1]}
    users, merchants = count_rows(api, "users"), count_rows(api, "merchants")
    for who, key in keys.items():
        new_user = api.post(
            "/v1/users", key, {"email": "eve@example.com", "name": "Eve", "currency": "usd"}
        )
        new_merchant = api.post(
            "/v1/merchants", key, {"name": "Eve's", "category": "coffee", "currency": "usd"}
        )
        for response in (new_user, new_merchant):
            assert response.status_code == 403, (who, response.text)
            assert response.json()["error"]["type"] == "permission_error"
    assert (count_rows(api, "users"), count_rows(api, "merchants")) == (users, merchants)


def test_a_user_cannot_see_another_users_objects_which_answer_like_missing_ones(
    api: Api,
) -> None:
    alice, alice_key = api.user()
    _bob, bob_key = api.user(funded=100)
    merchant, _ = api.merchant()
    alice_top_up = top_up(api, alice_key, 10_000)
    alice_hold = hold(api, alice_key, merchant)
    alice_transfer = api.post(
        "/v1/transfers",
        alice_key,
        {"destination": merchant["id"], "amount": 700, "currency": "usd"},
    ).json()
    paths = {
        "user": f"/v1/users/{alice['id']}",
        "account": f"/v1/accounts/{alice['wallets'][0]['id']}",
        "top_up": f"/v1/top_ups/{alice_top_up['id']}",
        "hold": f"/v1/holds/{alice_hold['id']}",
        "transfer": f"/v1/transfers/{alice_transfer['id']}",
    }
    for kind, path in paths.items():
        assert api.get(path, alice_key).status_code == 200, kind  # the owner sees it
        seen = api.get(path, bob_key)
        assert seen.status_code == 404, (kind, seen.text)
        assert set(seen.json()) == {"error"}
        error = seen.json()["error"]
        assert error["code"] == "resource_missing"
        # Beyond the id asked about and the request's own id, nothing of Alice's shows.
        scrubbed = seen.text.replace(path.rsplit("/", 1)[1], "").replace(error["request_id"], "")
        for secret in (alice["email"], alice["name"], "9300", "balance", "4242", "usd"):
            assert secret not in scrubbed, (kind, secret)
        # ... exactly as an id that names nothing answers
        missing = api.get(path[:-4] + "0000", bob_key)
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == seen.json()["error"]["code"]
    mine = {
        name: {item["id"] for item in api.get(f"/v1/{name}", bob_key).json()["data"]}
        for name in ("accounts", "holds", "transfers")
    }
    assert alice["wallets"][0]["id"] not in mine["accounts"]
    assert alice_hold["id"] not in mine["holds"]
    assert alice_transfer["id"] not in mine["transfers"]


def test_a_merchant_cannot_see_a_user_or_another_merchant(sqlite_api: Api) -> None:
    user, _ = sqlite_api.user()
    shop, shop_key = sqlite_api.merchant()
    other, _ = sqlite_api.merchant()
    assert sqlite_api.get(f"/v1/merchants/{shop['id']}", shop_key).status_code == 200
    assert sqlite_api.get(f"/v1/merchants/{other['id']}", shop_key).status_code == 404
    assert sqlite_api.get(f"/v1/users/{user['id']}", shop_key).status_code == 404


def test_a_merchant_cannot_capture_void_or_refund_another_merchants_hold(api: Api) -> None:
    _user, user_key = api.user(funded=10_000)
    shop, shop_key = api.merchant()
    rival, rival_key = api.merchant()
    pending = hold(api, user_key, shop)
    captured = hold(api, user_key, shop)
    assert api.post(f"/v1/holds/{captured['id']}/capture", shop_key, {}).status_code == 200
    attempts = [
        api.post(f"/v1/holds/{pending['id']}/capture", rival_key, {}),
        api.post(f"/v1/holds/{pending['id']}/void", rival_key, {}),
        api.post("/v1/refunds", rival_key, {"hold": captured["id"], "amount": 100}),
    ]
    for response in attempts:
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "resource_missing"
    assert get_hold(api, pending["id"])["status"] == "pending"
    assert get_hold(api, captured["id"])["amount_refunded"] == 0
    rival_account = api.get(f"/v1/accounts/{rival['account']['id']}", rival_key).json()
    assert rival_account["balance"]["posted"] == 0


def test_the_payer_cannot_capture_its_own_hold_only_the_payee_can(api: Api) -> None:
    _user, user_key = api.user(funded=10_000)
    shop, shop_key = api.merchant()
    pending = hold(api, user_key, shop)
    by_payer = api.post(f"/v1/holds/{pending['id']}/capture", user_key, {})
    assert by_payer.status_code == 403, by_payer.text
    assert by_payer.json()["error"]["type"] == "permission_error"
    refund_by_payer = api.post("/v1/refunds", user_key, {"hold": pending["id"]})
    assert refund_by_payer.status_code == 403, refund_by_payer.text
    assert get_hold(api, pending["id"])["status"] == "pending"
    by_payee = api.post(f"/v1/holds/{pending['id']}/capture", shop_key, {})
    assert by_payee.status_code == 200, by_payee.text


def test_a_user_who_is_no_party_to_a_hold_cannot_capture_or_void_it(sqlite_api: Api) -> None:
    _, payer_key = sqlite_api.user(funded=10_000)
    _, stranger_key = sqlite_api.user()
    shop, _ = sqlite_api.merchant()
    pending = hold(sqlite_api, payer_key, shop)
    for action in ("capture", "void"):
        response = sqlite_api.post(f"/v1/holds/{pending['id']}/{action}", stranger_key, {})
        assert response.status_code == 404, response.text
    assert get_hold(sqlite_api, pending["id"])["status"] == "pending"


# --- test and live never mix ------------------------------------------------------------


def objects_of_a_mode(api: Api, admin_key: str) -> dict[str, dict[str, Any]]:
    """A user, a merchant and one of each money object, made with ``admin_key``'s mode."""
    user = api.post(
        "/v1/users",
        admin_key,
        {"email": f"{secrets.token_hex(4)}@example.com", "name": "Ann", "currency": "usd"},
    )
    merchant = api.post(
        "/v1/merchants", admin_key, {"name": "Shop", "category": "coffee", "currency": "usd"}
    )
    assert user.status_code == merchant.status_code == 201, (user.text, merchant.text)
    user_key, merchant_key = user.json()["secret_key"], merchant.json()["secret_key"]
    topped = top_up(api, user_key, 10_000)
    held = hold(api, user_key, merchant.json())
    captured = api.post(f"/v1/holds/{held['id']}/capture", merchant_key, {})
    refund = api.post("/v1/refunds", merchant_key, {"hold": held["id"], "amount": 100})
    transfer = api.post(
        "/v1/transfers",
        user_key,
        {"destination": merchant.json()["id"], "amount": 50, "currency": "usd"},
    )
    assert captured.status_code == 200 and refund.status_code == transfer.status_code == 201
    return {
        "user": user.json(),
        "merchant": merchant.json(),
        "account": user.json()["wallets"][0],
        "merchant_account": merchant.json()["account"],
        "top_up": topped,
        "hold": captured.json(),
        "refund": refund.json(),
        "transfer": transfer.json(),
    }


READABLE = {
    "user": "/v1/users/{}",
    "merchant": "/v1/merchants/{}",
    "account": "/v1/accounts/{}",
    "merchant_account": "/v1/accounts/{}",
    "top_up": "/v1/top_ups/{}",
    "hold": "/v1/holds/{}",
    "transfer": "/v1/transfers/{}",
}


def test_test_and_live_objects_never_mix(api: Api) -> None:
    live = api.store.run(lambda uow: platform.bootstrap_admin(uow, livemode=True))
    assert live is not None and live.secret is not None
    assert live.secret.startswith("pw_live_") and api.admin_key.startswith("pw_test_")
    assert api.store.run(lambda uow: platform.bootstrap_admin(uow, livemode=True)) is None

    made = {
        False: objects_of_a_mode(api, api.admin_key),
        True: objects_of_a_mode(api, live.secret),
    }
    admin_of = {False: api.admin_key, True: live.secret}
    for mode, objects in made.items():
        for name, item in objects.items():
            assert item["livemode"] is mode, (mode, name)
        assert objects["user"]["secret_key"].startswith("pw_live_" if mode else "pw_test_")
        for name, template in READABLE.items():
            path = template.format(objects[name]["id"])
            own = api.get(path, admin_of[mode])
            assert own.status_code == 200, (mode, name, own.text)
            assert own.json()["livemode"] is mode
            other = api.get(path, admin_of[not mode])
            assert other.status_code == 404, (mode, name, other.text)
        for name in ("accounts", "holds", "transfers"):
            listed = api.get(f"/v1/{name}", admin_of[not mode], params={"limit": 100}).json()
            assert all(item["livemode"] is (not mode) for item in listed["data"]), name

    # Money cannot cross either: a live user cannot pay a test merchant.
    live_user_key = made[True]["user"]["secret_key"]
    crossing = [
        api.post(
            "/v1/holds",
            live_user_key,
            {"destination": made[False]["merchant"]["id"], "amount": 100, "currency": "usd"},
        ),
        api.post(
            "/v1/transfers",
            live_user_key,
            {"destination": made[False]["account"]["id"], "amount": 100, "currency": "usd"},
        ),
        api.post(
            f"/v1/holds/{made[False]['hold']['id']}/capture",
            made[True]["merchant"]["secret_key"],
            {},
        ),
    ]
    for response in crossing:
        assert response.status_code == 404, response.text


def test_every_object_carries_id_object_livemode_and_created(sqlite_api: Api) -> None:
    """The contract: every object carries ``id``, ``object``, ``livemode``, ``created``."""
    for name, item in objects_of_a_mode(sqlite_api, sqlite_api.admin_key).items():
        for field in ("id", "object", "livemode", "created"):
            assert field in item, (name, field)


# --- API versions -----------------------------------------------------------------------


def test_responses_name_the_api_version_and_an_unknown_one_is_refused(sqlite_api: Api) -> None:
    user, key = sqlite_api.user(funded=1_000)
    read = sqlite_api.get(f"/v1/users/{user['id']}", key)
    assert read.headers["Paywarden-Version"] == identity.API_VERSION
    created = top_up(sqlite_api, key, 100)
    assert created["object"] == "top_up"
    write = sqlite_api.post("/v1/top_ups", key, {"amount": 100, "currency": "usd", "card": CARD})
    assert write.headers["Paywarden-Version"] == identity.API_VERSION
    pinned = sqlite_api.client.get(
        f"/v1/users/{user['id']}",
        headers={**sqlite_api.headers(key, None), "Paywarden-Version": identity.API_VERSION},
    )
    assert pinned.status_code == 200

    before = sqlite_api.get(f"/v1/accounts/{user['wallets'][0]['id']}", key).json()["balance"]
    for method in ("get", "post"):
        headers = {**sqlite_api.headers(key), "Paywarden-Version": "2020-01-01"}
        if method == "get":
            response = sqlite_api.client.get(f"/v1/users/{user['id']}", headers=headers)
        else:
            body = {"amount": 100, "currency": "usd", "card": CARD}
            response = sqlite_api.client.post("/v1/top_ups", json=body, headers=headers)
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["code"] == "invalid_api_version"
        assert error["param"] == "$.headers.Paywarden-Version"
        assert identity.API_VERSION in error["message"]
    after = sqlite_api.get(f"/v1/accounts/{user['wallets'][0]['id']}", key).json()["balance"]
    assert after == before
