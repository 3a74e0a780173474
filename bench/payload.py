"""Realistic image bytes for the benchmark.

The fake API's own images are a solid colour with a line of text: a 1536x1024 PNG of about
30 KB. A real ``gpt-image`` 1536x1024 PNG is about 2-3.5 MB, and its partial images are
full-size PNGs too. Payload size drives what the bot pays for (SSE parsing, base64, Pillow,
uploads, memory), so by default the benchmark serves images of a realistic size: a colour
gradient with smoothed noise, which PNG compresses about as badly as a photo-like image.
"""

from __future__ import annotations

import io

from PIL import Image, ImageChops, ImageFilter


def _noise_image(width: int, height: int, *, sigma: float, blur: float) -> Image.Image:
    channels = []
    gradient = Image.linear_gradient("L")
    for channel in range(3):
        noise = Image.effect_noise((width, height), sigma)
        if blur:
            noise = noise.filter(ImageFilter.GaussianBlur(blur))
        ramp = gradient.rotate(90 * channel).resize((width, height))
        scaled = ImageChops.multiply(ramp, Image.new("L", (width, height), 200))
        channels.append(ImageChops.add(scaled, noise, offset=-60))
    return Image.merge("RGB", channels)


def realistic_png(width: int, height: int, *, blur: float = 1.0) -> bytes:
    """A PNG of photo-like entropy: about 2.6 MB at 1536x1024 with ``blur=1.0``."""
    image = _noise_image(width, height, sigma=40, blur=blur)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def realistic_set(width: int, height: int, partials: int) -> tuple[bytes, tuple[bytes, ...]]:
    """(final, partials): partial frames are full-size PNGs, a little smoother than the final."""
    final = realistic_png(width, height, blur=1.0)
    frames = tuple(
        realistic_png(width, height, blur=1.5 + 0.5 * (partials - i))
        for i in range(partials)
    )
    return final, frames
