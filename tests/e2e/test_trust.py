"""Nobody spends without permission, end to end through both fakes: threads the bot did not open
(never billed; `/imagine` there opens a conversation beside them), direct messages (off unless
ALLOW_DMS; then only for listed users or members of a server that allows them, and never for a
user some server blocked)."""

from __future__ import annotations

import sqlite3
from typing import Any

from tests.e2e.harness import answer, quiet, running, start_conversation, turn_rows, wait_results
from tests.fakes.discord_server import FakeDiscord

DM_REFUSAL = "Image generation in direct messages isn't open to you."


def bot_texts_in(fake: FakeDiscord, channel_id: int) -> list[str]:
    return [m.content for m in fake.messages(channel_id)
            if m.author_id == fake.bot_id and not m.deleted]


def foreign_thread(fake: FakeDiscord, owner: dict[str, Any], name: str = "just chatting") -> int:
    """A public thread a member opened in the text channel (the bot learns of it)."""
    thread = fake.create_thread_record(
        fake.text_channel_id, name=name, type_=11, owner_id=int(owner["id"])
    )
    thread_id = int(thread["id"])
    fake.update_thread(thread_id, name=name)  # THREAD_UPDATE: the bot caches it
    return thread_id


async def settings_cmd(fake: FakeDiscord, admin: Any, sub: str, **options: Any) -> str:
    inter = await fake.slash(admin, fake.text_channel_id, f"imagine-settings {sub}", options)
    return (await answer(fake, inter)).content


# ------------------------------------------------------------------------------ foreign threads
async def test_imagine_in_a_foreign_thread_opens_a_conversation_beside_it(
    discord_fake, openai_fake, make_settings
):
    alice = discord_fake.add_user("alice")
    bob = discord_fake.add_user("bob")
    async with running(make_settings()):
        chat = foreign_thread(discord_fake, alice)
        before = set(discord_fake.threads)
        inter = await discord_fake.slash(alice, chat, "imagine", {"prompt": "a red kite"})
        started = await answer(discord_fake, inter, "Started a conversation")
        new = await discord_fake.wait_for(
            lambda: next((t for t in discord_fake.threads if t not in before), None), 10)
        await wait_results(discord_fake, new, 1)
        # the member's own thread stays theirs: chatting there is never a paid refinement
        await discord_fake.say(bob, chat, "make it blue")
        await discord_fake.say(alice, chat, "and bigger")
        await discord_fake.say(alice, new, "make it blue")  # in the bot's thread it is
        await wait_results(discord_fake, new, 2)
    assert f"<#{new}>" in started.content
    assert int(discord_fake.threads[new]["parent_id"]) == discord_fake.text_channel_id
    assert discord_fake.threads[new]["type"] == 11  # public, like every conversation thread
    # the only bot message in the member's thread is the answer that points to the new one
    assert bot_texts_in(discord_fake, chat) == [started.content]
    assert len(openai_fake.create_requests()) == 2
    assert {row["conversation_id"] for row in turn_rows(make_settings().database_path)} == {new}


async def test_a_thread_adopted_by_an_older_version_is_never_billed(
    discord_fake, openai_fake, make_settings
):
    """Existing databases: a foreign thread adopted before the fix (bot_opened unknown after the
    migration) is recognised by its owner and ignored; the bot's own older threads keep working."""
    settings = make_settings()
    alice = discord_fake.add_user("alice")
    async with running(settings):
        own = await start_conversation(discord_fake, alice, "a lighthouse")
        await wait_results(discord_fake, own, 1)
    chat = foreign_thread(discord_fake, alice)
    with sqlite3.connect(settings.database_path) as db:  # as the older version left them
        db.execute("INSERT INTO conversations (id, guild_id, parent_channel_id, owner_id, "
                   "created_at) VALUES (?, ?, ?, ?, 0)",
                   (chat, discord_fake.guild_id, discord_fake.text_channel_id, int(alice["id"])))
        db.execute("UPDATE conversations SET bot_opened = NULL")
    async with running(settings):
        await discord_fake.say(alice, chat, "draw a cat")
        await discord_fake.say(alice, own, "at night")
        await wait_results(discord_fake, own, 2)
        inter = await discord_fake.slash(alice, chat, "refine", {"prompt": "draw a dog"})
        refused = await answer(discord_fake, inter, "isn't an image conversation")
    assert refused.ephemeral
    assert len(openai_fake.create_requests()) == 2
    with sqlite3.connect(settings.database_path) as db:
        origins = dict(db.execute("SELECT id, bot_opened FROM conversations").fetchall())
    assert origins == {own: 1, chat: 0}


