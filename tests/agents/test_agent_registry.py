"""Agent platforms register agents and manage their keys; the keys are published as a JWK
Set per agent and as a Web Bot Auth directory. Every test runs on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from agent_support import create_platform, ed_key, error_code, es_key, register_agent
from sqlalchemy import select

from conftest import Api
from paywarden.kernel.clock import FakeClock, rfc3339
from paywarden.services import agents
from paywarden.store import schema
from paywarden.trust.keys import jwk_thumbprint, parse_public_jwk

DIRECTORY = "/.well-known/http-message-signatures-directory"
DIRECTORY_TYPE = "application/http-message-signatures-directory+json"


def kids(agent: dict[str, Any], status: str | None = None) -> list[str]:
    return [key["kid"] for key in agent["keys"] if status is None or key["status"] == status]


def published(response: Any) -> list[str]:
    """The kids a JWKS or directory lists, sorted (keys made at one instant list by kid)."""
    assert response.status_code == 200, response.text
    return sorted(key["kid"] for key in response.json()["keys"])


def audit_events(api: Api, subject_id: str) -> list[str]:
    records = schema.audit_records
    query = (
        select(records.c.event_type)
        .where(records.c.subject_id == subject_id)
        .order_by(records.c.occurred_at, records.c.id)
    )
    return list(api.store.run(lambda uow: uow.execute(query).scalars().all(), read_only=True))


def valid_now(api: Api, kid: str) -> bool:
    """Whether the service's key lookup would let ``kid`` sign at the store's now."""
    key = api.store.run(lambda uow: agents.lookup_key(uow, kid, uow.clock.now()), read_only=True)
    return key is not None and key.keyid == kid


# --- platforms ---------------------------------------------------------------------------------


def test_an_admin_creates_a_platform_with_a_secret_key_shown_once(api: Api) -> None:
    platform, key = create_platform(api, "HTTPS://Agents.Example:443/")
    assert platform["id"].startswith("plt_")
    assert (platform["object"], platform["livemode"]) == ("agent_platform", False)
    assert platform["origin"] == "https://agents.example"
    assert key.startswith("pw_test_")
    assert audit_events(api, platform["id"]) == ["agent_platform.created"]


@pytest.mark.parametrize(
    "origin",
    [
        "http://agents.example",
        "https://agents.example/path",
        "https://agents.example?q=1",
        "https://user@agents.example",
        "https://agents.example:99999",
        "https://agents example",
        "agents.example",
    ],
)
def test_a_platform_origin_is_an_https_origin_and_nothing_more(api: Api, origin: str) -> None:
    response = api.post("/v1/agent_platforms", api.admin_key, {"name": "P", "origin": origin})
    assert response.status_code == 400, response.text
    assert (error_code(response), response.json()["error"]["param"]) == (
        "invalid_origin",
        "$.origin",
    )


def test_one_origin_names_one_platform_per_mode(api: Api) -> None:
    create_platform(api, "https://agents.example")
    response = api.post(
        "/v1/agent_platforms", api.admin_key, {"name": "Again", "origin": "https://AGENTS.example"}
    )
    assert (response.status_code, error_code(response)) == (409, "origin_taken")


def test_only_an_admin_creates_platforms(api: Api) -> None:
    _user, user_key = api.user()
    _platform, platform_key = create_platform(api)
    for key in (user_key, platform_key):
        response = api.post(
            "/v1/agent_platforms", key, {"name": "P", "origin": "https://x.example"}
        )
        assert (response.status_code, error_code(response)) == (403, "permission_denied")


# --- agents and keys ---------------------------------------------------------------------------


def test_a_platform_registers_an_agent_with_ed25519_and_es256_keys(api: Api) -> None:
    platform, key = create_platform(api)
    agent = register_agent(api, key, ed_key(1), es_key(1))
    assert agent["id"].startswith("agt_")
    assert (agent["object"], agent["platform"], agent["status"], agent["user"]) == (
        "agent",
        platform["id"],
        "active",
        None,
    )
    assert set(kids(agent, "active")) == {ed_key(1).keyid, es_key(1).keyid}
    assert {k["alg"] for k in agent["keys"]} == {"ed25519", "ecdsa-p256-sha256"}
    fetched = api.get(f"/v1/agents/{agent['id']}", key)
    assert fetched.status_code == 200 and fetched.json() == agent
    assert audit_events(api, agent["id"]) == ["agent.registered"]


@pytest.mark.parametrize(
    ("jwk", "code", "param"),
    [
        ({**ed_key(2).public_jwk(), "d": "AAAA"}, "private_key_in_public_jwk", "$.keys[0].d"),
        ({"kty": "RSA", "n": "AQAB", "e": "AQAB"}, "unsupported_key_type", "$.keys[0].kty"),
        ({**ed_key(2).public_jwk(), "x": "not-base64!"}, "invalid_jwk", "$.keys[0].x"),
        ({**ed_key(2).public_jwk(), "alg": "ES256"}, "invalid_jwk", "$.keys[0].alg"),
    ],
)
def test_registered_keys_are_parsed_strictly(
    api: Api, jwk: dict[str, Any], code: str, param: str
) -> None:
    _platform, key = create_platform(api)
    response = api.post("/v1/agents", key, {"name": "A", "keys": [jwk]})
    assert response.status_code == 400, response.text
    assert (error_code(response), response.json()["error"]["param"]) == (code, param)


def test_a_key_belongs_to_one_agent_and_is_listed_once(api: Api) -> None:
    _platform, key = create_platform(api)
    register_agent(api, key, ed_key(3))
    again = api.post("/v1/agents", key, {"name": "B", "keys": [ed_key(3).public_jwk()]})
    assert (again.status_code, error_code(again)) == (409, "key_already_registered")
    twice = api.post("/v1/agents", key, {"name": "C", "keys": [ed_key(4).public_jwk()] * 2})
    assert (twice.status_code, error_code(twice)) == (400, "duplicate_key")
    none = api.post("/v1/agents", key, {"name": "D", "keys": []})
    assert none.status_code == 400


def test_only_a_platform_key_registers_agents(api: Api) -> None:
    _user, user_key = api.user()
    body = {"name": "A", "keys": [ed_key(5).public_jwk()]}
    for key in (user_key, api.admin_key):
        response = api.post("/v1/agents", key, body)
        assert (response.status_code, error_code(response)) == (403, "permission_denied")


def test_rotation_keeps_the_old_key_for_the_overlap_then_drops_it(
    api: Api, clock: FakeClock
) -> None:
    _platform, key = create_platform(api)
    agent = register_agent(api, key, ed_key(6))
    path = f"/v1/agents/{agent['id']}"
    rotated = api.post(
        f"{path}/keys", key, {"key": es_key(6).public_jwk(), "rotate": True, "overlap_s": 3600}
    )
    assert rotated.status_code == 200, rotated.text
    keys = {k["kid"]: k for k in rotated.json()["keys"]}
    assert keys[ed_key(6).keyid]["not_after"] == rfc3339(clock.now() + timedelta(hours=1))
    assert keys[es_key(6).keyid]["not_after"] is None
    jwks = f"{path}/jwks.json"
    both = sorted([ed_key(6).keyid, es_key(6).keyid])
    assert published(api.client.get(jwks)) == both
    clock.advance(timedelta(hours=1))
    assert published(api.client.get(jwks)) == both
    assert valid_now(api, ed_key(6).keyid) and valid_now(api, es_key(6).keyid)
    clock.advance(timedelta(seconds=1))
    assert published(api.client.get(jwks)) == [es_key(6).keyid]
    assert (valid_now(api, ed_key(6).keyid), valid_now(api, es_key(6).keyid)) == (False, True)
    assert audit_events(api, agent["id"]) == ["agent.registered", "agent_key.rotated"]


def test_rotation_defaults_to_a_24_hour_overlap_and_adding_without_rotate_ends_nothing(
    api: Api, clock: FakeClock
) -> None:
    _platform, key = create_platform(api)
    agent = register_agent(api, key, ed_key(7))
    path = f"/v1/agents/{agent['id']}/keys"
    added = api.post(path, key, {"key": ed_key(8).public_jwk()}).json()
    assert [k["not_after"] for k in added["keys"]] == [None, None]
    rotated = api.post(path, key, {"key": ed_key(9).public_jwk(), "rotate": True}).json()
    day_later = rfc3339(clock.now() + timedelta(hours=24))
    ends = {k["kid"]: k["not_after"] for k in rotated["keys"]}
    assert ends == {ed_key(7).keyid: day_later, ed_key(8).keyid: day_later, ed_key(9).keyid: None}
    too_long = api.post(path, key, {"key": es_key(9).public_jwk(), "overlap_s": 31 * 86_400})
    assert too_long.status_code == 400


def test_a_revoked_key_leaves_the_jwks_at_once(api: Api) -> None:
    _platform, key = create_platform(api)
    agent = register_agent(api, key, ed_key(10), es_key(10))
    path = f"/v1/agents/{agent['id']}"
    revoked = api.post(f"{path}/keys/{ed_key(10).keyid}/revoke", key)
    assert revoked.status_code == 200, revoked.text
    states = {k["kid"]: (k["status"], k["revoked"] is not None) for k in revoked.json()["keys"]}
    assert states == {ed_key(10).keyid: ("revoked", True), es_key(10).keyid: ("active", False)}
    assert published(api.client.get(f"{path}/jwks.json")) == [es_key(10).keyid]
    unknown = api.post(f"{path}/keys/{ed_key(11).keyid}/revoke", key)
    assert unknown.status_code == 404
    assert audit_events(api, agent["id"]) == ["agent.registered", "agent_key.revoked"]


def test_a_revoked_agent_publishes_no_keys_and_gets_no_new_ones(api: Api) -> None:
    _platform, key = create_platform(api)
    agent = register_agent(api, key, ed_key(12))
    path = f"/v1/agents/{agent['id']}"
    revoked = api.post(f"{path}/revoke", key)
    assert (revoked.status_code, revoked.json()["status"]) == (200, "revoked")
    assert published(api.client.get(f"{path}/jwks.json")) == []
    assert not valid_now(api, ed_key(12).keyid)
    added = api.post(f"{path}/keys", key, {"key": es_key(12).public_jwk()})
    assert (added.status_code, error_code(added)) == (409, "agent_revoked")
    assert audit_events(api, agent["id"]) == ["agent.registered", "agent.revoked"]


def test_a_platform_cannot_see_or_manage_another_platforms_agents(api: Api) -> None:
    _mine, my_key = create_platform(api)
    _theirs, their_key = create_platform(api)
    agent = register_agent(api, their_key, ed_key(13))
    path = f"/v1/agents/{agent['id']}"
    attempts = [
        api.get(path, my_key),
        api.post(f"{path}/keys", my_key, {"key": es_key(13).public_jwk()}),
        api.post(f"{path}/keys/{ed_key(13).keyid}/revoke", my_key),
        api.post(f"{path}/revoke", my_key),
    ]
    assert [(r.status_code, error_code(r)) for r in attempts] == [(404, "resource_missing")] * 4
    assert api.get(path, their_key).json()["status"] == "active"
    assert api.get(path, api.admin_key).status_code == 200
    _user, user_key = api.user()
    assert api.get(path, user_key).status_code == 403


# --- published keys ----------------------------------------------------------------------------


def test_the_jwks_lists_public_members_kid_alg_and_use_only(api: Api) -> None:
    _platform, key = create_platform(api)
    agent = register_agent(api, key, ed_key(14), es_key(14))
    response = api.client.get(f"/v1/agents/{agent['id']}/jwks.json")
    assert response.headers["content-type"] == "application/jwk-set+json"
    listed = sorted(response.json()["keys"], key=lambda jwk: jwk["kty"], reverse=True)
    assert [set(jwk) for jwk in listed] == [
        {"kty", "crv", "x", "kid", "alg", "use"},
        {"kty", "crv", "x", "y", "kid", "alg", "use"},
    ]
    for jwk in listed:
        assert parse_public_jwk(jwk).thumbprint == jwk_thumbprint(jwk) == jwk["kid"]
    assert [jwk["alg"] for jwk in listed] == ["EdDSA", "ES256"]
    assert api.client.get("/v1/agents/agt_unknown/jwks.json").status_code == 404


def test_the_directory_serves_the_platform_of_the_host_else_every_valid_key(api: Api) -> None:
    _a, a_key = create_platform(api, "https://agents-a.example")
    _b, b_key = create_platform(api, "https://agents-b.example")
    register_agent(api, a_key, ed_key(15))
    b_agent = register_agent(api, b_key, es_key(15), ed_key(16))
    api.post(f"/v1/agents/{b_agent['id']}/keys/{ed_key(16).keyid}/revoke", b_key)

    at_a = api.client.get(f"https://agents-a.example{DIRECTORY}")
    assert at_a.headers["content-type"] == DIRECTORY_TYPE
    assert "max-age" in at_a.headers["cache-control"]
    assert published(at_a) == [ed_key(15).keyid]
    assert published(api.client.get(f"https://AGENTS-B.example:443{DIRECTORY}")) == [
        es_key(15).keyid
    ]
    everything = api.client.get(DIRECTORY)  # Host: testserver, no platform's origin
    assert published(everything) == sorted([ed_key(15).keyid, es_key(15).keyid])
    for jwk in everything.json()["keys"]:
        assert parse_public_jwk(jwk).keyid == jwk["kid"]
