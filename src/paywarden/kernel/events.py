"""Every event type the platform emits, named ``resource.action``. Keep docs/events.md in
step: a test compares the two."""

from __future__ import annotations

from typing import Final

__all__ = ["EVENT_TYPES"]

EVENT_TYPES: Final[dict[str, str]] = {
    "user.created": "a user was created, with a wallet",
    "user.erased": "a user's personal data was erased; their mandates and keys were revoked",
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
    "mandate.requested": "an agent asked a user for a mandate; it awaits the user's consent",
    "mandate.granted": "the user consented: the mandate is active",
    "mandate.paused": "the user paused the mandate; payments under it are declined",
    "mandate.resumed": "the user resumed a paused mandate",
    "mandate.revoked": "the mandate was revoked, for good; no payment commits after this",
    "mandate.amended": "the mandate's constraints changed; it awaits fresh consent",
    "payment.succeeded": "an agent's payment under a mandate moved the money",
    "payment.declined": "an agent's payment was declined; nothing moved",
    "payment.requires_confirmation": "a payment awaits the user's confirmation; nothing moved yet",
    "approval.requested": "a payment needs the user's approval on the trusted surface",
    "approval.approved": "the user approved: the platform completed the payment",
    "approval.declined": "the user declined, or a hard limit failed on approval; nothing moved",
    "approval.expired": "the user did not decide in time; the payment was declined",
    "approval.voided": "the payment no longer matched what the user was asked; nothing moved",
}
