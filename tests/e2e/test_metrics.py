"""Metrics for operators: with METRICS_PORT set, the running bot serves Prometheus metrics and a
health check over HTTP, fed by real turns through both fakes. Off by default."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.core.errors import ErrorKind, GenerationError, UserFacingError
from bot.core.models import ImageRef, Turn, TurnKind, TurnStatus
from bot.core.options import ImageOptions
from bot.metrics import Metrics
from tests.e2e.harness import custom_ids, running, start_conversation, wait_results
from tests.fakes.openai_server import Fault

PRICES = {"default": {"text_input": 1.0, "text_output": 4.0, "image_input": 10.0,
                      "image_output": 40.0}}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


async def get(url: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, response.headers.get("Content-Type", ""), await response.text()


def assert_after_three_turns(m: Samples, spent: float) -> None:
    """The metrics after one done, one cancelled and one moderation-blocked turn."""
    assert value(m, "imagine_turns_submitted_total") == 3
    assert value(m, "imagine_turns_total", outcome="done", error_kind="") == 1
    assert value(m, "imagine_turns_total", outcome="failed", error_kind="moderation") == 1
    assert value(m, "imagine_turns_total", outcome="cancelled", error_kind="cancelled") == 1
    assert value(m, "imagine_api_errors_total", kind="moderation") == 1
    assert [k for k in m if k[0] == "imagine_api_errors_total"] == [
        ("imagine_api_errors_total", frozenset({("kind", "moderation")}))]
    assert value(m, "imagine_images_total") == 1
    # latency from start to finish: the done turn took the fake's 0.6 s; the cancelled one
    # never started
    assert value(m, "imagine_generation_seconds_count", outcome="done") == 1
    assert 0.5 <= value(m, "imagine_generation_seconds_sum", outcome="done") < 5  # type: ignore[operator]
    assert value(m, "imagine_generation_seconds_count", outcome="failed") == 1
    assert value(m, "imagine_generation_seconds_count", outcome="cancelled") is None
    assert spent > 0
    assert value(m, "imagine_estimated_spend_usd_total") == pytest.approx(spent)
    assert value(m, "imagine_queue_depth") == 0 and value(m, "imagine_generations_running") == 0
    assert any(name.startswith("process_") for name, _ in m)  # the usual process metrics


async def test_metrics_and_health_over_http(discord_fake, openai_fake, make_settings):
    settings = make_settings(metrics_port=0, max_concurrent_generations=1, price_table=PRICES)
    alice, bob = discord_fake.add_user("alice"), discord_fake.add_user("bob")
    openai_fake.latency = 0.6
    async with running(settings) as bot:
        server = bot.metrics_server
        assert server is not None and server.port > 0
        base = f"http://{settings.metrics_host}:{server.port}"

        status, ctype, body = await get(f"{base}/healthz")
        assert (status, ctype) == (200, "application/json")
        assert json.loads(body) == {"status": "ok", "ready": True, "queued": 0, "running": 0}

        # one turn runs, another waits behind it
        await start_conversation(discord_fake, alice, "works")
        waiting = await start_conversation(discord_fake, bob, "waits")
        # "position 1" is shown once the turn is in the queue (the message is posted just before)
        progress = await discord_fake.wait_for(
            lambda: next((m for m in discord_fake.messages(waiting)
                          if "position 1" in m.content), None),
            5, what="bob's progress message at position 1")
        _, _, body = await get(f"{base}/healthz")
        assert json.loads(body) == {"status": "ok", "ready": True, "queued": 1, "running": 1}
        _, _, text = await get(f"{base}/metrics")
        during = parse(text)
        assert value(during, "imagine_queue_depth") == 1
        assert value(during, "imagine_generations_running") == 1

        # the waiting one is cancelled, the running one finishes, a third is blocked by the API
        cancel_id = next(c for c in custom_ids(progress) if c.startswith("imagine:cancel:"))
        await discord_fake.click(bob, progress.id, cancel_id)
        first_thread = next(t for t in discord_fake.threads if t != waiting)
        await wait_results(discord_fake, first_thread, 1)
        openai_fake.latency = 0.05
        openai_fake.add_fault(Fault.moderation("http"))
        await start_conversation(discord_fake, alice, "blocked")

        def statuses() -> list[str]:
            with sqlite3.connect(settings.database_path) as db:
                return [r[0] for r in db.execute("SELECT status FROM turns ORDER BY id")]

        await discord_fake.wait_for(lambda: statuses() == ["done", "cancelled", "failed"], 5,
                                    what="done, cancelled, failed")
        for _ in range(100):  # the job leaves its slot just after the turn is recorded
            _, _, body = await get(f"{base}/healthz")
            if json.loads(body)["running"] == 0:
                break
            await asyncio.sleep(0.02)
        status, ctype, text = await get(f"{base}/metrics")
        not_found, _, _ = await get(f"{base}/nothing-here")

    assert status == 200 and ctype.startswith("text/plain") and "version=" in ctype
    assert not_found == 404
    assert json.loads(body) == {"status": "ok", "ready": True, "queued": 0, "running": 0}
    with sqlite3.connect(settings.database_path) as db:
        spent = db.execute("SELECT SUM(cost_usd) FROM turns").fetchone()[0]
    assert_after_three_turns(parse(text), spent)


async def test_metrics_are_off_by_default(discord_fake, openai_fake, make_settings):
    settings = make_settings()
    assert settings.metrics_port is None
    async with running(settings) as bot:
        assert bot.metrics_server is None
        assert not any(isinstance(listener, Metrics) for listener in bot.core.outcomes.listeners)


# ---------------------------------------------------------------- the listener on its own
def _turn(turn_id: int, **changes: Any) -> Turn:
    fields: dict[str, Any] = dict(
        id=turn_id, conversation_id=1, parent_id=None, kind=TurnKind.root, guild_id=1,
        author_id=2, prompt="p", options=ImageOptions(), status=TurnStatus.queued,
    )
    fields.update(changes)
    return Turn(**fields)


def test_the_listener_counts_outcomes_latency_api_errors_and_spend():
    now = [100.0]
    metrics = Metrics(queued=lambda: 4, running=lambda: 2, clock=lambda: now[0])
    done = _turn(1, status=TurnStatus.done, cost_usd=0.25,
                 images=(ImageRef("ig_1"), ImageRef("ig_2")))
    for event in ("queued", "running"):
        metrics(event, _turn(1), None)
    now[0] += 12.5
    metrics("done", done, None)
    metrics("queued", _turn(2), None)
    metrics("running", _turn(2), None)
    now[0] += 1.0
    metrics("failed", _turn(2), GenerationError(ErrorKind.rate_limited, retryable=True))
    metrics("running", _turn(3), None)
    metrics("failed", _turn(3), UserFacingError(ErrorKind.upload_failed))  # Discord refused
    metrics("running", _turn(4), None)
    metrics("cancelled", _turn(4), UserFacingError(ErrorKind.cancelled))

    m = parse(metrics.exposition().decode())
    assert value(m, "imagine_turns_submitted_total") == 2
    assert value(m, "imagine_turns_total", outcome="done", error_kind="") == 1
    assert value(m, "imagine_turns_total", outcome="failed", error_kind="rate_limited") == 1
    assert value(m, "imagine_turns_total", outcome="failed", error_kind="upload_failed") == 1
    assert value(m, "imagine_turns_total", outcome="cancelled", error_kind="cancelled") == 1
    # only the API's errors count as API errors (not Discord's, not a user's cancel)
    assert value(m, "imagine_api_errors_total", kind="rate_limited") == 1
    assert value(m, "imagine_api_errors_total", kind="upload_failed") is None
    assert value(m, "imagine_api_errors_total", kind="cancelled") is None
    assert value(m, "imagine_generation_seconds_sum", outcome="done") == 12.5
    assert value(m, "imagine_generation_seconds_bucket", outcome="done", le="10.0") == 0
    assert value(m, "imagine_generation_seconds_bucket", outcome="done", le="20.0") == 1
    assert value(m, "imagine_generation_seconds_sum", outcome="failed") == 1.0
    assert value(m, "imagine_images_total") == 2
    assert value(m, "imagine_estimated_spend_usd_total") == 0.25
    assert value(m, "imagine_queue_depth") == 4 and value(m, "imagine_generations_running") == 2
    assert metrics.health(ready=False) == {"status": "starting", "ready": False, "queued": 4,
                                           "running": 2}
    assert metrics._started == {}  # nothing left behind for finished turns


async def healthcheck(environ: dict[str, str]) -> int:
    """`python -m bot.healthcheck` (what the container's HEALTHCHECK runs) with `environ` only."""
    import os
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("METRICS_")} | environ
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot.healthcheck", env=env,
                                                stderr=asyncio.subprocess.DEVNULL)
    return await asyncio.wait_for(proc.wait(), 30)


async def test_the_container_healthcheck_follows_healthz(discord_fake, openai_fake, make_settings):
    from tests.e2e.harness import sqlite_write_lock

    settings = make_settings(metrics_port=0)
    assert await healthcheck({}) == 0  # metrics off: nothing to ask, healthy
    async with running(settings) as bot:
        assert bot.metrics_server is not None
        port = str(bot.metrics_server.port)
        assert await healthcheck({"METRICS_PORT": port, "METRICS_HOST": "0.0.0.0"}) == 0
        async with sqlite_write_lock(settings.database_path):  # /healthz: 503, not writable
            assert await healthcheck({"METRICS_PORT": port}) == 1
    assert await healthcheck({"METRICS_PORT": port}) == 1  # stopped: nobody answers
