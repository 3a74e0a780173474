"""Never lose a turn: faults of OpenAI, Discord, the database and the process itself,
each injected through the fakes while the real bot runs. Every test checks what users see (the
thread), what the store recorded, and how many generations were paid for."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from typing import Any

import openai
import pytest

from tests.e2e.harness import (
    BotRunner,
    answer,
    bot_texts,
    custom_ids,
    image_attachments,
    quiet,
    results,
    running,
    sqlite_write_lock,
    start_conversation,
    turn_rows,
    wait_results,
)
from tests.fakes.discord_server import FakeDiscord, FakeMessage
from tests.fakes.openai_server import FakeOpenAI, Fault, read_lineage

pytestmark = pytest.mark.both_backends

MODERATION_TEXT = "safety system blocked this request"
QUOTA_TEXT = "Image generation is unavailable right now"
TIMEOUT_TEXT = "took too long to answer"


# ---------------------------------------------------------------------------------- helpers
async def wait_turns(fake: FakeDiscord, settings: Any, predicate, what: str,
                     timeout: float = 15.0) -> list[dict[str, Any]]:
    """Poll the store until `predicate(rows)` holds; returns the rows."""
    return await fake.wait_for(
        lambda: (rows if predicate(rows := turn_rows(settings)) else None), timeout, what=what
    )


async def wait_terminal(fake: FakeDiscord, settings: Any, count: int,
                        timeout: float = 15.0) -> list[dict[str, Any]]:
    return await wait_turns(
        fake, settings,
        lambda rows: len(rows) >= count
        and all(r["status"] in ("done", "failed", "cancelled") for r in rows),
        f"{count} turn(s) in a terminal state", timeout,
    )


async def wait_response_recorded(fake: FakeDiscord, settings: Any, turn_index: int = 0,
                                 timeout: float = 10.0) -> str:
    """Wait until the bot has stored the response id of a turn (response.created arrived)."""
    rows = await wait_turns(
        fake, settings,
        lambda rows: len(rows) > turn_index and rows[turn_index]["response_id"] is not None,
        "the response id to be recorded", timeout,
    )
    return rows[turn_index]["response_id"]


async def wait_progress_posted(fake: FakeDiscord, settings: Any, count: int = 1) -> None:
    """Wait until the first `count` turns' progress messages are posted and recorded (the image
    is asked for first, so a response id can be recorded before them)."""
    await wait_turns(
        fake, settings,
        lambda rows: len(rows) >= count and all(r["progress_message_id"] for r in rows[:count]),
        "the progress messages to be recorded", 10.0,
    )


def versions(message: FakeMessage) -> list[str]:
    """Every content a message has shown, oldest first (edits included)."""
    return [v.content for v in message.edits] + [message.content]


def bot_messages(fake: FakeDiscord, channel_id: int) -> list[FakeMessage]:
    bot_id = int(fake.bot_user["id"])
    return [m for m in fake.messages(channel_id) if not m.deleted and m.author_id == bot_id]


async def first_sequence_number(openai_fake: FakeOpenAI, response_id: str, event_type: str) -> int:
    """Replay a finished background response's stream from its start, as any API client may,
    and return the `sequence_number` of its first `event_type` event."""
    from tests.e2e.conftest import SECRET_KEY  # the bot's account: its responses are its own

    async with openai.AsyncOpenAI(base_url=openai_fake.base_url, api_key=SECRET_KEY,
                                  max_retries=0) as client:
        stream = await client.responses.retrieve(response_id, stream=True)
        async with stream:
            async for event in stream:
                if event.type == event_type:
                    return event.sequence_number
    raise AssertionError(f"{response_id} streamed no {event_type} event")


async def still_serving(fake: FakeDiscord, prompt: str = "a lighthouse at dawn") -> None:
    """Another user starts another conversation and gets an image."""
    other = fake.add_user(f"other-{time.monotonic_ns()}")
    thread_id = await start_conversation(fake, other, prompt)
    await wait_results(fake, thread_id, 1)


# ---------------------------------------------------------------------------------- OpenAI
@pytest.mark.one_backend
async def test_rate_limited_twice_then_succeeds(discord_fake, openai_fake, make_settings):
    settings = make_settings(progress_edit_interval=0.0)
    openai_fake.add_fault(Fault.rate_limit(retry_after=0.3))
    openai_fake.add_fault(Fault.rate_limit(retry_after=0.3))
    alice = discord_fake.add_user("alice")
    async with running(settings):
        thread_id = await start_conversation(discord_fake, alice, "a fox under the aurora")
        [result] = await wait_results(discord_fake, thread_id, 1)
        await quiet(discord_fake, openai_fake)
        assert len(results(discord_fake, thread_id)) == 1

    assert len(openai_fake.create_requests()) == 3
    assert openai_fake.generations == 1
    shown = versions(result)
    assert any("retrying" in text for text in shown), shown
    assert "(attempt 2)" in "\n".join(shown)
    assert read_lineage(image_attachments(result)[0].data) == ["a fox under the aurora"]
    [row] = turn_rows(settings)
    assert row["status"] == "done" and row["error_kind"] is None


@pytest.mark.one_backend
async def test_hung_request_times_out_and_is_retried(discord_fake, openai_fake, make_settings):
    settings = make_settings(request_timeout_seconds=0.5)
    openai_fake.add_fault(Fault.hang(5.0))
    alice = discord_fake.add_user("alice")
    async with running(settings):
        thread_id = await start_conversation(discord_fake, alice, "a slow snail")
        await wait_results(discord_fake, thread_id, 1)
        await quiet(discord_fake, openai_fake)
        assert len(results(discord_fake, thread_id)) == 1
    assert len(openai_fake.create_requests()) == 2
    # the hung request never became a generation: the client had gone when the pause ended
    assert openai_fake.generations == 1
    assert [r["status"] for r in turn_rows(settings)] == ["done"]


@pytest.mark.one_backend
async def test_hung_request_without_retries_says_timeout(discord_fake, openai_fake, make_settings):
    settings = make_settings(request_timeout_seconds=0.5, retry_max_attempts=0)
    openai_fake.add_fault(Fault.hang(5.0))
    alice = discord_fake.add_user("alice")
    async with running(settings):
        thread_id = await start_conversation(discord_fake, alice, "a slow snail")
        [row] = await wait_terminal(discord_fake, settings, 1)
        await discord_fake.wait_for(
            lambda: any(TIMEOUT_TEXT in t for t in bot_texts(discord_fake, thread_id)), 5,
            what="the timeout message",
        )
        await still_serving(discord_fake)
    assert row["status"] == "failed" and row["error_kind"] == "timeout"
    assert results(discord_fake, thread_id) == []
    assert len(openai_fake.create_requests()) == 2  # the hung one, then the other user's


@pytest.mark.one_backend
@pytest.mark.parametrize(
    ("event_type", "previews"),
    [
        ("response.created", 0),
        ("response.image_generation_call.partial_image", 2),
    ],
    ids=["after-created", "after-partial-image"],
)
async def test_cut_stream_resumes_the_same_generation(
    discord_fake, openai_fake, make_settings, event_type, previews
):
    settings = make_settings(default_partial_images=previews)
    openai_fake.latency = 0.3
    openai_fake.add_fault(Fault.cut_after(event_type))
    alice = discord_fake.add_user("alice")
    async with running(settings):
        thread_id = await start_conversation(discord_fake, alice, "a paper boat on a river")
        [result] = await wait_results(discord_fake, thread_id, 1)
        await quiet(discord_fake, openai_fake)
        assert len(results(discord_fake, thread_id)) == 1

    assert len(openai_fake.create_requests()) == 1
    assert openai_fake.generations == 1
    [row] = turn_rows(settings)
    assert row["status"] == "done"
    resumes = [
        r for r in openai_fake.requests
        if r.method == "GET" and r.path == f"/v1/responses/{row['response_id']}"
        and r.query.get("stream") == "true"
    ]
    assert len(resumes) == 1
    # the stream was cut right after the first `event_type` event: the resume asks for what
    # came after exactly that event, so nothing is read twice and nothing is skipped
    cut_at = await first_sequence_number(openai_fake, row["response_id"], event_type)
    assert resumes[0].query["starting_after"] == str(cut_at)
    assert read_lineage(image_attachments(result)[0].data) == ["a paper boat on a river"]


# Every other safety outcome (failed item, `response.failed` with a policy code) is the same
# moderation error once classified: test_image_client.py::test_every_safety_outcome_is_a_...;
# a failed item end to end: test_moderation_category_is_named.
SAFETY_FAULTS = {"http": Fault.moderation("http")}


@pytest.mark.one_backend
@pytest.mark.parametrize("shape", list(SAFETY_FAULTS))
async def test_moderation_block_is_shown_and_not_retried(
    discord_fake, openai_fake, make_settings, shape
):
    settings = make_settings()
    openai_fake.add_fault(SAFETY_FAULTS[shape])
    alice = discord_fake.add_user("alice")
    async with running(settings):
        thread_id = await start_conversation(discord_fake, alice, "something forbidden")
        [row] = await wait_terminal(discord_fake, settings, 1)
        await discord_fake.wait_for(
            lambda: any(MODERATION_TEXT in t for t in bot_texts(discord_fake, thread_id)), 5,
            what="the moderation message in the thread",
        )
        await quiet(discord_fake, openai_fake)
    assert row["status"] == "failed"
    assert row["error_kind"] == "moderation"
    assert len(openai_fake.create_requests()) == 1
    assert openai_fake.generations == 0
    assert results(discord_fake, thread_id) == []
    # the failure replaced the progress message: one bot message, no retry button
    [shown] = [m for m in bot_messages(discord_fake, thread_id) if MODERATION_TEXT in m.content]
    assert not any("retry" in str(c).lower() for c in shown.components)


@pytest.mark.one_backend
async def test_moderation_category_is_named(discord_fake, openai_fake, make_settings):
    settings = make_settings()
    openai_fake.add_fault(Fault.moderation("item", categories=("violence",)))
    alice = discord_fake.add_user("alice")
    async with running(settings):
        thread_id = await start_conversation(discord_fake, alice, "something forbidden")
        await wait_terminal(discord_fake, settings, 1)
        await discord_fake.wait_for(
            lambda: any("(category: violence)" in t for t in bot_texts(discord_fake, thread_id)),
            5, what="the moderation message naming its category",
        )
    assert len(openai_fake.create_requests()) == 1


@pytest.mark.one_backend
async def test_a_refusal_shows_the_models_words(discord_fake, openai_fake, make_settings):
    settings = make_settings()
    openai_fake.add_fault(Fault.refusal("I can't help with making that image."))
    alice = discord_fake.add_user("alice")
    async with running(settings):
        thread_id = await start_conversation(discord_fake, alice, "something it refuses")
        [row] = await wait_terminal(discord_fake, settings, 1)
        await discord_fake.wait_for(
            lambda: any("The model declined: I can't help with making that image." in t
                        for t in bot_texts(discord_fake, thread_id)),
            5, what="the refusal in the thread",
        )
        await quiet(discord_fake, openai_fake)
        texts = bot_texts(discord_fake, thread_id)
    assert not any("returned nothing" in t for t in texts), texts
    assert row["status"] == "failed" and row["error_kind"] == "refused"
    assert len(openai_fake.create_requests()) == 1
    assert results(discord_fake, thread_id) == []


def openai_calls(fake: Any) -> dict[str, int]:
    """How many creates, cancels, stream resumes and plain retrieves the bot sent."""
    counts = {"create": 0, "cancel": 0, "resume": 0, "retrieve": 0}
    for r in fake.requests:
        if r.method == "POST" and r.path == "/v1/responses":
            counts["create"] += 1
        elif r.method == "POST" and r.path.endswith("/cancel"):
            counts["cancel"] += 1
        elif r.method == "GET" and r.path.startswith("/v1/responses/"):
            counts["resume" if r.query.get("stream") == "true" else "retrieve"] += 1
    return counts


@pytest.mark.one_backend
@pytest.mark.parametrize(
    ("fault", "cancels"),
    # the other shapes (`response.failed` with server_error or rate_limit_exceeded, an error event
    # with a null code) take the same path once the client has its result: test_image_client.py
    [(Fault.error_event("server_error"), 1)],
    ids=["error-event"],
)
async def test_a_retryable_failure_of_a_background_response_starts_a_new_request(
    discord_fake, openai_fake, make_settings, fault, cancels
):
    settings = make_settings()
    openai_fake.add_fault(fault)
    alice = discord_fake.add_user("alice")
    async with running(settings):
        thread_id = await start_conversation(discord_fake, alice, "a kite over the dunes")
        [result] = await wait_results(discord_fake, thread_id, 1)
        await quiet(discord_fake, openai_fake)
        assert len(results(discord_fake, thread_id)) == 1
    assert openai_calls(openai_fake) == {"create": 2, "cancel": cancels, "resume": 0, "retrieve": 0}
    assert openai_fake.generations == 1
    [row] = turn_rows(settings)
    assert row["status"] == "done"
    assert openai_fake.responses[row["response_id"]]["status"] == "completed"
    assert read_lineage(image_attachments(result)[0].data) == ["a kite over the dunes"]


@pytest.mark.one_backend
async def test_a_response_stuck_in_queued_is_cancelled_and_recreated(
    discord_fake, openai_fake, make_settings
):
    settings = make_settings(queued_deadline_seconds=0.5)
    openai_fake.add_fault(Fault.stuck_queued())
    alice = discord_fake.add_user("alice")
    async with running(settings):
        thread_id = await start_conversation(discord_fake, alice, "a kite over the dunes")
        await wait_results(discord_fake, thread_id, 1)
        await quiet(discord_fake, openai_fake)
        assert len(results(discord_fake, thread_id)) == 1
    assert openai_calls(openai_fake) == {"create": 2, "cancel": 1, "resume": 0, "retrieve": 1}
    statuses = sorted(r["status"] for r in openai_fake.responses.values())
    assert statuses == ["cancelled", "completed"]
    assert openai_fake.generations == 1
    [row] = turn_rows(settings)
    assert row["status"] == "done"


def noise_png(width: int, height: int) -> bytes:
    """A photo-like (incompressible) PNG of about width*height*3 bytes, stored uncompressed."""
    import io
    import os

    from PIL import Image

    out = io.BytesIO()
    Image.frombytes("RGB", (width, height), os.urandom(width * height * 3)).save(
        out, "PNG", compress_level=0
    )
    return out.getvalue()


@pytest.mark.one_backend
async def test_a_rebuilt_chain_with_large_inputs_keeps_to_the_request_limits(
    discord_fake, openai_fake, make_settings
):
    # Images and vision guide: at most 50 MB of image bytes per request. Three 17.4 MB photos
    # plus the parent image that a rebuilt chain re-supplies would be ~54 MB as they are.
    settings = make_settings()
    alice = discord_fake.add_user("alice", nitro="nitro")  # may attach files over 10 MiB
    photo = noise_png(2900, 2000)
    async with running(settings):
        thread_id = await start_conversation(discord_fake, alice, "a lighthouse")
        await wait_results(discord_fake, thread_id, 1)
        openai_fake.forget_all()  # the reply must rebuild the chain from the stored image
        await discord_fake.say(alice, thread_id, "blend in these photos", attachments=[
            (f"photo{n}.png", photo, "image/png") for n in range(3)
        ])
        await wait_results(discord_fake, thread_id, 2, timeout=60)
    last = openai_fake.create_requests()[-1]
    sent = [
        len(base64.b64decode(part["image_url"].partition(",")[2]))
        for part in last["input"][-1]["content"] if part["type"] == "input_image"
    ]
    assert len(sent) == 4  # the parent image and the three photos
    assert max(sent) <= 20_000_000 and sum(sent) <= 50_000_000
    assert "previous_response_id" not in last
    assert openai_fake.generations == 2
    rows = turn_rows(settings)
    assert [r["status"] for r in rows] == ["done", "done"] and rows[1]["rerooted"] == 1


@pytest.mark.one_backend
async def test_forgotten_parent_response_rebuilds_the_chain(
    discord_fake, openai_fake, make_settings
):
    settings = make_settings()
    alice = discord_fake.add_user("alice")
    async with running(settings):
        thread_id = await start_conversation(discord_fake, alice, "a castle on a hill")
        await wait_results(discord_fake, thread_id, 1)
        head = turn_rows(settings)[0]["response_id"]
        openai_fake.forget(head)  # expired or deleted on OpenAI's side
        await discord_fake.say(alice, thread_id, "add a dragon")
        results_ = await wait_results(discord_fake, thread_id, 2)

    requests = openai_fake.create_requests()
    assert len(requests) == 3
    assert requests[1]["previous_response_id"] == head  # tried the chain first
    rebuilt = requests[2]
    assert "previous_response_id" not in rebuilt
    parts = [p for item in rebuilt["input"] if item.get("role") == "user" for p in item["content"]]
    assert any(p["type"] == "input_image" for p in parts)
    assert any("a castle on a hill" in p.get("text", "") for p in parts)
    rows = turn_rows(settings)
    assert [r["status"] for r in rows] == ["done", "done"]
    assert rows[1]["rerooted"] == 1
    assert rows[1]["response_id"] not in (None, head)
    assert read_lineage(image_attachments(results_[1])[0].data) == [
        "a castle on a hill", "add a dragon",
    ]
    assert "chain rebuilt" not in results_[1].content  # in Details only


@pytest.mark.one_backend
@pytest.mark.parametrize(
    "fault", [Fault.insufficient_quota(), Fault.error_event("insufficient_quota")],
    ids=["http-429", "mid-stream"],  # mid-stream: the recorded openai-error.1.chunks.txt
)
async def test_insufficient_quota_tells_users_and_operators(
    discord_fake, openai_fake, make_settings, caplog, fault
):
    caplog.set_level(logging.INFO)
    settings = make_settings()
    openai_fake.add_fault(fault)
    alice = discord_fake.add_user("alice")
    async with running(settings):
        thread_id = await start_conversation(discord_fake, alice, "a golden coin")
        [row] = await wait_terminal(discord_fake, settings, 1)
        await discord_fake.wait_for(
            lambda: any(QUOTA_TEXT in t for t in bot_texts(discord_fake, thread_id)), 5,
            what="the quota message",
        )
    assert row["status"] == "failed" and row["error_kind"] == "quota"
    assert len(openai_fake.create_requests()) == 1
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("quota" in r.getMessage().lower() for r in errors), [r.getMessage() for r in errors]


@pytest.mark.one_backend
async def test_an_image_whose_tokens_were_not_reported_is_booked_by_the_published_table(
    discord_fake, openai_fake, make_settings
):
    """The recorded real image stream has no `tool_usage`: the image is booked by the image
    generation guide's per-image tokens, and Details and /usage say the cost is estimated."""
    settings = make_settings(default_quality="high", default_size="1024x1024",
                             default_partial_images=1)
    openai_fake.report_tool_usage = False
    alice = discord_fake.add_user("alice")
    prompt = "a brass telescope on a tripod"  # 29 characters: ~8 tokens at 4 a token
    async with running(settings):
        thread_id = await start_conversation(discord_fake, alice, prompt)
        [result] = await wait_results(discord_fake, thread_id, 1)
        await wait_terminal(discord_fake, settings, 1)
        details = await discord_fake.click(alice, result.id, "imagine:details:1")
        embed = await discord_fake.wait_for(
            lambda: next((m.embeds[0] for m in details.ephemeral_messages if m.embeds), None)
            or next((c["data"]["embeds"][0] for c in details.callbacks
                     if c.get("data", {}).get("embeds")), None)
        )
        usage = await answer(discord_fake, await discord_fake.slash(alice, thread_id, "usage"))
    [row] = turn_rows(settings)
    stored = openai_fake.responses[row["response_id"]]
    assert "tool_usage" not in stored
    mainline = stored["usage"]
    # gpt-5.5 $5 / $30 per 1M; gpt-image-2 text in $5, image out $30 per 1M; a high 1024x1024
    # image is 4160 output tokens, a partial image 100 more (the image generation guide)
    expected = (mainline["input_tokens"] * 5 + mainline["output_tokens"] * 30
                + 8 * 5 + (4160 + 100) * 30) / 1e6
    assert row["cost_usd"] == pytest.approx(expected)
    assert row["cost_usd"] > 0.12  # not the mainline's ~$0.001 alone
    [cost] = [f["value"] for f in embed["fields"] if f["name"] == "Estimated cost"]
    assert cost.startswith(f"${row['cost_usd']:.4f} (image tokens not reported by the API")
    assert "Some of these costs are estimates" in usage.content


