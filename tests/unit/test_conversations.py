"""The conversation service with a real store, a real image client and the fake Responses API.

The Discord side is a small recording presenter: it hands out message ids, remembers what it was
asked to show, and gives back the bytes of a result when the service needs them again.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable
from typing import Any

import openai
import pytest

from bot.core.conversations import ConversationService
from bot.core.errors import ErrorKind, UserFacingError
from bot.core.image_client import GenerationRequest, ImageClient
from bot.core.jobs import JobScheduler
from bot.core.models import (
    InputImage,
    Progress,
    Stage,
    Turn,
    TurnKind,
    TurnRequest,
    TurnResult,
    TurnStatus,
)
from bot.core.options import ImageOptions
from bot.core.policy import Actor, Ceilings
from bot.store.repositories import Store
from tests.fakes.openai_server import FakeOpenAI, Fault, read_lineage
from tests.ports import core_for
from tests.unit.conftest import StoreOpener

GUILD = 700_000_000_000_000_001
CHANNEL = 700_000_000_000_000_002
THREAD = 700_000_000_000_000_003
OTHER_THREAD = 700_000_000_000_000_004
ALICE = 100_000_000_000_000_001
BOB = 100_000_000_000_000_002

# the smallest size the bot's own validation accepts: quick for the fake to render
DEFAULTS = ImageOptions(size="1024x640", quality="low", output_format="png")
CEILINGS = Ceilings(default_options=DEFAULTS)
PRICES = {"default": {"text_input": 5.0, "text_output": 10.0, "image_input": 8.0,
                      "image_output": 32.0}}


class RecordingPresenter:
    """Implements the `Presenter` protocol and records every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []  # (method, turn id), in order
        self.queued: list[tuple[int, int | None]] = []
        self.progress: list[tuple[int, Progress]] = []
        self.results: dict[int, TurnResult] = {}
        self.result_messages: dict[int, list[int]] = {}
        self.failures: list[tuple[int, UserFacingError]] = []
        self.fetched: list[int] = []
        self.notified: list[tuple[int, bool]] = []
        self._next_message_id = 900_000

    def _message_id(self) -> int:
        self._next_message_id += 1
        return self._next_message_id

    async def show_queued(self, turn: Turn, position: int | None) -> int | None:
        self.calls.append(("show_queued", turn.id))
        self.queued.append((turn.id, position))
        return self._message_id()

    async def show_progress(self, turn: Turn, progress: Progress) -> None:
        self.calls.append(("show_progress", turn.id))
        self.progress.append((turn.id, progress))

    async def show_result(self, turn: Turn, result: TurnResult) -> list[int]:
        self.calls.append(("show_result", turn.id))
        self.results[turn.id] = result
        ids = [self._message_id() for _ in result.images or (None,)]
        self.result_messages[turn.id] = ids
        return ids

    async def show_failure(self, turn: Turn, error: UserFacingError) -> None:
        self.calls.append(("show_failure", turn.id))
        self.failures.append((turn.id, error))

    async def notify(self, turn: Turn, *, done: bool) -> None:
        self.notified.append((turn.id, done))

    async def fetch_result_images(self, turn: Turn) -> list[InputImage]:
        self.calls.append(("fetch_result_images", turn.id))
        self.fetched.append(turn.id)
        result = self.results[turn.id]
        return [InputImage(img.data, f"image/{img.output_format}", "result.png")
                for img in result.images]

    def stages(self, turn_id: int) -> list[Stage]:
        return [p.stage for t, p in self.progress if t == turn_id]

    def failure_kinds(self, turn_id: int) -> list[ErrorKind]:
        return [e.kind for t, e in self.failures if t == turn_id]


MakeService = Callable[..., tuple[ConversationService, RecordingPresenter]]


@pytest.fixture
async def make_service(
    store: Store, image_client: ImageClient
) -> AsyncIterator[MakeService]:
    made: list[ConversationService] = []

    def make(
        *, ceilings: Ceilings = CEILINGS, client: ImageClient | None = None, **kwargs: Any
    ) -> tuple[ConversationService, RecordingPresenter]:
        presenter = RecordingPresenter()
        service = core_for(
            kwargs.pop("store", store), client or image_client, ceilings=ceilings, prices=PRICES,
            presenter=presenter, **kwargs,
        ).conversations
        made.append(service)
        return service, presenter

    yield make
    for service in made:
        await service.runner.shutdown(0.5)


