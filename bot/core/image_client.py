"""The only code that talks to OpenAI: builds Responses requests, streams them, classifies errors.

A generation is one streamed Responses call with the `image_generation` tool. With stored
responses it runs as a *background* response, so that a broken stream (or a restarted bot) resumes
the same generation with `retrieve(stream=True, starting_after=…)` instead of paying for a new one.
The response id is handed to the caller the moment `response.created` arrives. A stream that
cannot be resumed (the service refuses it 5 minutes after creation, or it comes back empty) falls
back to polling the response without `stream` until it ends: a paid result is never given up.

Retries are ours, not the SDK's (`max_retries=0`): a create is retried only while no response id
is known, so a generation is never requested twice.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import openai
from openai import AsyncOpenAI
from openai.types.responses import (
    EasyInputMessageParam,
    ResponseInputImageParam,
    ResponseInputMessageContentListParam,
    ResponseInputTextParam,
    ToolChoiceTypesParam,
)
from openai.types.responses.tool_param import ImageGeneration as ImageGenerationParam

from bot.core.costs import estimated_image_usage
from bot.core.errors import (
    ErrorKind,
    GenerationError,
    PreviousResponseNotFound,
    ReferenceNotFound,
    ResponseOver,
)
from bot.core.image_models import DEFAULT_FRAMES, DEFAULT_IMAGE_MODEL, MASK_NAME
from bot.core.imaging import fit_inputs
from bot.core.models import GeneratedImage, InputImage, Progress, Stage, TurnResult, Usage
from bot.core.options import ImageOptions

log = logging.getLogger(__name__)

_EDIT_RE = re.compile(r"\bedit", re.IGNORECASE)

# Polling a background response that cannot be streamed: first wait, doubling up to the max.
POLL_FIRST_SECONDS = 0.5
POLL_MAX_SECONDS = 5.0

ProgressSink = Callable[[Progress], Awaitable[None]]
ResponseIdSink = Callable[[str, int | None], Awaitable[None]]


async def _ignore_progress(_: Progress) -> None:
    return None


async def _ignore_response_id(_: str, __: int | None) -> None:
    return None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded exponential backoff with full jitter, honouring the server's retry-after."""

    max_attempts: int = 4  # retries after the first try
    max_seconds: float = 120.0
    base_delay: float = 1.0
    max_delay: float = 30.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        backoff = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        jittered = random.uniform(backoff / 2, backoff)
        return max(jittered, retry_after or 0.0)


@dataclass(slots=True)
class GenerationRequest:
    """Everything one generation needs, already validated."""

    prompt: str
    options: ImageOptions
    previous_response_id: str | None = None
    input_images: list[InputImage] = field(default_factory=list)
    context_text: str | None = None  # the prompt lineage, when the chain had to be rebuilt
    user_id: int | None = None
    # earlier images referred to by their stored `image_generation_call` id (a remix of a bot
    # result), sent as input items before the message: no bytes re-sent
    reference_call_ids: list[str] = field(default_factory=list)
    # the reasoning item that preceded each referenced image in its response (by call id): sent
    # just before it, or a reasoning mainline model refuses the reference (API-NOTES)
    reference_reasoning_ids: dict[str, str] = field(default_factory=dict)


def data_url(image: InputImage) -> str:
    return f"data:{image.mime};base64,{base64.b64encode(image.data).decode('ascii')}"


def safety_identifier(user_id: int) -> str:
    """A stable, non-reversible id for OpenAI's abuse monitoring (never the raw Discord id)."""
    return hashlib.sha256(f"imagine-bot:{user_id}".encode()).hexdigest()[:32]


def _retry_after(exc: openai.APIStatusError) -> float | None:
    headers = exc.response.headers
    try:
        if "retry-after-ms" in headers:
            return float(headers["retry-after-ms"]) / 1000
        if "retry-after" in headers:
            return float(headers["retry-after"])
    except ValueError:
        return None
    return None


