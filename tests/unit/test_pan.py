"""Card numbers where none belongs are found; hashes, ids, signatures and amounts are not."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from paywarden.trust.pan import card_number_path, looks_like_card_number

CARDS = ["4111111111111111", "5555555555554444", "378282246310005", "6011111111111117"]


def test_card_numbers_are_found_plain_spaced_dashed_and_inside_text() -> None:
    for card in CARDS:
        assert looks_like_card_number(card)
        assert looks_like_card_number(f"Pat {card}")
        assert looks_like_card_number(f"name{card}x")
        spaced = " ".join(card[i : i + 4] for i in range(0, len(card), 4))
        assert looks_like_card_number(f"my card is {spaced}, thanks")
        assert looks_like_card_number(spaced.replace(" ", "-"))


def test_what_is_not_a_card_number() -> None:
    assert not looks_like_card_number("4111111111111112")  # fails the Luhn check
    assert not looks_like_card_number("9111111111111119")  # no network starts so
    assert not looks_like_card_number("411111111111")  # 12 digits
    assert not looks_like_card_number("order 12 at 3pm, table 4")
    assert not looks_like_card_number("mnd_01JD6Z4111111111111111ABCDEF")  # an id-like token


@given(st.binary(min_size=1, max_size=64))
def test_hashes_and_tokens_are_never_taken_for_cards(data: bytes) -> None:
    assert not looks_like_card_number(hashlib.sha256(data).hexdigest())
    assert not looks_like_card_number(hashlib.sha512(data).hexdigest())


def test_the_path_names_the_field_and_the_allowed_field_passes() -> None:
    body = {"card": {"number": CARDS[0]}, "items": [{"note": "fine"}, {"note": CARDS[1]}]}
    assert card_number_path(body, allowed={"$.card.number"}) == "$.items[1].note"
    assert card_number_path({"card": {"number": CARDS[0]}}, allowed={"$.card.number"}) is None
    assert card_number_path({CARDS[0]: 1}) == "$"
