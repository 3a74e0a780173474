"""The operator's spend report (`python -m bot usage`): per server, per user and per model.

Per server and per user are what the store recorded: settled cost (what the API billed) and the
reservations of turns still unfinished. Per model splits the settled cost by token kind: the
mainline model's tokens and the image model's tokens, priced with the current price table (the
models named are the ones configured now).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field

from bot.core.costs import PriceBook
from bot.core.models import TurnCost, Usage

DM_LABEL = "DMs"


@dataclass(slots=True)
class Line:
    """One row of the report."""

    scope: str  # server | user | model
    key: str
    turns: int = 0
    images: int = 0
    settled_usd: float = 0.0
    reserved_usd: float = 0.0


@dataclass(slots=True)
class Report:
    since: str
    lines: list[Line] = field(default_factory=list)

    def text(self) -> str:
        out = [f"Spend since {self.since} (USD; reserved = held by unfinished turns)"]
        for scope in ("server", "user", "model"):
            out.append("")
            out.append(f"{'per ' + scope:<24} {'turns':>6} {'images':>7} {'settled':>10} "
                       f"{'reserved':>10}")
            rows = [line for line in self.lines if line.scope == scope] or [Line(scope, "-")]
            for line in rows:
                out.append(f"{line.key:<24} {line.turns:>6} {line.images:>7} "
                           f"{line.settled_usd:>10.4f} {line.reserved_usd:>10.4f}")
        return "\n".join(out)

    def csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["scope", "key", "turns", "images", "settled_usd", "reserved_usd"])
        for line in self.lines:
            writer.writerow([line.scope, line.key, line.turns, line.images,
                             f"{line.settled_usd:.6f}", f"{line.reserved_usd:.6f}"])
        return buffer.getvalue()


def build_report(costs: Iterable[TurnCost], prices: PriceBook, *, since: str) -> Report:
    servers: dict[str, Line] = {}
    users: dict[str, Line] = {}
    mainline = Line("model", prices.mainline)
    image = Line("model", prices.image_model)
    for cost in costs:
        server = DM_LABEL if cost.guild_id is None else str(cost.guild_id)
        for line in (servers.setdefault(server, Line("server", server)),
                     users.setdefault(str(cost.author_id), Line("user", str(cost.author_id)))):
            _add(line, cost)
        main_part = prices.cost(Usage(text_input=cost.usage.text_input,
                                      text_output=cost.usage.text_output))
        if cost.settled_usd:
            mainline.turns += 1
            mainline.settled_usd += main_part
            image.turns += 1
            image.images += cost.images
            image.settled_usd += prices.cost(cost.usage) - main_part
    by_spend = sorted([*servers.values(), *users.values()],
                      key=lambda line: (line.scope, -line.settled_usd - line.reserved_usd))
    return Report(since=since, lines=[*by_spend, mainline, image])


def _add(line: Line, cost: TurnCost) -> None:
    line.turns += 1
    line.images += cost.images
    line.settled_usd += cost.settled_usd
    line.reserved_usd += cost.reserved_usd
