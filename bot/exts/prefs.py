"""`/imagine-prefs`: a member's own defaults (size, quality, previews) and whether they are
pinged when an image is ready; always within the server's limits."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.app_commands import locale_str
from discord.ext import commands

from bot.ack import acknowledge
from bot.core.errors import UserFacingError
from bot.core.models import UserPrefs
from bot.core.options import checked_size
from bot.exts._bot import BotServices
from bot.ui.choices import QUALITY_CHOICES, size_choices
from bot.ui.i18n import t
from bot.ui.member_text import prefs_text
from bot.ui.replies import send_error


class Prefs(commands.Cog):
    def __init__(self, bot: BotServices) -> None:
        self.bot = bot
        self.service = bot.service

    @app_commands.command(
        name=locale_str("imagine-prefs"),
        description=locale_str("Your own defaults: size, quality, previews, ping when ready"),
    )
    @app_commands.choices(quality=QUALITY_CHOICES)
    @app_commands.rename(size=locale_str("size"), quality=locale_str("quality"),
                         previews=locale_str("previews"), ping=locale_str("ping"),
                         reset=locale_str("reset"))
    @app_commands.describe(
        size=locale_str("auto, a preset, or WIDTHxHEIGHT (multiples of 16)"),
        quality=locale_str("Rendering quality (higher costs more)"),
        previews=locale_str("Live previews while generating (0-3)"),
        ping=locale_str("Mention me when my image is ready"),
        reset=locale_str("Forget my preferences"),
    )
    async def prefs(
        self,
        interaction: discord.Interaction,
        size: str | None = None,
        quality: str | None = None,
        previews: app_commands.Range[int, 0, 3] | None = None,
        ping: bool | None = None,
        reset: bool = False,
    ) -> None:
        locale = str(interaction.locale)
        user_id = interaction.user.id
        if not await acknowledge(interaction, ephemeral=True, thinking=True):  # always private
            return
        current = await self.bot.core.preferences.user_prefs(user_id)
        if reset:
            current = UserPrefs(locale=current.locale)
        try:
            updated = UserPrefs(
                locale=current.locale,
                size=checked_size(size) if size else current.size,
                quality=quality or current.quality,
                partial_images=current.partial_images if previews is None else previews,
                ping=current.ping if ping is None else ping,
            )
            changed = reset or updated != current
            if changed:
                await self.bot.core.preferences.save_prefs(user_id, interaction.guild_id, updated)
        except UserFacingError as error:
            await send_error(interaction, error)
            return
        head = t("prefs.saved" if changed else "prefs.title", locale)
        await interaction.followup.send(f"**{head}**\n{prefs_text(updated, locale)}", ephemeral=True)


    @prefs.autocomplete("size")
    async def _size_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        policy = await self.bot.gate.policy_for(interaction.guild_id)
        return size_choices(current, policy.image_model)  # the sizes the server's model takes


async def setup(bot: BotServices) -> None:
    await bot.add_cog(Prefs(bot))
