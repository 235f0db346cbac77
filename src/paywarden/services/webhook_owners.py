"""Who an event is about: the owners that may list it and whose endpoints receive it.

Ownership is read from the event's own data, never from who caused it: every party id the
object names (at most three levels deep) is resolved to the principals behind it.

- ``usr_``, ``mer_``, ``plt_``: that user, merchant or agent platform;
- ``agt_``: the agent's platform (a platform receives its agents' events);
- ``acct_``: the account's owner (a user's wallet, a merchant's account);
- ``hold_``: the owners of the hold's two accounts;
- ``pay_``, ``cs_``, ``ord_``: the payment's, checkout session's or order's user, merchant
  and agent (so its platform), read from their tables.

An id the store does not know contributes nothing, so a malformed or foreign object can only
narrow who receives an event, never widen it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select

from paywarden.kernel.ids import id_prefix
from paywarden.store import schema, tables_agents
from paywarden.store.unit_of_work import UnitOfWork

__all__ = ["OWNER_PREFIXES", "referenced_ids", "resolve_owners"]

OWNER_PREFIXES = frozenset({"usr", "mer", "plt"})
_PARTY_PREFIXES = OWNER_PREFIXES | {"agt", "acct", "hold", "pay", "cs", "ord"}
DEPTH_MAX = 3
IDS_MAX = 64


def referenced_ids(value: Any) -> set[str]:
    """Party ids named in ``value`` (dict keys are ignored), bounded in depth and count."""
    found: set[str] = set()
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack and len(found) < IDS_MAX:
        item, depth = stack.pop()
        if isinstance(item, str):
            if id_prefix(item) in _PARTY_PREFIXES:
                found.add(item)
        elif depth < DEPTH_MAX and isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
        elif depth < DEPTH_MAX and isinstance(item, list):
            stack.extend((child, depth + 1) for child in item[:IDS_MAX])
    return found


def resolve_owners(uow: UnitOfWork, value: Any) -> set[str]:
    """The ``usr_``/``mer_``/``plt_`` ids that own the object ``value``."""
    ids = referenced_ids(value)
    by_prefix: dict[str, set[str]] = {}
    for item in ids:
        by_prefix.setdefault(id_prefix(item) or "", set()).add(item)
    owners = {i for i in ids if id_prefix(i) in OWNER_PREFIXES}
    agents = set(by_prefix.get("agt", set()))
    accounts = set(by_prefix.get("acct", set()))
    for prefix, table_name in (("pay", "payments"), ("cs", "checkout_sessions"), ("ord", "orders")):
        for user, merchant, agent in _parties(uow, table_name, by_prefix.get(prefix, set())):
            owners.update(p for p in (user, merchant) if p)
            if agent:
                agents.add(agent)
    if by_prefix.get("hold"):
        h = schema.holds
        for row in uow.execute(
            select(h.c.source_account_id, h.c.destination_account_id).where(
                h.c.id.in_(sorted(by_prefix["hold"]))
            )
        ):
            accounts.update((row.source_account_id, row.destination_account_id))
    if accounts:
        a = schema.accounts
        rows = uow.execute(select(a.c.owner_id).where(a.c.id.in_(sorted(accounts))))
        owners.update(str(r.owner_id) for r in rows if r.owner_id)
    if agents:
        g = tables_agents.agents
        rows = uow.execute(select(g.c.platform_id).where(g.c.id.in_(sorted(agents))))
        owners.update(str(r.platform_id) for r in rows)
    return {o for o in owners if id_prefix(o) in OWNER_PREFIXES}


def _parties(
    uow: UnitOfWork, table_name: str, ids: Iterable[str]
) -> list[tuple[str | None, str | None, str | None]]:
    """(user, merchant, agent) of each row of ``table_name`` named in ``ids``. The commerce
    tables are looked up by name, so this module reads them without depending on them."""
    wanted = sorted(ids)
    table = schema.metadata.tables.get(table_name)
    if not wanted or table is None:
        return []
    columns = [table.c.get(name) for name in ("user_id", "merchant_id", "agent_id")]
    present = [c for c in columns if c is not None]
    if not present:
        return []
    rows = uow.execute(select(*present).where(table.c.id.in_(wanted)))
    result = []
    for row in rows:
        values = dict(zip((c.name for c in present), row, strict=True))
        result.append((values.get("user_id"), values.get("merchant_id"), values.get("agent_id")))
    return result
