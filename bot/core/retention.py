"""How long the images attached to a request are kept: until the turn is over and
INPUT_RETENTION_DAYS have passed (0: not at all once it is over). A chain never needs them again
(it continues from the result, fetched from Discord or referred to by its id); a reroll of a turn
whose images are gone says so instead of running without them."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from bot.core.errors import UserFacingError
from bot.core.models import Turn
from bot.core.tasks import BackgroundTasks
from bot.store.protocol import Store

log = logging.getLogger(__name__)

DAY = 86_400.0
BATCH = 500  # turns per delete: a first run over a long history goes in bounded steps
MAX_INTERVAL = 3_600.0  # prune at least hourly
OVER = ("done", "failed", "cancelled")


class InputRetention:
    """Prunes stored inputs: periodically (`run`, a tracked background task) and, with a
    retention of 0, as each turn ends (it is a turn listener)."""

    def __init__(self, store: Store, days: float, tasks: BackgroundTasks, *,
                 interval: float | None = None, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.days = days
        self.tasks = tasks
        self.interval = interval if interval is not None else min(MAX_INTERVAL,
                                                                  max(days * DAY / 4, 60.0))
        self.clock = clock

    async def prune_once(self) -> int:
        """Delete the inputs of every turn over for longer than the retention; how many."""
        cutoff = self.clock() - self.days * DAY
        total = 0
        while (pruned := await self.store.turns.prune_inputs(finished_before=cutoff,
                                                             limit=BATCH)):
            total += pruned
            if pruned < BATCH:
                break
        if total:
            log.info("Deleted the attached images of %d finished turn(s)", total)
        return total

    async def run(self) -> None:
        """Prune now and every `interval` seconds until cancelled."""
        while True:
            try:
                await self.prune_once()
            except Exception:
                log.warning("Could not prune stored inputs; trying again later", exc_info=True)
            await asyncio.sleep(self.interval)

    def start(self) -> asyncio.Task[None]:
        return self.tasks.spawn(self.run(), name="input-retention")

    def __call__(self, event: str, turn: Turn, error: UserFacingError | None) -> None:
        """With a retention of 0, a turn's inputs go as soon as it is over."""
        if self.days == 0 and event in OVER and turn.input_image_count:
            self.tasks.spawn(self._prune_now(), name=f"inputs-{turn.id}")

    async def _prune_now(self) -> None:
        # (a turn's end is recorded before listeners hear of it)
        await self.store.turns.prune_inputs(finished_before=self.clock() + 1.0, limit=BATCH)
