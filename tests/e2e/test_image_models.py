"""Image models as the issue asks: the operator allows models (IMAGE_MODELS), a server picks one
with /imagine-settings models, its members' requests name it and are checked and priced by its
capability row; complexity within the server's maximum; animated GIFs (no previews, frames
within the server's limit, fitted to the upload limit without losing the animation); SVG with a
PNG rendering beside it."""

from __future__ import annotations

import io

from PIL import Image

from tests.e2e.harness import answer, image_attachments, running, start_conversation, wait_results

FLARE = "gpt-image-2.6-flare"


async def choose_model(discord_fake, **options) -> None:
    inter = await discord_fake.slash(discord_fake.owner, discord_fake.text_channel_id,
                                     "imagine-settings models", options)
    await answer(discord_fake, inter)


async def test_a_server_picks_an_allowed_model_and_its_requests_name_it(
    discord_fake, openai_fake, make_settings
):
    alice = discord_fake.add_user("alice")
    async with running(make_settings(image_models=[FLARE])):
        offered = await discord_fake.autocomplete(
            discord_fake.owner, discord_fake.text_channel_id, "imagine-settings models",
            {"image_model": ""}, "image_model")
        refused = await discord_fake.slash(discord_fake.owner, discord_fake.text_channel_id,
                                           "imagine-settings models",
                                           {"image_model": "gpt-image-2.5-flare"})
        refusal = await answer(discord_fake, refused)
        first = await start_conversation(discord_fake, alice, "a kite", previews=0)
        await wait_results(discord_fake, first, 1)
        await choose_model(discord_fake, image_model=FLARE, max_complexity="medium")
        second = await start_conversation(discord_fake, alice, "a boat", complexity="medium",
                                          previews=0)
        await wait_results(discord_fake, second, 1)
        too_much = await discord_fake.slash(alice, discord_fake.text_channel_id, "imagine",
                                            {"prompt": "a map", "complexity": "high"})
        too_much_reply = await answer(discord_fake, too_much)
    assert [c["value"] for c in offered] == ["gpt-image-2", FLARE]
    assert "gif" in offered[1]["name"] and "complexity" in offered[1]["name"]
    assert "gpt-image-2.5-flare" in refusal.content and "gpt-image-2, " + FLARE in refusal.content
    first_tool, second_tool = (r["tools"][0] for r in openai_fake.create_requests())
    assert first_tool["model"] == "gpt-image-2"  # IMAGE_MODEL, named even though unset
    assert (second_tool["model"], second_tool["complexity"]) == (FLARE, "medium")
    assert too_much_reply.content == "This server allows complexity up to `medium`."
    assert len(openai_fake.create_requests()) == 2  # the refused one cost nothing


async def test_an_animated_gif_plays_inline_and_fits_the_upload_limit(
    discord_fake, openai_fake, make_settings
):
    alice = discord_fake.add_user("alice")
    discord_fake.upload_limit = 1_500_000  # a small server: the GIF must be fitted
    async with running(make_settings(image_model=FLARE, max_gif_frames=12)):
        too_many = await discord_fake.slash(alice, discord_fake.text_channel_id, "imagine",
                                            {"prompt": "a flag", "format": "gif", "frames": 16})
        refusal = await answer(discord_fake, too_many)
        thread = await start_conversation(discord_fake, alice, "a flag waving [photo-like]",
                                          format="gif", frames=8, frame_ms=120,
                                          size="1024x1024", previews=3)
        [result] = await wait_results(discord_fake, thread, 1)
    assert refusal.content == "Frames must be a number from 2 to 12 (got `16`)."
    [request] = openai_fake.create_requests()
    tool = request["tools"][0]
    # 8 frames of 1024x1024 exceed the 8,294,400-pixel sheet: the frame is 1008x1008
    assert (tool["output_format"], tool["frame_count"], tool["frame_duration_ms"]) == (
        "gif", 8, 120)
    assert tool["size"] == "1008x1008" and tool["partial_images"] == 0  # GIF: no previews
    [gif] = image_attachments(result)
    assert gif.filename.endswith(".gif") and len(gif.data) <= 1_500_000
    with Image.open(io.BytesIO(gif.data)) as played:
        assert played.format == "GIF" and played.n_frames >= 2  # still an animation
        assert played.info.get("loop") == 0


async def test_svg_is_attached_with_a_png_of_it(discord_fake, openai_fake, make_settings):
    alice = discord_fake.add_user("alice")
    async with running(make_settings(image_model=FLARE)):
        thread = await start_conversation(discord_fake, alice, "a logo", format="svg",
                                          size="1024x1024")
        [result] = await wait_results(discord_fake, thread, 1)
    tool = openai_fake.create_requests()[0]["tools"][0]
    assert tool["output_format"] == "svg" and tool["partial_images"] == 0
    svg, png = image_attachments(result)
    assert svg.filename.endswith(".svg") and svg.data.lstrip().startswith(b"<svg")
    assert png.filename.endswith(".png")
    with Image.open(io.BytesIO(png.data)) as shown:
        assert shown.size == (1024, 1024)


async def test_refine_takes_format_gif_too(discord_fake, openai_fake, make_settings):
    """`/refine format:gif` turns the thread's next image into an animation of it (an edit
    continuing from the result, as any refinement)."""
    alice = discord_fake.add_user("alice")
    async with running(make_settings(image_model=FLARE)):
        thread = await start_conversation(discord_fake, alice, "a kite", previews=2)
        await wait_results(discord_fake, thread, 1)
        await discord_fake.slash(alice, thread, "refine", {"prompt": "let it fly",
                                                           "format": "gif", "frames": 4})
        [_, animated] = await wait_results(discord_fake, thread, 2)
    first, refined = openai_fake.create_requests()
    tool = refined["tools"][0]
    assert (tool["output_format"], tool["frame_count"], tool["partial_images"]) == ("gif", 4, 0)
    assert first["tools"][0]["partial_images"] == 2  # a still keeps its previews
    assert refined["previous_response_id"]  # continues from the result
    [gif] = image_attachments(animated)
    with Image.open(io.BytesIO(gif.data)) as played:
        assert played.format == "GIF" and played.n_frames == 4
