"""Bad input to the money-moving POSTs: always a clear 4xx, and never any effect.

Every case below sends one bad request to one of the five money routes (top-ups, holds,
captures, refunds, transfers) and checks the same four things:

- the status is the expected 4xx (never a 5xx), with the expected error ``code``;
- ``param`` names the field at fault as a JSON path (``$.amount``), or is null when no
  field is (a body that is not JSON, a state conflict);
- the response carries a ``Request-Id`` header;
- nothing changed: every balance, every hold's state, the number of transfers and the row
  counts of the money tables are the same afterwards. (The refused request's idempotency
  key *is* stored with its 4xx, by design: see test_idempotency.py.)

The cases share one prepared world per backend (module scope): a refused request changes
nothing, so each case starts from the same state, and the "nothing changed" check of every
case proves it. A case that did change something fails there, and may make later cases
fail too; read the first failure.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from conftest import START, Api, make_api, sqlite_url, truncate_all
from paywarden.adapters.ids import new_id
from paywarden.kernel.clock import FakeClock
from paywarden.kernel.money import AMOUNT_MINOR_MAX
from paywarden.store import migrate, schema
from paywarden.store.engine import make_engine
from paywarden.store.unit_of_work import Store

CARD = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2099}
BODY_BYTES_MAX = 1_048_576  # Settings.body_bytes_max default
MONEY_TABLES = (
    "users",
    "merchants",
    "api_keys",
    "accounts",
    "transfers",
    "postings",
    "holds",
    "refunds",
    "top_ups",
    "events",
)


# --- the world the cases run against ----------------------------------------------------


@dataclass(frozen=True)
class World:
    """A user with a funded usd wallet, a usd merchant, and holds in every state.

    - ``pending_hold``: 1 000 reserved, not captured;
    - ``captured_hold``: 1 000 held, 600 captured, 200 of that refunded (400 refundable);
    - ``voided_hold``: 500 held, then voided.
    """

    api: Api
    user_id: str
    user_key: str
    wallet: str
    merchant_id: str
    merchant_key: str
    merchant_account: str
    pending_hold: str
    captured_hold: str
    voided_hold: str

    def key(self, caller: str) -> str:
        return self.user_key if caller == "user" else self.merchant_key


def build_world(api: Api) -> World:
    user, user_key = api.user(funded=10_000)
    merchant, merchant_key = api.merchant(fee_bps=250)

    def hold(amount: int) -> str:
        response = api.post(
            "/v1/holds",
            user_key,
            {"destination": merchant["id"], "amount": amount, "currency": "usd"},
        )
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    pending, captured, voided = hold(1_000), hold(1_000), hold(500)
    steps = [
        (f"/v1/holds/{captured}/capture", merchant_key, {"amount": 600}),
        ("/v1/refunds", merchant_key, {"hold": captured, "amount": 200}),
        (f"/v1/holds/{voided}/void", user_key, {}),
    ]
    for path, key, body in steps:
        response = api.post(path, key, body)
        assert response.status_code in (200, 201), response.text
    return World(
        api=api,
        user_id=user["id"],
        user_key=user_key,
        wallet=user["wallets"][0]["id"],
        merchant_id=merchant["id"],
        merchant_key=merchant_key,
        merchant_account=merchant["account"]["id"],
        pending_hold=pending,
        captured_hold=captured,
        voided_hold=voided,
    )


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """One world per backend for the whole module (see the module docstring)."""
    if request.param == "sqlite":
        directory: Path = tmp_path_factory.mktemp("bad_input")
        engine = make_engine(sqlite_url(directory))
        migrate.upgrade(engine)
    else:
        engine = make_engine(request.getfixturevalue("pg_database"))
    store = Store(engine, FakeClock(START))
    if request.param == "postgres":
        truncate_all(store)
    apis = make_api(store)
    api = next(apis)
    try:
        yield build_world(api)
    finally:
        next(apis, None)  # leaves the TestClient
        engine.dispose()


# --- what "nothing changed" means -------------------------------------------------------


def _every(api: Api, path: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 100}
    while True:
        response = api.get(path, api.admin_key, params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        items.extend(page["data"])
        if not page["has_more"]:
            return items
        params["starting_after"] = page["next_cursor"]


def snapshot(api: Api) -> dict[str, Any]:
    """Every balance (as the admin sees them on the wire), every hold's state, and the row
    counts of the money tables (transfers among them), read in one transaction."""
    tables = [schema.metadata.tables[name] for name in MONEY_TABLES]
    h = schema.holds

    def read(uow: Any) -> dict[str, Any]:
        counts = uow.execute(
            select(*(select(func.count()).select_from(t).scalar_subquery() for t in tables))
        ).one()
        holds = uow.execute(
            select(h.c.id, h.c.status, h.c.captured_amount, h.c.refunded_amount)
        ).all()
        return {
            "rows": dict(zip(MONEY_TABLES, counts, strict=True)),
            "holds": sorted(tuple(row) for row in holds),
        }

    return {
        "balances": {a["id"]: a["balance"] for a in _every(api, "/v1/accounts")},
        **api.store.run(read, read_only=True),
    }


def assert_refused(response: Any, status: int, code: str, param: str | None) -> None:
    assert response.status_code < 500, response.text
    assert response.status_code == status, response.text
    assert response.headers["Request-Id"].startswith("req_")
    error = response.json()["error"]
    assert error["code"] == code, error
    assert error["param"] == param, error
    assert error["type"] and error["message"]


def refused_without_effect(
    world: World, send: Callable[[], Any], status: int, code: str, param: str | None
) -> Any:
    before = snapshot(world.api)
    response = send()
    assert_refused(response, status, code, param)
    assert snapshot(world.api) == before, "a refused request changed something"
    return response


# --- the five routes and how to call them -----------------------------------------------


@dataclass(frozen=True)
class Route:
    caller: str  # "user" or "merchant"
    path: Callable[[World], str]
    body: Callable[[World], dict[str, Any]]
    required: str | None  # a field whose absence is parameter_missing
    text_field: tuple[str, ...]  # a field where a string is accepted


ROUTES: dict[str, Route] = {
    "top_up": Route(
        "user",
        lambda w: "/v1/top_ups",
        lambda w: {"amount": 500, "currency": "usd", "card": dict(CARD)},
        "card",
        ("card", "number"),
    ),
    "hold": Route(
        "user",
        lambda w: "/v1/holds",
        lambda w: {"destination": w.merchant_id, "amount": 500, "currency": "usd"},
        "destination",
        ("description",),
    ),
    "capture": Route(
        "merchant",
        lambda w: f"/v1/holds/{w.pending_hold}/capture",
        lambda w: {"amount": 500},
        None,  # every capture field is optional: no amount captures the whole hold
        ("amount",),
    ),
    "refund": Route(
        "merchant",
        lambda w: "/v1/refunds",
        lambda w: {"hold": w.captured_hold, "amount": 100},
        "hold",
        ("reason",),
    ),
    "transfer": Route(
        "user",
        lambda w: "/v1/transfers",
        lambda w: {"destination": w.merchant_id, "amount": 100, "currency": "usd"},
        "destination",
        ("description",),
    ),
}
WITH_CURRENCY = ["top_up", "hold", "transfer"]
AMOUNT_REQUIRED = ["top_up", "hold", "transfer"]


def send_json(world: World, route: str, body: Any, path: str | None = None) -> Any:
    r = ROUTES[route]
    return world.api.post(path or r.path(world), world.key(r.caller), body)


def send_raw(world: World, route: str, content: Any, path: str | None = None) -> Any:
    """Send bytes exactly as given (a generator body goes out chunked)."""
    r = ROUTES[route]
    headers = {**world.api.headers(world.key(r.caller)), "Content-Type": "application/json"}
    return world.api.client.post(path or r.path(world), content=content, headers=headers)


_SLOT = "\u2063slot\u2063"


def with_literal(body: dict[str, Any], field: str, literal: str) -> bytes:
    """``body`` as JSON with ``field`` set to ``literal`` verbatim (``1e3`` stays ``1e3``)."""
    text = json.dumps({**body, field: _SLOT})
    return text.replace(json.dumps(_SLOT), literal).encode()


# --- a control: the unmodified requests succeed and change the snapshot ----------------


@pytest.mark.parametrize("route", list(ROUTES))
def test_the_base_request_of_each_route_succeeds_and_shows_in_the_snapshot(
    sqlite_api: Api, route: str
) -> None:
    """Each case below changes one thing in a request that, as is, works; and the snapshot
    sees that working request's effect, so 'snapshot unchanged' means something."""
    world = build_world(sqlite_api)
    before = snapshot(sqlite_api)
    response = send_json(world, route, ROUTES[route].body(world))
    assert response.status_code in (200, 201), response.text
    assert snapshot(sqlite_api) != before


