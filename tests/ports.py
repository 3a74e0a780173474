"""Stand-ins for the core's ports (`bot/core/ports.py`), for tests and benchmarks that run the
core without Discord, and `core_for`, which builds a core with them where a test gives none."""

from __future__ import annotations

from typing import Any

from bot.core.describe import Describer
from bot.core.errors import UserFacingError
from bot.core.image_client import ImageClient
from bot.core.models import InputImage, Progress, Turn, TurnResult
from bot.core.policy import Actor
from bot.core.ports import KeyFailureNotice, Members, Presenter, ResultImages
from bot.core.wiring import Core, Ports, build_core
from bot.store.protocol import Store


class QuietPresenter:
    """Shows nothing: no message is posted (so none is recorded), no image is at hand again."""

    async def show_queued(self, turn: Turn, position: int | None) -> int | None:
        return None

    async def show_progress(self, turn: Turn, progress: Progress) -> None:
        return None

    async def show_result(self, turn: Turn, result: TurnResult) -> list[int]:
        return []

    async def show_failure(self, turn: Turn, error: UserFacingError) -> None:
        return None

    async def notify(self, turn: Turn, *, done: bool) -> None:
        return None

    async def fetch_result_images(self, turn: Turn) -> list[InputImage]:
        return []


class UnknownMembers:
    """Discord that cannot tell: nobody is a member of a server that vouches for DMs, and a
    waiting turn's author is not looked up again (admitted as they were)."""

    async def is_member(self, guild_id: int, user_id: int) -> bool:
        return False

    async def actor_now(self, guild_id: int, user_id: int, channel_id: int) -> Actor | None:
        raise LookupError("no Discord here")


class KeyFailuresTold:
    """Records the servers whose managers were told their own key failed."""

    def __init__(self) -> None:
        self.told: list[int] = []

    async def tell_key_failed(self, guild_id: int) -> None:
        self.told.append(guild_id)


def stand_in_ports(presenter: Presenter | None = None, *, result_images: ResultImages | None = None,
                   members: Members | None = None,
                   key_failures: KeyFailureNotice | None = None) -> Ports:
    """The ports given, stand-ins for the rest (a presenter that can fetch images serves as the
    result-image fetcher too)."""
    shown = presenter or QuietPresenter()
    fetcher = result_images or (shown if hasattr(shown, "fetch_result_images") else QuietPresenter())
    return Ports(presenter=shown, result_images=fetcher,  # type: ignore[arg-type]
                 members=members or UnknownMembers(), key_failures=key_failures or KeyFailuresTold())


def core_for(store: Store, images: ImageClient, *, presenter: Presenter | None = None,
             result_images: ResultImages | None = None, members: Members | None = None,
             key_failures: KeyFailureNotice | None = None, describer: Describer | None = None,
             server_keys: Any = None, **kwargs: Any) -> Core:
    """`build_core` with stand-ins for the ports a test does not give, and a describer on the
    image client's own SDK client."""
    ports = stand_in_ports(presenter, result_images=result_images, members=members,
                           key_failures=key_failures)
    prices = kwargs.get("prices", {})
    describer = describer or Describer(images.openai, model=images.model, prices=prices)
    return build_core(store, images, ports, describer=describer, server_keys=server_keys, **kwargs)
