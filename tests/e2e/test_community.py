"""Running the bot for a community, end to end through both fakes: the fair queue (positions,
round robin, per-user limits, cancelling), quotas and spend caps with their reset times, exempt
roles, server access settings, who may change them, /usage with its chart, and the recorded cost.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import sqlite3
from typing import Any

import pytest
from PIL import Image

from bot.core.errors import ErrorKind, UserFacingError
from bot.ui.i18n import t
from bot.ui.render import error_text
from tests.e2e.harness import (
    answer,
    custom_ids,
    image_attachments,
    quiet,
    running,
    start_conversation,
    wait_results,
)
from tests.fakes.discord_server import FakeDiscord, FakeDiscordError, FakeInteraction, FakeMessage

PRICES = {"default": {"text_input": 100.0, "text_output": 400.0, "image_input": 200.0,
                      "image_output": 1000.0}}  # absurd prices: one image costs about $1


# ------------------------------------------------------------------------------------ helpers
def history(message: FakeMessage) -> list[str]:
    """Every content a message had, oldest first."""
    return [v.content for v in message.edits] + [message.content]


def bot_messages(fake: FakeDiscord, channel_id: int) -> list[FakeMessage]:
    return [m for m in fake.messages(channel_id) if m.author_id == fake.bot_id and not m.deleted]


def db_rows(settings: Any, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with sqlite3.connect(settings.database_path) as db:
        return db.execute(sql, params).fetchall()


def prompt_of(request: dict[str, Any]) -> str:
    """The user's instruction in a Responses API create request (its last input_text)."""
    content = request["input"][-1]["content"]
    return [part["text"] for part in content if part["type"] == "input_text"][-1]


def make_role(fake: FakeDiscord, name: str) -> int:
    """A new role without permissions (the fake makes one per user given `permissions`)."""
    holder = fake.add_user(f"{name}-holder", permissions=[])
    return int(fake.members[int(holder["id"])]["roles"][-1])


async def settings_cmd(fake: FakeDiscord, admin: Any, sub: str, **options: Any) -> str:
    inter = await fake.slash(admin, fake.text_channel_id, f"imagine-settings {sub}", options)
    reply = await answer(fake, inter)
    assert reply.ephemeral
    return reply.content


async def imagine(fake: FakeDiscord, user: Any, prompt: str, channel_id: int | None = None,
                  **options: Any) -> FakeInteraction:
    return await fake.slash(user, channel_id or fake.text_channel_id, "imagine",
                            {"prompt": prompt, **options})


def refusal(kind: ErrorKind, locale: str = "en-US", **params: Any) -> str:
    return error_text(UserFacingError(kind, **params), locale)


def next_utc_midnight() -> int:
    now = dt.datetime.now(dt.UTC)
    return int((now.replace(hour=0, minute=0, second=0, microsecond=0)
                + dt.timedelta(days=1)).timestamp())


# ------------------------------------------------------------------------------ the fair queue
async def test_queue_positions_show_in_progress_messages(discord_fake, openai_fake, make_settings):
    settings = make_settings(max_concurrent_generations=1)
    users = [discord_fake.add_user(name) for name in ("ann", "ben", "cat")]
    openai_fake.latency = 1.0  # the first generation holds the only slot while the others queue
    async with running(settings):
        threads = [await start_conversation(discord_fake, u, f"picture {n}")
                   for n, u in enumerate(users)]

        def seen(thread_id: int, text: str) -> bool:
            return any(text in h for m in bot_messages(discord_fake, thread_id) for h in history(m))

        await discord_fake.wait_for(lambda: seen(threads[2], "position 2"), 5,
                                    what="position 2 in the third thread")
        openai_fake.latency = 0.05
        for thread_id in threads:
            await wait_results(discord_fake, thread_id, 1)

    first, second, third = (
        [h for m in bot_messages(discord_fake, tid) for h in history(m)] for tid in threads
    )
    assert not any("position" in h for h in first)  # it never waited
    assert any("⏳ Queued — position 1." in h for h in second)
    assert any("⏳ Queued — position 2." in h for h in third)
    assert all("position 2" not in h for h in second)
    # the progress message became the result: one message per turn, its history tells the story
    [result] = [m for m in bot_messages(discord_fake, threads[2])
                if any("position 2" in h for h in history(m))]
    assert image_attachments(result) and "imagine:reroll:" in " ".join(custom_ids(result))
    assert [r[0] for r in db_rows(settings, "SELECT status FROM turns")] == ["done"] * 3


