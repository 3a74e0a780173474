"""The store: repositories and transactions on both backends; pragmas, migrations, backups and
locking of the SQLite file; PostgreSQL's migration lock and connection errors."""

from __future__ import annotations

import asyncio
import sqlite3
import stat
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from bot.core.models import (
    HeadMove,
    ImageRef,
    InputImage,
    ShowcasePost,
    TurnKind,
    TurnStatus,
    Usage,
    UserPrefs,
)
from bot.core.options import ImageOptions
from bot.store.database import Database, DatabaseError, backup, migration_scripts
from bot.store.repositories import Store

# Tests that take `store` run on both backends (tests/unit/conftest.py); these are about the file.
SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"])

CONV = 900_000_000_000_000_001
GUILD = 800_000_000_000_000_001
ALICE = 100_000_000_000_000_001
BOB = 100_000_000_000_000_002


async def new_conversation(store: Store, conversation_id: int = CONV, **kwargs: object) -> None:
    await store.conversations.create(
        conversation_id,
        guild_id=kwargs.get("guild_id", GUILD),  # type: ignore[arg-type]
        parent_channel_id=kwargs.get("parent_channel_id", 42),  # type: ignore[arg-type]
        owner_id=kwargs.get("owner_id", ALICE),  # type: ignore[arg-type]
        options=kwargs.get("options", ImageOptions()),  # type: ignore[arg-type]
    )


async def new_turn(
    store: Store,
    *,
    conversation_id: int = CONV,
    parent_id: int | None = None,
    author_id: int = ALICE,
    guild_id: int | None = GUILD,
    prompt: str = "a red fox",
    kind: TurnKind = TurnKind.root,
    inputs: tuple[InputImage, ...] = (),
) -> int:
    return await store.turns.create(
        conversation_id=conversation_id,
        parent_id=parent_id,
        kind=kind,
        guild_id=guild_id,
        author_id=author_id,
        prompt=prompt,
        options=ImageOptions(size="1024x1024", quality="low"),
        locale="de",
        source_message_id=555,
        inputs=inputs,
    )


async def finish(store: Store, turn_id: int, *, images: int = 1, cost: float = 0.01,
                 message_ids: Sequence[int] = (), head: HeadMove | None = None) -> None:
    await store.turns.finish_done(
        turn_id,
        response_id=f"resp_{turn_id}",
        images=[ImageRef(f"ig_{turn_id}_{n}", "1024x1024", "png", 1000) for n in range(images)],
        revised_prompt="revised",
        text=None,
        usage=Usage(text_input=10, text_output=2, image_input=0, image_output=272),
        cost_usd=cost,
        rerooted=False,
        message_ids=message_ids,
        head=head,
    )


def raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, timeout=0.1)


def file_mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --------------------------------------------------------------------------- opening


async def test_open_creates_a_private_file_with_wal_and_foreign_keys(db_path: Path) -> None:
    assert not db_path.parent.exists()
    store = await Store.open(db_path)
    try:
        assert file_mode(db_path) == 0o600
        row = await store.db.fetchone("PRAGMA journal_mode")
        assert row is not None and row[0] == "wal"
        row = await store.db.fetchone("PRAGMA foreign_keys")
        assert row is not None and row[0] == 1
        row = await store.db.fetchone("PRAGMA busy_timeout")
        assert row is not None and row[0] >= 1000
        # foreign keys are really enforced: a turn needs its conversation
        with pytest.raises(sqlite3.IntegrityError):
            await new_turn(store, conversation_id=12345)
        assert await store.turns.in_conversation(12345) == []
    finally:
        await store.close()
    # WAL mode is persistent: another connection sees it in the file
    with raw(db_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_migrations_set_user_version_and_reopening_is_idempotent(db_path: Path) -> None:
    latest = migration_scripts()[-1][0]
    assert latest >= 1
    store = await Store.open(db_path)
    assert await store.db.schema_version() == latest
    await new_conversation(store)
    turn_id = await new_turn(store)
    await store.close()

    again = await Store.open(db_path)  # must not re-run 0001 (CREATE TABLE would fail)
    try:
        assert await again.db.schema_version() == latest
        turn = await again.turns.get(turn_id)
        assert turn is not None and turn.prompt == "a red fox"
        await again.db.migrate()  # explicitly, too
        assert await again.db.schema_version() == latest
    finally:
        await again.close()
    with raw(db_path) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"conversations", "turns", "turn_messages", "turn_inputs", "guild_settings", "meta"} <= (
        tables
    )


