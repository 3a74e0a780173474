"""Variants: sibling turns with one parent run side by side and share one board (a numbered
2x2 grid, then the full images), with Continue from n, Reroll all and a Cancel for the set."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from tests.e2e.harness import (
    BotRunner,
    custom_ids,
    image_attachments,
    quiet,
    running,
    start_conversation,
    turn_rows,
    wait_results,
)
from tests.fakes.openai_server import Fault

pytestmark = pytest.mark.both_backends

PARALLEL = {"per_user_concurrent": 4, "per_user_queued": 4, "max_concurrent_generations": 4}


async def board_when(fake, thread: int, predicate, what: str, timeout: float = 15.0):
    """The variant board in `thread` once `predicate(message)` holds."""
    def find():
        for message in fake.messages(thread):
            on_board = any(a.filename.startswith("variants-") for a in message.attachments)
            if (on_board or "variants" in message.content) and predicate(message):
                return message
        return None

    try:
        return await fake.wait_for(find, timeout, what=what)
    except TimeoutError:
        for m in fake.messages(thread):
            print("MSG", m.id, repr(m.content), [a.filename for a in m.attachments], custom_ids(m))
        raise


def fulls(message) -> list:
    """The full images on a board (not the grid)."""
    return [a for a in image_attachments(message) if a.filename.startswith("imagine-")]


def grid_of(message) -> Image.Image:
    [grid] = [a for a in message.attachments if a.filename.startswith("variants-")]
    return Image.open(io.BytesIO(grid.data)).convert("RGB")


def marks(message) -> list[str]:
    """The state mark of each numbered line of the board, in order."""
    lines = [line for line in message.content.splitlines() if line.startswith("**")]
    return [next(m for m in ("✅", "❌", "⏳") if m in line) for line in lines]


async def test_four_variants_with_one_failing(discord_fake, openai_fake, make_settings):
    openai_fake.latency = 0.8
    openai_fake.add_fault(Fault.moderation("http"))  # the first request to arrive is refused
    alice = discord_fake.add_user("alice")
    settings = make_settings(**PARALLEL)
    async with running(settings):
        thread = await start_conversation(discord_fake, alice, "a red fox", variants=4)
        board = await board_when(discord_fake, thread, lambda m: "⏳" not in m.content
                                 and len(fulls(m)) == 3, "the finished board")
    rows = turn_rows(settings)
    assert len(rows) == 4 and len({r["variant_group"] for r in rows}) == 1
    assert sorted(r["variant_index"] for r in rows) == [1, 2, 3, 4]
    assert all(r["parent_id"] is None and r["prompt"] == "a red fox" for r in rows)
    assert sorted(r["status"] for r in rows) == ["done", "done", "done", "failed"]
    done = [r for r in rows if r["status"] == "done"]
    # side by side: every sibling started before any of them finished
    assert max(r["started_at"] for r in rows) < min(r["finished_at"] for r in done)
    assert len(openai_fake.create_requests()) == 4  # the refused one is not retried
    failed = next(r["variant_index"] for r in rows if r["status"] == "failed")
    assert marks(board) == ["❌" if n == failed else "✅" for n in range(1, 5)]
    assert "safety system" in board.content
    # the failure showed while the others were still on their way
    assert any("❌" in v.content and "⏳" in v.content for v in board.edits)
    grid = grid_of(board)
    assert grid.size == (1024, 1024)
    corners = {n: grid.getpixel(((n - 1) % 2 * 512 + 44, (n - 1) // 2 * 512 + 20))
               for n in range(1, 5)}
    assert corners[failed] == (0xDA, 0x37, 0x3C)  # a red number badge on the failed one
    assert all(corners[n] == (0xF0, 0xB2, 0x32) for n in range(1, 5) if n != failed)
    names = sorted(a.filename for a in fulls(board))
    assert names == sorted(f"imagine-{r['id']}-1.png" for r in done)
    ids = custom_ids(board)
    assert sorted(i.split(":")[3] for i in ids if i.startswith("variants:continue")) == sorted(
        str(r["variant_index"]) for r in done
    )
    assert any(i.startswith("variants:reroll") for i in ids)
    assert not any(i.startswith("imagine:cancel") for i in ids)


async def test_refine_variants_continue_and_reroll_all(discord_fake, openai_fake, make_settings):
    alice = discord_fake.add_user("alice")
    settings = make_settings(**PARALLEL)
    async with running(settings):
        thread = await start_conversation(discord_fake, alice, "a castle")
        await wait_results(discord_fake, thread, 1)
        await discord_fake.slash(alice, thread, "refine", {"prompt": "at night", "variants": 2})
        board = await board_when(discord_fake, thread,
                                 lambda m: len(fulls(m)) == 2, "two variants")
        await discord_fake.wait_for(  # the board shows a result a moment before it is recorded
            lambda: len([r for r in turn_rows(settings) if r["status"] == "done"]) == 3, 10,
            what="both variants recorded",
        )
        second = next(r for r in turn_rows(settings) if r["variant_index"] == 2)
        await discord_fake.click(alice, board.id, f"variants:continue:{second['id']}:2")
        await discord_fake.wait_for(
            lambda: "continue from variant 2" in " ".join(
                m.content for i in discord_fake.interactions.values() for m in i.messages()),
            10, what="the continue answer",
        )
        await discord_fake.say(alice, thread, "with fireworks")
        await discord_fake.wait_for(
            lambda: any(r["prompt"] == "with fireworks" and r["status"] == "done"
                        for r in turn_rows(settings)), 15, what="the reply's result",
        )
        first = next(r for r in turn_rows(settings) if r["variant_index"] == 1)
        await discord_fake.click(alice, board.id, f"variants:reroll:{first['id']}:0")
        await discord_fake.wait_for(
            lambda: len([r for r in turn_rows(settings) if r["status"] == "done"]) == 6, 15,
            what="the rerolled set",
        )
    rows = turn_rows(settings)
    sets = {}
    for r in rows:
        if r["variant_group"] is not None:
            sets.setdefault(r["variant_group"], []).append(r)
    assert [len(s) for s in sets.values()] == [2, 2]
    assert all(r["parent_id"] == rows[0]["id"] and r["prompt"] == "at night"
               for s in sets.values() for r in s)
    reply = next(r for r in rows if r["prompt"] == "with fireworks")
    assert reply["parent_id"] == second["id"]


async def test_cancel_stops_the_whole_set(discord_fake, openai_fake, make_settings):
    openai_fake.latency = 30
    alice = discord_fake.add_user("alice")
    settings = make_settings(**PARALLEL)
    async with running(settings):
        thread = await start_conversation(discord_fake, alice, "a slow sunrise", variants=3)
        board = await board_when(discord_fake, thread, lambda m: any(
            i.startswith("imagine:cancel") for i in custom_ids(m)), "the board with Cancel")
        [cancel] = [i for i in custom_ids(board) if i.startswith("imagine:cancel")]
        await discord_fake.click(alice, board.id, cancel)
        await discord_fake.wait_for(
            lambda: [r["status"] for r in turn_rows(settings)] == ["cancelled"] * 3, 20,
            what=f"three cancelled turns {[r['status'] for r in turn_rows(settings)]}",
        )
        board = await board_when(discord_fake, thread, lambda m: marks(m) == ["❌"] * 3,
                                 "the board showing the set cancelled")
    assert "Cancelled" in board.content


async def test_a_set_interrupted_by_a_restart_finishes_on_its_board(
    discord_fake, openai_fake, make_settings
):
    openai_fake.latency = 2.0
    alice = discord_fake.add_user("alice")
    settings = make_settings(shutdown_grace_seconds=0.2, **PARALLEL)
    runner = BotRunner(settings)
    await runner.start()
    try:
        thread = await start_conversation(discord_fake, alice, "a night train", variants=2)
        await discord_fake.wait_for(
            lambda: len([r for r in turn_rows(settings) if r["response_id"]]) == 2, 10,
            what="both siblings started",
        )
    finally:
        await runner.stop()
    assert all(not r["finished_at"] for r in turn_rows(settings))
    async with running(settings):
        board = await board_when(discord_fake, thread, lambda m: len(fulls(m)) == 2,
                                 "the board with both images", timeout=20)
    rows = turn_rows(settings)
    assert [r["status"] for r in rows] == ["done", "done"]
    assert {r["progress_message_id"] for r in rows} == {board.id}  # one board, edited
    assert len(openai_fake.create_requests()) == 2  # resumed by response id, not asked again
    boards = [m for m in discord_fake.messages(thread) if "variants" in m.content]
    assert len(boards) == 1


async def test_every_image_of_a_sibling_reaches_the_thread(discord_fake, openai_fake, make_settings):
    openai_fake.images_per_response = 2
    alice = discord_fake.add_user("alice")
    settings = make_settings(**PARALLEL)
    async with running(settings):
        thread = await start_conversation(discord_fake, alice, "twin peaks", variants=2)
        await discord_fake.wait_for(
            lambda: len([a for m in discord_fake.messages(thread) for a in fulls(m)]) == 4, 15,
            what="four images in the thread",
        )
    rows = turn_rows(settings)
    names = sorted(a.filename for m in discord_fake.messages(thread) for a in fulls(m))
    assert names == sorted(f"imagine-{r['id']}-{n}.png" for r in rows for n in (1, 2))
    assert all(len(json.loads(r["images"])) == 2 for r in turns_done(settings, 2))


def turns_done(settings, count: int) -> list[dict]:
    rows = [r for r in turn_rows(settings) if r["status"] == "done"]
    assert len(rows) == count
    return rows


async def test_the_refine_form_asks_for_variants(discord_fake, openai_fake, make_settings):
    alice = discord_fake.add_user("alice")
    settings = make_settings(**PARALLEL)
    async with running(settings):
        thread = await start_conversation(discord_fake, alice, "a harbour")
        [first] = await wait_results(discord_fake, thread, 1)
        wrong = await discord_fake.click(alice, first.id, "imagine:refine:1")
        refused = await discord_fake.submit_modal(alice, wrong, {"instruction": "at dawn",
                                                                 "variants": "7"})
        await discord_fake.wait_for(
            lambda: any("1 to 4" in m.content for m in refused.messages()), 10,
            what="the refusal of 7 variants",
        )
        click = await discord_fake.click(alice, first.id, "imagine:refine:1")
        await discord_fake.submit_modal(alice, click, {"instruction": "at dawn", "variants": "3"})
        await board_when(discord_fake, thread, lambda m: len(fulls(m)) == 3, "three variants")
    rows = turn_rows(settings)
    assert [r["prompt"] for r in rows] == ["a harbour"] + ["at dawn"] * 3
    assert all(r["parent_id"] == rows[0]["id"] and r["kind"] == "branch" for r in rows[1:])


async def test_a_variant_board_waits_out_a_discord_outage(discord_fake, openai_fake, make_settings):
    """Every message send and edit fails (503) for ~5 s as the variants arrive: once Discord is
    back the one board shows both images, and nothing is generated twice."""
    openai_fake.latency = 1.0
    alice = discord_fake.add_user("alice")
    settings = make_settings(**PARALLEL, default_partial_images=0)
    async with running(settings):
        thread = await start_conversation(discord_fake, alice, "two foxes", variants=2)
        await discord_fake.wait_for(
            lambda: len(rows := turn_rows(settings)) == 2
            and all(r["progress_message_id"] for r in rows), 10, what="the board posted")
        for method, path in (("POST", r"/channels/\d+/messages$"),
                             ("PATCH", r"/channels/\d+/messages/\d+$")):
            discord_fake.outage(method, path, 5.0)
        board = await board_when(discord_fake, thread, lambda m: len(fulls(m)) == 2,
                                 "the board with both images", timeout=30)
        await quiet(discord_fake, openai_fake)
    rows = turn_rows(settings)
    assert [r["status"] for r in rows] == ["done", "done"], rows
    assert all(json.loads(r["message_ids"])[0] == board.id for r in rows)
    boards = [m for m in discord_fake.messages(thread) if not m.deleted
              and any(a.filename.startswith("variants-") for a in m.attachments)]
    assert boards == [board]
    assert any(r.status == 503 and r.files for r in discord_fake.request_log)
    assert openai_fake.generations == 2
