"""The showcase, end to end through both fakes: a server names a forum or media channel; a
result's author (or a moderator) publishes it with Apps → Publish to showcase, picking tags from
the channel's own; the post carries the delivered image (no new generation), the prompt as its
title, credit without a ping and a link back; deleting the result removes the post, a moderator
can unpublish, and ⭐ reactions publish by themselves at the server's threshold. The fake Discord
enforces the forum and media channel rules (tags, REQUIRE_TAG, attachments, permissions)."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from tests.e2e.harness import answer, custom_ids, quiet, running, start_conversation, wait_results
from tests.fakes.discord_server import FakeDiscord, FakeInteraction, FakeMessage

MENU = "Publish to showcase"
pytestmark = pytest.mark.both_backends


def posts_in(fake: FakeDiscord, channel_id: int) -> list[dict[str, Any]]:
    return [t for t in fake.threads.values() if int(t["parent_id"]) == channel_id]


def showcase_rows(settings: Any) -> list[tuple[int, int, int]]:
    """(turn, post, published by) of every published result, as the store (either) keeps them."""
    sql = "SELECT turn_id, post_id, published_by FROM showcase_posts ORDER BY turn_id"
    if settings.database_url is not None:
        from tests.pg import query

        return [tuple(row.values()) for row in query(settings.database_url.get_secret_value(), sql)]
    with sqlite3.connect(settings.database_path) as db:
        return db.execute(sql).fetchall()


async def set_showcase(fake: FakeDiscord, admin: Any, **options: Any) -> str:
    inter = await fake.slash(admin, fake.text_channel_id, "imagine-settings showcase", options)
    return (await answer(fake, inter)).content


async def a_result(fake: FakeDiscord, user: Any, prompt: str) -> tuple[int, FakeMessage]:
    thread = await start_conversation(fake, user, prompt)
    [result] = await wait_results(fake, thread, 1)
    return thread, result


async def publish(fake: FakeDiscord, user: Any, picker: FakeMessage, channel_id: int,
                  done: str = "Published") -> dict[str, Any]:
    """Press Publish on the tag picker; the new post, once the picker says it is published."""
    await fake.click(user, picker.id, "showcase:publish")
    await fake.wait_for(lambda: done in fake.message(picker.id).content, 5,
                        what="the picker saying it is published")
    [post] = posts_in(fake, channel_id)[-1:]
    return post


async def click_answer(fake: FakeDiscord, user: Any, message: FakeMessage, custom_id: str,
                       expect: str = "", **kwargs: Any) -> FakeMessage:
    inter: FakeInteraction = await fake.click(user, message.id, custom_id, **kwargs)
    return await answer(fake, inter, expect)


async def test_the_author_publishes_with_a_tag_and_the_post_reposts_the_image(
    discord_fake, openai_fake, make_settings
):
    admin = discord_fake.add_user("admin", permissions=["manage_guild"])
    alice, bob = discord_fake.add_user("alice"), discord_fake.add_user("bob")
    forum = discord_fake.forum_channel_id
    discord_fake.require_forum_tags(forum)
    art, photo = (tag["id"] for tag in discord_fake.channels[forum]["available_tags"])
    settings = make_settings()
    prompt = "a red fox sleeping in deep snow under a pine tree at dawn, " * 3  # over 100 chars
    async with running(settings):
        saved = await set_showcase(discord_fake, admin, channel=forum)
        assert f"Showcase: <#{forum}>" in saved
        thread, result = await a_result(discord_fake, alice, prompt)
        generations = len(openai_fake.create_requests())

        refused = await discord_fake.message_command(bob, result.id, MENU)
        assert (await answer(discord_fake, refused)).content == \
            "Only the person who asked for this image (or a moderator) can do that."

        picker = await answer(discord_fake, await discord_fake.message_command(alice, result.id, MENU))
        assert picker.ephemeral and "Pick 1 to 2 tags (this showcase requires one)" in picker.content
        assert custom_ids(picker) == ["showcase:tags", "showcase:publish"]
        untagged = await click_answer(discord_fake, alice, picker, "showcase:publish")
        assert untagged.content == "This showcase requires a tag: pick at least one first."
        assert posts_in(discord_fake, forum) == []

        await discord_fake.click(alice, picker.id, "showcase:tags", values=[photo])
        await discord_fake.click(alice, picker.id, "showcase:publish")
        [post] = await discord_fake.wait_for(lambda: posts_in(discord_fake, forum) or None, 5,
                                             what="a post in the showcase")
        await discord_fake.wait_for(lambda: "Published" in discord_fake.message(picker.id).content,
                                    5, what="the picker saying Published")
        await quiet(discord_fake, openai_fake)

    assert discord_fake.message(picker.id).content == f"✅ Published: <#{post['id']}>"
    assert len(post["name"]) <= 100 and prompt.startswith(post["name"].rstrip("…"))
    assert post["applied_tags"] == [photo] and art not in post["applied_tags"]
    first = discord_fake.message(int(post["id"]))  # a forum post's first message has its id
    assert [a.data for a in first.attachments] == [a.data for a in result.attachments]
    assert f"<@{alice['id']}>" in first.content and first.notified == []
    assert f"/channels/{discord_fake.guild_id}/{thread}/{result.id}" in first.content
    assert len(openai_fake.create_requests()) == generations  # nothing generated again
    assert showcase_rows(settings) == [(1, int(post["id"]), int(alice["id"]))]


async def test_deleting_the_result_or_its_conversation_removes_the_post(
    discord_fake, openai_fake, make_settings
):
    admin = discord_fake.add_user("admin", permissions=["manage_guild"])
    alice = discord_fake.add_user("alice")
    forum = discord_fake.forum_channel_id
    discord_fake.grant(forum, "manage_threads")  # the bot may delete posts (threads)
    settings = make_settings()
    async with running(settings):
        await set_showcase(discord_fake, admin, channel=forum)
        _, result = await a_result(discord_fake, alice, "a lighthouse")
        picker = await answer(discord_fake, await discord_fake.message_command(alice, result.id, MENU))
        assert "Pick up to 2 tags" in picker.content  # optional: no REQUIRE_TAG
        post = await publish(discord_fake, alice, picker, forum)  # no tag picked
        assert post.get("applied_tags") == []
        again = await answer(discord_fake, await discord_fake.message_command(alice, result.id, MENU))
        assert again.content == f"Already in the showcase: <#{post['id']}>"

        await discord_fake.click(alice, result.id, next(c for c in custom_ids(result)
                                                          if c.startswith("imagine:delete:")))
        await discord_fake.wait_for(lambda: int(post["id"]) not in discord_fake.threads, 5,
                                    what="the post deleted with its result")

        # a conversation deleted (its thread) takes its posts along
        thread, result = await a_result(discord_fake, alice, "a harbour")
        picker = await answer(discord_fake, await discord_fake.message_command(alice, result.id, MENU))
        post = await publish(discord_fake, alice, picker, forum)
        await discord_fake.delete_channel(thread)
        await discord_fake.wait_for(lambda: int(post["id"]) not in discord_fake.threads, 5,
                                    what="the post deleted with its conversation")
        await quiet(discord_fake, openai_fake)
        assert showcase_rows(settings) == []

        # the showcase channel deleted: no showcase until a manager names one again
        await discord_fake.delete_channel(forum)
        await quiet(discord_fake, openai_fake)
        _, result = await a_result(discord_fake, alice, "a meadow")
        refused = await discord_fake.message_command(alice, result.id, MENU)
        assert (await answer(discord_fake, refused)).content.startswith(
            "This server has no showcase yet.")


async def test_a_moderator_unpublishes_and_without_manage_threads_the_image_goes(
    discord_fake, openai_fake, make_settings
):
    admin = discord_fake.add_user("admin", permissions=["manage_guild"])
    mod = discord_fake.add_user("mod", permissions=["manage_messages"])
    alice, bob = discord_fake.add_user("alice"), discord_fake.add_user("bob")
    forum = discord_fake.forum_channel_id
    settings = make_settings()
    async with running(settings):
        saved = await set_showcase(discord_fake, admin, channel=forum)
        assert "without **Manage Threads**" in saved
        _, result = await a_result(discord_fake, alice, "a castle")
        picker = await answer(discord_fake, await discord_fake.message_command(alice, result.id, MENU))
        post_id = int((await publish(discord_fake, alice, picker, forum))["id"])

        # on the post itself, Apps → Publish to showcase offers Unpublish
        offer = await answer(discord_fake, await discord_fake.message_command(mod, post_id, MENU))
        assert offer.content == f"Already in the showcase: <#{post_id}>"
        button = f"showcase:unpublish:{showcase_rows(settings)[0][0]}"
        assert custom_ids(offer) == [button]
        bob_offer = await answer(discord_fake, await discord_fake.message_command(bob, post_id, MENU))
        assert "Only the person who asked" in bob_offer.content  # bob may not even be offered it

        done = await click_answer(discord_fake, mod, offer, button, "Removed")
        assert done.content == "Removed from the showcase."
        # no Manage Threads: the post's thread stays, its image (the first message) is gone
        assert post_id in discord_fake.threads and discord_fake.message(post_id).deleted
        await quiet(discord_fake, openai_fake)
    assert showcase_rows(settings) == []


async def test_a_media_channel_showcase_and_permissions(discord_fake, openai_fake, make_settings):
    admin = discord_fake.add_user("admin", permissions=["manage_guild"])
    alice = discord_fake.add_user("alice", locale="zh-CN")
    media = discord_fake.add_channel("art", media=True)
    discord_fake.deny(media, "attach_files")
    settings = make_settings()
    async with running(settings):
        refused = await set_showcase(discord_fake, admin, channel=media)
        assert refused == f"I can't post in <#{media}>: I need the **Attach Files** permission there."
        show = await answer(discord_fake, await discord_fake.slash(
            admin, discord_fake.text_channel_id, "imagine-settings show", {}))
        assert "Showcase" not in show.content
        discord_fake.allow(media, "attach_files")
        await set_showcase(discord_fake, admin, channel=media)
        _, result = await a_result(discord_fake, alice, "一只猫")
        picker = await answer(discord_fake, await discord_fake.message_command(
            alice, result.id, MENU, locale="zh-CN"))
        assert picker.content.startswith(f"将发布到 <#{media}>。")
        await discord_fake.click(alice, picker.id, "showcase:publish", locale="zh-CN")
        [post] = await discord_fake.wait_for(lambda: posts_in(discord_fake, media) or None, 5,
                                             what="a post in the media channel")
        await discord_fake.wait_for(lambda: "已发布" in discord_fake.message(picker.id).content,
                                    5, what="the picker saying it is published")
        first = discord_fake.message(int(post["id"]))
        assert [a.data for a in first.attachments] == [a.data for a in result.attachments]
        assert post["name"] == "一只猫"


async def test_stars_publish_a_result_by_themselves(discord_fake, openai_fake, make_settings):
    """At 2 ⭐ (the author's own star does not count), with the first tag a REQUIRE_TAG forum
    accepts; once published, more stars change nothing."""
    admin = discord_fake.add_user("admin", permissions=["manage_guild"])
    alice, bob, cat, dan = (discord_fake.add_user(n) for n in ("alice", "bob", "cat", "dan"))
    forum = discord_fake.forum_channel_id
    discord_fake.require_forum_tags(forum)
    first_tag = discord_fake.channels[forum]["available_tags"][0]["id"]
    settings = make_settings()
    async with running(settings):
        await set_showcase(discord_fake, admin, channel=forum, stars=2)
        _, result = await a_result(discord_fake, alice, "a comet")
        await discord_fake.react(alice, result.id)
        await discord_fake.react(bob, result.id)
        await discord_fake.react(bob, result.id, "🔥")
        await quiet(discord_fake, openai_fake)
        assert posts_in(discord_fake, forum) == []

        await discord_fake.react(cat, result.id)
        [post] = await discord_fake.wait_for(lambda: posts_in(discord_fake, forum) or None, 5,
                                             what="a post published by stars")
        await discord_fake.react(dan, result.id)
        await quiet(discord_fake, openai_fake)
    assert len(posts_in(discord_fake, forum)) == 1
    assert post["applied_tags"] == [first_tag]
    assert showcase_rows(settings) == [(1, int(post["id"]), 0)]


def tag_options(fake: FakeDiscord, picker: FakeMessage) -> list[str]:
    select = next(c for c in fake.walk_components(picker.components)
                  if c.get("custom_id") == "showcase:tags")
    return [option["value"] for option in select["options"]]


async def test_moderated_tags_are_offered_to_moderators_when_the_bot_may_apply_them(
    discord_fake, openai_fake, make_settings
):
    admin = discord_fake.add_user("admin", permissions=["manage_guild"])
    mod = discord_fake.add_user("mod", permissions=["manage_messages"])
    alice = discord_fake.add_user("alice")
    forum = discord_fake.forum_channel_id
    staff_pick = discord_fake.add_forum_tag(forum, "staff pick", moderated=True)
    art, photo = (tag["id"] for tag in discord_fake.channels[forum]["available_tags"][:2])
    async with running(make_settings()):
        await set_showcase(discord_fake, admin, channel=forum)
        _, result = await a_result(discord_fake, alice, "a kite")
        mine = await answer(discord_fake, await discord_fake.message_command(alice, result.id, MENU))
        assert tag_options(discord_fake, mine) == [art, photo]
        theirs = await answer(discord_fake, await discord_fake.message_command(mod, result.id, MENU))
        assert tag_options(discord_fake, theirs) == [art, photo]  # the bot cannot apply it yet

        discord_fake.grant(forum, "manage_threads")
        await quiet(discord_fake, openai_fake)
        theirs = await answer(discord_fake, await discord_fake.message_command(mod, result.id, MENU))
        assert tag_options(discord_fake, theirs) == [art, photo, staff_pick]
        await discord_fake.click(mod, theirs.id, "showcase:tags", values=[staff_pick, art])
        post = await publish(discord_fake, mod, theirs, forum)
        assert post["applied_tags"] == [staff_pick, art]

        off = await set_showcase(discord_fake, admin, off=True)
        assert "Showcase" not in off
        refused = await discord_fake.message_command(alice, result.id, MENU)
        assert (await answer(discord_fake, refused)).content.startswith("This server has no showcase")
