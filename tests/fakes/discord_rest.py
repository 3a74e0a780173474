"""REST handlers of the fake Discord (``/api/v10/...``) and the attachment "CDN".

Every response is built by hand with ``Content-Type: application/json`` exactly, because
discord.py's ``json_or_text`` compares the header for equality (aiohttp's ``json_response`` adds
``; charset=utf-8`` and login then fails).
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from aiohttp import web

from .discord_models import (
    CH_DM,
    CH_MEDIA,
    CH_PRIVATE_THREAD,
    CH_PUBLIC_THREAD,
    CH_TEXT,
    FLAG_EPHEMERAL,
    FLAG_LOADING,
    FLAG_REQUIRE_TAG,
    MSG_CHAT_INPUT_COMMAND,
    MSG_DEFAULT,
    MSG_REPLY,
    MSG_THREAD_CREATED,
    THREAD_ONLY,
    ApiError,
    FakeAttachment,
    FakeGuild,
    FakeInteraction,
    FakeMessage,
    RecordedRequest,
    UploadedFile,
    form_error,
    max_length_error,
)

if TYPE_CHECKING:
    from .discord_server import FakeDiscord

API = "/api/v10"
Handler = Callable[[web.Request], Awaitable[Any]]
JSON_KEY: web.RequestKey[Any] = web.RequestKey("fake_discord_json", object)
FILES_KEY: web.RequestKey[list[UploadedFile]] = web.RequestKey("fake_discord_files", list)

ARCHIVE_DURATIONS = (60, 1440, 4320, 10080)
SETTABLE_MESSAGE_FLAGS = (1 << 2) | (1 << 12) | (1 << 15)  # suppress embeds/notifications, v2
COMMAND_NAME_RE = re.compile(r"^[-_'\w]{1,32}$")


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=json.dumps(data).encode(),
        status=status,
        headers={"Content-Type": "application/json", **(headers or {})},
    )


def notified_users(msg: FakeMessage, body: dict[str, Any]) -> list[int]:
    """Who gets a notification when ``msg`` is created (Message Resource → Allowed Mentions
    Object): user mentions in the content count only if ``parse`` has ``"users"`` or the id is
    in ``users`` (everything counts when ``allowed_mentions`` is absent); the author of a replied-
    to message only with ``replied_user`` (``_apply_reference`` already added them to
    ``mentions``). An edit notifies nobody new (Discord sends no push for mentions added by an
    edit; the fake only computes this on creation)."""
    allowed = body.get("allowed_mentions")
    in_content = set(re.findall(r"<@!?(\d+)>", msg.content))
    out: list[int] = []
    for uid in msg.mentions:
        if allowed is None:
            out.append(uid)
        elif str(uid) in in_content:
            listed = {str(u) for u in allowed.get("users") or []}  # snowflakes: str or int
            if "users" in (allowed.get("parse") or []) or str(uid) in listed:
                out.append(uid)
        elif allowed.get("replied_user"):
            out.append(uid)
    return out


def numbered(components: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Components as Discord stores and returns them: every one gets an ``id`` (Components →
    "Anatomy of a Component": an id left out is filled in sequentially)."""
    from .discord_server import FakeDiscord

    stored = json.loads(json.dumps(components or []))
    walked = list(FakeDiscord.walk_components(stored))
    next_id = max((c["id"] for c in walked if isinstance(c.get("id"), int)), default=0) + 1
    for comp in walked:
        if not isinstance(comp.get("id"), int):
            comp["id"] = next_id
            next_id += 1
        emoji = comp.get("emoji")
        if isinstance(emoji, dict) and emoji.get("id") is None:
            emoji.pop("id", None)  # a Unicode emoji has no id (the spec's ComponentEmojiResponse)
    return stored


