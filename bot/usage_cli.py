"""`python -m bot usage [--since YYYY-MM-DD] [--csv]`: what the bot spent, for its operator."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
from collections.abc import Sequence

from bot.config import Settings
from bot.core.costs import PriceBook
from bot.core.policy import month_start
from bot.core.usage_report import Report, build_report


def parse_since(text: str | None, now: dt.datetime) -> dt.datetime:
    """A UTC date (`YYYY-MM-DD`); by default the first day of this month."""
    if text is None:
        return month_start(now)
    try:
        return dt.datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=dt.UTC)
    except ValueError:
        raise SystemExit(f"--since: {text!r} is not a date like 2026-11-01") from None


async def gather(settings: Settings, since: dt.datetime) -> Report:
    from bot.store import open_store

    store = await open_store(settings)
    try:
        costs = await store.usage.turn_costs(since=since.timestamp())
    finally:
        await store.close()
    prices = PriceBook(settings.price_table, mainline=settings.openai_model,
                       image_model=settings.image_model)
    return build_report(costs, prices, since=since.date().isoformat())


def usage_command(args: Sequence[str], settings: Settings) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot usage",
                                     description="Spend per server, per user and per model.")
    parser.add_argument("--since", help="a UTC date, YYYY-MM-DD (default: this month's 1st)")
    parser.add_argument("--csv", action="store_true", help="CSV instead of tables")
    options = parser.parse_args(list(args))
    since = parse_since(options.since, dt.datetime.now(dt.UTC))
    report = asyncio.run(gather(settings, since))
    print(report.csv() if options.csv else report.text(), end="\n" if not options.csv else "")
    return 0
