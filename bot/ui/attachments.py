"""Reading the images users attach, once the gate admitted them: size cap before download,
allowed hosts, a timeout, and a bounded number of decodes at once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from urllib.parse import urlsplit

import discord

from bot.core.errors import ErrorKind, UserFacingError
from bot.core.imaging import inspect_input, megabytes
from bot.core.models import InputImage

DISCORD_ATTACHMENT_HOSTS = frozenset({"cdn.discordapp.com", "media.discordapp.net"})
DOWNLOAD_TIMEOUT = 30.0
# Images decoded at once (each in a worker thread, up to 128 MiB of pixels); the rest wait.
DECODES_AT_ONCE = 2


class AttachmentReader:
    """Downloads and checks attachments. Only Discord's own hosts (or the configured API host)."""

    def __init__(
        self, *, max_bytes: int, extra_hosts: frozenset[str] = frozenset(),
        decodes_at_once: int = DECODES_AT_ONCE,
        decode: Callable[..., InputImage] = inspect_input,
    ) -> None:
        self.max_bytes = max_bytes
        self.allowed_hosts = DISCORD_ATTACHMENT_HOSTS | extra_hosts
        self._decoding = asyncio.Semaphore(decodes_at_once)
        self._decode = decode

    async def read(self, attachments: list[discord.Attachment], *,
                   ours: bool = False) -> list[InputImage]:
        """Download and check each attachment; `ours`: they are the bot's own results (their
        metadata is the image service's, kept), else members' uploads (metadata removed)."""
        for attachment in attachments:  # refuse before downloading anything
            self.check(attachment)
        return [await self._read_one(a, ours) for a in attachments]

    def check(self, attachment: discord.Attachment) -> None:
        """Refuse an attachment from its metadata alone: size, type, host."""
        name = attachment.filename
        if attachment.size > self.max_bytes:
            raise UserFacingError(ErrorKind.bad_attachment, problem="too_large_bytes", name=name,
                                  limit_mb=megabytes(self.max_bytes))
        if attachment.content_type and not attachment.content_type.startswith("image/"):
            raise UserFacingError(ErrorKind.bad_attachment, problem="not_image", name=name)
        if urlsplit(attachment.url).hostname not in self.allowed_hosts:
            raise UserFacingError(ErrorKind.bad_attachment, problem="host", name=name)

    async def _read_one(self, attachment: discord.Attachment, ours: bool) -> InputImage:
        try:
            async with asyncio.timeout(DOWNLOAD_TIMEOUT):
                data = await attachment.read()
        except (discord.HTTPException, TimeoutError):
            raise UserFacingError(
                ErrorKind.bad_attachment, problem="download", name=attachment.filename
            ) from None
        if len(data) > self.max_bytes:
            raise UserFacingError(ErrorKind.bad_attachment, problem="too_large_bytes",
                                  name=attachment.filename,
                                  limit_mb=megabytes(self.max_bytes))
        async with self._decoding:
            return await asyncio.to_thread(self._decode, data, attachment.filename, ours=ours)
