"""RFC 9421 HTTP Message Signatures over agent requests: parse, verify, sign.

Every agent request carries two fields (RFC 9421 §4):

    Signature-Input: sig1=("@method" "@authority" "@path" "content-digest");created=1735689600;
                     keyid="<JWK thumbprint>";alg="ed25519";expires=1735689660;nonce="…";
                     tag="agent-payer-auth"
    Signature: sig1=:<base64 of the raw signature>:

The signer lists the *components* it covers; both sides rebuild the same *signature base*
(one ``"name": value`` line per component, then the ``"@signature-params"`` line holding the
Signature-Input member exactly as sent, §2.5) and the signature is checked over its bytes.

How a request is judged (:func:`verify_request`), cheapest checks first:

1. both fields present (``signature_missing``), within limits and well formed
   (``signature_malformed``); the signature chosen is the one whose ``tag`` the policy allows
   (``tag_not_allowed``); the label only pairs the two fields, since it is not signed;
2. the parameters the policy requires are present (``signature_param_missing``) and ``alg``,
   if given, is one we implement (``unsupported_algorithm``);
3. time: ``created`` no later than ``now`` plus the allowed skew (``signature_from_future``),
   ``expires`` not passed (``signature_expired``), age within bounds (``signature_too_old``);
4. coverage: the policy's components are covered (``component_missing``);
5. the key: ``keys(keyid)`` knows it (``unknown_key``) and agrees with ``alg``
   (``algorithm_mismatch``); the base is built (``component_absent`` for a covered field the
   request lacks, ``component_unsupported``, ``component_invalid``) and the signature checked
   (``signature_invalid``);
6. the body: ``Content-Digest`` (RFC 9530), when present, matches it (``digest_malformed``,
   ``digest_mismatch``).

Every failure is an :class:`AuthenticationFailed` with one of those codes. The nonce is returned,
not judged: replay is checked against the store, which alone knows the nonces already seen.

The parser covers the subset of RFC 8941 structured fields these headers need (dictionaries,
inner lists, strings, tokens, integers, byte sequences, booleans, parameters), with hard limits
on sizes and counts; decimals are refused. It is stricter than RFC 8941 on purpose: duplicate
keys and non-canonical base64 are refused rather than resolved, because two parsers that
resolve them differently would disagree on what was signed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import NoReturn

from paywarden.kernel.errors import AuthenticationFailed, InvalidRequest
from paywarden.kernel.invariant import invariant
from paywarden.trust.keys import SUPPORTED_ALGORITHMS, PrivateKey, PublicKey

__all__ = [
    "COMPONENTS_MAX",
    "FIELD_LENGTH_MAX",
    "MEMBERS_MAX",
    "PARAMETERS_MAX",
    "Component",
    "Policy",
    "RequestParts",
    "SignatureInput",
    "VerifiedSignature",
    "content_digest",
    "parse_signature",
    "parse_signature_input",
    "sign_request",
    "signature_base",
    "verify_request",
]

FIELD_LENGTH_MAX = 8192  # characters in one combined structured field we parse
MEMBERS_MAX = 16  # dictionary members (signatures in one request, digests, agents)
COMPONENTS_MAX = 32  # covered components in one signature
PARAMETERS_MAX = 16  # parameters on one item or inner list
STRING_PARAMETER_LENGTH_MAX = 512  # characters in keyid, nonce, tag or alg
# datetime cannot go past year 9999; a timestamp beyond it is malformed, not just far away.
TIMESTAMP_MAX = 253_402_300_799

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SIGNATURE_PARAMETERS = frozenset({"created", "expires", "nonce", "alg", "keyid", "tag"})
_FLAG_PARAMETERS = frozenset({"sf", "bs", "req", "tr"})  # component parameters that are flags
_STRING_PARAMETERS = frozenset({"key", "name"})
_DEFAULT_PORTS = {"http": "80", "https": "443"}
# Fields known to be structured Dictionaries, the only ones `;sf` may re-serialize: the type of
# a field is a property of its definition, and guessing it would change what gets signed.
_DICTIONARY_FIELDS = frozenset(
    {
        "accept-signature",
        "content-digest",
        "priority",
        "repr-digest",
        "signature",
        "signature-agent",
        "signature-input",
        "want-content-digest",
        "want-repr-digest",
    }
)
_DIGESTS: dict[str, Callable[[bytes], bytes]] = {
    "sha-256": lambda body: hashlib.sha256(body).digest(),
    "sha-512": lambda body: hashlib.sha512(body).digest(),
}
# A derived component covers what is spelled inside it: a policy asking for @path is satisfied
# by @target-uri, which holds the path.
_IMPLIED_BY: dict[str, frozenset[str]] = {
    "@target-uri": frozenset({"@scheme", "@authority", "@path", "@query", "@request-target"}),
    "@request-target": frozenset({"@path", "@query"}),
}

# ---------------------------------------------------------------------------------------------
# Public types
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RequestParts:
    """The parts of an HTTP request that signatures can cover.

    ``authority`` is host[:port] as received; ``path`` is still percent-encoded; ``query`` has
    no leading ``?`` and is empty when the request has none. ``headers`` keeps every field line
    in order, names in any case.
    """

    method: str
    scheme: str
    authority: str
    path: str
    query: str = ""
    headers: Sequence[tuple[str, str]] = ()
    body: bytes = b""

    def __post_init__(self) -> None:
        # A tuple, so that a caller's list cannot change under a frozen request.
        object.__setattr__(self, "headers", tuple((n, v) for n, v in self.headers))


@dataclass(frozen=True, slots=True)
class Policy:
    """What a verifier demands of a signature.

    ``keyid`` is always required: without it there is no key to check against. ``max_age``
    needs ``created``; ``None`` turns the age bound off (``expires`` still applies).
    """

    allowed_tags: tuple[str, ...] = ("agent-payer-auth", "web-bot-auth")  # in preference order
    required_components: tuple[str, ...] = ("@method", "@authority", "@path")
    require_query: bool = True  # @query must be covered when the request has a query
    require_content_digest: bool = True  # content-digest must be covered when there is a body
    max_age: timedelta | None = timedelta(seconds=300)
    clock_skew: timedelta = timedelta(seconds=5)  # how far in the future `created` may be
    require_created: bool = True
    require_expires: bool = True
    require_nonce: bool = True

    def __post_init__(self) -> None:
        invariant(bool(self.allowed_tags), "a policy must allow at least one tag")
        invariant(self.max_age is None or self.require_created, "max_age needs `created`")
        invariant(self.clock_skew >= timedelta(0), "clock_skew cannot be negative")


@dataclass(frozen=True, slots=True)
class Component:
    """A covered component: a derived ``@name`` or a field name, with its parameters."""

    name: str
    params: tuple[tuple[str, str | bool], ...] = ()

    @property
    def identifier(self) -> str:
        """The component identifier as it appears in the signature base: ``"name";key="x"``."""
        return _serialize_item(_Item(self.name, self.params))


@dataclass(frozen=True, slots=True)
class SignatureInput:
    """One member of ``Signature-Input``, parsed and type-checked."""

    label: str
    components: tuple[Component, ...]
    params_text: str  # the member's value exactly as received: the "@signature-params" value
    created: int | None = None
    expires: int | None = None
    nonce: str | None = None
    alg: str | None = None
    keyid: str | None = None
    tag: str | None = None


@dataclass(frozen=True, slots=True)
class VerifiedSignature:
    """What a verified signature vouches for; the nonce still needs its replay check."""

    label: str
    keyid: str
    alg: str
    tag: str
    created: datetime | None
    expires: datetime | None
    nonce: str | None
    components: tuple[str, ...]  # the covered component identifiers, in signed order
    body_digest_verified: bool  # a signed Content-Digest covered the whole field and matched


# ---------------------------------------------------------------------------------------------
# Verifying
# ---------------------------------------------------------------------------------------------


def verify_request(
    request: RequestParts,
    *,
    keys: Callable[[str], PublicKey | None],
    now: datetime,
    policy: Policy,
) -> VerifiedSignature:
    """Verify the request's signature under ``policy``; see the module docstring for the checks.

    ``keys`` maps a ``keyid`` to a registered key, or ``None``; it is called at most once.
    """
    invariant(now.tzinfo is not None, "now must be timezone-aware")
    fields = _field_lines(request)
    chosen, tag, signature = _select_signature(fields, policy)
    keyid = _check_parameters(chosen, policy)
    _check_times(chosen, now, policy)
    _check_coverage(chosen.components, request, policy)
    key = keys(keyid)
    if key is None:
        raise _fail("unknown_key", f"no registered key has keyid {keyid!r}")
    if chosen.alg is not None and chosen.alg != key.alg:
        raise _fail("algorithm_mismatch", f"alg {chosen.alg!r} but the key is {key.alg!r}")
    base = _build_base(request, fields, chosen.components, chosen.params_text)
    if not key.verify(base, signature):
        raise _fail("signature_invalid", f"signature {chosen.label!r} does not verify")
    # After the signature: only an authenticated request gets its whole body hashed. A digest
    # that matches but is not signed vouches for nothing, so it does not count as verified.
    digest_matched = _check_content_digest(request, fields)
    digest_signed = "content-digest" in _covered_names(chosen.components)
    return VerifiedSignature(
        label=chosen.label,
        keyid=keyid,
        alg=key.alg,
        tag=tag,
        created=None if chosen.created is None else _instant(chosen.created),
        expires=None if chosen.expires is None else _instant(chosen.expires),
        nonce=chosen.nonce,
        components=tuple(component.identifier for component in chosen.components),
        body_digest_verified=digest_matched and digest_signed,
    )


def signature_base(request: RequestParts, signature_input: SignatureInput) -> bytes:
    """The RFC 9421 §2.5 signature base for ``signature_input`` over ``request``."""
    components = signature_input.components
    return _build_base(request, _field_lines(request), components, signature_input.params_text)


def _select_signature(
    fields: dict[str, list[str]], policy: Policy
) -> tuple[SignatureInput, str, bytes]:
    """The signature carrying the most preferred allowed tag, that tag, and its bytes."""
    input_lines, signature_lines = fields.get("signature-input"), fields.get("signature")
    if not input_lines or not signature_lines:
        raise _fail("signature_missing", "the request needs Signature-Input and Signature fields")
    inputs = parse_signature_input(", ".join(input_lines))
    signatures = parse_signature(", ".join(signature_lines))
    for tag in policy.allowed_tags:
        tagged = [entry for entry in inputs if entry.tag == tag]
        if len(tagged) > 1:
            raise _fail("signature_malformed", f"more than one signature is tagged {tag!r}")
        if tagged:
            chosen = tagged[0]
            if chosen.label not in signatures:
                raise _fail("signature_malformed", f"Signature has no member {chosen.label!r}")
            return chosen, tag, signatures[chosen.label]
    allowed = ", ".join(policy.allowed_tags)
    raise _fail("tag_not_allowed", f"no signature carries an allowed tag ({allowed})")


def _check_parameters(chosen: SignatureInput, policy: Policy) -> str:
    """Check the parameters the policy requires and the algorithm; return the keyid."""
    keyid = chosen.keyid
    required = {
        "created": policy.require_created,
        "expires": policy.require_expires,
        "nonce": policy.require_nonce,
    }
    missing = ["keyid"] if keyid is None else []
    missing += [
        name for name, needed in required.items() if needed and getattr(chosen, name) is None
    ]
    if missing or keyid is None:
        raise _fail("signature_param_missing", f"signature lacks {', '.join(missing)}")
    if chosen.alg is not None and chosen.alg not in SUPPORTED_ALGORITHMS:
        supported = ", ".join(sorted(SUPPORTED_ALGORITHMS))
        raise _fail("unsupported_algorithm", f"alg {chosen.alg!r} is not one of {supported}")
    return keyid


def _check_times(chosen: SignatureInput, now: datetime, policy: Policy) -> None:
    if chosen.created is not None:
        created = _instant(chosen.created)
        if created > now + policy.clock_skew:
            raise _fail("signature_from_future", f"created {created.isoformat()} is in the future")
    if chosen.expires is not None and now > _instant(chosen.expires):
        raise _fail("signature_expired", "the signature's expires has passed")
    age = None if chosen.created is None else now - _instant(chosen.created)
    if policy.max_age is not None and age is not None and age > policy.max_age:
        raise _fail("signature_too_old", f"created more than {policy.max_age} ago")


def _covered_names(components: Iterable[Component]) -> set[str]:
    """The names a signature covers in full, derived components implied by others included."""
    # Only a whole field counts as covering it (`;sf` re-serializes the whole field; `;key`
    # covers one member, which is not enough).
    covered: set[str] = set()
    for component in components:
        if all(name == "sf" for name, _ in component.params):
            covered.add(component.name)
            covered |= _IMPLIED_BY.get(component.name, frozenset())
    return covered


def _check_coverage(components: Sequence[Component], request: RequestParts, policy: Policy) -> None:
    covered = _covered_names(components)
    required = list(policy.required_components)
    if policy.require_query and request.query:
        required.append("@query")
    if policy.require_content_digest and request.body:
        required.append("content-digest")
    missing = [name for name in required if name not in covered]
    if missing:
        raise _fail("component_missing", f"the signature must cover {', '.join(missing)}")


def _check_content_digest(request: RequestParts, fields: dict[str, list[str]]) -> bool:
    """Check Content-Digest against the body when the field is present; whether it was."""
    lines = fields.get("content-digest")
    if not lines:
        return False
    try:
        members = _parse_dictionary(", ".join(lines))
    except _FieldError as error:
        raise _fail("digest_malformed", f"Content-Digest: {error}") from error
    checked = 0
    for member in members:
        digest = _DIGESTS.get(member.key)
        if digest is None:
            continue  # RFC 9530 §2: algorithms we do not know are ignored
        value = member.value
        if not isinstance(value, _Item) or not isinstance(value.value, bytes):
            raise _fail("digest_malformed", f"Content-Digest {member.key} is not a byte sequence")
        if not hmac.compare_digest(value.value, digest(request.body)):
            raise _fail("digest_mismatch", f"Content-Digest {member.key} does not match the body")
        checked += 1
    if checked == 0:
        raise _fail("digest_malformed", "Content-Digest has no sha-256 or sha-512 member")
    return True


# ---------------------------------------------------------------------------------------------
# Signing
# ---------------------------------------------------------------------------------------------


def sign_request(
    request: RequestParts,
    *,
    key: PrivateKey,
    components: Sequence[str],
    created: datetime,
    expires: datetime | None,
    nonce: str | None,
    tag: str | None,
    label: str = "sig1",
    keyid: str | None = None,
    include_alg: bool = True,
) -> tuple[str, str]:
    """Sign ``request``; return the ``Signature-Input`` and ``Signature`` field values.

    ``components`` are names (``"@method"``, ``"content-digest"``) or serialized identifiers
    (``'"signature-agent";key="agent2"'``). Put a ``Content-Digest`` field (see
    :func:`content_digest`) in the headers before covering it. ``keyid`` defaults to the key's
    thumbprint. Parameters are written in the order Web Bot Auth agents use, so that signatures
    from them can be reproduced byte for byte.
    """
    invariant(not isinstance(components, str), "components is a sequence of names, not one")
    params: list[tuple[str, str | int | bool]] = [
        ("created", _timestamp(created)),
        ("keyid", keyid if keyid is not None else key.keyid),
    ]
    if include_alg:
        params.append(("alg", key.alg))
    if expires is not None:
        params.append(("expires", _timestamp(expires)))
    if nonce is not None:
        params.append(("nonce", nonce))
    if tag is not None:
        params.append(("tag", tag))
    try:
        parsed = _distinct(tuple(_component_from_text(text) for text in components))
        items = tuple(_Item(component.name, component.params) for component in parsed)
        params_text = _serialize_inner_list(_InnerList(items, tuple(params)))
        label_text = _serialize_key(label)
        base = _build_base(request, _field_lines(request), parsed, params_text)
    except (_FieldError, AuthenticationFailed) as error:
        code = error.code if isinstance(error, AuthenticationFailed) else "invalid_signature_input"
        raise InvalidRequest(f"cannot sign this request: {error}", code=code) from error
    signature = base64.b64encode(key.sign(base)).decode("ascii")
    return f"{label_text}={params_text}", f"{label_text}=:{signature}:"


def content_digest(body: bytes) -> str:
    """The RFC 9530 ``Content-Digest`` field value for ``body``: ``sha-256=:…:``."""
    return "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode("ascii") + ":"


def _timestamp(instant: datetime) -> int:
    invariant(instant.tzinfo is not None, "signature times must be timezone-aware")
    return (instant - _EPOCH) // timedelta(seconds=1)


def _component_from_text(text: str) -> Component:
    """A component given by name (``@method``) or as a serialized identifier (``"a";key="b"``)."""
    return _component(_Parser(text).whole(_Parser.item) if text.startswith('"') else _Item(text))


# ---------------------------------------------------------------------------------------------
# The signature base (RFC 9421 §2)
# ---------------------------------------------------------------------------------------------


def _build_base(
    request: RequestParts,
    fields: dict[str, list[str]],
    components: Iterable[Component],
    params_text: str,
) -> bytes:
    lines: list[str] = []
    for component in components:
        value = _component_value(request, fields, component)
        if not _BASE_VALUE.fullmatch(value):
            raise _fail("component_invalid", f"{component.identifier} has characters a base lacks")
        lines.append(f"{component.identifier}: {value}")
    lines.append(f'"@signature-params": {params_text}')
    return "\n".join(lines).encode("ascii")


def _component_value(
    request: RequestParts, fields: dict[str, list[str]], component: Component
) -> str:
    if not component.name.startswith("@"):
        return _field_value(fields, component)
    derive = _DERIVED.get(component.name)
    if derive is None:
        raise _fail("component_unsupported", f"derived component {component.name} is unsupported")
    if component.params:
        names = ", ".join(name for name, _ in component.params)
        raise _fail("component_unsupported", f"{component.name} takes no parameters ({names})")
    return derive(request)


def _field_value(fields: dict[str, list[str]], component: Component) -> str:
    lines = fields.get(component.name)
    if lines is None:
        raise _fail("component_absent", f"covered field {component.name!r} is not in the request")
    params = dict(component.params)
    if set(params) - {"key", "sf"}:
        names = ", ".join(sorted(set(params) - {"key", "sf"}))
        raise _fail("component_unsupported", f"{component.identifier}: unsupported {names}")
    if "key" not in params and "sf" not in params:
        return ", ".join(lines)  # §2.1: each line trimmed, lines joined by comma and space
    if "key" not in params and component.name not in _DICTIONARY_FIELDS:
        raise _fail("component_unsupported", f"{component.identifier}: field type is unknown")
    try:
        members = _parse_dictionary(", ".join(lines))
    except _FieldError as error:
        raise _fail(
            "component_invalid", f"{component.name} is not a Dictionary: {error}"
        ) from error
    if "key" not in params:
        return _serialize_dictionary(members)
    wanted = params["key"]
    for member in members:
        if member.key == wanted:
            return _serialize_member_value(member.value)  # §2.1.2: re-serialized, with params
    raise _fail("component_absent", f"field {component.name!r} has no member {wanted!r}")


def _field_lines(request: RequestParts) -> dict[str, list[str]]:
    """Field values by lowercased name, each trimmed of surrounding whitespace (§2.1)."""
    fields: dict[str, list[str]] = {}
    for name, value in request.headers:
        fields.setdefault(name.lower(), []).append(value.strip(" \t"))
    return fields


def _authority(request: RequestParts) -> str:
    """Lowercased host, and the port unless it is the scheme's default (§2.2.3)."""
    match = _AUTHORITY.fullmatch(request.authority.lower())
    if match is None or not match["host"]:
        raise _fail("component_invalid", f"authority {request.authority!r} is not host[:port]")
    port = match["port"]
    if not port or port.lstrip("0") == _DEFAULT_PORTS.get(_scheme(request)):
        return match["host"]
    return f"{match['host']}:{port}"


