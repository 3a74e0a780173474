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


def unreachable(exc: BaseException) -> bool:
    """Whether `exc` says the database cannot be reached right now (a restart, a dropped
    connection, a locked SQLite file): worth "try again in a moment", not a bug report."""
    import sqlite3

    import asyncpg

    if isinstance(exc, OSError | asyncpg.InterfaceError | asyncpg.PostgresConnectionError
                  | asyncpg.CannotConnectNowError | asyncpg.AdminShutdownError):
        return True
    return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)
