"""Servers' own keys at rest: sealed with Fernet, readable only with the same secret."""

from __future__ import annotations

from bot.core.keys import KeyBox


def test_a_sealed_key_opens_with_the_same_secret_only():
    box = KeyBox("one secret, long and random")
    sealed = box.seal("server-own-key-test-0123456789abcdef")
    assert "server-own-key" not in sealed
    assert box.open(sealed) == "server-own-key-test-0123456789abcdef"
    assert box.seal("server-own-key-test-0123456789abcdef") != sealed  # a fresh nonce each time
    assert KeyBox("another secret").open(sealed) is None
    assert box.open("not a token") is None
