"""A result's files for upload: stills fitted to the limit, animated GIFs fitted without losing
their animation, SVGs checked and shown beside a PNG rendering.

Blocking CPU work (Pillow, resvg): callers run it with `asyncio.to_thread`.
"""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET

import resvg_py
from PIL import Image, ImageSequence

from bot.core.errors import ErrorKind, UserFacingError
from bot.core.imaging import FittedImage, fit_to_limit

GIF_COLOURS = (256, 128, 64, 32, 16)  # fewer colours first: the cheapest loss to see
MIN_GIF_FRAMES = 2  # fewer frames would no longer be an animation
MIN_GIF_EDGE = 64
SVG_RENDER_EDGE = 2048  # the PNG shown beside an SVG: at most this on its longer side
_SAFE_HREF = re.compile(r"^(#|data:image/(png|jpeg|gif|webp);base64,)", re.IGNORECASE)
_URL_IN_STYLE = re.compile(r"url\(\s*['\"]?\s*(?!#)", re.IGNORECASE)


def fit_result(data: bytes, output_format: str, limit: int) -> list[FittedImage]:
    """The files one generated image is posted as (an SVG: the SVG, then a PNG of it)."""
    if output_format == "gif":
        return [fit_gif(data, limit)]
    if output_format == "svg":
        return svg_files(data, limit)
    return [fit_to_limit(data, output_format, limit)]


def fit_gif(data: bytes, limit: int) -> FittedImage:
    """An animated GIF within `limit` bytes that still plays: fewer colours, then fewer frames
    (every other one dropped, each shown twice as long: the same loop time), then smaller."""
    if len(data) <= limit:
        return FittedImage(data, "gif", False)
    with Image.open(io.BytesIO(data)) as gif:
        frames = [frame.convert("RGB") for frame in ImageSequence.Iterator(gif)]
        duration = int(gif.info.get("duration", 200))
    while True:
        for colours in GIF_COLOURS:
            encoded = _encode_gif(frames, duration, colours)
            if len(encoded) <= limit:
                return FittedImage(encoded, "gif", True, frames[0].size)
        if len(frames) >= 2 * MIN_GIF_FRAMES:
            frames, duration = frames[::2], duration * 2
            continue
        width, height = frames[0].size
        if min(width, height) * 0.75 < MIN_GIF_EDGE:
            raise UserFacingError(ErrorKind.upload_failed, problem="too_large")
        size = (int(width * 0.75), int(height * 0.75))
        frames = [frame.resize(size, Image.Resampling.LANCZOS) for frame in frames]


def _encode_gif(frames: list[Image.Image], duration: int, colours: int) -> bytes:
    """One palette for every frame (taken from the first, fast octree): no flicker, and the
    frames need only a mapping, not a palette search each."""
    first = frames[0].quantize(colors=colours, method=Image.Quantize.FASTOCTREE,
                               dither=Image.Dither.NONE)
    rest = [frame.quantize(palette=first, dither=Image.Dither.NONE) for frame in frames[1:]]
    out = io.BytesIO()
    first.save(out, "GIF", save_all=True, append_images=rest, duration=duration, loop=0)
    return out.getvalue()


def check_svg(data: bytes) -> str:
    """The SVG's text if it is self-contained and inert; else `UserFacingError(svg_unsafe)`: no
    scripts, event handlers, foreign objects, DTDs or entities, and no reference outside the
    file (a link, an image or a style `url()` that is not `#id` or an embedded image)."""
    text = data.decode("utf-8", errors="strict") if _utf8(data) else ""
    if not text or "<!DOCTYPE" in text.upper() or "<!ENTITY" in text.upper():
        raise UserFacingError(ErrorKind.upload_failed, problem="svg_unsafe")
    try:
        root = ET.fromstring(text)
    except ET.ParseError:
        raise UserFacingError(ErrorKind.upload_failed, problem="svg_unsafe") from None
    for element in root.iter():
        tag = element.tag.rsplit("}", 1)[-1].lower()
        if tag in ("script", "foreignobject", "iframe", "embed", "object"):
            raise UserFacingError(ErrorKind.upload_failed, problem="svg_unsafe")
        if tag == "style" and (_URL_IN_STYLE.search(element.text or "")
                               or "@import" in (element.text or "")):
            raise UserFacingError(ErrorKind.upload_failed, problem="svg_unsafe")
        for name, value in element.attrib.items():
            if _unsafe_attribute(name.rsplit("}", 1)[-1].lower(), value):
                raise UserFacingError(ErrorKind.upload_failed, problem="svg_unsafe")
    return text


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _unsafe_attribute(name: str, value: str) -> bool:
    if name.startswith("on"):
        return True
    if name == "href":
        return not _SAFE_HREF.match(value.strip())
    return bool(_URL_IN_STYLE.search(value))


def svg_files(data: bytes, limit: int) -> list[FittedImage]:
    """The checked SVG as it came, and a PNG rendering of it so that Discord shows something
    (resvg, with no system fonts, no resource directory: nothing outside the file is read)."""
    text = check_svg(data)
    if len(data) > limit:
        raise UserFacingError(ErrorKind.upload_failed, problem="too_large")
    try:
        png = bytes(resvg_py.svg_to_bytes(svg_string=text, skip_system_fonts=False))
    except ValueError:
        raise UserFacingError(ErrorKind.upload_failed, problem="svg_unsafe") from None
    with Image.open(io.BytesIO(png)) as rendered:
        size = rendered.size
    if max(size) > SVG_RENDER_EDGE:
        scale = SVG_RENDER_EDGE / max(size)
        png = bytes(resvg_py.svg_to_bytes(svg_string=text, zoom=scale))
    picture = fit_to_limit(png, "png", max(limit - len(data), 1))
    return [FittedImage(data, "svg", False), picture]
