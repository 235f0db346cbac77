"""JWKs for Ed25519 and ES256: thumbprints from the RFCs, strict parsing, signing and verifying."""

from __future__ import annotations

import dataclasses

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from paywarden.kernel.errors import InvalidRequest
from paywarden.trust.keys import (
    ECDSA_P256_SHA256,
    ED25519,
    b64url_decode,
    b64url_encode,
    ed25519_private_key,
    es256_private_key,
    jwk_thumbprint,
    parse_private_jwk,
    parse_public_jwk,
)

# RFC 8037 appendix A.1 (private) and A.2 (public); A.3 gives the thumbprint.
RFC8037_PUBLIC = {
    "kty": "OKP",
    "crv": "Ed25519",
    "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
}
RFC8037_PRIVATE = {**RFC8037_PUBLIC, "d": "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"}
RFC8037_THUMBPRINT = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"

# RFC 7638 section 3.1: an RSA key and its thumbprint.
RFC7638_RSA = {
    "kty": "RSA",
    "n": (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECP"
        "ebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY"
        "368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0f"
        "M4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    ),
    "e": "AQAB",
    "alg": "RS256",
    "kid": "2011-04-29",
}

EC_PRIVATE = ec.derive_private_key(
    0x1F2E3D4C5B6A79880123456789ABCDEF0011223344556677, ec.SECP256R1()
)


def error_of(call: object, *args: object) -> InvalidRequest:
    assert callable(call)
    with pytest.raises(InvalidRequest) as info:
        call(*args)
    return info.value


def with_member(jwk: dict[str, str], **members: str) -> dict[str, str]:
    return {**jwk, **members}


def es256_jwk() -> dict[str, str]:
    return es256_private_key(EC_PRIVATE).public_jwk()


# --- thumbprints --------------------------------------------------------------------------------


def test_thumbprint_of_the_rfc_8037_ed25519_key_matches_appendix_a3() -> None:
    assert jwk_thumbprint(RFC8037_PUBLIC) == RFC8037_THUMBPRINT
    assert parse_public_jwk(RFC8037_PUBLIC).thumbprint == RFC8037_THUMBPRINT
    assert parse_public_jwk(RFC8037_PUBLIC).keyid == RFC8037_THUMBPRINT


def test_thumbprint_of_the_rfc_7638_rsa_example_ignores_optional_members() -> None:
    assert jwk_thumbprint(RFC7638_RSA) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_thumbprint_of_an_es256_key_covers_crv_kty_x_y_only() -> None:
    jwk = es256_jwk()
    decorated = {**jwk, "kid": "a", "alg": "ES256", "use": "sig"}
    assert jwk_thumbprint(decorated) == jwk_thumbprint(jwk) == parse_public_jwk(jwk).thumbprint
    other = es256_private_key(ec.derive_private_key(7, ec.SECP256R1())).public_jwk()
    assert jwk_thumbprint(other) != jwk_thumbprint(jwk)


def test_thumbprint_needs_the_required_members() -> None:
    assert error_of(jwk_thumbprint, {"kty": "OKP", "crv": "Ed25519"}).code == "invalid_jwk"
    assert error_of(jwk_thumbprint, {"kty": "XYZ"}).code == "unsupported_key_type"


# --- parsing public keys ------------------------------------------------------------------------


def test_public_ed25519_and_es256_jwks_round_trip() -> None:
    ed = parse_public_jwk(RFC8037_PUBLIC)
    assert ed.alg == ED25519
    assert ed.jwk() == RFC8037_PUBLIC
    es = parse_public_jwk(es256_jwk())
    assert es.alg == ECDSA_P256_SHA256
    assert es.jwk() == es256_jwk()
    assert es == es256_private_key(EC_PRIVATE).public_key


@pytest.mark.parametrize(
    ("jwk", "code", "param"),
    [
        (RFC7638_RSA, "unsupported_key_type", "$.kty"),
        (with_member(RFC8037_PUBLIC, kty="oct"), "unsupported_key_type", "$.kty"),
        (with_member(RFC8037_PUBLIC, crv="X25519"), "unsupported_key_type", "$.crv"),
        (with_member(RFC8037_PUBLIC, crv="Ed448"), "unsupported_key_type", "$.crv"),
        (with_member(es256_jwk(), crv="P-384"), "unsupported_key_type", "$.crv"),
        (with_member(es256_jwk(), crv="secp256k1"), "unsupported_key_type", "$.crv"),
        (RFC8037_PRIVATE, "private_key_in_public_jwk", "$.d"),
        (with_member(es256_jwk(), d="AAAA"), "private_key_in_public_jwk", "$.d"),
        ({"crv": "Ed25519", "x": RFC8037_PUBLIC["x"]}, "invalid_jwk", "$.kty"),
        ({"kty": "OKP", "crv": "Ed25519"}, "invalid_jwk", "$.x"),
        ({k: v for k, v in es256_jwk().items() if k != "y"}, "invalid_jwk", "$.y"),
        (with_member(RFC8037_PUBLIC, y=es256_jwk()["y"]), "invalid_jwk", "$.y"),
        (with_member(RFC8037_PUBLIC, alg="ES256"), "invalid_jwk", "$.alg"),
        (with_member(es256_jwk(), alg="EdDSA"), "invalid_jwk", "$.alg"),
        (with_member(RFC8037_PUBLIC, use="enc"), "invalid_jwk", "$.use"),
    ],
    ids=[
        "rsa",
        "oct",
        "x25519",
        "ed448",
        "p384",
        "secp256k1",
        "ed25519-with-d",
        "ec-with-d",
        "no-kty",
        "no-x",
        "no-y",
        "okp-with-y",
        "okp-alg-es256",
        "ec-alg-eddsa",
        "use-enc",
    ],
)
def test_unsupported_or_inconsistent_jwks_are_refused(
    jwk: dict[str, str], code: str, param: str
) -> None:
    error = error_of(parse_public_jwk, jwk)
    assert (error.code, error.param) == (code, param)


def test_optional_members_that_agree_are_accepted() -> None:
    jwk = with_member(RFC8037_PUBLIC, alg="EdDSA", use="sig", kid="agent-7")
    assert parse_public_jwk(jwk).thumbprint == RFC8037_THUMBPRINT
    assert parse_public_jwk(with_member(es256_jwk(), alg="ES256")).alg == ECDSA_P256_SHA256


X = RFC8037_PUBLIC["x"]


@pytest.mark.parametrize(
    "x",
    [
        X + "=",  # padding
        X[:-1] + "p",  # the same bits but non-zero trailing bits
        X[:20] + " " + X[20:],  # whitespace
        X.replace("_", "/"),  # the standard alphabet
        X[:-2],  # 31 bytes
        X + "AA",  # 33 bytes
        "",
        "A" * 5000,
    ],
    ids=[
        "padding",
        "trailing-bits",
        "whitespace",
        "std-alphabet",
        "short",
        "long",
        "empty",
        "huge",
    ],
)
def test_x_must_be_canonical_base64url_of_32_bytes(x: str) -> None:
    error = error_of(parse_public_jwk, with_member(RFC8037_PUBLIC, x=x))
    assert (error.code, error.param) == ("invalid_jwk", "$.x")


def test_member_values_must_be_strings() -> None:
    assert error_of(parse_public_jwk, {**RFC8037_PUBLIC, "x": 5}).code == "invalid_jwk"
    assert error_of(parse_public_jwk, {**RFC8037_PUBLIC, "kty": None}).param == "$.kty"


@pytest.mark.parametrize(
    "x",
    [
        b64url_encode(bytes(32)),  # y = 0: a point of order 4
        b64url_encode(b"\x01" + bytes(31)),  # y = 1: the identity
        b64url_encode(b"\xec" + b"\xff" * 30 + b"\x7f"),  # y = p - 1: order 2
        b64url_encode(b"\xee" + b"\xff" * 30 + b"\x7f"),  # y = p + 1: the identity, non-canonical
        b64url_encode(b"\x02" + bytes(31)),  # y = 2: no x exists, not on the curve
        b64url_encode(b"\x03" + bytes(31)),  # y = 3: on the curve, outside the prime-order group
    ],
    ids=["order-4", "identity", "order-2", "non-canonical", "not-on-curve", "torsion"],
)
def test_ed25519_keys_must_be_points_of_the_prime_order_subgroup(x: str) -> None:
    error = error_of(parse_public_jwk, with_member(RFC8037_PUBLIC, x=x))
    assert (error.code, error.param) == ("invalid_jwk", "$.x")


def test_p256_points_must_lie_on_the_curve() -> None:
    jwk = es256_jwk()
    y = int.from_bytes(b64url_decode(jwk["y"]), "big")
    off_curve = b64url_encode(((y + 1) % 2**256).to_bytes(32, "big"))
    error = error_of(parse_public_jwk, with_member(jwk, y=off_curve))
    assert (error.code, error.param) == ("invalid_jwk", "$.x")


def test_keys_are_immutable_and_compare_by_value() -> None:
    key = parse_public_jwk(RFC8037_PUBLIC)
    with pytest.raises(dataclasses.FrozenInstanceError):
        key.alg = ECDSA_P256_SHA256  # type: ignore[misc]
    assert key == parse_public_jwk(dict(RFC8037_PUBLIC))
    assert hash(key) == hash(parse_public_jwk(dict(RFC8037_PUBLIC)))


# --- signing and verifying ----------------------------------------------------------------------


def test_rfc_8037_ed25519_signature_is_reproduced() -> None:
    """RFC 8037 appendix A.4: Ed25519 over a JWS signing input."""
    key = parse_private_jwk(RFC8037_PRIVATE)
    message = b"eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc"
    signature = key.sign(message)
    assert b64url_encode(signature) == (
        "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
    )
    assert key.public_key.verify(message, signature)
    assert not key.public_key.verify(message + b".", signature)


def test_private_key_repr_shows_no_secret() -> None:
    key = parse_private_jwk(RFC8037_PRIVATE)
    assert RFC8037_PRIVATE["d"] not in repr(key)
    assert "SigningKey" not in repr(key)
    assert key.public_jwk() == RFC8037_PUBLIC


def test_ed25519_key_from_seed_needs_32_bytes() -> None:
    assert ed25519_private_key(bytes(range(32))).alg == ED25519
    assert error_of(ed25519_private_key, bytes(31)).code == "invalid_jwk"


def test_private_jwk_must_match_its_public_members() -> None:
    other_d = b64url_encode(bytes(range(32)))
    error = error_of(parse_private_jwk, with_member(RFC8037_PRIVATE, d=other_d))
    assert (error.code, error.param) == ("invalid_jwk", "$.d")
    ec_jwk = {
        **es256_jwk(),
        "d": b64url_encode(EC_PRIVATE.private_numbers().private_value.to_bytes(32, "big")),
    }
    assert parse_private_jwk(ec_jwk).public_key == parse_public_jwk(es256_jwk())
    zero = error_of(parse_private_jwk, {**ec_jwk, "d": b64url_encode(bytes(32))})
    assert (zero.code, zero.param) == ("invalid_jwk", "$.d")


def test_es256_signatures_are_raw_64_bytes_and_deterministic() -> None:
    key = es256_private_key(EC_PRIVATE)
    signature = key.sign(b"message")
    assert len(signature) == 64
    assert key.sign(b"message") == signature  # RFC 6979: no randomness drawn
    assert key.public_key.verify(b"message", signature)
    assert not key.public_key.verify(b"messagf", signature)


def test_es256_verifies_randomized_signatures_from_other_signers() -> None:
    der = EC_PRIVATE.sign(b"message", ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    public = es256_private_key(EC_PRIVATE).public_key
    assert public.verify(b"message", raw)
    assert not public.verify(b"message", der)  # DER is not the RFC 9421 encoding


@pytest.mark.parametrize(
    "signature",
    [b"", bytes(63), bytes(64), b"\xff" * 64, bytes(65)],
    ids=["empty", "short", "zeros", "ones", "long"],
)
def test_verify_returns_false_for_garbage_and_never_raises(signature: bytes) -> None:
    assert not parse_public_jwk(RFC8037_PUBLIC).verify(b"m", signature)
    assert not es256_private_key(EC_PRIVATE).public_key.verify(b"m", signature)


def test_es256_needs_a_p256_key() -> None:
    p384 = ec.derive_private_key(5, ec.SECP384R1())
    assert error_of(es256_private_key, p384).code == "unsupported_key_type"


def test_b64url_decode_is_strict() -> None:
    assert b64url_decode("AQAB") == b"\x01\x00\x01"
    assert b64url_decode("") == b""
    assert b64url_decode("AQ") == b"\x01"
    for text in ("AQAB=", "AQ==", "A", "AQ B", "+/8", "AR"):
        with pytest.raises(ValueError):
            b64url_decode(text)
