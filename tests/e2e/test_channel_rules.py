"""Per-channel rules, end to end through both fakes: `/imagine-settings channel-rules` sets a
channel's highest quality, largest size, previews and whether images may be made there, on top of
the server's settings; the gate applies them to /imagine and to replies in that channel's threads
(a thread follows its parent); /help and /usage show the rules of the channel they are used in."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.harness import answer, quiet, running, start_conversation, turn_rows, wait_results
from tests.fakes.discord_server import FakeDiscord

pytestmark = pytest.mark.both_backends


def tool_of(request: dict[str, Any]) -> dict[str, Any]:
    """The image_generation tool of a Responses API create request."""
    return next(tool for tool in request["tools"] if tool["type"] == "image_generation")


async def channel_rules(fake: FakeDiscord, admin: Any, channel_id: int, **rules: Any) -> str:
    inter = await fake.slash(admin, fake.text_channel_id, "imagine-settings channel-rules",
                             {"channel": channel_id, **rules})
    reply = await answer(fake, inter)
    assert reply.ephemeral
    return reply.content


async def test_a_channels_quality_and_size_bind_imagine_and_its_threads(
    discord_fake, openai_fake, make_settings
):
    admin = discord_fake.add_user("admin", permissions=["manage_guild"])
    alice = discord_fake.add_user("alice")
    here, elsewhere = discord_fake.text_channel_id, discord_fake.other_channel_id
    async with running(make_settings(default_quality="high", default_size="1536x1024")):
        saved = await channel_rules(discord_fake, admin, here, max_quality="low",
                                    max_size="1024x1024")
        assert "up to low quality" in saved and "size up to 1024x1024" in saved

        refused = await discord_fake.slash(alice, here, "imagine",
                                           {"prompt": "a fox", "quality": "high"})
        assert "In this channel, quality goes up to `low`." in (await answer(discord_fake, refused)).content
        refused = await discord_fake.slash(alice, here, "imagine",
                                           {"prompt": "a fox", "size": "1536x1024"})
        assert "In this channel, images may be up to 1024x1024 pixels" in (
            await answer(discord_fake, refused)).content
        assert openai_fake.create_requests() == []

        # the server's defaults (high, 1536x1024) come down to the channel's maxima
        thread = await start_conversation(discord_fake, alice, "a fox")
        await wait_results(discord_fake, thread, 1)
        tool = tool_of(openai_fake.create_requests()[-1])
        assert (tool["quality"], tool["size"]) == ("low", "1024x1024")

        # in the channel's thread, the channel's rules still apply (the thread's parent)
        refine = await discord_fake.slash(alice, thread, "refine",
                                          {"prompt": "make it red", "quality": "medium"})
        assert "In this channel, quality goes up to `low`." in (await answer(discord_fake, refine)).content

        # another channel keeps the server's rules
        other = await start_conversation(discord_fake, alice, "a cat", in_channel=elsewhere,
                                         quality="high")
        await wait_results(discord_fake, other, 1)
        tool = tool_of(openai_fake.create_requests()[-1])
        assert (tool["quality"], tool["size"]) == ("high", "1536x1024")
        await quiet(discord_fake, openai_fake)
    assert len(openai_fake.create_requests()) == 2


async def test_previews_off_in_a_channel(discord_fake, openai_fake, make_settings):
    admin = discord_fake.add_user("admin", permissions=["manage_guild"])
    alice = discord_fake.add_user("alice")
    async with running(make_settings()):
        await channel_rules(discord_fake, admin, discord_fake.text_channel_id, previews="off")
        thread = await start_conversation(discord_fake, alice, "a fox", previews=3)
        [result] = await wait_results(discord_fake, thread, 1)
        assert tool_of(openai_fake.create_requests()[-1]).get("partial_images", 0) == 0
        assert all(a.filename != "preview.jpg" for v in result.edits for a in v.attachments)

        other = await start_conversation(discord_fake, alice, "a cat", previews=2,
                                         in_channel=discord_fake.other_channel_id)
        await wait_results(discord_fake, other, 1)
        assert tool_of(openai_fake.create_requests()[-1])["partial_images"] == 2


async def test_generation_off_in_a_channel(discord_fake, openai_fake, make_settings):
    """Off: /imagine is refused there (moderators excepted) and so are replies in the threads
    it opened before; on: a channel the server's allowed list leaves out is allowed."""
    admin = discord_fake.add_user("admin", permissions=["manage_guild"])
    mod = discord_fake.add_user("mod", permissions=["manage_messages"])
    alice = discord_fake.add_user("alice")
    here, elsewhere = discord_fake.text_channel_id, discord_fake.other_channel_id
    async with running(make_settings()):
        thread = await start_conversation(discord_fake, alice, "a fox")
        await wait_results(discord_fake, thread, 1)
        await channel_rules(discord_fake, admin, here, imagine_allowed="off")
        threads_before = set(discord_fake.threads)

        refused = await discord_fake.slash(alice, here, "imagine", {"prompt": "a cat"})
        reply = await answer(discord_fake, refused)
        assert reply.ephemeral and reply.content == "Image generation is turned off in this channel."
        refine = await discord_fake.slash(alice, thread, "refine", {"prompt": "make it red"})
        assert (await answer(discord_fake, refine)).content == \
            "Image generation is turned off in this channel."
        assert set(discord_fake.threads) == threads_before

        moderated = await start_conversation(discord_fake, mod, "a moderator's owl")
        await wait_results(discord_fake, moderated, 1)

        # the server allows only `here`; a rule turns `elsewhere` on
        await answer(discord_fake, await discord_fake.slash(
            admin, here, "imagine-settings access", {"channel": here}))
        await channel_rules(discord_fake, admin, here, reset=True)
        refused = await discord_fake.slash(alice, elsewhere, "imagine", {"prompt": "a cat"})
        assert (await answer(discord_fake, refused)).content == \
            "Image generation isn't enabled in this channel."
        await channel_rules(discord_fake, admin, elsewhere, imagine_allowed="on")
        allowed = await start_conversation(discord_fake, alice, "a cat", in_channel=elsewhere)
        await wait_results(discord_fake, allowed, 1)
        await quiet(discord_fake, openai_fake)
    assert len(openai_fake.create_requests()) == 3  # alice's fox, the owl, the allowed cat


