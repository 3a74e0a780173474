"""Message catalogues and the app-command translator, read from gettext catalogues.

`bot/locales/messages.pot` is the English source: one entry per message, its context
(`msgctxt`) the id the code asks for (`t("error.queue_full", locale, limit=3)`), placeholders in
Python's `%(name)s` form, plurals as `msgid_plural` (`plural("unit.image", 5, locale)`). Each
language is `bot/locales/<language>/LC_MESSAGES/messages.po` (Babel: `pybabel update`, see
CONTRIBUTING.md); Babel checks that a translation keeps its placeholders and plural forms.
App-command names, descriptions and choices are the `commands` domain, looked up with the
translation context's location (`command_name`, `parameter_description`, `choice_name`, …) and
then without one. Catalogues are compiled in memory once, at import.
"""

from __future__ import annotations

import gettext
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import discord
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from discord import app_commands

DEFAULT_LOCALE = "en-US"
LOCALES = Path(__file__).resolve().parent.parent / "locales"
SOURCE_LANGUAGE = "en"
SIMPLIFIED_CHINESE = frozenset({"zh", "zh-cn", "zh-sg", "zh-hans"})
_PLACEHOLDER = re.compile(r"%\(([a-z_][a-z0-9_]*)\)")


@dataclass(frozen=True)
class Source:
    """One message as the English source has it."""

    singular: str
    plural: str | None = None


def read_catalog(path: Path) -> Catalog:
    with path.open("rb") as file:
        return read_po(file)


def _compiled(catalog: Catalog) -> gettext.GNUTranslations:
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


def _sources(domain: str) -> dict[str, Source]:
    found = {}
    for message in read_catalog(LOCALES / f"{domain}.pot"):
        if not message.id:
            continue  # the header
        if isinstance(message.id, tuple | list):
            found[str(message.context)] = Source(message.id[0], message.id[1])
        else:
            found[str(message.context or message.id)] = Source(message.id)
    return found


def _translations(domain: str) -> dict[str, gettext.NullTranslations]:
    """Every language with a catalogue of `domain`, English (the source) included."""
    found: dict[str, gettext.NullTranslations] = {SOURCE_LANGUAGE: gettext.NullTranslations()}
    for po in sorted(LOCALES.glob(f"*/LC_MESSAGES/{domain}.po")):
        found[po.parent.parent.name] = _compiled(read_catalog(po))
    return found


MESSAGES = _sources("messages")
LANGUAGES = _translations("messages")


def language(locale: str | None) -> str:
    """The catalogue for a Discord locale: its own (`fr`, `pt-BR` → `pt_BR`), else its base
    language's, else English. Simplified Chinese (`zh-CN`, `zh`) → "zh"; Traditional Chinese
    (`zh-TW`, `zh-HK`) gets English until a Traditional catalogue exists: Simplified characters
    are not what those readers chose."""
    if not locale:
        return SOURCE_LANGUAGE
    code = locale.replace("-", "_")
    if code.lower().replace("_", "-") in SIMPLIFIED_CHINESE:
        return "zh" if "zh" in LANGUAGES else SOURCE_LANGUAGE
    if code in LANGUAGES:
        return code
    base = code.split("_")[0].lower()
    return base if base in LANGUAGES and base != "zh" else SOURCE_LANGUAGE


class _Params(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return f"%({key})s"  # a missing parameter shows as its placeholder


def t(key: str, locale: str | None = None, **params: Any) -> str:
    """The message `key` in the user's language, with `params` filled in (a message with plural
    forms picks one by `params["count"]`)."""
    source = MESSAGES.get(key)
    if source is None:
        return key
    translations = LANGUAGES[language(locale)]
    if source.plural is None:
        template = translations.pgettext(key, source.singular)
    else:
        template = translations.npgettext(key, source.singular, source.plural,
                                          int(params.get("count", 1)))
    return template % _Params(params)


def plural(key: str, count: int, locale: str | None = None) -> str:
    """`count` with the right form of `key` for the language ("1 image", "5 images")."""
    return t(key, locale, count=count)


def placeholders(template: str) -> set[str]:
    """The `%(name)s` placeholders of a message."""
    return set(_PLACEHOLDER.findall(template))


def catalogue(lang: str) -> dict[str, str]:
    """Every message id → its text in `lang` (the singular form of a plural message), for
    checks and listings; the English source where `lang` has no translation yet."""
    translations = LANGUAGES[lang]
    return {key: translations.pgettext(key, source.singular) if source.plural is None
            else translations.npgettext(key, source.singular, source.plural, 1)
            for key, source in MESSAGES.items()}


EN = catalogue(SOURCE_LANGUAGE)
ZH = catalogue("zh")


def _command_entries() -> dict[str, dict[tuple[str | None, str], str]]:
    """Per language: (context or None, English) → translation, as its catalogue has them (a
    translation may equal the English, e.g. a language's own name)."""
    found: dict[str, dict[tuple[str | None, str], str]] = {}
    for po in sorted(LOCALES.glob("*/LC_MESSAGES/commands.po")):
        found[po.parent.parent.name] = {
            (m.context, str(m.id)): str(m.string) for m in read_catalog(po) if m.id and m.string
        }
    return found


COMMAND_ENTRIES = _command_entries()


def command_text(text: str, lang: str, location: str | None = None) -> str | None:
    """An app-command string in `lang`: the translation for its context (`location`, e.g.
    "choice_name") where one exists, else the general one; None when there is none."""
    entries = COMMAND_ENTRIES.get(lang, {})
    return entries.get((location, text)) or entries.get((None, text))


class Translator(app_commands.Translator):
    """App-command names, descriptions and choices from the `commands` catalogues. Only exact
    catalogue languages apply (zh-CN, not zh-TW: see `language`)."""

    async def translate(
        self,
        string: app_commands.locale_str,
        locale: discord.Locale,
        context: app_commands.TranslationContextTypes,
    ) -> str | None:
        lang = language(locale.value)
        if lang == SOURCE_LANGUAGE:
            return None
        return command_text(string.message, lang, context.location.name)
