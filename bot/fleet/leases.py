"""The leases of the turns this process runs: renewed while they run, given back when they end.

A process that dies stops renewing; once its leases run out another process claims the turns
again and the service resumes each generation by its stored response id.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from bot.core.jobs import Job
from bot.fleet import sql
from bot.store.postgres.database import PostgresDatabase

log = logging.getLogger(__name__)


class LeaseKeeper:
    """Keeps `owner`'s leases on the turns of `running` (this process's running jobs)."""

    def __init__(self, db: PostgresDatabase, owner: str, lease_seconds: float,
                 running: Mapping[int, Job]) -> None:
        self._db = db
        self._owner = owner
        self._lease_seconds = lease_seconds
        self._running = running

    async def keep(self) -> None:
        """Renew every third of a lease; a turn whose lease was lost (taken over by another
        process after a pause here) is stopped here."""
        while True:
            await asyncio.sleep(self._lease_seconds / 3)
            ids = list(self._running)
            if not ids:
                continue
            try:
                rows = await self._db.fetchall(sql.RENEW, (self._lease_seconds, self._owner, ids))
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

    async def release(self, turn_id: int) -> None:
        """Give the lease back (a turn left running is then claimable at once) and wake the
        fleet: a slot is free."""
        try:
            await self._db.execute(sql.RELEASE,
                                   (turn_id, self._owner, sql.TURNS_CHANNEL, self._owner))
        except Exception:
            log.warning("Fleet queue: could not release turn %s (its lease will expire)",
                        turn_id, exc_info=True)
