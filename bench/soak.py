"""Soak: a fleet of two bot processes under a steady stream of turns for a quarter of an hour.

    python -m bench.soak                          # 3000 turns over 900 s → bench/results/soak.json
    python -m bench.soak --turns 120 --seconds 60 # a short check → bench/results/scratch/

The fleet of ``python -m bench.run --fleet``: two ``python -m bot`` processes (shards 0 and 1 of
2) on a fresh PostgreSQL database with the fleet-wide queue, the fake Discord (a server on each
shard) and the fake Responses API, every one in its own process on 127.0.0.1. Turns go out at a
steady rate, one every ``seconds / turns``: a new ``/imagine`` conversation, or (``--reply-share``
of the time, when a conversation is idle) its owner's reply in the thread, which refines the
image. Meanwhile each bot process's RSS (``VmRSS``) and open file descriptors (``/proc/<pid>/fd``)
are sampled every ``--sample-every`` seconds. After the last turn the run waits (at most
``--drain`` seconds) for every result, then follows every turn to the database and to the thread
that shows it. See bench/README.md ("bench.soak") for each number and tolerance.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench import soak_report
from bench.procs import REPO, memory_kb
from bench.run import (
    DEFAULT_DATABASE_URL,
    Bench,
    _BotRun,
    get_json,
    machine_facts,
    post_json,
    read_agent,
    write_report,
)

SHARDS = (0, 1)
DEFAULT_TURNS = 3000
DEFAULT_SECONDS = 900.0


def open_fds(pid: int) -> int | None:
    """How many file descriptors a process has open (entries of /proc/<pid>/fd)."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


@dataclass
class Traffic:
    """Who sends the next turn: a reply in an idle conversation (its owner has nothing pending)
    with probability ``reply_share``, else a new conversation by an idle user."""

    users: int
    reply_share: float
    rng: random.Random
    busy: dict[int, int] = field(default_factory=dict)  # user -> turns sent, not yet shown
    threads: dict[str, dict[str, int]] = field(default_factory=dict)  # id -> owner, turns sent
    pending: list[dict[str, Any]] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    forced: int = 0  # turns sent by a busy user, because no user was idle

    def next_turn(self, k: int) -> dict[str, Any]:
        idle_threads = [t for t, info in self.threads.items() if not self.busy.get(info["owner"])]
        if idle_threads and self.rng.random() < self.reply_share:
            tid = self.rng.choice(idle_threads)
            info = self.threads[tid]
            info["sent"] += 1
            return {"k": k, "kind": "reply", "user": info["owner"], "thread_id": tid,
                    "number": info["sent"], "prompt": f"soak turn {k}: add more detail, take {k}"}
        idle = [u for u in range(self.users) if not self.busy.get(u)]
        if not idle:
            self.forced += 1
        user = self.rng.choice(idle) if idle else self.rng.randrange(self.users)
        return {"k": k, "kind": "imagine", "user": user, "thread_id": None, "number": 1,
                "prompt": f"soak turn {k}: a lighthouse on a cliff at dusk, variation {k}"}

    def record(self, turn: dict[str, Any], *, delivered: bool = True) -> None:
        """A turn sent; one the fake could not deliver is counted, never waited for."""
        self.sent.append(turn)
        if delivered:
            self.busy[turn["user"]] = self.busy.get(turn["user"], 0) + 1
            self.pending.append(turn)

    def query(self) -> dict[str, list[str]]:
        """What to ask the fake about: new conversations' threads, pending threads' results."""
        return {"interactions": [t["interaction_id"] for t in self.pending
                                 if t["thread_id"] is None and t.get("interaction_id")],
                "threads": sorted({t["thread_id"] for t in self.pending if t["thread_id"]})}

    def update(self, progress: dict[str, Any]) -> None:
        still = []
        for turn in self.pending:
            if turn["thread_id"] is None:
                tid = progress["threads_of"].get(turn.get("interaction_id") or "")
                if tid is not None:
                    turn["thread_id"] = tid
                    self.threads[tid] = {"owner": turn["user"], "sent": 1}
            shown = progress["shown"].get(turn["thread_id"] or "", [])
            if turn["number"] in shown:
                self.busy[turn["user"]] -= 1
            else:
                still.append(turn)
        self.pending = still