async def test_a_newer_schema_is_refused(db_path: Path) -> None:
    store = await Store.open(db_path)
    await store.close()
    latest = migration_scripts()[-1][0]
    with raw(db_path) as conn:
        conn.execute(f"PRAGMA user_version = {latest + 1}")
    with pytest.raises(DatabaseError, match="newer"):
        await Store.open(db_path)
    # left as it was
    with raw(db_path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == latest + 1


async def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite at all" * 200)
    with pytest.raises(DatabaseError):
        await Database.open(path)


# --------------------------------------------------------------------------- turns


async def test_turn_create_get_and_inputs_round_trip(store: Store) -> None:
    await new_conversation(store)
    blob_a = bytes(range(256)) * 40 + b"\x00\x00"
    blob_b = b"\x89PNG\r\n\x1a\n" + b"\xff" * 1000
    inputs = (
        InputImage(blob_a, "image/png", "a.png"),
        InputImage(blob_b, "image/webp", "b.webp"),
    )
    before = time.time()
    turn_id = await new_turn(store, inputs=inputs, prompt="zwei Füchse 🦊")

    turn = await store.turns.get(turn_id)
    assert turn is not None
    assert turn.id == turn_id
    assert turn.conversation_id == CONV
    assert turn.parent_id is None
    assert turn.kind is TurnKind.root
    assert turn.guild_id == GUILD
    assert turn.author_id == ALICE  # 64-bit snowflakes survive
    assert turn.prompt == "zwei Füchse 🦊"
    assert turn.options == ImageOptions(size="1024x1024", quality="low")
    assert turn.status is TurnStatus.queued
    assert turn.locale == "de"
    assert turn.source_message_id == 555
    assert turn.input_image_count == 2
    assert turn.images == () and turn.message_ids == () and turn.response_id is None
    assert before <= turn.created_at <= time.time()

    assert await store.turns.inputs(turn_id) == list(inputs)
    assert await store.turns.get(turn_id + 1000) is None

    await store.turns.mark_running(turn_id)
    await store.turns.set_response_id(turn_id, "resp_x", 7)
    running = await store.turns.get(turn_id)
    assert running is not None
    assert running.status is TurnStatus.running and running.started_at is not None
    assert (running.response_id, running.last_sequence) == ("resp_x", 7)
    assert [t.id for t in await store.turns.unfinished()] == [turn_id]

    await finish(store, turn_id, images=2, cost=0.25)
    done = await store.turns.get(turn_id)
    assert done is not None
    assert done.status is TurnStatus.done
    assert done.response_id == f"resp_{turn_id}"
    assert done.images == (
        ImageRef(f"ig_{turn_id}_0", "1024x1024", "png", 1000),
        ImageRef(f"ig_{turn_id}_1", "1024x1024", "png", 1000),
    )
    assert done.usage == Usage(10, 2, 0, 272)
    assert done.cost_usd == pytest.approx(0.25)
    assert done.revised_prompt == "revised"
    assert done.finished_at is not None
    assert await store.turns.unfinished() == []


async def test_finish_failed_records_the_reason(store: Store) -> None:
    await new_conversation(store)
    turn_id = await new_turn(store)
    await store.turns.finish_failed(
        turn_id, status=TurnStatus.failed, error_kind="moderation", error_detail="x" * 2000
    )
    turn = await store.turns.get(turn_id)
    assert turn is not None
    assert turn.status is TurnStatus.failed
    assert turn.error_kind == "moderation"
    assert turn.error_detail == "x" * 500  # truncated, not refused


async def test_lineage_is_root_first(store: Store) -> None:
    await new_conversation(store)
    root = await new_turn(store, prompt="p1")
    child = await new_turn(store, parent_id=root, prompt="p2", kind=TurnKind.reply)
    sibling = await new_turn(store, parent_id=root, prompt="p2b", kind=TurnKind.branch)
    grandchild = await new_turn(store, parent_id=child, prompt="p3", kind=TurnKind.reply)

    assert [t.prompt for t in await store.turns.lineage(grandchild)] == ["p1", "p2", "p3"]
    assert [t.id for t in await store.turns.lineage(sibling)] == [root, sibling]
    assert [t.id for t in await store.turns.lineage(root)] == [root]


async def test_latest_done_ignores_deleted_failed_and_imageless_turns(store: Store) -> None:
    await new_conversation(store)
    assert await store.turns.latest_done(CONV) is None
    first = await new_turn(store, prompt="first")
    await finish(store, first)
    second = await new_turn(store, prompt="second")
    await finish(store, second)
    failed = await new_turn(store, prompt="failed")
    await store.turns.finish_failed(failed, status=TurnStatus.failed, error_kind="server")
    text_only = await new_turn(store, prompt="text only")
    await finish(store, text_only, images=0)
    await new_turn(store, prompt="still queued")

    latest = await store.turns.latest_done(CONV)
    assert latest is not None and latest.id == second

    await store.turns.mark_deleted(second)
    latest = await store.turns.latest_done(CONV)
    assert latest is not None and latest.id == first
    deleted = await store.turns.get(second)
    assert deleted is not None and deleted.deleted

    await store.turns.mark_deleted(first)
    assert await store.turns.latest_done(CONV) is None


async def test_by_message_via_progress_message_and_result_messages(store: Store) -> None:
    await new_conversation(store)
    turn_id = await new_turn(store)
    other = await new_turn(store, prompt="other")
    assert await store.turns.by_message(1) is None

    await store.turns.set_progress_message(turn_id, 1)
    found = await store.turns.by_message(1)
    assert found is not None and found.id == turn_id and found.progress_message_id == 1

    await finish(store, turn_id, message_ids=[2, 3, 4])
    turn = await store.turns.get(turn_id)
    assert turn is not None and turn.message_ids == (2, 3, 4)
    for message_id in (2, 3, 4):
        found = await store.turns.by_message(message_id)
        assert found is not None and found.id == turn_id

    await finish(store, other, message_ids=[5])
    found = await store.turns.by_message(5)
    assert found is not None and found.id == other


async def test_a_result_its_messages_and_the_head_are_recorded_all_or_nothing(
    store: Store,
) -> None:
    await new_conversation(store)
    first = await new_turn(store)
    await finish(store, first, message_ids=[11], head=HeadMove(CONV, None))
    conversation = await store.conversations.get(CONV)
    assert conversation is not None and conversation.head_turn_id == first
    second = await new_turn(store, parent_id=first)
    with pytest.raises(Exception):  # noqa: B017 (each backend has its own overflow error)
        # the result and the first link are written, the second link cannot be (no 64-bit
        # integer): nothing is kept
        await finish(store, second, message_ids=[12, 2**64], head=HeadMove(CONV, first))
    turn = await store.turns.get(second)
    assert turn is not None and turn.status is TurnStatus.queued and turn.message_ids == ()
    conversation = await store.conversations.get(CONV)
    assert conversation is not None and conversation.head_turn_id == first
    assert await store.turns.by_message(12) is None
    # the head moves only from the head it expected
    await finish(store, second, message_ids=[12], head=HeadMove(CONV, None))
    conversation = await store.conversations.get(CONV)
    assert conversation is not None and conversation.head_turn_id == first


async def test_conversation_head_and_sticky_options(store: Store) -> None:
    await new_conversation(
        store, options=ImageOptions(action="edit", size="1536x1024", quality="high")
    )
    conversation = await store.conversations.get(CONV)
    assert conversation is not None
    assert conversation.owner_id == ALICE and conversation.guild_id == GUILD
    assert conversation.options == ImageOptions(size="1536x1024", quality="high")  # no action
    assert conversation.head_turn_id is None

    # creating again does not overwrite
    await new_conversation(store, owner_id=BOB)
    again = await store.conversations.get(CONV)
    assert again is not None and again.owner_id == ALICE

    turn_id = await new_turn(store)
    await store.conversations.set_head(CONV, turn_id)
    await store.conversations.set_options(CONV, ImageOptions(action="generate", size="auto"))
    conversation = await store.conversations.get(CONV)
    assert conversation is not None
    assert conversation.head_turn_id == turn_id
    assert conversation.options == ImageOptions(size="auto")
    assert await store.conversations.get(CONV + 1) is None


# --------------------------------------------------------------------------- transactions


async def test_a_failed_transaction_leaves_nothing(store: Store) -> None:
    blob = InputImage(b"\x01" * 100, "image/png")

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        async with store.db.transaction():
            await new_conversation(store)
            await new_turn(store, inputs=(blob,))  # its own transaction joins the outer one
            await store.meta.put("k", "v")
            raise Boom

    assert await store.conversations.get(CONV) is None
    assert await store.turns.in_conversation(CONV) == []
    assert await store.meta.get("k") is None
    row = await store.db.fetchone("SELECT COUNT(*) FROM turn_inputs")
    assert row is not None and row[0] == 0

    # the connection is usable afterwards, and a good transaction commits
    async with store.db.transaction():
        await new_conversation(store)
        turn_id = await new_turn(store, inputs=(blob,))
    assert await store.turns.inputs(turn_id) == [blob]


async def test_concurrent_transactions_do_not_interleave(store: Store) -> None:
    await new_conversation(store)

    async def writer(n: int) -> None:
        async with store.db.transaction():
            await store.meta.put(f"a{n}", "1")
            await asyncio.sleep(0.01)
            await store.meta.put(f"b{n}", "1")
            if n % 2:
                raise ValueError(n)

    results = await asyncio.gather(*(writer(n) for n in range(6)), return_exceptions=True)
    assert [isinstance(r, ValueError) for r in results] == [False, True] * 3
    for n in range(6):
        expected = None if n % 2 else "1"
        assert await store.meta.get(f"a{n}") == expected
        assert await store.meta.get(f"b{n}") == expected


async def test_writes_queued_together_commit_together_and_fail_alone(store: Store) -> None:
    """Single writes issued at once (a group commit on SQLite): a write that breaks a
    constraint fails for its caller only; the others are stored."""
    await new_conversation(store)
    orphan = store.db.execute(  # a turn of a conversation that does not exist
        "INSERT INTO turns (conversation_id, kind, author_id, prompt, options, locale, status, "
        "created_at) VALUES (?, 'root', ?, 'x', '{}', 'en', 'queued', 0)", (CONV + 1, ALICE),
    )
    results = await asyncio.gather(
        store.meta.put("before", "1"), orphan, store.meta.put("after", "2"),
        return_exceptions=True,
    )
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], Exception)  # sqlite3.IntegrityError / asyncpg's FK error
    assert await store.meta.get("before") == "1"
    assert await store.meta.get("after") == "2"
    assert await store.turns.in_conversation(CONV + 1) == []


