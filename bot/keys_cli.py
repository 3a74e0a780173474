"""`python -m bot rotate-key-secret [--old-file PATH]`: re-seal every server's own key with
KEY_ENCRYPTION_SECRET. The old secret comes from OLD_KEY_ENCRYPTION_SECRET (or the file named by
`--old-file`); without one, keys sealed the old way with the same secret are re-sealed the new
way. Run it with the bot stopped, then start the bot with the new secret."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from bot.config import Settings
from bot.core.keys import KeyBox, rotate_keys

OLD_ENV = "OLD_KEY_ENCRYPTION_SECRET"


async def rotate(settings: Settings, old_secret: str) -> tuple[int, list[int]]:
    from bot.store import open_store

    assert settings.key_encryption_secret is not None
    store = await open_store(settings)
    try:
        new = KeyBox(settings.key_encryption_secret.get_secret_value())
        return await rotate_keys(store, KeyBox(old_secret), new)
    finally:
        await store.close()


def old_secret_from(path: str | None, new_secret: str) -> str:
    if path is not None:
        return Path(path).read_text(encoding="utf-8").strip()
    return os.environ.get(OLD_ENV, "").strip() or new_secret


def rotate_command(args: Sequence[str], settings: Settings) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bot rotate-key-secret",
        description=f"Re-seal servers' own keys with KEY_ENCRYPTION_SECRET (old secret: {OLD_ENV}).")
    parser.add_argument("--old-file", help="a file holding the old secret (instead of "
                        f"{OLD_ENV})")
    options = parser.parse_args(list(args))
    if settings.key_encryption_secret is None:
        print("rotate-key-secret: set KEY_ENCRYPTION_SECRET to the new secret", file=sys.stderr)
        return 2
    new_secret = settings.key_encryption_secret.get_secret_value()
    try:
        old_secret = old_secret_from(options.old_file, new_secret)
    except OSError as exc:
        print(f"rotate-key-secret: cannot read --old-file: {exc.strerror}", file=sys.stderr)
        return 2
    resealed, unreadable = asyncio.run(rotate(settings, old_secret))
    print(f"Re-sealed {resealed} server key(s) with KEY_ENCRYPTION_SECRET")
    if unreadable:
        print(f"{len(unreadable)} key(s) open with neither secret and were left as they are "
              f"(servers {', '.join(map(str, unreadable))}): the bot marks them failed at start "
              "and their owners are told", file=sys.stderr)
        return 1
    return 0
