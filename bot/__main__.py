"""`python -m bot`: load settings, set up logging, run. `python -m bot backup PATH`: back up the DB.
`python -m bot doctor [--generate] [--probe …]`: check the set-up before inviting users (see
bot/doctor.py). `python -m bot rotate-key-secret [--old-file PATH]`: re-seal servers' own keys
(bot/keys_cli.py). `python -m bot --help` (and `doctor --help`) print the usage and exit 0.

A missing or invalid setting prints one line naming the variable and exits with status 2. A
start-up failure the operator can fix (Discord unreachable, a rejected token or key, the Message
Content intent not enabled, an unknown model) prints one line saying what to do and exits 1.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from bot.config import Settings
from bot.logging_setup import setup_logging

if TYPE_CHECKING:
    from bot.app import ImagineBot

log = logging.getLogger("bot")


def config_error(exc: ValidationError) -> str:
    """One line that names each bad variable and what is wrong with it."""
    problems = []
    for error in exc.errors():
        name = "_".join(str(part) for part in error["loc"]).upper() or "settings"
        if error["type"] == "missing":
            problems.append(f"{name} is not set")
        else:
            problems.append(f"{name}: {error['msg'].removeprefix('Value error, ')}")
    return "Configuration error: " + "; ".join(problems) + " (set it in .env or the environment)"


def load_settings() -> Settings:
    try:
        return Settings()  # type: ignore[call-arg]
    except ValidationError as exc:
        print(config_error(exc), file=sys.stderr)
        raise SystemExit(2) from None


async def serve(bot: ImagineBot, settings: Settings, stop: asyncio.Event) -> None:
    """Run `bot` until it stops by itself or `stop` is set, then shut it down gracefully."""
    from bot.app import apply_discord_endpoints

    apply_discord_endpoints(settings)
    async with bot:
        runner = asyncio.create_task(bot.start(settings.discord_token.get_secret_value()))
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if stopper in done:
            log.info("Shutting down")
            await bot.close()
        stopper.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        if not runner.cancelled() and runner.exception() is not None:
            raise runner.exception()  # type: ignore[misc]


async def run(settings: Settings) -> None:
    from bot.app import ImagineBot

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await serve(ImagineBot(settings), settings, stop)


def backup_command(args: list[str]) -> int:
    """`python -m bot backup PATH`: copy the live SQLite database."""
    if len(args) != 1:
        print("usage: python -m bot backup PATH", file=sys.stderr)
        return 2
    settings = load_settings()
    if settings.database_url is not None:
        print("DATABASE_URL is PostgreSQL: back it up with pg_dump (e.g. pg_dump -Fc "
              "\"$DATABASE_URL\" > imagine.dump)", file=sys.stderr)
        return 2
    from bot.store.database import backup

    backup(settings.database_path, args[0])
    print(f"Backed up {settings.database_path} to {args[0]}")
    return 0


def _doctor_args(args: list[str]) -> dict[str, Any] | None:
    """The doctor's options from its arguments; None when they do not parse."""
    flags, out_path = list(args), None
    if "--out" in flags:
        at = flags.index("--out")
        if at + 1 >= len(flags):
            return None
        out_path = Path(flags.pop(at + 1))
        flags.pop(at)
    if any(f not in ("--generate", "--probe", "--yes") for f in flags):
        return None
    if ("--yes" in flags or out_path is not None) and "--probe" not in flags:
        return None
    return {"generate": "--generate" in flags, "probe": "--probe" in flags,
            "yes": "--yes" in flags, "probe_out": out_path}


def doctor_command(args: list[str]) -> int:
    """`python -m bot doctor [--generate] [--probe [--yes] [--out PATH]]` (bot/doctor.py)."""
    from bot.doctor import HELP, USAGE, run_doctor

    if any(arg in ("-h", "--help") for arg in args):
        print(HELP)
        return 0
    options = _doctor_args(args)
    if options is None:
        print(USAGE, file=sys.stderr)
        return 2
    settings = load_settings()
    setup_logging("WARNING", secrets=(settings.discord_token, settings.openai_api_key))
    return asyncio.run(run_doctor(settings, **options))


USAGE = ("usage: python -m bot [backup PATH | doctor [--generate] [--probe [--yes] [--out PATH]] "
         "| usage [--since DATE] [--csv] | rotate-key-secret [--old-file PATH]]")
HELP = f"""{USAGE}

  (no command)   run the bot (settings from .env and the environment)
  backup PATH    copy the live SQLite database to PATH
  doctor         check the set-up before inviting users (python -m bot doctor --help)
  usage          what was spent, by server and member (--since YYYY-MM-DD, --csv)
  rotate-key-secret  re-seal servers' own keys for a new KEY_ENCRYPTION_SECRET (--old-file PATH)
  -h, --help     show this help"""


def usage_subcommand(args: list[str]) -> int:
    from bot.usage_cli import usage_command

    return usage_command(args, load_settings())


def rotate_subcommand(args: list[str]) -> int:
    from bot.keys_cli import rotate_command

    return rotate_command(args, load_settings())


SUBCOMMANDS = {"backup": backup_command, "doctor": doctor_command, "usage": usage_subcommand,
               "rotate-key-secret": rotate_subcommand}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("-h", "--help"):
        print(HELP)
        return 0
    if args and args[0] in SUBCOMMANDS:
        return SUBCOMMANDS[args[0]](args[1:])
    if args:
        print(USAGE, file=sys.stderr)
        return 2
    settings = load_settings()
    secrets = [settings.discord_token, settings.openai_api_key]
    if settings.database_url is not None:  # may carry a password
        secrets.append(settings.database_url)
    if settings.key_encryption_secret is not None:
        secrets.append(settings.key_encryption_secret)
    setup_logging(settings.log_level, secrets=secrets)
    try:
        asyncio.run(run(settings))
    except KeyboardInterrupt:
        pass
    except Exception as exc:  # a start-up failure: say what to do in one line, no traceback
        from bot.startup import explain

        line = explain(exc)
        if line is None:
            log.exception("The bot stopped with an error")
        else:
            print(line, file=sys.stderr)
        return int(getattr(exc, "exit_status", 1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
