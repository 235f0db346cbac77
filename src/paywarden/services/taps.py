"""A terminal submits a tap: verify, judge, move the money, remember the message.

::

    body = taps.submit(uow, terminal, tap_data, cryptogram, master_key=..., issuer=...)

:func:`submit` runs in one transaction:

1. the message hash (:func:`paywarden.trust.tap.message_hash`) is looked up: a message seen
   before gets its stored answer, whatever it was, and nothing else happens;
2. the terminal row (still active: a terminal revoked after the request was admitted
   submits nothing), the device row, then the token row are locked ``FOR UPDATE`` (the
   order revocation uses), and the hash is looked up again: an identical message that
   committed while this one waited is answered from its row;
3. :func:`paywarden.trust.tap.judge` (cryptogram, token and device status, domain, terminal,
   counter, window, limits), then the wallet's funds;
4. approved: at a point of sale a hold captured at once; at a gate the fare (see below);
5. the token's counter advances (when the verdict says so), the tap row with its answer is
   inserted (``message_hash`` unique), the audit record and the ``tap.approved`` or
   ``tap.declined`` event: all in this one transaction, so the counter, the capture and the
   remembered answer commit together or not at all. A crash before the commit leaves no
   trace (the retry runs afresh); after it, the retry finds the row.

Gates (``kind`` ``gate``, fare rules in :func:`paywarden.trust.tap.fare_rule`): a tap in
signs the fare it authorizes (``entry_amount``: the flat fare, charged at once, or the
distance maximum, held); a tap out at the same operator signs 0 and closes the open journey
(``ent_``), capturing the distance fare from the hold and releasing the rest.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from paywarden.adapters.ids import new_id
from paywarden.kernel.clock import rfc3339
from paywarden.kernel.errors import NotFound, PermissionDenied
from paywarden.kernel.invariant import invariant
from paywarden.kernel.principals import Principal
from paywarden.services import audit, devices, holds
from paywarden.services.devices import DeviceRecord, TokenRecord
from paywarden.store.outbox import emit
from paywarden.store.tables_devices import device_tokens, journeys, taps
from paywarden.store.unit_of_work import UnitOfWork
from paywarden.trust.keys import parse_public_jwk
from paywarden.trust.tap import (
    COUNTER_WINDOW_DEFAULT,
    Limits,
    TapData,
    TapState,
    Verdict,
    distance_fare,
    entry_amount,
    judge,
    message_hash,
    verify_cryptogram,
)

__all__ = ["get_tap", "submit"]


class _Outcome:
    """What the money step produced for the tap row."""

    def __init__(self, verdict: Verdict, kind: str) -> None:
        self.verdict = verdict
        self.kind = kind
        self.hold_id: str | None = None
        self.transfer_id: str | None = None
        self.journey_id: str | None = None
        self.receipt: str | None = None
        self.fare: int | None = None
        self.tap_id = new_id("tap")

    def decline(self, reason: str) -> None:
        self.verdict = Verdict(False, (reason,), self.verdict.flagged, True)


def _stored(uow: UnitOfWork, digest: str) -> dict[str, Any] | None:
    row = uow.execute(select(taps.c.response).where(taps.c.message_hash == digest)).first()
    return dict(row.response) if row is not None else None


def _locked(uow: UnitOfWork, token_id: str) -> tuple[TokenRecord | None, DeviceRecord | None]:
    """The token's device, then the token, locked in the order revocation takes them."""
    token = devices.get_token(uow, token_id)
    if token is None:
        return None, None
    device = devices.load_device(uow, token.device_id, lock=True)
    return devices.get_token(uow, token_id, lock=True), device


def submit(
    uow: UnitOfWork,
    terminal: DeviceRecord,
    tap: TapData,
    cryptogram: str,
    *,
    master_key: bytes,
    issuer: str,
    counter_window: int = COUNTER_WINDOW_DEFAULT,
) -> dict[str, Any]:
    """Judge and settle one tap message; its answer (see the module docstring)."""
    if not terminal.is_terminal or terminal.kind == "table_tag":
        raise PermissionDenied("only a merchant's terminal or gate submits taps")
    digest = message_hash(tap, cryptogram)
    known = _stored(uow, digest)
    if known is not None:
        return known
    terminal = devices.current(uow, terminal)
    token, device = _locked(uow, tap.token)
    known = _stored(uow, digest)
    if known is not None:
        return known
    outcome = _Outcome(
        judge(tap, _state(uow, terminal, tap, cryptogram, token, device, counter_window)),
        _kind(uow, terminal, token),
    )
    if outcome.verdict.approved and token is not None and device is not None:
        _move_money(uow, terminal, tap, token, device, outcome, master_key, issuer)
    if outcome.verdict.advance_counter and token is not None:
        advanced = uow.execute(
            update(device_tokens)
            .where(device_tokens.c.id == token.id, device_tokens.c.last_counter < tap.counter)
            .values(last_counter=tap.counter)
        )
        invariant(advanced.rowcount == 1, f"token {token.id}'s counter moved under its lock")
    return _remember(uow, terminal, tap, digest, token, outcome)


