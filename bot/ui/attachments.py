"""Reading the images users attach: size cap before download, allowed hosts, a timeout."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import discord

from bot.core.errors import ErrorKind, UserFacingError
from bot.core.imaging import inspect_input
from bot.core.models import InputImage

DISCORD_ATTACHMENT_HOSTS = frozenset({"cdn.discordapp.com", "media.discordapp.net"})
DOWNLOAD_TIMEOUT = 30.0


def megabytes(size: int) -> str:
    """`20`, `0.5`: a byte limit as users read it (MiB, at most one decimal)."""
    return f"{size / (1024 * 1024):.1f}".removesuffix(".0")


class AttachmentReader:
    """Downloads and checks attachments. Only Discord's own hosts (or the configured API host)."""

    def __init__(self, *, max_bytes: int, extra_hosts: frozenset[str] = frozenset()) -> None:
        self.max_bytes = max_bytes
        self.allowed_hosts = DISCORD_ATTACHMENT_HOSTS | extra_hosts

    async def read(self, attachments: list[discord.Attachment]) -> list[InputImage]:
        for attachment in attachments:  # refuse before downloading anything
            self.check(attachment)
        return [await self._read_one(a) for a in attachments]

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

    async def _read_one(self, attachment: discord.Attachment) -> InputImage:
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
        return await asyncio.to_thread(inspect_input, data, attachment.filename)