def _scheme(request: RequestParts) -> str:
    return request.scheme.lower()


def _path(request: RequestParts) -> str:
    return request.path or "/"  # an empty path is "/" (§2.2.6)


def _query_suffix(request: RequestParts) -> str:
    return f"?{request.query}" if request.query else ""


def _target_uri(request: RequestParts) -> str:
    # The target URI normalized as RFC 9110 §4.2.3 allows (scheme and host lowercased,
    # default port dropped), so that it agrees with @scheme and @authority.
    return f"{_scheme(request)}://{_authority(request)}{_path(request)}{_query_suffix(request)}"


_DERIVED: dict[str, Callable[[RequestParts], str]] = {
    "@method": lambda request: request.method,
    "@target-uri": _target_uri,
    "@authority": _authority,
    "@scheme": _scheme,
    "@request-target": lambda request: _path(request) + _query_suffix(request),
    "@path": _path,
    "@query": lambda request: f"?{request.query}",  # "?" alone when there is none (§2.2.7)
}
_AUTHORITY = re.compile(r"(?P<host>\[[0-9a-f:.v]*\]|[^:@/\[\]\s]*)(?::(?P<port>[0-9]*))?")
# Printable ASCII and horizontal tab: a line break in a value would forge another base line.
_BASE_VALUE = re.compile(r"[\t\x20-\x7e]*")


