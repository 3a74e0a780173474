"""Micro-benchmark of the fair scheduler: the cost of queueing N turns behind a small limit.

    python -m bench.scheduler [--ns 100,300,1000] [--out bench/results/scheduler.json]

Every submit re-ranks the waiting turns (queue positions shown to users), so this is the part
of the bot whose cost grows with the queue. Prints a Markdown table and writes the rows as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

from bot.core.jobs import Job, JobScheduler


async def measure(n: int) -> tuple[float, float, float]:
    scheduler = JobScheduler(max_concurrent=4, per_user_concurrent=1, per_user_queued=3,
                             on_position=lambda turn, position: None)
    release = asyncio.Event()

    async def run(job: Job) -> None:
        await release.wait()

    users = max(n // 2, 1)  # two turns per user, each in its own thread
    worst = 0.0
    started = time.perf_counter()
    for i in range(n):
        t0 = time.perf_counter()
        scheduler.submit(Job(i, user_id=i % users, conversation_id=i, run=run))
        worst = max(worst, time.perf_counter() - t0)
    submitted = time.perf_counter() - started
    release.set()
    t0 = time.perf_counter()
    await scheduler.wait_idle()
    drained = time.perf_counter() - t0
    return submitted / n * 1000, worst * 1000, drained * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ns", default="100,300,1000")
    parser.add_argument("--out", default="bench/results/scheduler.json")
    args = parser.parse_args()
    print("| queued turns | mean submit | worst submit | drain (all) |")
    print("|---:|---:|---:|---:|")
    rows = []
    for n in (int(x) for x in args.ns.split(",")):
        mean, worst, drain = asyncio.run(measure(n))
        print(f"| {n} | {mean:.2f} ms | {worst:.2f} ms | {drain:.0f} ms |")
        rows.append({"queued_turns": n, "mean_submit_ms": round(mean, 3),
                     "worst_submit_ms": round(worst, 3), "drain_ms": round(drain, 1)})
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    print(f"JSON: {out}")


if __name__ == "__main__":
    main()