# ---------------------------------------------------------------------------------- Discord
@pytest.mark.one_backend
@pytest.mark.parametrize(
    ("status", "progress_deleted"),
    [(429, False), (429, True), (503, False), (503, True), (500, False)],
    ids=["429-edit", "429-post", "503-edit", "503-post", "500-edit"],
)
async def test_discord_refuses_the_upload_once(
    discord_fake, openai_fake, make_settings, status, progress_deleted
):
    """The result upload (an edit of the progress message, or a new message when the progress
    message is gone) meets a 429 / 5xx once; the result still arrives, once."""
    settings = make_settings(default_partial_images=0, progress_edit_interval=0.0)
    openai_fake.latency = 0.8
    alice = discord_fake.add_user("alice")
    async with running(settings):
        thread_id = await start_conversation(discord_fake, alice, "a lantern in fog")
        await wait_response_recorded(discord_fake, settings)
        await asyncio.sleep(0.3)  # past the progress edits; the next write is the upload
        progress_id = turn_rows(settings)[0]["progress_message_id"]
        if progress_deleted:
            await discord_fake.delete_message(thread_id, progress_id)
            method, path = "POST", rf"/channels/{thread_id}/messages$"
        else:
            method, path = "PATCH", rf"/channels/{thread_id}/messages/{progress_id}$"
        discord_fake.fail_next(method, path, status, retry_after=0.1 if status == 429 else None)
        [result] = await wait_results(discord_fake, thread_id, 1, timeout=20)
        await quiet(discord_fake, openai_fake)
        assert len(results(discord_fake, thread_id)) == 1

    uploads = [
        r for r in discord_fake.request_log
        if r.method == method and r.files and f"/channels/{thread_id}/messages" in r.path
    ]
    assert [r.status for r in uploads][:2] == [status, 200], [(r.path, r.status) for r in uploads]
    assert len([r for r in uploads if r.status == 200]) == 1
    [row] = turn_rows(settings)
    assert row["status"] == "done"
    assert result.id in json.loads(row["message_ids"])
    assert (result.id == progress_id) is (not progress_deleted)
    assert openai_fake.generations == 1


