"""`/history`: a conversation's turns as one contact-sheet picture, with a pager, "Continue from
#n" and an export of everything. Reads through the service, renders with `bot/ui`."""

from __future__ import annotations

import asyncio
import io
import logging
import shutil
import tempfile
from collections import OrderedDict
from pathlib import Path

import discord
from discord import app_commands
from discord.app_commands import locale_str
from discord.ext import commands

from bot.ack import acknowledge
from bot.adapter import actor_for, actor_of, place_of
from bot.core.errors import ErrorKind, UserFacingError
from bot.core.export import ExportWriter, LeftOut
from bot.core.history import (
    PAGE_SIZE,
    TreeNode,
    clamp_page,
    conversation_record,
    image_filename,
    number_turns,
    page_count,
    page_of,
)
from bot.core.models import Conversation, Turn, TurnStatus
from bot.exts._bot import BotServices
from bot.ui.attachments import megabytes
from bot.ui.contact_sheet import SheetCell, make_thumbnail, render_sheet
from bot.ui.history_view import HISTORY_ITEMS, history_view
from bot.ui.i18n import t
from bot.ui.render import jump_link
from bot.ui.replies import send_error
from bot.ui.router import HISTORY_CONTINUE, HISTORY_EXPORT, HISTORY_PAGE

log = logging.getLogger(__name__)

THUMB_CACHE = 1024  # thumbnails kept in memory (a few kB each), so paging is cheap
FETCH_PARALLEL = 4
NAME_CACHE = 1024
NO_MENTIONS = discord.AllowedMentions.none()


def _state(turn: Turn) -> str:
    if turn.status is TurnStatus.done:
        return "done"
    if turn.status in (TurnStatus.failed, TurnStatus.cancelled):
        return turn.status.value
    return "pending"


