"""Summaries of a profile of the bot: py-spy collapsed stacks or a cProfile dump."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

_LINE = re.compile(r":\d+\)$")
_OWN_CODE = ("bot/", "bot\\")


def _frame_name(frame: str) -> str:
    """``func (path/to/file.py:123)`` → ``func (file.py)`` with the path shortened."""
    frame = _LINE.sub(")", frame.strip())
    if "(" in frame:
        func, _, where = frame.partition(" (")
        where = where.rstrip(")")
        for marker in ("site-packages/", "lib/python3.11/", "/work/main/"):
            if marker in where:
                where = where.split(marker, 1)[1]
        return f"{func} ({where})"
    return frame


def summarize_collapsed(path: Path, top: int = 40) -> dict[str, Any]:
    """Self and inclusive shares per function, and shares per thread, from ``--format raw``."""
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    if not path.exists():
        return {"error": f"no profile at {path}"}
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        if frames and frames[0].startswith("thread ("):
            thread = frames[0].split(":", 1)[-1].strip()
            thread = re.sub(r"\d+", "N", thread)
            threads[thread] += count
            frames = frames[1:]
        if not frames:
            continue
        total += count
        names = [_frame_name(f) for f in frames]
        self_time[names[-1]] += count
        for name in set(names):
            inclusive[name] += count

    def share(counter: Counter[str], keep: Any = None) -> list[dict[str, Any]]:
        items = [(k, v) for k, v in counter.most_common() if keep is None or keep(k)]
        return [{"frame": k, "samples": v, "share": round(v / total, 4)} for k, v in items[:top]]

    return {
        "samples": total,
        "self": share(self_time),
        "inclusive_bot": share(inclusive, lambda k: "(bot/" in k),
        "inclusive": share(inclusive),
        "threads": share(threads),
    }


def summarize_pstats(path: Path, top: int = 40) -> dict[str, Any]:
    """The same shape from a cProfile dump (main thread only)."""
    import pstats

    if not path.exists():
        return {"error": f"no profile at {path}"}
    stats = pstats.Stats(str(path))
    rows = []
    total = 0.0
    for (filename, line, func), (_cc, _nc, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        total += tt
        rows.append((f"{func} ({filename}:{line})", tt, ct))
    total = total or 1.0
    by_self = sorted(rows, key=lambda r: -r[1])[:top]
    by_cum = sorted((r for r in rows if "/bot/" in r[0]), key=lambda r: -r[2])[:top]
    return {
        "samples": round(total, 3),
        "self": [{"frame": _frame_name(f), "seconds": round(t, 3), "share": round(t / total, 4)}
                 for f, t, _ in by_self],
        "inclusive_bot": [{"frame": _frame_name(f), "seconds": round(c, 3),
                           "share": round(c / total, 4)} for f, _, c in by_cum],
    }