async def test_round_robin_between_users(discord_fake, openai_fake, make_settings):
    """A queues three turns in three threads, then B one: B's runs before A's third."""
    settings = make_settings(max_concurrent_generations=1, per_user_queued=3)
    a, b = discord_fake.add_user("alice"), discord_fake.add_user("bob")
    openai_fake.latency = 1.5
    async with running(settings):
        a_threads = [await start_conversation(discord_fake, a, f"alice {n}") for n in (1, 2, 3)]
        await discord_fake.wait_for(
            lambda: len(db_rows(settings, "SELECT id FROM turns")) == 3, 5, what="3 turns")
        b_thread = await start_conversation(discord_fake, b, "bob 1")
        await discord_fake.wait_for(
            lambda: len(db_rows(settings, "SELECT id FROM turns")) == 4, 5, what="4 turns")
        assert len(openai_fake.create_requests()) == 1  # alice 1 still holds the only slot
        openai_fake.latency = 0.05
        for thread_id in [*a_threads, b_thread]:
            await wait_results(discord_fake, thread_id, 1)

    order = [prompt_of(r) for r in openai_fake.create_requests()]
    assert sorted(order) == ["alice 1", "alice 2", "alice 3", "bob 1"]
    assert [p for p in order if p.startswith("alice")] == ["alice 1", "alice 2", "alice 3"]
    assert order.index("bob 1") < order.index("alice 3")  # bob did not wait for all of alice's
    finished = dict(db_rows(settings, "SELECT prompt, finished_at FROM turns"))
    assert finished["bob 1"] < finished["alice 3"]


async def test_per_user_queue_limit(discord_fake, openai_fake, make_settings):
    settings = make_settings(max_concurrent_generations=1, per_user_queued=1)
    a, b = discord_fake.add_user("alice"), discord_fake.add_user("bob")
    openai_fake.latency = 1.0
    async with running(settings):
        t1 = await start_conversation(discord_fake, a, "one")
        t2 = await start_conversation(discord_fake, a, "two")
        await discord_fake.wait_for(
            lambda: any("position 1" in m.content for m in bot_messages(discord_fake, t2)), 5,
            what="the second turn in the queue")
        third = await imagine(discord_fake, a, "three")
        refused = await answer(discord_fake, third, "waiting")
        # another user is not held back by alice's queue
        t4 = await start_conversation(discord_fake, b, "bob's")
        openai_fake.latency = 0.05
        for thread_id in (t1, t2, t4):
            await wait_results(discord_fake, thread_id, 1)

    assert refused.content == refusal(ErrorKind.queue_full, limit=1)
    assert "queue is full (1 waiting)" in refused.content
    assert sorted(r[0] for r in db_rows(settings, "SELECT prompt FROM turns")) == [
        "bob's", "one", "two"]
    assert "three" not in [prompt_of(r) for r in openai_fake.create_requests()]


