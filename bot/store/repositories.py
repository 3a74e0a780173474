"""The store: every repository over one database (one module per aggregate beside this one:
`conversations`, `turns`, `usage`, `settings`, `server_keys`, `showcase`, `deliveries`,
`moderation`), returning dataclasses, never rows.

The SQL is written once for both backends (`?` placeholders, `ON CONFLICT`, no backend-only
functions: `db.utc_day()` where a dialect differs); the store's tests run it on SQLite and on
PostgreSQL.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any

from bot.store.conversations import ConversationRepository
from bot.store.database import Database
from bot.store.deliveries import DeliveryRepository
from bot.store.moderation import ModerationRepository
from bot.store.protocol import SqlDatabase
from bot.store.server_keys import ServerKeyRepository
from bot.store.settings import GuildSettingsRepository, MetaRepository, UserPrefsRepository
from bot.store.showcase import ShowcaseRepository
from bot.store.turns import TurnRepository
from bot.store.usage import UsageRepository


class Store:
    """All repositories over one database."""

    def __init__(self, db: SqlDatabase) -> None:
        self.db = db
        self.conversations = ConversationRepository(db)
        self.turns = TurnRepository(db)
        self.usage = UsageRepository(db)
        self.guild_settings = GuildSettingsRepository(db)
        self.meta = MetaRepository(db)
        self.user_prefs = UserPrefsRepository(db)
        self.server_keys = ServerKeyRepository(db)
        self.showcase = ShowcaseRepository(db)
        self.moderation = ModerationRepository(db)
        self.deliveries = DeliveryRepository(db)

    @classmethod
    async def open(cls, path: Any) -> Store:
        return cls(await Database.open(path))

    def transaction(self) -> AbstractAsyncContextManager[Any]:
        return self.db.transaction()

    async def close(self) -> None:
        await self.db.close()
