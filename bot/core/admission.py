"""Admission: whether a turn may start, decided together with reserving its worst-case cost.

The checks (room in the user's queue, their daily images, the server's and the instance's spend
caps) and the reservation happen under the locks of the scopes they count (the instance's caps,
the server's caps, the user: taken in that order, so never in a cycle), and the caller writes
the turn (which carries its reservation in the store) before releasing them: no burst within a
scope overshoots its limit, while admissions that share no limit (two users of a server without
caps) never wait for each other. Between `/imagine`'s early check and the turn record (the
thread is opened in between), the admission is a `Hold` that every later check counts.

Caps count settled spend (what finished turns cost) plus reservations (what unfinished turns
may still cost) plus holds; a turn is admitted only if its own reservation still fits.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

from bot.core.errors import ErrorKind, UserFacingError
from bot.core.policy import (
    Actor,
    Ceilings,
    EffectivePolicy,
    day_start,
    month_start,
    next_day,
    next_month,
)
from bot.store.protocol import Store


@dataclass(eq=False, slots=True)
class Hold:
    """An admitted turn not yet recorded: counted by every check until released."""

    user_id: int
    guild_id: int | None
    amount: float
    own_key: bool = False  # billed to the server's own OpenAI key: not the instance's money
    turn: bool = True  # False: a text-only call (e.g. /describe): no queue place, no image


@dataclass(eq=False, slots=True)
class _ScopeLock:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0  # tasks holding or awaiting it


@dataclass(frozen=True, slots=True)
class Cap:
    limit: str  # the i18n name of the limit (limit.<name>)
    value: float
    reset: float  # unix time it resets
    since: float  # unix time its window started
    guild_id: int | None  # None: every server and DM


class Admission:
    """Queue room, image quota and spend caps, checked and reserved atomically."""

    def __init__(
        self,
        store: Store,
        ceilings: Ceilings,
        *,
        per_user_slots: int,
        per_user_queued: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.ceilings = ceilings
        self.per_user_slots = per_user_slots  # running + waiting turns one user may have
        self.per_user_queued = per_user_queued
        self._locks: dict[tuple[str, int], _ScopeLock] = {}
        self._clock = clock
        self._holds: list[Hold] = []

    @asynccontextmanager
    async def scope(self, policy: EffectivePolicy, actor: Actor, *,
                    own_key: bool = False) -> AsyncIterator[None]:
        """Hold the locks of every limit an admission of `actor` counts, in a fixed order
        (instance, server, user); check, hold or record the turn inside."""
        async with AsyncExitStack() as stack:
            for key in self._scope_keys(policy, actor, own_key):
                await stack.enter_async_context(self._locked(key))
            yield

    @asynccontextmanager
    async def _locked(self, key: tuple[str, int]) -> AsyncIterator[None]:
        """One scope's lock, kept only while someone holds or awaits it."""
        entry = self._locks.setdefault(key, _ScopeLock())
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if not entry.users:
                del self._locks[key]

    def _scope_keys(self, policy: EffectivePolicy, actor: Actor,
                    own_key: bool) -> list[tuple[str, int]]:
        keys = []
        if not own_key and (self.ceilings.instance_daily_spend_usd
                            or self.ceilings.instance_monthly_spend_usd):
            keys.append(("instance", 0))
        if actor.guild_id is not None and (policy.daily_spend() or policy.monthly_spend()):
            keys.append(("guild", actor.guild_id))  # (exempt members too: they add to its spend)
        keys.append(("user", actor.user_id))
        return keys

    def release(self, hold: Hold | None) -> None:
        """Forget a hold (its turn was recorded, or it will never be). Idempotent."""
        if hold is not None and hold in self._holds:
            self._holds.remove(hold)

    async def hold(self, policy: EffectivePolicy, actor: Actor, amount: float,
                   *, own_key: bool = False) -> Hold:
        """Check and hold. Call inside `scope`."""
        await self.check(policy, actor, amount, own_key=own_key)
        hold = Hold(actor.user_id, actor.guild_id, amount, own_key)
        self._holds.append(hold)
        return hold

    async def check(self, policy: EffectivePolicy, actor: Actor, amount: float,
                    *, own_key: bool = False) -> None:
        """Raise `queue_full` or `limit_reached` unless a turn reserving `amount` fits. Call
        inside `scope`, and record the turn before leaving it."""
        await self._check_queue(actor.user_id)
        now = dt.datetime.fromtimestamp(self._clock(), dt.UTC)
        if not own_key:
            for cap in self._instance_caps(now):
                await self._check_cap(cap, amount)
        if policy.is_exempt(actor):
            return
        await self._check_images(policy, actor, now)
        if actor.guild_id is not None:
            for cap in self._guild_caps(policy, actor.guild_id, now):
                await self._check_cap(cap, amount)

    async def hold_text(self, policy: EffectivePolicy, actor: Actor, amount: float,
                        *, own_key: bool = False) -> Hold:
        """Check and hold a text-only call (no image, no queue place) costing up to `amount`
        until its cost is recorded. Call inside `scope`."""
        await self.check_spend(policy, actor, amount, own_key=own_key)
        hold = Hold(actor.user_id, actor.guild_id, amount, own_key, turn=False)
        self._holds.append(hold)
        return hold

    async def check_spend(self, policy: EffectivePolicy, actor: Actor, amount: float,
                          *, own_key: bool = False) -> None:
        """Raise `limit_reached` unless a text-only call (no image, no queue place) costing up
        to `amount` fits the instance's (unless billed to the server's own key) and the
        server's spend caps."""
        now = dt.datetime.fromtimestamp(self._clock(), dt.UTC)
        caps = [] if own_key else self._instance_caps(now)
        if actor.guild_id is not None and not policy.is_exempt(actor):
            caps += self._guild_caps(policy, actor.guild_id, now)
        for cap in caps:
            await self._check_cap(cap, amount)

    async def _check_queue(self, user_id: int) -> None:
        waiting = await self.store.usage.pending(author_id=user_id)
        waiting += sum(1 for h in self._holds if h.user_id == user_id and h.turn)
        if waiting >= self.per_user_slots:
            raise UserFacingError(ErrorKind.queue_full, limit=self.per_user_queued)

    async def _check_images(self, policy: EffectivePolicy, actor: Actor, now: dt.datetime) -> None:
        daily_images = policy.user_daily_images()
        if not daily_images:
            return
        today = day_start(now).timestamp()
        totals = await self.store.usage.totals(since=today, author_id=actor.user_id)
        pending = await self.store.usage.pending(author_id=actor.user_id)
        held = sum(1 for h in self._holds if h.user_id == actor.user_id and h.turn)
        if totals.images + pending + held >= daily_images:
            raise images_reached(daily_images, now)

    def _instance_caps(self, now: dt.datetime) -> list[Cap]:
        return instance_caps(self.ceilings, now)

    @staticmethod
    def _guild_caps(policy: EffectivePolicy, guild_id: int, now: dt.datetime) -> list[Cap]:
        return guild_caps(policy, guild_id, now)

    async def _check_cap(self, cap: Cap, amount: float) -> None:
        instance = cap.guild_id is None
        spend = await self.store.usage.spend(
            since=cap.since, guild_id=cap.guild_id, instance_only=instance
        )
        held = sum(h.amount for h in self._holds
                   if (h.guild_id == cap.guild_id or instance) and not (instance and h.own_key))
        if spend.settled + spend.reserved + held + amount > cap.value:
            raise cap_reached(cap)


