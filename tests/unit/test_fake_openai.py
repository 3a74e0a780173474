"""The fake Responses API, driven by the real ``openai.AsyncOpenAI`` client.

These tests pin down the wire behaviour the bot relies on, so a change in the fake (or an SDK
upgrade that parses it differently) shows up here first.
"""

from __future__ import annotations

import asyncio
import base64
import io
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseCreatedEvent,
    ResponseFailedEvent,
    ResponseImageGenCallCompletedEvent,
    ResponseImageGenCallPartialImageEvent,
    ResponseOutputItemDoneEvent,
    ResponseTextDeltaEvent,
)
from PIL import Image

from tests.fakes.openai_server import FakeOpenAI, Fault, read_lineage

MODEL = "gpt-5.5"
SMALL = "256x256"  # keeps every test fast; real sizes are covered in test_sizes_and_formats
ROOT = Path(__file__).resolve().parents[2]


def tool(**overrides: Any) -> dict[str, Any]:
    return {"type": "image_generation", "model": "gpt-image-2", "size": SMALL, **overrides}


def first_image(response: Response) -> bytes:
    calls = [item for item in response.output if item.type == "image_generation_call"]
    assert calls and calls[0].result, response.output
    return base64.b64decode(calls[0].result)


def user(text: str, *images: bytes, mime: str = "image/png") -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "input_text", "text": text}]
    for data in images:
        url = f"data:{mime};base64,{base64.b64encode(data).decode()}"
        content.append({"type": "input_image", "image_url": url})
    return {"role": "user", "content": content}


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    server = FakeOpenAI(allow_small_sizes=True)  # 256x256 keeps the tests fast
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def client(fake: FakeOpenAI) -> AsyncIterator[openai.AsyncOpenAI]:
    # strict validation: every payload must match the SDK's pydantic models exactly
    async with openai.AsyncOpenAI(
        base_url=fake.base_url, api_key="sk-test", max_retries=0, _strict_response_validation=True
    ) as c:
        yield c


# --------------------------------------------------------------------------- happy paths


def assert_completed_with_text_usage_and_image(response: Any, text: str, lineage: list[str]) -> None:
    """A completed response with its text, token usage (image tool included) and one image."""
    assert response.id.startswith("resp_") and response.status == "completed"
    assert response.output_text == text
    assert response.usage is not None and response.usage.total_tokens > 0
    assert response.tool_usage is not None
    image_gen = response.tool_usage.image_gen
    assert image_gen.output_tokens == image_gen.output_tokens_details.image_tokens > 200
    assert read_lineage(first_image(response)) == lineage


