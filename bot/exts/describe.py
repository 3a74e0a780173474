"""`/describe` and the Apps → Describe menu on a message: three prompt ideas for an image, each
with a button that starts a conversation from it."""

from __future__ import annotations

import logging

import discord
from discord import app_commands
from discord.app_commands import locale_str
from discord.ext import commands

from bot.ack import acknowledge
from bot.adapter import actor_for, declared
from bot.core.admission import Hold
from bot.core.describe import WORST_CASE
from bot.core.errors import ErrorKind, UserFacingError
from bot.core.policy import Actor
from bot.exts._bot import BotServices
from bot.ui.describe_view import UseSuggestion, describe_answer
from bot.ui.i18n import language
from bot.ui.replies import send_error

log = logging.getLogger(__name__)

class Describe(commands.Cog):
    def __init__(self, bot: BotServices) -> None:
        self.bot = bot
        self.service = bot.service
        self.menu = app_commands.ContextMenu(
            name=locale_str("Describe"), callback=self.describe_message
        )

    async def cog_load(self) -> None:
        self.bot.tree.add_command(self.menu)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.menu.name, type=self.menu.type)

    @app_commands.command(
        name=locale_str("describe"),
        description=locale_str("Three prompt ideas from an image, each one click from /imagine"),
    )
    @app_commands.rename(image=locale_str("image"))
    @app_commands.describe(image=locale_str("The image to describe"))
    async def describe(self, interaction: discord.Interaction, image: discord.Attachment) -> None:
        await self._answer(interaction, image)

    async def describe_message(
        self, interaction: discord.Interaction, message: discord.Message
    ) -> None:
        image = next((a for a in message.attachments
                      if (a.content_type or "").startswith("image/")), None)
        ours = self.bot.user is not None and message.author.id == self.bot.user.id
        await self._answer(interaction, image, ours=ours)

    async def _answer(
        self, interaction: discord.Interaction, attachment: discord.Attachment | None, *,
        ours: bool = False,
    ) -> None:
        """The gate first (DM policy, access, the attachment as declared, the spend caps, with
        the worst case held and billed to the right key), then the download and the one call."""
        gate = self.bot.gate
        if not await acknowledge(interaction, ephemeral=True, thinking=True):  # always private
            return
        try:
            actor = await actor_for(gate, interaction.user, interaction.channel)
            hold = await gate.admit_text(actor, self.bot.accounts.prices.cost(WORST_CASE),
                                         declared([attachment])[0] if attachment else None)
        except UserFacingError as error:
            await send_error(interaction, error)
            return
        try:
            await self._describe(interaction, attachment, actor, hold, ours)
        finally:
            gate.release_hold(hold)

    async def _describe(
        self, interaction: discord.Interaction, attachment: discord.Attachment | None,
        actor: Actor, hold: Hold, ours: bool,
    ) -> None:
        locale = str(interaction.locale)
        try:
            if attachment is None:
                raise UserFacingError(ErrorKind.bad_attachment, problem="no_image")
            self.bot.attachments.check(attachment)
        except UserFacingError as error:
            await send_error(interaction, error)
            return
        try:
            [image] = await self.bot.attachments.read([attachment], ours=ours)
            result = await self.bot.runner.describe(image, hold, language=language(locale))
        except UserFacingError as error:
            await send_error(interaction, error)
            return
        await self.bot.accounts.record_text_spend(actor, "describe", result.usage, result.cost_usd,
                                                  own_key=hold.own_key)
        text, view = describe_answer(result.suggestions, locale)
        await interaction.followup.send(
            text, view=view, ephemeral=True,
            allowed_mentions=discord.AllowedMentions.none(),
        )


async def setup(bot: BotServices) -> None:
    bot.add_dynamic_items(UseSuggestion)
    await bot.add_cog(Describe(bot))
