"""The core flow through both fakes: /imagine → thread → image; replies refine; replies to an
earlier result branch; the chain is proven by the lineage the fake API writes into each image."""

from __future__ import annotations

import pytest

from tests.e2e.harness import (
    image_attachments,
    results,
    running,
    start_conversation,
    turn_rows,
    wait_results,
)
from tests.fakes.openai_server import read_lineage

pytestmark = pytest.mark.both_backends


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
    stored = list(openai_fake.responses)  # the responses the API made, in the order it made them
    assert len(stored) == 3
    assert requests[1]["previous_response_id"] == stored[0]
    assert requests[2]["previous_response_id"] == stored[1]
    assert "a red fox in the snow" in first.content
    rows = [(r["status"], r["parent_id"], r["response_id"]) for r in turn_rows(settings)]
    assert [r[0] for r in rows] == ["done", "done", "done"]
    assert rows[1][1] == 1 and rows[2][1] == 2
    assert requests[1]["previous_response_id"] == rows[0][2]
    assert requests[2]["previous_response_id"] == rows[1][2]


async def test_the_interaction_is_acknowledged_and_points_to_the_thread(
    discord_fake, openai_fake, make_settings
):
    alice = discord_fake.add_user("alice")
    async with running(make_settings()):
        interaction = await discord_fake.slash(
            alice, discord_fake.text_channel_id, "imagine", {"prompt": "x" * 150}
        )
        thread_id = await discord_fake.wait_for(lambda: next(iter(discord_fake.threads), None))
        await wait_results(discord_fake, thread_id, 1)
    assert interaction.callbacks[0]["type"] == 5  # deferred, well within 3 s
    assert not interaction.errors
    # A type-5 callback response carries no message (Interaction Callback Response): the thread's
    # starter message was read back with GET @original, as against the real Discord.
    original_reads = [
        r for r in discord_fake.request_log
        if r.method == "GET" and r.path.endswith(f"/{interaction.token}/messages/@original")
    ]
    assert len(original_reads) == 1 and original_reads[0].status == 200
    assert original_reads[0].response["id"] == str(thread_id)
    assert interaction.original is not None and f"<#{thread_id}>" in interaction.original.content
    assert "Reply in this thread to refine" in interaction.original.content  # how to go on
    name = discord_fake.threads[thread_id]["name"]
    assert len(name) <= 100 and name.endswith("…")


async def test_configured_gateway_wins_over_the_one_discord_advertises(
    discord_fake, openai_fake, make_settings
):
    """Behind a REST proxy, /gateway/bot still names Discord's gateway; DISCORD_GATEWAY_URL must
    win, while the shard count still comes from Discord."""
    discord_fake.advertised_gateway_url = "ws://127.0.0.1:9/unreachable"
    discord_fake.recommended_shards = 2
    alice = discord_fake.add_user("alice")
    async with running(make_settings()) as bot:
        assert bot.shard_count == 2
        thread_id = await start_conversation(discord_fake, alice, "two shards")
        await wait_results(discord_fake, thread_id, 1)
    assert {p["shard"][1] for p in discord_fake.identify_payloads} == {2}


async def test_a_fleet_process_connects_only_its_shards(discord_fake, openai_fake, make_settings):
    """SHARD_IDS: one process of a fleet IDENTIFYs only the shards it was given, out of the
    fleet's SHARD_COUNT; the server on its shard is served by it."""
    guild_shard = (discord_fake.guild_id >> 22) % 2  # Discord's rule, as the fake routes events
    alice = discord_fake.add_user("alice")
    async with running(make_settings(shard_count=2, shard_ids=[guild_shard])):
        thread_id = await start_conversation(discord_fake, alice, "one shard of two")
        await wait_results(discord_fake, thread_id, 1)
    assert [p["shard"] for p in discord_fake.identify_payloads] == [[guild_shard, 2]]


async def test_the_image_is_asked_for_while_the_thread_is_still_being_created(
    discord_fake, openai_fake, make_settings
):
    """The image request first: the fake Discord keeps the thread's creation unanswered until
    the create request has reached the fake API (a bot that waited for its thread and progress
    message before asking would never get there). Only then are the thread and the progress
    message made, and that message becomes the result, once."""
    settings = make_settings()
    alice = discord_fake.add_user("alice")
    thread_created = discord_fake.hold_next("POST", r"^/channels/\d+/messages/\d+/threads$")
    async with running(settings):
        await discord_fake.slash(alice, discord_fake.text_channel_id, "imagine",
                                 {"prompt": "a paper boat"})
        await discord_fake.wait_for(openai_fake.create_requests, what="the create request")
        posted_meanwhile = [r.path for r in discord_fake.request_log
                            if r.method == "POST" and r.path.endswith("/messages")]
        threads_meanwhile = dict(discord_fake.threads)
        thread_created.set()
        thread_id = await discord_fake.wait_for(lambda: next(iter(discord_fake.threads), None),
                                                what="the thread")
        result = (await wait_results(discord_fake, thread_id, 1))[0]
    assert posted_meanwhile == [] and threads_meanwhile == {}
    row = turn_rows(settings)[0]
    assert (row["status"], row["progress_message_id"]) == ("done", result.id)
    assert len(results(discord_fake, thread_id)) == 1
    quoting = [m.id for m in discord_fake.messages(thread_id) if m.author_id == discord_fake.bot_id
               and m.id != thread_id and m.content.startswith("> a paper boat")]
    assert quoting == [result.id]  # no second progress message beside the one that became it
    assert read_lineage(image_attachments(result)[0].data) == ["a paper boat"]
    assert len(openai_fake.create_requests()) == 1