# --- amounts ----------------------------------------------------------------------------

BAD_AMOUNTS = [
    pytest.param("0", id="zero"),
    pytest.param("-1", id="negative"),
    pytest.param("-0", id="negative-zero"),
    pytest.param("10.5", id="fractional"),
    pytest.param("10.0", id="integral-float"),
    pytest.param("1e3", id="exponent"),
    pytest.param("1E+3", id="exponent-upper"),
    pytest.param('"100"', id="string"),
    pytest.param("true", id="bool"),
    pytest.param("[100]", id="array"),
    pytest.param('{"value": 100}', id="object"),
    pytest.param(str(2**63), id="2^63"),
    pytest.param(str(2**64), id="2^64"),
    pytest.param(str(10**30), id="10^30"),
    pytest.param(str(AMOUNT_MINOR_MAX + 1), id="AMOUNT_MINOR_MAX+1"),
]


@pytest.mark.parametrize("literal", BAD_AMOUNTS)
@pytest.mark.parametrize("route", list(ROUTES))
def test_an_amount_that_is_not_a_positive_integer_in_range_is_invalid_amount(
    world: World, route: str, literal: str
) -> None:
    """Amounts are JSON integers of minor units from 1 to AMOUNT_MINOR_MAX: ``10.0`` is as
    wrong as ``10.5`` (a fraction or an exponent means major and minor units got mixed)."""
    content = with_literal(ROUTES[route].body(world), "amount", literal)
    refused_without_effect(
        world,
        lambda: send_raw(world, route, content),
        400,
        "invalid_amount",
        "$.amount",
    )


