"""Upscale / HQ on a result: the cost first, in a private confirmation; Confirm re-renders that
image as an edit at high quality and the largest size the server allows (same proportions),
without changing the thread's sticky options."""

from __future__ import annotations

import sqlite3

from tests.e2e.harness import (
    custom_ids,
    image_attachments,
    running,
    sqlite_write_lock,
    start_conversation,
    turn_rows,
    wait_results,
)
from tests.fakes.openai_server import read_lineage

HIGH_TOKENS_PER_1024 = 4160  # image generation guide: a high-quality 1024x1024 image
IMAGE_OUTPUT_USD_PER_M = 30.0  # the default price table's image_output


async def test_upscale_confirms_the_cost_then_renders_a_high_quality_edit(
    discord_fake, openai_fake, make_settings
):
    settings = make_settings(max_size="2048x2048")
    alice = discord_fake.add_user("alice")
    async with running(settings):
        thread = await start_conversation(discord_fake, alice, "a lighthouse", quality="low",
                                          size="1536x1024", previews=0)
        [first] = await wait_results(discord_fake, thread, 1)
        turn_id = turn_rows(settings.database_path)[0]["id"]
        assert f"imagine:hq:{turn_id}" in custom_ids(first)
        click = await discord_fake.click(alice, first.id, f"imagine:hq:{turn_id}")
        confirm = await discord_fake.wait_for(
            lambda: next((m for m in click.messages() if "Estimated cost" in m.content), None),
            10, what="the upscale confirmation",
        )
        assert len(openai_fake.create_requests()) == 1  # nothing is spent before Confirm
        asked = confirm.content
        await discord_fake.click(alice, confirm.id, f"imagine:hqgo:{turn_id}")
        [_, upscaled] = await wait_results(discord_fake, thread, 2)
        await discord_fake.say(alice, thread, "add a boat")
        await wait_results(discord_fake, thread, 3)
    # 1536x1024 proportions (3:2), as large as 2048x2048 in pixels allows: 2496x1664
    pixels = 2496 * 1664
    expected = HIGH_TOKENS_PER_1024 * pixels // (1024 * 1024) * IMAGE_OUTPUT_USD_PER_M / 1e6
    assert confirm.ephemeral
    assert "Upscale image #1: edit · 2496x1664 · high quality" in asked
    assert f"Estimated cost: ${expected:.2f}" in asked
    assert confirm.content.startswith("⬆️ Upscaling")
    assert discord_fake.message(confirm.id).components == []  # the Confirm button is gone
    _, upscale, reply = openai_fake.create_requests()
    tool = upscale["tools"][0]
    assert (tool["action"], tool["quality"], tool["size"]) == ("edit", "high", "2496x1664")
    rows = turn_rows(settings.database_path)
    assert upscale["previous_response_id"] == rows[0]["response_id"]  # an edit of that image
    assert rows[1]["parent_id"] == rows[0]["id"]
    assert read_lineage(image_attachments(upscaled)[0].data)[0] == "a lighthouse"
    assert "2496x1664 · high quality" in upscaled.content
    # the thread's own choices are unchanged: the next reply is low quality at 1536x1024 again
    assert (reply["tools"][0]["quality"], reply["tools"][0]["size"]) == ("low", "1536x1024")


def delivery_recorded(path: object) -> bool:
    """Whether a paid result waits in the durable delivery record (recorded, not yet done)."""
    conn = sqlite3.connect(path, timeout=10)  # type: ignore[arg-type]
    try:
        return conn.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0] > 0
    finally:
        conn.close()


async def test_a_button_clicked_before_the_result_is_recorded_acts_on_the_finished_turn(
    discord_fake, openai_fake, make_settings
):
    """A paid result is recorded, then shown, then its turn marked done; the last write may
    wait (e.g. for another connection's SQLite write lock): Upscale clicked in between waits for
    the turn to be done instead of calling it unknown or still running."""
    settings = make_settings(max_size="2048x2048", progress_edit_interval=60)
    openai_fake.latency = 2.0
    alice = discord_fake.add_user("alice")
    async with running(settings):
        thread = await start_conversation(discord_fake, alice, "a lighthouse", quality="low",
                                          previews=0)
        await discord_fake.wait_for(lambda: [
            r for r in turn_rows(settings.database_path)
            if r["response_id"] and r["progress_message_id"]] or None)
        # the next edit of the progress message is the result (no previews, no timed edits)
        result_posted = discord_fake.hold_next("PATCH", rf"/channels/{thread}/messages/")
        await discord_fake.wait_for(lambda: delivery_recorded(settings.database_path), 15,
                                    what="the paid result recorded")
        async with sqlite_write_lock(settings.database_path, hold_for=8):
            result_posted.set()
            [first] = await wait_results(discord_fake, thread, 1)
            [row] = turn_rows(settings.database_path)
            assert row["status"] == "running"  # shown, not yet recorded
            click = await discord_fake.click(alice, first.id, f"imagine:hq:{row['id']}")
        confirm = await discord_fake.wait_for(
            lambda: next((m for m in click.messages() if m.content), None),
            10, what="the answer to the click")
    assert "Estimated cost" in confirm.content and confirm.ephemeral
