"""Prompt ideas from an image: one text-only Responses call to the mainline model (no image tool),
priced as text tokens at the mainline model's price."""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass

import openai
from openai import AsyncOpenAI
from openai.types.responses import (
    EasyInputMessageParam,
    ResponseInputImageParam,
    ResponseInputTextParam,
)

from bot.core.costs import estimate_cost
from bot.core.errors import ErrorKind, GenerationError
from bot.core.image_request import data_url, safety_identifier
from bot.core.models import InputImage, Usage
from bot.core.openai_errors import classify

log = logging.getLogger(__name__)

SUGGESTIONS = 3
# The most one description should use: the image as vision input plus the instruction, and a
# short numbered list back (reasoning included); what the spend caps must have room for.
WORST_CASE = Usage(text_input=3000, text_output=1500)
MAX_SUGGESTION_CHARS = 1000
_NUMBERED = re.compile(r"^\s*(?:\d+[.)、:：]|[-*•])\s*(.+?)\s*$")
_LANGUAGES = {"zh": "Simplified Chinese", "en": "English"}

INSTRUCTION = (
    "Suggest {count} different prompts an image generator could use to create an image like "
    "this one. Each prompt is one line: the subject, the setting, the style, the light. Answer "
    "with a numbered list only, in {language}."
)


@dataclass(frozen=True, slots=True)
class Description:
    suggestions: tuple[str, ...]
    usage: Usage
    cost_usd: float


def parse_suggestions(text: str, limit: int = SUGGESTIONS) -> list[str]:
    """The items of a numbered (or bulleted) list; plain lines when the model used no list."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    items = [m.group(1) for line in lines if (m := _NUMBERED.match(line))]
    chosen = items or lines
    return [item.strip(" \"'“”")[:MAX_SUGGESTION_CHARS] for item in chosen][:limit]


class Describer:
    """Asks the mainline model for prompt ideas. Shares the process's `AsyncOpenAI` client."""

    def __init__(
        self, client: AsyncOpenAI, *, model: str, prices: dict[str, dict[str, float]]
    ) -> None:
        self._client = client
        self.model = model
        self.prices = prices

    def worst_case_cost(self) -> float:
        return estimate_cost(WORST_CASE, self.model, self.prices)

    def build_params(self, image: InputImage, language: str, user_id: int | None) -> dict:
        instruction = INSTRUCTION.format(
            count=SUGGESTIONS, language=_LANGUAGES.get(language, "English")
        )
        message = EasyInputMessageParam(role="user", content=[
            ResponseInputImageParam(type="input_image", image_url=data_url(image), detail="auto"),
            ResponseInputTextParam(type="input_text", text=instruction),
        ])
        params: dict = {"model": self.model, "input": [message], "store": False}
        if user_id is not None:
            params["safety_identifier"] = safety_identifier(user_id)
        return params

    async def describe(
        self, image: InputImage, *, language: str = "en", user_id: int | None = None
    ) -> Description:
        """Three prompt ideas for `image`; raises `GenerationError` (classified) on failure."""
        params = await asyncio.to_thread(self.build_params, image, language, user_id)
        try:
            response = await self._client.responses.create(**params)
        except openai.OpenAIError as exc:
            error = classify(exc)
            if not isinstance(error, GenerationError):
                error = GenerationError(ErrorKind.invalid_request, detail=str(exc))
            raise error from exc
        suggestions = parse_suggestions(response.output_text or "")
        if not suggestions:
            raise GenerationError(ErrorKind.no_output, detail="no suggestions in the answer")
        raw = response.usage
        usage = Usage(
            text_input=getattr(raw, "input_tokens", 0) or 0,
            text_output=getattr(raw, "output_tokens", 0) or 0,
        )
        cost = estimate_cost(usage, self.model, self.prices)
        log.info("Described an image: %d suggestion(s), $%.5f", len(suggestions), cost)
        return Description(tuple(suggestions), usage, cost)
