"""Servers' own OpenAI keys: encrypted at rest with Fernet (the `cryptography` package), never
shown or logged. Off unless the operator sets KEY_ENCRYPTION_SECRET.

The Fernet key is derived from the secret with SHA-256, so any long random string will do; the
same secret must be kept to read the keys back (a changed secret makes stored keys unreadable,
and those servers are told to set theirs again).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import openai
from cryptography.fernet import Fernet, InvalidToken
from openai import AsyncOpenAI

if TYPE_CHECKING:
    from bot.core.image_client import ImageClient
    from bot.store.protocol import Store


class KeyBox:
    """Encrypts and decrypts API keys with one secret."""

    def __init__(self, secret: str) -> None:
        digest = hashlib.sha256(secret.encode("utf-8")).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(digest))

    def seal(self, api_key: str) -> str:
        return self._fernet.encrypt(api_key.encode("utf-8")).decode("ascii")

    def open(self, sealed: str) -> str | None:
        """The key in clear, or None if it cannot be read (another secret, damaged)."""
        try:
            return self._fernet.decrypt(sealed.encode("ascii")).decode("utf-8")
        except (InvalidToken, ValueError):
            return None


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
    """One cheap call with a server's key (`GET /models/{model}`): None if it works, else
    "rejected" (401), "model" (the key's project cannot use the model) or "unreachable"."""
    try:
        await client.models.retrieve(model)
    except openai.AuthenticationError:
        return "rejected"
    except (openai.PermissionDeniedError, openai.NotFoundError):
        return "model"
    except (openai.APIConnectionError, openai.APIStatusError):
        return "unreachable"
    return None
