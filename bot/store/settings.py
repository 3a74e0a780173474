"""Small settings kept by key: servers' settings, members' preferences (locale, default
options) and the bot's own metadata."""

from __future__ import annotations

import json
import time
from typing import Any

from bot.core.models import (
    UserPrefs,
)
from bot.store.protocol import SqlDatabase
from bot.store.rows import dumps


class GuildSettingsRepository:
    def __init__(self, db: SqlDatabase) -> None:
        self._db = db

    async def get(self, guild_id: int) -> dict[str, Any]:
        row = await self._db.fetchone(
            "SELECT settings FROM guild_settings WHERE guild_id = ?", (guild_id,)
        )
        return json.loads(row["settings"]) if row else {}

    async def all(self) -> dict[int, dict[str, Any]]:
        """Every server's stored settings (for instance-wide rules such as who may use DMs)."""
        rows = await self._db.fetchall("SELECT guild_id, settings FROM guild_settings")
        return {int(r["guild_id"]): json.loads(r["settings"]) for r in rows}

    async def put(self, guild_id: int, settings: dict[str, Any]) -> None:
        await self._db.execute(
            "INSERT INTO guild_settings (guild_id, settings, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT(guild_id) DO UPDATE SET settings = excluded.settings, "
            "updated_at = excluded.updated_at",
            (guild_id, dumps(settings), time.time()),
        )


class UserPrefsRepository:
    def __init__(self, db: SqlDatabase) -> None:
        self._db = db

    async def get(self, user_id: int) -> UserPrefs:
        row = await self._db.fetchone(
            "SELECT locale, prefs FROM user_prefs WHERE user_id = ?", (user_id,)
        )
        return UserPrefs.from_dict(json.loads(row["prefs"]), row["locale"]) if row else UserPrefs()

    async def set_locale(self, user_id: int, locale: str) -> None:
        await self._db.execute(
            "INSERT INTO user_prefs (user_id, locale, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT(user_id) DO UPDATE SET locale = excluded.locale, "
            "updated_at = excluded.updated_at",
            (user_id, locale, time.time()),
        )

    async def put(self, user_id: int, prefs: UserPrefs) -> None:
        await self._db.execute(
            "INSERT INTO user_prefs (user_id, prefs, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT(user_id) DO UPDATE SET prefs = excluded.prefs, "
            "updated_at = excluded.updated_at",
            (user_id, dumps(prefs.to_dict()), time.time()),
        )


class MetaRepository:
    def __init__(self, db: SqlDatabase) -> None:
        self._db = db

    async def get(self, key: str) -> str | None:
        row = await self._db.fetchone("SELECT value FROM meta WHERE key = ?", (key,))
        return row["value"] if row else None

    async def put(self, key: str, value: str) -> None:
        await self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )
