"""Repositories: one class per aggregate, returning dataclasses, never rows.

The SQL here is written once for both backends (`?` placeholders, `ON CONFLICT`, no
backend-only functions: `db.utc_day()` where a dialect differs); the store's tests run it on
SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from typing import Any

from bot.core.models import (
    Conversation,
    DailyUsage,
    GeneratedImage,
    HeadMove,
    ImageRef,
    InputImage,
    RecordedResult,
    ServerKey,
    ShowcasePost,
    Spend,
    Turn,
    TurnCost,
    TurnKind,
    TurnResult,
    TurnStatus,
    Usage,
    UsageTotals,
    UserPrefs,
)
from bot.core.options import ImageOptions
from bot.store.database import Database
from bot.store.moderation import ModerationRepository
from bot.store.protocol import Row, SqlDatabase


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _conversation(row: Row) -> Conversation:
    return Conversation(
        id=row["id"],
        guild_id=row["guild_id"],
        parent_channel_id=row["parent_channel_id"],
        owner_id=row["owner_id"],
        head_turn_id=row["head_turn_id"],
        options=ImageOptions.from_dict(json.loads(row["options"])),
        created_at=row["created_at"],
        bot_opened=None if row["bot_opened"] is None else bool(row["bot_opened"]),
        remixed_from_channel_id=row["remixed_from_channel_id"],
        remixed_from_message_id=row["remixed_from_message_id"],
    )


def _turn(row: Row) -> Turn:
    return Turn(
        id=row["id"],
        conversation_id=row["conversation_id"],
        parent_id=row["parent_id"],
        kind=TurnKind(row["kind"]),
        guild_id=row["guild_id"],
        author_id=row["author_id"],
        prompt=row["prompt"],
        options=ImageOptions.from_dict(json.loads(row["options"])),
        status=TurnStatus(row["status"]),
        locale=row["locale"],
        response_id=row["response_id"],
        images=tuple(ImageRef(**item) for item in json.loads(row["images"])),
        message_ids=tuple(json.loads(row["message_ids"])),
        progress_message_id=row["progress_message_id"],
        source_message_id=row["source_message_id"],
        revised_prompt=row["revised_prompt"],
        text=row["text"],
        usage=Usage.from_dict(json.loads(row["usage"])),
        cost_usd=row["cost_usd"],
        error_kind=row["error_kind"],
        error_detail=row["error_detail"],
        rerooted=bool(row["rerooted"]),
        deleted=bool(row["deleted"]),
        input_image_count=row["input_count"],
        inputs_pruned=bool(row["inputs_pruned"]),
        last_sequence=row["last_sequence"],
        remix_of_turn_id=row["remix_of_turn_id"],
        variant_group=row["variant_group"],
        variant_index=row["variant_index"],
        variant_count=row["variant_count"],
        own_key=bool(row["own_key"]),
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        number=row["number"],
    )


_NO_TURN = 2**63 - 1  # above every turn id: `before` not given

_LINK_MESSAGE = (
    "INSERT INTO turn_messages (message_id, turn_id) VALUES (?, ?) "
    "ON CONFLICT (message_id) DO UPDATE SET turn_id = excluded.turn_id"
)

def _move_head(conversation_id: int, turn_id: int,
               from_turn_id: int | None) -> tuple[str, Sequence[Any]]:
    return (
        "UPDATE conversations SET head_turn_id = ? WHERE id = ? "
        "AND COALESCE(head_turn_id, 0) = COALESCE(CAST(? AS BIGINT), 0)",
        (turn_id, conversation_id, from_turn_id),
    )


_TURN_SELECT = (
    "SELECT t.*, (SELECT COUNT(*) FROM turn_inputs i WHERE i.turn_id = t.id) AS input_count, "
    "(SELECT COUNT(*) FROM turns n WHERE n.conversation_id = t.conversation_id "
    "AND n.id <= t.id) AS number "
    "FROM turns t"
)


class ConversationRepository:
    def __init__(self, db: SqlDatabase) -> None:
        self._db = db

    async def create(
        self,
        conversation_id: int,
        *,
        guild_id: int | None,
        parent_channel_id: int | None,
        owner_id: int,
        options: ImageOptions,
    ) -> None:
        await self._db.execute(
            "INSERT INTO conversations "
            "(id, guild_id, parent_channel_id, owner_id, options, created_at, bot_opened) "
            "VALUES (?, ?, ?, ?, ?, ?, 1) ON CONFLICT (id) DO NOTHING",
            (conversation_id, guild_id, parent_channel_id, owner_id,
             _dumps(options.sticky().chosen()), time.time()),
        )

    async def set_remixed_from(self, conversation_id: int, channel_id: int, message_id: int) -> None:
        """Record the message a remix conversation started from."""
        await self._db.execute(
            "UPDATE conversations SET remixed_from_channel_id = ?, remixed_from_message_id = ? "
            "WHERE id = ?",
            (channel_id, message_id, conversation_id),
        )

    async def set_bot_opened(self, conversation_id: int, bot_opened: bool) -> None:
        """Record whether a conversation's thread is one the bot opened (checked once)."""
        await self._db.execute(
            "UPDATE conversations SET bot_opened = ? WHERE id = ?",
            (int(bot_opened), conversation_id),
        )

    async def get(self, conversation_id: int) -> Conversation | None:
        row = await self._db.fetchone("SELECT * FROM conversations WHERE id = ?", (conversation_id,))
        return _conversation(row) if row else None

    async def set_head(self, conversation_id: int, turn_id: int | None) -> None:
        await self._db.execute(
            "UPDATE conversations SET head_turn_id = ? WHERE id = ?", (turn_id, conversation_id)
        )

    async def move_head(self, conversation_id: int, turn_id: int, *, from_turn_id: int | None) -> None:
        """Make `turn_id` the head unless someone moved the head away from `from_turn_id` since."""
        await self._db.execute(*_move_head(conversation_id, turn_id, from_turn_id))

    async def set_options(self, conversation_id: int, options: ImageOptions) -> None:
        await self._db.execute(
            "UPDATE conversations SET options = ? WHERE id = ?",
            (_dumps(options.sticky().chosen()), conversation_id),
        )


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
                 _dumps(options.chosen()), locale, source_message_id, time.time(),
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
        return _turn(row) if row else None

    async def by_message(self, message_id: int) -> Turn | None:
        row = await self._db.fetchone(
            f"{_TURN_SELECT} JOIN turn_messages m ON m.turn_id = t.id WHERE m.message_id = ?",
            (message_id,),
        )
        return _turn(row) if row else None

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
        return [_turn(r) for r in rows]

    async def variant_siblings(self, group: int) -> list[Turn]:
        """The turns of one variant set, in their order."""
        rows = await self._db.fetchall(
            f"{_TURN_SELECT} WHERE t.variant_group = ? ORDER BY t.variant_index, t.id", (group,)
        )
        return [_turn(r) for r in rows]

    async def in_conversation(self, conversation_id: int) -> list[Turn]:
        rows = await self._db.fetchall(
            f"{_TURN_SELECT} WHERE t.conversation_id = ? ORDER BY t.id", (conversation_id,)
        )
        return [_turn(r) for r in rows]

    async def latest_done(self, conversation_id: int) -> Turn | None:
        row = await self._db.fetchone(
            f"{_TURN_SELECT} WHERE t.conversation_id = ? AND t.status = 'done' AND t.deleted = 0 "
            "AND t.images != '[]' ORDER BY t.finished_at DESC, t.id DESC LIMIT 1",
            (conversation_id,),
        )
        return _turn(row) if row else None

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
        return [_turn(r) for r in rows]

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
            (_dumps(usage.to_dict()), cost_usd, turn_id),
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
            (response_id, _dumps([_image_dict(img) for img in images]),
             revised_prompt, text, _dumps(usage.to_dict()), cost_usd, len(images), int(rerooted),
             time.time(), note[:500] or None,
             _dumps(list(message_ids)) if message_ids else None, turn_id),
        )]
        statements += [(_LINK_MESSAGE, (message_id, turn_id)) for message_id in message_ids]
        statements.append(("DELETE FROM deliveries WHERE turn_id = ?", (turn_id,)))  # shown
        if head is not None:
            statements.append(_move_head(head.conversation_id, turn_id, head.from_turn_id))
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
             *((_dumps(usage.to_dict()), cost_usd) if usage is not None else ()), turn_id),
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


