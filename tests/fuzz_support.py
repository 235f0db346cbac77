"""The parser registry the fuzz tests run (tests/security/test_parser_fuzz.py).

Each :class:`ParserCase` names a function that reads untrusted input, a hypothesis strategy
of bounded size for that input, and the only exceptions it may raise (its *defined* errors).
The fuzz test feeds every case generated and mutated inputs and fails if anything else
escapes. A part that adds a parser registers it with one call::

    from fuzz_support import register, text_inputs
    register("tap message", parse_tap, text_inputs(seeds=[valid_tap]), (InvalidRequest,))

from its own test module or, better, by adding a line to :func:`_builtin_cases` below, so
the fuzz test picks it up without anyone editing the fuzz test itself. Parsers that land
later and are expected here: the tap message parser (devices), ACP request headers.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

__all__ = ["PARSERS", "ParserCase", "json_values", "register", "text_inputs"]

TEXT_SIZE_MAX = 2_000
NOW = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)


@dataclass(frozen=True)
class ParserCase:
    name: str
    parse: Callable[[Any], object]
    inputs: st.SearchStrategy[Any]
    errors: tuple[type[BaseException], ...]


PARSERS: dict[str, ParserCase] = {}


def register(
    name: str,
    parse: Callable[[Any], object],
    inputs: st.SearchStrategy[Any],
    errors: tuple[type[BaseException], ...],
) -> None:
    PARSERS[name] = ParserCase(name, parse, inputs, errors)


def _mutations(seed: str) -> st.SearchStrategy[str]:
    """Seeds with a slice cut, a run inserted or a character swapped."""
    positions = st.integers(0, len(seed))
    return st.one_of(
        st.tuples(positions, positions).map(lambda p: seed[: min(p)] + seed[max(p) :]),
        st.tuples(positions, st.text(max_size=40)).map(
            lambda p: seed[: p[0]] + p[1] + seed[p[0] :]
        ),
        st.tuples(positions, st.characters()).map(lambda p: seed[: p[0]] + p[1] + seed[p[0] + 1 :]),
        st.integers(1, 200).map(lambda n: seed * n),
    )


def text_inputs(seeds: Sequence[str] = (), alphabet: str | None = None) -> st.SearchStrategy[str]:
    """Bounded random text, text over the structure's own alphabet, and mutated seeds."""
    options: list[st.SearchStrategy[str]] = [st.text(max_size=TEXT_SIZE_MAX)]
    if alphabet:
        options.append(st.text(alphabet=alphabet, max_size=TEXT_SIZE_MAX))
    options.extend(_mutations(seed) for seed in seeds)
    return st.one_of(options)


def json_values(max_leaves: int = 40) -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=50),
    )
    return st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=6),
            st.dictionaries(st.text(max_size=10), children, max_size=6),
        ),
        max_leaves=max_leaves,
    )


# --- the parsers of today ---------------------------------------------------------------------

SFV_ALPHABET = '();=,:*?"\\ abcdefxyz0123456789-_.@/+'


def _signature_seeds() -> list[str]:
    from paywarden.trust.keys import ed25519_private_key  # noqa: PLC0415
    from paywarden.trust.signatures import RequestParts, sign_request  # noqa: PLC0415

    request = RequestParts("POST", "https", "shop.example", "/v1/payments", "", [], b"")
    signature_input, signature = sign_request(
        request,
        key=ed25519_private_key(bytes(32)),
        components=["@method", "@authority", "@path"],
        created=NOW,
        expires=NOW + timedelta(seconds=60),
        nonce="n0nce",
        tag="agent-payer-auth",
    )
    return [signature_input, signature]


def _jws_seeds() -> list[str]:
    header = base64.urlsafe_b64encode(json.dumps({"alg": "ES256", "kid": "k"}).encode())
    body = base64.urlsafe_b64encode(json.dumps({"sub": "mnd_x", "exp": 1}).encode())
    return [f"{header.decode().rstrip('=')}.{body.decode().rstrip('=')}.c2ln"]


