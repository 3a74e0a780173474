"""Apps → Remix on any message with an image: a modal asks what to change, and a new conversation
thread opens beside the source whose first turn continues from that image. Access rules, queue
room and limits are those of the person remixing."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import discord
from discord import app_commands
from discord.app_commands import locale_str
from discord.ext import commands

from bot.ack import acknowledge, at_once, shed
from bot.adapter import actor_of, declared
from bot.core.admission import Hold
from bot.core.errors import ErrorKind, UserFacingError
from bot.core.models import Turn, TurnKind, TurnRequest, TurnStatus
from bot.core.policy import Actor
from bot.core.prompts import clean_prompt
from bot.exts._bot import BotServices
from bot.ui.forums import TAG_REQUIRED, forum_tags
from bot.ui.i18n import t
from bot.ui.remix_modal import RemixModal, RemixSource
from bot.ui.render import quote, thread_name
from bot.ui.replies import send_error

log = logging.getLogger(__name__)

NO_MENTIONS = discord.AllowedMentions.none()


def first_image(message: discord.Message) -> discord.Attachment | None:
    return next((a for a in message.attachments
                 if (a.content_type or "").startswith("image/")
                 or a.filename.lower().endswith((".png", ".jpg", ".jpeg", ".webp", ".gif"))), None)


class Remix(commands.Cog):
    def __init__(self, bot: BotServices) -> None:
        self.bot = bot
        self.service = bot.service
        self.menu = app_commands.ContextMenu(name=locale_str("Remix"), callback=self.remix_message)

    async def cog_load(self) -> None:
        self.bot.tree.add_command(self.menu)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.menu.name, type=self.menu.type)

    async def remix_message(self, interaction: discord.Interaction, message: discord.Message) -> None:
        """The form first, with nothing waited for before it (the source and the gate are
        checked when it is submitted); pre-filled with a result's prompt if read at once."""
        if await shed(interaction):
            return
        me = self.bot.user
        ours = me is not None and message.author.id == me.id
        source = RemixSource(message.channel.id, message.id, message.jump_url,
                             attachment=first_image(message), ours=ours)
        try:
            if interaction.guild_id is None:
                raise UserFacingError(ErrorKind.no_thread_here)
            if not ours:
                self._check_upload(source)
        except UserFacingError as error:
            await send_error(interaction, error)
            return
        turn = await at_once(self._result(source), None)
        await interaction.response.send_modal(
            RemixModal(self, source, turn.prompt if turn else "", str(interaction.locale)))

    async def _result(self, source: RemixSource) -> Turn | None:
        """The finished turn a bot message shows (None: not one of the bot's results)."""
        if not source.ours:
            return None
        turn = await self.service.turn_for_message(source.message_id)
        return turn if turn is not None and turn.status is TurnStatus.done and turn.images else None

    def _check_upload(self, source: RemixSource) -> None:
        if source.attachment is None:
            raise UserFacingError(ErrorKind.bad_attachment, problem="no_image_remix")
        self.bot.attachments.check(source.attachment)

    async def _resolved(self, source: RemixSource) -> RemixSource:
        """What the remix starts from: a bot result's stored image, else the upload."""
        turn = await self._result(source)
        if turn is not None:
            return replace(source, turn_id=turn.id, attachment=None)
        self._check_upload(source)
        return source

    async def on_remix_submit(
        self, interaction: discord.Interaction, source: RemixSource, prompt: str
    ) -> None:
        actor = actor_of(interaction.user, interaction.channel)
        try:
            clean_prompt(prompt, max_chars=self.bot.gate.max_prompt_chars)
        except UserFacingError as error:  # (nothing waited for yet: refused as the answer)
            await send_error(interaction, error)
            return
        if not await acknowledge(interaction, ephemeral=True, thinking=True):  # always private
            return
        try:
            source = await self._resolved(source)
            attached = [source.attachment] if source.attachment else []
            hold = await self.bot.gate.admit(actor, prompt=prompt, attachments=declared(attached),
                                             context_image=not attached)
        except UserFacingError as error:
            await send_error(interaction, error)
            return
        try:
            await self._start(interaction, source, prompt, actor, hold)
        finally:
            self.bot.gate.release_hold(hold)

    async def _start(
        self, interaction: discord.Interaction, source: RemixSource, prompt: str, actor: Actor,
        hold: Hold,
    ) -> None:
        locale = str(interaction.locale)
        try:
            inputs = await self.bot.attachments.read([source.attachment]) if source.attachment else []
            thread = await self._open_thread(interaction.channel, prompt, source, interaction)
            request = TurnRequest(
                kind=TurnKind.root, author_id=interaction.user.id, prompt=prompt,
                guild_id=interaction.guild_id, conversation_id=thread.id, input_images=inputs,
                locale=locale, remix_of_turn_id=source.turn_id,
            )
            async with self.service.turnstile.ticket(thread.id):
                await self.service.submit(request, actor, hold=hold)
            await interaction.followup.send(t("remix.started", locale, thread=thread.mention),
                                            ephemeral=True)
        except UserFacingError as error:
            await send_error(interaction, error)

    async def _open_thread(
        self, channel: Any, prompt: str, source: RemixSource, interaction: discord.Interaction
    ) -> discord.Thread:
        """A public thread in the channel the source is in (its parent, for a thread), whose
        first message links back to the source; recorded as a remix conversation."""
        parent = channel.parent if isinstance(channel, discord.Thread) else channel
        first = t("remix.from", str(interaction.guild_locale), link=source.jump_url) + "\n" + quote(prompt)
        try:
            if isinstance(parent, discord.ForumChannel):
                created = await parent.create_thread(name=thread_name(prompt), content=first,
                                                     applied_tags=forum_tags(parent),
                                                     allowed_mentions=NO_MENTIONS)
                thread = created.thread
            elif isinstance(parent, discord.TextChannel):
                # a standalone thread is private unless its type says otherwise (API-NOTES)
                thread = await parent.create_thread(
                    name=thread_name(prompt), type=discord.ChannelType.public_thread,
                    auto_archive_duration=1440,
                )
                await thread.send(first, allowed_mentions=NO_MENTIONS)
            else:
                raise UserFacingError(ErrorKind.no_thread_here)
        except discord.Forbidden:
            log.warning("Cannot open a remix thread in %s: missing Create Public Threads", parent.id)
            raise UserFacingError(ErrorKind.missing_permissions,
                                  permission="Create Public Threads") from None
        except discord.HTTPException as exc:
            if exc.code != TAG_REQUIRED:
                raise
            raise UserFacingError(ErrorKind.no_thread_here) from None
        await self.service.open_conversation(
            thread.id, guild_id=interaction.guild_id, parent_channel_id=parent.id,
            owner_id=interaction.user.id,
        )
        await self.service.mark_remix(thread.id, source.channel_id, source.message_id)
        return thread


async def setup(bot: BotServices) -> None:
    await bot.add_cog(Remix(bot))
