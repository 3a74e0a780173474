"""What the core may ask of a store, whichever database holds it.

`Store` is the core's only view of persistence: repositories that take and return the models of
`bot.core.models`, and `transaction()` to make several changes atomic. Both backends (SQLite at
`DATABASE_PATH`, PostgreSQL at `DATABASE_URL`) implement it; `bot.store.open_store` picks one.

`SqlDatabase` is the narrower contract between the shared repositories and a backend's connection:
statements are written once with `?` placeholders, and each backend runs them in its dialect.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from bot.core.models import (
    Conversation,
    DailyUsage,
    HeadMove,
    ImageRef,
    InputImage,
    RecordedResult,
    Report,
    Reporter,
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

Row = Mapping[str, Any]  # a result row: both sqlite3 rows and asyncpg records index by name


class ConversationStore(Protocol):
    async def create(
        self,
        conversation_id: int,
        *,
        guild_id: int | None,
        parent_channel_id: int | None,
        owner_id: int,
        options: ImageOptions,
    ) -> None: ...

    async def get(self, conversation_id: int) -> Conversation | None: ...

    async def set_head(self, conversation_id: int, turn_id: int | None) -> None: ...

    async def move_head(
        self, conversation_id: int, turn_id: int, *, from_turn_id: int | None
    ) -> None: ...

    async def set_options(self, conversation_id: int, options: ImageOptions) -> None: ...

    async def set_bot_opened(self, conversation_id: int, bot_opened: bool) -> None: ...

    async def set_remixed_from(self, conversation_id: int, channel_id: int, message_id: int) -> None: ...


class TurnStore(Protocol):
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
        variant: tuple[int, int, int] | None = None,  # (group, index, count) of a variant
        reserved_usd: float = 0.0,
        own_key: bool = False,
        exempt: bool = False,  # its author was exempt from the server's limits when admitted
    ) -> int: ...

    async def get(self, turn_id: int) -> Turn | None: ...

    async def by_message(self, message_id: int) -> Turn | None: ...

    async def inputs(self, turn_id: int) -> list[InputImage]: ...

    async def unfinished(self) -> list[Turn]: ...

    async def variant_siblings(self, group: int) -> list[Turn]: ...

    async def in_conversation(self, conversation_id: int) -> list[Turn]: ...

    async def latest_done(self, conversation_id: int) -> Turn | None: ...

    async def lineage(self, turn_id: int) -> list[Turn]: ...

    async def mark_running(self, turn_id: int) -> None: ...

    async def set_progress_message(self, turn_id: int, message_id: int) -> None: ...

    async def set_response_id(self, turn_id: int, response_id: str, sequence: int | None) -> None: ...

    async def set_parent(self, turn_id: int, parent_id: int) -> None: ...

    async def set_rerooted(self, turn_id: int) -> None: ...

    async def settle(self, turn_id: int, *, usage: Usage, cost_usd: float) -> None: ...

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
        """Record a finished turn, all or nothing: `note` (kept in `error_detail`) says where
        the result went when that was not its progress message; `message_ids` (all of them,
        linked to the turn) show it; `head` moves the conversation's head to it."""

    async def finish_failed(
        self, turn_id: int, *, status: TurnStatus, error_kind: str, error_detail: str = "",
        usage: Usage | None = None, cost_usd: float = 0.0,
    ) -> None:
        """`usage`/`cost_usd`: what the API billed although the turn has no result."""

    async def raise_reservation(self, turn_id: int, amount: float) -> None: ...


    async def mark_deleted(self, turn_id: int) -> None:
        """Mark a turn deleted and drop the images attached to its request."""

    async def prune_inputs(self, *, finished_before: float, limit: int = 500) -> int:
        """Drop the attached images of up to `limit` turns over before `finished_before`;
        returns how many turns lost theirs."""


class UsageStore(Protocol):
    async def totals(
        self, *, since: float, author_id: int | None = None, guild_id: int | None = None
    ) -> UsageTotals: ...

    async def spend(
        self, *, since: float, guild_id: int | None = None, instance_only: bool = False,
        before: int | None = None,  # reservations of the turns admitted before this one only
    ) -> Spend: ...

    async def turn_costs(self, *, since: float) -> list[TurnCost]: ...

    async def pending(self, *, author_id: int | None = None, guild_id: int | None = None,
                      before: int | None = None) -> int: ...

    async def images_and_pending(self, *, author_id: int, since: float, before: int) -> int:
        """`totals(...).images` plus `pending(..., before=before)` of one author, read at one
        moment (a turn finishing in between is counted once)."""
        ...

    async def record_text(
        self, *, guild_id: int | None, author_id: int, kind: str, usage: Usage, cost_usd: float,
        own_key: bool = False,
    ) -> None: ...

    async def top_users(
        self, guild_id: int, *, since: float, limit: int = 5
    ) -> list[tuple[int, int, float]]: ...

    async def daily(
        self, *, since: float, guild_id: int | None = None, author_id: int | None = None
    ) -> list[DailyUsage]: ...