def _builtin_cases() -> None:
    from paywarden.kernel.errors import AuthenticationFailed, InvalidRequest  # noqa: PLC0415
    from paywarden.kernel.money import parse_amount, parse_currency  # noqa: PLC0415
    from paywarden.trust import signatures  # noqa: PLC0415
    from paywarden.trust.receipts import verify_receipt  # noqa: PLC0415
    from paywarden.trust.tokens import verify_mandate_token  # noqa: PLC0415

    seeds = _signature_seeds()
    register(
        "Signature-Input",
        signatures.parse_signature_input,
        text_inputs(seeds, SFV_ALPHABET),
        (AuthenticationFailed,),
    )
    register(
        "Signature",
        signatures.parse_signature,
        text_inputs(seeds, SFV_ALPHABET),
        (AuthenticationFailed,),
    )
    jws_alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789-_.="
    register(
        "mandate token",
        lambda token: verify_mandate_token(token, {"keys": []}, NOW),
        text_inputs(_jws_seeds(), jws_alphabet),
        (InvalidRequest, AuthenticationFailed),
    )
    register(
        "receipt (JWS)",
        lambda token: verify_receipt(token, {"keys": []}),
        text_inputs(_jws_seeds(), jws_alphabet),
        (InvalidRequest, AuthenticationFailed),
    )
    register("amount", parse_amount, json_values(), (InvalidRequest,))
    register("currency", parse_currency, json_values(), (InvalidRequest,))
    _later_cases()


def _later_cases() -> None:
    """Parsers other parts added: cart canonicalizer, webhook headers, QR / device messages."""
    import rfc8785  # noqa: PLC0415

    from paywarden.commerce.cart import hash_payload  # noqa: PLC0415
    from paywarden.kernel.errors import InvalidRequest  # noqa: PLC0415
    from paywarden.trust import devices, webhook_signing  # noqa: PLC0415

    register(
        "cart canonicalizer",
        lambda value: hash_payload(value if isinstance(value, dict) else {"value": value}),
        json_values(),
        (rfc8785.CanonicalizationError,),
    )
    secret = webhook_signing.format_secret(bytes(32))
    headers = st.dictionaries(
        st.sampled_from(["webhook-id", "webhook-timestamp", "webhook-signature", "x"]),
        st.one_of(st.text(max_size=200), st.from_regex(r"v1,[A-Za-z0-9+/=]{0,60}")),
        max_size=4,
    )
    register(
        "Standard Webhooks headers",
        lambda value: webhook_signing.verify_standard(secret, value, b"{}", now_s=1_800_000_000),
        headers,
        (),
    )
    register(
        "ACP Merchant-Signature",
        webhook_signing.parse_merchant_signature,
        text_inputs(["t=1800000000,v1=" + "ab" * 32], "t=v1,0123456789abcdef "),
        (),
    )
    register(
        "QR payment request",
        devices.decode_payment_request,
        text_inputs(["PWQR1.eyJxciI6InFyX3gifQ.dGFn"], "PWQR1.abcdefXYZ0123456789-_="),
        (InvalidRequest,),
    )
    register("tap message", _tap_message, _tap_inputs(), (InvalidRequest,))


def _tap_message(value: Any) -> object:
    """What the server does with a terminal's tap body before any database work: the route's
    model (api/routes_devices.TapSubmit), then the cryptogram check and the message hash."""
    from paywarden.api.http import validate  # noqa: PLC0415
    from paywarden.api.routes_devices import TapSubmit  # noqa: PLC0415
    from paywarden.trust import tap  # noqa: PLC0415
    from paywarden.trust.keys import ed25519_private_key  # noqa: PLC0415

    body = validate(TapSubmit, value if isinstance(value, dict) else {"tap": value})
    data = tap.TapData(**body.tap.model_dump())
    key = ed25519_private_key(bytes(32)).public_key
    tap.verify_cryptogram(key, data, body.cryptogram)
    return tap.message_hash(data, body.cryptogram)


def _tap_inputs() -> st.SearchStrategy[Any]:
    valid = {
        "token": "dtk_01JD6Z0000000000000000000A",
        "amount": 450,
        "currency": "usd",
        "merchant": "mer_01JD6Z0000000000000000000A",
        "terminal": "trm_01JD6Z0000000000000000000A",
        "unpredictable_number": "9f3a11c0",
        "counter": 7,
    }
    field = st.sampled_from(sorted(valid))
    odd = st.one_of(st.text(max_size=60), st.integers(), st.none(), st.booleans(), json_values())
    mutated = st.builds(lambda f, v: {**valid, f: v}, field, odd)
    cryptogram = st.one_of(st.text(max_size=140), st.from_regex(r"[A-Za-z0-9_-]{0,128}"))
    return st.one_of(
        st.builds(lambda tap_, c: {"tap": tap_, "cryptogram": c}, mutated, cryptogram),
        json_values(),
    )


def _ensure_loaded() -> None:
    if not PARSERS:
        _builtin_cases()


_ensure_loaded()