# a turn's stored usage (`_dumps(Usage.to_dict())`) whose image tokens were estimated
_ESTIMATED_USAGE = '%"estimated":1%'


def _image_dict(image: ImageRef) -> dict[str, Any]:
    return {
        "call_id": image.call_id,
        "size": image.size,
        "output_format": image.output_format,
        "byte_size": image.byte_size,
        "reasoning_id": image.reasoning_id,
    }


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
            (guild_id, author_id, kind, _dumps(usage.to_dict()), cost_usd, time.time(),
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


class GuildSettingsRepository:
    def __init__(self, db: SqlDatabase) -> None:
        self._db = db

    async def get(self, guild_id: int) -> dict[str, Any]:
        row = await self._db.fetchone(
            "SELECT settings FROM guild_settings WHERE guild_id = ?", (guild_id,)
        )
        return json.loads(row["settings"]) if row else {}

    async def all(self) -> dict[int, dict[str, Any]]:
        """Every server's stored settings (for instance-wide rules such as who may use DMs)."""
        rows = await self._db.fetchall("SELECT guild_id, settings FROM guild_settings")
        return {int(r["guild_id"]): json.loads(r["settings"]) for r in rows}

    async def put(self, guild_id: int, settings: dict[str, Any]) -> None:
        await self._db.execute(
            "INSERT INTO guild_settings (guild_id, settings, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT(guild_id) DO UPDATE SET settings = excluded.settings, "
            "updated_at = excluded.updated_at",
            (guild_id, _dumps(settings), time.time()),
        )


class UserPrefsRepository:
    def __init__(self, db: SqlDatabase) -> None:
        self._db = db

    async def get(self, user_id: int) -> UserPrefs:
        row = await self._db.fetchone(
            "SELECT locale, prefs FROM user_prefs WHERE user_id = ?", (user_id,)
        )
        return UserPrefs.from_dict(json.loads(row["prefs"]), row["locale"]) if row else UserPrefs()

    async def set_locale(self, user_id: int, locale: str) -> None:
        await self._db.execute(
            "INSERT INTO user_prefs (user_id, locale, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT(user_id) DO UPDATE SET locale = excluded.locale, "
            "updated_at = excluded.updated_at",
            (user_id, locale, time.time()),
        )

    async def put(self, user_id: int, prefs: UserPrefs) -> None:
        await self._db.execute(
            "INSERT INTO user_prefs (user_id, prefs, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT(user_id) DO UPDATE SET prefs = excluded.prefs, "
            "updated_at = excluded.updated_at",
            (user_id, _dumps(prefs.to_dict()), time.time()),
        )


class MetaRepository:
    def __init__(self, db: SqlDatabase) -> None:
        self._db = db

    async def get(self, key: str) -> str | None:
        row = await self._db.fetchone("SELECT value FROM meta WHERE key = ?", (key,))
        return row["value"] if row else None

    async def put(self, key: str, value: str) -> None:
        await self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )


