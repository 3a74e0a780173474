"""A set of variants on one board: a single message that shows a 2x2 grid with numbered corners,
then each finished image in full, with "Continue from n", "Reroll all" and (while any runs)
Cancel. Each sibling is its own turn; the board is edited as each one arrives or fails.

The board survives a restart: which sibling is where comes from the store (through the service),
and the images already shown are read back from the board's own attachments.
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import discord
from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError

from bot.core.errors import DeliveryError, UserFacingError
from bot.core.models import Delivery, Turn, TurnResult, TurnStatus
from bot.ui.buttons import TurnButton
from bot.ui.i18n import t
from bot.ui.posting import (
    NO_MENTIONS,
    SEND_PERMISSION,
    THREAD_ARCHIVED,
    THREAD_LOCKED,
    UPLOAD_PERMISSION,
    Poster,
    delivery_error,
    fit_image,
    result_files,
)
from bot.ui.render import MAX_CONTENT, clip, error_text, locked_text, quote
from bot.ui.router import VARIANT_BUTTON, dispatch

log = logging.getLogger(__name__)

CELL = 512
BG, PANEL, BADGE, FAILED, PENDING = "#2b2d31", "#1e1f22", "#f0b232", "#da373c", "#5865f2"
_FULL = re.compile(r"^imagine-(?P<turn>\d+)-1\.\w+$")


@dataclass
class _Board:
    message_id: int | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    images: dict[int, tuple[bytes, str]] = field(default_factory=dict)  # turn id -> (data, ext)
    errors: dict[int, str] = field(default_factory=dict)  # turn id -> why it failed
    parent: discord.abc.Messageable | None = None  # the board moved out of a locked thread
    note: str = ""  # where the board went, when not where it started


def variant_grid(cells: list[tuple[str, bytes | None]]) -> bytes:
    """PNG: the variants two to a row in CELL-sized squares, each numbered in its top-left
    corner; a failed one crossed out in red, a pending one dotted. `cells` are (state, image)
    with state done | failed | pending. Blocking (Pillow)."""
    rows = -(-len(cells) // 2)
    grid = Image.new("RGB", (2 * CELL, rows * CELL), BG)
    draw = ImageDraw.Draw(grid)
    font = ImageFont.load_default(40)
    for n, (state, data) in enumerate(cells):
        x, y = (n % 2) * CELL, (n // 2) * CELL
        draw.rectangle([(x + 2, y + 2), (x + CELL - 3, y + CELL - 3)], fill=PANEL)
        image = _fit(data) if state == "done" else None
        if image is not None:
            grid.paste(image, (x + (CELL - image.width) // 2, y + (CELL - image.height) // 2))
        elif state == "failed":
            draw.line([(x + 60, y + 60), (x + CELL - 60, y + CELL - 60)], fill=FAILED, width=14)
            draw.line([(x + 60, y + CELL - 60), (x + CELL - 60, y + 60)], fill=FAILED, width=14)
        else:
            for k in range(3):
                cx = x + CELL // 2 - 60 + 60 * k
                draw.ellipse([(cx - 14, y + CELL // 2 - 14), (cx + 14, y + CELL // 2 + 14)],
                             fill=PENDING)
        colour = FAILED if state == "failed" else BADGE
        draw.ellipse([(x + 12, y + 12), (x + 76, y + 76)], fill=colour)
        draw.text((x + 44, y + 44), str(n + 1), fill="#000000", font=font, anchor="mm")
    out = io.BytesIO()
    grid.save(out, "PNG", optimize=True)
    return out.getvalue()


def _fit(data: bytes | None) -> Image.Image | None:
    if not data:
        return None
    try:
        with Image.open(io.BytesIO(data)) as source:
            source.draft("RGB", (CELL, CELL))
            image = source.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError):
        return None
    image.thumbnail((CELL - 4, CELL - 4))
    return image


class VariantButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"variants:(?P<action>continue|reroll):(?P<turn>[0-9]+):(?P<n>[0-9])",
):
    """"Continue from n" (turn = that sibling) or "Reroll all" (turn = the first sibling)."""

    def __init__(self, action: str, turn_id: int, n: int, locale: str | None = None) -> None:
        label = (t("variants.continue", locale, n=n) if action == "continue"
                 else t("variants.reroll_all", locale))
        super().__init__(discord.ui.Button(
            style=discord.ButtonStyle.secondary, label=label,
            emoji="➡️" if action == "continue" else "🔁",
            custom_id=f"variants:{action}:{turn_id}:{n}",
        ))
        self.action = action
        self.turn_id = turn_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> VariantButton:
        return cls(match["action"], int(match["turn"]), int(match["n"]), str(interaction.locale))

    async def callback(self, interaction: discord.Interaction) -> None:
        await dispatch(VARIANT_BUTTON, interaction, self.action, self.turn_id)


def _state(turn: Turn) -> str:
    if turn.status is TurnStatus.done:
        return "done"
    return "failed" if turn.status.terminal else "pending"


class VariantBoard:
    """The presenter's handling of variant turns (see the module docstring): it posts through
    `poster` and reads a set's siblings (in order, the turn itself included) with `siblings`."""

    def __init__(self, poster: Poster, siblings: Callable[[Turn], Awaitable[list[Turn]]]) -> None:
        self.poster = poster
        self._siblings = siblings
        self._boards: dict[int, _Board] = {}

    def _board(self, turn: Turn) -> _Board:
        assert turn.variant_group is not None
        board = self._boards.setdefault(turn.variant_group, _Board())
        if board.message_id is None:  # after a restart: the siblings share their board
            board.message_id = turn.progress_message_id
        return board

    async def show_queued(self, turn: Turn) -> int | None:
        """The first sibling posts the board; the others share it."""
        board = self._board(turn)
        async with board.lock:
            if board.message_id is None:
                known = [s.progress_message_id for s in await self._siblings(turn)
                         if s.progress_message_id is not None]
                board.message_id = known[0] if known else await self._post(turn)
            return board.message_id

    async def _post(self, turn: Turn) -> int:
        channel = self.poster.channel(turn)
        content = self._content(turn, [turn], {})
        try:
            message = await self.poster.retrying(lambda: channel.send(
                content, view=self._view(turn, [turn]), allowed_mentions=NO_MENTIONS,
            ))
        except discord.HTTPException as exc:
            raise delivery_error(exc, needs=SEND_PERMISSION) from exc
        return message.id

    async def show_result(self, turn: Turn, result: TurnResult) -> Delivery:
        return await self.poster.fitting(turn, lambda limit: self._show_result(turn, result, limit))

    async def _show_result(self, turn: Turn, result: TurnResult, limit: int) -> Delivery:
        board = self._board(turn)
        async with board.lock:
            fitted = [  # raster first: the board shows it (an SVG's PNG), the SVG follows
                file for image in result.images for file in reversed(await fit_image(image, limit))]
            if fitted:
                board.images[turn.id] = (fitted[0].data, fitted[0].extension)
            else:
                board.errors[turn.id] = t("result.text_only", turn.locale)
            await self._render(turn, board, state="done" if fitted else "failed")
            assert board.message_id is not None
            # the board shows one image per variant; any more this sibling made follow it
            extra: list[int] = []
            if len(fitted) > 1:
                try:
                    extra = await self.poster.send_more(
                        board.parent or self.poster.channel(turn), turn,
                        result_files(turn, fitted[1:], first=2),
                        t("variants.more", turn.locale, n=turn.variant_index or 1))
                except discord.HTTPException as exc:
                    raise delivery_error(exc, needs=UPLOAD_PERMISSION) from exc
            return Delivery((board.message_id, *extra), board.note)

    async def show_failure(self, turn: Turn, error: UserFacingError) -> None:
        board = self._board(turn)
        async with board.lock:
            board.errors[turn.id] = error_text(error, turn.locale)
            try:
                await self._render(turn, board, state="failed")
            except DeliveryError as exc:
                if exc.transient:
                    raise  # (the core may try again)
                log.info("Could not show the failure of variant turn %s: %s", turn.id, exc)
            except discord.HTTPException as exc:
                log.info("Could not show the failure of variant turn %s: %s", turn.id, exc)

    async def _render(self, turn: Turn, board: _Board, *, state: str) -> None:
        """Edit the board to show every sibling as it is now (`turn` is in `state`)."""
        siblings = await self._siblings(turn)
        # what this board has shown wins over the store, which records a sibling a moment later
        states = {s.id: "done" if s.id in board.images else "failed" if s.id in board.errors
                  else _state(s) for s in siblings}
        states[turn.id] = state
        await self._recover_images(turn, board, [s for s in siblings if states[s.id] == "done"])
        cells = [(states[s.id], board.images.get(s.id, (None, ""))[0]) for s in siblings]
        grid = await asyncio.to_thread(variant_grid, cells)
        files = [discord.File(io.BytesIO(grid), filename=f"variants-{turn.variant_group}.png")]
        files += [discord.File(io.BytesIO(board.images[s.id][0]),
                               filename=f"imagine-{s.id}-1.{board.images[s.id][1]}")
                  for s in siblings if states[s.id] == "done" and s.id in board.images]
        content = self._content(turn, siblings, states, board.errors)
        view: discord.ui.View | None = self._view(turn, siblings, states)
        if board.parent is not None:  # out of a locked thread: no buttons that act there
            content, view = locked_text(turn, content), None
        try:
            await self._show(board, board.parent or self.poster.channel(turn), content, files,
                             view)
        except discord.HTTPException as exc:
            if board.parent is not None or exc.code not in (THREAD_ARCHIVED, THREAD_LOCKED):
                raise delivery_error(exc, needs=UPLOAD_PERMISSION) from exc
            try:
                await self._move(turn, board, content, files, view, exc.code)
            except discord.HTTPException as again:
                raise delivery_error(again, needs=UPLOAD_PERMISSION) from again

    async def _show(self, board: _Board, channel: Any, content: str, files: list[discord.File],
                    view: discord.ui.View | None, nonce: str | None = None) -> None:
        """Post the board (with `nonce`, see `posting.result_nonce`), or edit it where it is."""
        for file in files:
            file.reset()
        if board.message_id is None:
            sent = await self.poster.retrying(lambda: channel.send(
                content, files=files, view=view, allowed_mentions=NO_MENTIONS, nonce=nonce),
                files=files)
            board.message_id = sent.id
        else:
            message = channel.get_partial_message(board.message_id)
            await self.poster.retrying(lambda: message.edit(
                content=content, attachments=files, view=view, allowed_mentions=NO_MENTIONS),
                files=files)

    async def _move(self, turn: Turn, board: _Board, content: str, files: list[discord.File],
                    view: discord.ui.View | None, code: int) -> None:
        """The thread was archived (no edits; a new message unarchives it) or locked (no
        messages at all) while the set rendered: post the board anew, or in the parent channel
        with the author mentioned (Discord docs, Topics → Threads)."""
        stale, board.message_id = board.message_id, None
        nonce = f"B{stale or turn.variant_group}"  # one per move of a board (≤ 25 characters)
        if code == THREAD_ARCHIVED:
            channel = self.poster.channel(turn)
            try:
                await self._show(board, channel, content, files, view, nonce)
            except discord.HTTPException as exc:
                if exc.code != THREAD_LOCKED:
                    raise
            else:
                board.note = "thread archived: board shown in a new message (which unarchived it)"
                if stale is not None:
                    await self.poster.delete_quietly(channel.get_partial_message(stale))
                return
        placed = await self.poster.post_in_parent(turn, content, files, nonce)
        board.parent, board.message_id, board.note = placed.channel, placed.message_id, placed.note

    async def _recover_images(self, turn: Turn, board: _Board, done: list[Turn]) -> None:
        """After a restart: read the images the board already shows back from it."""
        if board.message_id is None or all(s.id in board.images for s in done):
            return
        try:
            message = await self.poster.channel(turn).fetch_message(board.message_id)
        except discord.HTTPException:
            return
        for attachment in message.attachments:
            match = _FULL.match(attachment.filename)
            if match and int(match["turn"]) not in board.images:
                data = await attachment.read()
                board.images[int(match["turn"])] = (data, attachment.filename.rpartition(".")[2])

    def _content(
        self, turn: Turn, siblings: list[Turn], states: dict[int, str],
        errors: dict[int, str] | None = None,
    ) -> str:
        count = max(len(siblings), turn.variant_count or 1)
        marks = {"done": "✅", "failed": "❌", "pending": "⏳"}
        lines = [quote(turn.prompt, 200),
                 t("variants.header", turn.locale, count=count, user=turn.author_id)]
        for n in range(1, count + 1):
            sibling_id = siblings[n - 1].id if n <= len(siblings) else None
            state = states.get(sibling_id or 0, "pending")
            line = f"**{n}** {marks[state]}"
            if state == "failed" and errors and sibling_id in errors:
                line += " " + clip(errors[sibling_id], 200)
            lines.append(line)
        return clip("\n".join(lines), MAX_CONTENT)

    def _view(
        self, turn: Turn, siblings: list[Turn], states: dict[int, str] | None = None
    ) -> discord.ui.View:
        states = states or {}
        view = discord.ui.View(timeout=None)
        for n, sibling in enumerate(siblings, 1):
            if states.get(sibling.id) == "done":
                view.add_item(VariantButton("continue", sibling.id, n, turn.locale))
        first = siblings[0]
        if any(states.get(s.id, "pending") == "pending" for s in siblings) or not states:
            view.add_item(TurnButton("cancel", first.id, turn.locale))
        else:
            view.add_item(VariantButton("reroll", first.id, 0, turn.locale))
        return view
