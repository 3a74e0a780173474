"""Packing a conversation export: every file once, each zip within the limit, the record first."""

from __future__ import annotations

import io
import json
import os
import zipfile

from bot.core.export import pack_export

KIB = 1024


def entries(part: bytes) -> list[str]:
    return zipfile.ZipFile(io.BytesIO(part)).namelist()


def test_small_exports_are_one_zip_with_the_record_first():
    files = [(f"turn-0{n}-1.png", os.urandom(10 * KIB)) for n in range(1, 4)]
    [part] = pack_export({"turns": []}, files, 10 * 1024 * KIB)
    assert entries(part) == ["conversation.json", "turn-01-1.png", "turn-02-1.png", "turn-03-1.png"]
    archive = zipfile.ZipFile(io.BytesIO(part))
    assert json.loads(archive.read("conversation.json")) == {"turns": []}
    assert archive.read("turn-02-1.png") == files[1][1]


def test_large_exports_are_split_under_the_limit_in_order():
    files = [(f"turn-0{n}-1.png", os.urandom(300 * KIB)) for n in range(1, 8)]
    limit = 1024 * KIB
    parts = pack_export({"turns": list(range(50))}, files, limit)
    assert len(parts) == 3  # 64 KiB headroom: three 300 KiB images per 1 MiB part at most
    assert all(len(part) <= limit for part in parts)
    names = [name for part in parts for name in entries(part)]
    assert names == ["conversation.json"] + [name for name, _ in files]
    assert entries(parts[1])[0] == "turn-04-1.png"  # the record only in the first part
