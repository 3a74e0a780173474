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
from collections.abc import Mapping

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
    # openai.com/api/pricing as quoted for gpt-image-2: text in $5, image in $8, image out $30
    # (matches the image guide's $0.006 / $0.053 / $0.211 per 1024x1024 image)
    "gpt-image-2": {"text_input": 5.00, "image_input": 8.00, "image_output": 30.00},
    # gpt-image-1.5: text in $5 (published); image out $32 from its published $0.133 per
    # high-quality 1024x1024 image (4160 tokens); image in assumed as gpt-image-2 ($8)
    "gpt-image-1.5": {"text_input": 5.00, "image_input": 8.00, "image_output": 32.00},
    # developers.openai.com/api/docs/models/gpt-image-1 (retired 2026-10-23)
    "gpt-image-1": {"text_input": 5.00, "image_input": 10.00, "image_output": 40.00},
    # developers.openai.com/api/docs/models/gpt-image-1-mini
    "gpt-image-1-mini": {"text_input": 2.00, "image_input": 2.50, "image_output": 8.00},
}
# An unknown model is priced at least as high as every model above, so a cap is never
# under-counted: one warning in the log names the model to add to PRICE_TABLE.
CONSERVATIVE_PRICES: dict[str, float] = {
    "text_input": 10.00, "text_output": 50.00, "image_input": 10.00, "image_output": 40.00,
}
# The image tool's model when IMAGE_MODEL is unset (the image generation guide's default).
API_DEFAULT_IMAGE_MODEL = "gpt-image-2"

# --- the worst case a turn reserves at admission ---
# Image output tokens of one 1024x1024 image by quality (image generation guide's table; other
# sizes scale with their pixel count). `auto` quality may come out high.
IMAGE_TOKENS_1024 = {"low": 272, "medium": 1056, "high": 4160}
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

    def cost(self, usage: Usage) -> float:
        """USD for one response: mainline tokens by the mainline table, image tool tokens by
        the image model's table."""
        main = self.table(self.mainline)
        image = self.table(self.image_model)
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
                                          input_images=input_images))


def worst_case_usage(options: ImageOptions, *, prompt_chars: int, input_images: int) -> Usage:
    """The most one turn with these options can use: one image at its quality and size, every
    partial image, every input image, and the mainline model's prompt, context and output."""
    quality = options.quality if options.quality in IMAGE_TOKENS_1024 else "high"
    size = options.size or "auto"
    if size == "auto":
        pixels = AUTO_SIZE_PIXELS
    else:
        width, height = size.split("x")
        pixels = int(width) * int(height)
    image_tokens = -(-IMAGE_TOKENS_1024[quality] * pixels // (1024 * 1024))  # rounded up
    partials = options.partial_images or 0
    return Usage(
        text_input=MAINLINE_CONTEXT_TOKENS + prompt_chars + MAINLINE_IMAGE_TOKENS * input_images,
        text_output=MAINLINE_OUTPUT_TOKENS,
        tool_text_input=MAINLINE_CONTEXT_TOKENS + prompt_chars,
        image_input=INPUT_IMAGE_TOKENS * input_images,
        image_output=image_tokens + PARTIAL_IMAGE_TOKENS * partials,
    )


def estimate_cost(
    usage: Usage, model: str, prices: Mapping[str, Mapping[str, float]],
    image_model: str | None = None,
) -> float:
    """USD for one response of `model` (and its image tool's `image_model`)."""
    return PriceBook(prices, mainline=model, image_model=image_model).cost(usage)
