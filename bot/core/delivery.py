"""One durable path for every billed result: recorded first, then shown, retried until shown.

A result the API billed is written to the store (`deliveries`: its response id, text, usage and
image bytes, enough to re-encode it for any upload limit) before anything is posted. Posting it,
whatever form it takes (the result message, a variant board, a new message in an archived thread,
the parent channel of a locked one) and the ping after it, goes through `Deliveries.attempt`:
what Discord may answer differently in a moment (5xx, 429, a dropped connection: a transient
`DeliveryError`) is tried again after a growing pause, until `retry_seconds` after the result was
recorded. What Discord refuses for good (a missing permission, a deleted thread) fails at once.

Whoever runs the turn delivers it: the process that generated it; after a restart, the run that
`Runner.recover` starts finds the recorded result instead of generating; in a fleet,
the process that takes over the turn's expired lease does the same. A turn that still could not be
shown fails, keeping its record: its Retry button shows that result (`reopen`), and never pays
for a second generation. The record goes in the same write that records the turn done.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from bot.core.costs import PriceBook
from bot.core.errors import DeliveryError, UserFacingError
from bot.core.models import (
    Delivery,
    HeadMove,
    ImageRef,
    RecordedResult,
    Turn,
    TurnResult,
)
from bot.core.placing import Placements
from bot.core.ports import Presenter
from bot.store.protocol import Store

log = logging.getLogger(__name__)

DELIVERY_RETRY_SECONDS = 300.0  # the default of the DELIVERY_RETRY_SECONDS setting
FIRST_PAUSE = 1.0  # seconds before the second attempt; doubled each time, up to MAX_PAUSE
MAX_PAUSE = 8.0

T = TypeVar("T")


class Deliveries:
    """Records billed results and shows them (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        prices: PriceBook,
        placements: Placements,
        *,
        presenter: Presenter,
        notify: Callable[[str, Turn], None],
        retry_seconds: float = DELIVERY_RETRY_SECONDS,
    ) -> None:
        self.store = store
        self.prices = prices
        self.placements = placements
        self.presenter = presenter
        self._notify = notify
        self.retry_seconds = retry_seconds

    async def record(self, turn: Turn, result: TurnResult) -> RecordedResult:
        """Keep a billed result until it is shown. If the store cannot take it now, the result is
        still shown (from memory): a paid image is never dropped for want of a write."""
        kept = RecordedResult(result, time.time())
        try:
            await self.store.deliveries.record(
                turn.id, result, cost_usd=self.prices.cost(result.usage, turn.options.model),
                recorded_at=kept.recorded_at,
            )
        except Exception:
            log.exception("Turn %s: could not record its result before posting it; posting it "
                          "from memory", turn.id)
        return kept

    async def recorded(self, turn: Turn) -> RecordedResult | None:
        """The result a previous run of this turn recorded and did not show (None: none)."""
        return await self.store.deliveries.get(turn.id)

    async def reopen(self, turn: Turn) -> bool | None:
        """Retry of a failed turn: True if its recorded result is to be shown again (the turn is
        running again), False if it has one that is being shown already, None if it has none."""
        return await self.store.deliveries.reopen(turn.id)

    async def attempt(self, post: Callable[[], Awaitable[T]], *, deadline: float, what: str) -> T:
        """`post()`, tried again after transient failures until `deadline` (unix time)."""
        pause = FIRST_PAUSE
        while True:
            try:
                return await post()
            except DeliveryError as error:
                wait = min(pause * random.uniform(0.8, 1.2), deadline - time.time())
                if not error.transient or wait <= 0:
                    raise
                log.info("Discord could not take the %s (%s); trying again in %.1f s", what,
                         error.detail[:200], wait)
                await asyncio.sleep(wait)
                pause = min(pause * 2, MAX_PAUSE)

    async def deliver(self, turn: Turn, kept: RecordedResult) -> None:
        """Show a recorded result, record the turn done with where it was shown (and the
        conversation's head moved to it), then ping its author."""
        result = kept.result
        deadline = kept.recorded_at + self.retry_seconds
        cost = self.prices.cost(result.usage, turn.options.model)
        await self.placements.wait(turn.id)  # the result goes into its progress message
        refs = [
            ImageRef(img.call_id, img.size, img.output_format, len(img.data), img.reasoning_id)
            for img in result.images
        ]
        # The head as the result is shown: what a user does on seeing it (Continue from an
        # earlier turn) moves it, and then stands. (Only a read before the result is shown.)
        conversation = await self.store.conversations.get(turn.conversation_id)
        head_before = conversation.head_turn_id if conversation else None
        current = await self.store.turns.get(turn.id) or turn
        presenter = self.presenter
        try:
            shown = await self.attempt(lambda: presenter.show_result(current, result),
                                       deadline=deadline, what=f"result of turn {turn.id}")
        except BaseException as exc:
            # billed but not shown: the reservation still becomes what the API charged
            await self.store.turns.settle(turn.id, usage=result.usage, cost_usd=cost)
            if isinstance(exc, DeliveryError) and exc.orphaned:
                await self.store.deliveries.forget(turn.id)  # nowhere to show it, ever
            raise
        delivery = shown if isinstance(shown, Delivery) else Delivery(tuple(shown))
        message_ids = list(delivery.message_ids)
        revised = next((img.revised_prompt for img in result.images if img.revised_prompt), None)
        first = refs and (turn.variant_index or 1) == 1  # of variants, the first is the head
        await self.store.turns.finish_done(
            turn.id, response_id=result.response_id, images=refs, revised_prompt=revised,
            text=result.text, usage=result.usage, cost_usd=cost, rerooted=result.rerooted,
            note=delivery.note,
            message_ids=list(dict.fromkeys([*current.message_ids, *message_ids])),
            head=HeadMove(turn.conversation_id, head_before) if first else None,
        )
        done = await self.store.turns.get(turn.id)
        self._notify("done", done or turn)
        # after the commit: a delivery repeated after a crash never pings twice
        await self.ping(done or turn, done=True)

    async def show_failure(
        self, turn: Turn, error: UserFacingError, *, paid: bool, ping: bool
    ) -> None:
        """Show why a turn failed, then ping its author if `ping`. A turn whose result is `paid`
        for is retried as a result is: its Retry button is the way to that result."""
        presenter = self.presenter
        try:
            await self.attempt(lambda: presenter.show_failure(turn, error),
                               deadline=time.time() + (self.retry_seconds if paid else 0.0),
                               what=f"failure of turn {turn.id}")
        except Exception:
            log.warning("Could not show the failure of turn %s", turn.id, exc_info=True)
            return
        if ping:
            await self.ping(turn, done=False)

    async def ping(self, turn: Turn, *, done: bool) -> None:
        """Tell the requester, with one notification, that their turn is over (if they want
        that); a variant set pings once, when its last sibling is over."""
        presenter = self.presenter
        if not (await self.store.user_prefs.get(turn.author_id)).ping:
            return
        if turn.variant_group is not None and not all(
            s.status.terminal for s in await self.store.turns.variant_siblings(turn.variant_group)
        ):
            return
        try:
            await self.attempt(lambda: presenter.notify(turn, done=done),
                               deadline=time.time() + self.retry_seconds,
                               what=f"ping for turn {turn.id}")
        except Exception:
            log.warning("Could not notify the requester of turn %s", turn.id, exc_info=True)