async def test_stream_event_order_and_types(fake: FakeOpenAI, client: openai.AsyncOpenAI) -> None:
    fake.text_reply = "Here is your cat."
    stream = await client.responses.create(
        model=MODEL, input="a cat", tools=[tool(partial_images=2)], stream=True
    )
    events = [event async for event in stream]

    # the shape of the recorded real stream (vercel/ai openai-image-generation-tool.1.chunks.txt)
    assert [e.type for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",  # reasoning, index 0
        "response.output_item.done",
        "response.output_item.added",
        "response.image_generation_call.in_progress",
        "response.image_generation_call.generating",
        "response.image_generation_call.partial_image",
        "response.image_generation_call.partial_image",
        "response.image_generation_call.completed",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * 4,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert isinstance(events[0], ResponseCreatedEvent)
    assert events[0].response.status == "in_progress"
    partials = [e for e in events if isinstance(e, ResponseImageGenCallPartialImageEvent)]
    assert [p.partial_image_index for p in partials] == [0, 1]
    item_id = partials[0].item_id
    assert item_id.startswith("ig_") and all(p.output_index == 1 for p in partials)
    reasoning = events[3]
    assert isinstance(reasoning, ResponseOutputItemDoneEvent) and reasoning.output_index == 0
    assert reasoning.item.type == "reasoning" and reasoning.item.summary == []
    assert isinstance(events[9], ResponseImageGenCallCompletedEvent)
    done = events[10]
    assert isinstance(done, ResponseOutputItemDoneEvent)
    item = done.item
    assert item.type == "image_generation_call"
    assert (item.id, item.status, item.action, item.size) == (item_id, "completed", "generate", SMALL)
    assert (item.output_format, item.background, item.revised_prompt) == ("png", "opaque", "a cat")
    assert "".join(e.delta for e in events if isinstance(e, ResponseTextDeltaEvent)) == (
        "Here is your cat."
    )
    final = events[-1]
    assert isinstance(final, ResponseCompletedEvent)
    response = final.response
    assert_completed_with_text_usage_and_image(response, "Here is your cat.", ["a cat"])
    # a partial preview is a real image of the same size, but carries no lineage
    partial = base64.b64decode(partials[0].partial_image_b64)
    assert Image.open(io.BytesIO(partial)).size == (256, 256)
    assert read_lineage(partial) == []
    assert fake.generations == 1
    assert fake.responses[response.id]["status"] == "completed"


async def test_default_stream_ends_with_an_empty_message_and_echoes_unsent_tool_fields(
    client: openai.AsyncOpenAI,
) -> None:
    # recorded real stream (vercel/ai openai-image-generation-tool.1.chunks.txt): the message
    # after the image has empty text and no delta; the tool echo carries n and output_compression
    stream = await client.responses.create(
        model=MODEL, input="a cat", tools=[tool(output_format="webp")], stream=True
    )
    events = [event async for event in stream]
    types = [e.type for e in events]
    assert types[-6:] == [
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    response = events[-1].response
    assert [item.type for item in response.output] == [
        "reasoning", "image_generation_call", "message",
    ]
    assert response.output_text == ""
    [echoed] = [t.model_dump() for t in response.tools]
    assert echoed["n"] == 1 and echoed["output_compression"] == 100


async def test_stream_helper(client: openai.AsyncOpenAI) -> None:
    async with client.responses.stream(model=MODEL, input="a dog", tools=[tool()]) as stream:
        types = [event.type async for event in stream]
        response = await stream.get_final_response()
    assert types[0] == "response.created" and types[-1] == "response.completed"
    assert read_lineage(first_image(response)) == ["a dog"]


async def test_non_streaming(fake: FakeOpenAI, client: openai.AsyncOpenAI) -> None:
    fake.images_per_response = 2
    response = await client.responses.create(model=MODEL, input="two owls", tools=[tool()])
    assert response.status == "completed"
    calls = [item for item in response.output if item.type == "image_generation_call"]
    assert len(calls) == 2 and calls[0].id != calls[1].id
    assert fake.generations == 2
    assert fake.create_requests()[0]["input"] == "two owls"
    assert fake.api_key_seen == {"sk-test"}


async def test_previous_response_chain_lineage(client: openai.AsyncOpenAI) -> None:
    first = await client.responses.create(model=MODEL, input="a castle", tools=[tool()])
    second = await client.responses.create(
        model=MODEL,
        input=[user("add a moat")],
        tools=[tool()],
        previous_response_id=first.id,
    )
    third = await client.responses.create(
        model=MODEL,
        input=[{"role": "user", "content": "at night"}],
        tools=[tool(action="edit")],
        previous_response_id=second.id,
    )
    assert read_lineage(first_image(third)) == ["a castle", "add a moat", "at night"]
    assert third.previous_response_id == second.id
    item = next(i for i in third.output if i.type == "image_generation_call")
    assert item.action == "edit"


async def test_forgotten_or_unstored_previous_response(
    fake: FakeOpenAI, client: openai.AsyncOpenAI
) -> None:
    first = await client.responses.create(model=MODEL, input="a boat", tools=[tool()])
    fake.forget(first.id)
    with pytest.raises(openai.BadRequestError) as info:
        await client.responses.create(
            model=MODEL, input="red sails", tools=[tool()], previous_response_id=first.id
        )
    assert info.value.code == "previous_response_not_found"
    assert info.value.param == "previous_response_id"
    assert info.value.type == "invalid_request_error"
    assert info.value.message.endswith(f"Previous response with id '{first.id}' not found.")
    assert info.value.response.headers["content-type"] == "application/json"

    unstored = await client.responses.create(model=MODEL, input="x", tools=[tool()], store=False)
    assert unstored.id not in fake.responses
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(unstored.id)
    with pytest.raises(openai.BadRequestError):
        await client.responses.create(model=MODEL, input="y", previous_response_id=unstored.id)

    stored = await client.responses.create(model=MODEL, input="z", tools=[tool()])
    await client.responses.delete(stored.id)
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(stored.id)


async def test_references_and_input_images_carry_lineage(
    fake: FakeOpenAI, client: openai.AsyncOpenAI
) -> None:
    first = await client.responses.create(model=MODEL, input="a fox", tools=[tool()])
    reasoning_id, item_id = (i.id for i in first.output if i.type != "message")
    reasoning = {"type": "item_reference", "id": reasoning_id}
    for ref_type in ("image_generation_call", "item_reference"):
        response = await client.responses.create(
            model=MODEL,
            input=[reasoning, {"type": ref_type, "id": item_id}, user(f"via {ref_type}")],
            tools=[tool(action="edit")],
        )
        assert read_lineage(first_image(response)) == ["a fox", f"via {ref_type}"]

    # an image uploaded as a data URL (e.g. re-sent by the bot after the id expired)
    fake.forget(first.id)
    uploaded = await client.responses.create(
        model=MODEL, input=[user("in the snow", first_image(first))], tools=[tool()]
    )
    assert read_lineage(first_image(uploaded)) == ["a fox", "in the snow"]

    with pytest.raises(openai.NotFoundError) as info:  # the forgotten item is gone too
        await client.responses.create(
            model=MODEL, input=[{"type": "item_reference", "id": item_id}], tools=[tool()]
        )
    assert info.value.param == "input"


async def test_an_image_generation_call_reference_resolves_to_the_stored_image(
    fake: FakeOpenAI, client: openai.AsyncOpenAI
) -> None:
    first = await client.responses.create(model=MODEL, input="a lighthouse", tools=[tool()])
    reasoning_id, call_id = (i.id for i in first.output if i.type != "message")
    # a reference by id, after its reasoning item, no previous_response_id: the stored image is
    # the context, so an edit (which needs an image) is accepted and the lineage continues
    references = [{"type": "item_reference", "id": reasoning_id},
                  {"type": "image_generation_call", "id": call_id}]
    edited = await client.responses.create(
        model=MODEL, input=[*references, user("at night")], tools=[tool(action="edit")],
    )
    assert read_lineage(first_image(edited)) == ["a lighthouse", "at night"]
    [body] = [r.json for r in fake.requests if r.method == "POST"][-1:]
    assert body["input"][:2] == references

    missing = "ig_" + "0" * 50
    with pytest.raises(openai.NotFoundError) as info:
        await client.responses.create(
            model=MODEL,
            input=[{"type": "image_generation_call", "id": missing}, user("again")],
            tools=[tool()],
        )
    error = info.value  # API-NOTES "Second pass": 404, param input, "Item with id '…' not found"
    assert (error.status_code, error.type, error.param) == (404, "invalid_request_error", "input")
    assert f"Item with id '{missing}' not found." in error.message
    assert fake.generations == 2


async def test_an_image_reference_without_its_reasoning_item_is_refused(
    fake: FakeOpenAI, client: openai.AsyncOpenAI
) -> None:
    first = await client.responses.create(model=MODEL, input="a lighthouse", tools=[tool()])
    reasoning_id, call_id = (i.id for i in first.output if i.type != "message")
    bare = [{"type": "image_generation_call", "id": call_id}, user("at night")]
    with pytest.raises(openai.BadRequestError) as info:
        await client.responses.create(model=MODEL, input=bare, tools=[tool()])
    error = info.value  # the recorded refusal (public reports, e.g. cline/cline#12242)
    assert (error.type, error.param, error.code) == ("invalid_request_error", "input", None)
    assert error.body["message"] == (
        f"Item '{call_id}' of type 'image_generation_call' was provided without its required "
        f"'reasoning' item: '{reasoning_id}'."
    )
    # a mainline model that does not reason takes the bare reference
    plain = await client.responses.create(model="gpt-4.1", input=bare, tools=[tool()])
    assert read_lineage(first_image(plain)) == ["a lighthouse", "at night"]
    assert fake.generations == 2


async def test_bad_input_images(client: openai.AsyncOpenAI) -> None:
    remote = {
        "role": "user",
        "content": [
            {"type": "input_text", "text": "edit"},
            {"type": "input_image", "image_url": "https://cdn.discordapp.com/a.png"},
        ],
    }
    with pytest.raises(openai.BadRequestError, match="must be a data URL"):
        await client.responses.create(model=MODEL, input=[remote], tools=[tool()])
    with pytest.raises(openai.BadRequestError) as info:
        await client.responses.create(
            model=MODEL, input=[user("edit", b"definitely not a png")], tools=[tool()]
        )
    assert info.value.code == "invalid_image"


async def test_edit_requires_an_image(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await client.responses.create(model=MODEL, input="edit it", tools=[tool(action="edit")])
    assert info.value.code == "image_edit_requires_image"
    assert info.value.param == "tools[0].action"
    assert info.value.message.endswith("Image editing requires an input image.")


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"tools": [tool(size="1000x1000")]}, "tools[0].size"),  # not divisible by 16
        ({"tools": [tool(size="1024x4096")]}, "tools[0].size"),  # ratio beyond 1:3
        ({"tools": [tool(size="4096x2304")]}, "tools[0].size"),  # edge over 3840
        ({"tools": [tool(size="3840x2304")]}, "tools[0].size"),  # more pixels than 3840x2160
        ({"tools": [tool(size="big")]}, "tools[0].size"),
        ({"tools": [tool(background="transparent", output_format="jpeg")]}, "tools[0].background"),
        ({"tools": [tool(output_compression=50)]}, "tools[0].output_compression"),  # png
        (
            {"tools": [tool(output_format="webp", output_compression=101)]},
            "tools[0].output_compression",
        ),
        ({"tools": [tool(partial_images=4)]}, "tools[0].partial_images"),
        ({"tools": [tool()], "background": True, "store": False}, "background"),
        ({"model": None}, "model"),
        ({"input": None}, "input"),
    ],
)
async def test_validation(client: openai.AsyncOpenAI, kwargs: dict[str, Any], param: str) -> None:
    args: dict[str, Any] = {"model": MODEL, "input": "a cat", **kwargs}
    body = {k: args.pop(k) for k in ("model", "input") if args.get(k) is None}
    with pytest.raises(openai.BadRequestError) as info:
        await client.responses.create(**args, extra_body=body or None)
    assert info.value.param == param
    assert info.value.type == "invalid_request_error"