def _int(value: Any, what: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise form_error(what, "NUMBER_TYPE_COERCE", f'Value "{value}" is not snowflake.') from None


class RestApi:
    """The REST side of :class:`FakeDiscord`; ``add_routes`` registers everything."""

    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake

    # ------------------------------------------------------------------------------------------
    # plumbing
    # ------------------------------------------------------------------------------------------
    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(API + "/"):
            return await handler(request)
        fake = self.fake
        rel = request.path[len(API) :]
        try:
            body, files = await self._parse_body(request)
        except ApiError as exc:
            return json_response(exc.body(), exc.status)
        record = RecordedRequest(
            method=request.method,
            path=rel,
            query=dict(request.query),
            json=body,
            files=files,
            time=time.time(),
        )
        fake.request_log.append(record)
        request[JSON_KEY] = body
        request[FILES_KEY] = files
        if not fake.token_accepted and request.headers.get("Authorization"):
            # A wrong or reset bot token: Discord answers 401 {"message": "401: Unauthorized",
            # "code": 0} (docs: Topics -> Opcodes and Status Codes -> HTTP Response Codes, 401
            # "The Authorization header was missing or invalid"); discord.py's static_login turns
            # the 401 on GET /users/@me into LoginFailure. Unverified: whether token-free routes
            # (interaction callbacks) also reject a bad header; only login reaches here in tests.
            record.status = 401
            record.response = {"message": "401: Unauthorized", "code": 0}
            return json_response(record.response, 401)

        for method, pattern, released in list(fake.holds):
            if method == request.method and pattern.search(rel):
                # A test control, not a rule of Discord: the request waits (as a slow answer
                # would) until the test releases it, so a test can see what happens meanwhile.
                fake.holds.remove((method, pattern, released))
                await released.wait()
                break
        now = time.monotonic()
        for rule in fake.fail_rules:
            if rule.matches(request.method, rel, now):
                rule.times -= 1
                if rule.drop:  # the connection closes before any answer (see FakeDiscord.outage)
                    if rule.handled:
                        with contextlib.suppress(Exception):
                            await handler(request)
                    record.status = None  # (no answer)
                    if request.transport is not None:
                        request.transport.close()
                    return web.Response(status=503)  # never reaches the client
                record.status = rule.status
                if rule.status == 429:
                    retry = 0.05 if rule.retry_after is None else rule.retry_after
                    payload = {
                        "message": rule.message or "You are being rate limited.",
                        "retry_after": retry,
                        "global": False,
                        "code": rule.code,
                    }
                    record.response = payload
                    return json_response(
                        payload,
                        429,
                        {
                            "Via": "1.1 google",
                            "Retry-After": str(math.ceil(retry)),
                            "X-RateLimit-Scope": "user",
                        },
                    )
                payload = {
                    "message": rule.message or f"{rule.status}: injected failure",
                    "code": rule.code,
                }
                record.response = payload
                return json_response(payload, rule.status)

        try:
            result = await handler(request)
        except ApiError as exc:
            record.status = exc.status
            record.response = exc.body()
            self._note_interaction_error(request, exc.code)
            return json_response(exc.body(), exc.status)
        except web.HTTPMethodNotAllowed:
            record.status = 405
            return json_response({"message": "405: Method Not Allowed", "code": 0}, 405)
        except web.HTTPNotFound:
            record.status = 404
            return json_response({"message": "404: Not Found", "code": 0}, 404)
        if isinstance(result, web.StreamResponse):
            record.status = result.status
            return result
        if result is None:
            record.status = 204
            return web.Response(status=204)
        status = 200
        if isinstance(result, tuple):
            status, result = result
        record.status = status
        record.response = result
        return json_response(result, status)

    def _note_interaction_error(self, request: web.Request, code: int) -> None:
        info = request.match_info
        inter: FakeInteraction | None = None
        if "interaction_id" in info:
            try:
                inter = self.fake.interactions.get(int(info["interaction_id"]))
            except ValueError:
                inter = None
        elif "token" in info:
            inter = self.fake.interactions_by_token.get(info["token"])
        if inter is not None:
            inter.errors.append(code)

    async def _parse_body(self, request: web.Request) -> tuple[Any, list[UploadedFile]]:
        files: list[UploadedFile] = []
        if not request.can_read_body:
            return None, files
        ctype = request.content_type
        if ctype == "multipart/form-data":
            body: Any = None
            reader = await request.multipart()
            while True:
                part = await reader.next()
                if part is None:
                    break
                name = part.name or ""  # type: ignore[union-attr]
                data = await part.read(decode=False)  # type: ignore[union-attr]
                if name == "payload_json":
                    try:
                        body = json.loads(data.decode())
                    except ValueError:
                        raise ApiError(400, 50109, "The request body contains invalid JSON.") from None
                else:
                    files.append(
                        UploadedFile(
                            field=name,
                            filename=part.filename or name,  # type: ignore[union-attr]
                            data=bytes(data),
                            content_type=part.headers.get("Content-Type"),  # type: ignore[union-attr]
                        )
                    )
            return body, files
        raw = await request.read()
        if not raw:
            return None, files
        try:
            return json.loads(raw.decode()), files
        except ValueError:
            raise ApiError(400, 50109, "The request body contains invalid JSON.") from None

    def add_routes(self, app: web.Application) -> None:
        r = app.router
        a = API
        r.add_get(a + "/gateway", self.get_gateway)
        r.add_get(a + "/gateway/bot", self.get_gateway_bot)
        r.add_get(a + "/users/@me", self.get_me)
        r.add_get(a + "/users/@me/guilds", self.get_my_guilds)
        r.add_post(a + "/users/@me/channels", self.create_dm)
        r.add_get(a + "/users/{user_id}", self.get_user)
        r.add_get(a + "/oauth2/applications/@me", self.get_application)
        r.add_get(a + "/applications/@me", self.get_application)
        for prefix in ("/applications/{app_id}", "/applications/{app_id}/guilds/{guild_id}"):
            base = a + prefix + "/commands"
            r.add_get(base, self.list_commands)
            r.add_put(base, self.bulk_commands)
            r.add_post(base, self.upsert_command)
            r.add_get(base + "/permissions", self.command_permissions)
            r.add_get(base + "/{command_id}", self.get_command)
            r.add_patch(base + "/{command_id}", self.edit_command)
            r.add_delete(base + "/{command_id}", self.delete_command)
        r.add_get(a + "/guilds/{guild_id}", self.get_guild)
        r.add_get(a + "/guilds/{guild_id}/channels", self.get_guild_channels)
        r.add_get(a + "/guilds/{guild_id}/roles", self.get_roles)
        r.add_get(a + "/guilds/{guild_id}/members", self.get_members)
        r.add_get(a + "/guilds/{guild_id}/members/{user_id}", self.get_member)
        r.add_get(a + "/guilds/{guild_id}/threads/active", self.get_active_threads)
        c = a + "/channels/{channel_id}"
        r.add_get(c, self.get_channel)
        r.add_patch(c, self.edit_channel)
        r.add_delete(c, self.delete_channel)
        r.add_get(c + "/messages", self.get_messages)
        r.add_post(c + "/messages", self.post_message)
        r.add_get(c + "/messages/{message_id}", self.get_message)
        r.add_patch(c + "/messages/{message_id}", self.edit_message)
        r.add_delete(c + "/messages/{message_id}", self.delete_message)
        r.add_post(c + "/messages/{message_id}/threads", self.thread_from_message)
        r.add_get(c + "/messages/{message_id}/reactions/{emoji}", self.get_reactions)
        r.add_put(c + "/messages/{message_id}/reactions/{emoji}/@me", self.add_reaction)
        r.add_delete(c + "/messages/{message_id}/reactions/{emoji}/@me", self.remove_reaction)
        r.add_post(c + "/typing", self.typing)
        r.add_post(c + "/threads", self.create_thread)
        r.add_get(c + "/thread-members", self.get_thread_members)
        r.add_put(c + "/thread-members/@me", self.join_thread)
        r.add_delete(c + "/thread-members/@me", self.leave_thread)
        r.add_post(a + "/interactions/{interaction_id}/{token}/callback", self.interaction_callback)
        w = a + "/webhooks/{app_id}/{token}"
        r.add_post(w, self.followup)
        r.add_get(w + "/messages/{message_id}", self.get_webhook_message)
        r.add_patch(w + "/messages/{message_id}", self.edit_webhook_message)
        r.add_delete(w + "/messages/{message_id}", self.delete_webhook_message)
        for kind in ("attachments", "ephemeral-attachments"):
            for prefix in ("", "/media"):
                r.add_get(
                    f"{prefix}/{kind}/{{scope}}/{{attachment_id}}/{{filename}}",
                    self.get_attachment_data,
                )

    # ------------------------------------------------------------------------------------------
    # login, gateway, users
    # ------------------------------------------------------------------------------------------
    async def get_gateway(self, request: web.Request) -> Any:
        return {"url": self.fake.gateway_url}

    async def get_gateway_bot(self, request: web.Request) -> Any:
        return {
            "url": self.fake.advertised_gateway_url or self.fake.gateway_url,
            "shards": self.fake.recommended_shards,
            "session_start_limit": {
                "total": 1000,
                "remaining": 999,
                "reset_after": 86400000,
                "max_concurrency": 1,
            },
        }

    async def get_me(self, request: web.Request) -> Any:
        return self.fake.bot_user

    async def get_my_guilds(self, request: web.Request) -> Any:
        # docs: Resources -> User -> Get Current User Guilds: partial guilds with `owner` and
        # `permissions` (the current user's base permissions in that guild, a string).
        fake = self.fake
        return [{
            "id": str(guild.id),
            "name": guild.name,
            "icon": None,
            "banner": None,
            "owner": False,
            "permissions": str(fake.base_permissions(fake.bot_id, guild.id)),
            "features": [],
        } for guild in fake.guilds.values()]

    async def get_user(self, request: web.Request) -> Any:
        uid = _int(request.match_info["user_id"], "user_id")
        user = self.fake.users.get(uid)
        if user is None:
            raise ApiError(404, 10013)
        return user

    async def get_application(self, request: web.Request) -> Any:
        return self.fake.application_payload()

    async def create_dm(self, request: web.Request) -> Any:
        body = request[JSON_KEY] or {}
        uid = _int(body.get("recipient_id"), "recipient_id")
        if uid not in self.fake.users:
            raise ApiError(400, 50033, "Invalid Recipients")
        return self.fake.dm_channels[self.fake.dm_channel(uid)]

    # ------------------------------------------------------------------------------------------
    # application commands
    # ------------------------------------------------------------------------------------------
    def _scope(self, request: web.Request) -> int | None:
        if _int(request.match_info["app_id"], "application_id") != self.fake.application_id:
            raise ApiError(403, 50001)
        if "guild_id" in request.match_info:
            gid = _int(request.match_info["guild_id"], "guild_id")
            if gid not in self.fake.guilds:
                raise ApiError(403, 50001)
            return gid
        return None

    async def list_commands(self, request: web.Request) -> Any:
        return self.fake.commands.get(self._scope(request), [])

    async def command_permissions(self, request: web.Request) -> Any:
        self._scope(request)
        return []

    def _validate_options(self, options: list[dict[str, Any]], path: str, depth: int = 0) -> None:
        if len(options) > 25:
            raise max_length_error(path, 25)
        seen: set[str] = set()
        optional_seen = False
        for i, opt in enumerate(options):
            where = f"{path}.{i}"
            name = opt.get("name", "")
            if not COMMAND_NAME_RE.match(name) or name != name.lower():
                raise form_error(
                    f"{where}.name", "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid"
                )
            if name in seen:
                raise form_error(
                    where,
                    "APPLICATION_COMMAND_OPTIONS_NAME_ALREADY_EXISTS",
                    "Option name already exists",
                )
            seen.add(name)
            if not 1 <= len(opt.get("description", "")) <= 100:
                raise form_error(
                    f"{where}.description",
                    "BASE_TYPE_BAD_LENGTH",
                    "Must be between 1 and 100 in length.",
                )
            otype = opt.get("type")
            if otype not in range(1, 12):
                raise form_error(
                    f"{where}.type",
                    "BASE_TYPE_CHOICES",
                    f"Value must be one of 1..11, got {otype}.",
                )
            if otype in (1, 2):
                if depth >= 2 or (otype == 2 and depth >= 1):
                    raise form_error(where, "APPLICATION_COMMAND_OPTIONS_TYPE_INVALID", "Invalid nesting")
                self._validate_options(opt.get("options") or [], f"{where}.options", depth + 1)
                continue
            if opt.get("required"):
                if optional_seen:
                    raise form_error(
                        where,
                        "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                        "Required options must be placed before non-required options",
                    )
            else:
                optional_seen = True
            if len(opt.get("choices") or []) > 25:
                raise max_length_error(f"{where}.choices", 25)

    def _normalise_command(
        self, cmd: dict[str, Any], index: int, scope: int | None, old: dict[str, Any] | None
    ) -> dict[str, Any]:
        ctype = cmd.get("type", 1) or 1
        name = cmd.get("name", "")
        if ctype == 1:
            if not COMMAND_NAME_RE.match(name) or name != name.lower():
                raise form_error(
                    f"{index}.name", "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid"
                )
            if not 1 <= len(cmd.get("description") or "") <= 100:
                raise form_error(
                    f"{index}.description",
                    "BASE_TYPE_BAD_LENGTH",
                    "Must be between 1 and 100 in length.",
                )
            self._validate_options(cmd.get("options") or [], f"{index}.options")
        elif not 1 <= len(name) <= 32:
            raise form_error(f"{index}.name", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 32 in length.")
        perms = cmd.get("default_member_permissions")
        stored: dict[str, Any] = {
            "id": old["id"] if old else str(self.fake.snowflake()),
            "application_id": str(self.fake.application_id),
            "version": old["version"] if old else str(self.fake.snowflake()),
            "default_member_permissions": None if perms is None else str(perms),
            "type": ctype,
            "name": name,
            "name_localizations": cmd.get("name_localizations") or None,
            "description": cmd.get("description") or "",
            "description_localizations": cmd.get("description_localizations") or None,
            "nsfw": bool(cmd.get("nsfw", False)),
            "contexts": cmd.get("contexts"),
            "integration_types": cmd.get("integration_types") or [0],
        }
        if scope is None:
            stored["dm_permission"] = cmd.get("dm_permission", True) is not False
        else:
            stored["guild_id"] = str(scope)
        if cmd.get("options"):
            stored["options"] = cmd["options"]
        if old is not None:
            compare = {k: v for k, v in stored.items() if k not in ("version",)}
            if compare != {k: v for k, v in old.items() if k not in ("version",)}:
                stored["version"] = str(self.fake.snowflake())
        return stored

    async def bulk_commands(self, request: web.Request) -> Any:
        scope = self._scope(request)
        body = request[JSON_KEY]
        if not isinstance(body, list):
            raise form_error("_root", "LIST_TYPE_CONVERT", "Only iterables may be used in a ListType")
        if len(body) > 100:
            raise ApiError(400, 30032, "Maximum number of application commands reached (100)")
        # Application Commands → "Registering a Command": per scope at most 100 CHAT_INPUT,
        # 5 USER and 5 MESSAGE commands (30032: Maximum number of application commands reached)
        for ctype in (2, 3):
            if sum(1 for c in body if isinstance(c, dict) and c.get("type") == ctype) > 5:
                raise ApiError(400, 30032, "Maximum number of application commands reached (5)")
        existing = {(c["name"], c["type"]): c for c in self.fake.commands.get(scope, [])}
        result = []
        seen: set[tuple[str, int]] = set()
        for i, cmd in enumerate(body):
            key = (cmd.get("name", ""), cmd.get("type", 1) or 1)
            if key in seen:
                raise form_error(
                    f"{i}.name",
                    "APPLICATION_COMMANDS_DUPLICATE_NAME",
                    "Application command names must be unique",
                )
            seen.add(key)
            result.append(self._normalise_command(cmd, i, scope, existing.get(key)))
        self.fake.commands[scope] = result
        self.fake.command_syncs += 1
        return result

    async def upsert_command(self, request: web.Request) -> Any:
        scope = self._scope(request)
        cmd = request[JSON_KEY] or {}
        commands = self.fake.commands.setdefault(scope, [])
        key = (cmd.get("name", ""), cmd.get("type", 1) or 1)
        old = next((c for c in commands if (c["name"], c["type"]) == key), None)
        stored = self._normalise_command(cmd, 0, scope, old)
        if old is not None:
            commands[commands.index(old)] = stored
            return stored
        commands.append(stored)
        return 201, stored

    def _find_command(self, request: web.Request) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        scope = self._scope(request)
        commands = self.fake.commands.get(scope, [])
        cid = request.match_info["command_id"]
        for cmd in commands:
            if cmd["id"] == cid:
                return commands, cmd
        raise ApiError(404, 10063)

    async def get_command(self, request: web.Request) -> Any:
        return self._find_command(request)[1]

    async def edit_command(self, request: web.Request) -> Any:
        commands, cmd = self._find_command(request)
        merged = {**cmd, **(request[JSON_KEY] or {})}
        scope = int(cmd["guild_id"]) if cmd.get("guild_id") else None
        stored = self._normalise_command(merged, 0, scope, cmd)
        commands[commands.index(cmd)] = stored
        return stored

    async def delete_command(self, request: web.Request) -> Any:
        commands, cmd = self._find_command(request)
        commands.remove(cmd)
        return None

    # ------------------------------------------------------------------------------------------
    # guild
    # ------------------------------------------------------------------------------------------
    def _guild(self, request: web.Request) -> FakeGuild:
        guild = self.fake.guilds.get(_int(request.match_info["guild_id"], "guild_id"))
        if guild is None:
            raise ApiError(404, 10004, "Unknown Guild")
        return guild

    async def get_guild(self, request: web.Request) -> Any:
        guild = self._guild(request)
        payload = self.fake.guild_payload(guild.id)
        # GET /guilds/{guild.id} answers a GuildWithCountsResponse: the published OpenAPI spec
        # (contracts: components/schemas/GuildWithCountsResponse) requires these fields as well.
        payload.update(
            home_header=None, max_presences=None, max_stage_video_channel_users=50,
            nsfw=False, region="deprecated", widget_channel_id=None, widget_enabled=False,
        )
        if request.query.get("with_counts") in ("true", "1"):
            payload["approximate_member_count"] = len(guild.members)
            payload["approximate_presence_count"] = 0
        return payload

    async def get_guild_channels(self, request: web.Request) -> Any:
        return self.fake.guild_channels(self._guild(request).id)

    async def get_roles(self, request: web.Request) -> Any:
        return list(self._guild(request).roles.values())

    async def get_members(self, request: web.Request) -> Any:
        guild = self._guild(request)
        limit = int(request.query.get("limit", 1))
        after = int(request.query.get("after", 0))
        uids = sorted(u for u in guild.members if u > after)[:limit]
        return [self.fake.member_payload(u, guild_id=guild.id) for u in uids]

    async def get_member(self, request: web.Request) -> Any:
        guild = self._guild(request)
        uid = _int(request.match_info["user_id"], "user_id")
        if uid not in guild.members:
            raise ApiError(404, 10007, "Unknown Member")
        return self.fake.member_payload(uid, guild_id=guild.id)

    async def get_active_threads(self, request: web.Request) -> Any:
        threads = self.fake.guild_threads(self._guild(request).id, active=True)
        members = [
            self.fake.thread_member_payload(int(t["id"]), self.fake.bot_id)
            for t in threads
            if self.fake.bot_id in self.fake.thread_members.get(int(t["id"]), set())
        ]
        return {"threads": threads, "members": members, "has_more": False}

    # ------------------------------------------------------------------------------------------
    # channels and threads
    # ------------------------------------------------------------------------------------------
    def _channel(self, request: web.Request) -> tuple[int, dict[str, Any]]:
        """Topics → Opcodes and Status Codes → JSON Error Codes: a channel that does not exist
        (deleted) is 404/10003 Unknown Channel; one the bot cannot see (no VIEW_CHANNEL: Topics
        → Permissions, "Implicit Permissions") is 403/50001 Missing Access."""
        cid = _int(request.match_info["channel_id"], "channel_id")
        channel = self.fake.channel(cid)
        if channel is None:
            raise ApiError(404, 10003)
        if channel["type"] != CH_DM and not self.fake.has(self.fake.bot_id, cid, "view_channel"):
            raise ApiError(403, 50001)
        return cid, channel

    def _thread_payload(self, thread_id: int) -> dict[str, Any]:
        payload = dict(self.fake.threads[thread_id])
        if self.fake.bot_id in self.fake.thread_members.get(thread_id, set()):
            payload["member"] = self.fake.thread_member_payload(thread_id, self.fake.bot_id)
        return payload

    async def get_channel(self, request: web.Request) -> Any:
        cid, channel = self._channel(request)
        if cid in self.fake.threads:
            return self._thread_payload(cid)
        return channel

    async def edit_channel(self, request: web.Request) -> Any:
        fake = self.fake
        cid, channel = self._channel(request)
        body = request[JSON_KEY] or {}
        if cid in fake.threads:
            thread = fake.threads[cid]
            meta = thread["thread_metadata"]
            owner = int(thread["owner_id"]) == fake.bot_id
            manage = fake.has(fake.bot_id, cid, "manage_threads")
            if "locked" in body and bool(body["locked"]) != meta.get("locked", False) and not manage:
                raise ApiError(403, 50013)
            if not (owner or manage) and set(body) - {"archived", "locked"}:
                raise ApiError(403, 50013)
            if "archived" in body and not (owner or manage):
                raise ApiError(403, 50013)
            if meta["archived"] and body.get("archived") is not False:
                raise ApiError(400, 50083)
            if meta.get("locked") and body.get("archived") is False and not manage:
                raise ApiError(403, 160005)
            if "name" in body and not 1 <= len(body["name"] or "") <= 100:
                raise form_error("name", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
            if "auto_archive_duration" in body and body["auto_archive_duration"] not in ARCHIVE_DURATIONS:
                raise form_error(
                    "auto_archive_duration",
                    "BASE_TYPE_CHOICES",
                    f"Value must be one of {ARCHIVE_DURATIONS}.",
                )
            changes = {
                k: v
                for k, v in body.items()
                if k
                in (
                    "name",
                    "archived",
                    "locked",
                    "auto_archive_duration",
                    "rate_limit_per_user",
                    "invitable",
                    "applied_tags",
                    "flags",
                )
            }
            fake.update_thread(cid, **changes)
            return self._thread_payload(cid)
        if channel["type"] == CH_DM:
            raise ApiError(400, 50024)
        fake.require(cid, "manage_channels")
        for key in (
            "name",
            "topic",
            "nsfw",
            "rate_limit_per_user",
            "position",
            "default_auto_archive_duration",
        ):
            if key in body:
                channel[key] = body[key]
        fake.dispatch_guild("CHANNEL_UPDATE", dict(channel))
        return channel

    async def delete_channel(self, request: web.Request) -> Any:
        fake = self.fake
        cid, channel = self._channel(request)
        if channel["type"] == CH_DM:
            return channel
        if cid in fake.threads:
            fake.require(cid, "manage_threads")
            payload = dict(fake.threads[cid])
        else:
            fake.require(cid, "manage_channels")
            payload = dict(channel)
        await fake.delete_channel(cid)
        return payload

    def _check_thread_name(self, body: dict[str, Any], guild_id: int | None) -> tuple[str, int | None]:
        name = body.get("name")
        if not isinstance(name, str) or not 1 <= len(name) <= 100:
            raise form_error("name", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
        duration = body.get("auto_archive_duration")
        if duration is not None and duration not in ARCHIVE_DURATIONS:
            raise form_error(
                "auto_archive_duration",
                "BASE_TYPE_CHOICES",
                f"Value must be one of {ARCHIVE_DURATIONS}.",
            )
        if self.fake.active_thread_count(guild_id) >= self.fake.max_active_threads:
            raise ApiError(400, 160006)
        return name, duration

    def _announce_thread(self, thread_id: int) -> dict[str, Any]:
        payload = self._thread_payload(thread_id)
        self.fake.dispatch_guild("THREAD_CREATE", {**payload, "newly_created": True})
        return payload

    async def thread_from_message(self, request: web.Request) -> Any:
        fake = self.fake
        cid, channel = self._channel(request)
        if channel["type"] not in (CH_TEXT, 5):
            raise ApiError(400, 50024)
        mid = _int(request.match_info["message_id"], "message_id")
        msg = fake.message_index.get(mid)
        if msg is None or msg.deleted or msg.ephemeral or msg.channel_id != cid:
            raise ApiError(404, 10008)
        if msg.thread_id is not None:
            raise ApiError(400, 160004)
        fake.require(cid, "view_channel", "create_public_threads")
        body = request[JSON_KEY] or {}
        name, duration = self._check_thread_name(body, fake.guild_of(cid))
        fake.create_thread_record(
            cid,
            name=name,
            type_=CH_PUBLIC_THREAD,
            owner_id=fake.bot_id,
            thread_id=mid,
            auto_archive_duration=duration or channel.get("default_auto_archive_duration", 1440),
            rate_limit_per_user=body.get("rate_limit_per_user") or 0,
        )
        msg.thread_id = mid
        return 201, self._announce_thread(mid)

    async def create_thread(self, request: web.Request) -> Any:
        fake = self.fake
        cid, channel = self._channel(request)
        body = request[JSON_KEY] or {}
        files: list[UploadedFile] = request[FILES_KEY]
        if channel["type"] in THREAD_ONLY:
            # Resources → Channel "Start Thread in Forum or Media Channel": a post is a thread
            # created with its first message; SEND_MESSAGES is required (CREATE_PUBLIC_THREADS
            # is ignored), ATTACH_FILES for files; at most 5 applied_tags (Modify Channel,
            # thread params), each one of the channel's available_tags
            message_body = body.get("message")
            if not isinstance(message_body, dict):
                raise form_error("message", "BASE_TYPE_REQUIRED", "This field is required")
            fake.require(cid, "view_channel", "send_messages")
            if files:
                fake.require(cid, "attach_files")
            name, duration = self._check_thread_name(body, fake.guild_of(cid))
            tags = [str(t) for t in body.get("applied_tags") or []]
            available = {t["id"]: t for t in channel.get("available_tags", [])}
            if len(tags) > 5 or not set(tags) <= set(available):
                raise form_error("applied_tags", "BASE_TYPE_CHOICES", "Invalid tag(s)")
            if not tags and int(channel.get("flags") or 0) & FLAG_REQUIRE_TAG:
                raise ApiError(400, 40067)  # Opcodes and Status Codes → JSON error codes
            if any(available[t].get("moderated") for t in tags):
                # Forum Tag Object: a moderated tag can only be added by a member with
                # MANAGE_THREADS (the error's code is our reading: Missing Permissions)
                fake.require(cid, "manage_threads")
            if channel["type"] == CH_MEDIA and not files:
                # Media channels are for media: every post carries an image or video (Discord's
                # media channels help article; the error's shape is not documented)
                raise form_error("files", "BASE_TYPE_REQUIRED", "A media post needs an attachment")
            self._validate_message(message_body, files, cid)
            thread = fake.create_thread_record(
                cid,
                name=name,
                type_=CH_PUBLIC_THREAD,
                owner_id=fake.bot_id,
                auto_archive_duration=duration or channel.get("default_auto_archive_duration", 1440),
                rate_limit_per_user=body.get("rate_limit_per_user") or 0,
                applied_tags=tags,
            )
            tid = int(thread["id"])
            attachments = self._attachments(message_body, files, tid, None) or []
            msg = self._new_bot_message(tid, message_body, attachments, message_id=tid)
            payload = self._announce_thread(tid)
            fake.store_message(msg)
            fake.dispatch_message("MESSAGE_CREATE", msg)
            payload["message"] = fake.message_payload(msg)
            return 201, payload
        if channel["type"] not in (CH_TEXT, 5):
            raise ApiError(400, 50024)
        ttype = body.get("type") or CH_PRIVATE_THREAD
        if ttype not in (CH_PUBLIC_THREAD, CH_PRIVATE_THREAD, 10):
            raise form_error("type", "BASE_TYPE_CHOICES", "Value must be one of (10, 11, 12).")
        fake.require(
            cid,
            "view_channel",
            "create_private_threads" if ttype == CH_PRIVATE_THREAD else "create_public_threads",
        )
        name, duration = self._check_thread_name(body, fake.guild_of(cid))
        thread = fake.create_thread_record(
            cid,
            name=name,
            type_=ttype,
            owner_id=fake.bot_id,
            auto_archive_duration=duration or channel.get("default_auto_archive_duration", 1440),
            rate_limit_per_user=body.get("rate_limit_per_user") or 0,
            invitable=body.get("invitable", True) is not False,
        )
        tid = int(thread["id"])
        payload = self._announce_thread(tid)
        if ttype == CH_PUBLIC_THREAD:
            notice = FakeMessage(
                id=fake.snowflake(),
                channel_id=cid,
                guild_id=fake.guild_of(cid),
                author=fake.bot_user,
                content=name,
                type=MSG_THREAD_CREATED,
                message_reference={
                    "type": 0,
                    "channel_id": str(tid),
                    "guild_id": str(fake.guild_of(cid)),
                },
            )
            fake.store_message(notice)
            fake.dispatch_message("MESSAGE_CREATE", notice)
        return 201, payload

    async def get_thread_members(self, request: web.Request) -> Any:
        cid, _ = self._channel(request)
        if cid not in self.fake.threads:
            raise ApiError(400, 50024)
        return [
            self.fake.thread_member_payload(cid, u) for u in sorted(self.fake.thread_members.get(cid, set()))
        ]

    async def join_thread(self, request: web.Request) -> Any:
        cid, _ = self._channel(request)
        if cid not in self.fake.threads:
            raise ApiError(400, 50024)
        if self.fake.threads[cid]["thread_metadata"]["archived"]:
            raise ApiError(400, 50083)
        self.fake.thread_members.setdefault(cid, set()).add(self.fake.bot_id)
        return None

    async def leave_thread(self, request: web.Request) -> Any:
        cid, _ = self._channel(request)
        if cid not in self.fake.threads:
            raise ApiError(400, 50024)
        self.fake.thread_members.setdefault(cid, set()).discard(self.fake.bot_id)
        return None

    # ------------------------------------------------------------------------------------------
    # message validation and construction
    # ------------------------------------------------------------------------------------------
    def _validate_message(self, body: dict[str, Any], files: list[UploadedFile], channel_id: int) -> None:
        content = body.get("content")
        if content is not None and len(str(content)) > 2000:
            raise max_length_error("content", 2000)
        embeds = body.get("embeds")
        if embeds is not None:
            if len(embeds) > 10:
                raise max_length_error("embeds", 10)
            for i, embed in enumerate(embeds):
                self._validate_embed(embed, f"embeds.{i}")
        components = body.get("components")
        if components:
            self._validate_components(components, int(body.get("flags") or 0))
        # Reference -> "Uploading Files": per file, the server's limit (not the user's Nitro one)
        limit = self.fake.bot_upload_limit(channel_id)
        for f in files:
            if len(f.data) > limit:
                raise ApiError(413, 40005)

    def _validate_embed(self, embed: dict[str, Any], path: str) -> None:
        total = 0

        def check(value: Any, where: str, limit: int) -> None:
            nonlocal total
            if value is None:
                return
            text = str(value)
            if len(text) > limit:
                raise max_length_error(f"{path}.{where}", limit)
            total += len(text)

        check(embed.get("title"), "title", 256)
        check(embed.get("description"), "description", 4096)
        fields = embed.get("fields") or []
        if len(fields) > 25:
            raise max_length_error(f"{path}.fields", 25)
        for i, fld in enumerate(fields):
            check(fld.get("name"), f"fields.{i}.name", 256)
            check(fld.get("value"), f"fields.{i}.value", 1024)
        check((embed.get("footer") or {}).get("text"), "footer.text", 2048)
        check((embed.get("author") or {}).get("name"), "author.name", 256)
        if total > 6000:
            raise form_error(path, "BASE_TYPE_MAX_LENGTH", "Embed size exceeds maximum size of 6000")

    def _validate_components(self, components: list[dict[str, Any]], flags: int) -> None:
        from .discord_server import FakeDiscord

        v2 = bool(flags & (1 << 15))
        if not v2 and len(components) > 5:
            raise max_length_error("components", 5)
        seen: set[str] = set()
        for i, comp in enumerate(FakeDiscord.walk_components(components)):
            ctype = comp.get("type")
            if ctype == 1 and len(comp.get("components") or []) > 5:
                raise max_length_error(f"components.{i}.components", 5)
            if ctype == 2:
                if comp.get("style") == 5:
                    if not comp.get("url") or comp.get("custom_id"):
                        raise form_error(
                            f"components.{i}",
                            "BUTTON_COMPONENT_URL_REQUIRED",
                            "A link button needs a url and no custom_id",
                        )
                elif comp.get("style") != 6 and not comp.get("custom_id"):
                    raise form_error(
                        f"components.{i}.custom_id", "BASE_TYPE_REQUIRED", "This field is required"
                    )
                if len(comp.get("label") or "") > 80:
                    raise max_length_error(f"components.{i}.label", 80)
            cid = comp.get("custom_id")
            if cid is not None:
                if not 1 <= len(cid) <= 100:
                    raise form_error(
                        f"components.{i}.custom_id",
                        "BASE_TYPE_BAD_LENGTH",
                        "Must be between 1 and 100 in length.",
                    )
                if cid in seen:
                    raise form_error(
                        "components",
                        "COMPONENT_CUSTOM_ID_DUPLICATED",
                        "Component custom id cannot be duplicated",
                    )
                seen.add(cid)

    def _attachments(
        self,
        body: dict[str, Any],
        files: list[UploadedFile],
        channel_id: int,
        existing: list[FakeAttachment] | None,
    ) -> list[FakeAttachment] | None:
        """The message's new attachment list (``None``: unchanged). ``attachments`` entries keep
        existing attachments by id or describe ``files[n]`` uploads by index ``n``."""
        by_index: dict[int, UploadedFile] = {}
        for n, f in enumerate(files):
            match = re.fullmatch(r"files\[(\d+)\]", f.field)
            by_index[int(match.group(1)) if match else n] = f
        entries = body.get("attachments")

        def new(f: UploadedFile, entry: dict[str, Any] | None = None) -> FakeAttachment:
            entry = entry or {}
            return self.fake.attachment_from_bytes(
                entry.get("filename") or f.filename,
                f.data,
                f.content_type,
                channel_id=channel_id,
                description=entry.get("description"),
                title=entry.get("title"),
            )

        if entries is None:
            if not files:
                return None
            result = list(existing or []) + [new(f) for _, f in sorted(by_index.items())]
        else:
            current = {str(a.id): a for a in existing or []}
            used: set[int] = set()
            result = []
            for i, entry in enumerate(entries):
                key = str(entry.get("id"))
                if key in current:
                    result.append(current[key])
                elif key.isdigit() and int(key) in by_index:
                    used.add(int(key))
                    result.append(new(by_index[int(key)], entry))
                else:
                    raise form_error(f"attachments.{i}.id", "ATTACHMENT_NOT_FOUND", "Unknown attachment")
            result += [new(f) for n, f in sorted(by_index.items()) if n not in used]
        if len(result) > 10:
            raise max_length_error("attachments", 10)
        return result

    @staticmethod
    def _is_empty(msg: FakeMessage) -> bool:
        return not (
            msg.content or msg.embeds or msg.attachments or msg.components or msg.sticker_ids or msg.poll
        )

    def _new_bot_message(
        self,
        channel_id: int,
        body: dict[str, Any],
        attachments: list[FakeAttachment],
        *,
        message_id: int | None = None,
    ) -> FakeMessage:
        fake = self.fake
        content = body.get("content") or ""
        msg = FakeMessage(
            id=message_id or fake.snowflake(),
            channel_id=channel_id,
            guild_id=fake.guild_of(channel_id),
            author=fake.bot_user,
            content=str(content),
            embeds=list(body.get("embeds") or []),
            components=numbered(body.get("components")),
            attachments=attachments,
            flags=int(body.get("flags") or 0) & SETTABLE_MESSAGE_FLAGS,
            tts=bool(body.get("tts", False)),
            nonce=None if body.get("nonce") is None else str(body["nonce"]),
            mentions=fake.parse_mentions(str(content)),
            poll=body.get("poll"),
            sticker_ids=[str(s) for s in body.get("sticker_ids") or []],
        )
        if self._is_empty(msg):
            raise ApiError(400, 50006)
        return msg

    def _apply_reference(self, msg: FakeMessage, body: dict[str, Any]) -> None:
        fake = self.fake
        ref = body.get("message_reference")
        if not ref:
            return
        ref_id = ref.get("message_id")
        target = fake.message_index.get(int(ref_id)) if ref_id else None
        if target is None or target.deleted or target.ephemeral:
            if ref.get("fail_if_not_exists", True) is not False:
                raise form_error("message_reference", "MESSAGE_REFERENCE_UNKNOWN_MESSAGE", "Unknown message")
            return
        rtype = int(ref.get("type") or 0)
        msg.message_reference = {
            "type": rtype,
            "message_id": str(target.id),
            "channel_id": str(target.channel_id),
        }
        if target.guild_id is not None:
            msg.message_reference["guild_id"] = str(target.guild_id)
        if rtype == 0:
            msg.type = MSG_REPLY
            allowed = body.get("allowed_mentions")
            if (
                allowed is None or allowed.get("replied_user", False)
            ) and target.author_id not in msg.mentions:
                msg.mentions.append(target.author_id)

    def _apply_edit(self, msg: FakeMessage, body: dict[str, Any], files: list[UploadedFile]) -> None:
        """Edit as Discord does: given fields are replaced, ``attachments`` keeps/adds files."""
        self._validate_message(body, files, msg.channel_id)
        new_attachments = self._attachments(body, files, msg.channel_id, msg.attachments)
        content = str(body["content"] or "") if "content" in body else msg.content
        embeds = list(body["embeds"] or []) if "embeds" in body else msg.embeds
        components = numbered(body["components"]) if "components" in body else msg.components
        attachments = new_attachments if new_attachments is not None else msg.attachments
        if not (content or embeds or components or attachments or msg.sticker_ids or msg.poll):
            raise ApiError(400, 50006)
        msg.edits.append(msg.snapshot())
        msg.content, msg.embeds, msg.components, msg.attachments = (
            content,
            embeds,
            components,
            attachments,
        )
        msg.mentions = self.fake.parse_mentions(content)
        if body.get("flags") is not None:
            keep = msg.flags & (FLAG_EPHEMERAL | (1 << 15))
            msg.flags = keep | (int(body["flags"]) & SETTABLE_MESSAGE_FLAGS)
        msg.flags &= ~FLAG_LOADING
        msg.edited_at = time.time()

    def _check_sendable(
        self,
        channel_id: int,
        channel: dict[str, Any],
        body: dict[str, Any],
        files: list[UploadedFile],
    ) -> None:
        fake = self.fake
        if channel["type"] in THREAD_ONLY:
            raise ApiError(400, 40058)  # Topics → Threads: no messages in a forum/media channel
        if channel["type"] == CH_DM:
            recipient = int(channel["recipients"][0]["id"])
            if not fake.dms_open.get(recipient, True) or fake.users[recipient].get("bot"):
                raise ApiError(403, 50007)
            return
        if channel_id in fake.threads:
            fake.require(channel_id, "view_channel", "send_messages_in_threads")
        else:
            fake.require(channel_id, "view_channel", "send_messages")
        if files:
            fake.require(channel_id, "attach_files")
        if body.get("message_reference"):
            fake.require(channel_id, "read_message_history")
        if channel_id in fake.threads:
            meta = fake.threads[channel_id]["thread_metadata"]
            if meta.get("locked") and not fake.has(fake.bot_id, channel_id, "manage_threads"):
                raise ApiError(403, 160005)

    def _check_thread_open(self, channel_id: int, action: str) -> None:
        """Topics → Threads ("Locked Threads", "Active & Archived Threads"): only active threads
        can be manipulated: in an archived thread messages cannot be edited (50083), only deleted;
        in a locked thread, members without MANAGE_THREADS can neither create nor update messages
        (160005), and may delete only while the thread is active. ``action`` is "edit" or
        "delete" (sending has its own rule in :meth:`_check_sendable`)."""
        fake = self.fake
        if channel_id not in fake.threads:
            return
        meta = fake.threads[channel_id]["thread_metadata"]
        archived, locked = meta["archived"], bool(meta.get("locked"))
        if locked and fake.has(fake.bot_id, channel_id, "manage_threads"):
            locked = False
        if action == "edit":
            if archived:
                raise ApiError(400, 50083)
            if locked:
                raise ApiError(403, 160005)
        elif archived and locked:
            raise ApiError(400, 50083)

    def _unarchive_if_needed(self, channel_id: int) -> None:
        fake = self.fake
        if channel_id in fake.threads and fake.threads[channel_id]["thread_metadata"]["archived"]:
            fake.update_thread(channel_id, archived=False)

    # ------------------------------------------------------------------------------------------
    # messages
    # ------------------------------------------------------------------------------------------
    async def post_message(self, request: web.Request) -> Any:
        fake = self.fake
        cid, channel = self._channel(request)
        body = request[JSON_KEY] or {}
        files: list[UploadedFile] = request[FILES_KEY]
        self._check_sendable(cid, channel, body, files)
        self._validate_message(body, files, cid)
        attachments = self._attachments(body, files, cid, None) or []
        nonce = str(body["nonce"]) if body.get("nonce") is not None else None
        if nonce is not None and body.get("enforce_nonce"):
            # Create Message, `enforce_nonce`: "If true and nonce is present, it will be checked
            # for uniqueness in the past few minutes. If another message was created by the same
            # author with the same nonce, that message will be returned and no new message will
            # be created." (docs: Resources -> Message -> Create Message). The window's length
            # ("a few minutes": 5 here) and a deleted earlier message (a new one is made here)
            # are unverified.
            earlier = fake.nonces.get(nonce)
            if earlier is not None and not earlier[0].deleted and time.time() - earlier[1] < 300:
                return fake.message_payload(earlier[0])
        msg = self._new_bot_message(cid, body, attachments)
        self._apply_reference(msg, body)
        msg.allowed_mentions = body.get("allowed_mentions")
        msg.notified = notified_users(msg, body)
        self._unarchive_if_needed(cid)
        fake.store_message(msg)
        if nonce is not None and body.get("enforce_nonce"):
            fake.nonces[nonce] = (msg, time.time())
        fake.dispatch_message("MESSAGE_CREATE", msg)
        return fake.message_payload(msg)

    def _channel_message(self, request: web.Request) -> tuple[int, dict[str, Any], FakeMessage]:
        cid, channel = self._channel(request)
        mid = _int(request.match_info["message_id"], "message_id")
        msg = self.fake.message_index.get(mid)
        if msg is None or msg.deleted or msg.ephemeral or msg.channel_id != cid:
            raise ApiError(404, 10008)
        return cid, channel, msg

    async def get_message(self, request: web.Request) -> Any:
        cid, channel, msg = self._channel_message(request)
        if channel["type"] != CH_DM:
            self.fake.require(cid, "read_message_history")
        return self.fake.message_payload(msg, intents=self.fake.gateway.current_intents())

    async def get_messages(self, request: web.Request) -> Any:
        fake = self.fake
        cid, channel = self._channel(request)
        if channel["type"] != CH_DM:
            fake.require(cid, "read_message_history")
        q = request.query
        limit = max(1, min(100, int(q.get("limit", 50))))
        msgs = [m for m in fake.transcripts.get(cid, []) if not m.deleted]
        if "before" in q:
            msgs = [m for m in msgs if m.id < int(q["before"])]
            msgs = msgs[-limit:]
        elif "after" in q:
            msgs = [m for m in msgs if m.id > int(q["after"])][:limit]
        elif "around" in q:
            around = int(q["around"])
            older = [m for m in msgs if m.id <= around][-(limit // 2 + limit % 2) :]
            newer = [m for m in msgs if m.id > around][: limit // 2]
            msgs = older + newer
        else:
            msgs = msgs[-limit:]
        intents = fake.gateway.current_intents()
        return [fake.message_payload(m, intents=intents) for m in reversed(msgs)]

    async def edit_message(self, request: web.Request) -> Any:
        fake = self.fake
        cid, _, msg = self._channel_message(request)
        body = request[JSON_KEY] or {}
        files: list[UploadedFile] = request[FILES_KEY]
        self._check_thread_open(cid, "edit")
        if msg.author_id != fake.bot_id or msg.webhook_id is not None:
            if set(body) - {"flags"}:
                raise ApiError(403, 50005)
            fake.require(cid, "manage_messages")
        if files:  # adding attachments in an edit needs ATTACH_FILES, as when sending
            fake.require(cid, "attach_files")
        self._apply_edit(msg, body, files)
        fake.dispatch_message("MESSAGE_UPDATE", msg)
        return fake.message_payload(msg)

    async def delete_message(self, request: web.Request) -> Any:
        fake = self.fake
        cid, channel, msg = self._channel_message(request)
        if msg.author_id != fake.bot_id:
            if channel["type"] == CH_DM:
                raise ApiError(403, 50003, "Cannot execute action on a DM channel")
            fake.require(cid, "manage_messages")
        self._check_thread_open(cid, "delete")
        msg.deleted = True
        fake.dispatch_message_delete(msg)
        return None

    async def typing(self, request: web.Request) -> Any:
        cid, channel = self._channel(request)
        if channel["type"] in THREAD_ONLY:
            raise ApiError(400, 50008)
        if channel["type"] != CH_DM:
            self.fake.require(
                cid, "send_messages_in_threads" if cid in self.fake.threads else "send_messages"
            )
        return None

    def _emoji(self, request: web.Request) -> str:
        emoji = unquote(request.match_info["emoji"])
        return emoji.split(":")[0] if ":" in emoji else emoji

    async def add_reaction(self, request: web.Request) -> Any:
        fake = self.fake
        cid, channel, msg = self._channel_message(request)
        if channel["type"] != CH_DM:
            fake.require(cid, "add_reactions", "read_message_history")
        emoji = self._emoji(request)
        users = msg.reactions.setdefault(emoji, set())
        if fake.bot_id not in users:
            users.add(fake.bot_id)
            self._dispatch_reaction("MESSAGE_REACTION_ADD", msg, emoji)
        return None

    async def remove_reaction(self, request: web.Request) -> Any:
        _, _, msg = self._channel_message(request)
        emoji = self._emoji(request)
        users = msg.reactions.get(emoji, set())
        if self.fake.bot_id in users:
            users.discard(self.fake.bot_id)
            self._dispatch_reaction("MESSAGE_REACTION_REMOVE", msg, emoji)
        return None

    def _dispatch_reaction(self, event: str, msg: FakeMessage, emoji: str) -> None:
        self.fake.dispatch_reaction(event, msg, emoji, self.fake.bot_id)

    async def get_reactions(self, request: web.Request) -> Any:
        """Get Reactions (Resources → Message): the users who reacted with an emoji, by id,
        ``after`` a user id, at most ``limit`` (1-100, default 25)."""
        cid, channel, msg = self._channel_message(request)
        if channel["type"] != CH_DM:
            self.fake.require(cid, "read_message_history")
        after = _int(request.query.get("after", "0"), "after")
        limit = _int(request.query.get("limit", "25"), "limit")
        if not 1 <= limit <= 100:
            raise form_error("limit", "NUMBER_TYPE_MAX", "Must be between 1 and 100.")
        users = sorted(u for u in msg.reactions.get(self._emoji(request), set()) if u > after)
        return [self.fake.user_payload(u) for u in users[:limit]]

    # ------------------------------------------------------------------------------------------
    # interactions
    # ------------------------------------------------------------------------------------------
    def _interaction_message(
        self,
        inter: FakeInteraction,
        data: dict[str, Any],
        files: list[UploadedFile],
        *,
        followup: bool,
    ) -> FakeMessage:
        fake = self.fake
        self._validate_message(data, files, inter.channel_id)
        attachments = self._attachments(data, files, inter.channel_id, None) or []
        flags = int(data.get("flags") or 0)
        metadata: dict[str, Any] = {
            "id": str(inter.id),
            "type": inter.type,
            "user": fake.users[inter.user_id],
            "authorizing_integration_owners": inter.payload.get("authorizing_integration_owners", {}),
        }
        legacy: dict[str, Any] | None = None
        if inter.type == 2:
            metadata["name"] = self._command_path(inter)
            metadata["command_type"] = 1
            legacy = {
                "id": str(inter.id),
                "type": 2,
                "name": metadata["name"],
                "user": fake.users[inter.user_id],
            }
        if inter.source_message_id is not None and inter.type == 3:
            metadata["interacted_message_id"] = str(inter.source_message_id)
        if inter.type == 5 and inter.parent is not None:
            metadata["triggering_interaction_metadata"] = {
                "id": str(inter.parent.id),
                "type": inter.parent.type,
                "user": fake.users[inter.parent.user_id],
                "authorizing_integration_owners": inter.parent.payload.get(
                    "authorizing_integration_owners", {}
                ),
            }
            if inter.parent.type == 3 and inter.parent.source_message_id is not None:
                # Resources → Message → Message Interaction Metadata: a component interaction
                # names the message that held the component (the spec requires it)
                metadata["triggering_interaction_metadata"]["interacted_message_id"] = str(
                    inter.parent.source_message_id
                )
        if followup and inter.original is not None:
            metadata["original_response_message_id"] = str(inter.original.id)
        msg = FakeMessage(
            id=fake.snowflake(),
            channel_id=inter.channel_id,
            guild_id=inter.guild_id,
            author=fake.bot_user,
            content=str(data.get("content") or ""),
            embeds=list(data.get("embeds") or []),
            components=numbered(data.get("components")),
            attachments=attachments,
            flags=flags & (SETTABLE_MESSAGE_FLAGS | FLAG_EPHEMERAL),
            tts=bool(data.get("tts", False)),
            type=MSG_CHAT_INPUT_COMMAND if inter.type == 2 else MSG_DEFAULT,
            webhook_id=fake.application_id,
            application_id=fake.application_id,
            interaction_metadata=metadata,
            interaction_legacy=legacy,
            mentions=fake.parse_mentions(str(data.get("content") or "")),
            poll=data.get("poll"),
            allowed_mentions=data.get("allowed_mentions"),
        )
        if not msg.ephemeral:
            msg.notified = notified_users(msg, data)
        return msg

    @staticmethod
    def _command_path(inter: FakeInteraction) -> str:
        data = inter.data
        parts = [data.get("name", "")]
        options = data.get("options") or []
        while options and options[0].get("type") in (1, 2):
            parts.append(options[0]["name"])
            options = options[0].get("options") or []
        return " ".join(parts)

    def _publish(self, inter: FakeInteraction, msg: FakeMessage) -> None:
        fake = self.fake
        if fake.channel(msg.channel_id) is None:
            raise ApiError(404, 10003)
        fake.store_message(msg)
        if msg.ephemeral:
            inter.ephemeral_messages.append(msg)
        else:
            fake.dispatch_message("MESSAGE_CREATE", msg)

    async def interaction_callback(self, request: web.Request) -> Any:
        fake = self.fake
        try:
            iid = int(request.match_info["interaction_id"])
        except ValueError:
            raise ApiError(404, 10062) from None
        inter = fake.interactions.get(iid)
        if inter is None or inter.token != request.match_info["token"]:
            raise ApiError(404, 10062)
        if time.monotonic() - inter.created_mono > fake.ack_deadline:
            raise ApiError(404, 10062)
        if inter.response_type is not None:
            raise ApiError(400, 40060)
        body = request[JSON_KEY] or {}
        files: list[UploadedFile] = request[FILES_KEY]
        ctype = body.get("type")
        data = body.get("data") or {}
        itype = inter.type
        valid = {
            2: (4, 5, 9),
            3: (4, 5, 6, 7, 9),
            4: (8,),
            5: (4, 5, 6, 7) if inter.source_message_id is not None else (4, 5, 6),
        }.get(itype, ())
        if ctype not in valid:
            raise form_error(
                "type",
                "INTERACTION_RESPONSE_TYPE_INVALID",
                f"Interaction response type {ctype} is not valid here",
            )
        msg: FakeMessage | None = None
        resource: dict[str, Any] = {"type": ctype}
        if ctype == 4:
            msg = self._interaction_message(inter, data, files, followup=False)
            if self._is_empty(msg):
                raise ApiError(400, 50006)
            self._publish(inter, msg)
            inter.original = msg
        elif ctype == 5:
            msg = self._interaction_message(inter, {"flags": int(data.get("flags") or 0)}, [], followup=False)
            msg.flags |= FLAG_LOADING
            self._publish(inter, msg)
            inter.original = msg
        elif ctype == 6:
            if inter.source_message_id is not None:
                inter.original = fake.message_index.get(inter.source_message_id)
        elif ctype == 7:
            target = fake.message_index.get(inter.source_message_id or 0)
            if target is None or target.deleted:
                raise ApiError(404, 10008)
            self._apply_edit(target, data, files)
            fake.dispatch_message("MESSAGE_UPDATE", target)
            inter.original = msg = target
        elif ctype == 8:
            choices = data.get("choices")
            if not isinstance(choices, list):
                raise form_error("data.choices", "BASE_TYPE_REQUIRED", "This field is required")
            if len(choices) > 25:
                raise max_length_error("data.choices", 25)
            inter.autocomplete_choices = choices
        elif ctype == 9:
            self._validate_modal(data)
            inter.modal = data
        inter.callbacks.append(body)
        inter.response_type = ctype
        inter.acked_at = time.time()
        # Receiving and Responding -> "Interaction Callback Response Object": the resource's
        # ``message`` is present only for types 4 (CHANNEL_MESSAGE_WITH_SOURCE) and 7
        # (UPDATE_MESSAGE); after a deferral (5, 6) the message is read with GET @original. The
        # published OpenAPI spec lists resources only for types 4, 7 and 12, so other types carry
        # no resource at all (both readings agree on that).
        answer: dict[str, Any] = {
            "interaction": {
                "id": str(inter.id),
                "type": itype,
                "response_message_loading": ctype == 5,
                "response_message_ephemeral": bool(msg is not None and msg.ephemeral),
            },
        }
        if msg is not None:
            answer["interaction"]["response_message_id"] = str(msg.id)
        if ctype in (4, 7) and msg is not None:
            resource["message"] = fake.message_payload(msg)
            answer["resource"] = resource
        return answer

    def _validate_modal(self, data: dict[str, Any]) -> None:
        cid = data.get("custom_id") or ""
        if not 1 <= len(cid) <= 100:
            raise form_error("data.custom_id", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
        if not 1 <= len(data.get("title") or "") <= 45:
            raise form_error("data.title", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 45 in length.")
        components = data.get("components") or []
        if not 1 <= len(components) <= 5:
            raise form_error("data.components", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 5 in length.")

    def _webhook_interaction(self, request: web.Request) -> FakeInteraction:
        fake = self.fake
        try:
            app_id = int(request.match_info["app_id"])
        except ValueError:
            raise ApiError(404, 10015) from None
        if app_id != fake.application_id:
            raise ApiError(404, 10015)
        inter = fake.interactions_by_token.get(request.match_info["token"])
        if inter is None or time.monotonic() - inter.created_mono > fake.token_lifetime:
            raise ApiError(401, 50027)
        if inter.response_type is None:
            raise ApiError(404, 10015)
        return inter

    def _webhook_message(self, inter: FakeInteraction, request: web.Request) -> FakeMessage:
        key = request.match_info["message_id"]
        if key == "@original":
            msg = inter.original
        else:
            try:
                mid = int(key)
            except ValueError:
                raise ApiError(404, 10008) from None
            msg = next((m for m in inter.messages() if m.id == mid), None)
        if msg is None or msg.deleted:
            raise ApiError(404, 10008)
        return msg

    async def followup(self, request: web.Request) -> Any:
        fake = self.fake
        inter = self._webhook_interaction(request)
        body = request[JSON_KEY] or {}
        files: list[UploadedFile] = request[FILES_KEY]
        original = inter.original
        if original is not None and original.loading and not original.deleted and inter.response_type == 5:
            # the first followup after a "thinking" defer replaces the loading message
            data = dict(body)
            data.pop("flags", None)
            self._apply_edit(original, data, files)
            fake.dispatch_message("MESSAGE_UPDATE", original)
            inter.followups.append(original)
            msg = original
        else:
            msg = self._interaction_message(inter, body, files, followup=True)
            if self._is_empty(msg):
                raise ApiError(400, 50006)
            self._publish(inter, msg)
            inter.followups.append(msg)
        if request.query.get("wait") not in ("1", "true", "True"):
            return None
        return fake.message_payload(msg)

    async def get_webhook_message(self, request: web.Request) -> Any:
        inter = self._webhook_interaction(request)
        return self.fake.message_payload(self._webhook_message(inter, request))

    async def edit_webhook_message(self, request: web.Request) -> Any:
        fake = self.fake
        inter = self._webhook_interaction(request)
        msg = self._webhook_message(inter, request)
        body = request[JSON_KEY] or {}
        self._check_thread_open(msg.channel_id, "edit")
        self._apply_edit(msg, body, request[FILES_KEY])
        fake.dispatch_message("MESSAGE_UPDATE", msg)
        return fake.message_payload(msg)

    async def delete_webhook_message(self, request: web.Request) -> Any:
        inter = self._webhook_interaction(request)
        msg = self._webhook_message(inter, request)
        self._check_thread_open(msg.channel_id, "delete")
        msg.deleted = True
        self.fake.dispatch_message_delete(msg)
        return None

    # ------------------------------------------------------------------------------------------
    # CDN
    # ------------------------------------------------------------------------------------------
    async def get_attachment_data(self, request: web.Request) -> web.StreamResponse:
        try:
            att = self.fake.attachments.get(int(request.match_info["attachment_id"]))
        except ValueError:
            att = None
        if att is None or att.filename != request.match_info["filename"]:
            return web.Response(status=404, text="not found")
        self.fake.downloads.append(att.id)
        return web.Response(body=att.data, content_type=att.content_type or "application/octet-stream")
