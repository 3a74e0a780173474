"""/help explains the commands, threads and this server's limits in the reader's language; a
server the bot joins is greeted once (remembered across restarts and re-invites)."""

from __future__ import annotations

import re

from tests.e2e.harness import answer, running


async def test_help_lists_commands_as_mentions_and_the_servers_limits(
    discord_fake, make_settings
):
    settings = make_settings(user_daily_images=5, guild_daily_spend_usd=2.5)
    alice = discord_fake.add_user("alice")
    li = discord_fake.add_user("li", locale="zh-CN")
    channel = discord_fake.text_channel_id
    async with running(settings):
        english = await answer(discord_fake, await discord_fake.slash(alice, channel, "help"))
        chinese = await answer(discord_fake, await discord_fake.slash(li, channel, "help"))
    ids = {c["name"]: c["id"] for c in discord_fake.commands[None]}
    assert english.ephemeral
    assert f"</imagine:{ids['imagine']}>" in english.content
    assert f"</refine:{ids['refine']}>" in english.content
    assert "5 per person per day" in english.content
    assert "$2.50 per day" in english.content
    assert "reply to an earlier image to branch" in english.content
    # Chinese: the same clickable mentions (the client shows them as /画图), Chinese prose
    assert f"</imagine:{ids['imagine']}>" in chinese.content
    assert "每人每天 5 张" in chinese.content
    assert "子区与分支" in chinese.content
    # animation, SVG, zoom out / pan, and what this server's image model takes
    assert "`format:gif` (`frames`, `frame_ms`) animates" in english.content
    assert "**Zoom out**, **Pan ⬅➡⬆⬇**, **Vary region**" in english.content
    assert "Image model here: `gpt-image-2`." in english.content
    assert "生成动图" in chinese.content and "局部重绘" in chinese.content


async def test_a_server_is_welcomed_once_when_the_bot_joins(discord_fake, make_settings):
    settings = make_settings()
    channel = discord_fake.text_channel_id  # the guild's system channel
    async with running(settings):
        discord_fake.readd_bot()
        welcome = await discord_fake.wait_for(
            lambda: next((m for m in discord_fake.messages(channel)
                          if "Thanks for adding me" in m.content), None),
            10, what="a welcome message",
        )
        discord_fake.readd_bot()  # kicked and invited again: not greeted a second time
        marker = await discord_fake.slash(discord_fake.add_user("bob"), channel, "help")
        await answer(discord_fake, marker)
    async with running(settings):  # nor after a restart
        discord_fake.readd_bot()
        marker = await discord_fake.slash(discord_fake.add_user("carol"), channel, "help")
        await answer(discord_fake, marker)
    greetings = [m for m in discord_fake.messages(channel) if "Thanks for adding me" in m.content]
    assert greetings == [welcome]
    assert re.search(r"</imagine-settings limits:\d+>", welcome.content)
    assert "No limits are set." in welcome.content
    assert welcome.mentions == []


async def test_two_quick_invites_are_greeted_once(discord_fake, make_settings):
    """Kicked and invited again while the first greeting is still being posted: one greeting."""
    channel = discord_fake.text_channel_id
    async with running(make_settings()):
        discord_fake.readd_bot()
        discord_fake.readd_bot()
        await discord_fake.wait_for(
            lambda: any("Thanks for adding me" in m.content for m in discord_fake.messages(channel)),
            10, what="a welcome message")
        marker = await discord_fake.slash(discord_fake.add_user("bob"), channel, "help")
        await answer(discord_fake, marker)  # both GUILD_CREATEs were handled before this
    greetings = [m for m in discord_fake.messages(channel) if "Thanks for adding me" in m.content]
    assert len(greetings) == 1
