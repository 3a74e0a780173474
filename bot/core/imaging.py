"""Pillow work on images: checking what users attach, previews, and fitting the upload limit.

Everything here is blocking CPU work; callers run it with `asyncio.to_thread`.
"""

from __future__ import annotations

import base64
import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from bot.core.errors import ErrorKind, UserFacingError
from bot.core.models import InputImage

ACCEPTED_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}
# Only these decoders ever see an attachment: Pillow would otherwise try every format it knows
# (TIFF, PSD, ICO, EPS, which runs Ghostscript where installed), whatever the file is called.
DECODERS = tuple(ACCEPTED_FORMATS)
# Read from the header, before decoding: an 8192x4096 image (a 32-megapixel photo) decodes to at
# most 128 MiB (RGBA); anything larger is refused before a byte of it is decoded.
MAX_INPUT_PIXELS = 8192 * 4096
MAX_INPUT_EDGE = 8192
PREVIEW_EDGE = 512
EXTENSIONS = {"png": "png", "jpeg": "jpg", "webp": "webp"}
_ORIENTATION = 0x0112  # the EXIF tag saying how the picture must be turned to stand upright


def inspect_input(data: bytes, filename: str, *, ours: bool = False) -> InputImage:
    """Check an attached file is a usable still PNG, JPEG, WebP or GIF (a GIF becomes a PNG);
    its pixel count is checked from the header before anything is decoded. A member's upload
    loses its metadata (`without_metadata`); one of the bot's own results (`ours`) is sent as
    the image service made it (PNG, JPEG or WebP: nothing of a member's in it).

    Raises `UserFacingError(bad_attachment, problem=…)` with the reason.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data), formats=DECODERS) as image:
                width, height = image.size
                if width * height > MAX_INPUT_PIXELS or max(width, height) > MAX_INPUT_EDGE:
                    raise UserFacingError(ErrorKind.bad_attachment, problem="too_large_pixels",
                                          name=filename)
                if getattr(image, "is_animated", False) and getattr(image, "n_frames", 1) > 1:
                    raise UserFacingError(ErrorKind.bad_attachment, problem="animated", name=filename)
                image.load()  # decode fully: truncated or corrupt data fails here
                if ours and image.format in ("PNG", "JPEG", "WEBP"):
                    return InputImage(data=data, mime=Image.MIME[image.format], filename=filename)
                cleaned, mime = without_metadata(image)
                return InputImage(data=cleaned, mime=mime, filename=filename)
        except UserFacingError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise UserFacingError(ErrorKind.bad_attachment, problem="too_large_pixels",
                                  name=filename) from None
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
            raise UserFacingError(ErrorKind.bad_attachment, problem="not_image",
                                  name=filename) from None


# what an upload keeps of its metadata: how its pixels look (colour profile, a palette's
# transparent colour); EXIF (GPS, camera, time), XMP, comments and text chunks go
_KEPT_INFO = ("icc_profile", "transparency")


def without_metadata(image: Image.Image) -> tuple[bytes, str]:
    """A decoded upload re-encoded with none of its metadata, and its MIME type: JPEG stays
    JPEG (with its own quantisation when it needs no turning: next to lossless), PNG and WebP
    stay themselves, anything else becomes PNG. An EXIF orientation is applied to the pixels
    first, so the picture stands as it was shown. Every upload goes through here before it is
    stored or sent."""
    fmt = image.format or ""
    kept = {key: image.info[key] for key in _KEPT_INFO if key in image.info}
    upright = ImageOps.exif_transpose(image) if image.getexif().get(_ORIENTATION, 1) != 1 else image
    upright.info = {k: v for k, v in kept.items() if k != "icc_profile"}
    extra = {"icc_profile": kept["icc_profile"]} if "icc_profile" in kept else {}
    out = io.BytesIO()
    if fmt == "JPEG":
        if upright is image:
            image.save(out, "JPEG", quality="keep", subsampling="keep", **extra)
        else:
            upright.save(out, "JPEG", quality=95, **extra)
        return out.getvalue(), "image/jpeg"
    if fmt == "WEBP":
        upright.save(out, "WEBP", quality=95, **extra)
        return out.getvalue(), "image/webp"
    if fmt != "PNG" and upright.mode not in ("RGB", "RGBA", "L", "LA", "P"):
        upright = upright.convert("RGBA" if "A" in upright.getbands() else "RGB")
    upright.save(out, "PNG", **extra)
    return out.getvalue(), "image/png"


def warm_up() -> None:
    """Load Pillow's codecs once at start-up, so the first turn does not pay for it."""
    Image.init()
    tiny = Image.new("RGB", (16, 16))
    for fmt in ("PNG", "JPEG", "WEBP"):
        out = io.BytesIO()
        tiny.save(out, fmt)
        with Image.open(io.BytesIO(out.getvalue())) as again:
            again.load()


