"""A local fake of OpenAI's Responses API with the ``image_generation`` tool (aiohttp).

Point the real SDK at it — ``openai.AsyncOpenAI(base_url=fake.base_url, api_key="sk-test")`` —
and the bot runs its production code path against 127.0.0.1, with no network.

Faithful (checked against the installed ``openai`` 3.57 types, which must parse everything sent):

* ``POST /v1/responses`` (streaming and not), ``GET /v1/responses/{id}`` (incl.
  ``?stream=true&starting_after=N`` for background responses), ``POST /v1/responses/{id}/cancel``,
  ``DELETE /v1/responses/{id}``; Bearer auth (401 without it); JSON error bodies
  ``{"error": {message, type, param, code}}``; an ``x-request-id`` header on every answer.
* The SSE event sequence, fields and ``sequence_number`` numbering of a real image generation.
  The shape follows a recorded real stream (vercel/ai,
  ``packages/openai/src/responses/__fixtures__/openai-image-generation-tool.1.chunks.txt``):
  ``response.created`` → ``response.in_progress`` → a ``reasoning`` item at output index 0
  (``output_item.added`` + ``.done``, empty ``summary``) → the ``image_generation_call`` item
  (added, ``.in_progress``, ``.generating``, ``.partial_image`` × n, ``.completed``, then
  ``output_item.done`` with ``result``) → an assistant ``message`` item (``content_part.added``,
  deltas, ``output_text.done``, ``content_part.done``, ``output_item.done``; its text is often
  empty, and then there is no delta) → ``response.completed`` with ``usage`` and
  ``tool_usage.image_gen`` (or, with ``report_tool_usage`` off, only ``usage``, as recorded).
  The echoed tool carries fields that were not sent (``n: 1``, ``output_compression: 100``).
* Tool-parameter validation (size rules, format/background/compression/partials), unknown
  ``previous_response_id`` and item references, input images as data URLs, ``store`` and
  ``background`` semantics (a background generation runs server-side, independent of the
  client connection, and its stream can be resumed).
* Time limits: a background response's stream can be resumed only within ``resume_window``
  seconds of its creation (300 by default; later 400 "…more than 5 minutes old.",
  openai/openai-python#2828); a plain retrieve always works.
* Faults: HTTP errors, rate limits with ``retry-after``/``retry-after-ms``, hangs, connections
  dropped mid-stream, the three shapes of a moderation block, ``response.failed`` with any
  ``ResponseError.code``, a stream ``error`` event in its recorded shape (nested under
  ``error``, ``code`` possibly null, then ``response.failed``), refusals, text-only answers, a
  background response stuck in ``queued``, and a resume that yields no event. (How a resume
  can come back empty is our assumption: see each ``Fault`` constructor.)
* Limits: sizes per image model (custom sizes and the pixel range only where documented),
  20 MB per input image and 50 MB of input image bytes per request.

Simplified or invented (good enough for the bot's tests, not the real service):

* Images are synthetic: a solid colour plus the prompt text. Each carries its prompt *lineage*
  (see :mod:`tests.fakes.images`), so tests can check conversation chaining from the bytes alone.
* There is no model: the prompt is the last ``input_text`` of the last user message, the
  ``revised_prompt`` is that prompt unchanged, ``action: auto`` resolves to ``edit`` when an
  image is in context and ``generate`` otherwise, token counts are rough estimates.
* Rate limits are not enforced; the minimum image size can be relaxed for speed
  (``allow_small_sizes``); ``file_id`` inputs,
  masks and non-image tools are not supported (other tools are echoed back, never called).
* Every ``POST /v1/responses`` consumes the next queued :class:`Fault`, if any, *before*
  validation. ``http`` faults answer without validating; ``hang`` handles the request normally
  once the pause is over (if the client is still there); a moderation ``http`` block comes
  after validation; ``cut_after`` on a non-streaming background create has nothing to cut.
* A non-background request whose client disconnects before the generation finishes is
  abandoned: the generation is cancelled and the response forgotten (``previous_response_id``
  → 400). Cancelling a background response ends its streams without a terminal event.
* The model's choices are fixed: a moderation ``item`` block yields a completed response whose
  image item failed (then the usual message, empty unless ``text_reply`` is set); ``response_failed`` sends
  ``response.created``, ``response.in_progress``, then ``response.failed``. A request without
  an ``image_generation`` tool gets a text answer (three prompt ideas naming an input image's
  lineage, see ``_describe``). Background streams start with
  ``response.created`` (status ``queued``), then ``response.in_progress`` (no
  ``response.queued`` event). Referencing a still-running response as ``previous_response_id``
  is accepted.
* Partial images have the final size and format but are pixelated and carry no lineage.
* ``RecordedRequest.time`` is ``time.monotonic()``; header names are lower-cased.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import json
import math
import re
import secrets
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

from tests.fakes.images import (
    FORMATS,
    decode_data_url,
    has_alpha,
    inspect_image,
    read_lineage,
    render_image,
)
from tests.fakes.serving import until_signalled

__all__ = ["FakeOpenAI", "Fault", "RecordedAnswer", "RecordedRequest", "read_lineage"]

JSON = dict[str, Any]
ModerationShape = Literal["http", "item", "response_failed"]
FaultKind = Literal[
    "http", "hang", "cut_after", "moderation", "text_only", "failed", "error_event", "refusal",
    "stuck_queued",
]

DEFAULT_IMAGE_MODEL = "gpt-image-2.6-sunburst"
PRESET_SIZES = ("1024x1024", "1024x1536", "1536x1024")
# Custom sizes: edges multiples of 16, ratio 1:3 to 3:1, at most 3840x2160 (SDK 3.57,
# `ImageGeneration.size` docstring); longest edge at most 3840 px and 655,360 to 8,294,400 pixels
# (gpt-image-2 size constraints, OpenAI's image generation guide as quoted by API relays; applied
# here to every model that takes custom sizes, which is unverified beyond gpt-image-2).
MAX_EDGE = 3840
MAX_PIXELS = 3840 * 2160
MIN_PIXELS = 655_360
MAX_IMAGE_BYTES = 20_000_000
MAX_REQUEST_IMAGE_BYTES = 50_000_000
# Per-model rules, SDK 3.63 `openai.types.responses.tool_param.ImageGeneration` docstrings:
# `size`: arbitrary WIDTHxHEIGHT only on gpt-image-2 and the 2.5 models (others: the presets);
CUSTOM_SIZE_MODELS = frozenset({"gpt-image-2", "gpt-image-2.5-sunburst", "gpt-image-2.5-flare"})
# `quality`: "xhigh" and "max" on the 2.5 models only;
XHIGH_MODELS = frozenset({"gpt-image-2.5-sunburst", "gpt-image-2.5-flare"})
# `output_format`: "GIF and SVG output require a model that supports the selected format"; the
# 2.6 model page (developers.openai.com/api/docs/models/gpt-image-2.6-sunburst) names GIF, SVG
# and the complexity setting for 2.6, which the 2.5/2 pages do not;
GIF_SVG_MODELS = frozenset({"gpt-image-2.6-sunburst", "gpt-image-2.6-flare"})
COMPLEXITY_MODELS = GIF_SVG_MODELS
# `model`: gpt-image-1 "was shut down on October 23, 2026"; `openai.types.image_model`:
# dall-e-2/3 "retired on May 12, 2026" (the answer's status and wording are ours: unverified).
RETIRED_MODELS = {"gpt-image-1": "October 23, 2026", "dall-e-2": "May 12, 2026",
                  "dall-e-3": "May 12, 2026"}
# GIF: `frame_count` 2-16 (`openai.types.image_generate_params`), default 9; the frames are drawn
# on one sheet sharing one image's pixel budget of 8,294,400 (relay-measured, apiyi "GPT Image
# 2.6 GIF size table" 2026-11-09: square frames to 960 px at 9 frames, 720 at 16).
MIN_FRAMES, MAX_FRAMES, GIF_SHEET_PIXELS = 2, 16, 8_294_400
MAX_FRAME_MS = 655_350  # `frame_duration_ms`: the encoded delay is capped at 655,350 ms
MODERATION_MESSAGE = (
    "Your request was rejected by the safety system. "
    "It may contain content that is not allowed by our safety system."
)
# `ResponseError.code` values (openai.types.responses.ResponseError, SDK 3.57) a fake failure may
# carry, with a message for each. The codes are the SDK's; the wording is ours (unverified).
FAILURE_MESSAGES = {
    "server_error": "The server had an error while processing your request. Sorry about that!",
    "rate_limit_exceeded": "Rate limit reached for images per minute. Please try again later.",
    "invalid_prompt": "Invalid prompt: your prompt was flagged as potentially violating our "
    "usage policy. Please try again with a different prompt.",
    "bio_policy": "This request was blocked under our biological safety policy.",
    "image_content_policy_violation": "Your request was rejected as a result of our safety "
    "system. Your prompt may contain text that is not allowed by our safety system.",
}
QUOTA_MESSAGE = (
    "You exceeded your current quota, please check your plan and billing details. For more "
    "information on this error, read the docs: "
    "https://platform.openai.com/docs/guides/error-codes/api-errors."
)
# The `type` of a mid-stream `error` event by its `code`, and its message when the event is one
# of the recorded ones: insufficient_quota (vercel/ai openai-error.1.chunks.txt, gpt-5-nano,
# 2025-11), server_error (openai-error-null-code.1.chunks.txt, with a null code; the vercel/ai
# responses tests' error events carry `"type": "server_error", "code": "server_error"`).
ERROR_EVENT_TYPES = {
    "insufficient_quota": "insufficient_quota",
    "server_error": "server_error",
    "rate_limit_exceeded": "tokens",  # unverified: the type 429 answers carry
}
ERROR_EVENT_MESSAGES = {
    "insufficient_quota": QUOTA_MESSAGE,
    "server_error": "Sorry, something went wrong.",
}
# Approximate image output tokens for a 1024x1024 image at each quality; other sizes scale
# with their pixel count. Each streamed partial image adds 100 tokens.
_QUALITY_TOKENS = {"low": 272, "medium": 1056, "high": 4160, "xhigh": 6240, "max": 8320}
_SIZE_RE = re.compile(r"^(\d+)x(\d+)$")
# Models `GET /v1/models/{id}` knows by default (tests add or remove names via `FakeOpenAI.models`).
DEFAULT_MODELS = frozenset({
    "gpt-5.5", "gpt-5", "gpt-5-mini", "gpt-4.1", "gpt-4o",
    "gpt-image-1", "gpt-image-1-mini", "gpt-image-1.5", "gpt-image-2", DEFAULT_IMAGE_MODEL,
    # the other image models of SDK 3.63's `ImageGeneration.model` Literal
    "gpt-image-2.5-sunburst", "gpt-image-2.5-flare", "gpt-image-2.6-flare", "chatgpt-image-latest",
})
RESUME_WINDOW_SECONDS = 300.0
RESUME_TOO_LATE = (
    "This response can no longer be streamed because it is more than 5 minutes old."
)
_BODY = web.RequestKey("json_body", object)  # the parsed JSON body, stored by the middleware


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(25)}"


def _text_tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4)) if text else 0


# --------------------------------------------------------------------------- public helpers


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request as the fake received it (recorded before any validation)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    json: Any  # parsed JSON body, or None if there was none / it was not JSON
    time: float  # time.monotonic() at arrival


@dataclass(frozen=True)
class RecordedAnswer:
    """One JSON answer the fake gave (not the SSE streams: see ``FakeOpenAI.events``)."""

    method: str
    path: str
    status: int
    json: Any


@dataclass(frozen=True)
class Fault:
    """A misbehaviour for the next ``POST /v1/responses``; build one with the classmethods."""

    kind: FaultKind
    status: int = 0
    body: JSON | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    event_type: str | None = None
    shape: ModerationShape | None = None
    text: str | None = None
    categories: tuple[str, ...] = ()
    code: str | None = None
    resume_empty: bool = False
    after_image: bool = False
    first_only: bool = False
    message: str | None = None  # overrides the code's usual message
    null_code: bool = False  # an `error` event whose `code` is null (its `type` says it all)

    @classmethod
    def http(
        cls,
        status: int,
        *,
        code: str | None,
        type: str = "invalid_request_error",
        message: str = "The fake was told to fail this request.",
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Fault:
        """Answer with ``status`` and an OpenAI-style JSON error body."""
        error = {"message": message, "type": type, "param": param, "code": code}
        return cls("http", status=status, body={"error": error}, headers=dict(headers or {}))

    @classmethod
    def rate_limit(cls, retry_after: float = 0.05) -> Fault:
        """429 ``rate_limit_exceeded`` with ``retry-after`` (seconds) and ``retry-after-ms``."""
        message = (
            f"Rate limit reached for {DEFAULT_IMAGE_MODEL} in organization org-fake on images "
            f"per min (IPM): Limit 5, Used 5, Requested 1. "
            f"Please try again in {retry_after:g}s."
        )
        headers = {
            "retry-after": f"{retry_after:g}",
            "retry-after-ms": str(round(retry_after * 1000)),
            "x-ratelimit-limit-requests": "5",
            "x-ratelimit-remaining-requests": "0",
        }
        return cls.http(
            429, code="rate_limit_exceeded", type="requests", message=message, headers=headers
        )

    @classmethod
    def insufficient_quota(cls) -> Fault:
        """429 ``insufficient_quota`` (billing problem: retrying does not help)."""
        message = (
            "You exceeded your current quota, please check your plan and billing details. For "
            "more information on this error, read the docs: "
            "https://platform.openai.com/docs/guides/error-codes/api-errors."
        )
        return cls.http(429, code="insufficient_quota", type="insufficient_quota", message=message)

    @classmethod
    def server_error(cls, status: int = 500) -> Fault:
        """A 5xx with a ``server_error`` body."""
        message = "The server had an error while processing your request. Sorry about that!"
        return cls.http(status, code=None, type="server_error", message=message)

    @classmethod
    def hang(cls, seconds: float) -> Fault:
        """Accept the request, then send nothing for ``seconds`` (provokes client timeouts)."""
        return cls("hang", seconds=seconds)

    @classmethod
    def cut_after(cls, event_type: str, *, resume_empty: bool = False) -> Fault:
        """Drop the TCP connection right after the first event of ``event_type``.

        Background generations carry on server-side (retrieve / resume them later); other
        generations are cancelled and lost. On a non-streaming request the connection drops,
        without any answer, when the generation reaches that point. With ``resume_empty``,
        resuming this response's stream (``GET …?stream=true``) answers 200 with a stream that
        ends at once, with no event, while a plain ``GET`` still shows the live response.
        (Invented to exercise the bot's fallback; how the real service fails a resume is
        unverified.)
        """
        return cls("cut_after", event_type=event_type, resume_empty=resume_empty)

    @classmethod
    def response_failed(cls, code: str, *, after_image: bool = False) -> Fault:
        """The generation starts, then ends in ``response.failed`` with ``error.code`` = ``code``
        (a ``ResponseError.code`` value; the SDK type lists e.g. ``server_error``,
        ``rate_limit_exceeded``, ``invalid_prompt``, ``bio_policy``,
        ``image_content_policy_violation``). The failed response is over: resuming its stream
        yields nothing after the ``response.failed`` event. With ``after_image``, the failure
        comes after a completed (and so billed) image item (invented, to test that such an
        image is still delivered)."""
        if code not in FAILURE_MESSAGES:
            raise ValueError(f"no message for failure code {code!r}")
        return cls("failed", code=code, after_image=after_image)

    @classmethod
    def request_too_large(cls) -> Fault:
        """``response.failed`` with ``rate_limit_exceeded`` "Request too large … (TPM)": a rate
        limit code that no retry can satisfy (vercel/ai
        ``openai-response-failed-only.1.chunks.txt``, hand-made after real answers)."""
        message = (
            "Request too large for gpt-5.5 in organization org-fake on tokens per min (TPM): "
            "Limit 30000, Requested 35364. The input or output tokens must be reduced in "
            "order to run successfully."
        )
        return cls("failed", code="rate_limit_exceeded", message=message)

    @classmethod
    def error_event(cls, code: str, *, null_code: bool = False) -> Fault:
        """The stream sends an ``error`` event after ``response.in_progress``, then
        ``response.failed``, then ends — the recorded shape (vercel/ai
        ``openai-error.1.chunks.txt``): ``{"type": "error", "sequence_number": n, "error":
        {"type", "code", "message", "param"}}``, the details **nested under ``error``** (the
        SDK then raises an ``APIError`` whose ``body`` is the inner object). With
        ``null_code``, ``code`` is null and only ``type`` names the error
        (``openai-error-null-code.1.chunks.txt``: ``server_error``, "Sorry, something went
        wrong.")."""
        if code not in ERROR_EVENT_TYPES:
            raise ValueError(f"no recorded error event for code {code!r}")
        return cls("error_event", code=code, null_code=null_code)

    @classmethod
    def refusal(cls, text: str) -> Fault:
        """The model refuses: its message's content part is ``{"type": "refusal", "refusal":
        text}`` (``ResponseOutputRefusal``), streamed as ``response.refusal.delta``/``.done``;
        no image is made."""
        return cls("refusal", text=text)

    @classmethod
    def stuck_queued(cls) -> Fault:
        """A background response that stays ``queued`` (after ``response.created``, nothing
        more) until it is cancelled."""
        return cls("stuck_queued")

    @classmethod
    def moderation(
        cls,
        shape: ModerationShape,
        *,
        categories: tuple[str, ...] = ("violence",),
        first_only: bool = False,
    ) -> Fault:
        """``moderation_blocked`` as an HTTP 400, a failed image item, or ``response.failed``.
        With ``first_only`` (shape ``item``), only the first of several images fails."""
        return cls("moderation", shape=shape, categories=categories, first_only=first_only)

    @classmethod
    def text_only(cls, text: str) -> Fault:
        """The model answers with a text message and calls no tool."""
        return cls("text_only", text=text)


class _ApiError(Exception):
    """An OpenAI-style error answer."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        extra: JSON | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error: JSON = {"message": message, "type": type, "param": param, "code": code}
        self.error.update(extra or {})


# --------------------------------------------------------------------------- internal state


@dataclass(frozen=True)
class _ImageSpec:
    """The resolved ``image_generation`` tool configuration of one request."""

    width: int
    height: int
    fmt: str
    background: str  # resolved: transparent | opaque
    quality: str  # resolved
    compression: int | None
    partial_images: int
    action: str  # as requested: generate | edit | auto
    frames: int = 1  # GIF frames (one sheet: priced as one image of all frames' pixels)
    frame_ms: int = 200
    mask: tuple[int, int] | None = None  # the input_image_mask's size

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"

    @property
    def image_tokens(self) -> int:
        scale = (self.width * self.height * self.frames) / (1024 * 1024)
        return round(_QUALITY_TOKENS.get(self.quality, 1056) * scale)


@dataclass(frozen=True)
class _Rendered:
    final_b64: str
    partials_b64: tuple[str, ...]


@dataclass(frozen=True)
class _StoredItem:
    response_id: str
    kind: str  # "image_generation_call" | "message" | "reasoning"
    lineage: list[str] | None
    reasoning_id: str | None = None  # the reasoning item that preceded it in its response


@dataclass(eq=False)
class _Run:
    """One response: its stored JSON, its event log and the task producing it."""

    id: str
    response: JSON
    store: bool
    background: bool
    prev_id: str | None
    spec: _ImageSpec | None
    prompt: str
    lineage: list[str]  # lineage of the images this response makes
    has_context_image: bool
    input_image_lineages: list[list[str]]
    input_text_tokens: int
    fault: Fault | None
    created: float = field(default_factory=time.monotonic)  # for the resume window
    events: list[tuple[str, bytes]] = field(default_factory=list)
    output_lineages: list[list[str]] = field(default_factory=list)
    finished: bool = False
    cancel_requested: bool = False
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


def _json_response(
    status: int, payload: object, headers: Mapping[str, str] | None = None
) -> web.Response:
    all_headers = {"Content-Type": "application/json", "x-request-id": _new_id("req")}
    all_headers.update(headers or {})
    return web.Response(status=status, body=json.dumps(payload).encode(), headers=all_headers)


def _rejected_key(key: str) -> _ApiError:
    """A wrong or revoked key: 401 `invalid_request_error` / `invalid_api_key`, the message
    showing the key masked (OpenAI help "Error code 401 - Incorrect API key provided"; the body
    as recorded in public reports, e.g. chatanywhere/GPT_API_free#62)."""
    masked = f"{key[:4]}{'*' * max(len(key) - 8, 4)}{key[-4:]}"
    return _ApiError(
        401,
        f"Incorrect API key provided: {masked}. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        code="invalid_api_key",
    )


def _token(request: web.Request) -> str:
    """The bearer token of a request (the account it acts for)."""
    return request.headers.get("Authorization", "").partition(" ")[2].strip()


def _error_response(error: _ApiError) -> web.Response:
    return _json_response(error.status, {"error": error.error})


class FakeOpenAI:
    """The fake server. ``await start()``, use ``base_url``, ``await stop()``.

    Knobs (settable at any time; read when a generation starts):
        latency: seconds one generation takes, spread over its event stream.
        images_per_response: how many ``image_generation_call`` items a response carries.
        text_reply: the text of the assistant message every image response ends with (empty
            when unset, as in the recorded real stream); a text-only answer uses it too.
        report_tool_usage: send ``tool_usage.image_gen`` with a completed response (default on;
            off, like the recorded real stream, only the mainline ``usage`` comes).
        reasoning_item: put a ``reasoning`` item (empty summary) at output index 0, like the
            recorded real stream (default on).
        message_first: put the assistant message *before* the image items (the bot must take
            output items in any order and count).
        key_accepted: False rejects every request's key (401 ``invalid_api_key``).
        rejected_keys: keys rejected like that one by one; keys_without_quota: keys whose
            POSTs get 429 ``insufficient_quota`` (an account out of credit).
        models: the model names ``GET /v1/models/{id}`` finds (others: 404 ``model_not_found``).

    Observations:
        requests: every HTTP request, recorded before validation.
        responses: stored responses by id (the live Response JSON).
        generations: images actually delivered (completed items), e.g. to spot duplicates.
        api_key_seen: bearer tokens seen.
        events: every SSE event emitted (as JSON), answers: every JSON answer (method, path,
            status, body) — what ``tests/contract`` holds to the SDK's types.
    """

    def __init__(
        self,
        *,
        latency: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        static_images: bool = False,
        allow_small_sizes: bool = False,
    ) -> None:
        self.latency = latency
        # Relaxes the documented minimum of 655,360 pixels so that fast tests can use tiny
        # images; the bot's own size checks are tested against the enforcing default.
        self.allow_small_sizes = allow_small_sizes
        self.host = host
        self.port = port
        self.static_images = static_images
        self.base_url = ""
        self.requests: list[RecordedRequest] = []
        self.responses: dict[str, JSON] = {}
        self.generations = 0
        self.in_flight = 0  # generations being produced now (observation only, no rule)
        self.peak_in_flight = 0
        self.images_per_response = 1
        self.text_reply: str | None = None
        self.reasoning_item = True
        # `tool_usage.image_gen` in a completed response (SDK `Response.tool_usage`); the
        # recorded real image stream has no `tool_usage` at all, only the mainline `usage`
        # (vercel/ai openai-image-generation-tool.1.chunks.txt): False answers like it.
        self.report_tool_usage = True
        # Prompts the safety system blocks. There is no model: which prompts the real one
        # blocks is not modelled, a test names them; the answer is the HTTP 400
        # `moderation_blocked` shape of `Fault.moderation("http")`.
        self.blocked_prompts: set[str] = set()
        self.message_first = False
        self.api_key_seen: set[str] = set()
        self._event_log: list[bytes] = []  # every stream event emitted (SSE bytes)
        self._answer_log: list[tuple[str, str, int, bytes]] = []  # every JSON answer
        self.key_accepted = True  # False: every request's key is rejected (401 invalid_api_key)
        self.rejected_keys: set[str] = set()  # these keys get 401 invalid_api_key (revoked keys)
        self.keys_without_quota: set[str] = set()  # POSTs with these get 429 insufficient_quota
        self.models: set[str] = set(DEFAULT_MODELS)  # what GET /v1/models/{id} finds
        # Seconds after its creation during which a background response's stream can be
        # resumed (openai/openai-python#2828: later, 400 "This response can no longer be
        # streamed because it is more than 5 minutes old."; a plain retrieve still works).
        self.resume_window = RESUME_WINDOW_SECONDS
        # Restricted keys without the Models read scope: `GET /v1/models/{id}` answers them
        # 401 "…Missing scopes: api.model.read…" (see `_handle_model`); generation still works.
        self.keys_without_models_scope: set[str] = set()
        self._faults: deque[Fault] = deque()
        self._runs: dict[str, _Run] = {}  # stored runs only
        self._run_keys: dict[str, str] = {}  # stored run -> the key (account) that created it
        self._items: dict[str, _StoredItem] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._static_cache: dict[tuple[Any, ...], asyncio.Task[_Rendered]] = {}
        self._runner: web.AppRunner | None = None

    # ------------------------------------------------------------------ public API

    async def start(self) -> None:
        """Bind and serve; afterwards ``base_url`` is ``http://<host>:<port>/v1``."""
        app = web.Application(middlewares=[self._middleware], client_max_size=256 * 1024**2)
        app.router.add_post("/v1/responses", self._handle_create)
        app.router.add_get("/v1/responses/{id}", self._handle_retrieve)
        app.router.add_delete("/v1/responses/{id}", self._handle_delete)
        app.router.add_post("/v1/responses/{id}/cancel", self._handle_cancel)
        app.router.add_get("/v1/models/{model}", self._handle_model)
        app.router.add_route("*", "/{tail:.*}", self._handle_unknown)
        self._runner = web.AppRunner(
            app, handler_cancellation=True, shutdown_timeout=0.5, access_log=None
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self.base_url = f"http://{self.host}:{self.port}/v1"

    async def stop(self) -> None:
        """Cancel running generations and close the server (open streams are cut)."""
        tasks = list(self._tasks) + list(self._static_cache.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def events(self) -> list[JSON]:
        """Every SSE event emitted so far, parsed (for the contract tests)."""
        return [json.loads(data.split(b"data: ", 1)[1]) for data in self._event_log]

    @property
    def answers(self) -> list[RecordedAnswer]:
        """Every JSON answer given so far, parsed (for the contract tests)."""
        return [
            RecordedAnswer(method, path, status, json.loads(body) if body else None)
            for method, path, status, body in self._answer_log
        ]

    def create_requests(self) -> list[JSON]:
        """JSON bodies of every ``POST /v1/responses``, in arrival order."""
        return [r.json for r in self.requests if r.method == "POST" and r.path == "/v1/responses"]

    def add_fault(self, fault: Fault) -> None:
        """Queue a fault; each ``POST /v1/responses`` consumes one (FIFO) if any is queued."""
        self._faults.append(fault)

    def forget(self, response_id: str) -> None:
        """Drop a stored response (expiry/deletion): later references to it get a 400."""
        run = self._runs.pop(response_id, None)
        self.responses.pop(response_id, None)
        if run is not None:
            run.store = False
        for item_id in [k for k, v in self._items.items() if v.response_id == response_id]:
            del self._items[item_id]

    def forget_all(self) -> None:
        """Forget every stored response."""
        for response_id in list(self._runs):
            self.forget(response_id)

    # ------------------------------------------------------------------ plumbing

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        answer = await self._answer(request, handler)
        if isinstance(answer, web.Response) and answer.content_type == "application/json":
            body = answer.body if isinstance(answer.body, bytes) else b""
            self._answer_log.append((request.method, request.path, answer.status, body))
        return answer

    async def _answer(self, request: web.Request, handler: Any) -> web.StreamResponse:
        raw = await request.read()
        parsed: Any = None
        if raw:
            with contextlib.suppress(ValueError):
                parsed = json.loads(raw)
        self.requests.append(
            RecordedRequest(
                method=request.method,
                path=request.path,
                query=dict(request.query),
                headers={k.lower(): v for k, v in request.headers.items()},
                json=parsed,
                time=time.monotonic(),
            )
        )
        request[_BODY] = parsed
        auth = request.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return _error_response(
                _ApiError(
                    401,
                    "You didn't provide an API key. You need to provide your API key in an "
                    "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                )
            )
        self.api_key_seen.add(token.strip())
        if not self.key_accepted or token.strip() in self.rejected_keys:
            return _error_response(_rejected_key(token.strip()))
        if token.strip() in self.keys_without_quota and request.method == "POST":
            # an account out of credit: every billable request is a 429 insufficient_quota
            # (API reference, Error codes: "You exceeded your current quota")
            fault = Fault.insufficient_quota()
            return _json_response(fault.status, fault.body)
        try:
            return await handler(request)
        except _ApiError as exc:
            return _error_response(exc)

    async def _handle_model(self, request: web.Request) -> web.StreamResponse:
        # API reference: Models -> Retrieve model (`GET /v1/models/{model}`) returns the Model
        # object (`openai.types.Model`: id, object "model", created, owned_by). An unknown name
        # is a 404 `invalid_request_error` with `param: "model"`, `code: "model_not_found"`
        # ("The model '...' does not exist or you do not have access to it."; the shape and text
        # as recorded in public error reports and OpenAI's error-code guide).
        model = request.match_info["model"]
        token = request.headers.get("Authorization", "").partition(" ")[2].strip()
        if token in self.keys_without_models_scope:
            # A restricted key lacking a scope gets 401 (not 403) "You have insufficient
            # permissions for this operation. Missing scopes: …" (API-NOTES, "Second pass";
            # public reports). The scope name (`api.model.read`, as shown
            # in the platform's key settings), the rest of the text, type and code unverified.
            raise _ApiError(
                401,
                "You have insufficient permissions for this operation. Missing scopes: "
                "api.model.read. Check that you have the correct role in your organization "
                "(Reader, Writer, Owner) and project (Member, Owner), and if you're using a "
                "restricted API key, that it has the necessary scopes.",
            )
        if model not in self.models:
            raise _ApiError(
                404,
                f"The model '{model}' does not exist or you do not have access to it.",
                param="model",
                code="model_not_found",
            )
        return _json_response(
            200, {"id": model, "object": "model", "created": 1_700_000_000, "owned_by": "system"}
        )

    async def _handle_unknown(self, request: web.Request) -> web.StreamResponse:
        raise _ApiError(404, f"Invalid URL ({request.method} {request.path})")

    def _stored_run(self, response_id: str, request: web.Request | None = None) -> _Run:
        run = self._runs.get(response_id)
        # A stored response belongs to the account (project) whose key created it: OpenAI's
        # docs (Conversation state: responses are stored "in your project"; data controls:
        # stored data is scoped to the organization and project). Another account's key is
        # told it does not exist, like an unknown id.
        foreign = request is not None and self._run_keys.get(response_id) not in (None, _token(request))
        if run is None or foreign:
            raise _ApiError(404, f"Response with id '{response_id}' not found.")
        return run

    def _start(self, run: _Run) -> None:
        """Run the generation as a task of its own (it outlives client connections)."""

        def done(task: asyncio.Task[None]) -> None:
            self._tasks.discard(task)
            self.in_flight -= 1
            # also covers a task cancelled before it ever ran
            if task.cancelled() and run.cancel_requested:
                run.response["status"] = "cancelled"
            self._finish(run)

        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        run.task = asyncio.ensure_future(self._produce(run))
        self._tasks.add(run.task)
        run.task.add_done_callback(done)

    # ------------------------------------------------------------------ endpoints

    async def _handle_create(self, request: web.Request) -> web.StreamResponse:
        fault = self._faults.popleft() if self._faults else None
        if fault is not None and fault.kind == "hang":
            await asyncio.sleep(fault.seconds)
        if fault is not None and fault.kind == "http":
            return _json_response(fault.status, fault.body, fault.headers)
        body = request[_BODY]
        if not isinstance(body, dict):
            raise _ApiError(
                400,
                "We could not parse the JSON body of your request. (HINT: This likely means "
                "you aren't using your HTTP library correctly.)",
            )
        run = self._prepare(body, fault)
        blocked = fault is None and run.prompt in self.blocked_prompts
        if blocked or (fault is not None and fault.kind == "moderation" and fault.shape == "http"):
            raise _ApiError(
                400,
                MODERATION_MESSAGE,
                type="image_generation_user_error",
                code="moderation_blocked",
                extra={
                    "moderation_details": {
                        "moderation_stage": "input",
                        "categories": list(fault.categories) if fault else ["violence"],
                    }
                },
            )
        if run.store:
            self._runs[run.id] = run
            self._run_keys[run.id] = _token(request)
            self.responses[run.id] = run.response
        self._start(run)
        cut = fault.event_type if fault is not None and fault.kind == "cut_after" else None
        if body.get("stream"):
            return await self._stream(request, run, after=-1, cut=cut, owns_run=not run.background)
        if run.background:
            return _json_response(200, run.response)
        return await self._wait_and_answer(request, run, cut)

    async def _handle_retrieve(self, request: web.Request) -> web.StreamResponse:
        run = self._stored_run(request.match_info["id"], request)
        if request.query.get("stream", "").lower() not in ("true", "1"):
            return _json_response(200, run.response)
        if not run.background:
            raise _ApiError(
                400,
                "Streaming a stored response is only supported for responses created with "
                "background=true.",
                param="stream",
            )
        try:
            after = int(request.query.get("starting_after", "-1"))
        except ValueError:
            raise _ApiError(
                400, "Invalid 'starting_after': expected an integer.", param="starting_after"
            ) from None
        if time.monotonic() - run.created > self.resume_window:
            # openai/openai-python#2828 (BadRequestError, this message); param and code of the
            # real answer are not in the report (left null here)
            raise _ApiError(400, RESUME_TOO_LATE)
        if run.fault is not None and run.fault.resume_empty:
            return await self._empty_stream(request)
        return await self._stream(request, run, after=after, cut=None, owns_run=False)

    @staticmethod
    async def _empty_stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            status=200,
            headers={"Content-Type": "text/event-stream; charset=utf-8", "x-request-id": _new_id("req")},
        )
        await response.prepare(request)
        await response.write_eof()
        return response

    async def _handle_cancel(self, request: web.Request) -> web.StreamResponse:
        run = self._stored_run(request.match_info["id"], request)
        if not run.background:
            raise _ApiError(400, "Only responses created with background=true can be cancelled.")
        status = run.response["status"]
        if status in ("completed", "failed", "incomplete"):
            raise _ApiError(400, f"Cannot cancel a response with status '{status}'.")
        if status != "cancelled":
            run.cancel_requested = True
            if run.task is not None:
                run.task.cancel()
                await asyncio.wait([run.task])
        return _json_response(200, run.response)

    async def _handle_delete(self, request: web.Request) -> web.StreamResponse:
        response_id = request.match_info["id"]
        self._stored_run(response_id, request)
        self.forget(response_id)
        return _json_response(200, {"id": response_id, "object": "response", "deleted": True})

    # ------------------------------------------------------------------ answering

    async def _follow(self, run: _Run, after: int) -> AsyncIterator[tuple[str, bytes]]:
        """Yield the run's events with sequence_number > ``after``, live until it finishes."""
        index = max(0, after + 1)
        while True:
            while index < len(run.events):
                yield run.events[index]
                index += 1
            if run.finished:
                return
            await run.wakeup.wait()

    async def _stream(
        self, request: web.Request, run: _Run, *, after: int, cut: str | None, owns_run: bool
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            status=200,
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
                "x-request-id": _new_id("req"),
            },
        )
        completed = False
        try:
            await response.prepare(request)
            async with contextlib.aclosing(self._follow(run, after)) as events:
                async for event_type, data in events:
                    await response.write(data)
                    if event_type == cut:
                        self._drop_connection(request)
                        break
                else:
                    completed = True
                    await response.write_eof()
        except ConnectionError:
            pass  # the client went away
        finally:
            if owns_run and not completed:
                self._abandon(run)
        return response

    async def _wait_and_answer(
        self, request: web.Request, run: _Run, cut: str | None
    ) -> web.StreamResponse:
        completed = False
        try:
            async with contextlib.aclosing(self._follow(run, -1)) as events:
                async for event_type, _ in events:
                    if event_type == cut:
                        self._drop_connection(request)
                        return web.Response(status=200)  # never reaches the client
            completed = True
        finally:
            if not completed:
                self._abandon(run)
        return _json_response(200, run.response)

    @staticmethod
    def _drop_connection(request: web.Request) -> None:
        # close() flushes what was written, then closes: the client sees a truncated body.
        if request.transport is not None:
            request.transport.close()

    def _abandon(self, run: _Run) -> None:
        """A non-background response lost its client before finishing: cancel and forget it."""
        if run.finished:
            return
        if run.task is not None and not run.task.done():
            run.task.cancel()
        if self._runs.get(run.id) is run:
            self.forget(run.id)

    # ------------------------------------------------------------------ validation

    def _prepare(self, body: JSON, fault: Fault | None) -> _Run:
        """Validate a create request like the real API and build its (not yet started) run."""
        for name in ("model", "input"):
            if body.get(name) is None:
                raise _ApiError(
                    400,
                    f"Missing required parameter: '{name}'.",
                    param=name,
                    code="missing_required_parameter",
                )
        store = body.get("store")
        store = True if store is None else bool(store)
        background = bool(body.get("background"))
        if background and not store:
            raise _ApiError(
                400,
                "Background responses must be stored: background=true requires store=true.",
                param="background",
                code="invalid_value",
            )
        prev_id = body.get("previous_response_id")
        if prev_id is not None and prev_id not in self._runs:
            raise _ApiError(
                400,
                f"Previous response with id '{prev_id}' not found.",
                param="previous_response_id",
                code="previous_response_not_found",
            )
        tools = body.get("tools") or []
        if not isinstance(tools, list):
            raise _ApiError(400, "Invalid type for 'tools': expected an array.", param="tools")
        spec: _ImageSpec | None = None
        tool_index = 0
        echoed_tools: list[JSON] = []
        for index, tool in enumerate(tools):
            if not isinstance(tool, dict) or not isinstance(tool.get("type"), str):
                raise _ApiError(400, f"Invalid tool at tools[{index}].", param=f"tools[{index}]")
            if tool["type"] == "image_generation" and spec is None:
                spec, echoed = self._validate_tool(tool, index)
                tool_index = index
                echoed_tools.append(echoed)
            else:
                echoed_tools.append(tool)

        choice = body.get("tool_choice")
        if isinstance(choice, dict) and choice.get("type") == "image_generation" and spec is None:
            # ToolChoiceTypesParam names a hosted tool, which must be among `tools` (SDK
            # `openai.types.responses.tool_choice_types_param`); message wording unverified.
            raise _ApiError(
                400,
                "Tool choice 'image_generation' not found in 'tools' parameter.",
                param="tool_choice",
            )
        parsed = self._parse_input(body["input"], reasoning=_is_reasoning_model(body["model"]))
        chain_has_image, chain_lineage = self._chain_context(prev_id)
        has_context_image = chain_has_image or parsed.has_image
        if chain_has_image:
            context = chain_lineage
        elif parsed.referenced_lineages:
            context = parsed.referenced_lineages[0]
        else:
            context = []
        if spec is not None and spec.mask is not None:
            # The Images API's `mask` (`openai.types.image_edit_params`): applied to the first
            # image, "have the same dimensions as image"; no image at all: nothing to mask
            first = parsed.image_sizes[0] if parsed.image_sizes else None
            if not has_context_image or (first is not None and first != spec.mask):
                raise _ApiError(
                    400,
                    "The mask must have the same dimensions as the first input image.",
                    param=f"tools[{tool_index}].input_image_mask",
                    code="invalid_value",
                )
        if spec is not None and spec.action == "edit" and not has_context_image:
            raise _ApiError(
                400,
                "Image editing requires an input image.",
                param=f"tools[{tool_index}].action",
                code="image_edit_requires_image",
            )
        run_id = _new_id("resp")
        response: JSON = {
            "id": run_id,
            "object": "response",
            "created_at": int(time.time()),
            "status": "queued" if background else "in_progress",
            "background": background,
            "completed_at": None,
            "error": None,
            "incomplete_details": None,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "max_tool_calls": body.get("max_tool_calls"),
            "metadata": body.get("metadata") or {},
            "model": body["model"],
            "output": [],
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": prev_id,
            "reasoning": {"effort": None, "summary": None},
            "safety_identifier": body.get("safety_identifier"),
            "service_tier": "default",
            "store": store,
            "temperature": body.get("temperature", 1.0),
            "text": {"format": {"type": "text"}, "verbosity": "medium"},
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": echoed_tools,
            "top_logprobs": 0,
            "top_p": body.get("top_p", 1.0),
            "truncation": body.get("truncation", "disabled"),
            "usage": None,
            "user": body.get("user"),
        }
        return _Run(
            id=run_id,
            response=response,
            store=store,
            background=background,
            prev_id=prev_id,
            spec=spec,
            prompt=parsed.prompt,
            lineage=[*context, parsed.prompt],
            has_context_image=has_context_image,
            input_image_lineages=parsed.image_lineages,
            input_text_tokens=parsed.text_tokens,
            fault=fault,
        )

    def _validate_tool(self, tool: JSON, index: int) -> tuple[_ImageSpec, JSON]:
        def bad(name: str, message: str) -> _ApiError:
            return _ApiError(400, message, param=f"tools[{index}].{name}", code="invalid_value")

        def choice(name: str, allowed: tuple[str, ...], default: str) -> str:
            value = tool.get(name, default)
            if value not in allowed:
                raise bad(
                    name,
                    f"Invalid value: '{value}'. Supported values are: "
                    + ", ".join(f"'{a}'" for a in allowed)
                    + ".",
                )
            return str(value)

        action = choice("action", ("generate", "edit", "auto"), "auto")
        background = choice("background", ("transparent", "opaque", "auto"), "auto")
        fmt = choice("output_format", FORMATS, "png")
        quality = choice("quality", ("low", "medium", "high", "xhigh", "max", "auto"), "auto")
        choice("moderation", ("auto", "low"), "auto")
        model = self._check_model(tool, bad, fmt, quality)
        frames, frame_ms = self._check_gif(tool, bad, fmt)
        size = tool.get("size", "auto")
        if fmt == "gif":
            width, height = self._gif_frame_size(size, bad, frames)
        else:
            width, height = self._parse_size(size, bad, model)
        if background == "transparent" and fmt not in ("png", "webp"):
            # SDK `background`: "When using transparent, set the output format to png or webp"
            raise bad(
                "background",
                f"Transparent background is not supported for {fmt}; use png or webp.",
            )
        compression = tool.get("output_compression")
        if compression is not None:
            if isinstance(compression, bool) or not isinstance(compression, int):
                raise bad("output_compression", "output_compression must be an integer.")
            if not 0 <= compression <= 100:
                raise bad("output_compression", "output_compression must be between 0 and 100.")
            if fmt in ("png", "gif", "svg"):
                raise bad(
                    "output_compression",
                    f"output_compression is only supported for jpeg and webp, not {fmt}.",
                )
        partial = tool.get("partial_images", 0)
        if isinstance(partial, bool) or not isinstance(partial, int) or not 0 <= partial <= 3:
            raise bad("partial_images", "partial_images must be an integer between 0 and 3.")
        if partial and fmt == "gif":
            raise bad("partial_images", "GIF output does not support partial images.")
        if partial and fmt == "svg":
            # `openai.types.image_generate_params.svg`: SVG "does not support ... partial images"
            raise bad("partial_images", "SVG output does not support partial images.")
        mask = self._check_mask(tool, bad, fmt)
        spec = _ImageSpec(
            width=width,
            height=height,
            fmt=fmt,
            background="transparent" if background == "transparent" else "opaque",
            quality="medium" if quality == "auto" else quality,
            compression=compression,
            partial_images=partial,
            action=action,
            frames=frames,
            frame_ms=frame_ms,
            mask=mask,
        )
        # The real response echoes tool fields the request never sent, among them `n: 1` and
        # `output_compression: 100` (recorded real stream, vercel/ai
        # openai-image-generation-tool.1.chunks.txt). `n` is not in the SDK's `ImageGeneration`
        # type; the contract tests allow exactly this one extra field, citing the recording.
        echoed = {
            "type": "image_generation",
            "n": 1,
            "action": action,
            "background": background,
            "model": model,
            "moderation": tool.get("moderation", "auto"),
            "output_compression": 100 if compression is None else compression,
            "output_format": fmt,
            "partial_images": partial,
            "quality": quality,
            "size": size,
        }
        for name in ("complexity", "frame_count", "frame_duration_ms"):
            if name in tool:
                echoed[name] = tool[name]
        return spec, echoed

    @staticmethod
    def _check_model(tool: JSON, bad: Any, fmt: str, quality: str) -> str:
        """The model's own rules (the module's per-model tables, each citing its source)."""
        model = str(tool.get("model") or DEFAULT_IMAGE_MODEL)
        base = re.sub(r"-\d{4}-\d{2}-\d{2}$", "", model)
        if base in RETIRED_MODELS:
            raise bad("model", f"The model '{model}' was shut down on {RETIRED_MODELS[base]}.")
        if quality in ("xhigh", "max") and base not in XHIGH_MODELS:
            raise bad("quality", f"Quality '{quality}' is not supported for {model}.")
        if fmt in ("gif", "svg") and base not in GIF_SVG_MODELS:
            raise bad("output_format", f"Output format '{fmt}' is not supported for {model}.")
        complexity = tool.get("complexity")
        if complexity is not None:
            if complexity not in ("low", "medium", "high"):  # SDK `complexity` Literal
                raise bad("complexity", f"Invalid value: '{complexity}'. Supported values are: "
                          "'low', 'medium', 'high'.")
            if base not in COMPLEXITY_MODELS:
                raise bad("complexity", f"complexity is not supported for {model}.")
        fidelity = tool.get("input_fidelity")
        if fidelity is not None:
            # SDK `input_fidelity`: high and low on gpt-image-1.5, only low on gpt-image-1-mini,
            # "For gpt-image-2, omit this parameter" (read as a refusal: unverified); the 2.5 and
            # 2.6 models are not named (taken here)
            allowed = {"gpt-image-1-mini": ("low",), "gpt-image-2": ()}.get(base, ("high", "low"))
            if fidelity not in allowed:
                raise bad("input_fidelity",
                          f"input_fidelity '{fidelity}' is not supported for {model}.")
        if "svg" in tool and fmt != "svg":  # SDK `svg`: "Requires output_format to be svg"
            raise bad("svg", "svg requires output_format to be 'svg'.")
        return model

    @staticmethod
    def _check_gif(tool: JSON, bad: Any, fmt: str) -> tuple[int, int]:
        """`frame_count` and `frame_duration_ms` (SDK: both "Require output_format to be gif")."""
        count, duration = tool.get("frame_count"), tool.get("frame_duration_ms")
        for name, value in (("frame_count", count), ("frame_duration_ms", duration)):
            if value is not None and fmt != "gif":
                raise bad(name, f"{name} requires output_format to be 'gif'.")
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise bad(name, f"{name} must be an integer.")
        if count is not None and not MIN_FRAMES <= count <= MAX_FRAMES:
            raise bad("frame_count", "frame_count must be between 2 and 16.")
        if duration is not None and not 1 <= duration <= MAX_FRAME_MS:
            raise bad("frame_duration_ms", f"frame_duration_ms must be between 1 and {MAX_FRAME_MS}.")
        frames = 9 if count is None else count  # SDK: "Default: 9"
        ms = 200 if duration is None else round(duration / 10) * 10  # "rounded to 10 ms"
        return frames, ms

    @staticmethod
    def _gif_frame_size(size: object, bad: Any, frames: int) -> tuple[int, int]:
        """A GIF frame: edges multiples of 16, ratio within 1:3-3:1, and all frames within the
        sheet's pixel budget (see GIF_SHEET_PIXELS); `auto`: the largest square that fits."""
        if size == "auto":
            edge = int((GIF_SHEET_PIXELS / frames) ** 0.5) // 16 * 16
            return edge, edge
        match = _SIZE_RE.match(size) if isinstance(size, str) else None
        if match is None:
            raise bad("size", f"Invalid size '{size}': use 'auto' or 'WIDTHxHEIGHT'.")
        width, height = int(match[1]), int(match[2])
        if not width or not height or width % 16 or height % 16:
            raise bad("size", f"Invalid size '{size}': width and height must be multiples of 16.")
        if max(width, height) > 3 * min(width, height):
            raise bad("size", f"Invalid size '{size}': the aspect ratio must be between 1:3 and 3:1.")
        if width * height * frames > GIF_SHEET_PIXELS:
            raise bad("size", f"Size {size} is too large for {frames} frames.")
        return width, height

    @staticmethod
    def _check_mask(tool: JSON, bad: Any, fmt: str) -> tuple[int, int] | None:
        """`input_image_mask` (SDK `ImageGenerationInputImageMask`: `image_url` or `file_id`);
        refused with GIF (SDK `output_format`: GIF "does not support ... input_image_mask"); a PNG
        with an alpha channel (the Images API's `mask`: "Must be a valid PNG file, less than 4MB")."""
        mask = tool.get("input_image_mask")
        if mask is None:
            return None
        if fmt == "gif":
            raise bad("input_image_mask", "GIF output does not support input_image_mask.")
        url = mask.get("image_url") if isinstance(mask, dict) else None
        if not isinstance(url, str) or not url.startswith("data:"):
            raise bad("input_image_mask", "input_image_mask needs an image_url (a data URL in "
                      "this fake; file_id masks are not supported by this fake).")
        try:
            _, data = decode_data_url(url)
            info = inspect_image(data)
        except ValueError:
            raise bad("input_image_mask", "The mask is not a valid image.") from None
        if info.format != "png" or len(data) >= 4 * 1024 * 1024 or not has_alpha(data):
            raise bad("input_image_mask", "The mask must be a PNG with an alpha channel, "
                      "less than 4MB.")
        return info.width, info.height

    def _parse_size(self, size: object, bad: Any, model: str) -> tuple[int, int]:
        if size == "auto":
            return 1024, 1024
        match = _SIZE_RE.match(size) if isinstance(size, str) else None
        if match is None:
            raise bad("size", f"Invalid size '{size}': use 'auto' or 'WIDTHxHEIGHT'.")
        width, height = int(match[1]), int(match[2])
        if size in PRESET_SIZES:
            return width, height
        if re.sub(r"-\d{4}-\d{2}-\d{2}$", "", model) not in CUSTOM_SIZE_MODELS:
            # SDK 3.63 `ImageGeneration.size` docstring: custom sizes on gpt-image-2 and the
            # 2.5 models only; the other GPT image models take the presets (wording ours)
            raise bad(
                "size",
                f"Invalid size '{size}' for {model}. Supported values are: 'auto', "
                + ", ".join(f"'{p}'" for p in PRESET_SIZES) + ".",
            )
        problems = []
        if width <= 0 or height <= 0 or width % 16 or height % 16:
            problems.append("width and height must both be positive multiples of 16")
        elif max(width, height) > 3 * min(width, height):
            problems.append("the aspect ratio must be between 1:3 and 3:1")
        if max(width, height) > MAX_EDGE:
            problems.append(f"the longest edge must be at most {MAX_EDGE}px")
        if width * height > MAX_PIXELS:
            problems.append("the image must have at most 3840x2160 pixels")
        if width * height < MIN_PIXELS and not self.allow_small_sizes:
            problems.append(f"the image must have at least {MIN_PIXELS} pixels")
        if problems:
            raise bad("size", f"Invalid size '{size}': " + "; ".join(problems) + ".")
        return width, height

    def _chain_context(self, prev_id: str | None) -> tuple[bool, list[str]]:
        """(image in the previous_response chain?, lineage of the chain's latest image)."""
        seen: set[str] = set()
        while prev_id is not None and prev_id not in seen:
            seen.add(prev_id)
            run = self._runs.get(prev_id)
            if run is None:
                break
            if run.output_lineages:
                return True, run.output_lineages[-1]
            if run.has_context_image and run.input_image_lineages:
                with_lineage = [lin for lin in run.input_image_lineages if lin]
                return True, with_lineage[0] if with_lineage else []
            prev_id = run.prev_id
        return False, []

    def _parse_input(self, raw: object, *, reasoning: bool = False) -> _ParsedInput:
        parsed = _ParsedInput()
        if isinstance(raw, str):
            parsed.prompt = raw
            parsed.text_tokens = _text_tokens(raw)
            return parsed
        if not isinstance(raw, list):
            raise _ApiError(
                400, "Invalid type for 'input': expected a string or an array.", param="input"
            )
        for i, item in enumerate(raw):
            if not isinstance(item, dict):
                raise _ApiError(400, f"Invalid input item at input[{i}].", param=f"input[{i}]")
            item_type = item.get("type")
            if item_type in (None, "message") and "role" in item:
                self._parse_message(item, i, parsed)
            elif item_type in ("image_generation_call", "item_reference", "reasoning"):
                self._parse_reference(item, parsed)
                if reasoning:
                    self._require_reasoning(item, parsed)
        if parsed.image_bytes > MAX_REQUEST_IMAGE_BYTES:
            # "Up to 50 MB image bytes per request" (OpenAI's Images and vision guide, image
            # input requirements); counted as decoded bytes of the input images in this request
            # (images referenced by id are not counted); code and wording are ours (unverified)
            raise _ApiError(
                400,
                f"Too many image bytes in one request: {parsed.image_bytes}; at most 50MB.",
                param="input",
                code="image_too_large",
            )
        return parsed

    def _parse_message(self, item: JSON, i: int, parsed: _ParsedInput) -> None:
        content = item.get("content")
        if isinstance(content, str):
            parts: list[Any] = [{"type": "input_text", "text": content}]
        elif isinstance(content, list):
            parts = content
        else:
            raise _ApiError(400, "Invalid message content.", param=f"input[{i}].content")
        last_text: str | None = None
        for j, part in enumerate(parts):
            if not isinstance(part, dict):
                raise _ApiError(400, "Invalid content part.", param=f"input[{i}].content[{j}]")
            part_type = part.get("type")
            if part_type in ("input_text", "output_text") and isinstance(part.get("text"), str):
                parsed.text_tokens += _text_tokens(part["text"])
                if part_type == "input_text":
                    last_text = part["text"]
            elif part_type == "input_image":
                lineage = self._parse_input_image(part, f"input[{i}].content[{j}]", parsed)
                parsed.has_image = True
                parsed.image_lineages.append(lineage)
                if lineage:
                    parsed.referenced_lineages.append(lineage)
        if item.get("role") == "user":
            parsed.prompt = last_text or ""

    @staticmethod
    def _parse_input_image(part: JSON, where: str, parsed: _ParsedInput) -> list[str]:
        url = part.get("image_url")
        if not isinstance(url, str):
            raise _ApiError(
                400,
                "input_image needs an image_url (file_id inputs are not supported by this fake).",
                param=f"{where}.image_url",
            )
        if not url.startswith("data:"):
            raise _ApiError(
                400,
                "image_url must be a data URL in this fake (never send remote URLs such as "
                "Discord CDN links).",
                param=f"{where}.image_url",
                code="invalid_image_url",
            )
        try:
            _, data = decode_data_url(url)
        except ValueError:
            data = b""  # reported below as an invalid image
        if len(data) > MAX_IMAGE_BYTES:
            # "Up to 20MB per image" (OpenAI's Images and vision guide, image input
            # requirements); code and wording are ours (unverified), the limit is the guide's,
            # read as decimal megabytes (the stricter reading)
            raise _ApiError(
                400,
                f"Image too large: {len(data)} bytes; each image may be at most 20MB.",
                param=f"{where}.image_url",
                code="image_too_large",
            )
        parsed.image_bytes += len(data)
        try:
            info = inspect_image(data, as_a_model_sees_it=True)
            parsed.image_sizes.append((info.width, info.height))
            return info.lineage
        except ValueError:
            raise _ApiError(
                400,
                "The image data you provided does not represent a valid image. Please check "
                "your input and try again with one of the supported image formats: "
                "['image/jpeg', 'image/png', 'image/gif', 'image/webp'].",
                param=f"{where}.image_url",
                code="invalid_image",
            ) from None

    def _require_reasoning(self, item: JSON, parsed: _ParsedInput) -> None:
        """With a reasoning mainline model, an output item of a reasoning model sent back in
        `input` needs the `reasoning` item that preceded it in its response, sent before it
        (as the item or an `item_reference` to it). Otherwise 400 `invalid_request_error`,
        `param: "input"`, `code: null`, "Item '…' of type '…' was provided without its required
        'reasoning' item: 'rs_…'." (recorded in public reports for `function_call` items, e.g.
        cline/cline#12242 with gpt-5.5, openai/openai-agents-python handoffs; reported for
        `image_generation_call` items with a reasoning mainline model)."""
        item_id = item.get("id")
        stored = self._items.get(item_id) if isinstance(item_id, str) else None
        if stored is None:
            return
        if stored.kind == "reasoning":
            parsed.reasoning_ids.add(str(item_id))
        elif stored.reasoning_id and stored.reasoning_id not in parsed.reasoning_ids:
            raise _ApiError(
                400,
                f"Item '{item_id}' of type '{stored.kind}' was provided without its required "
                f"'reasoning' item: '{stored.reasoning_id}'.",
                param="input",
            )

    def _parse_reference(self, item: JSON, parsed: _ParsedInput) -> None:
        """An ``image_generation_call`` / ``item_reference`` input item: a stored image item
        becomes the context image (its lineage continues); an item passed back by value (with
        its ``result``) is read from its bytes. (API-NOTES: earlier images can be referenced in
        ``input`` by id.)"""
        item_id = item.get("id")
        stored = self._items.get(item_id) if isinstance(item_id, str) else None
        if stored is not None:
            if stored.kind == "image_generation_call":
                parsed.has_image = True
                parsed.referenced_lineages.append(stored.lineage or [])
            return
        result = item.get("result")
        if item.get("type") == "image_generation_call" and isinstance(result, str):
            # a full item passed back by value (stateless / store=false conversations)
            try:
                lineage = read_lineage(base64.b64decode(result, validate=True))
            except (ValueError, binascii.Error):
                raise _ApiError(
                    400,
                    "Invalid image_generation_call result.",
                    param="input",
                    code="invalid_image",
                ) from None
            parsed.has_image = True
            parsed.referenced_lineages.append(lineage)
            return
        if item.get("type") == "reasoning":
            return  # a reasoning item passed back by value (its own rules are not modelled)
        # An unknown item id: 404 `invalid_request_error`, param `input`, "Item with id '…' not
        # found. Items are not persisted when `store` is set to false…" (API-NOTES, "Second
        # pass"; public reports). A null `code` is our assumption.
        raise _ApiError(
            404,
            f"Item with id '{item_id}' not found. Items are not persisted when `store` is set "
            "to false. Try again with `store` set to true, or remove this item from your input.",
            param="input",
        )

    # ------------------------------------------------------------------ generation

    def _emit(self, run: _Run, event_type: str, payload: JSON) -> None:
        event = {"type": event_type, "sequence_number": len(run.events), **payload}
        data = f"event: {event_type}\ndata: {json.dumps(event)}\n\n".encode()
        self._event_log.append(data)  # as sent; parsed only when `events` is read
        run.events.append((event_type, data))
        wakeup, run.wakeup = run.wakeup, asyncio.Event()
        wakeup.set()

    def _finish(self, run: _Run) -> None:
        run.finished = True
        run.wakeup.set()

    async def _render(self, run: _Run) -> _Rendered:
        spec = run.spec
        assert spec is not None
        if not self.static_images:
            return await asyncio.to_thread(_render_b64, spec, run.lineage)
        key = (spec.width, spec.height, spec.fmt, spec.background, spec.compression)
        task = self._static_cache.get(key)
        if task is None:
            task = asyncio.ensure_future(
                asyncio.to_thread(_render_b64, spec, ["static benchmark image"], partials=3)
            )
            self._static_cache[key] = task
        rendered = await asyncio.shield(task)
        return _Rendered(rendered.final_b64, rendered.partials_b64[: spec.partial_images])

    async def _produce(self, run: _Run) -> None:
        """Generate the response, appending its events; the task stays independent of clients."""
        response = run.response
        try:
            self._emit(run, "response.created", {"response": response})
            latency = self.latency
            if run.fault is not None and run.fault.kind == "stuck_queued":
                await asyncio.Event().wait()  # until cancelled
            if run.background:
                await asyncio.sleep(min(0.01, latency))
                response["status"] = "in_progress"
            self._emit(run, "response.in_progress", {"response": response})
            await asyncio.sleep(latency * 0.05)
            fault = run.fault
            failing = fault is not None and fault.kind in ("failed", "error_event", "moderation")
            if failing and not fault.after_image and await self._produce_failure(run, fault):
                return
            text = self.text_reply
            images: list[JSON] = []
            if self.reasoning_item:
                self._produce_reasoning(run)
            if fault is not None and fault.kind == "refusal":
                assert fault.text is not None
                await self._produce_message(run, fault.text, refusal=True)
            elif fault is not None and fault.kind == "text_only":
                text = fault.text
            elif run.spec is None:
                text = text or self._describe(run)
            else:
                if self.message_first:
                    await self._produce_message(run, text or "")
                count = max(1, self.images_per_response)
                budget = latency * 0.95 / count
                for _ in range(count):
                    item = await self._produce_image(run, budget)
                    images.append(item)
                if failing and fault.after_image and await self._produce_failure(run, fault):
                    return
                # The recorded real stream ends with an assistant message after the image,
                # often with empty text (vercel/ai openai-image-generation-tool.1.chunks.txt).
                text = None if self.message_first else text or ""
            if text is not None:
                await self._produce_message(run, text)
            response["status"] = "completed"
            response["completed_at"] = int(time.time())
            response["usage"] = self._usage(run, images, text)
            if self.report_tool_usage:
                response["tool_usage"] = self._tool_usage(run, images)
            self._emit(run, "response.completed", {"response": response})
        except asyncio.CancelledError:
            if run.cancel_requested:
                response["status"] = "cancelled"
            raise
        finally:
            self._finish(run)

    @staticmethod
    def _describe(run: _Run) -> str:
        """A text-only answer (no tools: the SDK's ``ResponseOutputMessage`` with one
        ``output_text`` part). There is no model: asked about an image, the fake answers with
        three numbered prompt ideas built from the image's lineage, so a test can tell which
        image was described."""
        described = next((lin for lin in run.input_image_lineages if lin), None)
        if described is None:
            if run.input_image_lineages:
                described = ["an image"]
            else:
                return "I can only describe images: no image_generation tool was given."
        subject = described[-1]
        styles = ("photorealistic, soft light", "watercolour painting", "pixel art, 16 colours")
        return "\n".join(f"{n}. {subject}, {style}" for n, style in enumerate(styles, 1))

    async def _produce_image(self, run: _Run, budget: float) -> JSON:
        spec = run.spec
        assert spec is not None
        response = run.response
        item_id = _new_id("ig")
        index = len(response["output"])
        earlier = sum(1 for o in response["output"] if o.get("type") == "image_generation_call")
        moderated = (
            run.fault is not None
            and run.fault.kind == "moderation"
            and not (run.fault.first_only and earlier)
        )
        render = None if moderated else asyncio.ensure_future(self._render(run))
        try:
            item: JSON = {"id": item_id, "type": "image_generation_call", "status": "in_progress"}
            response["output"].append(item)
            ids = {"item_id": item_id, "output_index": index}
            self._emit(run, "response.output_item.added", {"item": item, "output_index": index})
            self._emit(run, "response.image_generation_call.in_progress", ids)
            item["status"] = "generating"
            self._emit(run, "response.image_generation_call.generating", ids)
            action = spec.action
            if action == "auto":
                action = "edit" if run.has_context_image else "generate"
            details = {
                "action": action,
                "background": spec.background,
                "output_format": spec.fmt,
                "quality": spec.quality,
                "size": spec.size,
            }
            if render is None:  # output-stage moderation: the item fails
                await asyncio.sleep(budget * 0.5)
                assert run.fault is not None
                final = {
                    "id": item_id,
                    "type": "image_generation_call",
                    "status": "failed",
                    "result": None,
                    "revised_prompt": run.prompt,
                    **details,
                    "error": {
                        "code": "moderation_blocked",
                        "message": MODERATION_MESSAGE,
                        "param": None,
                        "type": "image_generation_user_error",
                        "moderation_details": {
                            "moderation_stage": "output",
                            "categories": list(run.fault.categories),
                        },
                    },
                }
            else:
                partials = spec.partial_images
                waits = (
                    [budget * 0.5] + [budget * 0.5 / partials] * partials if partials else [budget]
                )
                for p in range(partials):
                    await asyncio.sleep(waits[p])
                    rendered = await render
                    self._emit(
                        run,
                        "response.image_generation_call.partial_image",
                        {
                            **ids,
                            "partial_image_b64": rendered.partials_b64[p],
                            "partial_image_index": p,
                            "background": spec.background,
                            "output_format": spec.fmt,
                            "quality": spec.quality,
                            "size": spec.size,
                        },
                    )
                await asyncio.sleep(waits[-1])
                rendered = await render
                self.generations += 1
                final = {
                    "id": item_id,
                    "type": "image_generation_call",
                    "status": "completed",
                    "result": rendered.final_b64,
                    "revised_prompt": run.prompt,
                    **details,
                }
                self._emit(run, "response.image_generation_call.completed", ids)
                run.output_lineages.append(run.lineage)
                if run.store:
                    self._items[item_id] = _StoredItem(
                        run.id, "image_generation_call", run.lineage, _reasoning_before(response)
                    )
            response["output"][index] = final
            self._emit(run, "response.output_item.done", {"item": final, "output_index": index})
            return final
        finally:
            if render is not None and not render.done():
                render.cancel()

    async def _produce_failure(self, run: _Run, fault: Fault | None) -> bool:
        """End the run in ``response.failed`` (after an ``error`` event for that fault); False
        when the fault fails the run some other way."""
        assert fault is not None
        code = fault.code
        if fault.kind == "moderation":
            if fault.shape != "response_failed":
                return False
            # `ResponseError.code` has no `moderation_blocked` (openai.types.responses.
            # ResponseError, SDK 3.57): a response that fails for its content carries
            # `image_content_policy_violation`.
            code = "image_content_policy_violation"
        assert code is not None
        await asyncio.sleep(self.latency * 0.25)
        if fault.message:
            message = fault.message
        elif fault.kind == "error_event" and code in ERROR_EVENT_MESSAGES:
            message = ERROR_EVENT_MESSAGES[code]
        else:
            message = FAILURE_MESSAGES[code]
        if fault.kind == "error_event":
            # recorded: the details nested under `error`, then `response.failed`, then the end
            # (vercel/ai openai-error.1.chunks.txt; a null code: openai-error-null-code.1)
            inner = {"type": ERROR_EVENT_TYPES[code], "code": None if fault.null_code else code,
                     "message": message, "param": None}
            self._emit(run, "error", {"error": inner})
        response = run.response
        response["status"] = "failed"
        # `response.error` is `{code, message}` (the same recording; `ResponseError.code` is
        # never null there: a null-coded `error` event is followed by `server_error`)
        response["error"] = {"code": code, "message": message}
        response["usage"] = self._usage(run, [])
        self._emit(run, "response.failed", {"response": response})
        return True

    def _produce_reasoning(self, run: _Run) -> None:
        """Output index 0 of a real image stream: a reasoning item, added then done at once, with
        an empty summary (recorded real stream, vercel/ai openai-image-generation-tool.1)."""
        index = len(run.response["output"])
        item: JSON = {"id": _new_id("rs"), "type": "reasoning", "summary": []}
        run.response["output"].append(item)
        if run.store:
            self._items[item["id"]] = _StoredItem(run.id, "reasoning", None)
        self._emit(run, "response.output_item.added", {"item": item, "output_index": index})
        self._emit(run, "response.output_item.done", {"item": item, "output_index": index})

    async def _produce_message(self, run: _Run, text: str, *, refusal: bool = False) -> None:
        response = run.response
        item_id = _new_id("msg")
        index = len(response["output"])
        item: JSON = {
            "id": item_id,
            "type": "message",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        response["output"].append(item)
        ids = {"item_id": item_id, "output_index": index, "content_index": 0}
        self._emit(run, "response.output_item.added", {"item": item, "output_index": index})
        if refusal:
            # ResponseOutputRefusal, streamed as response.refusal.delta / .done (SDK 3.57 types)
            part: JSON = {"type": "refusal", "refusal": ""}
            self._emit(run, "response.content_part.added", {**ids, "part": part})
            self._emit(run, "response.refusal.delta", {**ids, "delta": text})
            self._emit(run, "response.refusal.done", {**ids, "refusal": text})
            part = {"type": "refusal", "refusal": text}
            self._emit(run, "response.content_part.done", {**ids, "part": part})
        else:
            part = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
            self._emit(run, "response.content_part.added", {**ids, "part": part})
            # an empty text has no delta at all: content_part.added is followed by
            # output_text.done (recorded real stream, vercel/ai
            # openai-image-generation-tool.1.chunks.txt)
            for chunk in re.findall(r"\S+\s*|\s+", text):
                delta = {**ids, "delta": chunk, "logprobs": []}
                self._emit(run, "response.output_text.delta", delta)
                await asyncio.sleep(0)
            part = {**part, "text": text}
            self._emit(run, "response.output_text.done", {**ids, "text": text, "logprobs": []})
            self._emit(run, "response.content_part.done", {**ids, "part": part})
        final = {**item, "status": "completed", "content": [part]}
        response["output"][index] = final
        if run.store:
            self._items[item_id] = _StoredItem(run.id, "message", None)
        self._emit(run, "response.output_item.done", {"item": final, "output_index": index})

    @staticmethod
    def _usage(run: _Run, images: list[JSON], text: str | None = None) -> JSON:
        input_tokens = 40 + run.input_text_tokens + 85 * len(run.input_image_lineages)
        output_tokens = 30 * len(images) + _text_tokens(text or "")
        return {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + output_tokens,
        }

    @staticmethod
    def _tool_usage(run: _Run, images: list[JSON]) -> JSON:
        done = [item for item in images if item["status"] == "completed"]
        spec = run.spec
        image_out = 0
        if spec is not None:
            image_out = len(done) * (spec.image_tokens + 100 * spec.partial_images)
        text_in = _text_tokens(run.prompt) * len(images)
        image_in = 272 * len(images) if run.has_context_image else 0
        return {
            "image_gen": {
                "input_tokens": text_in + image_in,
                "input_tokens_details": {"image_tokens": image_in, "text_tokens": text_in},
                "output_tokens": image_out,
                "output_tokens_details": {"image_tokens": image_out, "text_tokens": 0},
                "total_tokens": text_in + image_in + image_out,
            },
            "web_search": {"num_requests": 0},
        }


@dataclass
class _ParsedInput:
    prompt: str = ""
    text_tokens: int = 0
    has_image: bool = False
    image_lineages: list[list[str]] = field(default_factory=list)  # every input_image
    referenced_lineages: list[list[str]] = field(default_factory=list)  # refs carrying lineage
    image_bytes: int = 0  # decoded bytes of every input_image
    image_sizes: list[tuple[int, int]] = field(default_factory=list)  # every input_image's
    reasoning_ids: set[str] = field(default_factory=set)  # stored reasoning items sent so far


# Reasoning models: the GPT-5 family and the o-series (OpenAI's model pages); their output
# items need their reasoning items when sent back (`_require_reasoning`).
_REASONING_MODEL_RE = re.compile(r"^(gpt-5|o\d)")


def _is_reasoning_model(model: object) -> bool:
    return isinstance(model, str) and _REASONING_MODEL_RE.match(model) is not None


def _reasoning_before(response: JSON) -> str | None:
    """The id of the last reasoning item in a response's output so far (the one an item
    appended now follows), if any."""
    for item in reversed(response["output"]):
        if item.get("type") == "reasoning":
            return str(item["id"])
    return None


def _render_b64(spec: _ImageSpec, lineage: list[str], *, partials: int | None = None) -> _Rendered:
    rendered = render_image(
        lineage,
        width=spec.width,
        height=spec.height,
        fmt=spec.fmt,
        transparent=spec.background == "transparent",
        compression=spec.compression,
        partial_images=spec.partial_images if partials is None else partials,
        frames=spec.frames,
        frame_ms=spec.frame_ms,
    )
    return _Rendered(
        base64.b64encode(rendered.final).decode(),
        tuple(base64.b64encode(p).decode() for p in rendered.partials),
    )


# --------------------------------------------------------------------------- standalone


async def _serve(args: argparse.Namespace) -> None:
    fake = FakeOpenAI(
        latency=args.latency, host=args.host, port=args.port, static_images=args.static_images
    )
    await fake.start()
    print(f"READY {fake.base_url}", flush=True)
    try:
        await until_signalled()
    finally:
        await fake.stop()


def main(argv: list[str] | None = None) -> None:
    """``python -m tests.fakes.openai_server --port 0 --latency 10 [--static-images]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per generation")
    parser.add_argument(
        "--static-images", action="store_true", help="serve one cached image per size/format"
    )
    asyncio.run(_serve(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
