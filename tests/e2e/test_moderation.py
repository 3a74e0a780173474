"""Moderating a community end to end through both fakes: the moderation log (every finished turn,
settings and key changes, moderators' actions; never a ping; switched off with one note to the
owner when the channel is gone or closed to the bot, and never in the way of a result), members'
reports (folded per image, anonymous but to moderators, acted on only with Manage Messages), and
the quick actions (delete one image, delete a member's images in a conversation, block a member
for a while: their unfinished turns are cancelled and nothing more is billed)."""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

import pytest

from bot.ui.i18n import t
from tests.e2e.harness import (
    answer,
    image_attachments,
    quiet,
    running,
    start_conversation,
    turn_rows,
    wait_results,
)
from tests.fakes.discord_server import FakeDiscord, FakeDiscordError, FakeMessage
from tests.fakes.openai_server import Fault

pytestmark = pytest.mark.both_backends


# ------------------------------------------------------------------------------------ helpers
def db(settings: Any, sql: str) -> list[dict[str, Any]]:
    """Rows as an operator reads them, on either backend."""
    if settings.database_url is not None:
        from tests.pg import query

        return query(settings.database_url.get_secret_value(), sql)
    conn = sqlite3.connect(settings.database_path, timeout=10)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(sql)]
    finally:
        conn.close()


def guild_settings(settings: Any) -> dict[str, Any]:
    rows = db(settings, "SELECT settings FROM guild_settings")
    return json.loads(rows[0]["settings"]) if rows else {}


def log_channel_in_db(settings: Any) -> int | None:
    rows = db(settings, "SELECT log_channel_id FROM moderation_settings")
    return rows[0]["log_channel_id"] if rows else None


def entries(fake: FakeDiscord, channel_id: int) -> list[FakeMessage]:
    return [m for m in fake.messages(channel_id) if m.author_id == fake.bot_id and not m.deleted]


def embed_text(message: FakeMessage) -> str:
    """Everything an entry's embeds show, as one text."""
    parts = []
    for e in message.embeds:
        parts += [e.get("title") or "", e.get("description") or "",
                  (e.get("footer") or {}).get("text") or ""]
        parts += [f"{f['name']}: {f['value']}" for f in e.get("fields") or []]
    return "\n".join(p for p in parts if p)


def owner_dms(fake: FakeDiscord) -> list[FakeMessage]:
    return [m for m in fake.messages(fake.dm_channel(fake.owner)) if m.author_id == fake.bot_id]


async def set_log(fake: FakeDiscord, admin: Any, channel_id: int | None, **kw: Any) -> str:
    options = {"channel": channel_id} if channel_id is not None else {}
    inter = await fake.slash(admin, fake.text_channel_id, "imagine-settings log", options, **kw)
    reply = await answer(fake, inter)
    assert reply.ephemeral
    return reply.content


def never_pings(message: FakeMessage) -> bool:
    return message.notified == [] and (message.allowed_mentions or {}).get("parse") == []


async def wait_entries(fake: FakeDiscord, channel_id: int, count: int,
                       timeout: float = 10.0) -> list[FakeMessage]:
    return await fake.wait_for(
        lambda: (e if len(e := entries(fake, channel_id)) >= count else None), timeout,
        what=f"{count} entries in the log channel")


def community(fake: FakeDiscord) -> tuple[dict[str, Any], dict[str, Any], int]:
    """A manager, a moderator (Manage Messages) and a moderators-only log channel."""
    admin = fake.add_user("admin", permissions=["manage_guild"])
    mod = fake.add_user("mod", permissions=["manage_messages"])
    return admin, mod, fake.add_channel("mod-log")


