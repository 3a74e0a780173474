"""`python -m bot doctor [--generate] [--probe [--yes] [--out PATH]]`: what an operator runs
before inviting users.

Reads the same settings as the bot (`.env` and the environment) and prints a checklist: ✔ for
what works, ✘ with the fix for what does not, ? for what could not be checked. Exit status 0 only
when nothing failed. Discord is checked over REST only (no gateway connection); OpenAI with one
`GET /models/{model}` per configured model. `--generate` also makes one low-quality 1024x1024
image through the bot's own image client, after printing what it should cost. `--probe` makes
the few real requests that settle what the tests assume about OpenAI (bot/doctor_probe.py).
Secrets are never printed: every line is built from names, ids and error codes.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path
from typing import Any

import discord
from openai import AsyncOpenAI

from bot.checklist import FAIL, PASS, Checklist
from bot.config import Settings
from bot.core.costs import estimate_cost
from bot.core.errors import UserFacingError
from bot.core.image_client import GenerationRequest, ImageClient, RetryPolicy
from bot.core.image_models import MODELS as IMAGE_MODELS
from bot.core.image_models import spec_of
from bot.core.models import Usage
from bot.core.openai_check import check_openai, models_to_check
from bot.core.options import ImageOptions
from bot.core.runner import render_test_image
from bot.permissions import base_permissions, channel_permissions, invite_permissions, missing
from bot.startup import INTENT_FIX, TOKEN_FIX, explain

USAGE = "usage: python -m bot doctor [--generate] [--probe [--yes] [--out PATH]]"
HELP = f"""{USAGE}

