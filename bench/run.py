"""How much the bot adds on top of the image API, at 1 to 300 conversations at once.

    python -m bench.run                      # L=10 s, N = 1,10,100,300 → bench/results/run.json
    python -m bench.run --payload realistic  # the same with ~2.6 MB PNGs → bench/results/run-realistic.json
    python -m bench.run --quick              # smoke run: L=3 s, N = 1,10 → bench/results/scratch/
    python -m bench.run --ns 100 --profile   # any partial or profiled run → bench/results/scratch/
    python -m bench.run --fleet              # N=1000: one process on SQLite vs two on PostgreSQL
                                             # (fleet queue) → bench/results/fleet.json

For each N it runs, one after the other, each against fresh fakes (every fake in its own
process, on 127.0.0.1 only):

1. the *irreducible client* (``bench/irreducible.py``): N concurrent streamed generations with
   the same SDK and request as the bot, no Discord;
2. the real bot, ``python -m bot``, configured only by environment variables, with N users who
   each run ``/imagine`` at the same moment through the fake Discord; the run ends when all N
   results with image attachments have reached the fake Discord;
3. the *baseline bot* (``bench/baseline_bot.py``, the docs sample in a slash command, blocking
   the loop), the same way; it is serial, so it is stopped after ``--baseline-cap`` seconds and
   its makespan is extrapolated from the turns it finished.

See bench/README.md for what each number means and how it is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.procs import (
    AGENT_DIR,
    REPO,
    Child,
    Processes,
    clean_env,
    cpu_seconds,
    memory_kb,
    open_log,
)
from bench.walcount import WalCommitCounter

PROMPT = "bench turn {i}: a lighthouse on a cliff at dusk, oil painting"
SIZE = "1536x1024"
PARTIAL_IMAGES = 2
MODEL = "gpt-5.5"
# What the bot sends for a root /imagine with DEFAULT_SIZE/DEFAULT_PARTIAL_IMAGES and its other
# defaults (checked against the bot's recorded request on every run: see "tool_mismatch").
BOT_TOOL = {
    "type": "image_generation",
    "size": SIZE,
    "quality": "auto",
    "output_format": "png",
    "moderation": "auto",
    "partial_images": PARTIAL_IMAGES,
}
ACK_DEADLINE = 3.0

# Issue 23's targets. Latency is held to the irreducible client of the same run (the floor: the
# same requests with no bot), plus a margin; acknowledgement is absolute (Discord's 3 s).
TARGETS = {
    "ratio_irreducible_n100": 1.15,
    "ratio_irreducible_n300": 1.30,
    "cpu_ms_per_turn": 15.0,  # one process, N >= 100 (start-up work dominates smaller runs)
    "lag_p99_ms_300": 50.0,
    "lag_max_ms_300": 200.0,
    "lag_p99_ms_1000": 100.0,
    "peak_rss_mb_100": 350.0,
    "before_api_margin_ms_100": 100.0,  # over the irreducible client's before-API p50
    "overhead_margin_ms_100": 150.0,  # over the irreducible client's overhead p50
    "overhead_margin_ms_300": 400.0,
    "fleet_ratio_irreducible": 1.2,
    "ack_p99_ms_1000": 1500.0,
    "unacked": 0,  # interactions never acknowledged, or acknowledged after Discord's 3 s
}
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


# ---------------------------------------------------------------------------- small helpers
def quantile(values: list[float], q: float) -> float | None:
    """Linear-interpolated quantile (q in [0, 1]); None for no values."""
    if not values:
        return None
    data = sorted(values)
    pos = (len(data) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 1)


def r2(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


async def get_json(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url) as resp:
        return await resp.json(content_type=None)


async def post_json(http: aiohttp.ClientSession, url: str, body: Any) -> Any:
    async with http.post(url, json=body) as resp:
        return await resp.json(content_type=None)


def machine_facts() -> dict[str, Any]:
    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    mem_total = None
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_total = round(int(line.split()[1]) / 1024 / 1024, 1)
    versions = {}
    for dist in ("discord.py", "openai", "aiohttp", "aiosqlite", "Pillow", "httpx2", "httpx"):
        with contextlib.suppress(Exception):
            from importlib.metadata import version

            versions[dist] = version(dist)
    commit = None
    with contextlib.suppress(Exception):
        commit = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=5,
        ).stdout.strip()
    return {
        "nproc": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model,
        "mem_total_gib": mem_total,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
        "git_commit": commit,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
    }


def read_trips(path: Path) -> list[tuple[float, int]]:
    """The agent's database round-trip counts: (unix time, total so far)."""
    if not path.exists():
        return []
    return [(float(parts[1]), int(parts[2])) for line in path.read_text().splitlines()
            if (parts := line.split()) and parts[0] == "R" and len(parts) == 3]


def read_agent(path: Path) -> tuple[list[tuple[float, float]], list[tuple[float, int, int]]]:
    lags: list[tuple[float, float]] = []
    writes: list[tuple[float, int, int]] = []
    if not path.exists():
        return lags, writes
    for line in path.read_text().splitlines():
        parts = line.split()
        if parts and parts[0] == "L" and len(parts) == 3:
            lags.append((float(parts[1]), float(parts[2])))
        elif parts and parts[0] == "W" and len(parts) == 4:
            writes.append((float(parts[1]), int(parts[2]), int(parts[3])))
    return lags, writes