def _state(
    uow: UnitOfWork,
    terminal: DeviceRecord,
    tap: TapData,
    cryptogram: str,
    token: TokenRecord | None,
    device: DeviceRecord | None,
    counter_window: int,
) -> TapState:
    valid = (
        device is not None
        and device.public_jwk is not None
        and verify_cryptogram(parse_public_jwk(device.public_jwk), tap, cryptogram)
    )
    limits = (
        Limits(device.currency, device.tap_limit, device.daily_limit)
        if device is not None
        else Limits(None, None, None)
    )
    spent = 0
    if device is not None and limits.currency is not None:
        spent = devices.spent_today(uow, device.id, limits.currency, uow.clock.now())
    return TapState(
        cryptogram_valid=valid,
        token_status=token.status if token is not None else None,
        device_status=device.status if device is not None else None,
        terminal_kind=terminal.kind,
        terminal_id=terminal.id,
        terminal_merchant=str(terminal.merchant_id),
        last_counter=token.last_counter if token is not None else 0,
        counter_window=counter_window,
        limits=limits,
        spent_today=spent,
    )


def _open_journey(uow: UnitOfWork, token_id: str, merchant_id: str) -> Any:
    j = journeys
    return uow.execute(
        select(j)
        .where(j.c.token_id == token_id, j.c.merchant_id == merchant_id)
        .where(j.c.status == "open")
        .order_by(j.c.id.desc())
    ).first()


def _kind(uow: UnitOfWork, terminal: DeviceRecord, token: TokenRecord | None) -> str:
    if terminal.kind != "gate":
        return "payment"
    if token is not None and _open_journey(uow, token.id, str(terminal.merchant_id)):
        return "exit"
    return "entry"


def _move_money(
    uow: UnitOfWork,
    terminal: DeviceRecord,
    tap: TapData,
    token: TokenRecord,
    device: DeviceRecord,
    outcome: _Outcome,
    master_key: bytes,
    issuer: str,
) -> None:
    user = devices.acting_user(device)
    merchant = str(terminal.merchant_id)
    if outcome.kind == "exit":
        _exit(uow, terminal, tap, token, user, outcome)
        return
    if outcome.kind == "entry" and tap.amount != entry_amount(terminal.settings):
        outcome.decline("fare_mismatch")
        return
    if outcome.kind == "payment" and tap.amount == 0:
        outcome.decline("invalid_amount")
        return
    if tap.amount > 0 and not devices.funded(uow, user, tap.amount, tap.currency):
        outcome.decline("insufficient_funds")
        return
    tap_id = outcome.tap_id
    description = f"tap {tap_id} at {terminal.id}"
    if outcome.kind == "entry" and terminal.settings["fare"]["mode"] == "distance":
        outcome.hold_id = devices.hold(
            uow,
            user,
            merchant,
            tap.amount,
            tap.currency,
            description,
            expires_in_s=devices.JOURNEY_HOLD_S,
        )
    elif tap.amount > 0:
        outcome.hold_id, outcome.transfer_id = devices.settle(
            uow, user, merchant, tap.amount, tap.currency, description
        )
        outcome.receipt = devices.receipt_for(
            uow,
            master_key,
            issuer,
            tap_id,
            tap.amount,
            tap.currency,
            merchant,
            None,
            outcome.transfer_id,
        )
    if outcome.kind == "entry":
        outcome.fare = None if outcome.transfer_id is None else tap.amount
        outcome.journey_id = _open(uow, terminal, token, outcome)


def _open(uow: UnitOfWork, terminal: DeviceRecord, token: TokenRecord, outcome: _Outcome) -> str:
    """The journey a tap in opens: open (a distance fare, held) or closed at once."""
    distance = terminal.settings["fare"]["mode"] == "distance"
    now = uow.clock.now()
    journey_id = new_id("ent")
    uow.execute(
        insert(journeys).values(
            id=journey_id,
            livemode=terminal.livemode,
            token_id=token.id,
            user_id=token.user_id,
            merchant_id=terminal.merchant_id,
            entry_terminal_id=terminal.id,
            exit_terminal_id=None,
            entry_zone=int(terminal.settings["zone"]),
            hold_id=outcome.hold_id,
            fare=None if distance else int(outcome.fare or 0),
            transfer_id=outcome.transfer_id,
            status="open" if distance else "closed",
            created_at=now,
            closed_at=None if distance else now,
        )
    )
    return journey_id


