"""The router components reach cogs through: a registered handler gets the click with its
arguments; a click whose handler is missing (its cog not loaded) is answered privately, in the
member's language, instead of being dropped; a route has one handler."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import discord
import pytest

from bot.ui.router import TURN_BUTTON, UNPUBLISH, Router, dispatch


@dataclass
class Response:
    sent: list[tuple[str, bool]] = field(default_factory=list)

    def is_done(self) -> bool:
        return bool(self.sent)

    async def send_message(self, text: str, *, ephemeral: bool = False) -> None:
        self.sent.append((text, ephemeral))


@dataclass
class Click:
    """What the router reads of an interaction: its client, locale, id and response."""

    client: Any = None
    locale: str = "en-US"
    id: int = 1
    response: Response = field(default_factory=Response)


async def test_a_registered_handler_gets_the_click_and_its_arguments() -> None:
    router = Router()
    got: list[tuple[str, int]] = []

    async def on_turn_button(interaction: discord.Interaction, action: str, turn_id: int) -> None:
        got.append((action, turn_id))

    router.add(TURN_BUTTON, on_turn_button)
    click = Click()
    await router.dispatch(TURN_BUTTON, click, "reroll", 42)  # type: ignore[arg-type]
    assert got == [("reroll", 42)]
    assert click.response.sent == []


@pytest.mark.parametrize(("locale", "expected"), [
    ("en-US", "This button can't be used right now: that part of the bot isn't running. "
              "Please try again later."),
    ("zh-CN", "这个按钮现在用不了：机器人的这部分没有在运行。请稍后再试。"),
])
async def test_a_missing_handler_is_said_privately(locale: str, expected: str) -> None:
    router = Router()
    router.add(TURN_BUTTON, _nothing)
    router.remove(TURN_BUTTON)  # (its cog unloaded)
    click = Click(locale=locale)
    await router.dispatch(TURN_BUTTON, click, "reroll", 42)  # type: ignore[arg-type]
    assert click.response.sent == [(expected, True)]


async def test_a_client_without_a_router_answers_too() -> None:
    click = Click(client=object())
    await dispatch(UNPUBLISH, click, 7)  # type: ignore[arg-type]
    assert [ephemeral for _, ephemeral in click.response.sent] == [True]


async def test_the_client_s_router_is_the_one_used() -> None:
    @dataclass
    class Bot:
        router: Router

    bot = Bot(Router())
    got: list[int] = []

    async def unpublish(interaction: discord.Interaction, turn_id: int) -> None:
        got.append(turn_id)

    bot.router.add(UNPUBLISH, unpublish)
    await dispatch(UNPUBLISH, Click(client=bot), 7)  # type: ignore[arg-type]
    assert got == [7]


def test_a_route_has_one_handler() -> None:
    router = Router()

    async def other(interaction: discord.Interaction, action: str, turn_id: int) -> None:
        return None

    router.add(TURN_BUTTON, _nothing)
    router.add(TURN_BUTTON, _nothing)  # the same one again (a cog loaded twice) is fine
    with pytest.raises(ValueError, match="turn button"):
        router.add(TURN_BUTTON, other)


async def _nothing(interaction: discord.Interaction, action: str, turn_id: int) -> None:
    return None
