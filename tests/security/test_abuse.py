"""Abuse: floods from one credential get 429 with Retry-After (per API key and per agent key,
as configuration); oversized bodies 413; deeply nested JSON and huge arrays 400 or 413;
never a 5xx; memory stays bounded however many credentials a flood invents."""

from __future__ import annotations

import json
import resource
import secrets
import time
from collections.abc import Iterator

import pytest

from conftest import Api, make_api
from figures_support import report
from payment_support import SignedAgent, register_agent
from paywarden.api.ratelimit import TokenBucketLimiter, credential
from paywarden.kernel.clock import FakeClock
from paywarden.store.unit_of_work import Store

BURST = 20
RATE_PER_S = 1.0
FLOOD = 60


class Ticks:
    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


def test_a_bucket_allows_its_burst_then_refuses_until_it_refills() -> None:
    ticks = Ticks()
    limiter = TokenBucketLimiter(2.0, 3, clock=ticks)
    assert [limiter.take(b"k") for _ in range(3)] == [None, None, None]
    wait = limiter.take(b"k")
    assert wait == pytest.approx(0.5)
    assert limiter.take(b"other") is None  # buckets are per credential
    ticks.now_s += 0.5
    assert limiter.take(b"k") is None
    assert limiter.take(b"k") is not None
    ticks.now_s += 100.0  # refills to the burst, not beyond
    assert [limiter.take(b"k") for _ in range(4)].count(None) == 3


def test_buckets_are_bounded_whatever_credentials_a_flood_invents() -> None:
    limiter = TokenBucketLimiter(1.0, 1, buckets_max=1_000)
    for number in range(20_000):
        limiter.take(number.to_bytes(4, "big"))
    assert len(limiter) == 1_000


def test_credentials_are_told_apart_without_keeping_secrets() -> None:
    bearer = credential([(b"authorization", b"Bearer pw_test_secret")])
    agent = credential([(b"signature-input", b'sig1=("@method");keyid="abc";created=1')])
    assert bearer is not None and bearer[0] == "key" and b"secret" not in bearer[1]
    assert agent is not None and agent[0] == "agent"
    assert credential([(b"authorization", b"Basic x")]) is None
    assert credential([]) is None
    assert credential([(b"signature-input", b"x" * 100_000)]) is None


@pytest.fixture
def limited_api(sqlite_store: Store) -> Iterator[Api]:
    yield from make_api(
        sqlite_store,
        rate_limit_key_per_s=RATE_PER_S,
        rate_limit_key_burst=BURST,
        rate_limit_agent_per_s=RATE_PER_S,
        rate_limit_agent_burst=BURST,
    )


def _assert_limited(statuses: list[tuple[int, str | None]], elapsed_s: float, who: str) -> int:
    assert all(status < 500 for status, _ in statuses), statuses
    limited = [retry for status, retry in statuses if status == 429]
    assert limited, f"a flood of {len(statuses)} from one {who} was never limited"
    assert all(retry is not None and int(retry) >= 1 for retry in limited)
    allowed = len(statuses) - len(limited)
    assert allowed <= BURST + int(RATE_PER_S * elapsed_s) + 1, (allowed, elapsed_s)
    return len(limited)


def test_a_flood_from_one_agent_gets_429_with_retry_after(
    limited_api: Api, clock: FakeClock
) -> None:
    agent = register_agent(limited_api, clock)
    other = register_agent(limited_api, clock)
    started = time.monotonic()
    statuses = []
    for _ in range(FLOOD):
        response = agent.get(f"/v1/agents/{agent.id}")
        statuses.append((response.status_code, response.headers.get("retry-after")))
    limited = _assert_limited(statuses, time.monotonic() - started, "agent")
    assert statuses[-1][0] == 429
    assert other.get(f"/v1/agents/{other.id}").status_code == 200  # its own bucket
    body = json.loads(agent.get(f"/v1/agents/{agent.id}").text)
    assert body["error"]["type"] == "rate_limit_error"
    report(f"abuse: agent flood of {FLOOD} → {limited} answered 429 with Retry-After")


def test_a_flood_from_one_key_gets_429_and_other_keys_go_on(limited_api: Api) -> None:
    _user, key = limited_api.user()
    _other, other_key = limited_api.user()
    started = time.monotonic()
    statuses = []
    for _ in range(FLOOD):
        response = limited_api.get("/v1/accounts", key)
        statuses.append((response.status_code, response.headers.get("retry-after")))
    limited = _assert_limited(statuses, time.monotonic() - started, "API key")
    assert limited_api.get("/v1/accounts", other_key).status_code == 200
    report(f"abuse: API-key flood of {FLOOD} → {limited} answered 429 with Retry-After")


def test_limits_are_configuration_and_zero_turns_them_off(sqlite_store: Store) -> None:
    for api in make_api(sqlite_store, rate_limit_key_per_s=0, rate_limit_key_burst=1):
        _user, key = api.user()
        assert all(api.get("/v1/accounts", key).status_code == 200 for _ in range(30))


def _signed_raw(agent: SignedAgent, path: str, raw: bytes) -> int:
    from payment_support import signed_headers  # noqa: PLC0415

    headers = signed_headers(agent.key, "POST", path, created=agent.clock.now(), body=raw)
    headers |= {"Content-Type": "application/json", "Idempotency-Key": secrets.token_hex(8)}
    status: int = agent.api.client.post(path, content=raw, headers=headers).status_code
    return status


def test_hostile_bodies_get_400_or_413_never_a_5xx(sqlite_api: Api, clock: FakeClock) -> None:
    agent = register_agent(sqlite_api, clock)
    _user, key = sqlite_api.user()
    limit = 1_048_576
    bodies = {
        "oversized": (b'{"a": "' + b"x" * (limit + 10) + b'"}', {413}),
        "nested 10 000 deep": (b'{"a":' * 10_000 + b"1" + b"}" * 10_000, {400}),
        "nested 40 deep": (json.dumps(_nest(40)).encode(), {400}),
        "array of 150 000 numbers": (
            json.dumps({"user": "usr_x", "currency": "usd", "constraints": [1] * 150_000}).encode(),
            {400, 404},
        ),
        "array over the limit": (json.dumps({"constraints": [0] * 600_000}).encode(), {413}),
        "huge number": (b'{"amount": 1' + b"0" * 5_000 + b"}", {400}),
        "not JSON": (b"\xff\xfe" * 1_000, {400}),
    }
    tried = 0
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB, the peak so far
    for name, (raw, expected) in bodies.items():
        for path in ("/v1/mandates", "/v1/payments"):
            status = _signed_raw(agent, path, raw)
            assert status in expected, (name, path, status)
            headers = sqlite_api.headers(key) | {"Content-Type": "application/json"}
            bearer = sqlite_api.client.post("/v1/top_ups", content=raw, headers=headers)
            assert bearer.status_code in expected | {400}, (name, bearer.status_code)
            tried += 2
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
    # Generous: the largest body is 2.4 MB; handling it must not balloon past a few copies.
    assert grown_kib < 512 * 1024, grown_kib
    report(f"abuse: {tried} hostile bodies → 400/413, no 5xx; peak RSS grew {grown_kib >> 10} MiB")


def _nest(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = {"a": value}
    return value
