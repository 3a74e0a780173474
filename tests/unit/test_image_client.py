"""The image client, with the real OpenAI SDK against the local fake Responses API."""

from __future__ import annotations

import base64
import io
import os
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
from PIL import Image

from bot.core.errors import (
    ErrorKind,
    GenerationError,
    PreviousResponseNotFound,
    ReferenceNotFound,
)
from bot.core.image_client import GenerationRequest, ImageClient, RetryPolicy
from bot.core.image_request import safety_identifier
from bot.core.models import InputImage, Progress, Stage
from bot.core.options import ImageOptions
from tests.fakes.openai_server import FakeOpenAI, Fault, read_lineage
from tests.unit.conftest import FAST_RETRY, MODEL

# The fake has no minimum size (the bot's own validation does, and is not what is tested here).
SMALL = ImageOptions(size="256x256", quality="low")
USER = 123_456_789_012_345_678
CUT_AFTER_PARTIAL = "response.image_generation_call.partial_image"


def request(prompt: str = "a lighthouse at dusk", **kwargs: Any) -> GenerationRequest:
    kwargs.setdefault("options", SMALL)
    return GenerationRequest(prompt=prompt, **kwargs)


def png(colour: str = "red", size: tuple[int, int] = (64, 64)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    return out.getvalue()


class Recorder:
    def __init__(self) -> None:
        self.progress: list[Progress] = []
        self.response_ids: list[tuple[str, int | None]] = []

    async def on_progress(self, progress: Progress) -> None:
        self.progress.append(progress)

    async def on_response_id(self, response_id: str, sequence: int | None) -> None:
        self.response_ids.append((response_id, sequence))

    @property
    def stages(self) -> list[Stage]:
        return [p.stage for p in self.progress]


def retrieves(fake: FakeOpenAI) -> list[dict[str, str]]:
    return [
        r.query
        for r in fake.requests
        if r.method == "GET" and r.path.startswith("/v1/responses/")
    ]


@pytest.fixture
async def slow_client(fake_openai: FakeOpenAI) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=fake_openai.base_url, api_key="sk-test", max_retries=0, timeout=0.5
    ) as client:
        yield client


# --------------------------------------------------------------------------- request shape


def test_build_params_shape(image_client: ImageClient) -> None:
    image = InputImage(png(), "image/png", "in.png")
    options = ImageOptions(action="edit", size="1536x1024", quality="high", output_format="webp",
                           compression=70, partial_images=2)
    params = image_client.build_params(
        GenerationRequest(
            prompt="make it blue",
            options=options,
            previous_response_id="resp_parent",
            input_images=[image],
            context_text="This continues: 1. a cat",
            user_id=USER,
        )
    )
    assert params["model"] == MODEL
    assert params["tools"] == [
        {
            "type": "image_generation",
            "action": "edit",
            "size": "1536x1024",
            "quality": "high",
            "output_format": "webp",
            "output_compression": 70,
            "partial_images": 2,
            "model": "gpt-image-2",  # IMAGE_MODEL unset: the pinned default is still named
        }
    ]
    assert params["tool_choice"] == {"type": "image_generation"}
    assert params["store"] is True
    assert params["background"] is True
    assert params["previous_response_id"] == "resp_parent"
    assert "stream" not in params

    (message,) = params["input"]
    assert message["role"] == "user"
    content = message["content"]
    assert [part["type"] for part in content] == ["input_text", "input_image", "input_text"]
    assert content[0]["text"] == "This continues: 1. a cat"  # the context comes first
    assert content[-1]["text"] == "make it blue"  # the prompt comes last
    url = content[1]["image_url"]
    assert url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.split(",", 1)[1]) == image.data

    ident = params["safety_identifier"]
    assert ident == safety_identifier(USER)
    assert str(USER) not in ident
    assert ident != safety_identifier(USER + 1)
    assert 8 <= len(ident) <= 64


def test_build_params_minimal_and_without_storage(openai_client: openai.AsyncOpenAI) -> None:
    client = ImageClient(openai_client, model=MODEL, image_model="gpt-image-x", store=False)
    params = client.build_params(
        GenerationRequest(prompt="a cat", options=ImageOptions())
    )
    assert params["tools"] == [{"type": "image_generation", "model": "gpt-image-x"}]
    assert params["store"] is False
    assert "background" not in params  # background needs stored responses
    assert "previous_response_id" not in params
    assert "safety_identifier" not in params
    assert params["input"] == [
        {"role": "user", "content": [{"type": "input_text", "text": "a cat"}]},
    ]