@pytest.mark.parametrize("route", AMOUNT_REQUIRED)
def test_a_null_amount_where_one_is_required_is_invalid_amount(world: World, route: str) -> None:
    body = {**ROUTES[route].body(world), "amount": None}
    refused_without_effect(
        world, lambda: send_json(world, route, body), 400, "invalid_amount", "$.amount"
    )


# --- currencies -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "currency",
    [
        pytest.param("xyz", id="unknown-code"),
        pytest.param("us", id="two-letters"),
        pytest.param(840, id="iso-numeric"),
        pytest.param("", id="empty"),
        pytest.param(None, id="null"),
        pytest.param("üsd", id="non-ascii"),
    ],
)
@pytest.mark.parametrize("route", WITH_CURRENCY)
def test_a_currency_that_is_not_an_iso_4217_code_is_unknown_currency(
    world: World, route: str, currency: Any
) -> None:
    body = {**ROUTES[route].body(world), "currency": currency}
    refused_without_effect(
        world, lambda: send_json(world, route, body), 400, "unknown_currency", "$.currency"
    )


def test_uppercase_currency_is_accepted_as_the_same_code(sqlite_api: Api) -> None:
    """The other side of the rule: ``USD`` is normalised, not refused."""
    world = build_world(sqlite_api)
    body = {**ROUTES["transfer"].body(world), "currency": "USD"}
    response = send_json(world, "transfer", body)
    assert response.status_code == 201, response.text
    assert response.json()["currency"] == "usd"


def _mismatched(world: World, route: str) -> dict[str, Any]:
    """A jpy amount naming usd accounts by their account ids."""
    if route == "top_up":
        return {"amount": 500, "currency": "jpy", "card": dict(CARD), "account": world.wallet}
    return {
        "source": world.wallet,
        "destination": world.merchant_account,
        "amount": 500,
        "currency": "jpy",
    }


@pytest.mark.parametrize("route", WITH_CURRENCY)
def test_a_jpy_amount_to_usd_accounts_is_currency_mismatch(world: World, route: str) -> None:
    body = _mismatched(world, route)
    refused_without_effect(
        world, lambda: send_json(world, route, body), 400, "currency_mismatch", "$.currency"
    )


@pytest.mark.parametrize(
    ("route", "param"),
    [("top_up", "$.account"), ("hold", "$.source"), ("transfer", "$.source")],
)
def test_a_jpy_amount_from_a_user_without_a_jpy_wallet_finds_no_account(
    world: World, route: str, param: str
) -> None:
    """Named by owner (the default wallet, a ``mer_`` id), there is no jpy account: 404."""
    body = {**ROUTES[route].body(world), "currency": "jpy"}
    refused_without_effect(
        world, lambda: send_json(world, route, body), 404, "resource_missing", param
    )


# --- ids that name nothing --------------------------------------------------------------


