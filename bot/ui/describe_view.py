"""`/describe`'s answer: three numbered prompt ideas, each with a button that starts a
conversation from it (the button reads its prompt back from the answer's text: the text is the
state, so it works after a restart)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import discord

from bot.core.errors import ErrorKind, UserFacingError
from bot.ui.i18n import t
from bot.ui.render import clip
from bot.ui.replies import send_error
from bot.ui.router import START_PROMPT, dispatch

_LINE = re.compile(r"^(\d)\. (.+)$", re.MULTILINE)


def suggestions_in(content: str) -> dict[int, str]:
    """The numbered suggestions of a /describe answer, read back from its text."""
    return {int(m.group(1)): m.group(2) for m in _LINE.finditer(content)}


class UseSuggestion(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"describe:use:(?P<n>[1-9])",
):
    """Starts /imagine with suggestion `n` of the message it is on (the text is the state)."""

    def __init__(self, n: int, locale: str | None = None) -> None:
        super().__init__(discord.ui.Button(
            style=discord.ButtonStyle.primary, emoji="🎨",
            label=t("describe.use", locale, n=n), custom_id=f"describe:use:{n}",
        ))
        self.n = n

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> UseSuggestion:
        return cls(int(match["n"]), str(interaction.locale))

    async def callback(self, interaction: discord.Interaction) -> None:
        message = interaction.message
        prompt = suggestions_in(message.content if message else "").get(self.n)
        if prompt is None:
            await send_error(interaction, UserFacingError(ErrorKind.unknown_conversation))
            return
        await dispatch(START_PROMPT, interaction, prompt)


def describe_answer(suggestions: Sequence[str], locale: str) -> tuple[str, discord.ui.View]:
    """The answer's text (numbered ideas, a hint) and its buttons, one per idea."""
    lines = [f"**{t('describe.title', locale)}**"]
    lines += [f"{n}. {clip(' '.join(s.split()), 500)}" for n, s in enumerate(suggestions, 1)]
    lines.append("-# " + t("describe.hint", locale))
    view = discord.ui.View(timeout=None)
    for n in range(1, len(suggestions) + 1):
        view.add_item(UseSuggestion(n, locale))
    return "\n".join(lines), view
