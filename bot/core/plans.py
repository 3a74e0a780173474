"""What Animate, Zoom out, Pan and Vary region will run and cost, before anything is spent.

Each plan is a turn like any other (a branch from the result, through the same submission and
admission as Upscale and Reroll); the cost is the worst case admission reserves for it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.core.errors import ErrorKind, UserFacingError
from bot.core.extend import (
    MOVES,
    animate_options,
    canvas_for,
    canvas_plan,
    masked_options,
    region_box,
    region_mask,
)
from bot.core.models import InputImage, Turn, TurnStatus
from bot.core.options import ImageOptions

if TYPE_CHECKING:
    from bot.core.conversations import ConversationService

PLAN_ACTIONS = ("anim", *MOVES)


@dataclass(frozen=True, slots=True)
class Plan:
    options: ImageOptions
    cost_usd: float
    inputs: list[InputImage] = field(default_factory=list)


async def plan_for(service: ConversationService, turn: Turn, action: str, prompt: str,
                   region: str | None = None) -> Plan:
    """The plan for `action` (`anim`, a key of `MOVES`, or `region` with its description)."""
    if turn.status is not TurnStatus.done or not turn.images or turn.deleted:
        raise UserFacingError(ErrorKind.unknown_conversation)
    conversation = await service.conversation(turn.conversation_id)  # its channel's rules too
    policy = await service.gate.policy_for(turn.guild_id,
                                           conversation and conversation.parent_channel_id)
    model = turn.options.model or policy.image_model
    source = next((img.size for img in turn.images if img.size), None) or turn.options.size
    if action == "anim":
        options = animate_options(turn.options, source, model, policy.max_gif_frames)
        inputs: list[InputImage] = []
    else:
        image = await _still_of(service, turn)
        if action == "region":
            box = region_box(region or "")
            size, picture, mask = await asyncio.to_thread(region_mask, image.data, box, model)
        else:
            width, height = await asyncio.to_thread(_size_of, image.data)
            plan = canvas_plan((width, height), action, model)
            size = plan.size
            picture, mask = await asyncio.to_thread(canvas_for, image.data, plan)
        options = masked_options(turn.options, size, model)
        inputs = [picture, mask]
    checked = policy.clamp(options)
    # what admission will reserve: these inputs, and the result itself in the context
    cost = service.gate.accounts.prices.reservation(checked, prompt_chars=len(prompt),
                                                    input_images=len(inputs) + 1)
    return Plan(options, cost, inputs)


async def _still_of(service: ConversationService, turn: Turn) -> InputImage:
    """The result's still image, downloaded from its message (an SVG's PNG, never a GIF)."""
    images = await service.runner.generation.result_images.fetch_result_images(turn)
    still = next((i for i in images if i.mime in ("image/png", "image/jpeg", "image/webp")), None)
    if still is None:
        raise UserFacingError(ErrorKind.invalid_options, problem="model_mask", model="gif")
    return still


def _size_of(data: bytes) -> tuple[int, int]:
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return image.size
