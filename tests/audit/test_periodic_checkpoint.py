"""`serve` seals the audit log with signed checkpoints that verify with the platform's keys."""

from __future__ import annotations

from conftest import Api
from paywarden.api.app import seal_audit_log
from paywarden.services import audit, keys


def test_sealing_writes_a_checkpoint_signed_by_the_platform_key(sqlite_api: Api) -> None:
    sqlite_api.user()  # some audited activity
    runtime = sqlite_api.client.app.state.runtime  # type: ignore[attr-defined]
    sqlite_api.store.run(lambda uow: seal_audit_log(uow, runtime))
    sqlite_api.user()
    sqlite_api.store.run(lambda uow: seal_audit_log(uow, runtime))
    report = sqlite_api.store.run(
        lambda uow: audit.verify(uow, keys.audit_public_keys(uow)), read_only=True
    )
    assert report.ok, report.problems
    assert report.checkpoints == 2
    assert report.signatures_verified == 2
    assert report.signatures_unverified == 0
