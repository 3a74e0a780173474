"""Data model of the fake Discord: snowflakes, constants, records and errors.

Everything here is plain data; the HTTP and gateway behaviour lives in ``discord_rest`` and
``discord_gateway`` and the public entry point is :class:`tests.fakes.discord_server.FakeDiscord`.
"""

from __future__ import annotations

import datetime as dt
import io
import mimetypes
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from discord import Permissions

DISCORD_EPOCH_MS = 1420070400000

# --- intents (gateway) -------------------------------------------------------------------------
INTENT_GUILDS = 1 << 0
INTENT_GUILD_MEMBERS = 1 << 1
INTENT_GUILD_PRESENCES = 1 << 8
INTENT_GUILD_MESSAGES = 1 << 9
INTENT_GUILD_MESSAGE_REACTIONS = 1 << 10
INTENT_DIRECT_MESSAGES = 1 << 12
INTENT_DIRECT_MESSAGE_REACTIONS = 1 << 13
INTENT_MESSAGE_CONTENT = 1 << 15

# --- message flags / types -------------------------------------------------------------------
FLAG_EPHEMERAL = 1 << 6
FLAG_LOADING = 1 << 7
FLAG_SUPPRESS_EMBEDS = 1 << 2
MSG_DEFAULT = 0
MSG_THREAD_CREATED = 18
MSG_REPLY = 19
MSG_CHAT_INPUT_COMMAND = 20

# --- channel types ---------------------------------------------------------------------------
CH_TEXT = 0
CH_DM = 1
CH_PUBLIC_THREAD = 11
CH_PRIVATE_THREAD = 12
CH_FORUM = 15
# Topics → Threads "Media Channels": a GUILD_MEDIA (16) channel only holds threads, which behave
# as in a forum (same endpoints and events) unless noted
CH_MEDIA = 16
THREAD_ONLY = (CH_FORUM, CH_MEDIA)
THREAD_TYPES = (10, CH_PUBLIC_THREAD, CH_PRIVATE_THREAD)
FLAG_REQUIRE_TAG = 1 << 4  # Resources → Channel → Channel Flags: a forum post needs a tag

# --- permissions: names are discord.py's ``Permissions`` flag names --------------------------
PERMISSION_BITS: dict[str, int] = dict(Permissions.VALID_FLAGS)
ALL_PERMISSIONS = Permissions.all().value


def perm(*names: str) -> int:
    """Bitfield of the named permissions (discord.py flag names, e.g. ``"send_messages"``)."""
    value = 0
    for name in names:
        try:
            value |= PERMISSION_BITS[name]
        except KeyError:
            raise ValueError(f"unknown permission {name!r}") from None
    return value


P = PERMISSION_BITS  # short alias used by the handlers

EVERYONE_PERMISSIONS = perm(
    "view_channel",
    "send_messages",
    "send_messages_in_threads",
    "create_public_threads",
    "create_private_threads",
    "embed_links",
    "attach_files",
    "read_message_history",
    "add_reactions",
    "use_external_emojis",
    "use_application_commands",
    "change_nickname",
    "create_instant_invite",
    "connect",
    "speak",
)
BOT_ROLE_PERMISSIONS = EVERYONE_PERMISSIONS | perm("manage_webhooks")
MODERATOR_PERMISSIONS = perm(
    "manage_guild", "manage_messages", "manage_threads", "manage_channels", "moderate_members"
)

# --- upload limits (Reference -> "Uploading Files"; Nitro: the Nitro help pages) ---------------
MIB = 1024 * 1024
DEFAULT_UPLOAD_LIMIT = 10 * MIB
BOOST_UPLOAD_LIMITS = {0: 10 * MIB, 1: 10 * MIB, 2: 50 * MIB, 3: 100 * MIB}
NITRO_UPLOAD_LIMITS = {"basic": 50 * MIB, "nitro": 500 * MIB}

# --- errors ----------------------------------------------------------------------------------
ERROR_MESSAGES: dict[int, str] = {
    0: "",
    10003: "Unknown Channel",
    10008: "Unknown Message",
    10013: "Unknown User",
    10015: "Unknown Webhook",
    10062: "Unknown interaction",
    10063: "Unknown application command",
    40005: "Request entity too large",
    40058: "Cannot send a message in a forum channel",
    40060: "Interaction has already been acknowledged.",
    40067: "A tag is required to create a forum post in this channel",
    50001: "Missing Access",
    50005: "Cannot edit a message authored by another user",
    50006: "Cannot send an empty message",
    50007: "Cannot send messages to this user",
    50008: "Cannot send messages in a non-text channel",
    50013: "Missing Permissions",
    50024: "Cannot execute action on this channel type",
    50027: "Invalid Webhook Token",
    50035: "Invalid Form Body",
    50083: "Thread is archived",
    160004: "A thread has already been created for this message",
    160005: "Thread is locked",
    160006: "Maximum number of active threads reached",
}


