"""Accounts with a real store: the key a server's turns are billed to, a member's allowance and
the upscale estimate's refusals."""

from __future__ import annotations

import pytest

from bot.core.accounts import Accounts
from bot.core.errors import ErrorKind, UserFacingError
from bot.core.models import Turn, TurnKind, Usage
from bot.core.options import ImageOptions
from bot.core.policy import Actor, Ceilings, EffectivePolicy, GuildPolicy
from bot.store.repositories import Store

GUILD = 700_000_000_000_000_101
THREAD = 700_000_000_000_000_103
ALICE = 100_000_000_000_000_101
CEILINGS = Ceilings(default_options=ImageOptions(size="1024x1024", quality="low"),
                    user_daily_images=3, guild_daily_spend_usd=5.0)


def accounts(store: Store) -> Accounts:
    return Accounts(store, CEILINGS, {}, mainline="gpt-5.5", image_model=None, server_keys=None)


async def queued_turn(store: Store, reserved: float) -> Turn:
    await store.conversations.create(THREAD, guild_id=GUILD, parent_channel_id=1, owner_id=ALICE,
                                     options=ImageOptions())
    turn_id = await store.turns.create(
        conversation_id=THREAD, parent_id=None, kind=TurnKind.root, guild_id=GUILD,
        author_id=ALICE, prompt="a cat", options=ImageOptions(), locale="en-US",
        source_message_id=None, inputs=[], remix_of_turn_id=None, variant=None,
        reserved_usd=reserved, own_key=False, exempt=False,
    )
    turn = await store.turns.get(turn_id)
    assert turn is not None
    return turn


async def test_without_server_keys_every_turn_is_the_operators(store: Store) -> None:
    assert await accounts(store).own_key(GUILD) is False
    assert await accounts(store).own_key(None) is False
    with pytest.raises(UserFacingError) as excinfo:
        await accounts(store).server_client(GUILD)
    assert excinfo.value.kind is ErrorKind.own_key_failed


async def test_the_allowance_counts_a_waiting_turn_and_its_reservation(store: Store) -> None:
    await queued_turn(store, reserved=1.25)
    actor = Actor(user_id=ALICE, guild_id=GUILD, channel_id=1)
    left = await accounts(store).allowance(actor, EffectivePolicy(GuildPolicy(), CEILINGS))
    assert (left.images_per_day, left.images_left) == (3, 2)
    assert (left.daily_spend, left.daily_spend_left) == (5.0, 3.75)
    assert left.exempt is False


async def test_an_unfinished_turn_cannot_be_upscaled(store: Store) -> None:
    turn = await queued_turn(store, reserved=0.5)
    with pytest.raises(UserFacingError) as excinfo:
        accounts(store).upscale_plan(turn, EffectivePolicy(GuildPolicy(), CEILINGS))
    assert excinfo.value.kind is ErrorKind.unknown_conversation


async def test_a_text_call_on_the_servers_own_key_is_left_out_of_the_instance_caps(
    store: Store,
) -> None:
    alice = Actor(user_id=ALICE, guild_id=GUILD, channel_id=1)
    books = accounts(store)
    await books.record_text_spend(alice, "describe", Usage(text_input=10), 0.25, own_key=True)
    await books.record_text_spend(alice, "describe", Usage(text_input=10), 0.5)
    server = await store.usage.spend(since=0.0, guild_id=GUILD)
    instance = await store.usage.spend(since=0.0, instance_only=True)
    assert (server.settled, instance.settled) == (0.75, 0.5)
