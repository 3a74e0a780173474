"""The form where a server manager pastes the server's own OpenAI key (never shown again)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import discord

from bot.ui.i18n import t

KeySubmit = Callable[[discord.Interaction, str], Awaitable[None]]


class KeyModal(discord.ui.Modal):
    """One short text field; what is typed goes straight to the check, never into a message."""

    def __init__(self, on_submit: KeySubmit, locale: str) -> None:
        super().__init__(title=t("key.modal_title", locale)[:45], timeout=600)
        self._on_submit = on_submit
        self.key: discord.ui.TextInput[KeyModal] = discord.ui.TextInput(
            label=t("key.modal_label", locale)[:45], style=discord.TextStyle.short,
            min_length=20, max_length=300, required=True, custom_id="api_key",
        )
        self.add_item(self.key)

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await self._on_submit(interaction, self.key.value.strip())
