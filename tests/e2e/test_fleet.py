"""A fleet: two `python -m bot` processes (shards 0 and 1 of 2) on one PostgreSQL, one fake
Discord and one fake Responses API. The fake Discord has a server on each shard; each process
gets only its own server's events and interactions, and conversations in both servers are taken
by whichever process claims them; the fleet-wide limit holds at the API; when the process running
a turn is SIGKILLed, the other one posts that result exactly once after the lease expires,
without generating it again."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import SECRET_KEY, SECRET_TOKEN
from tests.e2e.harness import BotProcess, results, start_conversation, wait_results
from tests.fakes.discord_gateway import GatewaySession
from tests.fakes.discord_server import FakeDiscord, FakeGuild
from tests.fakes.openai_server import FakeOpenAI
from tests.pg import fresh_database, query

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

LEASE = 2.0


def fleet_env(discord: FakeDiscord, openai: FakeOpenAI, url: str, shard: int) -> dict[str, str]:
    return {
        "DISCORD_TOKEN": SECRET_TOKEN,
        "OPENAI_API_KEY": SECRET_KEY,
        "OPENAI_BASE_URL": openai.base_url,
        "DISCORD_API_BASE": discord.api_base,
        "DISCORD_GATEWAY_URL": discord.gateway_url,
        "DATABASE_URL": url,
        "FLEET_QUEUE": "true",
        "LEASE_SECONDS": str(LEASE),
        "MAX_CONCURRENT_GENERATIONS": "2",
        "SHARD_COUNT": "2",
        "SHARD_IDS": str(shard),
        "PROGRESS_EDIT_INTERVAL": "0.05",
        "RETRY_BASE_DELAY": "0.01",
        "SHUTDOWN_GRACE_SECONDS": "1",
        "LOG_LEVEL": "DEBUG",
    }


async def quiet(fake: FakeDiscord, settle: float = 1.0, timeout: float = 15.0) -> None:
    """Wait until the fake Discord has received no request for `settle` seconds."""
    deadline = time.monotonic() + timeout
    seen = len(fake.request_log)
    calm_since = time.monotonic()
    while time.monotonic() - calm_since < settle:
        assert time.monotonic() < deadline, "the bots never went quiet"
        await asyncio.sleep(0.1)
        if len(fake.request_log) != seen:
            seen, calm_since = len(fake.request_log), time.monotonic()


def dispatched(session: GatewaySession, event: str) -> list[dict]:
    """The payloads of `event` that the fake sent to this gateway session, in order."""
    frames = (json.loads(text) for _, text in session.buffer)
    return [f["d"] for f in frames if f["t"] == event]


def shard_of_interaction(fake: FakeDiscord, interaction_id: int) -> int:
    """The shard whose session the fake delivered an interaction to (exactly one)."""
    shards = [s.shard_id for s in fake.sessions
              if any(int(d["id"]) == interaction_id for d in dispatched(s, "INTERACTION_CREATE"))]
    assert len(shards) == 1, shards
    return shards[0]


def check_each_shard_got_its_server(fake: FakeDiscord, server: dict[int, FakeGuild]) -> None:
    shards = sorted(tuple(p["shard"]) for p in fake.identify_payloads)
    assert shards == [(0, 2), (1, 2)]
    for session in fake.sessions:  # each process was given only its server
        mine = str(server[session.shard_id].id)
        assert [g["id"] for g in dispatched(session, "READY")[0]["guilds"]] == [mine]
        assert [g["id"] for g in dispatched(session, "GUILD_CREATE")] == [mine]


async def conversations_in_both(fake: FakeDiscord, home: FakeGuild,
                                away: FakeGuild) -> dict[int, FakeGuild]:
    """Four conversations, alternately in each server: thread -> its server."""
    guild_of_thread: dict[int, FakeGuild] = {}
    for n in range(4):
        guild = (home, away)[n % 2]
        user = fake.add_user(f"user{n}", guild_id=guild.id)
        thread = await start_conversation(fake, user, f"picture {n}",
                                          in_channel=guild.text_channel_id)
        guild_of_thread[thread] = guild
    # each /imagine reached the process connected to its server's shard, and only it
    for inter in fake.interactions.values():
        assert inter.guild_id is not None
        assert shard_of_interaction(fake, inter.id) == (inter.guild_id >> 22) % 2
    return guild_of_thread


def check_one_result_each_in_its_server(fake: FakeDiscord,
                                        guild_of_thread: dict[int, FakeGuild]) -> None:
    for t, guild in guild_of_thread.items():
        assert len(results(fake, t)) == 1  # exactly once
        assert fake.threads[t]["guild_id"] == str(guild.id)
        assert fake.threads[t]["parent_id"] == str(guild.text_channel_id)
        assert results(fake, t)[0].guild_id == guild.id


async def test_two_processes_share_the_queue_and_survive_a_kill(
    discord_fake: FakeDiscord, openai_fake: FakeOpenAI, tmp_path: Path
) -> None:
    openai_fake.latency = 3.0  # generations overlap, and one is still running when we kill
    home = discord_fake.guild
    away = discord_fake.add_guild("Second Guild", shard=(1 - home.shard(2), 2))
    # Topics → Gateway → Sharding: shard_id = (guild_id >> 22) % num_shards
    server: dict[int, FakeGuild] = {(g.id >> 22) % 2: g for g in (home, away)}
    assert sorted(server) == [0, 1]  # a server on each shard
    async with fresh_database("imagine_fleet_e2e") as url:
        procs = {shard: BotProcess(fleet_env(discord_fake, openai_fake, url, shard),
                                   log_path=str(tmp_path / f"shard{shard}.log"))
                 for shard in (0, 1)}
        try:
            for proc in procs.values():
                await proc.start(discord_fake)
            check_each_shard_got_its_server(discord_fake, server)
            guild_of_thread = await conversations_in_both(discord_fake, home, away)

            # Every request recorded, and both generations under way (their response ids
            # stored): a process that dies now has lost nothing that was asked of it.
            def running_turn() -> list[dict] | None:
                rows = query(url, "SELECT t.id, t.conversation_id, t.status, t.response_id, "
                                  "l.owner FROM turns t LEFT JOIN fleet_leases l "
                                  "ON l.turn_id = t.id ORDER BY t.id")
                running = [r for r in rows if r["status"] == "running"]
                started = len(running) == 2 and all(r["response_id"] for r in running)
                return running if len(rows) == 4 and started else None

            victim_row = (await discord_fake.wait_for(running_turn, 20, what="a running turn"))[0]
            pid = int(victim_row["owner"].split(":")[1])
            victim_shard = next(s for s, p in procs.items() if p.proc and p.proc.pid == pid)
            victim, survivor_shard = procs[victim_shard], 1 - victim_shard
            assert victim.proc is not None
            killed_at = time.monotonic()
            victim.proc.send_signal(signal.SIGKILL)
            await victim.proc.wait()

            thread = victim_row["conversation_id"]
            await wait_results(discord_fake, thread, 1, timeout=30)
            taken_over_after = time.monotonic() - killed_at
            for other_thread in guild_of_thread:
                await wait_results(discord_fake, other_thread, 1, timeout=30)
            await quiet(discord_fake)

            check_one_result_each_in_its_server(discord_fake, guild_of_thread)
            assert len(openai_fake.create_requests()) == 4  # the killed turn was resumed by id
            assert openai_fake.generations == 4
            assert openai_fake.peak_in_flight == 2  # MAX_CONCURRENT_GENERATIONS, fleet-wide
            assert taken_over_after >= LEASE * 0.5  # not before the dead process's lease ran out
            rows = query(url, "SELECT conversation_id, guild_id, status FROM turns ORDER BY id")
            assert [r["status"] for r in rows] == ["done"] * 4
            assert {r["conversation_id"]: r["guild_id"] for r in rows} == {
                t: g.id for t, g in guild_of_thread.items()
            }  # turns of both servers, run by the fleet
            survivor_log = (tmp_path / f"shard{survivor_shard}.log").read_text()
            assert re.search(rf"claimed turn {victim_row['id']}\b", survivor_log)
        finally:
            for proc in procs.values():
                await proc.stop()


async def test_a_paid_result_discord_refused_is_posted_by_the_process_that_takes_over(
    discord_fake: FakeDiscord, openai_fake: FakeOpenAI, tmp_path: Path
) -> None:
    """Discord fails every message send and edit as a turn's image arrives, and the process
    holding the turn is SIGKILLed while it waits to post it again. Discord comes back: the other
    process takes the turn over when the lease runs out and posts the recorded image, once,
    without generating again (in foreground mode the generation could not be resumed)."""
    openai_fake.latency = 1.0
    async with fresh_database("imagine_fleet_delivery") as url:
        procs = {shard: BotProcess({**fleet_env(discord_fake, openai_fake, url, shard),
                                    "BACKGROUND_RESPONSES": "false",
                                    "DEFAULT_PARTIAL_IMAGES": "0"},
                                   log_path=str(tmp_path / f"shard{shard}.log"))
                 for shard in (0, 1)}
        try:
            for proc in procs.values():
                await proc.start(discord_fake)
            alice = discord_fake.add_user("alice")
            thread = await start_conversation(discord_fake, alice, "a comet over the sea")

            def holder() -> str | None:
                rows = query(url, "SELECT t.response_id, t.progress_message_id, l.owner "
                                  "FROM turns t LEFT JOIN fleet_leases l ON l.turn_id = t.id")
                ready = rows and rows[0]["response_id"] and rows[0]["progress_message_id"]
                return rows[0]["owner"] if ready and rows[0]["owner"] else None

            owner = await discord_fake.wait_for(holder, 20, what="the turn under way")
            for method, path in (("POST", r"/channels/\d+/messages$"),
                                 ("PATCH", r"/channels/\d+/messages/\d+$")):
                discord_fake.outage(method, path, 120.0)
            await discord_fake.wait_for(
                lambda: any(r.method == "PATCH" and r.files and r.status == 503
                            for r in discord_fake.request_log), 15,
                what="the result's upload to be refused")
            pid = int(owner.split(":")[1])
            victim = next(p for p in procs.values() if p.proc and p.proc.pid == pid)
            assert victim.proc is not None
            victim.proc.send_signal(signal.SIGKILL)
            await victim.proc.wait()
            discord_fake.fail_rules.clear()  # Discord is back

            [shown] = await wait_results(discord_fake, thread, 1, timeout=30)
            await quiet(discord_fake)
            assert len(results(discord_fake, thread)) == 1
            assert len(openai_fake.create_requests()) == 1
            assert openai_fake.generations == 1
            [row] = query(url, "SELECT status, message_ids FROM turns")
            assert row["status"] == "done" and json.loads(row["message_ids"]) == [shown.id]
        finally:
            for proc in procs.values():
                await proc.stop()
