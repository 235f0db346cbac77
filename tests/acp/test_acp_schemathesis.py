"""schemathesis, run with ACP's own OpenAPI (openapi.agentic_checkout.yaml) against a demo
merchant's ACP base URL on the in-process app: every operation fuzzed (bounded, derandomized),
then a stateful run along create → update → complete links, and one such chain driven
explicitly (exploration completes one only now and then). The checks:
no server error, and every response conforms to the OpenAPI's schema for its status.

A hook (``_prepare``) supplies what a real agent would: the bearer token, ``API-Version``, a
fresh ``Idempotency-Key``; it steers most generated line items to the merchant's skus and
``usd`` (else nearly every create is a 400 and nothing downstream runs), and for complete it
mints a real delegated token for the session. Two errata of the OpenAPI file are fixed in
memory, as the JSON Schema bundle of the same version has them: ``CheckoutSessionBase``
lists ``order`` (without it ``CheckoutSessionWithOrder`` could never validate, because the
base forbids additional properties), and links are added (the file has none).
"""

from __future__ import annotations

import secrets
import zlib
from collections import Counter
from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import response_schema_conformance

from acp_support import (
    ADDRESS,
    EXAMPLE_PRODUCTS,
    NO_RISK,
    VERSION,
    AcpWorld,
    default_create,
    make_acp_world,
    payment_data,
    spec_file,
)
from conftest import Api, make_api
from paywarden.kernel.clock import FakeClock
from paywarden.store.unit_of_work import Store

EXAMPLES_PER_OPERATION = 5
STATEFUL_EXAMPLES = 14
STATEFUL_STEPS = 5
SKUS = sorted(EXAMPLE_PRODUCTS)
CHECKS = [not_a_server_error, response_schema_conformance]
SETTINGS = hypothesis.settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
)


@pytest.fixture
def acp_api(sqlite_store: Store) -> Iterator[Api]:
    yield from make_api(sqlite_store, risk=NO_RISK)


def _links() -> dict[str, Any]:
    session_id = {"checkout_session_id": "$response.body#/id"}
    return {
        name: {"operationId": operation, "parameters": session_id}
        for name, operation in (
            ("UpdateSession", "updateCheckoutSession"),
            ("CompleteSession", "completeCheckoutSession"),
        )
    }


def acp_openapi(merchant_id: str) -> dict[str, Any]:
    raw: dict[str, Any] = yaml.safe_load(
        spec_file("openapi/openapi.agentic_checkout.yaml").read_text()
    )
    raw["servers"] = [{"url": f"http://testserver/acp/{merchant_id}"}]
    schemas = raw["components"]["schemas"]
    schemas["CheckoutSessionBase"]["properties"]["order"] = {"$ref": "#/components/schemas/Order"}
    paths = raw["paths"]
    # Links from create only: a link out of update would make update a root of the state
    # machine (called with random ids), and crowd out create, the real entry point. Get and
    # cancel are left to the stateless phase, so that the short chains go on to update and
    # complete.
    paths["/checkout_sessions"]["post"]["responses"]["201"]["links"] = _links()
    return raw


CREATE = "POST/checkout_sessions"
UPDATE = "POST/checkout_sessions/{checkout_session_id}"
COMPLETE = "POST/checkout_sessions/{checkout_session_id}/complete"


def _in_order(done: list[str], wanted: list[str]) -> bool:
    remaining = iter(done)
    return all(step in remaining for step in wanted)


def _steer(value: str) -> bool:
    """Deterministically, three generated values in four are replaced by valid ones."""
    return zlib.crc32(value.encode()) % 4 != 1


def _without_nul(value: Any) -> Any:
    """The body without NUL characters, which paywarden refuses anywhere in a body (its
    PostgreSQL store cannot keep them) and no real agent sends."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {_without_nul(key): _without_nul(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_nul(item) for item in value]
    return value


def _prepare(world: AcpWorld, case: Any) -> None:
    """The agent's credentials and headers, real skus, and a real token for complete."""
    case.headers = {
        **(case.headers or {}),
        "Authorization": f"Bearer {world.token}",
        "API-Version": VERSION,
        "Idempotency-Key": secrets.token_hex(12),
    }
    case.headers.pop("Signature-Input", None)
    if not isinstance(case.body, dict):
        return
    body = case.body = _without_nul(case.body)
    operation = case.operation.definition.raw.get("operationId")
    for item in body.get("line_items") or []:
        if isinstance(item, dict) and _steer(str(item.get("id"))):
            item["id"] = SKUS[zlib.crc32(str(item.get("id")).encode()) % len(SKUS)]
    if operation == "createCheckoutSession" and _steer(str(body.get("currency"))):
        body["currency"] = "usd"
        body["fulfillment_details"] = {"name": "Ada Buyer", "address": ADDRESS}
    for selected in body.get("selected_fulfillment_options") or []:
        if isinstance(selected, dict) and _steer(str(selected.get("option_id"))):
            selected.update(type="digital", option_id="digital")  # an option the shop offers
    if operation == "completeCheckoutSession":
        session_id = case.path_parameters.get("checkout_session_id", "")
        fetched = world.get(f"/checkout_sessions/{session_id}")
        if fetched.status_code == 200:
            total = next(t["amount"] for t in fetched.json()["totals"] if t["type"] == "total")
            minted = world.mint(session_id, max(total, 1))
            if minted.status_code == 201:
                body["payment_data"] = payment_data(minted.json()["id"])
        body.pop("authentication_result", None)


