"""The showcase: a server's forum or media channel where results are published, by their author,
a moderator, or enough ⭐ reactions (like a starboard).

Publishing reposts an image that was already delivered: it costs nothing and never reaches the
image API, so it does not pass the gate. One post per result; deleting the result removes it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bot.core.errors import ErrorKind, UserFacingError
from bot.core.models import ShowcasePost, Turn, TurnStatus
from bot.core.policy import Actor, EffectivePolicy
from bot.store.protocol import Store

STAR = "⭐"
BY_REACTIONS = 0  # `published_by` of a post its ⭐ reactions published
MAX_TAGS = 5  # applied_tags per post (Resources → Channel: Modify Channel, thread params)


class ShowcaseRefused(Exception):
    """Why a result cannot be published (or unpublished) now: a `showcase.<reason>` message."""

    def __init__(self, reason: str, **params: Any) -> None:
        super().__init__(reason)
        self.reason = reason
        self.params = params


@dataclass(frozen=True, slots=True)
class Target:
    """A server's showcase: the channel, and the ⭐ count that publishes by itself (0: never)."""

    channel_id: int
    stars: int


class Showcase:
    """Who may publish what where, and the record of what is published."""

    def __init__(self, store: Store,
                 policy_for: Callable[[int | None], Awaitable[EffectivePolicy]]) -> None:
        self._store = store
        self._policy_for = policy_for
        # one publication at a time: a click and the last ⭐ arriving together make one post
        self.publishing = asyncio.Lock()

    async def target(self, guild_id: int | None) -> Target:
        policy = (await self._policy_for(guild_id)).policy
        if not guild_id or not policy.showcase_channel:
            raise ShowcaseRefused("not_set")
        return Target(policy.showcase_channel, policy.showcase_stars or 0)

    async def publishable(self, turn: Turn | None, actor: Actor) -> Target:
        """The showcase `actor` may publish `turn` to: a finished image of this server, by its
        author or a moderator who is not blocked."""
        if (turn is None or turn.status is not TurnStatus.done or not turn.images or turn.deleted
                or turn.guild_id is None or turn.guild_id != actor.guild_id):
            raise ShowcaseRefused("not_result")
        policy = (await self._policy_for(turn.guild_id)).policy
        if policy.is_blocked(actor.user_id):  # (a timed block too)
            raise UserFacingError(ErrorKind.not_allowed, reason="blocked")
        check_author(turn.author_id, actor)
        return await self.target(turn.guild_id)

    async def auto_target(self, turn: Turn | None) -> Target | None:
        """The showcase a result's ⭐ reactions may publish it to (None: not this one)."""
        if (turn is None or turn.guild_id is None or turn.status is not TurnStatus.done
                or not turn.images or turn.deleted):
            return None
        policy = (await self._policy_for(turn.guild_id)).policy
        if not policy.showcase_channel or not policy.showcase_stars:
            return None
        if policy.is_blocked(turn.author_id) or await self.post_of(turn.id):
            return None
        return Target(policy.showcase_channel, policy.showcase_stars)

    async def post_of(self, turn_id: int) -> ShowcasePost | None:
        return await self._store.showcase.get(turn_id)

    async def by_post(self, post_id: int) -> ShowcasePost | None:
        return await self._store.showcase.by_post(post_id)

    async def in_conversation(self, conversation_id: int) -> list[ShowcasePost]:
        return await self._store.showcase.in_conversation(conversation_id)

    async def record(self, post: ShowcasePost) -> ShowcasePost | None:
        """Record a new post; the post recorded first when another process published the same
        result meanwhile (the caller removes its own), else None."""
        await self._store.showcase.add(post)
        kept = await self._store.showcase.get(post.turn_id)
        return kept if kept is not None and kept.post_id != post.post_id else None

    async def forget(self, turn_id: int) -> None:
        await self._store.showcase.remove(turn_id)


def check_author(author_id: int, actor: Actor) -> None:
    """Only a result's author or a moderator may publish or unpublish it."""
    if actor.user_id != author_id and not actor.is_moderator:
        raise UserFacingError(ErrorKind.not_allowed, reason="not_author")
