"""The Unpublish button on a showcase post's answer: it works after a restart (the turn is in
its custom_id) and reaches the showcase cog through the router."""

from __future__ import annotations

import re
from typing import Any

import discord

from bot.ui.i18n import t
from bot.ui.router import UNPUBLISH, dispatch


class UnpublishButton(discord.ui.DynamicItem[discord.ui.Button[Any]],
                      template=r"showcase:unpublish:(?P<turn>[0-9]+)"):
    """Unpublish one result (its author or a moderator); works after a restart."""

    def __init__(self, turn_id: int, locale: str | None = None) -> None:
        super().__init__(discord.ui.Button(
            style=discord.ButtonStyle.danger, label=t("button.unpublish", locale), emoji="🗑️",
            custom_id=f"showcase:unpublish:{turn_id}"))
        self.turn_id = turn_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Item[Any],
                             match: re.Match[str]) -> UnpublishButton:
        return cls(int(match["turn"]), str(interaction.locale))

    async def callback(self, interaction: discord.Interaction) -> None:
        await dispatch(UNPUBLISH, interaction, self.turn_id)