@pytest.mark.parametrize("drop", [False, True], ids=["503", "dropped"])
async def test_a_discord_outage_while_the_result_is_posted_shows_the_paid_image_once(
    discord_fake, openai_fake, make_settings, drop
):
    """Every message send and edit fails (503, or the connection closes unanswered) from before
    the image is ready until ~9 s later: the paid result is kept and posted when Discord is
    back, once, and nothing is generated again."""
    settings = make_settings(default_partial_images=0)
    openai_fake.latency = 1.0
    alice = discord_fake.add_user("alice")
    async with running(settings):
        thread_id = await start_conversation(discord_fake, alice, "a lighthouse in a storm")
        await wait_response_recorded(discord_fake, settings)
        await wait_progress_posted(discord_fake, settings)
        began = time.monotonic()
        for method, path in (("POST", r"/channels/\d+/messages$"),
                             ("PATCH", r"/channels/\d+/messages/\d+$")):
            discord_fake.outage(method, path, 9.0, drop=drop)
        [shown] = await wait_results(discord_fake, thread_id, 1, timeout=40)
        assert time.monotonic() - began >= 8.5  # (shown only once Discord answered again)
        await quiet(discord_fake, openai_fake)
        assert len(results(discord_fake, thread_id)) == 1
    refused = [r for r in discord_fake.request_log
               if r.method == "PATCH" and r.files and r.status in (None, 503)]
    assert refused, "the outage never met the result's upload"
    [row] = turn_rows(settings)
    assert row["status"] == "done", row
    assert json.loads(row["message_ids"]) == [shown.id]
    assert read_lineage(image_attachments(shown)[0].data) == ["a lighthouse in a storm"]
    assert len(openai_fake.create_requests()) == 1
    assert openai_fake.generations == 1


