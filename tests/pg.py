"""A throw-away PostgreSQL database per test, on the server named by TEST_DATABASE_URL.

Without TEST_DATABASE_URL the PostgreSQL cases skip, saying so; in CI (CI=true) they fail
instead, so a CI run can never pass without having exercised PostgreSQL.
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

MISSING = "TEST_DATABASE_URL is not set: PostgreSQL cases need a server (see tests/README.md)"


def server_url() -> str:
    """The server to create test databases on, or skip (fail in CI) without one."""
    url = os.environ.get("TEST_DATABASE_URL", "").strip()
    if url:
        return url
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{MISSING}; CI must run the PostgreSQL cases")
    pytest.skip(MISSING)


def with_database(url: str, name: str) -> str:
    """The same server URL pointing at another database."""
    base, _, query_string = url.partition("?")
    scheme, _, rest = base.partition("://")
    host = rest.split("/", 1)[0]
    return f"{scheme}://{host}/{name}" + (f"?{query_string}" if query_string else "")


@asynccontextmanager
async def fresh_database(prefix: str = "imagine_test") -> AsyncIterator[str]:
    """Create a uniquely named database, yield its URL, drop it (even if a pool is still open)."""
    import asyncpg

    server = server_url()
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield with_database(server, name)
    finally:
        admin = await asyncpg.connect(server)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


def query(url: str, sql: str, *args: Any) -> list[dict[str, Any]]:
    """Run one query on its own connection in a helper thread and return plain dicts: usable from
    synchronous code (wait_for predicates) while the test's event loop keeps running."""
    import asyncpg

    result: list[list[dict[str, Any]]] = []
    errors: list[BaseException] = []

    async def run() -> None:
        conn = await asyncpg.connect(url)
        try:
            result.append([dict(r) for r in await conn.fetch(sql, *args)])
        finally:
            await conn.close()

    def target() -> None:
        try:
            asyncio.run(run())
        except BaseException as exc:  # handed back to the caller below
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]
