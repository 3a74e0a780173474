"""The fleet run of ``python -m bench.run --fleet``: N conversations over two ``python -m bot``
processes (shards 0 and 1 of 2) on one PostgreSQL with the fleet-wide queue, against one fake
Discord (two gateway shards) and one fake Responses API; measured like a one-process bot run,
with CPU and database round trips summed over both processes.

The fake Discord has two servers, one on each shard (``(guild_id >> 22) % 2``), and the users
alternate between them, so each process receives the interactions of its own server (as in
``tests/e2e/test_fleet.py``); both processes claim turns from the shared queue and post results
over REST.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import TYPE_CHECKING, Any

from bench.procs import Child, cpu_seconds, memory_kb

if TYPE_CHECKING:
    from bench.run import Bench, _BotRun

SHARDS = (0, 1)
LEASE_SECONDS = "30"


async def run_fleet(bench: Bench, n: int, server_url: str) -> dict[str, Any]:
    """Two bot processes on a fresh PostgreSQL database; the run's figures."""
    from bench.run import _BotRun
    from tests.pg import fresh_database

    os.environ["TEST_DATABASE_URL"] = server_url  # where tests.pg creates the database
    tag = f"fleet-{n}"
    oa, base_url, oa_ctl = await bench.start_openai(tag)
    dc, api_base, gateway_url, dc_ctl = await bench.start_discord(tag, n, guilds=len(SHARDS))
    runs = [_BotRun("bot", n, f"{tag}-shard{s}", bench.workdir, False) for s in SHARDS]
    for run in runs:
        run.oa, run.dc, run.oa_ctl, run.dc_ctl = oa, dc, oa_ctl, dc_ctl
    cwd = bench.workdir / "cwd"
    cwd.mkdir(exist_ok=True)
    try:
        async with fresh_database("imagine_bench_fleet") as url:
            for shard, run in zip(SHARDS, runs, strict=True):
                env = bench.bot_env(run, base_url, api_base, gateway_url)
                env.pop("DATABASE_PATH")
                env.update(DATABASE_URL=url, FLEET_QUEUE="true", SHARD_COUNT="2",
                           SHARD_IDS=str(shard), LEASE_SECONDS=LEASE_SECONDS, BENCH_COUNT_PG="1")
                run.bot, _ = await bench.procs.start(run.tag, ["-m", "bot"], env=env, cwd=cwd,
                                                     ready_prefix=None)
            xacts0 = await _transactions(server_url, url)
            await _measure(bench, runs)
            xacts = await _transactions(server_url, url) - xacts0
            for run in runs:
                assert run.bot is not None
                run.exit_code = await bench.procs.stop(run.bot, grace=30.0)
                run.bot = None
    finally:
        for run in runs:
            if run.bot is not None:
                await bench.procs.stop(run.bot)
        await bench.procs.stop(dc)
        await bench.procs.stop(oa)
    return _figures(runs, xacts)


async def _wait_both(bench: Bench, runs: list[_BotRun], timeout: float = 120.0) -> None:
    """Both shards identified and the commands registered."""
    from bench.run import get_json

    assert bench.http is not None
    deadline = time.monotonic() + timeout
    while True:
        for run in runs:
            if run.bot is None or not run.bot.alive:
                raise RuntimeError(f"{run.tag} exited (see its log in {bench.workdir})")
        state = await get_json(bench.http, f"{runs[0].dc_ctl}/state")
        if state["sessions"] >= len(runs) and "imagine" in state["commands"]:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the fleet was not ready after {timeout}s")
        await asyncio.sleep(0.2)


