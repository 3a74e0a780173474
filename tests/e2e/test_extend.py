"""Zoom out, Pan, Vary region and Animate on a result: the cost first (privately), nothing spent
before Confirm; then an edit of that image through the same submission as any turn: the image
on a larger canvas with a mask that leaves the new area transparent (`input_image_mask`), or a
GIF continuing from it; the thread's own options stay as they were."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from bot.ui.i18n import EN
from tests.e2e.harness import (
    custom_ids,
    image_attachments,
    running,
    start_conversation,
    turn_rows,
    wait_results,
)


def decoded(data_url: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1])))


def input_images(request: dict) -> list[Image.Image]:
    return [decoded(part["image_url"]) for item in request["input"] if item.get("role") == "user"
            for part in item["content"] if part["type"] == "input_image"]


async def confirm_and_run(discord_fake, user, first, action: str, turn_id: int, thread: int,
                          count: int):
    click = await discord_fake.click(user, first.id, f"imagine:{action}:{turn_id}")
    confirm = await discord_fake.wait_for(
        lambda: next((m for m in click.messages() if "Estimated cost" in m.content), None),
        10, what=f"the {action} confirmation")
    asked = confirm.content
    await discord_fake.click(user, confirm.id, f"imagine:{action}go:{turn_id}")
    results = await wait_results(discord_fake, thread, count)
    return asked, results


async def test_zoom_out_2x_sends_the_image_on_a_canvas_with_a_mask(
    discord_fake, openai_fake, make_settings
):
    settings = make_settings()
    alice = discord_fake.add_user("alice")
    async with running(settings):
        thread = await start_conversation(discord_fake, alice, "a lighthouse", quality="low",
                                          size="1024x1024", previews=0)
        [first] = await wait_results(discord_fake, thread, 1)
        turn_id = turn_rows(settings.database_path)[0]["id"]
        assert {f"imagine:{a}:{turn_id}" for a in ("zoom15", "zoom2", "panl", "region")} <= set(
            custom_ids(first))
        assert f"imagine:anim:{turn_id}" not in custom_ids(first)  # gpt-image-2 draws no GIF
        click = await discord_fake.click(alice, first.id, f"imagine:zoom2:{turn_id}")
        confirm = await discord_fake.wait_for(
            lambda: next((m for m in click.messages() if "Estimated cost" in m.content), None),
            10, what="the zoom confirmation")
        assert len(openai_fake.create_requests()) == 1  # nothing is spent before Confirm
        asked = confirm.content
        openai_fake.latency = 1.0  # long enough to read the running turn's reservation
        await discord_fake.click(alice, confirm.id, f"imagine:zoom2go:{turn_id}")
        running_row = await discord_fake.wait_for(lambda: next(
            (r for r in turn_rows(settings.database_path)[1:] if r["status"] == "running"),
            None), 10, what="the zoom turn running")
        [_, zoomed] = await wait_results(discord_fake, thread, 2)
        openai_fake.latency = 0.0
        await discord_fake.say(alice, thread, "add a boat")
        await wait_results(discord_fake, thread, 3)
    # worst case by hand (bot/core/costs.py's published figures): low quality 2048x2048 =
    # 272 x 4 image tokens; three input images (canvas, mask, the result in the context);
    # gpt-5.5 $5/$30, gpt-image-2 $5 text, $8 image in, $30 image out per 1M tokens
    prompt = len(EN["plan.zoom2.prompt"])
    usd = ((4000 + prompt + 3 * 1600) * 5 + 2000 * 30 + (4000 + prompt) * 5
           + 3 * 6240 * 8 + 272 * 4 * 30) / 1e6
    assert confirm.ephemeral and f"Estimated cost: ${usd:.2f}" in asked
    # and admission reserved exactly that while it ran (the same worst case)
    assert running_row["reserved_usd"] == pytest.approx(usd)
    assert "Zoom out 2x image #1" in asked
    _, zoom, reply = openai_fake.create_requests()
    tool = zoom["tools"][0]
    assert (tool["action"], tool["size"], tool["model"]) == ("edit", "2048x2048", "gpt-image-2")
    rows = turn_rows(settings.database_path)
    assert zoom["previous_response_id"] == rows[0]["response_id"]
    assert rows[1]["parent_id"] == rows[0]["id"]
    [canvas] = input_images(zoom)
    mask = decoded(tool["input_image_mask"]["image_url"])
    assert canvas.size == mask.size == (2048, 2048) and mask.format == "PNG"
    alpha = mask.getchannel("A")
    assert alpha.getpixel((100, 100)) == 0 and alpha.getpixel((2000, 1000)) == 0  # to fill
    assert alpha.getpixel((1024, 1024)) == 255 and alpha.getpixel((520, 520)) == 255  # kept
    assert canvas.getchannel("A").getpixel((100, 100)) == 0  # the new area is empty
    assert image_attachments(zoomed)
    # the thread's own options are unchanged: the next reply has no mask and its own size
    assert "input_image_mask" not in reply["tools"][0]
    assert reply["tools"][0]["size"] == "1024x1024" and input_images(reply) == []


async def test_pan_left_keeps_the_image_on_the_right(discord_fake, openai_fake, make_settings):
    settings = make_settings(max_input_images=0)  # no attachments: the canvas and mask are ours
    alice = discord_fake.add_user("alice")
    async with running(settings):
        thread = await start_conversation(discord_fake, alice, "a street", quality="low",
                                          size="1024x1024", previews=0)
        [first] = await wait_results(discord_fake, thread, 1)
        turn_id = turn_rows(settings.database_path)[0]["id"]
        await confirm_and_run(discord_fake, alice, first, "panl", turn_id, thread, 2)
    _, pan = openai_fake.create_requests()
    tool = pan["tools"][0]
    assert tool["size"] == "1536x1024"  # 1.5 times as wide, the model's 3:2 preset
    alpha = decoded(tool["input_image_mask"]["image_url"]).getchannel("A")
    assert alpha.getpixel((100, 500)) == 0 and alpha.getpixel((511, 500)) == 0
    assert alpha.getpixel((512, 500)) == 255 and alpha.getpixel((1500, 500)) == 255


async def test_vary_region_masks_the_area_described(discord_fake, openai_fake, make_settings):
    settings = make_settings()
    alice = discord_fake.add_user("alice")
    async with running(settings):
        thread = await start_conversation(discord_fake, alice, "a meadow", quality="low",
                                          size="1024x1024", previews=0)
        [first] = await wait_results(discord_fake, thread, 1)
        turn_id = turn_rows(settings.database_path)[0]["id"]
        opened = await discord_fake.click(alice, first.id, f"imagine:region:{turn_id}")
        submitted = await discord_fake.submit_modal(alice, opened, {"area": "top half",
                                                                    "instruction": "a stormy sky"})
        confirm = await discord_fake.wait_for(
            lambda: next((m for m in submitted.messages() if "Estimated cost" in m.content),
                         None), 10, what="the vary region confirmation")
        asked = confirm.content
        assert len(openai_fake.create_requests()) == 1  # nothing is spent before Confirm
        await discord_fake.click(alice, confirm.id, f"imagine:regiongo:{turn_id}")
        await wait_results(discord_fake, thread, 2)
        unknown = await discord_fake.click(alice, first.id, f"imagine:region:{turn_id}")
        answered = await discord_fake.submit_modal(alice, unknown, {"area": "somewhere nice",
                                                                    "instruction": "a bird"})
        refusal = await discord_fake.wait_for(lambda: next(iter(answered.messages()), None), 10)
    _, vary = openai_fake.create_requests()
    tool = vary["tools"][0]
    alpha = decoded(tool["input_image_mask"]["image_url"]).getchannel("A")
    assert alpha.getpixel((500, 100)) == 0 and alpha.getpixel((500, 900)) == 255
    assert "top half" in vary["input"][-1]["content"][-1]["text"]
    assert "stormy sky" in vary["input"][-1]["content"][-1]["text"]
    assert refusal.content.startswith("I couldn't tell which area `somewhere nice` means")
    assert confirm.ephemeral and "Vary region image #1: edit · 1024x1024" in asked
    assert discord_fake.message(confirm.id).components == []  # the Confirm button is gone
    assert len(openai_fake.create_requests()) == 2  # nothing spent on the refused one


async def test_animate_continues_from_the_image_as_a_gif(discord_fake, openai_fake, make_settings):
    settings = make_settings(image_model="gpt-image-2.6-flare", max_gif_frames=6)
    alice = discord_fake.add_user("alice")
    async with running(settings):
        thread = await start_conversation(discord_fake, alice, "a windmill", quality="low",
                                          size="1024x1024", previews=2)
        [first] = await wait_results(discord_fake, thread, 1)
        turn_id = turn_rows(settings.database_path)[0]["id"]
        asked, [_, animated] = await confirm_and_run(discord_fake, alice, first, "anim",
                                                           turn_id, thread, 2)
    assert "Animate image #1" in asked
    _, anim = openai_fake.create_requests()
    tool = anim["tools"][0]
    assert (tool["action"], tool["output_format"], tool["frame_count"]) == ("edit", "gif", 6)
    assert tool["partial_images"] == 0 and "input_image_mask" not in tool
    assert tool["size"] == "1024x1024"  # 6 x 1024 x 1024 fits the 8,294,400-pixel sheet
    assert anim["previous_response_id"] == turn_rows(settings.database_path)[0]["response_id"]
    [gif] = image_attachments(animated)
    with Image.open(io.BytesIO(gif.data)) as played:
        assert played.format == "GIF" and played.n_frames == 6