class History(commands.Cog):
    """The contact sheet and what can be done from it."""

    def __init__(self, bot: BotServices) -> None:
        self.bot = bot
        self.service = bot.service
        self._thumbs: OrderedDict[int, bytes | None] = OrderedDict()
        self._fetching = asyncio.Semaphore(FETCH_PARALLEL)
        self._names_seen: OrderedDict[tuple[int | None, int], str | None] = OrderedDict()
        self.bot.core.outcomes.listeners.append(self._forget_deleted)
        self._exporting: set[int] = set()  # conversations with an export under way

    async def cog_load(self) -> None:
        self.bot.router.add(HISTORY_PAGE, self.on_page)
        self.bot.router.add(HISTORY_CONTINUE, self.on_continue)
        self.bot.router.add(HISTORY_EXPORT, self.on_export)

    async def cog_unload(self) -> None:
        self.bot.core.outcomes.listeners.remove(self._forget_deleted)
        for route in (HISTORY_PAGE, HISTORY_CONTINUE, HISTORY_EXPORT):
            self.bot.router.remove(route)

    @app_commands.command(
        name=locale_str("history"),
        description=locale_str("Show this conversation's turns as a tree"),
    )
    async def history(self, interaction: discord.Interaction) -> None:
        if not await acknowledge(interaction, thinking=True):
            return
        conversation = await self.service.conversation(interaction.channel_id or 0)
        if conversation is None:
            await send_error(interaction, UserFacingError(ErrorKind.unknown_conversation))
            return
        content, file, view = await self.render_page(conversation, 0, str(interaction.locale))
        await interaction.followup.send(content, file=file, view=view, allowed_mentions=NO_MENTIONS)

    # ------------------------------------------------------------------ the sheet
    async def render_page(
        self, conversation: Conversation, page: int, locale: str
    ) -> tuple[str, discord.File, discord.ui.View]:
        nodes = number_turns(await self.service.turns_in(conversation.id))
        page = clamp_page(page, len(nodes))
        shown = page_of(nodes, page)
        head = await self.service.head(conversation)
        thumbs = await asyncio.gather(*(self._thumbnail(node.turn) for node in shown))
        names = await self._names({node.turn.author_id for node in shown if not node.turn.deleted},
                                  conversation.guild_id)
        cells = [
            SheetCell(
                number=node.number, parent_number=node.parent_number,
                caption="" if node.turn.deleted else " ".join(node.turn.prompt.split()),
                author="" if node.turn.deleted
                else names.get(node.turn.author_id, str(node.turn.author_id)),
                state=_state(node.turn), deleted=node.turn.deleted,
                head=head is not None and node.turn.id == head.id, thumbnail=thumb,
            )
            for node, thumb in zip(shown, thumbs, strict=True)
        ]
        first = page * PAGE_SIZE + 1
        title = f"#{first}-#{first + len(shown) - 1} / {len(nodes)}"
        font = self.bot.settings.sheet_font_path
        png = await asyncio.to_thread(render_sheet, cells, title, str(font) if font else None)
        pages = page_count(len(nodes))
        lines = [t("history.title", locale, first=first, last=first + len(shown) - 1,
                   total=len(nodes), page=page + 1, pages=pages)]
        if conversation.remixed_from_message_id is not None:
            lines.append(t("history.remixed", locale, link=jump_link(
                conversation.guild_id, conversation.remixed_from_channel_id or 0,
                conversation.remixed_from_message_id)))
        lines.append("-# " + t("history.legend", locale))
        content = "\n".join(lines)
        continuable = [n for n in shown if n.turn.status is TurnStatus.done and not n.turn.deleted
                       and n.turn.images]
        view = history_view(conversation.id, page, pages, continuable, locale)
        file = discord.File(io.BytesIO(png), filename=f"history-{conversation.id}-{page + 1}.png")
        return content, file, view

    def _forget_deleted(self, event: str, turn: Turn, error: object) -> None:
        """A turn listener: a deleted turn's cached thumbnail goes at once."""
        if event == "deleted":
            self._thumbs.pop(turn.id, None)

    async def _thumbnail(self, turn: Turn) -> bytes | None:
        if turn.deleted:
            self._thumbs.pop(turn.id, None)
            return None
        if not turn.images or turn.status is not TurnStatus.done:
            return None
        if turn.id in self._thumbs:
            self._thumbs.move_to_end(turn.id)
            return self._thumbs[turn.id]
        thumb = None
        async with self._fetching:
            try:
                images = await self.bot.presenter.fetch_result_images(turn)
                if images:
                    thumb = await asyncio.to_thread(make_thumbnail, images[0].data)
            except Exception:
                log.info("No thumbnail for turn %s", turn.id, exc_info=True)
        if thumb is not None:
            self._thumbs[turn.id] = thumb
            while len(self._thumbs) > THUMB_CACHE:
                self._thumbs.popitem(last=False)
        return thumb

    async def _names(self, user_ids: set[int], guild_id: int | None) -> dict[int, str]:
        """Display names (a member's in the server, else the user's), remembered for a while so
        that paging does not ask Discord again."""
        guild = self.bot.get_guild(guild_id) if guild_id else None
        names: dict[int, str] = {}
        for user_id in user_ids:
            key = (guild_id, user_id)
            if key not in self._names_seen:
                self._names_seen[key] = await self._name(guild, user_id)
                while len(self._names_seen) > NAME_CACHE:
                    self._names_seen.popitem(last=False)
            if self._names_seen[key] is not None:
                names[user_id] = self._names_seen[key]  # type: ignore[assignment]
        return names

    async def _name(self, guild: discord.Guild | None, user_id: int) -> str | None:
        member = guild.get_member(user_id) if guild is not None else None
        if member is None and guild is not None:
            try:
                member = await guild.fetch_member(user_id)
            except discord.HTTPException:
                member = None
        user = member or self.bot.get_user(user_id)
        return user.display_name if user is not None else None

    # ------------------------------------------------------------------ controls
    async def on_page(self, interaction: discord.Interaction, conversation_id: int, page: int) -> None:
        if not await acknowledge(interaction):
            return
        try:
            conversation = await self.service.conversation_in(conversation_id, place_of(interaction))
        except UserFacingError as error:
            await send_error(interaction, error)
            return
        content, file, view = await self.render_page(conversation, page, str(interaction.locale))
        await interaction.edit_original_response(
            content=content, attachments=[file], view=view, allowed_mentions=NO_MENTIONS
        )

    async def on_continue(
        self, interaction: discord.Interaction, conversation_id: int, turn_id: int
    ) -> None:
        locale = str(interaction.locale)
        if not await acknowledge(interaction, ephemeral=True, thinking=True):
            return
        try:
            turn = await self.service.turn_in(turn_id, place_of(interaction))
            if turn.conversation_id != conversation_id:
                raise UserFacingError(ErrorKind.unknown_conversation)
            await self.service.continue_from(
                turn, await actor_for(self.bot.gate, interaction.user, interaction.channel))
        except UserFacingError as error:
            await send_error(interaction, error)
            return
        number = next(n.number for n in number_turns(await self.service.turns_in(conversation_id))
                      if n.turn.id == turn_id)
        await interaction.followup.send(t("history.continuing", locale, number=number), ephemeral=True)

    async def on_export(self, interaction: discord.Interaction, conversation_id: int) -> None:
        if not await acknowledge(interaction, ephemeral=True, thinking=True):
            return
        try:
            conversation = await self.service.conversation_in(conversation_id, place_of(interaction))
            actor = actor_of(interaction.user, interaction.channel)
            if actor.user_id != conversation.owner_id and not actor.is_moderator:
                raise UserFacingError(ErrorKind.not_allowed, reason="export_owner")
        except UserFacingError as error:
            await send_error(interaction, error)
            return
        locale = str(interaction.locale)
        if conversation.id in self._exporting:  # one at a time per conversation
            await interaction.followup.send(t("history.export_busy", locale), ephemeral=True)
            return
        self._exporting.add(conversation.id)
        directory = await asyncio.to_thread(tempfile.mkdtemp, prefix="imagine-export-")
        try:
            parts, left_out = await self._export(conversation, Path(directory))
            await self._post_parts(conversation, parts, locale)
            lines = [t("history.exported", locale, parts=len(parts))]
            if left_out.names:
                lines.append(t("history.export_left_out", locale, count=len(left_out.names),
                               size_mb=megabytes(left_out.bytes),
                               cap_mb=megabytes(self.bot.settings.export_max_bytes),
                               first=left_out.names[0]))
            await interaction.followup.send("\n".join(lines), ephemeral=True)
        finally:
            self._exporting.discard(conversation.id)
            await asyncio.to_thread(shutil.rmtree, directory, True)

    async def _post_parts(self, conversation: Conversation, parts: list[Path], locale: str) -> None:
        channel = self.bot.get_partial_messageable(conversation.id, guild_id=conversation.guild_id)
        for index, path in enumerate(parts, 1):
            name = (f"conversation-{conversation.id}.zip" if len(parts) == 1
                    else f"conversation-{conversation.id}-part{index}of{len(parts)}.zip")
            await channel.send(
                t("history.export_part", locale, part=index, parts=len(parts)),
                file=discord.File(path, filename=name), allowed_mentions=NO_MENTIONS,
            )

    async def _export(self, conversation: Conversation, directory: Path) -> tuple[list[Path], LeftOut]:
        """The export's zip parts, written in `directory` one image at a time (fetched one turn
        at a time), up to EXPORT_MAX_BYTES of images; and what the cap left out."""
        nodes = number_turns(await self.service.turns_in(conversation.id))
        limit = await self.bot.presenter.upload_limit(conversation.guild_id)
        writer = ExportWriter(directory, f"conversation-{conversation.id}", limit=limit,
                              cap=self.bot.settings.export_max_bytes)
        names: dict[tuple[int, int], str] = {}
        try:
            for node in nodes:
                for index, (extension, data) in enumerate(await self._images_of(node), 1):
                    name = image_filename(node.number, index, extension)
                    if await asyncio.to_thread(writer.add, name, data):
                        names[(node.number, index)] = name
            head = await self.service.head(conversation)
            record = conversation_record(conversation, nodes, head.id if head else None, names)
            if writer.left_out.names:
                record["left_out"] = {"reason": "EXPORT_MAX_BYTES",
                                      "cap_bytes": writer.cap, "bytes": writer.left_out.bytes,
                                      "files": writer.left_out.names}
            return await asyncio.to_thread(writer.finish, record), writer.left_out
        finally:
            await asyncio.to_thread(writer.close)

    async def _images_of(self, node: TreeNode) -> list[tuple[str, bytes]]:
        turn = node.turn
        if not turn.images or turn.status is not TurnStatus.done or turn.deleted:
            return []
        async with self._fetching:
            try:
                images = await self.bot.presenter.fetch_result_images(turn)
            except Exception:
                log.info("Could not fetch the images of turn %s for an export", turn.id, exc_info=True)
                return []
        return [(image.filename.rpartition(".")[2].lower() or "png", image.data) for image in images]


async def setup(bot: BotServices) -> None:
    bot.add_dynamic_items(*HISTORY_ITEMS)
    await bot.add_cog(History(bot))
