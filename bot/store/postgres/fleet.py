"""The fleet-wide queue: every process of a fleet claims turns from PostgreSQL.

Turns are rows. A process claims the next turn in one transaction: the fairness rule of
`bot.core.jobs` in `ORDER BY` (least recently served user first, then arrival; a thread's turns
strictly in order), `MAX_CONCURRENT_GENERATIONS` counted over the whole fleet and the user's
running limit checked in the same statement, `FOR UPDATE SKIP LOCKED`. Claims are serialised with
each other by an advisory lock of their own (`CLAIM_LOCK`), not with the store's other
transactions (see `_claim` for why that is enough). A claim is five round trips: BEGIN with the
lock, CLAIM, the limits' reads, TAKE (the turn, its lease, its user's place in the round and the
wake-up in one statement), COMMIT.
Admission checks limits inside one process, so two processes admitting at once can pass one; the
claim checks them again in its transaction (`bot.core.claim_limits`: spend caps and daily images
for the claimed turn, the user's queue room as a cut of their latest admitted turns), and a turn
that no longer fits is refused there: recorded failed (its reservation released), shown to its
author with admission's message, never sent to the API.

A claimed turn holds a lease (`fleet_leases.lease_until`) that its process renews while it runs.
When a process dies its leases run out and another process claims the turn again; the service then
resumes the generation by its stored response id instead of generating a second time.
Idle processes sleep until `NOTIFY imagine_turns` (a turn was queued or a slot freed), waking at
least every half lease to look for expired leases. A dropped LISTEN connection is reconnected
(backing off up to 30 s); meanwhile the half-lease wake-ups keep the queue going, slowly.
Each process tells its own waiting turns their fleet-wide place (`POSITIONS`, CLAIM's order) after
every look at the queue and on `NOTIFY imagine_moved` (a turn left the queue somewhere).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections import Counter
from typing import TYPE_CHECKING, Any

import asyncpg

from bot.core.claim_limits import ClaimedTurn, ClaimLimits
from bot.core.errors import ErrorKind, UserFacingError
from bot.core.jobs import Job, JobRunner, PositionListener, run_logged
from bot.store.postgres.database import CLAIM_LOCK, PostgresDatabase
from bot.store.protocol import Row
from bot.store.repositories import Store as SqlStore

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.core.policy import Ceilings
    from bot.store.protocol import Store

log = logging.getLogger(__name__)

TURNS_CHANNEL = "imagine_turns"
CANCEL_CHANNEL = "imagine_cancel"
MOVED_CHANNEL = "imagine_moved"  # a waiting turn left the queue: positions changed
LISTEN_RETRY_FIRST = 0.5  # seconds before reconnecting a dropped LISTEN connection, doubling
LISTEN_RETRY_MAX = 30.0

_NOW = "extract(epoch FROM now())::float8"

# A turn whose progress message its process is still posting (its image is asked for first, by
# that process) is left to that process, unless it has been waiting a whole lease (the process
# may have died before posting it). Parameters: this process's waiting turns, the lease.
_PLACED = ("({t}progress_message_id IS NOT NULL OR {t}id = ANY(?::bigint[]) "
           f"OR {{t}}created_at < {_NOW} - ?)")

# The running turns under a live lease, and how many each user has: counted once per statement
# and joined (not counted again for every waiting turn, which grows with running x waiting).
_LIVE = f"""live AS (
    SELECT t.author_id FROM turns t JOIN fleet_leases l ON l.turn_id = t.id
    WHERE t.status = 'running' AND l.lease_until > {_NOW}
), live_users AS (
    SELECT author_id, count(*) AS n FROM live GROUP BY author_id
)"""
_CANDIDATES = """turns t
LEFT JOIN fleet_leases l ON l.turn_id = t.id
LEFT JOIN live_users lu ON lu.author_id = t.author_id"""

# The turns this process may start now. A thread's turns run in order, except that variants
# asked for together (one variant_group) run side by side; the thread's next turn waits for the
# whole set. Parameters: the fleet-wide limit, the user's running limit, then `_PLACED`'s.
_STARTABLE = f"""(t.status = 'queued'
       OR (t.status = 'running' AND (l.lease_until IS NULL OR l.lease_until <= {_NOW})))
  AND (SELECT count(*) FROM live) < ?
  AND NOT EXISTS (
      SELECT 1 FROM turns e WHERE e.conversation_id = t.conversation_id AND e.id < t.id
      AND e.status IN ('queued', 'running')
      AND (t.variant_group IS NULL OR e.variant_group IS DISTINCT FROM t.variant_group))
  AND COALESCE(lu.n, 0) < ?
  AND (t.status = 'running' OR {_PLACED.format(t="t.")})"""

# The next startable turns by the fairness rule, at most one per user (a claimed user goes last
# in the round, so the first claims of a run of single claims are each user's first turn, in
# this order), as many as the fleet-wide limit leaves room for and at most the batch asked for;
# with each, its user's unfinished turns (for OVERFLOW). Parameters: `_STARTABLE`'s, the batch,
# the fleet-wide limit.
CLAIM = f"""
WITH {_LIVE}, firsts AS (
    SELECT t.id, row_number() OVER (
        PARTITION BY t.author_id ORDER BY t.status = 'running' DESC, t.id) AS nth
    FROM {_CANDIDATES}
    WHERE {_STARTABLE}
)
SELECT t.id, t.author_id, t.conversation_id, t.guild_id, t.status, t.reserved_usd, t.own_key,
       t.exempt,
       (SELECT count(*) FROM turns u
        WHERE u.author_id = t.author_id AND u.status IN ('queued', 'running')) AS unfinished
