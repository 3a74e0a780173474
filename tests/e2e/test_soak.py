"""Soak: 500 turns in 50 threads from 20 users, with OpenAI faults sprinkled in at random (seeded),
through both fakes and the real bot. At the end every turn is accounted for exactly once.

Runs in the default suite: about 20-35 s on 2 cores (the budget asserted is 90 s); deselect it
with `-m "not soak"`. SOAK_TURNS and SOAK_SEED change its size and its faults.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import time
from collections import Counter
from typing import Any

import pytest

from tests.e2e.harness import BotRunner, results, start_conversation, turn_rows
from tests.fakes.openai_server import FakeOpenAI, Fault

pytestmark = [pytest.mark.soak, pytest.mark.wall_clock]  # a wall-time budget

TURNS = int(os.environ.get("SOAK_TURNS", "500"))
THREADS = max(1, TURNS // 10)
USERS = 20
FAULT_RATE = 0.2
SEED = int(os.environ.get("SOAK_SEED", "20260611"))
BUDGET_SECONDS = 90.0
TERMINAL = ("done", "failed", "cancelled")
FOOTER_TURN = re.compile(r"^-# .*· #(\d+)$", re.MULTILINE)


def faults(rng: random.Random) -> list[Fault]:
    """The menu: transient errors (retried), broken streams (resumed), moderation (final)."""
    return [
        Fault.rate_limit(retry_after=0.01),
        Fault.server_error(500),
        Fault.server_error(502),
        Fault.cut_after("response.created"),
        Fault.cut_after("response.output_item.added"),
        Fault.moderation(rng.choice(["http", "item", "response_failed"])),
    ]


async def feed_faults(fake: FakeOpenAI, rng: random.Random, injected: Counter[str]) -> None:
    """Queue at most one fault at a time: after each create the fake sees, with probability
    FAULT_RATE the next create gets a fault. (Faults are FIFO for whichever create comes next;
    queuing many at once would hand long runs of them to single turns.)"""
    seen = pending_until = 0
    while True:
        creates = len(fake.create_requests())
        if creates > seen:
            seen = creates
            if creates > pending_until and rng.random() < FAULT_RATE:
                fault = rng.choice(faults(rng))
                fake.add_fault(fault)
                injected[label(fault)] += 1
                pending_until = creates + 1  # consumed by the next create
        await asyncio.sleep(0.002)


def label(fault: Fault) -> str:
    detail = fault.shape or fault.event_type or fault.status
    return f"{fault.kind}:{detail}"


def other_tasks(baseline: set[asyncio.Task[Any]]) -> list[asyncio.Task[Any]]:
    current = asyncio.current_task()
    return [t for t in asyncio.all_tasks() if t not in baseline and t is not current]


SOAK_SETTINGS = {
    "max_concurrent_generations": 8,
    "per_user_concurrent": 2,
    "per_user_queued": 10_000,
    "progress_edit_interval": 0.02,
    "default_partial_images": 0,
    "default_size": "1024x1024",
    "default_quality": "low",
    "retry_max_attempts": 6,
    "retry_base_delay": 0.01,
    "shutdown_grace_seconds": 5.0,
    "log_level": "INFO",
}


async def play_traffic(discord_fake, users, rng, threads: list[int], sent: list[int]) -> None:
    """THREADS conversations, then the other turns as replies in random threads."""
    for n in range(THREADS):
        threads.append(await start_conversation(
            discord_fake, users[n % USERS], f"soak root {n}: a harbour, variation {n}",
        ))
    for n in range(THREADS, TURNS):
        said = await discord_fake.say(rng.choice(users), rng.choice(threads),
                                      f"soak reply {n}: add detail {n}")
        sent.append(int(said["id"]))
        if n % 5 == 0:
            await asyncio.sleep(0.01)  # let the bot interleave as real traffic would


def assert_every_turn_ended_once(rows) -> Counter[str]:
    """Every turn exactly once, in a terminal state, with a reason when it failed."""
    assert len(rows) == TURNS
    statuses = Counter(r["status"] for r in rows)
    assert set(statuses) <= set(TERMINAL), statuses
    for r in rows:
        if r["status"] == "done":
            assert r["error_kind"] is None and r["finished_at"] is not None
        else:
            assert r["error_kind"], r
    return statuses


def assert_each_result_shown_once(discord_fake, threads, rows, done, with_images) -> None:
    """Every done turn shows exactly one result message, in its own thread; nothing else does.
    The footer numbers a turn within its conversation (#1 is the first turn of the thread)."""
    by_number: dict[tuple[int, int], int] = {}
    counted: Counter[int] = Counter()
    for r in sorted(rows, key=lambda r: r["id"]):
        counted[r["conversation_id"]] += 1
        by_number[(r["conversation_id"], counted[r["conversation_id"]])] = r["id"]
    shown: Counter[int] = Counter()
    where: dict[int, int] = {}
    for thread_id in threads:
        for message in results(discord_fake, thread_id):
            [number] = [int(m) for m in FOOTER_TURN.findall(message.content)]
            turn_id = by_number.get((thread_id, number), -number)
            shown[turn_id] += 1
            where[turn_id] = thread_id
    assert set(shown) == with_images
    assert all(count == 1 for count in shown.values()), shown.most_common(3)
    assert all(where[i] == done[i]["conversation_id"] for i in with_images)


def assert_nothing_paid_twice(openai_fake, done, with_images) -> None:
    """One image per done turn, one response per prompt."""
    assert openai_fake.generations == len(with_images)
    made = Counter(
        item["revised_prompt"]
        for response in openai_fake.responses.values()
        for item in response["output"]
        if item["type"] == "image_generation_call" and item["status"] == "completed"
    )
    assert sum(made.values()) == len(with_images)
    assert all(count == 1 for count in made.values()), made.most_common(3)
    assert set(made) == {done[i]["prompt"] for i in with_images}


async def assert_no_leaked_tasks(discord_fake, baseline: set[asyncio.Task[Any]]) -> None:
    try:
        await discord_fake.wait_for(lambda: not other_tasks(baseline), 3, what="no leftover tasks")
    except TimeoutError:
        leaked = other_tasks(baseline)
        pytest.fail(f"{len(leaked)} task(s) leaked: "
                    f"{[t.get_name() + ': ' + repr(t.get_coro()) for t in leaked][:10]}")


def fail_with_diagnosis(discord_fake, runner, settings, sent, injected, caplog, started) -> None:
    """Not every turn finished in time: fail saying which are stuck and what the bot logged."""
    rows = turn_rows(settings.database_path)
    stuck = [
        {k: r[k] for k in ("id", "conversation_id", "author_id", "status", "response_id",
                           "parent_id", "kind")}
        for r in rows if r["status"] not in TERMINAL
    ]
    scheduler = runner.bot.runner.scheduler if runner.bot else None
    sources = {r["source_message_id"] for r in rows}
    lost = [m for m in sent if m not in sources]
    answers = {m: [x.content[:80] for x in discord_fake.all_messages()
                   if str((x.message_reference or {}).get("message_id")) == str(m)]
               for m in lost[:5]}
    errors = [r.getMessage()[:300] for r in caplog.records if r.levelno >= 30
              and "retrying" not in r.getMessage()][:10]
    pytest.fail(
        f"{len(rows)}/{TURNS} turns recorded, {len(stuck)} unfinished after "
        f"{time.monotonic() - started:.0f}s: {stuck[:8]}; scheduler running="
        f"{scheduler and scheduler.running} queued={scheduler and scheduler.queued}; "
        f"injected {dict(injected)}; lost messages {lost[:5]} answered {answers}; "
        f"warnings {errors}"
    )


async def test_soak(discord_fake, openai_fake, make_settings, caplog):
    rng = random.Random(SEED)
    settings = make_settings(**SOAK_SETTINGS)
    openai_fake.latency = 0.0
    openai_fake.static_images = True  # one cached render: the soak measures the bot, not Pillow
    users = [discord_fake.add_user(f"user{n}") for n in range(USERS)]
    baseline = set(asyncio.all_tasks())
    started = time.monotonic()

    runner = BotRunner(settings)
    await runner.start()
    injected: Counter[str] = Counter()
    feeder: asyncio.Task[None] | None = None
    try:
        threads: list[int] = []
        sent: list[int] = []
        feeder = asyncio.create_task(feed_faults(openai_fake, rng, injected), name="faults")
        await play_traffic(discord_fake, users, rng, threads, sent)
        remaining = BUDGET_SECONDS - (time.monotonic() - started) - 5
        try:
            rows = await discord_fake.wait_for(
                lambda: (r if len(r := turn_rows(settings.database_path)) == TURNS
                         and all(t["status"] in TERMINAL for t in r) else None),
                remaining, what=f"all {TURNS} turns to finish",
            )
        except TimeoutError:
            fail_with_diagnosis(discord_fake, runner, settings, sent, injected, caplog, started)
    finally:
        if feeder is not None:
            feeder.cancel()
            await asyncio.gather(feeder, return_exceptions=True)
        await runner.stop()
    elapsed = time.monotonic() - started

    statuses = assert_every_turn_ended_once(rows)
    done = {r["id"]: r for r in rows if r["status"] == "done"}
    with_images = {i for i, r in done.items() if r["image_count"] > 0}
    failed_kinds = Counter(r["error_kind"] for r in rows if r["status"] == "failed")
    # transient faults are retried and broken streams resumed: only moderation ends a turn, and
    # each moderation block ends exactly one (the last fault queued may never have been used)
    assert set(failed_kinds) <= {"moderation"}, failed_kinds
    blocks = sum(n for name, n in injected.items() if name.startswith("moderation"))
    assert blocks - 1 <= failed_kinds["moderation"] <= blocks, (failed_kinds, injected)

    assert_each_result_shown_once(discord_fake, threads, rows, done, with_images)
    assert_nothing_paid_twice(openai_fake, done, with_images)

    # nothing left running in this event loop once the bot has stopped
    await assert_no_leaked_tasks(discord_fake, baseline)

    print(f"\nsoak: {TURNS} turns in {elapsed:.1f}s; {dict(statuses)}; injected {dict(injected)}; "
          f"create requests {len(openai_fake.create_requests())}")
    assert elapsed < BUDGET_SECONDS