# ------------------------------------------------------------------------------------ the log
async def test_every_finished_turn_is_logged_once_without_a_ping(
    discord_fake, openai_fake, make_settings
):
    settings = make_settings()
    admin, _, log_id = community(discord_fake)
    alice = discord_fake.add_user("alice")
    async with running(settings):
        said = await set_log(discord_fake, admin, log_id)
        # (the fake's new channel is open to @everyone: reporters' names would show there)
        assert said == t("modlog.on", channel=log_id) + "\n" + t("modlog.public")
        thread = await start_conversation(discord_fake, alice, "a red fox in the snow")
        [result] = await wait_results(discord_fake, thread, 1)
        await wait_entries(discord_fake, log_id, 2)
        openai_fake.add_fault(Fault.moderation("item", categories=("violence",)))
        blocked = await start_conversation(discord_fake, alice, "a battle " + "x" * 500)
        await wait_entries(discord_fake, log_id, 3)
        await quiet(discord_fake, openai_fake)
    started, done, failed = entries(discord_fake, log_id)
    assert f"<@{admin['id']}> started the moderation log" in embed_text(started)
    rows = turn_rows(settings)
    text = embed_text(done)
    assert "🖼️ Image #1" in text and "a red fox in the snow" in text
    assert f"Author: <@{alice['id']}>" in text and f"Cost: ${rows[0]['cost_usd']:.4f}" in text
    assert f"/{thread}/{result.id}" in text  # the link to the result
    assert done.embeds[0]["thumbnail"]["url"] == image_attachments(result)[0].url
    assert {"modq:del:1", "modq:delall:1", "modb:1"} <= set(_all_ids(done))
    text = embed_text(failed)
    assert "⚠️ Image #1 failed" in text and "(category: violence)" in text
    assert str(blocked) in text and "x" * 200 in text and "x" * 400 not in text  # clipped
    assert all(never_pings(m) for m in (started, done, failed))


def _all_ids(message: FakeMessage) -> list[str]:
    return [c["custom_id"] for c in FakeDiscord.walk_components(message.components)
            if "custom_id" in c]


async def test_settings_key_and_moderator_deletions_are_logged_in_the_servers_language(
    discord_fake, openai_fake, make_settings
):
    settings = make_settings(key_encryption_secret="k" * 32)
    admin, mod, log_id = community(discord_fake)
    alice = discord_fake.add_user("alice")
    async with running(settings):
        await set_log(discord_fake, admin, log_id)
        inter = await discord_fake.slash(admin, discord_fake.text_channel_id,
                                         "imagine-settings limits", {"language": "zh-CN",
                                                                     "user_daily_images": 5})
        await answer(discord_fake, inter)
        await wait_entries(discord_fake, log_id, 2)  # (entries are posted in the background)
        inter = await discord_fake.slash(admin, discord_fake.text_channel_id,
                                         "imagine-settings key", {"action": "remove"})
        await answer(discord_fake, inter)
        await wait_entries(discord_fake, log_id, 3)
        other = discord_fake.other_channel_id
        inter = await discord_fake.slash(admin, discord_fake.text_channel_id,
                                         "imagine-settings channel-rules",
                                         {"channel": other, "previews": "off"})
        await answer(discord_fake, inter)
        await wait_entries(discord_fake, log_id, 4)
        thread = await start_conversation(discord_fake, alice, "a lighthouse")
        [result] = await wait_results(discord_fake, thread, 1)
        await wait_entries(discord_fake, log_id, 5)  # the image's own entry
        await discord_fake.click(mod, result.id, f"imagine:delete:{turn_rows(settings)[0]['id']}")
        await discord_fake.wait_for(lambda: result.deleted)
        logged = await wait_entries(discord_fake, log_id, 6)
        await quiet(discord_fake, openai_fake)
    texts = [embed_text(m) for m in logged]
    daily = t("setting.user_daily_images", "zh-CN")
    assert f"<@{admin['id']}> 修改了设置" in texts[1] and f"{daily}: 5" in texts[1]
    assert texts[2] == f"🔑 <@{admin['id']}> 移除了本服务器自有的 OpenAI 密钥。"
    assert texts[3] == (f"⚙️ <@{admin['id']}> 修改了设置：\n<#{other}>: "
                        + t("rule.previews.off", "zh-CN"))
    assert "🖼️ 图片 #1" in texts[4] and "作者" in texts[4]
    assert texts[5] == f"🗑️ <@{mod['id']}> 删除了 <@{alice['id']}> 在 <#{thread}> 中的图片 #1。"
    assert all(never_pings(m) for m in logged)


