"""`python -m bot` as a black box: a child process configured only by environment variables,
driven through the fakes. Exit codes, signals, crash recovery, secrets, file modes, backups."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import stat
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import SECRET_KEY, SECRET_TOKEN
from tests.e2e.harness import BotProcess, quiet, results, start_conversation, turn_rows, wait_results
from tests.fakes.discord_server import FakeDiscord
from tests.fakes.openai_server import FakeOpenAI, Fault

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and file modes")


def clean_environ() -> dict[str, str]:
    """This process's environment without anything the bot's settings could read."""
    from bot.config import Settings

    names = {name.upper() for name in Settings.model_fields}
    return {
        k: v for k, v in os.environ.items()
        if k.upper() not in names and not k.startswith(("DISCORD_", "OPENAI_"))
    }


def bot_env(discord_fake: FakeDiscord, openai_fake: FakeOpenAI, db_path: Path,
            **extra: str) -> dict[str, str]:
    env = {
        "DISCORD_TOKEN": SECRET_TOKEN,
        "OPENAI_API_KEY": SECRET_KEY,
        "OPENAI_BASE_URL": openai_fake.base_url,
        "DISCORD_API_BASE": discord_fake.api_base,
        "DISCORD_GATEWAY_URL": discord_fake.gateway_url,
        "DATABASE_PATH": str(db_path),
        "PROGRESS_EDIT_INTERVAL": "0.05",
        "RETRY_BASE_DELAY": "0.01",
        "SHUTDOWN_GRACE_SECONDS": "1",
        "LOG_LEVEL": "DEBUG",
    }
    env.update(extra)
    return env


async def run_cli(*args: str, env: dict[str, str], cwd: Path,
                  timeout: float = 30.0, stdin: bytes | None = None) -> tuple[int, str, str]:
    """Run `python -m bot …`; `stdin` is what an operator types (else nothing: end of input)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args, env=env, cwd=cwd,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_missing_configuration_exits_2_naming_the_variable(tmp_path):
    cwd = tmp_path / "empty"
    cwd.mkdir()  # no .env here
    code, out, err = await run_cli(env=clean_environ(), cwd=cwd)
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "DISCORD_TOKEN" in lines[0]
    assert "Traceback" not in err and out == ""
    assert not (cwd / "data").exists()  # nothing was created before the check


async def test_sigkill_mid_generation_then_restart_posts_once(
    discord_fake, openai_fake, tmp_path
):
    db_path = tmp_path / "imagine.db"
    env = bot_env(discord_fake, openai_fake, db_path)
    openai_fake.latency = 2.0
    first = BotProcess(env, log_path=str(tmp_path / "bot1.log"))
    await first.start(discord_fake)
    alice = discord_fake.add_user("alice")
    thread_id = await start_conversation(discord_fake, alice, "a comet over the sea")
    rows = await discord_fake.wait_for(
        lambda: (r if (r := turn_rows(db_path)) and r[0]["response_id"] else None), 10,
        what="response.created to be recorded",
    )
    assert await first.stop(signal.SIGKILL) == -signal.SIGKILL
    assert results(discord_fake, thread_id) == []
    response_id = rows[0]["response_id"]

    second = BotProcess(env, log_path=str(tmp_path / "bot2.log"))
    await second.start(discord_fake)
    try:
        [result] = await wait_results(discord_fake, thread_id, 1, timeout=20)
        await quiet(discord_fake, openai_fake)  # a duplicate delivery would show up before
        assert len(results(discord_fake, thread_id)) == 1
    finally:
        assert await second.stop() == 0
    assert len(openai_fake.create_requests()) == 1
    assert openai_fake.generations == 1
    [row] = turn_rows(db_path)
    assert row["status"] == "done"
    assert row["response_id"] == response_id
    assert result.id == row["progress_message_id"]
    assert result.id in json.loads(row["message_ids"])


def refused_uploads(fake: FakeDiscord) -> int:
    """Result uploads (edits or sends with files) the fake Discord refused or dropped."""
    return sum(1 for r in fake.request_log
               if r.method in ("PATCH", "POST") and r.files and r.status in (None, 503))


