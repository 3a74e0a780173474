"""How a server's stored settings read in `/imagine-settings` answers and in the moderation
log's entries about a change."""

from __future__ import annotations

import time
from typing import Any

from bot.ui.channel_rules import stored_rules_text
from bot.ui.i18n import EN, t

# Settings whose stored values are shown with a label: the catalogue prefix for each.
_VALUE_LABELS = {"refine_mode": "label.refine", "moderation": "label.moderation_setting",
                 "locale": "label.language"}


_MENTIONS = {"allowed_channels": "<#{}>", "allowed_roles": "<@&{}>", "exempt_roles": "<@&{}>",
             "blocked_users": "<@{}>"}
MAX_LISTED = 12  # per list: four lists of mentions must fit one 2,000-character message


def _mention_list(ids: list[int], template: str, locale: str) -> str:
    """Mentions of the first MAX_LISTED ids, then how many more there are."""
    shown = ", ".join(template.format(v) for v in ids[:MAX_LISTED])
    if len(ids) > MAX_LISTED:
        shown += " " + t("settings.more", locale, n=len(ids) - MAX_LISTED)
    return shown


def format_settings(data: dict[str, Any], locale: str) -> str:
    if not data:
        return t("settings.none", locale)
    lines = []
    for key, value in sorted(data.items()):
        if key in _MENTIONS:
            value = _mention_list(value, _MENTIONS[key], locale)
        elif key == "channel_rules" and isinstance(value, dict):
            value = stored_rules_text(value, locale)
        elif key == "showcase_channel":
            value = f"<#{value}>"
        elif key == "blocked_until" and isinstance(value, dict):
            value = ", ".join(f"<@{user}> → <t:{int(until)}:f>" for user, until in value.items()
                              if until > time.time()) or "—"
        elif key in ("default_quality", "max_quality") and f"label.quality.{value}" in EN:
            value = t(f"label.quality.{value}", locale)
        elif key in _VALUE_LABELS and f"{_VALUE_LABELS[key]}.{value}" in EN:
            value = t(f"{_VALUE_LABELS[key]}.{value}", locale)
        elif isinstance(value, bool):
            value = t("label.yes" if value else "label.no", locale)
        name = t(f"setting.{key}", locale) if f"setting.{key}" in EN else key
        lines.append(f"• {name}: {value}")
    return "\n".join(lines)


def changes_text(data: dict[str, Any], changes: dict[str, Any], locale: str) -> str:
    """The changed settings as they are now ("—" for one that was cleared)."""
    shown = format_settings({k: data[k] for k in changes if k in data}, locale)
    cleared = [f"• {t(f'setting.{k}', locale) if f'setting.{k}' in EN else k}: —"
               for k in changes if k not in data]
    return "\n".join([shown, *cleared] if any(k in data for k in changes) else cleared)