class Soak:
    """The run: fakes, two bot processes, traffic, samples, and what everything saw."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.bench = Bench(args, workdir)
        self.bench.log = print
        self.workdir = workdir
        self.runs = [_BotRun("bot", args.users, f"soak-shard{s}", workdir, False) for s in SHARDS]
        self.samples: dict[str, list[tuple[float, int, int]]] = {r.tag: [] for r in self.runs}
        self.traffic = Traffic(args.users, args.reply_share, random.Random(args.seed))
        self.window = (0.0, 0.0)
        self.send_errors: list[str] = []
        self.slip = 0.0  # how far behind its schedule a turn went out, at most

    async def run(self) -> dict[str, Any]:
        from tests.pg import fresh_database

        os.environ["TEST_DATABASE_URL"] = self.args.database_url  # where tests.pg creates it
        bench = self.bench
        oa, base_url, oa_ctl = await bench.start_openai("soak")
        dc, api_base, gateway_url, dc_ctl = await bench.start_discord(
            "soak", self.args.users, guilds=len(SHARDS))
        self.oa_ctl, self.dc_ctl = oa_ctl, dc_ctl
        try:
            async with fresh_database("imagine_bench_soak") as url:
                for shard, run in zip(SHARDS, self.runs, strict=True):
                    run.oa, run.dc, run.oa_ctl, run.dc_ctl = oa, dc, oa_ctl, dc_ctl
                    env = bench.bot_env(run, base_url, api_base, gateway_url)
                    env.pop("DATABASE_PATH")
                    env.update(DATABASE_URL=url, FLEET_QUEUE="true", SHARD_COUNT="2",
                               SHARD_IDS=str(shard), LEASE_SECONDS="30",
                               BENCH_CENSUS_FILE=str(self._census_file(run)))
                    run.bot, _ = await bench.procs.start(run.tag, ["-m", "bot"], env=env,
                                                         cwd=self._cwd(), ready_prefix=None)
                from bench.fleet import _wait_both

                await _wait_both(bench, self.runs)
                await asyncio.sleep(2.0)  # READY → GUILD_CREATE → on_ready on both
                seen = await self._drive()
                await self._stop_bots()  # gracefully: what they finish on the way out counts
                seen["rows"] = await _turn_rows(url)
        finally:
            for run in self.runs:
                if run.bot is not None:
                    await bench.procs.stop(run.bot)
            await bench.procs.stop(dc)
            await bench.procs.stop(oa)
        return seen

    def _census_file(self, run: _BotRun) -> Path:
        return self.workdir / f"{run.tag}-census-request.txt"

    async def _census(self) -> None:
        """Ask each bot's agent to count its objects by type at the end of warm-up and at the
        end of the sending window (bench/agent/sitecustomize.py)."""
        start, end = self.window
        for number, at in ((1, start + (end - start) * self.args.warmup), (2, end)):
            await asyncio.sleep(max(0.0, at - time.time()))
            for run in self.runs:
                self._census_file(run).write_text(str(number))

    def _cwd(self) -> Path:
        cwd = self.workdir / "cwd"  # an empty folder: no stray .env is read
        cwd.mkdir(exist_ok=True)
        return cwd

    async def _drive(self) -> dict[str, Any]:
        """Sample, send every turn at its time, wait for the results, collect what was seen."""
        start = time.time()
        self.window = (start, start + self.args.seconds)
        tasks = [asyncio.create_task(c) for c in (self._sample(), self._poll(), self._census())]
        try:
            await self._send_all()
            await self._drain()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        http = self.bench.http
        assert http is not None
        return {"discord": await get_json(http, f"{self.dc_ctl}/soak/results"),
                "generations": await get_json(http, f"{self.oa_ctl}/timings")}

    async def _send_all(self) -> None:
        args, http = self.args, self.bench.http
        assert http is not None
        interval = args.seconds / args.turns
        start = self.window[0]
        for k in range(args.turns):
            delay = start + k * interval - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            turn = self.traffic.next_turn(k)
            turn["at"] = time.time()
            self.slip = max(self.slip, turn["at"] - (start + k * interval))
            if turn["kind"] == "imagine":
                answer = await post_json(http, f"{self.dc_ctl}/soak/imagine",
                                         {"user": turn["user"], "prompt": turn["prompt"]})
                turn["interaction_id"] = answer.get("interaction_id")
            else:
                answer = await post_json(http, f"{self.dc_ctl}/soak/reply", {
                    "user": turn["user"], "thread_id": turn["thread_id"], "content": turn["prompt"]})
            if "error" in answer:
                self.send_errors.append(answer["error"])
            self.traffic.record(turn, delivered="error" not in answer)
            if k % max(1, args.turns // 10) == 0:
                print(f"  sent {k}/{args.turns}, pending {len(self.traffic.pending)}", flush=True)

    async def _poll(self) -> None:
        http = self.bench.http
        assert http is not None
        while True:
            await asyncio.sleep(1.0)
            try:
                progress = await post_json(http, f"{self.dc_ctl}/soak/progress",
                                           self.traffic.query())
            except (aiohttp.ClientError, TimeoutError) as exc:  # asked again in a second
                print(f"  progress not read: {type(exc).__name__}: {exc}", flush=True)
                continue
            self.traffic.update(progress)

    async def _drain(self) -> None:
        """Until every turn showed its result, a bot died, or ``--drain`` seconds passed."""
        deadline = time.monotonic() + self.args.drain
        while self.traffic.pending and time.monotonic() < deadline:
            if not all(r.bot is not None and r.bot.alive for r in self.runs):
                return
            await asyncio.sleep(1.0)
        await asyncio.sleep(self.args.settle)  # the last turns' bookkeeping after delivery

    async def _sample(self) -> None:
        while True:
            for run in self.runs:
                if run.bot is not None and run.bot.alive:
                    rss = memory_kb(run.bot.pid).get("VmRSS")
                    fds = open_fds(run.bot.pid)
                    if rss is not None and fds is not None:
                        self.samples[run.tag].append((time.time(), rss, fds))
            await asyncio.sleep(self.args.sample_every)

    async def _stop_bots(self) -> None:
        for run in self.runs:
            assert run.bot is not None
            run.exit_code = await self.bench.procs.stop(run.bot, grace=30.0)
            run.bot = None


async def _turn_rows(url: str) -> list[dict[str, Any]]:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT id, conversation_id, prompt, status, error_kind "
                                "FROM turns ORDER BY id")
    finally:
        await conn.close()
    return [dict(r) for r in rows]


# ---------------------------------------------------------------------------- the report
def read_censuses(path: Path) -> list[dict[str, int]]:
    """The agent's object counts by type (``C`` lines), oldest first."""
    if not path.exists():
        return []
    return [json.loads(line.split(" ", 2)[2]) for line in path.read_text().splitlines()
            if line.startswith("C ")]


