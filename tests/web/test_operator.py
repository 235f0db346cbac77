"""The operator view: only an admin-key session sees it; "Verify now" checks the audit log
and names the first bad record when one was tampered with."""

from __future__ import annotations

from sqlalchemy import select, update

from conftest import Api
from paywarden.kernel.clock import FakeClock
from paywarden.store import schema
from web_support import Browser, csrf_of, person, shop, signed_in_with_key


def _operator(api: Api) -> Browser:
    return signed_in_with_key(api, api.admin_key, "/operator")


def test_the_operator_sees_vitals_and_risk_decisions(api: Api, clock: FakeClock) -> None:
    world = shop(api, clock)
    for _ in range(4):  # the default velocity rule steps up the 4th payment in 10 minutes
        world.pay(100)
    page = _operator(api).get("/operator")
    assert page.status_code == 200
    assert 'id="vitals"' in page.text
    assert "risk_mandate_velocity" in page.text or "risk_agent_velocity" in page.text


def test_verify_now_passes_then_names_the_first_bad_record(api: Api, clock: FakeClock) -> None:
    shop(api, clock)
    operator = _operator(api)
    token = csrf_of(operator.get("/operator").text)
    verified = operator.post("/operator/audit", {"csrf_token": token})
    assert "The audit log verifies" in verified.text
    a = schema.audit_records
    first = api.store.run(
        lambda uow: uow.execute(select(a.c.partition, a.c.sequence).limit(1)).one()
    )
    api.store.run(
        lambda uow: uow.execute(
            update(a)
            .where(a.c.partition == first.partition, a.c.sequence == first.sequence)
            .values(event_type="user.tampered")
        )
    )
    failed = operator.post("/operator/audit", {"csrf_token": token})
    assert "does NOT verify" in failed.text
    assert f"partition {first.partition}, sequence {first.sequence}" in failed.text


def test_only_an_admin_session_reaches_the_operator_view(api: Api) -> None:
    assert Browser(api).get("/operator").headers["location"] == "/signin?next=/operator"
    user = person(api)
    assert user.browser.get("/operator").status_code == 404
    token = csrf_of(user.browser.get("/home").text)
    assert user.browser.post("/operator/audit", {"csrf_token": token}).status_code == 404
    operator = _operator(api)
    assert operator.post("/operator/audit", {"csrf_token": ""}).status_code == 403
    assert operator.get("/home").status_code == 303  # an operator is not a user
