"""A throw-away PostgreSQL *server* of the test's own (initdb into a temporary folder, a free port
on 127.0.0.1), for tests that stop and restart the database under the bot. The shared server
that TEST_DATABASE_URL names is never restarted.

It needs the PostgreSQL server programs (`initdb`, `pg_ctl`) that a machine with PostgreSQL
installed has; without them the test skips (fails in CI, like the other PostgreSQL cases).
PostgreSQL refuses to run as root, so as root the server runs as the `postgres` system user.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

MISSING = "the PostgreSQL server programs (initdb, pg_ctl) are not installed"


def _bin_dir() -> Path | None:
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ThrowawayServer:
    """One PostgreSQL server in `folder`, listening on 127.0.0.1:`port`, trust authentication."""

    def __init__(self, bin_dir: Path, folder: Path) -> None:
        self.bin_dir, self.folder = bin_dir, folder
        self.data = folder / "data"
        self.port = _free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bin_dir / program), *args]
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def init(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.folder, user="postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.folder} -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.folder / "log"),
                  "-w", "-t", "60", "start")

    def stop(self) -> None:
        """A fast shutdown, as a service manager's `restart` does: connections are closed."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")


@asynccontextmanager
async def throwaway_server() -> AsyncIterator[ThrowawayServer]:
    """A fresh server for one test, stopped and removed afterwards."""
    bin_dir = _bin_dir()
    if bin_dir is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(MISSING)
        pytest.skip(MISSING)
    folder = Path(tempfile.mkdtemp(prefix="imagine-pg-"))
    server = ThrowawayServer(bin_dir, folder)
    try:
        await asyncio.to_thread(server.init)
        await asyncio.to_thread(server.start)
        yield server
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):  # down already (failed mid-restart)
            await asyncio.to_thread(server.stop)
        shutil.rmtree(folder, ignore_errors=True)
