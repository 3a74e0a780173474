"""Plain data that flows through the core. No discord.py, no OpenAI types."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from bot.core.options import ImageOptions
from bot.core.usage import Usage


class TurnStatus(StrEnum):
    queued = "queued"
    running = "running"
    done = "done"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (TurnStatus.done, TurnStatus.failed, TurnStatus.cancelled)


class TurnKind(StrEnum):
    """How a turn relates to the conversation: what the user did to ask for it."""

    root = "root"  # /imagine
    reply = "reply"  # a plain message or /refine in the thread: continues from the head
    branch = "branch"  # a reply to an earlier result, or Refine on a result
    reroll = "reroll"  # same parent, same prompt


@dataclass(frozen=True, slots=True)
class InputImage:
    """An image the user attached, already downloaded and checked."""

    data: bytes
    mime: str
    filename: str = "image.png"


@dataclass(frozen=True, slots=True)
class ImageRef:
    """One generated image as we remember it (the bytes live in Discord)."""

    call_id: str
    size: str | None = None
    output_format: str = "png"
    byte_size: int = 0
    # the `reasoning` item that preceded the image in its response: a reference to the image
    # by id must send it first (with a reasoning mainline model); None for older turns
    reasoning_id: str | None = None




@dataclass(frozen=True, slots=True)
class Conversation:
    id: int  # the Discord thread (or DM channel) id
    guild_id: int | None
    parent_channel_id: int | None
    owner_id: int
    head_turn_id: int | None
    options: ImageOptions
    created_at: float
    # True: a thread the bot opened (or a DM); False: someone else's thread; None: recorded
    # before the bot kept track (the Discord layer checks the thread's owner and records it).
    bot_opened: bool | None = True
    remixed_from_channel_id: int | None = None  # the message a remix started from
    remixed_from_message_id: int | None = None


@dataclass(frozen=True, slots=True)
class Turn:
    id: int
    conversation_id: int
    parent_id: int | None
    kind: TurnKind
    guild_id: int | None
    author_id: int
    prompt: str
    options: ImageOptions
    status: TurnStatus
    locale: str = "en-US"
    response_id: str | None = None
    images: tuple[ImageRef, ...] = ()
    message_ids: tuple[int, ...] = ()
    progress_message_id: int | None = None
    source_message_id: int | None = None
    revised_prompt: str | None = None
    text: str | None = None
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    error_kind: str | None = None
    error_detail: str | None = None
    rerooted: bool = False
    deleted: bool = False
    input_image_count: int = 0
    inputs_pruned: bool = False  # its attached images were deleted (INPUT_RETENTION_DAYS)
    last_sequence: int | None = None
    remix_of_turn_id: int | None = None  # a remix's source: a bot result (any conversation)
    variant_group: int | None = None  # siblings asked for together (variants) share this
    variant_index: int | None = None  # 1-based place in the set
    variant_count: int | None = None
    own_key: bool = False  # billed to its server's own OpenAI key
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    number: int = 0  # its place in the conversation (1 = first), as users count


@dataclass(slots=True)
class TurnRequest:
    """What the Discord layer asks the core for. Ids are Discord snowflakes."""

    kind: TurnKind
    author_id: int
    prompt: str
    options: ImageOptions = field(default_factory=ImageOptions)
    guild_id: int | None = None
    conversation_id: int | None = None  # None for a root turn: the adapter opens the thread
    parent_turn_id: int | None = None  # an explicit parent (reply to a result, buttons)
    input_images: list[InputImage] = field(default_factory=list)
    source_message_id: int | None = None
    locale: str = "en-US"
    remix_of_turn_id: int | None = None  # a remix of a bot result: continue from its image
    variants: int = 1  # how many sibling turns to make (same parent), shown on one board
    variant_group: int | None = None  # set by the service for each sibling
    variant_index: int | None = None
    sticky: bool = True  # the options chosen here stick to the thread (not for an upscale)


@dataclass(frozen=True, slots=True)
class GeneratedImage:
    call_id: str
    data: bytes
    output_format: str
    size: str | None
    revised_prompt: str | None = None
    reasoning_id: str | None = None  # the reasoning item before it in its response


@dataclass(frozen=True, slots=True)
class TurnResult:
    response_id: str | None
    images: tuple[GeneratedImage, ...]
    text: str | None
    usage: Usage
    rerooted: bool = False


@dataclass(frozen=True, slots=True)
class RecordedResult:
    """A billed result recorded before it is shown (see bot/core/delivery.py)."""

    result: TurnResult
    recorded_at: float  # unix time


@dataclass(frozen=True, slots=True)
class Delivery:
    """Where a result was shown: the message ids, and a note when it went somewhere else than
    the turn's progress message (e.g. a new message, or the parent channel of a locked thread)."""

    message_ids: tuple[int, ...]
    note: str = ""


