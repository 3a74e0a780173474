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


async def send_error(interaction: discord.Interaction, error: UserFacingError) -> None:
    """Tell the user what went wrong, in their language, privately."""
    await reply_privately(interaction, error_text(error, str(interaction.locale)))
