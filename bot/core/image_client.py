"""The only code that talks to OpenAI's Responses API for images: it runs a generation, retries
what may be retried, resumes a broken stream, and polls a response that can no longer be streamed.

A generation is one streamed Responses call with the `image_generation` tool. With stored
responses it runs as a *background* response, so that a broken stream (or a restarted bot) resumes
the same generation with `retrieve(stream=True, starting_after=…)` instead of paying for a new one.
The response id is handed to the caller the moment `response.created` arrives. A stream that
cannot be resumed (the service refuses it 5 minutes after creation, or it comes back empty) falls
back to polling the response without `stream` until it ends: a paid result is never given up.

Retries are ours, not the SDK's (`max_retries=0`): a create is retried only while no response id
is known, so a generation is never requested twice. The request is built in `image_request.py`,
the stream read in `image_stream.py`, errors classified in `openai_errors.py`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import openai
from openai import AsyncOpenAI

from bot.core.errors import (
    ErrorKind,
    GenerationError,
    PreviousResponseNotFound,
    ReferenceNotFound,
    ResponseOver,
)
from bot.core.image_request import GenerationRequest, build_params, shape_of
from bot.core.image_stream import (
    ProgressSink,
    ResponseIdSink,
    StreamOver,
    StreamState,
    StuckQueued,
    raise_failed,
    usage_of,
)
from bot.core.imaging import fit_inputs
from bot.core.models import Progress, Stage, TurnResult, Usage
from bot.core.openai_errors import classify, error_fields, is_stream_error, names_a_reference

log = logging.getLogger(__name__)

# Polling a background response that cannot be streamed: first wait, doubling up to the max.
POLL_FIRST_SECONDS = 0.5
POLL_MAX_SECONDS = 5.0


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
        """The `responses.create` arguments for a request (without `stream`; `image_request`)."""
        return build_params(request, model=self.model, image_model=self.image_model,
                            store=self.store, background=self.background)

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
        state = StreamState(self.image_model)
        if request.input_images:  # Pillow and base64 of megabytes of images: not on the loop
            params = await asyncio.to_thread(self._fitted_params, request)
        else:
            params = self.build_params(request)
        state.shape = shape_of(params)
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
        state = StreamState(self.image_model)
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
        state: StreamState,
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
        state: StreamState,
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
            except (openai.OpenAIError, GenerationError, StreamOver) as exc:
                if isinstance(exc, StreamOver) and state.images:
                    # the response failed after making images: those were paid for; show them
                    log.warning("Response %s failed after %d image(s); keeping them",
                                state.response_id, len(state.images))
                    return state.result(store=self.store)
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
        state: StreamState,
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
        except StuckQueued:
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
        return state.result(store=self.store)

    async def _after_failure(
        self, exc: BaseException, state: StreamState, params: dict[str, Any] | None
    ) -> GenerationError:
        """The classified error of a failed attempt, if it may be retried; raises otherwise.
        Sets `state` up for the next attempt: resume the same response, or start over."""
        over = exc if isinstance(exc, StreamOver) else None
        if over is None and is_stream_error(exc):
            over = StreamOver(classify(exc), cancel=True)  # type: ignore[arg-type]
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

    async def _recover(self, state: StreamState, *, stuck: bool = False) -> None:
        """Resuming gave nothing: poll the response itself until it ends. Finished → take it;
        failed → its error; cancelled (still queued past the deadline, or running past the
        polling deadline) → start over, never billed twice."""
        assert state.response_id is not None
        response = await self._poll(state.response_id, queued_waited=stuck)
        if response.status == "completed":
            for item in response.output or ():
                await state.take_item(item, from_completed=True)
            state.usage = state.usage_with_estimate(response)
            state.finished = True
        elif response.status in ("failed", "incomplete"):
            state.usage = usage_of(response)  # billed although it failed
            raise_failed(response, response.status)
        else:  # cancelled (by us, or still running when the cancel failed)
            raise StreamOver(GenerationError(
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
        state: StreamState,
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
                if names_a_reference(exc, params):
                    raise ReferenceNotFound(error_fields(exc.body)[3] or exc.message) from exc
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
                    raise StuckQueued from None
                seen += 1
                await state.take_event(event, on_progress, on_response_id)
        return seen
