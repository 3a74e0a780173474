"""The e2e harness's own promises: `quiet` waits out a late request, and gives up on a bot that
never stops talking."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from tests.e2e.harness import quiet


async def test_quiet_waits_for_a_request_that_comes_late() -> None:
    discord: Any = SimpleNamespace(request_log=[])
    openai: Any = SimpleNamespace(requests=[])

    async def duplicate_later() -> None:
        await asyncio.sleep(0.2)
        openai.requests.append("POST /v1/responses")
        await asyncio.sleep(0.2)
        discord.request_log.append("POST /channels/1/messages")

    late = asyncio.create_task(duplicate_later())
    await quiet(discord, openai, settle=0.3)
    assert late.done()
    assert discord.request_log == ["POST /channels/1/messages"]
    assert openai.requests == ["POST /v1/responses"]


async def test_quiet_gives_up_on_a_bot_that_keeps_talking() -> None:
    discord: Any = SimpleNamespace(request_log=[])

    async def chatter() -> None:
        while True:
            discord.request_log.append("PATCH /channels/1/messages/2")
            await asyncio.sleep(0.02)

    task = asyncio.create_task(chatter())
    try:
        with pytest.raises(TimeoutError):
            await quiet(discord, settle=0.3, timeout=1.0)
    finally:
        task.cancel()