class Stage(StrEnum):
    queued = "queued"
    started = "started"
    generating = "generating"
    partial = "partial"
    retrying = "retrying"
    paused = "paused"  # the bot is restarting; the turn resumes when it is back


@dataclass(frozen=True, slots=True)
class Progress:
    """A step of a running turn, for the progress message."""

    stage: Stage
    position: int | None = None  # queue position, 1 = next
    partial_image_b64: str | None = None  # as the API sent it: decoded only if an edit shows it
    partial_index: int | None = None
    attempt: int | None = None
    retry_in: float | None = None


@dataclass(frozen=True, slots=True)
class UsageTotals:
    """What finished (and still pending) turns add up to since a moment."""

    turns: int
    images: int
    cost_usd: float
    estimated: bool = False  # some image's tokens were estimated (`Usage.estimated`)


@dataclass(frozen=True, slots=True)
class ServerKey:
    """A server's own OpenAI key as stored: encrypted, and whether it stopped working."""

    encrypted: str
    failed: bool


@dataclass(frozen=True, slots=True)
class ShowcasePost:
    """A result published to its server's showcase: one post (a thread) per turn."""

    turn_id: int
    guild_id: int
    channel_id: int  # the forum or media channel
    post_id: int  # the post's thread; its first message has the same id
    author_id: int
    published_by: int  # 0: published by its ⭐ reactions


@dataclass(frozen=True, slots=True)
class TurnCost:
    """One turn's share of the spend, for operators' reports."""

    guild_id: int | None
    author_id: int
    images: int
    settled_usd: float
    reserved_usd: float  # still held by an unfinished turn
    usage: Usage


@dataclass(frozen=True, slots=True)
class Spend:
    """Money counted against a cap: settled (billed) and reserved (turns still unfinished)."""

    settled: float
    reserved: float


@dataclass(frozen=True, slots=True)
class DailyUsage:
    """One UTC day of finished turns, for the usage chart."""

    day: str  # YYYY-MM-DD (UTC)
    images: int
    cost_usd: float


@dataclass(frozen=True, slots=True)
class UserPrefs:
    """A member's own defaults (/imagine-prefs) and the locale of their last interaction."""

    locale: str | None = None
    size: str | None = None
    quality: str | None = None
    partial_images: int | None = None
    ping: bool = True

    def options(self) -> ImageOptions:
        """The image options these preferences choose (unset ones inherit)."""
        return ImageOptions(size=self.size, quality=self.quality,
                            partial_images=self.partial_images)

    def to_dict(self) -> dict[str, Any]:
        """The stored choices (the locale is kept apart)."""
        data: dict[str, Any] = {"size": self.size, "quality": self.quality,
                                "partial_images": self.partial_images}
        data = {k: v for k, v in data.items() if v is not None}
        if not self.ping:
            data["ping"] = False
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, locale: str | None = None) -> UserPrefs:
        data = data or {}
        return cls(locale=locale, size=data.get("size"), quality=data.get("quality"),
                   partial_images=data.get("partial_images"), ping=data.get("ping", True))


@dataclass(frozen=True, slots=True)
class HeadMove:
    """Make a finished turn its conversation's head, unless someone moved the head away from
    `from_turn_id` meanwhile."""

    conversation_id: int
    from_turn_id: int | None


@dataclass(frozen=True, slots=True)
class Reporter:
    """One member's report of a result: who (shown to moderators only) and why."""

    user_id: int
    reason: str
    at: float


@dataclass(frozen=True, slots=True)
class Report:
    """The reports of one result, folded together while open (status `open`, `dismissed`,
    `deleted`); `channel_id`/`message_id`: the entry moderators see."""

    id: int
    guild_id: int
    turn_id: int
    status: str
    reporters: tuple[Reporter, ...]
    channel_id: int | None = None
    message_id: int | None = None
