"""An agent's key and the RFC 9421 signature on each of its requests.

The SDK signs with :mod:`paywarden.trust.signatures`, the very code the server verifies with:
components ``@method @authority @path`` (+ ``@query`` when there is one, + ``content-digest``
when there is a body), parameters ``created``, ``keyid`` (the JWK thumbprint), ``alg``,
``expires`` (created + 60 s), ``nonce`` (fresh for every attempt) and
``tag="agent-payer-auth"``.

A key file is the agent's private JWK as JSON (``{"kty": "OKP", "crv": "Ed25519", "x", "d"}``
or an ES256 one); :func:`generate_agent_key` writes one for Ed25519.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from paywarden.trust.keys import PrivateKey, b64url_encode, ed25519_private_key, parse_private_jwk
from paywarden.trust.signatures import RequestParts, content_digest, sign_request

__all__ = ["AgentKey", "generate_agent_key", "load_agent_key"]

SIGNATURE_LIFETIME = timedelta(seconds=60)
TAG = "agent-payer-auth"


class AgentKey:
    """A private key that signs an agent's requests. Its repr never shows the secret."""

    def __init__(self, key: PrivateKey) -> None:
        self.key = key

    @classmethod
    def from_jwk(cls, jwk: Mapping[str, Any]) -> AgentKey:
        return cls(parse_private_jwk(jwk))

    @property
    def keyid(self) -> str:
        return self.key.keyid

    def public_jwk(self) -> dict[str, str]:
        return self.key.public_jwk()

    def __repr__(self) -> str:
        return f"AgentKey(keyid={self.keyid!r})"

    def headers(
        self,
        method: str,
        authority: str,
        path: str,
        query: str,
        body: bytes,
        *,
        now: datetime,
        scheme: str = "http",
    ) -> dict[str, str]:
        """The ``Content-Digest`` (with a body), ``Signature-Input`` and ``Signature`` fields
        for one attempt of a request; a new nonce every call."""
        fields = [("Content-Digest", content_digest(body))] if body else []
        components = ["@method", "@authority", "@path"]
        components += ["@query"] if query else []
        components += ["content-digest"] if body else []
        parts = RequestParts(method.upper(), scheme, authority, path, query, fields, body)
        signature_input, signature = sign_request(
            parts,
            key=self.key,
            components=components,
            created=now,
            expires=now + SIGNATURE_LIFETIME,
            nonce=secrets.token_urlsafe(16),
            tag=TAG,
        )
        return {**dict(fields), "Signature-Input": signature_input, "Signature": signature}


def load_agent_key(path: str | Path) -> AgentKey:
    """The agent key in a private JWK file."""
    jwk = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(jwk, dict):
        raise ValueError(f"{path} does not hold a JWK object")
    return AgentKey.from_jwk(jwk)


def generate_agent_key(path: str | Path | None = None) -> tuple[AgentKey, dict[str, str]]:
    """A new Ed25519 agent key and its private JWK; written to ``path`` (mode 0600, never
    over an existing file) when given."""
    seed = secrets.token_bytes(32)
    key = ed25519_private_key(seed)
    jwk = {**key.public_jwk(), "d": b64url_encode(seed)}
    if path is not None:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(jwk, handle)
    return AgentKey(key), jwk
