"""Rows into the core's dataclasses, and the statements more than one repository runs: shared
by the repositories of `bot/store/` (one module per aggregate, `repositories.Store` holds them)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from bot.core.models import (
    Conversation,
    ImageRef,
    Turn,
    TurnKind,
    TurnStatus,
    Usage,
)
from bot.core.options import ImageOptions
from bot.store.protocol import Row


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def conversation_of(row: Row) -> Conversation:
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


def turn_of(row: Row) -> Turn:
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


def move_head(conversation_id: int, turn_id: int,
               from_turn_id: int | None) -> tuple[str, Sequence[Any]]:
    return (
        "UPDATE conversations SET head_turn_id = ? WHERE id = ? "
        "AND COALESCE(head_turn_id, 0) = COALESCE(CAST(? AS BIGINT), 0)",
        (turn_id, conversation_id, from_turn_id),
    )