def test_the_turns_model_and_new_fields_reach_the_tool(openai_client: openai.AsyncOpenAI) -> None:
    """A server's own image model wins over IMAGE_MODEL; complexity and GIF frames are sent
    with the SDK's field names (`ImageGeneration.complexity`, `frame_count`,
    `frame_duration_ms`); frame fields only with GIF."""
    client = ImageClient(openai_client, model=MODEL, image_model="gpt-image-2")
    gif = ImageOptions(output_format="gif", frame_count=6, frame_duration_ms=120,
                       complexity="low", model="gpt-image-2.6-flare", partial_images=0)
    (tool,) = client.build_params(GenerationRequest(prompt="a cat", options=gif))["tools"]
    assert tool == {"type": "image_generation", "output_format": "gif", "frame_count": 6,
                    "frame_duration_ms": 120, "complexity": "low", "partial_images": 0,
                    "model": "gpt-image-2.6-flare"}
    png = ImageOptions(output_format="png", frame_count=6)
    (tool,) = client.build_params(GenerationRequest(prompt="a cat", options=png))["tools"]
    assert tool == {"type": "image_generation", "output_format": "png", "model": "gpt-image-2"}


# --------------------------------------------------------------------------- happy paths


async def test_generate_returns_images_usage_and_response_id(
    fake_openai: FakeOpenAI, image_client: ImageClient
) -> None:
    recorder = Recorder()
    result = await image_client.generate(
        request(user_id=USER), on_response_id=recorder.on_response_id
    )

    assert result.response_id is not None and result.response_id.startswith("resp_")
    assert [rid for rid, _ in recorder.response_ids] == [result.response_id]
    (image,) = result.images
    assert image.call_id.startswith("ig_")
    assert image.size == "256x256" and image.output_format == "png"
    assert image.revised_prompt == "a lighthouse at dusk"
    assert read_lineage(image.data) == ["a lighthouse at dusk"]
    with Image.open(io.BytesIO(image.data)) as decoded:
        assert decoded.format == "PNG" and decoded.size == (256, 256)
    assert result.text is None and result.rerooted is False

    stored = fake_openai.responses[result.response_id]
    image_gen = stored["tool_usage"]["image_gen"]
    assert result.usage.image_output == image_gen["output_tokens_details"]["image_tokens"] > 0
    assert result.usage.image_input == image_gen["input_tokens_details"]["image_tokens"]
    assert result.usage.text_input == stored["usage"]["input_tokens"]  # the mainline model's
    assert result.usage.tool_text_input == image_gen["input_tokens_details"]["text_tokens"]
    assert result.usage.text_output == stored["usage"]["output_tokens"]

    (body,) = fake_openai.create_requests()
    assert body["stream"] is True and body["background"] is True and body["store"] is True
    assert body["safety_identifier"] == safety_identifier(USER)
    assert fake_openai.generations == 1


async def test_usage_without_the_image_tools_share_books_the_image_by_the_published_table(
    fake_openai: FakeOpenAI, image_client: ImageClient
) -> None:
    # the recorded real image stream reports only the mainline `usage`, no `tool_usage`
    fake_openai.report_tool_usage = False
    options = ImageOptions(size="1536x1024", quality="high", partial_images=2)
    result = await image_client.generate(request("a castle on a hill", options=options))
    stored = fake_openai.responses[result.response_id]
    assert "tool_usage" not in stored
    assert result.usage.text_input == stored["usage"]["input_tokens"]
    # the image generation guide: high 1536x1024 = 6240 output tokens, + 100 per partial image
    assert result.usage.image_output == 6240 + 2 * 100
    assert result.usage.image_input == 0  # nothing to read: a new image
    assert result.usage.tool_text_input == 5  # "a castle on a hill": 18 characters, ~4 a token
    assert result.usage.estimated is True


async def test_reported_image_usage_is_not_estimated(image_client: ImageClient) -> None:
    result = await image_client.generate(request())
    assert result.usage.estimated is False and result.usage.image_output > 0


async def test_progress_stages_in_order(image_client: ImageClient) -> None:
    recorder = Recorder()
    options = ImageOptions(size="256x256", quality="low", partial_images=2)
    result = await image_client.generate(
        request(options=options), on_progress=recorder.on_progress
    )
    assert recorder.stages == [Stage.generating, Stage.partial, Stage.partial]
    partials = [p for p in recorder.progress if p.stage is Stage.partial]
    assert [p.partial_index for p in partials] == [0, 1]
    for progress in partials:
        assert progress.partial_image_b64 is not None
        with Image.open(io.BytesIO(base64.b64decode(progress.partial_image_b64))) as preview:
            assert preview.size == (256, 256)
    assert len(result.images) == 1


