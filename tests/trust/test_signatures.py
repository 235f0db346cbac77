"""RFC 9421 signatures on agent requests: published vectors, interop, every rejection, fuzzing.

The clock is always injected (``now``), except where the independent implementation
(``http-message-signatures``) verifies our signatures: it reads the real clock, so those
requests are signed at the real time.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from http_message_signatures import (
    HTTPMessageSigner,
    HTTPMessageVerifier,
    MappingKeyResolver,
    algorithms,
)
from http_message_signatures.exceptions import InvalidSignature
from http_message_signatures.structures import CaseInsensitiveDict
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import SHARED
from paywarden.kernel.errors import AuthenticationFailed, InvalidRequest, InvariantViolation
from paywarden.trust.keys import (
    ECDSA_P256_SHA256,
    ED25519,
    PrivateKey,
    PublicKey,
    ed25519_private_key,
    es256_private_key,
    parse_private_jwk,
    parse_public_jwk,
)
from paywarden.trust.signatures import (
    COMPONENTS_MAX,
    FIELD_LENGTH_MAX,
    MEMBERS_MAX,
    PARAMETERS_MAX,
    Policy,
    RequestParts,
    VerifiedSignature,
    content_digest,
    parse_signature,
    parse_signature_input,
    sign_request,
    signature_base,
    verify_request,
)

NOW = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
# RFC 9421 appendix B.2: the SHA-512 Content-Digest of its test body {"hello": "world"}.
SHA512_OF_HELLO_WORLD = (
    "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBW"
    "nrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:"
)
SEED = bytes(range(32))
EC_SECRET = 0x5EED_0F_A11_7E57_C0DE_D00D_F00D_BEEF_CAFE
ED_KEY = ed25519_private_key(SEED)
EC_KEY = es256_private_key(ec.derive_private_key(EC_SECRET, ec.SECP256R1()))
KEYS: dict[str, PublicKey] = {key.keyid: key.public_key for key in (ED_KEY, EC_KEY)}
BOTH_KEYS = pytest.mark.parametrize("key", [ED_KEY, EC_KEY], ids=["ed25519", "es256"])

BODY = b'{"amount":1250,"currency":"usd","payee":"mer_01"}'
COMPONENTS = ("@method", "@authority", "@path", "@query", "content-type", "content-digest")
TAG = "agent-payer-auth"


def unsigned(body: bytes = BODY, query: str = "mandate=mnd_01") -> RequestParts:
    headers = [("Content-Type", "application/json")]
    if body:
        headers.append(("Content-Digest", content_digest(body)))
    return RequestParts("POST", "https", "api.paywarden.test", "/v1/payments", query, headers, body)


def signed(
    key: PrivateKey = ED_KEY,
    request: RequestParts | None = None,
    *,
    components: tuple[str, ...] = COMPONENTS,
    created: datetime = NOW,
    expires: datetime | None = NOW + timedelta(seconds=60),
    nonce: str | None = "nonce-0001",
    tag: str | None = TAG,
    **options: Any,
) -> RequestParts:
    request = request if request is not None else unsigned()
    signature_input, signature = sign_request(
        request,
        key=key,
        components=components,
        created=created,
        expires=expires,
        nonce=nonce,
        tag=tag,
        **options,
    )
    headers = [*request.headers, ("Signature-Input", signature_input), ("Signature", signature)]
    return replace(request, headers=headers)


def verify(
    request: RequestParts,
    *,
    now: datetime = NOW,
    policy: Policy | None = None,
    keys: Callable[[str], PublicKey | None] = KEYS.get,
) -> VerifiedSignature:
    return verify_request(request, keys=keys, now=now, policy=policy or Policy())


def code_of(request: RequestParts, **options: Any) -> str:
    with pytest.raises(AuthenticationFailed) as info:
        verify(request, **options)
    assert info.value.status == 401
    return info.value.code


def header(request: RequestParts, name: str) -> str:
    return next(value for field, value in request.headers if field.lower() == name)


def with_header(request: RequestParts, name: str, value: str | None) -> RequestParts:
    """The request with every `name` line replaced by one `value` line (or removed)."""
    kept = [(field, old) for field, old in request.headers if field.lower() != name.lower()]
    return replace(request, headers=kept if value is None else [*kept, (name, value)])


# --- what a good signature gives -----------------------------------------------------------------


@BOTH_KEYS
def test_a_signed_request_verifies_and_reports_what_was_signed(key: PrivateKey) -> None:
    verified = verify(signed(key))
    assert verified == VerifiedSignature(
        label="sig1",
        keyid=key.keyid,
        alg=key.alg,
        tag=TAG,
        created=NOW,
        expires=NOW + timedelta(seconds=60),
        nonce="nonce-0001",
        components=tuple(f'"{name}"' for name in COMPONENTS),
        body_digest_verified=True,
    )


def test_the_signature_input_lists_components_then_web_bot_auth_parameter_order() -> None:
    request = signed(EC_KEY, expires=NOW + timedelta(seconds=60))
    assert header(request, "signature-input") == (
        'sig1=("@method" "@authority" "@path" "@query" "content-type" "content-digest")'
        f';created={int(NOW.timestamp())};keyid="{EC_KEY.keyid}";alg="ecdsa-p256-sha256"'
        f';expires={int(NOW.timestamp()) + 60};nonce="nonce-0001";tag="agent-payer-auth"'
    )


def test_replay_is_not_judged_here_the_nonce_is_returned_for_the_store() -> None:
    request = signed()
    assert verify(request).nonce == verify(request).nonce == "nonce-0001"


def test_normalized_authority_uncovered_headers_and_header_case_do_not_break_it() -> None:
    request = signed()
    request = replace(request, authority="API.Paywarden.TEST:443")
    request = replace(request, headers=[(name.upper(), value) for name, value in request.headers])
    request = replace(request, headers=[*request.headers, ("X-Trace", "abc")])
    assert verify(request).keyid == ED_KEY.keyid


def test_the_allowed_tag_picks_the_signature_among_several() -> None:
    first = signed(tag="web-bot-auth", label="bot")
    second = signed(EC_KEY, tag=TAG, label="pay")
    both = [*first.headers, *[(n, v) for n, v in second.headers if n.startswith("Signature")]]
    request = replace(first, headers=both)
    assert verify(request).label == "pay"  # agent-payer-auth comes first in the policy
    bot_only = Policy(allowed_tags=("web-bot-auth",))
    assert verify(request, policy=bot_only).label == "bot"


# --- tampering with each covered component -------------------------------------------------------

OTHER_BODY = b'{"amount":999999,"currency":"usd","payee":"mer_66"}'

TAMPERINGS: dict[str, tuple[Callable[[RequestParts], RequestParts], str]] = {
    "method": (lambda r: replace(r, method="PUT"), "signature_invalid"),
    "authority": (lambda r: replace(r, authority="evil.example"), "signature_invalid"),
    "port": (lambda r: replace(r, authority="api.paywarden.test:8443"), "signature_invalid"),
    "path": (lambda r: replace(r, path="/v1/refunds"), "signature_invalid"),
    "query": (lambda r: replace(r, query="mandate=mnd_02"), "signature_invalid"),
    "body": (lambda r: replace(r, body=OTHER_BODY), "digest_mismatch"),
    "body-and-digest": (
        lambda r: with_header(
            replace(r, body=OTHER_BODY), "Content-Digest", content_digest(OTHER_BODY)
        ),
        "signature_invalid",
    ),
    "covered-header": (lambda r: with_header(r, "Content-Type", "text/plain"), "signature_invalid"),
    "covered-header-dropped": (lambda r: with_header(r, "Content-Type", None), "component_absent"),
    "covered-header-doubled": (
        lambda r: replace(r, headers=[*r.headers, ("content-type", "text/plain")]),
        "signature_invalid",
    ),
    "signature-parameters": (
        lambda r: with_header(
            r,
            "Signature-Input",
            header(r, "signature-input").replace('"nonce-0001"', '"nonce-0002"'),
        ),
        "signature_invalid",
    ),
    "signature-bytes": (
        lambda r: with_header(
            r, "Signature", "sig1=:" + base64.b64encode(bytes(64)).decode() + ":"
        ),
        "signature_invalid",
    ),
}


@BOTH_KEYS
@pytest.mark.parametrize("change", TAMPERINGS, ids=list(TAMPERINGS))
def test_each_covered_component_tampered_is_rejected(key: PrivateKey, change: str) -> None:
    tamper, code = TAMPERINGS[change]
    assert code_of(tamper(signed(key))) == code


# --- time ----------------------------------------------------------------------------------------


def test_expired_signatures_are_rejected_from_the_second_after_expires() -> None:
    request = signed(expires=NOW + timedelta(seconds=60))
    assert verify(request, now=NOW + timedelta(seconds=60)).nonce
    assert code_of(request, now=NOW + timedelta(seconds=61)) == "signature_expired"


def test_signatures_from_the_future_are_allowed_only_within_the_clock_skew() -> None:
    request = signed(created=NOW + timedelta(seconds=5), expires=NOW + timedelta(seconds=65))
    assert verify(request).created == NOW + timedelta(seconds=5)
    request = signed(created=NOW + timedelta(seconds=6), expires=NOW + timedelta(seconds=66))
    assert code_of(request) == "signature_from_future"


def test_old_signatures_are_rejected_even_before_they_expire() -> None:
    request = signed(expires=NOW + timedelta(hours=1))
    assert verify(request, now=NOW + timedelta(seconds=300)).nonce
    assert code_of(request, now=NOW + timedelta(seconds=301)) == "signature_too_old"
    no_age_bound = Policy(max_age=None)
    assert verify(request, now=NOW + timedelta(minutes=59), policy=no_age_bound).nonce


def test_expires_before_created_is_malformed() -> None:
    request = signed(expires=NOW - timedelta(seconds=1))
    assert code_of(request) == "signature_malformed"


def test_now_must_be_timezone_aware() -> None:
    with pytest.raises(InvariantViolation):
        verify(signed(), now=NOW.replace(tzinfo=None))


# --- keys and algorithms -------------------------------------------------------------------------


def test_unknown_keys_are_rejected() -> None:
    assert code_of(signed(), keys=lambda keyid: None) == "unknown_key"


def test_the_alg_parameter_must_match_the_registered_key() -> None:
    # An Ed25519 signature whose keyid resolves to an ES256 key.
    assert code_of(signed(ED_KEY), keys=lambda keyid: EC_KEY.public_key) == "algorithm_mismatch"
    assert code_of(signed(EC_KEY), keys=lambda keyid: ED_KEY.public_key) == "algorithm_mismatch"


def test_without_alg_the_key_decides_and_a_wrong_key_fails_the_signature() -> None:
    request = signed(include_alg=False)
    assert verify(request).alg == ED25519
    assert code_of(request, keys=lambda keyid: EC_KEY.public_key) == "signature_invalid"


@pytest.mark.parametrize("alg", ["rsa-pss-sha512", "rsa-v1_5-sha256", "hmac-sha256", "ED25519", ""])
def test_algorithms_we_do_not_implement_are_named_as_unsupported(alg: str) -> None:
    request = signed()
    forged = header(request, "signature-input").replace('alg="ed25519"', f'alg="{alg}"')
    assert code_of(with_header(request, "Signature-Input", forged)) == "unsupported_algorithm"


# --- the policy's demands ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_parts", "components"),
    [
        (unsigned(), ("@method", "@authority", "@query", "content-digest")),  # no @path
        (unsigned(), ("@authority", "@path", "@query", "content-digest")),  # no @method
        (unsigned(), ("@method", "@path", "@query", "content-digest")),  # no @authority
        (unsigned(), ("@method", "@authority", "@path", "content-digest")),  # query uncovered
        (unsigned(), ("@method", "@authority", "@path", "@query")),  # body without digest
        (
            unsigned(),
            ("@method", "@authority", "@path", "@query", '"content-digest";key="sha-256"'),
        ),
    ],
    ids=["path", "method", "authority", "query", "content-digest", "digest-member-only"],
)
def test_required_components_must_be_covered(
    request_parts: RequestParts, components: tuple[str, ...]
) -> None:
    assert code_of(signed(request=request_parts, components=components)) == "component_missing"


def test_query_and_digest_are_required_only_when_the_request_has_them() -> None:
    request = signed(
        request=unsigned(body=b"", query=""), components=("@method", "@authority", "@path")
    )
    verified = verify(request)
    assert verified.body_digest_verified is False


def test_an_unsigned_digest_that_matches_does_not_count_as_verifying_the_body() -> None:
    request = signed(components=COMPONENTS[:-1])
    relaxed = Policy(require_content_digest=False)
    assert verify(request, policy=relaxed).body_digest_verified is False
    assert code_of(replace(request, body=OTHER_BODY), policy=relaxed) == "digest_mismatch"


def test_target_uri_covers_scheme_authority_path_and_query() -> None:
    request = signed(components=("@method", "@target-uri", "content-digest"))
    assert verify(request).components == ('"@method"', '"@target-uri"', '"content-digest"')
    assert code_of(replace(request, query="mandate=mnd_02")) == "signature_invalid"


@pytest.mark.parametrize(
    ("missing", "options"),
    [("nonce", {"nonce": None}), ("expires", {"expires": None})],
)
def test_required_parameters_must_be_present(missing: str, options: dict[str, Any]) -> None:
    request = signed(**options)
    with pytest.raises(AuthenticationFailed) as info:
        verify(request)
    assert info.value.code == "signature_param_missing"
    assert missing in info.value.message
    relaxed = Policy(require_nonce=False, require_expires=False)
    assert verify(request, policy=relaxed).keyid == ED_KEY.keyid


@pytest.mark.parametrize("parameter", ["created", "keyid"])
def test_created_and_keyid_must_be_present(parameter: str) -> None:
    request = signed()
    value = header(request, "signature-input")
    start = value.index(f";{parameter}=")
    stripped = value[:start] + value[value.index(";", start + 1) :]
    assert code_of(with_header(request, "Signature-Input", stripped)) == "signature_param_missing"


@pytest.mark.parametrize("tag", [None, "web-bot-auth-v2", "AGENT-PAYER-AUTH"])
def test_signatures_without_an_allowed_tag_are_rejected(tag: str | None) -> None:
    assert code_of(signed(tag=tag)) == "tag_not_allowed"


def test_two_signatures_with_the_preferred_tag_are_ambiguous() -> None:
    first, second = signed(label="a"), signed(EC_KEY, label="b")
    extra = [(n, v) for n, v in second.headers if n.startswith("Signature")]
    assert code_of(replace(first, headers=[*first.headers, *extra])) == "signature_malformed"


def test_policy_misconfiguration_is_a_bug() -> None:
    with pytest.raises(InvariantViolation):
        Policy(allowed_tags=())
    with pytest.raises(InvariantViolation):
        Policy(require_created=False)  # the default max_age needs created


# --- components ----------------------------------------------------------------------------------


def test_signing_a_field_the_request_lacks_is_refused() -> None:
    with pytest.raises(InvalidRequest) as info:
        signed(components=(*COMPONENTS, "x-agent-session"))
    assert info.value.code == "component_absent"


@pytest.mark.parametrize(
    "component",
    [
        '"@query-param";name="mandate"',
        '"@status"',
        '"content-type";bs',
        '"@method";req',
        '"content-type";tr',
    ],
)
def test_components_we_do_not_implement_are_named_as_unsupported(component: str) -> None:
    request = signed()
    value = header(request, "signature-input").replace('"content-type"', component)
    assert code_of(with_header(request, "Signature-Input", value)) == "component_unsupported"


@pytest.mark.parametrize(
    "components",
    [
        '("@method" "@method")',
        '("@method" "@signature-params")',
        '("@Method")',
        '("Content-Type")',
        "(@method)",
        '("@method" 1)',
        '("")',
        '("content-type";key=1)',
        '("content-digest";sf=?0)',
    ],
)
def test_malformed_component_lists_are_rejected(components: str) -> None:
    request = signed()
    value = header(request, "signature-input")
    value = "sig1=" + components + value[value.index(";created") :]
    assert code_of(with_header(request, "Signature-Input", value)) == "signature_malformed"


def test_field_lines_are_trimmed_and_joined_in_order() -> None:
    request = RequestParts(
        "GET",
        "https",
        "api.paywarden.test",
        "/v1/orders",
        headers=[("X-Tag", "  a "), ("Accept", "*/*"), ("x-tag", "\tb, c"), ("X-Empty", "")],
    )
    signature_input = 'sig1=("x-tag" "x-empty" "@request-target" "@scheme");created=1'
    base = signature_base(request, parse_signature_input(signature_input)[0])
    assert base == (
        b'"x-tag": a, b, c\n'
        b'"x-empty": \n'
        b'"@request-target": /v1/orders\n'
        b'"@scheme": https\n'
        b'"@signature-params": ("x-tag" "x-empty" "@request-target" "@scheme");created=1'
    )


def test_derived_components_follow_rfc_9421_section_2_2() -> None:
    request = RequestParts("GET", "HTTPS", "Shop.Example:443", "", query="")
    value = '("@authority" "@scheme" "@path" "@query" "@target-uri" "@request-target" "@method")'
    base = signature_base(request, parse_signature_input("s=" + value)[0])
    assert base.decode().splitlines()[:-1] == [
        '"@authority": shop.example',
        '"@scheme": https',
        '"@path": /',
        '"@query": ?',
        '"@target-uri": https://shop.example/',
        '"@request-target": /',
        '"@method": GET',
    ]
    other_port = RequestParts("GET", "http", "[::1]:8080", "/a%20b", query="x=1&y")
    base = signature_base(other_port, parse_signature_input("s=" + value)[0])
    assert base.decode().splitlines()[:-1] == [
        '"@authority": [::1]:8080',
        '"@scheme": http',
        '"@path": /a%20b',
        '"@query": ?x=1&y',
        '"@target-uri": http://[::1]:8080/a%20b?x=1&y',
        '"@request-target": /a%20b?x=1&y',
        '"@method": GET',
    ]


def test_dictionary_members_and_sf_are_reserialized() -> None:
    request = RequestParts(
        "GET",
        "https",
        "shop.example",
        "/",
        headers=[
            ("Signature-Agent", 'one="https://a.test";type=jwks_uri,   two=("x"  "y");q=?1'),
            ("Content-Digest", "sha-256=:AAAA:,sha-512=:BBBB:"),
        ],
    )
    value = '("signature-agent";key="one" "signature-agent";key="two" "content-digest";sf)'
    base = signature_base(request, parse_signature_input("s=" + value)[0])
    assert base.decode().splitlines()[:-1] == [
        '"signature-agent";key="one": "https://a.test";type=jwks_uri',
        '"signature-agent";key="two": ("x" "y");q',
        '"content-digest";sf: sha-256=:AAAA:, sha-512=:BBBB:',
    ]


@pytest.mark.parametrize(
    ("headers", "component", "code"),
    [
        ([("Signature-Agent", 'a="x"')], '"signature-agent";key="b"', "component_absent"),
        ([("Signature-Agent", '"x"')], '"signature-agent";key="a"', "component_invalid"),
        ([("X-Custom", "a=1")], '"x-custom";sf', "component_unsupported"),
        ([("X-Custom", "a\r\nb")], '"x-custom"', "component_invalid"),
        ([("X-Custom", "caf\u00e9")], '"x-custom"', "component_invalid"),
    ],
    ids=["no-member", "not-a-dictionary", "unknown-sf-type", "line-break", "non-ascii"],
)
def test_component_values_that_cannot_enter_a_base_are_rejected(
    headers: list[tuple[str, str]], component: str, code: str
) -> None:
    request = RequestParts("GET", "https", "shop.example", "/", headers=headers)
    signature_input = parse_signature_input(f"s=({component});created=1")[0]
    with pytest.raises(AuthenticationFailed) as info:
        signature_base(request, signature_input)
    assert info.value.code == code


def test_a_malformed_authority_is_rejected() -> None:
    request = RequestParts("GET", "https", "user@shop.example", "/")
    with pytest.raises(AuthenticationFailed) as info:
        signature_base(request, parse_signature_input('s=("@authority")')[0])
    assert info.value.code == "component_invalid"


# --- Content-Digest (RFC 9530) -------------------------------------------------------------------


def test_content_digest_matches_the_rfc_9530_example() -> None:
    assert content_digest(b'{"hello": "world"}') == (
        "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"
    )


def test_a_sha_512_digest_is_checked_too() -> None:
    body = b'{"hello": "world"}'
    digest = SHA512_OF_HELLO_WORLD
    request = with_header(unsigned(body=body), "Content-Digest", digest)
    assert verify(signed(request=request)).body_digest_verified
    assert code_of(replace(signed(request=request), body=body + b" ")) == "digest_mismatch"


@pytest.mark.parametrize(
    "digest",
    ["sha-256=abc", "sha-256=:AAAA:", "md5=:AAAA:", "sha-256=:" + "A" * 43 + ":", "sha-256"],
    ids=["token", "short", "unknown-only", "bad-base64", "boolean"],
)
def test_malformed_or_useless_digests_are_rejected(digest: str) -> None:
    request = signed(request=with_header(unsigned(), "Content-Digest", digest))
    expected = "digest_mismatch" if digest == "sha-256=:AAAA:" else "digest_malformed"
    assert code_of(request) == expected


def test_a_digest_on_an_empty_body_is_checked() -> None:
    request = with_header(unsigned(body=b""), "Content-Digest", content_digest(b"x"))
    request = signed(request=request, components=(*COMPONENTS[:-2], "content-digest"))
    assert code_of(request) == "digest_mismatch"


# --- parsing: missing, malformed, limits ---------------------------------------------------------


def test_requests_without_signature_fields_are_rejected() -> None:
    request = signed()
    assert code_of(with_header(request, "Signature", None)) == "signature_missing"
    assert code_of(with_header(request, "Signature-Input", None)) == "signature_missing"
    assert code_of(unsigned()) == "signature_missing"


def test_the_signature_must_carry_the_chosen_label() -> None:
    request = signed()
    other = header(request, "signature").replace("sig1=", "sig2=")
    assert code_of(with_header(request, "Signature", other)) == "signature_malformed"


def test_signature_fields_split_over_several_lines_are_combined() -> None:
    request = signed()
    lines = [*request.headers[:-1], ("Signature", "other=:AAAA:"), request.headers[-1]]
    assert verify(replace(request, headers=lines)).label == "sig1"


def _signature_bytes_text(request: RequestParts) -> str:
    return header(request, "signature").removeprefix("sig1=:").removesuffix(":")


NON_CANONICAL: dict[str, Callable[[str], str]] = {
    "missing-padding": lambda text: text.rstrip("="),
    "extra-padding": lambda text: text + "==",
    "trailing-bits": lambda text: text[:-3] + chr(ord(text[-3]) ^ 1) + "==",
    "inner-space": lambda text: text[:10] + " " + text[10:],
    "url-alphabet": lambda text: text.replace("+", "-").replace("/", "_") + "-",
    "newline": lambda text: text[:10] + "\n" + text[10:],
}


@pytest.mark.parametrize("change", NON_CANONICAL, ids=list(NON_CANONICAL))
def test_non_canonical_base64_signatures_are_rejected(change: str) -> None:
    request = signed()
    text = _signature_bytes_text(request)
    assert text.endswith("==")  # 64 bytes: the last group has 4 zero trailing bits
    altered = NON_CANONICAL[change](text)
    assert altered != text
    assert code_of(with_header(request, "Signature", f"sig1=:{altered}:")) == "signature_malformed"


MALFORMED_INPUTS = [
    "",
    "   ",
    "sig1",
    "sig1=",
    "sig1=(",
    '"sig1"=("@method")',
    'SIG1=("@method")',
    'sig1=("@method"',
    'sig1=("@method")x',
    'sig1=("@method"),',
    'sig1=("@method"),,sig2=()',
    'sig1=("@method");created',
    'sig1=("@method");created="1"',
    'sig1=("@method");created=1.5',
    'sig1=("@method");created=-1',
    'sig1=("@method");created=1234567890123456',
    'sig1=("@method");created=1;created=2',
    'sig1=("@method");keyid=abc',
    'sig1=("@method");keyid=:AAAA:',
    'sig1=("@method");nonce=?1',
    'sig1=("@method");unknown="x"',
    'sig1=("@method"), sig1=("@path")',
    'sig1="@method"',
    "sig1=:AAAA:",
    'sig1=("@method" "a\\nb")',
    'sig1=("caf\u00e9")',
    'sig1=("@method");expires=99999999999999',
    'sig1=("@method")\u3000',
    'sig1=("@method");nonce="' + "n" * 513 + '"',
]


@pytest.mark.parametrize("value", MALFORMED_INPUTS)
def test_malformed_signature_input_is_rejected(value: str) -> None:
    with pytest.raises(AuthenticationFailed) as info:
        parse_signature_input(value)
    assert info.value.code == "signature_malformed"
    request = with_header(signed(), "Signature-Input", value)
    assert code_of(request) in {"signature_malformed", "signature_missing"}


@pytest.mark.parametrize(
    "value",
    [
        "",
        "sig1=AAAA",
        'sig1="AAAA"',
        "sig1=:AAAA",
        "sig1=:AAAA:;x=1",
        "sig1=(:AAAA:)",
        "sig1=:AA AA:",
    ],
)
def test_malformed_signature_is_rejected(value: str) -> None:
    with pytest.raises(AuthenticationFailed) as info:
        parse_signature(value)
    assert info.value.code == "signature_malformed"


def test_limits_on_length_members_components_and_parameters() -> None:
    member = 'sig{}=("@method");created=1'
    within = ", ".join(member.format(i) for i in range(MEMBERS_MAX))
    assert len(parse_signature_input(within)) == MEMBERS_MAX
    over = ", ".join(member.format(i) for i in range(MEMBERS_MAX + 1))
    components = " ".join(f'"x-{i}"' for i in range(COMPONENTS_MAX))
    assert len(parse_signature_input(f"s=({components})")[0].components) == COMPONENTS_MAX
    too_many_components = " ".join(f'"x-{i}"' for i in range(COMPONENTS_MAX + 1))
    parameters = "".join(f";p{i}" for i in range(PARAMETERS_MAX + 1))
    too_long = 's=("@method");nonce="' + "n" * FIELD_LENGTH_MAX + '"'
    for value in (over, f"s=({too_many_components})", f's=("@method"{parameters})', too_long):
        with pytest.raises(AuthenticationFailed) as info:
            parse_signature_input(value)
        assert info.value.code == "signature_malformed"


def test_signature_input_keeps_the_parameters_exactly_as_received() -> None:
    value = 'a=( "@method"  "@path" );created=5 , b=();keyid="k\\"1"'
    first, second = parse_signature_input(value)
    assert first.params_text == '( "@method"  "@path" );created=5'  # not re-serialized
    assert second.params_text == '();keyid="k\\"1"'
    assert second.keyid == 'k"1'


# --- fuzzing the parser --------------------------------------------------------------------------

VALID_INPUT = (
    'sig1=("@method" "@authority" "signature-agent";key="a");created=1735689600;'
    'keyid="poqkLGiymh_W0uP6PZFw";alg="ed25519";expires=1735693200;nonce="bm9uY2U=";tag="web-bot-auth"'
)
SF_ALPHABET = st.sampled_from([*'sig12=();"@-:?*,. \t\\abcdkeyAZ09+/_', "\u00e9", "\n"])


def _parses_or_fails_cleanly(parse: Callable[[str], object], text: str) -> None:
    try:
        parse(text)
    except AuthenticationFailed as error:
        assert error.code == "signature_malformed"


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=400))
def test_fuzz_any_text_fails_only_with_authentication_failed(text: str) -> None:
    _parses_or_fails_cleanly(parse_signature_input, text)
    _parses_or_fails_cleanly(parse_signature, text)


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=SF_ALPHABET, max_size=300))
def test_fuzz_structured_field_alphabet(text: str) -> None:
    _parses_or_fails_cleanly(parse_signature_input, text)
    _parses_or_fails_cleanly(parse_signature, text)


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_fuzz_mutations_of_a_valid_header(data: st.DataObject) -> None:
    start = data.draw(st.integers(0, len(VALID_INPUT)))
    end = data.draw(st.integers(start, len(VALID_INPUT)))
    insert = data.draw(st.text(alphabet=SF_ALPHABET, max_size=12))
    _parses_or_fails_cleanly(
        parse_signature_input, VALID_INPUT[:start] + insert + VALID_INPUT[end:]
    )


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "value",
    [
        "s=(" + '"x" ' * 5000,
        's=("' + "\\\\" * 4000,
        "s=:" + "A" * 8000,
        "s=(" + " " * 8100,
        "a=1;" * 2000,
        "s=" + "9" * 8000,
        "s=x" + ":/" * 4000,
        "a" * 100_000,
    ],
    ids=["components", "escapes", "base64", "spaces", "parameters", "digits", "token", "huge"],
)
def test_pathological_inputs_end_promptly_in_a_clean_error(value: str) -> None:
    with pytest.raises(AuthenticationFailed) as info:
        parse_signature_input(value)
    assert info.value.code == "signature_malformed"


# --- RFC 9421 appendix B.2.6 ---------------------------------------------------------------------

RFC9421_B26_BASE = (
    b'"date": Tue, 20 Apr 2021 02:07:55 GMT\n'
    b'"@method": POST\n'
    b'"@path": /foo\n'
    b'"@authority": example.com\n'
    b'"content-type": application/json\n'
    b'"content-length": 18\n'
    b'"@signature-params": ("date" "@method" "@path" "@authority" "content-type" '
    b'"content-length");created=1618884473;keyid="test-key-ed25519"'
)


def test_rfc_9421_b26_ed25519_signature_is_reproduced_and_verifies() -> None:
    # The B.1.4 test-key-ed25519 is the same key the Web Bot Auth vectors use.
    key = parse_private_jwk(
        {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": "JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs",
            "d": "n4Ni-HpISpVObnQMW0wOhCKROaIKqKtW_2ZYb2p9KcU",
        }
    )
    request = RequestParts(
        "POST",
        "https",
        "example.com",
        "/foo",
        "param=Value&Pet=dog",
        [
            ("Host", "example.com"),
            ("Date", "Tue, 20 Apr 2021 02:07:55 GMT"),
            ("Content-Type", "application/json"),
            ("Content-Digest", SHA512_OF_HELLO_WORLD),
            ("Content-Length", "18"),
        ],
        b'{"hello": "world"}',
    )
    signature_input, signature = sign_request(
        request,
        key=key,
        components=("date", "@method", "@path", "@authority", "content-type", "content-length"),
        created=datetime.fromtimestamp(1618884473, UTC),
        expires=None,
        nonce=None,
        tag=None,
        label="sig-b26",
        keyid="test-key-ed25519",
        include_alg=False,
    )
    assert signature_input == (
        'sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length")'
        ';created=1618884473;keyid="test-key-ed25519"'
    )
    assert signature == (
        "sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==:"
    )
    parsed = parse_signature_input(signature_input)[0]
    assert signature_base(request, parsed) == RFC9421_B26_BASE
    assert key.public_key.verify(RFC9421_B26_BASE, parse_signature(signature)["sig-b26"])


# --- Web Bot Auth vectors (../shared/vectors/web-bot-auth) ---------------------------------------

VECTORS = SHARED / "vectors" / "web-bot-auth"
VECTOR_FILES = ("web_bot_auth_architecture_v1.json", "web_bot_auth_architecture_v2.json")
WEB_BOT_AUTH = Policy(allowed_tags=("web-bot-auth",), required_components=("@authority",))


def _vector_params(kty: str) -> Iterator[Any]:
    if not VECTORS.is_dir():
        yield pytest.param(None, marks=pytest.mark.skip(reason=f"{VECTORS} is absent"))
        return
    for name in VECTOR_FILES:
        for index, entry in enumerate(json.loads((VECTORS / name).read_text())):
            if (entry["key"]["kty"] == "OKP") == (kty == "OKP"):
                yield pytest.param(
                    entry, id=f"{name.removesuffix('.json')}[{index}]-{entry['label']}"
                )


def _vector_request(entry: Mapping[str, Any], *, signed: bool) -> RequestParts:
    assert entry["target_url"] == "https://example.com/path/to/resource"
    headers = [("Signature-Agent", entry["signature_agent"])] if "signature_agent" in entry else []
    if signed:
        headers += [
            ("Signature-Input", entry["signature_input"]),
            ("Signature", entry["signature"]),
        ]
    return RequestParts("GET", "https", "example.com", "/path/to/resource", "", headers)


def _instant(milliseconds: int) -> datetime:
    return datetime.fromtimestamp(milliseconds / 1000, UTC)


@pytest.mark.parametrize("entry", list(_vector_params("OKP")))
def test_web_bot_auth_ed25519_vectors_verify(entry: Mapping[str, Any]) -> None:
    key = parse_private_jwk(entry["key"])
    verified = verify_request(
        _vector_request(entry, signed=True),
        keys={key.keyid: key.public_key}.get,
        now=_instant(entry["created_ms"]),
        policy=WEB_BOT_AUTH,
    )
    assert (verified.label, verified.nonce, verified.tag) == (
        entry["label"],
        entry["nonce"],
        "web-bot-auth",
    )
    assert (
        verified.keyid
        == key.keyid
        == parse_public_jwk({"kty": "OKP", "crv": "Ed25519", "x": entry["key"]["x"]}).thumbprint
    )
    assert verified.expires == _instant(entry["expires_ms"])


@pytest.mark.parametrize("entry", list(_vector_params("OKP")))
def test_web_bot_auth_ed25519_vectors_are_reproduced_byte_for_byte(
    entry: Mapping[str, Any],
) -> None:
    key = parse_private_jwk(entry["key"])
    components = parse_signature_input(entry["signature_input"])[0].components
    produced = sign_request(
        _vector_request(entry, signed=False),
        key=key,
        components=[component.identifier for component in components],
        created=_instant(entry["created_ms"]),
        expires=_instant(entry["expires_ms"]),
        nonce=entry["nonce"],
        tag="web-bot-auth",
        label=entry["label"],
    )
    assert produced == (entry["signature_input"], entry["signature"])


@pytest.mark.parametrize(
    "entry",
    [p for p in _vector_params("OKP") if p.values[0] is None or "signature_agent" in p.values[0]],
)
def test_web_bot_auth_vectors_fail_when_the_signature_agent_changes(
    entry: Mapping[str, Any],
) -> None:
    request = _vector_request(entry, signed=True)
    agent = entry["signature_agent"].replace("signature-agent.test", "evil.test")
    request = with_header(request, "Signature-Agent", agent)
    key = parse_private_jwk(entry["key"])
    with pytest.raises(AuthenticationFailed) as info:
        verify_request(
            request,
            keys={key.keyid: key.public_key}.get,
            now=_instant(entry["created_ms"]),
            policy=WEB_BOT_AUTH,
        )
    assert info.value.code == "signature_invalid"


@pytest.mark.parametrize("entry", list(_vector_params("RSA")))
def test_web_bot_auth_rsa_vectors_are_rejected_as_unsupported(entry: Mapping[str, Any]) -> None:
    with pytest.raises(AuthenticationFailed) as info:
        verify_request(
            _vector_request(entry, signed=True),
            keys=lambda keyid: pytest.fail("the key must not even be looked up"),
            now=_instant(entry["created_ms"]),
            policy=WEB_BOT_AUTH,
        )
    assert info.value.code == "unsupported_algorithm"
    assert "rsa-pss-sha512" in info.value.message
    with pytest.raises(InvalidRequest) as key_error:
        parse_public_jwk(entry["key"])
    assert key_error.value.code == "unsupported_key_type"


# --- interop with http-message-signatures --------------------------------------------------------


class _Message:
    """The request shape http-message-signatures reads: method, url, headers."""

    def __init__(self, request: RequestParts) -> None:
        self.method = request.method
        query = f"?{request.query}" if request.query else ""
        self.url = f"{request.scheme}://{request.authority}{request.path}{query}"
        self.headers = CaseInsensitiveDict(dict(request.headers))


def _counterpart(
    key: PrivateKey,
) -> tuple[type[algorithms.HTTPSignatureAlgorithm], MappingKeyResolver]:
    if key.alg == ED25519:
        private: Any = ed25519.Ed25519PrivateKey.from_private_bytes(SEED)
        algorithm: type[algorithms.HTTPSignatureAlgorithm] = algorithms.ED25519
    else:
        private = ec.derive_private_key(EC_SECRET, ec.SECP256R1())
        algorithm = algorithms.ECDSA_P256_SHA256
    resolver = MappingKeyResolver(
        public_keys={key.keyid: private.public_key()}, private_keys={key.keyid: private}
    )
    return algorithm, resolver


@BOTH_KEYS
def test_requests_signed_by_http_message_signatures_verify_here(key: PrivateKey) -> None:
    algorithm, resolver = _counterpart(key)
    plain = unsigned()
    message = _Message(with_header(plain, "Content-Digest", None))
    HTTPMessageSigner(signature_algorithm=algorithm, key_resolver=resolver).sign(
        message,
        key_id=key.keyid,
        created=NOW,
        expires=NOW + timedelta(seconds=60),
        nonce="their-nonce",
        tag=TAG,
        label="sig1",
        covered_component_ids=("@method", "@authority", "@path", "@query", "content-type"),
        body=plain.body,  # the counterpart adds Content-Digest and covers it
    )
    request = replace(plain, headers=list(message.headers.items()))
    verified = verify(request)
    assert (verified.alg, verified.nonce, verified.body_digest_verified) == (
        key.alg,
        "their-nonce",
        True,
    )
    assert code_of(replace(request, path="/v1/refunds")) == "signature_invalid"
    assert code_of(replace(request, body=OTHER_BODY)) == "digest_mismatch"


@BOTH_KEYS
def test_requests_signed_here_verify_with_http_message_signatures(key: PrivateKey) -> None:
    # The counterpart checks times against the real clock, so sign at the real time.
    created = datetime.now(UTC).replace(microsecond=0)
    request = signed(key, created=created, expires=created + timedelta(seconds=60))
    algorithm, resolver = _counterpart(key)
    verifier = HTTPMessageVerifier(signature_algorithm=algorithm, key_resolver=resolver)
    results = verifier.verify(
        _Message(request), expect_tag=TAG, body=request.body, require_components=COMPONENTS
    )
    assert [(r.label, r.nonce, r.parameters["keyid"]) for r in results] == [
        ("sig1", "nonce-0001", key.keyid)
    ]
    assert results[0].body == request.body
    tampered = _Message(replace(request, query="mandate=mnd_02"))
    with pytest.raises(InvalidSignature):
        verifier.verify(tampered, expect_tag=TAG, body=request.body)


def test_algorithm_names_follow_the_rfc_9421_registry() -> None:
    assert (ED_KEY.alg, EC_KEY.alg) == (ED25519, ECDSA_P256_SHA256)
    assert (algorithms.ED25519.algorithm_id, algorithms.ECDSA_P256_SHA256.algorithm_id) == (
        ED25519,
        ECDSA_P256_SHA256,
    )
