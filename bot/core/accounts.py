"""Accounts: what generating costs and who pays. Usage reports, a member's allowance, prices, the
worst-case reservation of a turn (through `Admission`'s arithmetic) and which OpenAI key a
server's turns are billed to (the operator's, or the server's own)."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from bot.core.admission import Admission
from bot.core.costs import PriceBook
from bot.core.errors import ErrorKind, UserFacingError
from bot.core.image_client import ImageClient
from bot.core.keys import ServerKeys
from bot.core.models import DailyUsage, Turn, TurnStatus, Usage
from bot.core.options import ImageOptions, largest_size, lower_quality
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

log = logging.getLogger(__name__)

# Image output tokens of one 1024x1024 image by quality (image generation guide); other sizes
# scale with their pixel count; each preview adds 100.
_IMAGE_TOKENS_1024 = {"low": 272, "medium": 1056, "high": 4160}


@dataclass(frozen=True, slots=True)
class UpscalePlan:
    """An upscale of a result: the options it runs with and what it should cost."""

    options: ImageOptions
    cost_usd: float


@dataclass(frozen=True, slots=True)
class Allowance:
    """What a member has left right now (0 limit = none set)."""

    exempt: bool
    images_per_day: int
    images_left: int
    daily_spend: float
    daily_spend_left: float
    monthly_spend: float
    monthly_spend_left: float
    day_resets: int  # unix time
    month_resets: int


@dataclass(frozen=True, slots=True)
class UsageReport:
    images_today: int
    cost_today: float
    images_month: int
    cost_month: float
    estimated: bool = False  # some of these costs are estimates (image tokens not reported)


class Accounts:
    """Usage, allowance, pricing and the key a turn is billed to."""

    def __init__(
        self,
        store: Store,
        ceilings: Ceilings,
        prices: dict[str, dict[str, float]],
        *,
        mainline: str,
        image_model: str | None,
        server_keys: ServerKeys | None,
        per_user_slots: int = 4,
        per_user_queued: int = 3,
    ) -> None:
        self.store = store
        self.ceilings = ceilings
        self.prices = PriceBook(prices, mainline=mainline, image_model=image_model)
        self.image_model = image_model
        self.server_keys = server_keys
        self.admission = Admission(store, ceilings, per_user_slots=per_user_slots,
                                   per_user_queued=per_user_queued)

    # ------------------------------------------------------------------ which key pays
    async def own_key(self, guild_id: int | None) -> bool:
        """Whether a server's turns are billed to its own key; refused when that key failed."""
        if self.server_keys is None:
            return False
        state = await self.server_keys.state(guild_id)
        if state == "failed":
            raise UserFacingError(ErrorKind.own_key_failed)
        return state == "active"

    async def own_key_failed(self, turn: Turn) -> bool:
        """A server's own key was refused (401, no quota): stop using it. True the first time
        (its managers are then told)."""
        if self.server_keys is None or turn.guild_id is None:
            return False
        return await self.server_keys.mark_failed(turn.guild_id)

    async def server_client(self, guild_id: int | None) -> ImageClient:
        """The image client of a server's own key (never the operator's for a server that pays
        itself)."""
        client = None
        if self.server_keys is not None and guild_id is not None:
            client = await self.server_keys.client_for(guild_id)
        if client is None:
            raise UserFacingError(ErrorKind.own_key_failed)
        return client

    # ------------------------------------------------------------------ prices
    def upscale_plan(self, turn: Turn, policy: EffectivePolicy) -> UpscalePlan:
        """Re-render a result as an edit at the highest quality and the largest size this server
        allows, with the same proportions; and its estimated cost."""
        if turn.status is not TurnStatus.done or not turn.images or turn.deleted:
            raise UserFacingError(ErrorKind.unknown_conversation)
        source = next((img.size for img in turn.images if img.size), None) or turn.options.size
        size = largest_size(source, turn.options.model or policy.image_model, policy.max_size)
        options = ImageOptions(action="edit", size=size,
                               quality=lower_quality(policy.max_quality, "high"))
        checked = policy.clamp(options.merged_over(turn.options))
        width, height = (int(part) for part in size.split("x"))
        quality = checked.quality if checked.quality in _IMAGE_TOKENS_1024 else "high"
        tokens = _IMAGE_TOKENS_1024[quality] * width * height // (1024 * 1024)
        tokens += 100 * (checked.partial_images or 0)
        cost = self.prices.cost(Usage(image_output=tokens), checked.model)
        return UpscalePlan(options, cost)

    # ------------------------------------------------------------------ usage
    async def usage_of(self, *, user_id: int | None = None,
                       guild_id: int | None = None) -> UsageReport:
        now = dt.datetime.now(dt.UTC)
        today = day_start(now).timestamp()
        month = month_start(now).timestamp()
        day = await self.store.usage.totals(since=today, author_id=user_id, guild_id=guild_id)
        mon = await self.store.usage.totals(since=month, author_id=user_id, guild_id=guild_id)
        return UsageReport(day.images, day.cost_usd, mon.images, mon.cost_usd,
                           day.estimated or mon.estimated)

    async def reserved_spend(self, guild_id: int) -> float:
        """USD a server's unfinished turns still hold (their worst case, until settled)."""
        spend = await self.store.usage.spend(since=0.0, guild_id=guild_id)
        return spend.reserved

    async def allowance(self, actor: Actor, policy: EffectivePolicy) -> Allowance:
        """Images and spend left for `actor` today and this month, as admission counts them."""
        now = dt.datetime.now(dt.UTC)
        today = day_start(now).timestamp()
        per_day, images_left = policy.user_daily_images(), 0
        if per_day:
            mine = await self.store.usage.totals(since=today, author_id=actor.user_id)
            pending = await self.store.usage.pending(author_id=actor.user_id)
            images_left = max(0, per_day - mine.images - pending)
        daily, monthly = policy.daily_spend(), policy.monthly_spend()
        daily_left = monthly_left = 0.0
        if actor.guild_id is not None and daily:  # settled spend plus reservations
            spent = await self.store.usage.spend(since=today, guild_id=actor.guild_id)
            daily_left = max(0.0, daily - spent.settled - spent.reserved)
        if actor.guild_id is not None and monthly:
            spent = await self.store.usage.spend(since=month_start(now).timestamp(),
                                                 guild_id=actor.guild_id)
            monthly_left = max(0.0, monthly - spent.settled - spent.reserved)
        return Allowance(
            exempt=policy.is_exempt(actor), images_per_day=per_day, images_left=images_left,
            daily_spend=daily if actor.guild_id else 0.0, daily_spend_left=daily_left,
            monthly_spend=monthly if actor.guild_id else 0.0, monthly_spend_left=monthly_left,
            day_resets=int(next_day(now).timestamp()),
            month_resets=int(next_month(now).timestamp()),
        )

    async def record_text_spend(
        self, actor: Actor, kind: str, usage: Usage, cost_usd: float, *, own_key: bool = False
    ) -> None:
        """Count a text-only call (e.g. /describe) against the spend caps (`own_key`: billed to
        the server's own key, which the instance's caps leave out)."""
        await self.store.usage.record_text(guild_id=actor.guild_id, author_id=actor.user_id,
                                           kind=kind, usage=usage, cost_usd=cost_usd,
                                           own_key=own_key)

    async def top_users(self, guild_id: int, *, since: float) -> list[tuple[int, int, float]]:
        """(user id, images, USD) of a server's biggest users since `since`."""
        return await self.store.usage.top_users(guild_id, since=since)

    async def daily_usage(self, guild_id: int, *, since: float) -> list[DailyUsage]:
        return await self.store.usage.daily(since=since, guild_id=guild_id)
