"""`/usage`: what a member has used and what is left (images today, the server's budget, when
it resets, their images in progress); for server managers also the server's totals, top users
and a 30-day chart."""

from __future__ import annotations

import asyncio
import datetime as dt
import io

import discord
from discord import app_commands
from discord.app_commands import locale_str
from discord.ext import commands

from bot.adapter import actor_of
from bot.core.policy import month_start
from bot.exts._bot import BotServices
from bot.ui.channel_rules import rule_phrases
from bot.ui.chart import usage_chart
from bot.ui.i18n import t
from bot.ui.member_text import allowance_lines, progress_lines, totals_lines


class Usage(commands.Cog):
    def __init__(self, bot: BotServices) -> None:
        self.bot = bot
        self.service = bot.service

    @app_commands.command(name=locale_str("usage"), description=locale_str("Show image usage and limits"))
    async def usage(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        locale = str(interaction.locale)
        mine = await self.bot.accounts.usage_of(user_id=interaction.user.id)
        lines = totals_lines("usage.you", mine, locale)
        actor = actor_of(interaction.user, interaction.channel)
        policy = await self.bot.gate.policy_for(actor.guild_id, actor.channel_id)
        lines += allowance_lines(await self.bot.accounts.allowance(actor, policy), locale)
        here = rule_phrases(policy.channel, locale)
        if here:
            lines.append(t("usage.channel_rules", locale, rules=", ".join(here)))
        lines += progress_lines(await self.bot.runner.unfinished_of(interaction.user.id), locale)
        files = []
        member = interaction.user
        if (interaction.guild_id is not None and isinstance(member, discord.Member)
                and member.guild_permissions.manage_guild):
            server_lines, chart = await self._server_report(interaction.guild_id, locale)
            lines += server_lines
            files.append(chart)
        await interaction.followup.send(
            "**" + t("usage.title", locale) + "**\n" + "\n".join(lines), files=files,
            ephemeral=True, allowed_mentions=discord.AllowedMentions.none(),
        )

    async def _server_report(self, guild_id: int, locale: str) -> tuple[list[str], discord.File]:
        """For managers: the server's totals, its top members this month, a 30-day chart."""
        server = await self.bot.accounts.usage_of(guild_id=guild_id)
        lines = totals_lines("usage.server", server, locale)
        reserved = await self.bot.accounts.reserved_spend(guild_id)
        if reserved > 0:
            lines.append(t("usage.reserved", locale, amount=f"{reserved:.2f}"))
        now = dt.datetime.now(dt.UTC)
        month = month_start(now).timestamp()
        top = await self.bot.accounts.top_users(guild_id, since=month)
        if top:
            entries = ", ".join(f"<@{uid}> {n} (${c:.2f})" for uid, n, c in top)
            lines.append(t("usage.top", locale, entries=entries))
        # The chart carries no text of its own (its font has no CJK glyphs): the caption says
        # what it shows, in the reader's language.
        lines.append("-# " + t("usage.chart", locale))
        since = (now - dt.timedelta(days=30)).timestamp()
        days = await self.bot.accounts.daily_usage(guild_id, since=since)
        png = await asyncio.to_thread(usage_chart, days, today=now.date(), title="")
        return lines, discord.File(io.BytesIO(png), filename="usage-30d.png")


async def setup(bot: BotServices) -> None:
    await bot.add_cog(Usage(bot))
