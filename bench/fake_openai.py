"""The fake Responses API (``tests.fakes.openai_server.FakeOpenAI``) as a benchmark process.

``python -m bench.fake_openai --latency 10 [--payload realistic|synthetic] [--payload-dir D]``
prints ``READY <base_url> <control_url>`` and serves until SIGTERM.

It is the test fake with ``static_images=True`` (one pre-rendered image per size/format, so
the fake spends no CPU drawing), plus two things the benchmark needs and the test fake does
not offer as a process:

* ``--payload realistic`` (default) serves photo-like PNG bytes (about 2.6 MB final, 1.3-1.5 MB
  partial frames at 1536x1024, see ``bench/payload.py``) instead of the fake's 30 KB
  solid-colour picture; ``synthetic`` keeps the fake's own images.
* a control server on a second port: ``GET /timings`` returns, for every generation, its
  prompt, when the create request arrived (after its body was read), when the fake emitted
  ``response.completed`` (server-side generation time, independent of how fast the client
  reads), when the create's stream was fully written, and how many SSE bytes it produced.
  Times are ``time.time()`` (wall clock, comparable with the fake Discord's). ``GET /requests``
  lists every HTTP request (method, path, query; ``time.monotonic()`` at arrival).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextvars
import json
import sys
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.fakes.openai_server import FakeOpenAI, _Rendered
from tests.fakes.serving import serve_control_until_signalled

# the runs created by the current create request (aiohttp runs each request in its own task)
_CREATED_HERE: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "created_here", default=None
)


class BenchOpenAI(FakeOpenAI):
    def __init__(self, *, payload: str, payload_dir: str | None, **kwargs: Any) -> None:
        super().__init__(static_images=True, **kwargs)
        self.payload = payload
        self.payload_dir = payload_dir
        self.timings: dict[str, dict[str, Any]] = {}
        self._realistic: dict[tuple[int, int], _Rendered] = {}

    # -------------------------------------------------------------- realistic bytes
    def _realistic_for(self, width: int, height: int) -> _Rendered:
        key = (width, height)
        if key not in self._realistic:
            final: bytes
            frames: tuple[bytes, ...]
            folder = Path(self.payload_dir) if self.payload_dir else None
            if folder is not None and (folder / f"final-{width}x{height}.png").exists():
                final = (folder / f"final-{width}x{height}.png").read_bytes()
                frames = tuple(
                    (folder / f"partial{i}-{width}x{height}.png").read_bytes() for i in range(3)
                    if (folder / f"partial{i}-{width}x{height}.png").exists()
                )
            else:
                from bench.payload import realistic_set

                final, frames = realistic_set(width, height, 3)
            self._realistic[key] = _Rendered(
                base64.b64encode(final).decode(),
                tuple(base64.b64encode(f).decode() for f in frames),
            )
        return self._realistic[key]

    async def _render(self, run):  # type: ignore[no-untyped-def]
        spec = run.spec
        if self.payload != "realistic" or spec is None or spec.fmt != "png":
            return await super()._render(run)
        rendered = self._realistic_for(spec.width, spec.height)
        return _Rendered(rendered.final_b64, rendered.partials_b64[: spec.partial_images])

    # -------------------------------------------------------------- timings
    def _prepare(self, body, fault):  # type: ignore[no-untyped-def]
        run = super()._prepare(body, fault)
        self.timings[run.id] = {
            "id": run.id,
            "prompt": run.prompt,
            "stream": bool(body.get("stream")),
            "background": run.background,
            "arrived": time.time(),
            "created": None,
            "completed": None,
            "stream_done": None,
            "sse_bytes": 0,
            "tools": body.get("tools"),
        }
        holder = _CREATED_HERE.get()
        if holder is not None:
            holder.append(run.id)
        return run

    def _emit(self, run, event_type, payload):  # type: ignore[no-untyped-def]
        super()._emit(run, event_type, payload)
        record = self.timings.get(run.id)
        if record is not None:
            record["sse_bytes"] += len(run.events[-1][1])
            if event_type == "response.created":
                record["created"] = time.time()
            elif event_type in ("response.completed", "response.failed", "response.incomplete"):
                record["completed"] = time.time()
                record["terminal"] = event_type

    async def _handle_create(self, request):  # type: ignore[no-untyped-def]
        mine: list[str] = []
        _CREATED_HERE.set(mine)
        try:
            return await super()._handle_create(request)
        finally:
            now = time.time()
            for run_id in mine:
                self.timings[run_id]["stream_done"] = now


async def _serve(args: argparse.Namespace) -> None:
    fake = BenchOpenAI(
        latency=args.latency, host="127.0.0.1", port=args.port,
        payload=args.payload, payload_dir=args.payload_dir,
    )
    if args.payload == "realistic":
        fake._realistic_for(1536, 1024)  # decode / generate before READY, not during a run
    await fake.start()

    async def timings(request: web.Request) -> web.Response:
        return web.Response(
            body=json.dumps(list(fake.timings.values())).encode(),
            content_type="application/json",
        )

    async def requests(request: web.Request) -> web.Response:
        rows = [
            {"method": r.method, "path": r.path, "query": r.query, "time": r.time}
            for r in fake.requests
        ]
        return web.Response(body=json.dumps(rows).encode(), content_type="application/json")

    async def reset(request: web.Request) -> web.Response:
        fake.timings.clear()
        return web.Response(text="ok")

    control = web.Application()
    control.router.add_get("/timings", timings)
    control.router.add_get("/requests", requests)
    control.router.add_post("/reset", reset)
    await serve_control_until_signalled(control, fake.base_url, fake.stop)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="fake Responses API for the benchmark")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=10.0)
    parser.add_argument("--payload", choices=("synthetic", "realistic"), default="synthetic")
    parser.add_argument("--payload-dir", default=None)
    asyncio.run(_serve(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
