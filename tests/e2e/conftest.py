"""Fixtures for end-to-end tests: both fakes on 127.0.0.1 and settings pointing the bot at them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.config import Settings
from tests.contract.discord_gateway import gateway_problems
from tests.contract.discord_openapi import contract_problems
from tests.contract.openai_types import contract_problems as openai_contract_problems
from tests.fakes.discord_server import FakeDiscord
from tests.fakes.openai_server import FakeOpenAI
from tests.pg import fresh_database

SECRET_TOKEN = "fake-discord-token-e2e-7f3a9c"
SECRET_KEY = "test-openai-key-e2e-51d0b2"  # not a real key format on purpose


@pytest.fixture
async def openai_fake() -> AsyncIterator[FakeOpenAI]:
    fake = FakeOpenAI()
    await fake.start()
    yield fake
    await fake.stop()
    # Every event and answer of the fake against the openai SDK's types, every request body the
    # bot sent against ResponseCreateParams (tests/contract/openai_types.py).
    problems = openai_contract_problems(fake)
    if problems:
        shown = "\n  ".join(dict.fromkeys(problems))
        pytest.fail(f"OpenAI traffic disagrees with the SDK's types:\n  {shown}", pytrace=False)


@pytest.fixture
async def discord_fake() -> AsyncIterator[FakeDiscord]:
    fake = FakeDiscord()
    await fake.start()
    yield fake
    await fake.stop()
    # Every request the bot made, and every answer the fake gave, against Discord's OpenAPI spec
    # (tests/contract/discord_openapi.py; nothing is checked where the spec is not available), and
    # every dispatch the fake gateway sent against discord-api-types' gateway types (the
    # committed schemas of tests/contract/discord_gateway.py).
    found = {
        "REST traffic disagrees with Discord's OpenAPI spec": contract_problems(fake.request_log),
        "Gateway dispatches disagree with discord-api-types": gateway_problems(fake.gateway.sessions),
    }
    shown = [f"{title}:\n  " + "\n  ".join(dict.fromkeys(problems))
             for title, problems in found.items() if problems]
    if shown:
        pytest.fail("\n".join(shown), pytrace=False)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Suites marked `both_backends` run every test on SQLite and on PostgreSQL (unless the test
    is marked `sqlite_only`: it is about the SQLite file itself, or `one_backend`: the database
    plays no part in it, as in a fault of OpenAI or Discord)."""
    if "backend" not in metafunc.fixturenames:
        return
    marked = metafunc.definition.get_closest_marker("both_backends") is not None
    if marked and not any(metafunc.definition.get_closest_marker(name)
                          for name in ("sqlite_only", "one_backend")):
        metafunc.parametrize("backend", ["sqlite", "postgres"], indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture
async def database_url(backend: str) -> AsyncIterator[str | None]:
    """A fresh PostgreSQL database for the test (dropped after it), or None for SQLite."""
    if backend == "sqlite":
        yield None
        return
    async with fresh_database("imagine_e2e") as url:
        yield url


@pytest.fixture
def make_settings(
    tmp_path: Path, discord_fake: FakeDiscord, openai_fake: FakeOpenAI, database_url: str | None
) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "discord_token": SECRET_TOKEN,
            "openai_api_key": SECRET_KEY,
            "openai_base_url": openai_fake.base_url,
            "discord_api_base": discord_fake.api_base,
            "discord_gateway_url": discord_fake.gateway_url,
            "database_path": tmp_path / "imagine.db",
            "database_url": database_url,
            "progress_edit_interval": 0.05,
            "retry_base_delay": 0.01,
            "shutdown_grace_seconds": 2.0,
            "log_level": "DEBUG",
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    return make
