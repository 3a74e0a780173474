"""Nobody spends without permission, end to end through both fakes: threads the bot did not open
(never billed; `/imagine` there opens a conversation beside them), direct messages (off unless
ALLOW_DMS; then only for listed users or members of a server that allows them, and never for a
user some server blocked)."""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import sqlite3
from typing import Any

import aiohttp
import pytest

from bot.metrics import Metrics, MetricsServer
from tests.e2e.harness import (
    answer,
    db_rows,
    quiet,
    running,
    sqlite_write_lock,
    start_conversation,
    turn_rows,
    wait_results,
)
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


# ------------------------------------------------------------------ atomic admission, reservations
def statuses(settings: Any) -> list[str]:
    return [row["status"] for row in turn_rows(settings.database_path)]


async def test_a_burst_from_one_user_cannot_overshoot_the_queue(
    discord_fake, openai_fake, make_settings
):
    """Five /imagine at once with PER_USER_QUEUED=3 and one running at a time: one runs, three
    wait, the fifth is refused (before the fix all five were accepted)."""
    settings = make_settings(per_user_queued=3, per_user_concurrent=1, max_concurrent_generations=1)
    openai_fake.latency = 30  # nothing finishes while the burst is judged
    alice = discord_fake.add_user("alice")
    async with running(settings):
        inters = [await discord_fake.slash(alice, discord_fake.text_channel_id, "imagine",
                                           {"prompt": f"kite {n}"}) for n in range(5)]
        answers = [await answer(discord_fake, i, timeout=10) for i in inters]
        await discord_fake.wait_for(lambda: sum(
            "Started a conversation" in a.content for a in answers) == 4 or None, 10)
        await discord_fake.wait_for(lambda: sorted(statuses(settings)) == [
            "queued", "queued", "queued", "running"] or None, 10)
    refused = [a for a in answers if "queue is full" in a.content]
    assert len(refused) == 1 and refused[0].ephemeral


# With the published prices (gpt-5.5 mainline, gpt-image-2 the API's default image model; USD per
# 1M tokens: gpt-5.5 $5 in / $30 out; gpt-image-2 text in $5, image out $30), a low-quality
# 1024x1024 turn without previews and a 3-character prompt reserves:
#   mainline: (4000 context + 3 prompt) in, 2000 out; image model: 4003 text in, 272 image out
RESERVATION = (4003 * 5.00 + 2000 * 30.00) / 1e6 + (4003 * 5.00 + 272 * 30.00) / 1e6
CHEAP = {"quality": "low", "size": "1024x1024", "previews": 0}


async def test_twenty_at_once_against_a_server_cap_with_room_for_five_admit_five(
    discord_fake, openai_fake, make_settings
):
    cap = round(5.5 * RESERVATION, 4)  # room for five reservations, not six
    settings = make_settings(guild_daily_spend_usd=cap)
    openai_fake.latency = 30
    users = [discord_fake.add_user(f"user{n}") for n in range(20)]
    async with running(settings):
        inters = [await discord_fake.slash(u, discord_fake.text_channel_id, "imagine",
                                           {"prompt": f"p{n:02d}", **CHEAP})
                  for n, u in enumerate(users)]
        answers = [await answer(discord_fake, i, timeout=15) for i in inters]
        await discord_fake.wait_for(lambda: sum(
            "Started a conversation" in a.content for a in answers) == 5 or None, 10)
        await discord_fake.wait_for(lambda: statuses(settings).count("running") == 4 or None)
        rows = turn_rows(settings.database_path)
    assert sum("Limit reached" in a.content for a in answers) == 15
    assert len(rows) == 5
    for row in rows:  # each holds its worst case until it is settled
        assert row["reserved_usd"] == pytest.approx(RESERVATION)
    assert f"this server's daily budget (${cap:.2f})" in next(
        a.content for a in answers if "Limit reached" in a.content)