def instance_caps(ceilings: Ceilings, now: dt.datetime) -> list[Cap]:
    """The instance's spend caps in force at `now` (every server and DM)."""
    caps = []
    day = day_start(now)
    if ceilings.instance_daily_spend_usd:
        caps.append(Cap(limit="instance_daily_spend", value=ceilings.instance_daily_spend_usd,
                        reset=next_day(now).timestamp(), since=day.timestamp(), guild_id=None))
    if ceilings.instance_monthly_spend_usd:
        caps.append(Cap(limit="instance_monthly_spend", value=ceilings.instance_monthly_spend_usd,
                        reset=next_month(now).timestamp(),
                        since=month_start(now).timestamp(), guild_id=None))
    return caps


def guild_caps(policy: EffectivePolicy, guild_id: int, now: dt.datetime) -> list[Cap]:
    """A server's spend caps in force at `now`."""
    caps = []
    day = day_start(now)
    if policy.daily_spend():
        caps.append(Cap(limit="guild_daily_spend", value=policy.daily_spend(),
                        reset=next_day(now).timestamp(), since=day.timestamp(),
                        guild_id=guild_id))
    if policy.monthly_spend():
        caps.append(Cap(limit="guild_monthly_spend", value=policy.monthly_spend(),
                        reset=next_month(now).timestamp(),
                        since=month_start(now).timestamp(), guild_id=guild_id))
    return caps


def cap_reached(cap: Cap) -> UserFacingError:
    """What a member is told when a turn would pass `cap`."""
    return UserFacingError(ErrorKind.limit_reached, limit=cap.limit, value=f"${cap.value:.2f}",
                           reset=int(cap.reset))


def images_reached(daily_images: int, now: dt.datetime) -> UserFacingError:
    """What a member is told when their daily images are used up."""
    return UserFacingError(ErrorKind.limit_reached, limit="user_daily_images",
                           value=daily_images, reset=int(next_day(now).timestamp()))
