"""No interaction goes unanswered (issue 23): the acknowledgement goes out before anything that
can wait (the gate's locks, a database write), and an interaction the bot only reaches close to
Discord's 3 s gets an immediate private "busy, try again" instead of a late answer (the fake
refuses a callback after 3 s with 10062, as Discord does)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.harness import (
    answer,
    quiet,
    running,
    sqlite_write_lock,
    start_conversation,
    turn_rows,
    wait_results,
)
from tests.fakes.discord_server import FakeDiscord

pytestmark = pytest.mark.both_backends

BUSY = "I'm very busy right now — please try again in a minute."
DEADLINE = 3.0  # Discord's time to answer an interaction


async def acknowledged(fake: FakeDiscord, inter: Any, what: str) -> float:
    """Seconds from the interaction's creation to its first response (failing on a refusal)."""
    await fake.wait_for(lambda: inter.response_type is not None or inter.errors,
                        DEADLINE + 1, what=f"the acknowledgement of {what}")
    assert inter.errors == [] and inter.acked_at is not None, inter
    return float(inter.acked_at - inter.created_at)


@pytest.mark.sqlite_only
async def test_a_locked_database_does_not_delay_the_acknowledgement(
    discord_fake, openai_fake, make_settings
):
    """Another connection holds the SQLite write lock: a Reroll's record waits for it (holding
    the member's admission lock), Continue's write waits for it, and the member's /imagine
    (whose admission waits behind the Reroll) is acknowledged within 3 s all the same; each is
    answered once the lock goes."""
    settings = make_settings()
    alice = discord_fake.add_user("alice")
    async with running(settings):
        thread = await start_conversation(discord_fake, alice, "a lighthouse", previews=0)
        [first] = await wait_results(discord_fake, thread, 1)
        turn_id = turn_rows(settings.database_path)[0]["id"]
        async with sqlite_write_lock(settings.database_path, hold_for=8):
            reroll = await discord_fake.click(alice, first.id, f"imagine:reroll:{turn_id}")
            ages = [await acknowledged(discord_fake, reroll, "Reroll")]
            onward = await discord_fake.click(alice, first.id, f"imagine:continue:{turn_id}")
            imagine = await discord_fake.slash(alice, discord_fake.text_channel_id, "imagine",
                                               {"prompt": "a harbour", "previews": 0})
            ages += [await acknowledged(discord_fake, imagine, "/imagine"),
                     await acknowledged(discord_fake, onward, "Continue")]
        continued = await answer(discord_fake, onward, "continue from this image", timeout=10)
        await wait_results(discord_fake, thread, 2)  # the reroll
        opened = await discord_fake.wait_for(
            lambda: next((t for t in discord_fake.threads if t != thread), None), 10,
            what="the thread /imagine opened")
        await wait_results(discord_fake, opened, 1)
    assert max(ages) < DEADLINE, ages
    assert continued.ephemeral
    assert sorted(r["prompt"] for r in turn_rows(settings.database_path)) == [
        "a harbour", "a lighthouse", "a lighthouse"]


async def test_an_interaction_reached_late_gets_the_busy_answer_and_costs_nothing(
    discord_fake, openai_fake, make_settings
):
    """Interactions the gateway delivers 2.5 s after Discord made them (/imagine, a Reroll, the
    Refine button): each answered at once, privately, "busy, try again in a minute", and nothing
    checked, recorded or requested for them; delivered on time again, the same work runs."""
    settings = make_settings()
    alice = discord_fake.add_user("alice")
    async with running(settings):
        thread = await start_conversation(discord_fake, alice, "a lighthouse", previews=0)
        [first] = await wait_results(discord_fake, thread, 1)
        turn_id = turn_rows(settings)[0]["id"]
        threads = set(discord_fake.threads)
        discord_fake.interaction_delivery_delay = 2.5
        late = [
            await discord_fake.slash(alice, discord_fake.text_channel_id, "imagine",
                                     {"prompt": "a late harbour"}),
            await discord_fake.click(alice, first.id, f"imagine:reroll:{turn_id}"),
            await discord_fake.click(alice, first.id, f"imagine:refine:{turn_id}"),
        ]
        busy = [await answer(discord_fake, inter, BUSY, timeout=DEADLINE + 1) for inter in late]
        await quiet(discord_fake, openai_fake)
        asked, recorded = len(openai_fake.create_requests()), turn_rows(settings)
        discord_fake.interaction_delivery_delay = 0.0
        await discord_fake.click(alice, first.id, f"imagine:reroll:{turn_id}")
        await wait_results(discord_fake, thread, 2)
    assert all(m.ephemeral and m.content == BUSY for m in busy), busy
    assert all(inter.errors == [] and inter.response_type == 4 for inter in late), late
    assert [inter.acked_at - inter.created_at < DEADLINE for inter in late] == [True] * 3
    assert set(discord_fake.threads) == threads  # no thread for the late /imagine
    assert asked == 1 and [r["prompt"] for r in recorded] == ["a lighthouse"]
    assert [r["kind"] for r in turn_rows(settings)] == ["root", "reroll"]


async def test_the_busy_answer_is_in_the_members_language(discord_fake, openai_fake, make_settings):
    alice = discord_fake.add_user("alice")
    async with running(make_settings()):
        on_time = await discord_fake.slash(alice, discord_fake.text_channel_id, "help")
        await answer(discord_fake, on_time)
        discord_fake.interaction_delivery_delay = 2.5
        late = await discord_fake.slash(alice, discord_fake.text_channel_id, "imagine",
                                        {"prompt": "一只猫"}, locale="zh-CN")
        said = await answer(discord_fake, late, "请一分钟后再试", timeout=DEADLINE + 1)
    assert said.ephemeral and said.content == "我现在非常忙——请一分钟后再试。"
