"""The SQLite connection: WAL, foreign keys, busy timeout, forward-only migrations, backups.

Two connections serve the process, each on a thread of its own. The writer's: a change that
reads between its statements runs inside `transaction()` (BEGIN IMMEDIATE … COMMIT, serialised by
an asyncio lock), so a crash leaves all of it or none; single writes and `atomic()` groups are
queued and committed together (group commit: one hop to the thread and one transaction for
every write queued meanwhile, each undone alone if it fails). The reader's (aiosqlite): reads
outside a transaction, which in WAL mode see every committed change and none in progress.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5000
T = TypeVar("T")


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


class _Thread:
    """The writer's sqlite3 connection, used only from one thread of its own; `run` is one hop
    there. (aiosqlite, which the reader uses, has no public way to run several statements in
    one hop, which a group commit needs.)"""

    def __init__(self, name: str) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=name)
        self.conn: sqlite3.Connection | None = None

    async def open(self, path: Path, *pragmas: str) -> None:
        def connect() -> sqlite3.Connection:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            try:
                for pragma in pragmas:
                    conn.execute(pragma)
            except BaseException:
                conn.close()
                raise
            return conn

        self.conn = await self.run(connect)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def close(self) -> None:
        if self.conn is not None:
            await self.run(self.conn.close)
        self._executor.shutdown(wait=False)


@dataclass(slots=True)
class _Write:
    statements: list[tuple[str, Sequence[Any] | dict[str, Any]]]
    done: asyncio.Future[int]


class Database:
    """A migrated SQLite database. Create with `await Database.open(path)`."""

    dialect = "sqlite"

    def __init__(self, writer: _Thread, path: Path) -> None:
        self._writer = writer
        self._reader: aiosqlite.Connection | None = None  # (none for ":memory:": not shared)
        self.path = path
        self._lock = asyncio.Lock()
        self._in_tx: contextvars.ContextVar[bool] = contextvars.ContextVar("in_tx", default=False)
        self._no_transaction = asyncio.Event()
        self._no_transaction.set()
        self._pending: list[_Write] = []  # writes waiting for the next group commit
        self._flushing: asyncio.Task[None] | None = None

    @property
    def _conn(self) -> sqlite3.Connection:
        assert self._writer.conn is not None
        return self._writer.conn

    @classmethod
    async def open(cls, path: Path | str, *, up_to: int | None = None) -> Database:
        """Open (creating it if need be) and migrate; `up_to` stops at that version (tests)."""
        path = Path(path)
        shared = str(path) != ":memory:"
        if shared:
            await asyncio.to_thread(_create_private, path)
        writer = _Thread("sqlite-writer")
        db = cls(writer, path)
        try:
            try:
                await writer.open(path, f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}",
                                  "PRAGMA journal_mode = WAL", "PRAGMA synchronous = NORMAL",
                                  "PRAGMA foreign_keys = ON")
            except sqlite3.DatabaseError as exc:  # e.g. "file is not a database"
                raise DatabaseError(f"{path} is not a usable SQLite database: {exc}") from exc
            await db._check_integrity()
            await db.migrate(up_to=up_to)
            if shared:
                db._reader = await _open_reader(path)
        except BaseException:
            await db._close_threads()
            raise
        return db

    async def close(self) -> None:
        if self._flushing is not None:
            await asyncio.wait([self._flushing])
        async with self._lock:
            await self._writer.run(self._conn.execute, "PRAGMA optimize")
            await self._close_threads()

    async def _close_threads(self) -> None:
        if self._reader is not None:
            await self._reader.close()
        await self._writer.close()

    async def _check_integrity(self) -> None:
        try:
            rows = await self._writer.run(_fetchall, self._conn, "PRAGMA quick_check", ())
        except sqlite3.DatabaseError as exc:
            raise DatabaseError(f"{self.path} is not a usable SQLite database: {exc}") from exc
        result = [row[0] for row in rows]
        if result != ["ok"]:
            raise DatabaseError(f"{self.path} failed its integrity check: {'; '.join(result[:5])}")

    async def schema_version(self) -> int:
        rows = await self._writer.run(_fetchall, self._conn, "PRAGMA user_version", ())
        return int(rows[0][0]) if rows else 0

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
                await self._writer.run(
                    self._conn.executescript,
                    f"BEGIN IMMEDIATE;\n{sql}\nPRAGMA user_version = {version};\nCOMMIT;",
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
                await self._writer.run(self._conn.execute, "BEGIN IMMEDIATE")
                try:
                    yield self
                except BaseException:
                    await self._writer.run(self._conn.execute, "ROLLBACK")
                    raise
                await self._writer.run(self._conn.execute, "COMMIT")
            finally:
                self._in_tx.reset(token)
                self._no_transaction.set()

    async def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> int:
        """Run one write statement; returns the last row id."""
        if self._in_tx.get():
            return await self._writer.run(_execute, self._conn, sql, params)
        return await self._group_commit([(sql, params)])

    async def atomic(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> None:
        """Run write statements all or none, without a transaction held across awaits."""
        if self._in_tx.get():
            for sql, params in statements:
                await self._writer.run(_execute, self._conn, sql, params)
            return
        await self._group_commit(list(statements))

    async def _group_commit(self, statements: list[tuple[str, Sequence[Any] | dict[str, Any]]]) -> int:
        """Queue a write for the next group commit: every write queued meanwhile goes to the
        writer's thread in one hop and one transaction (each its own all-or-nothing part)."""
        write = _Write(statements, asyncio.get_running_loop().create_future())
        self._pending.append(write)
        if self._flushing is None:
            self._flushing = asyncio.create_task(self._flush(), name="sqlite-group-commit")
        return await write.done

    async def _flush(self) -> None:
        try:
            while self._pending:
                async with self._lock:
                    batch, self._pending = self._pending, []
                    try:
                        outcomes = await self._writer.run(_commit_group, self._conn, batch)
                    except BaseException as exc:
                        outcomes = [exc] * len(batch)
                for write, outcome in zip(batch, outcomes, strict=True):
                    if write.done.done():
                        continue  # (its caller was cancelled; the write happened or not)
                    if isinstance(outcome, BaseException):
                        write.done.set_exception(outcome)
                    else:
                        write.done.set_result(outcome)
        finally:
            self._flushing = None

    async def insert(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Insert one row into a table keyed by `id`; returns the new row's id."""
        return await self.execute(sql, params)

    @staticmethod
    def utc_day(column: str) -> str:
        """An SQL expression: the UTC date (YYYY-MM-DD) of a unix-time column."""
        return f"date({column}, 'unixepoch')"

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        async with self.transaction():
            await self._writer.run(self._conn.executemany, sql, list(rows))

    async def fetchone(
        self, sql: str, params: Sequence[Any] | dict[str, Any] = ()
    ) -> sqlite3.Row | None:
        rows = await self._fetch(sql, params)
        return next(iter(rows), None)

    async def fetchall(
        self, sql: str, params: Sequence[Any] | dict[str, Any] = ()
    ) -> list[sqlite3.Row]:
        return await self._fetch(sql, params)

    async def _fetch(self, sql: str, params: Sequence[Any] | dict[str, Any]) -> list[sqlite3.Row]:
        """One hop: to the writer's thread inside a transaction (its own rows are visible
        there), else to the reader's, which sees every committed change and none in progress
        (WAL), so a read never waits for a transaction or queues behind writes. Without a
        reader (":memory:"), a read waits for another task's open transaction to end."""
        if self._in_tx.get():
            return await self._writer.run(_fetchall, self._conn, sql, params)
        if self._reader is not None:
            return list(await self._reader.execute_fetchall(sql, params))
        while not self._no_transaction.is_set():
            await self._no_transaction.wait()
        return await self._writer.run(_fetchall, self._conn, sql, params)


async def _open_reader(path: Path) -> aiosqlite.Connection:
    """The read connection (aiosqlite: one hop to its thread per read), read-only."""
    reader = await aiosqlite.connect(path, isolation_level=None)
    reader.row_factory = aiosqlite.Row
    try:
        await reader.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        await reader.execute("PRAGMA query_only = ON")
        await reader.execute("PRAGMA foreign_keys = ON")  # (as the writer: reads report it)
    except BaseException:
        await reader.close()
        raise
    return reader


def _execute(conn: sqlite3.Connection, sql: str, params: Sequence[Any] | dict[str, Any]) -> int:
    return conn.execute(sql, params).lastrowid or 0


def _fetchall(
    conn: sqlite3.Connection, sql: str, params: Sequence[Any] | dict[str, Any]
) -> list[sqlite3.Row]:
    return conn.execute(sql, params).fetchall()


def _commit_group(conn: sqlite3.Connection, batch: list[_Write]) -> list[int | BaseException]:
    """Run queued writes in one transaction (on the writer's thread). A write that fails is
    undone alone (its statements run under a savepoint) and reported to its caller; the
    others commit."""
    outcomes: list[int | BaseException] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        for write in batch:
            outcomes.append(_apply(conn, write.statements, savepoint=len(batch) > 1))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return outcomes


def _apply(conn: sqlite3.Connection, statements: list[tuple[str, Any]], *,
           savepoint: bool) -> int | BaseException:
    if savepoint:
        conn.execute("SAVEPOINT write")
    try:
        last = 0
        for sql, params in statements:
            last = conn.execute(sql, params).lastrowid or 0
    except Exception as exc:  # (sqlite3's errors, or a value it cannot bind)
        if not conn.in_transaction:
            raise  # (the whole transaction is gone: every write of the group fails)
        if savepoint:
            conn.execute("ROLLBACK TO write")
            conn.execute("RELEASE write")
            return exc
        raise
    if savepoint:
        conn.execute("RELEASE write")
    return last


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
