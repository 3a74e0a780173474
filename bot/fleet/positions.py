"""Queue positions in a fleet: each process tells its own waiting turns their fleet-wide place
(`sql.POSITIONS`, in CLAIM's order) after every look at the queue and whenever a turn left the
queue somewhere (`NOTIFY imagine_moved`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from bot.core.jobs import PositionListener

log = logging.getLogger(__name__)

# the fleet-wide places of some waiting turns (those no longer waiting left out)
PositionReader = Callable[[list[int]], Awaitable[dict[int, int]]]


class Positions:
    """This process's waiting turns and the places they were told."""

    def __init__(self, waiting: dict[int, int], read: PositionReader) -> None:
        self.waiting = waiting  # this process's waiting turns -> position told (0: none)
        self._read = read
        # those of them the claim loop has looked at and left waiting: the ones told a place
        # (a turn merely not reached yet in a burst starts a moment later: no place to show)
        self._passed: set[int] = set()
        self._moved = asyncio.Event()  # the queue changed: tell waiting turns their positions
        self.listener: PositionListener | None = None

    def position(self, turn_id: int) -> int | None:
        """Fleet-wide place of one of this process's waiting turns, as last read."""
        return self.waiting.get(turn_id) or None

    def looked(self, considered: set[int]) -> None:
        """The claim loop looked at the queue and left `considered` (those still waiting) in it:
        they are told their places."""
        self._passed = {t for t in self._passed | considered if t in self.waiting}
        self._moved.set()  # positions are read after every look at the queue

    def on_moved(self, *_: object) -> None:
        self._moved.set()

    async def keep_told(self) -> None:
        while True:
            await self._moved.wait()
            self._moved.clear()
            if not self.waiting:
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
        ids = [turn_id for turn_id in self.waiting if turn_id in self._passed]
        if not ids:
            return
        positions = await self._read(ids)
        for turn_id in ids:
            if turn_id not in self.waiting:
                continue  # withdrawn meanwhile
            position = positions.get(turn_id, 0)
            if position and position == self.waiting[turn_id]:
                continue
            if position:
                self.waiting[turn_id] = position
            else:
                del self.waiting[turn_id]
            self._tell(turn_id, position)

    def _tell(self, turn_id: int, position: int) -> None:
        if self.listener is None:
            return
        try:
            self.listener(turn_id, position)
        except Exception:
            log.exception("Position listener failed")
