"""Bad input never reaches the image API, always gets a message that says what to change, and
never disturbs anyone else: after each case another user's turn in another thread succeeds."""

from __future__ import annotations

import asyncio
import io
import os
import re
import struct
import time
import zlib
from typing import Any

import pytest
from PIL import Image

from tests.e2e.harness import quiet, results, running, start_conversation, wait_results
from tests.fakes.discord_models import FakeMessage
from tests.fakes.discord_server import FakeDiscord
from tests.fakes.openai_server import read_lineage

EMPTY = "Please write what you want to see: the prompt is empty."
# the command is named with its clickable mention (the client shows it in the reader's language)
UNKNOWN = re.compile(r"This isn't an image conversation I know\. Start one with </imagine:\d+>\.")


# ---------------------------------------------------------------------------------- helpers
def png_bytes(size: tuple[int, int] = (64, 64), color: str = "teal") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def decompression_bomb(edge: int = 12_000) -> bytes:
    """A ~20 KB 1-bit PNG that decodes to `edge`² pixels (144 M at the default)."""
    row = b"\x00" * (1 + edge // 8)
    packer = zlib.compressobj(9)
    body = b"".join(packer.compress(row) for _ in range(edge)) + packer.flush()
    header = struct.pack(">IIBBBBB", edge, edge, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", body)
            + _png_chunk(b"IEND", b""))


def animated_gif() -> bytes:
    frames = [Image.new("RGB", (32, 32), c) for c in ("red", "green", "blue")]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=80, loop=0)
    return out.getvalue()


class DownloadLog(dict):
    """The fake's attachment store, noting every attachment its CDN route looks up (serves)."""

    def __init__(self, base: dict[int, Any]) -> None:
        super().__init__(base)
        self.fetched: list[int] = []

    def get(self, key: Any, default: Any = None) -> Any:
        self.fetched.append(key)
        return super().get(key, default)


def watch_downloads(fake: FakeDiscord) -> DownloadLog:
    log = DownloadLog(fake.attachments)
    fake.attachments = log
    return log


async def bot_reply_to(fake: FakeDiscord, message_id: int | str, timeout: float = 5.0) -> FakeMessage:
    """The bot's reply to a user's message."""
    bot_id = int(fake.bot_user["id"])

    def find() -> FakeMessage | None:
        for msg in fake.all_messages():
            ref = msg.message_reference or {}
            if msg.author_id == bot_id and str(ref.get("message_id")) == str(message_id):
                return msg
        return None

    return await fake.wait_for(find, timeout, what=f"the bot's reply to {message_id}")


def replies_to(fake: FakeDiscord, message_id: int | str) -> list[FakeMessage]:
    bot_id = int(fake.bot_user["id"])
    return [m for m in fake.all_messages() if m.author_id == bot_id
            and str((m.message_reference or {}).get("message_id")) == str(message_id)]


async def refusal(fake: FakeDiscord, inter: Any, timeout: float = 5.0) -> FakeMessage:
    """The private answer to a slash command that was refused outright: at once (what needs no
    waiting: options, prompt), or after the acknowledgement (the gate), when the public
    "thinking…" placeholder is gone and an ephemeral followup says why. Nothing public stays."""
    msg = await fake.wait_for(
        lambda: next((m for m in inter.messages() if not m.loading and not m.deleted), None),
        timeout, what="an answer to the interaction")
    assert inter.errors == [] and msg.ephemeral, (inter, msg)
    assert all(m.deleted or m.ephemeral for m in inter.messages()), inter.messages()
    return msg


async def conversation(fake: FakeDiscord, user: Any, prompt: str = "a green teapot") -> int:
    thread_id = await start_conversation(fake, user, prompt)
    await wait_results(fake, thread_id, 1)
    return thread_id


async def still_serving(fake: FakeDiscord) -> None:
    """Another user's turn in another thread still succeeds."""
    other = fake.add_user(f"other-{time.monotonic_ns()}")
    thread_id = await start_conversation(fake, other, "a calm lake")
    await wait_results(fake, thread_id, 1)


