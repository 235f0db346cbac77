"""Privacy over the API, on SQLite and PostgreSQL: a user exports everything stored about
them (and no secret), and erases what no rule requires keeping; the ledger, the payments and
the audit chain survive intact; nobody else may do either (404).

The world is made through the services (an agent needs a signed request over HTTP, which
these tests are not about): a funded user, a merchant, an agent under a consented mandate
with a conversation excerpt, one payment, a refund, a captured and a pending hold.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select

from conftest import Api
from paywarden.authorization.risk import RiskConfig
from paywarden.kernel.principals import Principal, PrincipalType
from paywarden.services import agents, audit, identity, keys, mandates, payments
from paywarden.services.privacy import ERASED_NAME, erased_email
from paywarden.store import schema
from paywarden.store.tables_mandates import mandates as mandates_table
from paywarden.store.tables_mandates import payments as payment_rows
from paywarden.store.unit_of_work import UnitOfWork
from paywarden.trust.keys import ed25519_private_key

CARD = "4242424242424242"
EXCERPT = "a birthday present for my sister Alice, keep it secret"
QUIET = RiskConfig(new_merchant_step_up=False)


def _principal(kind: PrincipalType, owner: str | None) -> Principal:
    return Principal(kind, owner, False, "key_test", identity.API_VERSION)


@dataclass
class World:
    user: dict[str, Any]
    user_key: str
    merchant: dict[str, Any]
    merchant_key: str
    agent_id: str
    mandate_id: str
    payment: dict[str, Any]
    captured_hold: str
    pending_hold: str


def _world(api: Api) -> World:
    user, user_key = api.user(funded=50_000)
    merchant, merchant_key = api.merchant()
    admin = _principal(PrincipalType.ADMIN, None)
    user_principal = _principal(PrincipalType.USER, user["id"])

    def agent_and_mandate(uow: UnitOfWork) -> tuple[str, str]:
        origin = f"https://agents-{secrets.token_hex(4)}.example"
        made, made_key = agents.create_platform(uow, admin, name="Agents", origin=origin)
        platform = Principal(
            PrincipalType.PLATFORM, made.id, False, made_key.id, identity.API_VERSION
        )
        seed = secrets.token_bytes(32)
        agent = agents.register_agent(
            uow, platform, name="Shopper", keys=[ed25519_private_key(seed).public_jwk()]
        )
        view = mandates.request_mandate(
            uow,
            _principal(PrincipalType.AGENT, agent.id),
            user=user["id"],
            currency="usd",
            constraints=[{"type": "payment.budget", "currency": "usd", "max": 20_000}],
            timezone="UTC",
            conversation_excerpt=EXCERPT,
        )
        mandates.consent(uow, user_principal, view.mandate.id)
        return agent.id, view.mandate.id

    agent_id, mandate_id = api.store.run(agent_and_mandate)
    record = api.store.run(
        lambda uow: payments.pay(
            uow,
            _principal(PrincipalType.AGENT, agent_id),
            mandate_id,
            merchant["id"],
            1_500,
            "usd",
            master_key=bytes(32),
            issuer="https://paywarden.test",
            risk=QUIET,
        )
    )
    assert record.status == "succeeded", record
    refund = api.post("/v1/refunds", merchant_key, {"hold": record.hold_id, "amount": 500})
    assert refund.status_code == 201, refund.text
    hold = api.post(
        "/v1/holds", user_key, {"destination": merchant["id"], "amount": 700, "currency": "usd"}
    )
    assert hold.status_code == 201, hold.text
    return World(
        user,
        user_key,
        merchant,
        merchant_key,
        agent_id,
        mandate_id,
        payments.wire_payment(record),
        str(record.hold_id),
        str(hold.json()["id"]),
    )


@pytest.fixture
def world(api: Api) -> World:
    return _world(api)


def _ids(items: list[dict[str, Any]]) -> set[str]:
    return {str(item["id"]) for item in items}


def test_export_holds_everything_about_the_user_and_no_secret(api: Api, world: World) -> None:
    response = api.get(f"/v1/users/{world.user['id']}/export", world.user_key)
    assert response.status_code == 200, response.text
    body = response.json()

    assert body["user"]["id"] == world.user["id"]
    assert body["user"]["email"] == world.user["email"]
    assert body["user"]["name"] == world.user["name"]
    (wallet,) = body["wallets"]
    assert wallet["balance"] == {"posted": 49_000, "pending": 700, "available": 48_300}
    kinds = sorted(item["kind"] for item in body["transfers"])
    assert kinds == ["capture", "refund", "top_up"], kinds
    assert all(
        sum(p["amount"] for p in item["postings"]) == 0 and item["postings"]
        for item in body["transfers"]
    )
    assert _ids(body["holds"]) == {world.captured_hold, world.pending_hold}
    assert [item["amount"] for item in body["refunds"]] == [500]
    assert [(t["amount"], t["card_last4"]) for t in body["top_ups"]] == [(50_000, "4242")]
    (mandate,) = body["mandates"]
    assert (mandate["id"], mandate["status"]) == (world.mandate_id, "active")
    assert mandate["conversation_excerpt"] == EXCERPT
    lifetime = next(u for u in mandate["usage"] if u["period"] == "lifetime")
    assert (lifetime["amount"], lifetime["count"]) == (1_500, 1)
    assert [(p["id"], p["status"]) for p in body["payments"]] == [
        (world.payment["id"], "succeeded")
    ]
    assert _ids(body["agents"]) == {world.agent_id}
    (key,) = body["api_keys"]
    assert key["secret_hint"].startswith("pw_test_") and key["revoked_at"] is None
    types = {record["event_type"] for record in body["audit_records"]}
    assert {"user.created", "api_key.created", "mandate.granted", "payment.succeeded"} <= types

    text = json.dumps(body)
    assert world.user_key not in text
    assert world.user_key[8:20] not in text  # not even the middle of the secret
    assert "secret_hash" not in text and "card_token" not in text and CARD not in text

    as_admin = api.get(f"/v1/users/{world.user['id']}/export", api.admin_key)
    assert as_admin.status_code == 200
    assert as_admin.json()["user"]["id"] == world.user["id"]


def test_nobody_else_exports_or_erases_a_user(api: Api, world: World) -> None:
    other, other_key = api.user()
    target = world.user["id"]
    for key in (other_key, world.merchant_key):
        exported = api.get(f"/v1/users/{target}/export", key)
        erased = api.post(f"/v1/users/{target}/erase", key)
        assert (exported.status_code, erased.status_code) == (404, 404)
        assert exported.json()["error"]["code"] == erased.json()["error"]["code"]
    assert api.get(f"/v1/users/{target}", world.user_key).status_code == 200
    unknown = api.get("/v1/users/usr_nobody/export", api.admin_key)
    assert unknown.status_code == 404
    assert api.get(f"/v1/users/{other['id']}/export", other_key).status_code == 200


def _ledger_ok(uow: UnitOfWork) -> None:
    p, a = schema.postings, schema.accounts
    sums = uow.execute(select(p.c.currency, func.sum(p.c.amount)).group_by(p.c.currency)).all()
    assert sums and all(int(total) == 0 for _currency, total in sums), sums
    balances = dict(
        uow.execute(select(p.c.account_id, func.sum(p.c.amount)).group_by(p.c.account_id)).all()
    )
    for row in uow.execute(select(a.c.id, a.c.posted)):
        assert int(row.posted) == int(balances.get(row.id, 0)), row


def _counts(uow: UnitOfWork) -> dict[str, int]:
    tables = {
        "transfers": schema.transfers,
        "postings": schema.postings,
        "payments": payment_rows,
        "holds": schema.holds,
        "refunds": schema.refunds,
        "audit": schema.audit_records,
    }
    return {
        name: int(uow.execute(select(func.count()).select_from(table)).scalar_one())
        for name, table in tables.items()
    }


def test_erase_keeps_the_ledger_and_audit_and_forgets_the_person(api: Api, world: World) -> None:
    user_id = world.user["id"]
    path = f"/v1/users/{user_id}/erase"
    refused = api.post(path, world.user_key)
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "money_pending"
    voided = api.post(f"/v1/holds/{world.pending_hold}/void", world.user_key)
    assert voided.status_code == 200, voided.text
    before = api.store.run(_counts, read_only=True)

    erased = api.post(path, world.user_key)
    assert erased.status_code == 200, erased.text
    summary = erased.json()
    assert summary["mandates_revoked"] == [world.mandate_id]
    assert len(summary["api_keys_revoked"]) == 1

    # The user can no longer authenticate; their mandate is revoked and pays nothing.
    assert api.get(f"/v1/users/{user_id}", world.user_key).status_code == 401
    view = api.get(f"/v1/mandates/{world.mandate_id}", api.admin_key).json()
    assert (view["status"], view["conversation_excerpt"]) == ("revoked", None)
    late = api.store.run(
        lambda uow: payments.pay(
            uow,
            _principal(PrincipalType.AGENT, world.agent_id),
            world.mandate_id,
            world.merchant["id"],
            100,
            "usd",
            master_key=bytes(32),
            issuer="https://paywarden.test",
            risk=QUIET,
        )
    )
    assert (late.status, late.reasons) == ("declined", ("mandate_not_active",))

    # The person is gone: profile blanked, excerpt removed, events scrubbed.
    user = api.get(f"/v1/users/{user_id}", api.admin_key).json()
    assert (user["name"], user["email"]) == (ERASED_NAME, erased_email(user_id))
    assert user["wallets"][0]["balance"]["posted"] == 49_000  # the money stays, on the ledger

    def stored_text(uow: UnitOfWork) -> str:
        events = [row.data for row in uow.execute(select(schema.events.c.data))]
        excerpts = list(uow.execute(select(mandates_table.c.conversation_excerpt)).scalars())
        return json.dumps([events, excerpts])

    text = api.store.run(stored_text, read_only=True)
    assert world.user["email"] not in text and EXCERPT not in text
    assert world.user["name"] not in text

    # The ledger, the payments and the audit log are intact; the chain still verifies.
    after = api.store.run(_counts, read_only=True)
    assert after["transfers"] == before["transfers"] and after["postings"] == before["postings"]
    assert after["payments"] == before["payments"] + 1  # the late, declined attempt
    assert after["holds"] == before["holds"] and after["refunds"] == before["refunds"]
    assert after["audit"] > before["audit"]
    api.store.run(_ledger_ok, read_only=True)
    report = api.store.run(
        lambda uow: audit.verify(uow, keys.audit_public_keys(uow)), read_only=True
    )
    assert report.ok, report
    types = api.store.run(
        lambda uow: list(
            uow.execute(
                select(schema.audit_records.c.event_type).where(
                    schema.audit_records.c.subject_id == user_id
                )
            ).scalars()
        ),
        read_only=True,
    )
    assert "user.erased" in types and "user.created" in types
    exported = api.get(f"/v1/users/{user_id}/export", api.admin_key).json()
    assert {p["id"] for p in exported["payments"]} == {world.payment["id"], late.id}
    assert exported["user"]["email"] == erased_email(user_id)


def test_an_admin_erases_a_user(api: Api) -> None:
    user, user_key = api.user(funded=1_000)
    erased = api.post(f"/v1/users/{user['id']}/erase", api.admin_key)
    assert erased.status_code == 200, erased.text
    assert api.get(f"/v1/users/{user['id']}", user_key).status_code == 401
    again = api.post(f"/v1/users/{user['id']}/erase", api.admin_key)
    assert again.status_code == 200, again.text
    assert again.json()["api_keys_revoked"] == [] and again.json()["mandates_revoked"] == []
