"""The gate: the one admission step every action that can cost money passes, and whose access
half every action that changes a conversation passes.

It decides in one place, in this order: DM policy, server access (channels, roles, blocks), the
conversation's refine rule, attachments (count and declared size, before any download), room in
the queue, daily images, and the spend caps, with a reservation billed to the right key (the
server's own or the operator's). The counted half (queue, images, caps) is `Admission`'s
arithmetic, held under its locks until the turn is recorded.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bot.core.accounts import Accounts
from bot.core.admission import Hold
from bot.core.errors import ErrorKind, UserFacingError
from bot.core.imaging import megabytes
from bot.core.models import Conversation, Turn
from bot.core.options import ImageOptions
from bot.core.policy import Actor, Ceilings, EffectivePolicy, GuildPolicy, check_dm_access
from bot.core.ports import Members
from bot.store.protocol import Store

# how long a process of a fleet keeps a server's settings before reading them again
FLEET_POLICY_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class Declared:
    """An attached file as its message declares it, before anything is downloaded."""

    name: str
    size: int
    content_type: str | None = None


@dataclass(frozen=True, slots=True)
class Place:
    """Where an interaction came from: its server (None: a DM) and its channel (a thread's own
    id)."""

    guild_id: int | None
    channel_id: int | None


class Policies:
    """Servers' settings as the gate reads them, kept in memory: for good by a process alone
    (it writes every change it reads), for `fleet_seconds` by a process of a fleet (another
    process may change them), which is how long a change takes to reach the whole fleet."""

    def __init__(self, store: Store, ceilings: Ceilings, *, shared: bool = False,
                 fleet_seconds: float = FLEET_POLICY_SECONDS) -> None:
        self.store = store
        self.ceilings = ceilings
        self.shared = shared
        self.fleet_seconds = fleet_seconds
        self._kept: dict[int, tuple[float, GuildPolicy]] = {}  # (read at, policy)

    async def policy_for(self, guild_id: int | None,
                         channel_id: int | None = None) -> EffectivePolicy:
        """A server's policy with the rules of `channel_id` (a thread's parent channel) on top."""
        if not guild_id:
            return EffectivePolicy(GuildPolicy.from_dict({}), self.ceilings)
        kept = self._kept.get(guild_id)
        now = time.monotonic()
        if kept is None or (self.shared and now - kept[0] > self.fleet_seconds):
            kept = (now, GuildPolicy.from_dict(await self.store.guild_settings.get(guild_id)))
            self._kept[guild_id] = kept
        return EffectivePolicy(kept[1], self.ceilings, kept[1].rules_for(channel_id))

    async def guild_settings(self, guild_id: int) -> dict[str, Any]:
        """A server's stored settings, as saved (only what was set)."""
        return await self.store.guild_settings.get(guild_id)

    async def update_policy(self, guild_id: int, **changes: object) -> GuildPolicy:
        current = await self.store.guild_settings.get(guild_id)
        current.update({k: v for k, v in changes.items()})
        policy = GuildPolicy.from_dict({k: v for k, v in current.items() if v is not None})
        await self.store.guild_settings.put(guild_id, policy.to_dict())
        self._kept.pop(guild_id, None)
        return policy

    async def every_server(self) -> dict[int, GuildPolicy]:
        settings = await self.store.guild_settings.all()
        return {g: GuildPolicy.from_dict(data) for g, data in settings.items()}


