"""Image options: what a user may choose, how choices stick to a thread, and what the API accepts.

Everything here is checked before any API call, so an impossible combination costs nothing and
gets a message that says what to change.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from bot.core.errors import ErrorKind, UserFacingError

ACTIONS = ("auto", "generate", "edit")
QUALITIES = ("auto", "low", "medium", "high")
FORMATS = ("png", "jpeg", "webp")
BACKGROUNDS = ("auto", "opaque", "transparent")
MODERATIONS = ("auto", "low")
SIZE_PRESETS = ("auto", "1024x1024", "1536x1024", "1024x1536")
MAX_WIDTH, MAX_HEIGHT = 3840, 3840
MAX_PIXELS = 3840 * 2160
_SIZE_RE = re.compile(r"^\s*(\d{2,5})\s*[xX×*]\s*(\d{2,5})\s*$")
_QUALITY_RANK = {q: i for i, q in enumerate(QUALITIES)}


def parse_size(value: str) -> str:
    """Normalise a size to `auto` or `WxH`, or raise `UserFacingError` saying what is wrong."""
    text = value.strip().lower()
    if text in SIZE_PRESETS:
        return text
    match = _SIZE_RE.match(text)
    if not match:
        raise UserFacingError(ErrorKind.invalid_options, problem="size_format", value=value)
    width, height = int(match.group(1)), int(match.group(2))
    if width % 16 or height % 16:
        raise UserFacingError(ErrorKind.invalid_options, problem="size_multiple", value=value)
    if max(width, height) > 3 * min(width, height):
        raise UserFacingError(ErrorKind.invalid_options, problem="size_ratio", value=value)
    if width * height > MAX_PIXELS or max(width, height) > MAX_WIDTH:
        raise UserFacingError(ErrorKind.invalid_options, problem="size_max", value=value)
    if width * height < 1024 * 1024 // 4:
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

    def validated(self, *, max_quality: str = "high", allow_low_moderation: bool = True) -> ImageOptions:
        """Check a complete set of options; return it with the size normalised."""
        self._check_choice("action", ACTIONS)
        self._check_choice("quality", QUALITIES)
        self._check_choice("output_format", FORMATS)
        self._check_choice("background", BACKGROUNDS)
        self._check_choice("moderation", MODERATIONS)
        size = parse_size(self.size) if self.size is not None else None
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
            and max_quality in _QUALITY_RANK
            and _QUALITY_RANK[self.quality] > _QUALITY_RANK[max_quality]
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
