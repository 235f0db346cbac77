"""Cart-signing keys: hosted (sealed under the master key) or the merchant's own; rotation
keeps old signatures verifying; any change to the signed cart or merchant is rejected."""

from __future__ import annotations

import secrets
import threading
from datetime import timedelta
from typing import Any

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select

from catalog_support import MASTER_KEY, make_shop
from paywarden.kernel.clock import FakeClock
from paywarden.kernel.errors import Conflict, InvalidRequest
from paywarden.services import merchants
from paywarden.store.tables_catalog import merchant_cart_keys
from paywarden.store.unit_of_work import Store
from paywarden.trust import custody
from paywarden.trust.keys import (
    PrivateKey,
    b64url_encode,
    ed25519_private_key,
    es256_private_key,
)

CART_HASH = "9f" * 32


def sign(store: Store, merchant_id: str, cart_hash: str = CART_HASH) -> str | None:
    return store.run(
        lambda uow: merchants.sign_cart(uow, merchant_id, False, cart_hash, master_key=MASTER_KEY)
    )


def verify(store: Store, merchant_id: str, signature: str, cart_hash: str = CART_HASH) -> None:
    store.run(
        lambda uow: merchants.verify_cart_signature(uow, merchant_id, False, cart_hash, signature),
        read_only=True,
    )


def published_kids(store: Store, merchant_id: str) -> list[str]:
    jwks = store.run(lambda uow: merchants.cart_keys(uow, merchant_id, False), read_only=True)
    return [key["kid"] for key in jwks["keys"]]


def own_signature(key: PrivateKey, claims: dict[str, object]) -> str:
    header = {"alg": "ES256", "kid": key.keyid, "typ": "cart+jws"}
    signing_input = (
        b64url_encode(rfc8785.dumps(header)) + "." + b64url_encode(rfc8785.dumps(claims))
    )
    return signing_input + "." + b64url_encode(key.sign(signing_input.encode()))


def test_a_hosted_merchant_signs_with_a_sealed_key_made_on_first_use(store: Store) -> None:
    shop = make_shop(store)
    assert published_kids(store, shop.merchant_id) == []
    signature = sign(store, shop.merchant_id)
    assert signature is not None
    verify(store, shop.merchant_id, signature)
    assert len(published_kids(store, shop.merchant_id)) == 1
    row = store.run(lambda uow: uow.execute(select(merchant_cart_keys)).one(), read_only=True)
    assert row.hosted and row.private_ciphertext.startswith("pwk1.")
    assert "d" not in row.public_jwk


@pytest.mark.parametrize("change", ["cart_hash", "merchant", "signature", "payload"])
def test_a_tampered_signature_or_cart_is_rejected(store: Store, change: str) -> None:
    shop, other = make_shop(store), make_shop(store)
    signature = sign(store, shop.merchant_id)
    assert signature is not None
    sign(store, other.merchant_id)  # the other merchant has a key of its own
    header, payload, sig = signature.split(".")
    target, cart_hash, token = shop.merchant_id, CART_HASH, signature
    if change == "cart_hash":
        cart_hash = "9e" + CART_HASH[2:]
    elif change == "merchant":
        target = other.merchant_id
    elif change == "signature":
        token = f"{header}.{payload}.{sig[:-2]}{'AA' if sig[-2:] != 'AA' else 'BA'}"
    else:
        forged = {"cart_hash": "00" * 32, "merchant": shop.merchant_id}
        token = f"{header}.{b64url_encode(rfc8785.dumps(forged))}.{sig}"
    with pytest.raises(InvalidRequest) as error:
        verify(store, target, token, cart_hash)
    assert error.value.code == "cart_signature_invalid"


def test_rotation_keeps_old_signatures_verifying(store: Store, clock: FakeClock) -> None:
    shop = make_shop(store)
    before = sign(store, shop.merchant_id)
    assert before is not None
    [old_kid] = published_kids(store, shop.merchant_id)
    store.run(
        lambda uow: merchants.rotate_cart_key(
            uow, None, shop.merchant_id, False, master_key=MASTER_KEY, overlap=timedelta(days=1)
        )
    )
    after = sign(store, shop.merchant_id)
    assert after is not None and after.split(".")[0] != before.split(".")[0]  # another kid
    kids = published_kids(store, shop.merchant_id)
    assert len(kids) == 2 and kids[1] == old_kid  # active first, the retired one still shown
    clock.advance(timedelta(days=2))
    assert published_kids(store, shop.merchant_id) == kids[:1]  # overlap over: unpublished
    verify(store, shop.merchant_id, before)  # but still trusted
    verify(store, shop.merchant_id, after)


