"""What a member reads about themselves: their usage and what is left (`/usage`), their images
in progress, and their own defaults (`/imagine-prefs`)."""

from __future__ import annotations

from bot.core.accounts import Allowance, UsageReport
from bot.core.models import Turn, UserPrefs
from bot.ui.i18n import plural, t
from bot.ui.render import clip


def totals_lines(key: str, usage: UsageReport, locale: str) -> list[str]:
    """Images and spend today and this month (`key`: whose, `usage.you` or `usage.server`),
    and whether some of it is estimated."""
    lines = [t(key, locale,
               images_today=plural("unit.image", usage.images_today, locale),
               cost_today=f"{usage.cost_today:.2f}",
               images_month=plural("unit.image", usage.images_month, locale),
               cost_month=f"{usage.cost_month:.2f}")]
    if usage.estimated:
        lines.append(t("usage.estimated", locale))
    return lines


def allowance_lines(left: Allowance, locale: str) -> list[str]:
    """"Limits: 5 images per day, 3 left, resets <t:…:R>" and the server's budgets."""
    if left.exempt:
        return [t("usage.exempt", locale)]
    lines = []
    if left.images_per_day:
        lines.append(t("usage.left_images", locale,
                       images=plural("unit.image", left.images_per_day, locale),
                       left=left.images_left, reset=left.day_resets))
    if left.daily_spend:
        lines.append(t("usage.left_daily_spend", locale, limit=f"{left.daily_spend:.2f}",
                       left=f"{left.daily_spend_left:.2f}", reset=left.day_resets))
    if left.monthly_spend:
        lines.append(t("usage.left_monthly_spend", locale, limit=f"{left.monthly_spend:.2f}",
                       left=f"{left.monthly_spend_left:.2f}", reset=left.month_resets))
    return lines


def progress_lines(turns: list[tuple[Turn, int | None]], locale: str) -> list[str]:
    """The member's images in progress, with their place in the queue."""
    if not turns:
        return []
    lines = [t("usage.in_progress", locale)]
    for turn, position in turns:
        prompt = clip(" ".join(turn.prompt.split()), 60).replace("@", "@\u200b")
        if position is None and turn.status.value == "running":
            state = t("usage.running", locale)
        elif position is None:
            state = t("progress.queued_now", locale).removeprefix("⏳ ")
        else:
            state = t("usage.position", locale, position=position)
        lines.append(f"• <#{turn.conversation_id}> “{prompt}” — {state}")
    return lines


def prefs_text(prefs: UserPrefs, locale: str) -> str:
    unset = t("prefs.unset", locale)
    return t(
        "prefs.current", locale,
        size=prefs.size or unset,
        quality=t(f"label.quality.{prefs.quality}", locale) if prefs.quality else unset,
        previews=unset if prefs.partial_images is None else prefs.partial_images,
        ping=t("prefs.on" if prefs.ping else "prefs.off", locale),
    )
