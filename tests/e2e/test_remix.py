"""Apps → Remix: a bot result is referred to by its stored image_generation_call id, an upload is
sent as an input image, a forgotten item falls back to the bytes unnoticed, and the person
remixing is held to the limits."""

from __future__ import annotations

import io
import json
import sqlite3

import pytest
from PIL import Image

from tests.e2e.harness import (
    answer,
    image_attachments,
    running,
    start_conversation,
    turn_rows,
    wait_results,
)
from tests.fakes.images import decode_data_url
from tests.fakes.openai_server import Fault, read_lineage
from tests.pg import query

pytestmark = pytest.mark.both_backends


def png_bytes(colour: str = "orange") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 64), colour).save(out, "PNG")
    return out.getvalue()


def conversation_row(settings, conversation_id: int) -> dict:
    if settings.database_url is not None:
        rows = query(settings.database_url.get_secret_value(),
                     f"SELECT * FROM conversations WHERE id = {int(conversation_id)}")
        return rows[0]
    conn = sqlite3.connect(settings.database_path, timeout=10)
    conn.row_factory = sqlite3.Row
    try:
        return dict(conn.execute("SELECT * FROM conversations WHERE id = ?",
                                 (conversation_id,)).fetchone())
    finally:
        conn.close()


def input_parts(request: dict) -> tuple[list[dict], list[dict]]:
    """(image_generation_call references, input_image parts) of a create request."""
    references = [item for item in request["input"] if item.get("type") == "image_generation_call"]
    images = [part for item in request["input"] if item.get("role") == "user"
              for part in item["content"] if part["type"] == "input_image"]
    return references, images


async def recorded(fake, settings, count: int) -> None:
    """Wait until `count` turns are recorded as done (a result shows a moment before that)."""
    await fake.wait_for(
        lambda: len([r for r in turn_rows(settings) if r["status"] == "done"]) >= count, 10,
        what=f"{count} turn(s) recorded as done",
    )


async def remix(fake, user, message_id: int, instruction: str) -> tuple[int, object]:
    """Apps → Remix on a message, fill in the modal; return the new thread and the modal."""
    before = set(fake.threads)
    inter = await fake.message_command(user, message_id, "Remix")
    await fake.submit_modal(user, inter, {"instruction": instruction})
    thread = await fake.wait_for(lambda: next(iter(set(fake.threads) - before), None), 10,
                                 what="the remix thread")
    return thread, inter


async def test_remix_of_a_bot_result_refers_to_its_stored_image(
    discord_fake, openai_fake, make_settings
):
    alice, bob = discord_fake.add_user("alice"), discord_fake.add_user("bob")
    settings = make_settings()
    async with running(settings):
        first = await start_conversation(discord_fake, alice, "a lighthouse")
        [source] = await wait_results(discord_fake, first, 1)
        await recorded(discord_fake, settings, 1)
        thread, inter = await remix(discord_fake, bob, source.id, "as a watercolour")
        [result] = await wait_results(discord_fake, thread, 1)
        history = await discord_fake.slash(bob, thread, "history")
        sheet = await answer(discord_fake, history, "History", timeout=15)
        details = await discord_fake.click(bob, result.id, "imagine:details:2")
        embed = await discord_fake.wait_for(
            lambda: next((m.embeds[0] for m in details.ephemeral_messages if m.embeds), None)
            or next((c["data"]["embeds"][0] for c in details.callbacks
                     if c.get("data", {}).get("embeds")), None)
        )
    text_input = inter.modal["components"][0]["components"][0]
    assert text_input["value"] == "a lighthouse"  # pre-filled with the source's prompt
    call_id = json.loads(turn_rows(settings)[0]["images"])[0]["call_id"]
    # with a reasoning mainline model (the default) the image's reasoning item goes just before
    # it, or the reference is refused (API-NOTES, "Second pass"): the fake's record says which
    source_response = openai_fake.responses[turn_rows(settings)[0]["response_id"]]
    reasoning_id = source_response["output"][0]["id"]
    assert len(openai_fake.create_requests()) == 2  # no refused request, no bytes re-sent
    request = openai_fake.create_requests()[1]
    _, images = input_parts(request)
    assert request["input"][:2] == [{"type": "item_reference", "id": reasoning_id},
                                    {"type": "image_generation_call", "id": call_id}]
    assert images == [] and "previous_response_id" not in request
    assert read_lineage(image_attachments(result)[0].data) == ["a lighthouse", "as a watercolour"]
    link = f"/{first}/{source.id}"
    opening = discord_fake.messages(thread)[0]
    assert "Remixed from" in opening.content and link in opening.content
    assert link in sheet.content
    remixed = [f for f in embed["fields"] if f["name"] == "Remixed from"]
    assert len(remixed) == 1 and link in remixed[0]["value"]
    row = conversation_row(settings, thread)
    assert row["remixed_from_message_id"] == source.id and row["owner_id"] == discord_fake.uid(bob)
    remix_turn = turn_rows(settings)[1]
    assert remix_turn["remix_of_turn_id"] == 1 and remix_turn["author_id"] == discord_fake.uid(bob)
    assert discord_fake.channel(thread)["parent_id"] == str(discord_fake.text_channel_id)


