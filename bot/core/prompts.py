"""A member's prompt as the core takes it: invisible characters and outer whitespace removed,
refused when empty or over the length limit."""

from __future__ import annotations

import re
import unicodedata

from bot.core.errors import ErrorKind, UserFacingError

_INVISIBLE = re.compile(r"[\u200b-\u200f\u2060-\u2064\ufeff\u00ad]")


def clean_prompt(text: str, *, max_chars: int) -> str:
    """Strip invisible characters and whitespace; refuse empty or over-long prompts."""
    cleaned = _INVISIBLE.sub("", unicodedata.normalize("NFC", text)).strip()
    if not cleaned:
        raise UserFacingError(ErrorKind.empty_prompt)
    if len(cleaned) > max_chars:
        raise UserFacingError(ErrorKind.prompt_too_long, limit=max_chars, length=len(cleaned))
    return cleaned