# ---------------------------------------------------------------------------------------------
# Parsing Signature-Input and Signature
# ---------------------------------------------------------------------------------------------


def parse_signature_input(value: str) -> tuple[SignatureInput, ...]:
    """Parse a ``Signature-Input`` field value; raise ``AuthenticationFailed`` if malformed."""
    try:
        members = _parse_dictionary(value)
    except _FieldError as error:
        raise _fail("signature_malformed", f"Signature-Input: {error}") from error
    if not members:
        raise _fail("signature_malformed", "Signature-Input is empty")
    return tuple(_signature_input(member) for member in members)


def parse_signature(value: str) -> dict[str, bytes]:
    """Parse a ``Signature`` field value into raw signatures by label."""
    try:
        members = _parse_dictionary(value)
    except _FieldError as error:
        raise _fail("signature_malformed", f"Signature: {error}") from error
    signatures: dict[str, bytes] = {}
    for member in members:
        item = member.value
        if not isinstance(item, _Item) or not isinstance(item.value, bytes) or item.params:
            raise _fail("signature_malformed", f"Signature {member.key!r} is not a byte sequence")
        signatures[member.key] = item.value
    if not signatures:
        raise _fail("signature_malformed", "Signature is empty")
    return signatures


def _signature_input(member: _Member) -> SignatureInput:
    inner = member.value
    if not isinstance(inner, _InnerList):
        raise _fail("signature_malformed", f"Signature-Input {member.key!r} is not an inner list")
    components = _distinct(tuple(_component(item) for item in inner.items))
    params: dict[str, str | int] = {}
    for name, value in inner.params:
        if name not in _SIGNATURE_PARAMETERS:
            raise _fail("signature_malformed", f"unknown signature parameter {name!r}")
        params[name] = _signature_parameter(name, value)
    created, expires = params.get("created"), params.get("expires")
    if isinstance(created, int) and isinstance(expires, int) and expires < created:
        raise _fail("signature_malformed", "expires is before created")
    return SignatureInput(
        label=member.key,
        components=components,
        params_text=member.raw,
        created=_as_int(params.get("created")),
        expires=_as_int(params.get("expires")),
        nonce=_as_str(params.get("nonce")),
        alg=_as_str(params.get("alg")),
        keyid=_as_str(params.get("keyid")),
        tag=_as_str(params.get("tag")),
    )