async def test_an_atomic_group_is_all_or_nothing(store: Store) -> None:
    await new_conversation(store)
    turn_id = await new_turn(store)
    with pytest.raises(Exception):  # noqa: B017 (each backend raises its own IntegrityError)
        await store.db.atomic([
            ("UPDATE turns SET progress_message_id = ? WHERE id = ?", (777, turn_id)),
            ("INSERT INTO turn_messages (message_id, turn_id) VALUES (?, ?)", (778, turn_id + 99)),
        ])
    turn = await store.turns.get(turn_id)
    assert turn is not None and turn.progress_message_id is None  # the first was undone too
    await store.turns.set_progress_message(turn_id, 777)
    linked = await store.turns.by_message(777)
    assert linked is not None and linked.id == turn_id


async def test_a_read_neither_waits_for_nor_sees_an_open_transaction(store: Store) -> None:
    await new_conversation(store)
    inside = asyncio.Event()
    finish_tx = asyncio.Event()

    async def slow_transaction() -> None:
        async with store.db.transaction():
            await store.meta.put("pending", "yes")
            inside.set()
            await finish_tx.wait()

    task = asyncio.create_task(slow_transaction())
    await inside.wait()
    try:
        # answered while the transaction is still open, without its uncommitted row
        assert await asyncio.wait_for(store.meta.get("pending"), 5) is None
    finally:
        finish_tx.set()
        await task
    assert await store.meta.get("pending") == "yes"


