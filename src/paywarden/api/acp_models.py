"""ACP (2026-04-17) request bodies, as the ACP face reads them.

ACP asks servers to ignore fields they do not know (forward compatibility: the spec's own
examples carry ``order_notes``), so these models ignore unknown fields rather than refuse
them; what they do name is checked strictly, and the first problem becomes one ACP ``Error``
with ``param`` the JSONPath of the offending field. Objects that are echoed back in the
session (buyer, fulfillment details) keep only the fields ACP defines, so the response never
carries what the schema forbids.

Two paywarden extensions, both optional: an ``Item`` may carry ``quantity`` (ACP's request
``Item`` has none, so a line is one unit by default), and the complete request may carry
``metadata.cart_hash``, the cart hash the agent last showed its user (the session's current
hash is used when it is absent).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

__all__ = [
    "AcpBody",
    "Address",
    "Buyer",
    "CancelRequest",
    "CompleteRequest",
    "CreateRequest",
    "FulfillmentDetails",
    "Item",
    "PaymentData",
    "SelectedFulfillmentOption",
    "UpdateRequest",
]

LINES_MAX = 100
QUANTITY_MAX = 10_000
TEXT_MAX = 500


class AcpBody(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


class Item(AcpBody):
    id: StrictStr = Field(min_length=1, max_length=200)
    quantity: StrictInt = Field(1, ge=1, le=QUANTITY_MAX)  # paywarden extension


class Address(AcpBody):
    name: StrictStr = Field(max_length=TEXT_MAX)
    line_one: StrictStr = Field(max_length=TEXT_MAX)
    line_two: StrictStr | None = Field(None, max_length=TEXT_MAX)
    city: StrictStr = Field(max_length=TEXT_MAX)
    state: StrictStr = Field(max_length=TEXT_MAX)
    country: StrictStr = Field(max_length=TEXT_MAX)
    postal_code: StrictStr = Field(max_length=TEXT_MAX)


class FulfillmentDetails(AcpBody):
    name: StrictStr | None = Field(None, max_length=TEXT_MAX)
    phone_number: StrictStr | None = Field(None, max_length=TEXT_MAX)
    email: StrictStr | None = Field(None, max_length=TEXT_MAX, pattern=r"^[^@\s]+@[^@\s]+$")
    address: Address | None = None


class Buyer(AcpBody):
    first_name: StrictStr | None = Field(None, max_length=TEXT_MAX)
    last_name: StrictStr | None = Field(None, max_length=TEXT_MAX)
    full_name: StrictStr | None = Field(None, max_length=TEXT_MAX)
    email: StrictStr = Field(max_length=TEXT_MAX, pattern=r"^[^@\s]+@[^@\s]+$")
    phone_number: StrictStr | None = Field(None, max_length=TEXT_MAX)
    customer_id: StrictStr | None = Field(None, max_length=TEXT_MAX)
    account_type: Literal["guest", "registered", "business"] | None = None
    authentication_status: Literal["authenticated", "guest", "requires_signin"] | None = None


class SelectedFulfillmentOption(AcpBody):
    type: Literal["shipping", "digital", "pickup", "local_delivery"]
    option_id: StrictStr = Field(min_length=1, max_length=200)
    item_ids: list[StrictStr] = Field(max_length=LINES_MAX)


class CreateRequest(AcpBody):
    line_items: list[Item] = Field(min_length=1, max_length=LINES_MAX)
    currency: StrictStr = Field(min_length=3, max_length=3)
    capabilities: dict[str, Any] | None = None
    buyer: Buyer | None = None
    fulfillment_details: FulfillmentDetails | None = None


class UpdateRequest(AcpBody):
    line_items: list[Item] | None = Field(None, min_length=1, max_length=LINES_MAX)
    buyer: Buyer | None = None
    fulfillment_details: FulfillmentDetails | None = None
    selected_fulfillment_options: list[SelectedFulfillmentOption] | None = Field(
        None, max_length=LINES_MAX
    )


class Credential(AcpBody):
    type: StrictStr = Field(max_length=TEXT_MAX)
    token: StrictStr = Field(min_length=1, max_length=TEXT_MAX)


class Instrument(AcpBody):
    type: StrictStr = Field(max_length=TEXT_MAX)
    credential: Credential


class PaymentData(AcpBody):
    handler_id: StrictStr | None = Field(None, max_length=TEXT_MAX)
    instrument: Instrument | None = None
    purchase_order_number: StrictStr | None = Field(None, max_length=TEXT_MAX)


class AuthenticationResult(AcpBody):
    outcome: StrictStr = Field(max_length=TEXT_MAX)


class CompleteMetadata(AcpBody):
    cart_hash: StrictStr | None = Field(None, max_length=100)


class CompleteRequest(AcpBody):
    payment_data: PaymentData
    buyer: Buyer | None = None
    authentication_result: AuthenticationResult | None = None
    metadata: CompleteMetadata | None = None  # paywarden extension


class CancelRequest(AcpBody):
    intent_trace: dict[str, Any] | None = None