async def test_cancel_a_queued_turn(discord_fake, openai_fake, make_settings):
    settings = make_settings(max_concurrent_generations=1)
    a, b = discord_fake.add_user("alice"), discord_fake.add_user("bob")
    mallory = discord_fake.add_user("mallory")
    openai_fake.latency = 0.8
    async with running(settings):
        t1 = await start_conversation(discord_fake, a, "first")
        t2 = await start_conversation(discord_fake, b, "second")
        # "position 1" is shown once the turn is in the queue (the message is posted just before)
        progress = await discord_fake.wait_for(
            lambda: next((m for m in bot_messages(discord_fake, t2)
                          if "position 1" in m.content), None),
            5, what="bob's progress message at position 1",
        )
        cancel_id = next(c for c in custom_ids(progress) if c.startswith("imagine:cancel:"))
        turn_id = int(cancel_id.rsplit(":", 1)[1])

        stranger = await discord_fake.click(mallory, progress.id, cancel_id)
        denied = await answer(discord_fake, stranger)
        assert db_rows(settings, "SELECT status FROM turns WHERE id = ?", (turn_id,)) == [
            ("queued",)]

        owner = await discord_fake.click(b, progress.id, cancel_id)
        ack = await answer(discord_fake, owner)
        await discord_fake.wait_for(
            lambda: "Cancelled." in discord_fake.message(progress.id).content, 5,
            what="the progress message to say Cancelled",
        )
        openai_fake.latency = 0.05
        await wait_results(discord_fake, t1, 1)

    assert denied.ephemeral
    assert denied.content == refusal(ErrorKind.not_allowed, reason="not_author")
    assert ack.ephemeral and ack.content == t("ack.cancelled")
    status = db_rows(settings, "SELECT status, error_kind FROM turns WHERE id = ?", (turn_id,))
    assert status == [("cancelled", "cancelled")]
    assert [prompt_of(r) for r in openai_fake.create_requests()] == ["first"]
    # the message offers a Reroll instead of Cancel, and no image was posted in bob's thread
    assert not any(c.startswith("imagine:cancel:") for c in custom_ids(
        discord_fake.message(progress.id)))
    assert not any(m.attachments for m in bot_messages(discord_fake, t2))


# ------------------------------------------------------------------------- quotas and caps
async def test_daily_image_limit_says_which_limit_and_when_it_resets(
    discord_fake, openai_fake, make_settings
):
    settings = make_settings(user_daily_images=1)
    a = discord_fake.add_user("alice")
    admin = discord_fake.add_user("admin", permissions=["manage_guild"])
    vip_role = make_role(discord_fake, "vip")
    vip = discord_fake.add_user("vip", roles=[vip_role])
    async with running(settings):
        thread = await start_conversation(discord_fake, a, "one")
        await wait_results(discord_fake, thread, 1)
        second = await imagine(discord_fake, a, "two")
        refused = await answer(discord_fake, second, "Limit reached")
        # a reply in her own thread is refused the same way
        await discord_fake.say(a, thread, "and another")
        reply = await discord_fake.wait_for(
            lambda: next((m for m in bot_messages(discord_fake, thread)
                          if "Limit reached" in m.content), None), 5, what="a limit reply")

        saved = await settings_cmd(discord_fake, admin, "access", exempt_role=vip_role)
        v1 = await start_conversation(discord_fake, vip, "vip one")
        v2 = await start_conversation(discord_fake, vip, "vip two")
        await wait_results(discord_fake, v1, 1)
        await wait_results(discord_fake, v2, 1)

    for text in (refused.content, reply.content):
        assert "Limit reached: 1 image per person per day." in text
        match = re.search(r"<t:(\d+):R>", text)
        assert match and int(match.group(1)) == next_utc_midnight()
    assert t("settings.saved") in saved and f"<@&{vip_role}>" in saved
    prompts = [prompt_of(r) for r in openai_fake.create_requests()]
    assert prompts == ["one", "vip one", "vip two"]


async def test_server_spend_cap_set_by_a_manager(discord_fake, openai_fake, make_settings):
    settings = make_settings(price_table=PRICES)
    admin = discord_fake.add_user("admin", permissions=["manage_guild"])
    a, b = discord_fake.add_user("alice"), discord_fake.add_user("bob")
    rich_role = make_role(discord_fake, "patron")
    patron = discord_fake.add_user("patron", roles=[rich_role])
    async with running(settings):
        saved = await settings_cmd(discord_fake, admin, "limits", daily_spend_usd=9)
        await settings_cmd(discord_fake, admin, "access", exempt_role=rich_role)
        thread = await start_conversation(discord_fake, a, "expensive")
        await wait_results(discord_fake, thread, 1)
        refused = await answer(discord_fake, await imagine(discord_fake, b, "one more"),
                               "Limit reached")
        allowed = await start_conversation(discord_fake, patron, "exempt")
        await wait_results(discord_fake, allowed, 1)

    assert "Daily budget (USD): 9" in saved
    stored = json.loads(db_rows(settings, "SELECT settings FROM guild_settings")[0][0])
    assert stored["daily_spend_usd"] == 9
    # A turn reserves its worst case (README "Reservations"): with PRICES, at the default options
    # (quality auto -> high, size auto -> 1536x1024 = 6240 image tokens, 2 previews x 100) plus
    # 4000 context tokens + the prompt's characters in, to the mainline and the image model, and
    # 2000 mainline tokens out:
    first = (4009 * 100.0 + 2000 * 400.0 + 4009 * 100.0 + (6240 + 200) * 1000.0) / 1e6
    second = (4008 * 100.0 + 2000 * 400.0 + 4008 * 100.0 + (6240 + 200) * 1000.0) / 1e6
    cost = db_rows(settings, "SELECT cost_usd FROM turns WHERE prompt = 'expensive'")[0][0]
    assert first <= 9 < cost + second  # the first fitted; the second would not have
    assert "this server's daily budget ($9.00)" in refused.content
    match = re.search(r"<t:(\d+):R>", refused.content)
    assert match and int(match.group(1)) == next_utc_midnight()
    assert [prompt_of(r) for r in openai_fake.create_requests()] == ["expensive", "exempt"]


