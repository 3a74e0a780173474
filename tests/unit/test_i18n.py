"""Every language is complete: each catalogue (bot/locales, gettext, read with Babel) translates
every message of the English source with the same placeholders and plural forms (Babel's own
checks), and every key the code can ask for (message keys, error kinds, problems, reasons,
limits) exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import discord
import pytest
from discord import app_commands

from bot.core.errors import ErrorKind
from bot.ui.buttons import ACTIONS
from bot.ui.i18n import (
    EN,
    LOCALES,
    ZH,
    Translator,
    command_text,
    language,
    placeholders,
    read_catalog,
    t,
)

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


def _translations(domain: str) -> list[Path]:
    found = sorted(LOCALES.glob(f"*/LC_MESSAGES/{domain}.po"))
    assert found, f"no {domain} catalogues under {LOCALES}"
    return found


def _entries(path: Path) -> dict[tuple[object, object], object]:
    """(context, msgid) → msgstr of every message in a catalogue, the header left out."""
    return {(m.context, m.id if isinstance(m.id, str) else tuple(m.id)): m.string
            for m in read_catalog(path) if m.id}


@pytest.mark.parametrize("domain", ["messages", "commands"])
def test_every_catalogue_translates_exactly_the_source_and_passes_babels_checks(domain):
    """Babel's checkers (`Catalog.check`): a `python-format` message keeps its placeholders in
    its translation, and a plural message has the language's number of forms. One report lists
    every problem of every language."""
    source = set(_entries(LOCALES / f"{domain}.pot"))
    problems = []
    for path in _translations(domain):
        lang = path.parent.parent.name
        entries = _entries(path)
        problems += [f"{lang}: missing {key}" for key in sorted(source - set(entries), key=str)]
        problems += [f"{lang}: not in the source {key}" for key in sorted(set(entries) - source, key=str)]
        problems += [f"{lang}: untranslated {key}" for key, text in entries.items()
                     if not (text if isinstance(text, str) else all(text))]
        problems += [f"{lang}: {message.context or message.id}: {error}"
                     for message, errors in read_catalog(path).check() for error in errors]
    assert problems == []


def test_placeholders_are_flagged_for_babel_and_identical_in_chinese():
    """A message with placeholders carries the `python-format` flag (else Babel would not check
    it), and the Chinese text of each message has exactly the English placeholders."""
    unflagged = [m.context for m in read_catalog(LOCALES / "messages.pot")
                 if m.id and "%(" in str(m.id) and "python-format" not in m.flags]
    mismatched = [key for key in EN if placeholders(EN[key]) != placeholders(ZH[key])]
    empty = [key for key in EN if not (EN[key].strip() and ZH[key].strip())]
    assert (unflagged, mismatched, empty) == ([], [], [])


def test_chinese_messages_are_translated():
    untranslated = []
    for key, text in EN.items():
        words = re.sub(r"%\([a-z_]+\)s|`[^`]*`", "", text)  # placeholders and code stay as they are
        if ZH[key] == text and re.search(r"[A-Za-z]{3,}", words):
            untranslated.append(key)
    assert untranslated == []


def test_every_error_kind_has_a_message():
    assert [kind.value for kind in ErrorKind if kind.value not in EN] == []


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
    assert t("error.queue_full", "en-US").count("%(limit)s") == 1  # a missing parameter shows


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
    invalid = []
    for message in read_catalog(LOCALES / "zh" / "LC_MESSAGES" / "commands.po"):
        source, text = message.id, message.string
        looks_like_a_name = bool(source and _NAME.match(source) and source == source.lower())
        if looks_like_a_name and not (_NAME.match(text) and text == text.lower()):  # keep it valid
            invalid.append((source, text))
    assert invalid == []


def test_a_command_string_takes_its_contexts_translation_before_the_general_one():
    """The commands domain is read with the translation context: a context-specific entry wins,
    the context-free one is the fallback (so "set" can differ as a subcommand and as a choice)."""
    assert command_text("imagine", "zh", "command_name") == "画图"  # general entry
    assert command_text("imagine", "en", "command_name") is None
    assert command_text("not a known string", "zh", "choice_name") is None