async def test_valid_custom_size(client: openai.AsyncOpenAI) -> None:
    response = await client.responses.create(
        model=MODEL, input="wide", tools=[tool(size="1536x512")]
    )
    assert Image.open(io.BytesIO(first_image(response))).size == (1536, 512)


async def test_size_rules_follow_the_image_model(fake: FakeOpenAI, client: openai.AsyncOpenAI) -> None:
    fake.allow_small_sizes = False  # the documented minimum: 655,360 pixels
    with pytest.raises(openai.BadRequestError) as info:
        await client.responses.create(model=MODEL, input="x", tools=[tool(size="1008x640")])
    assert info.value.param == "tools[0].size" and "655360" in info.value.message
    ok = await client.responses.create(
        model=MODEL, input="x", tools=[tool(size="1024x640", quality="low")]
    )
    assert Image.open(io.BytesIO(first_image(ok))).size == (1024, 640)
    # models without custom sizes take the presets only (SDK 3.63 `size`: 2 and 2.5 only)
    for model in ("gpt-image-1-mini", "gpt-image-1.5", "gpt-image-2.6-sunburst"):
        with pytest.raises(openai.BadRequestError) as info:
            await client.responses.create(
                model=MODEL, input="x", tools=[tool(size="1536x864", model=model)]
            )
        assert info.value.param == "tools[0].size"
    preset = await client.responses.create(
        model=MODEL, input="x", tools=[tool(size="1536x1024", model="gpt-image-1.5", quality="low")]
    )
    assert Image.open(io.BytesIO(first_image(preset))).size == (1536, 1024)


