"""Billed results recorded before they are shown (the one delivery path's record)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from bot.core.models import (
    GeneratedImage,
    RecordedResult,
    TurnResult,
    Usage,
)
from bot.store.protocol import SqlDatabase
from bot.store.rows import dumps


class DeliveryRepository:
    """Billed results waiting to be shown (bot/core/delivery.py); `TurnRepository.finish_done`
    removes a turn's when it records the turn done."""

    def __init__(self, db: SqlDatabase) -> None:
        self._db = db

    async def record(
        self, turn_id: int, result: TurnResult, *, cost_usd: float, recorded_at: float
    ) -> None:
        """Keep `result` until it is shown; the turn's reservation becomes what was billed."""
        statements: list[tuple[str, Sequence[Any]]] = [
            ("DELETE FROM deliveries WHERE turn_id = ?", (turn_id,)),
            ("INSERT INTO deliveries (turn_id, response_id, text, usage, rerooted, recorded_at) "
             "VALUES (?, ?, ?, ?, ?, ?)",
             (turn_id, result.response_id, result.text, dumps(result.usage.to_dict()),
              int(result.rerooted), recorded_at)),
        ]
        statements += [(
            "INSERT INTO delivery_images (turn_id, position, call_id, output_format, size, "
            "revised_prompt, reasoning_id, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (turn_id, n, image.call_id, image.output_format, image.size, image.revised_prompt,
             image.reasoning_id, image.data),
        ) for n, image in enumerate(result.images)]
        statements.append((
            "UPDATE turns SET usage = ?, cost_usd = ?, reserved_usd = 0 WHERE id = ?",
            (dumps(result.usage.to_dict()), cost_usd, turn_id),
        ))
        await self._db.atomic(statements)

    async def get(self, turn_id: int) -> RecordedResult | None:
        row = await self._db.fetchone("SELECT * FROM deliveries WHERE turn_id = ?", (turn_id,))
        if row is None:
            return None
        images = await self._db.fetchall(
            "SELECT * FROM delivery_images WHERE turn_id = ? ORDER BY position", (turn_id,)
        )
        result = TurnResult(
            row["response_id"],
            tuple(GeneratedImage(i["call_id"], bytes(i["data"]), i["output_format"], i["size"],
                                 i["revised_prompt"], i["reasoning_id"]) for i in images),
            row["text"], Usage.from_dict(json.loads(row["usage"])), bool(row["rerooted"]),
        )
        return RecordedResult(result, row["recorded_at"])

    async def forget(self, turn_id: int) -> None:
        """Drop a result that can be shown nowhere (its thread is gone)."""
        await self._db.execute("DELETE FROM deliveries WHERE turn_id = ?", (turn_id,))

    async def reopen(self, turn_id: int) -> bool | None:
        """A failed turn whose result is recorded becomes running again (to be shown): True;
        False if its result is recorded but the turn is not failed (another click or process
        took it first); None if no result of it is recorded."""
        async with self._db.transaction():
            row = await self._db.fetchone(
                "SELECT t.status FROM turns t JOIN deliveries d ON d.turn_id = t.id "
                "WHERE t.id = ?", (turn_id,),
            )
            if row is None or row["status"] != "failed":
                return None if row is None else False
            await self._db.execute(
                "UPDATE turns SET status = 'running', error_kind = NULL, error_detail = NULL, "
                "finished_at = NULL WHERE id = ?", (turn_id,),
            )
        return True