class ServerKeyRepository:
    """Servers' own OpenAI keys, stored encrypted (the store never sees them in clear)."""

    def __init__(self, db: SqlDatabase) -> None:
        self._db = db

    async def get(self, guild_id: int) -> ServerKey | None:
        row = await self._db.fetchone(
            "SELECT encrypted, failed FROM server_keys WHERE guild_id = ?", (guild_id,)
        )
        return ServerKey(row["encrypted"], bool(row["failed"])) if row else None

    async def put(self, guild_id: int, encrypted: str) -> None:
        await self._db.execute(
            "INSERT INTO server_keys (guild_id, encrypted, failed, updated_at) VALUES (?, ?, 0, ?) "
            "ON CONFLICT (guild_id) DO UPDATE SET encrypted = excluded.encrypted, failed = 0, "
            "updated_at = excluded.updated_at",
            (guild_id, encrypted, time.time()),
        )

    async def all(self) -> dict[int, ServerKey]:
        """Every stored key, by server (for the start-up check and the rotation)."""
        rows = await self._db.fetchall("SELECT guild_id, encrypted, failed FROM server_keys")
        return {int(r["guild_id"]): ServerKey(r["encrypted"], bool(r["failed"])) for r in rows}

    async def reseal(self, guild_id: int, encrypted: str) -> None:
        """Replace a key's sealed form (same key, new secret); whether it failed stays."""
        await self._db.execute(
            "UPDATE server_keys SET encrypted = ?, updated_at = ? WHERE guild_id = ?",
            (encrypted, time.time(), guild_id),
        )

    async def mark_failed(self, guild_id: int) -> bool:
        """Mark a key failed; True only the first time (so its managers are told once)."""
        async with self._db.transaction():
            row = await self._db.fetchone(
                "SELECT failed FROM server_keys WHERE guild_id = ?", (guild_id,)
            )
            if row is None or row["failed"]:
                return False
            await self._db.execute(
                "UPDATE server_keys SET failed = 1, updated_at = ? WHERE guild_id = ?",
                (time.time(), guild_id),
            )
        return True

    async def delete(self, guild_id: int) -> None:
        await self._db.execute("DELETE FROM server_keys WHERE guild_id = ?", (guild_id,))