def _error_fields(body: object) -> tuple[str, str, str, str]:
    """(code, type, param, message) from an API error body or a failed item's error object."""
    if isinstance(body, dict):
        inner = body.get("error") if isinstance(body.get("error"), dict) else body
        return (
            str(inner.get("code") or ""),
            str(inner.get("type") or ""),
            str(inner.get("param") or ""),
            str(inner.get("message") or ""),
        )
    code = getattr(body, "code", None) or ""
    return str(code), str(getattr(body, "type", "") or ""), "", str(getattr(body, "message", "") or "")


# Outcomes of the safety system, never retried: `moderation_blocked` (an HTTP 400 or a failed
# `image_generation_call`) and the `ResponseError.code` values of a response that failed for its
# content (openai.types.responses.ResponseError, SDK 3.57).
SAFETY_CODES = frozenset(
    {"moderation_blocked", "image_content_policy_violation", "invalid_prompt", "bio_policy"}
)


def _categories(body: object) -> str:
    """The public moderation categories of an error, if it names any (`moderation_details`)."""
    if isinstance(body, dict):
        inner = body.get("error") if isinstance(body.get("error"), dict) else body
        details = inner.get("moderation_details")
        found = details.get("categories") if isinstance(details, dict) else None
    else:
        found = getattr(getattr(body, "moderation_details", None), "categories", None)
    if not isinstance(found, list):
        return ""
    return ", ".join(str(c) for c in found if c)


def _safety_error(body: object, message: str) -> GenerationError:
    category = _categories(body)
    params = {"category": category} if category else {}
    return GenerationError(ErrorKind.moderation, detail=message, **params)


# A rate limit that no wait can satisfy: one request larger than the per-minute limit
# ("Request too large for … on tokens per min (TPM): Limit 30000, Requested 35364"; vercel/ai
# openai-response-failed-only.1.chunks.txt). Retrying it only fails again.
_TOO_LARGE_RE = re.compile(r"\brequest too large\b", re.IGNORECASE)


def classify_error_body(body: object) -> GenerationError:
    """Classify an error that arrived as data (an `error` event, a failed item or response):
    by its `code`, or by its `type` when the code is null (a recorded `error` event:
    `{"type": "server_error", "code": null}`)."""
    code, type_, _param, message = _error_fields(body)
    if code in SAFETY_CODES or type_ == "image_generation_user_error":
        return _safety_error(body, message)
    key = code or type_
    if key == "insufficient_quota" or type_ == "insufficient_quota":
        return GenerationError(ErrorKind.quota, detail=message)
    if key == "rate_limit_exceeded":
        if _TOO_LARGE_RE.search(message):
            return GenerationError(ErrorKind.invalid_request, detail=message, reason=message[:200])
        return GenerationError(ErrorKind.rate_limited, retryable=True, detail=message)
    if key in ("server_error", "internal_error"):
        return GenerationError(ErrorKind.server, retryable=True, detail=message)
    return GenerationError(ErrorKind.invalid_request, detail=message, reason=message[:200])


def classify(exc: BaseException) -> GenerationError | PreviousResponseNotFound:
    """Map an SDK exception to our error kinds."""
    if isinstance(exc, openai.APITimeoutError):
        return GenerationError(ErrorKind.timeout, retryable=True, detail=str(exc))
    if isinstance(exc, openai.APIConnectionError):
        return GenerationError(ErrorKind.connection, retryable=True, detail=str(exc))
    if isinstance(exc, openai.APIStatusError):
        return _classify_status(exc)
    if isinstance(exc, openai.APIError):  # an `error` event inside the stream
        return classify_error_body(exc.body)
    return GenerationError(ErrorKind.connection, retryable=True, detail=repr(exc))