def _signature_parameter(name: str, value: _BareItem) -> str | int:
    if name in ("created", "expires"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail("signature_malformed", f"{name} must be an integer")
        if not 0 <= value <= TIMESTAMP_MAX:
            raise _fail("signature_malformed", f"{name} is out of range")
        return value
    if not isinstance(value, str):
        raise _fail("signature_malformed", f"{name} must be a string")
    if len(value) > STRING_PARAMETER_LENGTH_MAX:
        raise _fail("signature_malformed", f"{name} is longer than {STRING_PARAMETER_LENGTH_MAX}")
    return value


def _component(item: _Item) -> Component:
    """A component identifier, checked as far as it can be without the request."""
    name = item.value
    if not isinstance(name, str) or not name:
        raise _fail("signature_malformed", "a component identifier is a non-empty string")
    if name != name.lower():
        raise _fail("signature_malformed", f"component {name!r} must be lowercase")
    if name == "@signature-params":
        raise _fail("signature_malformed", "@signature-params cannot be a covered component")
    params: list[tuple[str, str | bool]] = []
    for key, value in item.params:
        # RFC 9421 §6.5.2: these parameters are flags or strings; others are left to the
        # base builder, which names them as unsupported.
        if key in _FLAG_PARAMETERS and value is not True:
            raise _fail("signature_malformed", f"component parameter {key!r} is a boolean flag")
        if key in _STRING_PARAMETERS and not isinstance(value, str):
            raise _fail("signature_malformed", f"component parameter {key!r} is a string")
        if not isinstance(value, str | bool):
            raise _fail("signature_malformed", f"component parameter {key!r} has a bad type")
        params.append((key, value))
    return Component(name, tuple(params))


def _distinct(components: tuple[Component, ...]) -> tuple[Component, ...]:
    """The components, unless one is covered twice (parameter order is no part of identity)."""
    seen: set[tuple[str, frozenset[tuple[str, str | bool]]]] = set()
    for component in components:
        identity = (component.name, frozenset(component.params))
        if identity in seen:
            raise _fail("signature_malformed", f"{component.identifier} is covered twice")
        seen.add(identity)
    return components


def _as_int(value: str | int | None) -> int | None:
    return value if isinstance(value, int) else None


def _as_str(value: str | int | None) -> str | None:
    return value if isinstance(value, str) else None


def _fail(code: str, message: str) -> AuthenticationFailed:
    return AuthenticationFailed(message, code=code)


def _instant(timestamp: int) -> datetime:
    return _EPOCH + timedelta(seconds=timestamp)


# ---------------------------------------------------------------------------------------------
# A small RFC 8941 structured-field parser and serializer (the subset above)
# ---------------------------------------------------------------------------------------------


class _FieldError(ValueError):
    """A structured field that does not parse; callers turn it into the right error code."""


@dataclass(frozen=True, slots=True)
class _Token:
    value: str


_BareItem = int | str | bytes | bool | _Token
_Parameters = tuple[tuple[str, _BareItem], ...]


@dataclass(frozen=True, slots=True)
class _Item:
    value: _BareItem
    params: _Parameters = ()


@dataclass(frozen=True, slots=True)
class _InnerList:
    items: tuple[_Item, ...]
    params: _Parameters = ()


@dataclass(frozen=True, slots=True)
class _Member:
    key: str
    value: _Item | _InnerList
    raw: str  # the value exactly as it was spelled, parameters included


_KEY = re.compile(r"[a-z*][a-z0-9_.*-]*")
_TOKEN = re.compile(r"[A-Za-z*][!#$%&'*+.^_`|~0-9A-Za-z:/-]*")
_DIGITS = re.compile(r"-?[0-9]+")
_STRING_RUN = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]*")  # printable ASCII but " and \
_PRINTABLE = re.compile(r"[\x20-\x7e]*")
_BASE64 = re.compile(r"[A-Za-z0-9+/=]*")
_INTEGER_DIGITS_MAX = 15


