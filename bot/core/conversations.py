"""The rules of a conversation: which turn a request continues from, how the chain is carried to
the API, the order turns run in, and the record of every step.

The service knows nothing about Discord. The Discord layer hands it `TurnRequest`s and gives it a
`Presenter` that shows turns to users; the service persists first and reports through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import re
import secrets
import time
import unicodedata
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from bot.core.admission import Admission, Hold
from bot.core.costs import PriceBook
from bot.core.errors import (
    DeliveryError,
    ErrorKind,
    GenerationError,
    PreviousResponseNotFound,
    ReferenceNotFound,
    ResponseOver,
    UserFacingError,
)
from bot.core.image_client import GenerationRequest, ImageClient, ProgressSink
from bot.core.jobs import Job, JobScheduler, Scheduler
from bot.core.keys import ServerKeys
from bot.core.models import (
    Conversation,
    DailyUsage,
    Delivery,
    HeadMove,
    ImageRef,
    InputImage,
    Progress,
    Stage,
    Turn,
    TurnKind,
    TurnRequest,
    TurnResult,
    TurnStatus,
    Usage,
    UserPrefs,
)
from bot.core.options import ImageOptions, largest_size, lower_quality
from bot.core.placing import Placements
from bot.core.policy import (
    Actor,
    Ceilings,
    EffectivePolicy,
    GuildPolicy,
    check_dm_access,
    day_start,
    month_start,
    next_day,
    next_month,
)
from bot.core.tasks import BackgroundTasks
from bot.store.protocol import Store

log = logging.getLogger(__name__)

# how long a process of a fleet keeps a server's settings before reading them again
FLEET_POLICY_SECONDS = 2.0
# how long a button on a result just posted waits for that result to be recorded (it must
# still answer within Discord's 3 s: Receiving and Responding → Responding to an Interaction)
DELIVERY_WAIT_SECONDS = 2.0

_INVISIBLE = re.compile(r"[\u200b-\u200f\u2060-\u2064\ufeff\u00ad]")


class Presenter(Protocol):
    """How the service shows turns to people (implemented by the Discord layer)."""

    async def show_queued(self, turn: Turn, position: int | None) -> int | None:
        """Post the turn's progress message; return its id."""

    async def show_progress(self, turn: Turn, progress: Progress) -> None: ...

    async def show_result(self, turn: Turn, result: TurnResult) -> list[int] | Delivery:
        """Show the finished turn; return the ids of the messages that show it (with a note
        when they are not where the turn's progress was shown)."""

    async def show_failure(self, turn: Turn, error: UserFacingError) -> None: ...

    async def fetch_result_images(self, turn: Turn) -> list[InputImage]:
        """The images a finished turn showed, downloaded again (for rebuilding a chain)."""

    async def notify(self, turn: Turn, *, done: bool) -> None:
        """Tell the requester, with one notification, that their turn is over."""


# Image output tokens of one 1024x1024 image by quality (image generation guide); other sizes
# scale with their pixel count; each preview adds 100.
_IMAGE_TOKENS_1024 = {"low": 272, "medium": 1056, "high": 4160}


@dataclass(frozen=True, slots=True)
class UpscalePlan:
    """An upscale of a result: the options it runs with and what it should cost."""

    options: ImageOptions
    cost_usd: float


@dataclass(frozen=True, slots=True)
class Allowance:
    """What a member has left right now (0 limit = none set)."""

    exempt: bool
    images_per_day: int
    images_left: int
    daily_spend: float
    daily_spend_left: float
    monthly_spend: float
    monthly_spend_left: float
    day_resets: int  # unix time
    month_resets: int


@dataclass(frozen=True, slots=True)
class UsageReport:
    images_today: int
    cost_today: float
    images_month: int
    cost_month: float
    estimated: bool = False  # some of these costs are estimates (image tokens not reported)


def _variant_of(request: TurnRequest) -> tuple[int, int, int] | None:
    """(group, index, count) of a variant turn, None for a lone one."""
    if request.variant_group is None:
        return None
    return request.variant_group, request.variant_index or 1, request.variants


def chain_context(lineage: list[Turn], max_turns: int, *, image: bool) -> str:
    """The text that carries a chain without the API's memory: the latest `max_turns` prompts
    of the lineage (deleted turns' left out: what a member deletes is not sent again), oldest
    first; the parent image (when sent) holds what the earlier ones made."""
    prompts = [turn.prompt for turn in lineage if not turn.deleted]
    kept = prompts[-max_turns:]
    skipped = len(prompts) - len(kept)
    steps = "\n".join(f"{n}. {prompt}" for n, prompt in enumerate(kept, skipped + 1))
    return (
        "This continues an image conversation. The earlier instructions, oldest first"
        + (f" (the first {skipped} left out)" if skipped else "") + f":\n{steps}\n"
        + ("The attached image is the latest result; apply the next instruction to it."
           if image else "")
    ).strip()


def clean_prompt(text: str, *, max_chars: int) -> str:
    """Strip invisible characters and whitespace; refuse empty or over-long prompts."""
    cleaned = _INVISIBLE.sub("", unicodedata.normalize("NFC", text)).strip()
    if not cleaned:
        raise UserFacingError(ErrorKind.empty_prompt)
    if len(cleaned) > max_chars:
        raise UserFacingError(ErrorKind.prompt_too_long, limit=max_chars, length=len(cleaned))
    return cleaned


class Turnstile:
    """Keeps requests of one conversation in arrival order across awaits.

    `ticket(conversation)` is called synchronously when an event arrives; `await ticket.wait()`
    returns once every earlier ticket of that conversation is done; `ticket.done()` releases it.
    """

    def __init__(self) -> None:
        self._queues: dict[int, deque[Ticket]] = {}

    def ticket(self, conversation_id: int) -> Ticket:
        queue = self._queues.setdefault(conversation_id, deque())
        ticket = Ticket(self, conversation_id)
        queue.append(ticket)
        if len(queue) == 1:
            ticket.ready.set()
        return ticket

    def _release(self, ticket: Ticket) -> None:
        queue = self._queues.get(ticket.conversation_id)
        if not queue or ticket not in queue:
            return
        was_first = queue[0] is ticket
        queue.remove(ticket)
        if not queue:
            del self._queues[ticket.conversation_id]
        elif was_first:
            queue[0].ready.set()


class Ticket:
    def __init__(self, turnstile: Turnstile, conversation_id: int) -> None:
        self._turnstile = turnstile
        self.conversation_id = conversation_id
        self.ready = asyncio.Event()

    async def wait(self) -> None:
        await self.ready.wait()

    def done(self) -> None:
        self._turnstile._release(self)

    async def __aenter__(self) -> Ticket:
        await self.wait()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.done()