@pytest.fixture
async def service(make_service: MakeService) -> ConversationService:
    made, _ = make_service()
    await made.open_conversation(THREAD, guild_id=GUILD, parent_channel_id=CHANNEL, owner_id=ALICE)
    return made


def presenter_of(service: ConversationService) -> RecordingPresenter:
    assert isinstance(service.runner.presenter, RecordingPresenter)
    return service.runner.presenter


def actor(user_id: int = ALICE, **kwargs: Any) -> Actor:
    return Actor(user_id=user_id, guild_id=GUILD, channel_id=CHANNEL, **kwargs)


def turn_request(
    prompt: str,
    kind: TurnKind = TurnKind.reply,
    *,
    author: int = ALICE,
    conversation: int = THREAD,
    **kwargs: Any,
) -> TurnRequest:
    return TurnRequest(kind=kind, author_id=author, prompt=prompt, guild_id=GUILD,
                       conversation_id=conversation, **kwargs)


async def idle(service: ConversationService) -> None:
    await asyncio.wait_for(service.runner.scheduler.wait_idle(), 10)


async def run(service: ConversationService, request: TurnRequest, who: Actor | None = None) -> Turn:
    """Submit a request, wait until nothing is left to run, and return the turn as stored."""
    submitted = await service.submit(request, who or actor(request.author_id))
    await idle(service)
    turn = await service.store.turns.get(submitted.id)
    assert turn is not None
    return turn


