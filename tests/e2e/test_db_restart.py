"""PostgreSQL restarted while turns render, under a fleet of one and of two `python -m bot`
processes: every turn is shown once and generated once, interactions that arrive while the
database is down are answered within Discord's 3 s (a clear "try again in a moment" at worst),
and the connection pool and the LISTEN connection recover so that new turns run afterwards.

The server is the test's own (tests/pg_server.py), never the shared one."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from tests.e2e.harness import BotProcess, answer, results, start_conversation, wait_results
from tests.e2e.test_fleet import fleet_env, quiet
from tests.fakes.discord_server import FakeDiscord, FakeGuild
from tests.fakes.openai_server import FakeOpenAI
from tests.pg import query
from tests.pg_server import ThrowawayServer, throwaway_server

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX server programs")



async def running_turns(fake: FakeDiscord, url: str, count: int) -> None:
    """Wait until `count` turns are generating (their response ids stored)."""
    def started() -> bool:
        rows = query(url, "SELECT status, response_id FROM turns")
        return sum(1 for r in rows if r["status"] == "running" and r["response_id"]) >= count
    await fake.wait_for(started, 30, what=f"{count} running turns")


async def imagine_while_down(fake: FakeDiscord, openai: FakeOpenAI, guild: FakeGuild,
                             server: ThrowawayServer) -> str:
    """Stop the database; run /imagine while it is down; keep it down until the images that were
    rendering have come back from the API (so their results arrive with no database); start it
    again. Returns the interaction's answer."""
    await asyncio.to_thread(server.stop)
    try:
        user = fake.add_user("late-comer", guild_id=guild.id)
        inter = await fake.slash(user, guild.text_channel_id, "imagine", {"prompt": "during the outage"})
        reply = await answer(fake, inter, timeout=5)
        assert inter.response_type is not None  # the fake refuses a callback after 3 s (10062)
        await fake.wait_for(lambda: openai.generations >= 2 and openai.in_flight == 0, 30,
                            what="the images that were rendering to finish")
    finally:
        await asyncio.to_thread(server.start)
    return reply.content


@pytest.mark.parametrize("processes", [1, 2], ids=["fleet-of-one", "fleet-of-two"])
async def test_a_database_restart_loses_no_turn_and_pays_for_none_twice(
    discord_fake: FakeDiscord, openai_fake: FakeOpenAI, tmp_path: Path, processes: int
) -> None:
    openai_fake.latency = 4.0  # both turns still render while the database is down
    home = discord_fake.guild
    guilds = [home]
    if processes == 2:
        guilds.append(discord_fake.add_guild("Second Guild", shard=(1 - home.shard(2), 2)))
    async with throwaway_server() as server:
        procs = []
        for shard in range(processes):
            env = fleet_env(discord_fake, openai_fake, server.url, shard)
            env.update(SHARD_COUNT=str(processes), SHARD_IDS=str(shard))
            procs.append(BotProcess(env, log_path=str(tmp_path / f"bot{shard}.log")))
        try:
            for proc in procs:
                await proc.start(discord_fake)
            threads = []
            for n, guild in enumerate(guilds * 2):
                user = discord_fake.add_user(f"user{n}", guild_id=guild.id)
                threads.append(await start_conversation(discord_fake, user, f"picture {n}",
                                                        in_channel=guild.text_channel_id))
            await running_turns(discord_fake, server.url, 2)  # MAX_CONCURRENT_GENERATIONS, fleet-wide
            reply = await imagine_while_down(discord_fake, openai_fake, home, server)
            assert reply == "I can't reach my database for a moment. Please try again in a minute."

            for thread in threads:
                await wait_results(discord_fake, thread, 1, timeout=60)
            after = discord_fake.add_user("after", guild_id=home.id)
            fresh = await start_conversation(discord_fake, after, "after the restart")
            await wait_results(discord_fake, fresh, 1, timeout=30)
            await quiet(discord_fake)

            for thread in [*threads, fresh]:
                assert len(results(discord_fake, thread)) == 1  # shown once
            rows = query(server.url, "SELECT status FROM turns ORDER BY id")
            done = [r for r in rows if r["status"] == "done"]
            assert openai_fake.generations == len(done)  # generated once each
        finally:
            for proc in procs:
                await proc.stop()
