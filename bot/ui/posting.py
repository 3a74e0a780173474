"""One attempt at putting something in a conversation's channel, shared by the presenter and the
variant board: sending and editing (5xx retried a few times), fitting images to the server's
upload limit, the fallbacks for an archived or locked thread, and what a refusal means for the
core's retries (`DeliveryError`, transient or not). The core decides when to try again
(`bot/core/delivery.py`); this module only makes the attempt.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import aiohttp
import discord

from bot.core.errors import DeliveryError, ErrorKind
from bot.core.imaging import FittedImage
from bot.core.models import GeneratedImage, Turn
from bot.core.result_files import fit_result
from bot.ui.render import locked_text

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024
FETCHED_LIMIT_TTL = 600.0  # a server read over REST (not in this process's cache) is re-read after
SEND_PERMISSION = "Send Messages in Threads"
UPLOAD_PERMISSION = "Attach Files"
THREAD_ARCHIVED = 50083  # no edits in an archived thread; sending a message unarchives it
THREAD_LOCKED = 160005  # no messages at all in a locked thread without Manage Threads
TOO_LARGE = 40005  # Request entity too large (with HTTP 413)
MAX_FILES = 10
NO_MENTIONS = discord.AllowedMentions.none()
# What a Discord call may raise that says nothing about the call itself: the connection closed
# or reset before an answer (aiohttp's connection errors; OSError underneath), no answer in time,
# or a 429 longer than discord.py waits for (RateLimited). The same call may succeed in a moment.
CONNECTION_ERRORS = (aiohttp.ClientError, OSError, TimeoutError, discord.RateLimited)


@dataclass(frozen=True)
class Placed:
    """Where a result (or failure, or board) message landed; `note` says why not where asked."""

    message_id: int
    channel: discord.abc.Messageable
    note: str = ""


def delivery_error(exc: discord.HTTPException, *, needs: str) -> DeliveryError:
    """Classify a Discord refusal; `needs` names the permission the failed call requires."""
    if exc.code == THREAD_LOCKED:
        return DeliveryError(ErrorKind.thread_locked, detail=str(exc.text))
    if exc.code == 50013 or isinstance(exc, discord.Forbidden):
        log.warning("Discord refused a call for lack of the %s permission (%s)", needs, exc.text)
        return DeliveryError(ErrorKind.missing_permissions, detail=str(exc.text), permission=needs)
    if isinstance(exc, discord.NotFound):
        return DeliveryError(ErrorKind.upload_failed, orphaned=True, detail=str(exc.text))
    if exc.code == TOO_LARGE or exc.status == 413:
        return DeliveryError(ErrorKind.upload_failed, detail="too_large")
    # 5xx and 429 (after discord.py's own waits) pass: "wait a bit and retry" (Discord docs,
    # Topics → Opcodes and Status Codes → HTTP Response Codes; Topics → Rate Limits)
    return DeliveryError(ErrorKind.upload_failed, transient=exc.status >= 500 or exc.status == 429,
                         detail=f"{exc.status} {exc.code} {exc.text}")


def connection_error(exc: BaseException) -> DeliveryError:
    return DeliveryError(ErrorKind.upload_failed, transient=True,
                         detail=f"no answer: {type(exc).__name__} {exc}")


async def one_attempt(call: Callable[[], Awaitable[T]]) -> T:
    """Run one delivery attempt; a dropped connection is a transient `DeliveryError`."""
    try:
        return await call()
    except CONNECTION_ERRORS as exc:
        raise connection_error(exc) from exc


def result_nonce(turn: Turn, part: str = "") -> str:
    """The nonce of a message that shows a turn's result (`part`: which one). Sent with
    `enforce_nonce` (discord.py adds it to every nonce), so a send repeated after its answer was
    lost returns the message already made instead of posting it twice (Discord docs, Resources →
    Message → Create Message: "checked for uniqueness in the past few minutes")."""
    return f"i{turn.id}{part}"


def result_files(turn: Turn, fitted: list[FittedImage], first: int = 1) -> list[discord.File]:
    """Uploads of a turn's images, named `imagine-<turn>-<n>.<ext>` from `first` on (the name
    says whose image it is when read back from a message)."""
    return [discord.File(io.BytesIO(f.data), filename=f"imagine-{turn.id}-{n}.{f.extension}")
            for n, f in enumerate(fitted, first)]


async def fit_image(image: GeneratedImage, limit: int) -> list[FittedImage]:
    """One image as uploaded under `limit` bytes (a GIF stays animated; an SVG comes with a PNG
    of it), in a thread (Pillow)."""
    return await asyncio.to_thread(fit_result, image.data, image.output_format, limit)


class Poster:
    """Sends and edits messages in conversations for the presenter and the variant board."""

    def __init__(self, client: discord.Client) -> None:
        self.client = client
        self._fetched_limits: dict[int, tuple[int, float]] = {}  # guild -> (limit, when read)

    def channel(self, turn: Turn) -> discord.PartialMessageable:
        """The conversation's channel (its thread, or the DM)."""
        return self.client.get_partial_messageable(turn.conversation_id, guild_id=turn.guild_id)

    async def upload_limit(self, guild_id: int | None) -> int:
        """The per-file limit on the bot's own uploads: the server's boost tier (10 MiB in DMs).

        Not an interaction's `attachment_size_limit`: that is the larger of the server's limit and
        the invoking user's Nitro limit, and says what that user may attach (Discord docs,
        Reference → Uploading Files). A fleet process may deliver for a server on another
        process's shard: it reads the server over REST (`GET /guilds/{id}`) and keeps the answer
        for a while, falling back to the smallest limit if it cannot.
        """
        if not guild_id:
            return DEFAULT_UPLOAD_LIMIT
        guild = self.client.get_guild(guild_id)
        if guild is not None:
            return guild.filesize_limit
        known = self._fetched_limits.get(guild_id)
        if known is not None and time.monotonic() - known[1] < FETCHED_LIMIT_TTL:
            return known[0]
        try:
            limit = (await self.client.fetch_guild(guild_id)).filesize_limit
        except discord.HTTPException as exc:
            log.info("Could not read server %s for its upload limit: %s", guild_id, exc)
            return DEFAULT_UPLOAD_LIMIT
        self._fetched_limits[guild_id] = (limit, time.monotonic())
        return limit

    async def fitting(self, turn: Turn, attempt: Callable[[int], Awaitable[T]]) -> T:
        """`attempt(limit)` under the server's upload limit; when Discord still finds it too
        large (the server lost boosts since we last heard), again under half, a few times."""
        limit = await self.upload_limit(turn.guild_id)
        for _ in range(3):
            try:
                return await attempt(limit)
            except DeliveryError as error:
                if error.detail != "too_large":
                    raise
                limit //= 2
        return await attempt(limit)

    @staticmethod
    async def retrying(call: Callable[[], Awaitable[T]], attempts: int = 3, *,
                       files: Sequence[discord.File] = ()) -> T:
        """Run a Discord call, retrying 5xx failures (429s are retried by discord.py itself).
        `files` the call uploads are rewound before each try: an upload reads them to the end,
        and discord.py rewinds only between its own retries, so a second call would send empty
        files (an image Discord keeps but nobody can open)."""
        for attempt in range(1, attempts):
            for file in files:
                file.reset()
            try:
                return await call()
            except discord.DiscordServerError:
                await asyncio.sleep(0.5 * attempt)
        for file in files:
            file.reset()
        return await call()

    async def send_more(self, channel: discord.abc.Messageable, turn: Turn,
                        files: list[discord.File], content: str | None = None) -> list[int]:
        """Files beyond a message's ten, in further messages (each with its own nonce)."""
        ids = []
        for start in range(0, len(files), MAX_FILES):
            chunk = files[start:start + MAX_FILES]
            sent = await self.retrying(
                lambda chunk=chunk, n=start: channel.send(
                    content, files=chunk, allowed_mentions=NO_MENTIONS,
                    nonce=result_nonce(turn, f"+{n}")), files=chunk)
            ids.append(sent.id)
        return ids

    async def post_in_parent(
        self, turn: Turn, content: str, files: list[discord.File], nonce: str | None = None
    ) -> Placed:
        """The thread is locked: show `content` in its parent channel, mentioning the author
        (a `nonce` of its own: this message is not the one posted in the thread)."""
        parent_id = await self.parent_of(turn.conversation_id)
        if parent_id is None:
            raise DeliveryError(ErrorKind.thread_locked, detail="thread locked, no parent channel")
        log.info("Thread of turn %s is locked; posting in its parent channel %s", turn.id, parent_id)
        parent = self.client.get_partial_messageable(parent_id, guild_id=turn.guild_id)
        sent = await self.retrying(lambda: parent.send(
            content=locked_text(turn, content), files=files,
            nonce=None if nonce is None else f"{nonce}^"[:25],
            allowed_mentions=discord.AllowedMentions(
                everyone=False, roles=False, users=[discord.Object(turn.author_id)]
            ),
        ), files=files)
        return Placed(sent.id, parent, f"thread locked: shown in parent channel {parent_id}")

    async def parent_of(self, thread_id: int) -> int | None:
        channel = self.client.get_channel(thread_id)
        if channel is None:
            try:
                channel = await self.client.fetch_channel(thread_id)
            except discord.HTTPException:
                return None
        return getattr(channel, "parent_id", None)

    @staticmethod
    async def delete_quietly(message: discord.PartialMessage) -> None:
        try:
            await message.delete()
        except discord.HTTPException as exc:
            log.info("Could not delete the stale message %s: %s", message.id, exc)
