"""What users read: error sentences, thread names, captions."""

from __future__ import annotations

import dataclasses

import pytest

from bot.core.errors import ErrorKind, UserFacingError
from bot.core.models import Turn, TurnKind, TurnStatus
from bot.core.options import ImageOptions
from bot.ui.render import error_text, quote, result_caption, thread_name

PARAMS = {
    ErrorKind.invalid_options: {"problem": "size_ratio", "value": "4000x1000"},
    ErrorKind.prompt_too_long: {"limit": 4000, "length": 5000},
    ErrorKind.too_many_images: {"limit": 4},
    ErrorKind.queue_full: {"limit": 3},
    ErrorKind.not_allowed: {"reason": "channel"},
    ErrorKind.limit_reached: {"limit": "user_daily_images", "value": 5, "reset": 1800000000},
    ErrorKind.bad_attachment: {"problem": "animated", "name": "cat.gif"},
    ErrorKind.invalid_request: {"reason": "Invalid value for size."},
    ErrorKind.upload_failed: {"problem": "too_large"},
    ErrorKind.refused: {"text": "I can't make that image."},
}


@pytest.mark.parametrize("kind", list(ErrorKind))
@pytest.mark.parametrize("locale", ["en-US", "zh-CN"])
def test_every_error_has_a_complete_sentence(kind, locale):
    text = error_text(UserFacingError(kind, **PARAMS.get(kind, {})), locale)
    assert text and "{" not in text and not text.startswith(("error.", "problem.", "reason."))
    assert len(text) <= 2000


def test_error_texts_are_specific():
    assert "1:3 and 3:1" in error_text(PARAMS_ERR("size_ratio"), "en-US")
    assert "cat.gif" in error_text(
        UserFacingError(ErrorKind.bad_attachment, problem="animated", name="cat.gif"), "en-US"
    )
    assert "<t:1800000000:R>" in error_text(
        UserFacingError(ErrorKind.limit_reached, **PARAMS[ErrorKind.limit_reached]), "en-US"
    )


def PARAMS_ERR(problem: str) -> UserFacingError:
    return UserFacingError(ErrorKind.invalid_options, problem=problem, value="4000x1000")


def test_thread_name_cuts_cleanly_at_a_word():
    assert thread_name("  a   red\nfox  ") == "a red fox"
    long = "word " * 40
    name = thread_name(long)
    assert len(name) <= 100 and name.endswith("…") and not name.endswith(" …")
    assert thread_name("x" * 300) == "x" * 99 + "…"


def test_quote_defuses_mentions_and_keeps_lines():
    text = quote("hello @everyone\nsecond line")
    assert "@everyone" not in text
    assert text.splitlines() == ["> hello @\u200beveryone", "> second line"]


def test_caption_shows_prompt_settings_and_flags():
    turn = Turn(
        id=7, conversation_id=1, parent_id=None, kind=TurnKind.root, guild_id=1, author_id=42,
        prompt="a fox", options=ImageOptions(size="1536x1024", quality="high", output_format="webp",
                                             action="edit", moderation="low"),
        status=TurnStatus.running, number=3,
    )
    caption = result_caption(turn, revised_prompt="a red fox, watercolour", text=None,
                             reencoded=True, rerooted=True, has_images=True)
    assert caption.startswith("> a fox")
    # the option labels, not raw values
    assert "edit · 1536x1024 · high quality · webp · less strict moderation" in caption
    assert "re-encoded" in caption
    # the number counts within the conversation; how the chain was carried is for Details
    assert caption.endswith("#3\n-# Revised prompt: a red fox, watercolour")
    assert "chain rebuilt" not in caption and "#7" not in caption
    zh = result_caption(dataclasses.replace(turn, locale="zh-CN"), revised_prompt=None, text=None,
                        reencoded=False, rerooted=False, has_images=True)
    assert "编辑 · 1536x1024 · 高质量 · webp · 较宽松的审核" in zh


@pytest.mark.parametrize(
    ("locale", "shown"), [("en-US", "(category: violence)"), ("zh-CN", "（类别：violence）")]
)
def test_a_safety_block_names_its_category_when_the_api_gives_one(locale, shown):
    named = error_text(UserFacingError(ErrorKind.moderation, category="violence"), locale)
    assert shown in named
    plain = error_text(UserFacingError(ErrorKind.moderation), locale)
    assert "violence" not in plain and "{" not in plain


def test_a_refusal_shows_the_models_words():
    text = error_text(UserFacingError(ErrorKind.refused, text="I can't make that image."), "en-US")
    assert text == "The model declined: I can't make that image."
