"""The fake Discord gateway: sessions, IDENTIFY/RESUME, dispatch with sequence numbers.

Frames are plain TEXT JSON (discord.py asks for ``compress=zlib-stream`` but only inflates
BINARY frames). Each IDENTIFY opens a :class:`GatewaySession`; every dispatch is buffered in
the session so that a RESUME (op 6) replays what the client missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from .discord_models import (
    INTENT_DIRECT_MESSAGE_REACTIONS,
    INTENT_DIRECT_MESSAGES,
    INTENT_GUILD_MEMBERS,
    INTENT_GUILD_MESSAGE_REACTIONS,
    INTENT_GUILD_MESSAGES,
    INTENT_GUILDS,
    INTENT_MESSAGE_CONTENT,
)

if TYPE_CHECKING:
    from .discord_server import FakeDiscord

log = logging.getLogger("fake_discord.gateway")

OP_DISPATCH = 0
OP_HEARTBEAT = 1
OP_IDENTIFY = 2
OP_PRESENCE = 3
OP_VOICE_STATE = 4
OP_RESUME = 6
OP_RECONNECT = 7
OP_REQUEST_MEMBERS = 8
OP_INVALID_SESSION = 9
OP_HELLO = 10
OP_HEARTBEAT_ACK = 11

BUFFER_LIMIT = 2000

# event name -> (intent needed for guild events, intent needed for DM events); None = always
_GUILD_EVENTS = {
    "GUILD_CREATE": INTENT_GUILDS,
    "GUILD_UPDATE": INTENT_GUILDS,
    "GUILD_ROLE_CREATE": INTENT_GUILDS,
    "CHANNEL_CREATE": INTENT_GUILDS,
    "CHANNEL_UPDATE": INTENT_GUILDS,
    "CHANNEL_DELETE": INTENT_GUILDS,
    "THREAD_CREATE": INTENT_GUILDS,
    "THREAD_UPDATE": INTENT_GUILDS,
    "THREAD_DELETE": INTENT_GUILDS,
    "GUILD_MEMBER_ADD": INTENT_GUILD_MEMBERS,
    "GUILD_MEMBER_UPDATE": INTENT_GUILD_MEMBERS,
    "MESSAGE_CREATE": INTENT_GUILD_MESSAGES,
    "MESSAGE_UPDATE": INTENT_GUILD_MESSAGES,
    "MESSAGE_DELETE": INTENT_GUILD_MESSAGES,
    "MESSAGE_REACTION_ADD": INTENT_GUILD_MESSAGE_REACTIONS,
    "MESSAGE_REACTION_REMOVE": INTENT_GUILD_MESSAGE_REACTIONS,
}
_DM_EVENTS = {
    "MESSAGE_CREATE": INTENT_DIRECT_MESSAGES,
    "MESSAGE_UPDATE": INTENT_DIRECT_MESSAGES,
    "MESSAGE_DELETE": INTENT_DIRECT_MESSAGES,
    "MESSAGE_REACTION_ADD": INTENT_DIRECT_MESSAGE_REACTIONS,
    "MESSAGE_REACTION_REMOVE": INTENT_DIRECT_MESSAGE_REACTIONS,
}

# A payload factory gets the session (for intents) and returns the event data, or None to skip.
PayloadFactory = Callable[["GatewaySession"], dict[str, Any] | None]


@dataclass
class GatewaySession:
    """One IDENTIFYed gateway session (one shard of one bot process)."""

    session_id: str
    intents: int
    shard_id: int
    shard_count: int
    identify: dict[str, Any]
    seq: int = 0
    buffer: list[tuple[int, str]] = field(default_factory=list)  # (seq, frame JSON)
    events: list[str] = field(default_factory=list)  # names of the dispatched events, in order
    # every dispatch frame, unbounded (the buffer is not): held to discord-api-types' gateway
    # types at the end of each e2e test (tests/contract/discord_gateway.py)
    sent: list[str] = field(default_factory=list)
    ws: web.WebSocketResponse | None = None
    queue: asyncio.Queue[str | None] | None = None
    alive: bool = True  # False once the session can no longer be resumed
    resumes: int = 0
    created: float = 0.0

    @property
    def connected(self) -> bool:
        return self.queue is not None

    @property
    def has_message_content(self) -> bool:
        return bool(self.intents & INTENT_MESSAGE_CONTENT)

    def wants(self, event: str, guild_id: int | None) -> bool:
        if guild_id is None:
            needed = _DM_EVENTS.get(event)
            return needed is None or bool(self.intents & needed)
        if not self.owns(guild_id):
            return False
        needed = _GUILD_EVENTS.get(event)
        return needed is None or bool(self.intents & needed)

    def owns(self, guild_id: int | None) -> bool:
        """Whether this shard receives the guild's events. Topics → Gateway → Sharding:
        ``shard_id = (guild_id >> 22) % num_shards``, and only shard 0 receives DMs."""
        if guild_id is None:
            return self.shard_id == 0
        return (guild_id >> 22) % self.shard_count == self.shard_id

    def push(self, event: str, data: dict[str, Any]) -> None:
        self.seq += 1
        # serialised now: later changes to the fake's state must not leak into this event
        text = json.dumps({"op": OP_DISPATCH, "t": event, "s": self.seq, "d": data})
        self.buffer.append((self.seq, text))
        self.events.append(event)
        self.sent.append(text)
        if len(self.buffer) > BUFFER_LIMIT:
            del self.buffer[: len(self.buffer) - BUFFER_LIMIT]
        if self.queue is not None:
            self.queue.put_nowait(text)


class Gateway:
    """The websocket side of :class:`FakeDiscord`."""

    def __init__(self, fake: FakeDiscord, *, heartbeat_interval_ms: int, heartbeat_ack_delay: float) -> None:
        self.fake = fake
        self.heartbeat_interval_ms = heartbeat_interval_ms
        # discord.py's heartbeat thread records the send time only after the loop has sent the
        # beat; an instant ACK can be processed first and is then logged as ~interval seconds
        # late ("Can't keep up"). Real Discord answers after a network round trip, so do we.
        self.heartbeat_ack_delay = heartbeat_ack_delay
        self.sessions: list[GatewaySession] = []
        self.open = asyncio.Event()
        self.open.set()
        self.connections = 0
        self.resumed_count = 0
        self.invalidated_count = 0
        self.presence_updates: list[dict[str, Any]] = []
        self._sockets: set[web.WebSocketResponse] = set()
        self._server_closed: set[web.WebSocketResponse] = set()
        self._invalidate_on_resume = False

    # -- dispatch -----------------------------------------------------------------------------
    def live_sessions(self) -> list[GatewaySession]:
        return [s for s in self.sessions if s.alive]

    def dispatch(self, event: str, factory: PayloadFactory, *, guild_id: int | None) -> int:
        """Send ``event`` to every live session that wants it; returns how many got it."""
        count = 0
        for session in self.live_sessions():
            if not session.wants(event, guild_id):
                continue
            data = factory(session)
            if data is None:
                continue
            session.push(event, data)
            count += 1
        return count

    def dispatch_one(self, event: str, data: dict[str, Any], *, guild_id: int | None) -> bool:
        """Send ``event`` to a single session (the newest live one of the owning shard)."""
        candidates = [s for s in self.live_sessions() if s.owns(guild_id)]
        if not candidates:
            return False
        candidates[-1].push(event, data)
        return True

    def current_intents(self) -> int | None:
        live = self.live_sessions()
        return live[-1].intents if live else None

    # -- control --------------------------------------------------------------------------------
    async def drop(self, *, resume: bool = True, hold: bool = False, code: int = 4000) -> None:
        """Close every socket; the client RESUMEs (or, with ``resume=False``, is refused)."""
        if hold:
            self.open.clear()
        if not resume:
            self._invalidate_on_resume = True
        for ws in list(self._sockets):
            self._server_closed.add(ws)
            with contextlib.suppress(Exception):
                await ws.close(code=code, message=b"dropped by test")
        for session in self.sessions:
            self._detach(session)

    def release(self) -> None:
        self.open.set()

    async def send_reconnect(self) -> None:
        """op 7 RECONNECT on every socket."""
        for session in self.live_sessions():
            if session.queue is not None:
                session.queue.put_nowait(json.dumps({"op": OP_RECONNECT, "d": None, "s": None, "t": None}))

    async def close_all(self) -> None:
        self.open.set()
        for ws in list(self._sockets):
            with contextlib.suppress(Exception):
                await ws.close(code=1001, message=b"server shutting down")

    # -- websocket handler ----------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=True, max_msg_size=0)
        await ws.prepare(request)
        self._sockets.add(ws)
        self.connections += 1
        session: GatewaySession | None = None
        writer: asyncio.Task[None] | None = None
        closed_by_client_cleanly = False
        acks: set[asyncio.Task[None]] = set()
        try:
            await self.open.wait()
            await ws.send_str(
                json.dumps(
                    {
                        "op": OP_HELLO,
                        "d": {"heartbeat_interval": self.heartbeat_interval_ms},
                        "s": None,
                        "t": None,
                    }
                )
            )
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    if msg.type is WSMsgType.BINARY:
                        await ws.close(code=4002, message=b"Error while decoding payload")
                    break
                try:
                    frame = json.loads(msg.data)
                    op = frame["op"]
                except (ValueError, KeyError, TypeError):
                    await ws.close(code=4002, message=b"Error while decoding payload")
                    break
                data = frame.get("d")
                if op == OP_HEARTBEAT:
                    ack = asyncio.create_task(self._ack_later(ws))
                    acks.add(ack)
                    ack.add_done_callback(acks.discard)
                elif op == OP_IDENTIFY:
                    if session is not None:
                        await ws.close(code=4005, message=b"Already authenticated")
                        break
                    session = await self._identify(ws, data or {})
                    if session is None:
                        break
                    writer = asyncio.create_task(self._writer(ws, session))
                elif op == OP_RESUME:
                    if session is not None:
                        await ws.close(code=4005, message=b"Already authenticated")
                        break
                    session = self._resume(ws, data or {})
                    if session is None:
                        self.invalidated_count += 1
                        await ws.send_str(
                            json.dumps({"op": OP_INVALID_SESSION, "d": False, "s": None, "t": None})
                        )
                        continue
                    writer = asyncio.create_task(self._writer(ws, session))
                elif session is None:
                    await ws.close(code=4003, message=b"Not authenticated")
                    break
                elif op == OP_PRESENCE:
                    self.presence_updates.append(data or {})
                elif op == OP_REQUEST_MEMBERS:
                    self._request_members(session, data or {})
                elif op == OP_VOICE_STATE:
                    pass
                else:
                    await ws.close(code=4001, message=b"Unknown opcode")
                    break
            closed_by_client_cleanly = ws.close_code in (1000, 1001) and ws not in self._server_closed
        finally:
            self._sockets.discard(ws)
            self._server_closed.discard(ws)
            for pending in list(acks):
                pending.cancel()
            if writer is not None:
                writer.cancel()
                with contextlib.suppress(BaseException):
                    await writer
            if session is not None and session.ws is ws:
                self._detach(session)
                if closed_by_client_cleanly:
                    # a client that closes with 1000/1001 ends its session (as Discord does)
                    session.alive = False
        return ws

    async def _ack_later(self, ws: web.WebSocketResponse) -> None:
        if self.heartbeat_ack_delay:
            await asyncio.sleep(self.heartbeat_ack_delay)
        with contextlib.suppress(Exception):
            await ws.send_str(json.dumps({"op": OP_HEARTBEAT_ACK, "d": None, "s": None, "t": None}))

    async def _writer(self, ws: web.WebSocketResponse, session: GatewaySession) -> None:
        queue = session.queue
        assert queue is not None
        while True:
            frame = await queue.get()
            if frame is None:
                return
            try:
                await ws.send_str(frame)
            except Exception:
                return

    def _attach(self, session: GatewaySession, ws: web.WebSocketResponse) -> None:
        session.ws = ws
        session.queue = asyncio.Queue()

    def _detach(self, session: GatewaySession) -> None:
        if session.queue is not None:
            session.queue.put_nowait(None)
        session.queue = None
        session.ws = None

    async def _identify(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> GatewaySession | None:
        fake = self.fake
        self.fake.identify_payloads.append(data)
        if not data.get("token") or not fake.token_accepted:
            # docs: Topics -> Opcodes and Status Codes -> Gateway Close Event Codes, 4004
            await ws.close(code=4004, message=b"Authentication failed")
            return None
        intents = data.get("intents")
        if not isinstance(intents, int):
            await ws.close(code=4013, message=b"Invalid intent(s)")
            return None
        # docs: Topics -> Gateway -> Privileged Intents (MESSAGE_CONTENT is 1 << 15) and Gateway
        # Close Event Codes 4014 "Disallowed intent(s)": the intent is not enabled (or, for a
        # verified app, not approved) for this application in the Developer Portal.
        if intents & INTENT_MESSAGE_CONTENT and not fake.message_content_intent_allowed:
            await ws.close(code=4014, message=b"Disallowed intent(s)")
            return None
        shard = data.get("shard") or [0, 1]
        shard_id, shard_count = int(shard[0]), int(shard[1])
        if shard_count < 1 or not 0 <= shard_id < shard_count:
            await ws.close(code=4010, message=b"Invalid shard")
            return None
        self._invalidate_on_resume = False
        session = GatewaySession(
            session_id=secrets.token_hex(16),
            intents=intents,
            shard_id=shard_id,
            shard_count=shard_count,
            identify=data,
            created=asyncio.get_running_loop().time(),
        )
        self.sessions.append(session)
        self._attach(session, ws)
        guild_ids = [g for g in fake.guilds if session.owns(g)]
        ready: dict[str, Any] = {
            "v": 10,
            "user": fake.bot_user,
            "user_settings": {},
            "guilds": [{"id": str(g), "unavailable": True} for g in guild_ids],
            "session_id": session.session_id,
            "session_type": "normal",
            "resume_gateway_url": fake.gateway_url,
            "relationships": [],
            "private_channels": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": [],
            "auth": {},
            # discord-api-types gateway/v10 GatewayReadyDispatchData.application:
            # Pick<APIApplication, 'flags_new' | 'flags' | 'id'>, flags_new the flags as a string
            "application": {"id": str(fake.application_id), "flags": fake.application_flags,
                            "flags_new": str(fake.application_flags)},
            "_trace": ["fake-discord"],
        }
        if "shard" in data:
            ready["shard"] = [shard_id, shard_count]
        session.push("READY", ready)
        if intents & INTENT_GUILDS:
            for guild_id in guild_ids:
                session.push("GUILD_CREATE", fake.guild_create_payload(guild_id))
        return session

    def _resume(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> GatewaySession | None:
        if self._invalidate_on_resume:
            for s in self.sessions:
                s.alive = False
            self._invalidate_on_resume = False
            return None
        session = next(
            (s for s in self.sessions if s.session_id == data.get("session_id") and s.alive),
            None,
        )
        if session is None or session.connected:
            return None
        seq = data.get("seq") or 0
        if session.buffer and session.buffer[0][0] > seq + 1:
            return None  # too far behind: the buffer no longer holds what was missed
        self._attach(session, ws)
        assert session.queue is not None
        for frame_seq, text in session.buffer:
            if frame_seq > seq:
                session.queue.put_nowait(text)
        session.resumes += 1
        self.resumed_count += 1
        session.push("RESUMED", {"_trace": ["fake-discord"]})
        return session

    def _request_members(self, session: GatewaySession, data: dict[str, Any]) -> None:
        fake = self.fake
        guild_id = int(data.get("guild_id", 0))
        if guild_id not in fake.guilds or not session.owns(guild_id):
            return
        user_ids = {int(u) for u in data.get("user_ids") or []}
        query = (data.get("query") or "").lower()
        limit = int(data.get("limit") or 0)
        members = []
        for member in fake.member_payloads(guild_id):
            uid = int(member["user"]["id"])
            if user_ids and uid not in user_ids:
                continue
            if query and not member["user"]["username"].lower().startswith(query):
                continue
            members.append(member)
        if limit:
            members = members[:limit]
        payload: dict[str, Any] = {
            "guild_id": str(guild_id),
            "members": members,
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": [],
        }
        if data.get("nonce"):
            payload["nonce"] = data["nonce"]
        session.push("GUILD_MEMBERS_CHUNK", payload)