async def test_instance_cap_counts_every_server_and_dm(discord_fake, openai_fake, make_settings):
    alice = discord_fake.add_user("alice")
    settings = make_settings(instance_daily_spend_usd=round(2.5 * RESERVATION, 4),
                             allow_dms=True, dm_allowed_users=[int(alice["id"])],
                             default_quality="low", default_size="1024x1024",
                             default_partial_images=0)
    openai_fake.latency = 30
    async with running(settings):
        first = await discord_fake.slash(alice, discord_fake.text_channel_id, "imagine",
                                         {"prompt": "p01"})
        await answer(discord_fake, first, "Started a conversation", timeout=10)
        await discord_fake.dm(alice, "p02")  # a DM counts against the same instance budget
        await discord_fake.wait_for(lambda: len(turn_rows(settings.database_path)) == 2 or None)
        third = await discord_fake.slash(alice, discord_fake.text_channel_id, "imagine",
                                         {"prompt": "p03"})
        refused = await answer(discord_fake, third, "Limit reached", timeout=10)
    assert "the bot's daily budget" in refused.content and refused.ephemeral
    assert len(turn_rows(settings.database_path)) == 2


async def test_cost_is_what_the_api_billed_and_the_reservation_is_settled(
    discord_fake, openai_fake, make_settings
):
    settings = make_settings()
    alice = discord_fake.add_user("alice")
    openai_fake.latency = 1.0
    async with running(settings):
        thread = await start_conversation(discord_fake, alice, "p01", **CHEAP)
        await discord_fake.wait_for(lambda: statuses(settings) == ["running"] or None)
        [while_running] = turn_rows(settings.database_path)
        await wait_results(discord_fake, thread, 1)
        [row] = await discord_fake.wait_for(
            lambda: (r if (r := turn_rows(settings.database_path))[0]["status"] == "done"
                     else None))
    response = openai_fake.responses[row["response_id"]]
    usage, image_gen = response["usage"], response["tool_usage"]["image_gen"]
    # USD per 1M tokens: gpt-5.5 in $5, out $30; gpt-image-2 text in $5, image in $8, out $30
    expected = (
        usage["input_tokens"] * 5.00 / 1e6
        + usage["output_tokens"] * 30.00 / 1e6
        + image_gen["input_tokens_details"]["text_tokens"] * 5.00 / 1e6
        + image_gen["input_tokens_details"]["image_tokens"] * 8.00 / 1e6
        + image_gen["output_tokens_details"]["image_tokens"] * 30.00 / 1e6
    )
    assert while_running["reserved_usd"] == pytest.approx(RESERVATION)
    assert while_running["cost_usd"] == 0
    assert row["cost_usd"] == pytest.approx(expected) and row["reserved_usd"] == 0


# ------------------------------------------------------------------------------------ /healthz
async def test_healthz_is_503_until_ready_and_while_the_database_is_unwritable(
    discord_fake, openai_fake, make_settings
):
    async def get(url: str) -> tuple[int, dict[str, Any]]:
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            return response.status, await response.json(content_type=None)

    # not ready yet (a server that has not connected): 503 with the same JSON
    ready = False
    server = MetricsServer(Metrics(queued=lambda: 0, running=lambda: 0), host="127.0.0.1",
                           port=0, ready=lambda: ready)
    await server.start()
    try:
        starting = await get(f"{server.url}/healthz")
        ready = True
        up = await get(f"{server.url}/healthz")
    finally:
        await server.stop()
    assert starting == (503, {"status": "starting", "ready": False, "queued": 0, "running": 0})
    assert up == (200, {"status": "ok", "ready": True, "queued": 0, "running": 0})

    # the running bot while another connection holds the database's write lock
    settings = make_settings(metrics_port=0)
    async with running(settings) as bot:
        base = bot.metrics_server.url
        before = await get(f"{base}/healthz")
        async with sqlite_write_lock(settings.database_path):
            during = await get(f"{base}/healthz")
        after = await get(f"{base}/healthz")
    assert before[0] == 200 and before[1]["status"] == "ok"
    assert during == (503, {"status": "database_unwritable", "ready": True, "queued": 0,
                            "running": 0})
    assert after[0] == 200


