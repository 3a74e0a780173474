"""Turns: each request of a conversation, from queued through running to its result or
failure, with its inputs, the messages that show it and its variant siblings."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from typing import Any

from bot.core.models import (
    HeadMove,
    ImageRef,
    InputImage,
    Turn,
    TurnKind,
    TurnStatus,
    Usage,
)
from bot.core.options import ImageOptions
from bot.store.protocol import SqlDatabase
from bot.store.rows import dumps, move_head, turn_of

_LINK_MESSAGE = (
    "INSERT INTO turn_messages (message_id, turn_id) VALUES (?, ?) "
    "ON CONFLICT (message_id) DO UPDATE SET turn_id = excluded.turn_id"
)


_TURN_SELECT = (
    "SELECT t.*, (SELECT COUNT(*) FROM turn_inputs i WHERE i.turn_id = t.id) AS input_count, "
    "(SELECT COUNT(*) FROM turns n WHERE n.conversation_id = t.conversation_id "
    "AND n.id <= t.id) AS number "
    "FROM turns t"
)


def _image_dict(image: ImageRef) -> dict[str, Any]:
    return {
        "call_id": image.call_id,
        "size": image.size,
        "output_format": image.output_format,
        "byte_size": image.byte_size,
        "reasoning_id": image.reasoning_id,
    }


class TurnRepository:
    def __init__(self, db: SqlDatabase) -> None:
        self._db = db

    async def create(
        self,
        *,
        conversation_id: int,
        parent_id: int | None,
        kind: TurnKind,
        guild_id: int | None,
        author_id: int,
        prompt: str,
        options: ImageOptions,
        locale: str,
        source_message_id: int | None,
        inputs: Iterable[InputImage] = (),
        remix_of_turn_id: int | None = None,
        variant: tuple[int, int, int] | None = None,
        reserved_usd: float = 0.0,
        own_key: bool = False,
        exempt: bool = False,
    ) -> int:
        group, index, count = variant or (None, None, None)
        inputs = list(inputs)
        # one statement when there are no inputs (atomic by itself: no transaction to wait for)
        async with self._db.transaction() if inputs else nullcontext():
            turn_id = await self._db.insert(
                "INSERT INTO turns (conversation_id, parent_id, kind, guild_id, author_id, prompt, "
                "options, locale, status, source_message_id, created_at, remix_of_turn_id, "
                "variant_group, variant_index, variant_count, reserved_usd, own_key, exempt) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (conversation_id, parent_id, kind.value, guild_id, author_id, prompt,
                 dumps(options.chosen()), locale, source_message_id, time.time(),
                 remix_of_turn_id, group, index, count, reserved_usd, int(own_key), int(exempt)),
            )
            for position, image in enumerate(inputs):
                await self._db.execute(
                    "INSERT INTO turn_inputs (turn_id, position, mime, filename, data) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (turn_id, position, image.mime, image.filename, image.data),
                )
        return turn_id

    async def get(self, turn_id: int) -> Turn | None:
        row = await self._db.fetchone(f"{_TURN_SELECT} WHERE t.id = ?", (turn_id,))
        return turn_of(row) if row else None

    async def by_message(self, message_id: int) -> Turn | None:
        row = await self._db.fetchone(
            f"{_TURN_SELECT} JOIN turn_messages m ON m.turn_id = t.id WHERE m.message_id = ?",
            (message_id,),
        )
        return turn_of(row) if row else None

    async def inputs(self, turn_id: int) -> list[InputImage]:
        rows = await self._db.fetchall(
            "SELECT mime, filename, data FROM turn_inputs WHERE turn_id = ? ORDER BY position",
            (turn_id,),
        )
        return [InputImage(data=r["data"], mime=r["mime"], filename=r["filename"]) for r in rows]

    async def unfinished(self) -> list[Turn]:
        """Turns left queued or running (after a crash or shutdown), oldest first."""
        rows = await self._db.fetchall(
            f"{_TURN_SELECT} WHERE t.status IN ('queued', 'running') ORDER BY t.id"
        )
        return [turn_of(r) for r in rows]

    async def variant_siblings(self, group: int) -> list[Turn]:
        """The turns of one variant set, in their order."""
        rows = await self._db.fetchall(
            f"{_TURN_SELECT} WHERE t.variant_group = ? ORDER BY t.variant_index, t.id", (group,)
        )
        return [turn_of(r) for r in rows]

    async def in_conversation(self, conversation_id: int) -> list[Turn]:
        rows = await self._db.fetchall(
            f"{_TURN_SELECT} WHERE t.conversation_id = ? ORDER BY t.id", (conversation_id,)
        )
        return [turn_of(r) for r in rows]

    async def latest_done(self, conversation_id: int) -> Turn | None:
        row = await self._db.fetchone(
            f"{_TURN_SELECT} WHERE t.conversation_id = ? AND t.status = 'done' AND t.deleted = 0 "
            "AND t.images != '[]' ORDER BY t.finished_at DESC, t.id DESC LIMIT 1",
            (conversation_id,),
        )
        return turn_of(row) if row else None

    async def lineage(self, turn_id: int) -> list[Turn]:
        """The turn and its ancestors, root first."""
        rows = await self._db.fetchall(
            "WITH RECURSIVE chain(id, depth) AS ("
            "  SELECT CAST(? AS BIGINT), 0 UNION ALL"
            "  SELECT t.parent_id, chain.depth + 1 FROM turns t JOIN chain ON t.id = chain.id"
            "  WHERE t.parent_id IS NOT NULL"
            f") {_TURN_SELECT} JOIN chain ON chain.id = t.id ORDER BY chain.depth DESC",
            (turn_id,),
        )
        return [turn_of(r) for r in rows]

    async def mark_running(self, turn_id: int) -> None:
        await self._db.execute(
            "UPDATE turns SET status = 'running', started_at = COALESCE(started_at, ?) "
            "WHERE id = ? AND status IN ('queued', 'running')",
            (time.time(), turn_id),
        )

    async def set_progress_message(self, turn_id: int, message_id: int) -> None:
        await self._db.atomic([
            ("UPDATE turns SET progress_message_id = ? WHERE id = ?", (message_id, turn_id)),
            (_LINK_MESSAGE, (message_id, turn_id)),
        ])

    async def set_response_id(self, turn_id: int, response_id: str, sequence: int | None) -> None:
        await self._db.execute(
            "UPDATE turns SET response_id = ?, last_sequence = ? WHERE id = ?",
            (response_id, sequence, turn_id),
        )

    async def set_parent(self, turn_id: int, parent_id: int) -> None:
        await self._db.execute("UPDATE turns SET parent_id = ? WHERE id = ?", (parent_id, turn_id))

    async def set_rerooted(self, turn_id: int) -> None:
        await self._db.execute(
            "UPDATE turns SET rerooted = 1, response_id = NULL WHERE id = ?", (turn_id,)
        )

    async def settle(self, turn_id: int, *, usage: Usage, cost_usd: float) -> None:
        """Replace a turn's reservation with what the API billed (as soon as it is known, even
        if showing the result then fails)."""
        await self._db.execute(
            "UPDATE turns SET usage = ?, cost_usd = ?, reserved_usd = 0 WHERE id = ?",
            (dumps(usage.to_dict()), cost_usd, turn_id),
        )

    async def finish_done(
        self,
        turn_id: int,
        *,
        response_id: str | None,
        images: list[ImageRef],
        revised_prompt: str | None,
        text: str | None,
        usage: Usage,
        cost_usd: float,
        rerooted: bool,
        note: str = "",
        message_ids: Sequence[int] = (),
        head: HeadMove | None = None,
    ) -> None:
        """Record a result, with every message that shows it (linked to the turn) and, with
        `head`, the conversation's head moved to it: all or nothing, in one write."""
        statements: list[tuple[str, Sequence[Any]]] = [(
            "UPDATE turns SET status = 'done', response_id = ?, images = ?, revised_prompt = ?, "
            "text = ?, usage = ?, cost_usd = ?, reserved_usd = 0, image_count = ?, rerooted = ?, "
            "finished_at = ?, error_kind = NULL, error_detail = ?, "
            "message_ids = COALESCE(?, message_ids) WHERE id = ?",
            (response_id, dumps([_image_dict(img) for img in images]),
             revised_prompt, text, dumps(usage.to_dict()), cost_usd, len(images), int(rerooted),
             time.time(), note[:500] or None,
             dumps(list(message_ids)) if message_ids else None, turn_id),
        )]
        statements += [(_LINK_MESSAGE, (message_id, turn_id)) for message_id in message_ids]
        statements.append(("DELETE FROM deliveries WHERE turn_id = ?", (turn_id,)))  # shown
        if head is not None:
            statements.append(move_head(head.conversation_id, turn_id, head.from_turn_id))
        await self._db.atomic(statements)

    async def finish_failed(
        self, turn_id: int, *, status: TurnStatus, error_kind: str, error_detail: str = "",
        usage: Usage | None = None, cost_usd: float = 0.0,
    ) -> None:
        """Record a turn over without a result; `usage` (and its cost): what the API billed
        for it all the same (then its reservation becomes that)."""
        billed = ", usage = ?, cost_usd = ?, reserved_usd = 0" if usage is not None else ""
        await self._db.execute(
            "UPDATE turns SET status = ?, error_kind = ?, error_detail = ?, finished_at = ?"
            f"{billed} WHERE id = ?",
            (status.value, error_kind, error_detail[:500], time.time(),
             *((dumps(usage.to_dict()), cost_usd) if usage is not None else ()), turn_id),
        )

    async def raise_reservation(self, turn_id: int, amount: float) -> None:
        """Raise an unfinished turn's reservation to `amount` (never lowers it)."""
        await self._db.execute(
            "UPDATE turns SET reserved_usd = ? WHERE id = ? AND reserved_usd < ? "
            "AND status IN ('queued', 'running')",
            (amount, turn_id, amount),
        )

    async def prune_inputs(self, *, finished_before: float, limit: int = 500) -> int:
        """Delete the attached images of up to `limit` turns that finished before
        `finished_before` (marking them `inputs_pruned`); returns how many lost theirs."""
        rows = await self._db.fetchall(
            "SELECT DISTINCT i.turn_id FROM turn_inputs i JOIN turns t ON t.id = i.turn_id "
            "WHERE t.status NOT IN ('queued', 'running') AND t.finished_at < ? LIMIT ?",
            (finished_before, limit),
        )
        ids = [int(r["turn_id"]) for r in rows]
        if ids:
            marks = ", ".join("?" for _ in ids)
            await self._db.atomic([
                (f"UPDATE turns SET inputs_pruned = 1 WHERE id IN ({marks})", ids),
                (f"DELETE FROM turn_inputs WHERE turn_id IN ({marks})", ids),
            ])
        return len(ids)

    async def mark_deleted(self, turn_id: int) -> None:
        """Mark a turn deleted and drop the images attached to its request."""
        await self._db.atomic([
            ("UPDATE turns SET deleted = 1 WHERE id = ?", (turn_id,)),
            ("DELETE FROM turn_inputs WHERE turn_id = ?", (turn_id,)),
        ])
