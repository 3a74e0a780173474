"""The runner with a real store and the fake Responses API: the text call it makes for an
admitted /describe (with the key the gate chose), the operator's test image, and what a member
sees of their waiting turns."""

from __future__ import annotations

import openai
import pytest

from bot.core.admission import Hold
from bot.core.describe import Describer
from bot.core.errors import ErrorKind, UserFacingError
from bot.core.image_client import GenerationRequest, ImageClient
from bot.core.jobs import JobScheduler
from bot.core.models import InputImage, TurnKind, TurnRequest
from bot.core.options import ImageOptions
from bot.core.policy import Actor, Ceilings
from bot.core.runner import render_test_image
from bot.store.repositories import Store
from tests.fakes.images import render_image
from tests.fakes.openai_server import FakeOpenAI, read_lineage
from tests.ports import core_for
from tests.unit.conftest import MODEL

GUILD = 700_000_000_000_000_201
THREAD = 700_000_000_000_000_203
ALICE = 100_000_000_000_000_201
OPTIONS = ImageOptions(size="1024x640", quality="low", output_format="png")
CEILINGS = Ceilings(default_options=OPTIONS)


def photo() -> InputImage:
    return InputImage(render_image(["a red kite"], width=256, height=256, fmt="png").final,
                      "image/png", "kite.png")


async def test_an_admitted_describe_is_one_text_call_on_the_operators_key(
    store: Store, image_client: ImageClient, openai_client: openai.AsyncOpenAI,
    fake_openai: FakeOpenAI,
) -> None:
    describer = Describer(openai_client, model=MODEL, prices={})
    core = core_for(store, image_client, ceilings=CEILINGS, prices={}, describer=describer)
    hold = Hold(ALICE, GUILD, 0.01)
    described = await core.runner.describe(photo(), hold, language="en")
    assert len(described.suggestions) == 3
    [request] = fake_openai.create_requests()
    assert "tools" not in request and request["model"] == MODEL
    await core.runner.shutdown(0.5)


async def test_a_describe_billed_to_a_server_without_a_usable_key_is_refused(
    store: Store, image_client: ImageClient, openai_client: openai.AsyncOpenAI,
    fake_openai: FakeOpenAI,
) -> None:
    core = core_for(store, image_client, ceilings=CEILINGS, prices={},
                      describer=Describer(openai_client, model=MODEL, prices={}))
    with pytest.raises(UserFacingError) as excinfo:
        await core.runner.describe(photo(), Hold(ALICE, GUILD, 0.01, own_key=True), language="en")
    assert excinfo.value.kind is ErrorKind.own_key_failed
    assert fake_openai.create_requests() == []  # never falls back to the operator's key
    await core.runner.shutdown(0.5)


async def test_the_operators_test_image(image_client: ImageClient, fake_openai: FakeOpenAI) -> None:
    result = await render_test_image(image_client, GenerationRequest(prompt="a test card",
                                                                      options=OPTIONS))
    assert read_lineage(result.images[0].data) == ["a test card"]
    assert fake_openai.generations == 1


async def test_a_member_sees_where_their_waiting_turns_are(
    store: Store, image_client: ImageClient, fake_openai: FakeOpenAI,
) -> None:
    """One generation at a time: the second turn waits first in line behind the first."""
    fake_openai.latency = 0.3
    core = core_for(store, image_client, ceilings=CEILINGS, prices={},
                      scheduler=JobScheduler(max_concurrent=1, per_user_concurrent=1,
                                             per_user_queued=3))
    await core.conversations.open_conversation(THREAD, guild_id=GUILD, parent_channel_id=1,
                                               owner_id=ALICE)
    alice = Actor(user_id=ALICE, guild_id=GUILD, channel_id=1)
    first = await core.conversations.submit(TurnRequest(
        kind=TurnKind.root, author_id=ALICE, prompt="a cat", guild_id=GUILD,
        conversation_id=THREAD), alice)
    second = await core.conversations.submit(TurnRequest(
        kind=TurnKind.reply, author_id=ALICE, prompt="make it a dog", guild_id=GUILD,
        conversation_id=THREAD), alice)
    places = {t.id: place for t, place in await core.runner.unfinished_of(ALICE)}
    assert places[second.id] == 1 and first.id in places
    await core.runner.scheduler.wait_idle()
    assert await core.runner.unfinished_of(ALICE) == []
    await core.runner.shutdown(0.5)