class GuildSettingsStore(Protocol):
    async def get(self, guild_id: int) -> dict[str, Any]: ...

    async def all(self) -> dict[int, dict[str, Any]]: ...

    async def put(self, guild_id: int, settings: dict[str, Any]) -> None: ...


class UserPrefsStore(Protocol):
    async def get(self, user_id: int) -> UserPrefs: ...

    async def set_locale(self, user_id: int, locale: str) -> None: ...

    async def put(self, user_id: int, prefs: UserPrefs) -> None: ...


class ServerKeyStore(Protocol):
    async def get(self, guild_id: int) -> ServerKey | None: ...

    async def put(self, guild_id: int, encrypted: str) -> None: ...

    async def mark_failed(self, guild_id: int) -> bool: ...

    async def all(self) -> dict[int, ServerKey]: ...

    async def reseal(self, guild_id: int, encrypted: str) -> None: ...

    async def delete(self, guild_id: int) -> None: ...


class ShowcaseStore(Protocol):
    async def get(self, turn_id: int) -> ShowcasePost | None: ...

    async def by_post(self, post_id: int) -> ShowcasePost | None: ...

    async def in_conversation(self, conversation_id: int) -> list[ShowcasePost]: ...

    async def add(self, post: ShowcasePost) -> None:
        """Record a post unless the turn already has one (that one is kept)."""

    async def remove(self, turn_id: int) -> None: ...


class ModerationStore(Protocol):
    async def log_channel(self, guild_id: int) -> int | None: ...

    async def set_log_channel(self, guild_id: int, channel_id: int | None) -> None: ...

    async def switch_off(self, guild_id: int, channel_id: int) -> bool: ...

    async def report(self, guild_id: int, turn_id: int,
                     reporter: Reporter) -> tuple[Report, bool]: ...

    async def get(self, report_id: int) -> Report | None: ...

    async def set_message(self, report_id: int, channel_id: int, message_id: int) -> None: ...

    async def close(self, report_id: int, status: str) -> bool: ...


class DeliveryStore(Protocol):
    """Billed results kept until they are shown (bot/core/delivery.py)."""

    async def record(
        self, turn_id: int, result: TurnResult, *, cost_usd: float, recorded_at: float
    ) -> None: ...

    async def get(self, turn_id: int) -> RecordedResult | None: ...

    async def forget(self, turn_id: int) -> None: ...

    async def reopen(self, turn_id: int) -> bool | None: ...


class MetaStore(Protocol):
    async def get(self, key: str) -> str | None: ...

    async def put(self, key: str, value: str) -> None: ...


class Store(Protocol):
    """Every repository over one database, and its transactions."""

    @property
    def conversations(self) -> ConversationStore: ...

    @property
    def turns(self) -> TurnStore: ...

    @property
    def usage(self) -> UsageStore: ...

    @property
    def guild_settings(self) -> GuildSettingsStore: ...

    @property
    def meta(self) -> MetaStore: ...

    @property
    def server_keys(self) -> ServerKeyStore: ...

    @property
    def user_prefs(self) -> UserPrefsStore: ...

    @property
    def showcase(self) -> ShowcaseStore: ...

    @property
    def moderation(self) -> ModerationStore: ...

    @property
    def deliveries(self) -> DeliveryStore: ...

    def transaction(self) -> AbstractAsyncContextManager[Any]:
        """All repository calls inside (in this task) commit together or not at all; nested
        use joins the outer transaction."""

    async def close(self) -> None: ...


class SqlDatabase(Protocol):
    """A backend's connection as the shared repositories use it (`?` placeholders)."""

    dialect: str  # "sqlite" | "postgresql"

    def transaction(self) -> AbstractAsyncContextManager[Any]: ...

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int: ...

    async def insert(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Insert one row into a table keyed by `id`; returns the new row's id."""

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...

    async def atomic(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> None:
        """Run write statements (no reads between them) all or none."""

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None: ...

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...

    def utc_day(self, column: str) -> str:
        """An SQL expression: the UTC date (YYYY-MM-DD) of a unix-time column."""

    async def schema_version(self) -> int: ...

    async def close(self) -> None: ...
