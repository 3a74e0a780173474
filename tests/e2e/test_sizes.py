"""Sizes people say: shapes and ratios are accepted and mapped to the nearest size the configured
image model takes; autocomplete offers the nearest valid size; the footer shows the size used."""

from __future__ import annotations

from tests.e2e.harness import running, start_conversation, wait_results


async def test_16_9_and_landscape_are_mapped_for_the_model(discord_fake, openai_fake, make_settings):
    alice = discord_fake.add_user("alice")
    async with running(make_settings(image_model="gpt-image-2")):
        wide = await start_conversation(discord_fake, alice, "a valley", size="16:9")
        [wide_result] = await wait_results(discord_fake, wide, 1)
        # the ratio sticks to the thread as said: a reply keeps 16:9
        await discord_fake.say(alice, wide, "at dawn")
        await wait_results(discord_fake, wide, 2)
    async with running(make_settings(image_model="gpt-image-1.5")):  # presets only
        land = await start_conversation(discord_fake, alice, "a harbour", size="landscape")
        [land_result] = await wait_results(discord_fake, land, 1)
    sizes = [r["tools"][0]["size"] for r in openai_fake.create_requests()]
    assert sizes == ["1536x864", "1536x864", "1536x1024"]
    assert "1536x864" in wide_result.content.splitlines()[-1]  # the footer shows the size used
    assert "1536x1024" in land_result.content.splitlines()[-1]


async def test_autocomplete_offers_the_nearest_valid_size(discord_fake, openai_fake, make_settings):
    alice = discord_fake.add_user("alice")
    channel = discord_fake.text_channel_id
    async with running(make_settings(image_model="gpt-image-2")):
        typed = await discord_fake.autocomplete(alice, channel, "imagine",
                                                {"prompt": "x", "size": "1920x1080"}, "size")
        ratio = await discord_fake.autocomplete(alice, channel, "imagine",
                                                {"prompt": "x", "size": "9:16"}, "size")
    async with running(make_settings(image_model="gpt-image-1.5")):
        presets = await discord_fake.autocomplete(alice, channel, "imagine",
                                                  {"prompt": "x", "size": "1920x1080"}, "size")
        listed = await discord_fake.autocomplete(alice, channel, "imagine",
                                                 {"prompt": "x", "size": ""}, "size")
    assert typed[0] == {"name": "1920x1080 → 1920x1088", "value": "1920x1088"}
    assert ratio[0]["value"] == "864x1536"
    assert presets[0]["value"] == "1536x1024"
    # a presets-only model is never offered a size it would refuse
    assert [c["value"] for c in listed] == ["auto", "1024x1024", "1536x1024", "1024x1536"]


async def test_prefs_take_a_ratio_and_offer_sizes_too(discord_fake, openai_fake, make_settings):
    alice = discord_fake.add_user("alice")
    channel = discord_fake.text_channel_id
    async with running(make_settings(image_model="gpt-image-2")):
        offered = await discord_fake.autocomplete(alice, channel, "imagine-prefs",
                                                  {"size": "16:9"}, "size")
        await discord_fake.slash(alice, channel, "imagine-prefs", {"size": "16:9"})
        thread = await start_conversation(discord_fake, alice, "a river")
        await wait_results(discord_fake, thread, 1)
    assert offered[0] == {"name": "16:9 → 1536x864", "value": "1536x864"}
    assert openai_fake.create_requests()[-1]["tools"][0]["size"] == "1536x864"
