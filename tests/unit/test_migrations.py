"""Forward-only migrations, checked generically over `migration_scripts()`: a database left at any
earlier schema version upgrades to exactly the schema a fresh database gets, keeps its data, and
a failing migration changes nothing. A damaged file is refused with `DatabaseError`."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from bot.core.options import ImageOptions
from bot.store import database as database_module
from bot.store.database import Database, DatabaseError, migration_scripts
from bot.store.repositories import Store

SCRIPTS = migration_scripts()
LATEST = SCRIPTS[-1][0]
EARLIER = [0] + [version for version, _, _ in SCRIPTS[:-1]]


def schema(path: Path) -> dict[str, Any]:
    """Tables with their columns, indexes and triggers: what the code relies on."""
    conn = sqlite3.connect(path)
    try:
        objects = conn.execute(
            "SELECT type, name, tbl_name FROM sqlite_master "
            "WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name"
        ).fetchall()
        shape: dict[str, Any] = {}
        for type_, name, table in objects:
            if type_ == "table":
                shape[f"table {name}"] = [
                    tuple(row[1:]) for row in conn.execute(f"PRAGMA table_info('{name}')")
                ]
                shape[f"fks {name}"] = sorted(
                    tuple(row[2:]) for row in conn.execute(f"PRAGMA foreign_key_list('{name}')")
                )
            elif type_ == "index":
                shape[f"index {name}"] = (table, [
                    row[2] for row in conn.execute(f"PRAGMA index_info('{name}')")
                ])
            else:
                shape[f"{type_} {name}"] = table
        return shape
    finally:
        conn.close()


async def database_at(path: Path, version: int) -> None:
    """A database file migrated only up to `version` (0 = empty), as an older bot left it."""
    db = await Database.open(path, up_to=version)
    try:
        assert await db.schema_version() == version
    finally:
        await db.close()


def tables_of(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        conn.close()


def seed(path: Path) -> bool:
    """Put a conversation and a turn into an old database, using only the columns the first
    schema required. Returns False when the tables do not exist yet (version 0)."""
    if not {"conversations", "turns"} <= tables_of(path):
        return False
    conn = sqlite3.connect(path)
    try:
        conn.execute("INSERT INTO conversations (id, owner_id, created_at) VALUES (77, 5, 1.0)")
        conn.execute(
            "INSERT INTO turns (id, conversation_id, kind, author_id, prompt, status, created_at) "
            "VALUES (1, 77, 'root', 5, 'an old prompt', 'done', 1.0)"
        )
        conn.commit()
    finally:
        conn.close()
    return True


def test_migrations_are_numbered_without_gaps() -> None:
    versions = [version for version, _, _ in SCRIPTS]
    assert versions == list(range(1, len(SCRIPTS) + 1))
    for version, name, sql in SCRIPTS:
        assert re.fullmatch(rf"{version:04d}_[a-z0-9_]+\.sql", name), name
        assert sql.strip()
        # each script runs inside the migrator's own transaction
        assert not re.search(r"^\s*(BEGIN|COMMIT|ROLLBACK)\b", sql, re.I | re.M), name


async def test_a_fresh_database_is_at_the_latest_version(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "fresh.db")
    try:
        assert await store.db.schema_version() == LATEST
    finally:
        await store.close()


@pytest.mark.parametrize("version", EARLIER, ids=[f"from-v{v}" for v in EARLIER])
async def test_upgrade_from_every_earlier_version(tmp_path: Path, version: int) -> None:
    fresh = tmp_path / "fresh.db"
    store = await Store.open(fresh)  # the reference: a database created by today's code
    await store.close()

    old = tmp_path / f"v{version}.db"
    await database_at(old, version)
    seeded = seed(old)

    upgraded = await Store.open(old)
    try:
        assert await upgraded.db.schema_version() == LATEST
        if seeded:
            turn = await upgraded.turns.get(1)
            assert turn is not None
            assert (turn.prompt, turn.conversation_id, turn.status.value) == (
                "an old prompt", 77, "done",
            )
            conversation = await upgraded.conversations.get(77)
            assert conversation is not None and conversation.owner_id == 5
    finally:
        await upgraded.close()

    assert schema(old) == schema(fresh)
    conn = sqlite3.connect(old)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        conn.close()


async def test_migrating_in_steps_equals_migrating_at_once(tmp_path: Path) -> None:
    stepped = tmp_path / "stepped.db"
    db = await Database.open(stepped, up_to=0)
    try:
        for version, _, _ in SCRIPTS:
            await db.migrate(up_to=version)
            assert await db.schema_version() == version
            await db.migrate(up_to=version)  # again: nothing to do
            assert await db.schema_version() == version
    finally:
        await db.close()
    at_once = tmp_path / "at_once.db"
    await database_at(at_once, LATEST)
    assert schema(stepped) == schema(at_once)


async def test_a_failing_migration_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "imagine.db"
    store = await Store.open(path)
    await store.close()
    before = schema(path)
    broken = (LATEST + 1, f"{LATEST + 1:04d}_broken.sql",
              "CREATE TABLE half_done (x INTEGER);\nTHIS IS NOT SQL;")
    monkeypatch.setattr(database_module, "migration_scripts", lambda: [*SCRIPTS, broken])
    with pytest.raises((sqlite3.Error, DatabaseError)):
        await Store.open(path)
    monkeypatch.undo()

    assert schema(path) == before  # no half_done table: the migration was rolled back
    store = await Store.open(path)
    try:
        assert await store.db.schema_version() == LATEST
    finally:
        await store.close()


async def damaged_database(path: Path) -> tuple[int, int]:
    """A real bot database with a few hundred turns, checkpointed into one file; returns
    (page size, page count)."""
    store = await Store.open(path)
    try:
        await store.conversations.create(1, guild_id=None, parent_channel_id=None, owner_id=1,
                                         options=ImageOptions())
        async with store.db.transaction():
            for n in range(400):
                await store.db.execute(
                    "INSERT INTO turns (conversation_id, kind, author_id, prompt, status, "
                    "created_at) VALUES (1, 'root', ?, ?, 'done', ?)",
                    (n, f"prompt number {n} " * 8, float(n)),
                )
    finally:
        await store.close()
    return page_geometry(path)


def page_geometry(path: Path) -> tuple[int, int]:
    for suffix in ("-wal", "-shm"):
        assert not Path(f"{path}{suffix}").exists()  # everything is in the main file
    conn = sqlite3.connect(path)
    try:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
    finally:
        conn.close()
    assert pages > 8
    return page_size, pages


def root_page(path: Path, table: str) -> int:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        # SQLite itself gives up while checking: "malformed"
        ("scribbled-pages", "not a usable SQLite database: database disk image is malformed"),
        # the check runs and reports what is wrong
        ("bad-free-block", "(?s)failed its integrity check: .*free space corruption"),
    ],
    ids=["scribbled-pages", "bad-free-block"],
)
async def test_integrity_check_refuses_a_damaged_file(
    tmp_path: Path, damage: str, message: str
) -> None:
    path = tmp_path / "imagine.db"
    page_size, pages = await damaged_database(path)
    data = bytearray(path.read_bytes())
    if damage == "scribbled-pages":  # b-tree pages of the turns table; the header stays intact
        middle = (pages // 2) * page_size
        data[middle : middle + 3 * page_size] = bytes([0xA5]) * (3 * page_size)
    else:  # the first-freeblock offset of the conversations table's only page
        start = (root_page(path, "conversations") - 1) * page_size
        data[start + 1 : start + 3] = b"\xff\xf0"
    path.write_bytes(bytes(data))

    with pytest.raises(DatabaseError, match=message):
        await Database.open(path)
    assert path.read_bytes() == bytes(data)  # refused without writing to the file