@pytest.mark.parametrize("background", ["true", "false"])
async def test_sigkill_while_discord_is_down_then_restart_posts_the_paid_image_once(
    discord_fake, openai_fake, tmp_path, background
):
    """The image arrives while Discord fails every message send and edit, and the process is
    SIGKILLed while it waits to post it again; Discord comes back. The next start posts the
    recorded image, once, and nothing is generated again (not even without background mode,
    where the generation itself could not be picked up again)."""
    db_path = tmp_path / "imagine.db"
    env = bot_env(discord_fake, openai_fake, db_path, BACKGROUND_RESPONSES=background,
                  DEFAULT_PARTIAL_IMAGES="0")
    openai_fake.latency = 1.0
    first = BotProcess(env, log_path=str(tmp_path / "bot1.log"))
    await first.start(discord_fake)
    alice = discord_fake.add_user("alice")
    thread_id = await start_conversation(discord_fake, alice, "a comet over the sea")
    await discord_fake.wait_for(
        lambda: (r := turn_rows(db_path)) and r[0]["response_id"] and r[0]["progress_message_id"],
        10, what="the request and the progress message to be recorded",
    )
    for method, path in (("POST", r"/channels/\d+/messages$"),
                         ("PATCH", r"/channels/\d+/messages/\d+$")):
        discord_fake.outage(method, path, 120.0)
    await discord_fake.wait_for(lambda: refused_uploads(discord_fake) > 0, 15,
                                what="the result's upload to be refused")
    assert await first.stop(signal.SIGKILL) == -signal.SIGKILL
    discord_fake.fail_rules.clear()  # Discord is back

    second = BotProcess(env, log_path=str(tmp_path / "bot2.log"))
    await second.start(discord_fake)
    try:
        [result] = await wait_results(discord_fake, thread_id, 1, timeout=20)
        await quiet(discord_fake, openai_fake)
        assert len(results(discord_fake, thread_id)) == 1
    finally:
        assert await second.stop() == 0
    assert len(openai_fake.create_requests()) == 1
    assert openai_fake.generations == 1
    [row] = turn_rows(db_path)
    assert row["status"] == "done"
    assert json.loads(row["message_ids"]) == [result.id]


async def test_sigterm_exits_cleanly(discord_fake, openai_fake, tmp_path):
    db_path = tmp_path / "imagine.db"
    log_path = tmp_path / "bot.log"
    proc = BotProcess(bot_env(discord_fake, openai_fake, db_path), log_path=str(log_path))
    await proc.start(discord_fake)
    alice = discord_fake.add_user("alice")
    thread_id = await start_conversation(discord_fake, alice, "a quiet harbour")
    await wait_results(discord_fake, thread_id, 1)
    assert await proc.stop(signal.SIGTERM, timeout=15) == 0
    log = log_path.read_text()
    assert "Shutting down" in log
    assert "Traceback" not in log
    assert not any(r["status"] in ("queued", "running") for r in turn_rows(db_path))
    # the database was closed properly: no lingering WAL content needs recovery
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()


async def test_secrets_stay_out_of_logs_and_messages(discord_fake, openai_fake, tmp_path):
    db_path = tmp_path / "imagine.db"
    log_path = tmp_path / "bot.log"
    env = bot_env(discord_fake, openai_fake, db_path, RETRY_MAX_ATTEMPTS="0")
    proc = BotProcess(env, log_path=str(log_path))
    await proc.start(discord_fake)
    try:
        alice = discord_fake.add_user("alice")
        thread_id = await start_conversation(discord_fake, alice, "a key made of glass")
        await wait_results(discord_fake, thread_id, 1)
        openai_fake.add_fault(Fault.insufficient_quota())
        # an error text that carries both secrets reaches the bot's log call for failed turns
        openai_fake.add_fault(Fault.http(
            500, code="server_error", type="server_error",
            message=f"upstream said Bearer {SECRET_KEY} / Bot {SECRET_TOKEN}",
        ))
        await discord_fake.say(alice, thread_id, "and a lock")
        await discord_fake.say(alice, thread_id, "and a door")
        await discord_fake.wait_for(
            lambda: len(turn_rows(db_path)) == 3
            and all(r["status"] == "failed" for r in turn_rows(db_path)[1:]), 15,
            what="both failing turns to finish",
        )
    finally:
        assert await proc.stop() == 0
    log = log_path.read_text()
    assert "connected to Gateway" in log and "DEBUG" in log  # the scan reads a real log
    assert "insufficient quota" in log.lower()
    assert "[redacted]" in log  # the secret-bearing error was logged, scrubbed
    for secret in (SECRET_TOKEN, SECRET_KEY):
        assert secret not in log
        for message in discord_fake.all_messages():
            seen = json.dumps([message.content, message.embeds, message.components])
            assert secret not in seen, message
        for request in discord_fake.request_log:
            assert secret not in json.dumps([request.path, request.query, request.json],
                                            default=str)
    for request in openai_fake.requests:
        assert SECRET_TOKEN not in json.dumps(request.json)


