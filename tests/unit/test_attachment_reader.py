"""Reading attachments once the gate admitted them: a bounded number of decodes at once."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from typing import Any

from bot.core.models import InputImage
from bot.ui.attachments import AttachmentReader


@dataclass
class Attached:
    """What the reader uses of a `discord.Attachment`: its metadata and its bytes."""

    filename: str
    size: int = 4
    content_type: str = "image/png"
    url: str = "https://cdn.discordapp.com/attachments/1/2/a.png"

    async def read(self) -> bytes:
        return b"data"


class CountingDecoder:
    """Stands in for Pillow: each decode takes a while in its worker thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = self.most = self.done = 0

    def __call__(self, data: bytes, filename: str, *, ours: bool = False) -> InputImage:
        with self._lock:
            self.now += 1
            self.most = max(self.most, self.now)
        time.sleep(0.05)  # the decode itself
        with self._lock:
            self.now -= 1
            self.done += 1
        return InputImage(data, "image/png", filename)


async def test_at_most_two_decodes_run_at_once_and_the_rest_wait() -> None:
    decoder = CountingDecoder()
    reader = AttachmentReader(max_bytes=1024, decode=decoder)
    batches: list[Any] = [[Attached(f"{n}-{k}.png") for k in range(2)] for n in range(4)]
    read = await asyncio.gather(*(reader.read(batch) for batch in batches))
    assert [len(images) for images in read] == [2, 2, 2, 2]
    assert decoder.done == 8
    assert decoder.most == 2
