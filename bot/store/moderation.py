"""The moderation log's channel and members' reports of results (migration 0012)."""

from __future__ import annotations

import json
import time

from bot.core.models import Report, Reporter
from bot.store.protocol import Row, SqlDatabase


def _report(row: Row) -> Report:
    reporters = tuple(Reporter(int(r["user_id"]), str(r["reason"]), float(r["at"]))
                      for r in json.loads(row["reporters"]))
    return Report(id=int(row["id"]), guild_id=int(row["guild_id"]), turn_id=int(row["turn_id"]),
                  status=row["status"], reporters=reporters,
                  channel_id=row["channel_id"], message_id=row["message_id"])


class ModerationRepository:
    """A server's log channel, and reports (an open report per result at most)."""

    def __init__(self, db: SqlDatabase) -> None:
        self._db = db

    async def log_channel(self, guild_id: int) -> int | None:
        row = await self._db.fetchone(
            "SELECT log_channel_id FROM moderation_settings WHERE guild_id = ?", (guild_id,))
        return int(row["log_channel_id"]) if row and row["log_channel_id"] is not None else None

    async def set_log_channel(self, guild_id: int, channel_id: int | None) -> None:
        await self._db.execute(
            "INSERT INTO moderation_settings (guild_id, log_channel_id, updated_at) "
            "VALUES (?, ?, ?) ON CONFLICT (guild_id) DO UPDATE SET "
            "log_channel_id = excluded.log_channel_id, updated_at = excluded.updated_at",
            (guild_id, channel_id, time.time()),
        )

    async def switch_off(self, guild_id: int, channel_id: int) -> bool:
        """Stop logging to `channel_id`; True only for the caller that switched it off."""
        async with self._db.transaction():
            if await self.log_channel(guild_id) != channel_id:
                return False
            await self._db.execute(
                "UPDATE moderation_settings SET log_channel_id = NULL, updated_at = ? "
                "WHERE guild_id = ?", (time.time(), guild_id))
        return True

    async def report(self, guild_id: int, turn_id: int, reporter: Reporter) -> tuple[Report, bool]:
        """Add a reporter to the result's open report (made if none); (the report, whether this
        reporter is new to it: a second report by the same member changes nothing)."""
        async with self._db.transaction():
            row = await self._db.fetchone(
                "SELECT * FROM reports WHERE turn_id = ? AND status = 'open'", (turn_id,))
            entry = {"user_id": reporter.user_id, "reason": reporter.reason, "at": reporter.at}
            if row is None:
                report_id = await self._db.insert(
                    "INSERT INTO reports (guild_id, turn_id, reporters, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (guild_id, turn_id, json.dumps([entry]), reporter.at, reporter.at))
                return await self._get(report_id), True
            known = json.loads(row["reporters"])
            if any(int(r["user_id"]) == reporter.user_id for r in known):
                return _report(row), False
            await self._db.execute(
                "UPDATE reports SET reporters = ?, updated_at = ? WHERE id = ?",
                (json.dumps([*known, entry]), reporter.at, row["id"]))
            return await self._get(int(row["id"])), True

    async def _get(self, report_id: int) -> Report:
        row = await self._db.fetchone("SELECT * FROM reports WHERE id = ?", (report_id,))
        assert row is not None
        return _report(row)

    async def get(self, report_id: int) -> Report | None:
        row = await self._db.fetchone("SELECT * FROM reports WHERE id = ?", (report_id,))
        return _report(row) if row else None

    async def set_message(self, report_id: int, channel_id: int, message_id: int) -> None:
        await self._db.execute(
            "UPDATE reports SET channel_id = ?, message_id = ? WHERE id = ?",
            (channel_id, message_id, report_id))

    async def close(self, report_id: int, status: str) -> bool:
        """Close an open report (`dismissed`, `deleted`); False if it was closed already."""
        async with self._db.transaction():
            report = await self.get(report_id)
            if report is None or report.status != "open":
                return False
            await self._db.execute(
                "UPDATE reports SET status = ?, updated_at = ? WHERE id = ?",
                (status, time.time(), report_id))
        return True