async def test_database_file_is_private_and_backup_is_readable(
    discord_fake, openai_fake, tmp_path
):
    db_path = tmp_path / "data" / "imagine.db"
    env = bot_env(discord_fake, openai_fake, db_path)
    proc = BotProcess(env, log_path=str(tmp_path / "bot.log"))
    await proc.start(discord_fake)
    try:
        alice = discord_fake.add_user("alice")
        thread_id = await start_conversation(discord_fake, alice, "a vault")
        await wait_results(discord_fake, thread_id, 1)
        await discord_fake.wait_for(
            lambda: [r["status"] for r in turn_rows(db_path)] == ["done"], 5, what="done",
        )
        for path in (db_path, Path(f"{db_path}-wal"), Path(f"{db_path}-shm")):
            if path.exists():
                assert stat.S_IMODE(path.stat().st_mode) == 0o600, path

        backup = tmp_path / "backups" / "copy.db"
        cwd = tmp_path / "cli"
        cwd.mkdir()
        code, out, err = await run_cli("backup", str(backup), env={**clean_environ(), **env},
                                       cwd=cwd)  # while the bot is running
        assert code == 0, err
        assert str(backup) in out
    finally:
        assert await proc.stop() == 0
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    conn = sqlite3.connect(f"file:{backup}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        copied = conn.execute("SELECT prompt, status, response_id FROM turns").fetchall()
    finally:
        conn.close()
    original = [(r["prompt"], r["status"], r["response_id"]) for r in turn_rows(db_path)]
    assert copied == original == [("a vault", "done", original[0][2])]


async def test_backup_usage_error(tmp_path):
    code, _, err = await run_cli("backup", env=clean_environ(), cwd=tmp_path)
    assert code == 2
    assert "usage: python -m bot backup PATH" in err


async def test_backup_of_postgresql_points_to_pg_dump(tmp_path):
    env = clean_environ() | {
        "DISCORD_TOKEN": "t", "OPENAI_API_KEY": "k",
        "DATABASE_URL": "postgresql://imagine:pw@127.0.0.1:5432/imagine",
    }
    code, out, err = await run_cli("backup", str(tmp_path / "copy.db"), env=env, cwd=tmp_path)
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "pg_dump" in lines[0]
    assert "pw" not in err and not (tmp_path / "copy.db").exists() and out == ""


async def test_an_unreachable_postgresql_is_one_line_without_its_password(
    discord_fake, openai_fake, tmp_path
):
    env = clean_environ() | bot_env(discord_fake, openai_fake, tmp_path / "bot.db") | {
        "DATABASE_URL": "postgresql://imagine:pg-secret-77@127.0.0.1:1/imagine",
    }
    code, _, err = await run_cli(env=env, cwd=tmp_path, timeout=60)
    assert code == 1
    last = err.strip().splitlines()[-1]  # after the DEBUG log lines: the one explanation
    assert last.startswith("The database cannot be used:"), err
    assert "PostgreSQL" in last and "127.0.0.1:1" in last
    assert "pg-secret-77" not in err and "Traceback" not in err
    assert not (tmp_path / "bot.db").exists()  # no quiet fall-back to SQLite


async def test_without_the_intent_setting_the_bot_runs_and_says_so(openai_fake, tmp_path):
    fake = FakeDiscord(message_content_intent_allowed=False)
    await fake.start()
    log_path = tmp_path / "bot.log"
    bot = BotProcess(bot_env(fake, openai_fake, tmp_path / "bot.db",
                             MESSAGE_CONTENT_INTENT="false"), log_path=str(log_path))
    try:
        await bot.start(fake)
        alice = fake.add_user("alice")
        thread = await start_conversation(fake, alice, "a quiet harbour")
        await wait_results(fake, thread, 1, timeout=30)
    finally:
        await bot.stop()
        await fake.stop()
    assert "MESSAGE_CONTENT intent is off" in log_path.read_text()