# --------------------------------------------------------------------------- usage


async def test_usage_totals_and_daily(store: Store) -> None:
    await new_conversation(store)
    await new_conversation(store, CONV + 1, guild_id=GUILD + 1)
    t1 = await new_turn(store)
    await finish(store, t1, images=2, cost=0.10)
    t2 = await new_turn(store)
    await finish(store, t2, images=1, cost=0.05)
    t3 = await new_turn(store, author_id=BOB)
    await finish(store, t3, images=1, cost=0.20)
    t4 = await new_turn(store, conversation_id=CONV + 1, guild_id=GUILD + 1)
    await finish(store, t4, images=3, cost=1.00)
    failed = await new_turn(store)
    await store.turns.finish_failed(failed, status=TurnStatus.failed, error_kind="server")
    await new_turn(store)  # queued: counts as a turn, with no images yet

    everything = await store.usage.totals(since=0)
    assert (everything.turns, everything.images) == (5, 7)
    assert everything.cost_usd == pytest.approx(1.35)

    alice = await store.usage.totals(since=0, author_id=ALICE)
    assert (alice.turns, alice.images) == (4, 6)
    assert alice.cost_usd == pytest.approx(1.15)

    alice_here = await store.usage.totals(since=0, author_id=ALICE, guild_id=GUILD)
    assert (alice_here.turns, alice_here.images) == (3, 3)
    assert alice_here.cost_usd == pytest.approx(0.15)

    future = await store.usage.totals(since=time.time() + 3600)
    assert (future.turns, future.images, future.cost_usd) == (0, 0, 0)

    assert await store.usage.pending(author_id=ALICE) == 1
    assert await store.usage.pending(author_id=BOB) == 0

    today = time.strftime("%Y-%m-%d", time.gmtime())
    daily = await store.usage.daily(since=0, guild_id=GUILD)
    assert len(daily) == 1
    assert daily[0].day == today and daily[0].images == 4
    assert daily[0].cost_usd == pytest.approx(0.35)
    assert await store.usage.daily(since=time.time() + 3600) == []

    top = await store.usage.top_users(GUILD, since=0)
    assert [(user, images) for user, images, _ in top] == [(BOB, 1), (ALICE, 3)]


