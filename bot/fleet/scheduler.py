"""`FleetScheduler`: the core's `Scheduler` over the fleet-wide queue (see the package's
docstring). It holds this process's side of the queue (its submitted, waiting and running turns)
and runs three loops: claiming, keeping leases, telling queue positions."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections import Counter
from typing import Any

from bot.core.errors import ErrorKind, UserFacingError
from bot.core.jobs import Job, JobRunner, PositionListener, run_logged
from bot.fleet import sql
from bot.fleet.claims import Claims, QueueLimits, RefusalCheck
from bot.fleet.leases import LeaseKeeper
from bot.fleet.listener import Listener
from bot.fleet.positions import Positions
from bot.store.postgres.database import PostgresDatabase

log = logging.getLogger(__name__)

CLAIM_BATCH = 8  # turns claimed in one transaction at most
POSTING_RECHECK = 1.0  # seconds between looks while other processes are posting turns


class FleetScheduler:
    """A `bot.core.jobs.Scheduler` whose queue is the `turns` table, shared by the fleet.
    `refusal` checks each queued turn again at its claim (the app gives `ClaimLimits.refusal`;
    None: not checked)."""

    shared = True

    def __init__(
        self,
        db: PostgresDatabase,
        *,
        max_concurrent: int,
        per_user_concurrent: int = 1,
        per_user_queued: int = 3,
        lease_seconds: float = 30.0,
        owner: str | None = None,
        refusal: RefusalCheck | None = None,
    ) -> None:
        self.max_concurrent = max_concurrent
        self.per_user_concurrent = per_user_concurrent
        self.per_user_queued = per_user_queued
        self.lease_seconds = lease_seconds
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        limits = QueueLimits(max_concurrent, per_user_concurrent, per_user_queued, lease_seconds)
        self._runner: JobRunner | None = None
        self._running: dict[int, Job] = {}
        waiting: dict[int, int] = {}  # this process's waiting turns -> position told (0: none)
        self._claims = Claims(db, limits, self.owner, waiting, refusal)
        self._positions = Positions(waiting, self._claims.positions)
        self._leases = LeaseKeeper(db, self.owner, lease_seconds, self._running)
        self._listener = Listener(db.dsn, {
            sql.TURNS_CHANNEL: self._on_turns, sql.CANCEL_CHANNEL: self._on_cancel,
            sql.MOVED_CHANNEL: self._positions.on_moved,
        }, on_listening=self._wake_up, closed=lambda: self._closed, spawn=self._spawn,
            poll_seconds=lease_seconds / 2)
        self._unfinished: Counter[int] = Counter()  # user -> queued+running turns, fleet-wide snapshot
        self._busy: set[int] = set()  # conversations with unfinished turns (snapshot)
        self._submitted: list[Job] = []  # since the last snapshot
        self._queued_total = 0
        self._wake = asyncio.Event()
        self._mine = False  # woken by this process's own submit or release: a claim is likely
        self._posting_elsewhere = False  # (snapshot) other processes' turns not yet placed
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = False
        self._tasks: list[asyncio.Task[None]] = []
        self._helpers: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------------ the Scheduler protocol
    @property
    def running(self) -> int:
        return len(self._running)

    @property
    def queued(self) -> int:
        return self._queued_total

    def attach(self, run: JobRunner, on_position: PositionListener | None = None) -> None:
        self._runner = run
        self._positions.listener = on_position

    def position(self, turn_id: int) -> int | None:
        """Fleet-wide place of one of this process's waiting turns, as last read."""
        return self._positions.position(turn_id)

    def has_room_for(self, user_id: int) -> bool:
        mine = self._unfinished.get(user_id, 0) + sum(
            1 for job in self._submitted if job.user_id == user_id
        )
        return mine < self.per_user_queued + self.per_user_concurrent

    def has_conversation(self, conversation_id: int) -> bool:
        return conversation_id in self._busy or any(
            job.conversation_id == conversation_id for job in self._submitted
        )

    def submit(self, job: Job, *, force: bool = False) -> int:
        """The turn is already a queued row: tell the fleet (this process included). Returns 0:
        its position reaches `on_position` once the queue has been read."""
        if self._closed:
            raise UserFacingError(ErrorKind.shutting_down)
        if not force and not self.has_room_for(job.user_id):
            raise UserFacingError(ErrorKind.queue_full, limit=self.per_user_queued)
        self._submitted.append(job)
        self._positions.waiting[job.turn_id] = 0  # (read once the claim loop had its chance)
        self._mine = True
        self._wake.set()
        self._spawn(self._claims.notify(sql.TURNS_CHANNEL, self.owner))
        return 0

    async def withdraw(self, turn_id: int) -> str | None:
        self._positions.waiting.pop(turn_id, None)
        job = self._running.get(turn_id)
        if job is not None and job.task is not None:
            job.cancelled_by_user = True
            job.task.cancel()
            return "running"
        return await self._claims.withdraw(turn_id)

    def running_turn_ids(self) -> list[int]:
        return list(self._running)

    async def wait_idle(self) -> None:
        await self._idle.wait()

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Listen for wake-ups and start claiming (after the runner is attached)."""
        await self._listener.start()
        self._tasks = [
            asyncio.create_task(self._claim_loop(), name="fleet-claim"),
            asyncio.create_task(self._leases.keep(), name="fleet-renew"),
            asyncio.create_task(self._positions.keep_told(), name="fleet-positions"),
        ]
        log.info("Fleet queue started as %s", self.owner)

    async def shutdown(self, grace: float) -> None:
        """Claim nothing more; running turns get `grace` seconds, then their leases are handed
        back so that another process resumes them at once."""
        self._closed = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        tasks = [job.task for job in self._running.values() if job.task is not None]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5)
        for helper in list(self._helpers):
            helper.cancel()
        await self._listener.close()

    # ------------------------------------------------------------------ claiming
    async def _claim_loop(self) -> None:
        while not self._closed:
            self._wake.clear()
            mine, self._mine = self._mine, False
            considered = set(self._positions.waiting)
            try:
                # this process's own turn or slot: claim first, read the queue after (off the
                # way to the API); another process's wake-up: claim only if the read says so
                startable = mine or await self._snapshot()
                while startable and not self._closed:
                    room = self.max_concurrent - self._generating()
                    if room <= 0:
                        break
                    assert self._runner is not None, "attach() a runner before start()"
                    jobs = await self._claims.claim(min(room, CLAIM_BATCH), self._runner)
                    if not jobs:
                        break
                    for job in jobs:
                        self._start(job)
                if mine:
                    await self._snapshot()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("Fleet queue: claiming failed; trying again")
            self._positions.looked(considered)
            pause = self.lease_seconds / 2
            if self._posting_elsewhere:
                pause = min(pause, POSTING_RECHECK)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), pause)

    async def _snapshot(self) -> bool:
        """Read the fleet's unfinished turns; whether a claim could start one now."""
        counted = len(self._submitted)  # submitted before the query: its rows include them
        snapshot = await self._claims.snapshot()
        del self._submitted[:counted]
        self._unfinished = Counter(snapshot.authors)
        self._busy = set(snapshot.conversations)
        self._queued_total = snapshot.queued
        self._posting_elsewhere = snapshot.posting_elsewhere
        return snapshot.startable

    def _generating(self) -> int:
        return sum(1 for job in self._running.values() if job.refused is None)

    def _start(self, job: Job) -> None:
        # started here: no longer waiting (as in the in-process scheduler, no position 0 is
        # told: the runner takes it from its queued turns itself), and no POSITIONS read for it
        self._positions.waiting.pop(job.turn_id, None)
        self._running[job.turn_id] = job
        self._idle.clear()
        job.task = asyncio.create_task(self._run(job), name=f"turn-{job.turn_id}")

    async def _run(self, job: Job) -> None:
        try:
            await run_logged(job)
        finally:
            self._running.pop(job.turn_id, None)
            await self._leases.release(job.turn_id)
            self._mine = True  # a slot is free here: claim first
            self._wake.set()
            if not self._running:
                self._idle.set()

    # ------------------------------------------------------------------ wake-ups and helpers
    def _wake_up(self) -> None:
        self._wake.set()

    def _on_turns(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        """Another process queued a turn or freed a slot. (This process's own wake-ups are set
        where it sends them, after the change is committed: hearing them again would only
        repeat the look at the queue.)"""
        if payload != self.owner:
            self._wake.set()  # (positions are read after the claim loop looked)

    def _on_cancel(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        job = self._running.get(int(payload))
        if job is not None and job.task is not None:
            job.cancelled_by_user = True
            job.task.cancel()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._helpers.add(task)
        task.add_done_callback(self._helper_done)

    def _helper_done(self, task: asyncio.Task[Any]) -> None:
        self._helpers.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("Fleet queue: a notification failed: %s", task.exception())
