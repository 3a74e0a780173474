"""The gate with a real store: the order of its decisions, the ids a button or form names, the
access and ownership half that conversation changes pass, and a first turn in another member's
conversation."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from bot.core.conversations import ConversationService
from bot.core.errors import ErrorKind, UserFacingError
from bot.core.gate import Declared, Place
from bot.core.image_client import ImageClient
from bot.core.models import TurnKind, TurnStatus
from bot.core.policy import Actor, Ceilings
from bot.store.repositories import Store
from tests.fakes.openai_server import FakeOpenAI
from tests.ports import core_for
from tests.unit.test_conversations import (
    ALICE,
    BOB,
    CEILINGS,
    CHANNEL,
    DEFAULTS,
    GUILD,
    OTHER_THREAD,
    PRICES,
    THREAD,
    RecordingPresenter,
    actor,
    run,
    turn_request,
)

MakeService = Callable[..., ConversationService]


@pytest.fixture
async def make_service(store: Store, image_client: ImageClient) -> AsyncIterator[MakeService]:
    made: list[ConversationService] = []

    def make(*, ceilings: Ceilings = CEILINGS, **kwargs: Any) -> ConversationService:
        core = core_for(store, image_client, ceilings=ceilings, prices=PRICES,
                          presenter=RecordingPresenter(), **kwargs)
        made.append(core.conversations)
        return core.conversations

    yield make
    for service in made:
        await service.runner.shutdown(0.5)


@pytest.fixture
async def service(make_service: MakeService) -> ConversationService:
    made = make_service()
    await made.open_conversation(THREAD, guild_id=GUILD, parent_channel_id=CHANNEL, owner_id=ALICE)
    return made

BIG = Declared("big.png", 50 * 1024 * 1024, "image/png")
SMALL = Declared("small.png", 1024, "image/png")


def kind_of(excinfo: pytest.ExceptionInfo[UserFacingError]) -> tuple[ErrorKind, object]:
    return excinfo.value.kind, excinfo.value.params.get("reason") or excinfo.value.params.get(
        "problem")


# ------------------------------------------------------------------ the order of its decisions
async def test_dm_policy_comes_before_everything(make_service: MakeService) -> None:
    service = make_service()  # ALLOW_DMS is off
    in_a_dm = Actor(user_id=ALICE, guild_id=None, channel_id=None)
    with pytest.raises(UserFacingError) as excinfo:
        await service.gate.admit(in_a_dm, attachments=[BIG] * 9)
    assert kind_of(excinfo) == (ErrorKind.not_allowed, "dm")
    with pytest.raises(UserFacingError) as excinfo:
        await service.gate.admit_text(in_a_dm, 0.01, BIG)
    assert kind_of(excinfo) == (ErrorKind.not_allowed, "dm")


async def test_access_then_the_refine_rule_then_attachments_then_counted_limits(
    service: ConversationService,
) -> None:
    gate = service.gate
    await gate.policies.update_policy(GUILD, blocked_users=[BOB], refine_mode="starter",
                                      user_daily_images=1)
    conversation = await service.conversation(THREAD)
    with pytest.raises(UserFacingError) as excinfo:  # blocked: nothing else is looked at
        await gate.admit(actor(BOB), attachments=[BIG] * 9, conversation=conversation)
    assert kind_of(excinfo) == (ErrorKind.not_allowed, "blocked")
    carol = 100_000_000_000_000_003
    with pytest.raises(UserFacingError) as excinfo:  # another member's starter-only thread
        await gate.admit(actor(carol), attachments=[BIG] * 9, conversation=conversation)
    assert kind_of(excinfo) == (ErrorKind.not_allowed, "starter_only")
    with pytest.raises(UserFacingError) as excinfo:  # then how many are attached
        await gate.admit(actor(), attachments=[SMALL] * 9, conversation=conversation)
    assert excinfo.value.kind is ErrorKind.too_many_images
    with pytest.raises(UserFacingError) as excinfo:  # then their declared size
        await gate.admit(actor(), attachments=[BIG], conversation=conversation)
    assert kind_of(excinfo) == (ErrorKind.bad_attachment, "too_large_bytes")
    hold = await gate.admit(actor(), attachments=[SMALL], conversation=conversation)
    with pytest.raises(UserFacingError) as excinfo:  # the daily image is held already
        await gate.admit(actor(), conversation=conversation)
    assert excinfo.value.params["limit"] == "user_daily_images"
    gate.release_hold(hold)
    gate.release_hold(await gate.admit(actor(), conversation=conversation))


async def test_a_text_call_is_held_against_the_cap_until_released(
    make_service: MakeService,
) -> None:
    service = make_service(ceilings=Ceilings(default_options=DEFAULTS,
                                                instance_daily_spend_usd=1.0))
    gate = service.gate
    first = await gate.admit_text(actor(), 0.6)
    with pytest.raises(UserFacingError) as excinfo:
        await gate.admit_text(actor(BOB), 0.6)
    assert excinfo.value.params["limit"] == "instance_daily_spend"
    # a text call holds no queue place and no image
    gate.release_hold(await gate.admit(actor(), prompt="a cat"))
    gate.release_hold(first)
    gate.release_hold(await gate.admit_text(actor(BOB), 0.6))


# ------------------------------------------------------------------ ids named in a custom_id
async def test_a_turn_is_found_only_from_its_own_server_and_channel(
    service: ConversationService,
) -> None:
    turn = await run(service, turn_request("a cat", TurnKind.root))
    assert (await service.turn_in(turn.id, Place(GUILD, THREAD))).id == turn.id
    for place in (Place(GUILD + 1, THREAD), Place(GUILD, OTHER_THREAD), Place(None, THREAD),
                  Place(GUILD, CHANNEL)):
        with pytest.raises(UserFacingError) as excinfo:
            await service.turn_in(turn.id, place)
        assert excinfo.value.kind is ErrorKind.unknown_conversation
    with pytest.raises(UserFacingError):
        await service.conversation_in(THREAD, Place(GUILD, OTHER_THREAD))
    assert (await service.conversation_in(THREAD, Place(GUILD, THREAD))).id == THREAD


# ------------------------------------------------------------------ conversation changes
async def test_continue_delete_and_cancel_pass_access_and_ownership(
    service: ConversationService, fake_openai: FakeOpenAI
) -> None:
    first = await run(service, turn_request("a cat", TurnKind.root))
    second = await run(service, turn_request("make it a dog"))
    await service.gate.policies.update_policy(GUILD, blocked_users=[ALICE, BOB])
    for change in (service.continue_from(first, actor()), service.delete(second, actor()),
                   service.cancel(second, actor())):
        with pytest.raises(UserFacingError) as excinfo:
            await change
        assert kind_of(excinfo) == (ErrorKind.not_allowed, "blocked")
    conversation = await service.conversation(THREAD)
    assert conversation is not None and conversation.head_turn_id == second.id
    await service.gate.policies.update_policy(GUILD, blocked_users=[])
    with pytest.raises(UserFacingError) as excinfo:
        await service.delete(second, actor(BOB))  # not theirs
    assert kind_of(excinfo) == (ErrorKind.not_allowed, "not_author")
    await service.continue_from(first, actor())
    assert (await service.conversation(THREAD)).head_turn_id == first.id  # type: ignore[union-attr]


async def test_a_first_turn_inside_another_members_conversation_is_refused(
    service: ConversationService, fake_openai: FakeOpenAI
) -> None:
    await run(service, turn_request("a cat", TurnKind.root))
    conversation = await service.conversation(THREAD)
    assert conversation is not None
    assert service.gate.may_start_in(actor(), conversation)
    assert not service.gate.may_start_in(actor(BOB, is_moderator=True), conversation)
    with pytest.raises(UserFacingError) as excinfo:
        await service.submit(turn_request("a dog", TurnKind.root, author=BOB), actor(BOB))
    assert kind_of(excinfo) == (ErrorKind.not_allowed, "starter_only")
    assert [t.author_id for t in await service.turns_in(THREAD)] == [ALICE]
    assert [t.status for t in await service.turns_in(THREAD)] == [TurnStatus.done]
