"""Synthetic images for the fake OpenAI server, with the prompt *lineage* embedded as metadata.

Every image the fake generates is a real, decodable image of the requested size and format: a
solid colour derived from a hash of the newest prompt, with the prompt text drawn on it. The
image also carries its *lineage* — the ordered list of prompts that led to it (the first
prompt of the conversation, then every refinement) — so tests can prove that the bot chained
turns correctly (``previous_response_id``, image references, uploaded input images) just by
looking at the bytes the bot finally posted to Discord.

Where the lineage lives (JSON list of strings, ASCII-escaped):

* PNG  — ``tEXt`` chunk with keyword ``lineage``
* JPEG — the ``COM`` (comment) segment
* GIF  — the comment extension
* WebP — an XMP packet (``<imaginebot:lineage>`` element); EXIF ``ImageDescription`` is also read
* SVG  — a ``<metadata id="lineage">`` element

``read_lineage`` understands all of them. Images without lineage (e.g. a photo a user uploaded)
read as ``[]``.

Flat colours compress to almost nothing, unlike what the real API returns: a real 3840x2160 PNG
of a photographic scene is well over 10 MiB. A prompt containing :data:`PHOTO_MARKER` asks for
such an image (a gradient with sensor-like noise that PNG cannot shrink), per request, so that
tests can exercise Discord's upload limits with realistic sizes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import html
import io
import json
import re
import textwrap
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache

from PIL import Image, ImageChops, ImageDraw, ImageFont, PngImagePlugin, UnidentifiedImageError

__all__ = [
    "FORMATS",
    "PHOTO_MARKER",
    "ImageInfo",
    "RenderedImage",
    "decode_data_url",
    "has_alpha",
    "inspect_image",
    "read_lineage",
    "render_image",
]

#: Put this in a prompt to get a photo-like (large, hard to compress) image instead of a flat one.
PHOTO_MARKER = "[photo-like]"

#: Output formats the fake can produce (the SDK's ``output_format`` literal).
FORMATS = ("png", "jpeg", "webp", "gif", "svg")

_PIL_FORMAT = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP", "gif": "GIF"}
_MIME = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "gif": "image/gif",
    "svg": "image/svg+xml",
}
_XMP_NS = "https://example.invalid/imagine-bot/ns/1.0/"
_XMP_RE = re.compile(rb"<imaginebot:lineage>(.*?)</imaginebot:lineage>", re.S)
_SVG_RE = re.compile(rb'<metadata id="lineage">(.*?)</metadata>', re.S)
_EXIF_IMAGE_DESCRIPTION = 0x010E
_JPEG_COMMENT_MAX = 65_000  # a JPEG COM segment holds at most 65,533 bytes


@dataclass(frozen=True)
class RenderedImage:
    """The final image and its (blurrier) partial previews, all encoded in the same format."""

    final: bytes
    partials: tuple[bytes, ...]
    mime_type: str


@dataclass(frozen=True)
class ImageInfo:
    """What :func:`inspect_image` learned about some image bytes."""

    format: str  # one of FORMATS
    width: int
    height: int
    lineage: list[str]


# --------------------------------------------------------------------------- lineage encoding


def _lineage_json(lineage: list[str], *, limit: int | None = None) -> str:
    """JSON for ``lineage``; drops the oldest prompts if the result would exceed ``limit`` bytes."""
    items = list(lineage)
    text = json.dumps(items, ensure_ascii=True)
    while limit is not None and len(text) > limit and items:
        items.pop(0)
        text = json.dumps(items, ensure_ascii=True)
    return text


def _xmp_packet(lineage: list[str]) -> bytes:
    body = html.escape(_lineage_json(lineage), quote=False)
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        f'<rdf:Description rdf:about="" xmlns:imaginebot="{_XMP_NS}">'
        f"<imaginebot:lineage>{body}</imaginebot:lineage>"
        "</rdf:Description></rdf:RDF></x:xmpmeta>"
        '<?xpacket end="w"?>'
    ).encode()


def _parse_lineage_json(raw: str | bytes) -> list[str] | None:
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    return None


def read_lineage(image_bytes: bytes) -> list[str]:
    """Return the prompt lineage embedded in an image made by the fake (``[]`` if none).

    Works for PNG, JPEG, GIF, WebP and SVG. Raises ``ValueError`` if the bytes are not an image.
    """
    return inspect_image(image_bytes).lineage


# What the fake "sees" in an image: a real model reads an image's pixels, not its metadata, so a
# copy of a fake image re-encoded without metadata (as the bot does to members' uploads, issue
# 21) is still recognised. The fake draws each image on a background colour derived from its
# prompt; it remembers the lineage of every image it drew by size and background colour, and
# finds it again within a small colour tolerance (JPEG and WebP re-encoding move colours a little).
_DRAWN: OrderedDict[tuple[int, int, tuple[int, int, int]], list[str]] = OrderedDict()
_DRAWN_KEPT = 4096
_SEEN_TOLERANCE = 6


def _remember_drawn(img: Image.Image, lineage: list[str]) -> None:
    if img.mode != "RGB" or not lineage:
        return  # transparent drawings have no background to recognise
    key = (img.width, img.height, img.getpixel((0, 0)))
    _DRAWN[key] = list(lineage)
    _DRAWN.move_to_end(key)
    while len(_DRAWN) > _DRAWN_KEPT:
        _DRAWN.popitem(last=False)


def _seen_lineage(img: Image.Image) -> list[str]:
    """The lineage of a drawing of the fake's that lost its metadata, recognised by its pixels."""
    corner = img.convert("RGB").getpixel((0, 0))
    for (width, height, colour), lineage in reversed(_DRAWN.items()):
        if (width, height) == img.size and max(abs(a - b) for a, b in zip(colour, corner,
                                                                           strict=True)) <= _SEEN_TOLERANCE:
            return list(lineage)
    return []


