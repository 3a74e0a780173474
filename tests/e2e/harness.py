"""Runs the real bot (the same `serve()` that `python -m bot` uses) against the local fakes, and
reads what users would see from the fake Discord's transcript."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import AsyncIterator
from typing import Any

import discord
import yarl

from bot.__main__ import serve
from bot.app import ImagineBot
from bot.config import Settings
from tests.fakes.discord_server import FakeDiscord, FakeMessage
from tests.fakes.openai_server import FakeOpenAI

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".svg")
STOP_MARGIN = 10.0  # seconds beyond SHUTDOWN_GRACE_SECONDS for closing connections and the store


class BotRunner:
    """Starts `ImagineBot` in this event loop and stops it gracefully."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.bot: ImagineBot | None = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._saved = (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)

    async def start(self, timeout: float = 20.0) -> ImagineBot:
        self.bot = ImagineBot(self.settings, guild_ready_timeout=0.1)
        self._task = asyncio.create_task(serve(self.bot, self.settings, self._stop))
        ready = asyncio.create_task(self.bot.ready_once.wait())
        done, _ = await asyncio.wait({ready, self._task}, timeout=timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
        if ready not in done:
            ready.cancel()
            if self._task in done:
                self._task.result()
            raise TimeoutError("the bot did not become ready")
        return self.bot

    async def stop(self) -> None:
        """Stop gracefully, as SIGTERM does. A shutdown that fails, or that outlives the grace
        period (plus STOP_MARGIN for closing connections), fails the test."""
        self._stop.set()
        try:
            if self._task is not None:
                limit = self.settings.shutdown_grace_seconds + STOP_MARGIN
                try:
                    await asyncio.wait_for(self._task, timeout=limit)
                except TimeoutError:
                    raise AssertionError(f"the bot did not shut down within {limit:.0f}s") from None
        finally:
            self._restore_endpoints()

    async def kill(self) -> None:
        """Stop abruptly: no grace period, no shutdown bookkeeping (like a crash). Only the
        cancellation itself is expected; any other error fails the test."""
        try:
            if self._task is not None:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            store = getattr(self.bot, "store", None)
            if store is not None:
                await store.close()
        finally:
            self._restore_endpoints()

    def _restore_endpoints(self) -> None:
        discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = self._saved


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[ImagineBot]:
    runner = BotRunner(settings)
    bot = await runner.start()
    try:
        yield bot
    finally:
        await runner.stop()


async def quiet(
    discord_fake: FakeDiscord,
    openai_fake: FakeOpenAI | None = None,
    *,
    settle: float = 0.5,
    timeout: float = 15.0,
) -> None:
    """Wait until the bot has gone quiet: no request reached either fake for `settle` seconds.
    Then whatever the bot was going to send has been sent, and "exactly once" can be counted.
    Raises TimeoutError if the bot is still talking after `timeout` seconds."""
    loop = asyncio.get_running_loop()

    def seen() -> tuple[int, int]:
        return len(discord_fake.request_log), len(openai_fake.requests) if openai_fake else 0

    last, since = seen(), loop.time()
    deadline = since + timeout
    while loop.time() - since < settle:
        if loop.time() > deadline:
            raise TimeoutError(f"the bot kept sending requests for {timeout:.0f}s")
        await asyncio.sleep(0.05)
        now = seen()
        if now != last:
            last, since = now, loop.time()


def image_attachments(message: FakeMessage) -> list[Any]:
    return [
        a for a in message.attachments
        if a.filename.lower().endswith(IMAGE_EXTENSIONS)
        and not a.filename.startswith(("preview", "history-"))  # progress previews, /history
    ]


def results(fake: FakeDiscord, channel_id: int) -> list[FakeMessage]:
    """Bot messages in a channel that show a finished image, oldest first."""
    bot_id = int(fake.bot_user["id"])
    return [
        m for m in fake.messages(channel_id)
        if not m.deleted and int(m.author["id"]) == bot_id and image_attachments(m)
    ]


def bot_texts(fake: FakeDiscord, channel_id: int) -> list[str]:
    bot_id = int(fake.bot_user["id"])
    return [m.content for m in fake.messages(channel_id)
            if not m.deleted and int(m.author["id"]) == bot_id]


def custom_ids(message: FakeMessage) -> list[str]:
    ids = []
    for row in message.components:
        for item in row.get("components", []):
            if "custom_id" in item:
                ids.append(item["custom_id"])
    return ids


async def wait_results(fake: FakeDiscord, channel_id: int, count: int,
                       timeout: float = 15.0) -> list[FakeMessage]:
    return await fake.wait_for(
        lambda: (r if len(r := results(fake, channel_id)) >= count else None), timeout,
        what=f"{count} result message(s) in {channel_id}",
    )


async def start_conversation(fake: FakeDiscord, user: Any, prompt: str, *,
                             in_channel: int | None = None, **options: Any) -> int:
    """Run /imagine in the text channel (of the default server, unless `in_channel` names
    another) and return the thread id it opened."""
    before = set(fake.threads)
    channel = in_channel if in_channel is not None else fake.text_channel_id
    await fake.slash(user, channel, "imagine", {"prompt": prompt, **options})
    return await fake.wait_for(
        lambda: next((t for t in fake.threads if t not in before), None), 10,
        what="a new thread",
    )


async def answer(
    fake: FakeDiscord, inter: Any, expect: str = "", timeout: float = 5.0
) -> FakeMessage:
    """The first finished message the bot answered an interaction with (that contains `expect`:
    a refusal that comes after /imagine opened its thread replaces the "started" text)."""
    return await fake.wait_for(
        lambda: next((m for m in inter.messages()
                      if not m.loading and (m.content or m.attachments) and expect in m.content),
                     None),
        timeout, what=f"an answer to interaction {inter.id} ({inter.data.get('name')}) "
                      f"containing {expect!r}",
    )


def turn_rows(source: Any) -> list[dict[str, Any]]:
    """Every turn as the bot stored it (read with a separate connection, as an operator would).
    `source` is the bot's `Settings` (whichever backend they select) or an SQLite file path."""
    return db_rows(source, "SELECT * FROM turns ORDER BY id")


def db_rows(source: Any, sql: str) -> list[dict[str, Any]]:
    """The rows of one parameterless query, read like `turn_rows`."""
    import sqlite3

    url = getattr(source, "database_url", None)
    if url is not None:
        from tests.pg import query

        return query(url.get_secret_value(), sql)
    conn = sqlite3.connect(getattr(source, "database_path", source), timeout=10)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(sql)]
    finally:
        conn.close()


