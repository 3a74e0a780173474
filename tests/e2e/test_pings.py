"""The requester is notified exactly once per finished turn (unless they turned it off), and
messages addressed to a member follow the locale of their latest interaction."""

from __future__ import annotations

from tests.e2e.harness import (
    answer,
    quiet,
    running,
    start_conversation,
    turn_rows,
    wait_results,
)
from tests.fakes.openai_server import Fault


def notifications(fake, user_id: int) -> list:
    """Every message whose creation pinged `user_id` (edits ping nobody)."""
    return [m for m in fake.all_messages() if user_id in m.notified]


async def test_one_ping_per_result_as_a_reply_to_it(discord_fake, openai_fake, make_settings):
    alice = discord_fake.add_user("alice")
    uid = int(alice["id"])
    async with running(make_settings()):
        thread_id = await start_conversation(discord_fake, alice, "a paper boat")
        first = (await wait_results(discord_fake, thread_id, 1))[0]
        await discord_fake.wait_for(lambda: len(notifications(discord_fake, uid)) == 1, 10)
        await discord_fake.say(alice, thread_id, "on a puddle")
        second = (await wait_results(discord_fake, thread_id, 2))[1]
        await discord_fake.wait_for(lambda: len(notifications(discord_fake, uid)) == 2, 10)
        # a marker: anything sent after it was processed has been sent by now
        await answer(discord_fake, await discord_fake.slash(alice, discord_fake.text_channel_id, "help"))
    pings = notifications(discord_fake, uid)
    assert [p.message_reference["message_id"] for p in pings] == [str(first.id), str(second.id)]
    assert all(p.notified == [uid] and p.allowed_mentions["parse"] == [] for p in pings)
    assert all(p.content == f"<@{uid}> your image is ready." for p in pings)
    # the results themselves (edits of the progress message) notify nobody
    assert first.notified == [] and second.notified == []


async def test_no_ping_when_turned_off(discord_fake, openai_fake, make_settings):
    alice = discord_fake.add_user("alice")
    uid = int(alice["id"])
    channel = discord_fake.text_channel_id
    async with running(make_settings()):
        off = await answer(discord_fake, await discord_fake.slash(alice, channel, "imagine-prefs",
                                                                  {"ping": False}))
        assert "mention me when ready: off" in off.content
        thread_id = await start_conversation(discord_fake, alice, "a paper boat")
        await wait_results(discord_fake, thread_id, 1)
        await answer(discord_fake, await discord_fake.slash(alice, channel, "help"))
    assert notifications(discord_fake, uid) == []
    assert [r["status"] for r in turn_rows(make_settings().database_path)] == ["done"]


async def test_thread_replies_of_a_chinese_member_are_answered_in_chinese(
    discord_fake, openai_fake, make_settings
):
    li = discord_fake.add_user("li", locale="zh-CN")
    uid = int(li["id"])
    async with running(make_settings()):  # the server's language stays English
        thread_id = await start_conversation(discord_fake, li, "一只纸船")
        await wait_results(discord_fake, thread_id, 1)
        await discord_fake.say(li, thread_id, "放在水坑里")
        reply_result = (await wait_results(discord_fake, thread_id, 2))[1]
        openai_fake.add_fault(Fault.moderation("http"))
        await discord_fake.say(li, thread_id, "something blocked")
        failed = await discord_fake.wait_for(
            lambda: next((m for m in discord_fake.messages(thread_id) if "⚠️" in m.content), None),
            10, what="the failure message",
        )
        await discord_fake.wait_for(lambda: len(notifications(discord_fake, uid)) == 3, 10)
    assert "来自" in reply_result.content  # footer "by <@…>" in Chinese
    assert "安全系统" in failed.content
    pings = notifications(discord_fake, uid)
    assert [p.content for p in pings] == [
        f"<@{uid}> 你的图片好了。", f"<@{uid}> 你的图片好了。", f"<@{uid}> 你的图片没能生成（见上方）。",
    ]
    assert [r["locale"] for r in turn_rows(make_settings().database_path)] == ["zh-CN"] * 3


async def test_preferences_choose_defaults_within_the_servers_limits(
    discord_fake, openai_fake, make_settings
):
    alice = discord_fake.add_user("alice")
    channel = discord_fake.text_channel_id
    async with running(make_settings(max_quality="medium")):
        refused = await answer(discord_fake, await discord_fake.slash(
            alice, channel, "imagine-prefs", {"quality": "high"}))
        assert "medium" in refused.content and refused.ephemeral
        saved = await answer(discord_fake, await discord_fake.slash(
            alice, channel, "imagine-prefs", {"quality": "low", "size": "1536x1024", "previews": 0}))
        assert "Preferences saved" in saved.content
        thread_id = await start_conversation(discord_fake, alice, "a paper boat")
        await wait_results(discord_fake, thread_id, 1)
        thread2 = await start_conversation(discord_fake, alice, "a kite", quality="medium")
        await wait_results(discord_fake, thread2, 1)
    tools = [r["tools"][0] for r in openai_fake.create_requests()]
    assert (tools[0]["quality"], tools[0]["size"], tools[0]["partial_images"]) == ("low", "1536x1024", 0)
    assert (tools[1]["quality"], tools[1]["size"]) == ("medium", "1536x1024")  # a choice wins


async def test_the_ping_waits_out_a_discord_outage(discord_fake, openai_fake, make_settings):
    """Discord fails every message send in the thread (503) for a few seconds as the result is
    shown: the ping is sent again until Discord takes it, once."""
    alice = discord_fake.add_user("alice")
    uid = int(alice["id"])
    settings = make_settings(default_partial_images=0)
    openai_fake.latency = 1.0
    async with running(settings):
        thread_id = await start_conversation(discord_fake, alice, "a paper boat")
        await discord_fake.wait_for(
            lambda: (rows := turn_rows(settings)) and rows[0]["progress_message_id"], 10,
            what="the progress message")
        discord_fake.outage("POST", rf"/channels/{thread_id}/messages$", 4.0)
        [result] = await wait_results(discord_fake, thread_id, 1)
        await discord_fake.wait_for(lambda: notifications(discord_fake, uid), 20, what="the ping")
        await quiet(discord_fake, openai_fake)
    [ping] = notifications(discord_fake, uid)
    assert ping.message_reference["message_id"] == str(result.id)
    assert any(r.method == "POST" and r.status == 503 and r.path.endswith(f"{thread_id}/messages")
               for r in discord_fake.request_log), "the outage never met the ping"
