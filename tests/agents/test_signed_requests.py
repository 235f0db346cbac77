"""Agents authenticate by signing requests (RFC 9421) with a registered key.

In process, on SQLite and PostgreSQL, with the store's fake clock: a signed request to a
route agents may call is accepted (signed here and by ``http-message-signatures``); the same
request again is a replay; every covered component tampered, bad times, unknown, revoked and
rotated-out keys, a revoked agent and an algorithm mismatch are refused with their own code;
and an agent's signature never opens a route meant for admins, users or platforms.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from agent_support import (
    AUTHORITY,
    TAG,
    create_platform,
    ed_key,
    error_code,
    es_key,
    register_agent,
    signed_headers,
)
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from http_message_signatures import HTTPMessageSigner, MappingKeyResolver, algorithms
from http_message_signatures.structures import CaseInsensitiveDict

from conftest import Api
from paywarden.kernel.clock import FakeClock
from paywarden.trust.keys import PrivateKey
from paywarden.trust.signatures import content_digest

BODY = b'{"note":"a GET with a body, so that the digest is covered"}'


@dataclass
class Agent:
    api: Api
    clock: FakeClock
    id: str
    platform_key: str
    key: PrivateKey

    @property
    def path(self) -> str:
        return f"/v1/agents/{self.id}"

    def headers(self, **options: Any) -> dict[str, str]:
        method = options.pop("method", "GET")
        path = options.pop("path", self.path)
        key = options.pop("key", self.key)
        return signed_headers(key, method, path, created=self.clock.now(), **options)

    def get(self, headers: dict[str, str], path: str | None = None, **options: Any) -> Any:
        return self.api.client.get(path or self.path, headers=headers, **options)


@pytest.fixture
def agent(api: Api, clock: FakeClock) -> Iterator[Agent]:
    _platform, platform_key = create_platform(api)
    body = register_agent(api, platform_key, ed_key(40), es_key(40))
    yield Agent(api, clock, body["id"], platform_key, ed_key(40))


def refused(response: Any) -> str | None:
    assert response.status_code == 401, response.text
    return error_code(response)


# --- accepted, once -----------------------------------------------------------------------------


@pytest.mark.parametrize("key", [ed_key(40), es_key(40)], ids=["ed25519", "es256"])
def test_a_signed_request_reads_the_agents_own_object(agent: Agent, key: PrivateKey) -> None:
    response = agent.get(agent.headers(key=key))
    assert response.status_code == 200, response.text
    assert (response.json()["id"], response.json()["object"]) == (agent.id, "agent")
    assert "Paywarden-Version" in response.headers


def test_the_same_signed_request_again_is_a_replay(agent: Agent) -> None:
    headers = agent.headers(nonce="once-only")
    assert agent.get(headers).status_code == 200
    assert refused(agent.get(headers)) == "nonce_replayed"
    assert agent.get(agent.headers()).status_code == 200  # a fresh nonce is fine


def test_a_nonce_is_remembered_per_key(agent: Agent) -> None:
    assert agent.get(agent.headers(nonce="shared")).status_code == 200
    assert agent.get(agent.headers(nonce="shared", key=es_key(40))).status_code == 200


@pytest.mark.parametrize("key", [ed_key(40), es_key(40)], ids=["ed25519", "es256"])
def test_requests_signed_by_http_message_signatures_are_accepted(
    agent: Agent, key: PrivateKey
) -> None:
    private: Any
    if key.alg == "ed25519":
        private = ed25519.Ed25519PrivateKey.from_private_bytes(bytes([40]) * 32)
        algorithm: Any = algorithms.ED25519
    else:
        private = ec.derive_private_key(0x5EED_0000 + 40, ec.SECP256R1())
        algorithm = algorithms.ECDSA_P256_SHA256
    resolver = MappingKeyResolver(
        public_keys={key.keyid: private.public_key()}, private_keys={key.keyid: private}
    )

    class Message:
        method = "GET"
        url = f"http://{AUTHORITY}{agent.path}"
        headers = CaseInsensitiveDict({"Content-Type": "application/json"})

    HTTPMessageSigner(signature_algorithm=algorithm, key_resolver=resolver).sign(
        Message,
        key_id=key.keyid,
        created=agent.clock.now(),
        expires=agent.clock.now() + timedelta(seconds=30),
        nonce="from-the-counterpart",
        tag=TAG,
        label="sig1",
        covered_component_ids=("@method", "@authority", "@path", "content-type"),
        body=BODY,
    )
    headers = dict(Message.headers.items())
    response = agent.api.client.request("GET", agent.path, content=BODY, headers=headers)
    assert response.status_code == 200, response.text
    again = agent.api.client.request("GET", agent.path, content=BODY, headers=headers)
    assert refused(again) == "nonce_replayed"


# --- tampered -----------------------------------------------------------------------------------


COVERED = ["@method", "@authority", "@path", "@query", "x-purpose", "content-digest"]


def full_request(agent: Agent, **signing: Any) -> tuple[dict[str, str], dict[str, Any]]:
    """Headers signed over every kind of component, and what to send with them."""
    signing = {"headers": [("X-Purpose", "read")], "query": "expand=keys", "body": BODY} | signing
    return agent.headers(**signing), {"params": {"expand": "keys"}, "content": BODY}


def test_a_request_covering_query_field_and_body_is_accepted(agent: Agent) -> None:
    headers, sending = full_request(agent)
    response = agent.api.client.request("GET", agent.path, headers=headers, **sending)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("component", COVERED)
def test_each_covered_component_tampered_is_refused(agent: Agent, component: str) -> None:
    signing = {
        "@method": {"method": "HEAD"},
        "@authority": {"authority": "other.example"},
        "@path": {"path": f"{agent.path}x"},
        "@query": {"query": "expand=none"},
    }.get(component, {})
    headers, sending = full_request(agent, **signing)
    if component == "x-purpose":
        headers["X-Purpose"] = "write"
    if component == "content-digest":  # a new body with its own, unsigned, digest
        sending["content"] = b"{}"
        headers["Content-Digest"] = content_digest(b"{}")
    response = agent.api.client.request("GET", agent.path, headers=headers, **sending)
    assert refused(response) == "signature_invalid"


def test_a_body_that_does_not_match_its_signed_digest_is_refused(agent: Agent) -> None:
    headers = agent.headers(body=BODY)
    response = agent.api.client.request("GET", agent.path, headers=headers, content=b"{}")
    assert refused(response) == "digest_mismatch"


def test_a_body_or_query_the_signature_does_not_cover_is_refused(agent: Agent) -> None:
    client = agent.api.client
    headers = agent.headers()
    assert refused(client.request("GET", agent.path, headers=headers, content=BODY)) == (
        "component_missing"
    )
    assert refused(agent.get(agent.headers(), params={"expand": "keys"})) == "component_missing"


# --- times --------------------------------------------------------------------------------------


def test_expired_future_dated_and_too_old_signatures_are_refused(agent: Agent) -> None:
    clock = agent.clock
    expiring = agent.headers(expires=clock.now() + timedelta(seconds=10))
    future = signed_headers(
        agent.key, "GET", agent.path, created=clock.now() + timedelta(minutes=1)
    )
    old = signed_headers(
        agent.key,
        "GET",
        agent.path,
        created=clock.now() - timedelta(minutes=10),
        expires=clock.now() + timedelta(minutes=1),
    )
    assert refused(agent.get(future)) == "signature_from_future"
    assert refused(agent.get(old)) == "signature_too_old"
    clock.advance(timedelta(seconds=11))
    assert refused(agent.get(expiring)) == "signature_expired"


# --- keys and agents ----------------------------------------------------------------------------


def test_an_unregistered_key_is_unknown(agent: Agent) -> None:
    assert refused(agent.get(agent.headers(key=ed_key(41)))) == "unknown_key"


def test_a_revoked_key_is_refused_and_the_agents_other_key_still_works(agent: Agent) -> None:
    revoked = agent.api.post(f"{agent.path}/keys/{agent.key.keyid}/revoke", agent.platform_key)
    assert revoked.status_code == 200
    assert refused(agent.get(agent.headers())) == "key_revoked"
    assert agent.get(agent.headers(key=es_key(40))).status_code == 200


def test_a_revoked_agent_is_refused_whatever_the_key(agent: Agent) -> None:
    assert agent.api.post(f"{agent.path}/revoke", agent.platform_key).status_code == 200
    assert refused(agent.get(agent.headers())) == "agent_revoked"
    assert refused(agent.get(agent.headers(key=es_key(40)))) == "agent_revoked"


def test_a_rotated_key_works_through_its_overlap_and_not_a_second_longer(agent: Agent) -> None:
    rotated = agent.api.post(
        f"{agent.path}/keys",
        agent.platform_key,
        {"key": ed_key(42).public_jwk(), "rotate": True, "overlap_s": 600},
    )
    assert rotated.status_code == 200, rotated.text
    agent.clock.advance(timedelta(seconds=600))
    assert agent.get(agent.headers()).status_code == 200
    assert agent.get(agent.headers(key=ed_key(42))).status_code == 200
    agent.clock.advance(timedelta(seconds=1))
    assert refused(agent.get(agent.headers())) == "key_expired"
    assert refused(agent.get(agent.headers(key=es_key(40)))) == "key_expired"
    assert agent.get(agent.headers(key=ed_key(42))).status_code == 200


def test_a_signature_whose_alg_differs_from_the_registered_key_is_refused(agent: Agent) -> None:
    # Signed with the Ed25519 key, but naming the agent's ES256 key.
    headers = agent.headers(keyid=es_key(40).keyid)
    assert refused(agent.get(headers)) == "algorithm_mismatch"


def test_the_tag_nonce_and_field_syntax_are_checked(agent: Agent) -> None:
    assert agent.get(agent.headers(tag="web-bot-auth")).status_code == 200
    assert refused(agent.get(agent.headers(tag="something-else"))) == "tag_not_allowed"
    assert refused(agent.get(agent.headers(omit_nonce=True))) == "signature_param_missing"
    malformed = {"Signature-Input": "sig1=(", "Signature": "sig1=:AA==:"}
    assert refused(agent.get(malformed)) == "signature_malformed"


# --- what an agent may call ---------------------------------------------------------------------


def test_an_agent_reads_only_its_own_agent_object(agent: Agent, api: Api) -> None:
    _platform, platform_key = create_platform(api)
    other = register_agent(api, platform_key, ed_key(43))
    path = f"/v1/agents/{other['id']}"
    response = agent.get(agent.headers(path=path), path=path)
    assert (response.status_code, error_code(response)) == (404, "resource_missing")


def test_an_agent_signature_never_opens_admin_user_or_platform_routes(
    agent: Agent, api: Api
) -> None:
    user, _user_key = api.user()
    client = api.client
    gets = ["/v1/accounts", f"/v1/users/{user['id']}", "/v1/transfers"]
    posts = ["/v1/users", "/v1/agents", "/v1/agent_platforms", f"{agent.path}/revoke"]
    responses = [client.get(path, headers=agent.headers(path=path)) for path in gets]
    for path in posts:
        headers = agent.headers(method="POST", path=path, body=b"{}")
        headers["Idempotency-Key"] = "agent-attempt"
        responses.append(client.post(path, content=b"{}", headers=headers))
    assert [(r.status_code, error_code(r)) for r in responses] == [(401, "agent_not_allowed")] * 7
    assert api.get(agent.path, agent.platform_key).json()["status"] == "active"
