"""Conversations: a thread (or DM) with its owner, head turn, sticky options and origin."""

from __future__ import annotations

import time

from bot.core.models import (
    Conversation,
)
from bot.core.options import ImageOptions
from bot.store.protocol import SqlDatabase
from bot.store.rows import conversation_of, dumps, move_head


class ConversationRepository:
    def __init__(self, db: SqlDatabase) -> None:
        self._db = db

    async def create(
        self,
        conversation_id: int,
        *,
        guild_id: int | None,
        parent_channel_id: int | None,
        owner_id: int,
        options: ImageOptions,
    ) -> None:
        await self._db.execute(
            "INSERT INTO conversations "
            "(id, guild_id, parent_channel_id, owner_id, options, created_at, bot_opened) "
            "VALUES (?, ?, ?, ?, ?, ?, 1) ON CONFLICT (id) DO NOTHING",
            (conversation_id, guild_id, parent_channel_id, owner_id,
             dumps(options.sticky().chosen()), time.time()),
        )

    async def set_remixed_from(self, conversation_id: int, channel_id: int, message_id: int) -> None:
        """Record the message a remix conversation started from."""
        await self._db.execute(
            "UPDATE conversations SET remixed_from_channel_id = ?, remixed_from_message_id = ? "
            "WHERE id = ?",
            (channel_id, message_id, conversation_id),
        )

    async def set_bot_opened(self, conversation_id: int, bot_opened: bool) -> None:
        """Record whether a conversation's thread is one the bot opened (checked once)."""
        await self._db.execute(
            "UPDATE conversations SET bot_opened = ? WHERE id = ?",
            (int(bot_opened), conversation_id),
        )

    async def get(self, conversation_id: int) -> Conversation | None:
        row = await self._db.fetchone("SELECT * FROM conversations WHERE id = ?", (conversation_id,))
        return conversation_of(row) if row else None

    async def set_head(self, conversation_id: int, turn_id: int | None) -> None:
        await self._db.execute(
            "UPDATE conversations SET head_turn_id = ? WHERE id = ?", (turn_id, conversation_id)
        )

    async def move_head(self, conversation_id: int, turn_id: int, *, from_turn_id: int | None) -> None:
        """Make `turn_id` the head unless someone moved the head away from `from_turn_id` since."""
        await self._db.execute(*move_head(conversation_id, turn_id, from_turn_id))

    async def set_options(self, conversation_id: int, options: ImageOptions) -> None:
        await self._db.execute(
            "UPDATE conversations SET options = ? WHERE id = ?",
            (dumps(options.sticky().chosen()), conversation_id),
        )
