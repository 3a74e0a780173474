"""The one gate, end to end through both fakes: /describe obeys every rule a generation does (DM
policy, blocks, spend caps with a held reservation, the server's own key), a first turn never
lands inside another member's conversation, Continue from passes access checks, and nothing is
downloaded for a message the gate refuses."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

from bot.core.describe import WORST_CASE
from bot.core.errors import ErrorKind, UserFacingError
from bot.ui.render import error_text
from tests.e2e.harness import answer, quiet, running, start_conversation, turn_rows, wait_results
from tests.fakes.discord_server import FakeDiscord
from tests.fakes.images import render_image
from tests.fakes.openai_server import read_lineage

DM_REFUSAL = "Image generation in direct messages isn't open to you."
# one describe's worst case at these prices: 3000 * 100 + 1500 * 400 per million = $0.90
PRICES = {"default": {"text_input": 100.0, "text_output": 400.0, "image_input": 200.0,
                      "image_output": 1000.0}}
SERVER_KEY = "server-own-key-test-gate-0123456789"


def refusal(kind: ErrorKind, **params: Any) -> str:
    return error_text(UserFacingError(kind, **params), "en-US")


def photo(name: str = "kite.png") -> tuple[str, bytes, str]:
    return name, render_image(["a red kite"], width=256, height=256, fmt="png").final, "image/png"


async def describe(fake: FakeDiscord, user: Any, channel_id: int) -> Any:
    return await fake.slash(user, channel_id, "describe", attachments={"image": photo()})


async def settings_cmd(fake: FakeDiscord, admin: Any, sub: str, **options: Any) -> str:
    inter = await fake.slash(admin, fake.text_channel_id, f"imagine-settings {sub}", options)
    return (await answer(fake, inter)).content


def describe_requests(openai_fake: Any) -> list[dict[str, Any]]:
    return [r for r in openai_fake.create_requests() if "tools" not in r]


async def settled(fake: FakeDiscord, settings: Any, count: int) -> None:
    """Wait until `count` turns are recorded as done (a result is shown just before)."""
    await fake.wait_for(lambda: [r["status"] for r in turn_rows(settings)] == ["done"] * count, 10,
                        what=f"{count} turns recorded as done")


def head_of(settings: Any, conversation_id: int) -> int | None:
    with sqlite3.connect(settings.database_path) as db:
        [(head,)] = db.execute("SELECT head_turn_id FROM conversations WHERE id = ?",
                               (conversation_id,)).fetchall()
    return head


# ------------------------------------------------------------------------------ /describe
async def test_describe_in_a_dm_is_refused_while_dms_are_off(discord_fake, openai_fake, make_settings):
    alice = discord_fake.add_user("alice")
    async with running(make_settings()):
        dm = discord_fake.dm_channel(alice)
        answers = [await answer(discord_fake, await describe(discord_fake, alice, dm))
                   for _ in range(3)]
        await quiet(discord_fake, openai_fake)
    assert all(a.ephemeral and a.content.startswith(DM_REFUSAL) for a in answers)
    assert openai_fake.create_requests() == []
    assert discord_fake.downloads == []


async def test_describe_in_a_dm_is_refused_to_a_member_a_server_blocked(
    discord_fake, openai_fake, make_settings
):
    admin = discord_fake.add_user("admin", permissions=["manage_guild"])
    alice = discord_fake.add_user("alice")
    troll = discord_fake.add_user("troll")
    async with running(make_settings(allow_dms=True)):
        await settings_cmd(discord_fake, admin, "access", member_dms=True)
        await settings_cmd(discord_fake, admin, "access", blocked_user=troll["id"])
        served = await answer(discord_fake, await describe(
            discord_fake, alice, discord_fake.dm_channel(alice)), "Prompt ideas")
        refused = await answer(discord_fake, await describe(
            discord_fake, troll, discord_fake.dm_channel(troll)))
    assert "1. " in served.content
    assert refused.content.startswith(DM_REFUSAL)
    assert len(describe_requests(openai_fake)) == 1


async def test_eight_describes_at_once_against_a_cap_with_room_for_one_admit_one(
    discord_fake, openai_fake, make_settings
):
    """The worst case of each is held under the cap's lock until its cost is recorded."""
    alice = discord_fake.add_user("alice")
    worst = (WORST_CASE.text_input * 100.0 + WORST_CASE.text_output * 400.0) / 1_000_000
    settings = make_settings(price_table=PRICES, instance_daily_spend_usd=worst + 0.01)
    async with running(settings):
        sent = await asyncio.gather(*(describe(discord_fake, alice, discord_fake.text_channel_id)
                                      for _ in range(8)))
        answers = [await answer(discord_fake, inter, timeout=10) for inter in sent]
        await quiet(discord_fake, openai_fake)
    described = [a for a in answers if "Prompt ideas" in a.content]
    limited = [a for a in answers if "Limit reached" in a.content]
    assert (len(described), len(limited)) == (1, 7)
    assert len(describe_requests(openai_fake)) == 1
    assert len(discord_fake.downloads) == 1  # only the admitted image was fetched


