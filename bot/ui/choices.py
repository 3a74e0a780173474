"""What the slash commands offer: option choices, their labels and descriptions.

The values come from the core's vocabularies (`bot.core.options`); only the labels live here.
Labels and descriptions are `locale_str`s, translated by `bot.ui.i18n.Translator`.
"""

from __future__ import annotations

import contextlib

from discord.app_commands import Choice, locale_str

from bot.core.errors import UserFacingError
from bot.core.options import (
    ACTIONS,
    BACKGROUNDS,
    COMPLEXITY_LEVELS,
    FORMATS,
    MODERATIONS,
    QUALITIES,
    SIZE_PRESETS,
    parse_size,
    suggest_size,
    valid_sizes,
)

_ACTION_LABELS = {
    "auto": "let the model decide",
    "generate": "generate a new image",
    "edit": "edit the current image",
}
_QUALITY_LABELS = {"low": "low (fast, cheap)", "high": "high (slow, costly)"}
_MODERATION_LABELS = {"low": "low (less strict)"}


def _choices(values: tuple[str, ...], labels: dict[str, str] | None = None) -> list[Choice[str]]:
    labels = labels or {}
    return [Choice(name=locale_str(labels.get(value, value)), value=value) for value in values]


ACTION_CHOICES = _choices(ACTIONS, _ACTION_LABELS)
QUALITY_CHOICES = _choices(QUALITIES, _QUALITY_LABELS)
BACKGROUND_CHOICES = _choices(BACKGROUNDS)
FORMAT_CHOICES = [Choice(name=f, value=f) for f in FORMATS]
MODERATION_CHOICES = _choices(MODERATIONS, _MODERATION_LABELS)
COMPLEXITY_CHOICES = _choices(COMPLEXITY_LEVELS)
SIZE_SUGGESTIONS = [*SIZE_PRESETS, "1536x864", "864x1536", "2048x2048", "2560x1440", "3840x2160"]

OPTION_DESCRIPTIONS = {
    "prompt": locale_str("What to draw, or what to change"),
    "action": locale_str("generate a new image, edit the current one, or let the model decide"),
    "size": locale_str("auto, a preset, or WIDTHxHEIGHT (multiples of 16)"),
    "quality": locale_str("Rendering quality (higher costs more)"),
    "background": locale_str("Background (transparent needs png or webp)"),
    "format": locale_str("Output file format"),
    "compression": locale_str("0-100, jpeg and webp only"),
    "moderation": locale_str("Content moderation level"),
    "previews": locale_str("Live previews while generating (0-3)"),
    "variants": locale_str("How many versions to make side by side (1-4)"),
    "complexity": locale_str("How much planning goes into the image (not its rendering quality)"),
    "frames": locale_str("Animated GIF: number of frames"),
    "frame_ms": locale_str("Animated GIF: milliseconds per frame"),
    "image": locale_str("An image to start from or to use as a reference"),
    "image2": locale_str("Another reference image"),
    "image3": locale_str("Another reference image"),
}
OPTION_RENAMES = {name: locale_str(name) for name in OPTION_DESCRIPTIONS}


def size_choices(current: str, image_model: str | None) -> list[Choice[str]]:
    """Autocomplete for a size option: what was typed mapped to the nearest size the model takes
    ("16:9 → 1536x864"), then the listed sizes the model takes that match."""
    text = current.strip().lower()
    choices = [Choice(name=s, value=s) for s in valid_sizes(SIZE_SUGGESTIONS, image_model)
               if text in s]
    nearest = suggest_size(text, image_model) if text else None
    if nearest is not None and nearest != text:
        choices.insert(0, Choice(name=f"{current.strip()[:40]} → {nearest}", value=nearest))
    elif text and not choices:
        with contextlib.suppress(UserFacingError):
            choices.insert(0, Choice(name=text, value=parse_size(text, image_model)))
    return choices[:25]
