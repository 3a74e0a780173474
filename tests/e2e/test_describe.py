"""/describe and Apps → Describe: three prompt ideas from the mainline model (a text-only request,
no image tool), each with a button that starts a conversation from it."""

from __future__ import annotations

from tests.e2e.harness import answer, custom_ids, image_attachments, running, wait_results
from tests.fakes.images import render_image
from tests.fakes.openai_server import read_lineage


async def test_describe_a_result_then_imagine_a_suggestion(discord_fake, openai_fake, make_settings):
    alice = discord_fake.add_user("alice")
    channel = discord_fake.text_channel_id
    async with running(make_settings()):
        await discord_fake.slash(alice, channel, "imagine", {"prompt": "a lighthouse at dusk"})
        thread_id = await discord_fake.wait_for(lambda: next(iter(discord_fake.threads), None), 10)
        [result] = await wait_results(discord_fake, thread_id, 1)
        inter = await discord_fake.message_command(alice, result.id, "Describe")
        ideas = await answer(discord_fake, inter, "Prompt ideas")
        assert ideas.ephemeral
        assert custom_ids(ideas) == ["describe:use:1", "describe:use:2", "describe:use:3"]
        assert "2. a lighthouse at dusk, watercolour painting" in ideas.content

        request = openai_fake.create_requests()[-1]
        assert "tools" not in request and "tool_choice" not in request
        content = request["input"][0]["content"]
        assert content[0]["type"] == "input_image"

        # Asked inside the conversation thread: the suggestion starts a new root there (as
        # /imagine does in a thread), not a continuation of the described image.
        await discord_fake.click(alice, ideas.id, "describe:use:2")
        started = (await wait_results(discord_fake, thread_id, 2))[1]
    assert read_lineage(image_attachments(started)[0].data) == [
        "a lighthouse at dusk, watercolour painting"
    ]
    assert "previous_response_id" not in openai_fake.create_requests()[-1]
    assert len(openai_fake.create_requests()) == 3  # first image, describe, suggested image


async def test_a_suggestion_from_the_channel_opens_a_thread(discord_fake, openai_fake, make_settings):
    alice = discord_fake.add_user("alice")
    photo = render_image(["a red kite"], width=256, height=256, fmt="png")
    async with running(make_settings()):
        inter = await discord_fake.slash(
            alice, discord_fake.text_channel_id, "describe",
            attachments={"image": ("kite.png", photo.final, "image/png")},
        )
        ideas = await answer(discord_fake, inter, "Prompt ideas")
        await discord_fake.click(alice, ideas.id, "describe:use:3")
        thread_id = await discord_fake.wait_for(
            lambda: next(iter(discord_fake.threads), None), 10, what="a thread"
        )
        [started] = await wait_results(discord_fake, thread_id, 1)
    assert discord_fake.threads[thread_id]["name"] == "a red kite, pixel art, 16 colours"
    assert read_lineage(image_attachments(started)[0].data) == ["a red kite, pixel art, 16 colours"]


async def test_describe_an_attachment_in_chinese(discord_fake, openai_fake, make_settings):
    li = discord_fake.add_user("li", locale="zh-CN")
    photo = render_image(["a cat on a windowsill"], width=256, height=256, fmt="png")
    async with running(make_settings()):
        inter = await discord_fake.slash(
            li, discord_fake.text_channel_id, "describe",
            attachments={"image": ("cat.png", photo.final, "image/png")},
        )
        ideas = await answer(discord_fake, inter, "提示词建议")
    assert "1. a cat on a windowsill, photorealistic" in ideas.content
    assert "画第 1 条" in str(ideas.components)
    request = openai_fake.create_requests()[-1]
    assert "Simplified Chinese" in request["input"][0]["content"][1]["text"]


async def test_describe_refuses_a_message_without_an_image(discord_fake, openai_fake, make_settings):
    alice = discord_fake.add_user("alice")
    async with running(make_settings()):
        said = await discord_fake.say(alice, discord_fake.text_channel_id, "just words")
        inter = await discord_fake.message_command(alice, int(said["id"]), "Describe")
        refusal = await answer(discord_fake, inter)
    assert refusal.ephemeral and "no image to describe" in refusal.content
    assert openai_fake.create_requests() == []


async def test_describe_is_priced_as_text_and_recorded(
    discord_fake, openai_fake, make_settings
):
    import json
    import sqlite3

    settings = make_settings()
    alice = discord_fake.add_user("alice")
    photo = render_image(["a red kite"], width=256, height=256, fmt="png")
    async with running(settings):
        inter = await discord_fake.slash(
            alice, discord_fake.text_channel_id, "describe",
            attachments={"image": ("kite.png", photo.final, "image/png")},
        )
        await answer(discord_fake, inter, "Prompt ideas")
    db = sqlite3.connect(settings.database_path)
    [(kind, author, usage_json, cost)] = db.execute(
        "SELECT kind, author_id, usage, cost_usd FROM text_spend").fetchall()
    tokens = json.loads(usage_json)
    assert kind == "describe" and author == int(alice["id"])
    assert tokens["text_input"] > 0 and tokens["text_output"] > 0
    assert tokens["image_input"] == tokens["image_output"] == 0
    # the mainline model's published text prices (gpt-5.5: $5 in, $30 out per 1M tokens)
    assert cost == (tokens["text_input"] * 5.0 + tokens["text_output"] * 30.0) / 1e6
    # that the caps count it: tests/unit/test_store.py::test_text_spend_counts_in_every_cap…


async def test_describe_is_refused_when_the_servers_budget_has_no_room(
    discord_fake, openai_fake, make_settings
):
    alice = discord_fake.add_user("alice")
    photo = render_image(["a red kite"], width=256, height=256, fmt="png")
    async with running(make_settings(guild_daily_spend_usd=0.01)):
        inter = await discord_fake.slash(
            alice, discord_fake.text_channel_id, "describe",
            attachments={"image": ("kite.png", photo.final, "image/png")},
        )
        refused = await answer(discord_fake, inter)
    assert refused.ephemeral
    assert "Limit reached: this server's daily budget ($0.01)" in refused.content
    assert openai_fake.create_requests() == []  # nothing was paid for