# ------------------------------------------------------------------------------------ access
async def test_only_allowed_channel(discord_fake, openai_fake, make_settings):
    settings = make_settings()
    admin = discord_fake.add_user("admin", permissions=["manage_guild"])
    a = discord_fake.add_user("alice")
    async with running(settings):
        await settings_cmd(discord_fake, admin, "access", channel=discord_fake.text_channel_id)
        threads_before = set(discord_fake.threads)
        elsewhere = await imagine(discord_fake, a, "in random", discord_fake.other_channel_id)
        refused = await answer(discord_fake, elsewhere)
        thread = await start_conversation(discord_fake, a, "in general")
        await wait_results(discord_fake, thread, 1)
        # a refine in a thread of the allowed channel works too
        await discord_fake.say(a, thread, "make it blue")
        await wait_results(discord_fake, thread, 2)

    assert refused.ephemeral
    assert refused.content == refusal(ErrorKind.not_allowed, reason="channel")
    assert set(discord_fake.threads) - threads_before == {thread}  # no thread in #random
    assert not bot_messages(discord_fake, discord_fake.other_channel_id)
    assert [prompt_of(r) for r in openai_fake.create_requests()] == ["in general", "make it blue"]


async def test_allowed_role_and_blocked_user(discord_fake, openai_fake, make_settings):
    settings = make_settings()
    admin = discord_fake.add_user("admin", permissions=["manage_guild"])
    artists = make_role(discord_fake, "artists")
    painter = discord_fake.add_user("painter", roles=[artists])
    troll = discord_fake.add_user("troll", roles=[artists])
    outsider = discord_fake.add_user("outsider")
    async with running(settings):
        await settings_cmd(discord_fake, admin, "access", role=artists)
        await settings_cmd(discord_fake, admin, "access", blocked_user=troll)
        no_role = await answer(discord_fake, await imagine(discord_fake, outsider, "hi"))
        blocked = await answer(discord_fake, await imagine(discord_fake, troll, "hi"))
        thread = await start_conversation(discord_fake, painter, "a painting")
        await wait_results(discord_fake, thread, 1)
        # a blocked member's reply in someone else's thread is refused as well
        await discord_fake.say(troll, thread, "make it ugly")
        reply = await discord_fake.wait_for(
            lambda: next((m for m in bot_messages(discord_fake, thread)
                          if m.content == refusal(ErrorKind.not_allowed, reason="blocked")),
                         None), 5, what="the blocked reply")
        # removing the block lets them in again
        await settings_cmd(discord_fake, admin, "access", mode="remove", blocked_user=troll)
        again = await start_conversation(discord_fake, troll, "redeemed")
        await wait_results(discord_fake, again, 1)

    assert no_role.ephemeral and no_role.content == refusal(ErrorKind.not_allowed, reason="role")
    assert blocked.ephemeral and blocked.content == refusal(ErrorKind.not_allowed,
                                                            reason="blocked")
    assert reply is not None
    assert [prompt_of(r) for r in openai_fake.create_requests()] == ["a painting", "redeemed"]


