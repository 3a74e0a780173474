"""Image options: what a user may choose, how choices stick to a thread, and what the API accepts.

Everything here is checked before any API call, so an impossible combination costs nothing and
gets a message that says what to change.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Literal, get_args

from bot.core.errors import ErrorKind, UserFacingError

# The one definition of each vocabulary: settings, slash-command choices and checks import these.
Action = Literal["auto", "generate", "edit"]
Quality = Literal["auto", "low", "medium", "high"]  # in rising order of cost
OutputFormat = Literal["png", "jpeg", "webp"]
Background = Literal["auto", "opaque", "transparent"]
Moderation = Literal["auto", "low"]
ACTIONS: tuple[str, ...] = get_args(Action)
QUALITIES: tuple[str, ...] = get_args(Quality)
FORMATS: tuple[str, ...] = get_args(OutputFormat)
BACKGROUNDS: tuple[str, ...] = get_args(Background)
MODERATIONS: tuple[str, ...] = get_args(Moderation)
SIZE_PRESETS = ("auto", "1024x1024", "1536x1024", "1024x1536")
# Custom sizes (`WIDTHxHEIGHT`) on the image models that take them. Sources: the SDK's
# `openai.types.responses.tool.ImageGeneration.size` (openai 3.57: both edges divisible by 16,
# ratio between 1:3 and 3:1, at most 3840x2160; "must also satisfy the model's current pixel and
# edge limits"), and the size constraints of gpt-image-2 in OpenAI's image generation guide
# (longest edge at most 3840 px, edges multiples of 16, long:short at most 3:1, total pixels
# 655,360 to 8,294,400), read in copies of that guide kept by API relays.
SIZE_MULTIPLE = 16
MAX_RATIO = 3
MAX_EDGE = 3840
MIN_PIXELS = 655_360
MAX_PIXELS = 8_294_400  # 3840x2160
# Models that take only the presets (the SDK's `size` docstring lists custom sizes only for
# gpt-image-2 and later; gpt-image-1, -1-mini and -1.5 document 1024x1024, 1536x1024,
# 1024x1536 and auto). A dated snapshot (`…-2025-12-16`) follows its model.
PRESET_ONLY_MODELS = frozenset({"gpt-image-1", "gpt-image-1-mini", "gpt-image-1.5"})
_SNAPSHOT_RE = re.compile(r"-\d{4}-\d{2}-\d{2}$")
_SIZE_RE = re.compile(r"^\s*(\d{2,5})\s*[xX×*]\s*(\d{2,5})\s*$")
QUALITY_RANK = {q: i for i, q in enumerate(QUALITIES)}


def lower_quality(a: str | None, b: str) -> str:
    """The lower of two qualities; `a` may be unset (or unknown), then `b`."""
    if a is None or a not in QUALITY_RANK:
        return b
    return a if QUALITY_RANK[a] < QUALITY_RANK[b] else b


def takes_custom_sizes(image_model: str | None) -> bool:
    """Whether `image_model` (None: the API's default model) accepts `WIDTHxHEIGHT` sizes."""
    if not image_model:
        return True
    return _SNAPSHOT_RE.sub("", image_model.strip().lower()) not in PRESET_ONLY_MODELS


def parse_size(value: str, image_model: str | None = None) -> str:
    """Normalise a size to `auto`, a preset or `WxH` that `image_model` accepts, or raise
    `UserFacingError` saying what is wrong."""
    text = value.strip().lower()
    if text in SIZE_PRESETS:
        return text
    match = _SIZE_RE.match(text)
    if not match:
        raise UserFacingError(ErrorKind.invalid_options, problem="size_format", value=value)
    width, height = int(match.group(1)), int(match.group(2))
    if f"{width}x{height}" in SIZE_PRESETS:
        return f"{width}x{height}"
    if not takes_custom_sizes(image_model):
        raise UserFacingError(
            ErrorKind.invalid_options, problem="size_preset_only", value=value, model=image_model
        )
    if width % SIZE_MULTIPLE or height % SIZE_MULTIPLE:
        raise UserFacingError(ErrorKind.invalid_options, problem="size_multiple", value=value)
    if max(width, height) > MAX_RATIO * min(width, height):
        raise UserFacingError(ErrorKind.invalid_options, problem="size_ratio", value=value)
    if width * height > MAX_PIXELS or max(width, height) > MAX_EDGE:
        raise UserFacingError(ErrorKind.invalid_options, problem="size_max", value=value)
    if width * height < MIN_PIXELS:
        raise UserFacingError(ErrorKind.invalid_options, problem="size_min", value=value)
    return f"{width}x{height}"


@dataclass(frozen=True, slots=True)
class ImageOptions:
    """A (possibly partial) set of choices. `None` means "not chosen here": inherit it."""

    action: str | None = None
    size: str | None = None
    quality: str | None = None
    background: str | None = None
    output_format: str | None = None
    compression: int | None = None
    moderation: str | None = None
    partial_images: int | None = None

    def merged_over(self, base: ImageOptions) -> ImageOptions:
        """These choices on top of `base` (the thread's sticky options or the defaults)."""
        return ImageOptions(
            **{
                f.name: getattr(self, f.name)
                if getattr(self, f.name) is not None
                else getattr(base, f.name)
                for f in dataclasses.fields(self)
            }
        )

    def chosen(self) -> dict[str, Any]:
        """Only the fields that were set, for storage and display."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    def sticky(self) -> ImageOptions:
        """What carries over to the next turns of a thread (the action is per turn)."""
        return dataclasses.replace(self, action=None)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ImageOptions:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in (data or {}).items() if k in names})

    def validated(
        self,
        *,
        max_quality: str = "high",
        allow_low_moderation: bool = True,
        image_model: str | None = None,
    ) -> ImageOptions:
        """Check a complete set of options (sizes as `image_model` takes them); return them
        with the size normalised."""
        self._check_choice("action", ACTIONS)
        self._check_choice("quality", QUALITIES)
        self._check_choice("output_format", FORMATS)
        self._check_choice("background", BACKGROUNDS)
        self._check_choice("moderation", MODERATIONS)
        size = parse_size(self.size, image_model) if self.size is not None else None
        fmt = self.output_format or "png"
        if self.background == "transparent" and fmt == "jpeg":
            raise UserFacingError(ErrorKind.invalid_options, problem="transparent_jpeg")
        if self.compression is not None:
            if not 0 <= self.compression <= 100:
                raise UserFacingError(
                    ErrorKind.invalid_options, problem="compression_range", value=self.compression
                )
            if fmt == "png":
                raise UserFacingError(ErrorKind.invalid_options, problem="compression_png")
        if self.partial_images is not None and not 0 <= self.partial_images <= 3:
            raise UserFacingError(
                ErrorKind.invalid_options, problem="partial_range", value=self.partial_images
            )
        if (
            self.quality
            and self.quality != "auto"
            and max_quality in QUALITY_RANK
            and QUALITY_RANK[self.quality] > QUALITY_RANK[max_quality]
        ):
            raise UserFacingError(ErrorKind.invalid_options, problem="quality_max", value=max_quality)
        if self.moderation == "low" and not allow_low_moderation:
            raise UserFacingError(ErrorKind.invalid_options, problem="moderation_low")
        return dataclasses.replace(self, size=size)

    def _check_choice(self, name: str, allowed: tuple[str, ...]) -> None:
        value = getattr(self, name)
        if value is not None and value not in allowed:
            raise UserFacingError(
                ErrorKind.invalid_options, problem="choice", option=name, value=value
            )

    def tool_params(self) -> dict[str, Any]:
        """The `image_generation` tool fields for these options (defaults left to the API)."""
        params: dict[str, Any] = {}
        if self.action:
            params["action"] = self.action
        if self.size:
            params["size"] = self.size
        if self.quality:
            params["quality"] = self.quality
        if self.background:
            params["background"] = self.background
        if self.output_format:
            params["output_format"] = self.output_format
        if self.compression is not None:
            params["output_compression"] = self.compression
        if self.moderation:
            params["moderation"] = self.moderation
        if self.partial_images is not None:
            params["partial_images"] = self.partial_images
        return params

    def summary(self, actual_size: str | None = None) -> str:
        """A compact one-line description for result footers, e.g. `1536x1024 · high · webp`.

        `actual_size` is what the API produced (shown when the size was left to it); choices
        left at `auto` are not shown.
        """
        size = self.size if self.size and self.size != "auto" else actual_size or "auto size"
        parts = [size]
        if self.quality and self.quality != "auto":
            parts.append(self.quality)
        parts.append(self.output_format or "png")
        if self.background and self.background != "auto":
            parts.append(self.background)
        if self.compression is not None:
            parts.append(f"q{self.compression}")
        if self.moderation == "low":
            parts.append("moderation low")
        return " · ".join(parts)
