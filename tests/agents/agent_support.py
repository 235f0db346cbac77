"""What the agent tests share: fixed keys, platforms and agents made through the API, and
signed request headers (RFC 9421, signed with paywarden.trust.signatures)."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from paywarden.trust.keys import PrivateKey, ed25519_private_key, es256_private_key
from paywarden.trust.signatures import RequestParts, content_digest, sign_request

TAG = "agent-payer-auth"
AUTHORITY = "testserver"  # the Host the in-process TestClient sends
BASE_COMPONENTS = ("@method", "@authority", "@path")


def ed_key(number: int) -> PrivateKey:
    """A fixed Ed25519 key per number, so failures reproduce."""
    return ed25519_private_key(bytes([number]) * 32)


def es_key(number: int) -> PrivateKey:
    return es256_private_key(ec.derive_private_key(0x5EED_0000 + number, ec.SECP256R1()))


def create_platform(api: Any, origin: str | None = None) -> tuple[dict[str, Any], str]:
    origin = origin or f"https://agents-{secrets.token_hex(4)}.example"
    response = api.post(
        "/v1/agent_platforms", api.admin_key, {"name": "Agent Platform", "origin": origin}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return body, body["secret_key"]


def register_agent(api: Any, platform_key: str, *keys: PrivateKey) -> dict[str, Any]:
    response = api.post(
        "/v1/agents",
        platform_key,
        {"name": "Shopping agent", "keys": [key.public_jwk() for key in keys]},
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def signed_headers(
    key: PrivateKey,
    method: str,
    path: str,
    *,
    created: datetime,
    expires: datetime | None = None,
    query: str = "",
    body: bytes = b"",
    authority: str = AUTHORITY,
    scheme: str = "http",
    headers: Sequence[tuple[str, str]] = (),
    components: Sequence[str] | None = None,
    nonce: str | None = None,
    tag: str = TAG,
    keyid: str | None = None,
    omit_nonce: bool = False,
) -> dict[str, str]:
    """The headers of a request signed as an agent signs it: method, authority and path,
    plus the query and Content-Digest when there are any, created/expires/nonce/tag."""
    fields = list(headers)
    if body:
        fields.append(("Content-Digest", content_digest(body)))
    if components is None:
        components = list(BASE_COMPONENTS) + [name.lower() for name, _ in headers]
        components += ["@query"] if query else []
        components += ["content-digest"] if body else []
    request = RequestParts(method, scheme, authority, path, query, fields, body)
    signature_input, signature = sign_request(
        request,
        key=key,
        components=components,
        created=created,
        expires=expires if expires is not None else created + timedelta(seconds=60),
        nonce=None if omit_nonce else (nonce or secrets.token_urlsafe(16)),
        tag=tag,
        keyid=keyid,
    )
    return {**dict(fields), "Signature-Input": signature_input, "Signature": signature}


def error_code(response: Any) -> str | None:
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return None