async def test_chaining_with_previous_response_id(
    fake_openai: FakeOpenAI, image_client: ImageClient
) -> None:
    first = await image_client.generate(request("a red barn"))
    second = await image_client.generate(
        request("add snow on the roof", previous_response_id=first.response_id)
    )
    assert fake_openai.create_requests()[1]["previous_response_id"] == first.response_id
    assert read_lineage(second.images[0].data) == ["a red barn", "add snow on the roof"]


async def test_several_images_per_response(
    fake_openai: FakeOpenAI, image_client: ImageClient
) -> None:
    fake_openai.images_per_response = 3
    result = await image_client.generate(request())
    assert len(result.images) == 3
    assert len({image.call_id for image in result.images}) == 3
    assert all(read_lineage(image.data) == ["a lighthouse at dusk"] for image in result.images)


@pytest.mark.parametrize("reasoning", [True, False], ids=["with-reasoning", "without"])
async def test_output_items_in_any_order_and_count(
    fake_openai: FakeOpenAI, image_client: ImageClient, reasoning: bool
) -> None:
    # a message before two images, with or without the leading reasoning item
    fake_openai.reasoning_item = reasoning
    fake_openai.message_first = True
    fake_openai.images_per_response = 2
    fake_openai.text_reply = "Two takes."
    result = await image_client.generate(request("two foxes"))
    assert [read_lineage(img.data) for img in result.images] == [["two foxes"]] * 2
    assert result.text == "Two takes."
    output = fake_openai.responses[result.response_id]["output"]
    assert [item["type"] for item in output] == (
        ["reasoning"] * reasoning + ["message", "image_generation_call", "image_generation_call"]
    )


async def test_a_reference_by_id_sends_the_images_reasoning_item_just_before_it(
    fake_openai: FakeOpenAI, image_client: ImageClient
) -> None:
    first = await image_client.generate(request("a lighthouse"))
    [image] = first.images
    # the reasoning item that preceded the image in its response (read from the fake's record)
    reasoning_id = fake_openai.responses[first.response_id]["output"][0]["id"]
    assert image.reasoning_id == reasoning_id
    later = await image_client.generate(request(
        "as a watercolour", reference_call_ids=[image.call_id],
        reference_reasoning_ids={image.call_id: reasoning_id},
    ))
    assert read_lineage(later.images[0].data) == ["a lighthouse", "as a watercolour"]
    body = fake_openai.create_requests()[-1]
    assert body["input"][:2] == [
        {"type": "item_reference", "id": reasoning_id},
        {"type": "image_generation_call", "id": image.call_id},
    ]
    assert len(fake_openai.create_requests()) == 2


@pytest.mark.parametrize("param", [None, "input"])
async def test_a_refusal_naming_a_referenced_item_asks_for_the_image_itself(
    fake_openai: FakeOpenAI, image_client: ImageClient, param: str | None
) -> None:
    first = await image_client.generate(request("a lighthouse"))
    call_id = first.images[0].call_id
    # the recorded refusal has param "input"; any 400 naming the item counts (e.g. without it)
    fake_openai.add_fault(Fault.http(
        400, code=None, param=param,
        message=f"Item '{call_id}' of type 'image_generation_call' was provided without its "
        "required 'reasoning' item: 'rs_x'.",
    ))
    with pytest.raises(ReferenceNotFound):
        await image_client.generate(request("again", reference_call_ids=[call_id]))
    assert len(fake_openai.create_requests()) == 2  # not retried: the caller re-sends bytes


async def test_text_only_answer(fake_openai: FakeOpenAI, image_client: ImageClient) -> None:
    fake_openai.add_fault(Fault.text_only("I would rather describe it: a tall white tower."))
    result = await image_client.generate(request())
    assert result.images == ()
    assert result.text == "I would rather describe it: a tall white tower."


async def test_input_images_reach_the_api(
    fake_openai: FakeOpenAI, image_client: ImageClient
) -> None:
    image = InputImage(png("blue"), "image/png")
    result = await image_client.generate(
        request("make it green", input_images=[image], options=ImageOptions(
            action="edit", size="256x256", quality="low"))
    )
    assert len(result.images) == 1
    content = fake_openai.create_requests()[0]["input"][0]["content"]
    assert content[0]["type"] == "input_image"
    assert content[0]["image_url"] == f"data:image/png;base64,{base64.b64encode(image.data).decode()}"


