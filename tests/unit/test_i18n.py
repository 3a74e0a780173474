"""Both languages are complete: the same keys and placeholders in each catalogue, and every key the
code can ask for (message keys, error kinds, problems, reasons, limits) exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import discord
import pytest
from discord import app_commands

from bot.core.errors import ErrorKind
from bot.ui.buttons import ACTIONS
from bot.ui.i18n import COMMAND_ZH, EN, ZH, Translator, language, placeholders, t

BOT = Path(__file__).resolve().parents[2] / "bot"
SOURCES = {path: path.read_text(encoding="utf-8") for path in sorted(BOT.rglob("*.py"))}


def _literal_kwargs(name: str) -> set[str]:
    """String literals passed as `name="..."` anywhere in bot/ (e.g. `problem="size_ratio"`)."""
    found: set[str] = set()
    for text in SOURCES.values():
        found.update(re.findall(rf'\b{name}="([a-z_]+)"', text))
    return found


def _t_calls() -> list[tuple[str, str, set[str] | None]]:
    """Every `t("literal key", ...)` call in bot/: (where, key, keyword names or None for **)."""
    calls = []
    for path, text in SOURCES.items():
        for node in ast.walk(ast.parse(text)):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id == "t" and node.args):
                continue
            first = node.args[0]
            if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
                continue
            names = {k.arg for k in node.keywords}
            where = f"{path.relative_to(BOT.parent)}:{node.lineno}"
            calls.append((where, first.value, None if None in names else names))  # type: ignore[arg-type]
    return calls


def test_both_catalogues_have_the_same_keys():
    assert set(EN) - set(ZH) == set(), "missing in Chinese"
    assert set(ZH) - set(EN) == set(), "missing in English"


@pytest.mark.parametrize("key", sorted(EN))
def test_placeholders_are_identical(key):
    assert placeholders(EN[key]) == placeholders(ZH[key])
    assert EN[key].strip() and ZH[key].strip()


def test_chinese_messages_are_translated():
    untranslated = []
    for key, text in EN.items():
        words = re.sub(r"\{[^}]*\}|`[^`]*`", "", text)  # placeholders and code stay as they are
        if ZH[key] == text and re.search(r"[A-Za-z]{3,}", words):
            untranslated.append(key)
    assert untranslated == []


@pytest.mark.parametrize("kind", list(ErrorKind))
def test_every_error_kind_has_a_message(kind):
    assert kind.value in EN and kind.value in ZH


def test_every_error_kind_named_in_the_code_exists():
    used = set()
    for text in SOURCES.values():
        used.update(re.findall(r"\bErrorKind\.([a-z_]+)\b", text))
    assert len(used) >= 20, "the scan found too little: is the pattern still right?"
    unknown = sorted(name for name in used if name not in ErrorKind.__members__)
    assert unknown == []
    for name in used:
        assert ErrorKind[name].value in EN


@pytest.mark.parametrize(("param", "prefix", "at_least"), [
    ("problem", "problem", 15), ("reason", "reason", 6), ("limit", "limit", 3),
])
def test_every_problem_reason_and_limit_in_the_code_has_a_message(param, prefix, at_least):
    used = _literal_kwargs(param)
    assert len(used) >= at_least, f"the scan found only {sorted(used)}"
    missing = sorted(f"{prefix}.{name}" for name in used if f"{prefix}.{name}" not in EN)
    assert missing == []
    assert all(f"{prefix}.{name}" in ZH for name in used)


def test_every_message_key_asked_for_exists_with_its_placeholders_filled():
    calls = _t_calls()
    assert len(calls) >= 40, "the scan found too few t() calls"
    problems = []
    for where, key, names in calls:
        if key not in EN:
            problems.append(f"{where}: unknown key {key!r}")
        elif names is not None and placeholders(EN[key]) - names:
            problems.append(f"{where}: {key!r} needs {sorted(placeholders(EN[key]) - names)}")
    assert problems == []


def test_dynamic_keys_exist():
    # buttons are labelled with t(f"button.{action}") in bot/ui/buttons.py
    assert 'f"button.{action}"' in SOURCES[BOT / "ui" / "buttons.py"]
    for action in ACTIONS:
        assert f"button.{action}" in EN


def test_language_selection_and_fallbacks():
    assert language("zh-CN") == language("ZH") == "zh"
    assert language("en-GB") == language("fr") == language(None) == "en"
    # Traditional Chinese readers get English until a Traditional catalogue exists
    assert language("zh-TW") == language("zh-HK") == "en"
    assert t("error.cancelled", "zh-TW") == "Cancelled."
    assert t("error.cancelled", "zh-CN") == "已取消。"
    assert t("error.cancelled", "de") == "Cancelled."
    assert t("error.queue_full", "zh-CN", limit=3).startswith("你的队列已满（3 个")
    assert t("no.such.key", "zh-CN") == "no.such.key"
    assert t("error.queue_full", "en-US").count("{limit}") == 1  # a missing parameter shows


# Discord: localized names are lower case, 1-32 letters/digits/-/_ (any script).
_NAME = re.compile(r"^[-_'\w]{1,32}$")


async def test_command_translations_only_for_chinese():
    translator = Translator()
    context = app_commands.TranslationContext(
        location=app_commands.TranslationContextLocation.command_name, data=None
    )
    assert await translator.translate(
        app_commands.locale_str("imagine"), discord.Locale.chinese, context) == "画图"
    assert await translator.translate(
        app_commands.locale_str("imagine"), discord.Locale.taiwan_chinese, context) is None
    assert await translator.translate(
        app_commands.locale_str("imagine"), discord.Locale.french, context) is None
    assert await translator.translate(
        app_commands.locale_str("not a known string"), discord.Locale.chinese, context) is None
    for source, text in COMMAND_ZH.items():
        assert text.strip(), source
        if _NAME.match(source) and source == source.lower():  # looks like a name: keep it valid
            assert _NAME.match(text) and text == text.lower(), (source, text)