class ConversationService:
    """Creates, runs and records turns."""

    def __init__(
        self,
        store: Store,
        image_client: ImageClient,
        *,
        ceilings: Ceilings,
        prices: dict[str, dict[str, float]],
        max_prompt_chars: int = 4000,
        max_input_images: int = 4,
        max_concurrent: int = 4,
        per_user_concurrent: int = 1,
        per_user_queued: int = 3,
        scheduler: Scheduler | None = None,
        max_chain_turns: int = 20,
    ) -> None:
        self.store = store
        self.images = image_client
        self.ceilings = ceilings
        self.prices = PriceBook(prices, mainline=image_client.model,
                                image_model=image_client.image_model)
        self.admission = Admission(
            store, ceilings, per_user_slots=per_user_queued + per_user_concurrent,
            per_user_queued=per_user_queued,
        )
        self.max_prompt_chars = max_prompt_chars
        self.max_input_images = max_input_images
        self.max_chain_turns = max_chain_turns  # prompts a rebuilt chain re-sends
        self.presenter: Presenter | None = None
        # Set by the Discord layer: raises `not_allowed` if a waiting turn's author may no
        # longer generate there (a role removed, blocked meanwhile); checked before it starts.
        self.access_check: Callable[[Turn], Awaitable[None]] | None = None
        # Servers that pay with their own OpenAI key (None: KEY_ENCRYPTION_SECRET unset), and
        # how the Discord layer tells a server's managers that its key stopped working.
        self.server_keys: ServerKeys | None = None
        self.key_failed: Callable[[int], Awaitable[None]] | None = None
        self.scheduler: Scheduler = scheduler or JobScheduler(
            max_concurrent=max_concurrent,
            per_user_concurrent=per_user_concurrent,
            per_user_queued=per_user_queued,
            on_position=self._on_position,
        )
        self.scheduler.attach(self._run_job, self._on_position)
        self.turnstile = Turnstile()
        self.tasks = BackgroundTasks()
        self.placements = Placements(self.tasks)
        self._unplaceable: dict[int, tuple[UserFacingError, bool]] = {}  # (why, show it)
        # turns whose (billed) result is in hand, set once it is posted and recorded
        self._delivering: dict[int, asyncio.Event] = {}
        self._queued_turns: dict[int, Turn] = {}
        self._cancel_requested: set[int] = set()
        self._cancelled_groups: set[int | None] = set()  # variant sets cancelled by a user
        self.listeners: list[TurnListener] = []
        self._locales: dict[int, str] = {}
        self._policies: dict[int, tuple[float, GuildPolicy]] = {}  # (read at, policy)
        self.fleet_policy_seconds = FLEET_POLICY_SECONDS

    # ------------------------------------------------------------------ settings and policy
    async def policy_for(self, guild_id: int | None, channel_id: int | None = None) -> EffectivePolicy:
        """A server's policy with the rules of `channel_id` (a thread's parent channel) on top,
        kept in memory: for good by a process alone (it writes every change it reads), for
        `fleet_policy_seconds` by a process of a fleet (another process may change it), which is
        how long a change takes to reach the whole fleet."""
        if not guild_id:
            return EffectivePolicy(GuildPolicy.from_dict({}), self.ceilings)
        kept = self._policies.get(guild_id)
        now = time.monotonic()
        if kept is None or (self.scheduler.shared and now - kept[0] > self.fleet_policy_seconds):
            kept = (now, GuildPolicy.from_dict(await self.store.guild_settings.get(guild_id)))
            self._policies[guild_id] = kept
        return EffectivePolicy(kept[1], self.ceilings, kept[1].rules_for(channel_id))

    async def guild_settings(self, guild_id: int) -> dict[str, Any]:
        """A server's stored settings, as saved (only what was set)."""
        return await self.store.guild_settings.get(guild_id)

    async def update_policy(self, guild_id: int, **changes: object) -> GuildPolicy:
        current = await self.store.guild_settings.get(guild_id)
        current.update({k: v for k, v in changes.items()})
        policy = GuildPolicy.from_dict({k: v for k, v in current.items() if v is not None})
        await self.store.guild_settings.put(guild_id, policy.to_dict())
        self._policies.pop(guild_id, None)
        return policy

    # ------------------------------------------------------------------ members
    async def remember_locale(self, user_id: int, locale: str) -> None:
        """Keep the locale of a member's latest interaction (written only when it changes)."""
        if self._locales.get(user_id) == locale:
            return
        await self.store.user_prefs.set_locale(user_id, locale)
        self._locales[user_id] = locale

    async def locale_of(self, user_id: int) -> str | None:
        """The locale of the member's latest interaction, if the bot has seen one."""
        if user_id not in self._locales:
            locale = (await self.store.user_prefs.get(user_id)).locale
            if locale is None:
                return None
            self._locales[user_id] = locale
        return self._locales[user_id]

    async def user_prefs(self, user_id: int) -> UserPrefs:
        return await self.store.user_prefs.get(user_id)

    async def save_prefs(self, user_id: int, guild_id: int | None, prefs: UserPrefs) -> None:
        """Store a member's defaults after checking them against this server's limits."""
        policy = await self.policy_for(guild_id)
        policy.clamp(prefs.options().merged_over(policy.defaults()))
        await self.store.user_prefs.put(user_id, prefs)

    async def _prefs_options(self, user_id: int, policy: EffectivePolicy) -> ImageOptions:
        """A member's own defaults, or none if the server's limits no longer allow them."""
        chosen = (await self.store.user_prefs.get(user_id)).options()
        try:
            policy.clamp(chosen.merged_over(policy.defaults()))
        except UserFacingError:
            log.info("Preferences of user %s exceed the server's limits; not applied", user_id)
            return ImageOptions()
        return chosen

    # ------------------------------------------------------------------ conversations
    async def open_conversation(
        self,
        conversation_id: int,
        *,
        guild_id: int | None,
        parent_channel_id: int | None,
        owner_id: int,
    ) -> Conversation:
        await self.store.conversations.create(
            conversation_id,
            guild_id=guild_id,
            parent_channel_id=parent_channel_id,
            owner_id=owner_id,
            options=ImageOptions(),
        )
        conversation = await self.store.conversations.get(conversation_id)
        assert conversation is not None
        return conversation

    async def mark_remix(self, conversation_id: int, channel_id: int, message_id: int) -> None:
        """Record the message a conversation was remixed from (shown by /history and Details)."""
        await self.store.conversations.set_remixed_from(conversation_id, channel_id, message_id)

    async def conversation(self, conversation_id: int) -> Conversation | None:
        return await self.store.conversations.get(conversation_id)

    async def record_origin(self, conversation: Conversation, bot_opened: bool) -> Conversation | None:
        """Settle whether an older conversation's thread is one the bot opened (the Discord layer
        checked the thread's owner). Returns the conversation if it is one, else None."""
        await self.store.conversations.set_bot_opened(conversation.id, bot_opened)
        return dataclasses.replace(conversation, bot_opened=True) if bot_opened else None

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

    async def _check_dm(self, actor: Actor) -> None:
        settings = await self.store.guild_settings.all()
        policies = {g: GuildPolicy.from_dict(data) for g, data in settings.items()}
        check_dm_access(self.ceilings, actor, policies)

    async def head(self, conversation: Conversation) -> Turn | None:
        """The turn a plain reply continues from: the pinned head, else the latest result."""
        if conversation.head_turn_id is not None:
            turn = await self.store.turns.get(conversation.head_turn_id)
            if turn is not None and turn.status is TurnStatus.done and not turn.deleted:
                return turn
        return await self.store.turns.latest_done(conversation.id)

    async def turn_for_message(self, message_id: int) -> Turn | None:
        return await self.store.turns.by_message(message_id)

    async def turn(self, turn_id: int) -> Turn | None:
        """A turn as recorded; one whose result is being posted here, once that is recorded, or
        as it stands after `DELIVERY_WAIT_SECONDS` (a button clicked the moment the result
        appears acts on the finished turn)."""
        delivering = self._delivering.get(turn_id)
        if delivering is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(delivering.wait(), DELIVERY_WAIT_SECONDS)
        return await self.store.turns.get(turn_id)

    async def inputs_of(self, turn: Turn) -> list[InputImage]:
        """The images attached to a turn's request."""
        return await self.store.turns.inputs(turn.id) if turn.input_image_count else []

    async def lineage(self, turn: Turn) -> list[Turn]:
        return await self.store.turns.lineage(turn.id)

    async def turns_in(self, conversation_id: int) -> list[Turn]:
        """Every turn of a conversation, oldest first (for /history and exports)."""
        return await self.store.turns.in_conversation(conversation_id)

    # ------------------------------------------------------------------ submitting
    async def may_use(self, actor: Actor) -> None:
        """Raise `not_allowed` unless `actor` may generate here at all (access only)."""
        if actor.guild_id is None:
            await self._check_dm(actor)
        policy = await self.policy_for(actor.guild_id, actor.channel_id)
        policy.check_access(actor)

    async def admit(
        self, actor: Actor, options: ImageOptions | None = None, *, prompt: str = "",
        input_images: int = 0,
    ) -> Hold:
        """Check, before anything is created, that `actor` may start a turn now (access, room in
        their queue, usage limits, the options against the server's ceilings) and hold its
        worst-case cost until `submit` records it (pass the hold) or `release_hold` drops it."""
        policy = await self.policy_for(actor.guild_id, actor.channel_id)
        chosen = policy.clamp((options or ImageOptions()).merged_over(policy.defaults()))
        amount = self.prices.reservation(chosen, prompt_chars=len(prompt),
                                         input_images=input_images)
        await self.may_use(actor)  # (access is not a counted limit: checked outside the scope)
        own_key = await self._own_key(actor.guild_id)
        async with self.admission.scope(policy, actor, own_key=own_key):
            return await self.admission.hold(policy, actor, amount, own_key=own_key)

    def release_hold(self, hold: Hold | None) -> None:
        self.admission.release(hold)

    async def submit(self, request: TurnRequest, actor: Actor, *, hold: Hold | None = None,
                     ready: Awaitable[None] | None = None) -> Turn:
        """Validate a request, record it as a queued turn (admitted and reserved atomically;
        `hold`, from `admit`, is replaced by it), schedule it; its message waits for `ready`."""
        if request.variants > 1 and request.variant_group is None:
            return await self._submit_variants(request, actor, hold, ready)
        conversation = await self._conversation_of(request)
        policy = await self.policy_for(conversation.guild_id, conversation.parent_channel_id)
        policy.check_access(actor)
        if request.kind is not TurnKind.root:
            policy.check_refine(actor, conversation.owner_id)

        prompt, parent, follows, inputs, request_options, remix_of = await self._resolve(
            request, conversation
        )
        own = 2 if request_options.mask else 0  # zoom, pan, vary region: canvas and mask
        if len(inputs) - own > self.max_input_images:
            raise UserFacingError(ErrorKind.too_many_images, limit=self.max_input_images)
        mine = await self._prefs_options(request.author_id, policy)
        options = (request_options.merged_over(conversation.options).merged_over(mine)
                   .merged_over(policy.defaults()))
        options = policy.clamp(options)
        context_has_image = bool(parent and parent.images) or remix_of is not None or (
            request.kind is TurnKind.reply and request.parent_turn_id is None
            and (bool(follows and follows.images)
                 or self.scheduler.has_conversation(conversation.id))
        )
        if options.action == "edit" and not inputs and not context_has_image:
            raise UserFacingError(ErrorKind.edit_needs_image)
        amount = self.prices.reservation(  # (a chain rebuilt re-sends its prompts)
            options, prompt_chars=len(prompt) + await self._rebuilt_chars(parent or follows),
            input_images=len(inputs) + int(context_has_image),
        )
        turn = await self._record(request, actor, policy, hold, conversation=conversation,
                                  parent=parent, prompt=prompt, options=options, inputs=inputs,
                                  remix_of=remix_of, amount=amount)
        sticky = request.options.sticky()
        if request.kind is not TurnKind.reroll and request.sticky and sticky.chosen():
            await self.store.conversations.set_options(
                conversation.id, sticky.merged_over(conversation.options)
            )
        return await self._enqueue(turn, ready, admitted_now=True)

    async def _rebuilt_chars(self, parent: Turn | None) -> int:
        """Characters of the chain a turn re-sends when it is rebuilt (without stored
        responses, or when the parent has none): counted in its reservation."""
        if parent is None or (self.images.store and parent.response_id):
            return 0
        lineage = await self.store.turns.lineage(parent.id)
        return len(chain_context(lineage, self.max_chain_turns, image=True))

    async def _record(
        self, request: TurnRequest, actor: Actor, policy: EffectivePolicy, hold: Hold | None, *,
        conversation: Conversation, parent: Turn | None, prompt: str, options: ImageOptions,
        inputs: list[InputImage], remix_of: int | None, amount: float,
    ) -> Turn:
        """Admit and record a turn: check, reserve and insert with no gap between, under the
        locks of every limit it counts (`hold`, its earlier admission, is replaced by it)."""
        await self.may_use(actor)
        own_key = await self._own_key(conversation.guild_id)
        async with self.admission.scope(policy, actor, own_key=own_key):
            self.admission.release(hold)
            await self.admission.check(policy, actor, amount, own_key=own_key)
            turn_id = await self.store.turns.create(
                conversation_id=conversation.id, parent_id=parent.id if parent else None,
                kind=request.kind, guild_id=conversation.guild_id, author_id=request.author_id,
                prompt=prompt, options=options, locale=request.locale,
                source_message_id=request.source_message_id, inputs=inputs,
                remix_of_turn_id=remix_of, variant=_variant_of(request), reserved_usd=amount,
                own_key=own_key, exempt=policy.is_exempt(actor),
            )
        turn = await self.store.turns.get(turn_id)
        assert turn is not None
        return turn

    async def _conversation_of(self, request: TurnRequest) -> Conversation:
        """The conversation a request continues: only one the bot opened (a thread of someone
        else's is never billed)."""
        conversation = await self.store.conversations.get(request.conversation_id or 0)
        if conversation is None or conversation.bot_opened is not True:
            raise UserFacingError(ErrorKind.unknown_conversation)
        return conversation

    async def _resolve(
        self, request: TurnRequest, conversation: Conversation
    ) -> tuple[str, Turn | None, Turn | None, list[InputImage], ImageOptions, int | None]:
        """(prompt, parent, the head a plain reply follows, input images, chosen options, the
        remixed turn) of a request: a reroll repeats its source turn; others bring their own."""
        inputs = list(request.input_images)
        request_options = request.options
        follows: Turn | None = None
        if request.kind is TurnKind.reroll:
            source = await self._existing_turn(request.parent_turn_id, conversation)
            parent = await self.store.turns.get(source.parent_id) if source.parent_id else None
            prompt = source.prompt
            request_options = source.options
            inputs = await self.store.turns.inputs(source.id)
            if source.inputs_pruned and not inputs:  # never asked again without them
                raise UserFacingError(ErrorKind.bad_attachment, problem="inputs_gone")
            remix_of = source.remix_of_turn_id
        else:
            prompt = clean_prompt(request.prompt, max_chars=self.max_prompt_chars)
            remix_of = request.remix_of_turn_id
            if request.kind is TurnKind.root:
                parent = None
            elif request.parent_turn_id is not None:
                parent = await self._existing_turn(request.parent_turn_id, conversation)
            else:
                # A plain reply continues from the head *when it runs*: turns of a thread run in
                # order, so a reply sent while the previous turn is still running refines that
                # turn's result. The parent is resolved and recorded in `_resolve_parent`.
                parent = None
                follows = await self.head(conversation)
        return prompt, parent, follows, inputs, request_options, remix_of

    async def _submit_variants(
        self, request: TurnRequest, actor: Actor, hold: Hold | None = None,
        ready: Awaitable[None] | None = None,
    ) -> Turn:
        """`request.variants` sibling turns with one parent, grouped for one board; each is
        queued, limited and billed on its own. Returns the first."""
        if request.kind is TurnKind.reply and request.parent_turn_id is None:
            # siblings share the parent the thread has now (a plain reply would take the head
            # when it runs, and the head moves as siblings finish)
            conversation = await self.store.conversations.get(request.conversation_id or 0)
            head = await self.head(conversation) if conversation else None
            if head is not None:
                request = dataclasses.replace(request, parent_turn_id=head.id)
        group = secrets.randbits(52) + 1
        first: Turn | None = None
        for index in range(1, request.variants + 1):
            turn = await self.submit(
                dataclasses.replace(request, variant_group=group, variant_index=index), actor,
                hold=hold if index == 1 else None,  # each further sibling is admitted alone
                ready=ready,
            )
            first = first or turn
            if index > 1 and await self._set_cancelled(first):
                await self.cancel(turn, actor)  # the set was cancelled while it was being asked
        assert first is not None
        return first

    async def _set_cancelled(self, first: Turn) -> bool:
        current = await self.store.turns.get(first.id)
        return current is not None and current.status is TurnStatus.cancelled

    async def variant_set(self, turn: Turn) -> list[Turn]:
        """The siblings of a variant (itself included), in order; just the turn otherwise."""
        if turn.variant_group is None:
            return [turn]
        return await self.store.turns.variant_siblings(turn.variant_group)

    async def reroll_set(self, turn: Turn, actor: Actor, locale: str) -> Turn:
        """Ask again for a whole variant set: as many siblings, same parent, prompt, options."""
        siblings = await self.variant_set(turn)
        return await self.submit(TurnRequest(
            kind=TurnKind.reroll, author_id=actor.user_id, prompt=turn.prompt,
            guild_id=turn.guild_id, conversation_id=turn.conversation_id,
            parent_turn_id=siblings[0].id, variants=len(siblings), locale=locale,
        ), actor)

    async def _enqueue(self, turn: Turn, ready: Awaitable[None] | None = None, *,
                       admitted_now: bool = False) -> Turn:
        """Schedule a recorded turn (`admitted_now`: by `submit`, not recovered after a
        restart). Its progress message is posted beside the generation (with a fleet-wide
        queue, no other process takes the turn until that message exists)."""
        beside = self.presenter is not None and turn.progress_message_id is None
        if turn.id in self._cancel_requested or turn.variant_group in self._cancelled_groups:
            # Cancel was clicked before it reached the queue
            self._cancel_requested.discard(turn.id)
            await self._fail(turn, UserFacingError(ErrorKind.cancelled), TurnStatus.cancelled)
            return turn
        if beside:  # no await from here to the submit: the job is known when posting fails
            self.placements.start(turn, lambda: self._place_beside(turn, ready))
        self._queued_turns[turn.id] = turn  # (for its queue positions)
        # Queue room was checked on admission; a turn already recorded is never dropped here.
        self.scheduler.submit(
            Job(turn.id, turn.author_id, turn.conversation_id, self._run_job,
                group=turn.variant_group, admitted_now=admitted_now),
            force=True,
        )
        self._notify("queued", turn)
        return turn

    async def _place(self, turn: Turn) -> Turn:
        """Post the turn's progress message and record its id; the turn as recorded then."""
        assert self.presenter is not None
        message_id = await self.presenter.show_queued(turn, None)
        if message_id is None:
            return turn
        await self.store.turns.set_progress_message(turn.id, message_id)
        return await self.store.turns.get(turn.id) or turn

    async def _place_beside(self, turn: Turn, ready: Awaitable[None] | None) -> Turn | None:
        """Post the progress message while the turn renders (once its channel exists), then show
        the progress held meanwhile. If it cannot be posted, the generation is stopped unless its
        result is already in hand (then the result is posted anew, or the record says why not)."""
        try:
            if ready is not None:
                await ready
        except UserFacingError as error:  # no channel: the Discord layer says why
            await self._unplaced(turn, error, show=False)
            return None
        try:
            placed = await self._place(turn)
        except DeliveryError as error:  # shown where it can be (a locked thread's parent)
            await self._unplaced(turn, error.user_error(), show=True)
            return None
        if turn.id in self._queued_turns:
            self._queued_turns[turn.id] = placed  # queue positions go into the message now
        while held := self.placements.take_held(turn.id):  # (more may come meanwhile)
            for progress in held:
                await self._progress(placed, progress)
        return placed

    async def _unplaced(self, turn: Turn, error: UserFacingError, *, show: bool) -> None:
        self.placements.take_held(turn.id)
        if turn.id in self._delivering:
            return  # paid for: the result is posted anew (or the record says why not)
        self._unplaceable[turn.id] = (error, show)
        outcome = await self.scheduler.withdraw(turn.id)
        if outcome == "queued":
            self._queued_turns.pop(turn.id, None)
            self._unplaceable.pop(turn.id, None)
            await self._fail(turn, error, show=show)
        elif outcome is None:
            self._unplaceable.pop(turn.id, None)

    async def _existing_turn(self, turn_id: int | None, conversation: Conversation) -> Turn:
        turn = await self.store.turns.get(turn_id) if turn_id is not None else None
        if turn is None or turn.conversation_id != conversation.id:
            raise UserFacingError(ErrorKind.unknown_conversation)
        return turn

    # ------------------------------------------------------------------ running
    def _on_position(self, turn_id: int, position: int) -> None:
        if position <= 0:  # it left the queue (with a fleet queue: perhaps run elsewhere)
            self._queued_turns.pop(turn_id, None)
            return
        turn = self._queued_turns.get(turn_id)
        if turn is None or self.presenter is None:
            return
        self.tasks.spawn(  # (held until its progress message is posted)
            self._progress(turn, Progress(Stage.queued, position=position)),
            name=f"position-{turn_id}",
        )

    async def _run_job(self, job: Job) -> None:
        recorded = self._queued_turns.pop(job.turn_id, None)
        if job.refused is not None:
            await self._refused(job, job.refused)
        else:
            await self._run_turn(job, recorded)

    async def _run_turn(self, job: Job, recorded: Turn | None) -> None:
        try:
            # (a turn admitted a moment ago is as `submit` recorded it: no need to read it)
            turn = recorded if job.admitted_now else await self.store.turns.get(job.turn_id)
        except asyncio.CancelledError:  # Cancel clicked the moment the turn started
            if not job.cancelled_by_user:
                raise
            await self._cancelled_by_user(job)
            return
        if turn is None or turn.status.terminal:
            return
        try:
            await self._render(job, turn)
        except asyncio.CancelledError:
            if not job.cancelled_by_user:
                raise  # shutting down: the turn stays resumable
            await self._cancelled_by_user(job)
        except UserFacingError as error:
            await self._fail(turn, error)
        except DeliveryError as error:
            await self._fail(turn, error.user_error(), show=not error.orphaned,
                             detail=("orphaned: " if error.orphaned else "") + error.detail)
        except Exception as exc:
            log.exception("Turn %s crashed", turn.id)
            await self._fail(turn, UserFacingError(ErrorKind.server), detail=repr(exc))
        finally:
            delivered = self._delivering.pop(turn.id, None)
            if delivered is not None:
                delivered.set()
            self.placements.forget(turn.id)

    async def _render(self, job: Job, turn: Turn) -> None:
        """Generate the turn's image(s) and deliver them."""
        if (turn.status is TurnStatus.queued and self.access_check is not None
                and not job.admitted_now):
            await self.access_check(turn)  # access may have been taken away while it waited
        # recorded as running while the request goes out (before its response id is); a fleet
        # queue's claim has recorded it already
        marked = asyncio.ensure_future(
            asyncio.sleep(0) if self.scheduler.shared else self.store.turns.mark_running(turn.id)
        )
        self._notify("running", turn)
        await self._progress(turn, Progress(Stage.started))
        result = await self._generate(turn, marked)
        self._delivering[turn.id] = asyncio.Event()
        await self._deliver(turn, result)

    async def _refused(self, job: Job, error: UserFacingError) -> None:
        """A turn the fleet queue refused at its claim (recorded as failed there): shown as a
        turn failing before its API call is, with admission's message."""
        turn = await self.store.turns.get(job.turn_id)
        if turn is not None:
            await self._fail(turn, error, detail=turn.error_detail or "")

    async def _cancelled_by_user(self, job: Job) -> None:
        """Record (and show) a turn its user cancelled while it ran, or one stopped because its
        progress message could not be posted (the record says why); stop paying for it."""
        current = asyncio.current_task()
        if current is not None:
            current.uncancel()
        unplaced = self._unplaceable.pop(job.turn_id, None)
        turn = await self.store.turns.get(job.turn_id)
        if turn is None or turn.status.terminal:
            return
        billed = None
        if turn.response_id and self.images.background:
            billed = await self.images.cancel(turn.response_id)  # stop paying for it
        if unplaced is not None:
            await self._fail(turn, unplaced[0], show=unplaced[1], billed=billed)
            return
        await self._fail(turn, UserFacingError(ErrorKind.cancelled), TurnStatus.cancelled,
                         billed=billed)

    async def _progress(self, turn: Turn, progress: Progress) -> None:
        if self.presenter is None or self.placements.hold(turn.id, progress):
            return  # (held until the progress message exists)
        if turn.progress_message_id is None:
            turn = self.placements.placed(turn.id) or turn
        try:
            await self.presenter.show_progress(turn, progress)
        except Exception:
            log.warning("Could not show progress of turn %s", turn.id, exc_info=True)

    async def _resume_left(
        self, turn: Turn, on_progress: ProgressSink, images: ImageClient
    ) -> TurnResult | Usage:
        """Recovered after a restart: the generation already exists server-side. What that
        response billed when it ended without a result and a new request may be made (never
        billed twice: it failed, or was cancelled first)."""
        assert turn.response_id is not None
        if not images.background:
            raise GenerationError(ErrorKind.connection, detail="interrupted by a restart")
        try:
            return await images.resume(
                turn.response_id, turn.last_sequence, on_progress=on_progress
            )
        except ResponseOver as over:
            log.info("Turn %s: response %s ended without a result (%s); requesting anew",
                     turn.id, turn.response_id, over.kind.name)
            return over.billed or Usage()

    async def _generate(self, turn: Turn, marked: asyncio.Future[None]) -> TurnResult:
        """The turn's result, asked for (or resumed) while `marked` records it as running."""
        async def on_progress(progress: Progress) -> None:
            await self._progress(turn, progress)

        async def on_response_id(response_id: str, sequence: int | None) -> None:
            await asyncio.shield(marked)  # (running first, then its response id)
            await self.store.turns.set_response_id(turn.id, response_id, sequence)

        images = await self._images_for(turn)
        earlier = Usage()  # billed by a response left over from before a restart
        if turn.response_id and turn.status is TurnStatus.running:
            resumed = await self._resume_left(turn, on_progress, images)
            if isinstance(resumed, TurnResult):
                return resumed
            earlier = resumed

        parent = await self._resolve_parent(turn)
        source = await self._remix_source(turn)
        request, rerooted = await self._request_for(turn, parent, source)

        async def run() -> TurnResult:
            try:
                return await images.generate(
                    request, on_progress=on_progress, on_response_id=on_response_id
                )
            except ReferenceNotFound:
                if source is None or not request.reference_call_ids:
                    raise
                log.info("Turn %s: the API refused the reference to turn %s's image; "
                         "sending its bytes", turn.id, source.id)
                await self._send_source_bytes(request, source)
                return await images.generate(
                    request, on_progress=on_progress, on_response_id=on_response_id
                )

        try:
            result, rerooted = await self._chained(turn, request, parent, run, rerooted)
        except GenerationError as error:
            error.billed = earlier + (error.billed or Usage())  # recorded against the turn
            raise
        return TurnResult(result.response_id, result.images, result.text,
                          earlier + result.usage, rerooted)

    async def _chained(
        self, turn: Turn, request: GenerationRequest, parent: Turn | None,
        run: Callable[[], Awaitable[TurnResult]], rerooted: bool,
    ) -> tuple[TurnResult, bool]:
        """`run()`, rebuilding the chain when the API no longer has the parent's response; a
        rebuilt chain reserves by what it actually sends. (The result, whether rebuilt.)"""
        if rerooted:
            await self._reserve_sent(turn, request)
        try:
            return await run(), rerooted
        except PreviousResponseNotFound:
            assert parent is not None
            log.info("Turn %s: parent response %s is gone; rebuilding the chain",
                     turn.id, parent.response_id)
            await self._reroot(request, parent)
            await self.store.turns.set_rerooted(turn.id)
            await self._reserve_sent(turn, request)
            return await run(), True

    async def _reserve_sent(self, turn: Turn, request: GenerationRequest) -> None:
        """A rebuilt chain re-sends prompts and the parent image: the turn's reservation grows
        to the worst case of what is sent (never shrinks), so caps count it meanwhile."""
        amount = self.prices.reservation(
            turn.options, prompt_chars=len(request.prompt) + len(request.context_text or ""),
            input_images=len(request.input_images),
        )
        await self.store.turns.raise_reservation(turn.id, amount)

    async def _images_for(self, turn: Turn) -> ImageClient:
        """The operator's image client, or the one of the server's own key (never the
        operator's for a server that pays itself)."""
        if not turn.own_key:
            return self.images
        client = None
        if self.server_keys is not None and turn.guild_id is not None:
            client = await self.server_keys.client_for(turn.guild_id)
        if client is None:
            raise UserFacingError(ErrorKind.own_key_failed)
        return client

    async def _own_key_failed(self, turn: Turn) -> bool:
        """A server's own key was refused (401, no quota): stop using it. True the first time
        (its managers are then told, by `_tell_key_failed`)."""
        if self.server_keys is None or turn.guild_id is None:
            return False
        return await self.server_keys.mark_failed(turn.guild_id)

    async def _tell_key_failed(self, turn: Turn) -> None:
        if self.key_failed is not None and turn.guild_id is not None:
            try:
                await self.key_failed(turn.guild_id)
            except Exception:
                log.warning("Could not tell server %s its key failed", turn.guild_id,
                            exc_info=True)

    async def _own_key(self, guild_id: int | None) -> bool:
        """Whether a server's turns are billed to its own key; refused when that key failed."""
        if self.server_keys is None:
            return False
        state = await self.server_keys.state(guild_id)
        if state == "failed":
            raise UserFacingError(ErrorKind.own_key_failed)
        return state == "active"

    async def _request_for(
        self, turn: Turn, parent: Turn | None, source: Turn | None
    ) -> tuple[GenerationRequest, bool]:
        """The API request of a turn, chained to its parent (or rebuilt from the parent's image
        and lineage: then True) and referring to the remixed image."""
        if (turn.options.action == "edit" and parent is None and source is None
                and not turn.input_image_count):
            raise UserFacingError(ErrorKind.edit_needs_image)
        request = GenerationRequest(
            prompt=turn.prompt,
            options=turn.options,
            input_images=await self.store.turns.inputs(turn.id) if turn.input_image_count else [],
            user_id=turn.author_id,
        )
        rerooted = False
        if parent is not None:
            if parent.response_id and self.images.store:
                request.previous_response_id = parent.response_id
            else:
                await self._reroot(request, parent)
                rerooted = True
        if source is not None:
            await self._refer_to(request, source)
        return request, rerooted

    async def _remix_source(self, turn: Turn) -> Turn | None:
        """The bot result a remix continues from (in another conversation), if any."""
        if turn.remix_of_turn_id is None:
            return None
        source = await self.store.turns.get(turn.remix_of_turn_id)
        if source is None or not source.images:
            raise UserFacingError(ErrorKind.remix_source_gone)
        return source

    async def _refer_to(self, request: GenerationRequest, source: Turn) -> None:
        """Point the request at a remix's source image: by its stored `image_generation_call` id
        (after the reasoning item that preceded it) when the API keeps items (no bytes
        re-sent), else with the image itself."""
        if self.images.store:
            request.reference_call_ids = [image.call_id for image in source.images]
            request.reference_reasoning_ids = {
                image.call_id: image.reasoning_id for image in source.images if image.reasoning_id
            }
        else:
            await self._send_source_bytes(request, source)

    async def _send_source_bytes(self, request: GenerationRequest, source: Turn) -> None:
        request.reference_call_ids = []
        request.reference_reasoning_ids = {}
        images: list[InputImage] = []
        if self.presenter is not None:
            try:
                images = await self.presenter.fetch_result_images(source)
            except Exception:
                log.warning("Could not fetch the images of turn %s", source.id, exc_info=True)
        if not images:
            raise UserFacingError(ErrorKind.remix_source_gone)
        request.input_images = images + request.input_images

    async def _resolve_parent(self, turn: Turn) -> Turn | None:
        """The turn this one continues from; a plain reply takes the head as it is now."""
        if turn.parent_id is not None:
            return await self.store.turns.get(turn.parent_id)
        if turn.kind is not TurnKind.reply:
            return None
        conversation = await self.store.conversations.get(turn.conversation_id)
        parent = await self.head(conversation) if conversation else None
        if parent is not None:
            await self.store.turns.set_parent(turn.id, parent.id)
        return parent

    async def _reroot(self, request: GenerationRequest, parent: Turn) -> None:
        """Carry the chain without the API's memory: the parent image plus the prompt lineage."""
        request.previous_response_id = None
        lineage = await self.store.turns.lineage(parent.id)
        images: list[InputImage] = []
        if self.presenter is not None and parent.images:
            try:
                images = await self.presenter.fetch_result_images(parent)
            except Exception:
                log.warning("Could not fetch the images of turn %s", parent.id, exc_info=True)
        if not images and request.options.action == "edit" and not request.input_images:
            raise UserFacingError(ErrorKind.edit_needs_image)
        request.context_text = chain_context(lineage, self.max_chain_turns, image=bool(images))
        request.input_images = images + request.input_images

    async def _deliver(self, turn: Turn, result: TurnResult) -> None:
        delivery = Delivery(())
        cost = self.prices.cost(result.usage, turn.options.model)
        await self.placements.wait(turn.id)  # the result goes into its progress message
        refs = [
            ImageRef(img.call_id, img.size, img.output_format, len(img.data), img.reasoning_id)
            for img in result.images
        ]
        # The head as the result is shown: what a user does on seeing it (Continue from an
        # earlier turn) moves it, and then stands. (Only a read before the result is shown.)
        conversation = await self.store.conversations.get(turn.conversation_id)
        head_before = conversation.head_turn_id if conversation else None
        current = await self.store.turns.get(turn.id) or turn
        if self.presenter is not None:
            try:
                shown = await self.presenter.show_result(current, result)
            except BaseException:
                # billed but not shown: the reservation still becomes what the API charged
                await self.store.turns.settle(turn.id, usage=result.usage, cost_usd=cost)
                raise
            delivery = shown if isinstance(shown, Delivery) else Delivery(tuple(shown))
        message_ids = list(delivery.message_ids)
        revised = next((img.revised_prompt for img in result.images if img.revised_prompt), None)
        first = refs and (turn.variant_index or 1) == 1  # of variants, the first is the head
        await self.store.turns.finish_done(
            turn.id, response_id=result.response_id, images=refs, revised_prompt=revised,
            text=result.text, usage=result.usage, cost_usd=cost, rerooted=result.rerooted,
            note=delivery.note,
            message_ids=list(dict.fromkeys([*current.message_ids, *message_ids])),
            head=HeadMove(turn.conversation_id, head_before) if first else None,
        )
        done = await self.store.turns.get(turn.id)
        self._notify("done", done or turn)
        # after the commit: a delivery repeated after a crash never pings twice
        await self._ping(done or turn, done=True)

    async def _ping(self, turn: Turn, *, done: bool) -> None:
        if self.presenter is None or not (await self.store.user_prefs.get(turn.author_id)).ping:
            return
        if turn.variant_group is not None and not all(
            s.status.terminal for s in await self.variant_set(turn)
        ):
            return  # a variant set pings once, when its last sibling is over
        try:
            await self.presenter.notify(turn, done=done)
        except Exception:
            log.warning("Could not notify the requester of turn %s", turn.id, exc_info=True)

    async def _fail(
        self,
        turn: Turn,
        error: UserFacingError,
        status: TurnStatus = TurnStatus.failed,
        *,
        show: bool = True,
        detail: str = "",
        billed: Usage | None = None,
    ) -> None:
        detail = detail or getattr(error, "detail", "") or ""
        billed = billed or getattr(error, "billed", None)  # failed, yet billed: recorded
        own_key_failed = turn.own_key and error.kind in (ErrorKind.auth, ErrorKind.quota,
                                                         ErrorKind.own_key_failed)
        if own_key_failed:
            log.info("Turn %s: server %s's own key failed (%s)", turn.id, turn.guild_id,
                     error.kind.name)
        elif error.kind is ErrorKind.quota:
            log.error("OpenAI reports insufficient quota: check the account's billing")
        elif error.kind is ErrorKind.auth:
            log.error("OpenAI rejected the API key (401/403)")
        else:
            log.info("Turn %s %s: %s %s", turn.id, status.value, error.kind.name, detail[:200])
        # the key is marked failed before the turn is: no turn admitted after this one's
        # failure shows can still be billed to it
        first_failure = own_key_failed and await self._own_key_failed(turn)
        await self.store.turns.finish_failed(
            turn.id, status=status, error_kind=error.kind.name, error_detail=detail,
            usage=billed or None, cost_usd=self.prices.cost(billed) if billed else 0.0,
        )
        self._notify(status.value, turn, error)
        if own_key_failed:
            if first_failure:
                await self._tell_key_failed(turn)
            error = UserFacingError(ErrorKind.own_key_failed)  # what the member is shown
        if show and self.presenter is not None:
            await self.placements.wait(turn.id)  # shown in its progress message, not beside it
            current = await self.store.turns.get(turn.id) or turn
            try:
                await self.presenter.show_failure(current, error)
            except Exception:
                log.warning("Could not show the failure of turn %s", turn.id, exc_info=True)
            else:
                if status is TurnStatus.failed and current.progress_message_id is not None:
                    await self._ping(current, done=False)
        self.placements.forget(turn.id)

    def _notify(self, event: str, turn: Turn, error: UserFacingError | None = None) -> None:
        for listener in self.listeners:
            try:
                listener(event, turn, error)
            except Exception:
                log.exception("Turn listener failed")

    # ------------------------------------------------------------------ actions on turns
    async def cancel(self, turn: Turn, actor: Actor) -> bool:
        """Cancel a queued or running turn (its author or a moderator); for a variant, the whole
        set. False if already over."""
        self._check_owner(turn, actor)
        if turn.variant_group is not None:
            self._cancelled_groups.add(turn.variant_group)  # siblings still being submitted too
            results = [await self._cancel_one(sibling) for sibling in await self.variant_set(turn)
                       if not sibling.status.terminal]
            return any(results) or len(results) == 0
        return await self._cancel_one(turn)

    async def _cancel_one(self, turn: Turn) -> bool:
        outcome = await self.scheduler.withdraw(turn.id)
        if outcome == "queued":
            self._queued_turns.pop(turn.id, None)
            await self._fail(turn, UserFacingError(ErrorKind.cancelled), TurnStatus.cancelled)
            return True
        if outcome is None:
            current = await self.store.turns.get(turn.id)
            if current is not None and current.status is TurnStatus.queued:
                self._cancel_requested.add(turn.id)  # still on its way into the queue
                return True
        return outcome == "running"

    async def delete(self, turn: Turn, actor: Actor) -> None:
        """Mark a turn deleted and drop its stored inputs (listeners drop what they cached of
        it). Its children keep their chain; the head moves back if needed."""
        self._check_owner(turn, actor)
        async with self.store.transaction():
            await self.store.turns.mark_deleted(turn.id)
            conversation = await self.store.conversations.get(turn.conversation_id)
            if conversation and conversation.head_turn_id == turn.id:
                await self.store.conversations.set_head(turn.conversation_id, None)
        self._notify("deleted", turn)

    async def continue_from(self, turn: Turn, actor: Actor) -> None:
        conversation = await self.store.conversations.get(turn.conversation_id)
        policy = await self.policy_for(turn.guild_id)
        if conversation is not None:
            policy.check_refine(actor, conversation.owner_id)
        if turn.status is not TurnStatus.done or turn.deleted:
            raise UserFacingError(ErrorKind.unknown_conversation)
        await self.store.conversations.set_head(turn.conversation_id, turn.id)

    def _check_owner(self, turn: Turn, actor: Actor) -> None:
        if actor.user_id != turn.author_id and not actor.is_moderator:
            raise UserFacingError(ErrorKind.not_allowed, reason="not_author")

    async def usage_of(self, *, user_id: int | None = None, guild_id: int | None = None) -> UsageReport:
        now = dt.datetime.now(dt.UTC)
        today = day_start(now).timestamp()
        month = month_start(now).timestamp()
        day = await self.store.usage.totals(since=today, author_id=user_id, guild_id=guild_id)
        mon = await self.store.usage.totals(since=month, author_id=user_id, guild_id=guild_id)
        return UsageReport(day.images, day.cost_usd, mon.images, mon.cost_usd,
                           day.estimated or mon.estimated)

    async def plan_upscale(self, turn: Turn) -> UpscalePlan:
        """Re-render a result as an edit at the highest quality and the largest size this server
        allows, with the same proportions; and its estimated cost."""
        if turn.status is not TurnStatus.done or not turn.images or turn.deleted:
            raise UserFacingError(ErrorKind.unknown_conversation)
        conversation = await self.store.conversations.get(turn.conversation_id)
        policy = await self.policy_for(turn.guild_id, conversation and conversation.parent_channel_id)
        source = next((img.size for img in turn.images if img.size), None) or turn.options.size
        size = largest_size(source, turn.options.model or policy.image_model, policy.max_size)
        options = ImageOptions(action="edit", size=size,
                               quality=lower_quality(policy.max_quality, "high"))
        checked = policy.clamp(options.merged_over(turn.options))
        width, height = (int(part) for part in size.split("x"))
        quality = checked.quality if checked.quality in _IMAGE_TOKENS_1024 else "high"
        tokens = _IMAGE_TOKENS_1024[quality] * width * height // (1024 * 1024)
        tokens += 100 * (checked.partial_images or 0)
        cost = self.prices.cost(Usage(image_output=tokens), checked.model)
        return UpscalePlan(options, cost)

    async def reserved_spend(self, guild_id: int) -> float:
        """USD a server's unfinished turns still hold (their worst case, until settled)."""
        spend = await self.store.usage.spend(since=0.0, guild_id=guild_id)
        return spend.reserved

    async def allowance(self, actor: Actor) -> Allowance:
        """Images and spend left for `actor` today and this month, as admission counts them."""
        policy = await self.policy_for(actor.guild_id)
        now = dt.datetime.now(dt.UTC)
        today = day_start(now).timestamp()
        per_day, images_left = policy.user_daily_images(), 0
        if per_day:
            mine = await self.store.usage.totals(since=today, author_id=actor.user_id)
            pending = await self.store.usage.pending(author_id=actor.user_id)
            images_left = max(0, per_day - mine.images - pending)
        daily, monthly = policy.daily_spend(), policy.monthly_spend()
        daily_left = monthly_left = 0.0
        if actor.guild_id is not None and daily:  # settled spend plus reservations
            spent = await self.store.usage.spend(since=today, guild_id=actor.guild_id)
            daily_left = max(0.0, daily - spent.settled - spent.reserved)
        if actor.guild_id is not None and monthly:
            spent = await self.store.usage.spend(since=month_start(now).timestamp(),
                                                 guild_id=actor.guild_id)
            monthly_left = max(0.0, monthly - spent.settled - spent.reserved)
        return Allowance(
            exempt=policy.is_exempt(actor), images_per_day=per_day, images_left=images_left,
            daily_spend=daily if actor.guild_id else 0.0, daily_spend_left=daily_left,
            monthly_spend=monthly if actor.guild_id else 0.0, monthly_spend_left=monthly_left,
            day_resets=int(next_day(now).timestamp()),
            month_resets=int(next_month(now).timestamp()),
        )

    async def admit_text(self, actor: Actor, amount: float) -> None:
        """Check that `actor` may make a text-only call costing up to `amount` (e.g. /describe):
        access, and room under the spend caps."""
        policy = await self.policy_for(actor.guild_id, actor.channel_id)
        policy.check_access(actor)
        await self.admission.check_spend(policy, actor, amount)

    async def record_text_spend(
        self, actor: Actor, kind: str, usage: Usage, cost_usd: float
    ) -> None:
        """Count a text-only call (e.g. /describe) against the spend caps."""
        await self.store.usage.record_text(guild_id=actor.guild_id, author_id=actor.user_id,
                                           kind=kind, usage=usage, cost_usd=cost_usd)

    async def unfinished_of(self, user_id: int) -> list[tuple[Turn, int | None]]:
        """A member's queued and running turns, each with its queue position (None: running)."""
        turns = [t for t in await self.store.turns.unfinished() if t.author_id == user_id]
        return [(t, self.scheduler.position(t.id) if t.status is TurnStatus.queued else None)
                for t in turns]

    async def top_users(self, guild_id: int, *, since: float) -> list[tuple[int, int, float]]:
        """(user id, images, USD) of a server's biggest users since `since`."""
        return await self.store.usage.top_users(guild_id, since=since)

    async def daily_usage(self, guild_id: int, *, since: float) -> list[DailyUsage]:
        return await self.store.usage.daily(since=since, guild_id=guild_id)

    # ------------------------------------------------------------------ lifecycle
    async def recover(self) -> int:
        """Pick up every turn a previous run left queued or running, in order. (A fleet-wide
        queue needs no recovery: any process claims such turns, taking over expired leases.)"""
        if self.scheduler.shared:
            return 0
        turns = await self.store.turns.unfinished()
        for turn in turns:
            if turn.status is TurnStatus.running and turn.response_id and not self.images.background:
                await self._fail(turn, GenerationError(ErrorKind.connection),
                                 detail="interrupted by a restart")
                continue
            try:
                await self._enqueue(turn)
            except Exception:
                log.exception("Could not resume turn %s", turn.id)
        if turns:
            log.info("Resumed %d unfinished turn(s)", len(turns))
        return len(turns)

    async def shutdown(self, grace: float) -> None:
        """Take no new turns; give running ones `grace` seconds; say which ones will resume."""
        running = self.scheduler.running_turn_ids()
        await self.scheduler.shutdown(grace)
        await self.tasks.cancel_all()
        if self.presenter is None:
            return
        for turn_id in running:
            turn = await self.store.turns.get(turn_id)
            if turn is not None and not turn.status.terminal:
                try:
                    await self.presenter.show_progress(turn, Progress(Stage.paused))
                except Exception:
                    log.info("Could not mark turn %s as paused", turn_id, exc_info=True)


class TurnListener(Protocol):
    def __call__(self, event: str, turn: Turn, error: UserFacingError | None) -> None: ...
