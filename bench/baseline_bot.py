"""BASELINE BOT — NOT imagine-bot. A deliberately naive comparison point for the benchmark.

This is a Discord image bot written the way the OpenAI image-generation docs sample reads,
dropped into a discord.py slash command: the handler creates a *synchronous*
``openai.OpenAI()`` client and calls ``client.responses.create(...)`` with the
``image_generation`` tool right inside the async event handler, then posts the decoded image.
The synchronous call blocks the event loop for the whole generation, so the bot handles one
image at a time and cannot even read the gateway meanwhile.

It exists only so that ``bench/run.py`` can report "makespan ratio vs a baseline bot". Do not
use it as an example: it is the anti-pattern DESIGN.md warns about ("A blocking OpenAI/HTTP call
inside an event handler").

Configured like the real bot, by environment variables: DISCORD_TOKEN, OPENAI_API_KEY,
OPENAI_BASE_URL (read by the SDK itself), DISCORD_API_BASE, DISCORD_GATEWAY_URL, OPENAI_MODEL,
DEFAULT_SIZE. Run: ``python -m bench.baseline_bot``.
"""

from __future__ import annotations

import base64
import io
import os

import discord
import yarl
from discord import app_commands
from openai import OpenAI

MODEL = os.environ.get("OPENAI_MODEL", "gpt-5.5")
SIZE = os.environ.get("DEFAULT_SIZE", "auto")


class BaselineBot(discord.Client):
    def __init__(self) -> None:
        super().__init__(intents=discord.Intents.default())
        self.tree = app_commands.CommandTree(self)

    async def setup_hook(self) -> None:
        await self.tree.sync()


bot = BaselineBot()


@bot.tree.command(name="imagine", description="Generate an image")
@app_commands.describe(prompt="What to draw")
async def imagine(interaction: discord.Interaction, prompt: str) -> None:
    await interaction.response.defer(thinking=True)

    # --- the docs sample, verbatim in spirit: a sync client, one blocking call ---
    client = OpenAI()
    response = client.responses.create(
        model=MODEL,
        input=prompt,
        tools=[{"type": "image_generation", "size": SIZE}],
    )
    image_data = [
        output.result
        for output in response.output
        if output.type == "image_generation_call"
    ]
    # ---

    if image_data:
        image_bytes = base64.b64decode(image_data[0])
        await interaction.followup.send(
            file=discord.File(io.BytesIO(image_bytes), filename="image.png")
        )
    else:
        await interaction.followup.send("No image was generated.")


def main() -> None:
    if api_base := os.environ.get("DISCORD_API_BASE"):
        discord.http.Route.BASE = api_base.rstrip("/")
    if gateway := os.environ.get("DISCORD_GATEWAY_URL"):
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway)
    bot.run(os.environ["DISCORD_TOKEN"], log_handler=None)


if __name__ == "__main__":
    main()