async def test_describe_is_billed_to_the_servers_own_key(discord_fake, openai_fake, make_settings):
    from tests.e2e.conftest import SECRET_KEY

    admin = discord_fake.add_user("admin", permissions=["manage_guild"])
    alice = discord_fake.add_user("alice")
    settings = make_settings(key_encryption_secret="test-key-encryption-secret-9f2c-0123456789")
    async with running(settings):
        opened = await discord_fake.slash(admin, discord_fake.text_channel_id,
                                          "imagine-settings key", {})
        submitted = await discord_fake.submit_modal(admin, opened, {"api_key": SERVER_KEY})
        await answer(discord_fake, submitted, "Key checked and saved", timeout=10)
        await answer(discord_fake, await describe(discord_fake, alice, discord_fake.text_channel_id),
                     "Prompt ideas")
    keys = [r.headers.get("authorization", "") for r in openai_fake.requests
            if r.method == "POST" and r.path == "/v1/responses"]
    assert keys == [f"Bearer {SERVER_KEY}"]
    assert f"Bearer {SECRET_KEY}" not in keys


# ------------------------------------------------------------------ first turns, Continue from
async def test_imagine_in_another_members_conversation_opens_a_thread_beside_it(
    discord_fake, openai_fake, make_settings
):
    alice = discord_fake.add_user("alice")
    bob = discord_fake.add_user("bob")
    settings = make_settings()
    async with running(settings):
        thread = await start_conversation(discord_fake, alice, "a castle")
        [first] = await wait_results(discord_fake, thread, 1)
        before = set(discord_fake.threads)
        inter = await discord_fake.slash(bob, thread, "imagine", {"prompt": "a submarine"})
        started = await answer(discord_fake, inter, "Started a conversation")
        beside = await discord_fake.wait_for(
            lambda: next((t for t in discord_fake.threads if t not in before), None), 10)
        await wait_results(discord_fake, beside, 1)
        await discord_fake.say(alice, thread, "add a moat")  # builds on her castle
        second = (await wait_results(discord_fake, thread, 2))[1]
    assert f"<#{beside}>" in started.content
    rows = turn_rows(settings)
    assert [(r["conversation_id"], r["author_id"]) for r in rows] == [
        (thread, int(alice["id"])), (beside, int(bob["id"])), (thread, int(alice["id"]))]
    assert read_lineage(second.attachments[0].data) == ["a castle", "add a moat"]
    assert first.id != second.id


async def test_describes_suggestion_in_another_members_conversation_opens_a_thread_beside_it(
    discord_fake, openai_fake, make_settings
):
    alice = discord_fake.add_user("alice")
    bob = discord_fake.add_user("bob")
    settings = make_settings()
    async with running(settings):
        thread = await start_conversation(discord_fake, alice, "a lighthouse at dusk")
        [result] = await wait_results(discord_fake, thread, 1)
        ideas = await answer(discord_fake, await discord_fake.message_command(
            bob, result.id, "Describe"), "Prompt ideas")
        before = set(discord_fake.threads)
        await discord_fake.click(bob, ideas.id, "describe:use:1")
        beside = await discord_fake.wait_for(
            lambda: next((t for t in discord_fake.threads if t not in before), None), 10)
        await wait_results(discord_fake, beside, 1)
    assert [r["conversation_id"] for r in turn_rows(settings)] == [thread, beside]
    assert head_of(settings, thread) in (None, turn_rows(settings)[0]["id"])