@pytest.mark.parametrize(("loss", "why", "code"), [
    ("view_channel", "access", 50001), ("send_messages", "access", 50013),
    ("deleted-while-offline", "gone", 10003), ("deleted", "gone", None)])
async def test_a_lost_log_channel_is_switched_off_and_the_owner_told_once(
    discord_fake, openai_fake, make_settings, loss, why, code
):
    """Discord answers 50001 (no View Channel), 50013 (no Send Messages) or 10003 (deleted while
    the bot was away); a deletion it sees (CHANNEL_DELETE) needs no failed post. Both results
    are still delivered, the log is switched off, the owner gets one DM."""
    settings = make_settings()
    admin, _, log_id = community(discord_fake)
    alice, bob = discord_fake.add_user("alice"), discord_fake.add_user("bob")
    async with running(settings):
        await set_log(discord_fake, admin, log_id)
    if loss == "deleted-while-offline":
        await discord_fake.delete_channel(log_id)
    async with running(settings):
        if loss == "deleted":
            await discord_fake.delete_channel(log_id)
        elif loss != "deleted-while-offline":
            discord_fake.deny(log_id, loss)
        threads = [await start_conversation(discord_fake, u, "a kite") for u in (alice, bob)]
        for thread in threads:
            await wait_results(discord_fake, thread, 1)
        await discord_fake.wait_for(lambda: owner_dms(discord_fake), 10, what="the owner's DM")
        await quiet(discord_fake, openai_fake)
    [note] = owner_dms(discord_fake)
    assert note.content == t(f"modlog.off.{why}", channel=log_id,
                             server=discord_fake.guild_name)
    assert log_channel_in_db(settings) is None
    assert [r["status"] for r in turn_rows(settings)] == ["done", "done"]
    failed = [r for r in discord_fake.request_log if r.method == "POST" and r.status >= 400
              and r.path.endswith(f"/channels/{log_id}/messages")]
    # (the two entries may fail at once: the owner is still told once)
    assert {(r.response or {}).get("code") for r in failed} == ({code} if code else set())


async def test_setting_a_channel_the_bot_cannot_post_in_is_refused(
    discord_fake, openai_fake, make_settings
):
    settings = make_settings()
    admin, _, log_id = community(discord_fake)
    discord_fake.deny(log_id, "send_messages")
    async with running(settings):
        said = await set_log(discord_fake, admin, log_id)
    assert said == t("modlog.cannot.access", channel=log_id)
    assert log_channel_in_db(settings) is None and entries(discord_fake, log_id) == []


async def test_a_slow_or_failing_log_never_holds_back_a_result(
    discord_fake, openai_fake, make_settings, caplog
):
    settings = make_settings()
    admin, _, log_id = community(discord_fake)
    alice = discord_fake.add_user("alice")
    async with running(settings):
        await set_log(discord_fake, admin, log_id)
        release = discord_fake.hold_next("POST", rf"/channels/{log_id}/messages$")
        first = await start_conversation(discord_fake, alice, "a slow log")
        await wait_results(discord_fake, first, 1)  # while the entry's post is held
        await discord_fake.wait_for(lambda: statuses_are(settings, ["done"]), 10)
        assert len(entries(discord_fake, log_id)) == 1  # (still held)
        release.set()
        await wait_entries(discord_fake, log_id, 2)
        # a failure that is neither a lost channel nor retried (Invalid Form Body)
        discord_fake.fail_next("POST", rf"/channels/{log_id}/messages$", 400, code=50035)
        second = await start_conversation(discord_fake, alice, "a broken log")
        await wait_results(discord_fake, second, 1)
        await discord_fake.wait_for(
            lambda: "Could not post to the moderation log" in caplog.text, 15,
            what="the failure logged")
        await quiet(discord_fake, openai_fake)
    assert len(entries(discord_fake, log_id)) == 2 and log_channel_in_db(settings) == log_id
    assert owner_dms(discord_fake) == []  # a passing failure switches nothing off


