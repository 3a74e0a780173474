"""Discord in, core terms out: who is acting, and what a generation command asked for.

The cogs, the command tree's check and the buttons all convert Discord objects here, so the core
sees only `Actor`, `ImageOptions` and plain values.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import discord
from discord import app_commands
from discord.app_commands import locale_str

from bot.core.options import ImageOptions, checked_size
from bot.core.policy import Actor
from bot.ui.choices import (
    ACTION_CHOICES,
    BACKGROUND_CHOICES,
    COMPLEXITY_CHOICES,
    FORMAT_CHOICES,
    MODERATION_CHOICES,
    OPTION_DESCRIPTIONS,
    OPTION_RENAMES,
    QUALITY_CHOICES,
)


def actor_of(user: discord.abc.User, channel: Any) -> Actor:
    """Who is acting, in the terms the core's policy understands."""
    parent_id = getattr(channel, "parent_id", None) or getattr(channel, "id", None)
    if isinstance(user, discord.Member):
        perms = user.guild_permissions
        return Actor(
            user_id=user.id,
            guild_id=user.guild.id,
            channel_id=parent_id,
            role_ids=tuple(role.id for role in user.roles),
            is_moderator=perms.manage_messages or perms.manage_guild or perms.manage_threads,
        )
    return Actor(user_id=user.id, guild_id=None, channel_id=parent_id)


@dataclass(frozen=True, slots=True)
class GenerationInput:
    """What a user typed into `/imagine` or `/refine` (the parameters the two share)."""

    prompt: str
    action: str | None = None
    size: str | None = None
    quality: str | None = None
    background: str | None = None
    format: str | None = None
    compression: int | None = None
    moderation: str | None = None
    previews: int | None = None
    variants: int | None = None  # sibling turns side by side (1-4)
    complexity: str | None = None
    frames: int | None = None  # GIF
    frame_ms: int | None = None  # GIF
    image: discord.Attachment | None = None
    image2: discord.Attachment | None = None
    image3: discord.Attachment | None = None

    @property
    def attachments(self) -> list[discord.Attachment]:
        return [a for a in (self.image, self.image2, self.image3) if a is not None]

    def options(self) -> ImageOptions:
        """Options the user chose, checked on their own (the full set is checked by the core)."""
        options = ImageOptions(
            action=self.action,
            size=checked_size(self.size) if self.size else None,
            quality=self.quality,
            background=self.background,
            output_format=self.format,
            compression=self.compression,
            moderation=self.moderation,
            partial_images=self.previews,
            complexity=self.complexity,
            frame_count=self.frames,
            frame_duration_ms=self.frame_ms,
        )
        if options.background == "transparent" and options.output_format == "jpeg":
            options.validated()  # raises the specific message
        if options.compression is not None:
            ImageOptions(output_format=options.output_format or "webp",
                         compression=options.compression).validated()
        return options


async def _generation_parameters(
    self: Any,
    interaction: discord.Interaction,
    prompt: app_commands.Range[str, 1, 4000],
    action: str | None = None,
    size: str | None = None,
    quality: str | None = None,
    background: str | None = None,
    format: str | None = None,
    compression: app_commands.Range[int, 0, 100] | None = None,
    moderation: str | None = None,
    previews: app_commands.Range[int, 0, 3] | None = None,
    variants: app_commands.Range[int, 1, 4] | None = None,
    complexity: str | None = None,
    frames: app_commands.Range[int, 2, 16] | None = None,
    frame_ms: app_commands.Range[int, 10, 655350] | None = None,
    image: discord.Attachment | None = None,
    image2: discord.Attachment | None = None,
    image3: discord.Attachment | None = None,
) -> None:
    """The one declaration of the slash-command parameters `GenerationInput` holds; discord.py
    reads this signature (its string annotations resolve in this module)."""


_SIGNATURE = inspect.signature(_generation_parameters)
GenerationHandler = Callable[[Any, discord.Interaction, GenerationInput], Awaitable[None]]


def generation_command(name: str, description: str) -> Callable[[GenerationHandler], Any]:
    """A cog method `(self, interaction, request: GenerationInput)` becomes a slash command with
    the parameters, descriptions and choices that `/imagine` and `/refine` share."""

    def decorate(handler: GenerationHandler) -> Any:
        async def callback(self: Any, interaction: discord.Interaction, **values: Any) -> None:
            await handler(self, interaction, GenerationInput(**values))

        callback.__signature__ = _SIGNATURE  # type: ignore[attr-defined]
        callback.__name__ = handler.__name__
        callback.__qualname__ = handler.__qualname__  # a method: discord.py binds the cog
        callback.__doc__ = handler.__doc__
        func: Any = app_commands.choices(
            action=ACTION_CHOICES, quality=QUALITY_CHOICES, background=BACKGROUND_CHOICES,
            format=FORMAT_CHOICES, moderation=MODERATION_CHOICES, complexity=COMPLEXITY_CHOICES,
        )(callback)
        func = app_commands.rename(**OPTION_RENAMES)(func)
        func = app_commands.describe(**OPTION_DESCRIPTIONS)(func)
        return app_commands.command(name=locale_str(name), description=locale_str(description))(func)

    return decorate