# --------------------------------------------------------------------------- retries


def noise_png(width: int, height: int) -> bytes:
    """A photo-like (incompressible) PNG of about width*height*3 bytes, stored uncompressed."""
    out = io.BytesIO()
    Image.frombytes("RGB", (width, height), os.urandom(width * height * 3)).save(
        out, "PNG", compress_level=0
    )
    return out.getvalue()


def sent_images(body: dict[str, Any]) -> list[bytes]:
    return [
        base64.b64decode(part["image_url"].partition(",")[2])
        for part in body["input"][0]["content"] if part["type"] == "input_image"
    ]


async def test_inputs_are_brought_within_the_apis_byte_limits(
    fake_openai: FakeOpenAI, image_client: ImageClient
) -> None:
    # a 20.2 MB image (over 20MB per image) plus three 17.4 MB ones, e.g. the parent image of a
    # rebuilt chain and the user's attachments (72 MB in all, over 50 MB per request)
    big, part = noise_png(3200, 2100), noise_png(2900, 2000)
    inputs = [InputImage(big, "image/png", "parent.png")] + [
        InputImage(part, "image/png", f"in{n}.png") for n in range(3)
    ]
    result = await image_client.generate(request("blend them", input_images=inputs))
    assert result.images
    [body] = fake_openai.create_requests()
    sent = sent_images(body)
    assert len(sent) == 4
    assert max(len(data) for data in sent) <= 20_000_000
    assert sum(len(data) for data in sent) <= 50_000_000
    for data in sent:  # still the same pictures, only re-encoded
        assert Image.open(io.BytesIO(data)).size in ((3200, 2100), (2900, 2000))


async def test_inputs_within_the_limits_are_sent_as_they_are(
    fake_openai: FakeOpenAI, image_client: ImageClient
) -> None:
    small = png("blue", (640, 480))
    await image_client.generate(request("x", input_images=[InputImage(small, "image/png")]))
    [body] = fake_openai.create_requests()
    assert sent_images(body) == [small]


async def test_rate_limit_is_retried(fake_openai: FakeOpenAI, image_client: ImageClient) -> None:
    fake_openai.add_fault(Fault.rate_limit(retry_after=0.02))
    recorder = Recorder()
    result = await image_client.generate(request(), on_progress=recorder.on_progress)
    assert len(result.images) == 1
    assert len(fake_openai.create_requests()) == 2
    retrying = [p for p in recorder.progress if p.stage is Stage.retrying]
    assert len(retrying) == 1
    assert retrying[0].attempt == 1
    assert retrying[0].retry_in is not None and retrying[0].retry_in >= 0.02  # the server's hint
    assert fake_openai.generations == 1


async def test_server_error_is_retried(fake_openai: FakeOpenAI, image_client: ImageClient) -> None:
    fake_openai.add_fault(Fault.server_error())
    fake_openai.add_fault(Fault.server_error(503))
    result = await image_client.generate(request())
    assert len(result.images) == 1
    assert len(fake_openai.create_requests()) == 3


@pytest.mark.parametrize("retries", [0, 2])
async def test_retries_are_bounded(
    fake_openai: FakeOpenAI, openai_client: openai.AsyncOpenAI, retries: int
) -> None:
    client = ImageClient(
        openai_client, model=MODEL,
        retry=RetryPolicy(max_attempts=retries, base_delay=0.01, max_delay=0.02),
    )
    for _ in range(10):
        fake_openai.add_fault(Fault.server_error())
    with pytest.raises(GenerationError) as excinfo:
        await client.generate(request())
    assert excinfo.value.kind is ErrorKind.server
    # `max_attempts` counts the retries after the first attempt (RETRY_MAX_ATTEMPTS=0: no retry)
    assert len(fake_openai.create_requests()) == 1 + retries


async def test_insufficient_quota_is_not_retried(
    fake_openai: FakeOpenAI, image_client: ImageClient
) -> None:
    fake_openai.add_fault(Fault.insufficient_quota())
    with pytest.raises(GenerationError) as excinfo:
        await image_client.generate(request())
    assert excinfo.value.kind is ErrorKind.quota
    assert not excinfo.value.retryable
    assert len(fake_openai.create_requests()) == 1


