"""Private answers to interactions, whatever state the interaction is in."""

from __future__ import annotations

import logging

import discord

from bot.core.errors import UserFacingError
from bot.ui.render import error_text

log = logging.getLogger(__name__)


async def reply_privately(interaction: discord.Interaction, text: str) -> None:
    """An ephemeral message: the response if none was sent yet, else a followup."""
    try:
        if interaction.response.is_done():
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