async def test_help_usage_and_settings_show_the_channels_rules(
    discord_fake, openai_fake, make_settings
):
    admin = discord_fake.add_user("admin", permissions=["manage_guild"])
    alice = discord_fake.add_user("alice")
    wang = discord_fake.add_user("wang", locale="zh-CN")
    here, elsewhere = discord_fake.text_channel_id, discord_fake.other_channel_id
    async with running(make_settings()):
        await channel_rules(discord_fake, admin, here, max_quality="medium", previews="off")
        thread = await start_conversation(discord_fake, alice, "a fox")
        await wait_results(discord_fake, thread, 1)

        for channel in (here, thread):  # in a thread: its parent's rules
            shown = await answer(discord_fake, await discord_fake.slash(alice, channel, "help", {}))
            assert "**In this channel**: up to medium quality, previews off" in shown.content
        shown = await answer(discord_fake, await discord_fake.slash(alice, elsewhere, "help", {}))
        assert "In this channel" not in shown.content
        usage = await answer(discord_fake, await discord_fake.slash(alice, thread, "usage", {}))
        assert "In this channel: up to medium quality, previews off" in usage.content

        zh = await answer(discord_fake, await discord_fake.slash(wang, here, "help", {}))
        assert "**本频道规则**：最高中等质量, 关闭预览" in zh.content
        zh = await answer(discord_fake, await discord_fake.slash(wang, here, "usage", {}))
        assert "本频道规则：最高中等质量, 关闭预览" in zh.content

        show = await answer(discord_fake, await discord_fake.slash(
            admin, here, "imagine-settings show", {}))
        assert f"• Channel rules: \n  <#{here}>: up to medium quality, previews off" in show.content


async def test_a_channel_turned_off_while_a_turn_waits_stops_it_before_it_is_billed(
    discord_fake, openai_fake, make_settings
):
    settings = make_settings(per_user_concurrent=1, max_concurrent_generations=1)
    admin = discord_fake.add_user("admin", permissions=["manage_guild"])
    painter = discord_fake.add_user("painter")
    openai_fake.latency = 1.5
    async with running(settings):
        first = await start_conversation(discord_fake, painter, "first")
        second = await start_conversation(discord_fake, painter, "second")  # waits behind it
        await discord_fake.wait_for(lambda: statuses(settings) == ["running", "queued"] or None)
        await channel_rules(discord_fake, admin, discord_fake.text_channel_id,
                            imagine_allowed="off")
        await wait_results(discord_fake, first, 1)  # already running: it finishes
        await discord_fake.wait_for(lambda: statuses(settings) == ["done", "failed"] or None)
        await discord_fake.wait_for(lambda: any(
            "turned off in this channel" in m.content for m in discord_fake.messages(second)))
    rows = turn_rows(settings)
    assert rows[1]["error_kind"] == "not_allowed" and rows[1]["cost_usd"] == 0
    assert len(openai_fake.create_requests()) == 1  # the second never reached the API


def statuses(settings: Any) -> list[str]:
    return [row["status"] for row in turn_rows(settings)]
