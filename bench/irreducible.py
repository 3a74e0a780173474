"""The irreducible client: what any program must do to get N images from the API, and no more.

``python -m bench.irreducible --base-url URL --n N --tool JSON [--model M]`` prints one JSON
object. Plain asyncio and the same SDK as the bot (``AsyncOpenAI``, ``max_retries=0``): N
concurrent ``responses.create(..., stream=True)`` with the same request the bot sends (same
input shape, tool parameters, ``tool_choice``, ``store``/``background``), reading every event and
base64-decoding each partial and final image. No Discord, no database, no previews.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import resource
import sys
import time
from typing import Any

from openai import AsyncOpenAI


async def one(client: AsyncOpenAI, params: dict[str, Any], prompt: str) -> dict[str, Any]:
    started = time.monotonic()
    stream = await client.responses.create(
        **params,
        input=[{"role": "user", "content": [{"type": "input_text", "text": prompt}]}],
        stream=True,
    )
    partials = images = size = 0
    async with stream:
        async for event in stream:
            kind = event.type
            if kind == "response.image_generation_call.partial_image":
                base64.b64decode(event.partial_image_b64)
                partials += 1
            elif kind == "response.output_item.done" and event.item.type == "image_generation_call":
                size += len(base64.b64decode(event.item.result or ""))
                images += 1
            elif kind in ("response.completed", "response.failed", "response.incomplete"):
                break
    return {"prompt": prompt, "start": started, "end": time.monotonic(), "partials": partials,
            "images": images, "bytes": size}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    client = AsyncOpenAI(api_key="sk-bench", base_url=args.base_url, max_retries=0, timeout=600)
    params: dict[str, Any] = {
        "model": args.model,
        "tools": [json.loads(args.tool)],
        "tool_choice": {"type": "image_generation"},
        "store": True,
    }
    if args.background:
        params["background"] = True
    # warm-up outside the measurement: the SDK imports its resources and types lazily, which
    # a long-running bot has long done before its first turn
    import openai.types.responses  # noqa: F401

    _ = client.responses
    try:
        usage0 = resource.getrusage(resource.RUSAGE_SELF)
        wall0 = time.time()
        results = await asyncio.gather(
            *(one(client, params, args.prompt_format.format(i=i)) for i in range(args.n)),
            return_exceptions=True,
        )
        usage1 = resource.getrusage(resource.RUSAGE_SELF)
    finally:
        await client.close()
    ok = [r for r in results if isinstance(r, dict)]
    failed = [repr(r) for r in results if not isinstance(r, dict)]
    return {
        "n": args.n,
        "ok": sum(1 for r in ok if r["images"]),
        "failed": failed[:5],
        "wall_start": wall0,
        "makespan": (max(r["end"] for r in ok) - min(r["start"] for r in ok)) if ok else None,
        "requests": ok,
        "cpu_seconds": (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime),
        "max_rss_kb": usage1.ru_maxrss,
        "pid": os.getpid(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--tool", required=True, help="the image_generation tool, as JSON")
    parser.add_argument("--model", default="gpt-5.5")
    parser.add_argument("--prompt-format", default="bench turn {i}")
    parser.add_argument("--no-background", dest="background", action="store_false")
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(run(args))), flush=True)


if __name__ == "__main__":
    sys.exit(main())