async def test_images_and_pending_counts_the_days_images_and_earlier_unfinished_turns(
    store: Store,
) -> None:
    await new_conversation(store)
    done = await new_turn(store)
    await finish(store, done, images=2, cost=0.10)
    earlier = await new_turn(store)  # unfinished, admitted before `claimed`: one image at least
    claimed = await new_turn(store)
    await new_turn(store)  # admitted after `claimed`: not counted
    await new_turn(store, author_id=BOB)  # someone else's

    assert await store.usage.images_and_pending(author_id=ALICE, since=0, before=claimed) == 3
    assert await store.usage.images_and_pending(
        author_id=ALICE, since=time.time() + 3600, before=claimed
    ) == 1  # yesterday's images are not today's; the earlier turn still waits
    await finish(store, earlier, images=1, cost=0.05)  # from waiting to one image made
    assert await store.usage.images_and_pending(author_id=ALICE, since=0, before=claimed) == 3
    assert await store.usage.images_and_pending(author_id=BOB, since=0, before=claimed) == 0


# --------------------------------------------------------------------------- settings, meta


async def test_guild_settings_and_meta_put_get(store: Store) -> None:
    assert await store.guild_settings.get(GUILD) == {}
    await store.guild_settings.put(GUILD, {"max_quality": "medium", "allowed_roles": [1, 2]})
    assert await store.guild_settings.get(GUILD) == {
        "max_quality": "medium",
        "allowed_roles": [1, 2],
    }
    await store.guild_settings.put(GUILD, {"refine_mode": "starter"})  # replaces
    assert await store.guild_settings.get(GUILD) == {"refine_mode": "starter"}
    assert await store.guild_settings.get(GUILD + 1) == {}

    assert await store.meta.get("commands_hash") is None
    await store.meta.put("commands_hash", "abc")
    await store.meta.put("commands_hash", "def")
    assert await store.meta.get("commands_hash") == "def"


async def test_showcase_posts_by_turn_post_and_conversation(store: Store) -> None:
    await new_conversation(store)
    await new_conversation(store, CONV + 1)
    first, second = await new_turn(store), await new_turn(store, conversation_id=CONV + 1)
    post = ShowcasePost(first, GUILD, 700_000_000_000_000_001, 700_000_000_000_000_002, ALICE, BOB)
    await store.showcase.add(post)
    await store.showcase.add(ShowcasePost(second, GUILD, 7, 8, ALICE, 0))
    assert await store.showcase.get(first) == post  # 64-bit snowflakes survive
    await store.showcase.add(ShowcasePost(first, GUILD, 7, 9, BOB, BOB))  # the first one stays
    assert await store.showcase.get(first) == post
    assert await store.showcase.by_post(700_000_000_000_000_002) == post
    assert await store.showcase.in_conversation(CONV) == [post]
    await store.showcase.remove(first)
    assert await store.showcase.get(first) is None and await store.showcase.by_post(post.post_id) is None
    assert [p.turn_id for p in await store.showcase.in_conversation(CONV + 1)] == [second]


