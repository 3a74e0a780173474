"""Scheduling generations: a global limit, per-user limits, strict order inside a thread, and
round-robin fairness between users so that one person's burst cannot starve the others.

The scheduler only decides *when* a job runs. What a job does is the caller's coroutine.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from bot.core.errors import ErrorKind, UserFacingError

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Job:
    """One turn waiting for, or holding, a generation slot."""

    turn_id: int
    user_id: int
    conversation_id: int
    run: Callable[[Job], Awaitable[None]]
    cancelled_by_user: bool = False
    task: asyncio.Task[None] | None = field(default=None, repr=False)
    group: int | None = None  # variants asked for together run side by side in their thread
    # set when the fleet queue refused the turn at its claim (a limit passed by admissions in
    # two processes at once): recorded so there; its run only shows why, with no API call
    refused: UserFacingError | None = None
    # admitted moments ago and started at once: its access need not be checked again
    admitted_now: bool = False


# (turn id, its place in the queue from 1; 0: it left the queue, started here or elsewhere)
PositionListener = Callable[[int, int], None]
JobRunner = Callable[[Job], Awaitable[None]]


class Scheduler(Protocol):
    """What the conversation service needs from a scheduler: `JobScheduler` below (one process)
    or a fleet-wide queue shared through the database (`bot/fleet/`)."""

    per_user_queued: int
    shared: bool  # True: turns are claimed from the database by any process of the fleet

    @property
    def running(self) -> int: ...

    @property
    def queued(self) -> int: ...

    def attach(self, run: JobRunner, on_position: PositionListener | None = None) -> None:
        """The coroutine that runs a turn the scheduler starts on its own (a claimed turn), and
        who hears of waiting turns' queue positions."""

    def position(self, turn_id: int) -> int | None:
        """A waiting turn's place in the queue as last known (None: not known here)."""

    def has_room_for(self, user_id: int) -> bool: ...

    def has_conversation(self, conversation_id: int) -> bool: ...

    def submit(self, job: Job, *, force: bool = False) -> int: ...

    async def withdraw(self, turn_id: int) -> str | None:
        """Cancel at the user's request: "queued", "running" or None (see `JobScheduler.cancel`)."""

    def running_turn_ids(self) -> list[int]: ...

    async def shutdown(self, grace: float) -> None: ...

    async def wait_idle(self) -> None: ...