async def test_a_blocked_member_cannot_move_the_head_by_button_or_history(
    discord_fake, openai_fake, make_settings
):
    admin = discord_fake.add_user("admin", permissions=["manage_guild"])
    alice = discord_fake.add_user("alice")
    troll = discord_fake.add_user("troll")
    settings = make_settings()
    async with running(settings):
        thread = await start_conversation(discord_fake, alice, "a lighthouse")
        first = (await wait_results(discord_fake, thread, 1))[0]
        await discord_fake.say(alice, thread, "add fog")
        await wait_results(discord_fake, thread, 2)
        sheet = await answer(discord_fake, await discord_fake.slash(troll, thread, "history"),
                             "History", timeout=15)
        await settings_cmd(discord_fake, admin, "access", blocked_user=troll["id"])
        await settled(discord_fake, settings, 2)
        head = head_of(settings, thread)
        clicked = await answer(discord_fake, await discord_fake.click(
            troll, first.id, "imagine:continue:1"))
        picked = await answer(discord_fake, await discord_fake.click(
            troll, sheet.id, f"history:continue:{thread}:0", values=["1"]))
        head_after = head_of(settings, thread)
        await discord_fake.say(alice, thread, "add stars")  # still continues from #2
        third = (await wait_results(discord_fake, thread, 3))[2]
    blocked = refusal(ErrorKind.not_allowed, reason="blocked")
    assert clicked.content == blocked and picked.content == blocked
    assert head_after == head
    assert read_lineage(third.attachments[0].data) == ["a lighthouse", "add fog", "add stars"]


async def test_a_member_without_the_allowed_role_cannot_continue_from(
    discord_fake, openai_fake, make_settings
):
    admin = discord_fake.add_user("admin", permissions=["manage_guild"])
    artists_holder = discord_fake.add_user("artists-holder", permissions=[])
    artists = int(discord_fake.members[int(artists_holder["id"])]["roles"][-1])
    alice = discord_fake.add_user("alice", roles=[artists])
    outsider = discord_fake.add_user("outsider")
    settings = make_settings()
    async with running(settings):
        await settings_cmd(discord_fake, admin, "access", role=artists)
        thread = await start_conversation(discord_fake, alice, "a lighthouse")
        first = (await wait_results(discord_fake, thread, 1))[0]
        await discord_fake.say(alice, thread, "add fog")
        await wait_results(discord_fake, thread, 2)
        await settled(discord_fake, settings, 2)
        head = head_of(settings, thread)
        clicked = await answer(discord_fake, await discord_fake.click(
            outsider, first.id, "imagine:continue:1"))
    assert clicked.content == refusal(ErrorKind.not_allowed, reason="role")
    assert head_of(settings, thread) == head


# ------------------------------------------------------------------ nothing downloaded first
async def test_a_blocked_members_attachments_are_never_downloaded(
    discord_fake, openai_fake, make_settings
):
    admin = discord_fake.add_user("admin", permissions=["manage_guild"])
    alice = discord_fake.add_user("alice")
    troll = discord_fake.add_user("troll")
    async with running(make_settings()):
        thread = await start_conversation(discord_fake, alice, "a lighthouse")
        await wait_results(discord_fake, thread, 1)
        await settings_cmd(discord_fake, admin, "access", blocked_user=troll["id"])
        await discord_fake.say(troll, thread, "use these",
                               attachments=[photo(f"big{n}.png") for n in range(3)])
        blocked = refusal(ErrorKind.not_allowed, reason="blocked")
        await discord_fake.wait_for(
            lambda: any(m.content == blocked for m in discord_fake.messages(thread)), 5)
        await quiet(discord_fake, openai_fake)
    assert discord_fake.downloads == []
    assert len(openai_fake.create_requests()) == 1


async def test_too_many_attachments_are_refused_before_any_download(
    discord_fake, openai_fake, make_settings
):
    alice = discord_fake.add_user("alice")
    async with running(make_settings(max_input_images=2)):
        thread = await start_conversation(discord_fake, alice, "a lighthouse")
        await wait_results(discord_fake, thread, 1)
        await discord_fake.say(alice, thread, "use these",
                               attachments=[photo(f"ref{n}.png") for n in range(3)])
        too_many = refusal(ErrorKind.too_many_images, limit=2)
        await discord_fake.wait_for(
            lambda: any(m.content == too_many for m in discord_fake.messages(thread)), 5)
        await quiet(discord_fake, openai_fake)
    assert discord_fake.downloads == []
    assert len(openai_fake.create_requests()) == 1
