"""Prometheus metrics and a health endpoint for operators. Off unless `METRICS_PORT` is set.

`Metrics` is a turn listener (`core.outcomes.listeners.append(metrics)`): the core calls
it as `metrics(event, turn, error)` for every step of every turn (queued, running, done, failed,
cancelled). Queue depth and running generations are read from the scheduler when scraped.
`MetricsServer` serves them over HTTP with aiohttp (`/metrics`, `/healthz`) in the bot's own event
loop. Nothing here knows about Discord: what it needs from the bot comes in as plain callables.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

from bot.core.errors import ErrorKind, GenerationError, UserFacingError
from bot.core.models import Turn

log = logging.getLogger(__name__)

# Errors that come from the image API (as opposed to refusals, Discord or our own code).
API_ERROR_KINDS = frozenset({
    ErrorKind.invalid_request, ErrorKind.auth, ErrorKind.rate_limited, ErrorKind.quota,
    ErrorKind.server, ErrorKind.timeout, ErrorKind.connection, ErrorKind.moderation,
    ErrorKind.no_output,
})
# Image generations take seconds to minutes; tests run in fractions of a second.
LATENCY_BUCKETS = (0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 45, 60, 90, 120, 180, 300, 600)
TERMINAL_EVENTS = ("done", "failed", "cancelled")


class Metrics:
    """The bot's metrics in a registry of their own (so several bots can share a process)."""

    def __init__(
        self,
        *,
        queued: Callable[[], int],
        running: Callable[[], int],
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._queued = queued
        self._running = running
        self._clock = clock
        self._started: dict[int, float] = {}
        r = self.registry
        self.submitted = Counter(
            "imagine_turns_submitted", "Turns accepted into the queue.", registry=r
        )
        self.turns = Counter(
            "imagine_turns",
            "Finished turns by outcome (done, failed, cancelled) and error kind.",
            ["outcome", "error_kind"],
            registry=r,
        )
        self.images = Counter("imagine_images", "Images delivered.", registry=r)
        self.queue_depth = Gauge(
            "imagine_queue_depth", "Turns waiting for a generation slot.", registry=r
        )
        self.queue_depth.set_function(lambda: float(self._queued()))
        self.running_gauge = Gauge(
            "imagine_generations_running", "Generations in progress.", registry=r
        )
        self.running_gauge.set_function(lambda: float(self._running()))
        self.latency = Histogram(
            "imagine_generation_seconds",
            "Time from a turn starting to run until it finished, by outcome.",
            ["outcome"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.api_errors = Counter(
            "imagine_api_errors", "Turns failed by an image API error, by kind.", ["kind"],
            registry=r,
        )
        self.spend = Counter(
            "imagine_estimated_spend_usd",
            "Estimated spend in USD (token usage times the price table).",
            registry=r,
        )
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)

    # The `TurnListener` protocol of the conversation service.
    def __call__(self, event: str, turn: Turn, error: UserFacingError | None) -> None:
        if event == "queued":
            self.submitted.inc()
        elif event == "running":
            self._started[turn.id] = self._clock()
        elif event in TERMINAL_EVENTS:
            self._finished(event, turn, error)

    def _finished(self, outcome: str, turn: Turn, error: UserFacingError | None) -> None:
        kind = error.kind.name if error is not None else ""
        self.turns.labels(outcome=outcome, error_kind=kind).inc()
        started = self._started.pop(turn.id, None)
        if started is not None:
            self.latency.labels(outcome=outcome).observe(max(0.0, self._clock() - started))
        if outcome == "done":
            self.images.inc(len(turn.images))
            if turn.cost_usd > 0:
                self.spend.inc(turn.cost_usd)
        elif error is not None and (
            isinstance(error, GenerationError) or error.kind in API_ERROR_KINDS
        ) and error.kind is not ErrorKind.cancelled:
            self.api_errors.labels(kind=kind).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def health(self, *, ready: bool, writable: bool = True) -> dict[str, object]:
        status = "ok" if ready and writable else ("starting" if not ready else "database_unwritable")
        return {
            "status": status,
            "ready": ready,
            "queued": int(self._queued()),
            "running": int(self._running()),
        }


class MetricsServer:
    """`GET /metrics` (Prometheus text format) and `GET /healthz` (JSON) on one port.

    `port=0` picks a free port; `port` holds the real one after `start()`.
    """

    def __init__(
        self, metrics: Metrics, *, host: str, port: int, ready: Callable[[], bool],
        writable: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        self.metrics = metrics
        self.host = host
        self.port = port
        self._ready = ready
        self._writable = writable
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        log.info("Metrics on %s/metrics (health: /healthz)", self.url)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=self.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def _healthz(self, request: web.Request) -> web.Response:
        """200 when connected and ready and the database takes writes; 503 (same JSON) else."""
        ready = bool(self._ready())
        writable = await self._writable() if self._writable is not None else True
        body = self.metrics.health(ready=ready, writable=writable)
        return web.Response(
            status=200 if ready and writable else 503,
            body=json.dumps(body).encode(), headers={"Content-Type": "application/json"},
        )
