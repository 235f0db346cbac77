"""Who may touch which money. Objects a principal may not see answer 404, not 403, so
that ids of other people's objects leak nothing."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select

from paywarden.kernel.errors import NotFound, PermissionDenied
from paywarden.kernel.principals import Principal, PrincipalType
from paywarden.payments.ledger import Account
from paywarden.store import schema
from paywarden.store.unit_of_work import UnitOfWork

__all__ = ["owned_account_ids", "owns", "require_admin", "require_owner", "require_type", "visible"]


def require_admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise PermissionDenied("this action needs an admin key")


def require_type(principal: Principal, *allowed: PrincipalType) -> None:
    if not principal.is_admin and principal.type not in allowed:
        names = ", ".join(kind.value for kind in allowed)
        raise PermissionDenied(f"this action needs an admin key or a {names} key")


def owns(principal: Principal, account: Account) -> bool:
    return principal.is_admin or (principal.id is not None and account.owner_id == principal.id)


def require_owner(principal: Principal, account: Account, param: str) -> None:
    """The principal must own ``account``; an account it cannot see is 'missing'."""
    if account.livemode != principal.livemode:
        raise NotFound(f"no such account: {account.id}", param=param)
    if not owns(principal, account):
        raise NotFound(f"no such account: {account.id}", param=param)


def visible(principal: Principal, accounts: Iterable[Account]) -> bool:
    """Whether the principal is a party to an object touching these accounts."""
    return any(owns(principal, account) for account in accounts)


def owned_account_ids(uow: UnitOfWork, principal: Principal) -> list[str] | None:
    """The accounts a principal owns, or ``None`` for 'all of them' (admin)."""
    if principal.is_admin:
        return None
    a = schema.accounts
    rows = uow.execute(
        select(a.c.id).where(a.c.owner_id == principal.id, a.c.livemode == principal.livemode)
    )
    return [str(row.id) for row in rows]