def process_figures(name: str, samples: list[tuple[float, int, int]], lags: list[tuple[float, float]],
                    window: tuple[float, float], warmup: float, rate_per_min: float,
                    censuses: list[dict[str, int]] | None = None) -> dict[str, Any]:
    """One process's RSS (MB) and open fds, warm-up vs the rest, and its loop lag after warm-up;
    the RSS slope also as KB per turn the fleet was sent; which object types grew between the
    census at the end of warm-up and the one at the end of the sending window."""
    start, end = window
    rss = [(t, kb / 1024) for t, kb, _ in samples]
    fds = [(t, float(n)) for t, _, n in samples]
    cut = start + (end - start) * warmup
    after = [lag for at, lag in lags if cut <= at <= end]
    lag = soak_report.quantiles_s(after)
    rss_summary = soak_report.series_summary(rss, start, end, warmup)
    slope = rss_summary["slope_per_min"]
    rss_summary["kb_per_turn"] = None if slope is None else round(slope * 1024 / rate_per_min, 2)
    return {
        "name": name,
        "rss_mb": rss_summary,
        "fds": soak_report.series_summary(fds, start, end, warmup),
        "loop_lag_ms": {k: (round(v * 1000, 1) if v is not None and k != "count" else v)
                        for k, v in lag.items()},
        "object_growth": (soak_report.census_growth(censuses[0], censuses[1])
                          if censuses and len(censuses) >= 2 else None),
        "samples": [[round(t - start, 1), round(kb / 1024, 1), n] for t, kb, n in samples],
    }


