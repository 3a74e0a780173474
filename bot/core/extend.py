"""Zoom out, pan and vary region: a result placed on a canvas, with a mask that leaves the area
to fill transparent (`input_image_mask`, SDK 3.63 `ImageGeneration`; the Images API's `mask`:
"fully transparent areas ... indicate where image should be edited", the same size as the
image); and the animation of a result as a GIF.

`canvas_for` and `region_mask` are Pillow work: call them with `asyncio.to_thread`.
"""

from __future__ import annotations

import dataclasses
import io
import re
from dataclasses import dataclass

from PIL import Image

from bot.core.errors import ErrorKind, UserFacingError
from bot.core.image_models import DEFAULT_FRAMES, MASK_NAME, spec_of
from bot.core.models import InputImage
from bot.core.options import ImageOptions, gif_frame_size, nearest_size

# What each button asks for: the canvas in units of the source (width, height) and where the
# source sits on it (left, top).
MOVES: dict[str, tuple[float, float, float, float]] = {
    "zoom15": (1.5, 1.5, 0.25, 0.25),
    "zoom2": (2.0, 2.0, 0.5, 0.5),
    "panl": (1.5, 1.0, 0.5, 0.0),
    "panr": (1.5, 1.0, 0.0, 0.0),
    "panu": (1.0, 1.5, 0.0, 0.5),
    "pand": (1.0, 1.5, 0.0, 0.0),
}


@dataclass(frozen=True, slots=True)
class Canvas:
    """The output size, and the source's box on it in pixels (left, top, right, bottom)."""

    size: str
    box: tuple[int, int, int, int]


def canvas_plan(source: tuple[int, int], move: str, image_model: str | None) -> Canvas:
    """The canvas for `move` on a `source`-sized image: the nearest size the model takes with the
    canvas's proportions (within its pixel limits), the source scaled to fit its place."""
    width_units, height_units, left, top = MOVES[move]
    sw, sh = source
    size = nearest_size(sw * width_units, sh * height_units, image_model)
    cw, ch = (int(part) for part in size.split("x"))
    scale = min(cw / (sw * width_units), ch / (sh * height_units))
    w, h = round(sw * scale), round(sh * scale)
    slack_x, slack_y = cw - round(sw * width_units * scale), ch - round(sh * height_units * scale)
    x = round(left * sw * scale) + slack_x // 2
    y = round(top * sh * scale) + slack_y // 2
    return Canvas(size, (x, y, x + w, y + h))


def canvas_for(image: bytes, plan: Canvas) -> tuple[InputImage, InputImage]:
    """The source on a transparent canvas, and the mask: opaque where the source is (kept),
    transparent elsewhere (to be filled)."""
    cw, ch = (int(part) for part in plan.size.split("x"))
    left, top, right, bottom = plan.box
    with Image.open(io.BytesIO(image)) as source:
        placed = source.convert("RGBA").resize((right - left, bottom - top),
                                               Image.Resampling.LANCZOS)
    canvas = Image.new("RGBA", (cw, ch), (0, 0, 0, 0))
    canvas.paste(placed, (left, top))
    mask = Image.new("RGBA", (cw, ch), (0, 0, 0, 0))
    mask.paste((0, 0, 0, 255), (left, top, right, bottom))
    return _png(canvas, "canvas.png"), _png(mask, MASK_NAME)


def region_mask(image: bytes, box: tuple[float, float, float, float],
                image_model: str | None) -> tuple[str, InputImage, InputImage]:
    """The image at the nearest size the model takes, and a mask transparent over `box`
    (fractions of the width and height): what Vary region sends."""
    with Image.open(io.BytesIO(image)) as source:
        size = nearest_size(*source.size, image_model)
        cw, ch = (int(part) for part in size.split("x"))
        picture = source.convert("RGBA").resize((cw, ch), Image.Resampling.LANCZOS)
    mask = Image.new("RGBA", (cw, ch), (0, 0, 0, 255))
    x0, y0, x1, y1 = box
    mask.paste((0, 0, 0, 0), (round(x0 * cw), round(y0 * ch), round(x1 * cw), round(y1 * ch)))
    return size, _png(picture, "image.png"), _png(mask, MASK_NAME)


def _png(image: Image.Image, name: str) -> InputImage:
    out = io.BytesIO()
    image.save(out, "PNG")
    return InputImage(out.getvalue(), "image/png", name)


# --- the area a user names ---
_SIDES = {
    "top": "top", "upper": "top", "上": "top", "bottom": "bottom", "lower": "bottom", "下": "bottom",
    "left": "left", "左": "left", "right": "right", "右": "right",
}
_FRACTIONS = {"half": 1 / 2, "半": 1 / 2, "third": 1 / 3, "三分之一": 1 / 3,
              "quarter": 1 / 4, "四分之一": 1 / 4}
_CENTRE = re.compile(r"cent(re|er)|middle|中间|中央|中心")


def region_box(text: str) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) as fractions for "top half", "left third", "the centre",
    "bottom right", "上半部分", "左三分之一", "中间"…; else `UserFacingError(region_unknown)`."""
    said = text.strip().lower()
    fraction = next((v for k, v in _FRACTIONS.items() if k in said), 1 / 2)
    sides = {side for word, side in _SIDES.items() if re.search(_word(word), said)}
    if not sides:
        if _CENTRE.search(said):
            return (0.25, 0.25, 0.75, 0.75)
        raise UserFacingError(ErrorKind.invalid_options, problem="region_unknown", value=text[:80])
    x0, y0, x1, y1 = 0.0, 0.0, 1.0, 1.0
    if "top" in sides:
        y1 = fraction
    if "bottom" in sides:
        y0 = 1 - fraction
    if "left" in sides:
        x1 = fraction
    if "right" in sides:
        x0 = 1 - fraction
    if x0 >= x1 or y0 >= y1:  # "left and right": nothing sensible to draw
        raise UserFacingError(ErrorKind.invalid_options, problem="region_unknown", value=text[:80])
    return (x0, y0, x1, y1)


def _word(word: str) -> str:
    return word if not word.isascii() else rf"\b{word}\b"


# --- what each action runs with ---
def masked_options(base: ImageOptions, size: str, image_model: str) -> ImageOptions:
    """An edit at `size` that uses the mask (a still: GIF takes no mask), no previews kept
    from a GIF thread."""
    fmt = base.output_format if base.output_format in ("png", "jpeg", "webp") else "png"
    spec = spec_of(image_model)
    if not spec.masks:
        raise UserFacingError(ErrorKind.invalid_options, problem="model_mask", model=spec.name)
    return dataclasses.replace(base, action="edit", size=size, output_format=fmt, mask=True,
                               model=image_model, frame_count=None, frame_duration_ms=None,
                               compression=base.compression if fmt != "png" else None)


def animate_options(base: ImageOptions, source: str | None, image_model: str,
                    max_frames: int) -> ImageOptions:
    """A GIF edit continuing from the image: the model's GIF, the server's frame limit, frames
    sized to share one sheet."""
    spec = spec_of(image_model)
    if not spec.gif:
        raise UserFacingError(ErrorKind.invalid_options, problem="model_format", value="gif",
                              model=spec.name)
    frames = min(base.frame_count or DEFAULT_FRAMES, max_frames)
    return dataclasses.replace(
        base, action="edit", output_format="gif", frame_count=frames, partial_images=0,
        compression=None, background=None if base.background == "transparent" else base.background,
        size=gif_frame_size(source or "1024x1024", frames), model=image_model, mask=None,
    )
