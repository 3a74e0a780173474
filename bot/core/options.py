"""Image options: what a user may choose, how choices stick to a thread, and what the API accepts.

Everything here is checked before any API call, so an impossible combination costs nothing and
gets a message that says what to change.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Any, Literal, get_args

from bot.core.errors import ErrorKind, UserFacingError
from bot.core.image_models import (
    FRAME_MS_STEP,
    MAX_FRAME_MS,
    MAX_FRAMES,
    MIN_FRAMES,
    gif_frame_fits,
    spec_of,
)

# The one definition of each vocabulary: settings, slash-command choices and checks import these.
Action = Literal["auto", "generate", "edit"]
Quality = Literal["auto", "low", "medium", "high", "xhigh", "max"]  # in rising order of cost
OutputFormat = Literal["png", "jpeg", "webp", "gif", "svg"]
Complexity = Literal["low", "medium", "high"]  # SDK `ImageGeneration.complexity`
Background = Literal["auto", "opaque", "transparent"]
Moderation = Literal["auto", "low"]
ACTIONS: tuple[str, ...] = get_args(Action)
QUALITIES: tuple[str, ...] = get_args(Quality)
FORMATS: tuple[str, ...] = get_args(OutputFormat)
BACKGROUNDS: tuple[str, ...] = get_args(Background)
MODERATIONS: tuple[str, ...] = get_args(Moderation)
COMPLEXITY_LEVELS: tuple[str, ...] = get_args(Complexity)
COMPLEXITY_RANK = {c: i for i, c in enumerate(COMPLEXITY_LEVELS)}
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
_SIZE_RE = re.compile(r"^\s*(\d{2,5})\s*[xX×*]\s*(\d{2,5})\s*$")
QUALITY_RANK = {q: i for i, q in enumerate(QUALITIES)}


def lower_quality(a: str | None, b: str) -> str:
    """The lower of two qualities; `a` may be unset (or unknown), then `b`."""
    if a is None or a not in QUALITY_RANK:
        return b
    return a if QUALITY_RANK[a] < QUALITY_RANK[b] else b


def takes_custom_sizes(image_model: str | None) -> bool:
    """Whether `image_model` (None: the pinned default) accepts `WIDTHxHEIGHT` sizes (its row
    in `bot.core.image_models`)."""
    return spec_of(image_model).custom_sizes


# Sizes people say: a shape or a ratio becomes the nearest size the image model takes.
SIZE_WORDS: dict[str, tuple[int, int]] = {
    "square": (1, 1), "landscape": (3, 2), "portrait": (2, 3), "wide": (16, 9), "tall": (9, 16),
    "方形": (1, 1), "正方形": (1, 1), "横向": (3, 2), "横版": (3, 2), "竖向": (2, 3), "竖版": (2, 3),
}
_RATIO_RE = re.compile(r"^\s*(\d{1,4})\s*[:：/]\s*(\d{1,4})\s*$")
RATIO_LONG_EDGE = 1536  # a ratio alone is drawn about as large as the landscape preset


def size_ratio(value: str) -> tuple[int, int] | None:
    """(width, height) proportions of a shape word or a ratio such as `16:9`, else None."""
    text = value.strip().lower()
    if text in SIZE_WORDS:
        return SIZE_WORDS[text]
    match = _RATIO_RE.match(text)
    if match and int(match.group(1)) and int(match.group(2)):
        return int(match.group(1)), int(match.group(2))
    return None


def _edge(value: float) -> int:
    return max(SIZE_MULTIPLE, int(value / SIZE_MULTIPLE + 0.5) * SIZE_MULTIPLE)


def nearest_size(width: float, height: float, image_model: str | None = None) -> str:
    """The valid size for `image_model` closest to `width`x`height`: the same proportions (within
    1:3-3:1) and about the same area (within the pixel limits), edges in steps of 16; for a model
    that takes presets only, the preset of the closest proportions."""
    presets = SIZE_PRESETS[1:]
    if not takes_custom_sizes(image_model):
        wanted = math.log(width / height)
        return min(presets, key=lambda p: abs(math.log(_proportion(p)) - wanted))
    ratio = min(max(width / height, 1 / MAX_RATIO), MAX_RATIO)
    area = min(max(width * height, MIN_PIXELS), MAX_PIXELS)
    w = math.sqrt(area * ratio)
    h = w / ratio
    scale = min(1.0, MAX_EDGE / max(w, h))
    w, h = _edge(w * scale), _edge(h * scale)
    for _ in range(512):  # rounding may cross a limit by a step: walk back inside
        try:
            return parse_size(f"{w}x{h}", image_model)
        except UserFacingError as error:
            problem = error.params.get("problem")
        if problem == "size_min":
            w, h = (w, h + SIZE_MULTIPLE) if w >= h else (w + SIZE_MULTIPLE, h)
        else:  # too large or too narrow: shorten the longer edge
            w, h = (w - SIZE_MULTIPLE, h) if w >= h else (w, h - SIZE_MULTIPLE)
    raise UserFacingError(ErrorKind.invalid_options, problem="size_format", value=f"{w}x{h}")


def _proportion(size: str) -> float:
    width, height = size.split("x")
    return int(width) / int(height)


def size_for_ratio(width: int, height: int, image_model: str | None = None) -> str:
    """The size for proportions `width`:`height`: a preset when one has them, else the nearest
    size with a long edge of about 1536."""
    for preset in SIZE_PRESETS[1:]:
        if math.isclose(_proportion(preset), width / height):
            return preset
    if width >= height:
        return nearest_size(RATIO_LONG_EDGE, RATIO_LONG_EDGE * height / width, image_model)
    return nearest_size(RATIO_LONG_EDGE * width / height, RATIO_LONG_EDGE, image_model)


def suggest_size(value: str, image_model: str | None = None) -> str | None:
    """What to offer for a half-typed or impossible size (`1920x1080` → `1920x1088`)."""
    ratio = size_ratio(value)
    if ratio is not None:
        return size_for_ratio(*ratio, image_model)
    match = _SIZE_RE.match(value.strip().lower())
    if match and int(match.group(1)) and int(match.group(2)):
        return nearest_size(int(match.group(1)), int(match.group(2)), image_model)
    return None


def largest_size(like: str | None, image_model: str | None, ceiling: str | None = None) -> str:
    """The largest size `image_model` takes with the proportions of `like` (`WxH`; None or
    `auto`: square), no larger in pixels than `ceiling` (`WxH`) when one is set."""
    width, height = (1, 1)
    if like and "x" in like:
        width, height = (int(part) for part in like.split("x"))
    if not takes_custom_sizes(image_model):
        return nearest_size(width, height, image_model)
    limit = MAX_PIXELS
    if ceiling:
        cw, ch = (int(part) for part in parse_size(ceiling).split("x"))
        limit = min(limit, cw * ch)
    ratio = width / height
    best: tuple[int, str] | None = None
    for long_edge in range(MAX_EDGE, SIZE_MULTIPLE - 1, -SIZE_MULTIPLE):
        short_edge = _edge(long_edge / ratio if ratio >= 1 else long_edge * ratio)
        w, h = (long_edge, short_edge) if ratio >= 1 else (short_edge, long_edge)
        if w * h > limit or abs(math.log((w / h) / ratio)) > 0.02:
            continue
        try:
            size = parse_size(f"{w}x{h}", image_model)
        except UserFacingError:
            continue
        if best is None or w * h > best[0]:
            best = (w * h, size)
    return best[1] if best else nearest_size(width, height, image_model)


def valid_sizes(sizes: list[str], image_model: str | None) -> list[str]:
    """The sizes in `sizes` that `image_model` takes."""
    valid = []
    for size in sizes:
        try:
            valid.append(parse_size(size, image_model))
        except UserFacingError:
            continue
    return valid


def checked_size(value: str) -> str:
    """A size as a user chose it: a shape or ratio is kept as said (it is mapped for the image
    model when the options are validated, and sticks to a thread as said); else `parse_size`."""
    text = value.strip().lower()
    if size_ratio(text) is not None:
        return text
    return parse_size(text)


def parse_size(value: str, image_model: str | None = None) -> str:
    """Normalise a size to `auto`, a preset or `WxH` that `image_model` accepts, or raise
    `UserFacingError` saying what is wrong. A shape (`landscape`) or ratio (`16:9`) becomes the
    nearest size the model takes."""
    text = value.strip().lower()
    if text in SIZE_PRESETS:
        return text
    ratio = size_ratio(text)
    if ratio is not None:
        return size_for_ratio(*ratio, image_model)
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
    complexity: str | None = None  # low | medium | high (planning, not rendering)
    frame_count: int | None = None  # GIF only
    frame_duration_ms: int | None = None  # GIF only
    model: str | None = None  # the image model this turn runs on (the server's choice)
    mask: bool | None = None  # the turn's last input image is an inpainting mask (zoom, pan)

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
        max_complexity: str = "high",
        max_frames: int = MAX_FRAMES,
    ) -> ImageOptions:
        """Check a complete set of options against what the image model takes (`self.model`,
        else `image_model`: its row in `bot.core.image_models`); return them normalised (a
        size as the model takes it, no previews for GIF/SVG, which the API refuses)."""
        for name, allowed in (("action", ACTIONS), ("quality", QUALITIES),
                              ("output_format", FORMATS), ("background", BACKGROUNDS),
                              ("moderation", MODERATIONS), ("complexity", COMPLEXITY_LEVELS)):
            self._check_choice(name, allowed)
        model = self.model or image_model
        fmt = self.output_format or "png"
        self._check_model(model, fmt)
        self._check_compression(fmt)
        if self.partial_images is not None and not 0 <= self.partial_images <= 3:
            raise UserFacingError(
                ErrorKind.invalid_options, problem="partial_range", value=self.partial_images
            )
        _check_max(self.quality, max_quality, QUALITY_RANK, "quality_max")
        _check_max(self.complexity, max_complexity, COMPLEXITY_RANK, "complexity_max")
        if self.moderation == "low" and not allow_low_moderation:
            raise UserFacingError(ErrorKind.invalid_options, problem="moderation_low")
        if fmt == "gif":
            if self.mask:  # SDK `output_format`: GIF "does not support input_image_mask"
                raise UserFacingError(ErrorKind.invalid_options, problem="model_mask",
                                      model="gif")
            return self._gif_checked(max_frames)
        size = parse_size(self.size, model) if self.size is not None else None
        partials = 0 if fmt == "svg" and self.partial_images else self.partial_images
        return dataclasses.replace(self, size=size, partial_images=partials)

    def _check_model(self, model: str | None, fmt: str) -> None:
        """Refuse what the image model does not take (SDK `ImageGeneration` docstrings)."""
        spec = spec_of(model)
        if self.quality and self.quality not in spec.qualities:
            raise UserFacingError(ErrorKind.invalid_options, problem="model_quality",
                                  value=self.quality, model=spec.name)
        if fmt not in spec.formats:
            raise UserFacingError(ErrorKind.invalid_options, problem="model_format",
                                  value=fmt, model=spec.name)
        if self.background == "transparent":
            if fmt in ("jpeg", "gif"):  # SDK `background`: "set the output format to png or webp"
                raise UserFacingError(ErrorKind.invalid_options, problem="transparent_jpeg")
            if spec.transparent == "no":
                raise UserFacingError(ErrorKind.invalid_options, problem="model_transparent",
                                      model=spec.name)
        if self.complexity and not spec.complexity:
            raise UserFacingError(ErrorKind.invalid_options, problem="model_complexity",
                                  model=spec.name)

    def _check_compression(self, fmt: str) -> None:
        if self.compression is None:
            return
        if not 0 <= self.compression <= 100:
            raise UserFacingError(
                ErrorKind.invalid_options, problem="compression_range", value=self.compression
            )
        if fmt not in ("jpeg", "webp"):  # SDK: jpeg and webp only; GIF/SVG take none
            raise UserFacingError(ErrorKind.invalid_options, problem="compression_png")

    def _gif_checked(self, max_frames: int) -> ImageOptions:
        """GIF: 2-16 frames (at most `max_frames`), a frame duration the API takes, and a frame
        size whose frames fit one sheet (shrunk, same proportions, when they do not)."""
        frames = self.frame_count if self.frame_count is not None else min(9, max_frames)
        if not MIN_FRAMES <= frames <= min(MAX_FRAMES, max_frames):
            raise UserFacingError(ErrorKind.invalid_options, problem="frames_range",
                                  value=frames, limit=min(MAX_FRAMES, max_frames))
        duration = self.frame_duration_ms
        if duration is not None and not FRAME_MS_STEP <= duration <= MAX_FRAME_MS:
            raise UserFacingError(ErrorKind.invalid_options, problem="frame_ms_range",
                                  value=duration)
        size = gif_frame_size(self.size, frames)
        return dataclasses.replace(self, size=size, frame_count=frames, partial_images=0)
    def _check_choice(self, name: str, allowed: tuple[str, ...]) -> None:
        value = getattr(self, name)
        if value is not None and value not in allowed:
            raise UserFacingError(
                ErrorKind.invalid_options, problem="choice", option=name, value=value
            )

    def tool_params(self) -> dict[str, Any]:
        """The `image_generation` tool fields for these options (defaults left to the API)."""
        fields = {
            "action": self.action, "size": self.size, "quality": self.quality,
            "background": self.background, "output_format": self.output_format,
            "output_compression": self.compression, "moderation": self.moderation,
            "partial_images": self.partial_images, "complexity": self.complexity,
            "model": self.model,
        }
        if self.output_format == "gif":  # SDK: frame fields require output_format gif
            fields["frame_count"] = self.frame_count
            fields["frame_duration_ms"] = self.frame_duration_ms
        return {name: value for name, value in fields.items() if value not in (None, "")}

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
        if self.complexity:
            parts.append(f"complexity {self.complexity}")
        if self.output_format == "gif":
            parts.append(f"{self.frame_count or 9} frames × {self.frame_duration_ms or 200} ms")
        return " · ".join(parts)


def _check_max(value: str | None, ceiling: str, rank: dict[str, int], problem: str) -> None:
    """Refuse `value` above `ceiling` in `rank` order (`auto` and unknown ceilings pass)."""
    if value and value in rank and ceiling in rank and rank[value] > rank[ceiling]:
        raise UserFacingError(ErrorKind.invalid_options, problem=problem, value=ceiling)


def gif_frame_size(size: str | None, frames: int) -> str | None:
    """A GIF frame size: `auto` stays (the API picks); else edges in steps of 16 with the
    proportions asked for, shrunk until `frames` frames fit the sheet's pixel budget."""
    if size is None or size.strip().lower() == "auto":
        return size
    ratio = size_ratio(size)
    if ratio is None:
        match = _SIZE_RE.match(size.strip().lower())
        if not match or not int(match.group(1)) or not int(match.group(2)):
            raise UserFacingError(ErrorKind.invalid_options, problem="size_format", value=size)
        ratio = (int(match.group(1)), int(match.group(2)))
    width, height = ratio
    if max(width, height) > MAX_RATIO * min(width, height):
        raise UserFacingError(ErrorKind.invalid_options, problem="size_ratio", value=size)
    scale = 1.0 if size_ratio(size) is None else 1024 / max(width, height)
    long_edge = _edge(max(width, height) * scale)
    while True:
        short_edge = _edge(long_edge * min(width, height) / max(width, height))
        w, h = (long_edge, short_edge) if width >= height else (short_edge, long_edge)
        if gif_frame_fits(w, h, frames) or long_edge <= SIZE_MULTIPLE:
            break
        long_edge -= SIZE_MULTIPLE
    return f"{w}x{h}"
