"""Admin actions leave audit records, in the same transaction as the action."""

from __future__ import annotations

from sqlalchemy import select

from conftest import Api
from paywarden.services import audit, keys
from paywarden.store import schema


def _records(api: Api) -> list[tuple[str, str | None, str | None, str | None]]:
    a = schema.audit_records
    with api.store.engine.connect() as connection:
        rows = connection.execute(
            select(a.c.event_type, a.c.actor_type, a.c.actor_id, a.c.subject_id)
        ).all()
    return [tuple(row) for row in rows]


def test_creating_a_user_and_a_merchant_is_audited_with_the_admin_as_actor(sqlite_api: Api) -> None:
    before = _records(sqlite_api)
    user, _ = sqlite_api.user()
    merchant, _ = sqlite_api.merchant()
    added = [record for record in _records(sqlite_api) if record not in before]
    events = {(event, actor_type, subject) for event, actor_type, _, subject in added}
    assert ("user.created", "admin", user["id"]) in events
    assert ("merchant.created", "admin", merchant["id"]) in events
    key_events = [event for event, actor_type, _, _ in added if event == "api_key.created"]
    assert len(key_events) == 2  # one secret key each, issued by the admin
    assert all(actor_type == "admin" for _, actor_type, _, _ in added)
    report = sqlite_api.store.run(
        lambda uow: audit.verify(uow, keys.audit_public_keys(uow)), read_only=True
    )
    assert report.ok, report.problems


def test_a_refused_admin_action_leaves_no_audit_record(sqlite_api: Api) -> None:
    before = _records(sqlite_api)
    response = sqlite_api.post(
        "/v1/merchants",
        sqlite_api.admin_key,
        {"name": "Bad fee", "category": "coffee", "currency": "usd", "fee_bps": 10_001},
    )
    assert response.status_code == 400
    assert _records(sqlite_api) == before