# ------------------------------------------------------------------------------------ reports
async def test_reports_fold_into_one_entry_stay_anonymous_and_only_moderators_act(
    discord_fake, openai_fake, make_settings
):
    settings = make_settings()
    admin, mod, log_id = community(discord_fake)
    alice, bob, cat = (discord_fake.add_user(n) for n in ("alice", "bob", "cat"))
    async with running(settings):
        await set_log(discord_fake, admin, log_id)
        thread = await start_conversation(discord_fake, alice, "a questionable picture")
        [result] = await wait_results(discord_fake, thread, 1)
        await wait_entries(discord_fake, log_id, 2)
        # bob by the button, cat by Apps → Report image: two forms, two custom_ids
        by_button = await discord_fake.click(bob, result.id, "modr:report:1")
        by_menu = await discord_fake.message_command(cat, result.id, "Report image")
        thanks = await discord_fake.submit_modal(bob, by_button, {"reason": "gore"})
        assert (await answer(discord_fake, thanks)).content == t("report.thanks")
        report = (await wait_entries(discord_fake, log_id, 3))[2]
        thanks = await discord_fake.submit_modal(cat, by_menu, {"reason": "not for kids"})
        await answer(discord_fake, thanks)
        await discord_fake.wait_for(lambda: "reports: 2" in embed_text(report), 10,
                                    what="the entry folded to 2 reports")
        again = await discord_fake.submit_modal(
            bob, await discord_fake.click(bob, result.id, "modr:report:1"), {"reason": "again"})
        assert (await answer(discord_fake, again)).content == t("report.again")
        refused = await discord_fake.click(bob, report.id, _id(report, "modq:dismiss"))
        assert (await answer(discord_fake, refused)).content == t("reason.manage_messages")
        acted = await discord_fake.click(mod, report.id, _id(report, "modq:rblock"))
        await answer(discord_fake, acted, "blocked")
        await discord_fake.wait_for(lambda: not report.components, 10, what="the report closed")
        refused = await discord_fake.slash(alice, discord_fake.text_channel_id, "imagine",
                                           {"prompt": "again"})
        await answer(discord_fake, refused, "can't use the image bot")
        await quiet(discord_fake, openai_fake)
    assert by_button.modal["custom_id"] != by_menu.modal["custom_id"]
    assert len(entries(discord_fake, log_id)) == 5  # start, image, report, deletion, block
    text = embed_text(report)
    assert f"<@{bob['id']}>: gore" in text and f"<@{cat['id']}>: not for kids" in text
    assert "Image deleted" in text and never_pings(report)
    # nobody but moderators saw who reported: nothing in the thread or channel names them
    public = [m for c in (thread, discord_fake.text_channel_id) for m in discord_fake.messages(c)]
    assert not any(str(bob["id"]) in m.content + json.dumps(m.embeds) for m in public)
    assert result.deleted and turn_rows(settings)[0]["deleted"]
    assert int(alice["id"]) in guild_settings(settings)["blocked_users"]
    assert [r["status"] for r in db(settings, "SELECT status FROM reports")] == ["deleted"]


def statuses_are(settings: Any, expected: list[str]) -> list[dict[str, Any]] | None:
    rows = turn_rows(settings)
    return rows if [r["status"] for r in rows] == expected else None


def _id(message: FakeMessage, prefix: str) -> str:
    return next(c for c in _all_ids(message) if c.startswith(prefix))


