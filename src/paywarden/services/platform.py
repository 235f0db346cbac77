"""The platform's own state: its instance secret and the first admin key."""

from __future__ import annotations

import secrets

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from paywarden.kernel.principals import PrincipalType
from paywarden.services.identity import issue_key
from paywarden.services.records import ApiKeyRecord
from paywarden.store import schema
from paywarden.store.unit_of_work import UnitOfWork

__all__ = ["bootstrap_admin", "instance_secret"]

_SECRET_NAME = "instance_secret"  # noqa: S105 -- a row name, not a secret


def instance_secret(uow: UnitOfWork) -> bytes:
    """32 random bytes made once per installation: keys card tokens and request
    fingerprints, so neither can be reversed by someone holding only the database dump
    of another installation."""
    s = schema.settings_table
    found = uow.execute(select(s.c.value).where(s.c.name == _SECRET_NAME)).scalar_one_or_none()
    if found is None:
        dialect_insert = pg_insert if uow.dialect == "postgresql" else sqlite_insert
        uow.execute(
            dialect_insert(s)
            .values(name=_SECRET_NAME, value=secrets.token_hex(32))
            .on_conflict_do_nothing()
        )
        found = uow.execute(select(s.c.value).where(s.c.name == _SECRET_NAME)).scalar_one()
    return bytes.fromhex(str(found))


def bootstrap_admin(uow: UnitOfWork, *, livemode: bool = False) -> ApiKeyRecord | None:
    """Create the first admin key of a mode, or ``None`` when one exists already."""
    k = schema.api_keys
    existing = uow.execute(
        select(func.count()).where(
            k.c.principal_type == PrincipalType.ADMIN.value, k.c.livemode == livemode
        )
    ).scalar_one()
    if existing:
        return None
    return issue_key(uow, PrincipalType.ADMIN, None, livemode)