async def test_an_outage_from_before_the_progress_message_still_brings_the_image(
    discord_fake, openai_fake, make_settings
):
    """Discord fails every message send (503) from before the turn's progress message until ~4 s
    later: the generation goes on, and the image is posted (as a new message) once Discord is
    back; 1 generation."""
    settings = make_settings(default_partial_images=0)
    openai_fake.latency = 3.0  # (the progress message gives up first)
    alice = discord_fake.add_user("alice")
    async with running(settings):
        discord_fake.outage("POST", r"/channels/\d+/messages$", 4.0)
        thread_id = await start_conversation(discord_fake, alice, "a snail on a leaf")
        [row] = await wait_terminal(discord_fake, settings, 1, timeout=30)
        await quiet(discord_fake, openai_fake)
        [shown] = results(discord_fake, thread_id)
    sends = [r for r in discord_fake.request_log if r.method == "POST"
             and r.path.endswith(f"/channels/{thread_id}/messages")]
    assert sends[0].status == 503  # the progress message met the outage
    assert row["status"] == "done", row
    assert json.loads(row["message_ids"]) == [shown.id]
    assert openai_fake.generations == 1


async def test_a_result_whose_answer_was_lost_is_posted_once(
    discord_fake, openai_fake, make_settings
):
    """The result goes out as a new message (its progress message was deleted) while, for ~3 s,
    Discord makes each message but the connection drops before the answer: the bot sends it
    again until it hears back, and the message exists once (its nonce)."""
    settings = make_settings(default_partial_images=0)
    openai_fake.latency = 1.0
    alice = discord_fake.add_user("alice")
    async with running(settings):
        thread_id = await start_conversation(discord_fake, alice, "a tin robot")
        await wait_response_recorded(discord_fake, settings)
        await wait_progress_posted(discord_fake, settings)
        await discord_fake.delete_message(thread_id, turn_rows(settings)[0]["progress_message_id"])
        discord_fake.outage("POST", rf"/channels/{thread_id}/messages$", 3.0, drop=True,
                            handled=True)
        [row] = await wait_terminal(discord_fake, settings, 1, timeout=30)
        await quiet(discord_fake, openai_fake)
        [shown] = results(discord_fake, thread_id)
    sends = [r for r in discord_fake.request_log if r.method == "POST" and r.files
             and r.path.endswith(f"/channels/{thread_id}/messages")]
    assert len(sends) >= 2 and sends[0].status is None  # sent again after a lost answer
    assert row["status"] == "done" and json.loads(row["message_ids"]) == [shown.id]
    assert openai_fake.generations == 1


