"""The PostgreSQL connection: an asyncpg pool, numbered migrations under an advisory lock.

Statements arrive with SQLite's `?` placeholders (the repositories are shared) and run as `$n`.
Outside a transaction each statement takes any pooled connection. `transaction()` pins one
connection to the current task (a context variable) and serialises transactions fleet-wide with a
transaction-scoped advisory lock: the same guarantee SQLite's `BEGIN IMMEDIATE` gives the core
(a read-then-write such as an admission check is never interleaved with another writer's).
The fleet queue's claims take a lock of their own instead (`CLAIM_LOCK`, see
`bot.fleet.claims`): they are serialised with each other, not with every writer.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
import re
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from bot.store.database import DatabaseError, migration_scripts
from bot.store.protocol import Row

log = logging.getLogger(__name__)

# Advisory lock keys (any 64-bit numbers, fixed for this application).
MIGRATION_LOCK = 0x1A6_1_0001
WRITE_LOCK = 0x1A6_1_0002
CLAIM_LOCK = 0x1A6_1_0003
POOL_MAX_SIZE = 10
_TOKEN = re.compile(r"'(?:[^']|'')*'|\?")


@functools.lru_cache(maxsize=1024)
def to_postgres(sql: str) -> str:
    """`?` placeholders (outside string literals) become `$1`, `$2`, …"""
    count = 0

    def number(match: re.Match[str]) -> str:
        nonlocal count
        if match.group(0) != "?":
            return match.group(0)
        count += 1
        return f"${count}"

    return _TOKEN.sub(number, sql)


def redacted(url: str) -> str:
    """The URL without its password, for messages."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


class PostgresDatabase:
    """A migrated PostgreSQL database. Create with `await PostgresDatabase.open(url)`."""

    dialect = "postgresql"

    def __init__(self, pool: asyncpg.Pool, url: str) -> None:
        self._pool = pool
        self.dsn = url  # for connections outside the pool (LISTEN); never logged
        self.url = redacted(url)
        self._conn: contextvars.ContextVar[asyncpg.Connection | None] = contextvars.ContextVar(
            "pg_conn", default=None
        )

    @classmethod
    async def open(cls, url: str, *, max_size: int = POOL_MAX_SIZE) -> PostgresDatabase:
        try:
            pool = await asyncpg.create_pool(url, min_size=1, max_size=max_size,
                                             reset=_keep_session)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise DatabaseError(
                f"cannot connect to PostgreSQL at {redacted(url)}: {exc}"
            ) from exc
        db = cls(pool, url)
        try:
            await db.migrate()
        except BaseException:
            await pool.close()
            raise
        return db

    async def close(self) -> None:
        await self._pool.close()

    # ------------------------------------------------------------------ migrations
    async def schema_version(self) -> int:
        exists = await self._pool.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
        if not exists:
            return 0
        return int(await self._pool.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_migrations"))

    async def migrate(self, *, up_to: int | None = None) -> None:
        """Apply every migration newer than the database's, each atomically. A session advisory
        lock makes processes that start together take turns: the second finds nothing to do."""
        scripts = migration_scripts("bot.store.postgres")
        known = scripts[-1][0] if scripts else 0
        async with self._pool.acquire() as conn:
            await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
            try:
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                    "name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
                )
                current = await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
                if current > known:
                    raise DatabaseError(
                        f"{self.url} has schema version {current}, newer than this bot knows ({known})"
                    )
                for version, name, sql in scripts:
                    if version <= current or (up_to is not None and version > up_to):
                        continue
                    log.info("Applying database migration %s", name)
                    async with conn.transaction():
                        await conn.execute(sql)
                        await conn.execute(
                            "INSERT INTO schema_migrations (version, name, applied_at) "
                            "VALUES ($1, $2, $3)", version, name, time.time(),
                        )
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)

    # ------------------------------------------------------------------ statements
    @asynccontextmanager
    async def transaction(self, *, lock: int = WRITE_LOCK) -> AsyncIterator[PostgresDatabase]:
        """Run the enclosed statements atomically on one connection, holding the advisory
        `lock` (the write lock unless said otherwise) until the end. Nested use joins."""
        if self._conn.get() is not None:
            yield self
            return
        async with self._pool.acquire() as conn:
            token = self._conn.set(conn)
            try:
                # BEGIN and the lock in one round trip (the simple query protocol runs both)
                await conn.execute(f"BEGIN; SELECT pg_advisory_xact_lock({int(lock)})")
                try:
                    yield self
                except BaseException:
                    # (if this fails too, the pool's reset on release rolls back)
                    with contextlib.suppress(Exception):
                        await conn.execute("ROLLBACK")
                    raise
                await conn.execute("COMMIT")
            finally:
                self._conn.reset(token)

    def _target(self) -> asyncpg.Connection | asyncpg.Pool:
        return self._conn.get() or self._pool

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one write statement. (Returns 0: use `insert` for a new row's id.)"""
        await self._target().execute(to_postgres(sql), *params)
        return 0

    async def insert(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Insert one row into a table keyed by `id`; returns the new row's id."""
        return int(await self._target().fetchval(f"{to_postgres(sql)} RETURNING id", *params))

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        async with self.transaction():
            conn = self._conn.get()
            assert conn is not None
            await conn.executemany(to_postgres(sql), list(rows))

    async def atomic(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> None:
        """Run write statements all or none, in one round trip: one statement, the others in
        its WITH clause (PostgreSQL docs, Queries → WITH Queries → Data-Modifying Statements in
        WITH: each runs exactly once, all in one snapshot; none may change a row another
        changes, and none reads another's effects: the store's groups write distinct rows
        and read nothing). It needs no lock: nothing is read between the writes."""
        if not statements:
            return
        *first, (last, last_params) = statements
        ctes = [f"w{n} AS ({sql})" for n, (sql, _) in enumerate(first)]
        sql = (f"WITH {', '.join(ctes)} " if ctes else "") + last
        params = [value for _, group in first for value in group] + list(last_params)
        await self._target().execute(to_postgres(sql), *params)

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        return await self._target().fetchrow(to_postgres(sql), *params)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return list(await self._target().fetch(to_postgres(sql), *params))

    @staticmethod
    def utc_day(column: str) -> str:
        """An SQL expression: the UTC date (YYYY-MM-DD) of a unix-time column."""
        return f"to_char(to_timestamp({column}) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"


async def _keep_session(_conn: asyncpg.Connection) -> None:
    """What a pooled connection needs on its way back to the pool beyond asyncpg's own
    clean-up (which rolls back an unfinished transaction): nothing. The store never changes
    session settings, LISTENs (the fleet queue has its own connection) or keeps session
    advisory locks (migrations unlock theirs), so asyncpg's default reset query (UNLISTEN *,
    RESET ALL, pg_advisory_unlock_all, CLOSE ALL) would cost a round trip per statement for
    nothing."""
