"""`/history`: the contact sheet of a branched thread, its pager and "Continue from #n" across a
restart, and the export's contents."""

from __future__ import annotations

import asyncio
import io
import json
import zipfile

import pytest
from PIL import Image

from tests.e2e.harness import (
    answer,
    custom_ids,
    db_rows,
    image_attachments,
    quiet,
    results,
    running,
    start_conversation,
    turn_rows,
    wait_results,
)
from tests.fakes.images import PHOTO_MARKER

pytestmark = pytest.mark.both_backends


async def build_thread(
    fake, user, replies: list[tuple[str, int | None]], settings
) -> tuple[int, list]:
    """/imagine, then each (text, number of the turn to reply to, or None for a plain reply) in
    order, each waiting for its result. Returns the thread and the result messages by turn."""
    thread = await start_conversation(fake, user, "a castle")
    shown = list(await wait_results(fake, thread, 1))
    for text, reply_to in replies:
        await recorded(fake, settings, len(shown))  # the next plain reply follows this result
        target = shown[reply_to - 1].id if reply_to else None
        await fake.say(user, thread, text, reply_to=target)
        shown = list(await wait_results(fake, thread, len(shown) + 1))
    await recorded(fake, settings, len(shown))
    return thread, shown


async def recorded(fake, settings, count: int) -> None:
    """Wait until `count` turns are recorded as done (a result shows a moment before that)."""
    await fake.wait_for(
        lambda: len([r for r in turn_rows(settings) if r["status"] == "done"]) >= count, 10,
        what=f"{count} turn(s) recorded as done",
    )


# 1-2-3-4-5-6 in a line; 7 branches from 1 and 8 follows it; 9 branches from 3 and 10 follows it.
BRANCHED_10 = [
    ("add a moat", None), ("add towers", None), ("add flags", None), ("at dusk", None),
    ("with fireworks", None), ("in winter", 1), ("with snowmen", None), ("in autumn", 3),
    ("with falling leaves", None),
]


def sheet_of(message) -> Image.Image:
    [png] = [a for a in message.attachments if a.filename.startswith("history-")]
    image = Image.open(io.BytesIO(png.data))
    image.load()
    return image


async def test_history_draws_a_branched_thread_as_a_tree(discord_fake, openai_fake, make_settings):
    alice = discord_fake.add_user("alice")
    settings = make_settings()
    async with running(settings):
        thread, _ = await build_thread(discord_fake, alice, BRANCHED_10, settings)
        interaction = await discord_fake.slash(alice, thread, "history")
        sheet = await answer(discord_fake, interaction, "History", timeout=15)
    rows = turn_rows(settings)
    parents = {r["id"]: r["parent_id"] for r in rows}
    assert [parents[n] for n in range(1, 11)] == [None, 1, 2, 3, 4, 5, 1, 7, 3, 9]
    image = sheet_of(sheet)
    assert image.format == "PNG"
    # 6 columns (the 6-turn line) and 3 rows (the line and two branches) of 200x230 cells with
    # 48 px on the left, 20 on the right, 34 for the title and 20 above the cells.
    assert image.size == (48 + 6 * 200 - 40 + 20, 34 + 20 + 3 * 230)
    assert "images 1-10 of 10" in sheet.content and "page 1/1" in sheet.content
    options = next(c for row in sheet.components for c in row["components"] if c["type"] == 3)
    assert [o["label"] for o in options["options"]] == [f"Continue from #{n}" for n in range(1, 11)]


