"""Private answers to interactions, whatever state the interaction is in."""

from __future__ import annotations

import logging

import discord

from bot.core.errors import UserFacingError
from bot.ui.render import error_text

log = logging.getLogger(__name__)

PLACEHOLDER = "public_placeholder"  # `Interaction.extras` key: acknowledged with a public "thinking…"


async def _drop_placeholder(interaction: discord.Interaction) -> None:
    """A public "thinking…" still loading is deleted before a private answer: a followup would
    replace it and take its public visibility (Discord docs, Followup Messages)."""
    if not interaction.extras.pop(PLACEHOLDER, False):
        return
    try:
        if (await interaction.original_response()).flags.loading:
            await interaction.delete_original_response()
    except discord.HTTPException as exc:
        log.info("Could not remove the placeholder of interaction %s: %s", interaction.id, exc)


async def reply_privately(interaction: discord.Interaction, text: str) -> None:
    """An ephemeral message: the response if none was sent yet, else a followup (after a public
    "thinking…" placeholder, that placeholder goes first)."""
    try:
        if interaction.response.is_done():
            await _drop_placeholder(interaction)
            await interaction.followup.send(text, ephemeral=True)
        else:
            await interaction.response.send_message(text, ephemeral=True)
    except discord.HTTPException as exc:
        log.info("Could not answer interaction %s privately: %s", interaction.id, exc)


async def command_mentions(client: discord.Client) -> dict[str, str]:
    """Clickable mentions of the commands error messages point to (empty if unknown)."""
    mention = getattr(client, "command_mention", None)
    if mention is None:
        return {}
    return {name: await mention(name) for name in ("imagine", "refine")}


async def send_error(interaction: discord.Interaction, error: UserFacingError) -> None:
    """Tell the user what went wrong, in their language, privately."""
    commands = await command_mentions(interaction.client)
    await reply_privately(interaction, error_text(error, str(interaction.locale), commands))