def make_preview(b64: str) -> bytes:
    """A small JPEG of a partial image (base64 as the API sent it), cheap to upload on every edit."""
    with Image.open(io.BytesIO(base64.b64decode(b64))) as image:
        factor = -(-max(image.size) // PREVIEW_EDGE)  # box-reduce first: far cheaper than bicubic
        small = image.reduce(factor) if factor > 1 else image
        small.thumbnail((PREVIEW_EDGE, PREVIEW_EDGE))
        out = io.BytesIO()
        small.convert("RGB").save(out, "JPEG", quality=70)
        return out.getvalue()


@dataclass(frozen=True, slots=True)
class FittedImage:
    data: bytes
    extension: str
    reencoded: bool
    size: tuple[int, int] | None = None


def fit_to_limit(data: bytes, output_format: str, limit: int) -> FittedImage:
    """Return the image as is if it fits `limit` bytes, else re-encode until it does.

    Steps: WebP (or JPEG for opaque images) at falling quality, then downscaling by 0.75 a step.
    Raises `UserFacingError(upload_failed)` if even a small version cannot fit.
    """
    ext = EXTENSIONS.get(output_format, "png")
    if len(data) <= limit:
        return FittedImage(data, ext, False)
    with Image.open(io.BytesIO(data)) as original:
        original.load()
        image = original
        has_alpha = "A" in image.getbands()
        target = "WEBP" if has_alpha else "JPEG"
        if not has_alpha:
            image = image.convert("RGB")
        scale = 1.0
        while True:
            candidate = image
            if scale < 1.0:
                w, h = image.size
                candidate = image.resize((max(16, int(w * scale)), max(16, int(h * scale))),
                                         Image.Resampling.LANCZOS)
            for quality in (90, 80, 70, 55, 40):
                out = io.BytesIO()
                candidate.save(out, target, quality=quality)
                if out.tell() <= limit:
                    return FittedImage(out.getvalue(), "webp" if target == "WEBP" else "jpg", True,
                                       candidate.size)
            scale *= 0.75
            if min(image.size) * scale < 64:
                raise UserFacingError(ErrorKind.upload_failed, problem="too_large")


# What one Responses request may carry (OpenAI's Images and vision guide, "image input
# requirements": up to 20MB per image and 50 MB of image bytes per request). Read as decimal
# megabytes, the stricter reading.
MAX_API_IMAGE_BYTES = 20_000_000
MAX_API_REQUEST_IMAGE_BYTES = 50_000_000
_MIMES = {"jpg": "image/jpeg", "webp": "image/webp", "png": "image/png"}


def fit_inputs(
    images: list[InputImage],
    *,
    per_image: int = MAX_API_IMAGE_BYTES,
    per_request: int = MAX_API_REQUEST_IMAGE_BYTES,
) -> list[InputImage]:
    """The input images of one request, each within `per_image` bytes and all together within
    `per_request`: images over their share are re-encoded (and, if need be, downscaled).

    Raises `UserFacingError(bad_attachment, problem="too_large_for_api")` if one cannot fit.
    """
    total = sum(len(image.data) for image in images)
    share = per_image if total <= per_request else min(per_image, per_request // len(images))
    fitted = []
    for image in images:
        if len(image.data) <= share:
            fitted.append(image)
            continue
        try:
            result = fit_to_limit(image.data, "png", share)
        except UserFacingError:
            raise UserFacingError(
                ErrorKind.bad_attachment, problem="too_large_for_api", name=image.filename
            ) from None
        fitted.append(InputImage(result.data, _MIMES[result.extension], image.filename))
    return fitted


def megabytes(size: int) -> str:
    """`20`, `0.5`: a byte limit as users read it (MiB, at most one decimal)."""
    return f"{size / (1024 * 1024):.1f}".removesuffix(".0")