def _classify_status(exc: openai.APIStatusError) -> GenerationError | PreviousResponseNotFound:
    """Map an HTTP error answer to our error kinds."""
    code, type_, param, message = _error_fields(exc.body)
    status = exc.status_code
    if status == 429:
        if code == "insufficient_quota" or type_ == "insufficient_quota":
            return GenerationError(ErrorKind.quota, detail=message)
        if _TOO_LARGE_RE.search(message):  # larger than the limit itself: waiting cannot help
            return GenerationError(ErrorKind.invalid_request, detail=message, reason=message[:200])
        return GenerationError(
            ErrorKind.rate_limited, retryable=True, retry_after=_retry_after(exc), detail=message
        )
    if status in (401, 403):
        return GenerationError(ErrorKind.auth, detail=message)
    if code == "previous_response_not_found" or (
        param == "previous_response_id" and status in (400, 404)
    ):
        return PreviousResponseNotFound(message)
    if code in SAFETY_CODES or type_ == "image_generation_user_error":
        return _safety_error(exc.body, message)
    if status in (400, 404) and param == "input":
        return ReferenceNotFound(message)  # an input item it does not have (or will not take)
    if status == 400 and (
        "action" in param or code == "image_edit_requires_image" or _EDIT_RE.search(message)
    ):
        return GenerationError(ErrorKind.edit_needs_image, detail=message)
    if status in (408, 409) or status >= 500:
        return GenerationError(
            ErrorKind.server, retryable=True, retry_after=_retry_after(exc), detail=message
        )
    return GenerationError(ErrorKind.invalid_request, detail=message, reason=message[:200])


def _decode(b64: str) -> bytes:
    return base64.b64decode(b64)


class _StreamState:
    """What one generation has received so far (survives a resumed stream)."""

    def __init__(self) -> None:
        self.response_id: str | None = None
        self.sequence: int | None = None
        self.images: dict[str, GeneratedImage] = {}
        self.text_parts: list[str] = []
        self.refusals: list[str] = []
        self.failed_items: dict[str, GenerationError] = {}  # failed image items, by id
        self.usage = Usage()
        self.billed = Usage()  # of earlier responses that ended without a result (billed all)
        self.finished = False
        self.queued = False  # the response said `queued` and has not started since
        self.last_reasoning_id: str | None = None  # the latest reasoning item taken
        # for estimating the image tool's tokens when the response does not report them
        self.shape = _RequestShape()
        self.qualities: dict[str, str | None] = {}  # by image call id
        self.partials_seen = 0

    def start_over(self) -> None:
        """Forget the response at hand (keeping what it billed): the next attempt creates a
        new one."""
        self.billed, self.usage = self.billed + self.usage, Usage()
        self.response_id = None
        self.sequence = None
        self.queued = False
        self.last_reasoning_id = None


@dataclass(frozen=True, slots=True)
class _RequestShape:
    """What a request asked the image tool for, as far as its token count goes."""

    partial_images: int = 0
    input_images: int = 0
    prompt_chars: int = 0
    frames: int = 1  # a GIF's frames (they share one sheet)


def _shape_of(params: dict[str, Any]) -> _RequestShape:
    """The image tool's inputs of a create request: its partial images, the images it reads
    (attached, referred to by id, or the parent image of a chained edit) and its text."""
    tool = next((t for t in params.get("tools") or () if t.get("type") == "image_generation"), {})
    images = chars = 0
    for item in params.get("input") or ():
        if item.get("type") == "image_generation_call":
            images += 1
        for part in item.get("content") or () if isinstance(item.get("content"), list) else ():
            if part.get("type") == "input_image":
                images += 1
            elif part.get("type") == "input_text":
                chars += len(part.get("text") or "")
    if params.get("previous_response_id") and tool.get("action") != "generate":
        images += 1  # the chain's latest image, read for the edit
    frames = int(tool.get("frame_count") or DEFAULT_FRAMES) if tool.get("output_format") == "gif" else 1
    return _RequestShape(int(tool.get("partial_images") or 0), images, chars, frames)


class _ResponseOver(Exception):
    """The response at hand cannot deliver any more (it failed, or an `error` event ended it).

    A retryable `error` then calls for a *new* request, never a resume of this one; `cancel`
    asks to stop this one first, in case it still runs, so that nothing is billed twice.
    """

    def __init__(self, error: GenerationError, *, cancel: bool = False) -> None:
        super().__init__(error.kind.name)
        self.error = error
        self.cancel = cancel


