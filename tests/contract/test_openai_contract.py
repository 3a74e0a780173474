"""Contract checks: the fake Responses API against the `openai` SDK's own types, both ways.

Every stream event the fake emits and every JSON body it answers must validate against the SDK's
`ResponseStreamEvent` / `Response` (/ `Model`, `ErrorObject`), and every request body the bot
sends against `ResponseCreateParams`; a field or key the types do not declare is a failure
unless `tests/contract/openai_types.py` lists it with its source. The fake records everything
(`FakeOpenAI.events`, `.answers`, `.requests`); each scenario below drives it through the bot's
own `ImageClient` (every fault the fake has), and one end-to-end run drives it through the bot.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import openai
import pytest
from PIL import Image

from bot.core.errors import GenerationError, PreviousResponseNotFound, ReferenceNotFound
from bot.core.image_client import GenerationRequest, ImageClient, RetryPolicy
from bot.core.models import InputImage
from bot.core.options import ImageOptions
from tests.contract.openai_types import (
    check_answer,
    check_create_request,
    check_event,
    contract_problems,
)
from tests.e2e.conftest import (  # noqa: F401  (fixtures for the end-to-end run)
    backend,
    database_url,
    discord_fake,
    make_settings,
    openai_fake,
)
from tests.e2e.harness import running, start_conversation, wait_results
from tests.fakes.openai_server import FakeOpenAI, Fault

MODEL = "gpt-5.5"
SMALL = ImageOptions(size="256x256", quality="low", partial_images=2)
FAST = RetryPolicy(base_delay=0.01, max_delay=0.05)


def png(colour: str = "red") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 64), colour).save(out, "PNG")
    return out.getvalue()


# ------------------------------------------------------------------ the checker can fail


def test_the_checker_reports_what_the_types_do_not_declare() -> None:
    event = {"type": "response.output_item.added", "sequence_number": 2, "output_index": 0,
             "item": {"id": "rs_1", "type": "reasoning", "summary": []}, "surprise": 1}
    assert check_event(event) == ["event response.output_item.added #2: undeclared event.surprise"]
    assert check_event({"type": "response.created", "sequence_number": 0})  # no response
    body = {"model": MODEL, "stream": True, "weird": 2,
            "input": [{"role": "user", "content": [{"type": "input_text", "text": "x", "zz": 1}]}],
            "tools": [{"type": "image_generation", "bogus": True}]}
    assert check_create_request(body) == [
        "create request: unknown key body.weird",
        "create request: unknown key body.input[0].content[0].zz",
        "create request: unknown key body.tools[0].bogus",
    ]
    assert check_create_request({"model": MODEL, "input": "x",
                                 "tools": [{"type": "image_generation", "quality": "ultra"}]})
    assert check_answer("GET", "/v1/responses/resp_1", 200, {"id": "resp_1"})
    assert check_answer("POST", "/v1/responses", 400, {"message": "not wrapped in error"})
    # a documented extra is allowed: the echoed tool's `n` (recorded real stream)
    assert check_answer("POST", "/v1/responses", 400, {"error": {
        "message": "m", "type": "t", "param": None, "code": None, "moderation_details": {}}}) == []


def test_the_checker_takes_the_recorded_error_shapes_and_nothing_looser() -> None:
    # vercel/ai openai-error.1.chunks.txt: the details nested under `error`, then a failed
    # response whose code (`insufficient_quota`) the SDK's ResponseError Literal does not list
    recorded = {"type": "error", "sequence_number": 2, "error": {
        "type": "insufficient_quota", "code": "insufficient_quota", "message": "m", "param": None}}
    assert check_event(recorded) == []
    assert check_event({**recorded, "extra": 1})  # nothing beside the three recorded keys
    assert check_event({**recorded, "error": {"code": None}})  # the inner object is checked
    failed = {"id": "resp_1", "object": "response", "created_at": 1, "status": "failed",
              "error": {"code": "insufficient_quota", "message": "m"}, "model": MODEL,
              "output": [], "parallel_tool_calls": True, "tool_choice": "auto", "tools": []}
    assert check_answer("GET", "/v1/responses/resp_1", 200, failed) == []
    assert check_answer("GET", "/v1/responses/resp_1", 200,
                        {**failed, "error": {"code": "no_such_code", "message": "m"}})


# ------------------------------------------------------------------ every fault, via ImageClient


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    server = FakeOpenAI(allow_small_sizes=True)  # 256x256 keeps it fast; sizes are not the point
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def images(fake: FakeOpenAI) -> AsyncIterator[ImageClient]:
    async with openai.AsyncOpenAI(
        base_url=fake.base_url, api_key="sk-test", max_retries=0, timeout=10
    ) as client:
        yield ImageClient(client, model=MODEL, retry=FAST, queued_deadline=0.3)


Scenario = Callable[[FakeOpenAI, ImageClient], Awaitable[Any]]


async def _generate(images: ImageClient, prompt: str = "a kite", **kwargs: Any) -> Any:
    return await images.generate(GenerationRequest(prompt=prompt, options=SMALL, **kwargs))


async def _chain(fake: FakeOpenAI, images: ImageClient) -> None:
    first = await _generate(images, "a boat")
    await _generate(images, "at night", previous_response_id=first.response_id)
    fake.forget(first.response_id)
    with pytest.raises(PreviousResponseNotFound):
        await _generate(images, "at dawn", previous_response_id=first.response_id)


async def _inputs_and_references(fake: FakeOpenAI, images: ImageClient) -> None:
    first = await _generate(images, "a fox")
    image = first.images[0]
    assert image.reasoning_id is not None
    await _generate(images, "in the snow", input_images=[InputImage(png(), "image/png")],
                    reference_call_ids=[image.call_id],
                    reference_reasoning_ids={image.call_id: image.reasoning_id})
    with pytest.raises(ReferenceNotFound):
        await _generate(images, "again", reference_call_ids=["ig_" + "0" * 50])


async def _several_images_message_first(fake: FakeOpenAI, images: ImageClient) -> None:
    fake.images_per_response, fake.message_first, fake.text_reply = 2, True, "Two takes."
    await _generate(images)


async def _cancel(fake: FakeOpenAI, images: ImageClient) -> None:
    fake.add_fault(Fault.stuck_queued())
    fake.latency = 5.0
    stream = await images._client.responses.create(
        **images.build_params(GenerationRequest(prompt="x", options=SMALL)), stream=True
    )
    async with stream:
        created = await anext(aiter(stream))
    await images.cancel(created.response.id)
    await images._client.responses.retrieve(created.response.id)


async def _models(fake: FakeOpenAI, images: ImageClient) -> None:
    await images._client.models.retrieve(MODEL)
    with pytest.raises(openai.NotFoundError):
        await images._client.models.retrieve("no-such-model")


async def _no_tool_usage(fake: FakeOpenAI, images: ImageClient) -> None:
    fake.report_tool_usage = False  # as the recorded real image stream
    result = await _generate(images)
    assert result.usage.estimated


async def _resume_too_late(fake: FakeOpenAI, images: ImageClient) -> None:
    fake.resume_window = 0.0  # openai/openai-python#2828: a 400, then plain retrieves
    fake.add_fault(Fault.cut_after("response.image_generation_call.generating"))
    await _generate(images)


def _with_fault(*faults: Fault, error: type[BaseException] | None = None) -> Scenario:
    async def scenario(fake: FakeOpenAI, images: ImageClient) -> None:
        for fault in faults:
            fake.add_fault(fault)
        if error is None:
            await _generate(images)
        else:
            with pytest.raises(error):
                await _generate(images)

    return scenario


SCENARIOS: dict[str, Scenario] = {
    "plain": _with_fault(),
    "chain-and-forgotten-parent": _chain,
    "inputs-and-references": _inputs_and_references,
    "several-images-message-first": _several_images_message_first,
    "text-only": _with_fault(Fault.text_only("Just words.")),
    "refusal": _with_fault(Fault.refusal("I can't help with that."), error=GenerationError),
    "rate-limit-then-ok": _with_fault(Fault.rate_limit(0.01)),
    "server-error-then-ok": _with_fault(Fault.server_error(502)),
    "insufficient-quota": _with_fault(Fault.insufficient_quota(), error=GenerationError),
    "bad-key": _with_fault(Fault.http(401, code="invalid_api_key"), error=GenerationError),
    "moderation-http": _with_fault(Fault.moderation("http"), error=GenerationError),
    "moderation-item": _with_fault(Fault.moderation("item"), error=GenerationError),
    "moderation-response-failed": _with_fault(
        Fault.moderation("response_failed"), error=GenerationError
    ),
    "failed-server-error": _with_fault(Fault.response_failed("server_error")),
    "failed-rate-limit": _with_fault(Fault.response_failed("rate_limit_exceeded")),
    "failed-after-image": _with_fault(Fault.response_failed("server_error", after_image=True)),
    "failed-invalid-prompt": _with_fault(
        Fault.response_failed("invalid_prompt"), error=GenerationError
    ),
    "failed-bio-policy": _with_fault(Fault.response_failed("bio_policy"), error=GenerationError),
    "error-event": _with_fault(Fault.error_event("server_error")),
    "error-event-null-code": _with_fault(Fault.error_event("server_error", null_code=True)),
    "error-event-quota": _with_fault(
        Fault.error_event("insufficient_quota"), error=GenerationError
    ),
    "request-too-large": _with_fault(Fault.request_too_large(), error=GenerationError),
    "stuck-queued": _with_fault(Fault.stuck_queued()),
    "cut-after-created": _with_fault(Fault.cut_after("response.created")),
    "cut-after-partial": _with_fault(
        Fault.cut_after("response.image_generation_call.partial_image")
    ),
    "empty-resume": _with_fault(Fault.cut_after("response.created", resume_empty=True)),
    "resume-too-late": _resume_too_late,
    "no-tool-usage": _no_tool_usage,
    "cancel": _cancel,
    "models": _models,
}


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_every_scenario_keeps_to_the_sdk_types(
    fake: FakeOpenAI, images: ImageClient, name: str
) -> None:
    await SCENARIOS[name](fake, images)
    assert fake.requests, "nothing was sent"
    if name != "models":
        assert [r for r in fake.requests if r.path == "/v1/responses"], "no create request"
    assert contract_problems(fake) == []


# ------------------------------------------------------------------ one end-to-end run


async def test_an_end_to_end_conversation_keeps_to_the_sdk_types(
    discord_fake, openai_fake, make_settings  # noqa: F811
) -> None:
    settings = make_settings(default_partial_images=2)
    alice = discord_fake.add_user("alice")
    openai_fake.text_reply = "Here it is."
    async with running(settings):
        thread_id = await start_conversation(discord_fake, alice, "a lighthouse at dusk")
        await wait_results(discord_fake, thread_id, 1)
        await discord_fake.say(alice, thread_id, "add a storm")  # chained by previous_response_id
        await wait_results(discord_fake, thread_id, 2)
        openai_fake.forget_all()  # the next reply rebuilds the chain from the stored image
        await discord_fake.say(alice, thread_id, "now at dawn")
        await wait_results(discord_fake, thread_id, 3)
    bodies = openai_fake.create_requests()
    assert len(bodies) == 4  # the forgotten parent costs one refused create, then the rebuild
    assert any(part.get("type") == "input_image"
               for part in bodies[-1]["input"][-1]["content"])
    assert len(openai_fake.events) > 30 and openai_fake.answers
    assert contract_problems(openai_fake) == []