async def test_an_outage_longer_than_the_retries_leaves_a_retry_that_posts_the_paid_image(
    discord_fake, openai_fake, make_settings
):
    """Discord fails every send and edit for longer than DELIVERY_RETRY_SECONDS: the turn fails,
    and its failure (with Retry) is shown once Discord is back; Retry then posts the image
    already paid for, into the same message, without a second generation."""
    settings = make_settings(default_partial_images=0, delivery_retry_seconds=6.0)
    openai_fake.latency = 1.0
    alice = discord_fake.add_user("alice")
    async with running(settings):
        thread_id = await start_conversation(discord_fake, alice, "a kettle on a stove")
        await wait_response_recorded(discord_fake, settings)
        await wait_progress_posted(discord_fake, settings)
        for method, path in (("POST", r"/channels/\d+/messages$"),
                             ("PATCH", r"/channels/\d+/messages/\d+$")):
            discord_fake.outage(method, path, 11.0)
        [row] = await wait_terminal(discord_fake, settings, 1, timeout=20)
        assert (row["status"], row["error_kind"]) == ("failed", "upload_failed"), row
        progress = discord_fake.message(row["progress_message_id"])
        await discord_fake.wait_for(
            lambda: f"imagine:retry:{row['id']}" in custom_ids(progress), 15,
            what="the failure, with Retry, in the progress message")
        assert results(discord_fake, thread_id) == []
        await discord_fake.click(alice, progress.id, f"imagine:retry:{row['id']}")
        [shown] = await wait_results(discord_fake, thread_id, 1, timeout=20)
        await quiet(discord_fake, openai_fake)
        assert len(results(discord_fake, thread_id)) == 1
    assert shown.id == progress.id
    rows = turn_rows(settings)
    assert [(r["id"], r["status"]) for r in rows] == [(row["id"], "done")]
    assert openai_fake.generations == 1 and len(openai_fake.create_requests()) == 1


async def test_cancel_while_a_paid_result_waits_for_discord_is_too_late(
    discord_fake, openai_fake, make_settings
):
    """Cancel clicked while the image, already paid for, waits out a Discord outage: the image
    is finished (so says the answer), and it is shown once Discord is back."""
    settings = make_settings(default_partial_images=0)
    openai_fake.latency = 1.0
    alice = discord_fake.add_user("alice")
    async with running(settings):
        thread_id = await start_conversation(discord_fake, alice, "a glass of water")
        await wait_response_recorded(discord_fake, settings)
        await wait_progress_posted(discord_fake, settings)
        for method, path in (("POST", r"/channels/\d+/messages$"),
                             ("PATCH", r"/channels/\d+/messages/\d+$")):
            discord_fake.outage(method, path, 4.0)
        await discord_fake.wait_for(
            lambda: any(r.method == "PATCH" and r.files and r.status == 503
                        for r in discord_fake.request_log), 10, what="a refused upload")
        [row] = turn_rows(settings)
        click = await discord_fake.click(alice, row["progress_message_id"],
                                         f"imagine:cancel:{row['id']}")
        reply = await answer(discord_fake, click)
        [shown] = await wait_results(discord_fake, thread_id, 1, timeout=20)
        await quiet(discord_fake, openai_fake)
    assert reply.ephemeral and reply.content == "That image is already finished."
    [row] = turn_rows(settings)
    assert row["status"] == "done" and json.loads(row["message_ids"]) == [shown.id]
    assert openai_fake.generations == 1


async def test_retry_of_a_result_discord_refused_posts_the_paid_image(
    discord_fake, openai_fake, make_settings
):
    """The upload is refused for good (no Attach Files in the thread): the turn fails with the
    reason and a Retry button; once the permission is back, Retry posts the image already paid
    for, without a second generation."""
    settings = make_settings(default_partial_images=0)
    openai_fake.latency = 1.0
    alice = discord_fake.add_user("alice")
    async with running(settings):
        thread_id = await start_conversation(discord_fake, alice, "a paper boat")
        await wait_response_recorded(discord_fake, settings)
        await wait_progress_posted(discord_fake, settings)
        discord_fake.deny(thread_id, "attach_files")
        [row] = await wait_terminal(discord_fake, settings, 1)
        assert (row["status"], row["error_kind"]) == ("failed", "missing_permissions"), row
        progress = discord_fake.message(row["progress_message_id"])
        await discord_fake.wait_for(lambda: "Attach Files" in progress.content, 5,
                                    what="the failure in the progress message")
        discord_fake.allow(thread_id, "attach_files")
        await discord_fake.click(alice, progress.id, f"imagine:retry:{row['id']}")
        [shown] = await wait_results(discord_fake, thread_id, 1, timeout=20)
        await quiet(discord_fake, openai_fake)
        assert len(results(discord_fake, thread_id)) == 1
    rows = turn_rows(settings)
    assert [(r["id"], r["status"]) for r in rows] == [(row["id"], "done")]
    assert json.loads(rows[0]["message_ids"]) == [shown.id]
    assert read_lineage(image_attachments(shown)[0].data) == ["a paper boat"]
    assert openai_fake.generations == 1