# ------------------------------------------------------------------ messages built from server data
async def test_settings_listing_with_80_allowed_roles_fits_one_message(
    discord_fake, openai_fake, make_settings
):
    admin = discord_fake.add_user("admin", permissions=["manage_guild"])
    roles = [discord_fake.snowflake() for _ in range(80)]
    blocked = [discord_fake.snowflake() for _ in range(40)]
    settings = make_settings()
    async with running(settings):
        await settings_cmd(discord_fake, admin, "limits", daily_spend_usd=5)
    with sqlite3.connect(settings.database_path) as db:  # a server that listed them over time
        db.execute("UPDATE guild_settings SET settings = json_set(settings, '$.allowed_roles', "
                   "json(?), '$.exempt_roles', json(?), '$.blocked_users', json(?))",
                   (str(roles), str(roles), str(blocked)))
    async with running(settings):
        shown = await settings_cmd(discord_fake, admin, "show")
        saved = await settings_cmd(discord_fake, admin, "access", refine="anyone")
    for text in (shown, saved):  # before: over 4,000 characters, which Discord refuses
        assert len(text) <= 2000
        assert f"<@&{roles[0]}>" in text and f"<@&{roles[12]}>" not in text
        assert text.count("and 68 more") == 2  # allowed and exempt roles: 12 shown of 80
        assert "and 28 more" in text  # blocked members: 12 shown of 40


# ------------------------------------------------------------------ spend reports
async def test_managers_usage_shows_reserved_spend(discord_fake, openai_fake, make_settings):
    admin = discord_fake.add_user("admin", permissions=["manage_guild"])
    settings = make_settings()
    openai_fake.latency = 30
    async with running(settings):
        await start_conversation(discord_fake, admin, "p01", **CHEAP)
        await discord_fake.wait_for(lambda: statuses(settings) == ["running"] or None)
        usage = await answer(discord_fake, await discord_fake.slash(
            admin, discord_fake.text_channel_id, "usage"), timeout=10)
    assert f"Reserved by images in progress (their worst case, until billed): ${RESERVATION:.2f}." \
        in usage.content