Check the set-up before inviting users: the Discord token, intent, servers and channel
permissions; the OpenAI key and models; the settings. Exit status 0 when nothing failed.

  --generate   also make one low-quality 1024x1024 image (its estimated cost printed first)
  --probe      also make the smallest real requests that settle what the tests assume about
               OpenAI (custom size, a reference by id, a stream resume and a plain retrieve of a
               background response, a blocked prompt); the estimated cost is printed and a
               confirmation asked first; the verdicts are written to a JSON file
  --yes        answer the --probe confirmation (for scripts)
  --out PATH   where --probe writes its JSON file (default: a new file in the temp directory)
  -h, --help   show this help"""
MESSAGE_CONTENT_FLAGS = (1 << 18) | (1 << 19)  # GATEWAY_MESSAGE_CONTENT(_LIMITED)
TEXT_CHANNEL_TYPES = (0, 5)  # text, announcement: where /imagine opens its threads
MAX_GUILDS = 50
TEST_PROMPT = "A small red paper boat on calm blue water, simple flat illustration."
# The test image: low quality, 1024x1024, no partial images. 272 image output tokens is the
# documented figure for that size and quality (OpenAI image generation guide, cost table); the
# prompt is about 30 text tokens, read by the image model.
TEST_OPTIONS = ImageOptions(action="generate", size="1024x1024", quality="low",
                            output_format="png", partial_images=0)
TEST_USAGE = Usage(tool_text_input=30, image_output=272)


# --------------------------------------------------------------------------------- Discord


async def check_discord(settings: Settings, out: Checklist) -> None:
    """Token, application, intent, servers and channel permissions, over REST."""
    from bot.app import apply_discord_endpoints

    out.section("Discord")
    apply_discord_endpoints(settings)
    http = discord.http.HTTPClient(asyncio.get_running_loop())
    try:
        try:
            me = await http.static_login(settings.discord_token.get_secret_value())
        except discord.LoginFailure:
            out.add(False, "Discord rejected DISCORD_TOKEN (401 Unauthorized)", TOKEN_FIX)
            return
        except Exception as exc:  # unreachable, TLS...: the start-up line says what to do
            out.add(False, explain(exc) or f"Discord login failed ({type(exc).__name__})")
            return
        out.add(True, f"DISCORD_TOKEN logs in as {me['username']} (user id {me['id']})")
        app = await http.application_info()
        out.add(True, f"application id {app['id']}")
        check_intent(settings, int(app.get("flags") or 0), out)
        await check_guilds(http, int(app["id"]), int(me["id"]), out)
    except discord.HTTPException as exc:
        out.add(False, f"Discord answered {exc.status} (code {exc.code}) to a check",
                "run the doctor again; if it persists, see discordstatus.com")
    finally:
        await http.close()


def check_intent(settings: Settings, flags: int, out: Checklist) -> None:
    """The Message Content intent: enabled for the app (docs: Application -> Application Flags),
    or not requested at all."""
    if not settings.message_content_intent:
        out.add(True, "Message Content intent not requested (MESSAGE_CONTENT_INTENT=false): users "
                      "refine with /refine, @mentions or replies to a result")
    elif flags & MESSAGE_CONTENT_FLAGS:
        out.add(True, "Message Content intent is enabled for the application")
    else:
        out.add(False, "Message Content intent is not enabled for the application (the gateway "
                       "would close with 4014)", INTENT_FIX)


def invite_url(app_id: int) -> str:
    perms = invite_permissions().value
    return (f"https://discord.com/oauth2/authorize?client_id={app_id}"
            f"&scope=bot+applications.commands&permissions={perms}")


async def check_guilds(http: discord.http.HTTPClient, app_id: int, bot_id: int,
                       out: Checklist) -> None:
    guilds = await http.get_guilds(200)
    if not guilds:
        out.add(False, "the bot is in no server yet", f"invite it: {invite_url(app_id)}")
        return
    out.add(True, f"the bot is in {len(guilds)} server(s)")
    for guild in guilds[:MAX_GUILDS]:
        try:
            await check_guild(http, guild, bot_id, out)
        except discord.HTTPException as exc:  # e.g. removed from the server meanwhile
            out.add(False, f"could not read server \"{guild['name']}\" (HTTP {exc.status}, "
                           f"code {exc.code})", "run the doctor again", indent=2)
    if len(guilds) > MAX_GUILDS:
        out.add(None, f"{len(guilds) - MAX_GUILDS} more server(s) not checked")


async def check_guild(http: discord.http.HTTPClient, guild: Any, bot_id: int,
                      out: Checklist) -> None:
    """In one server: the channels where /imagine can run, and what is missing elsewhere."""
    guild_id = int(guild["id"])
    print(f"  Server \"{guild['name']}\" (id {guild_id})", flush=True)
    roles = {int(r["id"]): int(r["permissions"]) for r in await http.get_roles(guild_id)}
    member = await http.get_member(guild_id, bot_id)
    member_roles = [int(r) for r in member["roles"]]
    base = base_permissions(guild_id, roles, member_roles, owner=bool(guild.get("owner")))
    channels = sorted((c for c in await http.get_all_guild_channels(guild_id)
                       if c["type"] in TEXT_CHANNEL_TYPES), key=lambda c: c["position"])
    hidden = 0
    for channel in channels:
        perms = channel_permissions(base, guild_id=guild_id, member_id=bot_id,
                                    member_roles=member_roles,
                                    overwrites=channel.get("permission_overwrites", []))
        if not perms.view_channel:
            hidden += 1
            continue
        lacking = missing(perms)
        if not lacking:
            out.add(True, f"#{channel['name']}: /imagine can run here", indent=2)
            continue
        out.add(False, f"#{channel['name']}: missing {', '.join(lacking)}",
                channel_fix(channel["name"], lacking, missing(base)), indent=2)
    if hidden:
        out.add(None, f"{hidden} text channel(s) hidden from the bot (not checked)", indent=2)
    if len(channels) == hidden:
        out.add(False, "the bot can see no text channel here",
                "give the bot's role View Channel in the channels where it should run", indent=2)


def channel_fix(channel: str, lacking: list[str], role_lacks: list[str]) -> str:
    """Where to grant what: the bot's roles lack some; a channel overwrite denies the rest."""
    fixes = []
    from_roles = [p for p in lacking if p in role_lacks]
    from_channel = [p for p in lacking if p not in role_lacks]
    if from_roles:
        fixes.append(f"grant {', '.join(from_roles)} to the bot's role in Server Settings -> "
                     "Roles")
    if from_channel:
        fixes.append(f"in #{channel} -> Edit Channel -> Permissions, allow "
                     f"{', '.join(from_channel)} for the bot or its role (an overwrite there "
                     "denies it)")
    return "; ".join(fixes)


# --------------------------------------------------------------------------------- OpenAI


def openai_client(settings: Settings) -> AsyncOpenAI:
    return AsyncOpenAI(api_key=settings.openai_api_key.get_secret_value(),
                       base_url=settings.openai_base_url, max_retries=0,
                       timeout=settings.request_timeout_seconds)


