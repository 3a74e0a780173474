"""Who may do what, and how much: server settings bounded by the instance's ceilings.

Every permission and limit decision lives here, used alike by commands, thread replies and
buttons. The environment (`Settings`) sets instance-wide defaults and hard ceilings; a server's
own settings may only narrow them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from bot.core.errors import ErrorKind, UserFacingError
from bot.core.image_models import DEFAULT_IMAGE_MODEL, MAX_FRAMES
from bot.core.options import (
    COMPLEXITY_RANK,
    ImageOptions,
    lower_quality,
    parse_size,
    suggest_size,
    valid_sizes,
)

RefineMode = Literal["anyone", "starter"]
_CHANNEL_RULES = "channel_rules"  # the stored key: {channel id: {rule: value}}


@dataclass(frozen=True, slots=True)
class ChannelRules:
    """One channel's own rules on top of its server's: a rule set here replaces the server's in
    that channel (the instance's ceilings still bound it); None leaves the server's rule."""

    max_quality: str | None = None
    max_size: str | None = None  # WxH, compared by pixel count
    previews: bool | None = None  # False: no live previews here
    imagine: bool | None = None  # False: no generation here; True: allowed even if unlisted

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChannelRules:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclass(frozen=True, slots=True)
class GuildPolicy:
    """A server's settings as stored (JSON) in the database."""

    allowed_channels: tuple[int, ...] = ()  # empty = everywhere
    allowed_roles: tuple[int, ...] = ()  # empty = everyone
    blocked_users: tuple[int, ...] = ()
    exempt_roles: tuple[int, ...] = ()  # not subject to usage limits
    refine_mode: RefineMode = "anyone"
    default_quality: str | None = None
    max_quality: str | None = None
    default_size: str | None = None
    max_size: str | None = None  # WxH: the largest image (in pixels) members may ask for
    default_partial_images: int | None = None
    moderation: str | None = None  # "auto" forces auto; "low" allows low
    user_daily_images: int | None = None
    daily_spend_usd: float | None = None
    monthly_spend_usd: float | None = None
    locale: str | None = None
    image_model: str | None = None  # one of the operator's IMAGE_MODELS
    max_complexity: str | None = None
    max_gif_frames: int | None = None
    allow_member_dms: bool | None = None  # members may generate in DMs (when ALLOW_DMS is on)
    showcase_channel: int | None = None  # the forum or media channel results are published to
    showcase_stars: int | None = None  # ⭐ reactions that publish a result by themselves
    # per channel (a thread's parent): stored as {"<channel id>": {rule: value}}
    channel_rules: tuple[tuple[int, ChannelRules], ...] = ()
    # members blocked for a while by a moderator: user id (as a string, a JSON key) -> until when
    blocked_until: dict[str, float] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GuildPolicy:
        names = {f.name for f in dataclasses.fields(cls)}
        clean: dict[str, Any] = {}
        for key, value in data.items():
            if key == _CHANNEL_RULES:
                clean[key] = tuple(sorted((int(c), ChannelRules.from_dict(r))
                                          for c, r in (value or {}).items()))
            elif key in names:
                clean[key] = tuple(value) if isinstance(value, list) else value
        return cls(**clean)

    def to_dict(self) -> dict[str, Any]:
        data = {
            k: list(v) if isinstance(v, tuple) else v
            for k, v in dataclasses.asdict(self).items()
            if v not in (None, ()) and v != {} and k != _CHANNEL_RULES
        }
        rules = {str(c): r.to_dict() for c, r in self.channel_rules if r.to_dict()}
        if rules:
            data[_CHANNEL_RULES] = rules
        return data

    def rules_for(self, channel_id: int | None) -> ChannelRules:
        """The rules of one channel (none set: every rule is the server's)."""
        return next((r for c, r in self.channel_rules if c == channel_id), ChannelRules())

    def is_blocked(self, user_id: int, now: float | None = None) -> bool:
        """Blocked for good (`blocked_users`) or until a time still to come."""
        until = self.blocked_until.get(str(user_id))
        return user_id in self.blocked_users or (
            until is not None and until > (time.time() if now is None else now))


@dataclass(frozen=True, slots=True)
class Ceilings:
    """Instance-wide defaults and limits from the environment."""

    default_options: ImageOptions
    max_quality: str = "high"
    max_size: str | None = None
    allow_low_moderation: bool = True
    image_model: str = DEFAULT_IMAGE_MODEL  # IMAGE_MODEL: what servers run unless they choose
    allowed_models: tuple[str, ...] = ()  # IMAGE_MODELS (IMAGE_MODEL is always allowed)
    max_complexity: str = "high"
    max_gif_frames: int = MAX_FRAMES
    user_daily_images: int = 0  # 0 = unlimited
    guild_daily_spend_usd: float = 0.0
    guild_monthly_spend_usd: float = 0.0
    allow_dms: bool = False
    dm_allowed_users: tuple[int, ...] = ()
    instance_daily_spend_usd: float = 0.0  # over every server and DM (0 = unlimited)
    instance_monthly_spend_usd: float = 0.0


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is asking, in Discord terms the core understands."""

    user_id: int
    guild_id: int | None
    channel_id: int | None  # the text channel (a thread's parent)
    role_ids: tuple[int, ...] = ()
    is_moderator: bool = False  # Manage Messages / Manage Server / Manage Threads
    # In a DM: the servers (among those that allow member DMs) the user is a member of.
    member_of: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class EffectivePolicy:
    """A server's settings, the rules of the channel a turn is in (a thread's parent), and the
    instance's ceilings, combined: what the gate and every limit check apply."""

    policy: GuildPolicy
    ceilings: Ceilings
    channel: ChannelRules = ChannelRules()

    @property
    def max_quality(self) -> str:
        return lower_quality(self.channel.max_quality or self.policy.max_quality,
                             self.ceilings.max_quality)

    @property
    def image_model(self) -> str:
        """The server's image model if the operator still allows it, else IMAGE_MODEL."""
        chosen = self.policy.image_model
        if chosen and chosen in self.ceilings.allowed_models:
            return chosen
        return self.ceilings.image_model

    @property
    def max_complexity(self) -> str:
        levels = [c for c in (self.policy.max_complexity, self.ceilings.max_complexity)
                  if c in COMPLEXITY_RANK]
        return min(levels, key=COMPLEXITY_RANK.__getitem__) if levels else "high"

    @property
    def max_gif_frames(self) -> int:
        return min(self.policy.max_gif_frames or MAX_FRAMES, self.ceilings.max_gif_frames)

    @property
    def allow_low_moderation(self) -> bool:
        return self.ceilings.allow_low_moderation and self.policy.moderation == "low"

    def defaults(self) -> ImageOptions:
        """What a turn gets unless chosen: a channel's lower maxima lower the defaults too."""
        base = self.ceilings.default_options
        quality = self.policy.default_quality or base.quality
        size = self.policy.default_size or base.size
        if size and not valid_sizes([size], self.image_model):  # a server chose a presets-only
            size = suggest_size(size, self.image_model) or "auto"  # model: its nearest preset
        if self.channel.max_quality and quality:
            quality = lower_quality(quality, self.max_quality)
        ceiling = self.max_size if self.channel.max_size else None
        if ceiling and size and size != "auto" and pixels(size) > pixels(ceiling):
            size = ceiling
        return ImageOptions(
            size=size,
            quality=quality,
            output_format=base.output_format,
            moderation=base.moderation,
            model=self.image_model,
            partial_images=0 if self.channel.previews is False
            else self.policy.default_partial_images
            if self.policy.default_partial_images is not None
            else base.partial_images,
        )

    def user_daily_images(self) -> int:
        return _min_limit(self.policy.user_daily_images, self.ceilings.user_daily_images)

    def daily_spend(self) -> float:
        return _min_limit(self.policy.daily_spend_usd, self.ceilings.guild_daily_spend_usd)

    def monthly_spend(self) -> float:
        return _min_limit(self.policy.monthly_spend_usd, self.ceilings.guild_monthly_spend_usd)

    def check_access(self, actor: Actor) -> None:
        """Raise `not_allowed` with the reason if the actor may not generate here."""
        p = self.policy
        if p.is_blocked(actor.user_id):
            raise UserFacingError(ErrorKind.not_allowed, reason="blocked")
        if actor.is_moderator:
            return
        if self.channel.imagine is False:
            raise UserFacingError(ErrorKind.not_allowed, reason="channel_off")
        if (p.allowed_channels and actor.channel_id not in p.allowed_channels
                and self.channel.imagine is not True):
            raise UserFacingError(ErrorKind.not_allowed, reason="channel")
        if p.allowed_roles and not set(actor.role_ids) & set(p.allowed_roles):
            raise UserFacingError(ErrorKind.not_allowed, reason="role")

    def check_refine(self, actor: Actor, conversation_owner: int) -> None:
        if (
            self.policy.refine_mode == "starter"
            and not actor.is_moderator
            and actor.user_id != conversation_owner
        ):
            raise UserFacingError(ErrorKind.not_allowed, reason="starter_only")

    def is_exempt(self, actor: Actor) -> bool:
        return bool(set(actor.role_ids) & set(self.policy.exempt_roles))

    @property
    def restricts_access(self) -> bool:
        """Whether anything but a block can refuse a member here (roles, channels)."""
        p = self.policy
        return bool(p.allowed_roles or p.allowed_channels or self.channel.imagine is False)

    @property
    def max_size(self) -> str | None:
        """The tighter of the server's (or the channel's) and the instance's size ceilings (by
        pixel count)."""
        sizes = [s for s in (self.channel.max_size or self.policy.max_size,
                             self.ceilings.max_size) if s]
        return min(sizes, key=pixels) if sizes else None

    def clamp(self, options: ImageOptions) -> ImageOptions:
        """Validate a complete set of options against this server's (and channel's) ceilings;
        a channel without previews gets none; a model the operator no longer allows becomes
        the server's."""
        if options.model and options.model not in (self.ceilings.image_model,
                                                   *self.ceilings.allowed_models):
            options = dataclasses.replace(options, model=self.image_model)
        try:
            checked = options.validated(
                max_quality=self.max_quality, allow_low_moderation=self.allow_low_moderation,
                image_model=self.image_model, max_complexity=self.max_complexity,
                max_frames=self.max_gif_frames,
            )
        except UserFacingError as error:
            if error.params.get("problem") == "quality_max" and self.channel.max_quality:
                raise UserFacingError(ErrorKind.invalid_options, problem="quality_channel_max",
                                      value=self.max_quality) from None
            raise
        ceiling = self.max_size
        if ceiling and checked.size and checked.size != "auto" and pixels(checked.size) > pixels(ceiling):
            if self.channel.max_size:
                raise UserFacingError(ErrorKind.invalid_options, problem="size_channel_max",
                                      value=ceiling)
            raise UserFacingError(ErrorKind.invalid_options, problem="size_server_max", value=ceiling)
        if self.channel.previews is False and checked.partial_images:
            checked = dataclasses.replace(checked, partial_images=0)
        return checked


