"""The one delivery path (bot/core/delivery.py) with a real store: a billed result is recorded
before it is shown, transient refusals are retried until the deadline, lasting ones fail at once,
and a failed turn's recorded result can be taken up again exactly once."""

from __future__ import annotations

import pytest

from bot.core.costs import PriceBook
from bot.core.delivery import Deliveries
from bot.core.errors import DeliveryError, ErrorKind
from bot.core.models import (
    Delivery,
    GeneratedImage,
    Turn,
    TurnKind,
    TurnResult,
    TurnStatus,
    Usage,
)
from bot.core.options import ImageOptions
from bot.core.placing import Placements
from bot.core.tasks import BackgroundTasks
from bot.store.repositories import Store

THREAD = 700_000_000_000_000_003
ALICE = 100_000_000_000_000_001
RESULT = TurnResult(
    "resp_1", (GeneratedImage("ig_1", b"\x89PNG not really", "png", "1024x1024", "a fox", "rs_1"),),
    None, Usage(image_output=1056),
)


class ScriptedPresenter:
    """Fails `show_result` with the given errors, in order, then shows it as message 42; checks
    on every attempt that the result is already in the store."""

    def __init__(self, store: Store, failures: list[DeliveryError]) -> None:
        self.store = store
        self.failures = list(failures)
        self.attempts = 0
        self.recorded_when_shown: list[bool] = []

    async def show_result(self, turn: Turn, result: TurnResult) -> Delivery:
        self.attempts += 1
        self.recorded_when_shown.append(await self.store.deliveries.get(turn.id) is not None)
        if self.failures:
            raise self.failures.pop(0)
        return Delivery((42,))

    async def notify(self, turn: Turn, *, done: bool) -> None:
        return None


async def a_turn(store: Store) -> Turn:
    await store.conversations.create(THREAD, guild_id=None, parent_channel_id=None,
                                     owner_id=ALICE, options=ImageOptions())
    turn_id = await store.turns.create(
        conversation_id=THREAD, parent_id=None, kind=TurnKind.root, guild_id=None,
        author_id=ALICE, prompt="a fox", options=ImageOptions(), locale="en-US",
        source_message_id=None, reserved_usd=0.5,
    )
    await store.turns.mark_running(turn_id)
    turn = await store.turns.get(turn_id)
    assert turn is not None
    return turn


def deliveries(store: Store, presenter: ScriptedPresenter, retry_seconds: float) -> Deliveries:
    return Deliveries(store, PriceBook({}, mainline="gpt-5.5", image_model="gpt-image-2"),
                      Placements(BackgroundTasks()), presenter=presenter,
                      notify=lambda event, turn: None, retry_seconds=retry_seconds)


def server_error() -> DeliveryError:
    return DeliveryError(ErrorKind.upload_failed, transient=True, detail="503")


async def test_recorded_first_retried_then_shown_and_the_record_goes(store: Store) -> None:
    turn = await a_turn(store)
    presenter = ScriptedPresenter(store, [server_error(), server_error()])
    path = deliveries(store, presenter, retry_seconds=30)
    kept = await path.record(turn, RESULT)
    settled = await store.turns.get(turn.id)  # billed: the reservation is what was charged
    assert settled is not None and settled.usage == RESULT.usage and settled.cost_usd > 0
    await path.deliver(turn, kept)
    assert presenter.attempts == 3 and presenter.recorded_when_shown == [True] * 3
    done = await store.turns.get(turn.id)
    assert done is not None and done.status is TurnStatus.done
    assert done.message_ids == (42,) and done.images[0].call_id == "ig_1"
    assert await store.deliveries.get(turn.id) is None


async def test_a_lasting_refusal_fails_at_once_and_the_record_stays(store: Store) -> None:
    turn = await a_turn(store)
    refused = DeliveryError(ErrorKind.missing_permissions, permission="Attach Files")
    presenter = ScriptedPresenter(store, [refused])
    path = deliveries(store, presenter, retry_seconds=30)
    with pytest.raises(DeliveryError) as raised:
        await path.deliver(turn, await path.record(turn, RESULT))
    assert raised.value is refused and presenter.attempts == 1
    kept = await store.deliveries.get(turn.id)
    assert kept is not None and kept.result == RESULT  # bytes and all, for Retry


async def test_transient_refusals_stop_at_the_deadline(store: Store) -> None:
    turn = await a_turn(store)
    presenter = ScriptedPresenter(store, [server_error() for _ in range(50)])
    path = deliveries(store, presenter, retry_seconds=0.4)
    with pytest.raises(DeliveryError):
        await path.deliver(turn, await path.record(turn, RESULT))
    assert presenter.attempts == 2  # the first, and one more at the deadline


async def test_a_failed_turn_is_reopened_once(store: Store) -> None:
    turn = await a_turn(store)
    path = deliveries(store, ScriptedPresenter(store, []), retry_seconds=30)
    assert await path.reopen(turn) is None  # nothing recorded: Retry asks anew
    await path.record(turn, RESULT)
    await store.turns.finish_failed(turn.id, status=TurnStatus.failed, error_kind="upload_failed")
    assert await path.reopen(turn) is True
    assert await path.reopen(turn) is False  # a second click: already being shown
    reopened = await store.turns.get(turn.id)
    assert reopened is not None and reopened.status is TurnStatus.running


async def test_a_result_with_nowhere_to_go_is_not_kept(store: Store) -> None:
    turn = await a_turn(store)
    gone = DeliveryError(ErrorKind.upload_failed, orphaned=True, detail="Unknown Channel")
    path = deliveries(store, ScriptedPresenter(store, [gone]), retry_seconds=30)
    with pytest.raises(DeliveryError):
        await path.deliver(turn, await path.record(turn, RESULT))
    assert await store.deliveries.get(turn.id) is None  # its thread is gone: no Retry to serve