async def test_remix_of_an_upload_sends_the_image(discord_fake, openai_fake, make_settings):
    alice = discord_fake.add_user("alice")
    photo = png_bytes("teal")
    async with running(make_settings()):
        said = await discord_fake.say(alice, discord_fake.text_channel_id, "my photo",
                                      attachments=[("photo.png", photo, "image/png")])
        thread, inter = await remix(discord_fake, alice, int(said["id"]), "make it a painting")
        await wait_results(discord_fake, thread, 1)
    assert inter.modal["components"][0]["components"][0].get("value") in (None, "")
    [request] = openai_fake.create_requests()
    references, images = input_parts(request)
    assert references == []
    assert [decode_data_url(p["image_url"]) for p in images] == [("image/png", photo)]


async def test_remix_after_the_api_forgot_the_item_sends_the_bytes(
    discord_fake, openai_fake, make_settings
):
    alice = discord_fake.add_user("alice")
    settings = make_settings()
    async with running(settings):
        first = await start_conversation(discord_fake, alice, "a lighthouse")
        [source] = await wait_results(discord_fake, first, 1)
        await recorded(discord_fake, settings, 1)
        openai_fake.forget(turn_rows(settings)[0]["response_id"])
        thread, _ = await remix(discord_fake, alice, source.id, "at night")
        [result] = await wait_results(discord_fake, thread, 1)
    refused, resent = openai_fake.create_requests()[1:]
    assert input_parts(refused)[0] and not input_parts(refused)[1]
    references, images = input_parts(resent)
    assert references == []
    assert [decode_data_url(p["image_url"])[1] for p in images] == [
        image_attachments(source)[0].data
    ]
    assert image_attachments(result)
    texts = " ".join(m.content for m in discord_fake.messages(thread))
    assert "refused" not in texts and "chain rebuilt" not in texts
    assert [r["status"] for r in turn_rows(settings)] == ["done", "done"]


async def test_remix_refused_for_its_reference_sends_the_bytes_whatever_the_param(
    discord_fake, openai_fake, make_settings
):
    """Any 400 naming the referenced item (here without `param`) falls back to the bytes; the
    user never sees the raw refusal."""
    alice = discord_fake.add_user("alice")
    settings = make_settings()
    async with running(settings):
        first = await start_conversation(discord_fake, alice, "a lighthouse")
        [source] = await wait_results(discord_fake, first, 1)
        await recorded(discord_fake, settings, 1)
        call_id = json.loads(turn_rows(settings)[0]["images"])[0]["call_id"]
        openai_fake.add_fault(Fault.http(
            400, code=None, param=None,
            message=f"Item '{call_id}' of type 'image_generation_call' was provided without "
            "its required 'reasoning' item: 'rs_0'.",
        ))
        thread, _ = await remix(discord_fake, alice, source.id, "at night")
        [result] = await wait_results(discord_fake, thread, 1)
    resent = openai_fake.create_requests()[2]
    references, images = input_parts(resent)
    assert references == [] and len(images) == 1
    assert read_lineage(image_attachments(result)[0].data) == ["a lighthouse", "at night"]
    texts = " ".join(m.content for m in discord_fake.messages(thread))
    assert "refused" not in texts and "reasoning" not in texts
    assert [r["status"] for r in turn_rows(settings)] == ["done", "done"]


async def test_remix_is_held_to_the_remixer_limits(discord_fake, openai_fake, make_settings):
    alice, bob = discord_fake.add_user("alice"), discord_fake.add_user("bob")
    settings = make_settings(user_daily_images=1)
    async with running(settings):
        first = await start_conversation(discord_fake, alice, "a lighthouse")
        [source] = await wait_results(discord_fake, first, 1)
        await recorded(discord_fake, settings, 1)
        before = set(discord_fake.threads)
        opened = await discord_fake.message_command(alice, source.id, "Remix")
        # the form opens first (nothing is waited for before it); its submission is refused
        refused = await discord_fake.submit_modal(alice, opened, {"instruction": "in autumn"})
        reply = await answer(discord_fake, refused, "Limit reached")
        assert reply.ephemeral and all(m.ephemeral for m in refused.messages())
        thread, _ = await remix(discord_fake, bob, source.id, "in spring")  # bob has room
        await wait_results(discord_fake, thread, 1)
    assert set(discord_fake.threads) - before == {thread}
    assert len(openai_fake.create_requests()) == 2