def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    acp_api: Api, clock: FakeClock
) -> None:
    world = make_acp_world(acp_api, clock, funded=10_000_000)
    # Only the links written above: no inferred ones (they would chain create after update).
    config = SchemathesisConfig.from_dict(
        {"phases": {"stateful": {"inference": {"algorithms": []}}}}
    )
    schema = schemathesis.openapi.from_dict(acp_openapi(world.merchant_id), config=config)
    schema.app = acp_api.client.app
    calls: Counter[str] = Counter()
    succeeded: Counter[str] = Counter()
    failures: Counter[tuple[str, int, str]] = Counter()
    steps: dict[str, list[str]] = {}  # session id -> its successful stateful calls, in order

    def run(case: Any) -> None:
        _prepare(world, case)
        response = case.call()
        label = case.operation.label
        calls[label] += 1
        succeeded[label] += 200 <= response.status_code < 300
        if response.status_code >= 400:
            failures[(label, response.status_code, str(response.json().get("code")))] += 1
        case.validate_response(response, checks=CHECKS)

    for result in schema.get_all_operations():
        operation = result.ok()
        strategy = operation.as_strategy()

        @hypothesis.settings(SETTINGS, max_examples=EXAMPLES_PER_OPERATION)
        @hypothesis.given(case=strategy)
        def fuzz(case: Any) -> None:
            run(case)

        fuzz()

    class Chain(schema.as_state_machine()):  # type: ignore[misc]
        def before_call(self, case: Any) -> None:
            _prepare(world, case)

        def after_call(self, response: Any, case: Any) -> None:
            super().after_call(response, case)
            label = f"stateful {case.operation.label}"
            calls[label] += 1
            succeeded[label] += 200 <= response.status_code < 300
            if 200 <= response.status_code < 300:
                session_id = response.json().get("id")
                steps.setdefault(session_id, []).append(case.operation.method.upper() + case.path)
            if response.status_code >= 400:
                failures[(label, response.status_code, str(response.json().get("code")))] += 1

        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            case.validate_response(response, checks=CHECKS)

    Chain.run(
        settings=hypothesis.settings(
            SETTINGS, max_examples=STATEFUL_EXAMPLES, stateful_step_count=STATEFUL_STEPS
        )
    )
    print("\nrefusals (operation, status, code): count")
    for (label, status, code), count in sorted(failures.items()):
        print(f"  {label} {status} {code}: {count}")
    print("\nschemathesis against ACP 2026-04-17 (succeeded / called):")
    for label in sorted(calls):
        print(f"  {label}: {succeeded[label]} / {calls[label]}")
    chain = [CREATE, UPDATE, COMPLETE]
    chains = [sid for sid, done in steps.items() if _in_order(done, chain)]
    # How often exploration completes the chain varies with the process (what else pytest
    # imported changes it), so it is reported, and one chain is always driven explicitly.
    print(f"  sessions taken through create → update → complete: {len(chains)} explored")
    completed = _explicit_chain(schema, world)
    print(f"  and 1 driven: {' → '.join(completed)}")


def _explicit_chain(schema: Any, world: AcpWorld) -> list[str]:
    """create → update → complete through schemathesis' own cases, hook and checks, with
    valid bodies: the chain the stateful phase explores, made certain."""
    operations = {op.label: op for op in (r.ok() for r in schema.get_all_operations())}
    sku = SKUS[0]

    def call(label: str, body: dict[str, Any], session_id: str | None = None) -> Any:
        operation = operations[label.replace("POST/", "POST /", 1)]
        path = {"checkout_session_id": session_id} if session_id else {}
        case = operation.Case(body=body, path_parameters=path, media_type="application/json")
        _prepare(world, case)
        response = case.call()
        case.validate_response(response, checks=CHECKS)
        assert 200 <= response.status_code < 300, (label, response.text)
        return response.json()

    created = call(CREATE, default_create(sku))
    updated = call(UPDATE, {"line_items": [{"id": sku}, {"id": sku}]}, created["id"])
    assert len(updated["line_items"]) >= 1
    completed = call(COMPLETE, {"payment_data": {}}, created["id"])  # _prepare mints the token
    assert completed["status"] == "completed" and completed["order"]["id"].startswith("ord_")
    return [created["status"], updated["status"], completed["status"]]
