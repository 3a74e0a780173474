"""Every interaction answered within Discord's 3 s: acknowledged before anything that can wait
(the gate, a database write, a download), or, when the bot reaches it too late for that, told at
once that the bot is busy.

Discord invalidates an interaction that gets no initial response within 3 seconds (docs,
Receiving and Responding → Responding to an Interaction); when it was made is in its id (a
snowflake's timestamp). Every entry point calls `shed` or `acknowledge` first.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections import deque
from collections.abc import Awaitable
from typing import Any, TypeVar

import discord

from bot.ui.i18n import t
from bot.ui.replies import PLACEHOLDER, reply_privately

log = logging.getLogger(__name__)

SHED_SECONDS = 2.0  # without settings (ACK_SHED_SECONDS)
AT_ONCE_SECONDS = 0.5  # the longest a first response waits for something merely nice to have
SKEW_WINDOW = 600.0  # s: the quickest interaction of this window counts as delivered on time
T = TypeVar("T")


class _Skew:
    """How far this clock is off Discord's, plus the usual delivery time: the smallest age of
    the interactions seen in the last `SKEW_WINDOW` seconds (a sliding minimum). Without it, a
    clock a few seconds fast would make every interaction look late."""

    def __init__(self) -> None:
        self._seen: deque[tuple[float, float]] = deque()  # (when, age), ages increasing

    def offset(self, age: float, now: float) -> float:
        seen = self._seen
        while seen and seen[-1][1] >= age:
            seen.pop()
        seen.append((now, age))
        while seen[0][0] < now - SKEW_WINDOW:
            seen.popleft()
        return seen[0][1]


_skews: weakref.WeakKeyDictionary[Any, _Skew] = weakref.WeakKeyDictionary()  # per client


def age(interaction: discord.Interaction) -> float:
    """Seconds since Discord made the interaction (by its id's timestamp and this clock)."""
    return time.time() - discord.utils.snowflake_time(interaction.id).timestamp()


def lateness(interaction: discord.Interaction) -> float:
    """How much later than the quickest recent interaction this one reached the bot: its
    age, with this clock's offset from Discord's taken out."""
    raw = age(interaction)
    skew = _skews.setdefault(interaction.client, _Skew())
    return raw - skew.offset(raw, time.monotonic())


def _shed_after(interaction: discord.Interaction) -> float:
    settings = getattr(interaction.client, "settings", None)
    return float(getattr(settings, "ack_shed_seconds", SHED_SECONDS))


async def shed(interaction: discord.Interaction) -> bool:
    """True when the interaction is too old to start work on: the member is told privately, at
    once, that the bot is busy (nothing is checked, recorded or billed for it)."""
    limit = _shed_after(interaction)
    if not limit or interaction.response.is_done():
        return False
    late = lateness(interaction)
    if late < limit:
        return False
    log.warning("Interaction %s reached %.2f s after it was made: answered 'busy'",
                interaction.id, late)
    await reply_privately(interaction, t("ack.busy", str(interaction.locale)))
    return True


async def acknowledge(
    interaction: discord.Interaction, *, ephemeral: bool = False, thinking: bool = False
) -> bool:
    """Defer now: a public or private "thinking…", or (a click, `thinking=False`) a silent
    update of the clicked message. False when the interaction was shed instead."""
    if await shed(interaction):
        return False
    if not interaction.response.is_done():
        try:
            await interaction.response.defer(ephemeral=ephemeral, thinking=thinking)
            interaction.extras[PLACEHOLDER] = thinking and not ephemeral
        except discord.NotFound:  # 10062: too late after all; nothing more can be said
            log.warning("Interaction %s expired before its acknowledgement", interaction.id)
            return False
    return True


async def at_once(read: Awaitable[T], default: T) -> T:
    """What `read` gives if it comes within `AT_ONCE_SECONDS` (a form's pre-filled prompt),
    else `default`: a first response never waits for the database longer than that."""
    try:
        return await asyncio.wait_for(read, AT_ONCE_SECONDS)
    except TimeoutError:
        return default
    except Exception as exc:  # (a refusal, or the database away: the form opens all the same)
        log.info("Not pre-filled: %s", exc or type(exc))
        return default