def noise_png(width: int, height: int) -> bytes:
    """A photo-like (incompressible) PNG of about width*height*3 bytes, stored uncompressed."""
    out = io.BytesIO()
    Image.frombytes("RGB", (width, height), os.urandom(width * height * 3)).save(
        out, "PNG", compress_level=0
    )
    return out.getvalue()


async def test_input_image_byte_limits(client: openai.AsyncOpenAI) -> None:
    # Images and vision guide: at most 20MB per image and 50 MB of image bytes per request
    big = noise_png(3200, 2100)  # 20.2 MB
    assert len(big) > 20_000_000
    with pytest.raises(openai.BadRequestError) as info:
        await client.responses.create(model=MODEL, input=[user("edit", big)], tools=[tool()])
    assert info.value.param == "input[0].content[1].image_url"
    assert info.value.code == "image_too_large"
    part = noise_png(2900, 2000)  # 17.4 MB: each fits, three do not
    with pytest.raises(openai.BadRequestError) as info:
        await client.responses.create(
            model=MODEL, input=[user("edit", part, part, part)], tools=[tool()]
        )
    assert info.value.param == "input" and info.value.code == "image_too_large"
    fits = await client.responses.create(
        model=MODEL, input=[user("edit", part, part)], tools=[tool(quality="low")]
    )
    assert fits.status == "completed"


async def test_requires_bearer_auth(fake: FakeOpenAI) -> None:
    async with aiohttp.ClientSession() as session:
        url = f"{fake.base_url}/responses"
        async with session.post(url, json={"model": MODEL, "input": "x"}) as resp:
            assert resp.status == 401
            assert resp.headers["Content-Type"] == "application/json"
            assert (await resp.json())["error"]["type"] == "invalid_request_error"
    assert fake.requests[-1].json == {"model": MODEL, "input": "x"}  # recorded anyway
    assert fake.generations == 0


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
@pytest.mark.parametrize("size", ["1024x1024", "1024x1536", "1536x1024", "auto"])
async def test_sizes_and_formats(client: openai.AsyncOpenAI, fmt: str, size: str) -> None:
    response = await client.responses.create(
        model=MODEL, input=f"{fmt} {size}", tools=[tool(size=size, output_format=fmt)]
    )
    data = first_image(response)
    image = Image.open(io.BytesIO(data))
    expected = (1024, 1024) if size == "auto" else tuple(int(n) for n in size.split("x"))
    assert (image.format, image.size) == ({"jpeg": "JPEG"}.get(fmt, fmt.upper()), expected)
    assert read_lineage(data) == [f"{fmt} {size}"]


async def test_transparent_background(client: openai.AsyncOpenAI) -> None:
    response = await client.responses.create(
        model=MODEL, input="logo", tools=[tool(background="transparent", output_format="webp")]
    )
    image = Image.open(io.BytesIO(first_image(response)))
    assert image.mode == "RGBA" and image.getpixel((0, 0))[3] == 0


async def test_static_images() -> None:
    server = FakeOpenAI(static_images=True, allow_small_sizes=True)
    await server.start()
    try:
        async with openai.AsyncOpenAI(base_url=server.base_url, api_key="k", max_retries=0) as c:
            results = await asyncio.gather(
                *(c.responses.create(model=MODEL, input=f"p{i}", tools=[tool()]) for i in range(5))
            )
        images = {first_image(r) for r in results}
        assert len(images) == 1 and server.generations == 5
    finally:
        await server.stop()


# --------------------------------------------------------------------------- faults


async def test_rate_limit(fake: FakeOpenAI, client: openai.AsyncOpenAI) -> None:
    fake.add_fault(Fault.rate_limit(retry_after=0.2))
    with pytest.raises(openai.RateLimitError) as info:
        await client.responses.create(model=MODEL, input="a cat", tools=[tool()])
    assert info.value.code == "rate_limit_exceeded" and info.value.type == "requests"
    assert info.value.response.headers["retry-after-ms"] == "200"

    fake.add_fault(Fault.rate_limit(retry_after=0.2))
    retrying = client.with_options(max_retries=1)
    response = await retrying.responses.create(model=MODEL, input="a cat", tools=[tool()])
    assert response.status == "completed"
    first, second = fake.requests[-2:]
    assert second.time - first.time >= 0.19  # retry-after honoured
    assert second.headers["x-stainless-retry-count"] == "1"
    assert fake.generations == 1