async def test_without_a_log_a_report_goes_to_the_owner_who_can_dismiss_it(
    discord_fake, openai_fake, make_settings
):
    settings = make_settings()
    alice, bob = discord_fake.add_user("alice"), discord_fake.add_user("bob")
    async with running(settings):
        thread = await start_conversation(discord_fake, alice, "a cat")
        [result] = await wait_results(discord_fake, thread, 1)
        opened = await discord_fake.click(bob, result.id, "modr:report:1")
        await answer(discord_fake, await discord_fake.submit_modal(bob, opened, {"reason": "spam"}))
        [dm] = await discord_fake.wait_for(lambda: owner_dms(discord_fake) or None, 10)
        done = await discord_fake.click(discord_fake.owner, dm.id, _id(dm, "modq:dismiss"))
        assert (await answer(discord_fake, done)).content == t("mod.done.dismiss")
        await discord_fake.wait_for(lambda: not dm.components, 10, what="the report closed")
        helped = await answer(discord_fake, await discord_fake.slash(
            bob, discord_fake.text_channel_id, "help", {}))
    assert t("help.moderation") in helped.content  # /help tells members how to report
    assert dm.content.startswith("A member reported an image on **")
    assert f"<@{bob['id']}>: spam" in embed_text(dm) and "Dismissed" in embed_text(dm)
    assert not result.deleted
    assert [r["status"] for r in db(settings, "SELECT status FROM reports")] == ["dismissed"]


# ------------------------------------------------------------------------------ quick actions
async def test_delete_every_image_of_a_member_in_a_conversation_from_the_log(
    discord_fake, openai_fake, make_settings
):
    settings = make_settings()
    admin, mod, log_id = community(discord_fake)
    alice, bob = discord_fake.add_user("alice"), discord_fake.add_user("bob")
    async with running(settings):
        await set_log(discord_fake, admin, log_id)
        thread = await start_conversation(discord_fake, alice, "a tree")
        await wait_results(discord_fake, thread, 1)
        await discord_fake.say(bob, thread, "add a bird")
        await wait_results(discord_fake, thread, 2)
        await discord_fake.say(alice, thread, "add snow")
        kept = await wait_results(discord_fake, thread, 3)
        logged = await wait_entries(discord_fake, log_id, 4)
        with pytest.raises(FakeDiscordError):  # Apps → Moderate is for Manage Messages only
            await discord_fake.message_command(bob, kept[1].id, "Moderate")
        refused = await discord_fake.click(bob, logged[1].id, "modq:delall:1")
        assert (await answer(discord_fake, refused)).content == t("reason.manage_messages")
        done = await discord_fake.click(mod, logged[1].id, "modq:delall:1")
        assert (await answer(discord_fake, done)).content == t("mod.done.delall", count=2)
        note = (await wait_entries(discord_fake, log_id, 5))[4]
        await discord_fake.wait_for(lambda: _all_ids(logged[1]) == ["modb:1"], 5,
                                    what="the entry's deletion buttons gone")
        await quiet(discord_fake, openai_fake)
    assert [m.deleted for m in kept] == [True, False, True]
    assert [bool(r["deleted"]) for r in turn_rows(settings)] == [True, False, True]
    assert embed_text(note) == (f"🧹 <@{mod['id']}> deleted 2 image(s) of <@{alice['id']}> "
                                f"in <#{thread}>.")