def test_a_revoked_key_is_no_longer_trusted(store: Store) -> None:
    shop = make_shop(store)
    signature = sign(store, shop.merchant_id)
    assert signature is not None
    [kid] = published_kids(store, shop.merchant_id)
    store.run(lambda uow: merchants.revoke_cart_key(uow, None, shop.merchant_id, False, kid))
    with pytest.raises(InvalidRequest):
        verify(store, shop.merchant_id, signature)
    fresh = sign(store, shop.merchant_id)  # a new hosted key is made
    assert fresh is not None
    verify(store, shop.merchant_id, fresh)


def test_a_merchant_with_its_own_key_signs_itself(store: Store) -> None:
    shop = make_shop(store)
    hosted = sign(store, shop.merchant_id)
    assert hosted is not None
    key = es256_private_key(ec.generate_private_key(ec.SECP256R1()))
    store.run(
        lambda uow: merchants.register_cart_key(
            uow, None, shop.merchant_id, False, key.public_jwk()
        )
    )
    assert sign(store, shop.merchant_id) is None  # the platform no longer signs
    profile = store.run(lambda uow: merchants.get_profile(uow, shop.merchant_id, False))
    assert profile.cart_key_mode == "own"
    assert published_kids(store, shop.merchant_id)[0] == key.keyid
    verify(
        store,
        shop.merchant_id,
        own_signature(key, {"cart_hash": CART_HASH, "merchant": shop.merchant_id}),
    )
    verify(store, shop.merchant_id, hosted)  # the retired hosted key still verifies
    stranger = es256_private_key(ec.generate_private_key(ec.SECP256R1()))
    for token in (
        own_signature(stranger, {"cart_hash": CART_HASH, "merchant": shop.merchant_id}),
        own_signature(key, {"cart_hash": CART_HASH, "merchant": shop.merchant_id, "total": 1}),
    ):
        with pytest.raises(InvalidRequest):
            verify(store, shop.merchant_id, token)
    with pytest.raises(Conflict):  # the same key twice
        store.run(
            lambda uow: merchants.register_cart_key(
                uow, None, shop.merchant_id, False, key.public_jwk()
            )
        )
    # Rotating makes the merchant hosted again.
    store.run(
        lambda uow: merchants.rotate_cart_key(
            uow, None, shop.merchant_id, False, master_key=MASTER_KEY
        )
    )
    again = sign(store, shop.merchant_id)
    assert again is not None
    verify(store, shop.merchant_id, again)


def test_an_ed25519_key_is_refused_as_a_cart_key(store: Store) -> None:
    shop = make_shop(store)
    key = ed25519_private_key(secrets.token_bytes(32))
    with pytest.raises(InvalidRequest):
        store.run(
            lambda uow: merchants.register_cart_key(
                uow, None, shop.merchant_id, False, key.public_jwk()
            )
        )


def test_a_hosted_key_does_not_open_under_another_master_key(store: Store) -> None:
    shop = make_shop(store)
    assert sign(store, shop.merchant_id) is not None
    with pytest.raises(Exception, match="master key"):
        store.run(
            lambda uow: merchants.sign_cart(
                uow, shop.merchant_id, False, CART_HASH, master_key=bytes(32)
            )
        )


def test_first_signatures_at_once_share_one_hosted_key(store: Store) -> None:
    shop = make_shop(store)
    signatures: list[str | None] = []
    barrier = threading.Barrier(4)

    def first_sign() -> None:
        barrier.wait()
        signatures.append(sign(store, shop.merchant_id))

    threads = [threading.Thread(target=first_sign) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(signatures) == 4
    assert len(published_kids(store, shop.merchant_id)) == 1
    for signature in signatures:
        assert signature is not None
        verify(store, shop.merchant_id, signature)


def test_a_hosted_key_is_opened_once_and_a_rotation_opens_the_new_one(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Signing a cart unseals the merchant's hosted key once per kid (what it opens to
    never changes), while which key is active is read at every signature."""
    opened: list[str] = []
    real = custody.open_signer

    def counting(record: Any, master_key: bytes) -> Any:
        opened.append(record.kid)
        return real(record, master_key)

    monkeypatch.setattr(custody, "open_signer", counting)
    shop = make_shop(store)
    first = [sign(store, shop.merchant_id) for _ in range(3)]
    [kid] = published_kids(store, shop.merchant_id)
    assert opened == [kid]
    assert len({token.split(".")[0] for token in first if token}) == 1
    store.run(
        lambda uow: merchants.rotate_cart_key(
            uow, None, shop.merchant_id, False, master_key=MASTER_KEY, overlap=timedelta(days=1)
        )
    )
    after = [sign(store, shop.merchant_id) for _ in range(2)]
    new_kid = published_kids(store, shop.merchant_id)[0]
    assert opened == [kid, new_kid]
    assert all(token and token.split(".")[0] != first[0].split(".")[0] for token in after)