FROM turns t
JOIN firsts f ON f.id = t.id AND f.nth = 1
LEFT JOIN fleet_served s ON s.user_id = t.author_id
ORDER BY t.status = 'running' DESC, COALESCE(s.served, 0), t.id
LIMIT GREATEST(0, LEAST(?, ? - (SELECT count(*) FROM live)))
FOR UPDATE OF t SKIP LOCKED
"""
CLAIM_BATCH = 8  # turns claimed in one transaction at most
POSTING_RECHECK = 1.0  # seconds between looks while other processes are posting turns

# What `has_room_for`, `has_conversation` and `queued` read (the fleet's unfinished turns, as
# two arrays in one row: decoded in C, not row by row), and whether a claim could start a turn
# now: when not, the claim loop does not try (a turn that becomes startable later comes with a
# wake-up: it was submitted, a slot or its thread was freed, or its lease ran out), except for
# the turns other processes are still posting: their posting sends no wake-up, so while there
# are some the loop looks again every POSTING_RECHECK seconds.
SNAPSHOT = f"""
WITH {_LIVE}
SELECT COALESCE(array_agg(author_id), '{{}}') AS authors,
       COALESCE(array_agg(conversation_id), '{{}}') AS conversations,
       count(*) FILTER (WHERE status = 'queued') AS queued,
       count(*) FILTER (WHERE status = 'queued' AND progress_message_id IS NULL
                        AND NOT id = ANY(?::bigint[])) AS posting_elsewhere,
       EXISTS (SELECT 1 FROM {_CANDIDATES} WHERE {_STARTABLE}) AS startable
FROM turns WHERE status IN ('queued', 'running')
"""

# A user's waiting turns beyond their queue room (admitted at the same moment by two processes)
# are refused, the last admitted first: what admitting them one after the other would have done.
# (It can cut nothing when the user has no more unfinished turns than the room: CLAIM's
# `unfinished` says so, and the claim then skips it.)
OVERFLOW = f"""
UPDATE turns SET status = 'failed', error_kind = 'queue_full', error_detail = ?,
       finished_at = {_NOW}
WHERE status = 'queued' AND id IN (
    SELECT id FROM turns WHERE author_id = ? AND status IN ('queued', 'running')
    ORDER BY id OFFSET ?)
  AND {_PLACED.format(t="")}
