"""The fair scheduler: limits, per-conversation order, round robin, positions, cancellation."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import pytest

from bot.core.errors import ErrorKind, UserFacingError
from bot.core.jobs import Job, JobScheduler

ALICE, BOB, CAROL, DAVE = 1, 2, 3, 4


class Gate:
    """Jobs whose end the test decides: each waits for its own release."""

    def __init__(self) -> None:
        self.started: list[int] = []
        self.finished: list[int] = []
        self.cancelled: dict[int, bool] = {}  # turn -> job.cancelled_by_user when cancelled
        self.running: set[int] = set()
        self.max_running = 0
        self._release: dict[int, asyncio.Event] = defaultdict(asyncio.Event)
        self._started_event: dict[int, asyncio.Event] = defaultdict(asyncio.Event)

    def job(self, turn_id: int, user_id: int, conversation_id: int | None = None) -> Job:
        return Job(turn_id, user_id, conversation_id or 1000 + turn_id, self.run)

    async def run(self, job: Job) -> None:
        self.started.append(job.turn_id)
        self.running.add(job.turn_id)
        self.max_running = max(self.max_running, len(self.running))
        self._started_event[job.turn_id].set()
        try:
            await self._release[job.turn_id].wait()
        except asyncio.CancelledError:
            self.cancelled[job.turn_id] = job.cancelled_by_user
            raise
        finally:
            self.running.discard(job.turn_id)
        self.finished.append(job.turn_id)

    async def wait_started(self, turn_id: int) -> None:
        await asyncio.wait_for(self._started_event[turn_id].wait(), 2)

    async def release(self, turn_id: int) -> None:
        """Let a job finish, and give the scheduler a moment to start the next."""
        self._release[turn_id].set()
        await settle()


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


# --------------------------------------------------------------------------- limits


async def test_global_limit_is_respected() -> None:
    gate = Gate()
    scheduler = JobScheduler(max_concurrent=2)
    for turn_id, user in enumerate((ALICE, BOB, CAROL, DAVE), 1):
        scheduler.submit(gate.job(turn_id, user))
    await settle()
    assert gate.started == [1, 2]
    assert (scheduler.running, scheduler.queued) == (2, 2)

    await gate.release(1)
    assert gate.started == [1, 2, 3]
    await gate.release(2)
    await gate.release(3)
    await gate.release(4)
    await asyncio.wait_for(scheduler.wait_idle(), 2)
    assert gate.finished == [1, 2, 3, 4]
    assert gate.max_running == 2
    assert (scheduler.running, scheduler.queued) == (0, 0)


async def test_one_job_per_user_at_a_time() -> None:
    gate = Gate()
    scheduler = JobScheduler(max_concurrent=4, per_user_concurrent=1, per_user_queued=5)
    for turn_id in (1, 2, 3):
        scheduler.submit(gate.job(turn_id, ALICE))  # three different conversations
    scheduler.submit(gate.job(4, BOB))
    await settle()
    assert sorted(gate.started) == [1, 4]  # Bob is not held up by Alice's queue
    assert scheduler.queued_for(ALICE) == 2

    await gate.release(1)
    assert gate.started[-1] == 2 and 3 not in gate.started
    await gate.release(2)
    await gate.release(3)
    await gate.release(4)
    await asyncio.wait_for(scheduler.wait_idle(), 2)
    assert gate.started == [1, 4, 2, 3]
    assert gate.max_running == 2


async def test_per_user_queue_limit() -> None:
    gate = Gate()
    scheduler = JobScheduler(max_concurrent=4, per_user_concurrent=1, per_user_queued=2)
    assert scheduler.submit(gate.job(1, ALICE)) == 0  # started at once
    assert scheduler.submit(gate.job(2, ALICE)) == 1
    assert scheduler.submit(gate.job(3, ALICE)) == 2
    assert not scheduler.has_room_for(ALICE)
    with pytest.raises(UserFacingError) as excinfo:
        scheduler.submit(gate.job(4, ALICE))
    assert excinfo.value.kind is ErrorKind.queue_full
    assert excinfo.value.params["limit"] == 2
    assert not scheduler.has(4)
    # someone else still has room, and a recovered job is always taken back
    assert scheduler.has_room_for(BOB)
    scheduler.submit(gate.job(5, ALICE), force=True)
    assert scheduler.has(5)

    await gate.release(1)  # a slot of Alice's frees up
    assert scheduler.has_room_for(ALICE) is False  # 2, 3, 5 still hers
    for turn_id in (2, 3, 5):
        await gate.release(turn_id)
    await asyncio.wait_for(scheduler.wait_idle(), 2)
    assert 4 not in gate.started
    assert scheduler.has_room_for(ALICE)


async def test_submitting_the_same_turn_twice_is_a_no_op() -> None:
    gate = Gate()
    scheduler = JobScheduler(max_concurrent=1)
    scheduler.submit(gate.job(1, ALICE))
    scheduler.submit(gate.job(2, BOB))
    assert scheduler.submit(gate.job(2, BOB)) == 1
    assert scheduler.queued == 1
    await gate.release(1)
    await gate.release(2)
    await asyncio.wait_for(scheduler.wait_idle(), 2)
    assert gate.started == [1, 2]


# --------------------------------------------------------------------------- order


async def test_strict_order_inside_a_conversation_even_across_users() -> None:
    gate = Gate()
    scheduler = JobScheduler(max_concurrent=4, per_user_queued=5)
    thread = 77
    scheduler.submit(gate.job(1, ALICE, thread))
    scheduler.submit(gate.job(2, BOB, thread))
    scheduler.submit(gate.job(3, ALICE, thread))
    scheduler.submit(gate.job(4, CAROL, 88))  # another thread runs in parallel
    await settle()
    assert gate.started == [1, 4]

    await gate.release(1)
    # Alice is free again, but turn 2 (Bob's) came first in this thread
    assert gate.started == [1, 4, 2]
    await gate.release(2)
    assert gate.started == [1, 4, 2, 3]
    await gate.release(3)
    await gate.release(4)
    await asyncio.wait_for(scheduler.wait_idle(), 2)
    assert gate.max_running == 2  # never two turns of thread 77 at once


async def test_a_later_turn_waits_for_an_earlier_one_held_up_by_its_author() -> None:
    gate = Gate()
    scheduler = JobScheduler(max_concurrent=4, per_user_concurrent=1, per_user_queued=5)
    scheduler.submit(gate.job(1, ALICE, 10))
    scheduler.submit(gate.job(2, ALICE, 20))  # waits: Alice already has one running
    scheduler.submit(gate.job(3, BOB, 20))  # Bob is free, thread 20 is idle, but 2 came first
    await settle()
    assert gate.started == [1]
    assert [scheduler.position(t) for t in (2, 3)] == [1, 2]

    await gate.release(1)
    assert gate.started == [1, 2]
    await gate.release(2)
    assert gate.started == [1, 2, 3]
    await gate.release(3)
    await asyncio.wait_for(scheduler.wait_idle(), 2)


async def test_round_robin_between_users() -> None:
    gate = Gate()
    scheduler = JobScheduler(max_concurrent=1, per_user_queued=10)
    for turn_id in range(1, 6):  # Alice submits five
        scheduler.submit(gate.job(turn_id, ALICE))
    await settle()
    scheduler.submit(gate.job(6, BOB))  # Bob, later, one
    await settle()
    assert gate.started == [1]

    for turn_id in (1, 6, 2, 3, 4, 5):
        await gate.release(turn_id)
    await asyncio.wait_for(scheduler.wait_idle(), 2)
    assert gate.started == [1, 6, 2, 3, 4, 5]  # Bob's starts second, not sixth


async def test_round_robin_alternates_between_busy_users() -> None:
    gate = Gate()
    scheduler = JobScheduler(max_concurrent=1, per_user_queued=10)
    for turn_id in (1, 2, 3):
        scheduler.submit(gate.job(turn_id, ALICE))
    for turn_id in (4, 5, 6):
        scheduler.submit(gate.job(turn_id, BOB))
    scheduler.submit(gate.job(7, CAROL))
    await settle()
    for turn_id in (1, 4, 7, 2, 5, 3, 6):
        await gate.release(turn_id)
    await asyncio.wait_for(scheduler.wait_idle(), 2)
    assert gate.started == [1, 4, 7, 2, 5, 3, 6]


# --------------------------------------------------------------------------- positions


async def test_positions_are_reported_and_decrease() -> None:
    reports: list[tuple[int, int]] = []
    gate = Gate()
    scheduler = JobScheduler(
        max_concurrent=1, per_user_queued=5, on_position=lambda t, p: reports.append((t, p))
    )
    assert scheduler.submit(gate.job(1, ALICE)) == 0
    assert scheduler.submit(gate.job(2, BOB)) == 1
    assert scheduler.submit(gate.job(3, CAROL)) == 2
    assert scheduler.submit(gate.job(4, DAVE)) == 3
    assert [scheduler.position(t) for t in (1, 2, 3, 4)] == [None, 1, 2, 3]
    assert reports == [(2, 1), (3, 2), (4, 3)]  # each reported once, when it changed

    reports.clear()
    await gate.release(1)
    assert reports == [(3, 1), (4, 2)]  # 2 started: it gets no position any more
    assert scheduler.position(2) is None

    reports.clear()
    await gate.release(2)
    assert reports == [(4, 1)]

    await gate.release(3)
    await gate.release(4)
    await asyncio.wait_for(scheduler.wait_idle(), 2)
    assert scheduler.position(4) is None


async def test_a_failing_position_listener_does_not_stop_the_queue() -> None:
    def broken(turn_id: int, position: int) -> None:
        raise RuntimeError("listener bug")

    gate = Gate()
    scheduler = JobScheduler(max_concurrent=1, on_position=broken)
    scheduler.submit(gate.job(1, ALICE))
    scheduler.submit(gate.job(2, BOB))
    await gate.release(1)
    await gate.release(2)
    await asyncio.wait_for(scheduler.wait_idle(), 2)
    assert gate.finished == [1, 2]


# --------------------------------------------------------------------------- cancellation


async def test_cancel_a_queued_job() -> None:
    reports: list[tuple[int, int]] = []
    gate = Gate()
    scheduler = JobScheduler(
        max_concurrent=1, on_position=lambda t, p: reports.append((t, p))
    )
    scheduler.submit(gate.job(1, ALICE))
    scheduler.submit(gate.job(2, BOB))
    scheduler.submit(gate.job(3, CAROL))
    reports.clear()

    assert scheduler.cancel(2) == "queued"
    assert not scheduler.has(2)
    assert scheduler.position(3) == 1
    assert reports == [(3, 1)]
    assert scheduler.cancel(2) is None  # already gone

    await gate.release(1)
    await gate.release(3)
    await asyncio.wait_for(scheduler.wait_idle(), 2)
    assert gate.started == [1, 3]
    assert 2 not in gate.started


async def test_cancel_a_running_job() -> None:
    gate = Gate()
    scheduler = JobScheduler(max_concurrent=1)
    scheduler.submit(gate.job(1, ALICE))
    scheduler.submit(gate.job(2, BOB))
    await gate.wait_started(1)

    assert scheduler.cancel(1) == "running"
    await settle()
    assert gate.cancelled == {1: True}  # the task saw CancelledError, flagged as the user's
    assert 1 not in gate.finished
    assert gate.started == [1, 2]  # the slot went to the next job
    assert scheduler.cancel(1) is None

    await gate.release(2)
    await asyncio.wait_for(scheduler.wait_idle(), 2)
    assert gate.finished == [2]


async def test_cancel_an_unknown_job() -> None:
    assert JobScheduler(max_concurrent=1).cancel(12345) is None


async def test_a_crashing_job_frees_its_slot() -> None:
    order: list[int] = []

    async def crash(job: Job) -> None:
        order.append(job.turn_id)
        raise RuntimeError("bug in the job")

    scheduler = JobScheduler(max_concurrent=1)
    scheduler.submit(Job(1, ALICE, 10, crash))
    scheduler.submit(Job(2, ALICE, 10, crash))
    await asyncio.wait_for(scheduler.wait_idle(), 2)
    assert order == [1, 2]
    assert scheduler.running == 0


# --------------------------------------------------------------------------- shutdown


@pytest.mark.wall_clock
async def test_shutdown_lets_short_jobs_finish_and_cancels_long_ones() -> None:
    outcome: dict[int, str] = {}

    def sleeper(seconds: float):
        async def run(job: Job) -> None:
            try:
                await asyncio.sleep(seconds)
            except asyncio.CancelledError:
                outcome[job.turn_id] = f"cancelled(by_user={job.cancelled_by_user})"
                raise
            outcome[job.turn_id] = "finished"

        return run

    scheduler = JobScheduler(max_concurrent=2)
    scheduler.submit(Job(1, ALICE, 10, sleeper(0.05)))
    scheduler.submit(Job(2, BOB, 20, sleeper(30)))
    scheduler.submit(Job(3, CAROL, 30, sleeper(0.01)))  # queued: left for the next start
    await settle()

    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.wait_for(scheduler.shutdown(grace=0.3), 3)
    elapsed = loop.time() - started

    assert outcome == {1: "finished", 2: "cancelled(by_user=False)"}
    assert 0.25 <= elapsed < 2
    assert scheduler.running == 0 and scheduler.queued == 0
    with pytest.raises(UserFacingError) as excinfo:
        scheduler.submit(Job(4, DAVE, 40, sleeper(0)))
    assert excinfo.value.kind is ErrorKind.shutting_down
    await asyncio.wait_for(scheduler.wait_idle(), 1)
    assert 3 not in outcome


async def test_shutdown_without_running_jobs_returns_at_once() -> None:
    scheduler = JobScheduler(max_concurrent=1)
    await asyncio.wait_for(scheduler.shutdown(grace=10), 0.5)


# --------------------------------------------------------------------------- variants
def variant(gate: Gate, turn_id: int, group: int | None, conversation_id: int = 7) -> Job:
    return Job(turn_id, ALICE, conversation_id, gate.run, group=group)


async def test_variants_of_one_set_run_side_by_side_and_the_thread_waits_for_all():
    gate = Gate()
    scheduler = JobScheduler(max_concurrent=8, per_user_concurrent=4, per_user_queued=8)
    for turn_id in (1, 2, 3):
        scheduler.submit(variant(gate, turn_id, group=99))
    scheduler.submit(variant(gate, 4, group=None))  # a plain reply after the set
    await settle()
    assert sorted(gate.started) == [1, 2, 3]
    await gate.release(1)
    await gate.release(2)
    assert 4 not in gate.started  # the thread's next turn waits for the whole set
    await gate.release(3)
    await gate.wait_started(4)
    await gate.release(4)


async def test_another_set_in_the_thread_waits_for_the_running_one():
    gate = Gate()
    scheduler = JobScheduler(max_concurrent=8, per_user_concurrent=4, per_user_queued=8)
    scheduler.submit(variant(gate, 1, group=5))
    scheduler.submit(variant(gate, 2, group=6))
    await settle()
    assert gate.started == [1]
    await gate.release(1)
    await gate.wait_started(2)
    await gate.release(2)
