"""The core flow through both fakes: /imagine → thread → image; replies refine; replies to an
earlier result branch; the chain is proven by the lineage the fake API writes into each image."""

from __future__ import annotations

import sqlite3

from tests.e2e.harness import (
    image_attachments,
    running,
    start_conversation,
    wait_results,
)
from tests.fakes.openai_server import read_lineage


async def test_imagine_then_two_refinements_chain(discord_fake, openai_fake, make_settings):
    settings = make_settings()
    alice = discord_fake.add_user("alice")
    async with running(settings):
        thread_id = await start_conversation(discord_fake, alice, "a red fox in the snow")
        thread = discord_fake.threads[thread_id]
        assert thread["name"] == "a red fox in the snow"
        assert thread["type"] == 11  # public thread
        first = (await wait_results(discord_fake, thread_id, 1))[0]
        await discord_fake.say(alice, thread_id, "give it a blue scarf")
        await wait_results(discord_fake, thread_id, 2)
        await discord_fake.say(alice, thread_id, "now at night")
        messages = await wait_results(discord_fake, thread_id, 3)

    lineages = [read_lineage(image_attachments(m)[0].data) for m in messages]
    assert lineages == [
        ["a red fox in the snow"],
        ["a red fox in the snow", "give it a blue scarf"],
        ["a red fox in the snow", "give it a blue scarf", "now at night"],
    ]
    requests = openai_fake.create_requests()
    assert len(requests) == 3
    assert "previous_response_id" not in requests[0]
    assert requests[1]["previous_response_id"] == requests[1]["previous_response_id"]
    stored = list(openai_fake.responses)
    assert requests[2]["previous_response_id"] in stored
    assert "a red fox in the snow" in first.content
    db = sqlite3.connect(settings.database_path)
    rows = db.execute("SELECT status, parent_id, response_id FROM turns ORDER BY id").fetchall()
    assert [r[0] for r in rows] == ["done", "done", "done"]
    assert rows[1][1] == 1 and rows[2][1] == 2
    assert requests[1]["previous_response_id"] == rows[0][2]
    assert requests[2]["previous_response_id"] == rows[1][2]