async def test_move_head_only_from_the_head_it_expected(store: Store) -> None:
    await new_conversation(store)
    first, second, third = [await new_turn(store, prompt=p) for p in ("a", "b", "c")]
    await store.conversations.move_head(CONV, first, from_turn_id=None)  # nothing yet: moves
    await store.conversations.move_head(CONV, second, from_turn_id=first)  # as expected: moves
    await store.conversations.move_head(CONV, third, from_turn_id=first)  # moved since: stays
    conversation = await store.conversations.get(CONV)
    assert conversation is not None and conversation.head_turn_id == second


async def test_user_prefs_locale_and_choices_are_kept_apart(store: Store) -> None:
    assert await store.user_prefs.get(ALICE) == UserPrefs()
    await store.user_prefs.set_locale(ALICE, "zh-CN")
    await store.user_prefs.put(ALICE, UserPrefs(size="1024x1536", quality="high", ping=False))
    await store.user_prefs.set_locale(ALICE, "de")  # a later interaction: choices stay
    assert await store.user_prefs.get(ALICE) == UserPrefs(
        locale="de", size="1024x1536", quality="high", ping=False
    )
    assert await store.user_prefs.get(BOB) == UserPrefs()


async def test_text_spend_counts_in_every_cap_but_not_another_server(store: Store) -> None:
    since = time.time() - 60
    await store.usage.record_text(guild_id=GUILD, author_id=ALICE, kind="describe",
                                  usage=Usage(text_input=200, text_output=40), cost_usd=0.25)
    await store.usage.record_text(guild_id=GUILD + 1, author_id=BOB, kind="describe",
                                  usage=Usage(text_input=10), cost_usd=0.5)
    assert (await store.usage.spend(since=since, guild_id=GUILD)).settled == 0.25
    instance = await store.usage.spend(since=since, instance_only=True)
    assert instance.settled == 0.75 and instance.reserved == 0
    assert (await store.usage.spend(since=time.time() + 60, guild_id=GUILD)).settled == 0


async def test_every_servers_settings_and_a_conversations_origin(store: Store) -> None:
    await store.guild_settings.put(GUILD, {"allow_dms": True})
    await store.guild_settings.put(GUILD + 1, {})
    assert await store.guild_settings.all() == {GUILD: {"allow_dms": True}, GUILD + 1: {}}
    await new_conversation(store)
    conversation = await store.conversations.get(CONV)
    assert conversation is not None and conversation.bot_opened is True
    await store.conversations.set_bot_opened(CONV, False)
    conversation = await store.conversations.get(CONV)
    assert conversation is not None and conversation.bot_opened is False


# --------------------------------------------------------------------------- backup, locking


@SQLITE_ONLY
async def test_backup_produces_a_readable_copy(store: Store, db_path: Path, tmp_path: Path) -> None:
    await new_conversation(store)
    turn_id = await new_turn(store, inputs=(InputImage(b"blob" * 100, "image/png"),))
    await store.meta.put("k", "v")
    target = tmp_path / "backups" / "copy.db"

    await asyncio.to_thread(backup, db_path, target)  # while the store is open (WAL live)

    assert file_mode(target) == 0o600
    with raw(target) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT prompt FROM turns WHERE id = ?", (turn_id,)).fetchone() == (
            "a red fox",
        )
        assert conn.execute("SELECT value FROM meta WHERE key = 'k'").fetchone() == ("v",)
    copy = await Store.open(target)  # and the bot can open it
    try:
        inputs = await copy.turns.inputs(turn_id)
        assert inputs == [InputImage(b"blob" * 100, "image/png")]
    finally:
        await copy.close()