class ApiError(Exception):
    """Raised by a REST handler; rendered as ``{"code", "message", "errors"?}`` JSON."""

    def __init__(
        self,
        status: int,
        code: int,
        message: str | None = None,
        errors: dict[str, Any] | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message if message is not None else ERROR_MESSAGES.get(code, "")
        self.errors = errors
        super().__init__(f"{status} {code} {self.message}")

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.errors:
            body["errors"] = self.errors
        return body


def form_error(path: str, code: str, message: str) -> ApiError:
    """A 400/50035 Invalid Form Body error at the dotted ``path`` (``embeds.0.description``)."""
    errors: dict[str, Any] = {}
    node = errors
    parts = path.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = {"_errors": [{"code": code, "message": message}]}
    return ApiError(400, 50035, "Invalid Form Body", errors)


def max_length_error(path: str, limit: int) -> ApiError:
    return form_error(path, "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")


# --- snowflakes and time ---------------------------------------------------------------------
class SnowflakeGenerator:
    """``((unix_ms - 1420070400000) << 22) | counter``, unique and strictly increasing."""

    def __init__(self) -> None:
        self._last = 0
        self._counter = 0
        self._lock = threading.Lock()

    def __call__(self) -> int:
        with self._lock:
            value = self._next()
            self._last = value
            return value

    def on_shard(self, shard_id: int, shard_count: int) -> int:
        """A fresh snowflake ``s`` with ``(s >> 22) % shard_count == shard_id``: a guild with this
        id is served by that shard (Topics → Gateway → Sharding, "Sharding Formula":
        ``shard_id = (guild_id >> 22) % num_shards``). The timestamp moves up by at most
        ``shard_count - 1`` ms; later snowflakes stay larger."""
        if not 0 <= shard_id < shard_count:
            raise ValueError(f"shard {shard_id} is not one of {shard_count}")
        with self._lock:
            value = self._next()
            stamp = value >> 22
            stamp += (shard_id - stamp) % shard_count
            value = (stamp << 22) | (value & 0x3FFFFF)
            self._last = value
            return value

    def _next(self) -> int:
        self._counter = (self._counter + 1) & 0xFFF
        value = ((int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22) | self._counter
        return max(value, self._last + 1)


def iso(ts: float | None = None) -> str:
    """An ISO-8601 timestamp as Discord writes them (``+00:00``)."""
    when = dt.datetime.fromtimestamp(time.time() if ts is None else ts, tz=dt.UTC)
    return when.isoformat()


def snowflake_time(snowflake: int) -> float:
    return ((snowflake >> 22) + DISCORD_EPOCH_MS) / 1000.0


# --- records ---------------------------------------------------------------------------------
@dataclass
class FakeGuild:
    """One server the bot is in: its roles (``@everyone`` has the guild's id), members and boost
    tier, and the ids of its own channels (the channel payloads live in ``FakeDiscord.channels``,
    each with its ``guild_id``)."""

    id: int
    name: str
    owner_id: int
    moderator_role_id: int
    bot_role_id: int
    premium_tier: int = 0
    created: float = field(default_factory=time.time)
    roles: dict[int, dict[str, Any]] = field(default_factory=dict)
    members: dict[int, dict[str, Any]] = field(default_factory=dict)
    text_channel_id: int = 0
    other_channel_id: int = 0
    forum_channel_id: int = 0

    def shard(self, shard_count: int) -> int:
        """The shard that receives this guild's events (Topics → Gateway → Sharding)."""
        return (self.id >> 22) % shard_count


@dataclass
class UploadedFile:
    """A file part of a multipart request."""

    field: str
    filename: str
    data: bytes
    content_type: str | None


@dataclass
class RecordedRequest:
    """One REST request as the fake received it (``path`` is relative to ``/api/v10``)."""

    method: str
    path: str
    query: dict[str, str]
    json: Any
    files: list[UploadedFile]
    time: float
    status: int | None = None
    response: Any = None


def guess_content_type(filename: str, data: bytes) -> str | None:
    guessed, _ = mimetypes.guess_type(filename)
    if guessed:
        return guessed
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    return None


def image_size(data: bytes) -> tuple[int, int] | None:
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as img:
            return int(img.width), int(img.height)
    except Exception:
        return None


@dataclass
class FakeAttachment:
    """An uploaded file, served back by the fake at ``url``."""

    id: int
    filename: str
    data: bytes
    content_type: str | None
    url: str
    proxy_url: str
    width: int | None = None
    height: int | None = None
    description: str | None = None
    ephemeral: bool = False
    title: str | None = None

    @property
    def size(self) -> int:
        return len(self.data)

    def to_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "id": str(self.id),
            "filename": self.filename,
            "size": self.size,
            "url": self.url,
            "proxy_url": self.proxy_url,
        }
        if self.title:
            payload["title"] = self.title
        if self.content_type:
            payload["content_type"] = self.content_type
        if self.width is not None and self.height is not None:
            payload["width"] = self.width
            payload["height"] = self.height
        if self.description is not None:
            payload["description"] = self.description
        if self.ephemeral:
            payload["ephemeral"] = True
        return payload


@dataclass
class MessageVersion:
    """A previous version of an edited message."""

    content: str
    embeds: list[dict[str, Any]]
    components: list[dict[str, Any]]
    attachments: list[FakeAttachment]
    flags: int
    edited_at: float | None


@dataclass
class FakeMessage:
    """A message in the fake's store (channel transcript or ephemeral interaction reply)."""

    id: int
    channel_id: int
    guild_id: int | None
    author: dict[str, Any]
    content: str = ""
    embeds: list[dict[str, Any]] = field(default_factory=list)
    components: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[FakeAttachment] = field(default_factory=list)
    message_reference: dict[str, Any] | None = None
    flags: int = 0
    type: int = MSG_DEFAULT
    tts: bool = False
    nonce: str | None = None
    mentions: list[int] = field(default_factory=list)
    mention_roles: list[int] = field(default_factory=list)
    mention_everyone: bool = False
    allowed_mentions: dict[str, Any] | None = None  # as the creating request sent it
    notified: list[int] = field(default_factory=list)  # users pinged when it was created
    webhook_id: int | None = None
    application_id: int | None = None
    interaction_metadata: dict[str, Any] | None = None
    interaction_legacy: dict[str, Any] | None = None
    created_at: float = field(default_factory=time.time)
    edited_at: float | None = None
    edits: list[MessageVersion] = field(default_factory=list)
    deleted: bool = False
    reactions: dict[str, set[int]] = field(default_factory=dict)
    thread_id: int | None = None
    position: int | None = None
    poll: dict[str, Any] | None = None
    sticker_ids: list[str] = field(default_factory=list)

    @property
    def author_id(self) -> int:
        return int(self.author["id"])

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & FLAG_EPHEMERAL)

    @property
    def loading(self) -> bool:
        return bool(self.flags & FLAG_LOADING)

    def snapshot(self) -> MessageVersion:
        return MessageVersion(
            content=self.content,
            embeds=list(self.embeds),
            components=list(self.components),
            attachments=list(self.attachments),
            flags=self.flags,
            edited_at=self.edited_at,
        )

    def __repr__(self) -> str:
        state = " deleted" if self.deleted else ""
        return (
            f"<FakeMessage id={self.id} channel={self.channel_id}"
            f" author={self.author.get('username')}"
            f" content={self.content[:40]!r} files={[a.filename for a in self.attachments]}{state}>"
        )


