"""The queue's turns in PostgreSQL: what a claim reads and writes, the snapshot of the fleet's
unfinished turns, a withdrawal, positions and wake-ups (the statements are in `sql.py`).

A claim asks its refusal check (given by the app: `bot.core.claim_limits.ClaimLimits.refusal`)
about each queued turn it is about to start; this package builds no check of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bot.core.claim_limits import ClaimedTurn
from bot.core.errors import ErrorKind, UserFacingError
from bot.core.jobs import Job, JobRunner
from bot.fleet import sql
from bot.store.postgres.database import CLAIM_LOCK, PostgresDatabase
from bot.store.protocol import Row

log = logging.getLogger(__name__)

# Why a queued turn may no longer start at its claim (admission's message), or None.
RefusalCheck = Callable[[ClaimedTurn], Awaitable[UserFacingError | None]]


@dataclass(frozen=True, slots=True)
class QueueLimits:
    """The fleet-wide and per-user limits, and how long a claim's lease lasts unrenewed."""

    max_concurrent: int
    per_user_concurrent: int
    per_user_queued: int
    lease_seconds: float

    @property
    def per_user_unfinished(self) -> int:
        return self.per_user_queued + self.per_user_concurrent


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The fleet's unfinished turns as one read saw them."""

    authors: list[int]  # one entry per queued or running turn
    conversations: list[int]
    queued: int
    posting_elsewhere: bool  # other processes' waiting turns not yet given a progress message
    startable: bool  # whether a claim could start a turn now


class Claims:
    """Reads and writes of the `turns` queue for one process (`owner`). `waiting` is the
    process's own waiting turns (read live: turns it is still posting are left to it)."""

    def __init__(self, db: PostgresDatabase, limits: QueueLimits, owner: str,
                 waiting: Mapping[int, int], refusal: RefusalCheck | None) -> None:
        self.db = db
        self.limits = limits
        self.owner = owner
        self._waiting = waiting
        self._refusal_check = refusal  # (None: the caps and daily images are not checked again)

    async def snapshot(self) -> Snapshot:
        """Read the fleet's unfinished turns; whether a claim could start one now."""
        row = await self.db.fetchone(sql.SNAPSHOT, (list(self._waiting), *self._startable_params()))
        assert row is not None
        return Snapshot(row["authors"], row["conversations"], row["queued"],
                        row["posting_elsewhere"] > 0, bool(row["startable"]))

    def _startable_params(self) -> tuple[Any, ...]:
        limits = self.limits
        return (limits.max_concurrent, limits.per_user_concurrent, list(self._waiting),
                limits.lease_seconds)

    async def claim(self, batch: int, runner: JobRunner) -> list[Job]:
        """Claim up to `batch` turns in one transaction (CLAIM's order, each checked as if
        claimed alone): those started and those refused on the way (a limit passed by
        admissions in two processes at once), or nothing.

        Claims take `CLAIM_LOCK`, not the store's write lock. Only a claim starts a turn (makes
        it running under a live lease), so CLAIM's counts (the fleet's and the user's running
        turns) can grow only by another claim, which this lock keeps out; what other writers do
        meanwhile only shrinks them (a turn finishes, a lease is given back) or adds queued turns
        with higher ids, which neither CLAIM's thread order, OVERFLOW's cut of the latest
        admitted, nor the limits' reads (of turns admitted before this one) count: the claim sees
        what it would have seen just before or just after those writes. (That a turn admitted
        later has a higher id holds as far as admissions commit in id order: the write lock
        never ordered a turn inserted outside a transaction, so claims taking it would not
        either.) A turn finishing
        meanwhile moves from reserved to spent, from pending to images made: each limit reads
        both in one statement (`ClaimLimits`), so it counts the turn once. A withdrawal meets a
        claim on the turn's row lock: CLAIM skips a row being withdrawn, and a withdrawal waits
        for a claim of its row and then finds it running."""
        jobs: list[Job] = []
        async with self.db.transaction(lock=CLAIM_LOCK):
            rows = await self.db.fetchall(sql.CLAIM, (
                *self._startable_params(), batch, self.limits.max_concurrent,
            ))
            for row in rows:
                jobs += await self._claim_one(row, runner)
        return jobs

    async def _claim_one(self, row: Row, runner: JobRunner) -> list[Job]:
        """The claimed turn, started or refused, and its user's turns cut from a full queue."""
        refused: list[Job] = []
        if row["unfinished"] > self.limits.per_user_unfinished:
            refused = await self._overflow(row["author_id"], runner)
            if any(job.turn_id == row["id"] for job in refused):
                return refused
        error = await self._refusal(row)
        if error is not None:
            await self.db.execute(sql.REFUSE, (error.kind.name, sql.REFUSED_DETAIL, row["id"]))
            return [*refused, _job(row, runner, refused=error)]
        await self._take(row)
        log.debug("Fleet queue: %s claimed turn %s", self.owner, row["id"])
        return [*refused, _job(row, runner)]

    async def _overflow(self, author_id: int, runner: JobRunner) -> list[Job]:
        rows = await self.db.fetchall(sql.OVERFLOW, (
            sql.REFUSED_DETAIL, author_id, self.limits.per_user_unfinished,
            list(self._waiting), self.limits.lease_seconds,
        ))
        error = UserFacingError(ErrorKind.queue_full, limit=self.limits.per_user_queued)
        return [_job(row, runner, refused=error) for row in rows]

    async def _refusal(self, row: Row) -> UserFacingError | None:
        """Why a queued turn may no longer start; a turn taken over from a dead process
        (running) is resumed whatever the limits say: its generation may be paid for."""
        if self._refusal_check is None or row["status"] != "queued":
            return None
        return await self._refusal_check(ClaimedTurn(
            id=row["id"], author_id=row["author_id"], guild_id=row["guild_id"],
            reserved_usd=row["reserved_usd"], own_key=bool(row["own_key"]),
            exempt=bool(row["exempt"]),
        ))

    async def _take(self, row: Row) -> None:
        """Mark the turn running under this process's lease; its user goes last in the round;
        the fleet hears that the queue moved (on commit)."""
        await self.db.execute(sql.TAKE, (
            row["id"], row["id"], self.owner, self.limits.lease_seconds, row["author_id"],
        ))

    async def withdraw(self, turn_id: int) -> str | None:
        """Cancel a turn no job of this process runs: "queued" (cancelled here: nobody may claim
        it any more), "running" (its process is told to stop it) or None (not unfinished)."""
        async with self.db.transaction():
            row = await self.db.fetchone(sql.WITHDRAWN, (turn_id,))
            if row is None or row["status"] not in ("queued", "running"):
                return None
            if row["status"] == "running" and row["live"]:
                await self.notify(sql.CANCEL_CHANNEL, str(turn_id))  # delivered on commit
                return "running"
            # waiting, or its process is gone: nobody may claim it any more
            await self.db.execute(sql.CANCEL, (turn_id,))
            await self.notify(sql.MOVED_CHANNEL, "")
            return "queued"

    async def positions(self, turn_ids: list[int]) -> dict[int, int]:
        """The fleet-wide places of these waiting turns (those no longer waiting are left out)."""
        rows = await self.db.fetchall(sql.POSITIONS, (turn_ids,))
        return {row["id"]: row["position"] for row in rows}

    async def notify(self, channel: str, payload: str) -> None:
        await self.db.execute(sql.NOTIFY, (channel, payload))


def _job(row: Row, runner: JobRunner, *, refused: UserFacingError | None = None) -> Job:
    return Job(row["id"], row["author_id"], row["conversation_id"], runner, refused=refused)
