"""Child processes for the benchmark: each in its own process group, always stopped.

Every process the benchmark starts is registered here; ``stop_all`` (called from a ``finally``
in ``bench.run``) stops each one by its own group id: SIGTERM, a grace period, then SIGKILL.
Nothing is ever matched by name.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

REPO = Path(__file__).resolve().parent.parent
AGENT_DIR = Path(__file__).resolve().parent / "agent"

_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The parent's environment without the bot's settings, proxies or benchmark knobs."""
    env = {
        k: v for k, v in os.environ.items()
        if not k.startswith(("DISCORD_", "OPENAI_", "BENCH_", "PYTHON"))
        and k not in _PROXY_VARS
        and k.upper() not in {  # every Settings field that a stray variable could set
            "DATABASE_PATH", "LOG_LEVEL", "DEFAULT_SIZE", "DEFAULT_PARTIAL_IMAGES",
            "MAX_CONCURRENT_GENERATIONS", "PER_USER_CONCURRENT", "PER_USER_QUEUED",
            "PROGRESS_EDIT_INTERVAL", "MESSAGE_CONTENT_INTENT", "SHARD_COUNT",
        }
    }
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONPATH"] = str(REPO)
    if extra:
        env.update(extra)
    return env


def open_log(path: Path) -> IO[bytes]:
    """An append-mode log file for a child (closed by ``Processes.stop``)."""
    return open(path, "ab")


@dataclass
class Child:
    name: str
    proc: asyncio.subprocess.Process
    log_path: Path | None
    log_file: IO[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None


class Processes:
    """Starts children in new sessions (process groups) and stops every one of them."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.children: list[Child] = []

    async def start(
        self,
        name: str,
        args: list[str],
        *,
        env: dict[str, str],
        cwd: Path | str = REPO,
        ready_prefix: str | None = "READY",
        ready_timeout: float = 60.0,
        capture_stdout: bool = False,
    ) -> tuple[Child, list[str]]:
        """Start ``python <args>``; with ``ready_prefix``, wait for that line on stdout and
        return its words. stderr (and stdout after READY) go to ``<log_dir>/<name>.log``."""
        log_path = self.log_dir / f"{name}.log"
        log_file = open_log(log_path)
        piped = ready_prefix is not None or capture_stdout
        proc = await asyncio.create_subprocess_exec(
            sys.executable, *args,
            stdout=asyncio.subprocess.PIPE if piped else log_file,
            stderr=log_file,
            stdin=asyncio.subprocess.DEVNULL,
            env=env, cwd=str(cwd),
            start_new_session=True,  # its own process group: stopped as a whole
            limit=64 * 1024 * 1024,
        )
        child = Child(name, proc, log_path, log_file)
        self.children.append(child)
        if ready_prefix is None:
            return child, []
        assert proc.stdout is not None
        try:
            async with asyncio.timeout(ready_timeout):
                while True:
                    line = await proc.stdout.readline()
                    if not line:
                        raise RuntimeError(
                            f"{name} exited before {ready_prefix!r} (see {log_path})"
                        )
                    text = line.decode(errors="replace").strip()
                    if text.startswith(ready_prefix):
                        break
        except TimeoutError:
            raise RuntimeError(f"{name} was not ready after {ready_timeout}s") from None
        return child, text.split()[1:]

    async def stop(self, child: Child, *, grace: float = 15.0) -> int | None:
        proc = child.proc
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        else:
            # the leader is gone; make sure nothing it started in its group lingers
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        if child.log_file is not None:
            child.log_file.close()
            child.log_file = None
        if child in self.children:
            self.children.remove(child)
        return proc.returncode

    async def stop_all(self) -> None:
        for child in list(reversed(self.children)):
            with contextlib.suppress(Exception):
                await self.stop(child, grace=5.0)


# ---------------------------------------------------------------------------- /proc readings
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """user+system CPU of a process (all its threads), from /proc/<pid>/stat."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15)


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in KiB, from /proc/<pid>/status."""
    out: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":", 1)
                out[key] = int(value.split()[0])
    except OSError:
        pass
    return out