RETURNING id, author_id, conversation_id
"""
# Queue positions, in the order CLAIM would start the waiting turns if each ran alone (as the
# in-process scheduler ranks them): a user's n-th waiting turn comes in round n; within a round,
# the least recently served user first, then the user whose waiting began first.
POSITIONS = """
WITH q AS (
    SELECT t.id, COALESCE(s.served, 0) AS served,
           row_number() OVER (PARTITION BY t.author_id ORDER BY t.id) AS round,
           min(t.id) OVER (PARTITION BY t.author_id) AS arrived
    FROM turns t LEFT JOIN fleet_served s ON s.user_id = t.author_id
    WHERE t.status = 'queued'
)
SELECT id, position FROM (
    SELECT id, row_number() OVER (ORDER BY round, served, arrived, id) AS position FROM q
) ranked WHERE id = ANY(?::bigint[])
"""
# The claimed turn runs under this process's lease, its user goes last in the round, and every
# process learns that the queue moved (delivered on commit): one statement, one round trip.
# (Data-modifying WITH clauses all run, referenced or not.)
TAKE = f"""
WITH run AS (
    UPDATE turns SET status = 'running', started_at = COALESCE(started_at, {_NOW})
    WHERE id = ? RETURNING id
), lease AS (
    INSERT INTO fleet_leases (turn_id, owner, lease_until) VALUES (?, ?, {_NOW} + ?)
    ON CONFLICT (turn_id) DO UPDATE SET owner = excluded.owner, lease_until = excluded.lease_until
), served AS (
    INSERT INTO fleet_served (user_id, served) VALUES (?, nextval('fleet_serve_seq'))
    ON CONFLICT (user_id) DO UPDATE SET served = excluded.served
)
SELECT pg_notify('{MOVED_CHANNEL}', '') FROM run
"""
REFUSE = f"""
UPDATE turns SET status = 'failed', error_kind = ?, error_detail = ?, finished_at = {_NOW}
WHERE id = ?
"""
REFUSED_DETAIL = "refused when claimed: admitted past a limit by two processes at once"


class FleetScheduler:
    """A `bot.core.jobs.Scheduler` whose queue is the `turns` table, shared by the fleet."""

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
        ceilings: Ceilings | None = None,
    ) -> None:
        self._db = db
        # the spend caps and daily images, checked again at each claim (None: not checked)
        self._limits = ClaimLimits(SqlStore(db), ceilings) if ceilings is not None else None
        self.max_concurrent = max_concurrent
        self.per_user_concurrent = per_user_concurrent
        self.per_user_queued = per_user_queued
        self.lease_seconds = lease_seconds
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._runner: JobRunner | None = None
        self._on_position: PositionListener | None = None
        self._waiting: dict[int, int] = {}  # this process's waiting turns -> position told (0: none)
        # those of them the claim loop has looked at and left waiting: the ones told a place
        # (a turn merely not reached yet in a burst starts a moment later: no place to show)
        self._passed: set[int] = set()
        self._moved = asyncio.Event()  # the queue changed: tell waiting turns their positions
        self._running: dict[int, Job] = {}
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
        self._listener: asyncpg.Connection | None = None
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
        self._on_position = on_position

    def position(self, turn_id: int) -> int | None:
        """Fleet-wide place of one of this process's waiting turns, as last read."""
        return self._waiting.get(turn_id) or None

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
        self._waiting[job.turn_id] = 0  # (read once the claim loop had its chance to start it)
        self._mine = True
        self._wake.set()
        self._spawn(self._notify(TURNS_CHANNEL, self.owner))
        return 0

    async def withdraw(self, turn_id: int) -> str | None:
        self._waiting.pop(turn_id, None)
        job = self._running.get(turn_id)
        if job is not None and job.task is not None:
            job.cancelled_by_user = True
            job.task.cancel()
            return "running"
        async with self._db.transaction():
            row = await self._db.fetchone(
                f"SELECT t.status, l.owner, l.lease_until > {_NOW} AS live FROM turns t "
                "LEFT JOIN fleet_leases l ON l.turn_id = t.id WHERE t.id = ? FOR UPDATE OF t",
                (turn_id,),
            )
            if row is None or row["status"] not in ("queued", "running"):
                return None
            if row["status"] == "running" and row["live"]:
                await self._notify(CANCEL_CHANNEL, str(turn_id))  # delivered on commit
                return "running"
            # waiting, or its process is gone: nobody may claim it any more
            await self._db.execute(
                "UPDATE turns SET status = 'cancelled' WHERE id = ?", (turn_id,)
            )
            await self._notify(MOVED_CHANNEL, "")
            return "queued"

    def running_turn_ids(self) -> list[int]:
        return list(self._running)

    async def wait_idle(self) -> None:
        await self._idle.wait()

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Listen for wake-ups and start claiming (after the runner is attached)."""
        if not await self._listen():
            self._spawn(self._relisten())
        self._tasks = [
            asyncio.create_task(self._claim_loop(), name="fleet-claim"),
            asyncio.create_task(self._renew_loop(), name="fleet-renew"),
            asyncio.create_task(self._positions_loop(), name="fleet-positions"),
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
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(Exception):
                await listener.close()

    # ------------------------------------------------------------------ the LISTEN connection
    async def _listen(self, *, quiet: bool = False) -> bool:
        """Open the LISTEN connection; False (having said why, unless `quiet`) if it cannot be
        opened: the queue then polls every half lease until it can."""
        conn = None
        try:
            conn = await asyncpg.connect(self._db.dsn)
            await conn.add_listener(TURNS_CHANNEL, self._on_turns)
            await conn.add_listener(CANCEL_CHANNEL, self._on_cancel)
            await conn.add_listener(MOVED_CHANNEL, self._on_moved)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            if conn is not None:
                conn.terminate()
            if not quiet:
                log.warning("Fleet queue: cannot LISTEN (%s); polling every %.1fs until it can",
                            exc, self.lease_seconds / 2)
            return False
        if self._closed:
            conn.terminate()
            return False
        conn.add_termination_listener(self._on_listener_lost)
        self._listener = conn
        self._wake.set()  # a wake-up may have been missed while not listening
        return True

    async def _relisten(self) -> None:
        """Reconnect the LISTEN connection, waiting longer after each failure."""
        delay = LISTEN_RETRY_FIRST
        while not self._closed:
            await asyncio.sleep(delay)
            if await self._listen(quiet=True):
                log.info("Fleet queue: listening again")
                return
            delay = min(delay * 2, LISTEN_RETRY_MAX)

    def _on_listener_lost(self, conn: object) -> None:
        if self._closed or conn is not self._listener:
            return
        self._listener = None
        log.warning("Fleet queue: the LISTEN connection dropped; polling every %.1fs while it "
                    "reconnects", self.lease_seconds / 2)
        self._spawn(self._relisten())

    # ------------------------------------------------------------------ claiming
    async def _claim_loop(self) -> None:
        while not self._closed:
            self._wake.clear()
            mine, self._mine = self._mine, False
            considered = set(self._waiting)
            try:
                # this process's own turn or slot: claim first, read the queue after (off the
                # way to the API); another process's wake-up: claim only if the read says so
                startable = mine or await self._snapshot()
                while startable and not self._closed:
                    room = self.max_concurrent - self._generating()
                    if room <= 0:
                        break
                    jobs = await self._claim(min(room, CLAIM_BATCH))
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
            self._passed = {t for t in self._passed | considered if t in self._waiting}
            self._moved.set()  # positions are read after every look at the queue
            pause = self.lease_seconds / 2
            if self._posting_elsewhere:
                pause = min(pause, POSTING_RECHECK)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), pause)

    async def _snapshot(self) -> bool:
        """Read the fleet's unfinished turns; whether a claim could start one now."""
        counted = len(self._submitted)  # submitted before the query: its rows include them
        row = await self._db.fetchone(SNAPSHOT, (list(self._waiting), *self._startable_params()))
        assert row is not None
        del self._submitted[:counted]
        self._unfinished = Counter(row["authors"])
        self._busy = set(row["conversations"])
        self._queued_total = row["queued"]
        self._posting_elsewhere = row["posting_elsewhere"] > 0
        return bool(row["startable"])

    def _startable_params(self) -> tuple[Any, ...]:
        return (self.max_concurrent, self.per_user_concurrent, list(self._waiting),
                self.lease_seconds)

    def _generating(self) -> int:
        return sum(1 for job in self._running.values() if job.refused is None)

    async def _claim(self, batch: int) -> list[Job]:
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
        assert self._runner is not None, "attach() a runner before start()"
        jobs: list[Job] = []
        async with self._db.transaction(lock=CLAIM_LOCK):
            rows = await self._db.fetchall(CLAIM, (
                *self._startable_params(), batch, self.max_concurrent,
            ))
            for row in rows:
                jobs += await self._claim_one(row)
        return jobs

    async def _claim_one(self, row: Row) -> list[Job]:
        """The claimed turn, started or refused, and its user's turns cut from a full queue."""
        refused: list[Job] = []
        if row["unfinished"] > self.per_user_queued + self.per_user_concurrent:
            refused = await self._overflow(row["author_id"])
            if any(job.turn_id == row["id"] for job in refused):
                return refused
        error = await self._refusal(row)
        if error is not None:
            await self._db.execute(REFUSE, (error.kind.name, REFUSED_DETAIL, row["id"]))
            return [*refused, self._job(row, refused=error)]
        await self._take(row)
        log.debug("Fleet queue: %s claimed turn %s", self.owner, row["id"])
        return [*refused, self._job(row)]

    async def _overflow(self, author_id: int) -> list[Job]:
        rows = await self._db.fetchall(OVERFLOW, (
            REFUSED_DETAIL, author_id, self.per_user_queued + self.per_user_concurrent,
            list(self._waiting), self.lease_seconds,
        ))
        error = UserFacingError(ErrorKind.queue_full, limit=self.per_user_queued)
        return [self._job(row, refused=error) for row in rows]

    async def _refusal(self, row: Row) -> UserFacingError | None:
        """Why a queued turn may no longer start; a turn taken over from a dead process
        (running) is resumed whatever the limits say: its generation may be paid for."""
        if self._limits is None or row["status"] != "queued":
            return None
        return await self._limits.refusal(ClaimedTurn(
            id=row["id"], author_id=row["author_id"], guild_id=row["guild_id"],
            reserved_usd=row["reserved_usd"], own_key=bool(row["own_key"]),
            exempt=bool(row["exempt"]),
        ))

    async def _take(self, row: Row) -> None:
        """Mark the turn running under this process's lease; its user goes last in the round;
        the fleet hears that the queue moved (on commit)."""
        await self._db.execute(TAKE, (
            row["id"], row["id"], self.owner, self.lease_seconds, row["author_id"],
        ))

    def _job(self, row: Row, *, refused: UserFacingError | None = None) -> Job:
        assert self._runner is not None
        return Job(row["id"], row["author_id"], row["conversation_id"], self._runner,
                   refused=refused)

    def _start(self, job: Job) -> None:
        # started here: no longer waiting (as in the in-process scheduler, no position 0 is
        # told: the runner takes it from its queued turns itself), and no POSITIONS read for it
        self._waiting.pop(job.turn_id, None)
        self._running[job.turn_id] = job
        self._idle.clear()
        job.task = asyncio.create_task(self._run(job), name=f"turn-{job.turn_id}")

    async def _run(self, job: Job) -> None:
        try:
            await run_logged(job)
        finally:
            self._running.pop(job.turn_id, None)
            await self._release(job.turn_id)
            if not self._running:
                self._idle.set()

    async def _release(self, turn_id: int) -> None:
        """Give the lease back (a turn left running is then claimable at once) and wake the
        fleet: a slot is free."""
        try:
            await self._db.execute(  # (one statement, one round trip)
                "WITH gone AS (DELETE FROM fleet_leases WHERE turn_id = ? AND owner = ?) "
                "SELECT pg_notify(?, ?)", (turn_id, self.owner, TURNS_CHANNEL, self.owner),
            )
        except Exception:
            log.warning("Fleet queue: could not release turn %s (its lease will expire)",
                        turn_id, exc_info=True)
        self._mine = True
        self._wake.set()

    # ------------------------------------------------------------------ leases and wake-ups
    async def _renew_loop(self) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            ids = list(self._running)
            if not ids:
                continue
            try:
                rows = await self._db.fetchall(
                    f"UPDATE fleet_leases SET lease_until = {_NOW} + ? "
                    "WHERE owner = ? AND turn_id = ANY(?::bigint[]) RETURNING turn_id",
                    (self.lease_seconds, self.owner, ids),
                )
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("Fleet queue: could not renew leases", exc_info=True)
                continue
            kept = {row["turn_id"] for row in rows}
            for turn_id in ids:
                job = self._running.get(turn_id)
                if turn_id not in kept and job is not None and job.task is not None:
                    log.warning("Fleet queue: lost the lease of turn %s; stopping it here", turn_id)
                    job.task.cancel()

    async def _notify(self, channel: str, payload: str) -> None:
        await self._db.execute("SELECT pg_notify(?, ?)", (channel, payload))

    def _on_turns(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        """Another process queued a turn or freed a slot. (This process's own wake-ups are set
        where it sends them, after the change is committed: hearing them again would only
        repeat the look at the queue.)"""
        if payload != self.owner:
            self._wake.set()  # (positions are read after the claim loop looked)

    def _on_moved(self, *_: object) -> None:
        self._moved.set()

    # ------------------------------------------------------------------ queue positions
    async def _positions_loop(self) -> None:
        while True:
            await self._moved.wait()
            self._moved.clear()
            if not self._waiting:
                continue
            try:
                await self._tell_positions()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("Fleet queue: could not read queue positions", exc_info=True)

    async def _tell_positions(self) -> None:
        """Read the fleet-wide positions of this process's waiting turns that the claim loop
        has passed over; tell the changed ones, and 0 for those that left the queue (started
        elsewhere, or cancelled)."""
        ids = [turn_id for turn_id in self._waiting if turn_id in self._passed]
        if not ids:
            return
        rows = await self._db.fetchall(POSITIONS, (ids,))
        positions = {row["id"]: row["position"] for row in rows}
        for turn_id in ids:
            if turn_id not in self._waiting:
                continue  # withdrawn meanwhile
            position = positions.get(turn_id, 0)
            if position and position == self._waiting[turn_id]:
                continue
            if position:
                self._waiting[turn_id] = position
            else:
                del self._waiting[turn_id]
            self._tell(turn_id, position)

    def _tell(self, turn_id: int, position: int) -> None:
        if self._on_position is None:
            return
        try:
            self._on_position(turn_id, position)
        except Exception:
            log.exception("Position listener failed")

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


def fleet_scheduler(settings: Settings, store: Store, ceilings: Ceilings) -> FleetScheduler | None:
    """The fleet-wide queue when `FLEET_QUEUE` is on (else None: the in-process scheduler)."""
    if not settings.fleet_queue:
        return None
    db = getattr(store, "db", None)
    assert isinstance(db, PostgresDatabase), "FLEET_QUEUE needs DATABASE_URL"
    return FleetScheduler(
        db,
        max_concurrent=settings.max_concurrent_generations,
        per_user_concurrent=settings.per_user_concurrent,
        per_user_queued=settings.per_user_queued,
        lease_seconds=settings.lease_seconds,
        ceilings=ceilings,
    )