@pytest.mark.one_backend
async def test_gateway_drop_mid_generation(discord_fake, openai_fake, make_settings):
    """The gateway goes away while a turn runs and a reply is sent while the bot is offline:
    the running turn is delivered once, and the missed reply (replayed on RESUME) runs once."""
    settings = make_settings()
    openai_fake.latency = 1.0
    alice = discord_fake.add_user("alice")
    async with running(settings):
        thread_id = await start_conversation(discord_fake, alice, "a kite over the dunes")
        await wait_response_recorded(discord_fake, settings)
        await discord_fake.drop_gateway(resume=True, hold=True)
        await discord_fake.say(alice, thread_id, "make the kite red")
        await asyncio.sleep(0.2)
        discord_fake.release_gateway()
        await wait_results(discord_fake, thread_id, 2, timeout=20)
        await quiet(discord_fake, openai_fake)
        assert len(results(discord_fake, thread_id)) == 2
    assert discord_fake.gateway.resumed_count >= 1  # the session was resumed, not replaced
    rows = turn_rows(settings)
    assert [r["status"] for r in rows] == ["done", "done"]
    assert len(openai_fake.create_requests()) == 2
    assert openai_fake.generations == 2
    last = results(discord_fake, thread_id)[-1]
    assert read_lineage(image_attachments(last)[0].data) == [
        "a kite over the dunes", "make the kite red",
    ]


@pytest.mark.one_backend
async def test_thread_deleted_mid_generation(discord_fake, openai_fake, make_settings):
    settings = make_settings()
    openai_fake.latency = 0.8
    alice = discord_fake.add_user("alice")
    async with running(settings):
        thread_id = await start_conversation(discord_fake, alice, "a sandcastle")
        await wait_response_recorded(discord_fake, settings)
        await wait_progress_posted(discord_fake, settings)
        await discord_fake.delete_channel(thread_id)
        [row] = await wait_terminal(discord_fake, settings, 1)
        openai_fake.latency = 0.0
        await still_serving(discord_fake)
    assert row["status"] == "failed"
    assert (row["error_detail"] or "").startswith("orphaned"), row["error_detail"]
    assert results(discord_fake, thread_id) == []
    assert openai_fake.generations == 2  # the orphaned one was paid for once, not retried


@pytest.mark.one_backend
async def test_thread_archived_mid_generation_gets_its_result_as_a_new_message(
    discord_fake, openai_fake, make_settings
):
    """An archived thread takes no edits, but a new message unarchives it (Topics → Threads):
    the paid result is posted anew, the stale progress message goes, the record says so."""
    settings = make_settings()
    openai_fake.latency = 0.8
    alice = discord_fake.add_user("alice")
    async with running(settings):
        thread_id = await start_conversation(discord_fake, alice, "a snow globe")
        await wait_response_recorded(discord_fake, settings)
        await wait_progress_posted(discord_fake, settings)
        discord_fake.archive_thread(thread_id)
        [row] = await wait_terminal(discord_fake, settings, 1)
        await quiet(discord_fake, openai_fake)
    assert row["status"] == "done", row
    [shown] = results(discord_fake, thread_id)
    assert json.loads(row["message_ids"]) == [shown.id] and shown.id != row["progress_message_id"]
    assert discord_fake.message(row["progress_message_id"]).deleted
    assert discord_fake.threads[thread_id]["thread_metadata"]["archived"] is False
    assert "archived" in (row["error_detail"] or "")
    assert read_lineage(image_attachments(shown)[0].data) == ["a snow globe"]
    assert openai_fake.generations == 1


@pytest.mark.one_backend
@pytest.mark.parametrize("archived", [False, True], ids=["locked", "locked-and-archived"])
async def test_thread_locked_mid_generation_gets_its_result_in_the_parent_channel(
    discord_fake, openai_fake, make_settings, archived
):
    """In a locked thread a bot without Manage Threads can neither edit nor send (Topics →
    Threads): the paid result goes to the parent channel, mentioning its author, and the record
    says where it went."""
    settings = make_settings()
    openai_fake.latency = 0.8
    alice = discord_fake.add_user("alice")
    async with running(settings):
        thread_id = await start_conversation(discord_fake, alice, "a ship in a bottle")
        await wait_response_recorded(discord_fake, settings)
        await wait_progress_posted(discord_fake, settings)
        discord_fake.lock_thread(thread_id)
        if archived:
            discord_fake.archive_thread(thread_id)
        [row] = await wait_terminal(discord_fake, settings, 1)
        await quiet(discord_fake, openai_fake)
    assert row["status"] == "done", row
    assert results(discord_fake, thread_id) == []
    [shown] = results(discord_fake, discord_fake.text_channel_id)
    assert int(alice["id"]) in shown.mentions and f"<#{thread_id}>" in shown.content
    assert read_lineage(image_attachments(shown)[0].data) == ["a ship in a bottle"]
    assert json.loads(row["message_ids"]) == [shown.id]
    assert f"parent channel {discord_fake.text_channel_id}" in (row["error_detail"] or "")
    assert openai_fake.generations == 1


