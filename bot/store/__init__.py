"""Persistence. The core sees only `protocol.Store`; `open_store` picks the backend."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.store.repositories import Store


async def open_store(settings: Settings) -> Store:
    """PostgreSQL when `DATABASE_URL` is set, else SQLite at `DATABASE_PATH`; migrated."""
    from bot.store.repositories import Store

    if settings.database_url is not None:
        from bot.store.postgres.database import PostgresDatabase

        return Store(await PostgresDatabase.open(settings.database_url.get_secret_value()))
    return await Store.open(settings.database_path)
