"""What the proofs share: a world made through the services (a funded user, a merchant, an
agent), mandates granted in one call, payments with risk rules that never fire, the commit
markers of the outbox, and RFC 9421 signatures for a real server's authority.

Everything here takes plain ids, so child processes started with ``spawn`` rebuild what they
need from strings.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

# Import the services the way a server process does, through the app: a spawned child that
# imported services.payments first would hit the import cycle services.payments <->
# services.approvals (work in progress elsewhere); harmless once that cycle is gone.
import paywarden.api.app  # noqa: F401
from paywarden.authorization.risk import RiskConfig
from paywarden.kernel.principals import Principal, PrincipalType
from paywarden.services import agents, identity, ledger, mandates, payments, platform
from paywarden.services.payments import PaymentRecord
from paywarden.store import schema
from paywarden.store.unit_of_work import Store, UnitOfWork
from paywarden.trust.keys import ed25519_private_key

MASTER_KEY = bytes(range(32))
ISSUER = "https://paywarden.test"
CARD = ledger.Card("4242424242424242", 12, 2099)
# Risk rules that never fire: these proofs are about the mandate's limits and its lock alone.
NO_RISK = RiskConfig(
    agent_step_up_min=1_000_000,
    agent_deny_min=1_000_000,
    mandate_step_up_min=1_000_000,
    mandate_deny_min=1_000_000,
    outlier_history_min=1_000,
    new_merchant_step_up=False,
    failure_step_up_min=1_000_000,
    failure_deny_min=1_000_000,
)
PAYMENT_EVENTS = ("payment.succeeded", "payment.declined", "payment.requires_confirmation")


def daily_budget(limit: int) -> dict[str, Any]:
    return {"type": "paywarden.period_budget", "period": "daily", "currency": "usd", "max": limit}


def principal(kind: PrincipalType, owner: str | None, key_id: str = "kid") -> Principal:
    return Principal(kind, owner, False, key_id, identity.API_VERSION)


@dataclass(frozen=True)
class World:
    """Ids only (picklable): the user, the merchant, the agent and its key's seed."""

    user_id: str
    user_key_id: str
    merchant_id: str
    agent_id: str
    agent_seed: bytes

    @property
    def user(self) -> Principal:
        return principal(PrincipalType.USER, self.user_id, self.user_key_id)

    @property
    def agent(self) -> Principal:
        return principal(PrincipalType.AGENT, self.agent_id)


def make_world(store: Store, *, funded: int) -> World:
    admin = principal(PrincipalType.ADMIN, None, "key_admin")
    seed = secrets.token_bytes(32)

    def setup(uow: UnitOfWork) -> World:
        tag = secrets.token_hex(4)
        user, user_key = identity.create_user(
            uow, email=f"proof-{tag}@example.com", name="Payer", currency="usd", livemode=False
        )
        merchant = identity.create_merchant(
            uow, name="Coffee", category="coffee", currency="usd", fee_bps=0, livemode=False
        )[0]
        made, made_key = agents.create_platform(
            uow, admin, name="Agents", origin=f"https://agents-{tag}.example"
        )
        agent = agents.register_agent(
            uow,
            principal(PrincipalType.PLATFORM, made.id, made_key.id),
            name="Shopper",
            keys=[ed25519_private_key(seed).public_jwk()],
        )
        ledger.top_up(
            uow,
            principal(PrincipalType.USER, user.id, user_key.id),
            amount=funded,
            currency="usd",
            card=CARD,
            token_key=platform.instance_secret(uow),
        )
        return World(user.id, user_key.id, merchant.id, agent.id, seed)

    world: World = store.run(setup)
    return world


def grant(store: Store, world: World, constraints: list[dict[str, Any]]) -> str:
    """A mandate the user consented to; its id."""
    view = store.run(
        lambda uow: mandates.request_mandate(
            uow,
            world.agent,
            user=world.user_id,
            currency="usd",
            constraints=constraints,
            timezone="UTC",
        )
    )
    mandate_id: str = view.mandate.id
    store.run(lambda uow: mandates.consent(uow, world.user, mandate_id))
    return mandate_id


def pay(store: Store, world: World, mandate_id: str, amount: int) -> PaymentRecord:
    record: PaymentRecord = store.run(
        lambda uow: payments.pay(
            uow,
            world.agent,
            mandate_id,
            world.merchant_id,
            amount,
            "usd",
            master_key=MASTER_KEY,
            issuer=ISSUER,
            risk=NO_RISK,
        )
    )
    return record


def captured(uow: UnitOfWork, merchant_id: str) -> tuple[int, int]:
    """(sum of capture transfers into the merchant's account, that account's posted balance)."""
    a, t = schema.accounts, schema.transfers
    account = uow.execute(select(a.c.id, a.c.posted).where(a.c.owner_id == merchant_id)).one()
    total = uow.execute(
        select(func.coalesce(func.sum(t.c.amount), 0)).where(
            t.c.kind == "capture", t.c.destination_account_id == account.id
        )
    ).scalar_one()
    return int(total), int(account.posted)