def inspect_image(image_bytes: bytes, *, as_a_model_sees_it: bool = False) -> ImageInfo:
    """Decode ``image_bytes`` enough to learn format, size and lineage (from its metadata; with
    ``as_a_model_sees_it``, a drawing of the fake's whose metadata is gone is recognised by its
    pixels, as the fake server reads input images).

    Raises ``ValueError`` if the bytes are not a (complete) image in a supported format.
    """
    head = image_bytes[:512].lstrip()
    if head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in image_bytes[:2048]):
        return _inspect_svg(image_bytes)
    try:
        with Image.open(io.BytesIO(image_bytes)) as img:
            img.load()  # forces a full decode: truncated/corrupt data raises here
            fmt = (img.format or "").lower()
            info = dict(img.info)
            width, height = img.size
            lineage = _lineage_from_info(info)
            if not lineage and as_a_model_sees_it:
                lineage = _seen_lineage(img)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"not a valid image: {exc}") from exc
    fmt = {"jpg": "jpeg", "mpo": "jpeg"}.get(fmt, fmt)
    if fmt not in _PIL_FORMAT:
        raise ValueError(f"unsupported image format {fmt!r}")
    return ImageInfo(fmt, width, height, lineage)


def _lineage_from_info(info: dict[str, object]) -> list[str]:
    candidates: list[str | bytes] = []
    for key in ("lineage", "comment"):
        value = info.get(key)
        if isinstance(value, str | bytes):
            candidates.append(value)
    xmp = info.get("xmp")
    if isinstance(xmp, str):
        xmp = xmp.encode()
    if isinstance(xmp, bytes) and (match := _XMP_RE.search(xmp)):
        candidates.append(html.unescape(match.group(1).decode()))
    exif = info.get("exif")
    if isinstance(exif, bytes):
        try:
            description = Image.Exif()
            description.load(exif)
            value = description.get(_EXIF_IMAGE_DESCRIPTION)
        except Exception:  # malformed EXIF in some uploaded image: just ignore it
            value = None
        if isinstance(value, str | bytes):
            candidates.append(value)
    for raw in candidates:
        lineage = _parse_lineage_json(raw)
        if lineage is not None:
            return lineage
    return []