def _parse_dictionary(text: str) -> tuple[_Member, ...]:
    if len(text) > FIELD_LENGTH_MAX:
        raise _FieldError(f"longer than {FIELD_LENGTH_MAX} characters")
    if not text.isascii():
        raise _FieldError("contains non-ASCII characters")
    return _Parser(text).dictionary()


class _Parser:
    """A cursor over one field value. Every step consumes input or fails, so parsing is linear."""

    __slots__ = ("pos", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, message: str) -> NoReturn:
        raise _FieldError(f"{message} at offset {self.pos}")

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip(self, characters: str) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in characters:
            self.pos += 1

    def expect(self, character: str) -> None:
        if self.peek() != character:
            self.fail(f"expected {character!r}")
        self.pos += 1

    def match(self, pattern: re.Pattern[str], what: str) -> str:
        found = pattern.match(self.text, self.pos)
        if found is None or not found.group():
            self.fail(f"expected {what}")
        self.pos = found.end()
        return found.group()

    def whole(self, parse: Callable[[_Parser], _Item]) -> _Item:
        """Parse all of the text as one production (used for component identifiers)."""
        result = parse(self)
        if self.pos != len(self.text):
            self.fail("unexpected trailing characters")
        return result

    def dictionary(self) -> tuple[_Member, ...]:
        members: list[_Member] = []
        self.skip(" ")
        while self.pos < len(self.text):
            key = self.match(_KEY, "a dictionary key")
            if any(member.key == key for member in members):
                self.fail(f"duplicate key {key!r}")
            if self.peek() == "=":
                self.pos += 1
                start = self.pos
                value: _Item | _InnerList = self.inner_list() if self.peek() == "(" else self.item()
            else:
                start = self.pos
                value = _Item(True, self.parameters())
            members.append(_Member(key, value, self.text[start : self.pos]))
            if len(members) > MEMBERS_MAX:
                self.fail(f"more than {MEMBERS_MAX} members")
            self.skip(" \t")
            if self.pos == len(self.text):
                break
            self.expect(",")
            self.skip(" \t")
            if self.pos == len(self.text):
                self.fail("trailing comma")
        return tuple(members)

    def inner_list(self) -> _InnerList:
        self.expect("(")
        items: list[_Item] = []
        while True:
            self.skip(" ")
            if self.peek() == ")":
                self.pos += 1
                return _InnerList(tuple(items), self.parameters())
            items.append(self.item())
            if len(items) > COMPONENTS_MAX:
                self.fail(f"more than {COMPONENTS_MAX} items in an inner list")
            if self.peek() not in (" ", ")"):
                self.fail("expected a space or ')' in an inner list")

    def item(self) -> _Item:
        return _Item(self.bare_item(), self.parameters())

    def parameters(self) -> _Parameters:
        params: list[tuple[str, _BareItem]] = []
        while self.peek() == ";":
            self.pos += 1
            self.skip(" ")
            key = self.match(_KEY, "a parameter key")
            if any(name == key for name, _ in params):
                self.fail(f"duplicate parameter {key!r}")
            value: _BareItem = True
            if self.peek() == "=":
                self.pos += 1
                value = self.bare_item()
            params.append((key, value))
            if len(params) > PARAMETERS_MAX:
                self.fail(f"more than {PARAMETERS_MAX} parameters")
        return tuple(params)

    def bare_item(self) -> _BareItem:
        first = self.peek()
        if first == '"':
            return self.string()
        if first == ":":
            return self.byte_sequence()
        if first == "?":
            return self.boolean()
        if first == "-" or "0" <= first <= "9":
            return self.integer()
        if first == "*" or ("A" <= first <= "Z") or ("a" <= first <= "z"):
            return _Token(self.match(_TOKEN, "a token"))
        self.fail("expected an item")

    def integer(self) -> int:
        digits = self.match(_DIGITS, "an integer")
        if len(digits.lstrip("-")) > _INTEGER_DIGITS_MAX:
            self.fail(f"integer longer than {_INTEGER_DIGITS_MAX} digits")
        if self.peek() == ".":
            self.fail("decimals are not supported")
        return int(digits)

    def string(self) -> str:
        self.expect('"')
        parts: list[str] = []
        while True:
            run = _STRING_RUN.match(self.text, self.pos)
            if run is not None:
                parts.append(run.group())
                self.pos = run.end()
            character = self.peek()
            if character == '"':
                self.pos += 1
                return "".join(parts)
            if character != "\\":
                self.fail("unterminated string or a character not allowed in a string")
            escaped = self.text[self.pos + 1 : self.pos + 2]
            if escaped not in ('"', "\\"):
                self.fail('only \\" and \\\\ may be escaped in a string')
            parts.append(escaped)
            self.pos += 2

    def byte_sequence(self) -> bytes:
        self.expect(":")
        found = _BASE64.match(self.text, self.pos)  # `*`: matches, perhaps empty
        text = found.group() if found is not None else ""
        self.pos += len(text)
        self.expect(":")
        # Stricter than RFC 8941 §4.2.7 on purpose: padding and zero trailing bits are
        # required, so every signature has exactly one spelling.
        try:
            data = base64.b64decode(text, validate=True)
        except binascii.Error:
            self.fail("invalid base64")
        if base64.b64encode(data).decode("ascii") != text:
            self.fail("non-canonical base64 (padding or trailing bits)")
        return data

    def boolean(self) -> bool:
        self.expect("?")
        value = self.peek()
        if value not in ("0", "1"):
            self.fail("expected ?0 or ?1")
        self.pos += 1
        return value == "1"


