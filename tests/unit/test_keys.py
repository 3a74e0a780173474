"""Servers' own keys at rest: sealed with Fernet under a key stretched from the secret (HKDF), or
the secret itself when it is a Fernet key; readable only with the same secret; keys sealed the
old way (a bare SHA-256 of the secret) still read, and re-sealed by the rotation."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.fernet import Fernet, InvalidToken

from bot.core.keys import KeyBox, audit_keys, rotate_keys, secret_problem
from bot.store.repositories import Store

SECRET = "one secret, long and random: 7f3a9c1e5b2d8f4a"
KEY = "server-own-key-test-0123456789abcdef"


def sealed_the_old_way(secret: str, api_key: str) -> str:
    """How versions before issue 21 sealed a key: Fernet keyed by SHA-256 of the secret."""
    old = Fernet(base64.urlsafe_b64encode(hashlib.sha256(secret.encode()).digest()))
    return old.encrypt(api_key.encode()).decode()


def test_a_sealed_key_opens_with_the_same_secret_only():
    box = KeyBox(SECRET)
    sealed = box.seal(KEY)
    assert "server-own-key" not in sealed
    assert box.open(sealed) == KEY
    assert box.seal(KEY) != sealed  # a fresh nonce each time
    assert KeyBox("another secret, just as long and random: 1").open(sealed) is None
    assert box.open("not a token") is None


@pytest.mark.parametrize("secret", ["", "short", "x" * 31, "秘密" * 5])  # 30 bytes in UTF-8
def test_a_weak_secret_is_refused(secret):
    assert "at least 32 bytes" in (secret_problem(secret) or "")


def test_a_fernet_key_or_32_bytes_will_do_and_is_not_a_bare_hash():
    fernet_key = Fernet.generate_key().decode()
    assert secret_problem(fernet_key) is None and secret_problem("x" * 32) is None
    assert Fernet(fernet_key.encode()).decrypt(KeyBox(fernet_key).seal(KEY).encode()) == KEY.encode()
    plain_hash = Fernet(base64.urlsafe_b64encode(hashlib.sha256(SECRET.encode()).digest()))
    with pytest.raises(InvalidToken):  # stretched with a KDF, not the old bare SHA-256
        plain_hash.decrypt(KeyBox(SECRET).seal(KEY).encode())


def test_keys_sealed_the_old_way_still_open_and_say_so():
    assert KeyBox(SECRET).unseal(sealed_the_old_way(SECRET, KEY)) == (KEY, True)
    assert KeyBox(SECRET).unseal(KeyBox(SECRET).seal(KEY)) == (KEY, False)


async def test_rotation_reseals_every_key_and_the_audit_sees_what_opens(store: Store):
    new_secret = "the new secret, just as long and random: 42"
    await store.server_keys.put(1, sealed_the_old_way(SECRET, "key-one-000000000000"))
    await store.server_keys.put(2, KeyBox(SECRET).seal("key-two-000000000000"))
    await store.server_keys.mark_failed(2)
    await store.server_keys.put(3, KeyBox("a third secret nobody has any more, 0000").seal(KEY))
    audit = await audit_keys(store, KeyBox(SECRET))
    assert (audit.stored, audit.unreadable, audit.legacy) == (3, (3,), 1)
    assert audit.refusal(secret_set=True) is None  # it opens some: those it cannot are failed
    assert "not set" in (audit.refusal(secret_set=False) or "")
    resealed, unreadable = await rotate_keys(store, KeyBox(SECRET), KeyBox(new_secret))
    assert (resealed, unreadable) == (2, [3])
    keys = await store.server_keys.all()
    assert KeyBox(new_secret).unseal(keys[1].encrypted) == ("key-one-000000000000", False)
    assert KeyBox(new_secret).open(keys[2].encrypted) == "key-two-000000000000"
    assert KeyBox(SECRET).open(keys[1].encrypted) is None and keys[2].failed  # failed stays
    after = await audit_keys(store, KeyBox(new_secret))
    assert (after.unreadable, after.legacy) == ((3,), 0)
    only_new = await audit_keys(store, KeyBox("yet another secret, long and random: 99"))
    assert "does not open any of the 3" in (only_new.refusal(True) or "")