@pytest.mark.one_backend
@pytest.mark.parametrize("lock", [False, True], ids=["archived", "locked"])
async def test_a_variant_board_survives_its_thread_being_archived_or_locked(
    discord_fake, openai_fake, make_settings, lock
):
    """The same for a set of variants sharing one board: the board is posted anew (archived)
    or in the parent channel with the author mentioned (locked); every sibling is recorded done,
    with where its result went."""
    settings = make_settings(per_user_concurrent=4, per_user_queued=4, max_concurrent_generations=4)
    openai_fake.latency = 0.8
    alice = discord_fake.add_user("alice")
    async with running(settings):
        thread_id = await start_conversation(discord_fake, alice, "two kites", variants=2)
        await wait_response_recorded(discord_fake, settings)
        await wait_progress_posted(discord_fake, settings, 2)
        if lock:
            discord_fake.lock_thread(thread_id)
        else:
            discord_fake.archive_thread(thread_id)
        rows = await wait_terminal(discord_fake, settings, 2)
        await quiet(discord_fake, openai_fake)
    assert [r["status"] for r in rows] == ["done", "done"], rows
    where = discord_fake.text_channel_id if lock else thread_id
    boards = [m for m in fake_boards(discord_fake, where) if not m.deleted]
    assert len(boards) == 1
    [board] = boards
    fulls = sorted(a.filename for a in board.attachments if a.filename.startswith("imagine-"))
    assert fulls == sorted(f"imagine-{r['id']}-1.png" for r in rows)
    assert all(json.loads(r["message_ids"])[0] == board.id for r in rows)
    expected = f"parent channel {discord_fake.text_channel_id}" if lock else "archived"
    assert all(expected in (r["error_detail"] or "") for r in rows), rows
    if lock:
        assert int(alice["id"]) in board.mentions and f"<#{thread_id}>" in board.content
    else:
        assert discord_fake.threads[thread_id]["thread_metadata"]["archived"] is False
    assert openai_fake.generations == 2


def fake_boards(fake: FakeDiscord, channel_id: int) -> list[FakeMessage]:
    """Bot messages in a channel that carry a variant board (its grid image)."""
    return [m for m in bot_messages(fake, channel_id)
            if any(a.filename.startswith("variants-") for a in m.attachments)]


@pytest.mark.one_backend
async def test_expired_interaction_token_does_not_matter(discord_fake, openai_fake, make_settings):
    """The result arrives after the /imagine token expired: the bot posts with its own channel
    messages, never through the interaction webhook."""
    settings = make_settings()
    discord_fake.token_lifetime = 0.6
    openai_fake.latency = 1.2
    alice = discord_fake.add_user("alice")
    async with running(settings):
        before = set(discord_fake.interactions)
        thread_id = await start_conversation(discord_fake, alice, "an hourglass")
        [result] = await wait_results(discord_fake, thread_id, 1)
        [inter_id] = set(discord_fake.interactions) - before
        inter = discord_fake.interactions[inter_id]
        assert time.monotonic() - inter.created_mono > discord_fake.token_lifetime
        await quiet(discord_fake, openai_fake)
    assert inter.errors == []  # nothing was sent through the expired token
    assert result.webhook_id is None
    assert result.author_id == int(discord_fake.bot_user["id"])
    assert [r["status"] for r in turn_rows(settings)] == ["done"]


# ---------------------------------------------------------------------------------- the store
@pytest.mark.sqlite_only
async def test_database_briefly_locked_while_a_turn_finishes(
    discord_fake, openai_fake, make_settings
):
    """Another connection (a backup, an operator's sqlite3 shell) holds the write lock as the
    turn's image arrives: a billed result is recorded before it is posted, so it waits for the
    lock (busy timeout) and is then recorded and shown, once; nothing is lost."""
    settings = make_settings()
    openai_fake.latency = 0.6
    alice = discord_fake.add_user("alice")
    async with running(settings):
        thread_id = await start_conversation(discord_fake, alice, "a locked door")
        await wait_response_recorded(discord_fake, settings)
        await wait_progress_posted(discord_fake, settings)  # (posted beside the request)
        async with sqlite_write_lock(settings.database_path):
            await discord_fake.wait_for(lambda: openai_fake.generations == 1, 10,
                                        what="the image to be generated")
            await quiet(discord_fake, openai_fake, timeout=4)  # the bot has it, and waits
            assert results(discord_fake, thread_id) == []  # not posted before it is recorded
            assert [r["status"] for r in turn_rows(settings)] == ["running"]
        [result] = await wait_results(discord_fake, thread_id, 1)
        rows = await wait_terminal(discord_fake, settings, 1)
        await discord_fake.say(alice, thread_id, "open it")
        await wait_results(discord_fake, thread_id, 2)
        assert len(results(discord_fake, thread_id)) == 2
    assert rows[0]["status"] == "done"
    final = turn_rows(settings)
    assert [r["status"] for r in final] == ["done", "done"]
    assert result.id in json.loads(final[0]["message_ids"])
    assert final[1]["parent_id"] == final[0]["id"]
    assert openai_fake.generations == 2


# ---------------------------------------------------------------------------------- restarts
def command_syncs(fake: FakeDiscord) -> int:
    return sum(1 for r in fake.request_log if r.method == "PUT" and "/commands" in r.path)


async def test_restart_on_the_same_database_continues_the_chain(
    discord_fake, openai_fake, make_settings
):
    settings = make_settings()
    alice = discord_fake.add_user("alice")
    async with running(settings):
        thread_id = await start_conversation(discord_fake, alice, "a tree in spring")
        await wait_results(discord_fake, thread_id, 1)
    stored = turn_rows(settings)[0]["response_id"]
    assert command_syncs(discord_fake) == 1
    async with running(settings):
        await discord_fake.say(alice, thread_id, "now in winter")
        messages = await wait_results(discord_fake, thread_id, 2)
    assert command_syncs(discord_fake) == 1, "unchanged commands are not synced again"
    requests = openai_fake.create_requests()
    assert len(requests) == 2
    assert requests[1]["previous_response_id"] == stored
    assert read_lineage(image_attachments(messages[1])[0].data) == [
        "a tree in spring", "now in winter",
    ]
    rows = turn_rows(settings)
    assert [r["status"] for r in rows] == ["done", "done"]
    assert rows[1]["parent_id"] == rows[0]["id"]