class _StuckQueued(Exception):
    """A background response stayed `queued` past the deadline."""


class ImageClient:
    """Generates images through the Responses API. One instance per process."""

    def __init__(
        self,
        client: AsyncOpenAI,
        *,
        model: str,
        image_model: str | None = None,
        store: bool = True,
        background: bool = True,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        queued_deadline: float = 120.0,
        poll_deadline: float = 900.0,
    ) -> None:
        self._client = client
        self.queued_deadline = queued_deadline
        self.poll_deadline = poll_deadline  # polling a running response gives up after this
        self.model = model
        self.image_model = image_model
        self.store = store
        self.background = background and store
        self.retry = retry or RetryPolicy()
        self._sleep = sleep

    @property
    def openai(self) -> AsyncOpenAI:
        """The SDK client this image client calls (the same key's text calls share it)."""
        return self._client

    def build_params(self, request: GenerationRequest) -> dict[str, Any]:
        """The `responses.create` arguments for a request (without `stream`), built from the
        SDK's own parameter types. The new instruction is always the last `input_text`."""
        tool = ImageGenerationParam(type="image_generation", **request.options.tool_params())
        # Always name the model: left unset, the API picks its own default (SDK 3.63
        # `ImageGeneration.model`: gpt-image-2.6-sunburst), not the model sizes and prices follow
        tool.setdefault("model", self.image_model or DEFAULT_IMAGE_MODEL)
        images = request.input_images
        if request.options.mask and images and images[-1].filename == MASK_NAME:
            # zoom out / pan / vary region: the last input is the mask (SDK `input_image_mask`)
            tool["input_image_mask"] = {"image_url": data_url(images[-1])}
            images = images[:-1]
        content: ResponseInputMessageContentListParam = []
        if request.context_text:
            content.append(ResponseInputTextParam(type="input_text", text=request.context_text))
        for image in images:
            content.append(
                ResponseInputImageParam(type="input_image", image_url=data_url(image), detail="auto")
            )
        content.append(ResponseInputTextParam(type="input_text", text=request.prompt))
        message = EasyInputMessageParam(role="user", content=content)
        references = _references(request)
        params: dict[str, Any] = {
            "model": self.model,
            "input": [*references, message],
            "tools": [tool],
            "tool_choice": ToolChoiceTypesParam(type="image_generation"),
            "store": self.store,
        }
        if self.background:
            params["background"] = True
        if request.previous_response_id:
            params["previous_response_id"] = request.previous_response_id
        if request.user_id is not None:
            params["safety_identifier"] = safety_identifier(request.user_id)
        return params

    async def generate(
        self,
        request: GenerationRequest,
        *,
        on_progress: ProgressSink = _ignore_progress,
        on_response_id: ResponseIdSink = _ignore_response_id,
    ) -> TurnResult:
        """Run one generation to the end, retrying what may safely be retried.

        Raises `GenerationError` (classified, user-facing) or `PreviousResponseNotFound`.
        """
        state = _StreamState()
        if request.input_images:  # Pillow and base64 of megabytes of images: not on the loop
            params = await asyncio.to_thread(self._fitted_params, request)
        else:
            params = self.build_params(request)
        state.shape = _shape_of(params)
        return await self._run(state, params, on_progress, on_response_id)

    def _fitted_params(self, request: GenerationRequest) -> dict[str, Any]:
        """`build_params` with the input images (the user's and any re-supplied parent images)
        brought within the API's per-image and per-request byte limits first."""
        fitted = fit_inputs(request.input_images)
        return self.build_params(dataclasses.replace(request, input_images=fitted))

    async def resume(
        self,
        response_id: str,
        after_sequence: int | None,
        *,
        on_progress: ProgressSink = _ignore_progress,
    ) -> TurnResult:
        """Pick up a background generation started earlier (e.g. before a restart)."""
        state = _StreamState()
        state.response_id = response_id
        state.sequence = after_sequence
        state.queued = not after_sequence  # only `response.created` was seen: maybe still queued
        return await self._run(state, None, on_progress, _ignore_response_id)

    def _redact(self, error: GenerationError) -> None:
        """Never store or show our API key, should an error message ever echo it."""
        key = self._client.api_key
        if not key or len(key) < 8:
            return
        error.detail = error.detail.replace(key, "[redacted]")
        if isinstance(error.params.get("reason"), str):
            error.params["reason"] = error.params["reason"].replace(key, "[redacted]")

    async def cancel(self, response_id: str) -> Usage:
        """Stop a background generation server-side; best effort. What the cancelled response
        had used (its `usage`, when the API reports it)."""
        try:
            response = await self._client.responses.cancel(response_id)
        except openai.OpenAIError as exc:
            log.info("Could not cancel response %s: %s", response_id, type(exc).__name__)
            return Usage()
        return usage_of(response)

    async def _run(
        self,
        state: _StreamState,
        params: dict[str, Any] | None,
        on_progress: ProgressSink,
        on_response_id: ResponseIdSink,
    ) -> TurnResult:
        """`_attempts`; an error it ends with carries what the API billed meanwhile."""
        try:
            return await self._attempts(state, params, on_progress, on_response_id)
        except GenerationError as error:
            error.billed = state.billed + state.usage
            raise

    async def _attempts(
        self,
        state: _StreamState,
        params: dict[str, Any] | None,
        on_progress: ProgressSink,
        on_response_id: ResponseIdSink,
    ) -> TurnResult:
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._attempt(state, params, on_progress, on_response_id)
            except asyncio.CancelledError:
                # Not cancelled server-side here: a shutdown leaves the background response
                # running so the next start resumes it; a user's cancel calls `cancel()`.
                raise
            except (openai.OpenAIError, GenerationError, _ResponseOver) as exc:
                if isinstance(exc, _ResponseOver) and state.images:
                    # the response failed after making images: those were paid for; show them
                    log.warning("Response %s failed after %d image(s); keeping them",
                                state.response_id, len(state.images))
                    return self._result(state)
                error = await self._after_failure(exc, state, params)
                delay = self.retry.delay(attempt, error.retry_after)
                elapsed = time.monotonic() - started
                if attempt > self.retry.max_attempts or elapsed + delay > self.retry.max_seconds:
                    raise error from exc
                log.warning(
                    "Image API %s; retry %d of at most %d in %.1fs",
                    error.kind.name, attempt, self.retry.max_attempts, delay,
                )
                await on_progress(Progress(Stage.retrying, attempt=attempt, retry_in=delay))
                await self._sleep(delay)

    async def _attempt(
        self,
        state: _StreamState,
        params: dict[str, Any] | None,
        on_progress: ProgressSink,
        on_response_id: ResponseIdSink,
    ) -> TurnResult:
        """One create or resume. A resume that cannot stream (empty, or refused: a background
        response more than 5 minutes old) or a response stuck in `queued` falls back to
        polling the response itself (`_recover`)."""
        resuming = state.response_id is not None
        stuck = False
        try:
            seen = await self._stream_once(state, params, on_progress, on_response_id)
        except _StuckQueued:
            log.warning("Response %s stayed queued for %.0fs", state.response_id,
                        self.queued_deadline)
            seen, resuming, stuck = 0, True, True
        except openai.BadRequestError as exc:
            if not resuming:
                raise
            # "This response can no longer be streamed because it is more than 5 minutes
            # old." (openai/openai-python#2828): the response itself is still there, maybe done
            log.info("Response %s cannot be streamed again (%s); polling it",
                     state.response_id, exc.message[:120])
            seen = 0
        if not state.finished and resuming and seen == 0:
            await self._recover(state, stuck=stuck)
        if not state.finished:
            raise GenerationError(ErrorKind.connection, retryable=True, detail="stream ended early")
        return self._result(state)

    async def _after_failure(
        self, exc: BaseException, state: _StreamState, params: dict[str, Any] | None
    ) -> GenerationError:
        """The classified error of a failed attempt, if it may be retried; raises otherwise.
        Sets `state` up for the next attempt: resume the same response, or start over."""
        over = exc if isinstance(exc, _ResponseOver) else None
        if over is None and _is_stream_error(exc):
            over = _ResponseOver(classify(exc), cancel=True)  # type: ignore[arg-type]
        if over is not None:
            error = over.error
            self._redact(error)
            if over.cancel and state.response_id and self.background:
                await self.cancel(state.response_id)
            if not error.retryable:
                raise error from exc
            if params is None:  # resumed after a restart: the caller holds the request
                raise ResponseOver(error) from exc
            state.start_over()
            return error
        error = exc if isinstance(exc, GenerationError) else classify(exc)
        if isinstance(error, PreviousResponseNotFound):
            raise error from exc
        self._redact(error)
        if state.response_id is not None and not self.background:
            # A foreground response that broke mid-way cannot be picked up again, and a new
            # request would generate (and bill) a second time.
            raise error from exc
        if not error.retryable:
            raise error from exc
        return error

    async def _recover(self, state: _StreamState, *, stuck: bool = False) -> None:
        """Resuming gave nothing: poll the response itself until it ends. Finished → take it;
        failed → its error; cancelled (still queued past the deadline, or running past the
        polling deadline) → start over, never billed twice."""
        assert state.response_id is not None
        response = await self._poll(state.response_id, queued_waited=stuck)
        if response.status == "completed":
            for item in response.output or ():
                await self._take_item(item, state, from_completed=True)
            state.usage = self._usage(response, state)
            state.finished = True
        elif response.status in ("failed", "incomplete"):
            state.usage = usage_of(response)  # billed although it failed
            self._raise_failed(response, response.status)
        else:  # cancelled (by us, or still running when the cancel failed)
            raise _ResponseOver(GenerationError(
                ErrorKind.connection, retryable=True, detail=f"response {response.status}"
            ))

    async def _poll(self, response_id: str, *, queued_waited: bool) -> Any:
        """Retrieve (without `stream`) until the response is terminal. A response still
        `queued` after `queued_deadline` (at once when that already passed) or running after
        `poll_deadline` is cancelled; what the cancel (or, if it ended meanwhile, a last
        retrieve) returns is the answer. A resume that ended while the response still runs is
        normal (API-NOTES, "Second pass"): it is polled, not given up."""
        started = time.monotonic()
        delay = POLL_FIRST_SECONDS
        while True:
            response = await self._client.responses.retrieve(response_id)
            if response.status not in ("queued", "in_progress"):
                return response
            waited = time.monotonic() - started
            queued = response.status == "queued"
            limit = (0.0 if queued_waited else self.queued_deadline) if queued else self.poll_deadline
            if waited >= limit:
                log.warning("Response %s still %s after %.0fs; cancelling it to start over",
                            response_id, response.status, waited)
                try:
                    return await self._client.responses.cancel(response_id)
                except openai.BadRequestError:  # it ended meanwhile: see how
                    return await self._client.responses.retrieve(response_id)
            await self._sleep(min(delay, max(limit - waited, 0.01)))
            delay = min(delay * 2, POLL_MAX_SECONDS)

    async def _stream_once(
        self,
        state: _StreamState,
        params: dict[str, Any] | None,
        on_progress: ProgressSink,
        on_response_id: ResponseIdSink,
    ) -> int:
        """Follow one stream until the response finishes or the stream ends; the event count."""
        if state.response_id is None:
            assert params is not None
            try:
                stream = await self._client.responses.create(**params, stream=True)
            except openai.APIStatusError as exc:
                if _names_a_reference(exc, params):
                    raise ReferenceNotFound(_error_fields(exc.body)[3] or exc.message) from exc
                raise
        else:
            kwargs: dict[str, Any] = {"stream": True}
            if state.sequence is not None:
                kwargs["starting_after"] = state.sequence
            stream = await self._client.responses.retrieve(state.response_id, **kwargs)
        seen = 0
        async with stream:
            events = aiter(stream)
            while not state.finished:
                deadline = self.queued_deadline if state.queued and self.background else None
                try:
                    async with asyncio.timeout(deadline):
                        event = await anext(events)
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    raise _StuckQueued from None
                seen += 1
                await self._handle(event, state, on_progress, on_response_id)
        return seen

    async def _handle(
        self,
        event: Any,
        state: _StreamState,
        on_progress: ProgressSink,
        on_response_id: ResponseIdSink,
    ) -> None:
        kind = event.type
        sequence = getattr(event, "sequence_number", None)
        if sequence is not None:
            state.sequence = sequence
        state.queued = False
        if kind == "response.created":
            state.queued = event.response.status == "queued"
            if state.response_id is None:
                state.response_id = event.response.id
                await on_response_id(event.response.id, sequence)
        elif kind == "response.image_generation_call.generating":
            await on_progress(Progress(Stage.generating))
        elif kind == "response.image_generation_call.partial_image":
            state.partials_seen = max(state.partials_seen, event.partial_image_index + 1)
            await on_progress(Progress(
                Stage.partial, partial_image_b64=event.partial_image_b64,
                partial_index=event.partial_image_index,
            ))
        else:
            await self._handle_outcome(event, state)

    async def _handle_outcome(self, event: Any, state: _StreamState) -> None:
        """Items as they finish, and the events that end a response."""
        kind = event.type
        if kind == "response.output_item.done":
            await self._take_item(event.item, state)
        elif kind == "response.completed":
            response = event.response
            for item in response.output or ():
                await self._take_item(item, state, from_completed=True)
            state.usage = self._usage(response, state)
            state.finished = True
        elif kind in ("response.failed", "response.incomplete"):
            state.usage = usage_of(event.response)  # billed although it failed
            self._raise_failed(event.response, kind)
        elif kind == "error":
            error = classify_error_body({"code": event.code, "message": event.message})
            raise _ResponseOver(error, cancel=True)

    @staticmethod
    def _raise_failed(response: Any, what: str) -> None:
        """A failed or incomplete response is over: its error, wrapped so that a retry makes
        a new request instead of resuming this one."""
        error: GenerationError | None = None
        for item in response.output or ():
            if item.type == "image_generation_call" and item.status == "failed":
                error = classify_error_body(item.error or {})
                break
        if error is None and getattr(response, "error", None) is not None:
            error = classify_error_body(response.error)
        if error is None:
            error = GenerationError(ErrorKind.no_output, detail=what)
        if error.retryable:
            raise _ResponseOver(error)
        raise error

    async def _take_item(self, item: Any, state: _StreamState, *, from_completed: bool = False) -> None:
        if item.type == "reasoning":
            state.last_reasoning_id = item.id
        elif item.type == "image_generation_call":
            if item.status == "failed" or item.error is not None:
                # kept until the response ends: another image of it may still arrive (paid)
                if item.id not in state.failed_items:
                    state.failed_items[item.id] = classify_error_body(
                        item.error or {"code": "server_error"}
                    )
                return
            if item.result and item.id not in state.images:
                state.qualities[item.id] = getattr(item, "quality", None)
                data = await asyncio.to_thread(_decode, item.result)
                state.images[item.id] = GeneratedImage(
                    call_id=item.id,
                    data=data,
                    output_format=item.output_format or "png",
                    size=item.size,
                    revised_prompt=item.revised_prompt,
                    reasoning_id=state.last_reasoning_id,
                )
        elif item.type == "message" and not (
            from_completed and (state.text_parts or state.refusals)
        ):
            # text arrives once per item; the final response repeats it only as a fallback
            for part in item.content or ():
                if getattr(part, "type", None) == "refusal":
                    state.refusals.append(part.refusal)
                elif text := getattr(part, "text", None):
                    state.text_parts.append(text)

    def _usage(self, response: Any, state: _StreamState) -> Usage:
        """The response's usage; when it does not report the image tool's share (the recorded
        real stream has no `tool_usage`), that share estimated by the published per-image
        table, so spend caps still count the images."""
        usage = usage_of(response)
        if getattr(getattr(response, "tool_usage", None), "image_gen", None) is not None:
            return usage
        if not state.images:
            return usage
        echoed = next((getattr(t, "partial_images", None) for t in response.tools or ()
                       if t.type == "image_generation"), None)
        estimate = estimated_image_usage(
            self.image_model,
            [(image.size, state.qualities.get(image.call_id)) for image in state.images.values()],
            partial_images=max(state.shape.partial_images, state.partials_seen, echoed or 0),
            input_images=state.shape.input_images, prompt_chars=state.shape.prompt_chars,
            frames=state.shape.frames,
        )
        log.info("Response %s reported no image tool usage; estimated %d image output tokens",
                 state.response_id, estimate.image_output)
        return dataclasses.replace(usage, tool_text_input=estimate.tool_text_input,
                                   image_input=estimate.image_input,
                                   image_output=estimate.image_output, estimated=True)

    def _result(self, state: _StreamState) -> TurnResult:
        text = "\n".join(state.text_parts).strip() or None
        refusal = "\n".join(state.refusals).strip()
        if not state.images and state.failed_items:
            raise next(iter(state.failed_items.values()))
        if not state.images and refusal:
            # the model declined: its own words, never "no image"; not retried
            raise GenerationError(ErrorKind.refused, detail=refusal, text=refusal)
        if refusal:
            text = "\n".join(filter(None, (text, refusal)))
        if not state.images and not text:
            raise GenerationError(ErrorKind.no_output)
        return TurnResult(
            response_id=state.response_id if self.store else None,
            images=tuple(state.images.values()),
            text=text,
            usage=state.billed + state.usage,
        )


