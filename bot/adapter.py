"""Discord in, core terms out: who is acting, and what a generation command asked for.

The cogs, the command tree's check and the buttons all convert Discord objects here, so the core
sees only `Actor`, `ImageOptions` and plain values.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import discord
from discord import app_commands
from discord.app_commands import locale_str

from bot.core.gate import Declared, Gate, Place
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
from bot.ui.i18n import t

log = logging.getLogger(__name__)


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


async def actor_for(gate: Gate, user: discord.abc.User, channel: Any) -> Actor:
    """Who is acting; in a DM, with the servers that may vouch for them."""
    if isinstance(user, discord.Member):
        return actor_of(user, channel)
    return await gate.dm_actor(user.id)


def place_of(interaction: discord.Interaction) -> Place:
    """The server and channel an interaction came from (what its `custom_id`'s ids must match)."""
    return Place(interaction.guild_id, interaction.channel_id)


def declared(attachments: list[discord.Attachment]) -> list[Declared]:
    """Attachments as their message declares them (nothing downloaded)."""
    return [Declared(a.filename, a.size, a.content_type) for a in attachments]


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


class DiscordMembers:
    """What the core asks Discord about members and servers (`bot.core.gate.Members`), and how
    it tells a server's owner that the server's own key stopped working."""

    def __init__(self, client: discord.Client) -> None:
        self.client = client

    async def is_member(self, guild_id: int, user_id: int) -> bool:
        guild = self.client.get_guild(guild_id)
        if guild is None:
            return False
        if guild.get_member(user_id) is not None:
            return True
        try:
            await guild.fetch_member(user_id)
        except discord.NotFound:
            return False
        except discord.HTTPException as exc:
            log.info("Could not check membership of %s in %s: %s", user_id, guild_id, exc)
            return False
        return True

    async def actor_now(self, guild_id: int, user_id: int, channel_id: int) -> Actor | None:
        """The member as Discord has them now (None: no longer a member); `LookupError` when
        Discord cannot tell."""
        guild = self.client.get_guild(guild_id)
        if guild is None:
            raise LookupError(guild_id)
        try:
            member = await guild.fetch_member(user_id)
        except discord.NotFound:
            return None
        except discord.HTTPException as exc:
            log.info("Could not re-check member %s of %s: %s", user_id, guild_id, exc)
            raise LookupError(user_id) from None
        return actor_of(member, discord.Object(channel_id))

    async def tell_key_failed(self, guild_id: int) -> None:
        """A server's own key stopped working: its owner is told by DM (once per failure)."""
        guild = self.client.get_guild(guild_id)
        if guild is None or guild.owner_id is None:
            return
        owner = await self.client.fetch_user(guild.owner_id)
        await owner.send(t("key.failed_dm", str(guild.preferred_locale), server=guild.name))