async def test_insufficient_quota_and_server_errors(
    fake: FakeOpenAI, client: openai.AsyncOpenAI
) -> None:
    fake.add_fault(Fault.insufficient_quota())
    with pytest.raises(openai.RateLimitError) as quota:
        await client.responses.create(model=MODEL, input="a cat", tools=[tool()])
    assert (quota.value.code, quota.value.type) == ("insufficient_quota", "insufficient_quota")

    fake.add_fault(Fault.server_error(503))
    with pytest.raises(openai.InternalServerError) as server:
        await client.responses.create(model=MODEL, input="a cat", tools=[tool()])
    assert server.value.status_code == 503

    fake.add_fault(Fault.http(409, code="conflict", type="conflict_error", message="busy"))
    with pytest.raises(openai.ConflictError, match="busy"):
        await client.responses.create(model=MODEL, input="a cat", tools=[tool()])
    assert fake.generations == 0


@pytest.mark.wall_clock
async def test_hang_times_out(fake: FakeOpenAI, client: openai.AsyncOpenAI) -> None:
    fake.add_fault(Fault.hang(5))
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        await client.responses.create(model=MODEL, input="a cat", tools=[tool()], timeout=0.3)
    assert time.monotonic() - started < 2
    await asyncio.sleep(0.05)
    assert fake.generations == 0 and not fake.responses  # the abandoned request is gone


async def test_stream_cut_is_an_error_and_loses_the_generation(
    fake: FakeOpenAI, client: openai.AsyncOpenAI
) -> None:
    fake.add_fault(Fault.cut_after("response.image_generation_call.partial_image"))
    stream = await client.responses.create(
        model=MODEL, input="a cat", tools=[tool(partial_images=1)], stream=True
    )
    seen: list[str] = []
    with pytest.raises(openai.APIConnectionError):
        async for event in stream:
            seen.append(event.type)
    assert seen[-1] == "response.image_generation_call.partial_image"
    await asyncio.sleep(0.05)
    assert fake.generations == 0 and not fake.responses


async def test_moderation_http(fake: FakeOpenAI, client: openai.AsyncOpenAI) -> None:
    fake.add_fault(Fault.moderation("http"))
    with pytest.raises(openai.BadRequestError) as info:
        await client.responses.create(model=MODEL, input="bad", tools=[tool()], stream=True)
    error = info.value
    assert (error.code, error.type) == ("moderation_blocked", "image_generation_user_error")
    assert isinstance(error.body, dict)
    assert error.body["moderation_details"]["moderation_stage"] == "input"
    assert error.body["moderation_details"]["categories"] == ["violence"]


async def test_moderation_failed_item(fake: FakeOpenAI, client: openai.AsyncOpenAI) -> None:
    fake.add_fault(Fault.moderation("item", categories=("sexual",)))
    stream = await client.responses.create(model=MODEL, input="bad", tools=[tool()], stream=True)
    events = [event async for event in stream]
    assert "response.image_generation_call.completed" not in [e.type for e in events]
    final = events[-1]
    assert isinstance(final, ResponseCompletedEvent)
    [item] = [i for i in final.response.output if i.type == "image_generation_call"]
    assert item.status == "failed"
    assert item.result is None and item.error is not None
    assert item.error.code == "moderation_blocked"
    assert item.error.moderation_details is not None
    assert item.error.moderation_details.categories == ["sexual"]
    assert fake.generations == 0


async def test_moderation_response_failed(fake: FakeOpenAI, client: openai.AsyncOpenAI) -> None:
    # ResponseError.code's Literal has no "moderation_blocked" (SDK 3.57): a response that fails
    # for its content carries image_content_policy_violation, which strict parsing accepts
    fake.add_fault(Fault.moderation("response_failed"))
    stream = await client.responses.create(model=MODEL, input="bad", tools=[tool()], stream=True)
    events = [event async for event in stream]
    final = events[-1]
    assert isinstance(final, ResponseFailedEvent)
    assert final.response.status == "failed" and final.response.error is not None
    assert final.response.error.code == "image_content_policy_violation"

    fake.add_fault(Fault.moderation("response_failed"))
    response = await client.responses.create(model=MODEL, input="bad", tools=[tool()])
    assert response.status == "failed"
    assert response.error is not None
    assert response.error.code == "image_content_policy_violation"


@pytest.mark.parametrize(
    "code", ["server_error", "rate_limit_exceeded", "invalid_prompt", "bio_policy"]
)
async def test_response_failed_with_a_code(
    fake: FakeOpenAI, client: openai.AsyncOpenAI, code: str
) -> None:
    fake.add_fault(Fault.response_failed(code))
    stream = await client.responses.create(
        model=MODEL, input="x", tools=[tool()], stream=True, background=True
    )
    events = [event async for event in stream]
    assert [e.type for e in events] == ["response.created", "response.in_progress", "response.failed"]
    failed = events[-1]
    assert isinstance(failed, ResponseFailedEvent) and failed.response.error is not None
    assert failed.response.error.code == code
    # the failed response is over: a resumed stream has nothing after the failure
    resumed = await client.responses.retrieve(
        failed.response.id, stream=True, starting_after=failed.sequence_number
    )
    assert [event async for event in resumed] == []
    assert fake.generations == 0