def _inspect_svg(data: bytes) -> ImageInfo:
    match = re.search(rb'<svg[^>]*\bwidth="(\d+)"[^>]*\bheight="(\d+)"', data)
    if match is None:
        raise ValueError("not a valid SVG image (no width/height)")
    lineage: list[str] = []
    if meta := _SVG_RE.search(data):
        lineage = _parse_lineage_json(html.unescape(meta.group(1).decode())) or []
    return ImageInfo("svg", int(match.group(1)), int(match.group(2)), lineage)


def decode_data_url(url: str) -> tuple[str, bytes]:
    """Split a ``data:<mime>;base64,<payload>`` URL into ``(mime, bytes)``.

    Raises ``ValueError`` for anything else (non-data URLs, non-base64 payloads).
    """
    if not url.startswith("data:"):
        raise ValueError("not a data URL")
    header, sep, payload = url[5:].partition(",")
    if not sep or not header.endswith(";base64"):
        raise ValueError("data URL must be base64-encoded")
    try:
        return header[: -len(";base64")], base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"invalid base64 in data URL: {exc}") from exc


# --------------------------------------------------------------------------- rendering


def _colour(prompt: str) -> tuple[int, int, int]:
    digest = hashlib.sha256(prompt.encode()).digest()
    # keep colours mid-range so black/white text stays readable either way
    return (64 + digest[0] % 160, 64 + digest[1] % 160, 64 + digest[2] % 160)


@lru_cache(maxsize=32)
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (ImportError, OSError, TypeError):  # Pillow without FreeType
        return ImageFont.load_default()


def _photo_like(width: int, height: int) -> Image.Image:
    """A smooth gradient plus per-channel Gaussian noise: about 2.5 bytes a pixel as PNG."""
    base = Image.linear_gradient("L").resize((width, height))
    channels = [
        ImageChops.add(base, Image.effect_noise((width, height), sigma), offset=-128)
        for sigma in (18, 22, 26)
    ]
    return Image.merge("RGB", channels)