@pytest.mark.parametrize(
    ("route", "field", "prefix"),
    [
        pytest.param("top_up", "account", "acct", id="top_up-account"),
        pytest.param("hold", "destination", "mer", id="hold-merchant"),
        pytest.param("hold", "destination", "acct", id="hold-account"),
        pytest.param("hold", "source", "acct", id="hold-source"),
        pytest.param("refund", "hold", "hold", id="refund-hold"),
        pytest.param("transfer", "destination", "usr", id="transfer-user"),
        pytest.param("transfer", "destination", "mer", id="transfer-merchant"),
        pytest.param("transfer", "source", "acct", id="transfer-source"),
    ],
)
def test_a_well_formed_id_that_names_nothing_is_404(
    world: World, route: str, field: str, prefix: str
) -> None:
    body = {**ROUTES[route].body(world), field: new_id(prefix)}
    refused_without_effect(
        world, lambda: send_json(world, route, body), 404, "resource_missing", f"$.{field}"
    )


def test_capturing_a_hold_that_does_not_exist_is_404(world: World) -> None:
    path = f"/v1/holds/{new_id('hold')}/capture"
    refused_without_effect(
        world,
        lambda: send_json(world, "capture", {"amount": 1}, path=path),
        404,
        "resource_missing",
        "$.hold",
    )


def test_a_hold_id_too_long_to_exist_is_404_not_a_database_error(world: World) -> None:
    """Longer than the idempotency scope can hold (500): refused before the key is
    claimed (PostgreSQL used to answer 500, value too long)."""
    path = f"/v1/holds/hold_{'x' * 600}/capture"
    refused_without_effect(
        world,
        lambda: send_json(world, "capture", {}, path=path),
        404,
        "resource_missing",
        None,
    )


def test_a_malformed_id_is_invalid_id(world: World) -> None:
    body = {**ROUTES["transfer"].body(world), "destination": "bob"}
    refused_without_effect(
        world, lambda: send_json(world, "transfer", body), 400, "invalid_id", "$.destination"
    )


# --- the state of holds and balances ----------------------------------------------------


def test_capturing_more_than_the_hold_is_amount_exceeds_hold(world: World) -> None:
    refused_without_effect(
        world,
        lambda: send_json(world, "capture", {"amount": 1_001}),
        422,
        "amount_exceeds_hold",
        "$.amount",
    )


def test_capturing_a_voided_hold_is_hold_voided(world: World) -> None:
    path = f"/v1/holds/{world.voided_hold}/capture"
    refused_without_effect(
        world, lambda: send_json(world, "capture", {}, path=path), 409, "hold_voided", None
    )


def test_capturing_a_hold_a_second_time_is_hold_posted(world: World) -> None:
    path = f"/v1/holds/{world.captured_hold}/capture"
    refused_without_effect(
        world,
        lambda: send_json(world, "capture", {"amount": 100}, path=path),
        409,
        "hold_posted",
        None,
    )


@pytest.mark.parametrize("amount", [401, 601, 1_000], ids=["remaining+1", "captured+1", "held"])
def test_refunding_more_than_remains_of_the_capture_is_refund_exceeds_captured(
    world: World, amount: int
) -> None:
    """600 captured, 200 refunded already: 400 remain refundable."""
    body = {"hold": world.captured_hold, "amount": amount}
    refused_without_effect(
        world,
        lambda: send_json(world, "refund", body),
        422,
        "refund_exceeds_captured",
        "$.amount",
    )


@pytest.mark.parametrize(
    ("hold", "body"),
    [
        pytest.param("pending_hold", {"amount": 100}, id="pending-with-amount"),
        pytest.param("pending_hold", {}, id="pending-whole"),
        pytest.param("voided_hold", {"amount": 100}, id="voided"),
    ],
)
def test_refunding_a_hold_that_was_never_captured_is_hold_not_captured(
    world: World, hold: str, body: dict[str, Any]
) -> None:
    payload = {"hold": getattr(world, hold), **body}
    refused_without_effect(
        world, lambda: send_json(world, "refund", payload), 409, "hold_not_captured", "$.hold"
    )


@pytest.mark.parametrize("route", ["hold", "transfer"])
def test_spending_more_than_the_wallet_has_available_is_insufficient_funds(
    world: World, route: str
) -> None:
    """10 000 topped up, 600 captured, 200 refunded: 9 600 posted, 1 000 of it held (the
    pending hold), so 8 600 available."""
    body = {**ROUTES[route].body(world), "amount": 8_601}
    refused_without_effect(
        world, lambda: send_json(world, route, body), 422, "insufficient_funds", "$.amount"
    )