async def test_bad_api_key_is_not_retried(
    fake_openai: FakeOpenAI, image_client: ImageClient
) -> None:
    fake_openai.add_fault(Fault.http(401, code="invalid_api_key", message="Incorrect API key"))
    with pytest.raises(GenerationError) as excinfo:
        await image_client.generate(request())
    assert excinfo.value.kind is ErrorKind.auth
    assert len(fake_openai.create_requests()) == 1


@pytest.mark.parametrize("shape", ["http", "item", "response_failed"])
async def test_moderation_is_classified_and_not_retried(
    fake_openai: FakeOpenAI, image_client: ImageClient, shape: str
) -> None:
    fake_openai.add_fault(Fault.moderation(shape))  # type: ignore[arg-type]
    with pytest.raises(GenerationError) as excinfo:
        await image_client.generate(request())
    assert excinfo.value.kind is ErrorKind.moderation
    assert not excinfo.value.retryable
    assert len(fake_openai.create_requests()) == 1
    assert retrieves(fake_openai) == []
    assert fake_openai.generations == 0


@pytest.mark.parametrize(
    ("fault", "category"),
    [
        (Fault.response_failed("image_content_policy_violation"), None),
        (Fault.response_failed("invalid_prompt"), None),
        (Fault.response_failed("bio_policy"), None),
        (Fault.moderation("item", categories=("sexual",)), "sexual"),
        (Fault.moderation("http", categories=("violence", "self-harm")), "violence, self-harm"),
    ],
    ids=["content-policy", "invalid-prompt", "bio-policy", "failed-item", "http-400"],
)
async def test_every_safety_outcome_is_a_moderation_block_never_retried(
    fake_openai: FakeOpenAI, image_client: ImageClient, fault: Fault, category: str | None
) -> None:
    fake_openai.add_fault(fault)
    with pytest.raises(GenerationError) as excinfo:
        await image_client.generate(request())
    assert excinfo.value.kind is ErrorKind.moderation
    assert excinfo.value.params.get("category") == category
    assert not excinfo.value.retryable
    assert len(fake_openai.create_requests()) == 1
    assert retrieves(fake_openai) == []


async def test_one_blocked_image_does_not_lose_the_other(
    fake_openai: FakeOpenAI, image_client: ImageClient
) -> None:
    fake_openai.images_per_response = 2
    fake_openai.add_fault(Fault.moderation("item", first_only=True))
    result = await image_client.generate(request("two kites"))
    assert [read_lineage(img.data) for img in result.images] == [["two kites"]]
    assert len(fake_openai.create_requests()) == 1
    assert fake_openai.generations == 1


async def test_a_refusal_shows_its_text_and_is_not_retried(
    fake_openai: FakeOpenAI, image_client: ImageClient
) -> None:
    fake_openai.add_fault(Fault.refusal("I can't create that image."))
    with pytest.raises(GenerationError) as excinfo:
        await image_client.generate(request())
    assert excinfo.value.kind is ErrorKind.refused
    assert excinfo.value.params == {"text": "I can't create that image."}
    assert len(fake_openai.create_requests()) == 1


def requests_of(fake: FakeOpenAI, method: str, suffix: str = "", **query: str) -> list[str]:
    """Paths of the requests with this method (path ending in `suffix`, query items equal)."""
    return [
        r.path for r in fake.requests
        if r.method == method and r.path.endswith(suffix)
        and all(r.query.get(k) == v for k, v in query.items())
    ]


@pytest.mark.parametrize("code", ["server_error", "rate_limit_exceeded"])
async def test_a_retryable_failed_response_starts_a_new_request(
    fake_openai: FakeOpenAI, image_client: ImageClient, code: str
) -> None:
    fake_openai.add_fault(Fault.response_failed(code))
    recorder = Recorder()
    result = await image_client.generate(request("a kite"), on_response_id=recorder.on_response_id)
    assert read_lineage(result.images[0].data) == ["a kite"]
    assert len(fake_openai.create_requests()) == 2
    assert retrieves(fake_openai) == []  # the failed response is never resumed
    assert requests_of(fake_openai, "POST", "/cancel") == []  # it is over: nothing to cancel
    failed, done = [rid for rid, _ in recorder.response_ids]
    assert failed != done == result.response_id
    assert fake_openai.generations == 1


async def test_a_response_failing_after_its_image_still_delivers_the_image(
    fake_openai: FakeOpenAI, image_client: ImageClient
) -> None:
    fake_openai.add_fault(Fault.response_failed("server_error", after_image=True))
    result = await image_client.generate(request("a kite"))
    assert read_lineage(result.images[0].data) == ["a kite"]
    assert len(fake_openai.create_requests()) == 1  # not generated (and billed) a second time
    assert fake_openai.generations == 1


