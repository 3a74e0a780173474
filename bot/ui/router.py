"""Where a click or a selection on a persistent component goes.

A component (`DynamicItem`) names its `Route`, a typed key that says which arguments its handler
takes; a cog registers its handlers for the routes it serves in `cog_load` (and removes them in
`cog_unload`). Components never look a cog up by name. A click whose route has no handler (its
cog is not loaded) is answered privately with a clear message, never silently dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Concatenate, Generic, ParamSpec, Protocol, runtime_checkable

import discord

from bot.ui.i18n import t
from bot.ui.replies import reply_privately

log = logging.getLogger(__name__)

P = ParamSpec("P")
Handler = Callable[Concatenate[discord.Interaction, P], Awaitable[None]]


class Route(Generic[P]):
    """A typed key of the router: the handler registered for it takes these arguments after
    the interaction."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Route({self.name!r})"


# The routes, one per kind of component (their arguments come from the component's custom_id).
TURN_BUTTON: Route[[str, int]] = Route("turn button")  # action, turn id (ui/buttons.py)
VARIANT_BUTTON: Route[[str, int]] = Route("variant button")  # action, turn id (ui/variants.py)
START_PROMPT: Route[[str]] = Route("start from a prompt")  # a /describe suggestion's prompt
HISTORY_PAGE: Route[[int, int]] = Route("history page")  # conversation id, page
HISTORY_CONTINUE: Route[[int, int]] = Route("history continue")  # conversation id, turn id
HISTORY_EXPORT: Route[[int]] = Route("history export")  # conversation id
REPORT: Route[[int]] = Route("report")  # turn id (ui/modlog.py)
MOD_ACTION: Route[[str, int, int | None]] = Route("moderator action")  # action, turn, report
BLOCK: Route[[int, str]] = Route("block")  # turn id, duration
UNPUBLISH: Route[[int]] = Route("unpublish")  # turn id (ui/showcase.py)


class Router:
    """The handlers of the routes, registered by the cogs that serve them."""

    def __init__(self) -> None:
        self._handlers: dict[Route[Any], Callable[..., Awaitable[None]]] = {}

    def add(self, route: Route[P], handler: Handler[P]) -> None:
        """Serve `route` with `handler`; a route has one handler (a second is a mistake)."""
        if route in self._handlers and self._handlers[route] != handler:
            raise ValueError(f"{route!r} already has a handler")
        self._handlers[route] = handler

    def remove(self, route: Route[Any]) -> None:
        self._handlers.pop(route, None)

    def handles(self, route: Route[Any]) -> bool:
        return route in self._handlers

    async def dispatch(self, route: Route[P], interaction: discord.Interaction,
                       *args: P.args, **kwargs: P.kwargs) -> None:
        """Hand the interaction to the route's handler, or say privately that it is missing."""
        handler = self._handlers.get(route)
        if handler is None:
            log.warning("No handler for %r (interaction %s)", route, interaction.id)
            await reply_privately(interaction, t("generic.unavailable", str(interaction.locale)))
            return
        await handler(interaction, *args, **kwargs)


@runtime_checkable
class Routed(Protocol):
    """A client that carries the router (the bot)."""

    router: Router


async def dispatch(route: Route[P], interaction: discord.Interaction,
                   *args: P.args, **kwargs: P.kwargs) -> None:
    """What a component's callback calls: its route, through the client's router."""
    client = interaction.client
    router = client.router if isinstance(client, Routed) else Router()  # (none: nothing serves)
    await router.dispatch(route, interaction, *args, **kwargs)