# ------------------------------------------------------------------------------ direct messages
async def test_dms_are_off_by_default_and_the_note_is_not_repeated(
    discord_fake, openai_fake, make_settings
):
    alice = discord_fake.add_user("alice")
    settings = make_settings()
    async with running(settings):
        dm = discord_fake.dm_channel(alice)
        for prompt in ("a paper crane", "a paper boat", "a paper plane"):
            await discord_fake.dm(alice, prompt)
        await discord_fake.wait_for(lambda: bot_texts_in(discord_fake, dm) or None)
        inter = await discord_fake.slash(alice, dm, "imagine", {"prompt": "a paper frog"})
        refused = await answer(discord_fake, inter, DM_REFUSAL)
        await discord_fake.dm(alice, "a paper swan")  # answered after the others: all seen
        await quiet(discord_fake, openai_fake)
    notes = bot_texts_in(discord_fake, dm)
    assert len(notes) == 1 and notes[0].startswith(DM_REFUSAL) and "/imagine" in notes[0]
    assert refused.ephemeral
    assert openai_fake.create_requests() == []
    assert turn_rows(settings.database_path) == []


async def test_dms_for_listed_users_only_when_allowed(discord_fake, openai_fake, make_settings):
    alice = discord_fake.add_user("alice")
    mallory = discord_fake.add_user("mallory")
    async with running(make_settings(allow_dms=True, dm_allowed_users=[int(alice["id"])])):
        await discord_fake.dm(alice, "a paper crane")
        await wait_results(discord_fake, discord_fake.dm_channel(alice), 1)
        await discord_fake.dm(mallory, "a paper boat")
        note = await discord_fake.wait_for(
            lambda: next(iter(bot_texts_in(discord_fake, discord_fake.dm_channel(mallory))), None))
    assert note.startswith(DM_REFUSAL)
    assert len(openai_fake.create_requests()) == 1


async def test_dms_for_members_of_a_server_that_allows_them_unless_blocked(
    discord_fake, openai_fake, make_settings
):
    admin = discord_fake.add_user("admin", permissions=["manage_guild"])
    alice = discord_fake.add_user("alice")
    troll = discord_fake.add_user("troll")
    async with running(make_settings(allow_dms=True)):
        await discord_fake.dm(alice, "a paper crane")  # no server allows member DMs yet
        await discord_fake.wait_for(
            lambda: bot_texts_in(discord_fake, discord_fake.dm_channel(alice)) or None)
        saved = await settings_cmd(discord_fake, admin, "access", member_dms=True)
        await settings_cmd(discord_fake, admin, "access", blocked_user=troll["id"])
        await discord_fake.dm(alice, "a paper boat")
        await wait_results(discord_fake, discord_fake.dm_channel(alice), 1)
        await discord_fake.dm(troll, "a paper plane")  # blocked in the server: not by DM either
        note = await discord_fake.wait_for(
            lambda: next(iter(bot_texts_in(discord_fake, discord_fake.dm_channel(troll))), None))
    assert "Members may generate in DMs: yes" in saved
    assert note.startswith(DM_REFUSAL)
    prompts = [r["input"][-1]["content"][-1]["text"] for r in openai_fake.create_requests()]
    assert prompts == ["a paper boat"]