async def _measure(bench: Bench, runs: list[_BotRun]) -> None:
    """Like `Bench.measure`, over both processes: dispatch, wait for every result, settle."""
    from bench.run import get_json, post_json

    assert bench.http is not None
    first = runs[0]
    await _wait_both(bench, runs)
    await asyncio.sleep(2.0)  # READY → GUILD_CREATE → on_ready on both
    bots: list[Child] = [r.bot for r in runs if r.bot is not None]
    for run, bot in zip(runs, bots, strict=True):
        run.rss_idle = run.rss_max = memory_kb(bot.pid).get("VmRSS", 0)
        run.cpu0 = cpu_seconds(bot.pid) or 0.0
    fakes0 = first.fakes_cpu()
    dispatch = await post_json(bench.http, f"{first.dc_ctl}/imagine",
                               {"prompt_format": _prompt(), "options": {}})
    if dispatch.get("errors"):
        raise RuntimeError(f"dispatch failed: {dispatch['errors']}")
    deadline = time.monotonic() + bench.run_timeout(first.n)
    while True:
        first.status = await get_json(bench.http, f"{first.dc_ctl}/status")
        for run, bot in zip(runs, bots, strict=True):
            run.rss_max = max(run.rss_max, memory_kb(bot.pid).get("VmRSS", 0))
        if first.status["done"] >= first.n or not all(b.alive for b in bots):
            break
        if time.monotonic() > deadline:
            first.timed_out = True
            break
        await asyncio.sleep(0.2)
    for run, bot in zip(runs, bots, strict=True):
        run.cpu_done = cpu_seconds(bot.pid) or run.cpu0
    await asyncio.sleep(bench.args.settle)
    for run, bot in zip(runs, bots, strict=True):
        run.cpu_end = cpu_seconds(bot.pid) or run.cpu_done
        run.mem = memory_kb(bot.pid)
    first.fakes_cpu_s = first.fakes_cpu() - fakes0
    first.details = await get_json(bench.http, f"{first.dc_ctl}/results")
    first.timings = await get_json(bench.http, f"{first.oa_ctl}/timings")
    first.api_log = await get_json(bench.http, f"{first.oa_ctl}/requests")


def _prompt() -> str:
    from bench.run import PROMPT

    return PROMPT


async def _transactions(server_url: str, url: str) -> int:
    """Committed plus rolled-back transactions of the run's database, as the server counts them
    (`pg_stat_database`; the statistics collector reports them within about a second)."""
    import asyncpg

    await asyncio.sleep(1.0)
    name = url.rsplit("/", 1)[1].split("?")[0]
    conn = await asyncpg.connect(server_url)
    try:
        row = await conn.fetchrow(
            "SELECT xact_commit + xact_rollback AS n FROM pg_stat_database WHERE datname = $1",
            name,
        )
    finally:
        await conn.close()
    return int(row["n"]) if row else 0


def _figures(runs: list[_BotRun], xacts: int) -> dict[str, Any]:
    """The first run carries what the fakes saw; CPU, memory and round trips add up both."""
    from bench.run import r2, read_trips

    first = runs[0]
    turns = first.details["turns"]
    done = [t for t in turns if t["done"] is not None]
    first_dispatch = min(t["dispatched"] for t in turns)
    last_done = max((t["done"] for t in done), default=None)
    per_done = max(1, len(done))
    cpu = sum(r.cpu_end - r.cpu0 for r in runs)
    trips = 0
    for run in runs:
        samples = read_trips(run.agent_out)
        before = [c for at, c in samples if at <= first_dispatch]
        trips += (samples[-1][1] if samples else 0) - (before[-1] if before else 0)
    result: dict[str, Any] = {"system": "fleet", "n": first.n, "processes": len(runs)}
    result.update(first._time_figures(done, first_dispatch, last_done))
    result.update({
        "cpu_ms_per_turn": r2(cpu * 1000 / per_done, 1) if done else None,
        "cpu_s_per_process": [r2(r.cpu_end - r.cpu0, 2) for r in runs],
        "peak_rss_mb_per_process": [
            r2(max(r.mem.get("VmHWM", 0), r.rss_max) / 1024, 1) for r in runs
        ],
        "db_round_trips_per_turn": r2(trips / per_done, 2) if done else None,
        "db_transactions_per_turn_server": r2(xacts / per_done, 2) if done else None,
        "exit_codes": [r.exit_code for r in runs],
        "fakes_cpu_s": r2(first.fakes_cpu_s, 2),
    })
    result.update(first._request_figures(turns))
    return result
