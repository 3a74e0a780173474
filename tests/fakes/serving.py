"""Shared plumbing for running a fake (or a benchmark's control port) as its own process."""

from __future__ import annotations

import asyncio
import signal

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
