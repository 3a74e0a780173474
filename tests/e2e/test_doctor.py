"""`python -m bot doctor` as an operator runs it: a child process configured only by environment
variables, against the fake Discord (REST only) and the fake Responses API. Each case asserts
the printed checklist lines and the exit status."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import SECRET_KEY, SECRET_TOKEN
from tests.e2e.test_process import bot_env, clean_environ, run_cli
from tests.fakes.discord_models import perm
from tests.fakes.discord_server import FakeDiscord
from tests.fakes.openai_server import FakeOpenAI

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX child processes")


async def doctor(discord_fake: FakeDiscord, openai_fake: FakeOpenAI, tmp_path: Path,
                 *args: str, **extra: str) -> tuple[int, list[str]]:
    """Run the doctor; return its exit status and its stdout lines (stripped, non-empty)."""
    env = clean_environ() | bot_env(discord_fake, openai_fake, tmp_path / "bot.db", **extra)
    code, out, err = await run_cli("doctor", *args, env=env, cwd=tmp_path, timeout=60)
    assert err == "", err
    for secret in (SECRET_TOKEN, SECRET_KEY):
        assert secret not in out
    return code, [line.strip() for line in out.splitlines() if line.strip()]


def after(lines: list[str], line: str) -> str:
    """The line printed right after `line` (a ✘ line's fix)."""
    return lines[lines.index(line) + 1]


def failures(lines: list[str]) -> list[str]:
    """The ✘ lines of the checklist (not the summary, which is the last line)."""
    return [line for line in lines[:-1] if line.startswith("✘")]


async def test_all_green(discord_fake, openai_fake, tmp_path):
    code, lines = await doctor(discord_fake, openai_fake, tmp_path)
    assert code == 0, lines
    bot_id = discord_fake.bot_id
    for expected in (
        f"✔ DISCORD_TOKEN logs in as imagine-bot (user id {bot_id})",
        f"✔ application id {discord_fake.application_id}",
        "✔ Message Content intent is enabled for the application",
        "✔ the bot is in 1 server(s)",
        f'Server "Fake Guild" (id {discord_fake.guild_id})',
        "✔ #general: /imagine can run here",
        "✔ #random: /imagine can run here",
        "✔ OpenAI accepts OPENAI_API_KEY",
        "✔ OPENAI_MODEL=gpt-5.5 exists",
        "✔ background responses on, with stored responses (a generation survives a restart)",
        # IMAGE_MODEL is pinned (gpt-image-2 when unset) and checked like OPENAI_MODEL; what
        # it takes comes from its capability row
        "✔ IMAGE_MODEL=gpt-image-2 exists",
        "✔ image model gpt-image-2: custom sizes, transparent background (preview), "
        "masks",
    ):
        assert expected in lines, (expected, lines)
    assert lines[-1] == "✔ all checks passed"
    assert failures(lines) == []
    # REST only, and nothing billed
    assert discord_fake.identify_payloads == []
    assert all(r.method == "GET" for r in discord_fake.request_log)
    assert openai_fake.create_requests() == []
    assert not (tmp_path / "bot.db").exists()


async def test_the_image_models_servers_may_use_and_what_each_takes(discord_fake, openai_fake,
                                                                  tmp_path):
    code, lines = await doctor(discord_fake, openai_fake, tmp_path,
                               IMAGE_MODELS="gpt-image-2.6-flare,gpt-image-2.5-sunburst")
    assert code == 0, lines
    for expected in (
        "✔ IMAGE_MODELS gpt-image-2.6-flare=gpt-image-2.6-flare exists",
        "✔ image model gpt-image-2.6-flare: preset sizes only, transparent background, gif, "
        "svg, masks, complexity",
        "✔ image model gpt-image-2.5-sunburst: custom sizes, quality xhigh, quality max, "
        "transparent background, masks",
    ):
        assert expected in lines, (expected, lines)


async def test_missing_message_content_intent(openai_fake, tmp_path):
    async with FakeDiscord(message_content_intent_allowed=False) as fake:
        code, lines = await doctor(fake, openai_fake, tmp_path)
        code_off, lines_off = await doctor(fake, openai_fake, tmp_path,
                                           MESSAGE_CONTENT_INTENT="false")
    line = ("✘ Message Content intent is not enabled for the application (the gateway would "
            "close with 4014)")
    assert code == 1
    assert failures(lines) == [line]
    fix = after(lines, line)
    assert fix.startswith("fix: enable Message Content Intent in the Developer Portal")
    assert "or set MESSAGE_CONTENT_INTENT=false" in fix
    assert lines[-1] == "✘ 1 problem(s) to fix before inviting users"

    assert code_off == 0, lines_off
    assert any(x.startswith("✔ Message Content intent not requested (MESSAGE_CONTENT_INTENT="
                            "false)") for x in lines_off)


async def test_missing_permission_in_one_channel(discord_fake, openai_fake, tmp_path):
    discord_fake.deny(discord_fake.other_channel_id, "attach_files")  # a member overwrite
    code, lines = await doctor(discord_fake, openai_fake, tmp_path)
    assert code == 1
    assert "✔ #general: /imagine can run here" in lines
    assert failures(lines) == ["✘ #random: missing Attach Files"]
    assert after(lines, "✘ #random: missing Attach Files") == (
        "fix: in #random -> Edit Channel -> Permissions, allow Attach Files for the bot or its "
        "role (an overwrite there denies it)"
    )


async def test_permission_missing_from_the_bots_roles(discord_fake, openai_fake, tmp_path):
    embed = perm("embed_links")
    for role_id in (discord_fake.guild_id, discord_fake.bot_role_id):  # @everyone and the bot's
        role = discord_fake.roles[role_id]
        role["permissions"] = str(int(role["permissions"]) & ~embed)
    discord_fake.deny(discord_fake.text_channel_id, "read_message_history")
    code, lines = await doctor(discord_fake, openai_fake, tmp_path)
    assert code == 1
    general = "✘ #general: missing Embed Links, Read Message History"
    assert failures(lines) == [general, "✘ #random: missing Embed Links"]
    assert after(lines, general) == (
        "fix: grant Embed Links to the bot's role in Server Settings -> Roles; in #general -> "
        "Edit Channel -> Permissions, allow Read Message History for the bot or its role (an "
        "overwrite there denies it)"
    )


async def test_a_channel_hidden_from_the_bot_is_not_a_failure(discord_fake, openai_fake,
                                                              tmp_path):
    discord_fake.deny(discord_fake.other_channel_id, "view_channel")
    code, lines = await doctor(discord_fake, openai_fake, tmp_path)
    assert code == 0, lines
    assert "? 1 text channel(s) hidden from the bot (not checked)" in lines
    assert not any("#random" in line for line in lines)


async def test_rejected_openai_key(discord_fake, openai_fake, tmp_path):
    openai_fake.key_accepted = False
    code, lines = await doctor(discord_fake, openai_fake, tmp_path, "--generate")
    assert code == 1
    assert failures(lines) == ["✘ OpenAI rejected OPENAI_API_KEY (invalid_api_key)"]
    assert after(lines, failures(lines)[0]).startswith("fix: create a key at platform.openai.com")
    assert "✔ #general: /imagine can run here" in lines  # Discord was still checked
    assert openai_fake.create_requests() == []  # no test image with a rejected key


async def test_a_restricted_key_without_the_models_scope_cannot_be_checked(
    discord_fake, openai_fake, tmp_path
):
    openai_fake.keys_without_models_scope.add(SECRET_KEY)  # 401 "Missing scopes" on /models
    code, lines = await doctor(discord_fake, openai_fake, tmp_path)
    assert code == 0, lines
    assert failures(lines) == []
    assert ("? could not check OPENAI_MODEL=gpt-5.5: this restricted key lacks the Models read "
            "scope (HTTP 401 Missing scopes); generation may still work") in lines
    assert "? OpenAI did not reject OPENAI_API_KEY, but no model could be checked" in lines


async def test_unknown_model(discord_fake, openai_fake, tmp_path):
    code, lines = await doctor(discord_fake, openai_fake, tmp_path,
                               IMAGE_MODEL="gpt-image-0-nonexistent")
    assert code == 1
    line = "✘ IMAGE_MODEL=gpt-image-0-nonexistent does not exist or this key cannot use it"
    assert failures(lines) == [line]
    assert after(lines, line) == "fix: set IMAGE_MODEL to a model your OpenAI project can use"
    assert "✔ OPENAI_MODEL=gpt-5.5 exists" in lines


async def test_rejected_discord_token(openai_fake, tmp_path):
    async with FakeDiscord(token_accepted=False) as fake:
        code, lines = await doctor(fake, openai_fake, tmp_path)
    assert code == 1
    assert failures(lines) == ["✘ Discord rejected DISCORD_TOKEN (401 Unauthorized)"]
    assert "Reset Token" in after(lines, failures(lines)[0])
    assert "✔ OpenAI accepts OPENAI_API_KEY" in lines


async def test_background_without_storage(discord_fake, openai_fake, tmp_path):
    code, lines = await doctor(discord_fake, openai_fake, tmp_path,
                               BACKGROUND_RESPONSES="true", STORE_RESPONSES="false")
    line = "✘ BACKGROUND_RESPONSES=true needs STORE_RESPONSES=true: background mode is off"
    assert code == 1
    assert failures(lines) == [line]
    assert after(lines, line).startswith("fix: set STORE_RESPONSES=true")


async def test_generate_prints_the_estimate_then_makes_one_low_quality_image(
    discord_fake, openai_fake, tmp_path
):
    code, lines = await doctor(discord_fake, openai_fake, tmp_path, "--generate")
    assert code == 0, lines
    # published gpt-image-2 prices: 30 text tokens x $5/M + 272 image tokens x $30/M = $0.00831
    estimate = lines.index("estimated cost: $0.0083 (1 image, quality low, 1024x1024)")
    [generated] = [i for i, line in enumerate(lines) if line.startswith("✔ generated a ")]
    assert estimate < generated
    [request] = openai_fake.create_requests()
    [tool] = request["tools"]
    assert (tool["quality"], tool["size"], tool.get("partial_images", 0)) == ("low", "1024x1024", 0)
    assert request["store"] is False and "background" not in request
    path = Path(lines[generated].rsplit(": ", 1)[1])
    try:
        assert lines[generated].startswith("✔ generated a 1024x1024 png image (")
        assert path.read_bytes().startswith(b"\x89PNG")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    finally:
        path.unlink(missing_ok=True)
    assert openai_fake.generations == 1


async def test_usage_error(tmp_path):
    for args in (["--everything"], ["--yes"], ["--probe", "--out"]):
        code, _, err = await run_cli("doctor", *args, env=clean_environ(), cwd=tmp_path)
        assert code == 2
        assert err.strip() == "usage: python -m bot doctor [--generate] [--probe [--yes] [--out PATH]]"


@pytest.mark.parametrize("args", [["--help"], ["-h"], ["doctor", "--help"]])
async def test_help_prints_the_usage_and_exits_0_without_any_setting(tmp_path, args):
    code, out, err = await run_cli(*args, env=clean_environ(), cwd=tmp_path)
    assert (code, err) == (0, "")
    command = "python -m bot doctor" if args[0] == "doctor" else "python -m bot"
    assert out.startswith(f"usage: {command} [")
    assert "--probe" in out


def probe_lines(lines: list[str]) -> list[str]:
    start = lines.index("Probes (--probe)")
    return [line for line in lines[start:] if line[:1] in "✔✘?"][:-1]  # not the summary


async def test_probe_prints_its_cost_then_settles_each_assumption_with_request_ids(
    discord_fake, openai_fake, tmp_path
):
    from bot.doctor_probe import BLOCKED_PROMPT

    openai_fake.blocked_prompts.add(BLOCKED_PROMPT)  # the fake has no safety system of its own
    report = tmp_path / "probe.json"
    code, lines = await doctor(discord_fake, openai_fake, tmp_path, "--probe", "--yes",
                               "--out", str(report))
    assert code == 0, lines
    estimate = next(i for i, line in enumerate(lines) if line.startswith("estimated cost: at most $"))
    # by hand, with gpt-5.5 ($5 / $30 per 1M) and gpt-image-2 ($5 text, $30 image out): three
    # low 1024x1024 images at the bot's worst case (4000 + prompt mainline and tool text tokens,
    # 2000 mainline out, 272 image out) and three answers reading an image (4000 + 1600 in, 64
    # out): 3 x (108,160 + 10 x prompt) + 3 x 29,920 micro-dollars
    worst = (3 * (108_160 + 10 * len(BLOCKED_PROMPT)) + 3 * 29_920) / 1e6
    assert lines[estimate].startswith(f"estimated cost: at most ${worst:.4f} (up to 3 ")
    verdicts = probe_lines(lines)
    assert estimate < lines.index(verdicts[0])
    found = [line.split(" (request id ")[0] for line in verdicts]
    assert found[:3] == ["✔ custom size: taken: made a 1024x640 image",
                         found[1], "✔ plain retrieve: completed, 1 image(s), image tool usage reported"]
    assert found[1].startswith("✔ stream resume: ") and found[1].endswith(" event(s) after #0")
    assert found[3].startswith("✔ reference by id alone: HTTP 400 (input): Item 'ig_")
    assert "without its required 'reasoning' item" in found[3]
    assert found[4] == "✔ reference by id after its reasoning item: taken"
    assert found[5].startswith("✔ reference to an unknown item: HTTP 404 (input): Item with id")
    assert found[6].startswith("✔ moderation: HTTP 400 moderation_blocked: ")
    assert all(line.split(" (request id ")[1].startswith("req_") for line in verdicts)
    assert lines[lines.index(verdicts[-1]) + 1] == f"verdicts written to {report}"
    written = json.loads(report.read_text())
    assert [(p["probe"], p["ok"]) for p in written["probes"]] == [
        ("custom size", True), ("stream resume", True), ("plain retrieve", True),
        ("reference by id alone", True), ("reference by id after its reasoning item", True),
        ("reference to an unknown item", True), ("moderation", True),
    ]
    assert all(i.startswith("req_") for p in written["probes"] for i in p["request_ids"])
    assert SECRET_KEY not in report.read_text()
    creates = openai_fake.create_requests()
    assert creates[0]["tools"][0]["size"] == "1024x640" and creates[0]["store"] is False
    assert creates[1]["background"] is True and creates[1]["stream"] is True
    resumes = [r.query for r in openai_fake.requests
               if r.method == "GET" and r.query.get("stream") == "true"]
    assert resumes == [{"stream": "true", "starting_after": "0"}]
    assert [c["input"][0]["type"] for c in creates[2:5]] == [
        "image_generation_call", "item_reference", "image_generation_call"]
    assert creates[5]["input"] == BLOCKED_PROMPT
    assert openai_fake.generations == 2  # the custom size and the background response


@pytest.mark.parametrize("typed", [b"", b"n\n"], ids=["end-of-input", "no"])
async def test_probe_asks_first_and_makes_no_request_without_a_yes(
    discord_fake, openai_fake, tmp_path, typed
):
    env = clean_environ() | bot_env(discord_fake, openai_fake, tmp_path / "bot.db")
    code, out, err = await run_cli("doctor", "--probe", env=env, cwd=tmp_path, timeout=60,
                                   stdin=typed)
    assert (code, err) == (0, "")
    assert "Make these requests? [y/N]" in out
    assert "? probes not run: not confirmed (--yes answers yes)" in out
    assert out.index("estimated cost: at most $") < out.index("Make these requests?")
    assert openai_fake.create_requests() == []


async def test_probe_runs_when_the_operator_types_yes(discord_fake, openai_fake, tmp_path):
    env = clean_environ() | bot_env(discord_fake, openai_fake, tmp_path / "bot.db")
    code, out, _ = await run_cli("doctor", "--probe", "--out", str(tmp_path / "p.json"),
                                 env=env, cwd=tmp_path, timeout=60, stdin=b"y\n")
    assert "✔ custom size: taken" in out
    assert "? moderation: not blocked: an image was made" in out  # this fake blocks nothing
    assert code == 0 and (tmp_path / "p.json").exists()


async def test_unreachable_discord(openai_fake, tmp_path):
    from tests.e2e.test_startup import closed_port

    port = closed_port()
    fake = FakeDiscord()  # not started: only its settings shape is used
    fake.api_base = f"http://127.0.0.1:{port}/api/v10"
    fake.gateway_url = f"ws://127.0.0.1:{port}/gateway"
    code, lines = await doctor(fake, openai_fake, tmp_path)
    assert code == 1
    [line] = failures(lines)
    assert line.startswith(f"✘ Cannot reach Discord at 127.0.0.1:{port} (")
    assert "✔ OpenAI accepts OPENAI_API_KEY" in lines