async def test_usage_command_per_server_user_and_model(
    discord_fake, openai_fake, make_settings, monkeypatch, capsys
):
    alice = discord_fake.add_user("alice")
    settings = make_settings(allow_dms=True, dm_allowed_users=[int(alice["id"])])
    async with running(settings):
        thread = await start_conversation(discord_fake, alice, "p01", **CHEAP)
        await wait_results(discord_fake, thread, 1)
        await discord_fake.dm(alice, "p02")
        await wait_results(discord_fake, discord_fake.dm_channel(alice), 1)
        await discord_fake.wait_for(lambda: statuses(settings) == ["done", "done"] or None)
    rows = turn_rows(settings.database_path)
    responses = [openai_fake.responses[r["response_id"]] for r in rows]
    # by hand, per 1M tokens: gpt-5.5 $5 in / $30 out; gpt-image-2 $5 text in, $8 / $30 image
    mainline = [r["usage"]["input_tokens"] * 5.00 / 1e6 + r["usage"]["output_tokens"] * 30.00 / 1e6
                for r in responses]
    image = [(g := r["tool_usage"]["image_gen"])["input_tokens_details"]["text_tokens"] * 5.00
             / 1e6 + g["input_tokens_details"]["image_tokens"] * 8.00 / 1e6
             + g["output_tokens_details"]["image_tokens"] * 30.00 / 1e6 for r in responses]
    for name, value in (("DATABASE_PATH", str(settings.database_path)),
                        ("DISCORD_TOKEN", "x"), ("OPENAI_API_KEY", "y")):
        monkeypatch.setenv(name, value)
    from bot.__main__ import main

    assert await asyncio.to_thread(main, ["usage", "--since", "2000-01-01", "--csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    table = {(c[0], c[1]): c[2:] for c in (line.split(",") for line in lines[1:])}
    assert lines[0] == "scope,key,turns,images,settled_usd,reserved_usd"
    server = table[("server", str(discord_fake.guild_id))]
    assert server[:2] == ["1", "1"]
    assert float(server[2]) == pytest.approx(mainline[0] + image[0], abs=1e-6)
    assert float(table[("server", "DMs")][2]) == pytest.approx(mainline[1] + image[1], abs=1e-6)
    assert float(table[("user", alice["id"])][2]) == pytest.approx(sum(mainline) + sum(image),
                                                                   abs=1e-6)
    assert float(table[("model", "gpt-5.5")][2]) == pytest.approx(sum(mainline), abs=1e-6)
    assert float(table[("model", "gpt-image-2")][2]) == pytest.approx(sum(image), abs=1e-6)
    assert await asyncio.to_thread(main, ["usage"]) == 0  # the tables, from this month's 1st
    text = capsys.readouterr().out
    assert "per server" in text and "per user" in text and "per model" in text


# ------------------------------------------------------------------ access taken away mid-queue
async def test_a_role_removed_while_a_turn_waits_stops_it_before_it_is_billed(
    discord_fake, openai_fake, make_settings
):
    settings = make_settings(per_user_concurrent=1, max_concurrent_generations=1)
    admin = discord_fake.add_user("admin", permissions=["manage_guild"])
    holder = discord_fake.add_user("artists-holder", permissions=[])
    artists = int(discord_fake.members[int(holder["id"])]["roles"][-1])
    painter = discord_fake.add_user("painter", roles=[artists])
    openai_fake.latency = 1.5
    async with running(settings):
        await settings_cmd(discord_fake, admin, "access", role=artists)
        first = await start_conversation(discord_fake, painter, "first")
        second = await start_conversation(discord_fake, painter, "second")  # waits behind it
        await discord_fake.wait_for(lambda: statuses(settings) == ["running", "queued"] or None)
        discord_fake.set_roles(painter, [])  # a moderator takes the role away
        await wait_results(discord_fake, first, 1)  # already running: it finishes
        await discord_fake.wait_for(lambda: statuses(settings) == ["done", "failed"] or None)
        shown = await discord_fake.wait_for(lambda: next(
            (m.content for m in discord_fake.messages(second) if "allowed roles" in m.content),
            None))
    rows = turn_rows(settings.database_path)
    assert rows[1]["error_kind"] == "not_allowed" and rows[1]["cost_usd"] == 0
    assert "You need one of the allowed roles" in shown
    assert len(openai_fake.create_requests()) == 1  # the second never reached the API


async def test_a_moderators_reroll_is_their_own_turn_under_their_own_limits(
    discord_fake, openai_fake, make_settings
):
    """A moderator may act on others' results (cancel, delete), but a Reroll they click is a
    turn of theirs: the blocked list and their own daily images still apply."""
    settings = make_settings(user_daily_images=1)
    alice = discord_fake.add_user("alice")
    mod = discord_fake.add_user("mod", permissions=["manage_messages"])
    async with running(settings):
        thread = await start_conversation(discord_fake, alice, "a lighthouse")
        [result] = await wait_results(discord_fake, thread, 1)
        other = await start_conversation(discord_fake, mod, "a harbour")  # the mod's one a day
        await wait_results(discord_fake, other, 1)
        click = await discord_fake.click(mod, result.id, "imagine:reroll:1")
        refused = await answer(discord_fake, click, "Limit reached")
    assert refused.ephemeral and "1 image per person per day" in refused.content
    assert len(openai_fake.create_requests()) == 2
    assert [r["author_id"] for r in turn_rows(settings.database_path)] == [
        int(alice["id"]), int(mod["id"])]


# ------------------------------------------------------------------ servers' own keys
SERVER_KEY = "server-own-key-test-0123456789abcdef"  # not a real key format on purpose


async def set_key(fake: FakeDiscord, admin: Any, api_key: str) -> str:
    opened = await fake.slash(admin, fake.text_channel_id, "imagine-settings key", {})
    submitted = await fake.submit_modal(admin, opened, {"api_key": api_key})
    return (await answer(fake, submitted, "ey", timeout=10)).content


def create_keys(openai_fake: Any) -> list[str]:
    return [r.headers.get("authorization", "") for r in openai_fake.requests
            if r.method == "POST" and r.path == "/v1/responses"]


async def test_own_key_set_used_billed_to_the_server_then_failing(
    discord_fake, openai_fake, make_settings, caplog
):
    from tests.e2e.conftest import SECRET_KEY

    caplog.set_level(logging.DEBUG)
    admin = discord_fake.add_user("admin", permissions=["manage_guild"])
    alice = discord_fake.add_user("alice")
    # the operator's own budget is spent: only turns on the server's key can run
    settings = make_settings(key_encryption_secret="test-key-encryption-secret-9f2c-0123456789",
                             instance_daily_spend_usd=0.001, **{"default_" + "quality": "low"})
    async with running(settings):
        refused_by_instance = await answer(discord_fake, await discord_fake.slash(
            alice, discord_fake.text_channel_id, "imagine", {"prompt": "p01"}), "Limit reached")
        openai_fake.rejected_keys.add("a-revoked-key-0000000000000000")
        rejected = await set_key(discord_fake, admin, "a-revoked-key-0000000000000000")
        saved = await set_key(discord_fake, admin, SERVER_KEY)
        thread = await start_conversation(discord_fake, alice, "p02")
        await wait_results(discord_fake, thread, 1)
        openai_fake.keys_without_quota.add(SERVER_KEY)  # the server's account runs dry
        failing = await start_conversation(discord_fake, alice, "p03")
        await discord_fake.wait_for(lambda: statuses(settings) == ["done", "failed"] or None)
        after = await answer(discord_fake, await discord_fake.slash(
            alice, discord_fake.text_channel_id, "imagine", {"prompt": "p04"}), "key")
        owner_dm = discord_fake.dm_channel(discord_fake.owner)
        told = await discord_fake.wait_for(lambda: bot_texts_in(discord_fake, owner_dm) or None)
    assert "the bot's daily budget" in refused_by_instance.content
    assert rejected.startswith("OpenAI rejected that key") and SERVER_KEY not in rejected
    assert saved.startswith("Key checked and saved") and SERVER_KEY not in saved
    # used: every generation request carried the server's key, never the operator's
    assert create_keys(openai_fake) == [f"Bearer {SERVER_KEY}"] * 2
    assert f"Bearer {SECRET_KEY}" not in create_keys(openai_fake)
    rows = turn_rows(settings.database_path)
    assert [r["own_key"] for r in rows] == [1, 1]
    assert rows[0]["cost_usd"] > 0 and rows[1]["error_kind"] == "quota"
    # failing later: the owner is told once; the server stops, not falling back to the operator
    assert len(told) == 1 and "stopped working" in told[0]
    assert "own OpenAI key stopped working" in after.content and after.ephemeral
    assert any("own OpenAI key stopped working" in m.content
               for m in discord_fake.messages(failing))  # the failed turn says why
    assert len(create_keys(openai_fake)) == 2
    with sqlite3.connect(settings.database_path) as db:
        [(sealed, failed)] = db.execute("SELECT encrypted, failed FROM server_keys").fetchall()
    assert SERVER_KEY not in sealed and failed == 1  # stored encrypted
    assert failing in discord_fake.threads
    # never logged, at DEBUG, by the bot or the SDK (discord.py's own DEBUG dump of gateway
    # payloads is kept at INFO by bot/logging_setup.py, whatever LOG_LEVEL says)
    assert not [r.name for r in caplog.records
                if SERVER_KEY in r.getMessage() and not r.name.startswith("discord")]


async def test_reservations_survive_a_restart(discord_fake, openai_fake, make_settings):
    """A turn still running when the bot stops keeps its reservation in the database: after the
    restart the cap still counts it, so a second turn that would not fit is refused."""
    settings = make_settings(guild_daily_spend_usd=round(1.5 * RESERVATION, 4),
                             shutdown_grace_seconds=0.1)
    alice, bob = discord_fake.add_user("alice"), discord_fake.add_user("bob")
    openai_fake.latency = 30
    async with running(settings):
        await start_conversation(discord_fake, alice, "p01", **CHEAP)
        await discord_fake.wait_for(lambda: statuses(settings) == ["running"] or None)
    assert statuses(settings) == ["running"]  # left for the next start to resume
    async with running(settings):
        refused = await answer(discord_fake, await discord_fake.slash(
            bob, discord_fake.text_channel_id, "imagine", {"prompt": "p02", **CHEAP}),
            "Limit reached", timeout=10)
    assert "this server's daily budget" in refused.content
    [row] = turn_rows(settings.database_path)
    assert row["reserved_usd"] == pytest.approx(RESERVATION)


# ------------------------------------------------------------------------ uploads (issue 21)
def gps_photo() -> bytes:
    """A phone JPEG with the camera and where it was taken in its EXIF."""
    from PIL import Image

    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2], gps[3], gps[4] = "N", (51.0, 30.0, 12.0), "W", (0.0, 7.0, 39.0)
    out = io.BytesIO()
    Image.effect_noise((64, 64), 50).convert("RGB").save(out, "JPEG", exif=exif.tobytes())
    return out.getvalue()


def has_exif(data: bytes) -> bool:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return bool(image.getexif()) or b"PhoneMaker" in data


def sent_images(request: dict[str, Any]) -> list[bytes]:
    parts = [p for item in request["input"] if isinstance(item, dict) and item.get("role") == "user"
             for p in item["content"] if p["type"] == "input_image"]
    return [base64.b64decode(p["image_url"].partition(",")[2]) for p in parts]


async def test_an_uploads_exif_reaches_neither_the_api_nor_the_database_and_is_not_kept(
    discord_fake, openai_fake, make_settings
):
    """INPUT_RETENTION_DAYS=0: a photo with GPS is sent and stored without its metadata, deleted
    once its turn is over; a reroll of that turn then says its images are gone (never runs
    without them)."""
    alice = discord_fake.add_user("alice")
    settings = make_settings(input_retention_days=0)
    photo = gps_photo()
    assert has_exif(photo)
    async with running(settings):
        thread = await start_conversation(discord_fake, alice, "a castle")
        await wait_results(discord_fake, thread, 1)
        await discord_fake.say(alice, thread, "put me in it",
                               attachments=[("me.jpg", photo, "image/jpeg")])
        [_, second] = await wait_results(discord_fake, thread, 2)
        [sent] = sent_images(openai_fake.create_requests()[-1])
        assert not has_exif(sent) and sent[:2] == b"\xff\xd8"  # still a JPEG
        await discord_fake.wait_for(
            lambda: not db_rows(settings, "SELECT * FROM turn_inputs")
            and turn_rows(settings)[1]["inputs_pruned"] == 1, 10,
            what="the finished turn's input deleted",
        )
        await quiet(discord_fake, openai_fake)
        asked = len(openai_fake.create_requests())
        turn_id = turn_rows(settings)[1]["id"]
        click = await discord_fake.click(alice, second.id, f"imagine:reroll:{turn_id}")
        refused = await answer(discord_fake, click, "no longer kept")
        assert refused.ephemeral
        await quiet(discord_fake, openai_fake)
    assert len(openai_fake.create_requests()) == asked
    assert len(turn_rows(settings)) == 2


# ------------------------------------------------------------------------ own keys (issue 21)
async def test_a_key_the_secret_cannot_open_is_marked_failed_and_its_owner_told(
    discord_fake, openai_fake, make_settings
):
    """Another server's key opens, this server's does not (sealed with a secret this process
    does not have): the bot starts, marks this one failed, tells the owner once, and refuses
    the server's turns; nothing is ever billed to the operator's key for it."""
    from bot.core.keys import KeyBox
    from bot.store.repositories import Store

    secret = "test-key-encryption-secret-9f2c-0123456789"
    settings = make_settings(key_encryption_secret=secret)
    store = await Store.open(settings.database_path)
    try:
        await store.server_keys.put(discord_fake.guild_id, KeyBox(
            "a secret from another set-up, long and random: 55").seal(SERVER_KEY))
        await store.server_keys.put(discord_fake.add_guild().id, KeyBox(secret).seal(SERVER_KEY))
    finally:
        await store.close()
    alice = discord_fake.add_user("alice")
    async with running(settings):
        owner_dm = discord_fake.dm_channel(discord_fake.owner)
        told = await discord_fake.wait_for(lambda: bot_texts_in(discord_fake, owner_dm) or None, 10,
                                           what="the owner told")
        refused = await answer(discord_fake, await discord_fake.slash(
            alice, discord_fake.text_channel_id, "imagine", {"prompt": "p01"}), "key")
        await quiet(discord_fake, openai_fake)
    assert len(told) == 1 and "stopped working" in told[0]
    assert "own OpenAI key stopped working" in refused.content and refused.ephemeral
    assert create_keys(openai_fake) == [] and turn_rows(settings) == []
    with sqlite3.connect(settings.database_path) as db:
        failed = dict(db.execute("SELECT guild_id, failed FROM server_keys").fetchall())
    assert failed[discord_fake.guild_id] == 1 and sorted(failed.values()) == [0, 1]


async def test_cancelling_a_turn_on_the_servers_own_key_stops_it_with_that_key(
    discord_fake, openai_fake, make_settings
):
    """The cancel of a running own-key generation goes out with the server's key: with the
    operator's it would be refused (another account's response) and the server's generation
    would run on, billed to the server."""
    from tests.e2e.conftest import SECRET_KEY

    admin = discord_fake.add_user("admin", permissions=["manage_guild"])
    alice = discord_fake.add_user("alice")
    settings = make_settings(key_encryption_secret="test-key-encryption-secret-9f2c-0123456789")
    async with running(settings):
        await set_key(discord_fake, admin, SERVER_KEY)
        openai_fake.latency = 3.0
        await start_conversation(discord_fake, alice, "a very slow painting")

        def running_turn() -> dict[str, Any] | None:
            rows = turn_rows(settings.database_path)
            ready = rows and rows[0]["response_id"] and rows[0]["progress_message_id"]
            return rows[0] if ready else None

        row = await discord_fake.wait_for(running_turn, 10, what="the turn running")
        await discord_fake.click(alice, row["progress_message_id"], f"imagine:cancel:{row['id']}")
        await discord_fake.wait_for(
            lambda: openai_fake.responses[row["response_id"]]["status"] == "cancelled", 5,
            what="the background response to be cancelled")
    cancels = [r.headers.get("authorization") for r in openai_fake.requests
               if r.method == "POST" and r.path.endswith("/cancel")]
    assert cancels == [f"Bearer {SERVER_KEY}"]
    assert f"Bearer {SECRET_KEY}" not in cancels
    assert turn_rows(settings.database_path)[0]["status"] == "cancelled"
