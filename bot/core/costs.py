"""What a turn costs: token usage priced per model and per token kind, and the worst case a turn
reserves before it runs.

A Responses API call with the image tool is billed twice over: the mainline model's tokens
(`response.usage`, priced by `OPENAI_MODEL`'s table) and the image tool's tokens
(`response.tool_usage.image_gen`: text input, image input, image output, priced by the image
model's table). Prices are USD per 1M tokens.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from bot.core.image_models import DEFAULT_IMAGE_MODEL, GIF_SHEET_PIXELS
from bot.core.image_models import MODELS as IMAGE_MODELS
from bot.core.models import Usage
from bot.core.options import ImageOptions

log = logging.getLogger(__name__)

PER_TOKEN = 1_000_000

# Published prices, USD per 1M tokens (OpenAI's model pages / pricing page, read 2026-11).
# Mainline models price text_input and text_output; image models price the prompt text they
# read (text_input), the images they read (image_input) and the images they write (image_output).
PUBLISHED_PRICES: dict[str, dict[str, float]] = {
    # apidog.com "How to use the GPT-5.5 API" (quoting OpenAI's pricing: $5 in, $30 out)
    "gpt-5.5": {"text_input": 5.00, "text_output": 30.00},
    # github/docs data/tables/copilot/models-and-pricing.yml (OpenAI list prices)
    "gpt-5.4": {"text_input": 2.50, "text_output": 15.00},
    "gpt-5.2": {"text_input": 1.75, "text_output": 14.00},
    "gpt-5-mini": {"text_input": 0.25, "text_output": 2.00},
    # developers.openai.com/api/docs/models/gpt-5 (Quick comparison on the gpt-5-codex page)
    "gpt-5": {"text_input": 1.25, "text_output": 10.00},
    # the image models: their rows in bot/core/image_models.py (one capability table)
    **{name: spec.prices for name, spec in IMAGE_MODELS.items() if spec.prices},
}
# An unknown model is priced at least as high as every model above, so a cap is never
# under-counted: one warning in the log names the model to add to PRICE_TABLE.
CONSERVATIVE_PRICES: dict[str, float] = {
    "text_input": 10.00, "text_output": 50.00, "image_input": 10.00, "image_output": 40.00,
}
# The image tool's model when none is named (IMAGE_MODEL's default, always sent).
API_DEFAULT_IMAGE_MODEL = DEFAULT_IMAGE_MODEL

# --- the worst case a turn reserves at admission ---
# Image output tokens of one 1024x1024 image by quality (image generation guide's table; other
# sizes scale with their pixel count). `auto` quality may come out high.
IMAGE_TOKENS_1024 = {"low": 272, "medium": 1056, "high": 4160,
                     # xhigh and max (2.5 models): no published token count; reserved as 2x and
                     # 4x high (unverified: an over-reservation is released when usage arrives)
                     "xhigh": 8320, "max": 16640}
# Extra mainline output reserved for planning (`complexity`, which overrides the reasoning
# effort for the image) and for an SVG's author model (`svg_usage`); unverified, generous.
COMPLEXITY_TOKENS = {"low": 0, "medium": 2000, "high": 8000}
SVG_AUTHOR_TOKENS = 16_000
# Each streamed partial image costs 100 extra image output tokens (image generation guide).
PARTIAL_IMAGE_TOKENS = 100
# `auto` size may pick the largest preset.
AUTO_SIZE_PIXELS = 1536 * 1024
# An input image (attachment, or the parent image of a refinement) read by the image model at
# high input fidelity, at the largest preset; and by the mainline model as vision input.
INPUT_IMAGE_TOKENS = 6240
MAINLINE_IMAGE_TOKENS = 1600
# Mainline text around the prompt (instructions, tool definition, earlier turns of a chain) and
# its output (the tool call, any text, reasoning tokens).
MAINLINE_CONTEXT_TOKENS = 4000
MAINLINE_OUTPUT_TOKENS = 2000

# --- an image the API did not report the tokens of ---
@dataclass(frozen=True, slots=True)
class ImageTokens:
    """One image model's published tokens per image (OpenAI's image generation guide, cost
    table): output tokens of a 1024x1024 image by quality (other sizes scale with their pixel
    count), extra output tokens per streamed partial image, and the input tokens of one input
    image read at high fidelity at 1024x1024 (taken as the high-quality output of that size,
    like the worst case above; unverified)."""

    output_1024: Mapping[str, int]
    partial: int = PARTIAL_IMAGE_TOKENS
    input_1024: int = 4160


# By image model (snapshot dates stripped); models not named use `default`. The GPT image
# models publish the same token counts per image (prices differ: PUBLISHED_PRICES).
IMAGE_TOKEN_TABLES: dict[str, ImageTokens] = {
    "default": ImageTokens(IMAGE_TOKENS_1024),
    "gpt-image-2": ImageTokens(IMAGE_TOKENS_1024),
}


def _pixels(size: str | None) -> int:
    width, _, height = (size or "").partition("x")
    if width.isdigit() and height.isdigit():
        return int(width) * int(height)
    return AUTO_SIZE_PIXELS  # unknown or `auto`: the largest preset


def estimated_image_usage(
    image_model: str | None, images: Iterable[tuple[str | None, str | None]], *,
    partial_images: int = 0, input_images: int = 0, prompt_chars: int = 0, frames: int = 1,
) -> Usage:
    """The image tool's share of a response that did not report it (no
    `tool_usage.image_gen`, as in a recorded real stream): each image, given as (size,
    quality), by the published table; a GIF's `frames` share one sheet of at most one image's
    pixel budget (`image_pixels`); marked `estimated`."""
    table = IMAGE_TOKEN_TABLES.get(_SNAPSHOT.sub("", image_model or API_DEFAULT_IMAGE_MODEL),
                                   IMAGE_TOKEN_TABLES["default"])
    output = input_tokens = text = 0
    for size, quality in images:
        pixels = _pixels(size)
        if frames > 1:
            pixels = min(pixels * frames, GIF_SHEET_PIXELS) if size else GIF_SHEET_PIXELS
        scale = pixels / (1024 * 1024)
        per_quality = table.output_1024.get(quality or "high", table.output_1024["high"])
        output += round(per_quality * scale) + table.partial * partial_images
        input_tokens += round(table.input_1024 * scale) * input_images
        text += -(-prompt_chars // 4)  # about four characters a token
    return Usage(tool_text_input=text, image_input=input_tokens, image_output=output,
                 estimated=True)


_SNAPSHOT = re.compile(r"-\d{4}-\d{2}-\d{2}$")
_warned: set[str] = set()


class PriceBook:
    """Prices for the mainline and image models, with the operator's PRICE_TABLE on top.

    PRICE_TABLE is keyed by model; a model's entry overrides the published prices kind by kind.
    Its `default` entry, if any, prices every model the table does not name.
    """

    def __init__(
        self,
        overrides: Mapping[str, Mapping[str, float]] | None = None,
        *,
        mainline: str,
        image_model: str | None = None,
    ) -> None:
        self.overrides = {k: dict(v) for k, v in (overrides or {}).items()}
        self.mainline = mainline
        self.image_model = image_model or API_DEFAULT_IMAGE_MODEL

    def table(self, model: str) -> dict[str, float]:
        """USD per 1M tokens for each token kind of `model`."""
        base = _SNAPSHOT.sub("", model)
        if model in self.overrides or base in self.overrides:
            own = self.overrides.get(model) or self.overrides[base]
            return {**CONSERVATIVE_PRICES, **PUBLISHED_PRICES.get(base, {}), **own}
        if "default" in self.overrides:
            return {**CONSERVATIVE_PRICES, **self.overrides["default"]}
        if base in PUBLISHED_PRICES:
            return {**CONSERVATIVE_PRICES, **PUBLISHED_PRICES[base]}
        if model not in _warned:
            _warned.add(model)
            log.warning("No price known for model %s: using the conservative default %s "
                        "(set PRICE_TABLE to price it)", model, CONSERVATIVE_PRICES)
        return dict(CONSERVATIVE_PRICES)

    def cost(self, usage: Usage, image_model: str | None = None) -> float:
        """USD for one response: mainline tokens by the mainline table, image tool tokens by
        the table of `image_model` (the turn's; default: the configured one)."""
        main = self.table(self.mainline)
        image = self.table(image_model or self.image_model)
        return (
            usage.text_input * main["text_input"]
            + usage.text_output * main["text_output"]
            + usage.tool_text_input * image["text_input"]
            + usage.image_input * image["image_input"]
            + usage.image_output * image["image_output"]
        ) / PER_TOKEN

    def reservation(self, options: ImageOptions, *, prompt_chars: int, input_images: int) -> float:
        """USD a turn reserves at admission: the cost of its worst-case usage."""
        return self.cost(worst_case_usage(options, prompt_chars=prompt_chars,
                                          input_images=input_images), options.model)


def worst_case_usage(options: ImageOptions, *, prompt_chars: int, input_images: int) -> Usage:
    """The most one turn with these options can use: one image at its quality and size (a GIF:
    one sheet of all its frames), every partial image, every input image, and the mainline
    model's prompt, context, planning and output (an SVG's author included)."""
    quality = options.quality if options.quality in IMAGE_TOKENS_1024 else "high"
    image_tokens = -(-IMAGE_TOKENS_1024[quality] * image_pixels(options) // (1024 * 1024))
    partials = options.partial_images or 0
    output = MAINLINE_OUTPUT_TOKENS + COMPLEXITY_TOKENS.get(options.complexity or "low", 0)
    if options.output_format == "svg":
        output += SVG_AUTHOR_TOKENS
    return Usage(
        text_input=MAINLINE_CONTEXT_TOKENS + prompt_chars + MAINLINE_IMAGE_TOKENS * input_images,
        text_output=output,
        tool_text_input=MAINLINE_CONTEXT_TOKENS + prompt_chars,
        image_input=INPUT_IMAGE_TOKENS * input_images,
        image_output=image_tokens + PARTIAL_IMAGE_TOKENS * partials,
    )


def image_pixels(options: ImageOptions) -> int:
    """Pixels billed for one image: its size (`auto`: the largest preset); a GIF's frames are
    drawn on one sheet that shares one image's pixel budget (`auto`: the whole budget)."""
    size = options.size or "auto"
    if options.output_format == "gif":
        if size == "auto":
            return GIF_SHEET_PIXELS
        width, height = size.split("x")
        return int(width) * int(height) * (options.frame_count or 9)
    if size == "auto":
        return AUTO_SIZE_PIXELS
    width, height = size.split("x")
    return int(width) * int(height)


def estimate_cost(
    usage: Usage, model: str, prices: Mapping[str, Mapping[str, float]],
    image_model: str | None = None,
) -> float:
    """USD for one response of `model` (and its image tool's `image_model`)."""
    return PriceBook(prices, mainline=model, image_model=image_model).cost(usage)