async def test_blocking_from_a_result_cancels_the_members_turns_and_bills_nothing_more(
    discord_fake, openai_fake, make_settings
):
    """Apps → Moderate on a result, Block for 1 hour: the member's running turn is cancelled at
    the API (never billed), the queued one never reaches it, and they are refused until then."""
    settings = make_settings(per_user_concurrent=1)
    admin, mod, log_id = community(discord_fake)
    alice = discord_fake.add_user("alice")
    async with running(settings):
        await set_log(discord_fake, admin, log_id)
        thread = await start_conversation(discord_fake, alice, "a first one")
        [result] = await wait_results(discord_fake, thread, 1)
        openai_fake.latency = 5.0
        await discord_fake.say(alice, thread, "a slow second")
        await start_conversation(discord_fake, alice, "a waiting third")
        await discord_fake.wait_for(lambda: (r := statuses_are(
            settings, ["done", "running", "queued"])) and r[1]["response_id"], 10,
            what="the second turn running at the API, the third waiting")
        panel = await answer(discord_fake, await discord_fake.message_command(
            mod, result.id, "Moderate"))
        assert panel.ephemeral and "modb:1" in _all_ids(panel)
        before = time.time()
        chosen = await discord_fake.click(mod, panel.id, "modb:1", values=["1h"])
        said = await answer(discord_fake, chosen, "blocked")
        rows = await discord_fake.wait_for(lambda: statuses_are(
            settings, ["done", "cancelled", "cancelled"]), 10, what="two turns cancelled")
        response_id = rows[1]["response_id"]
        await discord_fake.wait_for(
            lambda: openai_fake.responses[response_id]["status"] == "cancelled", 5)
        refused = await discord_fake.slash(alice, discord_fake.text_channel_id, "imagine",
                                           {"prompt": "let me in"})
        await answer(discord_fake, refused, "can't use the image bot")
        await quiet(discord_fake, openai_fake)
    assert "2 unfinished image(s) of theirs cancelled" in said.content
    until = guild_settings(settings)["blocked_until"][str(alice["id"])]
    assert before + 3600 - 5 < until < time.time() + 3600
    assert [r["cost_usd"] for r in rows[1:]] == [0, 0]
    assert openai_fake.generations == 1 and len(openai_fake.create_requests()) == 2
    logged = [embed_text(m) for m in entries(discord_fake, log_id)]
    assert any(f"⛔ <@{mod['id']}> blocked <@{alice['id']}> from the bot (<t:{int(until)}:f>); "
               "2 unfinished image(s) cancelled." == text for text in logged)
    assert sum("cancelled" in text and "Image #" in text for text in logged) == 2



async def test_a_block_in_the_settings_also_stops_what_the_member_has_running(
    discord_fake, openai_fake, make_settings
):
    settings = make_settings()
    admin = discord_fake.add_user("admin", permissions=["manage_guild"])
    alice = discord_fake.add_user("alice")
    openai_fake.latency = 5.0
    async with running(settings):
        thread = await start_conversation(discord_fake, alice, "a slow one")
        await discord_fake.wait_for(lambda: (r := statuses_are(settings, ["running"]))
                                    and r[0]["response_id"], 10, what="the turn at the API")
        inter = await discord_fake.slash(admin, discord_fake.text_channel_id,
                                         "imagine-settings access", {"blocked_user": alice["id"]})
        await answer(discord_fake, inter)
        [row] = await discord_fake.wait_for(lambda: statuses_are(settings, ["cancelled"]), 10,
                                            what="the blocked member's turn cancelled")
        await discord_fake.wait_for(
            lambda: openai_fake.responses[row["response_id"]]["status"] == "cancelled", 5)
        await quiet(discord_fake, openai_fake)
    assert row["cost_usd"] == 0 and openai_fake.generations == 0
    assert image_attachments_in(discord_fake, thread) == []


def image_attachments_in(fake: FakeDiscord, channel_id: int) -> list[Any]:
    return [a for m in entries(fake, channel_id) for a in image_attachments(m)]


async def test_a_moderator_deletes_one_image_from_the_result(
    discord_fake, openai_fake, make_settings
):
    settings = make_settings()
    admin, mod, log_id = community(discord_fake)
    alice = discord_fake.add_user("alice")
    async with running(settings):
        await set_log(discord_fake, admin, log_id)
        thread = await start_conversation(discord_fake, alice, "a boat")
        [result] = await wait_results(discord_fake, thread, 1)
        await wait_entries(discord_fake, log_id, 2)
        panel = await answer(discord_fake, await discord_fake.message_command(
            mod, result.id, "Moderate", locale="zh-CN"))
        done = await discord_fake.click(mod, panel.id, "modq:del:1", locale="zh-CN")
        assert (await answer(discord_fake, done)).content == t("mod.done.del", "zh-CN")
        note = (await wait_entries(discord_fake, log_id, 3))[2]
        await quiet(discord_fake, openai_fake)
    assert panel.ephemeral and panel.content == t("mod.panel", "zh-CN", user=alice["id"])
    assert result.deleted and bool(turn_rows(settings)[0]["deleted"])
    assert embed_text(note) == f"🗑️ <@{mod['id']}> deleted image #1 of <@{alice['id']}> in <#{thread}>."
