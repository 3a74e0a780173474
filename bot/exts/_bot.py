"""What a cog may use of the bot: `BotServices`, a protocol with exactly the parts cogs call.

Cogs take this protocol, never the bot class (`bot/app.py` loads the cogs: a cog importing it
would close a cycle). `tests/unit/test_code_shape.py` checks that the bot has every member
named here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import discord
from discord import app_commands
from discord.ext import commands

from bot.config import Settings
from bot.core.accounts import Accounts
from bot.core.conversations import ConversationService
from bot.core.gate import Gate
from bot.core.runner import Runner
from bot.core.wiring import Core
from bot.store.protocol import Store
from bot.ui.attachments import AttachmentReader
from bot.ui.modlog import ModLog
from bot.ui.presenter import DiscordPresenter
from bot.ui.router import Router


class BotServices(Protocol):
    """The bot as its cogs see it: the core's parts, the Discord side's helpers, the router
    components reach cogs through, and the few client calls cogs make."""

    settings: Settings
    core: Core  # (its outcomes' listeners: cogs that follow finished turns)
    service: ConversationService
    gate: Gate
    runner: Runner
    accounts: Accounts
    store: Store
    presenter: DiscordPresenter
    attachments: AttachmentReader
    modlog: ModLog
    router: Router

    async def command_mention(self, name: str) -> str: ...

    # the Discord client
    @property
    def user(self) -> discord.ClientUser | None: ...
    @property
    def intents(self) -> discord.Intents: ...
    @property
    def tree(self) -> app_commands.CommandTree[Any]: ...
    def get_partial_messageable(self, id: int, *, guild_id: int | None = None,
                                type: discord.ChannelType | None = None
                                ) -> discord.PartialMessageable: ...
    def get_guild(self, id: int, /) -> discord.Guild | None: ...
    def get_user(self, id: int, /) -> discord.User | None: ...
    def get_channel(self, id: int, /) -> Any: ...
    async def fetch_channel(self, channel_id: int, /) -> Any: ...
    async def add_cog(self, cog: commands.Cog, /, *, override: bool = False,
                      guild: discord.abc.Snowflake | None = ...,
                      guilds: Sequence[discord.abc.Snowflake] = ...) -> None: ...
    def add_dynamic_items(self, *items: type[discord.ui.DynamicItem[Any]]) -> None: ...
