"""The Details button's answer: a turn's prompt, settings, status, ids, usage and cost."""

from __future__ import annotations

import discord

from bot.core.models import Turn
from bot.ui.i18n import t
from bot.ui.render import options_summary


def details_embed(turn: Turn, locale: str, parent: Turn | None, remixed: str | None) -> discord.Embed:
    """Details of one turn (its `parent`, and the link to the image a remix started from)."""
    none = t("details.none", locale)
    embed = discord.Embed(title=t("details.title", locale, turn=turn.number or turn.id))
    embed.add_field(name=t("details.prompt", locale), value=turn.prompt[:1024], inline=False)
    if turn.revised_prompt:
        embed.add_field(name=t("details.revised", locale), value=turn.revised_prompt[:1024],
                        inline=False)
    actual = next((img.size for img in turn.images if img.size), None)
    embed.add_field(name=t("details.settings", locale),
                    value=options_summary(turn.options, locale, actual))
    status = t(f"status.{turn.status.value}", locale)
    if turn.deleted:
        status += " " + t("details.deleted", locale)
    if turn.rerooted:
        status += f" · {t('result.rerooted', locale)}"
    embed.add_field(name=t("details.status", locale), value=status)
    if turn.error_kind:
        embed.add_field(name=t("details.why", locale),
                        value=t(f"errorkind.{turn.error_kind}", locale))
    embed.add_field(name=t("details.parent", locale),
                    value=f"#{parent.number}" if parent else none)
    if remixed:
        embed.add_field(name=t("details.remixed", locale), value=remixed, inline=False)
    ids = [turn.response_id or none, *(img.call_id for img in turn.images)]
    embed.add_field(name=t("details.ids", locale), value="\n".join(ids)[:1024], inline=False)
    u = turn.usage
    embed.add_field(
        name=t("details.usage", locale),
        value=f"{u.text_input + u.tool_text_input}/{u.text_output}, "
              f"{u.image_input}/{u.image_output}",
    )
    cost = f"${turn.cost_usd:.4f}"
    if u.estimated:
        cost += " " + t("details.cost_estimated", locale)
    embed.add_field(name=t("details.cost", locale), value=cost)
    return embed
