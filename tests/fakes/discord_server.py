"""A fake Discord (REST + gateway on aiohttp) for running an unmodified discord.py bot in tests.

Point discord.py at it with two process-wide switches (``running_bot`` does both and restores
them)::

    discord.http.Route.BASE = fake.api_base
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)

then drive the bot the way people do: :meth:`FakeDiscord.slash`, :meth:`~FakeDiscord.click`,
:meth:`~FakeDiscord.submit_modal`, :meth:`~FakeDiscord.say`, :meth:`~FakeDiscord.dm`, and read
what it did from :meth:`~FakeDiscord.messages`, :attr:`~FakeDiscord.threads`, the returned
:class:`FakeInteraction` objects and :attr:`~FakeDiscord.request_log`.

What is faithful (checked against discord.py 2.7.1's parsers, so no payload lacks a field the
library indexes with ``[...]``):

* Login (``/users/@me``, ``/oauth2/applications/@me``), ``/gateway`` and ``/gateway/bot``;
  command sync (global and guild, ids kept across PUTs and bot restarts, basic validation).
* Gateway: HELLO, heartbeat ACK, IDENTIFY → READY → GUILD_CREATE per guild (roles, members,
  two text channels, a forum, active threads), sequence numbers, RESUME with replay of missed
  dispatches, INVALID_SESSION, op 7 RECONNECT, shards (a guild, and every event and interaction
  of it, goes to shard ``(guild_id >> 22) % shard_count`` only; DMs to shard 0), intent
  filtering, close 4014 for a disallowed MESSAGE_CONTENT intent, member chunk requests.
* Guilds: a default one (``guild_id``, ``text_channel_id``...) and more with
  :meth:`FakeDiscord.add_guild` (``shard=`` picks a snowflake on a given shard), each with its
  own roles, members, boost tier and channels; REST answers for every one of them.
* MESSAGE_CONTENT semantics: without the intent, other users' guild messages arrive with empty
  content/embeds/attachments/components unless they mention the bot (a reply that pings a bot
  message counts); DMs and the bot's own messages are exempt. REST reads follow the same rule.
* Interactions (slash with typed options and attachments, autocomplete, components incl.
  DynamicItem, modals), callback ``?with_response=1`` bodies, the 3 s ack deadline (10062),
  double ack (40060), token lifetime (50027), ephemeral replies kept off the channel, a
  deferred "thinking" reply that the first followup replaces, ``@original`` of a component
  interaction being the clicked message after a type 6/7 answer.
* Messages (JSON and multipart, attachments served back, edit keeping attachments by id,
  delete, history, typing, reactions), limits (2000 chars, 10 embeds, 4096 embed description,
  10 files, upload size → 413/40005, custom_id 1–100, empty message 50006), replies.
* Threads from messages (id == message id, 160004), standalone threads (private by default),
  forum posts (starter message id == thread id), 40058 in a forum, unarchive on send, 160005 in
  a locked thread, thread owner rights vs MANAGE_THREADS.
* Permissions: roles + channel overwrites; :meth:`FakeDiscord.deny` adds a bot member
  overwrite (dispatching CHANNEL_UPDATE) or a per-thread deny, giving 403/50013 and showing up in
  ``app_permissions``.
* Errors as ``{"code", "message", "errors"?}`` with ``Content-Type: application/json`` exactly;
  injected 429s carry ``Via`` and JSON ``retry_after`` so discord.py retries.

Simplified: a user is a member of one guild; the same owner owns every guild; no rate-limit
headers or real rate limiting; no auto-archiving; no voice,
presence, stickers, polls beyond storage; no THREAD_MEMBERS_UPDATE or thread-starter (type 21)
messages; the token's value is not checked (any non-empty token logs in unless
``token_accepted=False``, which rejects every token); CDN URLs are plain
``http://127.0.0.1:<port>/attachments/...`` without signatures.

Standalone: ``python -m tests.fakes.discord_server --port 0`` prints
``READY <api_base> <gateway_url>`` and serves until SIGTERM; a JSON control API under
``/_control/`` (see :mod:`tests.fakes.discord_control`) drives it from another process.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

from aiohttp import web

from .discord_gateway import Gateway, GatewaySession
from .discord_models import (
    ALL_PERMISSIONS,
    BOOST_UPLOAD_LIMITS,
    BOT_ROLE_PERMISSIONS,
    CH_DM,
    CH_FORUM,
    CH_MEDIA,
    CH_PRIVATE_THREAD,
    CH_TEXT,
    DEFAULT_UPLOAD_LIMIT,
    EVERYONE_PERMISSIONS,
    FLAG_REQUIRE_TAG,
    INTENT_MESSAGE_CONTENT,
    MODERATOR_PERMISSIONS,
    MSG_REPLY,
    NITRO_UPLOAD_LIMITS,
    PERMISSION_BITS,
    THREAD_ONLY,
    ApiError,
    FakeAttachment,
    FakeGuild,
    FakeInteraction,
    FakeMessage,
    RecordedRequest,
    SnowflakeGenerator,
    guess_content_type,
    image_size,
    iso,
    perm,
)
from .serving import until_signalled

__all__ = [
    "FailRule",
    "FakeAttachment",
    "FakeDiscord",
    "FakeDiscordError",
    "FakeGuild",
    "FakeInteraction",
    "FakeMessage",
    "RecordedRequest",
    "running_bot",
]

T = TypeVar("T")
UserRef = dict[str, Any] | int | str

ADMINISTRATOR = PERMISSION_BITS["administrator"]
VIEW_CHANNEL = PERMISSION_BITS["view_channel"]
DM_BOT_PERMISSIONS = perm(
    "view_channel",
    "send_messages",
    "embed_links",
    "attach_files",
    "read_message_history",
    "add_reactions",
    "use_external_emojis",
)


class FakeDiscordError(RuntimeError):
    """A test drove the fake into something a real user could not do (or it timed out)."""


@dataclass
class FailRule:
    """An injected failure (see :meth:`FakeDiscord.fail_next`)."""

    method: str
    path_regex: re.Pattern[str]
    status: int
    code: int
    message: str
    retry_after: float | None
    times: int
    until: float | None = None  # an outage: every match fails until this time.monotonic()
    drop: bool = False  # close the connection without an answer instead of `status`
    handled: bool = False  # (with `drop`) the request takes effect; only its answer is lost

    def matches(self, method: str, path: str, now: float) -> bool:
        live = now < self.until if self.until is not None else self.times > 0
        return live and self.method in (method, "*") and bool(self.path_regex.search(path))


class FakeDiscord:
    """One fake Discord: a bot application in one guild (more with :meth:`add_guild`), REST
    under ``api_base``, a gateway."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        message_content_intent_allowed: bool = True,
        ack_deadline: float = 3.0,
        token_lifetime: float = 900.0,
        upload_limit: int | None = None,
        premium_tier: int = 0,
        heartbeat_interval: float = 41.25,
        heartbeat_ack_delay: float = 0.05,
        max_active_threads: int = 1000,
        token_accepted: bool = True,
    ) -> None:
        self.host = host
        # False: the bot token is rejected, as Discord rejects a wrong or reset token (REST 401
        # "401: Unauthorized" code 0; gateway close 4004). See RestApi.middleware, Gateway._identify.
        self.token_accepted = token_accepted
        self.port = port
        self.message_content_intent_allowed = message_content_intent_allowed
        self.ack_deadline = ack_deadline
        self.token_lifetime = token_lifetime
        # The server's boost tier sets what the bot (and webhooks, and interaction responses) may
        # upload; ``upload_limit`` overrides it with a smaller fake-only value for quick tests.
        # ``premium_tier`` is the default guild's (each guild has its own).
        self.upload_limit_override = upload_limit
        self.nitro_limits: dict[int, int] = {}  # user id -> the upload limit their Nitro gives
        # what GET /gateway/bot answers (a REST proxy may advertise Discord's own gateway)
        self.advertised_gateway_url: str | None = None
        self.recommended_shards = 1
        self.max_active_threads = max_active_threads
        # Seconds between Discord making an interaction (its id's timestamp, and when its 3 s to
        # answer start: Receiving and Responding → Responding to an Interaction) and the gateway
        # delivering it: a backlog on Discord's side or a slow link. 0: at once.
        self.interaction_delivery_delay = 0.0
        self.snowflake = SnowflakeGenerator()

        self.api_base = ""
        self.gateway_url = ""
        self.base_url = ""
        self._runner: web.AppRunner | None = None
        self.gateway = Gateway(
            self,
            heartbeat_interval_ms=int(heartbeat_interval * 1000),
            heartbeat_ack_delay=heartbeat_ack_delay,
        )

        # recording
        self.request_log: list[RecordedRequest] = []
        self.downloads: list[int] = []  # attachment ids fetched from the CDN, in order (observed)
        self.identify_payloads: list[dict[str, Any]] = []
        self.client_errors: list[BaseException] = []  # exceptions that ended a bot's connect task
        self.fail_rules: list[FailRule] = []
        # the bot's messages sent with `enforce_nonce`, by nonce: (message, when) (see post_message)
        self.nonces: dict[str, tuple[FakeMessage, float]] = {}
        self.holds: list[tuple[str, re.Pattern[str], asyncio.Event]] = []

        # the application, its bot user and the guild owner
        self.application_id = self.snowflake()
        self.owner = self._make_user("guild-owner")
        self.bot_user: dict[str, Any] = self._make_user("imagine-bot", bot=True, user_id=self.application_id)
        self.bot_user.update(verified=True, mfa_enabled=False, flags=0, locale="en-US")
        self.bot_id = self.application_id
        self.users: dict[int, dict[str, Any]] = {
            int(self.owner["id"]): self.owner,
            self.bot_id: self.bot_user,
        }
        self.user_locales: dict[int, str] = {}
        self.dms_open: dict[int, bool] = {}

        # channels of every guild (each payload names its guild), threads, DM channels
        self.channels: dict[int, dict[str, Any]] = {}
        self.threads: dict[int, dict[str, Any]] = {}
        self.dm_channels: dict[int, dict[str, Any]] = {}
        self.thread_denies: dict[int, int] = {}

        # guilds: the default one (``guild_id``, ``text_channel_id``... name its parts) and any
        # added with :meth:`add_guild`
        self.guilds: dict[int, FakeGuild] = {}
        self.guild = self._new_guild("Fake Guild", self.snowflake(), premium_tier)
        self.guild_id = self.guild.id
        self.roles = self.guild.roles
        self.members = self.guild.members
        self.moderator_role_id = self.guild.moderator_role_id
        self.bot_role_id = self.guild.bot_role_id
        self.text_channel_id = self.guild.text_channel_id
        self.other_channel_id = self.guild.other_channel_id
        self.forum_channel_id = self.guild.forum_channel_id

        # messages and interactions
        self.transcripts: dict[int, list[FakeMessage]] = {}
        self.message_index: dict[int, FakeMessage] = {}
        self.attachments: dict[int, FakeAttachment] = {}
        self.interactions: dict[int, FakeInteraction] = {}
        self.interactions_by_token: dict[str, FakeInteraction] = {}
        self.thread_members: dict[int, set[int]] = {}

        # application commands: None = global, else guild id
        self.commands: dict[int | None, list[dict[str, Any]]] = {}
        self.command_syncs = 0

    # ------------------------------------------------------------------------------------------
    # upload limits
    # ------------------------------------------------------------------------------------------
    # Reference -> "Uploading Files" and the changelog "Default File Upload Limit Change"
    # (2024-12-16): uploads are limited per file by the server's boost tier (10 MiB at tier 0 and
    # 1, 50 MiB at tier 2, 100 MiB at tier 3; 10 MiB outside servers), for bots, webhooks and
    # interaction responses alike. An interaction's ``attachment_size_limit`` is the larger of that
    # and the invoking user's own Nitro limit (changelog "Per-Attachment File Upload Behavior"): it
    # says what the *user* may attach, not what the bot may post.
    @property
    def premium_tier(self) -> int:
        """The default guild's boost tier."""
        return self.guild.premium_tier

    @property
    def guild_name(self) -> str:
        return self.guild.name

    @property
    def upload_limit(self) -> int:
        """The per-file limit on the bot's own uploads in the default server (boost tier, or
        override)."""
        return self.guild_upload_limit(self.guild)

    def guild_upload_limit(self, guild: FakeGuild) -> int:
        if self.upload_limit_override is not None:
            return self.upload_limit_override
        return BOOST_UPLOAD_LIMITS[guild.premium_tier]

    @upload_limit.setter
    def upload_limit(self, value: int | None) -> None:
        self.upload_limit_override = value

    def bot_upload_limit(self, channel_id: int) -> int:
        """What the bot may upload per file in a channel: the server's limit, 10 MiB in DMs."""
        guild_id = self.guild_of(channel_id)
        if guild_id is None:
            return self.upload_limit_override or DEFAULT_UPLOAD_LIMIT
        return self.guild_upload_limit(self.guild_for(guild_id))

    def user_upload_limit(self, user_id: int, channel_id: int) -> int:
        """What a user may attach: the larger of the place's limit and their Nitro limit."""
        return max(self.bot_upload_limit(channel_id), self.nitro_limits.get(user_id, 0))

    def set_premium_tier(self, tier: int, guild_id: int | None = None) -> None:
        """Boosts change a server's tier (GUILD_UPDATE); the default guild unless named."""
        guild = self.guild_for(guild_id)
        guild.premium_tier = tier
        self.dispatch_guild("GUILD_UPDATE", self.guild_payload(guild.id))

    # ------------------------------------------------------------------------------------------
    # lifecycle
    # ------------------------------------------------------------------------------------------
    async def start(self) -> None:
        from .discord_control import add_control_routes
        from .discord_rest import RestApi

        rest = RestApi(self)
        app = web.Application(middlewares=[rest.middleware], client_max_size=1024**3)
        app.router.add_get("/gateway", self.gateway.handle)
        rest.add_routes(app)
        add_control_routes(self, app)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        self.base_url = f"http://{self.host}:{self.port}"
        self.api_base = f"{self.base_url}/api/v10"
        self.gateway_url = f"ws://{self.host}:{self.port}/gateway"

    async def stop(self) -> None:
        await self.gateway.close_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeDiscord:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------------------------------
    # users, roles, members
    # ------------------------------------------------------------------------------------------
    def _make_user(self, name: str, *, bot: bool = False, user_id: int | None = None) -> dict[str, Any]:
        uid = user_id or self.snowflake()
        user: dict[str, Any] = {
            "id": str(uid),
            "username": name,
            "discriminator": "0",
            "global_name": None if bot else name.title(),
            "avatar": None,
            "public_flags": 0,
            # Resources → User → User Object; the OpenAPI spec's UserResponse requires both
            "flags": 0,
            "primary_guild": None,
        }
        if bot:
            user["bot"] = True
        return user

    # ------------------------------------------------------------------------------------------
    # guilds
    # ------------------------------------------------------------------------------------------
    def _new_guild(self, name: str, guild_id: int, premium_tier: int) -> FakeGuild:
        """A guild with @everyone, Moderator and the bot's managed role, the owner and the bot as
        members, and two text channels and a forum."""
        guild = FakeGuild(
            id=guild_id, name=name, owner_id=int(self.owner["id"]),
            moderator_role_id=self.snowflake(), bot_role_id=self.snowflake(),
            premium_tier=premium_tier,
        )
        self.guilds[guild_id] = guild
        self._add_role(guild, guild_id, "@everyone", EVERYONE_PERMISSIONS, position=0)
        self._add_role(guild, guild.moderator_role_id, "Moderator", MODERATOR_PERMISSIONS, position=2)
        self._add_role(
            guild,
            guild.bot_role_id,
            "imagine-bot",
            BOT_ROLE_PERMISSIONS,
            position=1,
            managed=True,
            tags={"bot_id": str(self.bot_id)},
        )
        self._add_member(guild, guild.owner_id, [])
        self._add_member(guild, self.bot_id, [guild.bot_role_id])
        guild.text_channel_id = self._add_guild_channel(guild, "general", CH_TEXT, 0)
        guild.other_channel_id = self._add_guild_channel(guild, "random", CH_TEXT, 1)
        guild.forum_channel_id = self._add_guild_channel(guild, "gallery", CH_FORUM, 2)
        return guild

    def add_guild(
        self,
        name: str = "Other Guild",
        *,
        shard: tuple[int, int] | None = None,
        premium_tier: int = 0,
    ) -> FakeGuild:
        """The bot is in one more server (with its own roles, members and channels, like the
        default one). ``shard=(shard_id, shard_count)`` picks its snowflake so that the guild
        falls on that shard (``(guild_id >> 22) % shard_count``). Sessions that are already
        connected get GUILD_CREATE as for a server the bot has just joined; later IDENTIFYs list it
        in READY, on the owning shard only."""
        guild_id = self.snowflake.on_shard(*shard) if shard is not None else self.snowflake()
        guild = self._new_guild(name, guild_id, premium_tier)
        payload = self.guild_create_payload(guild_id)
        payload.pop("unavailable")  # a join, not a recovery from an outage (see readd_bot)
        self.dispatch_guild("GUILD_CREATE", payload)
        return guild

    def guild_for(self, guild_id: int | None) -> FakeGuild:
        """The guild with this id; the default guild for None."""
        if guild_id is None:
            return self.guild
        try:
            return self.guilds[guild_id]
        except KeyError:
            raise FakeDiscordError(f"unknown guild {guild_id}") from None

    def guild_of(self, channel_id: int) -> int | None:
        """The guild a channel or thread belongs to; None for a DM channel."""
        if channel_id in self.dm_channels:
            return None
        channel = self.channels.get(channel_id) or self.threads.get(channel_id)
        return int(channel["guild_id"]) if channel is not None else self.guild_id

    def _add_role(
        self,
        guild: FakeGuild,
        role_id: int,
        name: str,
        permissions: int,
        *,
        position: int,
        managed: bool = False,
        tags: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        role: dict[str, Any] = {
            "id": str(role_id),
            "name": name,
            "permissions": str(permissions),
            "position": position,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "icon": None,
            "unicode_emoji": None,
            "managed": managed,
            "mentionable": False,
            "flags": 0,
        }
        if tags:
            role["tags"] = tags
        guild.roles[role_id] = role
        return role

    def _add_member(self, guild: FakeGuild, user_id: int, roles: list[int]) -> dict[str, Any]:
        member = {
            "roles": [str(r) for r in roles],
            "joined_at": iso(),
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "nick": None,
            "avatar": None,
            "banner": None,
            "communication_disabled_until": None,
        }
        guild.members[user_id] = member
        return member

    def add_user(
        self,
        name: str,
        *,
        roles: Sequence[int] = (),
        permissions: int | Iterable[str] | None = None,
        locale: str = "en-US",
        bot: bool = False,
        dms_open: bool = True,
        nitro: str | None = None,
        guild_id: int | None = None,
    ) -> dict[str, Any]:
        """Add a member of the default guild (or of ``guild_id``); returns its user payload
        (``user["id"]`` is a string snowflake).

        ``permissions`` (a bitfield or discord.py flag names such as ``["manage_guild"]``) gives
        the member a personal role with those permissions. ``dms_open=False`` makes the bot's
        DMs to this user fail with 50007. ``nitro`` (``"basic"`` or ``"nitro"``) raises what the
        user may upload (and so their interactions' ``attachment_size_limit``).
        """
        user = self._make_user(name, bot=bot)
        uid = int(user["id"])
        self.users[uid] = user
        self.user_locales[uid] = locale
        self.dms_open[uid] = dms_open
        if nitro is not None:
            self.nitro_limits[uid] = NITRO_UPLOAD_LIMITS[nitro]
        guild = self.guild_for(guild_id)
        role_ids = list(roles)
        new_role: dict[str, Any] | None = None
        if permissions is not None:
            value = permissions if isinstance(permissions, int) else perm(*permissions)
            rid = self.snowflake()
            new_role = self._add_role(guild, rid, f"{name}-role", value, position=1)
            role_ids.append(rid)
        member = self._add_member(guild, uid, role_ids)
        if new_role is not None:
            self.dispatch_guild("GUILD_ROLE_CREATE", {"guild_id": str(guild.id), "role": new_role})
        self.dispatch_guild("GUILD_MEMBER_ADD", {**member, "user": user, "guild_id": str(guild.id)})
        return user

    def set_roles(self, user: UserRef, roles: Sequence[int], guild_id: int | None = None) -> None:
        """A moderator changes a member's roles (GUILD_MEMBER_UPDATE; REST shows the change).
        Discord sends the event only to bots with the GUILD_MEMBERS intent (Gateway docs,
        Guild Member Update); the gateway's intent filter drops it for the others."""
        uid = self.uid(user)
        guild = self.guild_for(guild_id)
        member = guild.members[uid]
        member["roles"] = [str(r) for r in roles]
        self.dispatch_guild("GUILD_MEMBER_UPDATE", {
            "guild_id": str(guild.id), "roles": member["roles"],
            "user": self.user_payload(uid), "joined_at": member["joined_at"],
        })

    def uid(self, user: UserRef) -> int:
        """A user id from a user payload, a member payload, or an id."""
        if isinstance(user, dict):
            if "user" in user:
                return int(user["user"]["id"])
            return int(user["id"])
        return int(user)

    def user_payload(self, user: UserRef) -> dict[str, Any]:
        uid = self.uid(user)
        try:
            return self.users[uid]
        except KeyError:
            raise FakeDiscordError(f"unknown user {uid}") from None

    def member_payload(
        self, user_id: int, *, with_user: bool = True, guild_id: int | None = None
    ) -> dict[str, Any]:
        """A member of the default guild (or of ``guild_id``)."""
        member = dict(self.guild_for(guild_id).members[user_id])
        if with_user:
            member["user"] = self.users[user_id]
        return member

    def member_payloads(self, guild_id: int | None = None) -> list[dict[str, Any]]:
        guild = self.guild_for(guild_id)
        return [self.member_payload(uid, guild_id=guild.id) for uid in guild.members]

    def is_member(self, user_id: int, guild_id: int | None) -> bool:
        return guild_id is not None and user_id in self.guild_for(guild_id).members

    # ------------------------------------------------------------------------------------------
    # channels and threads
    # ------------------------------------------------------------------------------------------
    def _add_guild_channel(self, guild: FakeGuild, name: str, type_: int, position: int) -> int:
        cid = self.snowflake()
        channel: dict[str, Any] = {
            "id": str(cid),
            "type": type_,
            "guild_id": str(guild.id),
            "name": name,
            "position": position,
            "permission_overwrites": [],
            "topic": None,
            "nsfw": False,
            "parent_id": None,
            "rate_limit_per_user": 0,
            "last_message_id": None,
            "default_auto_archive_duration": 1440,
            "default_thread_rate_limit_per_user": 0,
            "flags": 0,
        }
        if type_ in THREAD_ONLY:
            channel.update(
                available_tags=[
                    {
                        "id": str(self.snowflake()),
                        "name": "art",
                        "moderated": False,
                        "emoji_id": None,
                        "emoji_name": None,
                    },
                    {
                        "id": str(self.snowflake()),
                        "name": "photo",
                        "moderated": False,
                        "emoji_id": None,
                        "emoji_name": None,
                    },
                ],
                default_reaction_emoji=None,
                default_sort_order=None,
                default_forum_layout=0,
                template="",
            )
        self.channels[cid] = channel
        return cid

    def add_channel(
        self, name: str, *, forum: bool = False, media: bool = False, guild_id: int | None = None
    ) -> int:
        """Add a text (or forum, or media) channel at runtime to the default guild (or to
        ``guild_id``); dispatches CHANNEL_CREATE. Forum and media channels get two tags."""
        guild = self.guild_for(guild_id)
        position = len(self.guild_channels(guild.id))
        type_ = CH_MEDIA if media else CH_FORUM if forum else CH_TEXT
        cid = self._add_guild_channel(guild, name, type_, position)
        self.dispatch_guild("CHANNEL_CREATE", dict(self.channels[cid]))
        return cid

    def guild_channels(self, guild_id: int) -> list[dict[str, Any]]:
        return [c for c in self.channels.values() if int(c["guild_id"]) == guild_id]

    def guild_threads(self, guild_id: int, *, active: bool = False) -> list[dict[str, Any]]:
        return [
            t for t in self.threads.values()
            if int(t["guild_id"]) == guild_id and not (active and t["thread_metadata"]["archived"])
        ]

    def require_forum_tags(self, channel_id: int, required: bool = True) -> None:
        """Set a forum's REQUIRE_TAG flag (CHANNEL_UPDATE): untagged posts then fail with 40067."""
        channel = self.channels[channel_id]
        flags = int(channel.get("flags") or 0)
        channel["flags"] = flags | FLAG_REQUIRE_TAG if required else flags & ~FLAG_REQUIRE_TAG
        self.dispatch_guild("CHANNEL_UPDATE", dict(channel))

    def add_forum_tag(self, channel_id: int, name: str, *, moderated: bool = False) -> str:
        """A moderator adds a tag to a forum or media channel (CHANNEL_UPDATE); its id."""
        tag = {"id": str(self.snowflake()), "name": name, "moderated": moderated,
               "emoji_id": None, "emoji_name": None}
        self.channels[channel_id].setdefault("available_tags", []).append(tag)
        self.dispatch_guild("CHANNEL_UPDATE", dict(self.channels[channel_id]))
        return str(tag["id"])

    def channel(self, channel_id: int) -> dict[str, Any] | None:
        """The payload of a guild channel, thread or DM channel."""
        return (
            self.channels.get(channel_id) or self.threads.get(channel_id) or self.dm_channels.get(channel_id)
        )

    def is_thread(self, channel_id: int) -> bool:
        return channel_id in self.threads

    def create_thread_record(
        self,
        parent_id: int,
        *,
        name: str,
        type_: int,
        owner_id: int,
        thread_id: int | None = None,
        auto_archive_duration: int = 1440,
        rate_limit_per_user: int = 0,
        invitable: bool = True,
        applied_tags: list[str] | None = None,
    ) -> dict[str, Any]:
        tid = thread_id or self.snowflake()
        now = iso()
        metadata: dict[str, Any] = {
            "archived": False,
            "auto_archive_duration": auto_archive_duration,
            "archive_timestamp": now,
            "locked": False,
            "create_timestamp": now,
        }
        if type_ == CH_PRIVATE_THREAD:
            metadata["invitable"] = invitable
        thread: dict[str, Any] = {
            "id": str(tid),
            "guild_id": str(self.guild_of(parent_id)),
            "parent_id": str(parent_id),
            "owner_id": str(owner_id),
            "name": name,
            "type": type_,
            "last_message_id": None,
            "message_count": 0,
            "member_count": 1,
            "total_message_sent": 0,
            "rate_limit_per_user": rate_limit_per_user or 0,
            "flags": 0,
            "thread_metadata": metadata,
        }
        if applied_tags is not None:
            thread["applied_tags"] = applied_tags
        self.threads[tid] = thread
        self.thread_members[tid] = {owner_id}
        return thread

    def thread_member_payload(self, thread_id: int, user_id: int) -> dict[str, Any]:
        return {"id": str(thread_id), "user_id": str(user_id), "join_timestamp": iso(), "flags": 0}

    def active_thread_count(self, guild_id: int | None = None) -> int:
        """Active threads of a server (the default one unless named): the cap behind 160006
        "Maximum number of active threads reached" counts a guild's threads, the ones List
        Active Guild Threads returns."""
        return len(self.guild_threads(self.guild_for(guild_id).id, active=True))

    def update_thread(self, thread_id: int, **changes: Any) -> dict[str, Any]:
        """Change a thread's name or metadata (``archived``, ``locked``...); THREAD_UPDATE."""
        thread = self.threads[thread_id]
        meta = thread["thread_metadata"]
        for key, value in changes.items():
            if key in ("archived", "locked", "auto_archive_duration", "invitable"):
                if key == "archived" and value != meta["archived"]:
                    meta["archive_timestamp"] = iso()
                meta[key] = value
            else:
                thread[key] = value
        self.dispatch_guild("THREAD_UPDATE", dict(thread))
        return thread

    def lock_thread(self, thread_id: int, locked: bool = True) -> None:
        """A moderator locks (or unlocks) a thread."""
        self.update_thread(thread_id, locked=locked)

    def archive_thread(self, thread_id: int, archived: bool = True) -> None:
        """A moderator archives (or unarchives) a thread."""
        self.update_thread(thread_id, archived=archived)

    def dm_channel(self, user: UserRef) -> int:
        """The id of the DM channel between ``user`` and the bot (created on first use)."""
        uid = self.uid(user)
        for cid, ch in self.dm_channels.items():
            if int(ch["recipients"][0]["id"]) == uid:
                return cid
        cid = self.snowflake()
        self.dm_channels[cid] = {
            "id": str(cid),
            "type": CH_DM,
            "last_message_id": None,
            "flags": 0,
            "recipients": [self.user_payload(uid)],
        }
        return cid

    def channel_payload_for_interaction(self, channel_id: int, user_id: int) -> dict[str, Any]:
        ch = dict(self.channel(channel_id) or {})
        if ch.get("type") != CH_DM:
            ch["permissions"] = str(self.permissions_for(user_id, channel_id))
        return ch

    # ------------------------------------------------------------------------------------------
    # permissions
    # ------------------------------------------------------------------------------------------
    def base_permissions(self, user_id: int, guild_id: int | None = None) -> int:
        """A member's permissions in the default guild (or ``guild_id``) from its roles."""
        guild = self.guild_for(guild_id)
        if user_id == guild.owner_id:
            return ALL_PERMISSIONS
        member = guild.members.get(user_id)
        if member is None:
            return 0
        value = int(guild.roles[guild.id]["permissions"])
        for rid in member["roles"]:
            role = guild.roles.get(int(rid))
            if role is not None:
                value |= int(role["permissions"])
        if value & ADMINISTRATOR:
            return ALL_PERMISSIONS
        return value

    def permissions_for(self, user_id: int, channel_id: int) -> int:
        """Effective permissions of a user in a channel or thread (roles + overwrites + denies)."""
        if channel_id in self.dm_channels:
            return DM_BOT_PERMISSIONS
        guild = self.guild_for(self.guild_of(channel_id))
        base = self.base_permissions(user_id, guild.id)
        if base == ALL_PERMISSIONS:
            return base
        extra_deny = 0
        target = channel_id
        if channel_id in self.threads:
            extra_deny = self.thread_denies.get(channel_id, 0) if user_id == self.bot_id else 0
            target = int(self.threads[channel_id]["parent_id"])
        channel = self.channels.get(target)
        value = base
        if channel is not None:
            member_roles = {int(r) for r in guild.members.get(user_id, {}).get("roles", [])}
            allow = deny = 0
            for ow in channel["permission_overwrites"]:
                if ow["type"] == 0 and int(ow["id"]) == guild.id:
                    value = (value & ~int(ow["deny"])) | int(ow["allow"])
            for ow in channel["permission_overwrites"]:
                if ow["type"] == 0 and int(ow["id"]) in member_roles:
                    allow |= int(ow["allow"])
                    deny |= int(ow["deny"])
            value = (value & ~deny) | allow
            for ow in channel["permission_overwrites"]:
                if ow["type"] == 1 and int(ow["id"]) == user_id:
                    value = (value & ~int(ow["deny"])) | int(ow["allow"])
        value &= ~extra_deny
        if not value & VIEW_CHANNEL:
            return 0
        return value

    def has(self, user_id: int, channel_id: int, *names: str) -> bool:
        need = perm(*names)
        return self.permissions_for(user_id, channel_id) & need == need

    def require(self, channel_id: int, *names: str) -> None:
        """Raise 403/50013 unless the bot has all the named permissions in the channel."""
        if not self.has(self.bot_id, channel_id, *names):
            raise ApiError(403, 50013)

    def _bits(self, permission: str | int) -> int:
        return permission if isinstance(permission, int) else perm(permission)

    def deny(self, channel_id: int, permission: str | int) -> None:
        """Take a permission (discord.py flag name, e.g. ``"send_messages"``) from the bot in a
        channel (a member overwrite, with CHANNEL_UPDATE) or thread (a fake-only deny)."""
        bits = self._bits(permission)
        if channel_id in self.threads:
            self.thread_denies[channel_id] = self.thread_denies.get(channel_id, 0) | bits
            return
        channel = self.channels[channel_id]
        self._overwrite(channel, deny_add=bits)

    def allow(self, channel_id: int, permission: str | int) -> None:
        """Undo :meth:`deny`."""
        bits = self._bits(permission)
        if channel_id in self.threads:
            self.thread_denies[channel_id] = self.thread_denies.get(channel_id, 0) & ~bits
            return
        self._overwrite(self.channels[channel_id], deny_remove=bits)

    def grant(self, channel_id: int, permission: str | int) -> None:
        """Give the bot a permission its role lacks in one channel (a member overwrite's
        ``allow``, as a server manager sets it; CHANNEL_UPDATE)."""
        self._overwrite(self.channels[channel_id], allow_add=self._bits(permission))

    def _overwrite(self, channel: dict[str, Any], *, deny_add: int = 0, deny_remove: int = 0,
                   allow_add: int = 0) -> None:
        overwrites = channel["permission_overwrites"]
        mine = next((o for o in overwrites if o["type"] == 1 and int(o["id"]) == self.bot_id), None)
        if mine is None:
            mine = {"id": str(self.bot_id), "type": 1, "allow": "0", "deny": "0"}
            overwrites.append(mine)
        mine["deny"] = str((int(mine["deny"]) | deny_add) & ~deny_remove)
        mine["allow"] = str(int(mine["allow"]) | allow_add)
        self.dispatch_guild("CHANNEL_UPDATE", dict(channel))

    # ------------------------------------------------------------------------------------------
    # guild payloads
    # ------------------------------------------------------------------------------------------
    def guild_payload(self, guild_id: int | None = None) -> dict[str, Any]:
        """The default guild (or ``guild_id``) as GET /guilds/{id} and GUILD_UPDATE carry it."""
        guild = self.guild_for(guild_id)
        return {
            "id": str(guild.id),
            "name": guild.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(guild.owner_id),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "roles": list(guild.roles.values()),
            "emojis": [],
            "stickers": [],
            "features": [],
            "mfa_level": 0,
            "application_id": None,
            "system_channel_id": str(guild.text_channel_id),
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "safety_alerts_channel_id": None,
            "vanity_url_code": None,
            "premium_tier": guild.premium_tier,
            "premium_subscription_count": 0,
            "preferred_locale": "en-US",
            "nsfw_level": 0,
            "premium_progress_bar_enabled": False,
            "max_members": 500000,
            "max_video_channel_users": 25,
            "incidents_data": None,
            "hub_type": None,  # discord-api-types APIGuild: `hub_type: GuildHubType | null`
        }

    def guild_create_payload(self, guild_id: int | None = None) -> dict[str, Any]:
        """GUILD_CREATE of the default guild (or ``guild_id``): its members, channels and active
        threads only."""
        guild = self.guild_for(guild_id)
        payload = self.guild_payload(guild.id)
        payload.update(
            joined_at=iso(guild.created),
            large=False,
            unavailable=False,
            lazy=True,
            member_count=len(guild.members),
            voice_states=[],
            members=self.member_payloads(guild.id),
            channels=[dict(c) for c in self.guild_channels(guild.id)],
            threads=[dict(t) for t in self.guild_threads(guild.id, active=True)],
            presences=[],
            stage_instances=[],
            guild_scheduled_events=[],
            soundboard_sounds=[],
        )
        return payload

    # ------------------------------------------------------------------------------------------
    # application
    # ------------------------------------------------------------------------------------------
    @property
    def application_flags(self) -> int:
        flags = (1 << 13) | (1 << 15) | (1 << 23)  # presence/members limited, application commands badge
        # docs: Resources -> Application -> Application Flags: GATEWAY_MESSAGE_CONTENT (1 << 18)
        # for a verified app approved for the intent, GATEWAY_MESSAGE_CONTENT_LIMITED (1 << 19)
        # for an app under 100 servers with the toggle on; neither when it is off.
        if self.message_content_intent_allowed:
            flags |= 1 << 19  # GATEWAY_MESSAGE_CONTENT_LIMITED
        return flags

    def application_payload(self) -> dict[str, Any]:
        return {
            "id": str(self.application_id),
            "name": "imagine-bot",
            "icon": None,
            "description": "A fake application",
            "summary": "",
            "type": None,
            "bot": self.bot_user,
            "bot_public": True,
            "bot_require_code_grant": False,
            "owner": self.owner,
            "team": None,
            "verify_key": secrets.token_hex(32),
            "flags": self.application_flags,
            "rpc_origins": [],
            "tags": [],
            "redirect_uris": [],
            "interactions_endpoint_url": None,
            "role_connections_verification_url": None,
            "approximate_guild_count": len(self.guilds),
            "approximate_user_install_count": 0,
            "install_params": {
                "scopes": ["bot", "applications.commands"],
                "permissions": str(BOT_ROLE_PERMISSIONS),
            },
            "integration_types_config": {"0": {}},
            # required by the spec's PrivateApplicationResponse (Resources → Application)
            "flags_new": str(self.application_flags),
            "approximate_user_authorization_count": 0,
            "explicit_content_filter": 0,
            "eligible_oauth2_scopes": ["bot", "applications.commands"],
        }

    # ------------------------------------------------------------------------------------------
    # messages
    # ------------------------------------------------------------------------------------------
    def attachment_from_bytes(
        self,
        filename: str,
        data: bytes,
        content_type: str | None = None,
        *,
        channel_id: int,
        ephemeral: bool = False,
        description: str | None = None,
        title: str | None = None,
    ) -> FakeAttachment:
        aid = self.snowflake()
        kind = "ephemeral-attachments" if ephemeral else "attachments"
        scope = self.application_id if ephemeral else channel_id
        url = f"{self.base_url}/{kind}/{scope}/{aid}/{quote(filename)}"
        ctype = content_type if content_type not in (None, "application/octet-stream") else None
        ctype = ctype or guess_content_type(filename, data) or content_type
        size = image_size(data) if ctype and ctype.startswith("image/") else None
        att = FakeAttachment(
            id=aid,
            filename=filename,
            data=data,
            content_type=ctype,
            url=url,
            proxy_url=url.replace(self.base_url, f"{self.base_url}/media", 1),
            width=size[0] if size else None,
            height=size[1] if size else None,
            description=description,
            ephemeral=ephemeral,
            title=title,
        )
        self.attachments[aid] = att
        return att

    def messages(self, channel_id: int) -> list[FakeMessage]:
        """The channel's transcript, oldest first, including deleted messages (``.deleted``)."""
        return list(self.transcripts.get(channel_id, []))

    def message(self, message_id: int) -> FakeMessage:
        try:
            return self.message_index[message_id]
        except KeyError:
            raise FakeDiscordError(f"unknown message {message_id}") from None

    def all_messages(self) -> list[FakeMessage]:
        return sorted(self.message_index.values(), key=lambda m: m.id)

    def content_visible(self, msg: FakeMessage, intents: int | None) -> bool:
        """Whether a bot with ``intents`` sees ``msg``'s content (MESSAGE_CONTENT rules)."""
        if intents is None or intents & INTENT_MESSAGE_CONTENT:
            return True
        if msg.guild_id is None or msg.author_id == self.bot_id:
            return True
        return self.bot_id in msg.mentions

    def message_payload(
        self,
        msg: FakeMessage,
        *,
        gateway: bool = False,
        intents: int | None = None,
        with_reference: bool = True,
    ) -> dict[str, Any]:
        visible = self.content_visible(msg, intents)
        payload: dict[str, Any] = {
            "id": str(msg.id),
            "channel_id": str(msg.channel_id),
            "author": msg.author,
            "content": msg.content if visible else "",
            "timestamp": iso(msg.created_at),
            "edited_timestamp": iso(msg.edited_at) if msg.edited_at else None,
            "tts": msg.tts,
            "mention_everyone": msg.mention_everyone,
            "mentions": [
                self._mention_payload(uid, msg.guild_id) for uid in msg.mentions if uid in self.users
            ],
            "mention_roles": [str(r) for r in msg.mention_roles],
            "attachments": [a.to_payload() for a in msg.attachments] if visible else [],
            "embeds": list(msg.embeds) if visible else [],
            "components": list(msg.components) if visible else [],
            "pinned": False,
            "type": msg.type,
            "flags": msg.flags,
        }
        if msg.nonce is not None:
            payload["nonce"] = msg.nonce
        if msg.webhook_id is not None:
            payload["webhook_id"] = str(msg.webhook_id)
        if msg.application_id is not None:
            payload["application_id"] = str(msg.application_id)
        if msg.interaction_metadata is not None:
            payload["interaction_metadata"] = msg.interaction_metadata
        if msg.interaction_legacy is not None:
            payload["interaction"] = msg.interaction_legacy
        if msg.position is not None:
            payload["position"] = msg.position
        if msg.poll is not None and visible:
            payload["poll"] = msg.poll
        if msg.reactions:
            payload["reactions"] = [
                {
                    "emoji": {"id": None, "name": emoji},
                    "count": len(users),
                    "count_details": {"burst": 0, "normal": len(users)},
                    "me": self.bot_id in users,
                    "me_burst": False,
                    "burst_colors": [],
                }
                for emoji, users in msg.reactions.items()
                if users
            ]
        if msg.thread_id is not None and msg.thread_id in self.threads:
            payload["thread"] = dict(self.threads[msg.thread_id])
        if msg.message_reference is not None:
            payload["message_reference"] = msg.message_reference
            if with_reference and msg.type == MSG_REPLY:
                ref_id = msg.message_reference.get("message_id")
                ref = self.message_index.get(int(ref_id)) if ref_id else None
                payload["referenced_message"] = (
                    None
                    if ref is None or ref.deleted
                    else self.message_payload(ref, gateway=gateway, intents=intents, with_reference=False)
                )
        if gateway and msg.guild_id is not None:
            payload["guild_id"] = str(msg.guild_id)
            if msg.webhook_id is None and self.is_member(msg.author_id, msg.guild_id):
                payload["member"] = self.member_payload(
                    msg.author_id, with_user=False, guild_id=msg.guild_id
                )
        return payload

    def _mention_payload(self, user_id: int, guild_id: int | None) -> dict[str, Any]:
        user = dict(self.users[user_id])
        if self.is_member(user_id, guild_id):
            user["member"] = self.member_payload(user_id, with_user=False, guild_id=guild_id)
        return user

    def store_message(self, msg: FakeMessage) -> None:
        self.message_index[msg.id] = msg
        if msg.ephemeral:
            return
        self.transcripts.setdefault(msg.channel_id, []).append(msg)
        channel = self.channel(msg.channel_id)
        if channel is not None:
            channel["last_message_id"] = str(msg.id)
        if msg.channel_id in self.threads:
            thread = self.threads[msg.channel_id]
            if msg.id != msg.channel_id:  # the starter message of a forum post does not count
                thread["message_count"] += 1
                thread["total_message_sent"] += 1
                msg.position = thread["total_message_sent"]
            members = self.thread_members.setdefault(msg.channel_id, set())
            members.add(msg.author_id)
            thread["member_count"] = min(len(members), 50)

    def dispatch_message(self, event: str, msg: FakeMessage) -> None:
        if msg.ephemeral:
            return
        self.gateway.dispatch(
            event,
            lambda s: self.message_payload(msg, gateway=True, intents=s.intents),
            guild_id=msg.guild_id,
        )

    def dispatch_message_delete(self, msg: FakeMessage) -> None:
        if msg.ephemeral:
            return
        data: dict[str, Any] = {"id": str(msg.id), "channel_id": str(msg.channel_id)}
        if msg.guild_id is not None:
            data["guild_id"] = str(msg.guild_id)
        self.gateway.dispatch("MESSAGE_DELETE", lambda s: data, guild_id=msg.guild_id)

    def dispatch_guild(self, event: str, data: dict[str, Any]) -> None:
        """A guild event, to the shard of the guild it names (``guild_id``; ``id`` in the
        GUILD_CREATE/UPDATE/DELETE payloads, which are the guild itself)."""
        guild_id = int(data["guild_id"]) if "guild_id" in data else int(data["id"])
        self.gateway.dispatch(event, lambda s: data, guild_id=guild_id)

    def parse_mentions(self, content: str) -> list[int]:
        found: list[int] = []
        for match in re.finditer(r"<@!?(\d+)>", content):
            uid = int(match.group(1))
            if uid in self.users and uid not in found:
                found.append(uid)
        return found

    # ------------------------------------------------------------------------------------------
    # driving the bot as users do
    # ------------------------------------------------------------------------------------------
    async def say(
        self,
        user: UserRef,
        channel_id: int,
        content: str = "",
        *,
        reply_to: int | None = None,
        attachments: Sequence[tuple[str, bytes, str]] = (),
        mention_bot: bool = False,
        mention_author: bool = True,
        embeds: Sequence[dict[str, Any]] = (),
    ) -> dict[str, Any]:
        """A user posts a message (MESSAGE_CREATE). ``reply_to`` makes it a reply (pinging the
        replied author unless ``mention_author=False``); returns the full message payload."""
        uid = self.uid(user)
        author = self.user_payload(uid)
        channel = self.channel(channel_id)
        if channel is None:
            raise FakeDiscordError(f"unknown channel {channel_id}")
        if channel["type"] in THREAD_ONLY:
            raise FakeDiscordError("users cannot post into a forum or media channel directly")
        if channel_id in self.threads:
            meta = self.threads[channel_id]["thread_metadata"]
            if meta.get("locked") and not self.has(uid, channel_id, "manage_threads"):
                raise FakeDiscordError(f"thread {channel_id} is locked")
            if meta["archived"]:
                self.update_thread(channel_id, archived=False)
        for name, data, _ in attachments:
            if len(data) > self.user_upload_limit(uid, channel_id):
                raise FakeDiscordError(f"{name} is over the user's upload limit")
        if mention_bot and f"<@{self.bot_id}>" not in content:
            content = f"<@{self.bot_id}> {content}".strip()
        mentions = self.parse_mentions(content)
        reference = None
        msg_type = 0
        if reply_to is not None:
            ref = self.message(reply_to)
            reference = {
                "type": 0,
                "message_id": str(ref.id),
                "channel_id": str(ref.channel_id),
                "fail_if_not_exists": True,
            }
            if ref.guild_id is not None:
                reference["guild_id"] = str(ref.guild_id)
            msg_type = MSG_REPLY
            if mention_author and ref.author_id not in mentions:
                mentions.append(ref.author_id)
        msg = FakeMessage(
            id=self.snowflake(),
            channel_id=channel_id,
            guild_id=self.guild_of(channel_id),
            author=author,
            content=content,
            embeds=list(embeds),
            attachments=[
                self.attachment_from_bytes(name, data, ctype, channel_id=channel_id)
                for name, data, ctype in attachments
            ],
            message_reference=reference,
            type=msg_type,
            mentions=mentions,
        )
        self.store_message(msg)
        self.dispatch_message("MESSAGE_CREATE", msg)
        return self.message_payload(msg, gateway=True)

    async def dm(
        self,
        user: UserRef,
        content: str = "",
        *,
        attachments: Sequence[tuple[str, bytes, str]] = (),
        reply_to: int | None = None,
    ) -> dict[str, Any]:
        """A user writes to the bot in their DM channel."""
        channel_id = self.dm_channel(user)
        return await self.say(user, channel_id, content, attachments=attachments, reply_to=reply_to)

    async def delete_message(self, channel_id: int, message_id: int) -> None:
        """A user/moderator deletes a message (MESSAGE_DELETE)."""
        msg = self.message(message_id)
        if msg.channel_id != channel_id:
            raise FakeDiscordError(f"message {message_id} is not in channel {channel_id}")
        if not msg.deleted:
            msg.deleted = True
            self.dispatch_message_delete(msg)

    async def react(self, user: UserRef, message_id: int, emoji: str = "⭐") -> None:
        """A user adds a reaction to a message (MESSAGE_REACTION_ADD), once per user and emoji."""
        uid = self.uid(user)
        msg = self.message(message_id)
        if msg.deleted:
            raise FakeDiscordError(f"message {message_id} was deleted")
        users = msg.reactions.setdefault(emoji, set())
        if uid not in users:
            users.add(uid)
            self.dispatch_reaction("MESSAGE_REACTION_ADD", msg, emoji, uid)

    def dispatch_reaction(self, event: str, msg: FakeMessage, emoji: str, user_id: int) -> None:
        """MESSAGE_REACTION_ADD/REMOVE as Gateway Events → Message Reaction Add describes it:
        user, channel, message, guild, the reacting member (ADD, in a server), the message's
        author, the partial emoji, burst and type."""
        data: dict[str, Any] = {
            "user_id": str(user_id),
            "channel_id": str(msg.channel_id),
            "message_id": str(msg.id),
            "emoji": {"id": None, "name": emoji},
            "type": 0,
            "burst": False,
            "message_author_id": str(msg.author_id),
        }
        if msg.guild_id is not None:
            data["guild_id"] = str(msg.guild_id)
            if event == "MESSAGE_REACTION_ADD":
                data["member"] = self.member_payload(user_id, guild_id=msg.guild_id)
        self.gateway.dispatch(event, lambda s: data, guild_id=msg.guild_id)

    async def delete_channel(self, channel_id: int) -> None:
        """A moderator deletes a thread (THREAD_DELETE) or a channel (CHANNEL_DELETE)."""
        if channel_id in self.threads:
            thread = self.threads.pop(channel_id)
            self.dispatch_guild(
                "THREAD_DELETE",
                {
                    "id": thread["id"],
                    "guild_id": thread["guild_id"],
                    "parent_id": thread["parent_id"],
                    "type": thread["type"],
                },
            )
            return
        if channel_id in self.channels:
            channel = self.channels.pop(channel_id)
            for tid in [t for t, th in self.threads.items() if int(th["parent_id"]) == channel_id]:
                self.threads.pop(tid)
            self.dispatch_guild("CHANNEL_DELETE", channel)
            return
        raise FakeDiscordError(f"unknown channel {channel_id}")

    # -- interactions ---------------------------------------------------------------------------
    def find_command(self, name: str, guild_id: int | None) -> tuple[dict[str, Any], list[str]]:
        """The synced command for ``"name"`` / ``"group sub"`` (guild scope first), and the path."""
        parts = name.split()
        scopes: list[int | None] = [guild_id, None] if guild_id is not None else [None]
        for scope in scopes:
            for cmd in self.commands.get(scope, []):
                if cmd["name"] == parts[0] and cmd.get("type", 1) == 1:
                    return cmd, parts
        synced = {str(k): [c["name"] for c in v] for k, v in self.commands.items()}
        raise FakeDiscordError(f"no synced command {parts[0]!r} (synced: {synced})")

    def _new_interaction(
        self,
        type_: int,
        user_id: int,
        channel_id: int,
        data: dict[str, Any] | None,
        *,
        message: FakeMessage | None = None,
        locale: str | None = None,
    ) -> FakeInteraction:
        channel = self.channel(channel_id)
        if channel is None:
            raise FakeDiscordError(f"unknown channel {channel_id}")
        guild_id = self.guild_of(channel_id)
        if guild_id is not None and not self.is_member(user_id, guild_id):
            raise FakeDiscordError(f"user {user_id} is not a member of guild {guild_id}")
        archived = channel_id in self.threads and self.threads[channel_id]["thread_metadata"]["archived"]
        if type_ in (2, 4) and archived:
            # Topics → Threads: users cannot use application commands in archived threads
            raise FakeDiscordError(f"thread {channel_id} is archived: no application commands there")
        if type_ in (2, 4) and channel.get("type") in THREAD_ONLY:
            # a forum channel has no message box to type a command into (Topics → Threads,
            # Resources → Channel "Forum"): commands run in its posts, which are threads
            raise FakeDiscordError(f"channel {channel_id} is a forum: commands run in its posts")
        iid = self.snowflake()
        token = "aW50ZXJhY3Rpb246" + secrets.token_urlsafe(48)
        payload: dict[str, Any] = {
            "id": str(iid),
            "application_id": str(self.application_id),
            "type": type_,
            "token": token,
            "version": 1,
            "channel_id": str(channel_id),
            "channel": self.channel_payload_for_interaction(channel_id, user_id),
            "locale": locale or self.user_locales.get(user_id, "en-US"),
            "app_permissions": str(self.permissions_for(self.bot_id, channel_id)),
            "entitlements": [],
            "entitlement_sku_ids": [],
            "attachment_size_limit": self.user_upload_limit(user_id, channel_id),
        }
        if data is not None:
            payload["data"] = data
        if guild_id is not None:
            payload.update(
                guild_id=str(guild_id),
                guild_locale="en-US",
                guild={"id": str(guild_id), "locale": "en-US", "features": []},
                member={
                    **self.member_payload(user_id, guild_id=guild_id),
                    "permissions": str(self.permissions_for(user_id, channel_id)),
                },
                authorizing_integration_owners={"0": str(guild_id)},
                context=0,
            )
        else:
            payload.update(
                user=self.user_payload(user_id),
                authorizing_integration_owners={"0": "0"},
                context=1,
            )
        if message is not None:
            payload["message"] = self.message_payload(message, gateway=True)
        inter = FakeInteraction(
            id=iid,
            token=token,
            type=type_,
            user_id=user_id,
            channel_id=channel_id,
            guild_id=guild_id,
            payload=payload,
        )
        if message is not None:
            inter.source_message_id = message.id
        return inter

    def _send_interaction(self, inter: FakeInteraction) -> FakeInteraction:
        self.interactions[inter.id] = inter
        self.interactions_by_token[inter.token] = inter
        if self.interaction_delivery_delay > 0:  # delivered late; its deadline counts from now
            asyncio.get_running_loop().call_later(
                self.interaction_delivery_delay, lambda: self.gateway.dispatch_one(
                    "INTERACTION_CREATE", inter.payload, guild_id=inter.guild_id),
            )
            return inter
        if not self.gateway.dispatch_one("INTERACTION_CREATE", inter.payload, guild_id=inter.guild_id):
            raise FakeDiscordError("no gateway session is connected to receive the interaction")
        return inter

    def _build_options(
        self,
        definitions: list[dict[str, Any]],
        values: dict[str, Any],
        attachments: dict[str, tuple[str, bytes, str]],
        resolved: dict[str, dict[str, Any]],
        channel_id: int,
        user_id: int,
        *,
        focused: str | None = None,
    ) -> list[dict[str, Any]]:
        by_name = {o["name"]: o for o in definitions}
        guild = self.guild_for(self.guild_of(channel_id))  # DMs resolve against the default
        given = dict(values)
        for name in attachments:
            given.setdefault(name, attachments[name])
        unknown = set(given) - set(by_name)
        if unknown:
            raise FakeDiscordError(f"unknown option(s) {sorted(unknown)}; the command has {sorted(by_name)}")
        if focused is None:
            missing = [o["name"] for o in definitions if o.get("required") and o["name"] not in given]
            if missing:
                raise FakeDiscordError(f"missing required option(s) {missing}")
        out: list[dict[str, Any]] = []
        for name, value in given.items():
            definition = by_name[name]
            otype = definition["type"]
            option: dict[str, Any] = {"name": name, "type": otype}
            if name == focused:
                option["value"] = str(value)
                option["focused"] = True
                out.append(option)
                continue
            if otype == 3:
                option["value"] = str(value)
            elif otype == 4:
                option["value"] = int(value)
            elif otype == 5:
                option["value"] = bool(value)
            elif otype == 10:
                option["value"] = float(value)
            elif otype in (6, 7, 8, 9):
                ref = self.uid(value)
                option["value"] = str(ref)
                if otype in (6, 9) and ref in self.users:
                    resolved.setdefault("users", {})[str(ref)] = self.users[ref]
                    if ref in guild.members:
                        member = self.member_payload(ref, with_user=False, guild_id=guild.id)
                        member["permissions"] = str(self.permissions_for(ref, channel_id))
                        resolved.setdefault("members", {})[str(ref)] = member
                elif otype in (8, 9) and ref in guild.roles:
                    resolved.setdefault("roles", {})[str(ref)] = guild.roles[ref]
                elif otype == 7 and self.channel(ref) is not None:
                    ch = dict(self.channel(ref) or {})
                    ch["permissions"] = str(self.permissions_for(user_id, ref))
                    resolved.setdefault("channels", {})[str(ref)] = ch
                else:
                    raise FakeDiscordError(f"{name}={value!r}: no such user/role/channel")
            elif otype == 11:
                if isinstance(value, FakeAttachment):
                    att = value
                else:
                    filename, data, ctype = value
                    att = self.attachment_from_bytes(
                        filename, data, ctype, channel_id=channel_id, ephemeral=True
                    )
                if att.size > self.user_upload_limit(user_id, channel_id):
                    raise FakeDiscordError(f"attachment {att.filename} exceeds the upload limit")
                option["value"] = str(att.id)
                resolved.setdefault("attachments", {})[str(att.id)] = att.to_payload()
            else:
                raise FakeDiscordError(f"unsupported option type {otype} for {name!r}")
            self._check_bounds(name, definition, option["value"])
            if definition.get("choices") and name != focused:
                allowed = [c["value"] for c in definition["choices"]]
                if option["value"] not in allowed:
                    raise FakeDiscordError(f"{name}={option['value']!r} is not one of the choices {allowed}")
            out.append(option)
        return out

    @staticmethod
    def _check_bounds(name: str, definition: dict[str, Any], value: Any) -> None:
        """The limits Discord's client enforces before it sends an interaction."""
        if definition["type"] == 3:
            if len(value) < definition.get("min_length", 0):
                raise FakeDiscordError(f"{name} is shorter than {definition['min_length']}")
            if len(value) > definition.get("max_length", 6000):
                raise FakeDiscordError(f"{name} is longer than {definition['max_length']}")
        elif definition["type"] in (4, 10):
            low, high = definition.get("min_value"), definition.get("max_value")
            if (low is not None and value < low) or (high is not None and value > high):
                raise FakeDiscordError(f"{name}={value} is outside [{low}, {high}]")

    def _command_data(
        self,
        user_id: int,
        channel_id: int,
        name: str,
        options: dict[str, Any] | None,
        attachments: dict[str, tuple[str, bytes, str]] | None,
        focused: str | None,
    ) -> dict[str, Any]:
        guild_id = self.guild_of(channel_id)
        cmd, parts = self.find_command(name, guild_id)
        self._check_command_usable(cmd, user_id, channel_id)
        resolved: dict[str, dict[str, Any]] = {}
        definitions = cmd.get("options") or []
        chain: list[dict[str, Any]] = []
        for part in parts[1:]:
            node = next((o for o in definitions if o["name"] == part and o["type"] in (1, 2)), None)
            if node is None:
                raise FakeDiscordError(f"{cmd['name']} has no subcommand/group {part!r}")
            chain.append({"name": part, "type": node["type"]})
            definitions = node.get("options") or []
        if any(o["type"] in (1, 2) for o in definitions):
            raise FakeDiscordError(f"{name!r} is a group; name a subcommand")
        leaf = self._build_options(
            definitions,
            options or {},
            attachments or {},
            resolved,
            channel_id,
            user_id,
            focused=focused,
        )
        nested: list[dict[str, Any]] = leaf
        for link in reversed(chain):
            nested = [{**link, "options": nested}]
        data: dict[str, Any] = {"id": cmd["id"], "name": cmd["name"], "type": 1}
        if nested:
            data["options"] = nested
        if resolved:
            data["resolved"] = resolved
        if cmd.get("guild_id"):
            data["guild_id"] = cmd["guild_id"]
        return data

    def _check_command_usable(self, cmd: dict[str, Any], user_id: int, channel_id: int) -> None:
        in_dm = channel_id in self.dm_channels
        if in_dm:
            if cmd.get("guild_id"):
                raise FakeDiscordError(f"/{cmd['name']} is a guild command; not available in DMs")
            contexts = cmd.get("contexts")
            if contexts is not None and 1 not in contexts:
                raise FakeDiscordError(f"/{cmd['name']} is not available in bot DMs (contexts={contexts})")
            if contexts is None and cmd.get("dm_permission") is False:
                raise FakeDiscordError(f"/{cmd['name']} has dm_permission=False")
            return
        contexts = cmd.get("contexts")
        if contexts is not None and 0 not in contexts:
            raise FakeDiscordError(f"/{cmd['name']} is not available in guilds (contexts={contexts})")
        required = cmd.get("default_member_permissions")
        if required not in (None, ""):
            need = int(required)
            have = self.permissions_for(user_id, channel_id)
            if have & need != need:
                raise FakeDiscordError(
                    f"user {user_id} cannot see /{cmd['name']} (default_member_permissions={need})"
                )

    async def slash(
        self,
        user: UserRef,
        channel_id: int,
        name: str,
        options: dict[str, Any] | None = None,
        *,
        attachments: dict[str, tuple[str, bytes, str]] | None = None,
        locale: str | None = None,
    ) -> FakeInteraction:
        """A user runs ``/name`` (``"group sub"`` for subcommands) with ``options`` typed after
        the synced command; ``attachments`` maps attachment options to ``(filename, bytes,
        content_type)``. Returns at once; watch the returned interaction with :meth:`wait_for`."""
        uid = self.uid(user)
        data = self._command_data(uid, channel_id, name, options, attachments, None)
        inter = self._new_interaction(2, uid, channel_id, data, locale=locale)
        return self._send_interaction(inter)

    async def message_command(
        self, user: UserRef, message_id: int, name: str, *, locale: str | None = None
    ) -> FakeInteraction:
        """A user picks Apps → ``name`` on a message (a MESSAGE command, type 3). Interactions
        docs (Application Command Data): ``target_id`` is the message, found in
        ``resolved.messages``."""
        uid = self.uid(user)
        msg = self.message(message_id)
        guild_id = self.guild_of(msg.channel_id)
        scopes: list[int | None] = [guild_id, None] if guild_id is not None else [None]
        cmd = next((c for scope in scopes for c in self.commands.get(scope, [])
                    if c["name"] == name and c.get("type") == 3), None)
        if cmd is None:
            raise FakeDiscordError(f"no synced message command {name!r}")
        self._check_command_usable(cmd, uid, msg.channel_id)
        data: dict[str, Any] = {
            "id": cmd["id"], "name": name, "type": 3, "target_id": str(message_id),
            "resolved": {"messages": {str(message_id): self.message_payload(msg)}},
        }
        inter = self._new_interaction(2, uid, msg.channel_id, data, locale=locale)
        return self._send_interaction(inter)

    async def autocomplete(
        self,
        user: UserRef,
        channel_id: int,
        name: str,
        options: dict[str, Any],
        focused: str,
        *,
        timeout: float = 5.0,
    ) -> list[dict[str, Any]]:
        """A user types into option ``focused``; returns the choices the bot answered with."""
        uid = self.uid(user)
        if focused not in options:
            options = {**options, focused: ""}
        data = self._command_data(uid, channel_id, name, options, None, focused)
        inter = self._send_interaction(self._new_interaction(4, uid, channel_id, data))
        await self.wait_for(
            lambda: inter.autocomplete_choices is not None or inter.errors,
            timeout,
            what=f"autocomplete answer for {name}/{focused}",
        )
        if inter.autocomplete_choices is None:
            raise FakeDiscordError(f"autocomplete failed: {inter.errors}")
        return inter.autocomplete_choices

    @staticmethod
    def walk_components(components: Iterable[dict[str, Any]]) -> Iterable[dict[str, Any]]:
        for comp in components:
            yield comp
            yield from FakeDiscord.walk_components(comp.get("components") or [])
            if isinstance(comp.get("accessory"), dict):
                yield comp["accessory"]
            if isinstance(comp.get("component"), dict):
                yield comp["component"]

    async def click(
        self,
        user: UserRef,
        message_id: int,
        custom_id: str,
        *,
        values: Sequence[str] | None = None,
        locale: str | None = None,
    ) -> FakeInteraction:
        """A user clicks button ``custom_id`` (or picks ``values`` in that select) on a message."""
        uid = self.uid(user)
        msg = self.message(message_id)
        if msg.deleted:
            raise FakeDiscordError(f"message {message_id} was deleted")
        comp = next(
            (c for c in self.walk_components(msg.components) if c.get("custom_id") == custom_id),
            None,
        )
        if comp is None:
            ids = [c.get("custom_id") for c in self.walk_components(msg.components) if c.get("custom_id")]
            raise FakeDiscordError(f"message {message_id} has no component {custom_id!r} (has {ids})")
        if comp.get("disabled"):
            raise FakeDiscordError(f"component {custom_id!r} is disabled")
        data: dict[str, Any] = {"custom_id": custom_id, "component_type": comp["type"]}
        if comp["type"] in (3, 5, 6, 7, 8):
            data["values"] = list(values or [])
        inter = self._new_interaction(3, uid, msg.channel_id, data, message=msg, locale=locale)
        return self._send_interaction(inter)

    async def submit_modal(
        self,
        user: UserRef,
        interaction: FakeInteraction,
        values: dict[str, Any],
        *,
        timeout: float = 5.0,
    ) -> FakeInteraction:
        """Fill in and submit the modal the bot opened in answer to ``interaction``; ``values``
        maps text input custom_ids to text (select/checkbox components take lists/bools)."""
        await self.wait_for(
            lambda: interaction.modal is not None or interaction.errors,
            timeout,
            what=f"a modal in answer to interaction {interaction.id}",
        )
        modal = interaction.modal
        if modal is None:
            raise FakeDiscordError(f"the bot answered without a modal: {interaction}")
        uid = self.uid(user)
        remaining = dict(values)

        def answer(comp: dict[str, Any]) -> dict[str, Any]:
            ctype = comp["type"]
            cid = comp.get("custom_id")
            out: dict[str, Any] = {"type": ctype}
            if "id" in comp:
                out["id"] = comp["id"]
            if ctype == 1:
                out["components"] = [answer(c) for c in comp.get("components", [])]
            elif ctype == 18:
                out["component"] = answer(comp["component"])
            elif cid is not None:
                out["custom_id"] = cid
                value = remaining.pop(cid, None)
                if ctype == 4:
                    text = "" if value is None else str(value)
                    if comp.get("required", True) and not text:
                        raise FakeDiscordError(f"text input {cid!r} is required")
                    if len(text) > comp.get("max_length", 4000):
                        raise FakeDiscordError(f"text input {cid!r} is too long")
                    out["value"] = text
                elif ctype == 23:
                    out["value"] = bool(value)
                elif ctype == 21:
                    out["value"] = value
                else:
                    out["values"] = list(value or [])
            return out

        components = [answer(c) for c in modal.get("components", [])]
        if remaining:
            raise FakeDiscordError(f"the modal has no input(s) {sorted(remaining)}")
        data = {"custom_id": modal["custom_id"], "components": components}
        source = self.message_index.get(interaction.source_message_id or 0)
        inter = self._new_interaction(5, uid, interaction.channel_id, data, message=source)
        inter.parent = interaction
        return self._send_interaction(inter)

    # ------------------------------------------------------------------------------------------
    # failure injection and gateway control
    # ------------------------------------------------------------------------------------------
    def fail_next(
        self,
        method: str,
        path_regex: str,
        status: int,
        *,
        code: int = 0,
        message: str = "",
        retry_after: float | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` requests matching ``method`` and ``path_regex`` (searched
        in the path relative to ``/api/v10``, e.g. ``r"/channels/\\d+/messages$"``) with
        ``status``. A 429 carries ``Via`` and JSON ``retry_after`` (default 0.05 s)."""
        self.fail_rules.append(
            FailRule(method.upper(), re.compile(path_regex), status, code, message, retry_after, times)
        )

    def outage(
        self, method: str, path_regex: str, seconds: float, *, status: int = 503,
        drop: bool = False, handled: bool = False,
    ) -> None:
        """For ``seconds`` from now, answer every request matching ``method`` and ``path_regex``
        (as in :meth:`fail_next`) with ``status``, or with ``drop=True`` close the connection
        without an answer. Discord's outages look like this: 5xx for a while ("502 Gateway
        Unavailable: ... wait a bit and retry", "5xx: the server had an error processing your
        request"; docs: Topics -> Opcodes and Status Codes -> HTTP Response Codes; the incidents
        on Discord's status page list minutes of failed message sends), and connections reset at
        the edge, which a client sees as a connection closed before any answer. With
        ``handled=True`` the request takes effect and only its answer is lost: a client cannot
        tell the two apart, which is why Create Message has ``enforce_nonce``."""
        self.fail_rules.append(FailRule(
            method.upper(), re.compile(path_regex), status, 0, "", None, 0,
            until=time.monotonic() + seconds, drop=drop, handled=handled,
        ))

    def hold_next(self, method: str, path_regex: str) -> asyncio.Event:
        """Keep the next request matching ``method`` and ``path_regex`` (as in :meth:`fail_next`)
        waiting, unanswered, until the returned event is set; then it is handled as usual."""
        released = asyncio.Event()
        self.holds.append((method.upper(), re.compile(path_regex), released))
        return released

    def readd_bot(self, guild_id: int | None = None) -> None:
        """The bot is removed from the default guild (or ``guild_id``) and invited again.
        Gateway docs (Events → Guild Delete): a GUILD_DELETE without ``unavailable`` means the
        user was removed; (Guild Create): GUILD_CREATE is sent "when the current user joins a
        new guild"; its ``unavailable`` field is only for guilds coming back from an outage, so
        a join has none (discord.py's ``parse_guild_create`` tells a join from a recovery by
        it)."""
        guild = self.guild_for(guild_id)
        self.dispatch_guild("GUILD_DELETE", {"id": str(guild.id)})
        payload = self.guild_create_payload(guild.id)
        payload.pop("unavailable")
        self.dispatch_guild("GUILD_CREATE", payload)

    async def drop_gateway(self, *, resume: bool = True, hold: bool = False) -> None:
        """Close the gateway socket(s). The client reconnects and RESUMEs, getting the dispatches
        it missed; with ``resume=False`` its RESUME is answered by INVALID_SESSION (discord.py
        then re-IDENTIFYs after its 5 s ``before_identify_hook`` sleep). With ``hold=True`` new
        connections wait until :meth:`release_gateway`, so a test can dispatch while the bot is
        disconnected."""
        await self.gateway.drop(resume=resume, hold=hold)

    def release_gateway(self) -> None:
        self.gateway.release()

    async def request_reconnect(self) -> None:
        """Send op 7 RECONNECT (discord.py closes and RESUMEs)."""
        await self.gateway.send_reconnect()

    @property
    def sessions(self) -> list[GatewaySession]:
        return self.gateway.sessions

    @property
    def connected(self) -> bool:
        return any(s.connected for s in self.gateway.live_sessions())

    # ------------------------------------------------------------------------------------------
    # waiting
    # ------------------------------------------------------------------------------------------
    async def wait_for(
        self,
        predicate: Callable[[], T],
        timeout: float = 10.0,
        *,
        what: str | None = None,
    ) -> T:
        """Poll ``predicate`` until it returns something truthy (returned); else TimeoutError
        describing the predicate and the last requests the fake received."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise TimeoutError(self._describe_timeout(predicate, timeout, what))
            await asyncio.sleep(0.01)

    def _describe_timeout(self, predicate: Callable[[], Any], timeout: float, what: str | None) -> str:
        if what is None:
            try:
                what = inspect.getsource(predicate).strip()
            except (OSError, TypeError):
                what = repr(predicate)
        recent = [
            f"  {r.method} {r.path} -> {r.status}"
            + (f" {r.response}" if r.status and r.status >= 400 else "")
            for r in self.request_log[-8:]
        ]
        errored = [repr(i) for i in self.interactions.values() if i.errors][-3:]
        lines = [
            f"timed out after {timeout}s waiting for: {what}",
            f"gateway connected: {self.connected}",
        ]
        if self.client_errors:
            lines.append(f"a bot's gateway task died with: {self.client_errors[-1]!r}")
        lines.append("last requests:" if recent else "no REST requests received")
        lines += recent
        if errored:
            lines.append("interactions with errors: " + ", ".join(errored))
        return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# running a discord.py client against the fake
# ----------------------------------------------------------------------------------------------
@contextlib.asynccontextmanager
async def running_bot(
    fake: FakeDiscord,
    bot: Any,
    *,
    token: str = "fake-bot-token",
    wait_ready: bool = True,
    ready_timeout: float = 15.0,
    guild_ready_timeout: float | None = None,
) -> AsyncIterator[Any]:
    """Log ``bot`` (a ``discord.Client``/``commands.Bot``/``AutoShardedBot``) in to ``fake``,
    connect it in a background task, wait for ``on_ready`` and yield it; on exit close it and
    restore ``Route.BASE`` and ``DiscordWebSocket.DEFAULT_GATEWAY``.

    ``guild_ready_timeout`` overrides the (private) ConnectionState value when the bot was
    built without the ``guild_ready_timeout=`` kwarg (default 2 s delays ``on_ready``).
    Errors of the connect task (e.g. ``PrivilegedIntentsRequired``) are raised from here.
    """
    import discord
    import yarl

    old_base = discord.http.Route.BASE
    old_gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    discord.http.Route.BASE = fake.api_base
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)
    if guild_ready_timeout is not None:
        bot._connection.guild_ready_timeout = guild_ready_timeout
    task: asyncio.Task[None] | None = None

    def crashed(t: asyncio.Task[None]) -> None:
        if not t.cancelled() and t.exception() is not None:
            fake.client_errors.append(t.exception())  # type: ignore[arg-type]

    try:
        await bot.login(token)
        task = asyncio.create_task(bot.connect(reconnect=True), name="fake-discord-bot-connect")
        task.add_done_callback(crashed)
        if wait_ready:
            ready = asyncio.create_task(bot.wait_until_ready())
            done, _ = await asyncio.wait(
                {ready, task}, timeout=ready_timeout, return_when=asyncio.FIRST_COMPLETED
            )
            if ready not in done:
                ready.cancel()
                if task in done:
                    task.result()  # raises the connect error (e.g. PrivilegedIntentsRequired)
                    raise FakeDiscordError("the bot's connect task ended before READY")
                raise FakeDiscordError(f"the bot was not ready after {ready_timeout}s")
        yield bot
    finally:
        try:
            if not bot.is_closed():
                await bot.close()
            if task is not None and not task.done():
                try:
                    await asyncio.wait_for(asyncio.shield(task), timeout=5.0)
                except TimeoutError:
                    task.cancel()
        finally:
            discord.http.Route.BASE = old_base
            discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = old_gateway
        if task is not None and task.done() and not task.cancelled() and task.exception() is not None:
            # the gateway loop died while the test ran (e.g. a KeyError in a discord.py parser)
            raise task.exception()  # type: ignore[misc]


# ----------------------------------------------------------------------------------------------
# standalone server
# ----------------------------------------------------------------------------------------------
async def _serve(args: Any) -> None:

    fake = FakeDiscord(
        host=args.host,
        port=args.port,
        message_content_intent_allowed=not args.no_message_content,
        ack_deadline=args.ack_deadline,
        token_lifetime=args.token_lifetime,
        upload_limit=args.upload_limit,
    )
    await fake.start()
    print(f"READY {fake.api_base} {fake.gateway_url}", flush=True)
    await until_signalled()
    await fake.stop()


def main(argv: Sequence[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Run a fake Discord (REST + gateway) for tests.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--no-message-content", action="store_true", help="refuse the MESSAGE_CONTENT intent (4014)"
    )
    parser.add_argument("--ack-deadline", type=float, default=3.0)
    parser.add_argument("--token-lifetime", type=float, default=900.0)
    parser.add_argument("--upload-limit", type=int, default=None)
    args = parser.parse_args(argv)
    asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