def _references(request: GenerationRequest) -> list[Any]:
    """The input items that refer to earlier images by id, each after its reasoning item (an
    `item_reference`, sent once: images of one response share it, in their original order)."""
    items: list[Any] = []
    sent: set[str] = set()
    for call_id in request.reference_call_ids:
        reasoning_id = request.reference_reasoning_ids.get(call_id)
        if reasoning_id and reasoning_id not in sent:
            sent.add(reasoning_id)
            items.append({"type": "item_reference", "id": reasoning_id})
        items.append({"type": "image_generation_call", "id": call_id})
    return items


def _names_a_reference(exc: openai.APIStatusError, params: dict[str, Any]) -> bool:
    """A 400/404 whose message names one of the items the request refers to by id: that item
    is gone, or is not taken that way (e.g. without its reasoning item). The image must then be
    sent itself."""
    if exc.status_code not in (400, 404):
        return False
    message = _error_fields(exc.body)[3] or exc.message
    ids = [item.get("id") for item in params.get("input") or ()
           if isinstance(item, dict) and item.get("type") in _REFERENCE_TYPES]
    return any(isinstance(i, str) and i in message for i in ids)


_REFERENCE_TYPES = ("image_generation_call", "item_reference")


def _is_stream_error(exc: BaseException) -> bool:
    """An error the SDK raised for an `error` event inside a stream (not an HTTP answer)."""
    return isinstance(exc, openai.APIError) and not isinstance(
        exc, (openai.APIStatusError, openai.APIConnectionError)
    )


def usage_of(response: Any) -> Usage:
    """Token usage of a finished response: the mainline model plus the image tool."""
    usage = getattr(response, "usage", None)
    text_in = getattr(usage, "input_tokens", 0) or 0
    text_out = getattr(usage, "output_tokens", 0) or 0
    image_in = image_out = tool_text_in = 0
    tool_usage = getattr(response, "tool_usage", None)
    image_gen = getattr(tool_usage, "image_gen", None)
    if image_gen is not None:
        details = getattr(image_gen, "input_tokens_details", None)
        image_in = getattr(details, "image_tokens", None) or 0
        tool_text_in = getattr(details, "text_tokens", None) or 0  # priced by the image model
        out_details = getattr(image_gen, "output_tokens_details", None)
        image_out = (
            getattr(out_details, "image_tokens", None)
            if out_details is not None
            else getattr(image_gen, "output_tokens", 0)
        ) or 0
    return Usage(text_input=text_in, text_output=text_out, image_input=image_in,
                 image_output=image_out, tool_text_input=tool_text_in)
