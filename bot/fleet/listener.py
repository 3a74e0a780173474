"""The fleet queue's wake-ups: one LISTEN connection outside the pool, reconnected when dropped.

Idle processes sleep until a NOTIFY; while the connection is down (or cannot be opened) the
queue still looks every half lease, slowly, and the connection is tried again, backing off up to
`LISTEN_RETRY_MAX` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import asyncpg

log = logging.getLogger(__name__)

LISTEN_RETRY_FIRST = 0.5  # seconds before reconnecting a dropped LISTEN connection, doubling
LISTEN_RETRY_MAX = 30.0

# asyncpg's notification callback: (connection, backend pid, channel, payload)
Handler = Callable[[Any, int, str, str], None]


class Listener:
    """LISTENs on `handlers`' channels at `dsn`. `on_listening` runs each time the connection is
    (re)opened (a wake-up may have been missed meanwhile); `closed` says the queue is shutting
    down; `spawn` runs the reconnection as one of the queue's helper tasks."""

    def __init__(self, dsn: str, handlers: Mapping[str, Handler], *,
                 on_listening: Callable[[], None], closed: Callable[[], bool],
                 spawn: Callable[[Coroutine[Any, Any, None]], None], poll_seconds: float) -> None:
        self._dsn = dsn
        self._handlers = handlers
        self._on_listening = on_listening
        self._closed = closed
        self._spawn = spawn
        self._poll_seconds = poll_seconds  # how often the queue looks while not listening
        self._conn: asyncpg.Connection | None = None

    async def start(self) -> None:
        """Listen now, or keep trying in the background (having said why it cannot)."""
        if not await self._listen():
            self._spawn(self._relisten())

    async def _listen(self, *, quiet: bool = False) -> bool:
        """Open the LISTEN connection; False (having said why, unless `quiet`) if it cannot be
        opened: the queue then polls every half lease until it can."""
        conn = None
        try:
            conn = await asyncpg.connect(self._dsn)
            for channel, handler in self._handlers.items():
                await conn.add_listener(channel, handler)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            if conn is not None:
                conn.terminate()
            if not quiet:
                log.warning("Fleet queue: cannot LISTEN (%s); polling every %.1fs until it can",
                            exc, self._poll_seconds)
            return False
        if self._closed():
            conn.terminate()
            return False
        conn.add_termination_listener(self._on_lost)
        self._conn = conn
        self._on_listening()  # a wake-up may have been missed while not listening
        return True

    async def _relisten(self) -> None:
        """Reconnect the LISTEN connection, waiting longer after each failure."""
        delay = LISTEN_RETRY_FIRST
        while not self._closed():
            await asyncio.sleep(delay)
            if await self._listen(quiet=True):
                log.info("Fleet queue: listening again")
                return
            delay = min(delay * 2, LISTEN_RETRY_MAX)

    def _on_lost(self, conn: object) -> None:
        if self._closed() or conn is not self._conn:
            return
        self._conn = None
        log.warning("Fleet queue: the LISTEN connection dropped; polling every %.1fs while it "
                    "reconnects", self._poll_seconds)
        self._spawn(self._relisten())

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()
