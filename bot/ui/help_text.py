"""The text of `/help` (and of the greeting a server gets): the server's limits, the rules of
the channel it is read in, the showcase."""

from __future__ import annotations

from bot.core.policy import EffectivePolicy
from bot.ui.channel_rules import rule_phrases
from bot.ui.i18n import t
from bot.ui.render import MAX_CONTENT, clip

# In the order /help lists them; a command that is not registered is left out.
HELP_COMMANDS = (
    "imagine", "refine", "history", "describe", "usage", "imagine-prefs", "help", "imagine-settings",
)


def limit_lines(policy: EffectivePolicy, locale: str) -> list[str]:
    """The server's limits as short phrases (empty when nothing is limited)."""
    lines = []
    if policy.user_daily_images():
        lines.append(t("help.limit.images", locale, count=policy.user_daily_images()))
    if policy.daily_spend():
        lines.append(t("help.limit.daily_spend", locale, amount=f"{policy.daily_spend():.2f}"))
    if policy.monthly_spend():
        lines.append(t("help.limit.monthly_spend", locale,
                       amount=f"{policy.monthly_spend():.2f}"))
    if policy.max_size:
        lines.append(t("help.limit.max_size", locale, size=policy.max_size))
    if policy.max_quality != "high":
        lines.append(t("help.limit.max_quality", locale,
                       quality=t(f"label.quality.{policy.max_quality}", locale)))
    if policy.policy.allowed_channels:
        channels = ", ".join(f"<#{c}>" for c in policy.policy.allowed_channels)
        lines.append(t("help.limit.channels", locale, channels=channels))
    return lines


def channel_lines(policy: EffectivePolicy, locale: str) -> list[str]:
    """The rules of the channel /help is used in, and the server's showcase (if any)."""
    lines = []
    phrases = rule_phrases(policy.channel, locale)
    if phrases:
        lines.append(t("help.channel_rules", locale, rules=", ".join(phrases)))
    if policy.policy.showcase_channel:
        lines.append(t("help.showcase", locale, channel=f"<#{policy.policy.showcase_channel}>"))
        if policy.policy.showcase_stars:
            lines.append(t("help.showcase_stars", locale, stars=policy.policy.showcase_stars))
    return lines


def help_page(mentions: dict[str, str], policy: EffectivePolicy, locale: str, *,
              in_server: bool) -> str:
    """/help: the commands (`mentions`: name -> how to mention it, in HELP_COMMANDS order),
    threads and formats, the image model, and in a server its moderation, limits and the rules
    of the channel it is read in."""
    lines = ["**" + t("help.title", locale) + "**", t("help.commands", locale)]
    lines += ["• " + t(f"help.cmd.{name}", locale, cmd=mention) for name, mention in mentions.items()]
    lines += ["", t("help.threads", locale), "", t("help.formats", locale)]
    lines.append(t("help.model", locale, model=policy.image_model))
    if in_server:
        lines += ["", t("help.moderation", locale)]
        limits = limit_lines(policy, locale)
        lines += ["", t("help.limits", locale)]
        lines += [f"• {line}" for line in limits] or [t("help.no_limits", locale)]
        here = channel_lines(policy, locale)
        lines += ["", *here] if here else []
    return clip("\n".join(lines), MAX_CONTENT)
