"""The Responses request of one generation: what it carries (`GenerationRequest`), the
`responses.create` arguments built from the SDK's own parameter types, and the shape of what it
asks the image tool for (to estimate its tokens when the response does not report them)."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from typing import Any

from openai.types.responses import (
    EasyInputMessageParam,
    ResponseInputImageParam,
    ResponseInputMessageContentListParam,
    ResponseInputTextParam,
    ToolChoiceTypesParam,
)
from openai.types.responses.tool_param import ImageGeneration as ImageGenerationParam

from bot.core.image_models import DEFAULT_FRAMES, DEFAULT_IMAGE_MODEL, MASK_NAME
from bot.core.models import InputImage
from bot.core.options import ImageOptions


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


def build_params(
    request: GenerationRequest, *, model: str, image_model: str | None, store: bool,
    background: bool,
) -> dict[str, Any]:
    """The `responses.create` arguments for a request (without `stream`), built from the
    SDK's own parameter types. The new instruction is always the last `input_text`."""
    tool = ImageGenerationParam(type="image_generation", **request.options.tool_params())
    # Always name the model: left unset, the API picks its own default (SDK 3.63
    # `ImageGeneration.model`: gpt-image-2.6-sunburst), not the model sizes and prices follow
    tool.setdefault("model", image_model or DEFAULT_IMAGE_MODEL)
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
        "model": model,
        "input": [*references, message],
        "tools": [tool],
        "tool_choice": ToolChoiceTypesParam(type="image_generation"),
        "store": store,
    }
    if background:
        params["background"] = True
    if request.previous_response_id:
        params["previous_response_id"] = request.previous_response_id
    if request.user_id is not None:
        params["safety_identifier"] = safety_identifier(request.user_id)
    return params


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


@dataclass(frozen=True, slots=True)
class RequestShape:
    """What a request asked the image tool for, as far as its token count goes."""

    partial_images: int = 0
    input_images: int = 0
    prompt_chars: int = 0
    frames: int = 1  # a GIF's frames (they share one sheet)


def shape_of(params: dict[str, Any]) -> RequestShape:
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
    return RequestShape(int(tool.get("partial_images") or 0), images, chars, frames)