@dataclass
class FakeInteraction:
    """An interaction the fake sent to the bot, and everything the bot answered to it."""

    id: int
    token: str
    type: int
    user_id: int
    channel_id: int
    guild_id: int | None
    payload: dict[str, Any]
    created_at: float = field(default_factory=time.time)
    created_mono: float = field(default_factory=time.monotonic)
    callbacks: list[dict[str, Any]] = field(default_factory=list)
    response_type: int | None = None
    acked_at: float | None = None
    errors: list[int] = field(default_factory=list)
    followups: list[FakeMessage] = field(default_factory=list)
    original: FakeMessage | None = None
    modal: dict[str, Any] | None = None
    autocomplete_choices: list[dict[str, Any]] | None = None
    ephemeral_messages: list[FakeMessage] = field(default_factory=list)
    # the message a component / modal-from-component interaction was on
    source_message_id: int | None = None
    # the interaction whose modal this (modal submit) interaction answers
    parent: FakeInteraction | None = None

    @property
    def error(self) -> int | None:
        """The last error code the fake answered this interaction's requests with."""
        return self.errors[-1] if self.errors else None

    @property
    def acked(self) -> bool:
        return self.response_type is not None

    @property
    def deferred(self) -> bool:
        return self.response_type in (5, 6)

    @property
    def data(self) -> dict[str, Any]:
        return self.payload.get("data", {})

    def messages(self) -> list[FakeMessage]:
        """The original response (if any) followed by the followups."""
        out = [self.original] if self.original is not None else []
        return out + [m for m in self.followups if m is not self.original]

    def __repr__(self) -> str:
        return (
            f"<FakeInteraction id={self.id} type={self.type} response_type={self.response_type}"
            f" errors={self.errors} followups={len(self.followups)}>"
        )
