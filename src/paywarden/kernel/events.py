"""Every event type the platform emits, named ``resource.action``. Keep docs/events.md in
step: a test compares the two."""

from __future__ import annotations

from typing import Final

__all__ = ["EVENT_TYPES"]

EVENT_TYPES: Final[dict[str, str]] = {
    "user.created": "a user was created, with a wallet",
    "merchant.created": "a merchant was created, with its account",
    "account.created": "an account was opened (for example another wallet currency)",
    "top_up.succeeded": "a card top-up moved money into a wallet",
    "top_up.failed": "a card top-up was declined by the rail; nothing moved",
    "hold.created": "money was reserved on the payer's account",
    "hold.captured": "a hold was captured in full or in part",
    "hold.voided": "a hold was released without moving money",
    "hold.expired": "a hold reached its deadline uncaptured and was released",
    "refund.created": "captured money went back to the payer",
    "transfer.created": "money moved directly between two accounts",
    "api_key.created": "a secret key was issued",
    "api_key.revoked": "a secret key was revoked",
}
