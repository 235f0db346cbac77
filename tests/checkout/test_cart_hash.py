"""The cart binding hash: any change to what the user approves changes it; the order of
keys (options, totals, fulfillment fields) does not."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from paywarden.commerce.cart import (
    Cart,
    CartLine,
    cart_from_payload,
    cart_hash,
    cart_payload,
)
from paywarden.kernel.errors import InvariantViolation

NAMES = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8)
AMOUNTS = st.integers(min_value=0, max_value=10**9)


@st.composite
def lines(draw: st.DrawFn) -> CartLine:
    options = draw(st.dictionaries(NAMES, NAMES, max_size=4))
    return CartLine(
        product=draw(st.sampled_from(["prd_a", "prd_b", "prd_c"])),
        quantity=draw(st.integers(min_value=1, max_value=1000)),
        unit_amount=draw(AMOUNTS),
        options=tuple(sorted(options.items())),
        variant=draw(st.none() | st.just("var_x")),
    )


@st.composite
def carts(draw: st.DrawFn) -> Cart:
    totals = draw(st.dictionaries(st.sampled_from(["subtotal", "tax", "total", "fee"]), AMOUNTS))
    return Cart(
        merchant=draw(st.sampled_from(["mer_1", "mer_2"])),
        currency=draw(st.sampled_from(["usd", "eur", "jpy"])),
        lines=tuple(draw(st.lists(lines(), min_size=1, max_size=4))),
        totals=tuple(totals.items()),
        fulfillment=draw(
            st.none()
            | st.fixed_dictionaries(
                {"type": st.sampled_from(["pickup", "shipping"]), "amount": AMOUNTS}
            )
        ),
        expires_at=datetime(2026, 11, 29, 9, 30, tzinfo=UTC),
        salt=draw(st.binary(min_size=16, max_size=32)).hex(),
    )


def _first_line(cart: Cart, **changes: object) -> Cart:
    return replace(cart, lines=(replace(cart.lines[0], **changes), *cart.lines[1:]))  # type: ignore[arg-type]


CHANGES = {
    "price": lambda c: _first_line(c, unit_amount=c.lines[0].unit_amount + 1),
    "quantity": lambda c: _first_line(c, quantity=c.lines[0].quantity % 1000 + 1),
    "options": lambda c: _first_line(c, options=(*c.lines[0].options, ("Z-extra", "yes"))),
    "product": lambda c: _first_line(c, product=c.lines[0].product + "x"),
    "total": lambda c: replace(
        c,
        totals=(
            *[t for t in c.totals if t[0] != "total"],
            ("total", dict(c.totals).get("total", 0) + 1),
        ),
    ),
    "currency": lambda c: replace(c, currency="gbp"),
    "merchant": lambda c: replace(c, merchant=c.merchant + "x"),
    "fulfillment": lambda c: replace(c, fulfillment={"type": "digital", "amount": 7}),
    "expiry": lambda c: replace(c, expires_at=c.expires_at + timedelta(seconds=1)),
    "salt": lambda c: replace(c, salt="f" * 32 if c.salt != "f" * 32 else "e" * 32),
    "line added": lambda c: replace(c, lines=(*c.lines, c.lines[0])),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
@settings(max_examples=40)
@given(cart=carts())
def test_any_change_changes_the_hash(change: str, cart: Cart) -> None:
    assert cart_hash(CHANGES[change](cart)) != cart_hash(cart)


@given(cart=carts(), data=st.data())
def test_key_order_does_not_matter(cart: Cart, data: st.DataObject) -> None:
    shuffled_lines = tuple(
        replace(line, options=tuple(data.draw(st.permutations(line.options))))
        for line in cart.lines
    )
    fulfillment = (
        dict(reversed(list(cart.fulfillment.items()))) if cart.fulfillment is not None else None
    )
    shuffled = replace(
        cart,
        lines=shuffled_lines,
        totals=tuple(data.draw(st.permutations(cart.totals))),
        fulfillment=fulfillment,
    )
    assert cart_hash(shuffled) == cart_hash(cart)


@given(cart=carts())
def test_the_hash_is_sha256_of_the_canonical_payload_and_round_trips(cart: Cart) -> None:
    payload = cart_payload(cart)
    assert cart_hash(cart) == hashlib.sha256(rfc8785.dumps(payload)).hexdigest()
    assert cart_hash(cart_from_payload(payload)) == cart_hash(cart)


def test_a_short_salt_is_refused() -> None:
    line = CartLine("prd_a", 1, 100)
    when = datetime(2026, 11, 29, tzinfo=UTC)
    with pytest.raises(InvariantViolation):
        Cart("mer_1", "usd", (line,), (("total", 100),), when, "ab" * 15)
    Cart("mer_1", "usd", (line,), (("total", 100),), when, "ab" * 16)
