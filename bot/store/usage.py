"""Usage: what members and servers have spent and generated, reserved and settled, for
quotas, spend caps, /usage and the operator's report."""

from __future__ import annotations

import json
import time

from bot.core.models import (
    DailyUsage,
    Spend,
    TurnCost,
    Usage,
    UsageTotals,
)
from bot.store.protocol import SqlDatabase
from bot.store.rows import dumps

_NO_TURN = 2**63 - 1  # above every turn id: `before` not given


# a turn's stored usage (`dumps(Usage.to_dict())`) whose image tokens were estimated
_ESTIMATED_USAGE = '%"estimated":1%'


class UsageRepository:
    """Aggregates over finished turns: what a user or a server has spent."""

    def __init__(self, db: SqlDatabase) -> None:
        self._db = db

    async def totals(
        self, *, since: float, author_id: int | None = None, guild_id: int | None = None
    ) -> UsageTotals:
        clauses, params = ["created_at >= ?"], [since]
        if author_id is not None:
            clauses.append("author_id = ?")
            params.append(author_id)
        if guild_id is not None:
            clauses.append("guild_id = ?")
            params.append(guild_id)
        row = await self._db.fetchone(
            # (turns over without a result count only by what the API billed for them)
            "SELECT COALESCE(SUM(CASE WHEN status IN ('done', 'queued', 'running') THEN 1 "
            "ELSE 0 END), 0) AS turns, COALESCE(SUM(image_count), 0) AS images, "
            "COALESCE(SUM(cost_usd), 0) AS cost, COALESCE(MAX(CASE WHEN usage LIKE ? THEN 1 "
            f"ELSE 0 END), 0) AS estimated FROM turns WHERE {' AND '.join(clauses)}",
            [_ESTIMATED_USAGE, *params],
        )
        assert row is not None
        return UsageTotals(turns=row["turns"], images=row["images"], cost_usd=row["cost"],
                           estimated=bool(row["estimated"]))

    async def spend(
        self, *, since: float, guild_id: int | None = None, instance_only: bool = False,
        before: int | None = None,
    ) -> Spend:
        """Settled cost of the turns created since `since`, and the reservations of those still
        unfinished (`before`: of those admitted before that turn only); of one server, or of
        every server and DM (`instance_only`: leaving out turns billed to a server's own key)."""
        clauses, params = ["created_at >= ?"], [since]
        if guild_id is not None:
            clauses.append("guild_id = ?")
            params.append(guild_id)
        if instance_only:
            clauses.append("own_key = 0")
        row = await self._db.fetchone(
            "SELECT COALESCE(SUM(cost_usd), 0) AS settled, COALESCE(SUM(CASE WHEN status IN "
            "('queued', 'running') AND id < ? THEN reserved_usd ELSE 0 END), 0) AS reserved "
            f"FROM turns WHERE {' AND '.join(clauses)}",
            [_NO_TURN if before is None else before, *params],
        )
        assert row is not None
        # text-only calls (/describe): on the server's own key too, where it set one
        text = await self._db.fetchone(
            "SELECT COALESCE(SUM(cost_usd), 0) AS cost FROM text_spend "
            f"WHERE {' AND '.join(clauses)}",
            params,
        )
        settled = float(row["settled"]) + (float(text["cost"]) if text else 0.0)
        return Spend(settled=settled, reserved=float(row["reserved"]))

    async def record_text(
        self, *, guild_id: int | None, author_id: int, kind: str, usage: Usage, cost_usd: float,
        own_key: bool = False,
    ) -> None:
        """Record the cost of a text-only call (no turn): spend caps count it (the instance's
        not when it was billed to the server's own key)."""
        await self._db.execute(
            "INSERT INTO text_spend (guild_id, author_id, kind, usage, cost_usd, created_at, "
            "own_key) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (guild_id, author_id, kind, dumps(usage.to_dict()), cost_usd, time.time(),
             int(own_key)),
        )

    async def turn_costs(self, *, since: float) -> list[TurnCost]:
        """Every turn created since `since` that spent or still holds money."""
        rows = await self._db.fetchall(
            "SELECT guild_id, author_id, image_count, cost_usd, usage, CASE WHEN status IN "
            "('queued', 'running') THEN reserved_usd ELSE 0 END AS reserved FROM turns "
            "WHERE created_at >= ? ORDER BY id",
            (since,),
        )
        return [
            TurnCost(guild_id=r["guild_id"], author_id=r["author_id"], images=r["image_count"],
                     settled_usd=float(r["cost_usd"]), reserved_usd=float(r["reserved"]),
                     usage=Usage.from_dict(json.loads(r["usage"])))
            for r in rows if r["cost_usd"] or r["reserved"]
        ]

    async def pending(self, *, author_id: int | None = None, guild_id: int | None = None,
                      before: int | None = None) -> int:
        """Turns not yet finished (they will make at least one image each); `before`: of
        those admitted before that turn."""
        clauses, params = ["status IN ('queued', 'running')"], []
        if before is not None:
            clauses.append("id < ?")
            params.append(before)
        if author_id is not None:
            clauses.append("author_id = ?")
            params.append(author_id)
        if guild_id is not None:
            clauses.append("guild_id = ?")
            params.append(guild_id)
        row = await self._db.fetchone(
            f"SELECT COUNT(*) AS n FROM turns WHERE {' AND '.join(clauses)}", params
        )
        return int(row["n"]) if row else 0

    async def images_and_pending(self, *, author_id: int, since: float, before: int) -> int:
        """Images the author made since `since` and their unfinished turns admitted before
        `before` (each will make one at least), in one statement: one consistent reading."""
        row = await self._db.fetchone(
            "SELECT COALESCE(SUM(CASE WHEN created_at >= ? AND status IN ('done', 'queued', "
            "'running') THEN image_count ELSE 0 END), 0) + COALESCE(SUM(CASE WHEN status IN "
            "('queued', 'running') AND id < ? THEN 1 ELSE 0 END), 0) AS n "
            "FROM turns WHERE author_id = ?",
            (since, before, author_id),
        )
        return int(row["n"]) if row else 0

    async def top_users(self, guild_id: int, *, since: float, limit: int = 5) -> list[tuple[int, int, float]]:
        rows = await self._db.fetchall(
            "SELECT author_id, SUM(image_count) AS images, SUM(cost_usd) AS cost FROM turns "
            "WHERE guild_id = ? AND created_at >= ? AND (status = 'done' OR cost_usd > 0) "
            "GROUP BY author_id ORDER BY cost DESC, images DESC LIMIT ?",
            (guild_id, since, limit),
        )
        return [(r["author_id"], r["images"], r["cost"]) for r in rows]

    async def daily(
        self, *, since: float, guild_id: int | None = None, author_id: int | None = None
    ) -> list[DailyUsage]:
        clauses, params = ["created_at >= ?", "(status = 'done' OR cost_usd > 0)"], [since]
        if guild_id is not None:
            clauses.append("guild_id = ?")
            params.append(guild_id)
        if author_id is not None:
            clauses.append("author_id = ?")
            params.append(author_id)
        rows = await self._db.fetchall(
            f"SELECT {self._db.utc_day('created_at')} AS day, SUM(image_count) AS images, "
            f"SUM(cost_usd) AS cost FROM turns WHERE {' AND '.join(clauses)} "
            "GROUP BY day ORDER BY day",
            params,
        )
        return [DailyUsage(day=r["day"], images=r["images"], cost_usd=r["cost"]) for r in rows]