async def test_a_stream_error_event_cancels_then_starts_a_new_request(
    fake_openai: FakeOpenAI, image_client: ImageClient
) -> None:
    fake_openai.add_fault(Fault.error_event("server_error"))
    recorder = Recorder()
    result = await image_client.generate(request("a kite"), on_response_id=recorder.on_response_id)
    assert read_lineage(result.images[0].data) == ["a kite"]
    assert len(fake_openai.create_requests()) == 2
    first = recorder.response_ids[0][0]
    assert requests_of(fake_openai, "POST", "/cancel") == [f"/v1/responses/{first}/cancel"]
    assert retrieves(fake_openai) == []
    assert fake_openai.generations == 1


async def test_a_stream_error_event_with_a_null_code_is_a_server_error_and_retried(
    fake_openai: FakeOpenAI, image_client: ImageClient
) -> None:
    # recorded: `{"type": "server_error", "code": null, …}` (openai-error-null-code.1): the type
    # says what the null code does not
    fake_openai.add_fault(Fault.error_event("server_error", null_code=True))
    result = await image_client.generate(request("a kite"))
    assert read_lineage(result.images[0].data) == ["a kite"]
    assert len(fake_openai.create_requests()) == 2
    assert fake_openai.generations == 1


async def test_insufficient_quota_mid_stream_is_the_quota_error(
    fake_openai: FakeOpenAI, image_client: ImageClient
) -> None:
    fake_openai.add_fault(Fault.error_event("insufficient_quota"))  # openai-error.1.chunks.txt
    with pytest.raises(GenerationError) as excinfo:
        await image_client.generate(request())
    assert excinfo.value.kind is ErrorKind.quota
    assert len(fake_openai.create_requests()) == 1


async def test_a_request_too_large_for_the_rate_limit_is_not_retried(
    fake_openai: FakeOpenAI, image_client: ImageClient
) -> None:
    fake_openai.add_fault(Fault.request_too_large())  # openai-response-failed-only.1
    with pytest.raises(GenerationError) as excinfo:
        await image_client.generate(request())
    assert excinfo.value.kind is ErrorKind.invalid_request
    assert excinfo.value.params["reason"].startswith("Request too large")
    assert len(fake_openai.create_requests()) == 1


async def test_a_429_saying_the_request_is_too_large_is_not_retried(
    fake_openai: FakeOpenAI, image_client: ImageClient
) -> None:
    message = ("Request too large for gpt-5.5 in organization org-fake on tokens per min "
               "(TPM): Limit 30000, Requested 35364.")
    fake_openai.add_fault(Fault.http(429, code="rate_limit_exceeded", type="tokens",
                                     message=message))
    with pytest.raises(GenerationError) as excinfo:
        await image_client.generate(request())
    assert excinfo.value.kind is ErrorKind.invalid_request
    assert len(fake_openai.create_requests()) == 1


async def test_an_empty_resume_of_a_running_response_polls_it_until_it_is_done(
    fake_openai: FakeOpenAI, image_client: ImageClient
) -> None:
    # A resume that ends while the response still runs is normal (API-NOTES, "Second pass"):
    # the response is polled, never cancelled and paid for a second time.
    fake_openai.latency = 1.5  # the response still runs when the resume comes back empty
    fake_openai.add_fault(Fault.cut_after("response.created", resume_empty=True))
    recorder = Recorder()
    result = await image_client.generate(request("a kite"), on_response_id=recorder.on_response_id)
    first = recorder.response_ids[0][0]
    streams = [q.get("stream") for q in retrieves(fake_openai)]
    assert streams[0] == "true" and len(streams) >= 2 and set(streams[1:]) == {None}
    assert requests_of(fake_openai, "POST", "/cancel") == []
    assert fake_openai.responses[first]["status"] == "completed"
    assert len(fake_openai.create_requests()) == 1
    assert result.response_id == first
    assert read_lineage(result.images[0].data) == ["a kite"]
    assert fake_openai.generations == 1


