"""A small JSON control API (``/_control/...``) to drive a standalone fake from another process.

Meant for black-box tests of ``python -m bot``: start ``python -m tests.fakes.discord_server
--port 0``, read the ``READY <api_base> <gateway_url>`` line, point the bot at it, then:

========================================  ===================================================
``GET  /_control/state``                  ids: application, bot, guild, channels, roles, users,
                                          ``guilds`` (every guild with its channels)
``POST /_control/guilds``                 ``{"name"?, "shard"?: [id, count], "premium_tier"?}``
                                          → the new guild (as in ``guilds``)
``POST /_control/users``                  ``{"name", "roles"?, "permissions"?, "locale"?,
                                          "guild_id"?}`` → user
``POST /_control/slash``                  ``{"user_id", "channel_id", "name", "options"?,
                                          "attachments"?: {opt: [filename, base64, type]}}``
``POST /_control/click``                  ``{"user_id", "message_id", "custom_id", "values"?}``
``POST /_control/modal``                  ``{"user_id", "interaction_id", "values"}``
``POST /_control/say``                    ``{"user_id", "channel_id", "content", "reply_to"?,
                                          "attachments"?: [[filename, base64, type]],
                                          "mention_bot"?}``
``GET  /_control/interactions/{id}``      what the bot answered (callbacks, messages, errors)
``GET  /_control/messages/{channel_id}``  the transcript (``deleted``/``edits`` included)
``GET  /_control/threads``                thread payloads
``GET  /_control/requests``               the request log (method, path, status, json)
``POST /_control/deny``                   ``{"channel_id", "permission"}``
``POST /_control/lock_thread``            ``{"thread_id", "locked"?}``
``POST /_control/fail_next``              ``{"method", "path_regex", "status", "code"?, ...}``
``POST /_control/outage``                 ``{"method", "path_regex", "seconds", "status"?,
                                          "drop"?}``
``POST /_control/drop_gateway``           ``{"resume"?: true}``
========================================  ===================================================

Interaction and message ids are strings, as in Discord payloads.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .discord_models import FakeGuild, FakeInteraction, FakeMessage

if TYPE_CHECKING:
    from .discord_server import FakeDiscord


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(data).encode(), status=status, headers={"Content-Type": "application/json"}
    )


def message_json(fake: FakeDiscord, msg: FakeMessage) -> dict[str, Any]:
    payload = fake.message_payload(msg)
    payload["deleted"] = msg.deleted
    payload["edits"] = len(msg.edits)
    return payload


def guild_json(guild: FakeGuild) -> dict[str, Any]:
    return {
        "id": str(guild.id),
        "name": guild.name,
        "text_channel_id": str(guild.text_channel_id),
        "other_channel_id": str(guild.other_channel_id),
        "forum_channel_id": str(guild.forum_channel_id),
        "moderator_role_id": str(guild.moderator_role_id),
        "premium_tier": guild.premium_tier,
    }


def interaction_json(fake: FakeDiscord, inter: FakeInteraction) -> dict[str, Any]:
    return {
        "id": str(inter.id),
        "type": inter.type,
        "response_type": inter.response_type,
        "callbacks": inter.callbacks,
        "errors": inter.errors,
        "acked_at": inter.acked_at,
        "original": None if inter.original is None else message_json(fake, inter.original),
        "followups": [message_json(fake, m) for m in inter.followups],
        "ephemeral_messages": [message_json(fake, m) for m in inter.ephemeral_messages],
        "modal": inter.modal,
        "autocomplete_choices": inter.autocomplete_choices,
    }


def add_control_routes(fake: FakeDiscord, app: web.Application) -> None:
    """Register the ``/_control`` endpoints for ``fake`` on ``app``."""

    def wrap(
        fn: Callable[[web.Request], Awaitable[Any]],
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            try:
                return _json(await fn(request))
            except Exception as exc:  # report, don't crash the fake
                return _json({"error": f"{type(exc).__name__}: {exc}"}, 400)

        return handler

    async def body(request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        return json.loads(raw) if raw else {}

    def files(items: list[list[str]]) -> list[tuple[str, bytes, str]]:
        return [(name, base64.b64decode(data), ctype) for name, data, ctype in items]

    async def state(request: web.Request) -> Any:
        return {
            "api_base": fake.api_base,
            "gateway_url": fake.gateway_url,
            "application_id": str(fake.application_id),
            "bot_user": fake.bot_user,
            "guild_id": str(fake.guild_id),
            "text_channel_id": str(fake.text_channel_id),
            "other_channel_id": str(fake.other_channel_id),
            "forum_channel_id": str(fake.forum_channel_id),
            "moderator_role_id": str(fake.moderator_role_id),
            "guilds": [guild_json(g) for g in fake.guilds.values()],
            "users": list(fake.users.values()),
            "connected": fake.connected,
            "commands": {str(k): v for k, v in fake.commands.items()},
            "command_syncs": fake.command_syncs,
        }

    async def guilds(request: web.Request) -> Any:
        b = await body(request)
        shard = b.get("shard")
        guild = fake.add_guild(
            b.get("name", "Other Guild"),
            shard=(int(shard[0]), int(shard[1])) if shard else None,
            premium_tier=int(b.get("premium_tier", 0)),
        )
        return guild_json(guild)

    async def users(request: web.Request) -> Any:
        b = await body(request)
        return fake.add_user(
            b["name"],
            roles=[int(r) for r in b.get("roles", [])],
            permissions=b.get("permissions"),
            locale=b.get("locale", "en-US"),
            guild_id=int(b["guild_id"]) if b.get("guild_id") else None,
        )

    async def slash(request: web.Request) -> Any:
        b = await body(request)
        atts = {k: (v[0], base64.b64decode(v[1]), v[2]) for k, v in (b.get("attachments") or {}).items()}
        inter = await fake.slash(
            int(b["user_id"]),
            int(b["channel_id"]),
            b["name"],
            b.get("options"),
            attachments=atts or None,
            locale=b.get("locale"),
        )
        return interaction_json(fake, inter)

    async def click(request: web.Request) -> Any:
        b = await body(request)
        inter = await fake.click(
            int(b["user_id"]), int(b["message_id"]), b["custom_id"], values=b.get("values")
        )
        return interaction_json(fake, inter)

    async def modal(request: web.Request) -> Any:
        b = await body(request)
        parent = fake.interactions[int(b["interaction_id"])]
        inter = await fake.submit_modal(int(b["user_id"]), parent, b.get("values", {}))
        return interaction_json(fake, inter)

    async def say(request: web.Request) -> Any:
        b = await body(request)
        return await fake.say(
            int(b["user_id"]),
            int(b["channel_id"]),
            b.get("content", ""),
            reply_to=int(b["reply_to"]) if b.get("reply_to") else None,
            attachments=files(b.get("attachments") or []),
            mention_bot=bool(b.get("mention_bot")),
        )

    async def get_interaction(request: web.Request) -> Any:
        return interaction_json(fake, fake.interactions[int(request.match_info["id"])])

    async def get_messages(request: web.Request) -> Any:
        return [message_json(fake, m) for m in fake.messages(int(request.match_info["channel_id"]))]

    async def get_threads(request: web.Request) -> Any:
        return list(fake.threads.values())

    async def get_requests(request: web.Request) -> Any:
        return [
            {
                "method": r.method,
                "path": r.path,
                "status": r.status,
                "json": r.json,
                "files": [f.filename for f in r.files],
                "time": r.time,
            }
            for r in fake.request_log
        ]

    async def deny(request: web.Request) -> Any:
        b = await body(request)
        fake.deny(int(b["channel_id"]), b["permission"])
        return {"ok": True}

    async def lock(request: web.Request) -> Any:
        b = await body(request)
        fake.lock_thread(int(b["thread_id"]), bool(b.get("locked", True)))
        return {"ok": True}

    async def fail_next(request: web.Request) -> Any:
        b = await body(request)
        fake.fail_next(
            b["method"],
            b["path_regex"],
            int(b["status"]),
            code=int(b.get("code", 0)),
            message=b.get("message", ""),
            retry_after=b.get("retry_after"),
            times=int(b.get("times", 1)),
        )
        return {"ok": True}

    async def outage(request: web.Request) -> Any:
        b = await body(request)
        fake.outage(b["method"], b["path_regex"], float(b["seconds"]),
                    status=int(b.get("status", 503)), drop=bool(b.get("drop")))
        return {"ok": True}

    async def drop(request: web.Request) -> Any:
        b = await body(request)
        await fake.drop_gateway(resume=bool(b.get("resume", True)))
        return {"ok": True}

    r = app.router
    r.add_get("/_control/state", wrap(state))
    r.add_post("/_control/guilds", wrap(guilds))
    r.add_post("/_control/users", wrap(users))
    r.add_post("/_control/slash", wrap(slash))
    r.add_post("/_control/click", wrap(click))
    r.add_post("/_control/modal", wrap(modal))
    r.add_post("/_control/say", wrap(say))
    r.add_get("/_control/interactions/{id}", wrap(get_interaction))
    r.add_get("/_control/messages/{channel_id}", wrap(get_messages))
    r.add_get("/_control/threads", wrap(get_threads))
    r.add_get("/_control/requests", wrap(get_requests))
    r.add_post("/_control/deny", wrap(deny))
    r.add_post("/_control/lock_thread", wrap(lock))
    r.add_post("/_control/fail_next", wrap(fail_next))
    r.add_post("/_control/outage", wrap(outage))
    r.add_post("/_control/drop_gateway", wrap(drop))
