"""Packs a conversation export into zip files that each fit an upload limit. Blocking (zipfile):
call `pack_export` with `asyncio.to_thread`."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

RECORD_NAME = "conversation.json"
ENTRY_OVERHEAD = 256  # a zip entry's local header, central directory record and name, generously
PART_HEADROOM = 64 * 1024  # the message around the file, and rounding


def pack_export(record: dict[str, Any], files: list[tuple[str, bytes]], limit: int) -> list[bytes]:
    """Zip files holding `conversation.json` (in the first) and every image, in order, each at
    most `limit` bytes. Images are stored as they are (already compressed); the record is
    deflated. An image too large for any part on its own still gets a part of its own."""
    budget = max(limit - PART_HEADROOM, 1)
    document = json.dumps(record, ensure_ascii=False, indent=2).encode()
    parts: list[list[tuple[str, bytes]]] = [[]]
    used = len(document) + ENTRY_OVERHEAD  # an upper bound: deflate only shrinks it
    for name, data in files:
        size = len(data) + ENTRY_OVERHEAD
        if parts[-1] and used + size > budget:
            parts.append([])
            used = 0
        parts[-1].append((name, data))
        used += size
    return [_zip(document if index == 0 else None, entries) for index, entries in enumerate(parts)]


def _zip(document: bytes | None, entries: list[tuple[str, bytes]]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        if document is not None:
            archive.writestr(RECORD_NAME, document, compress_type=zipfile.ZIP_DEFLATED)
        for name, data in entries:
            archive.writestr(name, data, compress_type=zipfile.ZIP_STORED)
    return out.getvalue()
