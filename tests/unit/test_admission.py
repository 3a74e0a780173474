"""Admission's locks: an admission waits only for admissions that count a limit it counts."""

from __future__ import annotations

import asyncio

import pytest

from bot.core.admission import Admission
from bot.core.options import ImageOptions
from bot.core.policy import Actor, Ceilings, EffectivePolicy, GuildPolicy

GUILD = 800_000_000_000_000_001


def admission(**ceilings: float) -> Admission:
    # the store is never reached: these tests only take and release scopes
    return Admission(None, Ceilings(ImageOptions(), **ceilings),  # type: ignore[arg-type]
                     per_user_slots=4, per_user_queued=3)


def policy(adm: Admission, **settings: object) -> EffectivePolicy:
    return EffectivePolicy(GuildPolicy.from_dict(settings), adm.ceilings)


def member(user_id: int, guild_id: int | None = GUILD) -> Actor:
    return Actor(user_id=user_id, guild_id=guild_id, channel_id=1)


async def enters_while_held(adm: Admission, pol: EffectivePolicy, first: Actor, second: Actor,
                            **kwargs: bool) -> bool:
    """Whether `second` gets its scope while `first` holds its own. (Free asyncio locks are
    taken without suspending, so a few loop iterations settle it either way.)"""
    async with adm.scope(pol, first):
        entered = asyncio.Event()

        async def second_admission() -> None:
            async with adm.scope(pol, second, **kwargs):
                entered.set()

        task = asyncio.create_task(second_admission())
        for _ in range(10):
            await asyncio.sleep(0)
        got_in = entered.is_set()
    await task  # (and it does get in once the first leaves)
    assert entered.is_set()
    return got_in


async def test_two_members_of_a_server_without_caps_do_not_wait_for_each_other() -> None:
    adm = admission()
    assert await enters_while_held(adm, policy(adm), member(1), member(2))


async def test_one_member_waits_for_their_own_earlier_admission() -> None:
    adm = admission()
    assert not await enters_while_held(adm, policy(adm), member(1), member(1))


async def test_members_of_a_server_with_a_spend_cap_wait_for_each_other() -> None:
    adm = admission()
    capped = policy(adm, daily_spend_usd=5.0)
    assert not await enters_while_held(adm, capped, member(1), member(2))
    assert await enters_while_held(adm, capped, member(1), member(2, guild_id=GUILD + 1))


@pytest.mark.parametrize("own_key", [False, True])
async def test_an_instance_cap_makes_everyone_wait_except_servers_paying_themselves(
    own_key: bool,
) -> None:
    adm = admission(instance_daily_spend_usd=10.0)
    waited = not await enters_while_held(adm, policy(adm), member(1), member(2, guild_id=None),
                                         own_key=own_key)
    assert waited is not own_key


async def test_scope_locks_are_forgotten_once_nobody_holds_them() -> None:
    adm = admission(instance_daily_spend_usd=10.0)
    capped = policy(adm, daily_spend_usd=5.0)
    async with adm.scope(capped, member(1)):
        assert len(adm._locks) == 3  # instance, server, user
    assert adm._locks == {}
