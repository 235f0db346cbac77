"""What the ACP discovery document lists: the merchants served under ``/acp/{merchant_id}``.

The document is public (ACP: no authentication at discovery). ACP's discovery RFC warns a
seller platform against listing its sellers; paywarden lists them anyway because its
merchants are there to be found by agents (their catalogs are searchable too), and the
issue asks for the base URLs. The list is bounded (``limit``) and ordered by id.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from paywarden.store import schema
from paywarden.store.unit_of_work import UnitOfWork

__all__ = ["LISTED_MAX", "ListedMerchant", "listed_merchants"]

LISTED_MAX = 1_000


@dataclass(frozen=True, slots=True)
class ListedMerchant:
    id: str
    name: str
    currency: str
    livemode: bool


def listed_merchants(uow: UnitOfWork, *, limit: int = LISTED_MAX) -> list[ListedMerchant]:
    m = schema.merchants
    rows = uow.execute(
        select(m.c.id, m.c.name, m.c.currency, m.c.livemode).order_by(m.c.id).limit(limit)
    )
    return [ListedMerchant(row.id, row.name, row.currency, bool(row.livemode)) for row in rows]