async def eventually(check: Callable[[], Any], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def image_of(service: ConversationService, turn: Turn) -> bytes:
    result = presenter_of(service).results[turn.id]
    assert len(result.images) == 1
    return result.images[0].data


def content_types(body: dict[str, Any]) -> list[str]:
    (message,) = [item for item in body["input"] if item.get("role") == "user"]
    return [part["type"] for part in message["content"]]


# --------------------------------------------------------------------------- the basics


async def test_root_turn_runs_and_is_recorded(
    service: ConversationService, store: Store, fake_openai: FakeOpenAI
) -> None:
    presenter = presenter_of(service)
    submitted = await service.submit(turn_request("a red fox", TurnKind.root), actor())
    assert submitted.status is TurnStatus.queued

    await idle(service)
    # the progress message is posted while the image renders, and recorded
    assert presenter.queued[0][0] == submitted.id
    turn = await store.turns.get(submitted.id)
    assert turn is not None
    progress_message = turn.progress_message_id
    assert progress_message is not None
    assert turn.status is TurnStatus.done
    assert turn.kind is TurnKind.root and turn.parent_id is None
    assert turn.response_id is not None and turn.response_id in fake_openai.responses
    (ref,) = turn.images
    result = presenter.results[turn.id]
    assert ref.call_id == result.images[0].call_id
    assert ref.size == "1024x640" and ref.byte_size == len(result.images[0].data)
    assert read_lineage(result.images[0].data) == ["a red fox"]
    assert turn.usage.image_output > 0 and turn.cost_usd > 0
    assert turn.started_at is not None and turn.finished_at is not None
    assert turn.message_ids == tuple(presenter.result_messages[turn.id])
    conversation = await store.conversations.get(THREAD)
    assert conversation is not None and conversation.head_turn_id == turn.id
    # the progress message and the result messages all lead back to the turn
    for message_id in (progress_message, *turn.message_ids):
        found = await service.turn_for_message(message_id)
        assert found is not None and found.id == turn.id

    stages = presenter.stages(turn.id)
    assert stages[0] is Stage.started and Stage.generating in stages
    assert presenter.calls[0] == ("show_queued", turn.id)
    assert ("show_result", turn.id) in presenter.calls
    assert presenter.failures == []

    (body,) = fake_openai.create_requests()
    assert body["tools"][0]["type"] == "image_generation"
    assert body["tools"][0]["size"] == "1024x640" and body["tools"][0]["quality"] == "low"
    assert "previous_response_id" not in body
    assert str(ALICE) not in body["safety_identifier"]


async def test_a_reply_continues_from_the_head(
    service: ConversationService, fake_openai: FakeOpenAI
) -> None:
    root = await run(service, turn_request("a red barn", TurnKind.root))
    reply = await run(service, turn_request("add snow on the roof"))

    assert reply.status is TurnStatus.done
    assert reply.kind is TurnKind.reply and reply.parent_id == root.id
    assert fake_openai.create_requests()[1]["previous_response_id"] == root.response_id
    assert read_lineage(image_of(service, reply)) == ["a red barn", "add snow on the roof"]
    conversation = await service.conversation(THREAD)
    assert conversation is not None and conversation.head_turn_id == reply.id
    assert [t.id for t in await service.store.turns.lineage(reply.id)] == [root.id, reply.id]


async def test_a_branch_chains_from_its_parent_not_the_head(
    service: ConversationService, fake_openai: FakeOpenAI
) -> None:
    root = await run(service, turn_request("a red barn", TurnKind.root))
    await run(service, turn_request("add snow"))
    branch = await run(
        service, turn_request("make it night", TurnKind.branch, parent_turn_id=root.id)
    )

    assert branch.parent_id == root.id
    assert fake_openai.create_requests()[2]["previous_response_id"] == root.response_id
    assert read_lineage(image_of(service, branch)) == ["a red barn", "make it night"]


async def test_a_reroll_is_a_sibling_with_the_same_prompt(
    service: ConversationService, fake_openai: FakeOpenAI
) -> None:
    root = await run(service, turn_request("a red barn", TurnKind.root))
    reply = await run(service, turn_request("add snow", options=ImageOptions(quality="medium")))
    reroll = await run(
        service, turn_request("ignored", TurnKind.reroll, parent_turn_id=reply.id)
    )

    assert reroll.kind is TurnKind.reroll
    assert reroll.parent_id == reply.parent_id == root.id
    assert reroll.prompt == reply.prompt == "add snow"
    assert reroll.options == reply.options and reroll.options.quality == "medium"
    assert reroll.response_id != reply.response_id
    body = fake_openai.create_requests()[2]
    assert body["previous_response_id"] == root.response_id
    assert body["tools"][0]["quality"] == "medium"
    assert read_lineage(image_of(service, reroll)) == ["a red barn", "add snow"]


async def test_turns_of_one_conversation_run_in_arrival_order(
    service: ConversationService, store: Store, fake_openai: FakeOpenAI
) -> None:
    await run(service, turn_request("a red barn", TurnKind.root))
    fake_openai.latency = 0.15
    presenter = presenter_of(service)
    # two people (so no per-user limit is what serialises them), one thread
    first = await service.submit(turn_request("add snow"), actor())
    second = await service.submit(turn_request("add a cow", author=BOB), actor(BOB))
    await idle(service)

    one = await store.turns.get(first.id)
    two = await store.turns.get(second.id)
    assert one is not None and two is not None
    assert one.status is TurnStatus.done and two.status is TurnStatus.done
    assert one.finished_at is not None and two.started_at is not None
    assert one.finished_at <= two.started_at  # never both running
    prompts = [body["input"][-1]["content"][-1]["text"] for body in fake_openai.create_requests()]
    assert prompts == ["a red barn", "add snow", "add a cow"]
    shown = [turn_id for name, turn_id in presenter.calls if name == "show_result"]
    assert shown[1:] == [first.id, second.id]
    # a reply sent while the one before it was still running refines that one's result
    assert two.parent_id == one.id
    assert read_lineage(image_of(service, two)) == ["a red barn", "add snow", "add a cow"]


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("prompt", ["", "   ", "\u200b\u2060\ufeff", "\u200b \u00ad \n"])
async def test_an_empty_prompt_is_refused(
    service: ConversationService, store: Store, fake_openai: FakeOpenAI, prompt: str
) -> None:
    with pytest.raises(UserFacingError) as excinfo:
        await service.submit(turn_request(prompt, TurnKind.root), actor())
    assert excinfo.value.kind is ErrorKind.empty_prompt
    assert await store.turns.in_conversation(THREAD) == []
    assert fake_openai.create_requests() == []


async def test_an_over_long_prompt_is_refused(
    make_service: MakeService, store: Store, fake_openai: FakeOpenAI
) -> None:
    service, _ = make_service(max_prompt_chars=50)
    await service.open_conversation(THREAD, guild_id=GUILD, parent_channel_id=CHANNEL,
                                    owner_id=ALICE)
    with pytest.raises(UserFacingError) as excinfo:
        await service.submit(turn_request("x" * 51, TurnKind.root), actor())
    assert excinfo.value.kind is ErrorKind.prompt_too_long
    assert excinfo.value.params["limit"] == 50
    # invisible characters do not count towards the limit
    ok = await run(service, turn_request("\u200b" * 20 + "y" * 50, TurnKind.root))
    assert ok.prompt == "y" * 50 and ok.status is TurnStatus.done
    assert len(fake_openai.create_requests()) == 1


async def test_an_edit_without_any_image_is_refused_before_the_api(
    service: ConversationService, store: Store, fake_openai: FakeOpenAI
) -> None:
    with pytest.raises(UserFacingError) as excinfo:
        await service.submit(
            turn_request("make it blue", TurnKind.root, options=ImageOptions(action="edit")),
            actor(),
        )
    assert excinfo.value.kind is ErrorKind.edit_needs_image
    assert fake_openai.create_requests() == []
    assert await store.turns.in_conversation(THREAD) == []


async def test_invalid_options_are_refused_before_the_api(
    service: ConversationService, store: Store, fake_openai: FakeOpenAI
) -> None:
    with pytest.raises(UserFacingError) as excinfo:
        await service.submit(
            turn_request("a cat", TurnKind.root,
                         options=ImageOptions(background="transparent", output_format="jpeg")),
            actor(),
        )
    assert excinfo.value.kind is ErrorKind.invalid_options
    assert fake_openai.create_requests() == []
    assert await store.turns.in_conversation(THREAD) == []


async def test_an_unknown_conversation_is_refused(service: ConversationService) -> None:
    with pytest.raises(UserFacingError) as excinfo:
        await service.submit(turn_request("a cat", TurnKind.root, conversation=OTHER_THREAD),
                             actor())
    assert excinfo.value.kind is ErrorKind.unknown_conversation


async def test_daily_image_limit(
    make_service: MakeService, store: Store, fake_openai: FakeOpenAI
) -> None:
    ceilings = Ceilings(default_options=DEFAULTS, user_daily_images=1)
    service, _ = make_service(ceilings=ceilings)
    await service.open_conversation(THREAD, guild_id=GUILD, parent_channel_id=CHANNEL,
                                    owner_id=ALICE)
    first = await run(service, turn_request("a cat", TurnKind.root))
    assert first.status is TurnStatus.done

    with pytest.raises(UserFacingError) as excinfo:
        await service.submit(turn_request("a dog"), actor())
    assert excinfo.value.kind is ErrorKind.limit_reached
    assert excinfo.value.params["limit"] == "user_daily_images"
    assert len(await store.turns.in_conversation(THREAD)) == 1
    assert len(fake_openai.create_requests()) == 1
    # someone else still may
    other = await run(service, turn_request("a dog", author=BOB))
    assert other.status is TurnStatus.done


async def test_starter_only_threads_refuse_other_people(service: ConversationService) -> None:
    await service.gate.policies.update_policy(GUILD, refine_mode="starter")
    await run(service, turn_request("a cat", TurnKind.root))
    with pytest.raises(UserFacingError) as excinfo:
        await service.submit(turn_request("make it a dog", author=BOB), actor(BOB))
    assert excinfo.value.kind is ErrorKind.not_allowed
    assert excinfo.value.params["reason"] == "starter_only"
    # a moderator may
    turn = await run(service, turn_request("make it a dog", author=BOB),
                     actor(BOB, is_moderator=True))
    assert turn.status is TurnStatus.done


# --------------------------------------------------------------------------- rebuilding chains


async def test_a_forgotten_parent_response_is_rebuilt_from_the_image(
    service: ConversationService, store: Store, fake_openai: FakeOpenAI
) -> None:
    root = await run(service, turn_request("a red barn", TurnKind.root))
    assert root.response_id is not None
    fake_openai.forget(root.response_id)  # expired or deleted at OpenAI

    reply = await run(service, turn_request("add snow on the roof"))
    assert reply.status is TurnStatus.done
    assert reply.rerooted is True
    assert reply.response_id is not None and reply.response_id != root.response_id
    assert presenter_of(service).fetched == [root.id]

    failed_try, rebuilt = fake_openai.create_requests()[1:]
    assert failed_try["previous_response_id"] == root.response_id
    assert "previous_response_id" not in rebuilt
    assert content_types(rebuilt) == ["input_text", "input_image", "input_text"]
    context, image_part, prompt = rebuilt["input"][-1]["content"]
    assert "a red barn" in context["text"]
    assert prompt["text"] == "add snow on the roof"
    sent = base64.b64decode(image_part["image_url"].split(",", 1)[1])
    assert sent == image_of(service, root)
    # the chain carried on through the image
    assert read_lineage(image_of(service, reply)) == ["a red barn", "add snow on the roof"]

    # and the next reply chains normally from the rebuilt turn
    after = await run(service, turn_request("add a cow"))
    assert fake_openai.create_requests()[-1]["previous_response_id"] == reply.response_id
    assert after.rerooted is False
    assert read_lineage(image_of(service, after)) == ["a red barn", "add snow on the roof",
                                                      "add a cow"]


async def test_without_stored_responses_every_reply_is_rebuilt(
    make_service: MakeService, openai_client: openai.AsyncOpenAI, fake_openai: FakeOpenAI
) -> None:
    client = ImageClient(openai_client, model="gpt-5.5", store=False)
    service, presenter = make_service(client=client)
    await service.open_conversation(THREAD, guild_id=GUILD, parent_channel_id=CHANNEL,
                                    owner_id=ALICE)
    root = await run(service, turn_request("a red barn", TurnKind.root))
    assert root.response_id is None
    reply = await run(service, turn_request("add snow"))
    assert reply.rerooted is True and reply.status is TurnStatus.done
    bodies = fake_openai.create_requests()
    assert len(bodies) == 2 and all(body["store"] is False for body in bodies)
    assert "input_image" in content_types(bodies[1])
    assert read_lineage(presenter.results[reply.id].images[0].data) == ["a red barn", "add snow"]


# --------------------------------------------------------------------------- failures, cancels


async def test_moderation_fails_the_turn_and_tells_the_user(
    service: ConversationService, store: Store, fake_openai: FakeOpenAI
) -> None:
    fake_openai.add_fault(Fault.moderation("item"))
    turn = await run(service, turn_request("something not allowed", TurnKind.root))
    assert turn.status is TurnStatus.failed
    assert turn.error_kind == ErrorKind.moderation.name
    assert turn.images == ()
    assert presenter_of(service).failure_kinds(turn.id) == [ErrorKind.moderation]
    assert turn.id not in presenter_of(service).results
    conversation = await store.conversations.get(THREAD)
    assert conversation is not None and conversation.head_turn_id is None
    assert len(fake_openai.create_requests()) == 1  # not retried


async def test_cancel_a_queued_turn(
    service: ConversationService, store: Store, fake_openai: FakeOpenAI
) -> None:
    fake_openai.add_fault(Fault.hang(3))  # the first turn holds the thread
    first = await service.submit(turn_request("a red barn", TurnKind.root), actor())
    second = await service.submit(turn_request("add snow", author=BOB), actor(BOB))
    assert service.runner.scheduler.position(second.id) == 1

    with pytest.raises(UserFacingError) as excinfo:  # only its author or a moderator
        await service.cancel(second, actor(ALICE))
    assert excinfo.value.kind is ErrorKind.not_allowed

    assert await service.cancel(second, actor(BOB)) is True
    cancelled = await store.turns.get(second.id)
    assert cancelled is not None and cancelled.status is TurnStatus.cancelled
    assert presenter_of(service).failure_kinds(second.id) == [ErrorKind.cancelled]

    # stop the first one too, so the test does not wait for the hang
    await eventually(lambda: len(fake_openai.create_requests()) == 1)  # it is hanging
    assert await service.cancel(first, actor()) is True
    await idle(service)
    stopped = await store.turns.get(first.id)
    assert stopped is not None and stopped.status is TurnStatus.cancelled
    assert len(fake_openai.create_requests()) == 1  # the cancelled queued turn never ran
    assert await service.cancel(stopped, actor()) is False  # already over


async def test_cancel_a_running_generation(
    service: ConversationService, store: Store, fake_openai: FakeOpenAI
) -> None:
    fake_openai.latency = 3.0
    submitted = await service.submit(turn_request("a slow snail", TurnKind.root), actor())

    async def has_response_id() -> bool:
        turn = await store.turns.get(submitted.id)
        return turn is not None and turn.response_id is not None

    await eventually(has_response_id)
    running = await store.turns.get(submitted.id)
    assert running is not None and running.status is TurnStatus.running
    assert await service.cancel(running, actor()) is True
    await idle(service)
    turn = await store.turns.get(submitted.id)
    assert turn is not None and turn.status is TurnStatus.cancelled
    assert turn.error_kind == ErrorKind.cancelled.name
    assert submitted.id not in presenter_of(service).results
    assert presenter_of(service).failure_kinds(submitted.id) == [ErrorKind.cancelled]


async def test_deleting_the_head_falls_back_to_the_previous_result(
    service: ConversationService, store: Store, fake_openai: FakeOpenAI
) -> None:
    root = await run(service, turn_request("a red barn", TurnKind.root))
    reply = await run(service, turn_request("add snow"))

    with pytest.raises(UserFacingError):
        await service.delete(reply, actor(BOB))  # not the author
    await service.delete(reply, actor())

    deleted = await store.turns.get(reply.id)
    assert deleted is not None and deleted.deleted
    conversation = await store.conversations.get(THREAD)
    assert conversation is not None
    head = await service.head(conversation)
    assert head is not None and head.id == root.id

    after = await run(service, turn_request("add a cow"))
    assert after.parent_id == root.id
    assert fake_openai.create_requests()[-1]["previous_response_id"] == root.response_id
    assert read_lineage(image_of(service, after)) == ["a red barn", "add a cow"]


# --------------------------------------------------------------------------- options


async def test_sticky_options_carry_over_to_the_next_turn(
    service: ConversationService, store: Store, fake_openai: FakeOpenAI
) -> None:
    await run(service, turn_request("a red barn", TurnKind.root,
                                     options=ImageOptions(size="1152x640")))
    conversation = await store.conversations.get(THREAD)
    assert conversation is not None and conversation.options.size == "1152x640"

    reply = await run(service, turn_request("add snow"))
    assert reply.options.size == "1152x640"
    bodies = fake_openai.create_requests()
    assert bodies[0]["tools"][0]["size"] == "1152x640"
    assert bodies[1]["tools"][0]["size"] == "1152x640"
    assert reply.images[0].size == "1152x640"

    # a choice made later replaces it from then on; the action never sticks
    await run(service, turn_request("add a cow",
                                     options=ImageOptions(size="1024x1024", action="edit")))
    await run(service, turn_request("add a dog"))
    bodies = fake_openai.create_requests()
    assert bodies[2]["tools"][0]["size"] == "1024x1024" and bodies[2]["tools"][0]["action"] == "edit"
    assert bodies[3]["tools"][0]["size"] == "1024x1024" and "action" not in bodies[3]["tools"][0]


# --------------------------------------------------------------------------- restarts


async def left_root_turn(store: Store) -> int:
    """A conversation and its first turn, queued, as a previous run left them."""
    await store.conversations.create(THREAD, guild_id=GUILD, parent_channel_id=CHANNEL,
                                     owner_id=ALICE, options=ImageOptions())
    return await store.turns.create(
        conversation_id=THREAD, parent_id=None, kind=TurnKind.root, guild_id=GUILD,
        author_id=ALICE, prompt="a lighthouse", options=DEFAULTS, locale="en-US",
        source_message_id=None,
    )


async def test_recover_runs_a_turn_left_queued(
    make_service: MakeService, store_opener: StoreOpener, store: Store, fake_openai: FakeOpenAI
) -> None:
    before = await store_opener()  # "the previous run"
    try:
        turn_id = await left_root_turn(before)
    finally:
        await before.close()

    service, presenter = make_service()  # a fresh start on the same database
    assert await service.runner.recover() == 1
    await idle(service)

    turn = await store.turns.get(turn_id)
    assert turn is not None and turn.status is TurnStatus.done
    assert turn.progress_message_id is not None  # it was shown again
    assert presenter.queued[0][0] == turn_id
    assert read_lineage(presenter.results[turn_id].images[0].data) == ["a lighthouse"]
    assert len(fake_openai.create_requests()) == 1
    assert await service.runner.recover() == 0


@pytest.mark.parametrize("fault", [Fault.response_failed("server_error")], ids=["failed-server-error"])
async def test_recover_requests_anew_when_the_left_response_is_over(
    make_service: MakeService,
    store: Store,
    fake_openai: FakeOpenAI,
    openai_client: openai.AsyncOpenAI,
    image_client: ImageClient,
    fault: Fault,
) -> None:
    turn_id = await left_root_turn(store)

    # the previous run had started a generation that then failed (or cannot be followed)
    fake_openai.latency = 2.0
    fake_openai.add_fault(fault)
    started = await openai_client.responses.create(
        **image_client.build_params(GenerationRequest(prompt="a lighthouse", options=DEFAULTS)),
        stream=False,
    )
    fake_openai.latency = 0.0  # the new request is quick; the left one keeps its 2 s
    await store.turns.mark_running(turn_id)
    await store.turns.set_response_id(turn_id, started.id, 0)

    service, presenter = make_service()
    assert await service.runner.recover() == 1
    await idle(service)
    turn = await store.turns.get(turn_id)
    assert turn is not None and turn.status is TurnStatus.done
    assert turn.response_id != started.id  # a new response made the image
    assert len(fake_openai.create_requests()) == 2
    assert fake_openai.responses[started.id]["status"] in ("failed", "cancelled")
    assert read_lineage(presenter.results[turn_id].images[0].data) == ["a lighthouse"]


async def test_recover_polls_a_left_response_whose_resume_is_empty_and_takes_its_image(
    make_service: MakeService,
    store: Store,
    fake_openai: FakeOpenAI,
    openai_client: openai.AsyncOpenAI,
    image_client: ImageClient,
) -> None:
    """A resume that yields nothing while the response still runs is normal (issue 20): the
    response is polled until it ends and its (paid) image is shown; nothing is asked anew."""
    turn_id = await left_root_turn(store)
    fake_openai.latency = 2.0
    fake_openai.add_fault(Fault.cut_after("response.created", resume_empty=True))
    started = await openai_client.responses.create(
        **image_client.build_params(GenerationRequest(prompt="a lighthouse", options=DEFAULTS)),
        stream=False,
    )
    await store.turns.mark_running(turn_id)
    await store.turns.set_response_id(turn_id, started.id, 0)

    service, presenter = make_service()
    assert await service.runner.recover() == 1
    await idle(service)
    turn = await store.turns.get(turn_id)
    assert turn is not None and turn.status is TurnStatus.done
    assert turn.response_id == started.id  # the left response made the image
    assert len(fake_openai.create_requests()) == 1
    assert read_lineage(presenter.results[turn_id].images[0].data) == ["a lighthouse"]


async def test_recover_resumes_a_background_generation_left_running(
    make_service: MakeService,
    store: Store,
    fake_openai: FakeOpenAI,
    openai_client: openai.AsyncOpenAI,
    image_client: ImageClient,
) -> None:
    turn_id = await left_root_turn(store)

    # the previous run had started the generation when it stopped
    started = await openai_client.responses.create(
        **image_client.build_params(GenerationRequest(prompt="a lighthouse", options=DEFAULTS)),
        stream=False,
    )
    await store.turns.mark_running(turn_id)
    await store.turns.set_response_id(turn_id, started.id, 0)

    service, presenter = make_service()
    assert await service.runner.recover() == 1
    await idle(service)
    turn = await store.turns.get(turn_id)
    assert turn is not None and turn.status is TurnStatus.done
    assert turn.response_id == started.id
    assert len(fake_openai.create_requests()) == 1  # resumed, not generated again
    assert fake_openai.generations == 1
    assert read_lineage(presenter.results[turn_id].images[0].data) == ["a lighthouse"]


# ------------------------------------------------------------------ a server's settings in memory
async def test_a_process_alone_sees_its_own_settings_change_at_once(make_service: MakeService):
    service, _ = make_service()
    assert (await service.gate.policy_for(GUILD)).policy.blocked_users == ()
    await service.gate.policies.update_policy(GUILD, blocked_users=[BOB])
    assert (await service.gate.policy_for(GUILD)).policy.blocked_users == (BOB,)


async def test_a_fleet_process_sees_another_processes_change_after_its_window(
    make_service: MakeService,
):
    """Two processes of a fleet (shared queue) over one store: each keeps a server's settings
    for `Policies.fleet_seconds`, then reads them again."""
    shared = [JobScheduler(max_concurrent=1) for _ in range(2)]
    for scheduler in shared:
        scheduler.shared = True  # (as the fleet queue is)
    one, _ = make_service(scheduler=shared[0])
    other, _ = make_service(scheduler=shared[1])
    other.gate.policies.fleet_seconds = 0.2
    assert (await other.gate.policy_for(GUILD)).policy.blocked_users == ()
    changed_at = asyncio.get_running_loop().time()
    await one.gate.policies.update_policy(GUILD, blocked_users=[BOB])
    assert (await one.gate.policy_for(GUILD)).policy.blocked_users == (BOB,)
    while (await other.gate.policy_for(GUILD)).policy.blocked_users != (BOB,):
        assert asyncio.get_running_loop().time() - changed_at < 5, "never seen"
        await asyncio.sleep(0.02)
    assert asyncio.get_running_loop().time() - changed_at >= 0.1  # kept, not re-read each time


# --------------------------------------------------------------------------- spend (issue 21)
def billed(fake: FakeOpenAI, key: str) -> list[int]:
    """`usage.<key>` of every response the fake answered, in order."""
    return [response["usage"][key] for response in fake.responses.values()
            if response.get("usage")]


async def test_a_retried_turn_records_what_every_attempt_billed(
    service: ConversationService, store: Store, fake_openai: FakeOpenAI
) -> None:
    fake_openai.add_fault(Fault.response_failed("server_error"))  # billed, then retried
    turn = await run(service, turn_request("a red barn", TurnKind.root))
    assert turn.status is TurnStatus.done and len(fake_openai.create_requests()) == 2
    failed_input, done_input = billed(fake_openai, "input_tokens")
    assert failed_input > 0
    assert turn.usage.text_input == failed_input + done_input


@pytest.mark.parametrize("fault", [Fault.response_failed("invalid_prompt"), Fault.moderation("item")],
                         ids=["response-failed", "image-item-failed"])
async def test_a_failed_turn_records_what_the_api_billed_for_it(
    service: ConversationService, store: Store, fake_openai: FakeOpenAI, fault: Fault
) -> None:
    fake_openai.add_fault(fault)
    turn = await run(service, turn_request("something", TurnKind.root))
    assert turn.status is TurnStatus.failed
    [charged] = billed(fake_openai, "input_tokens")
    assert turn.usage.text_input == charged > 0
    # priced by PRICES (USD 5 per 1M input tokens), and counted wherever spend is
    assert turn.cost_usd >= charged * 5.0 / 1_000_000
    totals = await store.usage.totals(since=0, guild_id=GUILD)
    assert totals.cost_usd == pytest.approx(turn.cost_usd) and totals.images == 0
    spend = await store.usage.spend(since=0, guild_id=GUILD)
    assert spend.settled == pytest.approx(turn.cost_usd) and spend.reserved == 0


async def test_a_rebuilt_chain_sends_the_latest_prompts_and_the_parent_image(
    make_service: MakeService, openai_client: openai.AsyncOpenAI, fake_openai: FakeOpenAI
) -> None:
    client = ImageClient(openai_client, model="gpt-5.5", store=False)
    service, presenter = make_service(client=client, max_chain_turns=2)
    await service.open_conversation(THREAD, guild_id=GUILD, parent_channel_id=CHANNEL,
                                    owner_id=ALICE)
    steps = ["a red barn", "with a blue door", "under snow", "at night"]
    root = await run(service, turn_request(steps[0], TurnKind.root))
    parent = root
    for step in steps[1:]:
        parent = await run(service, turn_request(step))
    await run(service, turn_request("with a full moon"))
    context, image_part, prompt = fake_openai.create_requests()[-1]["input"][-1]["content"]
    assert (context["type"], image_part["type"]) == ("input_text", "input_image")
    assert "3. under snow\n4. at night" in context["text"]
    assert "a red barn" not in context["text"] and "blue door" not in context["text"]
    assert "the first 2 left out" in context["text"]
    sent = base64.b64decode(image_part["image_url"].split(",", 1)[1])
    assert sent == presenter.results[parent.id].images[0].data  # the parent image, always
    assert prompt["text"] == "with a full moon"


async def test_a_rebuilt_chain_reserves_by_the_prompts_it_re_sends(
    make_service: MakeService, openai_client: openai.AsyncOpenAI, fake_openai: FakeOpenAI,
    store: Store,
) -> None:
    """Two deep chains side by side, one rebuilt (no stored responses), one chained by id:
    the rebuilt one's reply reserves at least the re-sent prompts' tokens more (USD 5 per 1M
    for the mainline model's input, and again for the image tool's)."""
    long_steps = [f"step {n}: " + "with more detail " * 180 for n in range(1, 4)]  # ~3 KB each
    reserved = {}
    for stored in (True, False):
        client = ImageClient(openai_client, model="gpt-5.5", store=stored)
        service, _ = make_service(client=client, max_chain_turns=2)
        thread = THREAD if stored else OTHER_THREAD
        await service.open_conversation(thread, guild_id=GUILD, parent_channel_id=CHANNEL,
                                        owner_id=ALICE)
        await run(service, turn_request(long_steps[0], TurnKind.root, conversation=thread))
        for step in long_steps[1:]:
            await run(service, turn_request(step, conversation=thread))
        fake_openai.latency = 5.0
        waiting = await service.submit(turn_request("and a moon", conversation=thread), actor())
        row = await store.db.fetchone("SELECT reserved_usd FROM turns WHERE id = ?", (waiting.id,))
        reserved[stored] = float(row["reserved_usd"])
        await service.cancel(waiting, actor())
        await idle(service)
        fake_openai.latency = 0.0
    resent = len(long_steps[1]) + len(long_steps[2])  # the latest two are re-sent
    assert reserved[False] - reserved[True] >= 2 * resent * 5.0 / 1_000_000
