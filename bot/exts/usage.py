"""`/usage`: a member's own usage; for server managers also the server's totals, top users and a
30-day chart."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.app_commands import locale_str
from discord.ext import commands

from bot.core.policy import month_start
from bot.ui.chart import usage_chart
from bot.ui.i18n import t

if TYPE_CHECKING:
    from bot.app import ImagineBot


class Usage(commands.Cog):
    def __init__(self, bot: ImagineBot) -> None:
        self.bot = bot
        self.service = bot.service

    @app_commands.command(name=locale_str("usage"), description=locale_str("Show image usage and limits"))
    async def usage(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        locale = str(interaction.locale)
        mine = await self.service.usage_of(user_id=interaction.user.id)
        lines = [t("usage.you", locale, images_today=mine.images_today,
                   cost_today=f"{mine.cost_today:.2f}", images_month=mine.images_month,
                   cost_month=f"{mine.cost_month:.2f}")]
        policy = await self.service.policy_for(interaction.guild_id)
        limits = []
        if policy.user_daily_images():
            limits.append(f"{t('limit.user_daily_images', locale)} {policy.user_daily_images()}")
        if policy.daily_spend():
            limits.append(f"{t('limit.guild_daily_spend', locale)} ${policy.daily_spend():.2f}")
        if policy.monthly_spend():
            limits.append(f"{t('limit.guild_monthly_spend', locale)} ${policy.monthly_spend():.2f}")
        if limits:
            lines.append(t("usage.limits", locale, limits="; ".join(limits)))
        files = []
        member = interaction.user
        if (interaction.guild_id is not None and isinstance(member, discord.Member)
                and member.guild_permissions.manage_guild):
            server = await self.service.usage_of(guild_id=interaction.guild_id)
            lines.append(t("usage.server", locale, images_today=server.images_today,
                           cost_today=f"{server.cost_today:.2f}",
                           images_month=server.images_month,
                           cost_month=f"{server.cost_month:.2f}"))
            now = dt.datetime.now(dt.UTC)
            month = month_start(now).timestamp()
            top = await self.service.top_users(interaction.guild_id, since=month)
            if top:
                entries = ", ".join(f"<@{uid}> {n} (${c:.2f})" for uid, n, c in top)
                lines.append(t("usage.top", locale, entries=entries))
            since = (now - dt.timedelta(days=30)).timestamp()
            days = await self.service.daily_usage(interaction.guild_id, since=since)
            png = await asyncio.to_thread(usage_chart, days, today=now.date(),
                                          title=t("usage.chart", "en"))
            files.append(discord.File(io.BytesIO(png), filename="usage-30d.png"))
        await interaction.followup.send(
            "**" + t("usage.title", locale) + "**\n" + "\n".join(lines), files=files,
            ephemeral=True, allowed_mentions=discord.AllowedMentions.none(),
        )


async def setup(bot: ImagineBot) -> None:
    await bot.add_cog(Usage(bot))
