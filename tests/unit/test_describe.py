"""Reading the model's prompt ideas out of its answer."""

from __future__ import annotations

from bot.core.describe import parse_suggestions


def test_numbered_list():
    text = "Here you go:\n1. a fox, watercolour\n2) a fox at night\n3、一只狐狸，水彩\n4. extra"
    assert parse_suggestions(text) == ["a fox, watercolour", "a fox at night", "一只狐狸，水彩"]


def test_bullets_and_quotes():
    assert parse_suggestions('- "a quiet harbour"\n* a busy market') == [
        "a quiet harbour", "a busy market",
    ]


def test_plain_lines_when_no_list():
    assert parse_suggestions("a cat\n\na dog") == ["a cat", "a dog"]


def test_nothing():
    assert parse_suggestions("   \n") == []
