"""Shared plumbing for running a fake (or a benchmark's control port) as its own process."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable

from aiohttp import web


async def until_signalled() -> None:
    """Wait for SIGTERM or SIGINT (how the tests and benchmarks stop a fake's process)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def start_control(app: web.Application) -> tuple[web.AppRunner, int]:
    """Serve `app` on a free port of 127.0.0.1; returns the runner (to clean up) and the port."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, runner.addresses[0][1]


async def serve_control_until_signalled(
    app: web.Application, ready: str, stop: Callable[[], Awaitable[None]]
) -> None:
    """Serve a control `app`, print `READY <ready> <control url>`, run until SIGTERM/SIGINT,
    then clean up the control port and call `stop` (the fake's own shutdown)."""
    runner, port = await start_control(app)
    print(f"READY {ready} http://127.0.0.1:{port}", flush=True)
    try:
        await until_signalled()
    finally:
        await runner.cleanup()
        await stop()
