"""Servers' own OpenAI keys: encrypted at rest with Fernet (the `cryptography` package), never
shown or logged. Off unless the operator sets KEY_ENCRYPTION_SECRET.

The secret is a Fernet key (`Fernet.generate_key()`, used as it is) or at least 32 bytes of
random text, stretched into one with HKDF-SHA256. Keys sealed by earlier versions (a plain
SHA-256 of the secret) are still read, until `python -m bot rotate-key-secret` re-seals them.
Start-up refuses when keys are stored and the secret is missing or opens none of them
(`audit_keys`); a key the secret cannot open is treated like a revoked one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import openai
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from openai import AsyncOpenAI

from bot.core.openai_check import missing_scope

if TYPE_CHECKING:
    from bot.core.image_client import ImageClient
    from bot.store.protocol import Store

MIN_SECRET_BYTES = 32
_SALT = b"imagine-bot/server-keys"  # fixed: one secret, one key (the secret is random already)
_INFO = b"fernet-key/v2"


def _fernet_key(secret: str) -> bytes | None:
    """The secret itself when it is a Fernet key (url-safe base64 of 32 bytes)."""
    try:
        raw = base64.urlsafe_b64decode(secret.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return None
    return secret.encode("ascii") if len(raw) == 32 and len(secret) == 44 else None


def secret_problem(secret: str) -> str | None:
    """Why a KEY_ENCRYPTION_SECRET is too weak to use, or None."""
    if _fernet_key(secret) is not None or len(secret.encode("utf-8")) >= MIN_SECRET_BYTES:
        return None
    return (f"must be a Fernet key (Fernet.generate_key()) or at least {MIN_SECRET_BYTES} bytes "
            "of random text, e.g. the output of `openssl rand -base64 32`")


def derive_key(secret: str) -> bytes:
    """The Fernet key of a secret: itself if it is one, else HKDF-SHA256 of it."""
    direct = _fernet_key(secret)
    if direct is not None:
        return direct
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=_SALT, info=_INFO)
    return base64.urlsafe_b64encode(hkdf.derive(secret.encode("utf-8")))


def _legacy_key(secret: str) -> bytes:
    """How earlier versions keyed Fernet (a bare SHA-256): read only, for migration."""
    return base64.urlsafe_b64encode(hashlib.sha256(secret.encode("utf-8")).digest())


class KeyBox:
    """Encrypts and decrypts API keys with one secret (reading the old sealing too)."""

    def __init__(self, secret: str) -> None:
        self._fernet = Fernet(derive_key(secret))
        self._legacy = Fernet(_legacy_key(secret))

    def seal(self, api_key: str) -> str:
        return self._fernet.encrypt(api_key.encode("utf-8")).decode("ascii")

    def open(self, sealed: str) -> str | None:
        """The key in clear, or None if it cannot be read (another secret, damaged)."""
        return self.unseal(sealed)[0]

    def unseal(self, sealed: str) -> tuple[str | None, bool]:
        """(the key in clear or None, whether it was sealed the old way)."""
        for fernet, legacy in ((self._fernet, False), (self._legacy, True)):
            try:
                return fernet.decrypt(sealed.encode("ascii")).decode("utf-8"), legacy
            except (InvalidToken, ValueError):
                continue
        return None, False


@dataclass(frozen=True, slots=True)
class KeyAudit:
    """What the secret makes of the stored keys."""

    stored: int
    unreadable: tuple[int, ...] = ()  # servers whose key the secret does not open
    legacy: int = 0  # keys sealed the old way (rotate-key-secret re-seals them)

    def refusal(self, secret_set: bool) -> str | None:
        """The one line start-up refuses with, or None to go on."""
        if not self.stored:
            return None
        if not secret_set:
            return (f"KEY_ENCRYPTION_SECRET is not set, but {self.stored} server(s) have their "
                    "own OpenAI key stored: set the secret they were sealed with (their turns "
                    "are never billed to OPENAI_API_KEY)")
        if len(self.unreadable) == self.stored:
            return (f"KEY_ENCRYPTION_SECRET does not open any of the {self.stored} stored server "
                    "key(s): set the secret they were sealed with, or move them to a new one "
                    "with `python -m bot rotate-key-secret` (old secret in "
                    "OLD_KEY_ENCRYPTION_SECRET)")
        return None


async def audit_keys(store: Store, box: KeyBox | None) -> KeyAudit:
    """Try the secret on every stored key (none opened without a secret)."""
    stored = await store.server_keys.all()
    if box is None:
        return KeyAudit(len(stored), tuple(stored))
    unreadable, legacy = [], 0
    for guild_id, key in stored.items():
        api_key, old = box.unseal(key.encrypted)
        if api_key is None:
            unreadable.append(guild_id)
        legacy += old
    return KeyAudit(len(stored), tuple(unreadable), legacy)


class ServerKeys:
    """Which servers pay with their own key, and an image client per key (built once, cached).

    `make_client(api_key)` builds an `ImageClient` like the operator's, with that key;
    `check(api_key)` makes one cheap call with it and returns None if it works, else why not.
    """

    def __init__(
        self,
        store: Store,
        box: KeyBox,
        *,
        make_client: Callable[[str], ImageClient],
        check: Callable[[str], Awaitable[str | None]],
    ) -> None:
        self.store = store
        self.box = box
        self._make_client = make_client
        self._check = check
        self._clients: dict[str, ImageClient] = {}

    async def state(self, guild_id: int | None) -> str:
        """"none", "active" or "failed"."""
        if guild_id is None:
            return "none"
        stored = await self.store.server_keys.get(guild_id)
        if stored is None:
            return "none"
        return "failed" if stored.failed else "active"

    async def client_for(self, guild_id: int) -> ImageClient | None:
        """The client of a server's working key; None when there is none, it failed, or the
        secret cannot open it (the caller treats that like a revoked key)."""
        stored = await self.store.server_keys.get(guild_id)
        api_key = self.box.open(stored.encrypted) if stored and not stored.failed else None
        if api_key is None:
            return None
        digest = hashlib.sha256(api_key.encode("utf-8")).hexdigest()
        if digest not in self._clients:
            self._clients[digest] = self._make_client(api_key)
        return self._clients[digest]

    async def set(self, guild_id: int, api_key: str) -> str | None:
        """Check the key with one call and store it sealed; returns why it was refused."""
        problem = await self._check(api_key)
        if problem is None:
            await self.store.server_keys.put(guild_id, self.box.seal(api_key))
        return problem

    async def remove(self, guild_id: int) -> None:
        await self.store.server_keys.delete(guild_id)

    async def mark_failed(self, guild_id: int) -> bool:
        return await self.store.server_keys.mark_failed(guild_id)


async def probe_key(client: AsyncOpenAI, model: str) -> str | None:
    """One cheap call with a server's key (`GET /models/{model}`): None if it works (or only
    lacks the Models read scope), else "rejected" (401), "model" (the key's project cannot use
    the model) or "unreachable"."""
    try:
        await client.models.retrieve(model)
    except openai.AuthenticationError as exc:
        # a restricted key without the Models read scope (401 "Missing scopes") is a working
        # key that may not list models: taken, like the start-up check takes it
        return None if missing_scope(exc) else "rejected"
    except (openai.PermissionDeniedError, openai.NotFoundError):
        return "model"
    except (openai.APIConnectionError, openai.APIStatusError):
        return "unreachable"
    return None


async def rotate_keys(store: Store, old: KeyBox, new: KeyBox) -> tuple[int, list[int]]:
    """Re-seal every stored key with `new` (each opened with `old`, else already with `new`),
    in one transaction; whether a key failed stays. Returns (re-sealed, servers whose key
    neither secret opens: left as they are)."""
    resealed, unreadable = 0, []
    async with store.transaction():
        for guild_id, key in (await store.server_keys.all()).items():
            api_key = old.open(key.encrypted) or new.open(key.encrypted)
            if api_key is None:
                unreadable.append(guild_id)
                continue
            await store.server_keys.reseal(guild_id, new.seal(api_key))
            resealed += 1
    return resealed, unreadable
