"""Moderation: every finished turn goes to the server's log channel; members report results
(the Report button, or Apps → Report image); moderators act from a log entry, a report or a result
(Apps → Moderate): delete one image, delete a member's images in a conversation, block a member
for a while. Only members with Manage Messages may use the moderators' buttons."""

from __future__ import annotations

import logging
from typing import TypeGuard

import discord
from discord import app_commands
from discord.app_commands import locale_str
from discord.ext import commands

from bot.ack import acknowledge, shed
from bot.adapter import place_of
from bot.core.errors import ErrorKind, UserFacingError
from bot.core.models import Report, Turn, TurnStatus
from bot.core.policy import Actor
from bot.exts._bot import BotServices
from bot.ui.i18n import t
from bot.ui.modlog import (
    NO_PINGS,
    BlockSelect,
    ModButton,
    ReportButton,
    ReportModal,
    quick_actions,
    report_actions,
    report_entry,
    where,
)
from bot.ui.replies import reply_privately, send_error
from bot.ui.router import BLOCK, MOD_ACTION, REPORT

log = logging.getLogger(__name__)

FINISHED = ("done", "failed", "cancelled")


class Moderation(commands.Cog):
    def __init__(self, bot: BotServices) -> None:
        self.bot = bot
        self.service = bot.service
        self.modlog = bot.modlog
        self.moderation = bot.modlog.moderation
        self.report_menu = app_commands.ContextMenu(name=locale_str("Report image"),
                                                    callback=self.report_message)
        self.moderate_menu = app_commands.ContextMenu(name=locale_str("Moderate"),
                                                      callback=self.moderate_message)
        self.moderate_menu.default_permissions = discord.Permissions(manage_messages=True)
        self.moderate_menu.guild_only = True
        self.report_menu.guild_only = True
        self.bot.core.outcomes.listeners.append(self.on_turn_event)

    async def cog_load(self) -> None:
        self.bot.tree.add_command(self.report_menu)
        self.bot.tree.add_command(self.moderate_menu)
        self.bot.router.add(REPORT, self.open_report_form)
        self.bot.router.add(MOD_ACTION, self.on_mod_action)
        self.bot.router.add(BLOCK, self.on_block)
        self.bot.add_dynamic_items(ReportButton, ModButton, BlockSelect)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.report_menu.name, type=self.report_menu.type)
        self.bot.tree.remove_command(self.moderate_menu.name, type=self.moderate_menu.type)
        for route in (REPORT, MOD_ACTION, BLOCK):
            self.bot.router.remove(route)
        self.bot.core.outcomes.listeners.remove(self.on_turn_event)

    # ------------------------------------------------------------------ the log of turns
    def on_turn_event(self, event: str, turn: Turn, error: UserFacingError | None) -> None:
        """A turn finished: its entry is posted later, in a tracked task (never in the way of
        the result, which is delivered and recorded before "done" is announced)."""
        if event in FINISHED and turn.guild_id is not None:
            self.modlog.spawn(self.modlog.turn_finished(turn.id, error), name=f"modlog-{turn.id}")

    @commands.Cog.listener()
    async def on_guild_channel_delete(self, channel: discord.abc.GuildChannel) -> None:
        """The log channel deleted: the log is switched off and the owner told at once."""
        if await self.moderation.log_channel(channel.guild.id) == channel.id:
            await self.modlog.lost(channel.guild.id, channel.id, "gone")

    # ------------------------------------------------------------------ reports
    async def report_message(self, interaction: discord.Interaction,
                             message: discord.Message) -> None:
        turn = await self.service.turn_for_message(message.id)
        if turn is None:
            await reply_privately(interaction, t("report.not_a_result", str(interaction.locale)))
            return
        await self.open_report_form(interaction, turn.id)

    async def open_report_form(self, interaction: discord.Interaction, turn_id: int) -> None:
        """The form first, with nothing waited for before it (the result is checked when the
        form is submitted)."""
        if not await shed(interaction):
            await interaction.response.send_modal(ReportModal(self, turn_id, str(interaction.locale)))

    @staticmethod
    def _reportable(turn: Turn | None) -> TypeGuard[Turn]:
        """Whether a report may name `turn`: a finished result in a server."""
        return turn is not None and turn.guild_id is not None \
            and turn.status is TurnStatus.done and not turn.deleted

    async def on_report_submit(self, interaction: discord.Interaction, turn_id: int,
                               reason: str) -> None:
        """Fold the report into the result's open one; tell the reporter privately."""
        locale = str(interaction.locale)
        if not await acknowledge(interaction, ephemeral=True, thinking=True):
            return
        try:
            turn: Turn | None = await self.service.turn_in(turn_id, place_of(interaction))
        except UserFacingError:
            turn = None
        if not self._reportable(turn):
            await reply_privately(interaction, t("report.not_a_result", locale))
            return
        try:
            report, new = await self.moderation.report(turn, interaction.user.id, reason)
        except UserFacingError as error:
            await send_error(interaction, error)
            return
        await reply_privately(interaction, t("report.thanks" if new else "report.again", locale))
        if new:
            self.modlog.spawn(self._show_report(report, turn), name=f"report-{report.id}")

    async def _show_report(self, report: Report, turn: Turn) -> None:
        """Post the report's entry (log channel, else the owner's DMs), or update the one
        already posted with the new count of reporters."""
        assert turn.guild_id is not None
        locale = await self.modlog.locale(turn.guild_id)
        embed = report_entry(report, turn, locale, await self.modlog.image_url(turn))
        view = report_actions(report, locale)
        if report.message_id is not None and await self._edit_entry(report, embed, view):
            return
        message = await self.modlog.post(turn.guild_id, embed, view)
        if message is None:
            message = await self.modlog.tell_owner(
                turn.guild_id, t("report.dm", locale, server=self.modlog.server_name(turn.guild_id)),
                embed=embed, view=view)
        if message is not None:
            await self.moderation.posted(report, message.channel.id, message.id)

    async def _edit_entry(self, report: Report, embed: discord.Embed,
                          view: discord.ui.View | None) -> bool:
        assert report.channel_id is not None and report.message_id is not None
        channel = self.bot.get_partial_messageable(report.channel_id)
        try:
            await channel.get_partial_message(report.message_id).edit(
                embed=embed, view=view, allowed_mentions=NO_PINGS)
        except discord.HTTPException as exc:
            log.info("Could not update report %s's entry: %s", report.id, exc)
            return False
        return True

    # ------------------------------------------------------------------ quick actions
    async def moderate_message(self, interaction: discord.Interaction,
                               message: discord.Message) -> None:
        """Apps → Moderate on a result: the quick actions, privately."""
        locale = str(interaction.locale)
        turn = await self.service.turn_for_message(message.id)
        try:
            if turn is None:
                raise UserFacingError(ErrorKind.unknown_conversation)
            self.check_moderator(interaction, turn)
        except UserFacingError as error:
            await send_error(interaction, error)
            return
        await interaction.response.send_message(
            t("mod.panel", locale, user=turn.author_id), view=quick_actions(turn, locale),
            ephemeral=True, allowed_mentions=NO_PINGS)

    def check_moderator(self, interaction: discord.Interaction, turn: Turn) -> Actor:
        """Only members with Manage Messages in the server of the turn (in a DM: its owner, who
        received a report there) may act."""
        user = interaction.user
        guild = self.bot.get_guild(turn.guild_id) if turn.guild_id else None
        if guild is None:
            raise UserFacingError(ErrorKind.unknown_conversation)
        if interaction.guild_id is None:
            allowed = guild.owner_id == user.id
        else:
            allowed = interaction.guild_id == guild.id and interaction.permissions.manage_messages
        if not allowed:
            raise UserFacingError(ErrorKind.not_allowed, reason="manage_messages")
        return Actor(user.id, guild.id, None, is_moderator=True)

    async def on_mod_action(self, interaction: discord.Interaction, action: str, turn_id: int,
                            report_id: int | None) -> None:
        if not await acknowledge(interaction, ephemeral=True, thinking=True):
            return
        try:  # (the log is in another channel of the server, or the owner's DMs)
            turn = await self.service.turn_in(turn_id, place_of(interaction), server_wide=True)
            actor = self.check_moderator(interaction, turn)
            report = await self.moderation.report_by_id(report_id) if report_id else None
            if report_id and (report is None or report.turn_id != turn.id):
                raise UserFacingError(ErrorKind.unknown_conversation)
            text = await self._act(action, turn, actor, report, str(interaction.locale))
        except UserFacingError as error:
            await send_error(interaction, error)
            return
        await reply_privately(interaction, text)
        if action in ("del", "delall"):
            await self._refresh_entry(interaction, turn)

    async def _refresh_entry(self, interaction: discord.Interaction, turn: Turn) -> None:
        """The log entry clicked offers no deletion of an image already deleted."""
        message = interaction.message
        if message is None or message.flags.ephemeral or turn.guild_id is None:
            return
        current = await self.service.current(turn)
        view = quick_actions(current, await self.modlog.locale(turn.guild_id))
        try:
            await message.edit(view=view)
        except discord.HTTPException as exc:
            log.info("Could not update the log entry of turn %s: %s", turn.id, exc)

    async def _act(self, action: str, turn: Turn, actor: Actor, report: Report | None,
                   locale: str) -> str:
        assert turn.guild_id is not None
        guild_id, mod = turn.guild_id, actor.user_id
        if action == "dismiss":
            await self._close(report, "dismissed", turn)
            await self.modlog.note(guild_id, "modlog.did.dismiss", mod=mod, link=where(turn))
            return t("mod.done.dismiss", locale)
        if action == "delall":
            count = await self._delete_all(turn, actor)
            await self.modlog.note(guild_id, "modlog.did.delall", mod=mod, user=turn.author_id,
                                   count=count, thread=turn.conversation_id)
            return t("mod.done.delall", locale, count=count)
        await self._delete(turn, actor)
        await self._close(report, "deleted", turn)
        await self.modlog.note(guild_id, "modlog.did.del", mod=mod, user=turn.author_id,
                               thread=turn.conversation_id, n=turn.number)
        if action != "rblock":
            return t("mod.done.del", locale)
        return await self._block(turn, actor, "permanent", locale)

    async def _close(self, report: Report | None, status: str, turn: Turn) -> None:
        if report is None or not await self.moderation.close_report(report.id, status):
            return
        closed = await self.moderation.report_by_id(report.id)
        if closed is not None and closed.message_id is not None:
            assert turn.guild_id is not None
            locale = await self.modlog.locale(turn.guild_id)
            current = await self.service.current(turn)
            await self._edit_entry(closed, report_entry(closed, current, locale, None), None)

    async def _delete(self, turn: Turn, actor: Actor) -> None:
        if not turn.deleted:
            await self.moderation.delete(turn, actor)
        channel = self.bot.get_partial_messageable(turn.conversation_id, guild_id=turn.guild_id)
        for message_id in {*turn.message_ids, turn.progress_message_id} - {None}:
            try:
                await channel.get_partial_message(message_id).delete()  # type: ignore[arg-type]
            except discord.NotFound:
                pass  # already gone
            except discord.HTTPException as exc:
                log.info("Could not delete message %s: %s", message_id, exc)

    async def _delete_all(self, turn: Turn, actor: Actor) -> int:
        """Every image of the turn's author in its conversation."""
        turns = await self.moderation.member_images(turn.conversation_id, turn.author_id)
        for each in turns:
            await self._delete(each, actor)
        return len(turns)

    async def on_block(self, interaction: discord.Interaction, turn_id: int,
                       duration: str) -> None:
        if not await acknowledge(interaction, ephemeral=True, thinking=True):
            return
        try:
            turn = await self.service.turn_in(turn_id, place_of(interaction), server_wide=True)
            actor = self.check_moderator(interaction, turn)
            text = await self._block(turn, actor, duration, str(interaction.locale))
        except UserFacingError as error:
            await send_error(interaction, error)
            return
        await reply_privately(interaction, text)

    async def _block(self, turn: Turn, actor: Actor, duration: str, locale: str) -> str:
        assert turn.guild_id is not None
        until, cancelled = await self.moderation.block(turn.guild_id, turn.author_id, duration,
                                                       actor)
        when = t("block.for_good", locale) if until is None else f"<t:{int(until)}:f>"
        server_locale = await self.modlog.locale(turn.guild_id)
        when_logged = t("block.for_good", server_locale) if until is None \
            else f"<t:{int(until)}:f>"
        await self.modlog.note(turn.guild_id, "modlog.did.block", mod=actor.user_id,
                               user=turn.author_id, until=when_logged, cancelled=cancelled)
        return t("mod.done.block", locale, user=turn.author_id, until=when, cancelled=cancelled)


async def setup(bot: BotServices) -> None:
    await bot.add_cog(Moderation(bot))