@pytest.mark.parametrize(
    ("code", "null_code", "error_type"),
    [("insufficient_quota", False, "insufficient_quota"), ("server_error", True, "server_error")],
)
async def test_an_error_event_is_nested_then_the_response_fails_then_the_stream_ends(
    fake: FakeOpenAI, client: openai.AsyncOpenAI, code: str, null_code: bool, error_type: str
) -> None:
    # recorded: vercel/ai openai-error.1.chunks.txt and openai-error-null-code.1.chunks.txt
    fake.add_fault(Fault.error_event(code, null_code=null_code))
    stream = await client.responses.create(
        model=MODEL, input="x", tools=[tool()], stream=True, background=True
    )
    seen = []
    with pytest.raises(openai.APIError) as info:
        async for event in stream:
            seen.append(event.type)
    assert seen == ["response.created", "response.in_progress"]
    assert not isinstance(info.value, openai.APIStatusError)  # raised for the event, by the SDK
    assert info.value.body == {
        "type": error_type, "code": None if null_code else code,
        "message": info.value.message, "param": None,
    }
    wire = fake.events
    assert [e["type"] for e in wire] == [
        "response.created", "response.in_progress", "error", "response.failed",
    ]
    assert set(wire[2]) == {"type", "sequence_number", "error"}
    assert wire[3]["response"]["error"] == {"code": code, "message": info.value.message}
    [stored] = fake.responses.values()
    assert stored["status"] == "failed"


async def test_a_request_too_large_for_the_rate_limit_fails_the_response(
    fake: FakeOpenAI, client: openai.AsyncOpenAI
) -> None:
    # vercel/ai openai-response-failed-only.1.chunks.txt
    fake.add_fault(Fault.request_too_large())
    stream = await client.responses.create(model=MODEL, input="x", tools=[tool()], stream=True)
    events = [event async for event in stream]
    failed = events[-1]
    assert isinstance(failed, ResponseFailedEvent) and failed.response.error is not None
    assert failed.response.error.code == "rate_limit_exceeded"
    assert failed.response.error.message.startswith("Request too large")


async def test_refusal_is_a_message_with_a_refusal_part(
    fake: FakeOpenAI, client: openai.AsyncOpenAI
) -> None:
    fake.add_fault(Fault.refusal("I can't help with that."))
    stream = await client.responses.create(model=MODEL, input="x", tools=[tool()], stream=True)
    events = [event async for event in stream]
    types = [e.type for e in events]
    assert "response.refusal.delta" in types and "response.refusal.done" in types
    assert "response.output_text.delta" not in types
    response = events[-1].response
    [message] = [item for item in response.output if item.type == "message"]
    assert [(p.type, p.refusal) for p in message.content] == [("refusal", "I can't help with that.")]
    assert not [item for item in response.output if item.type == "image_generation_call"]
    assert fake.generations == 0


async def test_stuck_queued_until_cancelled(fake: FakeOpenAI, client: openai.AsyncOpenAI) -> None:
    fake.add_fault(Fault.stuck_queued())
    created = await client.responses.create(model=MODEL, input="x", tools=[tool()], background=True)
    assert created.status == "queued"
    assert (await client.responses.retrieve(created.id)).status == "queued"
    cancelled = await client.responses.cancel(created.id)
    assert cancelled.status == "cancelled"
    assert fake.generations == 0


async def test_resume_empty_yields_nothing_while_the_response_runs(
    fake: FakeOpenAI, client: openai.AsyncOpenAI
) -> None:
    fake.latency = 5.0
    fake.add_fault(Fault.cut_after("response.created", resume_empty=True))
    stream = await client.responses.create(
        model=MODEL, input="x", tools=[tool()], stream=True, background=True
    )
    with pytest.raises(openai.APIConnectionError):
        async for _ in stream:
            pass
    [response_id] = list(fake.responses)
    resumed = await client.responses.retrieve(response_id, stream=True, starting_after=0)
    assert [event async for event in resumed] == []
    assert (await client.responses.retrieve(response_id)).status in ("queued", "in_progress")
    await client.responses.cancel(response_id)


async def test_a_stream_cannot_be_resumed_after_the_resume_window(
    fake: FakeOpenAI, client: openai.AsyncOpenAI
) -> None:
    # openai/openai-python#2828: 400 "This response can no longer be streamed because it is
    # more than 5 minutes old."; the response stays retrievable without `stream`
    created = await client.responses.create(model=MODEL, input="x", tools=[tool()], background=True)
    resumed = await client.responses.retrieve(created.id, stream=True, starting_after=0)
    assert [event.type async for event in resumed][-1] == "response.completed"
    fake.resume_window = 0.0
    with pytest.raises(openai.BadRequestError) as info:
        await client.responses.retrieve(created.id, stream=True, starting_after=0)
    assert "more than 5 minutes old" in info.value.message
    assert (await client.responses.retrieve(created.id)).status == "completed"


async def test_a_completed_response_may_carry_no_tool_usage(
    fake: FakeOpenAI, client: openai.AsyncOpenAI
) -> None:
    # the recorded real image stream: only the mainline `usage` (vercel/ai
    # openai-image-generation-tool.1.chunks.txt)
    fake.report_tool_usage = False
    response = await client.responses.create(model=MODEL, input="x", tools=[tool()])
    assert response.usage is not None and response.usage.total_tokens > 0
    assert response.tool_usage is None
    assert "tool_usage" not in fake.responses[response.id]


