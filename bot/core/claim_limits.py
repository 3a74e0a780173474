"""Admission's limits checked again when the fleet-wide queue claims a turn.

Admission checks a turn inside one process: two processes admitting at the same moment can each
let a turn in that, together, pass a limit. The fleet queue's claim transaction (serialised
fleet-wide) asks `refusal` about the queued turn it is about to start, so that what runs is what
admitting the turns one after the other would have let in: a turn counts the reservations and
queue places of the turns admitted before it (lower ids), never of those admitted after it.
The caps and messages are Admission's own (`bot.core.admission`).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass

from bot.core.admission import Cap, cap_reached, guild_caps, images_reached, instance_caps
from bot.core.errors import UserFacingError
from bot.core.policy import Ceilings, EffectivePolicy, GuildPolicy, day_start
from bot.store.protocol import Store


@dataclass(frozen=True, slots=True)
class ClaimedTurn:
    """What the limits need of a queued turn, as recorded at its admission."""

    id: int
    author_id: int
    guild_id: int | None
    reserved_usd: float
    own_key: bool = False  # billed to its server's own key: the instance's caps skip it
    exempt: bool = False  # its author had an exempt role: the server's limits skip it


class ClaimLimits:
    """The spend caps and the daily images, for one turn at its claim. Call inside the claim's
    transaction (the store's reads then see what every other claim committed). Each limit is
    read in one statement, so a turn finishing meanwhile is counted once (before or after)."""

    def __init__(self, store: Store, ceilings: Ceilings,
                 *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.ceilings = ceilings
        self._clock = clock

    async def refusal(self, turn: ClaimedTurn) -> UserFacingError | None:
        """Why `turn` may no longer start (the message admission would have given), or None."""
        now = dt.datetime.fromtimestamp(self._clock(), dt.UTC)
        caps = [] if turn.own_key else instance_caps(self.ceilings, now)
        if not turn.exempt:
            policy = await self._policy(turn.guild_id)
            daily_images = policy.user_daily_images()
            if daily_images and await self._images_before(turn, now) >= daily_images:
                return images_reached(daily_images, now)
            if turn.guild_id is not None:
                caps += guild_caps(policy, turn.guild_id, now)
        for cap in caps:
            if await self._spend_with(turn, cap) > cap.value:
                return cap_reached(cap)
        return None

    async def _policy(self, guild_id: int | None) -> EffectivePolicy:
        data = await self.store.guild_settings.get(guild_id) if guild_id else {}
        return EffectivePolicy(GuildPolicy.from_dict(data), self.ceilings)

    async def _images_before(self, turn: ClaimedTurn, now: dt.datetime) -> int:
        """Images the author made today plus their turns admitted before this one and
        unfinished (each will make one at least)."""
        return await self.store.usage.images_and_pending(
            author_id=turn.author_id, since=day_start(now).timestamp(), before=turn.id
        )

    async def _spend_with(self, turn: ClaimedTurn, cap: Cap) -> float:
        """What `cap` counts once `turn` runs: settled spend, the reservations of the turns
        admitted before it, and its own."""
        spend = await self.store.usage.spend(
            since=cap.since, guild_id=cap.guild_id, instance_only=cap.guild_id is None,
            before=turn.id,
        )
        return spend.settled + spend.reserved + turn.reserved_usd
