"""A conversation's turns as a numbered tree: pages of it for `/history`, and the record of it
for an export. Pure functions over the stored turns; no Discord, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.core.models import Conversation, Turn

PAGE_SIZE = 16
EXPORT_FORMAT = 1


@dataclass(frozen=True, slots=True)
class TreeNode:
    """One turn with its number in the conversation (1-based, in the order the turns were made)."""

    number: int
    turn: Turn
    parent_number: int | None


def number_turns(turns: list[Turn]) -> list[TreeNode]:
    """Number a conversation's turns 1, 2, … by creation order and link each to its parent's
    number (None for a root, or a parent outside the conversation)."""
    ordered = sorted(turns, key=lambda t: t.id)
    numbers = {turn.id: n for n, turn in enumerate(ordered, 1)}
    return [
        TreeNode(numbers[turn.id], turn,
                 numbers.get(turn.parent_id) if turn.parent_id is not None else None)
        for turn in ordered
    ]


def page_count(total: int, page_size: int = PAGE_SIZE) -> int:
    return max(1, -(-total // page_size))


def clamp_page(page: int, total: int, page_size: int = PAGE_SIZE) -> int:
    return min(max(page, 0), page_count(total, page_size) - 1)


def page_of(nodes: list[TreeNode], page: int, page_size: int = PAGE_SIZE) -> list[TreeNode]:
    """The nodes of one page (`page` 0-based, clamped to the pages there are)."""
    page = clamp_page(page, len(nodes), page_size)
    return nodes[page * page_size:(page + 1) * page_size]


def image_filename(number: int, index: int, extension: str) -> str:
    """The name of a turn's image inside an export (`turn-03-1.png`)."""
    return f"turn-{number:02d}-{index}.{extension or 'png'}"


def _deleted_record(node: TreeNode) -> dict[str, Any]:
    """A deleted turn keeps its place in the tree and nothing of what it said or showed: no
    prompt, text, images, author or response id (its spend stays counted)."""
    turn = node.turn
    return {
        "number": node.number,
        "id": turn.id,
        "parent_number": node.parent_number,
        "parent_id": turn.parent_id,
        "deleted": True,
        "cost_usd": round(turn.cost_usd, 6),
        "created_at": turn.created_at,
    }


def _turn_record(node: TreeNode, files: dict[tuple[int, int], str]) -> dict[str, Any]:
    turn = node.turn
    if turn.deleted:
        return _deleted_record(node)
    return {
        "number": node.number,
        "id": turn.id,
        "parent_number": node.parent_number,
        "parent_id": turn.parent_id,
        "kind": turn.kind.value,
        "author_id": str(turn.author_id),
        "prompt": turn.prompt,
        "revised_prompt": turn.revised_prompt,
        "text": turn.text,
        "options": turn.options.chosen(),
        "status": turn.status.value,
        "deleted": turn.deleted,
        "error_kind": turn.error_kind,
        "response_id": turn.response_id,
        "images": [
            {"call_id": image.call_id, "size": image.size, "output_format": image.output_format,
             "file": files.get((node.number, index))}
            for index, image in enumerate(turn.images, 1)
        ],
        "usage": turn.usage.to_dict(),
        "cost_usd": round(turn.cost_usd, 6),
        "created_at": turn.created_at,
        "started_at": turn.started_at,
        "finished_at": turn.finished_at,
    }


def conversation_record(
    conversation: Conversation,
    nodes: list[TreeNode],
    head_id: int | None,
    files: dict[tuple[int, int], str],
) -> dict[str, Any]:
    """What `conversation.json` in an export holds. People appear by their ids only; `files`
    names the exported file of (turn number, image index), when it could be fetched. Deleted
    turns are placeholders (`_deleted_record`)."""
    head = head_id
    record: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "conversation": {
            "id": str(conversation.id),
            "guild_id": str(conversation.guild_id) if conversation.guild_id else None,
            "parent_channel_id": (str(conversation.parent_channel_id)
                                  if conversation.parent_channel_id else None),
            "owner_id": str(conversation.owner_id),
            "head_number": next((n.number for n in nodes if n.turn.id == head), None),
            "created_at": conversation.created_at,
        },
        "turns": [_turn_record(node, files) for node in nodes],
        "total_cost_usd": round(sum(node.turn.cost_usd for node in nodes), 6),
    }
    return record