def _serialize_bare_item(value: _BareItem) -> str:
    if isinstance(value, bool):  # before int: a bool is an int in Python
        return "?1" if value else "?0"
    if isinstance(value, int):
        if abs(value) >= 10**_INTEGER_DIGITS_MAX:
            raise _FieldError("integer out of range")
        return str(value)
    if isinstance(value, str):
        if not _PRINTABLE.fullmatch(value):
            raise _FieldError(f"string {value!r} is not printable ASCII")
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bytes):
        return ":" + base64.b64encode(value).decode("ascii") + ":"
    return value.value


def _serialize_key(key: str) -> str:
    if not _KEY.fullmatch(key):
        raise _FieldError(f"{key!r} is not a structured-field key")
    return key


def _serialize_parameters(params: _Parameters) -> str:
    return "".join(
        f";{_serialize_key(key)}"
        if value is True
        else f";{_serialize_key(key)}={_serialize_bare_item(value)}"
        for key, value in params
    )


def _serialize_item(item: _Item) -> str:
    return _serialize_bare_item(item.value) + _serialize_parameters(item.params)


def _serialize_inner_list(inner: _InnerList) -> str:
    items = " ".join(_serialize_item(item) for item in inner.items)
    return f"({items}){_serialize_parameters(inner.params)}"


def _serialize_member_value(value: _Item | _InnerList) -> str:
    return _serialize_inner_list(value) if isinstance(value, _InnerList) else _serialize_item(value)


def _serialize_dictionary(members: Sequence[_Member]) -> str:
    parts = []
    for member in members:
        value = member.value
        if isinstance(value, _Item) and value.value is True:
            parts.append(member.key + _serialize_parameters(value.params))
        else:
            parts.append(f"{member.key}={_serialize_member_value(value)}")
    return ", ".join(parts)
