"""Shows turns in Discord: one progress message per turn, edited as the turn advances and finally
turned into the result (so a result is shown exactly once, even when delivery is repeated after a
restart). Edits are coalesced and throttled per message.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import discord

from bot.core.errors import ErrorKind, UserFacingError
from bot.core.imaging import FittedImage, make_preview
from bot.core.models import Delivery, InputImage, Progress, Stage, Turn, TurnResult
from bot.core.tasks import BackgroundTasks
from bot.ui.buttons import cancel_view, extra_actions, failure_view, result_view
from bot.ui.posting import (
    MAX_FILES,
    NO_MENTIONS,
    SEND_PERMISSION,
    THREAD_ARCHIVED,
    THREAD_LOCKED,
    UPLOAD_PERMISSION,
    Placed,
    Poster,
    delivery_error,
    fit_image,
    one_attempt,
    result_files,
    result_nonce,
)
from bot.ui.render import failure_text, ping_text, progress_text, result_caption
from bot.ui.variants import VariantBoard

log = logging.getLogger(__name__)

QUEUED_EDIT_INTERVAL = 5.0
TICK_INTERVAL = 10.0
FLUSH_NAP = 0.25
PREVIEW_THREADS = 2
PREVIEW_BACKLOG = 4 * PREVIEW_THREADS  # previews waiting beyond this are skipped (text only)
RETRYABLE_FAILURES = {
    ErrorKind.rate_limited, ErrorKind.server, ErrorKind.timeout, ErrorKind.connection,
    ErrorKind.no_output, ErrorKind.cancelled, ErrorKind.upload_failed,
    ErrorKind.missing_permissions,  # once the permission is back (a paid result is then shown)
}
Siblings = Callable[[Turn], Awaitable[list[Turn]]]


@dataclass
class _Live:
    """The progress message of one running turn."""

    started: float = field(default_factory=time.monotonic)
    last_edit: float = 0.0
    pending: Progress | None = None
    flusher: asyncio.Task[None] | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    closed: bool = False
    ticker: asyncio.Task[None] | None = None
    last_stage: Stage | None = None


class DiscordPresenter:
    """The core's `Presenter`, implemented with discord.py; `siblings` reads a variant set (the
    board shows every sibling)."""

    def __init__(self, client: discord.Client, *, siblings: Siblings,
                 edit_interval: float = 1.5) -> None:
        self.poster = Poster(client)
        self.edit_interval = edit_interval
        self.tasks = BackgroundTasks()
        self._live: dict[int, _Live] = {}
        # previews are best-effort: their own small pool, so finals never queue behind them
        self._previews = concurrent.futures.ThreadPoolExecutor(
            PREVIEW_THREADS, thread_name_prefix="preview"
        )
        self._previews_pending = 0
        self.variants = VariantBoard(self.poster, siblings)

    async def close(self) -> None:
        """Stop progress work (tickers, pending edits) and the preview threads."""
        await self.tasks.cancel_all()
        self._previews.shutdown(wait=False, cancel_futures=True)

    async def upload_limit(self, guild_id: int | None) -> int:
        """The per-file limit on the bot's own uploads (see `Poster.upload_limit`)."""
        return await self.poster.upload_limit(guild_id)

    def _live_for(self, turn_id: int) -> _Live:
        live = self._live.get(turn_id)
        if live is None:
            live = self._live[turn_id] = _Live()
        return live

    # ------------------------------------------------------------------ Presenter protocol
    async def show_queued(self, turn: Turn, position: int | None) -> int | None:
        if turn.variant_group is not None:
            return await self.variants.show_queued(turn)
        channel = self.poster.channel(turn)
        reference = None
        if turn.source_message_id:
            reference = discord.MessageReference(
                message_id=turn.source_message_id, channel_id=turn.conversation_id,
                fail_if_not_exists=False,
            )
        content = progress_text(turn, Progress(Stage.queued, position=position), 0, turn.locale)
        try:
            message = await self.poster.retrying(lambda: channel.send(
                content, view=cancel_view(turn.id, turn.locale), reference=reference,
                allowed_mentions=NO_MENTIONS,
            ))
        except discord.HTTPException as exc:
            raise delivery_error(exc, needs=SEND_PERMISSION) from exc
        self._live_for(turn.id)
        return message.id

    async def show_progress(self, turn: Turn, progress: Progress) -> None:
        if turn.variant_group is not None:
            return  # a variant set's board changes when a sibling arrives or fails
        if turn.progress_message_id is None:
            return
        if progress.stage is Stage.paused:  # shutting down: say it now, nothing more after
            await self._edit_progress(turn, await self._close_live(turn.id), progress)
            return
        live = self._live_for(turn.id)
        if live.closed:
            return
        if progress.stage is Stage.started:
            live.started = time.monotonic()
            if live.ticker is None:
                live.ticker = self.tasks.spawn(self._tick(turn, live), name=f"tick-{turn.id}")
        if progress.stage is Stage.generating and live.last_stage is Stage.generating:
            return  # already shown as generating: the ticker keeps its elapsed time moving
        live.last_stage = (
            Stage.generating
            if progress.stage in (Stage.started, Stage.generating, Stage.partial)
            else progress.stage
        )
        self._queue(turn, live, progress)

    def _queue(self, turn: Turn, live: _Live, progress: Progress) -> None:
        """Make `progress` the next edit of this turn's message (older pending ones are dropped)."""
        live.pending = progress
        if live.flusher is None or live.flusher.done():
            live.flusher = self.tasks.spawn(self._flush(turn, live), name=f"progress-{turn.id}")

    def _interval(self, progress: Progress | None) -> float:
        # Queue positions change often when many wait; at scale they would crowd out Discord's
        # rate limits, so they refresh less often than a running turn's progress.
        if progress is not None and progress.stage is Stage.queued:
            return max(self.edit_interval, QUEUED_EDIT_INTERVAL)
        return self.edit_interval

    async def _tick(self, turn: Turn, live: _Live) -> None:
        """Keep the elapsed time moving while the API is silent (long generations)."""
        while not live.closed:
            await asyncio.sleep(max(TICK_INTERVAL, self.edit_interval))
            if not live.closed and live.pending is None and live.last_stage is Stage.generating:
                self._queue(turn, live, Progress(Stage.generating))

    async def _flush(self, turn: Turn, live: _Live) -> None:
        while live.pending is not None and not live.closed:
            wait = live.last_edit + self._interval(live.pending) - time.monotonic()
            if wait > 0:
                # short naps: a turn that starts while its queue position waits is shown at once
                await asyncio.sleep(min(wait, FLUSH_NAP))
                continue
            async with live.lock:
                progress, live.pending = live.pending, None
                if progress is None or live.closed:
                    return
                await self._edit_progress(turn, live, progress)
                live.last_edit = time.monotonic()

    async def _edit_progress(self, turn: Turn, live: _Live, progress: Progress) -> None:
        assert turn.progress_message_id is not None
        message = self.poster.channel(turn).get_partial_message(turn.progress_message_id)
        content = progress_text(turn, progress, time.monotonic() - live.started, turn.locale)
        try:
            if progress.partial_image_b64 is not None and self._previews_pending < PREVIEW_BACKLOG:
                # Previews are best-effort: when the preview threads are backed up (hundreds of
                # turns at once), the text still updates and the CPU goes to finished images.
                loop = asyncio.get_running_loop()
                self._previews_pending += 1
                try:
                    preview = await loop.run_in_executor(
                        self._previews, make_preview, progress.partial_image_b64
                    )
                finally:
                    self._previews_pending -= 1
                await message.edit(
                    content=content,
                    attachments=[discord.File(io.BytesIO(preview), filename="preview.jpg")],
                    allowed_mentions=NO_MENTIONS,
                )
            else:
                await message.edit(content=content, allowed_mentions=NO_MENTIONS)
        except discord.HTTPException as exc:
            log.info("Progress edit for turn %s failed: %s %s", turn.id, exc.status, exc.code)

    async def _close_live(self, turn_id: int) -> _Live:
        live = self._live.pop(turn_id, None) or _Live()
        live.closed = True
        if live.ticker is not None:
            live.ticker.cancel()
        live.pending = None
        if live.flusher is not None and not live.flusher.done():
            if not live.lock.locked():
                live.flusher.cancel()  # only sleeping between edits: safe to cancel
            await asyncio.wait([live.flusher], timeout=5)
        return live

    async def show_result(self, turn: Turn, result: TurnResult) -> Delivery:
        """One attempt at showing a result; a failure is a `DeliveryError` (the core retries
        the transient ones)."""
        if turn.variant_group is not None:
            return await one_attempt(lambda: self.variants.show_result(turn, result))
        await self._close_live(turn.id)
        return await one_attempt(lambda: self.poster.fitting(
            turn, lambda limit: self._show_result(turn, result, limit)))

    async def _show_result(self, turn: Turn, result: TurnResult, limit: int) -> Delivery:
        fitted: list[FittedImage] = [  # a GIF stays animated; an SVG comes with a PNG of it
            file for image in result.images for file in await fit_image(image, limit)
        ]
        revised = next((img.revised_prompt for img in result.images if img.revised_prompt), None)
        caption = result_caption(
            turn,
            revised_prompt=revised,
            text=result.text,
            reencoded=any(f.reencoded for f in fitted),
            rerooted=result.rerooted,
            has_images=bool(fitted),
            actual_size=next((img.size for img in result.images if img.size), None),
        )
        files = result_files(turn, fitted)
        view = result_view(turn.id, turn.locale,
                           extra_actions(turn.options.model, turn.options.output_format))
        try:
            placed = await self._replace_progress(turn, caption, files[:MAX_FILES], view,
                                                  nonce=result_nonce(turn))
            extra = await self.poster.send_more(placed.channel, turn, files[MAX_FILES:])
        except discord.HTTPException as exc:
            raise delivery_error(exc, needs=UPLOAD_PERMISSION) from exc
        return Delivery((placed.message_id, *extra), placed.note)

    async def _replace_progress(
        self, turn: Turn, content: str, files: list[discord.File], view: discord.ui.View | None,
        *, nonce: str | None = None,
    ) -> Placed:
        """Edit the progress message into `content`. If it is gone, or its thread was archived
        meanwhile (no edits there, but a new message unarchives it), post anew (with `nonce`);
        if the thread was locked (no messages at all), post in its parent channel, mentioning the
        author (Discord docs, Topics → Threads)."""
        channel = self.poster.channel(turn)
        note = ""
        if turn.progress_message_id is not None:
            edited = await self._edit_into_result(turn, channel, content, files, view, nonce)
            if isinstance(edited, Placed):
                return edited
            note = edited
        for file in files:
            file.reset()
        try:
            sent = await self.poster.retrying(lambda: channel.send(
                content=content, files=files, view=view, allowed_mentions=NO_MENTIONS,
                nonce=nonce,
            ), files=files)
        except discord.HTTPException as exc:
            if exc.code != THREAD_LOCKED:
                raise
            return await self.poster.post_in_parent(turn, content, files, nonce)
        if note and turn.progress_message_id is not None:
            await self.poster.delete_quietly(channel.get_partial_message(turn.progress_message_id))
        return Placed(sent.id, channel, note)

    async def _edit_into_result(
        self, turn: Turn, channel: discord.PartialMessageable, content: str, files: list[discord.File],
        view: discord.ui.View | None, nonce: str | None,
    ) -> Placed | str:
        """Edit the progress message into `content`; where it must be posted anew instead, the
        note to record (empty when the message was simply gone)."""
        assert turn.progress_message_id is not None
        message = channel.get_partial_message(turn.progress_message_id)
        try:
            for file in files:
                file.reset()
            await self.poster.retrying(lambda: message.edit(
                content=content, attachments=files, view=view, allowed_mentions=NO_MENTIONS
            ), files=files)
            return Placed(turn.progress_message_id, channel)
        except discord.NotFound as exc:
            if exc.code == 10003:  # the thread itself is gone
                raise
            log.info("Progress message of turn %s is gone; posting anew", turn.id)
            return ""
        except discord.HTTPException as exc:
            if exc.code == THREAD_LOCKED:
                return await self.poster.post_in_parent(turn, content, files, nonce)
            if exc.code != THREAD_ARCHIVED:
                raise
            log.info("Thread of turn %s was archived; posting anew", turn.id)
            return "thread archived: shown in a new message (which unarchived it)"

    async def show_failure(self, turn: Turn, error: UserFacingError) -> None:
        """One attempt at showing why a turn failed; a transient failure is a `DeliveryError`
        (the core may try again), any other is logged."""
        if turn.variant_group is not None:
            await one_attempt(lambda: self.variants.show_failure(turn, error))
            return
        await one_attempt(lambda: self._show_failure(turn, error))

    async def _show_failure(self, turn: Turn, error: UserFacingError) -> None:
        await self._close_live(turn.id)
        view = None
        if error.kind is not ErrorKind.cancelled:
            view = failure_view(turn.id, turn.locale, retryable=error.kind in RETRYABLE_FAILURES)
        try:
            await self._replace_progress(turn, failure_text(turn, error), [], view)
        except discord.HTTPException as exc:
            refused = delivery_error(exc, needs=SEND_PERMISSION)
            if refused.transient:
                raise refused from exc
            log.info("Could not show the failure of turn %s: %s", turn.id, exc)

    async def notify(self, turn: Turn, *, done: bool) -> None:
        """One notification for the requester: a short reply to the result that mentions only
        them (editing the progress message into the result notifies nobody)."""
        target = turn.message_ids[0] if turn.message_ids else turn.progress_message_id
        reference = None
        if target is not None:
            reference = discord.MessageReference(
                message_id=target, channel_id=turn.conversation_id, fail_if_not_exists=False
            )
        only_them = discord.AllowedMentions(
            everyone=False, roles=False, replied_user=False,
            users=[discord.Object(turn.author_id)],
        )
        channel = self.poster.channel(turn)
        try:
            await one_attempt(lambda: self.poster.retrying(lambda: channel.send(
                ping_text(turn, done=done), reference=reference, allowed_mentions=only_them,
                nonce=result_nonce(turn, "!" if done else "?"),
            )))
        except discord.HTTPException as exc:
            raise delivery_error(exc, needs=SEND_PERMISSION) from exc

    async def fetch_result_images(self, turn: Turn) -> list[InputImage]:
        channel = self.poster.channel(turn)
        images: list[InputImage] = []
        for message_id in turn.message_ids:
            try:
                message = await channel.fetch_message(message_id)
            except discord.HTTPException:
                continue
            for attachment in message.attachments:
                if attachment.content_type and not attachment.content_type.startswith("image/"):
                    continue
                if turn.variant_group is not None and not attachment.filename.startswith(
                    f"imagine-{turn.id}-"
                ):
                    continue  # a variant board also shows the grid and the siblings' images
                data = await attachment.read()
                images.append(InputImage(
                    data=data, mime=attachment.content_type or "image/png",
                    filename=attachment.filename,
                ))
        return images