@SQLITE_ONLY
async def test_a_briefly_locked_database_still_accepts_writes(store: Store, db_path: Path) -> None:
    await new_conversation(store)
    locked = threading.Event()
    release_after = 0.5

    def hold_lock() -> None:
        conn = sqlite3.connect(db_path, timeout=5, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO meta (key, value) VALUES ('other', 'writer')")
            locked.set()
            time.sleep(release_after)
            conn.execute("COMMIT")
        finally:
            conn.close()

    holder = threading.Thread(target=hold_lock)
    holder.start()
    try:
        assert await asyncio.to_thread(locked.wait, 5)
        started = time.monotonic()
        turn_id = await new_turn(store)  # BEGIN IMMEDIATE waits on the busy timeout
        await store.meta.put("mine", "yes")
        waited = time.monotonic() - started
    finally:
        await asyncio.to_thread(holder.join, 5)
    assert waited >= release_after * 0.5  # it really was blocked, and then got through
    assert await store.turns.get(turn_id) is not None
    assert await store.meta.get("mine") == "yes"
    assert await store.meta.get("other") == "writer"


async def test_moderation_log_channel_and_reports_fold_per_image(store: Store) -> None:
    from bot.core.models import Reporter

    assert await store.moderation.log_channel(GUILD) is None
    await store.moderation.set_log_channel(GUILD, 77)
    assert await store.moderation.log_channel(GUILD) == 77
    switched = [await store.moderation.switch_off(GUILD, 77) for _ in range(2)]
    assert switched == [True, False] and await store.moderation.log_channel(GUILD) is None

    await new_conversation(store)
    turn = await new_turn(store)
    first, new = await store.moderation.report(GUILD, turn, Reporter(ALICE, "gore", 1.0))
    again, repeated = await store.moderation.report(GUILD, turn, Reporter(ALICE, "more", 2.0))
    folded, added = await store.moderation.report(GUILD, turn, Reporter(BOB, "spam", 3.0))
    assert (new, repeated, added) == (True, False, True)
    assert first.id == again.id == folded.id
    assert [(r.user_id, r.reason) for r in folded.reporters] == [(ALICE, "gore"), (BOB, "spam")]
    await store.moderation.set_message(folded.id, 77, 88)
    assert await store.moderation.close(folded.id, "dismissed")
    assert not await store.moderation.close(folded.id, "deleted")  # closed once
    closed = await store.moderation.get(folded.id)
    assert closed is not None and (closed.status, closed.message_id) == ("dismissed", 88)
    reopened, _ = await store.moderation.report(GUILD, turn, Reporter(BOB, "back", 4.0))
    assert reopened.id != folded.id and len(reopened.reporters) == 1  # a new report after that


async def test_inputs_of_finished_turns_are_pruned_and_the_turn_remembers(store: Store) -> None:
    await new_conversation(store)
    photo = InputImage(b"\x89PNG-bytes", "image/png", "photo.png")
    over = await new_turn(store, inputs=(photo, photo))
    failed = await new_turn(store, inputs=(photo,))
    running = await new_turn(store, inputs=(photo,))
    plain = await new_turn(store)
    await finish(store, over)
    await finish(store, plain)
    await store.turns.finish_failed(failed, status=TurnStatus.failed, error_kind="server")
    await store.turns.mark_running(running)
    assert await store.turns.prune_inputs(finished_before=time.time() - 3600) == 0  # too recent
    assert len(await store.turns.inputs(over)) == 2
    assert await store.turns.prune_inputs(finished_before=time.time() + 1, limit=1) == 1
    assert await store.turns.prune_inputs(finished_before=time.time() + 1) == 1  # the other
    for turn_id in (over, failed):
        turn = await store.turns.get(turn_id)
        assert turn is not None and turn.inputs_pruned and turn.input_image_count == 0
        assert await store.turns.inputs(turn_id) == []
    kept = await store.turns.get(running)
    assert kept is not None and not kept.inputs_pruned and kept.input_image_count == 1
    untouched = await store.turns.get(plain)
    assert untouched is not None and not untouched.inputs_pruned


async def test_deleting_a_turn_drops_its_inputs(store: Store) -> None:
    await new_conversation(store)
    turn_id = await new_turn(store, inputs=(InputImage(b"x", "image/png", "p.png"),))
    await store.turns.mark_deleted(turn_id)
    turn = await store.turns.get(turn_id)
    assert turn is not None and turn.deleted and await store.turns.inputs(turn_id) == []