class JobScheduler:
    """Fair queue in front of the image API, inside one process."""

    shared = False

    def __init__(
        self,
        *,
        max_concurrent: int,
        per_user_concurrent: int = 1,
        per_user_queued: int = 3,
        on_position: PositionListener | None = None,
    ) -> None:
        self.max_concurrent = max_concurrent
        self.per_user_concurrent = per_user_concurrent
        self.per_user_queued = per_user_queued
        self._on_position = on_position
        self._queues: OrderedDict[int, deque[Job]] = OrderedDict()  # user -> jobs, rotation order
        self._jobs: dict[int, Job] = {}  # turn id -> job (queued or running)
        self._running: dict[int, Job] = {}
        self._running_per_user: dict[int, int] = {}
        self._busy_conversations: set[int] = set()
        self._busy_groups: dict[int, tuple[int | None, int]] = {}  # conversation -> (group, running)
        self._conversation_order: dict[int, deque[int]] = {}  # conversation -> queued turn ids
        self._positions: dict[int, int] = {}
        # round robin: user -> when a job of theirs last started (users never served come first)
        self._served: dict[int, int] = {}
        self._serve_count = 0
        self._closed = False
        self._idle = asyncio.Event()
        self._idle.set()

    # ----- queries -----
    @property
    def running(self) -> int:
        return len(self._running)

    @property
    def queued(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def queued_for(self, user_id: int) -> int:
        return len(self._queues.get(user_id, ()))

    def running_turn_ids(self) -> list[int]:
        return list(self._running)

    def has_room_for(self, user_id: int) -> bool:
        """Whether a user may queue one more job."""
        waiting = self.queued_for(user_id) + self._running_per_user.get(user_id, 0)
        return waiting < self.per_user_queued + self.per_user_concurrent

    def position(self, turn_id: int) -> int | None:
        return self._positions.get(turn_id)

    def has_conversation(self, conversation_id: int) -> bool:
        """Whether a job of this conversation is queued or running."""
        return conversation_id in self._busy_conversations or bool(
            self._conversation_order.get(conversation_id)
        )

    def has(self, turn_id: int) -> bool:
        return turn_id in self._jobs

    # ----- commands -----
    def attach(self, run: JobRunner, on_position: PositionListener | None = None) -> None:
        """Every job here was submitted with its own `run`; positions go to `on_position`
        unless a listener was given at construction."""
        if self._on_position is None:
            self._on_position = on_position

    async def withdraw(self, turn_id: int) -> str | None:
        return self.cancel(turn_id)

    def submit(self, job: Job, *, force: bool = False) -> int:
        """Queue a job; returns its position (0 = started at once).

        Raises `UserFacingError(queue_full)` when the user already has too many waiting, unless
        `force` (jobs recovered after a restart are always taken back).
        """
        if self._closed:
            raise UserFacingError(ErrorKind.shutting_down)
        if job.turn_id in self._jobs:
            return self._positions.get(job.turn_id, 0)
        if not force and not self.has_room_for(job.user_id):
            raise UserFacingError(ErrorKind.queue_full, limit=self.per_user_queued)
        self._jobs[job.turn_id] = job
        self._queues.setdefault(job.user_id, deque()).append(job)
        self._conversation_order.setdefault(job.conversation_id, deque()).append(job.turn_id)
        self._idle.clear()
        self._pump()
        if job.task is None:
            job.admitted_now = False  # it waits: things may change before it starts
        return self._positions.get(job.turn_id, 0)

    def cancel(self, turn_id: int) -> str | None:
        """Cancel a job at the user's request.

        Returns "queued" (removed; the caller records the outcome), "running" (its task is
        cancelled and records the outcome itself), or None when the job is not here.
        """
        job = self._jobs.get(turn_id)
        if job is None:
            return None
        job.cancelled_by_user = True
        if job.task is not None:
            job.task.cancel()
            return "running"
        self._remove_queued(job)
        self._jobs.pop(turn_id, None)
        self._positions.pop(turn_id, None)
        self._pump()
        return "queued"

    async def shutdown(self, grace: float) -> None:
        """Take no new jobs; let running ones finish for `grace` seconds, then cancel them.

        Queued and cancelled-at-shutdown jobs are left for the next start (their turns are still
        queued/running in the store).
        """
        self._closed = True
        for queue in self._queues.values():
            for job in queue:
                self._jobs.pop(job.turn_id, None)
        self._queues.clear()
        self._conversation_order.clear()
        self._positions.clear()
        tasks = [job.task for job in self._running.values() if job.task is not None]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5)

    async def wait_idle(self) -> None:
        await self._idle.wait()

    # ----- internals -----
    def _remove_queued(self, job: Job) -> None:
        queue = self._queues.get(job.user_id)
        if queue is not None and job in queue:
            queue.remove(job)
            if not queue:
                del self._queues[job.user_id]
        order = self._conversation_order.get(job.conversation_id)
        if order is not None and job.turn_id in order:
            order.remove(job.turn_id)
            if not order:
                del self._conversation_order[job.conversation_id]

    def _eligible(self, job: Job, busy: set[int], check_user: bool = True) -> bool:
        if job.conversation_id in busy and not self._beside_siblings(job):
            return False
        order = self._conversation_order.get(job.conversation_id)
        if order and order[0] != job.turn_id and not self._siblings_ahead(job, order):
            return False
        return not (
            check_user
            and self._running_per_user.get(job.user_id, 0) >= self.per_user_concurrent
        )

    def _beside_siblings(self, job: Job) -> bool:
        """A variant may run while only its own siblings run in its thread."""
        running = self._busy_groups.get(job.conversation_id)
        return job.group is not None and running is not None and running[0] == job.group

    def _siblings_ahead(self, job: Job, order: deque[int]) -> bool:
        """A variant may start ahead of its turn in the thread's line only past its siblings."""
        if job.group is None:
            return False
        for turn_id in order:
            if turn_id == job.turn_id:
                return True
            ahead = self._jobs.get(turn_id)
            if ahead is None or ahead.group != job.group:
                return False
        return False

    def _pick(self) -> Job | None:
        for user_id in _rotation(self._queues, self._served):
            for job in self._queues[user_id]:
                if self._eligible(job, self._busy_conversations):
                    self._serve_count += 1  # round robin: this user goes last
                    self._served[user_id] = self._serve_count
                    return job
        return None

    def _pump(self) -> None:
        while len(self._running) < self.max_concurrent:
            job = self._pick()
            if job is None:
                break
            self._remove_queued(job)
            self._start(job)
        for user_id in [u for u in self._served if u not in self._queues]:
            if user_id not in self._running_per_user:
                del self._served[user_id]  # nothing waiting or running: forget the user
        self._update_positions()
        if not self._jobs:
            self._idle.set()

    def _start(self, job: Job) -> None:
        self._running[job.turn_id] = job
        self._running_per_user[job.user_id] = self._running_per_user.get(job.user_id, 0) + 1
        self._busy_conversations.add(job.conversation_id)
        _, running = self._busy_groups.get(job.conversation_id, (job.group, 0))
        self._busy_groups[job.conversation_id] = (job.group, running + 1)
        self._positions.pop(job.turn_id, None)
        job.task = asyncio.get_running_loop().create_task(
            self._run(job), name=f"turn-{job.turn_id}"
        )

    async def _run(self, job: Job) -> None:
        try:
            await run_logged(job)
        finally:
            self._running.pop(job.turn_id, None)
            self._jobs.pop(job.turn_id, None)
            count = self._running_per_user.get(job.user_id, 1) - 1
            if count:
                self._running_per_user[job.user_id] = count
            else:
                self._running_per_user.pop(job.user_id, None)
            group, running = self._busy_groups.pop(job.conversation_id, (None, 1))
            if running > 1:
                self._busy_groups[job.conversation_id] = (group, running - 1)
            else:
                self._busy_conversations.discard(job.conversation_id)
            if not self._closed:
                self._pump()
            elif not self._running:
                self._idle.set()

    def _simulated_order(self) -> list[int]:
        """The order queued jobs would start in if each ran alone, for queue positions.

        The same rule as `_pick` (least recently served user first, ties by arrival; a thread's
        turns in order) with a heap, so that hundreds of waiting turns stay cheap to rank.
        """
        order_by_conv = {c: deque(o) for c, o in self._conversation_order.items()}
        queues = {u: list(q) for u, q in self._queues.items()}
        heap = [(self._served.get(u, 0), i, u) for i, u in enumerate(self._queues)]
        heapq.heapify(heap)
        blocked: list[tuple[int, int, int]] = []  # users whose turns all wait behind others'
        count = self._serve_count
        result: list[int] = []
        while heap:
            entry = heapq.heappop(heap)
            user_id = entry[2]
            job = next(
                (j for j in queues[user_id] if order_by_conv[j.conversation_id][0] == j.turn_id),
                None,
            )
            if job is None:
                blocked.append(entry)
                continue
            queues[user_id].remove(job)
            order_by_conv[job.conversation_id].popleft()
            result.append(job.turn_id)
            count += 1
            if queues[user_id]:
                heapq.heappush(heap, (count, entry[1], user_id))
            for waiting in blocked:  # the pick may have unblocked them
                heapq.heappush(heap, waiting)
            blocked.clear()
        return result

    def _update_positions(self) -> None:
        order = self._simulated_order()
        new = {turn_id: index + 1 for index, turn_id in enumerate(order)}
        changed = [(t, p) for t, p in new.items() if self._positions.get(t) != p]
        self._positions = new
        if self._on_position is not None:
            for turn_id, position in changed:
                try:
                    self._on_position(turn_id, position)
                except Exception:
                    log.exception("Position listener failed")


def _rotation(users: Iterable[int], served: dict[int, int]) -> list[int]:
    """Users in round-robin order: least recently served first, then in order of arrival."""
    return sorted(users, key=lambda user_id: served.get(user_id, 0))


async def run_logged(job: Job) -> None:
    """Run a job's turn; its cancellation or an unexpected crash is logged, not raised (every
    scheduler runs its jobs this way and then frees the job's slot)."""
    try:
        await job.run(job)
    except asyncio.CancelledError:
        log.debug("Turn %s cancelled", job.turn_id)
    except Exception:
        log.exception("Turn %s failed unexpectedly", job.turn_id)