async def test_pager_and_continue_work_after_a_restart(discord_fake, openai_fake, make_settings):
    alice = discord_fake.add_user("alice")
    settings = make_settings()
    replies = [(f"step {n}", None) for n in range(2, 17)] + [("a branch from two", 2)]
    async with running(settings):
        thread, _ = await build_thread(discord_fake, alice, replies, settings)
        interaction = await discord_fake.slash(alice, thread, "history")
        sheet = await answer(discord_fake, interaction, "History", timeout=20)
    assert "images 1-16 of 17" in sheet.content
    first_page = sheet_of(sheet)
    async with running(settings):  # a new process on the same database
        ids = sorted(r["id"] for r in turn_rows(settings))
        pick = await discord_fake.click(alice, sheet.id, f"history:continue:{thread}:0",
                                        values=[str(ids[4])])
        reply = await answer(discord_fake, pick, "#", timeout=10)
        assert "continue from #5" in reply.content and reply.ephemeral
        await discord_fake.click(alice, sheet.id, f"history:page:{thread}:1:n")
        await discord_fake.wait_for(
            lambda: "images 17-17 of 17" in discord_fake.message(sheet.id).content, 15,
            what="the sheet to show page 2",
        )
        second_page = sheet_of(discord_fake.message(sheet.id))
        # turn 17's parent (#2) is on page 1: turn 17 alone, in one cell
        assert second_page.size == (48 + 200 - 40 + 20, 34 + 20 + 230)
        assert second_page.size != first_page.size
        assert f"history:page:{thread}:0:p" in custom_ids(discord_fake.message(sheet.id))
        await discord_fake.say(alice, thread, "from five")
        await wait_results(discord_fake, thread, 18)
    rows = turn_rows(settings)
    assert rows[-1]["prompt"] == "from five" and rows[-1]["parent_id"] == ids[4]


async def test_export_holds_every_image_and_the_record(discord_fake, openai_fake, make_settings):
    alice = discord_fake.add_user("alice")
    bob = discord_fake.add_user("bob")
    settings = make_settings()
    async with running(settings):
        thread, shown = await build_thread(
            discord_fake, alice, [("add a moat", None), ("in winter", 1)], settings
        )
        interaction = await discord_fake.slash(alice, thread, "history")
        sheet = await answer(discord_fake, interaction, "History", timeout=15)
        refused = await discord_fake.click(bob, sheet.id, f"history:export:{thread}")
        assert "can export it" in (await answer(discord_fake, refused)).content
        click = await discord_fake.click(alice, sheet.id, f"history:export:{thread}")
        await answer(discord_fake, click, "Exported", timeout=15)
    [posted] = [m for m in discord_fake.messages(thread)
                if any(a.filename.endswith(".zip") for a in m.attachments)]
    archive = zipfile.ZipFile(io.BytesIO(posted.attachments[0].data))
    names = archive.namelist()
    assert names == ["turn-01-1.png", "turn-02-1.png", "turn-03-1.png", "conversation.json"]
    for n, message in enumerate(shown, 1):
        assert archive.read(f"turn-0{n}-1.png") == image_attachments(message)[0].data
    record = json.loads(archive.read("conversation.json"))
    rows = turn_rows(settings)
    assert [t["prompt"] for t in record["turns"]] == ["a castle", "add a moat", "in winter"]
    assert [t["parent_number"] for t in record["turns"]] == [None, 1, 1]
    assert [t["response_id"] for t in record["turns"]] == [r["response_id"] for r in rows]
    assert [t["images"][0]["call_id"] for t in record["turns"]] == [
        json.loads(r["images"])[0]["call_id"] for r in rows
    ]
    assert {t["author_id"] for t in record["turns"]} == {str(discord_fake.uid(alice))}
    assert "alice" not in json.dumps(record)  # people by id only
    assert record["conversation"]["head_number"] == 3
    assert all(t["cost_usd"] > 0 and t["finished_at"] for t in record["turns"])


