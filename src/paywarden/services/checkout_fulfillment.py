"""What a merchant offers a checkout (tax, fee, fulfillment options) and the agent's choice.

The options come from the merchant's profile (``services.merchants.get_profile``): one
``pickup`` option per store (``pickup_<sto_id>``), and one option per other method
(``local_delivery``, ``shipping``, ``digital``), each with its price. Choosing:

- nothing chosen: the first option is selected (a pickup at the earliest time the store can
  have it ready: now plus the preparation time, moved on to its opening hours);
- an unknown option id is a 400 ``unknown_fulfillment_option``;
- a pickup time before the order can be ready, or when the store is closed (in the store's
  own time zone), or a delivery or shipping without an address, leaves the session
  ``not_ready_for_payment`` with a message naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from paywarden.commerce import checkout as rules
from paywarden.commerce.checkout import FulfillmentOption, FulfillmentType, Message
from paywarden.commerce.stores import is_open
from paywarden.kernel.errors import InvalidRequest
from paywarden.services import merchants
from paywarden.services.merchants import StoreRecord
from paywarden.store.unit_of_work import UnitOfWork

__all__ = ["Offer", "choose", "offer"]

PICKUP_STEP = timedelta(minutes=15)
PICKUP_HORIZON = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class Offer:
    tax_bps: int
    fee: int
    options: tuple[FulfillmentOption, ...]
    stores: Mapping[str, StoreRecord] = field(default_factory=dict)


# How long a pickup order takes to prepare, at the least. A merchant setting could replace it.
PREPARATION_S = 300


def offer(profile: merchants.MerchantProfile) -> Offer:
    """The merchant's tax rate, buyer fee (none yet) and fulfillment options, from its
    ``profile``."""
    stores = {store.id: store for store in profile.stores}
    options: list[FulfillmentOption] = []
    for method in profile.fulfillment:
        kind = FulfillmentType(method.type)
        title = kind.value.replace("_", " ").capitalize()
        if kind is not FulfillmentType.PICKUP:
            options.append(FulfillmentOption(kind.value, kind, title, method.amount))
            continue
        for store_id in method.stores:
            store = stores.get(store_id)
            if store is None:
                continue
            options.append(
                FulfillmentOption(
                    id=f"pickup_{store_id}",
                    type=kind,
                    title=f"{title} at {store.name}",
                    amount=method.amount,
                    store_id=store_id,
                    location=f"{store.name}, {store.address}",
                    preparation_s=PREPARATION_S,
                )
            )
    return Offer(profile.tax_bps, 0, tuple(options), stores)


def choose(
    uow: UnitOfWork,
    offered: Offer,
    choice: Mapping[str, Any] | None,
    details: Mapping[str, Any] | None,
    now: datetime,
    *,
    preparing: bool = True,
) -> tuple[FulfillmentOption | None, datetime | None, list[Message]]:
    """The selected option, its pickup time, and the messages that block payment. With
    ``preparing`` false (re-checking a cart the user already saw, at completion) a pickup
    time only has to be still ahead and within opening hours: the earliest time offered a
    minute ago stays valid until it passes."""
    _ = uow
    if not offered.options:
        return None, None, []
    option: FulfillmentOption | None = offered.options[0]
    asked_time = None
    if choice is not None:
        if not isinstance(choice, Mapping):
            raise InvalidRequest("fulfillment is an object", param="$.fulfillment")
        option_id = choice.get("option_id")
        option = next((o for o in offered.options if o.id == option_id), None)
        if option is None:
            known = [o.id for o in offered.options]
            raise InvalidRequest(
                f"no fulfillment option {option_id!r}; offered: {known}",
                code="unknown_fulfillment_option",
                param="$.fulfillment.option_id",
            )
        asked_time = _instant(choice.get("pickup_at"))
    assert option is not None
    messages: list[Message] = []
    pickup_at = None
    if option.type is FulfillmentType.PICKUP:
        pickup_at, problem = _pickup_time(offered, option, asked_time, now, preparing)
        if problem:
            messages.append(
                rules.error("invalid", problem, "$.fulfillment.pickup_at", "requires_buyer_input")
            )
    if rules.needs_address(option) and not (details or {}).get("address"):
        messages.append(
            rules.error(
                "missing",
                f"{option.title} needs a delivery address",
                "$.fulfillment_details.address",
                "requires_buyer_input",
            )
        )
    return option, pickup_at, messages


def _instant(value: Any) -> datetime | None:
    if value is None:
        return None
    try:
        instant = datetime.fromisoformat(str(value))
    except ValueError:
        instant = None
    if instant is None or instant.tzinfo is None:
        raise InvalidRequest(
            "pickup_at is an RFC 3339 instant with its offset",
            code="invalid_value",
            param="$.fulfillment.pickup_at",
        )
    return instant


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _open(offered: Offer, store_id: str | None, instant: datetime) -> bool:
    store = offered.stores.get(store_id or "")
    if store is None:
        return False
    local = instant.astimezone(_zone(store.timezone))
    return is_open(store.hours, local.weekday(), local.time())


def _pickup_time(
    offered: Offer,
    option: FulfillmentOption,
    asked: datetime | None,
    now: datetime,
    preparing: bool,
) -> tuple[datetime | None, str | None]:
    ready = now + timedelta(seconds=option.preparation_s if preparing else 0)
    if asked is not None:
        if asked < ready:
            return asked, "the pickup time is earlier than the order can be ready"
        if not _open(offered, option.store_id, asked):
            return asked, "the store is closed at the pickup time"
        return asked, None
    # The earliest quarter hour from `ready` at which the store is open.
    candidate = ready.replace(second=0, microsecond=0)
    candidate += timedelta(minutes=-candidate.minute % 15)
    deadline = ready + PICKUP_HORIZON
    while candidate <= deadline:
        if _open(offered, option.store_id, candidate):
            return candidate, None
        candidate += PICKUP_STEP
    return None, "the store has no opening hours in the next week"
