"""The SQLite connection: WAL, foreign keys, busy timeout, forward-only migrations, backups.

One aiosqlite connection serves the process. Writes are serialised by an asyncio lock, and a
multi-statement change runs inside `transaction()` (BEGIN IMMEDIATE … COMMIT), so a crash leaves
either all of a state change or none of it.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import aiosqlite

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5000


def migration_scripts(package: str = "bot.store") -> list[tuple[int, str, str]]:
    """The numbered migrations shipped with a backend's package (SQLite's by default), as
    (version, name, sql), in order."""
    folder = resources.files(package) / "migrations"
    scripts = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            scripts.append((version, entry.name, entry.read_text(encoding="utf-8")))
    return sorted(scripts)


def _create_private(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)


class DatabaseError(RuntimeError):
    """The database cannot be used (corrupt file, newer schema than this code knows)."""


class Database:
    """A migrated SQLite database. Create with `await Database.open(path)`."""

    dialect = "sqlite"

    def __init__(self, conn: aiosqlite.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path
        self._lock = asyncio.Lock()
        self._in_tx: contextvars.ContextVar[bool] = contextvars.ContextVar("in_tx", default=False)
        self._no_transaction = asyncio.Event()
        self._no_transaction.set()

    @classmethod
    async def open(cls, path: Path | str) -> Database:
        path = Path(path)
        if str(path) != ":memory:":
            await asyncio.to_thread(_create_private, path)
        conn = await aiosqlite.connect(path, isolation_level=None)
        conn.row_factory = aiosqlite.Row
        db = cls(conn, path)
        try:
            try:
                await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
                await conn.execute("PRAGMA journal_mode = WAL")
                await conn.execute("PRAGMA synchronous = NORMAL")
                await conn.execute("PRAGMA foreign_keys = ON")
            except sqlite3.DatabaseError as exc:  # e.g. "file is not a database"
                raise DatabaseError(f"{path} is not a usable SQLite database: {exc}") from exc
            await db._check_integrity()
            await db.migrate()
        except BaseException:
            await conn.close()
            raise
        return db

    async def close(self) -> None:
        async with self._lock:
            await self._conn.execute("PRAGMA optimize")
            await self._conn.close()

    async def _check_integrity(self) -> None:
        try:
            rows = await self._conn.execute_fetchall("PRAGMA quick_check")
        except sqlite3.DatabaseError as exc:
            raise DatabaseError(f"{self.path} is not a usable SQLite database: {exc}") from exc
        result = [row[0] for row in rows]
        if result != ["ok"]:
            raise DatabaseError(f"{self.path} failed its integrity check: {'; '.join(result[:5])}")

    async def schema_version(self) -> int:
        row = await (await self._conn.execute("PRAGMA user_version")).fetchone()
        return int(row[0]) if row else 0

    async def migrate(self, *, up_to: int | None = None) -> None:
        """Apply every migration newer than the database's `user_version`, each atomically."""
        current = await self.schema_version()
        scripts = migration_scripts()
        known = scripts[-1][0] if scripts else 0
        if current > known:
            raise DatabaseError(
                f"{self.path} has schema version {current}, newer than this bot knows ({known})"
            )
        for version, name, sql in scripts:
            if version <= current or (up_to is not None and version > up_to):
                continue
            log.info("Applying database migration %s", name)
            async with self._lock:
                await self._conn.executescript(
                    f"BEGIN IMMEDIATE;\n{sql}\nPRAGMA user_version = {version};\nCOMMIT;"
                )

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Database]:
        """Run the enclosed statements atomically. Nested use joins the outer transaction."""
        if self._in_tx.get():
            yield self
            return
        async with self._lock:
            token = self._in_tx.set(True)
            self._no_transaction.clear()
            try:
                await self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self
                except BaseException:
                    await self._conn.execute("ROLLBACK")
                    raise
                await self._conn.execute("COMMIT")
            finally:
                self._in_tx.reset(token)
                self._no_transaction.set()

    async def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> int:
        """Run one write statement; returns the last row id."""
        if self._in_tx.get():
            cursor = await self._conn.execute(sql, params)
            return cursor.lastrowid or 0
        async with self._lock:
            cursor = await self._conn.execute(sql, params)
            return cursor.lastrowid or 0

    async def insert(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Insert one row into a table keyed by `id`; returns the new row's id."""
        return await self.execute(sql, params)

    @staticmethod
    def utc_day(column: str) -> str:
        """An SQL expression: the UTC date (YYYY-MM-DD) of a unix-time column."""
        return f"date({column}, 'unixepoch')"

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        async with self.transaction():
            await self._conn.executemany(sql, rows)

    async def fetchone(
        self, sql: str, params: Sequence[Any] | dict[str, Any] = ()
    ) -> aiosqlite.Row | None:
        async with self._reading():  # one hop to the connection's thread, not three
            rows = await self._conn.execute_fetchall(sql, params)
        return next(iter(rows), None)

    async def fetchall(
        self, sql: str, params: Sequence[Any] | dict[str, Any] = ()
    ) -> list[aiosqlite.Row]:
        async with self._reading():
            return list(await self._conn.execute_fetchall(sql, params))

    @asynccontextmanager
    async def _reading(self) -> AsyncIterator[None]:
        """Reads share the one connection: outside a transaction of their own, they wait for
        another task's open transaction to end, so they never see its uncommitted rows.
        (Single autocommit writes need no waiting, so reads do not queue behind them.)"""
        if not self._in_tx.get():
            while not self._no_transaction.is_set():
                await self._no_transaction.wait()
        yield


def backup(source: Path | str, target: Path | str) -> None:
    """Copy a live database consistently with SQLite's online backup API (blocking)."""
    target = Path(target)
    _create_private(target)
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
        finally:
            dst.close()
    finally:
        src.close()
