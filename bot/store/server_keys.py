"""Servers' own OpenAI keys, sealed, with their state (active or failed)."""

from __future__ import annotations

import time

from bot.core.models import (
    ServerKey,
)
from bot.store.protocol import SqlDatabase


class ServerKeyRepository:
    """Servers' own OpenAI keys, stored encrypted (the store never sees them in clear)."""

    def __init__(self, db: SqlDatabase) -> None:
        self._db = db

    async def get(self, guild_id: int) -> ServerKey | None:
        row = await self._db.fetchone(
            "SELECT encrypted, failed FROM server_keys WHERE guild_id = ?", (guild_id,)
        )
        return ServerKey(row["encrypted"], bool(row["failed"])) if row else None

    async def put(self, guild_id: int, encrypted: str) -> None:
        await self._db.execute(
            "INSERT INTO server_keys (guild_id, encrypted, failed, updated_at) VALUES (?, ?, 0, ?) "
            "ON CONFLICT (guild_id) DO UPDATE SET encrypted = excluded.encrypted, failed = 0, "
            "updated_at = excluded.updated_at",
            (guild_id, encrypted, time.time()),
        )

    async def all(self) -> dict[int, ServerKey]:
        """Every stored key, by server (for the start-up check and the rotation)."""
        rows = await self._db.fetchall("SELECT guild_id, encrypted, failed FROM server_keys")
        return {int(r["guild_id"]): ServerKey(r["encrypted"], bool(r["failed"])) for r in rows}

    async def reseal(self, guild_id: int, encrypted: str) -> None:
        """Replace a key's sealed form (same key, new secret); whether it failed stays."""
        await self._db.execute(
            "UPDATE server_keys SET encrypted = ?, updated_at = ? WHERE guild_id = ?",
            (encrypted, time.time(), guild_id),
        )

    async def mark_failed(self, guild_id: int) -> bool:
        """Mark a key failed; True only the first time (so its managers are told once)."""
        async with self._db.transaction():
            row = await self._db.fetchone(
                "SELECT failed FROM server_keys WHERE guild_id = ?", (guild_id,)
            )
            if row is None or row["failed"]:
                return False
            await self._db.execute(
                "UPDATE server_keys SET failed = 1, updated_at = ? WHERE guild_id = ?",
                (time.time(), guild_id),
            )
        return True

    async def delete(self, guild_id: int) -> None:
        await self._db.execute("DELETE FROM server_keys WHERE guild_id = ?", (guild_id,))
