"""API fuzzing: schemathesis over the native OpenAPI document of the in-process app, as the
admin (a hook adds the key and a fresh Idempotency-Key): every operation (bounded,
derandomized), then a stateful run along the links schemathesis infers. Checks: no server
error, and responses conform to the document. Failures are gathered per operation and
reported together, so one bad route does not hide another.

Known failing operations may be listed in :data:`EXCLUDED`, each with a comment naming the
bug; there are none today.
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from conftest import Api, make_api
from figures_support import report
from paywarden.store.unit_of_work import Store

EXAMPLES_PER_OPERATION = 4
STATEFUL_EXAMPLES = 10
STATEFUL_STEPS = 4
CHECKS = [not_a_server_error, response_schema_conformance]
EXCLUDED: dict[str, str] = {}  # "METHOD /path": "the bug it hits"
SETTINGS = hypothesis.settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
)


@pytest.fixture
def fuzz_api(sqlite_store: Store) -> Iterator[Api]:
    # No rate limits: the fuzzer is one key sending thousands of requests on purpose.
    yield from make_api(sqlite_store, rate_limit_key_per_s=0, rate_limit_agent_per_s=0)


def _prepare(api: Api, case: Any) -> None:
    case.headers = {
        **(case.headers or {}),
        "Authorization": f"Bearer {api.admin_key}",
        "Idempotency-Key": secrets.token_hex(12),
        "API-Version": "2026-04-17",
    }
    for name in ("Signature-Input", "Signature", "Paywarden-Version"):
        case.headers.pop(name, None)


def test_schemathesis_finds_no_server_error_in_the_native_api(fuzz_api: Api) -> None:
    app: Any = fuzz_api.client.app
    document = app.openapi()
    document["servers"] = [{"url": "http://testserver"}]
    schema = schemathesis.openapi.from_dict(document)
    schema.app = app
    calls: Counter[str] = Counter()
    problems: dict[str, str] = {}

    def check(case: Any, response: Any) -> None:
        label = case.operation.label
        calls[label] += 1
        try:
            case.validate_response(response, checks=CHECKS)
        except Exception as error:
            problems.setdefault(label, f"{response.status_code}: {str(error)[:300]}")

    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.label in EXCLUDED:
            continue
        operations += 1

        @hypothesis.settings(SETTINGS, max_examples=EXAMPLES_PER_OPERATION)
        @hypothesis.given(case=operation.as_strategy())
        def fuzz(case: Any) -> None:
            _prepare(fuzz_api, case)
            check(case, case.call())

        fuzz()

    class Chain(schema.as_state_machine()):  # type: ignore[misc]
        def before_call(self, case: Any) -> None:
            _prepare(fuzz_api, case)

        def after_call(self, response: Any, case: Any) -> None:
            calls[f"stateful {case.operation.label}"] += 1

        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            check(case, response)

    Chain.run(
        settings=hypothesis.settings(
            SETTINGS, max_examples=STATEFUL_EXAMPLES, stateful_step_count=STATEFUL_STEPS
        )
    )
    stateful = sum(count for label, count in calls.items() if label.startswith("stateful"))
    report(
        f"API fuzz (schemathesis): {operations} operations, {sum(calls.values())} cases "
        f"({stateful} in stateful chains); problems in {len(problems)} operations"
    )
    assert not problems, "\n".join(f"{label}: {text}" for label, text in sorted(problems.items()))