@pytest.mark.wall_clock
async def test_shutdown_keeps_a_long_turn_and_the_restart_resumes_it(
    discord_fake, openai_fake, make_settings
):
    settings = make_settings(shutdown_grace_seconds=0.3)
    openai_fake.latency = 2.5
    alice = discord_fake.add_user("alice")
    runner = BotRunner(settings)
    await runner.start()
    try:
        thread_id = await start_conversation(discord_fake, alice, "a long exposure of stars")
        response_id = await wait_response_recorded(discord_fake, settings)
        await wait_progress_posted(discord_fake, settings)
    finally:
        started = time.monotonic()
        await runner.stop()
    assert time.monotonic() - started < 2.0  # the grace period bounds the shutdown
    [row] = turn_rows(settings)
    assert row["status"] in ("running", "queued")
    assert row["response_id"] == response_id
    assert results(discord_fake, thread_id) == []
    assert openai_fake.responses[response_id]["status"] not in ("cancelled", "failed")
    paused = discord_fake.message(row["progress_message_id"])
    assert "restarting" in paused.content and "> a long exposure of stars" in paused.content

    async with running(settings):
        [result] = await wait_results(discord_fake, thread_id, 1, timeout=20)
        await quiet(discord_fake, openai_fake)
        assert len(results(discord_fake, thread_id)) == 1
    assert len(openai_fake.create_requests()) == 1
    assert openai_fake.generations == 1
    resumed = [r for r in openai_fake.requests
               if r.method == "GET" and r.path == f"/v1/responses/{response_id}"]
    assert resumed, "the restarted bot did not resume the response by its id"
    [row] = turn_rows(settings)
    assert row["status"] == "done" and row["response_id"] == response_id
    assert result.id == row["progress_message_id"]  # the progress message became the result
    assert read_lineage(image_attachments(result)[0].data) == ["a long exposure of stars"]


async def test_a_restart_after_the_resume_window_still_delivers_the_paid_image(
    discord_fake, openai_fake, make_settings
):
    """A restart that took more than 5 minutes: the background stream can no longer be resumed
    (400, openai/openai-python#2828), but the response finished and was paid for."""
    settings = make_settings(shutdown_grace_seconds=0.3)
    openai_fake.latency = 1.5
    alice = discord_fake.add_user("alice")
    runner = BotRunner(settings)
    await runner.start()
    try:
        thread_id = await start_conversation(discord_fake, alice, "a long exposure of stars")
        response_id = await wait_response_recorded(discord_fake, settings)
        await wait_progress_posted(discord_fake, settings)
    finally:
        await runner.stop()
    openai_fake.resume_window = 0.0  # "more than 5 minutes" later
    async with running(settings):
        [result] = await wait_results(discord_fake, thread_id, 1, timeout=20)
        await quiet(discord_fake, openai_fake)
    refused = [a for a in openai_fake.answers
               if a.method == "GET" and a.path == f"/v1/responses/{response_id}"
               and a.status == 400]
    assert refused and "more than 5 minutes old" in refused[0].json["error"]["message"]
    assert len(openai_fake.create_requests()) == 1
    assert openai_fake.generations == 1
    [row] = turn_rows(settings)
    assert row["status"] == "done" and row["response_id"] == response_id
    assert read_lineage(image_attachments(result)[0].data) == ["a long exposure of stars"]


async def test_user_cancel_stops_the_generation_server_side(
    discord_fake, openai_fake, make_settings
):
    """The counterpart of the shutdown test: only a user's Cancel stops the background response."""
    settings = make_settings()
    openai_fake.latency = 2.0
    alice = discord_fake.add_user("alice")
    async with running(settings):
        thread_id = await start_conversation(discord_fake, alice, "a very slow painting")
        response_id = await wait_response_recorded(discord_fake, settings)
        await wait_progress_posted(discord_fake, settings)
        [row] = turn_rows(settings)
        await discord_fake.click(alice, row["progress_message_id"], f"imagine:cancel:{row['id']}")
        [row] = await wait_terminal(discord_fake, settings, 1)
        await discord_fake.wait_for(
            lambda: openai_fake.responses[response_id]["status"] == "cancelled", 5,
            what="the background response to be cancelled",
        )
        await discord_fake.wait_for(
            lambda: any("Cancelled." in t for t in bot_texts(discord_fake, thread_id)), 5,
            what="the cancelled message",
        )
    assert row["status"] == "cancelled"
    assert openai_fake.generations == 0
    assert results(discord_fake, thread_id) == []


# ---------------------------------------------------------------------------------- races
async def test_reply_the_instant_the_thread_appears_is_not_lost(
    discord_fake, openai_fake, make_settings
):
    """A user (or a busy bot under load) replies in the new thread before the bot has even
    read the answer to its own create-thread request. That reply must become a turn."""
    settings = make_settings()
    alice = discord_fake.add_user("alice")
    early: list[asyncio.Future[Any]] = []
    announce = discord_fake.dispatch_guild

    def announce_then_reply(event: str, data: dict[str, Any]) -> None:
        announce(event, data)
        if event == "THREAD_CREATE" and data.get("newly_created") and not early:
            early.append(asyncio.ensure_future(
                discord_fake.say(alice, int(data["id"]), "make it purple")
            ))

    discord_fake.dispatch_guild = announce_then_reply  # type: ignore[method-assign]
    async with running(settings):
        thread_id = await start_conversation(discord_fake, alice, "a snail on a leaf")
        messages = await wait_results(discord_fake, thread_id, 2)
    assert early and early[0].done()
    rows = turn_rows(settings)
    assert [(r["kind"], r["status"]) for r in rows] == [("root", "done"), ("reply", "done")]
    assert read_lineage(image_attachments(messages[1])[0].data) == [
        "a snail on a leaf", "make it purple",
    ]


@pytest.mark.one_backend
async def test_a_result_upload_retried_after_a_5xx_carries_the_whole_image(
    discord_fake, openai_fake, make_settings
):
    """Discord answers the result's upload with a 503 once: the retried upload sends the image
    again, whole (an upload reads its files to the end; a retry that did not rewind them sent
    empty files, which Discord keeps as a broken image)."""
    settings = make_settings(default_partial_images=0, progress_edit_interval=60)
    openai_fake.latency = 1.0
    alice = discord_fake.add_user("alice")
    async with running(settings):
        thread_id = await start_conversation(discord_fake, alice, "a lighthouse at noon")
        await wait_response_recorded(discord_fake, settings)
        await wait_progress_posted(discord_fake, settings)
        discord_fake.fail_next("PATCH", r"/channels/\d+/messages/\d+$", 503)  # the result's edit
        [shown] = await wait_results(discord_fake, thread_id, 1, timeout=20)
    refused = [r for r in discord_fake.request_log
               if r.method == "PATCH" and r.files and r.status == 503]
    assert len(refused) == 1
    assert read_lineage(image_attachments(shown)[0].data) == ["a lighthouse at noon"]
    assert openai_fake.generations == 1