async def test_a_resume_refused_after_the_resume_window_polls_the_response(
    fake_openai: FakeOpenAI, image_client: ImageClient
) -> None:
    # openai/openai-python#2828: more than 5 minutes after its creation a background response
    # cannot be streamed again (400); it can still be retrieved. The stream is cut mid-way.
    fake_openai.resume_window = 0.0
    fake_openai.latency = 1.0
    fake_openai.add_fault(Fault.cut_after("response.image_generation_call.generating"))
    result = await image_client.generate(request("a windmill"))
    assert read_lineage(result.images[0].data) == ["a windmill"]
    streams = [q.get("stream") for q in retrieves(fake_openai)]
    assert streams[0] == "true" and set(streams[1:]) == {None}
    assert next(a.status for a in fake_openai.answers if a.method == "GET") == 400
    assert requests_of(fake_openai, "POST", "/cancel") == []
    assert len(fake_openai.create_requests()) == 1
    assert fake_openai.generations == 1


async def test_a_restart_after_the_resume_window_takes_the_finished_response(
    fake_openai: FakeOpenAI, openai_client: openai.AsyncOpenAI, image_client: ImageClient
) -> None:
    # started before a restart that took more than 5 minutes; the response finished meanwhile
    fake_openai.resume_window = 0.0
    started = await openai_client.responses.create(
        **image_client.build_params(request("a castle")), stream=False
    )
    result = await image_client.resume(started.id, 3)
    assert result.response_id == started.id
    assert read_lineage(result.images[0].data) == ["a castle"]
    assert len(fake_openai.create_requests()) == 1
    assert fake_openai.generations == 1


async def test_an_empty_resume_of_a_finished_response_takes_its_result(
    fake_openai: FakeOpenAI, image_client: ImageClient
) -> None:
    fake_openai.add_fault(
        Fault.cut_after("response.image_generation_call.completed", resume_empty=True)
    )
    result = await image_client.generate(request("a kite"))
    assert read_lineage(result.images[0].data) == ["a kite"]
    assert [q.get("stream") for q in retrieves(fake_openai)] == ["true", None]
    assert requests_of(fake_openai, "POST", "/cancel") == []
    assert len(fake_openai.create_requests()) == 1
    assert fake_openai.generations == 1


async def test_a_response_stuck_in_queued_is_cancelled_and_recreated(
    fake_openai: FakeOpenAI, openai_client: openai.AsyncOpenAI
) -> None:
    client = ImageClient(openai_client, model=MODEL, retry=FAST_RETRY, queued_deadline=0.3)
    fake_openai.add_fault(Fault.stuck_queued())
    recorder = Recorder()
    result = await client.generate(request("a kite"), on_response_id=recorder.on_response_id)
    first = recorder.response_ids[0][0]
    assert [q.get("stream") for q in retrieves(fake_openai)] == [None]  # one plain retrieve
    assert requests_of(fake_openai, "POST", "/cancel") == [f"/v1/responses/{first}/cancel"]
    assert fake_openai.responses[first]["status"] == "cancelled"
    assert len(fake_openai.create_requests()) == 2
    assert read_lineage(result.images[0].data) == ["a kite"]
    assert fake_openai.generations == 1


async def test_unknown_previous_response(
    fake_openai: FakeOpenAI, image_client: ImageClient
) -> None:
    first = await image_client.generate(request("a boat"))
    assert first.response_id is not None
    fake_openai.forget(first.response_id)
    with pytest.raises(PreviousResponseNotFound):
        await image_client.generate(request("now at night", previous_response_id=first.response_id))
    assert len(fake_openai.create_requests()) == 2  # not retried


async def test_edit_without_an_image(fake_openai: FakeOpenAI, image_client: ImageClient) -> None:
    options = ImageOptions(action="edit", size="256x256", quality="low")
    with pytest.raises(GenerationError) as excinfo:
        await image_client.generate(request("make it blue", options=options))
    assert excinfo.value.kind is ErrorKind.edit_needs_image
    assert len(fake_openai.create_requests()) == 1


async def test_invalid_request_is_not_retried(
    fake_openai: FakeOpenAI, image_client: ImageClient
) -> None:
    with pytest.raises(GenerationError) as excinfo:
        await image_client.generate(request(options=ImageOptions(size="1000x1000")))
    assert excinfo.value.kind is ErrorKind.invalid_request
    assert len(fake_openai.create_requests()) == 1


# --------------------------------------------------------------------------- broken streams