async def check_openai_access(settings: Settings, client: AsyncOpenAI, out: Checklist) -> bool:
    """The key and the models; True when the key was accepted."""
    out.section("OpenAI")
    findings = await check_openai(client, models_to_check(settings.openai_model,
                                                          settings.image_model,
                                                          settings.allowed_image_models))
    for finding in findings:
        out.finding(finding)
    return findings[0].ok is not False


def check_image_models(settings: Settings, out: Checklist) -> None:
    """What each image model servers may use takes (its row in bot/core/image_models.py)."""
    for model in settings.allowed_image_models:
        spec = spec_of(model)
        known = spec.name in IMAGE_MODELS
        out.add(True if known else None, f"image model {model}: {', '.join(spec.features())}",
                "" if known else "no capability row for this model: it is sent only what "
                "every model takes (add its row to bot/core/image_models.py)")


def check_settings(settings: Settings, out: Checklist) -> None:
    out.section("Settings")
    check_image_models(settings, out)
    if settings.background_downgraded:
        out.add(False, "BACKGROUND_RESPONSES=true needs STORE_RESPONSES=true: background mode "
                       "is off",
                "set STORE_RESPONSES=true (a generation then survives a restart), or "
                "BACKGROUND_RESPONSES=false")
    elif settings.background_responses:
        out.add(True, "background responses on, with stored responses (a generation survives "
                      "a restart)")
    elif settings.store_responses:
        out.add(True, "background responses off (BACKGROUND_RESPONSES=false)")
    else:
        out.add(True, "responses not stored (STORE_RESPONSES=false): background mode is off and "
                      "each refinement re-sends its parent image")


async def generate_test_image(settings: Settings, client: AsyncOpenAI, out: Checklist) -> None:
    """One low-quality image through the bot's own image client, its estimate printed first."""
    out.section("Test image (--generate)")
    model, image_model = settings.openai_model, settings.image_model
    estimate = estimate_cost(TEST_USAGE, model, settings.price_table, image_model)
    print(f"  estimated cost: ${estimate:.4f} (1 image, quality low, 1024x1024)", flush=True)
    images = ImageClient(client, model=settings.openai_model, image_model=settings.image_model,
                         store=False, background=False, retry=RetryPolicy(max_attempts=0))  # never bill twice
    try:
        result = await render_test_image(images, GenerationRequest(prompt=TEST_PROMPT,
                                                                   options=TEST_OPTIONS))
    except UserFacingError as exc:
        detail = getattr(exc, "detail", "")[:200]  # the image client already redacted the key
        out.add(False, f"the test image failed ({exc.kind.name}{': ' + detail if detail else ''})",
                "check the OpenAI lines above, the account's billing and limits")
        return
    if not result.images:
        out.add(False, "the test answer had no image", "check OPENAI_MODEL supports the "
                "image_generation tool")
        return
    image = result.images[0]
    path = await asyncio.to_thread(write_private, image.data, f".{image.output_format}")
    cost = estimate_cost(result.usage, model, settings.price_table, image_model)
    out.add(True, f"generated a {image.size or '?'} {image.output_format} image "
                  f"({len(image.data) // 1024} KiB, about ${cost:.4f}): {path}")


def write_private(data: bytes, suffix: str) -> Path:
    """Write `data` to a new file only this user can read; return its path."""
    fd, name = tempfile.mkstemp(prefix="imagine-doctor-", suffix=suffix)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return Path(name)


# --------------------------------------------------------------------------------- entry


async def run_doctor(settings: Settings, *, generate: bool = False, probe: bool = False,
                     yes: bool = False, probe_out: Path | None = None) -> int:
    out = Checklist()
    print("imagine-bot doctor", flush=True)
    await check_discord(settings, out)
    client = openai_client(settings)
    try:
        key_ok = await check_openai_access(settings, client, out)
        check_settings(settings, out)
        if generate and key_ok:
            await generate_test_image(settings, client, out)
        if probe and key_ok:
            from bot.doctor_probe import run_probes

            await run_probes(settings, client, out, yes=yes, path=probe_out)
    finally:
        await client.close()
    if out.failures:
        print(f"\n{FAIL} {out.failures} problem(s) to fix before inviting users", flush=True)
        return 1
    print(f"\n{PASS} all checks passed", flush=True)
    return 0

