"""Input retention: the periodic pruning task and the immediate pruning of a retention of 0,
against a real store (both backends)."""

from __future__ import annotations

import asyncio
import time

from bot.core.models import InputImage, TurnStatus
from bot.core.retention import DAY, InputRetention
from bot.core.tasks import BackgroundTasks
from bot.store.repositories import Store
from tests.unit.test_store import finish, new_conversation, new_turn

PHOTO = InputImage(b"\x89PNG-bytes", "image/png", "photo.png")


async def until(condition, timeout: float = 10.0) -> None:
    """Poll the database (as an operator would) until `condition()` holds."""
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_pruning_runs_periodically_as_a_tracked_task(store: Store) -> None:
    await new_conversation(store)
    first = await new_turn(store, inputs=(PHOTO,))
    await finish(store, first)
    now = [time.time()]  # the retention's clock, moved by the test
    tasks = BackgroundTasks()
    retention = InputRetention(store, 30, tasks, interval=0.01, clock=lambda: now[0])
    task = retention.start()
    assert len(tasks) == 1  # held (and its failures logged) by the service's tasks
    second = await new_turn(store, inputs=(PHOTO,))
    await finish(store, second)
    now[0] += 30 * DAY + 60  # (the cutoff itself: tests/unit/test_store.py)
    await until(lambda: _empty(store, first))
    third = await new_turn(store, inputs=(PHOTO,))  # a later pass takes this one too
    await finish(store, third)
    now[0] += 30 * DAY + 60
    await until(lambda: _empty(store, third))
    assert await store.turns.inputs(second) == []
    await tasks.cancel_all()
    assert task.cancelled() and len(tasks) == 0


async def _empty(store: Store, turn_id: int) -> bool:
    return await store.turns.inputs(turn_id) == []


async def test_a_retention_of_zero_prunes_as_each_turn_ends(store: Store) -> None:
    await new_conversation(store)
    done = await new_turn(store, inputs=(PHOTO,))
    waiting = await new_turn(store, inputs=(PHOTO,))
    tasks = BackgroundTasks()
    retention = InputRetention(store, 0, tasks)
    await finish(store, done)
    turn = await store.turns.get(done)
    assert turn is not None
    retention("done", turn, None)
    await tasks.wait(10)
    assert await store.turns.inputs(done) == []
    assert len(await store.turns.inputs(waiting)) == 1  # not over yet: kept
    await store.turns.finish_failed(waiting, status=TurnStatus.cancelled, error_kind="cancelled")
    retention("cancelled", turn, None)
    await tasks.wait(10)
    assert await store.turns.inputs(waiting) == []