async def test_a_cut_background_stream_is_resumed_not_recreated(
    fake_openai: FakeOpenAI, image_client: ImageClient
) -> None:
    fake_openai.add_fault(Fault.cut_after(CUT_AFTER_PARTIAL))
    recorder = Recorder()
    options = ImageOptions(size="256x256", quality="low", partial_images=2)
    result = await image_client.generate(
        request("a windmill", options=options),
        on_progress=recorder.on_progress,
        on_response_id=recorder.on_response_id,
    )

    assert len(fake_openai.create_requests()) == 1
    assert fake_openai.generations == 1
    (image,) = result.images
    assert read_lineage(image.data) == ["a windmill"]
    assert [rid for rid, _ in recorder.response_ids] == [result.response_id]
    (resumed,) = retrieves(fake_openai)
    assert resumed["stream"] == "true"
    assert int(resumed["starting_after"]) >= 1  # picked up after what had arrived
    # the first partial came before the cut, the second after the resume; none twice
    partials = [p.partial_index for p in recorder.progress if p.stage is Stage.partial]
    assert partials == [0, 1]
    assert Stage.retrying in recorder.stages


@pytest.mark.parametrize("store", [False, True])
async def test_a_cut_foreground_stream_is_not_recreated(
    fake_openai: FakeOpenAI, openai_client: openai.AsyncOpenAI, store: bool
) -> None:
    client = ImageClient(openai_client, model=MODEL, store=store, background=False,
                         retry=FAST_RETRY)
    fake_openai.add_fault(Fault.cut_after(CUT_AFTER_PARTIAL))
    options = ImageOptions(size="256x256", quality="low", partial_images=1)
    with pytest.raises(GenerationError) as excinfo:
        await client.generate(request(options=options))
    assert excinfo.value.kind is ErrorKind.connection
    bodies = fake_openai.create_requests()
    assert len(bodies) == 1  # a second create would generate (and bill) again
    assert bodies[0]["store"] is store and "background" not in bodies[0]
    assert retrieves(fake_openai) == []


async def test_a_hanging_request_times_out(
    fake_openai: FakeOpenAI, slow_client: openai.AsyncOpenAI
) -> None:
    client = ImageClient(
        slow_client, model=MODEL, retry=RetryPolicy(max_attempts=1, base_delay=0.01, max_delay=0.02)
    )
    fake_openai.add_fault(Fault.hang(5))
    fake_openai.add_fault(Fault.hang(5))
    with pytest.raises(GenerationError) as excinfo:
        await client.generate(request())
    assert excinfo.value.kind is ErrorKind.timeout
    assert len(fake_openai.create_requests()) == 2
    assert fake_openai.generations == 0


async def test_a_hang_once_then_success(
    fake_openai: FakeOpenAI, slow_client: openai.AsyncOpenAI
) -> None:
    client = ImageClient(slow_client, model=MODEL, retry=FAST_RETRY)
    fake_openai.add_fault(Fault.hang(5))
    result = await client.generate(request())
    assert len(result.images) == 1
    assert len(fake_openai.create_requests()) == 2


async def test_resume_a_background_response_by_id(
    fake_openai: FakeOpenAI, openai_client: openai.AsyncOpenAI, image_client: ImageClient
) -> None:
    # started earlier (e.g. before a restart) without reading its stream
    started = await openai_client.responses.create(
        **image_client.build_params(request("a castle")), stream=False
    )
    result = await image_client.resume(started.id, None)
    assert result.response_id == started.id
    assert read_lineage(result.images[0].data) == ["a castle"]
    assert fake_openai.generations == 1
    assert len(fake_openai.create_requests()) == 1


async def test_no_response_id_is_returned_without_storage(
    fake_openai: FakeOpenAI, openai_client: openai.AsyncOpenAI
) -> None:
    client = ImageClient(openai_client, model=MODEL, store=False, retry=FAST_RETRY)
    result = await client.generate(request())
    assert result.response_id is None  # nothing to chain from: the API did not keep it
    assert len(result.images) == 1


async def test_an_error_that_echoes_the_api_key_is_redacted(fake_openai: FakeOpenAI) -> None:
    fake = fake_openai
    key = "test-secret-key-that-must-not-leak-123"
    client = openai.AsyncOpenAI(base_url=fake.base_url, api_key=key, max_retries=0)
    try:
        fake.add_fault(Fault.http(400, code="invalid_value", message=f"Bad key {key} in request"))
        images = ImageClient(client, model=MODEL, retry=FAST_RETRY)
        with pytest.raises(GenerationError) as caught:
            await images.generate(GenerationRequest(prompt="x", options=ImageOptions()))
    finally:
        await client.close()
    assert caught.value.kind is ErrorKind.invalid_request
    assert key not in caught.value.detail and "[redacted]" in caught.value.detail
    assert key not in caught.value.params["reason"]
