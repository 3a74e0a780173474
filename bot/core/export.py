"""Writes a conversation export as zip files on disk that each fit an upload limit, one image at
a time: memory holds the image being written, never the export. Blocking (zipfile, file work):
call `ExportWriter`'s methods with `asyncio.to_thread`."""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RECORD_NAME = "conversation.json"
ENTRY_OVERHEAD = 256  # a zip entry's local header, central directory record and name, generously
PART_HEADROOM = 64 * 1024  # the message around the file, and rounding


@dataclass(slots=True)
class LeftOut:
    """Images not in an export because the export's size cap was reached."""

    names: list[str] = field(default_factory=list)
    bytes: int = 0


class ExportWriter:
    """Zip parts in `directory`, each at most `limit` bytes; images are stored as they are
    (already compressed), the record deflated, in the last part. Images past `cap` bytes in
    all are left out (`left_out` says which). An image too large for any part on its own still
    gets a part of its own."""

    def __init__(self, directory: Path, stem: str, *, limit: int, cap: int) -> None:
        self.directory = directory
        self.stem = stem
        self.budget = max(limit - PART_HEADROOM, 1)
        self.cap = cap
        self.parts: list[Path] = []
        self.left_out = LeftOut()
        self.written = 0  # image bytes in the export so far
        self._zip: zipfile.ZipFile | None = None
        self._used = 0
        self._entries = 0

    def add(self, name: str, data: bytes) -> bool:
        """Write one image (False: left out, over the cap; so is every later one)."""
        if self.left_out.names or self.written + len(data) > self.cap:
            self.left_out.names.append(name)
            self.left_out.bytes += len(data)
            return False
        self._room_for(len(data))
        assert self._zip is not None
        self._zip.writestr(name, data, compress_type=zipfile.ZIP_STORED)
        self.written += len(data)
        return True

    def finish(self, record: dict[str, Any]) -> list[Path]:
        """Write the record and close the last part; the parts, in order."""
        document = json.dumps(record, ensure_ascii=False, indent=2).encode()
        self._room_for(len(document))  # an upper bound: deflate only shrinks it
        assert self._zip is not None
        self._zip.writestr(RECORD_NAME, document, compress_type=zipfile.ZIP_DEFLATED)
        self._zip.close()
        self._zip = None
        return list(self.parts)

    def close(self) -> None:
        """Close an unfinished part (after a failure); the caller removes the directory."""
        if self._zip is not None:
            self._zip.close()
            self._zip = None

    def _room_for(self, size: int) -> None:
        """Open a new part when this entry would push the current one past the budget."""
        size += ENTRY_OVERHEAD
        if self._zip is None or (self._entries and self._used + size > self.budget):
            self.close()
            path = self.directory / f"{self.stem}-{len(self.parts) + 1}.zip"
            self._zip = zipfile.ZipFile(path, "w")
            self.parts.append(path)
            self._used = self._entries = 0
        self._used += size
        self._entries += 1