# ---------------------------------------------------------------------------------- prompts
@pytest.mark.parametrize(
    "content", ["     ", "\u200b\u200b\u200b", " \u200b \ufeff \u2060 \u00ad "],
    ids=["spaces", "zero-width", "mixed-invisible"],
)
async def test_blank_reply_is_refused(discord_fake, openai_fake, make_settings, content):
    alice = discord_fake.add_user("alice")
    async with running(make_settings()):
        thread_id = await conversation(discord_fake, alice)
        said = await discord_fake.say(alice, thread_id, content)
        reply = await bot_reply_to(discord_fake, said["id"])
        assert reply.content == EMPTY
        assert len(openai_fake.create_requests()) == 1
        await still_serving(discord_fake)
    assert len(results(discord_fake, thread_id)) == 1


async def test_blank_imagine_is_refused_privately(discord_fake, openai_fake, make_settings):
    alice = discord_fake.add_user("alice")
    async with running(make_settings()):
        before = set(discord_fake.threads)
        inter = await discord_fake.slash(alice, discord_fake.text_channel_id, "imagine",
                                         {"prompt": " \u200b "})
        assert (await refusal(discord_fake, inter)).content == EMPTY
        assert set(discord_fake.threads) == before  # no empty thread left behind
        await still_serving(discord_fake)
    assert len(openai_fake.create_requests()) == 1


async def test_over_long_prompt_is_refused(discord_fake, openai_fake, make_settings):
    alice = discord_fake.add_user("alice")
    async with running(make_settings(max_prompt_chars=40)):
        thread_id = await conversation(discord_fake, alice)
        said = await discord_fake.say(alice, thread_id, "y" * 60)
        reply = await bot_reply_to(discord_fake, said["id"])
        assert reply.content == "That prompt is 60 characters; the limit is 40. Please shorten it."

        before = set(discord_fake.threads)
        inter = await discord_fake.slash(alice, discord_fake.text_channel_id, "imagine",
                                         {"prompt": "z" * 41})
        msg = await refusal(discord_fake, inter)
        assert msg.content == "That prompt is 41 characters; the limit is 40. Please shorten it."
        assert set(discord_fake.threads) == before
        await still_serving(discord_fake)
    assert len(openai_fake.create_requests()) == 2  # the first conversation and the other user


async def test_emoji_only_prompt_is_valid(discord_fake, openai_fake, make_settings):
    alice = discord_fake.add_user("alice")
    async with running(make_settings()):
        thread_id = await conversation(discord_fake, alice, "🦊🌙✨")
        await discord_fake.say(alice, thread_id, "🌧️☂️")
        messages = await wait_results(discord_fake, thread_id, 2)
    lineage = read_lineage(messages[1].attachments[0].data)
    assert lineage == ["🦊🌙✨", "🌧️☂️"]
    assert "> 🌧️☂️" in messages[1].content


# ---------------------------------------------------------------------------------- options
@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"size": "1000x1000"}, "Size `1000x1000`: width and height must both be multiples of 16."),
        ({"size": "5000x5000"}, "Size `5000x5000`: width and height must both be multiples of 16."),
        ({"size": "4000x1000"}, "Size `4000x1000`: width and height must both be multiples of 16."),
        ({"size": "4096x4096"}, "Size `4096x4096` is too large: at most 3840 px on a side and "
                                "3840x2160 in total."),
        ({"size": "3840x1024"}, "Size `3840x1024`: the aspect ratio must be between 1:3 and 3:1."),
        ({"size": "256x256"}, "Size `256x256` is too small: use at least 655,360 pixels in total "
                              "(for example 1024x640)."),
        ({"size": "abc"}, "Size `abc` isn't valid: use `auto`, a preset, or WIDTHxHEIGHT such as "
                          "`1536x864`."),
        ({"background": "transparent", "format": "jpeg"},
         "A transparent background needs format png or webp, not jpeg."),
        ({"compression": 50, "format": "png"},
         "Compression only applies to jpeg and webp; choose one of those or drop compression."),
    ],
    ids=["1000x1000", "5000x5000", "4000x1000", "4096x4096", "ratio", "tiny", "abc",
         "transparent-jpeg", "compression-png"],
)
async def test_invalid_options_are_refused_before_any_call(
    discord_fake, openai_fake, make_settings, options, expected
):
    alice = discord_fake.add_user("alice")
    async with running(make_settings()):
        before = set(discord_fake.threads)
        inter = await discord_fake.slash(alice, discord_fake.text_channel_id, "imagine",
                                         {"prompt": "a bridge", **options})
        assert (await refusal(discord_fake, inter)).content == expected
        assert openai_fake.create_requests() == []
        assert set(discord_fake.threads) == before
        await still_serving(discord_fake)


