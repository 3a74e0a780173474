"""The image request first: a turn is asked of the API as soon as it is queued, and the message
that will show it (its progress message, in a thread that may still be being created) is posted
beside it. Until that message exists, progress is held back (only what is still worth showing);
the result waits for it, so a result is shown exactly once, in the message it belongs to.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from bot.core.models import Progress, Stage, Turn
from bot.core.tasks import BackgroundTasks


class Placements:
    """The progress messages being posted, one task per turn, in turn order per conversation."""

    def __init__(self, tasks: BackgroundTasks) -> None:
        self._tasks = tasks
        self._placing: dict[int, asyncio.Task[Turn | None]] = {}  # turn id -> its posting
        self._latest: dict[int, asyncio.Task[Turn | None]] = {}  # conversation -> last posting
        self._held: dict[int, list[Progress]] = {}

    def start(self, turn: Turn, place: Callable[[], Awaitable[Turn | None]]) -> None:
        """Post `turn`'s message with `place` (returns the turn as recorded with its message id,
        or None if it could not be posted), after the conversation's earlier turns' messages."""
        before = self._latest.get(turn.conversation_id)

        async def in_order() -> Turn | None:
            if before is not None:
                await asyncio.wait([before])
            return await place()

        task = self._tasks.spawn(in_order(), name=f"place-{turn.id}")
        self._placing[turn.id] = task
        self._latest[turn.conversation_id] = task
        task.add_done_callback(lambda done: self._settled(turn.conversation_id, done))

    def _settled(self, conversation_id: int, task: asyncio.Task[Turn | None]) -> None:
        if self._latest.get(conversation_id) is task:
            del self._latest[conversation_id]

    def hold(self, turn_id: int, progress: Progress) -> bool:
        """Keep `progress` for when the message exists; False if there is nothing to wait for."""
        task = self._placing.get(turn_id)
        if task is None or task.done() or task is asyncio.current_task():
            return False  # (the posting itself shows what was held)
        held = self._held.setdefault(turn_id, [])
        # "started" starts the shown clock; of the rest only the latest is still news
        held[:] = [p for p in held if p.stage is Stage.started and progress.stage is not Stage.started]
        held.append(progress)
        return True

    def take_held(self, turn_id: int) -> list[Progress]:
        return self._held.pop(turn_id, [])

    def placed(self, turn_id: int) -> Turn | None:
        """The turn as recorded once its message was posted (None while posting, or if it failed)."""
        task = self._placing.get(turn_id)
        if task is None or not task.done() or task.cancelled() or task.exception() is not None:
            return None
        return task.result()

    async def wait(self, turn_id: int) -> None:
        """Until the turn's message is posted or has failed to be (at once if none is pending)."""
        task = self._placing.get(turn_id)
        if task is not None and task is not asyncio.current_task():
            await asyncio.wait([task])  # its outcome is the poster's to handle

    def forget(self, turn_id: int) -> None:
        self._placing.pop(turn_id, None)
        self._held.pop(turn_id, None)
