"""The controls under a `/history` sheet: Previous/Next, "Continue from #n" and Export.

All are `ui.DynamicItem`s whose `custom_id` carries the conversation and the page, so a sheet
posted before a restart keeps working. Clicks go through the router to the cog that serves
them (the `History` cog).
"""

from __future__ import annotations

import re
from typing import Any

import discord

from bot.core.history import TreeNode
from bot.ui.i18n import t
from bot.ui.render import clip
from bot.ui.router import HISTORY_CONTINUE, HISTORY_EXPORT, HISTORY_PAGE, dispatch

MAX_OPTIONS = 25  # Discord's limit on a select menu's options


class HistoryPageButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"history:page:(?P<conv>[0-9]+):(?P<page>[0-9]+):(?P<dir>[pn])",
):
    """Shows another page of the sheet (the page it leads to is in its custom_id)."""

    def __init__(self, conversation_id: int, page: int, direction: str, *, locale: str | None = None,
                 disabled: bool = False) -> None:
        super().__init__(discord.ui.Button(
            style=discord.ButtonStyle.secondary,
            label=t("history.previous" if direction == "p" else "history.next", locale),
            emoji="◀️" if direction == "p" else "▶️",
            custom_id=f"history:page:{conversation_id}:{page}:{direction}",
            disabled=disabled,
        ))
        self.conversation_id = conversation_id
        self.page = page

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> HistoryPageButton:
        return cls(int(match["conv"]), int(match["page"]), match["dir"],
                   locale=str(interaction.locale))

    async def callback(self, interaction: discord.Interaction) -> None:
        await dispatch(HISTORY_PAGE, interaction, self.conversation_id, self.page)


class HistoryContinueSelect(
    discord.ui.DynamicItem[discord.ui.Select[Any]],
    template=r"history:continue:(?P<conv>[0-9]+):(?P<page>[0-9]+)",
):
    """"Continue from #n": makes the chosen turn the parent of the thread's next reply."""

    def __init__(self, conversation_id: int, page: int, nodes: list[TreeNode] | None = None,
                 *, locale: str | None = None) -> None:
        choices = [
            discord.SelectOption(
                label=t("history.continue_option", locale, number=node.number),
                value=str(node.turn.id),
                description=clip(" ".join(node.turn.prompt.split()), 100),
            )
            for node in (nodes or [])[:MAX_OPTIONS]
        ]
        super().__init__(discord.ui.Select(
            custom_id=f"history:continue:{conversation_id}:{page}",
            placeholder=t("history.continue_placeholder", locale),
            options=choices or [discord.SelectOption(label="-", value="0")],
            disabled=not choices,
        ))
        self.conversation_id = conversation_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> HistoryContinueSelect:
        return cls(int(match["conv"]), int(match["page"]), locale=str(interaction.locale))

    async def callback(self, interaction: discord.Interaction) -> None:
        values = (interaction.data or {}).get("values") or []
        if values:
            await dispatch(HISTORY_CONTINUE, interaction, self.conversation_id, int(values[0]))


class HistoryExportButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"history:export:(?P<conv>[0-9]+)",
):
    """Exports the whole conversation as zip files (its owner and moderators only)."""

    def __init__(self, conversation_id: int, *, locale: str | None = None) -> None:
        super().__init__(discord.ui.Button(
            style=discord.ButtonStyle.secondary,
            label=t("history.export", locale),
            emoji="📦",
            custom_id=f"history:export:{conversation_id}",
        ))
        self.conversation_id = conversation_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> HistoryExportButton:
        return cls(int(match["conv"]), locale=str(interaction.locale))

    async def callback(self, interaction: discord.Interaction) -> None:
        await dispatch(HISTORY_EXPORT, interaction, self.conversation_id)


HISTORY_ITEMS = (HistoryPageButton, HistoryContinueSelect, HistoryExportButton)


def history_view(
    conversation_id: int, page: int, pages: int, continuable: list[TreeNode], locale: str | None
) -> discord.ui.View:
    """The select menu on one row, the pager and Export below it."""
    view = discord.ui.View(timeout=None)
    select = HistoryContinueSelect(conversation_id, page, continuable, locale=locale)
    select.item.row = 0
    view.add_item(select)
    for item in (
        HistoryPageButton(conversation_id, max(page - 1, 0), "p", locale=locale, disabled=page <= 0),
        HistoryPageButton(conversation_id, min(page + 1, pages - 1), "n", locale=locale,
                          disabled=page >= pages - 1),
        HistoryExportButton(conversation_id, locale=locale),
    ):
        item.item.row = 1
        view.add_item(item)
    return view
