"""The modal Remix opens: what should change about the image (pre-filled with the source turn's
prompt when the image is a bot result)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import discord

from bot.ui.buttons import FORM_TIMEOUT, form_id
from bot.ui.i18n import t

MAX_PROMPT = 4000  # Discord's limit on a text input's length


@dataclass(frozen=True, slots=True)
class RemixSource:
    """The image being remixed: a bot result (its turn) or someone's upload (its attachment)."""

    channel_id: int
    message_id: int
    jump_url: str
    turn_id: int | None = None
    attachment: discord.Attachment | None = None
    ours: bool = False  # a message of the bot's (a result is found when the form is submitted)


class RemixForms(Protocol):
    """Who receives a submitted Remix form (the cog that opened it)."""

    async def on_remix_submit(self, interaction: discord.Interaction, source: RemixSource,
                              instruction: str) -> None: ...


class RemixModal(discord.ui.Modal):
    def __init__(self, cog: RemixForms, source: RemixSource, prefill: str, locale: str | None) -> None:
        super().__init__(title=t("remix.title", locale), timeout=FORM_TIMEOUT,
                         custom_id=form_id(f"remix:modal:{source.message_id}"))
        self.cog = cog
        self.source = source
        self.instruction: discord.ui.TextInput[RemixModal] = discord.ui.TextInput(
            label=t("modal.refine.label", locale),
            placeholder=t("remix.placeholder", locale),
            default=prefill[:MAX_PROMPT] or None,
            style=discord.TextStyle.paragraph,
            max_length=MAX_PROMPT,
            custom_id="instruction",
        )
        self.add_item(self.instruction)

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await self.cog.on_remix_submit(interaction, self.source, self.instruction.value)
