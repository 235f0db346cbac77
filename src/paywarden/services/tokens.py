"""Issue and verify portable mandate tokens (:mod:`paywarden.trust.tokens`).

::

    token = tokens.issue(uow, mandate, agent_key.thumbprint, master_key,
                         issuer="https://pay.example")
    claims = tokens.verify(uow, token, uow.clock.now(), presenter_thumbprint=keyid)

Tokens are signed with the active ``mandate_token`` key (made on first use) and verify
against every mandate-token key the platform still trusts, so they keep verifying across
rotations; relying parties outside the platform use the published key set instead. A token
is a portable copy of an active mandate, never the authority: before money moves, the
mandate's status and usage are read from the database.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from paywarden.authorization.mandates import Mandate
from paywarden.services import keys
from paywarden.store.unit_of_work import UnitOfWork
from paywarden.trust.custody import Purpose
from paywarden.trust.tokens import (
    TTL_DEFAULT,
    MandateClaims,
    issue_mandate_token,
    verify_mandate_token,
)

__all__ = ["issue", "verification_jwks", "verify"]


def issue(
    uow: UnitOfWork,
    mandate: Mandate,
    agent_thumbprint: str,
    master_key: bytes,
    ttl: timedelta = TTL_DEFAULT,
    *,
    issuer: str,
) -> str:
    """The active ``mandate`` as a token bound to the agent key ``agent_thumbprint``, valid
    from now for ``ttl`` or until the mandate's window ends, whichever comes first."""
    signer = keys.active_signer(uow, Purpose.MANDATE_TOKEN, master_key)
    return issue_mandate_token(
        mandate, agent_thumbprint, signer, uow.clock.now(), ttl, issuer=issuer
    )


def verify(
    uow: UnitOfWork,
    token: str,
    now: datetime,
    presenter_thumbprint: str | None = None,
    *,
    issuer: str | None = None,
) -> MandateClaims:
    """Check a token at ``now`` against the platform's trusted mandate-token keys; with
    ``presenter_thumbprint``, it must be bound to the presenter's key."""
    return verify_mandate_token(
        token,
        verification_jwks(uow),
        now,
        presenter_thumbprint=presenter_thumbprint,
        issuer=issuer,
    )


def verification_jwks(uow: UnitOfWork) -> dict[str, list[dict[str, Any]]]:
    """:func:`keys.verification_keys` narrowed to the ``mandate_token`` purpose: a receipt
    or cart key never vouches for a mandate token, whatever its header says."""
    token_kids = {r.kid for r in keys.list_keys(uow) if r.purpose == Purpose.MANDATE_TOKEN}
    trusted = keys.verification_keys(uow)["keys"]
    return {"keys": [jwk for jwk in trusted if jwk["kid"] in token_kids]}
