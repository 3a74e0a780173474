"""Reading a Responses stream: the state of one generation (its response id and last event,
the images, text and refusals received, what it was billed) taken from each event and output
item, and what it comes to in the end (a result, or the error that ended it)."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from bot.core.costs import estimated_image_usage
from bot.core.errors import ErrorKind, GenerationError
from bot.core.image_request import RequestShape
from bot.core.models import GeneratedImage, Progress, Stage, TurnResult, Usage
from bot.core.openai_errors import classify_error_body

log = logging.getLogger(__name__)

ProgressSink = Callable[[Progress], Awaitable[None]]
ResponseIdSink = Callable[[str, int | None], Awaitable[None]]


def _decode(b64: str) -> bytes:
    return base64.b64decode(b64)


class StreamOver(Exception):
    """The response at hand cannot deliver any more (it failed, or an `error` event ended it).

    A retryable `error` then calls for a *new* request, never a resume of this one; `cancel`
    asks to stop this one first, in case it still runs, so that nothing is billed twice.
    """

    def __init__(self, error: GenerationError, *, cancel: bool = False) -> None:
        super().__init__(error.kind.name)
        self.error = error
        self.cancel = cancel


class StuckQueued(Exception):
    """A background response stayed `queued` past the deadline."""


class StreamState:
    """What one generation has received so far (survives a resumed stream), read from its
    events and items."""

    def __init__(self, image_model: str | None) -> None:
        self.image_model = image_model  # (its prices estimate unreported image tokens)
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
        self.shape = RequestShape()
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

    async def take_event(
        self,
        event: Any,
        on_progress: ProgressSink,
        on_response_id: ResponseIdSink,
    ) -> None:
        """Take one stream event: the response id, progress, items, the end of the response."""
        kind = event.type
        sequence = getattr(event, "sequence_number", None)
        if sequence is not None:
            self.sequence = sequence
        self.queued = False
        if kind == "response.created":
            self.queued = event.response.status == "queued"
            if self.response_id is None:
                self.response_id = event.response.id
                await on_response_id(event.response.id, sequence)
        elif kind == "response.image_generation_call.generating":
            await on_progress(Progress(Stage.generating))
        elif kind == "response.image_generation_call.partial_image":
            self.partials_seen = max(self.partials_seen, event.partial_image_index + 1)
            await on_progress(Progress(
                Stage.partial, partial_image_b64=event.partial_image_b64,
                partial_index=event.partial_image_index,
            ))
        else:
            await self._take_outcome(event)

    async def _take_outcome(self, event: Any) -> None:
        """Items as they finish, and the events that end a response."""
        kind = event.type
        if kind == "response.output_item.done":
            await self.take_item(event.item)
        elif kind == "response.completed":
            response = event.response
            for item in response.output or ():
                await self.take_item(item, from_completed=True)
            self.usage = self.usage_with_estimate(response)
            self.finished = True
        elif kind in ("response.failed", "response.incomplete"):
            self.usage = usage_of(event.response)  # billed although it failed
            raise_failed(event.response, kind)
        elif kind == "error":
            error = classify_error_body({"code": event.code, "message": event.message})
            raise StreamOver(error, cancel=True)

    async def take_item(self, item: Any, *, from_completed: bool = False) -> None:
        if item.type == "reasoning":
            self.last_reasoning_id = item.id
        elif item.type == "image_generation_call":
            if item.status == "failed" or item.error is not None:
                # kept until the response ends: another image of it may still arrive (paid)
                if item.id not in self.failed_items:
                    self.failed_items[item.id] = classify_error_body(
                        item.error or {"code": "server_error"}
                    )
                return
            if item.result and item.id not in self.images:
                self.qualities[item.id] = getattr(item, "quality", None)
                data = await asyncio.to_thread(_decode, item.result)
                self.images[item.id] = GeneratedImage(
                    call_id=item.id,
                    data=data,
                    output_format=item.output_format or "png",
                    size=item.size,
                    revised_prompt=item.revised_prompt,
                    reasoning_id=self.last_reasoning_id,
                )
        elif item.type == "message" and not (
            from_completed and (self.text_parts or self.refusals)
        ):
            # text arrives once per item; the final response repeats it only as a fallback
            for part in item.content or ():
                if getattr(part, "type", None) == "refusal":
                    self.refusals.append(part.refusal)
                elif text := getattr(part, "text", None):
                    self.text_parts.append(text)

    def usage_with_estimate(self, response: Any) -> Usage:
        """The response's usage; when it does not report the image tool's share (the recorded
        real stream has no `tool_usage`), that share estimated by the published per-image
        table, so spend caps still count the images."""
        usage = usage_of(response)
        if getattr(getattr(response, "tool_usage", None), "image_gen", None) is not None:
            return usage
        if not self.images:
            return usage
        echoed = next((getattr(t, "partial_images", None) for t in response.tools or ()
                       if t.type == "image_generation"), None)
        estimate = estimated_image_usage(
            self.image_model,
            [(image.size, self.qualities.get(image.call_id)) for image in self.images.values()],
            partial_images=max(self.shape.partial_images, self.partials_seen, echoed or 0),
            input_images=self.shape.input_images, prompt_chars=self.shape.prompt_chars,
            frames=self.shape.frames,
        )
        log.info("Response %s reported no image tool usage; estimated %d image output tokens",
                 self.response_id, estimate.image_output)
        return dataclasses.replace(usage, tool_text_input=estimate.tool_text_input,
                                   image_input=estimate.image_input,
                                   image_output=estimate.image_output, estimated=True)

    def result(self, *, store: bool) -> TurnResult:
        text = "\n".join(self.text_parts).strip() or None
        refusal = "\n".join(self.refusals).strip()
        if not self.images and self.failed_items:
            raise next(iter(self.failed_items.values()))
        if not self.images and refusal:
            # the model declined: its own words, never "no image"; not retried
            raise GenerationError(ErrorKind.refused, detail=refusal, text=refusal)
        if refusal:
            text = "\n".join(filter(None, (text, refusal)))
        if not self.images and not text:
            raise GenerationError(ErrorKind.no_output)
        return TurnResult(
            response_id=self.response_id if store else None,
            images=tuple(self.images.values()),
            text=text,
            usage=self.billed + self.usage,
        )


def raise_failed(response: Any, what: str) -> None:
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
        raise StreamOver(error)
    raise error


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
