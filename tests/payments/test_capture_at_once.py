"""``holds.create_and_capture`` (how an agent's payment pays) leaves exactly what
``create_hold`` then ``capture_hold`` leave: the same hold row, transfer, postings, balances
and events, and the same refusals, whatever the amount, the fee and the funds already
reserved by another hold. Both paths run on twin worlds in one database; every id is
replaced by its role before the comparison."""

from __future__ import annotations

import contextlib
import json
import secrets
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from payment_support import CARD
from paywarden.kernel.errors import PaywardenError
from paywarden.kernel.principals import Principal, PrincipalType
from paywarden.services import holds, identity, ledger, platform
from paywarden.store import schema
from paywarden.store.unit_of_work import Store, UnitOfWork

DESCRIPTION = "payment pay_x under mandate mnd_x"


def _twin(uow: UnitOfWork, fee_bps: int, funded: int) -> dict[str, Any]:
    """A funded user and a merchant charging ``fee_bps``; their principals and accounts."""
    tag = secrets.token_hex(4)
    user, user_key = identity.create_user(
        uow, email=f"twin-{tag}@example.com", name="Twin", currency="usd", livemode=False
    )
    merchant, merchant_key = identity.create_merchant(
        uow, name=f"Shop {tag}", category="coffee", currency="usd", fee_bps=fee_bps, livemode=False
    )
    payer = Principal(PrincipalType.USER, user.id, False, user_key.id, identity.API_VERSION)
    payee = Principal(
        PrincipalType.MERCHANT, merchant.id, False, merchant_key.id, identity.API_VERSION
    )
    if funded:
        secret = platform.instance_secret(uow)
        ledger.top_up(uow, payer, amount=funded, currency="usd", card=CARD, token_key=secret)
    assert merchant.account is not None
    return {"payer": payer, "payee": payee, "merchant": merchant.id, "account": merchant.account.id}


def _pay(
    store: Store, twin: dict[str, Any], amount: int, *, at_once: bool, by_account: bool = False
) -> str | None:
    """Pay ``amount`` to the merchant, named by its id or (``by_account``) its account's;
    the refusal's code, or None."""
    destination = twin["account"] if by_account else twin["merchant"]

    def work(uow: UnitOfWork) -> None:
        if at_once:
            holds.create_and_capture(
                uow,
                twin["payer"],
                twin["payee"],
                destination=destination,
                amount=amount,
                currency="usd",
                description=DESCRIPTION,
            )
            return
        placed = holds.create_hold(
            uow,
            twin["payer"],
            destination=destination,
            amount=amount,
            currency="usd",
            description=DESCRIPTION,
        )
        holds.capture_hold(uow, twin["payee"], placed.hold.id)

    try:
        store.run(work)
    except PaywardenError as error:
        return error.code
    return None


def _left_behind(store: Store, twin: dict[str, Any]) -> str:
    """Every row the payment wrote for this twin, ids replaced by roles, as JSON."""

    def read(uow: UnitOfWork) -> dict[str, Any]:
        a, h, t, p, e = (
            schema.accounts,
            schema.holds,
            schema.transfers,
            schema.postings,
            schema.events,
        )
        owners = [str(twin["payer"].id), twin["merchant"]]
        accounts = uow.connection.execute(
            select(a).where(a.c.owner_id.in_(owners)).order_by(a.c.kind)
        ).all()
        ids = [row.id for row in accounts]
        hold_rows = uow.connection.execute(
            select(h).where(h.c.source_account_id.in_(ids)).order_by(h.c.amount)
        ).all()
        transfers = uow.connection.execute(
            select(t).where(t.c.source_account_id.in_(ids), t.c.kind == "capture")
        ).all()
        # By amount, then by account (the twin's in their order, then the platform's fee
        # account): a 1-unit fee and a 1-unit share tie on amount, and the store returns
        # ties in the order of random ids.
        postings = sorted(
            uow.connection.execute(
                select(p.c.account_id, p.c.amount, p.c.currency).where(
                    p.c.transfer_id.in_([row.id for row in transfers])
                )
            ).all(),
            key=lambda row: (
                row.amount,
                ids.index(row.account_id) if row.account_id in ids else len(ids),
            ),
        )
        events = uow.connection.execute(
            select(e.c.type, e.c.data).where(e.c.type.like("hold.%")).order_by(e.c.sequence)
        ).all()
        hold_ids = {row.id for row in hold_rows}
        mine = [row for row in events if row.data["object"]["id"] in hold_ids]
        return {
            "accounts": [
                {k: v for k, v in row._mapping.items() if k not in {"created_at"}}
                for row in accounts
            ],
            "holds": [dict(row._mapping) for row in hold_rows],
            "transfers": [dict(row._mapping) for row in transfers],
            "postings": [dict(row._mapping) for row in postings],
            "events": [dict(row._mapping) for row in mine],
        }

    found = store.run(read, read_only=True)
    text = json.dumps(found, default=str, sort_keys=True)
    roles: dict[str, str] = {str(twin["payer"].id): "<user>", twin["merchant"]: "<merchant>"}
    for kind in ("accounts", "holds", "transfers"):
        for index, row in enumerate(found[kind]):
            roles[row["id"]] = f"<{kind}:{index}>"
    for value, role in sorted(roles.items(), key=lambda item: -len(item[0])):
        if value:
            text = text.replace(value, role)
    return text


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    fee_bps=st.sampled_from([0, 1, 100, 250, 9_999, 10_000]),
    funded=st.integers(0, 5_000),
    reserved=st.integers(0, 3_000),
    amount=st.integers(1, 6_000),
    by_account=st.booleans(),
)
def test_capture_at_once_leaves_what_two_steps_leave(
    sqlite_store: Store, fee_bps: int, funded: int, reserved: int, amount: int, by_account: bool
) -> None:
    outcomes, rows = [], []
    for at_once in (False, True):
        twin = sqlite_store.run(lambda uow: _twin(uow, fee_bps, funded))
        if reserved:  # another hold of the payer's, pending: its reservation stays
            _reserve(sqlite_store, twin, reserved)
        outcomes.append(_pay(sqlite_store, twin, amount, at_once=at_once, by_account=by_account))
        rows.append(_left_behind(sqlite_store, twin))
    assert outcomes[0] == outcomes[1]
    assert outcomes[0] not in {"invalid_request", "invalid_id"}  # the payee was understood
    assert rows[0] == rows[1]
    assert ("<holds:" in rows[0]) == (outcomes[0] is None or 0 < reserved <= funded)


def _reserve(store: Store, twin: dict[str, Any], amount: int) -> None:
    def work(uow: UnitOfWork) -> None:
        holds.create_hold(
            uow, twin["payer"], destination=twin["merchant"], amount=amount, currency="usd"
        )

    with contextlib.suppress(PaywardenError):  # too little funded: none, in both twins alike
        store.run(work)