def check_dm_access(ceilings: Ceilings, actor: Actor, settings: dict[int, GuildPolicy]) -> None:
    """Raise `not_allowed` unless `actor` may generate in a DM: DMs are on for the instance, the
    user is listed in DM_ALLOWED_USERS or is a member of a server that allows member DMs, and no
    server has blocked them (`settings`: every server's policy)."""
    if not ceilings.allow_dms:
        raise UserFacingError(ErrorKind.not_allowed, reason="dm")
    if any(policy.is_blocked(actor.user_id) for policy in settings.values()):
        raise UserFacingError(ErrorKind.not_allowed, reason="dm")  # blocked by some server
    if actor.user_id in ceilings.dm_allowed_users:
        return
    if not any(settings.get(g, GuildPolicy()).allow_member_dms for g in actor.member_of):
        raise UserFacingError(ErrorKind.not_allowed, reason="dm")


class OncePer:
    """At most one event per key per `period` seconds (e.g. one 'no DMs here' note per user)."""

    def __init__(self, period: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.period = period
        self._clock = clock
        self._last: dict[int, float] = {}

    def allow(self, key: int) -> bool:
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self.period:
            return False
        if len(self._last) > 10_000:  # forget old keys so the map cannot grow without bound
            self._last = {k: v for k, v in self._last.items() if now - v < self.period}
        self._last[key] = now
        return True


def pixels(size: str) -> int:
    """Pixel count of a `WxH` size."""
    width, height = parse_size(size).split("x")
    return int(width) * int(height)


def _min_limit(server: float | None, instance: float) -> Any:
    """The tighter of two limits where 0/None means unlimited."""
    values = [v for v in (server, instance) if v]
    return min(values) if values else 0


def day_start(now: dt.datetime) -> dt.datetime:
    """Midnight (in `now`'s zone, UTC in practice) starting the day that quotas count."""
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def month_start(now: dt.datetime) -> dt.datetime:
    return day_start(now).replace(day=1)


def next_day(now: dt.datetime) -> dt.datetime:
    return day_start(now) + dt.timedelta(days=1)


def next_month(now: dt.datetime) -> dt.datetime:
    start = month_start(now)
    return (start + dt.timedelta(days=32)).replace(day=1)