def test_a_transfer_to_the_same_account_is_same_account(world: World) -> None:
    body = {**ROUTES["transfer"].body(world), "destination": world.wallet}
    refused_without_effect(
        world, lambda: send_json(world, "transfer", body), 400, "same_account", "$.destination"
    )


def test_a_hold_paying_a_wallet_rather_than_a_merchant_is_invalid_destination(
    world: World,
) -> None:
    body = {**ROUTES["hold"].body(world), "destination": world.wallet}
    refused_without_effect(
        world,
        lambda: send_json(world, "hold", body),
        400,
        "invalid_destination",
        "$.destination",
    )


# --- bodies that are not what a route takes ---------------------------------------------

NOT_JSON_OBJECTS = [
    pytest.param(b'{"amount": 1', id="truncated"),
    pytest.param(b"{'amount': 1}", id="single-quotes"),
    pytest.param(b'[{"amount": 100}]', id="array"),
    pytest.param(b'"amount"', id="string"),
    pytest.param(b"100", id="number"),
    pytest.param(b"\xff\xfe{}", id="not-utf8"),
    pytest.param(b"[" * 10_000 + b"]" * 10_000, id="10000-nested-arrays"),
    pytest.param(b'{"a":' * 10_000 + b"1" + b"}" * 10_000, id="10000-nested-objects"),
    pytest.param(b'{"amount": ' + b"[" * 40 + b"]" * 40 + b"}", id="40-nested"),
    pytest.param(b'{"amount": NaN}', id="NaN"),
    pytest.param(b'{"amount": Infinity}', id="Infinity"),
    pytest.param(b'{"amount": -Infinity}', id="-Infinity"),
    pytest.param(b'{"amount": 1e999}', id="1e999"),
    pytest.param(b'{"amount": 1, "note": "\\ud800"}', id="unpaired-surrogate"),
]


@pytest.mark.parametrize("content", NOT_JSON_OBJECTS)
@pytest.mark.parametrize("route", list(ROUTES))
def test_a_body_that_is_not_a_plain_json_object_is_invalid_json(
    world: World, route: str, content: bytes
) -> None:
    """Not JSON, not an object, nested past 32 levels (10 000 must not reach Python's
    recursion limit as a 500), or holding what Python's parser allows and JSON does not."""
    refused_without_effect(
        world, lambda: send_raw(world, route, content), 400, "invalid_json", None
    )


@pytest.mark.parametrize("route", list(ROUTES))
def test_an_unknown_field_is_unknown_parameter(world: World, route: str) -> None:
    body = {**ROUTES[route].body(world), "amout": 100}
    refused_without_effect(
        world, lambda: send_json(world, route, body), 400, "unknown_parameter", "$.amout"
    )


def test_an_unknown_field_inside_the_card_is_unknown_parameter(world: World) -> None:
    body = ROUTES["top_up"].body(world)
    body["card"]["cvv"] = "123"
    refused_without_effect(
        world,
        lambda: send_json(world, "top_up", body),
        400,
        "unknown_parameter",
        "$.card.cvv",
    )


@pytest.mark.parametrize("route", [name for name, r in ROUTES.items() if r.required])
def test_a_missing_required_field_is_parameter_missing(world: World, route: str) -> None:
    field = ROUTES[route].required
    assert field is not None
    body = {k: v for k, v in ROUTES[route].body(world).items() if k != field}
    refused_without_effect(
        world, lambda: send_json(world, route, body), 400, "parameter_missing", f"$.{field}"
    )


def test_a_card_without_its_number_is_parameter_missing(world: World) -> None:
    body = ROUTES["top_up"].body(world)
    del body["card"]["number"]
    refused_without_effect(
        world,
        lambda: send_json(world, "top_up", body),
        400,
        "parameter_missing",
        "$.card.number",
    )


@pytest.mark.parametrize(
    ("route", "field"),
    [("hold", "destination"), ("refund", "hold"), ("transfer", "destination")],
)
def test_a_number_where_an_id_belongs_is_invalid_value(
    world: World, route: str, field: str
) -> None:
    body = {**ROUTES[route].body(world), field: 12345}
    refused_without_effect(
        world, lambda: send_json(world, route, body), 400, "invalid_value", f"$.{field}"
    )


