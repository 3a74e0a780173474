"""Writing a conversation export: every file once, each zip part within the limit, on disk one
image at a time (bounded memory), the record last, and a size cap that says what it left out."""

from __future__ import annotations

import json
import os
import tracemalloc
import zipfile
from pathlib import Path

from bot.core.export import ExportWriter

KIB = 1024
MIB = 1024 * KIB


def entries(part: Path) -> list[str]:
    with zipfile.ZipFile(part) as archive:
        return archive.namelist()


def write(tmp_path: Path, files: list[tuple[str, bytes]], limit: int, cap: int = 1 << 40,
          record: dict | None = None) -> tuple[ExportWriter, list[Path]]:
    writer = ExportWriter(tmp_path, "conversation-1", limit=limit, cap=cap)
    for name, data in files:
        writer.add(name, data)
    return writer, writer.finish(record or {"turns": []})


def test_small_exports_are_one_zip_with_every_image_and_the_record(tmp_path):
    files = [(f"turn-0{n}-1.png", os.urandom(10 * KIB)) for n in range(1, 4)]
    _, [part] = write(tmp_path, files, 10 * MIB)
    assert part.parent == tmp_path  # on disk, not in memory
    assert entries(part) == ["turn-01-1.png", "turn-02-1.png", "turn-03-1.png", "conversation.json"]
    with zipfile.ZipFile(part) as archive:
        assert json.loads(archive.read("conversation.json")) == {"turns": []}
        assert archive.read("turn-02-1.png") == files[1][1]


def test_large_exports_are_split_under_the_limit_in_order(tmp_path):
    files = [(f"turn-0{n}-1.png", os.urandom(300 * KIB)) for n in range(1, 8)]
    limit = 1024 * KIB
    _, parts = write(tmp_path, files, limit, record={"turns": list(range(50))})
    assert len(parts) == 3  # 64 KiB headroom: three 300 KiB images per 1 MiB part at most
    assert all(part.stat().st_size <= limit for part in parts)
    names = [name for part in parts for name in entries(part)]
    assert names == [name for name, _ in files] + ["conversation.json"]
    assert entries(parts[1])[0] == "turn-04-1.png" and "conversation.json" in entries(parts[2])


def test_memory_holds_one_image_not_the_export(tmp_path):
    """Forty 1 MiB images (made one at a time, as the export fetches them) into 10 MiB parts:
    the peak of Python's allocations stays near one image, far from the 40 MiB exported."""
    writer = ExportWriter(tmp_path, "conversation-1", limit=10 * MIB, cap=1 << 40)
    tracemalloc.start()
    try:
        for n in range(40):
            writer.add(f"turn-{n:02d}-1.png", os.urandom(MIB))
        parts = writer.finish({"turns": []})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * MIB
    assert sum(part.stat().st_size for part in parts) > 40 * MIB
    assert all(part.stat().st_size <= 10 * MIB for part in parts)


def test_the_size_cap_leaves_out_what_does_not_fit_and_says_which(tmp_path):
    files = [(f"turn-0{n}-1.png", os.urandom(400 * KIB)) for n in range(1, 6)]
    writer, parts = write(tmp_path, files, 10 * MIB, cap=1 * MIB)
    names = [name for part in parts for name in entries(part)]
    assert names == ["turn-01-1.png", "turn-02-1.png", "conversation.json"]
    assert writer.left_out.names == ["turn-03-1.png", "turn-04-1.png", "turn-05-1.png"]
    assert writer.left_out.bytes == 3 * 400 * KIB