class Gate:
    """Admission of paid actions, and the access and ownership checks of conversation changes."""

    def __init__(
        self,
        store: Store,
        policies: Policies,
        accounts: Accounts,
        *,
        members: Members,
        max_prompt_chars: int = 4000,
        max_input_images: int = 4,
        max_attachment_bytes: int = 20 * 1024 * 1024,
    ) -> None:
        self.store = store
        self.policies = policies
        self.accounts = accounts
        self.ceilings = policies.ceilings
        self.members = members
        self.max_prompt_chars = max_prompt_chars
        self.max_input_images = max_input_images
        self.max_attachment_bytes = max_attachment_bytes

    async def policy_for(self, guild_id: int | None,
                         channel_id: int | None = None) -> EffectivePolicy:
        return await self.policies.policy_for(guild_id, channel_id)

    # ------------------------------------------------------------------ direct messages
    @property
    def dms_allowed(self) -> bool:
        return self.ceilings.allow_dms

    async def dm_servers_to_check(self, user_id: int) -> list[int]:
        """Servers whose membership would let `user_id` generate in DMs (empty when no check
        is needed: DMs off, or the user is allowed by id)."""
        if not self.ceilings.allow_dms or user_id in self.ceilings.dm_allowed_users:
            return []
        settings = await self.store.guild_settings.all()
        return [g for g, data in settings.items() if data.get("allow_member_dms")]

    async def dm_actor(self, user_id: int) -> Actor:
        """A DM user, with the first server (of those allowing member DMs) they belong to."""
        for guild_id in await self.dm_servers_to_check(user_id):
            if await self.members.is_member(guild_id, user_id):
                return Actor(user_id=user_id, guild_id=None, channel_id=None,
                             member_of=(guild_id,))
        return Actor(user_id=user_id, guild_id=None, channel_id=None)

    # ------------------------------------------------------------------ access
    async def may_use(self, actor: Actor) -> None:
        """Raise `not_allowed` unless `actor` may generate here at all (access only)."""
        if actor.guild_id is None:
            check_dm_access(self.ceilings, actor, await self.policies.every_server())
        policy = await self.policy_for(actor.guild_id, actor.channel_id)
        policy.check_access(actor)

    async def check_refine(self, actor: Actor, conversation: Conversation | None) -> None:
        """The conversation's refine rule: in a starter-only server, only its starter (or a
        moderator) continues it."""
        if conversation is not None:
            policy = await self.policy_for(conversation.guild_id, conversation.parent_channel_id)
            policy.check_refine(actor, conversation.owner_id)

    async def still_allowed(self, turn: Turn, conversation: Conversation | None) -> None:
        """Before a waiting turn starts: may its author still generate there? Asks Discord for
        the member as they are now (a role may have been removed while the turn waited)."""
        if turn.guild_id is None:
            await self.may_use(await self.dm_actor(turn.author_id))
            return
        if conversation is None:
            return  # nothing to check against; the turn was admitted
        policy = await self.policy_for(turn.guild_id, conversation.parent_channel_id)
        if policy.policy.is_blocked(turn.author_id):
            raise UserFacingError(ErrorKind.not_allowed, reason="blocked")
        if not policy.restricts_access:
            return  # nothing else can have changed: no need to ask Discord
        try:
            actor = await self.members.actor_now(
                turn.guild_id, turn.author_id, conversation.parent_channel_id or turn.conversation_id)
        except LookupError:
            return
        if actor is None:
            raise UserFacingError(ErrorKind.not_allowed, reason="role")  # left the server
        policy.check_access(actor)

    # ------------------------------------------------------------------ admission
    async def admit(
        self, actor: Actor, options: ImageOptions | None = None, *, prompt: str = "",
        attachments: Sequence[Declared] = (), context_image: bool = False,
        conversation: Conversation | None = None,
    ) -> Hold:
        """Admit a paid action before anything is created or downloaded, in this order: DM
        policy and server access, the refine rule of the `conversation` it continues (None: a
        new one), the attachments (count, declared size and type), the options against the
        server's ceilings, then room in the queue, daily images and the spend caps, holding its
        worst-case cost (billed to the right key) until the turn is recorded (pass the hold to
        `submit`) or `release_hold` drops it."""
        await self.may_use(actor)
        await self.check_refine(actor, conversation)
        self.check_attachments(attachments)
        policy = await self.policy_for(actor.guild_id, actor.channel_id)
        chosen = policy.clamp((options or ImageOptions()).merged_over(policy.defaults()))
        amount = self.accounts.prices.reservation(
            chosen, prompt_chars=len(prompt), input_images=len(attachments) + int(context_image))
        own_key = await self.accounts.own_key(actor.guild_id)
        admission = self.accounts.admission
        async with admission.scope(policy, actor, own_key=own_key):
            return await admission.hold(policy, actor, amount, own_key=own_key)

    def check_attachments(self, attachments: Sequence[Declared]) -> None:
        """Refuse attachments from what their message declares (before any download)."""
        if len(attachments) > self.max_input_images:
            raise UserFacingError(ErrorKind.too_many_images, limit=self.max_input_images)
        for declared in attachments:
            if declared.size > self.max_attachment_bytes:
                raise UserFacingError(ErrorKind.bad_attachment, problem="too_large_bytes",
                                      name=declared.name,
                                      limit_mb=megabytes(self.max_attachment_bytes))
            if declared.content_type and not declared.content_type.startswith("image/"):
                raise UserFacingError(ErrorKind.bad_attachment, problem="not_image",
                                      name=declared.name)

    def release_hold(self, hold: Hold | None) -> None:
        self.accounts.admission.release(hold)

    async def record(
        self, actor: Actor, policy: EffectivePolicy, hold: Hold | None, *, guild_id: int | None,
        amount: float, create: Callable[[bool], Awaitable[int]],
    ) -> int:
        """Admit and record a turn: check, reserve and `create(own_key)` it with no gap between,
        under the locks of every limit it counts (`hold`, its earlier admission, is replaced)."""
        await self.may_use(actor)
        own_key = await self.accounts.own_key(guild_id)
        admission = self.accounts.admission
        async with admission.scope(policy, actor, own_key=own_key):
            admission.release(hold)
            await admission.check(policy, actor, amount, own_key=own_key)
            return await create(own_key)

    async def admit_text(self, actor: Actor, amount: float,
                         attachment: Declared | None = None) -> Hold:
        """Admit a text-only call costing up to `amount` (e.g. /describe): DM policy, access,
        the attachment, and room under the spend caps, held (billed to the server's own key
        where it set one: `hold.own_key`) until its cost is recorded and the hold released."""
        await self.may_use(actor)
        self.check_attachments([attachment] if attachment is not None else [])
        policy = await self.policy_for(actor.guild_id, actor.channel_id)
        own_key = await self.accounts.own_key(actor.guild_id)
        admission = self.accounts.admission
        async with admission.scope(policy, actor, own_key=own_key):
            return await admission.hold_text(policy, actor, amount, own_key=own_key)

    # ------------------------------------------------------------------ conversation changes
    async def check_change(self, actor: Actor, conversation: Conversation | None) -> None:
        """Access and the refine rule, for an action that costs nothing but changes a
        conversation (Continue from)."""
        await self.may_use(actor)
        await self.check_refine(actor, conversation)

    async def check_owner(self, turn: Turn, actor: Actor) -> None:
        """Access, and that `actor` wrote `turn` or moderates (Delete, Cancel)."""
        await self.may_use(actor)
        if actor.user_id != turn.author_id and not actor.is_moderator:
            raise UserFacingError(ErrorKind.not_allowed, reason="not_author")

    @staticmethod
    def may_start_in(actor: Actor, conversation: Conversation) -> bool:
        """Whether a new first turn may go inside `conversation`: only its starter's; anyone
        else's opens a conversation of its own beside it (it would become this one's head)."""
        return actor.user_id == conversation.owner_id

    @staticmethod
    def check_place(conversation: Conversation, place: Place, *, server_wide: bool = False) -> None:
        """The conversation (or a turn of it) named in a button's or form's `custom_id` must be
        the one of the server and the channel the interaction came from (the bot puts a turn's
        buttons only in its conversation's own thread or DM). `server_wide`: a control the bot
        puts elsewhere in the server (the moderation log, the showcase) checks the server only;
        from a DM (a server owner's, without a log) the caller's moderator check decides."""
        if server_wide:
            if place.guild_id is not None and conversation.guild_id != place.guild_id:
                raise UserFacingError(ErrorKind.unknown_conversation)
            return
        if conversation.guild_id != place.guild_id or conversation.id != place.channel_id:
            raise UserFacingError(ErrorKind.unknown_conversation)
