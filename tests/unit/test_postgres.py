"""What only the PostgreSQL backend has: its migrations (a twin of SQLite's, applied under an
advisory lock), its refusals, and the placeholder translation. The repositories themselves are
tested on both backends by test_store.py and test_conversations.py."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from pathlib import Path

import asyncpg
import pytest

from bot.store.database import DatabaseError, migration_scripts
from bot.store.postgres import database as pg_module
from bot.store.postgres.database import PostgresDatabase, redacted, to_postgres
from bot.store.repositories import Store
from tests.pg import fresh_database, server_url

PG_SCRIPTS = migration_scripts("bot.store.postgres")
LATEST = PG_SCRIPTS[-1][0]

# SQLite declared types → the PostgreSQL types that hold the same values for the repositories.
SAME_TYPE = {
    "INTEGER": {"bigint", "integer"},
    "REAL": {"double precision"},
    "TEXT": {"text"},
    "BLOB": {"bytea"},
}


# Tables only the fleet-wide queue uses (PostgreSQL is the fleet's store).
PG_ONLY_TABLES = {"fleet_leases", "fleet_served"}


async def pg_columns(url: str) -> dict[str, dict[str, tuple[str, bool]]]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns "
            "WHERE table_schema = 'public' AND table_name <> 'schema_migrations' "
            "AND NOT table_name = ANY($1::text[])", list(PG_ONLY_TABLES),
        )
    finally:
        await conn.close()
    tables: dict[str, dict[str, tuple[str, bool]]] = {}
    for r in rows:
        tables.setdefault(r["table_name"], {})[r["column_name"]] = (
            r["data_type"], r["is_nullable"] == "NO"
        )
    return tables


def sqlite_columns(path: Path) -> dict[str, dict[str, tuple[str, bool]]]:
    conn = sqlite3.connect(path)
    try:
        names = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )]
        return {
            name: {
                row[1]: (row[2].upper(), bool(row[3]) or bool(row[5]))
                for row in conn.execute(f"PRAGMA table_info('{name}')")
            }
            for name in names
        }
    finally:
        conn.close()


def test_postgres_migrations_mirror_sqlite_by_number() -> None:
    sqlite_versions = [v for v, _, _ in migration_scripts()]
    assert [v for v, _, _ in PG_SCRIPTS] == sqlite_versions
    for version, name, sql in PG_SCRIPTS:
        assert re.fullmatch(rf"{version:04d}_[a-z0-9_]+\.sql", name), name
        assert not re.search(r"^\s*(BEGIN|COMMIT|ROLLBACK)\b", sql, re.I | re.M), name


async def test_postgres_schema_has_the_same_tables_columns_and_nullability(tmp_path: Path) -> None:
    sqlite_store = await Store.open(tmp_path / "twin.db")
    await sqlite_store.close()
    lite = sqlite_columns(tmp_path / "twin.db")
    async with fresh_database() as url:
        db = await PostgresDatabase.open(url)
        await db.close()
        pg = await pg_columns(url)
    assert set(pg) == set(lite)
    for table, columns in lite.items():
        assert set(pg[table]) == set(columns), table
        for column, (declared, required) in columns.items():
            pg_type, pg_required = pg[table][column]
            assert pg_type in SAME_TYPE[declared], (table, column, declared, pg_type)
            assert pg_required == required, (table, column)


async def test_two_processes_starting_together_migrate_once() -> None:
    async with fresh_database() as url:
        first, second = await asyncio.gather(PostgresDatabase.open(url), PostgresDatabase.open(url))
        try:
            assert await first.schema_version() == LATEST
            assert await second.schema_version() == LATEST
            rows = await first.fetchall("SELECT version FROM schema_migrations ORDER BY version")
            assert [r["version"] for r in rows] == [v for v, _, _ in PG_SCRIPTS]
        finally:
            await first.close()
            await second.close()


async def _waiting_for_a_lock(db: PostgresDatabase) -> None:
    """Until some session waits for an advisory lock (seen in pg_locks)."""
    while True:
        if await db.fetchone("SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"):
            return
        await asyncio.sleep(0.01)


async def test_claims_wait_for_each_other_but_not_for_the_write_lock() -> None:
    async with fresh_database() as url:
        db, other = await PostgresDatabase.open(url), await PostgresDatabase.open(url)
        writing, release_write = asyncio.Event(), asyncio.Event()
        claiming, release_claim = asyncio.Event(), asyncio.Event()
        try:

            async def write() -> None:
                async with other.transaction():
                    writing.set()
                    await release_write.wait()

            writer = asyncio.create_task(write())
            await writing.wait()

            async def claim_alone() -> None:
                async with db.transaction(lock=pg_module.CLAIM_LOCK):
                    assert await db.fetchone("SELECT 1 AS one") is not None

            # a claim runs while a store transaction holds the write lock
            await asyncio.wait_for(claim_alone(), 10)
            release_write.set()
            await asyncio.wait_for(writer, 10)

            entered: list[str] = []

            async def claim(name: str, on: PostgresDatabase, hold: bool) -> None:
                async with on.transaction(lock=pg_module.CLAIM_LOCK):
                    entered.append(name)
                    if hold:
                        claiming.set()
                        await release_claim.wait()

            first = asyncio.create_task(claim("first", db, True))
            await claiming.wait()
            second = asyncio.create_task(claim("second", other, False))
            await asyncio.wait_for(_waiting_for_a_lock(db), 10)
            assert entered == ["first"]  # the second claim waits for the first
            release_claim.set()
            await asyncio.wait_for(asyncio.gather(first, second), 10)
            assert entered == ["first", "second"]
        finally:
            release_write.set()
            release_claim.set()
            await db.close()
            await other.close()


async def test_migrating_in_steps_and_reopening() -> None:
    async with fresh_database() as url:
        db = await PostgresDatabase.open(url)
        try:
            for version, _, _ in PG_SCRIPTS:
                await db.migrate(up_to=version)
                assert await db.schema_version() >= version
            await db.migrate()
            assert await db.schema_version() == LATEST
        finally:
            await db.close()
        again = await PostgresDatabase.open(url)  # must not re-run 0001 (CREATE TABLE would fail)
        await again.close()


async def test_a_newer_postgres_schema_is_refused() -> None:
    async with fresh_database() as url:
        db = await PostgresDatabase.open(url)
        await db.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, 'future', 0)",
            (LATEST + 1,),
        )
        await db.close()
        with pytest.raises(DatabaseError, match="newer"):
            await PostgresDatabase.open(url)


async def test_a_failing_postgres_migration_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    broken = (LATEST + 1, f"{LATEST + 1:04d}_broken.sql",
              "CREATE TABLE half_done (x INTEGER);\nTHIS IS NOT SQL;")
    async with fresh_database() as url:
        db = await PostgresDatabase.open(url)
        await db.close()
        monkeypatch.setattr(pg_module, "migration_scripts", lambda _package: [*PG_SCRIPTS, broken])
        with pytest.raises(asyncpg.PostgresSyntaxError):
            await PostgresDatabase.open(url)
        monkeypatch.undo()
        db = await PostgresDatabase.open(url)
        try:
            assert await db.schema_version() == LATEST
            row = await db.fetchone("SELECT to_regclass('half_done') AS t")
            assert row is not None and row["t"] is None
        finally:
            await db.close()


async def test_an_unreachable_server_is_one_clear_error_without_the_password() -> None:
    server_url()  # only where PostgreSQL tests run at all
    # a port nothing listens on: 127.0.0.1:1 is reserved (tcpmux) and closed on the test machines
    url = "postgresql://imagine:s3cret-pass@127.0.0.1:1/imagine"
    with pytest.raises(DatabaseError) as caught:
        await PostgresDatabase.open(url)
    assert "127.0.0.1:1" in str(caught.value)
    assert "s3cret-pass" not in str(caught.value)


def test_placeholders_become_numbered_outside_string_literals() -> None:
    assert to_postgres("SELECT ? , '?' , 'it''s ?', ?") == "SELECT $1 , '?' , 'it''s ?', $2"
    assert redacted("postgresql://u:p%40ss@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert redacted("postgresql://u@h/db") == "postgresql://u@h/db"
