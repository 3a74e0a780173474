"""Pillow work: checking attachments, fitting the upload limit, previews."""

from __future__ import annotations

import io
import os
import struct
import zlib

import pytest
from PIL import Image

from bot.core.errors import ErrorKind, UserFacingError
from bot.core.imaging import (
    MAX_INPUT_EDGE,
    MAX_INPUT_PIXELS,
    fit_to_limit,
    inspect_input,
    make_preview,
)


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def noise(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    return Image.frombytes(mode, size, os.urandom(size[0] * size[1] * len(mode)))


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def problem(excinfo: pytest.ExceptionInfo[UserFacingError]) -> str:
    assert excinfo.value.kind is ErrorKind.bad_attachment
    return excinfo.value.params["problem"]


@pytest.fixture(scope="module")
def noisy_png() -> bytes:
    """2048x2048 of random pixels: about 12 MB as PNG, and JPEG cannot squeeze it much either."""
    return encode(noise((2048, 2048)), "PNG", compress_level=1)


# --------------------------------------------------------------------------- inspect_input


@pytest.mark.parametrize(
    ("fmt", "mime"), [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp")]
)
def test_common_formats_are_accepted_in_their_own_format(fmt: str, mime: str) -> None:
    source = noise((64, 48))
    data = encode(source, fmt)
    image = inspect_input(data, f"photo.{fmt.lower()}")
    assert image.mime == mime  # re-encoded without metadata (below), in the same format
    assert opened(image.data).format == fmt and opened(image.data).size == (64, 48)
    if fmt == "PNG":
        assert opened(image.data).tobytes() == source.tobytes()
    assert image.filename == f"photo.{fmt.lower()}"


def test_a_png_with_alpha_is_accepted() -> None:
    data = encode(noise((32, 32), "RGBA"), "PNG")
    assert inspect_input(data, "a.png").mime == "image/png"


@pytest.mark.parametrize(("fmt", "name"), [("BMP", "scan.png"), ("TIFF", "photo.png"),
                                           ("ICO", "icon.png"), ("PPM", "raw.jpg")])
def test_formats_other_than_png_jpeg_webp_and_gif_are_never_decoded(fmt: str, name: str) -> None:
    """Whatever the file is called (Discord's content type comes from the name)."""
    data = encode(noise((40, 30)), fmt)
    with pytest.raises(UserFacingError) as excinfo:
        inspect_input(data, name)
    assert problem(excinfo) == "not_image"


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header declares `width`x`height` RGBA, followed by pixel data that cannot be
    decoded: refused for its size, it was never decoded."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", b"not deflate data") + chunk(b"IEND", b""))


def test_the_pixel_ceiling_is_read_from_the_header_before_decoding() -> None:
    with pytest.raises(UserFacingError) as excinfo:
        inspect_input(png_header(8192, 6100), "huge.png")  # 214 MB of pixels once decoded
    assert problem(excinfo) == "too_large_pixels"
    assert MAX_INPUT_PIXELS < 8192 * 6100
    with pytest.raises(UserFacingError) as excinfo:
        inspect_input(png_header(4096, 4096), "fine.png")  # within the ceiling: decoded, corrupt
    assert problem(excinfo) == "not_image"


def test_a_still_gif_is_converted_to_png() -> None:
    data = encode(Image.new("P", (20, 20), 3), "GIF")
    image = inspect_input(data, "still.gif")
    assert image.mime == "image/png"
    assert opened(image.data).format == "PNG"


def test_a_transparent_gif_keeps_its_transparency() -> None:
    source = Image.new("RGBA", (8, 8), (255, 0, 0, 0))
    source.paste((0, 255, 0, 255), (0, 0, 4, 8))
    image = inspect_input(encode(source, "GIF"), "sticker.gif")
    converted = opened(image.data).convert("RGBA")
    assert converted.getpixel((1, 1)) == (0, 255, 0, 255)
    assert converted.getpixel((6, 6))[3] == 0  # still see-through, not a solid colour


@pytest.mark.parametrize(
    "data",
    [b"", b"hello, this is a text file\n" * 20, b"%PDF-1.7\n" + b"\x00" * 200,
     b"\x89PNG\r\n\x1a\n" + b"garbage" * 10],
)
def test_something_that_is_not_an_image_is_refused(data: bytes) -> None:
    with pytest.raises(UserFacingError) as excinfo:
        inspect_input(data, "notes.png")
    assert problem(excinfo) == "not_image"
    assert excinfo.value.params["name"] == "notes.png"