# ---------------------------------------------------------------------------- the benchmark
@dataclass
class _BotRun:
    """One bot run's raw measurements, and the figures the report derives from them."""

    kind: str
    n: int
    tag: str
    workdir: Path
    profile: bool
    oa: Any = None
    dc: Any = None
    oa_ctl: str = ""
    dc_ctl: str = ""
    bot: Child | None = None
    spy: Child | None = None
    wal: WalCommitCounter | None = None
    commits0: int = 0
    idle_rate: float = 0.0
    rss_idle: int = 0
    rss_max: int = 0
    cpu0: float = 0.0
    cpu_done: float = 0.0
    cpu_end: float = 0.0
    mem: dict[str, int] = field(default_factory=dict)
    fakes_cpu_s: float = 0.0
    status: dict[str, Any] = field(default_factory=dict)
    timed_out: bool = False
    details: dict[str, Any] = field(default_factory=dict)
    timings: list[dict[str, Any]] = field(default_factory=list)
    api_log: list[dict[str, Any]] = field(default_factory=list)
    exit_code: int | None = None
    profile_summary: dict[str, Any] | None = None

    @property
    def db_path(self) -> Path:
        return self.workdir / f"{self.tag}.db"

    @property
    def agent_out(self) -> Path:
        return self.workdir / f"{self.tag}-agent.txt"

    def fakes_cpu(self) -> float:
        return (cpu_seconds(self.oa.pid) or 0) + (cpu_seconds(self.dc.pid) or 0)

    def figures(self) -> dict[str, Any]:
        """The run's entry in the report (see bench/README.md for each number)."""
        turns = self.details["turns"]
        done = [t for t in turns if t["done"] is not None]
        first_dispatch = min(t["dispatched"] for t in turns)
        last_done = max((t["done"] for t in done), default=None)
        result: dict[str, Any] = {"system": self.kind, "n": self.n}
        if self.profile_summary is not None:
            result["profile"] = self.profile_summary
        result.update(self._time_figures(done, first_dispatch, last_done))
        result.update(self._resource_figures(done, first_dispatch, last_done))
        result.update(self._request_figures(turns))
        return result

    def _makespan(self, done: list[dict[str, Any]], first_dispatch: float,
                  last_done: float | None) -> tuple[float | None, bool]:
        makespan = (last_done - first_dispatch) if last_done is not None else None
        finished_api = sorted(t["completed"] for t in self.timings if t["completed"] is not None)
        if self.kind == "baseline" and len(done) < self.n and finished_api:
            # Serial by construction: the blocking call runs one generation at a time, and the
            # followups that post results only get the loop once every queued call is done.
            # So N turns take N times the mean time per generation it got through.
            return (finished_api[-1] - first_dispatch) / len(finished_api) * self.n, True
        return makespan, False

    def _time_figures(self, done: list[dict[str, Any]], first_dispatch: float,
                      last_done: float | None) -> dict[str, Any]:
        makespan, extrapolated = self._makespan(done, first_dispatch, last_done)
        by_prompt = {t["prompt"]: t for t in self.timings}
        overheads, apis, pres, posts = [], [], [], []
        for t in done:
            api_t = by_prompt.get(t["prompt"])
            if api_t is None or api_t["completed"] is None:
                continue
            api = api_t["completed"] - api_t["arrived"]
            apis.append(api)
            overheads.append((t["done"] - t["dispatched"]) - api)
            pres.append(api_t["arrived"] - t["dispatched"])
            posts.append(t["done"] - api_t["completed"])
        lag_samples, _ = read_agent(self.agent_out)
        window_end = last_done if last_done is not None else time.time()
        lags = [lag for at, lag in lag_samples if first_dispatch <= at <= window_end]
        return {
            "ok": len(done),
            "timed_out": self.timed_out,
            "exit_code": self.exit_code,
            "makespan_s": r2(makespan, 3),
            "makespan_extrapolated": extrapolated,
            "measured_s": r2(last_done - first_dispatch if last_done else None, 3),
            "overhead_ms": {"p50": ms(quantile(overheads, 0.5)),
                            "p99": ms(quantile(overheads, 0.99)),
                            "max": ms(max(overheads, default=None))},
            "before_api_ms": {"p50": ms(quantile(pres, 0.5)), "p99": ms(quantile(pres, 0.99))},
            "after_api_ms": {"p50": ms(quantile(posts, 0.5)), "p99": ms(quantile(posts, 0.99))},
            "api_s_p50": r2(quantile(apis, 0.5), 3),
            "loop_lag_ms": {"p50": ms(quantile(lags, 0.5)), "p99": ms(quantile(lags, 0.99)),
                            "max": ms(max(lags, default=None)), "samples": len(lags)},
        }

    def _resource_figures(self, done: list[dict[str, Any]], first_dispatch: float,
                          last_done: float | None) -> dict[str, Any]:
        turns_cpu = self.cpu_end - self.cpu0
        peak = max(self.mem.get("VmHWM", 0), self.rss_max)
        per_done = max(1, len(done))
        return {
            "cpu_ms_per_turn": r2(turns_cpu * 1000 / per_done, 1) if done else None,
            "cpu_s_total_window": r2(turns_cpu, 2),
            "cpu_s_until_last_result": r2(self.cpu_done - self.cpu0, 2),
            "cpu_idle_ms_per_s": r2(self.idle_rate * 1000, 2),
            "rss_idle_mb": r2(self.rss_idle / 1024, 1),
            "rss_max_sampled_mb": r2(self.rss_max / 1024, 1),
            "peak_rss_mb": r2(peak / 1024, 1),
            "rss_per_turn_kb": r2((peak - self.rss_idle) / max(1, self.n), 1),
            **self._db_figures(done, first_dispatch),
            "fakes_cpu_s": r2(self.fakes_cpu_s, 2),
        }

    def _db_figures(self, done: list[dict[str, Any]], first_dispatch: float) -> dict[str, Any]:
        wal = self.wal
        _, write_samples = read_agent(self.agent_out)
        writes_before = [w for w in write_samples if w[0] <= first_dispatch]
        w0 = writes_before[-1] if writes_before else (0.0, 0, 0)
        w1 = write_samples[-1] if write_samples else (0.0, 0, 0)
        per_done = max(1, len(done))
        traced = self.kind == "bot" and bool(done)
        return {
            "db_commits_per_turn_wal": (
                r2((wal.commits - self.commits0) / per_done, 2) if wal and done else None
            ),
            "db_wal": ({"commits": wal.commits - self.commits0, "restarts": wal.restarts,
                        "missed_generations": wal.missed_generations, "polls": wal.polls}
                       if wal else None),
            "db_write_tx_per_turn_trace": r2((w1[1] - w0[1]) / per_done, 2) if traced else None,
            "db_write_stmts_per_turn_trace": r2((w1[2] - w0[2]) / per_done, 2) if traced else None,
            "db_round_trips_per_turn": self._trips_per_turn(first_dispatch, per_done, traced),
        }

    def _trips_per_turn(self, first_dispatch: float, per_done: int, traced: bool) -> float | None:
        """Every statement sent to the database during the run, per finished turn."""
        samples = read_trips(self.agent_out)
        if not traced or not samples:
            return None
        before = [count for at, count in samples if at <= first_dispatch]
        return r2((samples[-1][1] - (before[-1] if before else 0)) / per_done, 2)

    def _request_figures(self, turns: list[dict[str, Any]]) -> dict[str, Any]:
        details, timings = self.details, self.timings
        acks = [t["acked"] - t["dispatched"] for t in turns if t["acked"] is not None]
        return {
            "discord_requests_per_turn": r2(details["requests"] / max(1, self.n), 2),
            "discord_requests_by_route": details["requests_by_route"],
            "discord_steps_s": details.get("steps"),
            "discord_timeline_examples": details.get("timeline_examples"),
            "ack_ms": {"p50": ms(quantile(acks, 0.5)), "p99": ms(quantile(acks, 0.99)),
                       "max": ms(max(acks, default=None))},
            "late_acks": sum(1 for a in acks if a > ACK_DEADLINE),
            "interaction_errors": sum(1 for t in turns if t["errors"]),
            "unacked": sum(1 for t in turns if t["acked"] is None),
            "api_requests": len(timings),
            "api_requests_by_kind": _api_kinds(self.api_log),
            "tools_sent": timings[0]["tools"] if timings else None,
            "tool_mismatch": (self.kind == "bot" and bool(timings)
                              and timings[0]["tools"] != [BOT_TOOL]),
            "status": self.status,
        }


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.procs = Processes(workdir)
        self.http: aiohttp.ClientSession | None = None
        self.payload_dir = workdir / "payload"
        self.log = print

    # ------------------------------------------------------------------ fakes
    async def start_openai(self, tag: str) -> tuple[Child, str, str]:
        child, words = await self.procs.start(
            f"{tag}-fake-openai",
            ["-m", "bench.fake_openai", "--latency", str(self.args.latency),
             "--payload", self.args.payload, "--payload-dir", str(self.payload_dir)],
            env=clean_env(),
        )
        return child, words[0], words[1]

    async def start_discord(
        self, tag: str, users: int, guilds: int = 1
    ) -> tuple[Child, str, str, str]:
        child, words = await self.procs.start(
            f"{tag}-fake-discord",
            ["-m", "bench.fake_discord", "--users", str(users), "--guilds", str(guilds),
             "--ack-deadline", str(self.args.ack_deadline)],
            env=clean_env(),
        )
        return child, words[0], words[1], words[2]

    def prepare_payload(self) -> None:
        if self.args.payload != "realistic":
            return
        from bench.payload import realistic_set

        self.payload_dir.mkdir(parents=True, exist_ok=True)
        width, height = (int(v) for v in SIZE.split("x"))
        final, frames = realistic_set(width, height, 3)
        (self.payload_dir / f"final-{SIZE}.png").write_bytes(final)
        for i, frame in enumerate(frames):
            (self.payload_dir / f"partial{i}-{SIZE}.png").write_bytes(frame)
        self.payload_sizes = {"final": len(final), "partials": [len(f) for f in frames]}

    # ------------------------------------------------------------------ irreducible client
    async def run_irreducible(self, n: int) -> dict[str, Any]:
        assert self.http is not None
        tag = f"irreducible-{n}"
        oa, base_url, oa_ctl = await self.start_openai(tag)
        try:
            oa_cpu0 = cpu_seconds(oa.pid)
            child, _ = await self.procs.start(
                tag,
                ["-m", "bench.irreducible", "--base-url", base_url, "--n", str(n),
                 "--tool", json.dumps(BOT_TOOL), "--model", MODEL, "--prompt-format", PROMPT],
                env=clean_env(), ready_prefix=None, capture_stdout=True,
            )
            assert child.proc.stdout is not None
            timeout = self.run_timeout(n)
            try:
                out = await asyncio.wait_for(child.proc.stdout.read(), timeout)
                await asyncio.wait_for(child.proc.wait(), 10)
            except TimeoutError:
                await self.procs.stop(child)
                return {"system": "irreducible", "n": n, "error": f"timed out after {timeout}s"}
            await self.procs.stop(child)
            oa_cpu = (cpu_seconds(oa.pid) or 0) - (oa_cpu0 or 0)
            try:
                data = json.loads(out.decode().strip().splitlines()[-1])
            except (IndexError, ValueError):
                return {"system": "irreducible", "n": n,
                        "error": f"no result (see {child.log_path})"}
            timings = await get_json(self.http, f"{oa_ctl}/timings")
        finally:
            await self.procs.stop(oa)
        by_prompt = {t["prompt"]: t for t in timings}
        overheads, apis, pres = [], [], []
        for req in data["requests"]:
            t = by_prompt.get(req["prompt"])
            if t and t["completed"] is not None:
                api = t["completed"] - t["arrived"]
                apis.append(api)
                overheads.append((req["end"] - req["start"]) - api)
                pres.append(t["arrived"] - data["wall_start"])  # all N start at wall_start
        return {
            "system": "irreducible",
            "n": n,
            "ok": data["ok"],
            "failed": data["failed"],
            "makespan_s": r2(data["makespan"], 3),
            "cpu_ms_per_turn": r2(data["cpu_seconds"] * 1000 / n, 1),
            "overhead_ms": {"p50": ms(quantile(overheads, 0.5)),
                            "p99": ms(quantile(overheads, 0.99))},
            "before_api_ms": {"p50": ms(quantile(pres, 0.5)), "p99": ms(quantile(pres, 0.99))},
            "api_s_p50": r2(quantile(apis, 0.5), 3),
            "peak_rss_mb": r2(data["max_rss_kb"] / 1024, 1),
            "fake_openai_cpu_s": r2(oa_cpu, 2),
            "sse_mb_per_turn": r2(
                sum(t["sse_bytes"] for t in timings) / max(1, len(timings)) / 1e6, 2
            ),
        }

    def run_timeout(self, n: int) -> float:
        return self.args.latency * 3 + 60 + 0.2 * n

    # ------------------------------------------------------------------ a bot process
    async def wait_ready(self, ctl: str, child: Child, timeout: float = 90.0) -> None:
        assert self.http is not None
        deadline = time.monotonic() + timeout
        while True:
            if not child.alive:
                raise RuntimeError(f"{child.name} exited with {child.proc.returncode} "
                                   f"(see {child.log_path})")
            state = await get_json(self.http, f"{ctl}/state")
            if state["connected"] and "imagine" in state["commands"]:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{child.name} was not ready after {timeout}s "
                                   f"(see {child.log_path})")
            await asyncio.sleep(0.1)

    async def run_bot(self, kind: str, n: int, *, profile: bool = False) -> dict[str, Any]:
        """One run of the bot (or the baseline bot) at N, against fresh fakes."""
        assert self.http is not None
        tag = f"{kind}-{n}" + ("-profile" if profile else "")
        oa, base_url, oa_ctl = await self.start_openai(tag)
        dc, api_base, gateway_url, dc_ctl = await self.start_discord(tag, n)
        run = _BotRun(kind, n, tag, self.workdir, profile)
        run.oa, run.dc, run.oa_ctl, run.dc_ctl = oa, dc, oa_ctl, dc_ctl
        cwd = self.workdir / "cwd"  # an empty folder: no stray .env is read
        cwd.mkdir(exist_ok=True)
        env = self.bot_env(run, base_url, api_base, gateway_url)
        module = "bot" if kind == "bot" else "bench.baseline_bot"
        try:
            run.bot, _ = await self.procs.start(
                tag, ["-m", module], env=env, cwd=cwd, ready_prefix=None
            )
            await self.measure(run)
        finally:
            if run.spy is not None:
                await self.procs.stop(run.spy)
            if run.wal is not None and run.wal.is_alive():
                run.wal.stop()
            if run.bot is not None:
                await self.procs.stop(run.bot)
            await self.procs.stop(dc)
            await self.procs.stop(oa)
        return run.figures()

    def bot_env(self, run: _BotRun, base_url: str, api_base: str, gateway_url: str) -> dict[str, str]:
        """The bot configured only by environment variables, with the bench agent loaded."""
        args = self.args
        env = clean_env({
            "DISCORD_TOKEN": "bench-discord-token",
            "OPENAI_API_KEY": "sk-bench-openai-key",
            "OPENAI_BASE_URL": base_url,
            "DISCORD_API_BASE": api_base,
            "DISCORD_GATEWAY_URL": gateway_url,
            "DATABASE_PATH": str(run.db_path),
            "MAX_CONCURRENT_GENERATIONS": str(max(run.n, 4)),
            "PER_USER_CONCURRENT": "1",  # one user per conversation
            "PER_USER_QUEUED": "3",
            "PROGRESS_EDIT_INTERVAL": str(args.progress_edit_interval),
            "LOG_LEVEL": "WARNING",
            "DEFAULT_SIZE": SIZE,
            "DEFAULT_PARTIAL_IMAGES": str(PARTIAL_IMAGES),
            "OPENAI_MODEL": MODEL,
            "PYTHONPATH": f"{AGENT_DIR}:{REPO}",
            "BENCH_AGENT_OUT": str(run.agent_out),
            "BENCH_LAG_INTERVAL": str(args.lag_interval),
        })
        if run.profile and args.profiler == "cprofile":
            env["BENCH_CPROFILE"] = str(self.workdir / f"{run.tag}.pstats")
        return env

    async def measure(self, run: _BotRun) -> None:
        """Idle cost first, then dispatch all N /imagine at once and wait for the results."""
        args = self.args
        assert run.bot is not None
        await self.wait_ready(run.dc_ctl, run.bot)
        await asyncio.sleep(1.0)  # READY → GUILD_CREATE → on_ready, recovery task
        pid = run.bot.pid
        cpu_a, wall_a = cpu_seconds(pid) or 0.0, time.monotonic()
        await asyncio.sleep(args.idle_window)
        cpu_b, wall_b = cpu_seconds(pid) or 0.0, time.monotonic()
        run.idle_rate = (cpu_b - cpu_a) / (wall_b - wall_a)
        run.rss_idle = run.rss_max = memory_kb(pid).get("VmRSS", 0)
        if run.kind == "bot":
            run.wal = WalCommitCounter(run.db_path)
            run.wal.poll()
            run.wal.start()
            run.commits0 = run.wal.commits
        if run.profile and args.profiler == "py-spy":
            run.spy = await self.start_py_spy(run.tag, pid)
        fakes_cpu0 = run.fakes_cpu()
        run.cpu0 = cpu_seconds(pid) or 0.0
        await self.dispatch_and_wait(run)
        run.cpu_done = cpu_seconds(pid) or run.cpu0
        # the last turns' bookkeeping after delivery; the agent's once-a-second flush
        await asyncio.sleep(args.settle)
        run.cpu_end = cpu_seconds(pid) or run.cpu_done
        run.mem = memory_kb(pid)
        run.fakes_cpu_s = run.fakes_cpu() - fakes_cpu0
        if run.wal is not None:
            run.wal.stop()
        if run.spy is not None:
            run.profile_summary = await self.stop_py_spy(run.spy, run.tag)
            run.spy = None
        await self.collect(run)

    async def dispatch_and_wait(self, run: _BotRun) -> None:
        """All N interactions in one go; poll until every result arrived, the bot died, or the
        cap (the baseline's, or the run timeout) passed."""
        assert self.http is not None and run.bot is not None
        dispatch = await post_json(self.http, f"{run.dc_ctl}/imagine",
                                   {"prompt_format": PROMPT, "options": {}})
        if dispatch.get("errors"):
            raise RuntimeError(f"dispatch failed: {dispatch['errors']}")
        cap = self.args.baseline_cap if run.kind == "baseline" else self.run_timeout(run.n)
        deadline = time.monotonic() + cap
        while True:
            run.status = await get_json(self.http, f"{run.dc_ctl}/status")
            run.rss_max = max(run.rss_max, memory_kb(run.bot.pid).get("VmRSS", 0))
            if run.status["done"] >= run.n or not run.bot.alive:
                return
            if time.monotonic() > deadline:
                run.timed_out = True
                return
            await asyncio.sleep(0.2)

    async def collect(self, run: _BotRun) -> None:
        """What the fakes saw, then stop the bot gracefully (its exit code is part of the run)."""
        assert self.http is not None and run.bot is not None
        run.details = await get_json(self.http, f"{run.dc_ctl}/results")
        run.timings = await get_json(self.http, f"{run.oa_ctl}/timings")
        run.api_log = await get_json(self.http, f"{run.oa_ctl}/requests")
        run.exit_code = await self.procs.stop(run.bot, grace=30.0)
        run.bot = None

    # ------------------------------------------------------------------ profiling
    def py_spy_path(self) -> str | None:
        if self.args.py_spy:
            return self.args.py_spy
        found = shutil.which("py-spy")
        if found:
            return found
        for candidate in ("/tmp/pyspy/bin/py-spy",):
            if Path(candidate).exists():
                return candidate
        return None

    async def start_py_spy(self, tag: str, pid: int) -> Child | None:
        exe = self.py_spy_path()
        if exe is None:
            self.log("py-spy not found: install it (pip install py-spy) or use --profiler cprofile")
            return None
        out = self.workdir / f"{tag}.pyspy.txt"
        log_file = open_log(self.workdir / f"{tag}.pyspy.log")
        proc = await asyncio.create_subprocess_exec(
            exe, "record", "--pid", str(pid), "--rate", "200", "--format", "raw",
            "--nonblocking", "--threads", "--output", str(out),
            stdout=asyncio.subprocess.DEVNULL, stderr=log_file, start_new_session=True,
        )
        child = Child(f"{tag}-py-spy", proc, out, log_file)
        self.procs.children.append(child)
        await asyncio.sleep(0.5)
        return child

    async def stop_py_spy(self, spy: Child, tag: str) -> dict[str, Any]:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(spy.pid, signal.SIGINT)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(spy.proc.wait(), 20)
        await self.procs.stop(spy)
        out = self.workdir / f"{tag}.pyspy.txt"
        from bench.profile_summary import summarize_collapsed

        summary = summarize_collapsed(out)
        keep = self.results_dir() / f"{tag}.pyspy.txt"
        with contextlib.suppress(OSError):
            shutil.copyfile(out, keep)
            summary["raw"] = str(keep)
        return summary

    def results_dir(self) -> Path:
        path = Path(self.args.out).resolve().parent
        path.mkdir(parents=True, exist_ok=True)
        return path

    # ------------------------------------------------------------------ the whole run
    async def run_system(self, system: str, n: int) -> dict[str, Any]:
        if system == "irreducible":
            return await self.run_irreducible(n)
        if system == "fleet":
            from bench.fleet import run_fleet

            return await run_fleet(self, n, self.args.database_url)
        return await self.run_bot(system, n)

    async def run(self) -> dict[str, Any]:
        args = self.args
        started = time.monotonic()
        self.prepare_payload()
        report: dict[str, Any] = {
            "command": " ".join([Path(sys.executable).name, "-m", "bench.run", *sys.argv[1:]]),
            "machine": machine_facts(),
            "config": {
                "latency_s": args.latency, "ns": args.ns, "payload": args.payload,
                "payload_bytes": getattr(self, "payload_sizes", None),
                "size": SIZE, "partial_images": PARTIAL_IMAGES,
                "progress_edit_interval": args.progress_edit_interval,
                "baseline_cap_s": args.baseline_cap, "lag_interval_s": args.lag_interval,
                "ack_deadline_s": args.ack_deadline, "tool": BOT_TOOL,
            },
            "targets": TARGETS,
            "runs": [],
        }
        async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=120), trust_env=False
        ) as http:
            self.http = http
            for n in args.ns:
                entry: dict[str, Any] = {"n": n}
                self.log(f"\n== N={n} ==", flush=True)
                systems = [s for s in args.systems
                           if not (s == "baseline" and args.no_baseline)]
                for system in systems:
                    t0 = time.monotonic()
                    try:
                        entry[system] = await self.run_system(system, n)
                    except Exception as exc:  # keep going: report what failed
                        entry[system] = {"system": system, "n": n,
                                         "error": f"{type(exc).__name__}: {exc}"}
                    self.log(f"  {system:<11} {brief(entry[system])} "
                             f"[{time.monotonic() - t0:.0f}s]", flush=True)
                report["runs"].append(entry)
            if args.profile:
                n = args.profile_n or max(args.ns)
                self.log(f"\n== profile: bot at N={n} ({args.profiler}) ==", flush=True)
                try:
                    prof = await self.run_bot("bot", n, profile=True)
                    if args.profiler == "cprofile":
                        from bench.profile_summary import summarize_pstats

                        prof["profile"] = summarize_pstats(self.workdir / f"bot-{n}-profile.pstats")
                    report["profile"] = {"n": n, "profiler": args.profiler,
                                         "run": {k: v for k, v in prof.items() if k != "profile"},
                                         **prof.get("profile", {})}
                except Exception as exc:
                    report["profile"] = {"error": f"{type(exc).__name__}: {exc}"}
        report["elapsed_s"] = round(time.monotonic() - started, 1)
        report["machine"]["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
        report["summary"] = summarize(report)
        return report


def _api_kinds(log: list[dict[str, Any]]) -> dict[str, int]:
    kinds: dict[str, int] = {}
    for r in log:
        parts = r["path"].split("/")
        if len(parts) > 3:
            parts[3] = "{id}"
        key = f"{r['method']} {'/'.join(parts)}" + (" stream" if r["query"].get("stream") else "")
        kinds[key] = kinds.get(key, 0) + 1
    return kinds


def brief(run: dict[str, Any]) -> str:
    if "error" in run:
        return f"ERROR {run['error']}"
    parts = [f"ok={run.get('ok')}/{run['n']}", f"makespan={run.get('makespan_s')}s"]
    if run.get("makespan_extrapolated"):
        parts[-1] += " (extrapolated)"
    if run.get("cpu_ms_per_turn") is not None:
        parts.append(f"cpu={run['cpu_ms_per_turn']}ms/turn")
    if run.get("loop_lag_ms"):
        parts.append(f"lag p99={run['loop_lag_ms']['p99']}ms max={run['loop_lag_ms']['max']}ms")
    if run.get("peak_rss_mb"):
        parts.append(f"rss={run['peak_rss_mb']}MB")
    return " ".join(parts)


# ---------------------------------------------------------------------------- reporting
def _ratio(a: float | None, b: float | None) -> float | None:
    return None if not a or not b else round(a / b, 3)


def summarize(report: dict[str, Any]) -> dict[str, Any]:
    rows = []
    checks: list[dict[str, Any]] = []
    for entry in report["runs"]:
        n = entry["n"]
        bot = entry.get("bot", {})
        irr = entry.get("irreducible", {})
        base = entry.get("baseline", {})
        row = {
            "n": n,
            "bot_makespan_s": bot.get("makespan_s"),
            "irreducible_makespan_s": irr.get("makespan_s"),
            "ratio_vs_irreducible": _ratio(bot.get("makespan_s"), irr.get("makespan_s")),
            "baseline_makespan_s": base.get("makespan_s"),
            "baseline_extrapolated": base.get("makespan_extrapolated"),
            "ratio_vs_baseline": _ratio(bot.get("makespan_s"), base.get("makespan_s")),
            "bot_cpu_ms_per_turn": bot.get("cpu_ms_per_turn"),
            "irreducible_cpu_ms_per_turn": irr.get("cpu_ms_per_turn"),
            "overhead_p50_ms": (bot.get("overhead_ms") or {}).get("p50"),
            "overhead_p99_ms": (bot.get("overhead_ms") or {}).get("p99"),
            "before_api_p50_ms": (bot.get("before_api_ms") or {}).get("p50"),
            # the floor: the same requests from the irreducible client, all N at once
            "irreducible_before_api_p50_ms": (irr.get("before_api_ms") or {}).get("p50"),
            "irreducible_overhead_p50_ms": (irr.get("overhead_ms") or {}).get("p50"),
            "lag_p99_ms": (bot.get("loop_lag_ms") or {}).get("p99"),
            "lag_max_ms": (bot.get("loop_lag_ms") or {}).get("max"),
            "peak_rss_mb": bot.get("peak_rss_mb"),
            "rss_per_turn_kb": bot.get("rss_per_turn_kb"),
            "db_commits_per_turn": bot.get("db_commits_per_turn_wal"),
            "bot_ok": f"{bot.get('ok', 0)}/{n}",
            "baseline_ok": f"{base.get('ok', 0)}/{n}" if base else None,
        }
        rows.append(row)
        complete = bot.get("ok") == n and "error" not in bot
        if n in (100, 300):
            limit = TARGETS[f"ratio_irreducible_n{n}"]
            checks.append(_check(f"makespan ratio vs irreducible at N={n} <= {limit}",
                                 row["ratio_vs_irreducible"], limit, complete))
        checks.extend(_load_checks(n, row, bot, "one process", complete))
        checks.extend(_latency_checks(row, complete))
    # peak RSS with 100 turns in flight: measured at N=100, else projected from the largest N
    by_n = {row["n"]: (row, entry.get("bot", {})) for row, entry in zip(rows, report["runs"], strict=True)}
    if 100 in by_n:
        row, bot = by_n[100]
        checks.append(_check(f"peak RSS with 100 turns in flight <= {TARGETS['peak_rss_mb_100']:.0f} MB",
                             row["peak_rss_mb"], TARGETS["peak_rss_mb_100"], bot.get("ok") == 100))
    elif rows:
        n = max(by_n)
        _, bot = by_n[n]
        if bot.get("rss_idle_mb") is not None and bot.get("rss_per_turn_kb") is not None:
            projected = bot["rss_idle_mb"] + bot["rss_per_turn_kb"] * 100 / 1024
            checks.append(_check(
                f"peak RSS with 100 turns in flight <= {TARGETS['peak_rss_mb_100']:.0f} MB "
                f"(projected from N={n})", round(projected, 1), TARGETS["peak_rss_mb_100"], True))
    return {"rows": rows, "checks": checks, "fleet": _fleet_summary(report, checks)}


def _load_checks(n: int, row: dict[str, Any], run: dict[str, Any], label: str,
                 complete: bool) -> list[dict[str, Any]]:
    """CPU per turn, loop lag and acknowledgement for one run of N turns (`row` holds its CPU
    and lag figures, `run` its raw measurements)."""
    checks = []
    if n >= 100 and label == "one process":
        limit = TARGETS["cpu_ms_per_turn"]
        checks.append(_check(f"bot CPU per turn at N={n}, {label} <= {limit:.0f} ms",
                             row.get("bot_cpu_ms_per_turn", row.get("cpu_ms_per_turn")), limit, complete))
    if n == 300:
        for stat in ("p99", "max"):
            limit = TARGETS[f"lag_{stat}_ms_300"]
            checks.append(_check(f"loop lag {stat} at N=300 <= {limit:.0f} ms",
                                 row["lag_" + stat + "_ms"], limit, complete))
    if n >= 1000 and row.get("lag_p99_ms") is not None:
        limit = TARGETS["lag_p99_ms_1000"]
        checks.append(_check(f"loop lag p99 at N={n}, {label} <= {limit:.0f} ms",
                             row["lag_p99_ms"], limit, complete))
    missed = (run.get("unacked") or 0) + (run.get("late_acks") or 0)
    checks.append(_check(f"interactions not answered within 3 s at N={n}, {label} = 0",
                         missed if "unacked" in run else None, TARGETS["unacked"], True))
    if n >= 1000:
        limit = TARGETS["ack_p99_ms_1000"]
        checks.append(_check(f"acknowledgement p99 at N={n}, {label} <= {limit:.0f} ms",
                             (run.get("ack_ms") or {}).get("p99"), limit, True))
    return checks


def _latency_checks(row: dict[str, Any], complete: bool) -> list[dict[str, Any]]:
    """Before-API and overhead medians at N=100 and 300, each held to the irreducible client's
    own figure of the same run (the same requests with no bot) plus a margin."""
    n, checks = row["n"], []
    if n == 100:
        checks.append(_relative_check("before-API p50 at N=100", row["before_api_p50_ms"],
                                      row["irreducible_before_api_p50_ms"],
                                      TARGETS["before_api_margin_ms_100"], complete))
    if n in (100, 300):
        checks.append(_relative_check(f"overhead p50 at N={n}", row["overhead_p50_ms"],
                                      row["irreducible_overhead_p50_ms"],
                                      TARGETS[f"overhead_margin_ms_{n}"], complete))
    return checks


def _relative_check(name: str, value: float | None, floor: float | None, margin: float,
                    complete: bool) -> dict[str, Any]:
    """`value` <= the irreducible client's `floor` + `margin` (MISS when the floor is unknown)."""
    limit = None if floor is None else round(floor + margin, 1)
    check = _check(f"{name} <= irreducible + {margin:.0f} ms", value,
                   limit if limit is not None else float("-inf"), complete, floor=floor)
    check["limit"] = limit
    return check


def _fleet_summary(report: dict[str, Any], checks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per backend of a fleet run (SQLite: one process; PostgreSQL: two), and the
    makespan ratio target for both."""
    rows = []
    limit = TARGETS["fleet_ratio_irreducible"]
    for entry in report["runs"]:
        if "fleet" not in entry:
            continue
        n, irr = entry["n"], entry.get("irreducible", {})
        for system, label in (("bot", "SQLite, 1 process"), ("fleet", "PostgreSQL, 2 processes")):
            run = entry.get(system) or {}
            ratio = _ratio(run.get("makespan_s"), irr.get("makespan_s"))
            rows.append({
                "n": n, "backend": label, "makespan_s": run.get("makespan_s"),
                "irreducible_makespan_s": irr.get("makespan_s"), "ratio_vs_irreducible": ratio,
                "cpu_ms_per_turn": run.get("cpu_ms_per_turn"),
                "db_round_trips_per_turn": run.get("db_round_trips_per_turn"),
                "before_api_p50_ms": (run.get("before_api_ms") or {}).get("p50"),
                "overhead_p50_ms": (run.get("overhead_ms") or {}).get("p50"),
                "ok": f"{run.get('ok', 0)}/{n}",
            })
            complete = run.get("ok") == n and "error" not in run
            checks.append(_check(f"makespan ratio vs irreducible at N={n}, {label} <= {limit}",
                                 ratio, limit, complete))
            if system == "fleet":  # the one-process run is checked with the other Ns
                lag = (run.get("loop_lag_ms") or {}).get("p99")
                figures = {"cpu_ms_per_turn": run.get("cpu_ms_per_turn"), "lag_p99_ms": lag}
                checks.extend(_load_checks(n, figures, run, label, complete))
    return rows


def _check(name: str, value: float | None, limit: float, complete: bool, *,
           floor: float | None = None) -> dict[str, Any]:
    """A target's verdict; `floor`, where known, is what the irreducible client itself gave."""
    verdict = "PASS" if value is not None and value <= limit and complete else "MISS"
    notes = ([] if complete else ["run incomplete"]) + (
        [f"the irreducible client itself: {floor}"] if floor is not None else [])
    return {"target": name, "value": value, "limit": limit, "verdict": verdict,
            **({"floor": floor} if floor is not None else {}),
            **({"note": "; ".join(notes)} if notes else {})}


def fmt(value: Any, suffix: str = "") -> str:
    if value is None:
        return "–"
    return f"{value}{suffix}"


def markdown(report: dict[str, Any]) -> str:
    cfg = report["config"]
    mach = report["machine"]
    lines = [
        f"L = {cfg['latency_s']} s per generation, {cfg['size']} PNG with "
        f"{cfg['partial_images']} partial images ({cfg['payload']} payload), "
        f"progress edits every {cfg['progress_edit_interval']} s; "
        f"{mach['nproc']} cores ({mach['cpu_model']}), Python {mach['python']}.",
        "",
        "| N | bot makespan | irreducible | ratio | baseline bot | bot/baseline "
        "| bot CPU/turn (irreducible) | overhead p50 / p99 | loop lag p99 / max "
        "| peak RSS (per turn) | DB commits/turn | results |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report["summary"]["rows"]:
        base = fmt(row["baseline_makespan_s"], " s")
        if row["baseline_extrapolated"]:
            base += "*"
        lines.append(
            f"| {row['n']} | {fmt(row['bot_makespan_s'], ' s')} "
            f"| {fmt(row['irreducible_makespan_s'], ' s')} | {fmt(row['ratio_vs_irreducible'])} "
            f"| {base} | {fmt(row['ratio_vs_baseline'])} "
            f"| {fmt(row['bot_cpu_ms_per_turn'], ' ms')} ({fmt(row['irreducible_cpu_ms_per_turn'], ' ms')}) "
            f"| {fmt(row['overhead_p50_ms'], ' ms')} / {fmt(row['overhead_p99_ms'], ' ms')} "
            f"| {fmt(row['lag_p99_ms'], ' ms')} / {fmt(row['lag_max_ms'], ' ms')} "
            f"| {fmt(row['peak_rss_mb'], ' MB')} ({fmt(row['rss_per_turn_kb'], ' KB')}) "
            f"| {fmt(row['db_commits_per_turn'])} "
            f"| bot {row['bot_ok']}" + (f", baseline {row['baseline_ok']}" if row["baseline_ok"] else "")
            + " |"
        )
    if any(row["baseline_extrapolated"] for row in report["summary"]["rows"]):
        lines.append("")
        lines.append(f"\\* the baseline is serial; it was stopped after {cfg['baseline_cap_s']} s "
                     "and its makespan extrapolated as N x (its mean time per generation).")
    lines.extend(_fleet_markdown(report["summary"].get("fleet") or []))
    lines.append("")
    lines.append("| target | value | verdict |")
    lines.append("|---|---:|---|")
    for check in report["summary"]["checks"]:
        note = f" ({check['note']})" if check.get("note") else ""
        lines.append(f"| {check['target']} | {fmt(check['value'])} | **{check['verdict']}**{note} |")
    return "\n".join(lines)


def _fleet_markdown(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return []
    lines = ["", "| N | backend | makespan | irreducible | ratio | CPU/turn | DB round trips/turn "
             "| before-API p50 | overhead p50 | results |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(
            f"| {row['n']} | {row['backend']} | {fmt(row['makespan_s'], ' s')} "
            f"| {fmt(row['irreducible_makespan_s'], ' s')} | {fmt(row['ratio_vs_irreducible'])} "
            f"| {fmt(row['cpu_ms_per_turn'], ' ms')} | {fmt(row['db_round_trips_per_turn'])} "
            f"| {fmt(row['before_api_p50_ms'], ' ms')} | {fmt(row['overhead_p50_ms'], ' ms')} "
            f"| {row['ok']} |"
        )
    return lines


def profile_text(report: dict[str, Any], top: int = 15) -> str:
    prof = report.get("profile")
    if not prof:
        return ""
    if "error" in prof:
        return f"profile failed: {prof['error']}"
    lines = [f"\nProfile of the bot at N={prof['n']} ({prof['profiler']}, "
             f"{prof.get('samples', '?')} samples):", "", "self time (top):"]
    for item in prof.get("self", [])[:top]:
        lines.append(f"  {item['share']:6.1%}  {item['frame']}")
    lines.append("\ninclusive time, bot/ code (top):")
    for item in prof.get("inclusive_bot", [])[:top]:
        lines.append(f"  {item['share']:6.1%}  {item['frame']}")
    if prof.get("threads"):
        lines.append("\nby thread:")
        for item in prof["threads"][:8]:
            lines.append(f"  {item['share']:6.1%}  {item['frame']}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- entry point
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--latency", type=float, default=None,
                        help="seconds the fake API takes per generation (default 10; 3 with --quick)")
    parser.add_argument("--ns", default=None,
                        help="comma-separated conversation counts (default 1,10,100,300; 1,10 with --quick)")
    parser.add_argument("--quick", action="store_true", help="a fast smoke run")
    parser.add_argument("--out", default=None,
                        help="JSON output (default: bench/results/run.json, or run-realistic.json "
                             "with --payload realistic, for the full default run; any other run "
                             "goes to the git-ignored bench/results/scratch/run-<UTC time>.json)")
    parser.add_argument("--payload", choices=("synthetic", "realistic"), default="synthetic",
                        help="image bytes: the fake's own pre-rendered 1536x1024 PNG (~30 KB), "
                             "or realistic photo-like PNGs (~2.6 MB final, ~1.4 MB partials)")
    parser.add_argument("--baseline-cap", type=float, default=None,
                        help="stop the baseline bot after this many seconds (default 3 x latency)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the baseline bot")
    parser.add_argument("--systems", default="irreducible,bot,baseline",
                        help="which systems to run, comma-separated")
    parser.add_argument("--progress-edit-interval", type=float, default=1.5)
    parser.add_argument("--lag-interval", type=float, default=0.02,
                        help="loop-lag sampler period inside the bot (seconds)")
    parser.add_argument("--ack-deadline", type=float, default=ACK_DEADLINE,
                        help="the fake Discord's interaction ack deadline")
    parser.add_argument("--idle-window", type=float, default=2.0,
                        help="seconds of idle CPU measured before dispatching")
    parser.add_argument("--settle", type=float, default=2.0,
                        help="seconds after the last result before CPU and DB writes are read")
    parser.add_argument("--profile", action="store_true",
                        help="after the measured runs, profile one more bot run")
    parser.add_argument("--profile-n", type=int, default=None, help="N of the profiled run")
    parser.add_argument("--profiler", choices=("py-spy", "cprofile"), default="py-spy")
    parser.add_argument("--py-spy", default=None, help="path to the py-spy executable")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, DBs)")
    parser.add_argument("--fleet", action="store_true",
                        help="the fleet run: irreducible vs one bot on SQLite vs two bot processes "
                             "(shards 0 and 1 of 2) on PostgreSQL with FLEET_QUEUE; N=1000 "
                             "(50 with --quick) → bench/results/fleet.json")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL,
                        help="PostgreSQL server for --fleet (a fresh database is made and dropped)")
    args = parser.parse_args(argv)
    if args.latency is None:
        args.latency = 3.0 if args.quick else 10.0
    ns = args.ns or _default_ns(args)
    args.ns = [int(v) for v in ns.split(",") if v.strip()]
    if args.fleet and "--systems" not in " ".join(sys.argv[1:] if argv is None else argv):
        args.systems = "irreducible,bot,fleet"
    args.systems = [v.strip() for v in args.systems.split(",") if v.strip()]
    if args.baseline_cap is None:
        args.baseline_cap = max(3 * args.latency, 8.0)
    if args.out is None:
        args.out = str(default_out(args, sys.argv[1:] if argv is None else argv))
    return args


def _default_ns(args: argparse.Namespace) -> str:
    if args.fleet:
        return "50" if args.quick else "1000"
    return "1,10" if args.quick else "1,10,100,300"


def default_out(args: argparse.Namespace, argv: list[str]) -> Path:
    """The committed result file for the full default run (the one bench/README.md cites);
    a scratch file for anything else, so a smoke run never overwrites the record."""
    results = REPO / "bench" / "results"
    changed = {a.split("=", 1)[0] for a in argv if a.startswith("--")} - {
        "--payload", "--keep", "--fleet", "--database-url"}
    if not changed and args.fleet:
        return results / "fleet.json"
    if not changed:
        return results / ("run-realistic.json" if args.payload == "realistic" else "run.json")
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    return results / "scratch" / f"run-{stamp}.json"


async def amain(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="imagine-bench-"))
    bench = Bench(args, workdir)
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        if task is not None:
            loop.add_signal_handler(sig, task.cancel)
    print(f"work folder: {workdir}", flush=True)
    try:
        report = await bench.run()
    finally:
        await bench.procs.stop_all()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    out = write_report(Path(args.out), report)
    print()
    print(markdown(report))
    text = profile_text(report)
    if text:
        print(text)
    print(f"\nJSON: {out}  (elapsed {report['elapsed_s']} s)")
    return 0


def write_report(out: Path, report: dict[str, Any]) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return asyncio.run(amain(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted; every process the benchmark started was stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