def _draw_base(lineage: list[str], width: int, height: int, transparent: bool) -> Image.Image:
    prompt = lineage[-1] if lineage else ""
    colour = _colour(prompt)
    if PHOTO_MARKER in prompt and not transparent:
        img = _photo_like(width, height)
        draw = ImageDraw.Draw(img)
    elif transparent:
        img = Image.new("RGBA", (width, height), (0, 0, 0, 0))
        draw = ImageDraw.Draw(img)
        inset = min(width, height) // 10
        draw.ellipse((inset, inset, width - inset, height - inset), fill=(*colour, 255))
    else:
        img = Image.new("RGB", (width, height), colour)
        draw = ImageDraw.Draw(img)
    font_size = max(8, min(width, height) // 24)
    lines = textwrap.wrap(prompt, width=max(8, int(width / (font_size * 0.6)))) or [""]
    lines = lines[: max(1, (height // (font_size + 4)) - 2)]
    lines.append(f"turn {len(lineage)}")
    y = font_size
    for line in lines:
        draw.text((font_size, y), line, fill=(255, 255, 255, 255), font=_font(font_size))
        y += font_size + 4
    return img


def _encode(
    img: Image.Image, fmt: str, lineage: list[str] | None, compression: int | None
) -> bytes:
    out = io.BytesIO()
    quality = 90 if compression is None else max(1, compression)
    if fmt == "png":
        info = PngImagePlugin.PngInfo()
        if lineage is not None:
            info.add_text("lineage", _lineage_json(lineage))
        img.save(out, "PNG", pnginfo=info, compress_level=1)
    elif fmt == "jpeg":
        kwargs: dict[str, object] = {"quality": quality}
        if lineage is not None:
            kwargs["comment"] = _lineage_json(lineage, limit=_JPEG_COMMENT_MAX).encode()
        img.convert("RGB").save(out, "JPEG", **kwargs)
    elif fmt == "webp":
        kwargs = {"quality": quality, "method": 0}
        if lineage is not None:
            kwargs["xmp"] = _xmp_packet(lineage)
        img.save(out, "WEBP", **kwargs)
    elif fmt == "gif":
        kwargs = {}
        if lineage is not None:
            kwargs["comment"] = _lineage_json(lineage, limit=_JPEG_COMMENT_MAX).encode()
        img.convert("RGBA" if img.mode == "RGBA" else "RGB").save(out, "GIF", **kwargs)
    else:  # pragma: no cover - guarded by the server's validation
        raise ValueError(f"unsupported format {fmt!r}")
    return out.getvalue()


def _encode_gif(img: Image.Image, lineage: list[str], frames: int, frame_ms: int) -> bytes:
    """An animated GIF of `frames` frames (the picture shifted a little on each), looping."""
    base = img.convert("RGB").quantize(colors=64, method=Image.Quantize.FASTOCTREE,
                                       dither=Image.Dither.NONE)
    step = max(1, img.width // (4 * frames))
    shots = [ImageChops.offset(base, index * step, 0) for index in range(frames)]
    out = io.BytesIO()
    shots[0].save(out, "GIF", save_all=True, append_images=shots[1:], duration=frame_ms, loop=0,
                  comment=_lineage_json(lineage, limit=_JPEG_COMMENT_MAX).encode())
    return out.getvalue()


def has_alpha(data: bytes) -> bool:
    """Whether the image has an alpha channel (a mask must, to say where to edit)."""
    with Image.open(io.BytesIO(data)) as img:
        return img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info


def _render_svg(
    lineage: list[str], width: int, height: int, transparent: bool, *, embed: bool = True
) -> bytes:
    prompt = lineage[-1] if lineage else ""
    r, g, b = _colour(prompt)
    fill = "none" if transparent else f"rgb({r},{g},{b})"
    meta = html.escape(_lineage_json(lineage), quote=False)
    metadata = f'<metadata id="lineage">{meta}</metadata>' if embed else ""
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">{metadata}'
        f'<rect width="100%" height="100%" fill="{fill}"/>'
        f'<text x="16" y="48" fill="white">{html.escape(prompt)}</text></svg>'
    ).encode()


def render_image(
    lineage: list[str],
    *,
    width: int,
    height: int,
    fmt: str = "png",
    transparent: bool = False,
    compression: int | None = None,
    partial_images: int = 0,
    frames: int = 1,
    frame_ms: int = 200,
) -> RenderedImage:
    """Render an image (CPU-bound: call it via ``asyncio.to_thread``).

    ``lineage[-1]`` is the prompt that is drawn; the whole list is embedded as metadata.
    ``partial_images`` previews are the same size but pixelated (coarsest first) and carry no
    lineage, like real partial frames they are not meant to be kept.
    """
    if fmt == "svg":
        svg = _render_svg(lineage, width, height, transparent)
        preview = _render_svg(lineage, width, height, transparent, embed=False)
        return RenderedImage(svg, tuple(preview for _ in range(partial_images)), _MIME[fmt])
    img = _draw_base(lineage, width, height, transparent)
    _remember_drawn(img, lineage)
    if fmt == "gif":
        return RenderedImage(_encode_gif(img, lineage, frames, frame_ms), (), _MIME[fmt])
    final = _encode(img, fmt, lineage, compression)
    partials: list[bytes] = []
    for index in range(partial_images):
        factor = 2 ** (partial_images - index + 2)  # 1/32, 1/16, 1/8 … of the final resolution
        small = img.resize((max(1, width // factor), max(1, height // factor)), Image.BILINEAR)
        blurry = small.resize((width, height), Image.NEAREST)
        partials.append(_encode(blurry, fmt, None, compression))
    return RenderedImage(final, tuple(partials), _MIME[fmt])