async def test_text_only(fake: FakeOpenAI, client: openai.AsyncOpenAI) -> None:
    fake.add_fault(Fault.text_only("I'd rather describe it: a cat."))
    response = await client.responses.create(model=MODEL, input="a cat", tools=[tool()])
    assert [item.type for item in response.output] == ["reasoning", "message"]
    assert response.output_text == "I'd rather describe it: a cat."
    assert fake.generations == 0


# --------------------------------------------------------------------------- background


async def test_background_cut_and_resume(fake: FakeOpenAI, client: openai.AsyncOpenAI) -> None:
    fake.latency = 0.3
    fake.add_fault(Fault.cut_after("response.image_generation_call.partial_image"))
    stream = await client.responses.create(
        model=MODEL,
        input="a comet",
        tools=[tool(partial_images=2)],
        stream=True,
        background=True,
    )
    last_seq = -1
    response_id = ""
    with pytest.raises(openai.APIConnectionError):
        async for event in stream:
            last_seq = event.sequence_number
            if isinstance(event, ResponseCreatedEvent):
                response_id = event.response.id
                assert event.response.status == "queued"
    assert response_id and last_seq > 0

    resumed = await client.responses.retrieve(response_id, stream=True, starting_after=last_seq)
    events = [event async for event in resumed]
    assert events[0].sequence_number == last_seq + 1
    assert events[0].type == "response.image_generation_call.partial_image"
    final = events[-1]
    assert isinstance(final, ResponseCompletedEvent)
    assert read_lineage(first_image(final.response)) == ["a comet"]

    # the SDK helper replays from the start and filters client-side
    async with client.responses.stream(response_id=response_id, starting_after=last_seq) as s:
        replayed = [event.sequence_number async for event in s]
    assert replayed[0] == last_seq + 1
    assert fake.generations == 1
    assert (await client.responses.retrieve(response_id)).status == "completed"


async def test_background_poll_and_cancel(fake: FakeOpenAI, client: openai.AsyncOpenAI) -> None:
    queued = await client.responses.create(
        model=MODEL, input="quick", tools=[tool()], background=True
    )
    assert queued.status == "queued" and queued.background
    for _ in range(100):
        polled = await client.responses.retrieve(queued.id)
        if polled.status == "completed":
            break
        await asyncio.sleep(0.01)
    assert polled.status == "completed"
    assert read_lineage(first_image(polled)) == ["quick"]

    fake.latency = 5
    slow = await client.responses.create(model=MODEL, input="slow", tools=[tool()], background=True)
    await asyncio.sleep(0.05)
    assert (await client.responses.retrieve(slow.id)).status == "in_progress"
    cancelled = await client.responses.cancel(slow.id)
    assert cancelled.status == "cancelled"
    assert (await client.responses.retrieve(slow.id)).status == "cancelled"
    assert fake.generations == 1
    # a stream of a cancelled response ends, without a terminal event
    replay = await client.responses.retrieve(slow.id, stream=True)
    assert [event.type async for event in replay][-1] != "response.completed"

    with pytest.raises(openai.BadRequestError):  # a finished response cannot be cancelled
        await client.responses.cancel(queued.id)


@pytest.mark.wall_clock
async def test_latency_is_spread_over_the_stream(
    fake: FakeOpenAI, client: openai.AsyncOpenAI
) -> None:
    fake.latency = 0.4
    started = time.monotonic()
    stream = await client.responses.create(
        model=MODEL, input="slow", tools=[tool(partial_images=1)], stream=True
    )
    arrival: dict[str, float] = {}
    async for event in stream:
        arrival.setdefault(event.type, time.monotonic() - started)
    partial, completed = (
        arrival["response.image_generation_call.partial_image"],
        arrival["response.completed"],
    )
    assert arrival["response.created"] < 0.15  # the stream starts at once
    assert partial > 0.15 and completed - partial > 0.15  # most of the wait is before each
    assert 0.38 < completed < 1.5


# --------------------------------------------------------------------------- standalone


async def test_runs_standalone() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.fakes.openai_server",
        "--port",
        "0",
        "--latency",
        "0",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode().strip()
        assert line.startswith("READY http://127.0.0.1:")
        base_url = line.split()[1]
        async with openai.AsyncOpenAI(base_url=base_url, api_key="k", max_retries=0) as c:
            response = await c.responses.create(
                model=MODEL, input="hi", tools=[tool(size="1024x640", quality="low")]
            )
        assert read_lineage(first_image(response)) == ["hi"]
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_retired_and_model_specific_values_are_refused(client: openai.AsyncOpenAI) -> None:
    """SDK 3.63 `ImageGeneration`: gpt-image-1 shut down; xhigh/max on the 2.5 models only;
    GIF, SVG and complexity on the 2.6 models only."""
    cases = [
        ({"model": "gpt-image-1"}, "tools[0].model"),
        ({"quality": "xhigh"}, "tools[0].quality"),
        ({"output_format": "gif", "partial_images": 0}, "tools[0].output_format"),
        ({"output_format": "svg"}, "tools[0].output_format"),
        ({"complexity": "high"}, "tools[0].complexity"),
        ({"model": "gpt-image-2.6-flare", "complexity": "extreme"}, "tools[0].complexity"),
        ({"input_fidelity": "low"}, "tools[0].input_fidelity"),  # gpt-image-2: omit it
        ({"model": "gpt-image-1-mini", "input_fidelity": "high", "size": "1024x1024"},
         "tools[0].input_fidelity"),
    ]
    for overrides, param in cases:
        with pytest.raises(openai.BadRequestError) as info:
            await client.responses.create(model=MODEL, input="x", tools=[tool(**overrides)])
        assert info.value.param == param, overrides
    ok = await client.responses.create(
        model=MODEL, input="x",
        tools=[tool(model="gpt-image-2.5-flare", quality="xhigh", size="1024x1024")])
    assert first_image(ok)