async def test_refine_mode_starter(discord_fake, openai_fake, make_settings):
    settings = make_settings()
    admin = discord_fake.add_user("admin", permissions=["manage_guild"])
    a, b = discord_fake.add_user("alice"), discord_fake.add_user("bob")
    async with running(settings):
        saved = await settings_cmd(discord_fake, admin, "access", refine="starter")
        thread = await start_conversation(discord_fake, a, "a castle")
        await wait_results(discord_fake, thread, 1)
        await discord_fake.say(b, thread, "add a dragon")
        starter_only = refusal(ErrorKind.not_allowed, reason="starter_only")
        await discord_fake.wait_for(
            lambda: any(m.content == starter_only for m in bot_messages(discord_fake, thread)),
            5, what="the starter-only reply")
        await discord_fake.say(a, thread, "add a moat")
        await wait_results(discord_fake, thread, 2)
        # a manager (moderator) may refine anyway
        await discord_fake.say(admin, thread, "add a flag")
        await wait_results(discord_fake, thread, 3)

    assert "Who may refine: only the starter and moderators" in saved
    assert [prompt_of(r) for r in openai_fake.create_requests()] == [
        "a castle", "add a moat", "add a flag"]


async def test_settings_need_manage_server(discord_fake, openai_fake, make_settings):
    settings = make_settings()
    member = discord_fake.add_user("member")
    async with running(settings):
        # by default Discord does not even show the command to members without Manage Server
        with pytest.raises(FakeDiscordError, match="cannot see"):
            await discord_fake.slash(member, discord_fake.text_channel_id,
                                     "imagine-settings limits", {"user_daily_images": 1})
        # a server can override that in its integration settings; the bot still refuses
        for command in discord_fake.commands[None]:
            if command["name"] == "imagine-settings":
                command["default_member_permissions"] = None
        inter = await discord_fake.slash(member, discord_fake.text_channel_id,
                                         "imagine-settings limits", {"user_daily_images": 1})
        refused = await answer(discord_fake, inter)
        await quiet(discord_fake, openai_fake)  # anything else the bot might (wrongly) still send

    assert refused.ephemeral
    assert refused.content == refusal(ErrorKind.not_allowed, reason="manage_guild")
    assert [m.content for m in inter.messages()] == [refused.content]  # nothing more
    assert db_rows(settings, "SELECT * FROM guild_settings") == []


# ------------------------------------------------------------------------------ usage and cost
async def test_usage_for_members_and_managers_and_recorded_cost(
    discord_fake, openai_fake, make_settings
):
    settings = make_settings(price_table=PRICES, user_daily_images=5)
    a = discord_fake.add_user("alice")
    admin = discord_fake.add_user("admin", permissions=["manage_guild"])
    async with running(settings):
        thread = await start_conversation(discord_fake, a, "a lighthouse", quality="low")
        await wait_results(discord_fake, thread, 1)
        await discord_fake.say(a, thread, "at dusk")
        await wait_results(discord_fake, thread, 2)
        other = await start_conversation(discord_fake, admin, "a harbour", quality="low")
        await wait_results(discord_fake, other, 1)
        mine = await answer(discord_fake, await discord_fake.slash(
            a, discord_fake.text_channel_id, "usage"))
        managed = await answer(discord_fake, await discord_fake.slash(
            admin, discord_fake.text_channel_id, "usage"))

    # what was recorded: the API's own usage numbers, priced with the price table
    rows = db_rows(settings, "SELECT prompt, response_id, usage, cost_usd, image_count, author_id "
                             "FROM turns ORDER BY id")
    assert len(rows) == 3
    for prompt, response_id, usage_json, cost, images, _ in rows:
        response = openai_fake.responses[response_id]
        image_gen = response["tool_usage"]["image_gen"]
        expected = {
            "text_input": response["usage"]["input_tokens"],
            "text_output": response["usage"]["output_tokens"],
            "tool_text_input": image_gen["input_tokens_details"]["text_tokens"],
            "image_input": image_gen["input_tokens_details"]["image_tokens"],
            "image_output": image_gen["output_tokens_details"]["image_tokens"],
        }
        assert json.loads(usage_json) == expected, prompt
        assert expected["image_output"] > 0
        # PRICES' "default" prices every model, per 1M: text in $100 (mainline and image model)
        assert cost == pytest.approx(((expected["text_input"] + expected["tool_text_input"]) * 100
                                      + expected["text_output"] * 400 + expected["image_input"]
                                      * 200 + expected["image_output"] * 1000) / 1e6)
        assert images == 1
    alice_cost = sum(r[3] for r in rows if r[5] == int(a["id"]))
    total = sum(r[3] for r in rows)

    assert mine.ephemeral and not mine.attachments
    assert f"You: today 2 images (${alice_cost:.2f})" in mine.content
    assert (f"Limits: 5 images per day, 3 left, resets <t:{next_utc_midnight()}:R>."
            in mine.content)
    assert "Server:" not in mine.content and "Top this month" not in mine.content

    assert managed.ephemeral
    assert "You: today 1 image (" in managed.content
    assert f"Server: today 3 images (${total:.2f})" in managed.content
    top = re.search(r"Top this month: (.*)", managed.content)
    assert top and top.group(1).startswith(f"<@{a['id']}> 2 (${alice_cost:.2f})")
    assert f"<@{admin['id']}> 1" in top.group(1)
    [chart] = managed.attachments
    assert chart.filename.endswith(".png")
    image = Image.open(io.BytesIO(chart.data))
    assert image.format == "PNG" and image.size == (900, 360)
    # today's bar is drawn in the bar colour near the right edge of the plot
    assert image.convert("RGB").getpixel((900 - 70 - 10, 360 - 50 - 3)) == (0x58, 0x65, 0xF2)