def _exit(
    uow: UnitOfWork,
    terminal: DeviceRecord,
    tap: TapData,
    token: TokenRecord,
    user: Principal,
    outcome: _Outcome,
) -> None:
    """Close the open journey: the distance fare from the hold placed at the tap in."""
    if tap.amount != 0:
        outcome.decline("fare_mismatch")
        return
    journey = _open_journey(uow, token.id, str(terminal.merchant_id))
    entry = devices.load_device(uow, journey.entry_terminal_id)
    invariant(entry is not None, f"journey {journey.id} lost its entry gate")
    assert entry is not None
    fare = distance_fare(entry.settings, int(terminal.settings["zone"]))
    outcome.journey_id, outcome.hold_id, outcome.fare = journey.id, journey.hold_id, fare
    merchant = str(terminal.merchant_id)
    if fare > 0:
        outcome.transfer_id = devices.capture(uow, user, merchant, journey.hold_id, fare)
    else:
        holds.void_hold(uow, user, journey.hold_id)
    uow.execute(
        update(journeys)
        .where(journeys.c.id == journey.id, journeys.c.status == "open")
        .values(
            status="closed",
            exit_terminal_id=terminal.id,
            fare=fare,
            transfer_id=outcome.transfer_id,
            closed_at=uow.clock.now(),
        )
    )


def _remember(
    uow: UnitOfWork,
    terminal: DeviceRecord,
    tap: TapData,
    digest: str,
    token: TokenRecord | None,
    outcome: _Outcome,
) -> dict[str, Any]:
    """Insert the tap row with its answer; audit and announce it."""
    verdict = outcome.verdict
    status = "approved" if verdict.approved else "declined"
    values: dict[str, Any] = {
        "id": outcome.tap_id,
        "livemode": terminal.livemode,
        "message_hash": digest,
        "token_id": tap.token[:40],
        "device_id": token.device_id if token is not None else None,
        "user_id": token.user_id if token is not None else None,
        "terminal_id": terminal.id,
        "merchant_id": terminal.merchant_id,
        "kind": outcome.kind,
        "amount": tap.amount,
        "currency": tap.currency,
        "counter": tap.counter,
        "unpredictable_number": tap.unpredictable_number,
        "user_verification": tap.user_verification,
        "status": status,
        "reasons": list(verdict.reasons),
        "flagged": verdict.flagged,
        "hold_id": outcome.hold_id,
        "transfer_id": outcome.transfer_id,
        "journey_id": outcome.journey_id,
        "receipt": outcome.receipt,
        "created_at": uow.clock.now(),
    }
    values["response"] = _wire(values, outcome.fare)
    dialect_insert = pg_insert if uow.dialect == "postgresql" else sqlite_insert
    inserted = uow.execute(
        dialect_insert(taps)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[taps.c.message_hash])
        .returning(taps.c.id)
    ).first()
    if inserted is None:
        # The identical message committed meanwhile (only possible for a message naming no
        # known token, which takes no lock); nothing moved for this one.
        invariant(outcome.hold_id is None, "a tap moved money for a message answered before")
        known = _stored(uow, digest)
        invariant(known is not None, "a conflicting tap row vanished")
        assert known is not None
        return known
    event = f"tap.{status}"
    principal = devices.acting_merchant(str(terminal.merchant_id), terminal.livemode, terminal.id)
    audit.record(
        uow,
        event,
        principal,
        values["id"],
        {
            "token": values["token_id"],
            "amount": tap.amount,
            "counter": tap.counter,
            "reasons": list(verdict.reasons),
            "flagged": verdict.flagged,
        },
    )
    emit(uow, event, terminal.livemode, values["response"])
    return dict(values["response"])


def _wire(values: dict[str, Any], fare: int | None) -> dict[str, Any]:
    return {
        "id": values["id"],
        "object": "tap",
        "livemode": values["livemode"],
        "created": rfc3339(values["created_at"]),
        "kind": values["kind"],
        "token": values["token_id"],
        "device": values["device_id"],
        "user": values["user_id"],
        "terminal": values["terminal_id"],
        "merchant": values["merchant_id"],
        "amount": values["amount"],
        "currency": values["currency"],
        "counter": values["counter"],
        "unpredictable_number": values["unpredictable_number"],
        "user_verification": values["user_verification"],
        "status": values["status"],
        "reasons": values["reasons"],
        "flagged": values["flagged"],
        "hold": values["hold_id"],
        "transfer": values["transfer_id"],
        "journey": values["journey_id"],
        "fare": fare,
        "receipt": values["receipt"],
        "message_hash": values["message_hash"],
    }


def get_tap(uow: UnitOfWork, principal: Principal, tap_id: str) -> dict[str, Any]:
    """A tap's answer, for its user, its merchant or an admin."""
    row = uow.execute(select(taps).where(taps.c.id == tap_id)).first()
    parties = {row.user_id, row.merchant_id} if row is not None else set()
    if (
        row is None
        or bool(row.livemode) != principal.livemode
        or not (principal.is_admin or principal.id in parties)
    ):
        raise NotFound(f"no such tap: {tap_id}", param="$.tap")
    return dict(row.response)