async def test_export_is_split_to_fit_the_upload_limit(discord_fake, openai_fake, make_settings):
    """Five photo-like results (about 2.6 MB each as PNG) do not fit one 10 MiB upload, the limit
    of a server without boosts (Reference → Uploading Files)."""
    alice = discord_fake.add_user("alice")
    settings = make_settings()
    async with running(settings):
        thread, _ = await build_thread(
            discord_fake, alice, [(f"step {n} {PHOTO_MARKER}", None) for n in range(2, 7)],
            settings,
        )
        interaction = await discord_fake.slash(alice, thread, "history")
        sheet = await answer(discord_fake, interaction, "History", timeout=15)
        click = await discord_fake.click(alice, sheet.id, f"history:export:{thread}")
        await answer(discord_fake, click, "Exported", timeout=15)
    zips = [a for m in discord_fake.messages(thread) for a in m.attachments
            if a.filename.endswith(".zip")]
    assert len(zips) > 1
    assert all(a.size <= 10 * 1024 * 1024 for a in zips)
    entries = [name for a in zips for name in zipfile.ZipFile(io.BytesIO(a.data)).namelist()]
    assert sorted(entries) == ["conversation.json"] + [f"turn-0{n}-1.png" for n in range(1, 7)]


BG = (0x2B, 0x2D, 0x31)  # the sheet's background (bot/ui/contact_sheet.py's BG)


def cell_pixels(image: Image.Image, column: int) -> tuple[set, set]:
    """(colours inside the thumbnail, colours of the caption below it) of the cell in row 0,
    `column`: 200 px a column after 48 on the left; thumbnails of 160 px start 54 px down."""
    x, y = 48 + 200 * column, 54
    inside = {image.getpixel((x + i, y + j)) for i in range(8, 152, 2) for j in range(24, 152, 2)}
    caption = {image.getpixel((x + i, y + j)) for i in range(0, 150, 2) for j in range(164, 214, 2)}
    return inside, caption


async def test_a_deleted_turn_is_a_blank_placeholder_in_history_and_export(
    discord_fake, openai_fake, make_settings
):
    """A member posts something private with a photo, deletes it: the next sheet shows a
    crossed-out cell (no thumbnail, even one cached before the delete; no prompt, no name), the
    export holds no trace of its prompt, author, text or image, and its upload is gone."""
    alice = discord_fake.add_user("alice")
    settings = make_settings()
    secret = "my house at 12 Elm Street"
    photo = io.BytesIO()
    Image.effect_noise((64, 64), 60).convert("RGB").save(photo, "PNG")
    async with running(settings):
        thread = await start_conversation(discord_fake, alice, "a castle")
        await wait_results(discord_fake, thread, 1)
        await recorded(discord_fake, settings, 1)
        await discord_fake.say(alice, thread, secret,
                               attachments=[("home.png", photo.getvalue(), "image/png")])
        await wait_results(discord_fake, thread, 2)
        await recorded(discord_fake, settings, 2)
        await discord_fake.say(alice, thread, "at dusk")
        await wait_results(discord_fake, thread, 3)
        await recorded(discord_fake, settings, 3)
        first = await answer(discord_fake, await discord_fake.slash(alice, thread, "history"),
                             "History", timeout=15)  # every thumbnail is now cached
        before, _ = cell_pixels(sheet_of(first), 1)
        secret_id = turn_rows(settings)[1]["id"]
        [shown] = [m for m in results(discord_fake, thread) if f"imagine:delete:{secret_id}"
                   in custom_ids(m)]
        await discord_fake.click(alice, shown.id, f"imagine:delete:{secret_id}")
        await discord_fake.wait_for(lambda: turn_rows(settings)[1]["deleted"] == 1, 10,
                                    what="the turn recorded as deleted")
        sheet = await answer(discord_fake, await discord_fake.slash(alice, thread, "history"),
                             "History", timeout=15)
        click = await discord_fake.click(alice, sheet.id, f"history:export:{thread}")
        await answer(discord_fake, click, "Exported", timeout=15)
    assert db_rows(settings, f"SELECT * FROM turn_inputs WHERE turn_id = {secret_id}") == []
    image = sheet_of(sheet)
    inside, caption = cell_pixels(image, 1)
    live_inside, live_caption = cell_pixels(image, 2)
    assert len(before) > 10 and len(live_inside) > 10  # thumbnails: many colours
    assert len(inside) <= 3  # the panel, the cross, nothing of the picture
    assert caption == {BG} and live_caption != {BG}  # no prompt, no name
    [posted] = [m for m in discord_fake.messages(thread)
                if any(a.filename.endswith(".zip") for a in m.attachments)]
    archive = zipfile.ZipFile(io.BytesIO(posted.attachments[0].data))
    assert archive.namelist() == ["turn-01-1.png", "turn-03-1.png", "conversation.json"]
    text = archive.read("conversation.json").decode()
    record = json.loads(text)
    deleted = record["turns"][1]
    assert deleted["deleted"] is True and deleted["number"] == 2
    assert not {"prompt", "revised_prompt", "text", "author_id", "images", "response_id"} & set(deleted)
    assert "Elm Street" not in text and str(turn_rows(settings)[1]["response_id"]) not in text
    assert record["turns"][2]["parent_number"] == 2  # the tree keeps its shape