# ---------------------------------------------------------------------------- two languages
_NAME = re.compile(r"^[-_'\w]{1,32}$")  # Discord's rule for (localized) names, any script


def _walk_localizations(
    node: dict[str, Any], path: str, problems: list[str], *, top: bool = True
) -> None:
    """Every name and description of a command, its options and choices, has a valid zh-CN text."""
    names = node.get("name_localizations") or {}
    descriptions = node.get("description_localizations") or {}
    zh_name = names.get("zh-CN")
    context_menu = top and node.get("type") in (2, 3)
    if not zh_name or not _NAME.match(zh_name) or (zh_name != zh_name.lower() and not context_menu):
        problems.append(f"{path}: name {zh_name!r}")
    zh_description = descriptions.get("zh-CN")
    # user/message commands (type 2/3, no options) have no description and free-form names
    if not context_menu and (not zh_description or not 1 <= len(zh_description) <= 100):
        problems.append(f"{path}: description {zh_description!r}")
    for option in node.get("options") or []:
        _walk_localizations(option, f"{path} {option['name']}", problems, top=False)
    for choice in node.get("choices") or []:
        translated = (choice.get("name_localizations") or {}).get("zh-CN")
        if choice["name"] != choice["value"] and not translated:  # formats need no translation
            problems.append(f"{path} choice {choice['name']!r}")


