"""A full image conversation through both fakes: branching, input images, options that stick,
live previews, the result buttons, chains that never break, and delivery edge cases."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from tests.e2e.harness import (
    answer,
    custom_ids,
    image_attachments,
    results,
    running,
    start_conversation,
    turn_rows,
    wait_results,
)
from tests.fakes.images import PHOTO_MARKER
from tests.fakes.openai_server import read_lineage

pytestmark = pytest.mark.both_backends


def png_bytes(size: tuple[int, int] = (64, 64), colour: str = "orange") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    return out.getvalue()


def lineage_of(message) -> list[str]:
    return read_lineage(image_attachments(message)[0].data)


def turns(settings) -> list[dict]:
    return turn_rows(settings)


async def test_reply_to_earlier_result_branches(discord_fake, openai_fake, make_settings):
    alice = discord_fake.add_user("alice")
    async with running(make_settings()):
        thread = await start_conversation(discord_fake, alice, "a castle")
        first = (await wait_results(discord_fake, thread, 1))[0]
        await discord_fake.say(alice, thread, "add a moat")
        await wait_results(discord_fake, thread, 2)
        await discord_fake.say(alice, thread, "make it winter", reply_to=first.id)
        messages = await wait_results(discord_fake, thread, 3)
    assert lineage_of(messages[2]) == ["a castle", "make it winter"]
    assert openai_fake.create_requests()[2]["previous_response_id"] == (
        openai_fake.create_requests()[1]["previous_response_id"]
    )


async def test_attachments_are_sent_as_data_urls(discord_fake, openai_fake, make_settings):
    alice = discord_fake.add_user("alice")
    async with running(make_settings()):
        before = set(discord_fake.threads)
        await discord_fake.slash(
            alice, discord_fake.text_channel_id, "imagine",
            {"prompt": "turn this into a painting", "action": "edit"},
            attachments={"image": ("photo.png", png_bytes(), "image/png")},
        )
        thread = await discord_fake.wait_for(lambda: next(iter(set(discord_fake.threads) - before), None))
        await wait_results(discord_fake, thread, 1)
        await discord_fake.say(alice, thread, "use this texture",
                               attachments=[("texture.png", png_bytes(colour="blue"), "image/png")])
        await wait_results(discord_fake, thread, 2)
    requests = openai_fake.create_requests()
    for request in requests:
        parts = request["input"][-1]["content"]
        images = [p for p in parts if p["type"] == "input_image"]
        assert len(images) == 1
        assert images[0]["image_url"].startswith("data:image/png;base64,")
    assert requests[0]["tools"][0]["action"] == "edit"


async def test_edit_without_image_is_refused_without_api_call(
    discord_fake, openai_fake, make_settings
):
    alice = discord_fake.add_user("alice")
    async with running(make_settings()):
        interaction = await discord_fake.slash(
            alice, discord_fake.text_channel_id, "imagine", {"prompt": "sharpen it", "action": "edit"}
        )
        reply = await answer(discord_fake, interaction, "no image to edit")
    assert reply.ephemeral and "Attach an image" in reply.content
    assert openai_fake.create_requests() == []


async def test_options_stick_to_the_thread_and_show_in_footer(
    discord_fake, openai_fake, make_settings
):
    alice = discord_fake.add_user("alice")
    async with running(make_settings()):
        thread = await start_conversation(
            discord_fake, alice, "a poster", size="1536x1024", quality="low", format="webp",
            compression=80,
        )
        await wait_results(discord_fake, thread, 1)
        await discord_fake.say(alice, thread, "bolder title")
        messages = await wait_results(discord_fake, thread, 2)
    tools = [r["tools"][0] for r in openai_fake.create_requests()]
    for tool in tools:
        assert tool["size"] == "1536x1024"
        assert tool["quality"] == "low"
        assert tool["output_format"] == "webp"
        assert tool["output_compression"] == 80
    assert "1536x1024 · low quality · webp" in messages[1].content
    image = Image.open(io.BytesIO(image_attachments(messages[1])[0].data))
    assert image.format == "WEBP" and image.size == (1536, 1024)


async def test_live_previews_then_result_in_the_same_message(
    discord_fake, openai_fake, make_settings
):
    openai_fake.latency = 0.6
    alice = discord_fake.add_user("alice")
    async with running(make_settings(progress_edit_interval=0.05)):
        thread = await start_conversation(discord_fake, alice, "a koi pond", previews=2)
        result = (await wait_results(discord_fake, thread, 1))[0]
    assert openai_fake.create_requests()[0]["tools"][0]["partial_images"] == 2
    history = [v.content for v in result.edits]
    assert any("Queued" in c for c in history)
    assert any("preview" in c for c in history)
    assert any(a.filename == "preview.jpg" for v in result.edits for a in v.attachments)
    # the final version replaced the preview: no progress text, no preview file, result buttons
    assert "Generating" not in result.content
    assert [a.filename for a in result.attachments] == ["imagine-1-1.png"]
    assert "imagine:reroll:1" in custom_ids(result)
    # exactly one bot message in the thread shows this turn
    assert len(results(discord_fake, thread)) == 1


async def test_several_images_and_model_text_are_all_shown(
    discord_fake, openai_fake, make_settings
):
    openai_fake.images_per_response = 3
    openai_fake.text_reply = "Here are three takes on it."
    alice = discord_fake.add_user("alice")
    async with running(make_settings()):
        thread = await start_conversation(discord_fake, alice, "three moods of a forest")
        message = (await wait_results(discord_fake, thread, 1))[0]
    assert len(image_attachments(message)) == 3
    assert "Here are three takes on it." in message.content


async def test_text_only_answer_is_shown(discord_fake, openai_fake, make_settings):
    from tests.fakes.openai_server import Fault

    openai_fake.add_fault(Fault.text_only("I can only describe that one."))
    alice = discord_fake.add_user("alice")
    async with running(make_settings()) as bot:
        thread = await start_conversation(discord_fake, alice, "something odd")
        text = await discord_fake.wait_for(lambda: next(
            (m.content for m in discord_fake.messages(thread)
             if "I can only describe that one." in m.content), None))
        await bot.runner.scheduler.wait_idle()
    assert text.startswith("> something odd")
    assert results(discord_fake, thread) == []  # no image attachment, and no error either
    assert turns(bot.settings)[0]["status"] == "done"


@pytest.mark.parametrize("same_member", [False, True], ids=["two-members", "one-member-twice"])
async def test_the_same_form_open_twice_makes_two_turns(
    discord_fake, openai_fake, make_settings, same_member
):
    """Alice and Bob (or Alice in two windows) open Refine on one result; both fill it in, the
    first opened is sent last: both submissions are answered and become turns."""
    alice = discord_fake.add_user("alice")
    bob = alice if same_member else discord_fake.add_user("bob")
    settings = make_settings(per_user_concurrent=2, per_user_queued=4)
    async with running(settings):
        thread = await start_conversation(discord_fake, alice, "a lighthouse")
        [first] = await wait_results(discord_fake, thread, 1)
        opened_by_alice = await discord_fake.click(alice, first.id, "imagine:refine:1")
        opened_by_bob = await discord_fake.click(bob, first.id, "imagine:refine:1")
        await discord_fake.submit_modal(bob, opened_by_bob, {"instruction": "paint it blue"})
        await wait_results(discord_fake, thread, 2, timeout=20)
        late = await discord_fake.submit_modal(alice, opened_by_alice,
                                               {"instruction": "paint it red"})
        shown = await wait_results(discord_fake, thread, 3, timeout=20)
    assert late.acked_at is not None
    assert sorted(lineage_of(m)[-1] for m in shown[1:]) == ["paint it blue", "paint it red"]
    rows = turns(settings)
    assert [(r["kind"], r["parent_id"]) for r in rows[1:]] == [("branch", 1), ("branch", 1)]
    assert sorted(r["author_id"] for r in rows[1:]) == sorted([int(alice["id"]), int(bob["id"])])


async def test_reroll_refine_continue_details_delete(discord_fake, openai_fake, make_settings):
    alice = discord_fake.add_user("alice")
    bob = discord_fake.add_user("bob")
    async with running(make_settings()) as bot:
        thread = await start_conversation(discord_fake, alice, "a lighthouse")
        first = (await wait_results(discord_fake, thread, 1))[0]
        await discord_fake.say(alice, thread, "add fog")
        second = (await wait_results(discord_fake, thread, 2))[1]

        # Reroll the second: a sibling (same parent, same prompt)
        await discord_fake.click(alice, second.id, "imagine:reroll:2")
        third = (await wait_results(discord_fake, thread, 3))[2]
        assert lineage_of(third) == ["a lighthouse", "add fog"]

        # Refine the FIRST through the modal: branches from it
        interaction = await discord_fake.click(alice, first.id, "imagine:refine:1")
        await discord_fake.submit_modal(alice, interaction, {"instruction": "paint it red"})
        fourth = (await wait_results(discord_fake, thread, 4))[3]
        assert lineage_of(fourth) == ["a lighthouse", "paint it red"]

        # Continue from the second: a plain reply now chains from it
        cont = await discord_fake.click(alice, second.id, "imagine:continue:2")
        await discord_fake.wait_for(lambda: cont.ephemeral_messages or cont.callbacks)
        await discord_fake.say(alice, thread, "add stars")
        fifth = (await wait_results(discord_fake, thread, 5))[4]
        assert lineage_of(fifth) == ["a lighthouse", "add fog", "add stars"]

        # Details: ephemeral, with prompt, ids and cost
        details = await discord_fake.click(bob, second.id, "imagine:details:2")
        embed = await discord_fake.wait_for(
            lambda: next((m.embeds[0] for m in details.ephemeral_messages if m.embeds), None)
            or next((c["data"]["embeds"][0] for c in details.callbacks
                     if c.get("data", {}).get("embeds")), None)
        )
        text = str(embed)
        assert "add fog" in text and "resp_" in text and "$" in text

        # Delete: bob may not, alice may; the chain of later turns is unaffected
        refused = await discord_fake.click(bob, second.id, "imagine:delete:2")
        refusal = await answer(discord_fake, refused, "Only the person who asked")
        assert refusal.ephemeral and not discord_fake.message(second.id).deleted
        ok = await discord_fake.click(alice, second.id, "imagine:delete:2")
        await discord_fake.wait_for(lambda: discord_fake.message(second.id).deleted)
        assert ok.callbacks
        await discord_fake.say(alice, thread, "and a moon")
        sixth = (await wait_results(discord_fake, thread, 5))[-1]
        await discord_fake.wait_for(lambda: lineage_of(results(discord_fake, thread)[-1])[-1]
                                    == "and a moon")
        sixth = results(discord_fake, thread)[-1]
        assert lineage_of(sixth) == ["a lighthouse", "add fog", "add stars", "and a moon"]
    rows = turns(bot.settings)
    assert rows[2]["parent_id"] == rows[1]["parent_id"] == 1 and rows[2]["kind"] == "reroll"
    assert rows[3]["parent_id"] == 1 and rows[3]["kind"] == "branch"
    assert rows[1]["deleted"] == 1


async def test_store_responses_false_carries_context_every_turn(
    discord_fake, openai_fake, make_settings
):
    alice = discord_fake.add_user("alice")
    async with running(make_settings(store_responses=False)):
        thread = await start_conversation(discord_fake, alice, "a teapot")
        await wait_results(discord_fake, thread, 1)
        await discord_fake.say(alice, thread, "make it glass")
        second = (await wait_results(discord_fake, thread, 2))[1]
    requests = openai_fake.create_requests()
    assert all(r["store"] is False and "background" not in r for r in requests)
    assert all("previous_response_id" not in r for r in requests)
    assert lineage_of(second) == ["a teapot", "make it glass"]


async def test_nitro_users_4k_photo_is_shrunk_to_the_servers_upload_limit(
    discord_fake, openai_fake, make_settings
):
    """A Nitro user's interaction says 500 MiB may be attached, but the bot's own uploads in a
    tier-0 server are held to 10 MiB: a 3840x2160 photo-like PNG over 10 MiB is re-encoded to fit
    and reaches the thread, with no 40005 (Reference → Uploading Files)."""
    mib = 1024 * 1024
    carol = discord_fake.add_user("carol", nitro="nitro")
    async with running(make_settings()):
        before = set(discord_fake.threads)
        inter = await discord_fake.slash(
            carol, discord_fake.text_channel_id, "imagine",
            {"prompt": f"a harbour at dawn {PHOTO_MARKER}", "size": "3840x2160", "format": "png",
             "previews": 0},
        )
        thread = await discord_fake.wait_for(
            lambda: next(iter(set(discord_fake.threads) - before), None), 10)
        message = (await wait_results(discord_fake, thread, 1, timeout=60))[0]
    assert inter.payload["attachment_size_limit"] == 500 * mib  # what carol may attach
    response_id = turns(make_settings())[0]["response_id"]
    generated = next(item for item in openai_fake.responses[response_id]["output"]
                     if item["type"] == "image_generation_call")
    assert len(base64.b64decode(generated["result"])) > 10 * mib  # the paid image was too big
    attachment = image_attachments(message)[0]
    assert attachment.size <= 10 * mib
    assert attachment.filename.endswith((".jpg", ".webp"))
    assert "re-encoded to fit" in message.content
    assert [r for r in discord_fake.request_log if r.status == 413] == []
    assert turns(make_settings())[0]["status"] == "done"


async def test_imagine_in_a_forum_post_opens_a_tagged_post_beside_it(
    discord_fake, openai_fake, make_settings
):
    """A slash command cannot run in a forum channel itself, only in its posts; a forum that
    requires tags refuses an untagged post with 40067. /imagine in a member's post opens a new
    post in that forum, tagged, and the image arrives there."""
    discord_fake.require_forum_tags(discord_fake.forum_channel_id)
    forum = discord_fake.channels[discord_fake.forum_channel_id]
    first_tag = forum["available_tags"][0]["id"]
    alice = discord_fake.add_user("alice")
    async with running(make_settings()):
        post = int(discord_fake.create_thread_record(
            discord_fake.forum_channel_id, name="show your cats", type_=11,
            owner_id=int(alice["id"]), applied_tags=[first_tag],
        )["id"])
        discord_fake.update_thread(post, name="show your cats")  # THREAD_UPDATE: the bot caches it
        before = set(discord_fake.threads)
        inter = await discord_fake.slash(alice, post, "imagine", {"prompt": "a forum cat"})
        started = await answer(discord_fake, inter, "Started a conversation")
        new = await discord_fake.wait_for(
            lambda: next(iter(set(discord_fake.threads) - before), None), 10)
        [shown] = await wait_results(discord_fake, new, 1)
    assert int(discord_fake.threads[new]["parent_id"]) == discord_fake.forum_channel_id
    assert discord_fake.threads[new]["applied_tags"] == [first_tag]
    assert f"<#{new}>" in started.content
    assert lineage_of(shown) == ["a forum cat"]
    assert not [r for r in discord_fake.request_log if r.status == 400]


async def test_imagine_inside_a_conversation_starts_a_new_root_there(
    discord_fake, openai_fake, make_settings
):
    alice = discord_fake.add_user("alice")
    async with running(make_settings()):
        thread = await start_conversation(discord_fake, alice, "a desert")
        await wait_results(discord_fake, thread, 1)
        await discord_fake.slash(alice, thread, "imagine", {"prompt": "an ocean"})
        second = (await wait_results(discord_fake, thread, 2))[1]
    assert lineage_of(second) == ["an ocean"]
    assert len(discord_fake.threads) == 1


async def test_dm_is_a_conversation(discord_fake, openai_fake, make_settings):
    alice = discord_fake.add_user("alice")
    async with running(make_settings(allow_dms=True, dm_allowed_users=[int(alice["id"])])):
        await discord_fake.dm(alice, "a paper crane")
        dm_channel = discord_fake.dm_channel(alice)
        await wait_results(discord_fake, dm_channel, 1)
        await discord_fake.dm(alice, "fold it from gold paper")
        second = (await wait_results(discord_fake, dm_channel, 2))[1]
    assert lineage_of(second) == ["a paper crane", "fold it from gold paper"]


async def test_archived_thread_reply_works_and_locked_thread_is_explained(
    discord_fake, openai_fake, make_settings
):
    alice = discord_fake.add_user("alice")
    async with running(make_settings()):
        thread = await start_conversation(discord_fake, alice, "a bridge")
        await wait_results(discord_fake, thread, 1)
        discord_fake.archive_thread(thread)
        await discord_fake.say(alice, thread, "at sunset")
        await wait_results(discord_fake, thread, 2)
        discord_fake.lock_thread(thread)
        interaction = await discord_fake.slash(alice, thread, "refine", {"prompt": "in fog"})
        reply = await answer(discord_fake, interaction, "locked")
    assert "thread is locked" in reply.content
    assert len(openai_fake.create_requests()) == 2


async def test_without_message_content_intent_refine_and_mentions_work(
    discord_fake, openai_fake, make_settings
):
    alice = discord_fake.add_user("alice")
    async with running(make_settings(message_content_intent=False)):
        thread = await start_conversation(discord_fake, alice, "a tower")
        await wait_results(discord_fake, thread, 1)
        hint = [m.content for m in discord_fake.messages(thread) if "/refine" in m.content]
        assert hint, "the new thread explains how to refine without the intent"
        await discord_fake.say(alice, thread, "this text is invisible to the bot")
        await discord_fake.slash(alice, thread, "refine", {"prompt": "add ivy"})
        second = (await wait_results(discord_fake, thread, 2))[1]
        await discord_fake.say(alice, thread, "add a flag", mention_bot=True)
        third = (await wait_results(discord_fake, thread, 3))[2]
    assert lineage_of(second) == ["a tower", "add ivy"]
    assert lineage_of(third) == ["a tower", "add ivy", "add a flag"]
    assert len(openai_fake.create_requests()) == 3
    identify = discord_fake.identify_payloads[-1]
    assert not identify["intents"] & (1 << 15)
