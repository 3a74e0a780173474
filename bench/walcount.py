"""Count committed SQLite transactions from outside the bot, by reading its WAL file.

In WAL mode every committed write transaction appends its changed pages to ``<db>-wal`` as
frames; the last frame of a transaction is a *commit frame* (its header's "database size after
commit" field is non-zero). So the number of commit frames is the number of committed write
transactions that changed at least one page. This reads only frame headers, with plain file
I/O (no SQLite connection, so it holds no lock and never delays a checkpoint).

After a checkpoint SQLite restarts the WAL from the top with new salts; the counter notices the
salt change and starts over at frame 0 of the new generation. Frames written after the last poll
and before a restart would be missed: polling every few milliseconds makes that window tiny,
and ``missed_generations`` reports whole generations that went by unseen (checkpoint sequence
number jumps). Transactions that change no page write no frame and are not counted.
"""

from __future__ import annotations

import struct
import threading
from pathlib import Path
from typing import BinaryIO

_HEADER = struct.Struct(">8I")
_FRAME = struct.Struct(">6I")


class WalCommitCounter(threading.Thread):
    def __init__(self, db_path: Path | str, interval: float = 0.005) -> None:
        super().__init__(name="wal-commit-counter", daemon=True)
        self.wal = Path(f"{db_path}-wal")
        self.interval = interval
        self.commits = 0
        self.frames = 0
        self.restarts = 0
        self.missed_generations = 0
        self.polls = 0
        self._salt: tuple[int, int] | None = None
        self._seq: int | None = None
        self._next = 0
        self._halt = threading.Event()
        self._lock = threading.Lock()

    def poll(self) -> None:
        with self._lock:
            self.polls += 1
            try:
                fh = open(self.wal, "rb")  # noqa: SIM115
            except FileNotFoundError:
                return
            with fh:
                header = fh.read(_HEADER.size)
                if len(header) < _HEADER.size:
                    return
                magic, _version, page_size, seq, salt1, salt2, _c1, _c2 = _HEADER.unpack(header)
                if magic not in (0x377F0682, 0x377F0683):
                    return
                if (salt1, salt2) != self._salt:
                    if self._salt is not None:
                        self.restarts += 1
                        if self._seq is not None and seq > self._seq + 1:
                            self.missed_generations += seq - self._seq - 1
                    self._salt, self._seq, self._next = (salt1, salt2), seq, 0
                self._count_frames(fh, _FRAME.size + page_size)

    def _count_frames(self, fh: BinaryIO, frame_size: int) -> None:
        """Count the frames (and commit frames) of this WAL generation written since the last poll."""
        while True:
            fh.seek(_HEADER.size + self._next * frame_size)
            raw = fh.read(_FRAME.size)
            if len(raw) < _FRAME.size:
                break
            _page, commit_size, s1, s2, _c1, _c2 = _FRAME.unpack(raw)
            if (s1, s2) != self._salt:
                break  # a stale frame of an earlier generation: the end of this one
            self.frames += 1
            if commit_size:
                self.commits += 1
            self._next += 1

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            try:
                self.poll()
            except OSError:
                continue

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=2)
        self.poll()
