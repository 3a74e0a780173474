"""The showcase: results published to a server's forum or media channel."""

from __future__ import annotations

import time

from bot.core.models import (
    ShowcasePost,
)
from bot.store.protocol import Row, SqlDatabase


class ShowcaseRepository:
    """Results published to servers' showcases."""

    _COLUMNS = "turn_id, guild_id, channel_id, post_id, author_id, published_by"

    def __init__(self, db: SqlDatabase) -> None:
        self._db = db

    @staticmethod
    def _post(row: Row) -> ShowcasePost:
        return ShowcasePost(*(row[c] for c in ShowcaseRepository._COLUMNS.split(", ")))

    async def get(self, turn_id: int) -> ShowcasePost | None:
        row = await self._db.fetchone(
            f"SELECT {self._COLUMNS} FROM showcase_posts WHERE turn_id = ?", (turn_id,))
        return self._post(row) if row else None

    async def by_post(self, post_id: int) -> ShowcasePost | None:
        row = await self._db.fetchone(
            f"SELECT {self._COLUMNS} FROM showcase_posts WHERE post_id = ?", (post_id,))
        return self._post(row) if row else None

    async def in_conversation(self, conversation_id: int) -> list[ShowcasePost]:
        rows = await self._db.fetchall(
            f"SELECT {', '.join('s.' + c for c in self._COLUMNS.split(', '))} "
            "FROM showcase_posts s JOIN turns t ON t.id = s.turn_id WHERE t.conversation_id = ?",
            (conversation_id,))
        return [self._post(r) for r in rows]

    async def add(self, post: ShowcasePost) -> None:
        await self._db.execute(
            f"INSERT INTO showcase_posts ({self._COLUMNS}, created_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (turn_id) DO NOTHING",  # a post already recorded (another process) wins
            (post.turn_id, post.guild_id, post.channel_id, post.post_id, post.author_id,
             post.published_by, time.time()))

    async def remove(self, turn_id: int) -> None:
        await self._db.execute("DELETE FROM showcase_posts WHERE turn_id = ?", (turn_id,))
