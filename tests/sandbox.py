"""Try imagine-bot offline: both fakes plus the real bot (`python -m bot`), one scripted conversation.

    python -m tests.sandbox [--out sandbox-output]

Starts the fake Discord and the fake Responses API on 127.0.0.1, runs `python -m bot` as a child
process configured only by environment variables, plays `/imagine`, two refinements and one
branch (a reply to the first result), and writes every posted image plus `transcript.md` to the
output folder. No Discord account, no API key, no network.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from tests.e2e.harness import BotProcess, image_attachments, results, start_conversation, wait_results
from tests.fakes.discord_server import FakeDiscord
from tests.fakes.openai_server import FakeOpenAI, read_lineage

SCRIPT = [
    ("imagine", "a lighthouse on a cliff at dawn, watercolour"),
    ("reply", "add a small red sailboat in the bay"),
    ("reply", "make it a stormy night"),
    ("branch", "instead, make the first one autumn with golden trees"),
]


async def play(out: Path, *, latency: float = 0.5) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    discord_fake, openai_fake = FakeDiscord(), FakeOpenAI(latency=latency)
    await discord_fake.start()
    await openai_fake.start()
    workdir = Path(tempfile.mkdtemp(prefix="imagine-sandbox-"))
    env = {
        "DISCORD_TOKEN": "sandbox-discord-token",
        "OPENAI_API_KEY": "sk-sandbox-key",
        "OPENAI_BASE_URL": openai_fake.base_url,
        "DISCORD_API_BASE": discord_fake.api_base,
        "DISCORD_GATEWAY_URL": discord_fake.gateway_url,
        "DATABASE_PATH": str(workdir / "imagine.db"),
        "PROGRESS_EDIT_INTERVAL": "0.2",
        "LOG_LEVEL": "INFO",
    }
    bot = BotProcess(env, log_path=str(out / "bot.log"))
    written: list[Path] = []
    lines = ["# imagine-bot sandbox transcript", ""]
    try:
        await bot.start(discord_fake)
        user = discord_fake.add_user("sandbox-user")
        thread_id = 0
        started = time.monotonic()
        for step, (kind, prompt) in enumerate(SCRIPT):
            if kind == "imagine":
                thread_id = await start_conversation(discord_fake, user, prompt)
            elif kind == "reply":
                await discord_fake.say(user, thread_id, prompt)
            else:
                first = results(discord_fake, thread_id)[0]
                await discord_fake.say(user, thread_id, prompt, reply_to=first.id)
            await wait_results(discord_fake, thread_id, step + 1, timeout=60)
            lines.append(f"**user** ({kind}): {prompt}")
        for n, message in enumerate(results(discord_fake, thread_id), 1):
            for attachment in image_attachments(message):
                path = out / f"{n:02d}-{attachment.filename}"
                path.write_bytes(attachment.data)
                written.append(path)
                chain = " → ".join(read_lineage(attachment.data))
                lines += ["", f"**bot** (message {message.id}):", "", message.content, "",
                          f"image: `{path.name}` — lineage: {chain}"]
        lines += ["", f"_{len(written)} images in {time.monotonic() - started:.1f}s; "
                  f"{len(openai_fake.create_requests())} API requests._"]
        (out / "transcript.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    finally:
        await bot.stop()
        await discord_fake.stop()
        await openai_fake.stop()
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("sandbox-output"))
    parser.add_argument("--latency", type=float, default=0.5, help="fake API seconds per image")
    args = parser.parse_args()
    written = asyncio.run(play(args.out, latency=args.latency))
    print(f"Wrote {len(written)} images and transcript.md to {args.out}/")
    return 0 if len(written) == len(SCRIPT) else 1


if __name__ == "__main__":
    sys.exit(main())