async def test_gif_rules(client: openai.AsyncOpenAI) -> None:
    """GIF: no partial images, no mask, no compression, frame fields only with gif, 2-16
    frames, all frames within one sheet's pixel budget (see the fake's citations)."""
    gif = {"model": "gpt-image-2.6-flare", "output_format": "gif", "size": "512x512"}
    mask = {"image_url": "data:image/png;base64," + base64.b64encode(_png_rgba(512, 512)).decode()}
    cases = [
        ({**gif, "partial_images": 2}, "tools[0].partial_images"),
        ({**gif, "input_image_mask": mask}, "tools[0].input_image_mask"),
        ({**gif, "output_compression": 80}, "tools[0].output_compression"),
        ({**gif, "frame_count": 17}, "tools[0].frame_count"),
        ({**gif, "frame_count": 1}, "tools[0].frame_count"),
        ({**gif, "size": "1024x1024", "frame_count": 9}, "tools[0].size"),
        ({**gif, "background": "transparent"}, "tools[0].background"),
        ({"model": "gpt-image-2.6-flare", "frame_count": 4, "size": "1024x1024"},
         "tools[0].frame_count"),
    ]
    for overrides, param in cases:
        with pytest.raises(openai.BadRequestError) as info:
            await client.responses.create(model=MODEL, input="x", tools=[tool(**overrides)])
        assert info.value.param == param, overrides
    ok = await client.responses.create(
        model=MODEL, input="x", tools=[tool(**gif, frame_count=4, frame_duration_ms=120)])
    frames = Image.open(io.BytesIO(first_image(ok)))
    assert frames.format == "GIF" and frames.n_frames == 4 and frames.info["duration"] == 120
    assert ok.usage is not None


async def test_svg_takes_no_partial_images(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await client.responses.create(model=MODEL, input="x", tools=[tool(
            model="gpt-image-2.6-flare", output_format="svg", size="1024x1024",
            partial_images=1)])
    assert info.value.param == "tools[0].partial_images"


async def test_mask_rules(client: openai.AsyncOpenAI) -> None:
    """A mask is a PNG with alpha of the first input image's size; none without an image."""
    image = "data:image/png;base64," + base64.b64encode(_png_rgba(1024, 1024)).decode()

    def request(mask_png: bytes, with_image: bool = True) -> dict[str, Any]:
        content: list[dict[str, Any]] = [{"type": "input_text", "text": "fill"}]
        if with_image:
            content.insert(0, {"type": "input_image", "image_url": image, "detail": "auto"})
        url = "data:image/png;base64," + base64.b64encode(mask_png).decode()
        return {"input": [{"role": "user", "content": content}],
                "tools": [tool(size="1024x1024", action="edit",
                               input_image_mask={"image_url": url})]}

    for body in (request(_png_rgba(512, 512)), request(_png_rgba(1024, 1024), False),
                 request(_png_rgb(1024, 1024))):
        with pytest.raises(openai.BadRequestError) as info:
            await client.responses.create(model=MODEL, **body)
        assert info.value.param == "tools[0].input_image_mask"
    ok = await client.responses.create(model=MODEL, **request(_png_rgba(1024, 1024)))
    assert first_image(ok)


def _png_rgba(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (width, height), (0, 0, 0, 0)).save(out, "PNG")
    return out.getvalue()


def _png_rgb(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height)).save(out, "PNG")
    return out.getvalue()


def test_a_drawing_stripped_of_its_metadata_is_still_seen_as_a_model_sees_it() -> None:
    """The bot re-encodes members' uploads without metadata (issue 21); a real model still sees
    what is in the picture, so the fake recognises its own drawings by their pixels when they
    come back as input images (and only then: `read_lineage` reads metadata alone)."""
    import io

    from PIL import Image

    from tests.fakes.images import inspect_image, read_lineage, render_image

    drawn = render_image(["a cat on a windowsill"], width=512, height=512, fmt="jpeg").final
    with Image.open(io.BytesIO(drawn)) as image:
        pixels_only = Image.frombytes(image.mode, image.size, image.tobytes())
    out = io.BytesIO()
    pixels_only.save(out, "JPEG", quality=90)  # the pixels, re-encoded, and nothing else
    stripped = out.getvalue()
    assert read_lineage(stripped) == []
    assert inspect_image(stripped, as_a_model_sees_it=True).lineage == ["a cat on a windowsill"]
    unknown = io.BytesIO()
    Image.new("RGB", (512, 512), (3, 200, 7)).save(unknown, "PNG")
    assert inspect_image(unknown.getvalue(), as_a_model_sees_it=True).lineage == []