async def test_a_preset_only_image_model_gets_presets(discord_fake, openai_fake, make_settings):
    alice = discord_fake.add_user("alice")
    async with running(make_settings(image_model="gpt-image-1.5")):
        inter = await discord_fake.slash(alice, discord_fake.text_channel_id, "imagine",
                                         {"prompt": "a bridge", "size": "1536x864"})
        assert (await refusal(discord_fake, inter)).content == (
            "Size `1536x864`: the image model `gpt-image-1.5` takes only `auto`, `1024x1024`, "
            "`1536x1024` and `1024x1536`."
        )
        assert openai_fake.create_requests() == []
        thread_id = await start_conversation(discord_fake, alice, "a bridge", size="1536x1024")
        await wait_results(discord_fake, thread_id, 1)
    [body] = openai_fake.create_requests()
    assert body["tools"][0]["size"] == "1536x1024"
    assert body["tools"][0]["model"] == "gpt-image-1.5"


# ---------------------------------------------------------------------------------- attachments
@pytest.mark.parametrize(
    ("name", "data", "ctype", "expected", "downloaded"),
    [
        ("notes.txt", b"just some text\n", "text/plain",
         "`notes.txt` isn't an image I can read (PNG, JPEG, WebP or GIF).", False),
        ("broken.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 200, "image/png",
         "`broken.png` isn't an image I can read (PNG, JPEG, WebP or GIF).", True),
        ("bomb.png", decompression_bomb(), "image/png",
         "`bomb.png` has too many pixels; please attach a smaller image.", True),
        ("spin.gif", animated_gif(), "image/gif",
         "`spin.gif` is animated; please attach a still image.", True),
    ],
    ids=["text-plain", "corrupt", "decompression-bomb", "animated-gif"],
)
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # the fake sizes it up
async def test_bad_attachment_on_a_reply(
    discord_fake, openai_fake, make_settings, name, data, ctype, expected, downloaded
):
    alice = discord_fake.add_user("alice")
    async with running(make_settings()):
        thread_id = await conversation(discord_fake, alice)
        downloads = watch_downloads(discord_fake)
        said = await discord_fake.say(alice, thread_id, "use this", attachments=[(name, data, ctype)])
        reply = await bot_reply_to(discord_fake, said["id"])
        assert reply.content == expected
        attachment_id = int(said["attachments"][0]["id"])
        assert (attachment_id in downloads.fetched) is downloaded
        await still_serving(discord_fake)
    assert len(openai_fake.create_requests()) == 2
    assert len(results(discord_fake, thread_id)) == 1


