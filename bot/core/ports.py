"""The ports: every protocol the core depends on and an adapter outside it implements.

The Discord layer implements the presenter, the result-image fetcher, the member lookups and
the key-failure notice; listeners (metrics, input retention) hear how turns end. The scheduler's
protocol lives beside its one-process implementation in `jobs.py`. Each core class takes the
ports it uses in its constructor (`wiring.build_core`); nothing is assigned after construction
(`tests/unit/test_ports.py` checks both).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from bot.core.errors import UserFacingError
    from bot.core.models import Delivery, InputImage, Progress, Turn, TurnResult
    from bot.core.policy import Actor


class Presenter(Protocol):
    """How the core shows turns to people."""

    async def show_queued(self, turn: Turn, position: int | None) -> int | None:
        """Post the turn's progress message; return its id."""

    async def show_progress(self, turn: Turn, progress: Progress) -> None: ...

    async def show_result(self, turn: Turn, result: TurnResult) -> list[int] | Delivery:
        """Show the finished turn; return the ids of the messages that show it (with a note
        when they are not where the turn's progress was shown)."""

    async def show_failure(self, turn: Turn, error: UserFacingError) -> None: ...

    async def notify(self, turn: Turn, *, done: bool) -> None:
        """Tell the requester, with one notification, that their turn is over."""


class ResultImages(Protocol):
    """The images a finished turn showed, downloaded again (to rebuild a chain, to remix or
    extend a result)."""

    async def fetch_result_images(self, turn: Turn) -> list[InputImage]: ...


class Members(Protocol):
    """What the gate asks Discord about members: the access re-check of a waiting turn, and who
    may generate in DMs."""

    async def is_member(self, guild_id: int, user_id: int) -> bool: ...

    async def actor_now(self, guild_id: int, user_id: int, channel_id: int) -> Actor | None:
        """The member as they are now in `channel_id` (None: no longer a member); raises
        `LookupError` when Discord cannot tell."""


class KeyFailureNotice(Protocol):
    """Tells a server's managers that its own OpenAI key stopped working."""

    async def tell_key_failed(self, guild_id: int) -> None: ...


class TurnListener(Protocol):
    """Hears every turn event ("queued", "running", "done", "failed", "cancelled", "deleted")."""

    def __call__(self, event: str, turn: Turn, error: UserFacingError | None) -> None: ...
