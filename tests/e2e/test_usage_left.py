"""/usage answers "how much do I have left": images left today, the server's budget left, when
each resets (a Discord timestamp), and the member's images in progress with their place in line."""

from __future__ import annotations

import datetime as dt
import re

from tests.e2e.harness import answer, running, start_conversation, turn_rows, wait_results


def next_utc_midnight() -> int:
    now = dt.datetime.now(dt.UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0) + dt.timedelta(days=1)
    return int(midnight.timestamp())


async def test_usage_shows_what_is_left_and_the_queue(discord_fake, openai_fake, make_settings):
    settings = make_settings(user_daily_images=5, guild_daily_spend_usd=20.0,
                             per_user_concurrent=1, per_user_queued=3)
    alice = discord_fake.add_user("alice")
    channel = discord_fake.text_channel_id
    async with running(settings):
        done = await start_conversation(discord_fake, alice, "a first lamp")
        await wait_results(discord_fake, done, 1)
        openai_fake.latency = 30.0  # the next ones stay in progress while /usage is asked
        threads = [await start_conversation(discord_fake, alice, f"lamp {n}") for n in (2, 3, 4)]
        await discord_fake.wait_for(
            lambda: sorted(r["status"] for r in turn_rows(settings.database_path)) == [
                "done", "queued", "queued", "running"],
            10, what="one running turn and two waiting",
        )
        await discord_fake.wait_for(  # each /imagine's turn recorded and shown in its thread
            lambda: len(rows := turn_rows(settings.database_path)) == 4
            and all(r["progress_message_id"] for r in rows[1:]),
            10, what="the three later turns recorded with their progress messages",
        )
        # the two others are in the queue once their progress messages show a position
        await discord_fake.wait_for(
            lambda: all(any("position" in m.content for m in discord_fake.messages(t))
                        for t in threads[1:]),
            15, what="queue positions shown",
        )
        usage = await answer(discord_fake, await discord_fake.slash(alice, channel, "usage"))
        openai_fake.latency = 0.05
    spent = sum(r["cost_usd"] for r in turn_rows(settings.database_path) if r["status"] == "done")
    text = usage.content
    reset = next_utc_midnight()
    # 1 done + 3 in progress count against the 5 a day
    assert f"Limits: 5 images per day, 1 left, resets <t:{reset}:R>." in text
    # the budget left counts what the three unfinished turns reserve (README "Reservations"):
    # each, at the default options (high, 1536x1024 = 6240 image tokens + 2 previews x 100) with
    # a 6-character prompt, at gpt-5.5's $5 in / $30 out and gpt-image-2's $5 text in / $30 out:
    reserved = 3 * ((4006 * 5.00 + 2000 * 30.00) / 1e6 + (4006 * 5.00 + 6440 * 30.00) / 1e6)
    assert (f"Server budget: $20.00 per day, ${20.0 - spent - reserved:.2f} left, "
            f"resets <t:{reset}:R>." in text)
    assert "Your images in progress:" in text
    lines = [line for line in text.splitlines() if line.startswith("• ")]
    assert len(lines) == 3
    assert f"<#{threads[0]}> “lamp 2” — being drawn now" in lines[0]
    assert re.search(rf"<#{threads[1]}> “lamp 3” — waiting, number \d in line", lines[1])
    assert re.search(rf"<#{threads[2]}> “lamp 4” — waiting, number \d in line", lines[2])
    positions = [int(re.search(r"number (\d)", line).group(1)) for line in lines[1:]]
    assert positions == [1, 2]