async def test_a_chinese_member_reads_chinese(discord_fake, openai_fake, make_settings):
    settings = make_settings(user_daily_images=1)
    admin = discord_fake.add_user("admin", permissions=["manage_guild"])
    li = discord_fake.add_user("li", locale="zh-CN")
    async with running(settings):
        await settings_cmd(discord_fake, admin, "access", channel=discord_fake.text_channel_id)
        wrong_channel = await answer(discord_fake, await imagine(
            discord_fake, li, "一只猫", discord_fake.other_channel_id))
        bad_size = await answer(discord_fake, await imagine(
            discord_fake, li, "一只猫", size="100x100"))
        start = await imagine(discord_fake, li, "一只猫")
        started = await answer(discord_fake, start, "🧵")
        thread = next(iter(discord_fake.threads))
        [result] = await wait_results(discord_fake, thread, 1)
        limit = await answer(discord_fake, await imagine(discord_fake, li, "两只猫"), "已达到上限")
        usage = await answer(discord_fake, await discord_fake.slash(
            li, discord_fake.text_channel_id, "usage"))
        # a settings refusal for a member of another language (after a server override)
        for command in discord_fake.commands[None]:
            if command["name"] == "imagine-settings":
                command["default_member_permissions"] = None
        settings_refused = await answer(discord_fake, await discord_fake.slash(
            li, discord_fake.text_channel_id, "imagine-settings show"))

    assert wrong_channel.ephemeral and wrong_channel.content == "此频道未开启图片生成。"
    assert bad_size.ephemeral and "尺寸 `100x100`" in bad_size.content
    assert started.content.startswith("🧵 已开始对话")
    assert f"来自 <@{li['id']}>" in result.content
    assert any("排队中" in h or "生成中" in h for h in history(result))
    assert "已达到上限：每人每天 1 张图片。" in limit.content
    assert re.search(r"<t:\d+:R> 重置", limit.content)
    assert usage.ephemeral and usage.content.startswith("**图片用量**")
    assert "你：今天 1 张图片" in usage.content and "限制：每天 1 张图片，还剩 0 张" in usage.content
    assert settings_refused.ephemeral and settings_refused.content == "你需要“管理服务器”权限才能这样做。"
    # nothing a Chinese member read fell back to English
    for text in (wrong_channel.content, bad_size.content, limit.content, usage.content):
        assert not re.search(r"\b(the|you|your|this|is)\b", text, re.IGNORECASE), text

    # the commands were synced with Simplified Chinese names and descriptions
    commands = {c["name"]: c for c in discord_fake.commands[None]}
    assert commands["imagine"]["name_localizations"]["zh-CN"] == "画图"
    assert commands["imagine"]["description_localizations"]["zh-CN"] == "生成图片并开启一个对话子区"
    assert commands["imagine-settings"]["name_localizations"]["zh-CN"] == "画图设置"
    assert commands["usage"]["name_localizations"]["zh-CN"] == "用量"
    assert commands["refine"]["name_localizations"]["zh-CN"] == "修改"
    problems: list[str] = []
    for name, command in commands.items():
        _walk_localizations(command, name, problems)
    assert problems == []


# ------------------------------------------------------------------- known bugs (see reports)
async def test_the_server_language_applies_to_thread_replies(
    discord_fake, openai_fake, make_settings
):
    settings = make_settings()
    admin = discord_fake.add_user("admin", permissions=["manage_guild"])
    li = discord_fake.add_user("li", locale="zh-CN")
    async with running(settings):
        await settings_cmd(discord_fake, admin, "limits", language="zh-CN")
        thread = await start_conversation(discord_fake, li, "一只猫")
        await wait_results(discord_fake, thread, 1)
        await discord_fake.say(li, thread, "加一顶帽子")  # a message carries no user locale
        results = await wait_results(discord_fake, thread, 2)
    assert f"来自 <@{li['id']}>" in results[1].content


async def test_a_limit_refusal_opens_no_thread(discord_fake, openai_fake, make_settings):
    settings = make_settings(user_daily_images=1)
    a = discord_fake.add_user("alice")
    async with running(settings):
        thread = await start_conversation(discord_fake, a, "one")
        await wait_results(discord_fake, thread, 1)
        before = set(discord_fake.threads)
        refused = await answer(discord_fake, await imagine(discord_fake, a, "two"), "Limit")
    assert set(discord_fake.threads) == before
    assert refused.ephemeral


async def test_server_size_ceiling_is_bounded_by_the_instance(
    discord_fake, openai_fake, make_settings
):
    """The server may lower the instance's size ceiling, never raise it; a refusal is private
    and costs nothing."""
    settings = make_settings(max_size="2048x2048")
    admin = discord_fake.add_user("admin", permissions=["manage_guild"])
    member = discord_fake.add_user("member")
    async with running(settings):
        text = await settings_cmd(discord_fake, admin, "limits", max_size="1536x1024")
        assert "Largest size: 1536x1024" in text
        refused = await answer(discord_fake, await imagine(discord_fake, member, "wide",
                                                           size="1536x1536"), "pixels")
        assert refused.ephemeral and "1536x1024" in refused.content
        ok = await imagine(discord_fake, member, "fits", size="1024x1536")
        await answer(discord_fake, ok, "Started a conversation")
        await settings_cmd(discord_fake, admin, "limits", max_size="3840x2160")
        refused = await answer(discord_fake, await imagine(discord_fake, member, "huge",
                                                           size="3840x2160"), "pixels")
        assert "2048x2048" in refused.content  # the instance's ceiling still applies
    sizes = [r["tools"][0]["size"] for r in openai_fake.create_requests()]
    assert sizes == ["1024x1536"]