def gateway_url(fake: FakeDiscord) -> yarl.URL:
    return yarl.URL(fake.gateway_url)


class BotProcess:
    """`python -m bot` as a child process, configured only through environment variables."""

    def __init__(self, env: dict[str, str], *, log_path: str | None = None) -> None:
        self.env = env
        self.log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None
        self._log_file: Any = None

    async def start(self, fake: FakeDiscord, timeout: float = 30.0) -> None:
        import os
        import sys

        env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "OPENAI_"))}
        env.update(self.env)
        self._log_file = open(self.log_path, "ab") if self.log_path else None  # noqa: SIM115
        sessions_before = len(fake.sessions)
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", env=env,
            stdout=self._log_file or asyncio.subprocess.DEVNULL,
            stderr=self._log_file or asyncio.subprocess.DEVNULL,
        )
        await fake.wait_for(
            lambda: (len(fake.sessions) > sessions_before and fake.connected)
            or (self.proc is not None and self.proc.returncode is not None),
            timeout, what="the bot process to connect",
        )
        if self.proc.returncode is not None:
            raise RuntimeError(f"python -m bot exited with {self.proc.returncode}")
        await asyncio.sleep(0.3)  # READY → GUILD_CREATE → on_ready

    async def stop(self, sig: int | None = None, timeout: float = 30.0) -> int | None:
        import signal

        if self.proc is None:
            return None
        if self.proc.returncode is None:
            self.proc.send_signal(sig if sig is not None else signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), timeout)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self._log_file is not None:
            self._log_file.close()
        return self.proc.returncode


@contextlib.asynccontextmanager
async def sqlite_write_lock(path: Any, *, hold_for: float = 20.0) -> AsyncIterator[None]:
    """Another connection holds the SQLite file's write lock (as a backup or an operator's
    sqlite3 shell would) from entering the block until leaving it, at most `hold_for` s."""
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        conn = sqlite3.connect(path, timeout=10, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            locked.set()
            release.wait(hold_for)
            conn.execute("COMMIT")
        finally:
            conn.close()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert await asyncio.to_thread(locked.wait, 5), "the write lock was never taken"
        yield
    finally:
        release.set()
        await asyncio.to_thread(holder.join, 10)
