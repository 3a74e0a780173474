"""A channel's own rules (quality, size, previews, generation) as short phrases, for
`/imagine-settings`, `/help` and `/usage`."""

from __future__ import annotations

from typing import Any

from bot.core.policy import ChannelRules
from bot.ui.i18n import EN, t


def rule_phrases(rules: ChannelRules, locale: str) -> list[str]:
    """"quality up to low", "previews off"… for each rule set (empty when none is)."""
    phrases = []
    if rules.max_quality:
        label = f"label.quality.{rules.max_quality}"
        value = t(label, locale) if label in EN else rules.max_quality
        phrases.append(t("rule.max_quality", locale, value=value))
    if rules.max_size:
        phrases.append(t("rule.max_size", locale, value=rules.max_size))
    if rules.previews is not None:
        phrases.append(t(f"rule.previews.{'on' if rules.previews else 'off'}", locale))
    if rules.imagine is not None:
        phrases.append(t(f"rule.imagine.{'on' if rules.imagine else 'off'}", locale))
    return phrases


def rules_text(rules: ChannelRules, locale: str) -> str:
    return ", ".join(rule_phrases(rules, locale)) or t("rule.none", locale)


def stored_rules_text(stored: dict[str, Any], locale: str) -> str:
    """Every channel's rules as stored (`{"<channel id>": {rule: value}}`), one per line."""
    return "".join(
        f"\n  <#{channel}>: {rules_text(ChannelRules.from_dict(rules), locale)}"
        for channel, rules in sorted(stored.items())
    )
