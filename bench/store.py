"""Database work per turn, per backend: statements, transactions and wall time.

Runs N turns (C conversations at once, one user each) through the real ConversationService and
the fake Responses API (no latency, pre-rendered images), once on SQLite, once on PostgreSQL with
the in-process scheduler, and once on PostgreSQL with the fleet-wide queue (two schedulers,
"processes", sharing the database). Every statement the store sends is counted at the
repositories' database interface.

    python -m bench.store --database-url postgresql://postgres@127.0.0.1:5432/postgres [--n 200]

The URL names a server where the user may create databases; each run uses a fresh one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import openai

from bot.core.claim_limits import ClaimLimits
from bot.core.conversations import ConversationService
from bot.core.image_client import ImageClient, RetryPolicy
from bot.core.models import InputImage, Progress, Turn, TurnKind, TurnRequest, TurnResult
from bot.core.options import ImageOptions
from bot.core.policy import Actor, Ceilings
from bot.fleet import FleetScheduler
from bot.store.database import Database
from bot.store.postgres.database import PostgresDatabase
from bot.store.repositories import Store
from tests.fakes.openai_server import FakeOpenAI
from tests.pg import fresh_database
from tests.ports import core_for

GUILD = 700_000_000_000_000_001
OPTIONS = ImageOptions(size="1024x1024", quality="low", output_format="png", partial_images=0)


class Counting:
    """The backend's database, counting what the repositories ask of it."""

    def __init__(self, db: Any) -> None:
        self._db = db
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._db, name)
        if name in ("execute", "insert", "executemany", "fetchone", "fetchall", "transaction"):
            def counted(*args: Any, **kwargs: Any) -> Any:
                self.calls[name] += 1
                return attr(*args, **kwargs)
            return counted
        return attr


class Quiet:
    """A presenter that shows nothing (the Discord side is measured by bench.run)."""

    def __init__(self) -> None:
        self._next = 0

    async def show_queued(self, turn: Turn, position: int | None) -> int | None:
        self._next += 1
        return 10_000 + self._next

    async def show_progress(self, turn: Turn, progress: Progress) -> None:
        return None

    async def show_result(self, turn: Turn, result: TurnResult) -> list[int]:
        self._next += 1
        return [20_000 + self._next]

    async def show_failure(self, turn: Turn, error: Any) -> None:
        return None

    async def fetch_result_images(self, turn: Turn) -> list[InputImage]:
        return []

    async def notify(self, turn: Turn, *, done: bool) -> None:
        return None


async def run_turns(services: list[ConversationService], n: int, concurrency: int) -> float:
    """N root turns, `concurrency` at a time, round robin over the services; seconds taken.
    A turn's end is seen through the services' listeners (no polling that would count)."""
    sem = asyncio.Semaphore(concurrency)
    ended: dict[int, asyncio.Event] = {}

    def listener(event: str, turn: Turn, error: Any) -> None:
        if event in ("done", "failed", "cancelled"):
            ended.setdefault(turn.id, asyncio.Event()).set()

    for service in services:
        service.runner.outcomes.listeners.append(listener)

    async def one(k: int) -> None:
        service = services[k % len(services)]
        async with sem:
            thread, user = 9_000_000 + k, 1_000_000 + k
            await service.open_conversation(thread, guild_id=GUILD, parent_channel_id=1,
                                            owner_id=user)
            request = TurnRequest(kind=TurnKind.root, author_id=user, prompt=f"bench {k}",
                                  guild_id=GUILD, conversation_id=thread, options=OPTIONS)
            turn = await service.submit(request, Actor(user_id=user, guild_id=GUILD, channel_id=1))
            await ended.setdefault(turn.id, asyncio.Event()).wait()

    started = time.perf_counter()
    await asyncio.gather(*(one(k) for k in range(n)))
    return time.perf_counter() - started


async def measure(label: str, dbs: list[Any], fake: FakeOpenAI, n: int, c: int,
                  fleet: bool) -> dict[str, Any]:
    counting = [Counting(db) for db in dbs]
    services, schedulers = [], []
    client = openai.AsyncOpenAI(base_url=fake.base_url, api_key="sk-bench", max_retries=0)
    for db in counting:
        limits = ClaimLimits(Store(db), Ceilings(default_options=OPTIONS))
        scheduler = (FleetScheduler(db, max_concurrent=c, per_user_queued=5, lease_seconds=30,
                                    refusal=limits.refusal)
                     if fleet else None)
        service = core_for(
            Store(db), ImageClient(client, model="gpt-5.5", retry=RetryPolicy()),
            ceilings=Ceilings(default_options=OPTIONS), prices={}, max_concurrent=c,
            scheduler=scheduler, presenter=Quiet(),
        ).conversations
        if scheduler is not None:
            await scheduler.start()
            schedulers.append(scheduler)
        services.append(service)
    seconds = await run_turns(services, n, c)
    for service in services:
        await service.runner.shutdown(1.0)
    await client.close()
    calls: Counter[str] = sum((db.calls for db in counting), Counter())
    statements = sum(v for k, v in calls.items() if k != "transaction")
    return {
        "system": label, "n": n, "concurrency": c, "seconds": round(seconds, 3),
        "ms_per_turn": round(seconds / n * 1000, 2),
        "statements_per_turn": round(statements / n, 2),
        "transactions_per_turn": round(calls["transaction"] / n, 2),
        "calls": dict(calls),
    }


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    fake = FakeOpenAI(latency=0.0, static_images=True)
    await fake.start()
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            db = await Database.open(Path(tmp) / "bench.db")
            rows.append(await measure("sqlite", [db], fake, args.n, args.concurrency, False))
            await db.close()
        async with fresh_database("imagine_bench") as url:
            db = await PostgresDatabase.open(url)
            rows.append(await measure("postgresql", [db], fake, args.n, args.concurrency, False))
            await db.close()
        async with fresh_database("imagine_bench") as url:
            dbs = [await PostgresDatabase.open(url), await PostgresDatabase.open(url)]
            rows.append(await measure("postgresql fleet x2", dbs, fake, args.n,
                                      args.concurrency, True))
            for db in dbs:
                await db.close()
    finally:
        await fake.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--out", default="bench/results/store.json")
    args = parser.parse_args()
    import os

    os.environ["TEST_DATABASE_URL"] = args.database_url
    rows = asyncio.run(main_async(args))
    print(f"| system | turns | ms per turn (wall, {args.concurrency} at once) | "
          "statements per turn | transactions per turn |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['system']} | {r['n']} | {r['ms_per_turn']} | {r['statements_per_turn']} | "
              f"{r['transactions_per_turn']} |")
    Path(args.out).write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
