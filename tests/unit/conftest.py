"""Shared fixtures for the unit tests of the core: a fake Responses API, a real SDK client, a store."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import openai
import pytest

from bot.core.image_client import ImageClient, RetryPolicy
from bot.store.postgres.database import PostgresDatabase
from bot.store.repositories import Store
from tests.fakes.openai_server import FakeOpenAI
from tests.pg import fresh_database

MODEL = "gpt-5.5"
FAST_RETRY = RetryPolicy(base_delay=0.01, max_delay=0.05)


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeOpenAI]:
    server = FakeOpenAI(latency=0.0, allow_small_sizes=True)  # 256x256 keeps the tests fast
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def openai_client(fake_openai: FakeOpenAI) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=fake_openai.base_url, api_key="sk-test", max_retries=0, timeout=10.0
    ) as client:
        yield client


@pytest.fixture
def image_client(openai_client: openai.AsyncOpenAI) -> ImageClient:
    return ImageClient(openai_client, model=MODEL, retry=FAST_RETRY)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "bot.db"


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    """Which store backend a test runs on: tests that take `store` run once on each."""
    return str(request.param)


StoreOpener = Callable[[], Awaitable[Store]]


@pytest.fixture
async def store_opener(backend: str, db_path: Path) -> AsyncIterator[StoreOpener]:
    """Opens another store on this test's database (a "previous run", a second process)."""
    if backend == "sqlite":
        yield lambda: Store.open(db_path)
        return
    async with fresh_database() as url:

        async def open_postgres() -> Store:
            return Store(await PostgresDatabase.open(url))

        yield open_postgres


@pytest.fixture
async def store(store_opener: StoreOpener) -> AsyncIterator[Store]:
    opened = await store_opener()
    try:
        yield opened
    finally:
        await opened.close()