@pytest.mark.parametrize("route", list(ROUTES))
def test_a_nul_character_in_a_string_is_invalid_value(world: World, route: str) -> None:
    """PostgreSQL text cannot hold NUL; it is refused up front on both backends, naming the
    field (PostgreSQL used to answer 500)."""
    body = ROUTES[route].body(world)
    *parents, last = ROUTES[route].text_field
    target = body
    for name in parents:
        target = target[name]
    target[last] = "42\u0000"
    param = "$." + ".".join(ROUTES[route].text_field)
    refused_without_effect(
        world, lambda: send_json(world, route, body), 400, "invalid_value", param
    )


def test_a_nul_character_in_the_path_is_invalid_value(world: World) -> None:
    refused_without_effect(
        world,
        lambda: send_json(world, "capture", {}, path="/v1/holds/hold_%00/capture"),
        400,
        "invalid_value",
        None,
    )


def test_a_nul_character_in_a_query_is_a_400_not_a_database_error(world: World) -> None:
    response = world.api.get(
        "/v1/transfers", world.user_key, params={"starting_after": "txf_\u0000"}
    )
    assert_refused(response, 400, "invalid_value", None)


# --- oversized bodies -------------------------------------------------------------------


def _oversized(world: World, route: str) -> bytes:
    body = {**ROUTES[route].body(world), "padding": "x" * BODY_BYTES_MAX}
    content = json.dumps(body).encode()
    assert len(content) > BODY_BYTES_MAX
    return content


@pytest.mark.parametrize("route", list(ROUTES))
def test_a_body_over_one_mebibyte_with_content_length_is_request_too_large(
    world: World, route: str
) -> None:
    content = _oversized(world, route)
    response = refused_without_effect(
        world, lambda: send_raw(world, route, content), 413, "request_too_large", None
    )
    assert response.request.headers["content-length"] == str(len(content))


@pytest.mark.parametrize("route", list(ROUTES))
def test_a_chunked_body_over_one_mebibyte_is_request_too_large(world: World, route: str) -> None:
    """No Content-Length to refuse by: the limit holds while the body streams in."""
    content = _oversized(world, route)

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(content), 64 * 1024):
            yield content[start : start + 64 * 1024]

    response = refused_without_effect(
        world, lambda: send_raw(world, route, chunks()), 413, "request_too_large", None
    )
    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"


def test_a_body_just_under_the_limit_is_read_and_judged_on_its_content(world: World) -> None:
    """The limit is on size only: a body under it reaches validation (here: the padding
    field is unknown)."""
    body = {**ROUTES["hold"].body(world), "padding": ""}
    size = len(json.dumps(body).encode())
    body["padding"] = "x" * (BODY_BYTES_MAX - size)
    assert len(json.dumps(body).encode()) == BODY_BYTES_MAX
    refused_without_effect(
        world,
        lambda: send_json(world, "hold", body),
        400,
        "unknown_parameter",
        "$.padding",
    )


# --- cards ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("card", "code", "param"),
    [
        pytest.param(
            {"number": "4242424242424241"},
            "invalid_card_number",
            "$.card.number",
            id="luhn",
        ),
        pytest.param(
            {"number": "4242 4242 4242 4241"},
            "invalid_card_number",
            "$.card.number",
            id="luhn-with-spaces",
        ),
        pytest.param(
            {"number": "4000000000000001"},
            "invalid_card_number",
            "$.card.number",
            id="luhn-magic-prefix",
        ),
        pytest.param({"number": "4242"}, "invalid_card_number", "$.card.number", id="short"),
        pytest.param(
            {"number": "4242abcd42424242"},
            "invalid_card_number",
            "$.card.number",
            id="letters",
        ),
        pytest.param(
            {"number": "٤٢٤٢٤٢٤٢٤٢٤٢٤٢٤٢"},
            "invalid_card_number",
            "$.card.number",
            id="arabic-indic-digits",
        ),
        pytest.param(
            {"number": 4242424242424242}, "invalid_value", "$.card.number", id="number-as-int"
        ),
        pytest.param({"exp_month": 13}, "invalid_expiry_month", "$.card.exp_month", id="month"),
        pytest.param({"exp_year": 99}, "invalid_expiry_year", "$.card.exp_year", id="year"),
    ],
)
def test_a_malformed_card_is_refused_before_the_rail_is_asked(
    world: World, card: dict[str, Any], code: str, param: str
) -> None:
    """Not a decline (402, recorded): malformed card data is a 400 and leaves no top-up."""
    body = {**ROUTES["top_up"].body(world), "card": {**CARD, **card}}
    refused_without_effect(world, lambda: send_json(world, "top_up", body), 400, code, param)