class ShowcaseRepository:
    """Results published to servers' showcases."""

    _COLUMNS = "turn_id, guild_id, channel_id, post_id, author_id, published_by"

    def __init__(self, db: SqlDatabase) -> None:
        self._db = db

    @staticmethod
    def _post(row: Row) -> ShowcasePost:
        return ShowcasePost(*(row[c] for c in ShowcaseRepository._COLUMNS.split(", ")))

    async def get(self, turn_id: int) -> ShowcasePost | None:
        row = await self._db.fetchone(
            f"SELECT {self._COLUMNS} FROM showcase_posts WHERE turn_id = ?", (turn_id,))
        return self._post(row) if row else None

    async def by_post(self, post_id: int) -> ShowcasePost | None:
        row = await self._db.fetchone(
            f"SELECT {self._COLUMNS} FROM showcase_posts WHERE post_id = ?", (post_id,))
        return self._post(row) if row else None

    async def in_conversation(self, conversation_id: int) -> list[ShowcasePost]:
        rows = await self._db.fetchall(
            f"SELECT {', '.join('s.' + c for c in self._COLUMNS.split(', '))} "
            "FROM showcase_posts s JOIN turns t ON t.id = s.turn_id WHERE t.conversation_id = ?",
            (conversation_id,))
        return [self._post(r) for r in rows]

    async def add(self, post: ShowcasePost) -> None:
        await self._db.execute(
            f"INSERT INTO showcase_posts ({self._COLUMNS}, created_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (turn_id) DO NOTHING",  # a post already recorded (another process) wins
            (post.turn_id, post.guild_id, post.channel_id, post.post_id, post.author_id,
             post.published_by, time.time()))

    async def remove(self, turn_id: int) -> None:
        await self._db.execute("DELETE FROM showcase_posts WHERE turn_id = ?", (turn_id,))


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
             (turn_id, result.response_id, result.text, _dumps(result.usage.to_dict()),
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
            (_dumps(result.usage.to_dict()), cost_usd, turn_id),
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


class Store:
    """All repositories over one database."""

    def __init__(self, db: SqlDatabase) -> None:
        self.db = db
        self.conversations = ConversationRepository(db)
        self.turns = TurnRepository(db)
        self.usage = UsageRepository(db)
        self.guild_settings = GuildSettingsRepository(db)
        self.meta = MetaRepository(db)
        self.user_prefs = UserPrefsRepository(db)
        self.server_keys = ServerKeyRepository(db)
        self.showcase = ShowcaseRepository(db)
        self.moderation = ModerationRepository(db)
        self.deliveries = DeliveryRepository(db)

    @classmethod
    async def open(cls, path: Any) -> Store:
        return cls(await Database.open(path))

    def transaction(self) -> AbstractAsyncContextManager[Any]:
        return self.db.transaction()

    async def close(self) -> None:
        await self.db.close()
