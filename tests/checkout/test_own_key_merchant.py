"""A merchant that signs carts with its own key: its sessions wait for its signature (not
payable until then), it attaches the signature over the current hash, and a wrong one is
refused."""

from __future__ import annotations

import rfc8785
from cryptography.hazmat.primitives.asymmetric import ec

from commerce_support import make_api_shop
from conftest import Api
from paywarden.kernel.clock import FakeClock
from paywarden.trust.keys import PrivateKey, b64url_encode, es256_private_key


def own_signature(key: PrivateKey, claims: dict[str, object]) -> str:
    header = {"alg": "ES256", "kid": key.keyid, "typ": "cart+jws"}
    signing_input = (
        b64url_encode(rfc8785.dumps(header)) + "." + b64url_encode(rfc8785.dumps(claims))
    )
    return signing_input + "." + b64url_encode(key.sign(signing_input.encode()))


def test_an_own_key_merchant_signs_before_the_agent_pays(api: Api, clock: FakeClock) -> None:
    shop = make_api_shop(api, clock)
    merchant_id = shop.merchant["id"]
    key = es256_private_key(ec.generate_private_key(ec.SECP256R1()))
    registered = api.post(
        f"/v1/merchants/{merchant_id}/cart_keys", shop.merchant_key, {"jwk": key.public_jwk()}
    )
    assert registered.status_code in (200, 201), registered.text
    session = shop.create().json()
    assert session["cart_signature"] is None
    assert session["status"] == "not_ready_for_payment"
    assert session["messages"][0]["param"] == "$.cart_signature"
    unsigned = shop.complete(session)
    assert (unsigned.status_code, unsigned.json()["error"]["code"]) == (409, "cart_unsigned")
    path = f"/v1/checkout_sessions/{session['id']}/signature"
    wrong = own_signature(key, {"cart_hash": "0" * 64, "merchant": merchant_id})
    refused = api.post(
        path, shop.merchant_key, {"cart_hash": session["cart_hash"], "signature": wrong}
    )
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["code"] == "cart_signature_invalid"
    good = own_signature(key, {"cart_hash": session["cart_hash"], "merchant": merchant_id})
    by_agent = shop.agent.post(path, {"cart_hash": session["cart_hash"], "signature": good})
    assert by_agent.status_code == 401  # agent signatures never reach this route
    signed = api.post(
        path, shop.merchant_key, {"cart_hash": session["cart_hash"], "signature": good}
    )
    assert signed.status_code == 200, signed.text
    assert signed.json()["status"] == "ready_for_payment"
    assert signed.json()["messages"] == []
    done = shop.complete(signed.json())
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "completed"