def zips_in(fake, thread) -> list:
    return [a for m in fake.messages(thread) for a in m.attachments if a.filename.endswith(".zip")]


async def test_five_quick_export_clicks_post_one_export(discord_fake, openai_fake, make_settings):
    """An export runs one at a time per conversation: the other clicks are told it is under
    way, and one set of files is posted."""
    alice = discord_fake.add_user("alice")
    settings = make_settings()
    async with running(settings):
        thread, _ = await build_thread(discord_fake, alice, [("add a moat", None)], settings)
        sheet = await answer(discord_fake, await discord_fake.slash(alice, thread, "history"),
                             "History", timeout=15)
        # the export's upload waits until the other clicks are answered: on a busy machine the
        # export could otherwise be over before the last click arrives
        upload = discord_fake.hold_next("POST", rf"^/channels/{thread}/messages$")
        clicks = await asyncio.gather(*(
            discord_fake.click(alice, sheet.id, f"history:export:{thread}") for _ in range(5)))
        await discord_fake.wait_for(lambda: len([c for c in clicks if any(
            "already under way" in m.content for m in c.messages())]) == 4 or None, 15,
            what="four clicks told an export is under way")
        upload.set()
        answers = [await answer(discord_fake, click, timeout=15) for click in clicks]
        assert discord_fake.holds == []  # the upload was the request held
        await quiet(discord_fake, openai_fake)
        texts = [discord_fake.message(a.id).content for a in answers]
    assert len([t for t in texts if t.startswith("Exported")]) == 1
    assert len([t for t in texts if "already under way" in t]) == 4
    assert len(zips_in(discord_fake, thread)) == 1


async def test_an_export_over_its_size_cap_says_what_it_left_out(
    discord_fake, openai_fake, make_settings
):
    """A small result, then two photo-like ones (about 2.6 MB each) against 4 MiB of
    EXPORT_MAX_BYTES: the first two are exported, the third is named as left out, to the member
    and in the record."""
    alice = discord_fake.add_user("alice")
    settings = make_settings(export_max_bytes=4 * 1024 * 1024)
    async with running(settings):
        thread, _ = await build_thread(
            discord_fake, alice, [(f"step {n} {PHOTO_MARKER}", None) for n in (2, 3)], settings,
        )
        sheet = await answer(discord_fake, await discord_fake.slash(alice, thread, "history"),
                             "History", timeout=15)
        click = await discord_fake.click(alice, sheet.id, f"history:export:{thread}")
        done = await answer(discord_fake, click, "Exported", timeout=30)
    assert "1 image(s)" in done.content and "`turn-03-1.png`" in done.content
    assert "at most 4 MB" in done.content and done.ephemeral
    names = [n for a in zips_in(discord_fake, thread)
             for n in zipfile.ZipFile(io.BytesIO(a.data)).namelist()]
    assert sorted(names) == ["conversation.json", "turn-01-1.png", "turn-02-1.png"]
    [record] = [json.loads(zipfile.ZipFile(io.BytesIO(a.data)).read("conversation.json"))
                for a in zips_in(discord_fake, thread)
                if "conversation.json" in zipfile.ZipFile(io.BytesIO(a.data)).namelist()]
    assert record["left_out"]["files"] == ["turn-03-1.png"]
    assert record["turns"][2]["images"][0]["file"] is None