def test_a_truncated_png_is_refused() -> None:
    data = encode(noise((128, 128)), "PNG")
    with pytest.raises(UserFacingError) as excinfo:
        inspect_input(data[: len(data) // 2], "cut.png")
    assert problem(excinfo) == "not_image"


def test_an_animated_gif_is_refused() -> None:
    frames = [Image.new("RGB", (16, 16), colour) for colour in ("red", "green", "blue")]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    assert getattr(opened(data), "n_frames", 1) == 3
    with pytest.raises(UserFacingError) as excinfo:
        inspect_input(data, "dance.gif")
    assert problem(excinfo) == "animated"


def test_a_decompression_bomb_is_refused() -> None:
    # 100 megapixels that compress to a few kilobytes
    data = encode(Image.new("1", (10_000, 10_000)), "PNG", optimize=True)
    assert len(data) < 100_000
    with pytest.raises(UserFacingError) as excinfo:
        inspect_input(data, "bomb.png")
    assert problem(excinfo) == "too_large_pixels"


def test_an_overlong_edge_is_refused() -> None:
    data = encode(Image.new("L", (MAX_INPUT_EDGE + 16, 16)), "PNG")
    with pytest.raises(UserFacingError) as excinfo:
        inspect_input(data, "banner.png")
    assert problem(excinfo) == "too_large_pixels"


# --------------------------------------------------------------------------- fit_to_limit


@pytest.mark.parametrize(("fmt", "ext"), [("png", "png"), ("jpeg", "jpg"), ("webp", "webp")])
def test_an_image_that_fits_is_returned_as_is(fmt: str, ext: str) -> None:
    data = encode(noise((64, 64)), fmt.upper())
    fitted = fit_to_limit(data, fmt, len(data))
    assert fitted.data is data
    assert fitted.extension == ext
    assert fitted.reencoded is False


def test_a_big_png_is_reencoded_under_the_limit(noisy_png: bytes) -> None:
    limit = 300_000
    assert len(noisy_png) > 10 * limit
    fitted = fit_to_limit(noisy_png, "png", limit)
    assert fitted.reencoded is True
    assert len(fitted.data) <= limit
    assert fitted.extension == "jpg"  # opaque: JPEG
    result = opened(fitted.data)
    assert result.format == "JPEG"
    assert fitted.size == result.size
    assert result.width == result.height and 256 <= result.width <= 2048  # scaled, same shape


def test_a_big_transparent_png_is_reencoded_as_webp() -> None:
    data = encode(noise((512, 512), "RGBA"), "PNG", compress_level=1)
    fitted = fit_to_limit(data, "png", 200_000)
    assert fitted.reencoded is True and fitted.extension == "webp"
    assert len(fitted.data) <= 200_000
    result = opened(fitted.data)
    assert result.format == "WEBP" and "A" in result.getbands()


def test_an_impossible_limit_fails_cleanly() -> None:
    data = encode(noise((256, 256)), "PNG")
    with pytest.raises(UserFacingError) as excinfo:
        fit_to_limit(data, "png", 100)
    assert excinfo.value.kind is ErrorKind.upload_failed


# --------------------------------------------------------------------------- previews


def test_make_preview_is_a_small_jpeg() -> None:
    preview = make_preview(b64(encode(noise((1536, 1024)), "PNG", compress_level=1)))
    image = opened(preview)
    assert image.format == "JPEG"
    assert max(image.size) <= 512
    assert image.size[0] == 512 and abs(image.size[1] - 341) <= 1  # aspect ratio kept


def test_make_preview_handles_transparency_and_small_images() -> None:
    image = opened(make_preview(b64(encode(noise((100, 80), "RGBA"), "PNG"))))
    assert image.format == "JPEG" and image.mode == "RGB"
    assert image.size == (100, 80)  # never enlarged


def b64(data: bytes) -> str:
    """Partial images reach the preview as the API sent them: base64 text."""
    import base64

    return base64.b64encode(data).decode("ascii")


def test_fit_inputs_refuses_clearly_when_an_image_cannot_fit() -> None:
    from bot.core.imaging import fit_inputs
    from bot.core.models import InputImage

    out = io.BytesIO()
    Image.effect_noise((512, 512), 64).convert("RGB").save(out, "PNG")
    image = InputImage(out.getvalue(), "image/png", "huge.png")
    with pytest.raises(UserFacingError) as excinfo:
        fit_inputs([image], per_image=100, per_request=100)
    assert excinfo.value.params == {"problem": "too_large_for_api", "name": "huge.png"}
    assert fit_inputs([image]) == [image]  # within the limits: untouched


# --------------------------------------------------------------------------- metadata (issue 21)
def exif_with_gps(orientation: int = 1) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x0112] = orientation
    gps = exif.get_ifd(0x8825)  # the GPS IFD
    gps[1], gps[2], gps[3], gps[4] = "N", (51.0, 30.0, 12.0), "W", (0.0, 7.0, 39.0)
    return exif


def carries_gps(data: bytes) -> bool:
    exif = opened(data).getexif()
    return bool(exif.get_ifd(0x8825)) or 0x010F in exif or b"PhoneMaker" in data


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_uploads_lose_exif_gps_and_text_but_keep_their_format_and_pixels(fmt):
    image = Image.effect_noise((96, 64), 50).convert("RGB")
    params: dict[str, object] = {"exif": exif_with_gps().tobytes()}
    if fmt == "PNG":
        from PIL.PngImagePlugin import PngInfo

        info = PngInfo()
        info.add_text("Comment", "PhoneMaker at home")
        params["pnginfo"] = info
    if fmt == "JPEG":
        params["comment"] = b"PhoneMaker at home"
    data = encode(image, fmt, **params)
    assert carries_gps(data)  # (the sample really carries it)
    cleaned = inspect_input(data, f"photo.{fmt.lower()}")
    assert not carries_gps(cleaned.data)
    out = opened(cleaned.data)
    assert out.format == fmt and out.size == (96, 64)
    assert cleaned.mime == f"image/{fmt.lower()}"
    if fmt == "PNG":  # lossless: the very same pixels
        assert out.tobytes() == image.tobytes()


def test_a_turned_photo_is_stood_upright_before_its_orientation_goes():
    """A phone photo stored landscape with orientation 6 (turn 90 degrees clockwise to view)."""
    image = Image.new("RGB", (120, 60), "white")
    image.paste((255, 0, 0), (0, 0, 20, 60))  # a red band on the left as stored
    data = encode(image, "JPEG", exif=exif_with_gps(orientation=6).tobytes(), quality=95)
    cleaned = opened(inspect_input(data, "phone.jpg").data)
    assert cleaned.size == (60, 120)  # shown portrait, as the phone showed it
    assert 0x0112 not in cleaned.getexif()
    red, _, _ = cleaned.getpixel((30, 5))  # the band is now along the top
    assert red > 200 and cleaned.getpixel((30, 115))[1] > 200


def _noise_gif(frames: int, edge: int, duration: int) -> bytes:
    import os

    shots = [Image.frombytes("RGB", (edge, edge), os.urandom(edge * edge * 3)).quantize(256)
             for _ in range(frames)]
    out = io.BytesIO()
    shots[0].save(out, "GIF", save_all=True, append_images=shots[1:], duration=duration, loop=0)
    return out.getvalue()


def test_an_animated_gif_is_fitted_without_losing_its_animation() -> None:
    """Fewer colours, then fewer frames (each shown longer: the same loop time), then smaller;
    the result still loops and has at least two frames."""
    from bot.core.result_files import fit_gif

    original = _noise_gif(8, 256, 100)
    limit = len(original) // 6
    fitted = fit_gif(original, limit)
    assert fitted.extension == "gif" and fitted.reencoded and len(fitted.data) <= limit
    with Image.open(io.BytesIO(fitted.data)) as played:
        assert played.n_frames >= 2 and played.info["loop"] == 0
        assert played.n_frames * played.info["duration"] == 8 * 100  # the loop time is kept
    small = _noise_gif(3, 32, 100)
    assert fit_gif(small, len(small)).data == small  # fits: left as it is


def test_svg_with_scripts_or_outside_references_is_refused() -> None:
    from bot.core.result_files import check_svg, svg_files

    head = '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"'
    unsafe = [
        f'{head}><script>alert(1)</script></svg>',
        f'{head}><image xlink:href="https://example.invalid/a.png"/></svg>',
        f'{head}><image href="file:///etc/passwd"/></svg>',
        f'{head}><rect onclick="x()"/></svg>',
        f'{head}><rect style="fill:url(https://example.invalid/p)"/></svg>',
        f'{head}><style>@import "https://example.invalid/x.css";</style></svg>',
        f'{head}><foreignObject><div/></foreignObject></svg>',
        f'<!DOCTYPE svg [<!ENTITY x SYSTEM "file:///etc/passwd">]>{head}>&x;</svg>',
    ]
    for text in unsafe:
        with pytest.raises(UserFacingError) as excinfo:
            check_svg(text.encode())
        assert excinfo.value.params["problem"] == "svg_unsafe", text
    safe = (f'{head} width="200" height="100"><defs><linearGradient id="g"/></defs>'
            '<rect width="200" height="100" fill="url(#g)"/><use xlink:href="#g"/></svg>').encode()
    svg, png = svg_files(safe, 10_000_000)
    assert (svg.extension, svg.data) == ("svg", safe)
    with Image.open(io.BytesIO(png.data)) as shown:
        assert png.extension == "png" and shown.size == (200, 100)
