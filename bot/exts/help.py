"""`/help`: what the commands do, how threads and branching work, and this server's limits, in
the reader's language. A server gets the same text once, when the bot joins it."""

from __future__ import annotations

import logging

import discord
from discord import app_commands
from discord.app_commands import locale_str
from discord.ext import commands

from bot.ack import acknowledge
from bot.adapter import actor_of
from bot.exts._bot import BotServices
from bot.ui.help_text import HELP_COMMANDS, help_page
from bot.ui.i18n import t
from bot.ui.render import MAX_CONTENT, clip

log = logging.getLogger(__name__)

WELCOMED_KEY = "welcomed:{guild}"


class Help(commands.Cog):
    def __init__(self, bot: BotServices) -> None:
        self.bot = bot
        self.service = bot.service
        self._welcoming: set[int] = set()  # servers whose greeting is being posted now

    async def help_text(self, guild_id: int | None, locale: str,
                        channel_id: int | None = None) -> str:
        names = {c.name for c in self.bot.tree.get_commands()}
        mentions = {name: await self.bot.command_mention(
                        "imagine-settings show" if name == "imagine-settings" else name)
                    for name in HELP_COMMANDS if name in names}
        policy = await self.bot.gate.policy_for(guild_id, channel_id)
        return help_page(mentions, policy, locale, in_server=guild_id is not None)

    @app_commands.command(
        name=locale_str("help"),
        description=locale_str("How to use the image bot: commands, threads, this server's limits"),
    )
    async def help(self, interaction: discord.Interaction) -> None:
        if not await acknowledge(interaction, ephemeral=True, thinking=True):  # always private
            return
        channel_id = actor_of(interaction.user, interaction.channel).channel_id
        text = await self.help_text(interaction.guild_id, str(interaction.locale), channel_id)
        await interaction.followup.send(
            text, ephemeral=True, allowed_mentions=discord.AllowedMentions.none()
        )

    @commands.Cog.listener()
    async def on_guild_join(self, guild: discord.Guild) -> None:
        """Greet a new server once (remembered across restarts and re-invites). The marker is
        written before the post, so a re-invite that arrives while the greeting is still being
        posted is not greeted a second time; a post that fails clears it for the next join."""
        if guild.id in self._welcoming:
            return
        self._welcoming.add(guild.id)  # before any await: a second join waits for nothing
        try:
            await self._welcome_once(guild, WELCOMED_KEY.format(guild=guild.id))
        finally:
            self._welcoming.discard(guild.id)

    async def _welcome_once(self, guild: discord.Guild, key: str) -> None:
        if await self.bot.store.meta.get(key):
            return
        channel = self._welcome_channel(guild)
        if channel is None:
            log.info("No channel in guild %s where I may speak; no welcome posted", guild.id)
            return
        await self.bot.store.meta.put(key, str(channel.id))
        if not await self._post_welcome(guild, channel):
            await self.bot.store.meta.put(key, "")  # not greeted: the next join tries again

    async def _post_welcome(self, guild: discord.Guild, channel: discord.TextChannel) -> bool:
        locale = str(guild.preferred_locale)
        settings = await self.bot.command_mention("imagine-settings limits")
        text = t("help.welcome", locale, settings=settings) + "\n\n"
        text += await self.help_text(guild.id, locale)
        try:
            await channel.send(clip(text, MAX_CONTENT), allowed_mentions=discord.AllowedMentions.none())
        except discord.HTTPException as exc:
            log.info("Could not welcome guild %s: %s", guild.id, exc)
            return False
        return True

    @staticmethod
    def _welcome_channel(guild: discord.Guild) -> discord.TextChannel | None:
        """The system channel (where Discord posts joins, read by managers), else the first
        text channel the bot may speak in."""
        candidates = [guild.system_channel] if guild.system_channel else []
        candidates += sorted(guild.text_channels, key=lambda c: c.position)
        for channel in candidates:
            perms = channel.permissions_for(guild.me)
            if perms.send_messages and perms.view_channel:
                return channel
        return None


async def setup(bot: BotServices) -> None:
    await bot.add_cog(Help(bot))