async def test_oversized_attachment_is_refused_before_download(
    discord_fake, openai_fake, make_settings
):
    limit = 1024 * 1024
    big = b"\x89PNG\r\n\x1a\n" + os.urandom(limit + limit // 2)
    alice = discord_fake.add_user("alice")
    async with running(make_settings(max_attachment_bytes=limit)):
        thread_id = await conversation(discord_fake, alice)
        downloads = watch_downloads(discord_fake)
        said = await discord_fake.say(alice, thread_id, "use this",
                                      attachments=[("big.png", big, "image/png")])
        reply = await bot_reply_to(discord_fake, said["id"])
        assert reply.content == "`big.png` is larger than 1 MB; please attach a smaller file."
        attachment = said["attachments"][0]
        assert int(attachment["id"]) not in downloads.fetched
        assert not any(attachment["id"] in r.path for r in discord_fake.request_log)

        # the same through /imagine: refused privately, before the command is even deferred
        inter = await discord_fake.slash(alice, discord_fake.text_channel_id, "imagine",
                                         {"prompt": "a bridge"},
                                         attachments={"image": ("huge.png", big, "image/png")})
        msg = await refusal(discord_fake, inter)
        assert msg.content == "`huge.png` is larger than 1 MB; please attach a smaller file."
        assert len(downloads.fetched) == 0
        await still_serving(discord_fake)
    assert len(openai_fake.create_requests()) == 2


async def test_good_attachment_is_downloaded_and_sent(discord_fake, openai_fake, make_settings):
    """The control for the cases above: a real image is fetched and reaches the API."""
    alice = discord_fake.add_user("alice")
    async with running(make_settings()):
        thread_id = await conversation(discord_fake, alice)
        downloads = watch_downloads(discord_fake)
        said = await discord_fake.say(alice, thread_id, "blend in this",
                                      attachments=[("ok.png", png_bytes(), "image/png")])
        await wait_results(discord_fake, thread_id, 2)
    assert int(said["attachments"][0]["id"]) in downloads.fetched
    last = openai_fake.create_requests()[-1]
    parts = [p for item in last["input"] if item.get("role") == "user" for p in item["content"]]
    assert any(p["type"] == "input_image" for p in parts)


# ---------------------------------------------------------------------------------- who is talking
async def test_bots_and_webhooks_are_ignored(discord_fake, openai_fake, make_settings):
    alice = discord_fake.add_user("alice")
    robot = discord_fake.add_user("robot", bot=True)
    async with running(make_settings()):
        thread_id = await conversation(discord_fake, alice)
        from_bot = await discord_fake.say(robot, thread_id, "draw a cat", mention_bot=True)
        hook = FakeMessage(
            id=discord_fake.snowflake(), channel_id=thread_id, guild_id=discord_fake.guild_id,
            author={"id": str(discord_fake.snowflake()), "username": "hook", "discriminator": "0000",
                    "avatar": None, "global_name": None},
            content=f"<@{discord_fake.bot_id}> draw a dog", webhook_id=discord_fake.snowflake(),
            mentions=[discord_fake.bot_id],
        )
        discord_fake.store_message(hook)
        discord_fake.dispatch_message("MESSAGE_CREATE", hook)
        # a person's message sent after them is answered, so they have been seen (and dropped)
        await discord_fake.say(alice, thread_id, "draw a bird")
        await wait_results(discord_fake, thread_id, 2)
        await quiet(discord_fake, openai_fake)
        assert replies_to(discord_fake, from_bot["id"]) == []
        assert replies_to(discord_fake, hook.id) == []
        await still_serving(discord_fake)
    prompts = [r["input"][-1]["content"][-1]["text"] for r in openai_fake.create_requests()]
    assert not any("cat" in p or "dog" in p for p in prompts), prompts
    assert len(prompts) == 3
    assert len(results(discord_fake, thread_id)) == 2


async def test_unknown_thread(discord_fake, openai_fake, make_settings):
    """A thread the bot did not start: plain messages are ignored, an @mention gets told."""
    alice = discord_fake.add_user("alice")
    async with running(make_settings()):
        thread = discord_fake.create_thread_record(
            discord_fake.text_channel_id, name="just chatting", type_=11, owner_id=int(alice["id"])
        )
        thread_id = int(thread["id"])
        discord_fake.update_thread(thread_id, name="just chatting")  # the bot learns of it
        await asyncio.sleep(0.1)
        plain = await discord_fake.say(alice, thread_id, "draw a cat")
        mention = await discord_fake.say(alice, thread_id, "draw a cat", mention_bot=True)
        reply = await bot_reply_to(discord_fake, mention["id"])
        assert UNKNOWN.fullmatch(reply.content), reply.content
        await quiet(discord_fake, openai_fake)
        assert replies_to(discord_fake, plain["id"]) == []
        bot_id = int(discord_fake.bot_user["id"])
        assert [m.id for m in discord_fake.messages(thread_id) if m.author_id == bot_id] == [reply.id]
        assert openai_fake.create_requests() == []
        await still_serving(discord_fake)
    assert len(openai_fake.create_requests()) == 1
