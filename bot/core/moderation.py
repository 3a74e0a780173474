"""Moderation of a community server: its log channel, members' reports of results, and the
moderators' quick actions (delete one image, delete a member's images in a conversation, block a
member for a while). No Discord here: the log's adapter is `bot/ui/modlog.py`, the events come in
through `bot/exts/moderation.py`."""

from __future__ import annotations

import logging
import time
from typing import Any

from bot.core.conversations import ConversationService
from bot.core.errors import ErrorKind, UserFacingError
from bot.core.models import Report, Reporter, Turn, TurnStatus
from bot.core.policy import Actor

log = logging.getLogger(__name__)

# How long a quick action blocks a member for (None: until a manager unblocks them).
BLOCK_DURATIONS: dict[str, int | None] = {"1h": 3600, "1d": 86400, "7d": 7 * 86400,
                                          "permanent": None}
MAX_REASON = 300  # characters of a report's reason (the form's limit)
FLEET_SECONDS = 2.0  # how long a process of a fleet keeps a server's log channel in memory


class Moderation:
    """What moderators do, over the conversation service (turns, settings) and the store."""

    def __init__(self, service: ConversationService) -> None:
        self.service = service
        self.store = service.store.moderation
        self._channels: dict[int, tuple[float, int | None]] = {}  # (read at, log channel)

    # ------------------------------------------------------------------ the log channel
    async def log_channel(self, guild_id: int) -> int | None:
        """A server's log channel, kept in memory as its settings are (every finished turn asks):
        for good by a process alone, a couple of seconds by a process of a fleet."""
        kept = self._channels.get(guild_id)
        now = time.monotonic()
        if kept is None or (self.service.runner.scheduler.shared
                            and now - kept[0] > FLEET_SECONDS):
            kept = (now, await self.store.log_channel(guild_id))
            self._channels[guild_id] = kept
        return kept[1]

    async def set_log_channel(self, guild_id: int, channel_id: int | None) -> None:
        await self.store.set_log_channel(guild_id, channel_id)
        self._channels.pop(guild_id, None)

    async def switch_off(self, guild_id: int, channel_id: int) -> bool:
        """The bot cannot post in the log channel any more: stop logging there. True once."""
        switched = await self.store.switch_off(guild_id, channel_id)
        self._channels.pop(guild_id, None)
        return switched

    # ------------------------------------------------------------------ reports
    async def report(self, turn: Turn, reporter_id: int, reason: str) -> tuple[Report, bool]:
        """A member reports a result; repeated reports of one result fold into one."""
        if turn.guild_id is None or turn.status is not TurnStatus.done or turn.deleted:
            raise UserFacingError(ErrorKind.unknown_conversation)
        reporter = Reporter(reporter_id, reason.strip()[:MAX_REASON], time.time())
        return await self.store.report(turn.guild_id, turn.id, reporter)

    async def report_by_id(self, report_id: int) -> Report | None:
        return await self.store.get(report_id)

    async def posted(self, report: Report, channel_id: int, message_id: int) -> None:
        await self.store.set_message(report.id, channel_id, message_id)

    async def close_report(self, report_id: int, status: str) -> bool:
        return await self.store.close(report_id, status)

    # ------------------------------------------------------------------ quick actions
    async def delete(self, turn: Turn, moderator: Actor) -> None:
        """Delete one image (its messages are the Discord layer's to remove)."""
        await self.service.delete(turn, moderator)

    async def member_images(self, conversation_id: int, author_id: int) -> list[Turn]:
        """The member's images in a conversation that are still shown."""
        return [t for t in await self.service.turns_in(conversation_id)
                if t.author_id == author_id and t.status is TurnStatus.done and not t.deleted]

    async def block(self, guild_id: int, user_id: int, duration: str,
                    moderator: Actor) -> tuple[float | None, int]:
        """Block a member from the bot in this server for `duration` (a `BLOCK_DURATIONS` key),
        then cancel their queued and running turns here (nothing more is billed for them).
        Returns (until when, None for good; how many turns were cancelled)."""
        seconds = BLOCK_DURATIONS[duration]
        settings = await self.service.gate.policies.guild_settings(guild_id)
        now = time.time()
        timed: dict[str, Any] = {k: v for k, v in (settings.get("blocked_until") or {}).items()
                                 if v > now and k != str(user_id)}
        blocked = [u for u in settings.get("blocked_users", []) if u != user_id]
        until = None if seconds is None else now + seconds
        if until is None:
            blocked.append(user_id)
        else:
            timed[str(user_id)] = until
        await self.service.gate.policies.update_policy(guild_id, blocked_users=blocked, blocked_until=timed)
        return until, await self.cancel_turns_of(guild_id, user_id, moderator)

    async def cancel_turns_of(self, guild_id: int, user_id: int, moderator: Actor) -> int:
        cancelled = 0
        for turn, _ in await self.service.runner.unfinished_of(user_id):
            if turn.guild_id != guild_id:
                continue
            try:
                cancelled += bool(await self.service.cancel(turn, moderator))
            except Exception:
                log.warning("Could not cancel turn %s of a blocked member", turn.id, exc_info=True)
        return cancelled
