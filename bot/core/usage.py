"""Token usage of one response (its own module: the errors carry what a failed response
billed, and the errors import nothing else of the core)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Usage:
    """Token usage of one response: the mainline model (`text_input`, `text_output`, from
    `response.usage`) and the image tool (`tool_text_input`, `image_input`, `image_output`, from
    `response.tool_usage.image_gen`). They are priced by different models' tables."""

    text_input: int = 0
    text_output: int = 0
    image_input: int = 0
    image_output: int = 0
    tool_text_input: int = 0
    # the image tool's share was not reported (no `tool_usage.image_gen`): it was estimated
    # from the published per-image token table (bot/core/costs.py)
    estimated: bool = False

    def to_dict(self) -> dict[str, int]:
        data = {
            "text_input": self.text_input,
            "text_output": self.text_output,
            "image_input": self.image_input,
            "image_output": self.image_output,
            "tool_text_input": self.tool_text_input,
        }
        if self.estimated:
            data["estimated"] = 1
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Usage:
        return cls(**{k: (bool(v) if k == "estimated" else int(v))
                      for k, v in (data or {}).items() if k in cls.__slots__})

    def __add__(self, other: Usage) -> Usage:
        """Two responses' usage together (e.g. a failed attempt and the one that worked):
        estimated when either was."""
        tokens = {k: getattr(self, k) + getattr(other, k) for k in self.__slots__
                  if k != "estimated"}
        return Usage(**tokens, estimated=self.estimated or other.estimated)

    def __bool__(self) -> bool:
        return any(getattr(self, k) for k in self.__slots__ if k != "estimated")
