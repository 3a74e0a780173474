"""The bot's own upload limit comes from the server's boost tier, also in a fleet process that
does not have the server in its cache (it serves another shard) and reads it over REST."""

from __future__ import annotations

import discord

from bot.ui.posting import Poster
from tests.fakes.discord_server import FakeDiscord

MIB = 1024 * 1024


async def test_a_process_without_the_server_cached_reads_its_boost_tier() -> None:
    fake = FakeDiscord(premium_tier=2)
    await fake.start()
    saved = discord.http.Route.BASE
    discord.http.Route.BASE = fake.api_base
    client = discord.Client(intents=discord.Intents.none())
    presenter = Poster(client)
    try:
        await client.login("fleet-process-token")  # REST only: no gateway, no guild cache
        assert client.get_guild(fake.guild_id) is None
        assert await presenter.upload_limit(fake.guild_id) == 50 * MIB
        assert await presenter.upload_limit(fake.guild_id) == 50 * MIB
        reads = [r for r in fake.request_log if r.method == "GET" and r.path == f"/guilds/{fake.guild_id}"]
        assert len(reads) == 1  # kept, not read for every result
        assert await presenter.upload_limit(None) == 10 * MIB  # a DM
        assert await presenter.upload_limit(fake.guild_id + 1) == 10 * MIB  # unreadable: the least
    finally:
        await client.close()
        discord.http.Route.BASE = saved
        await fake.stop()