def build_report(soak: Soak, seen: dict[str, Any], started: float) -> dict[str, Any]:
    args, traffic = soak.args, soak.traffic
    discord = seen["discord"]
    processes = [
        process_figures(run.tag, soak.samples[run.tag], read_agent(run.agent_out)[0],
                        soak.window, args.warmup, args.turns / args.seconds * 60,
                        read_censuses(run.agent_out))
        for run in soak.runs
    ]
    sent = [{k: v for k, v in t.items() if k != "number"} for t in traffic.sent]
    acks = soak_report.ack_figures(discord["interactions"])
    turns = soak_report.account_turns(sent, seen["rows"], discord["threads"], seen["generations"],
                                      discord["interactions"])
    turns.update(forced_busy=traffic.forced, schedule_slip_max_s=round(soak.slip, 3),
                 send_errors=len(soak.send_errors),
                 send_error_examples=soak.send_errors[:5], discord_requests=discord["requests"])
    latency = soak_report.latency_figures(sent, seen["rows"], discord["threads"])
    report = {
        "command": " ".join([Path(sys.executable).name, "-m", "bench.soak", *sys.argv[1:]]),
        "machine": machine_facts(),
        "config": {"turns": args.turns, "seconds": args.seconds, "latency_s": args.latency,
                   "rate_per_min": round(args.turns / args.seconds * 60, 1),
                   "reply_share": args.reply_share, "users": args.users, "seed": args.seed,
                   "sample_every_s": args.sample_every, "warmup_fraction": args.warmup,
                   "drain_s": args.drain, "processes": len(soak.runs),
                   "progress_edit_interval": args.progress_edit_interval},
        "tolerances": soak_report.TOLERANCES,
        "processes": processes, "acks": acks, "turns": turns,
        "turn_latency_s": soak_report.quantiles_s(latency),
        "exit_codes": [run.exit_code for run in soak.runs],
        "elapsed_s": round(time.monotonic() - started, 1),
    }
    report["machine"]["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    report["checks"] = soak_report.verdicts(processes, acks, turns)
    return report


# ---------------------------------------------------------------------------- entry point
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add = parser.add_argument
    add("--turns", type=int, default=DEFAULT_TURNS, help="turns to send, one at a time")
    add("--seconds", type=float, default=DEFAULT_SECONDS, help="over how long (a steady rate)")
    add("--latency", type=float, default=4.0, help="seconds the fake API takes per generation")
    add("--reply-share", type=float, default=0.6,
        help="share of turns sent as a reply in an idle conversation (else a new /imagine)")
    add("--users", type=int, default=200, help="members, alternating between the two servers")
    add("--seed", type=int, default=20261206)
    add("--sample-every", type=float, default=2.0, help="seconds between RSS / fd samples")
    add("--warmup", type=float, default=0.2, help="share of the sending window that is warm-up")
    add("--drain", type=float, default=120.0, help="at most this long for the last results")
    add("--settle", type=float, default=2.0, help="seconds after the last result")
    add("--progress-edit-interval", type=float, default=1.5)
    add("--database-url", default=DEFAULT_DATABASE_URL,
        help="PostgreSQL server (a fresh database is made and dropped)")
    add("--out", default=None, help="JSON output (default: bench/results/soak.json for the "
        "default run, else bench/results/scratch/soak-<UTC time>.json)")
    add("--keep", action="store_true", help="keep the work folder (logs)")
    args = parser.parse_args(argv)
    if args.turns < 1 or args.seconds <= 0 or not 0 <= args.warmup < 1:
        parser.error("--turns >= 1, --seconds > 0 and 0 <= --warmup < 1")
    # what bench.run's Bench reads to start the fakes and configure a bot
    args.payload, args.ack_deadline, args.lag_interval = "synthetic", soak_report.ACK_DEADLINE, 0.02
    args.profile, args.profiler = False, "py-spy"
    if args.out is None:
        args.out = str(default_out(sys.argv[1:] if argv is None else argv))
    return args


def default_out(argv: list[str]) -> Path:
    """bench/results/soak.json for the default run (the one bench/README.md quotes), a scratch
    file for any other, so a short check never overwrites the record."""
    results = REPO / "bench" / "results"
    changed = {a.split("=", 1)[0] for a in argv if a.startswith("--")} - {"--keep", "--database-url"}
    if not changed:
        return results / "soak.json"
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    return results / "scratch" / f"soak-{stamp}.json"


async def amain(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="imagine-soak-"))
    soak = Soak(args, workdir)
    task, loop = asyncio.current_task(), asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        if task is not None:
            loop.add_signal_handler(sig, task.cancel)
    print(f"work folder: {workdir}; {args.turns} turns over {args.seconds} s", flush=True)
    started = time.monotonic()
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60),
                                         trust_env=False) as http:
            soak.bench.http = http
            seen = await soak.run()
        report = build_report(soak, seen, started)  # reads the agents' files in the work folder
    finally:
        await soak.bench.procs.stop_all()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    out = write_report(Path(args.out), report)
    print()
    print(soak_report.markdown(report))
    print(f"\nJSON: {out}  (elapsed {report['elapsed_s']} s)")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return asyncio.run(amain(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted; every process the soak started was stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
