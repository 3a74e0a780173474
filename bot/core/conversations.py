"""The rules of a conversation: which turn a request continues from, the order requests of one
conversation are taken in, the changes members make to it, and the record of how each turn ended.

Nothing here knows Discord. The Discord layer hands the service `TurnRequest`s; the gate
(`gate.py`) admits them, the runner (`runner.py`) renders them, and `Outcomes` records and shows
how each ended through the `Presenter` the Discord layer implements.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
import secrets
import unicodedata
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

from bot.core.accounts import Accounts, UpscalePlan
from bot.core.admission import Hold
from bot.core.delivery import DELIVERY_RETRY_SECONDS, Deliveries
from bot.core.errors import ErrorKind, UserFacingError
from bot.core.models import (
    Conversation,
    Delivery,
    InputImage,
    Progress,
    Turn,
    TurnKind,
    TurnRequest,
    TurnResult,
    TurnStatus,
    Usage,
    UserPrefs,
)
from bot.core.options import ImageOptions
from bot.core.placing import Placements
from bot.core.policy import Actor, EffectivePolicy
from bot.core.runner import chain_context, head_of
from bot.store.protocol import Store

if TYPE_CHECKING:
    from bot.core.gate import Gate, Place
    from bot.core.runner import Runner

log = logging.getLogger(__name__)

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

def _variant_of(request: TurnRequest) -> tuple[int, int, int] | None:
    """(group, index, count) of a variant turn, None for a lone one."""
    if request.variant_group is None:
        return None
    return request.variant_group, request.variant_index or 1, request.variants


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



class Outcomes:
    """The record of how each turn ended and how it is shown: the result delivered and recorded,
    a failure recorded and shown, the requester pinged, listeners told."""

    def __init__(
        self,
        store: Store,
        accounts: Accounts,
        placements: Placements,
        *,
        presenter: Presenter | None = None,
        key_failed: Callable[[int], Awaitable[None]] | None = None,
        delivery_retry_seconds: float = DELIVERY_RETRY_SECONDS,
    ) -> None:
        self.store = store
        self.accounts = accounts
        self.placements = placements
        self.presenter = presenter
        # how the Discord layer tells a server's managers that its own key stopped working
        self.key_failed = key_failed
        self.listeners: list[TurnListener] = []
        # the one path of every billed result (and of the failure that stands for one)
        self.delivery = Deliveries(store, accounts.prices, placements, presenter=presenter,
                                   notify=self.notify, retry_seconds=delivery_retry_seconds)

    async def fail(
        self,
        turn: Turn,
        error: UserFacingError,
        status: TurnStatus = TurnStatus.failed,
        *,
        show: bool = True,
        detail: str = "",
        billed: Usage | None = None,
        paid: bool = False,
    ) -> None:
        """Record and show how a turn failed (`paid`: its result was billed and is recorded:
        its failure, whose Retry shows that result, is retried as the result was)."""
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
        first_failure = own_key_failed and await self.accounts.own_key_failed(turn)
        await self.store.turns.finish_failed(
            turn.id, status=status, error_kind=error.kind.name, error_detail=detail,
            usage=billed or None,
            cost_usd=self.accounts.prices.cost(billed) if billed else 0.0,
        )
        self.notify(status.value, turn, error)
        if own_key_failed:
            if first_failure:
                await self.tell_key_failed(turn)
            error = UserFacingError(ErrorKind.own_key_failed)  # what the member is shown
        if show and self.presenter is not None:
            await self.placements.wait(turn.id)  # shown in its progress message, not beside it
            current = await self.store.turns.get(turn.id) or turn
            await self.delivery.show_failure(
                current, error, paid=paid,
                ping=status is TurnStatus.failed and current.progress_message_id is not None,
            )
        self.placements.forget(turn.id)

    def notify(self, event: str, turn: Turn, error: UserFacingError | None = None) -> None:
        for listener in self.listeners:
            try:
                listener(event, turn, error)
            except Exception:
                log.exception("Turn listener failed")

    async def tell_key_failed(self, turn: Turn) -> None:
        if self.key_failed is not None and turn.guild_id is not None:
            try:
                await self.key_failed(turn.guild_id)
            except Exception:
                log.warning("Could not tell server %s its key failed", turn.guild_id,
                            exc_info=True)



class ConversationService:
    """The rules of a conversation: what a request continues from, recorded through the gate and
    handed to the runner; and the changes members make to a conversation (continue from, delete,
    cancel), after the gate's access and ownership checks."""

    def __init__(self, store: Store, gate: Gate, runner: Runner) -> None:
        self.store = store
        self.gate = gate
        self.runner = runner
        self.turnstile = Turnstile()
        self._locales: dict[int, str] = {}

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
        policy = await self.gate.policy_for(guild_id)
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

    async def head(self, conversation: Conversation) -> Turn | None:
        """The turn a plain reply continues from: the pinned head, else the latest result."""
        return await head_of(self.store, conversation)

    async def turn_for_message(self, message_id: int) -> Turn | None:
        return await self.store.turns.by_message(message_id)

    async def turn(self, turn_id: int) -> Turn | None:
        """A turn as recorded; one whose result is being posted here, once that is recorded, or
        as it stands after `DELIVERY_WAIT_SECONDS` (a button clicked the moment the result
        appears acts on the finished turn)."""
        delivering = self.runner.delivering(turn_id)
        if delivering is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(delivering.wait(), DELIVERY_WAIT_SECONDS)
        return await self.store.turns.get(turn_id)

    async def turn_in(self, turn_id: int, place: Place, *, server_wide: bool = False) -> Turn:
        """The turn a button or form names, once the gate has checked that it belongs to the
        server and channel the interaction came from (`server_wide`: the server only)."""
        turn = await self.turn(turn_id)
        conversation = await self.store.conversations.get(turn.conversation_id) if turn else None
        if turn is None or conversation is None:
            raise UserFacingError(ErrorKind.unknown_conversation)
        self.gate.check_place(conversation, place, server_wide=server_wide)
        return turn

    async def current(self, turn: Turn) -> Turn:
        """A turn already in hand (checked), as recorded now."""
        return await self.turn(turn.id) or turn

    async def conversation_in(self, conversation_id: int, place: Place) -> Conversation:
        """The conversation a button or menu names, checked as `turn_in` checks a turn."""
        conversation = await self.store.conversations.get(conversation_id)
        if conversation is None:
            raise UserFacingError(ErrorKind.unknown_conversation)
        self.gate.check_place(conversation, place)
        return conversation

    async def parent_of(self, turn: Turn) -> Turn | None:
        return await self.store.turns.get(turn.parent_id) if turn.parent_id else None

    async def inputs_of(self, turn: Turn) -> list[InputImage]:
        """The images attached to a turn's request."""
        return await self.store.turns.inputs(turn.id) if turn.input_image_count else []

    async def lineage(self, turn: Turn) -> list[Turn]:
        return await self.store.turns.lineage(turn.id)

    async def turns_in(self, conversation_id: int) -> list[Turn]:
        """Every turn of a conversation, oldest first (for /history and exports)."""
        return await self.store.turns.in_conversation(conversation_id)

    # ------------------------------------------------------------------ submitting
    async def submit(self, request: TurnRequest, actor: Actor, *, hold: Hold | None = None,
                     ready: Awaitable[None] | None = None) -> Turn:
        """Validate a request, record it as a queued turn (admitted and reserved atomically;
        `hold`, from `admit`, is replaced by it), schedule it; its message waits for `ready`."""
        if request.variants > 1 and request.variant_group is None:
            return await self._submit_variants(request, actor, hold, ready)
        conversation = await self._conversation_of(request)
        policy = await self.gate.policy_for(conversation.guild_id, conversation.parent_channel_id)
        await self.gate.may_use(actor)  # (the gate's order: DM policy and access, then the refine rule)
        policy.check_access(actor)  # and the rules of the conversation's own channel
        if request.kind is not TurnKind.root:
            await self.gate.check_refine(actor, conversation)
        elif not self.gate.may_start_in(actor, conversation):
            # another member's first turn would become this conversation's head: the Discord
            # layer opens a conversation of its own beside it instead
            raise UserFacingError(ErrorKind.not_allowed, reason="starter_only")

        prompt, parent, follows, inputs, request_options, remix_of = await self._resolve(
            request, conversation
        )
        own = 2 if request_options.mask else 0  # zoom, pan, vary region: canvas and mask
        if len(inputs) - own > self.gate.max_input_images:
            raise UserFacingError(ErrorKind.too_many_images, limit=self.gate.max_input_images)
        mine = await self._prefs_options(request.author_id, policy)
        options = (request_options.merged_over(conversation.options).merged_over(mine)
                   .merged_over(policy.defaults()))
        options = policy.clamp(options)
        context_has_image = bool(parent and parent.images) or remix_of is not None or (
            request.kind is TurnKind.reply and request.parent_turn_id is None
            and (bool(follows and follows.images)
                 or self.runner.has_conversation(conversation.id))
        )
        if options.action == "edit" and not inputs and not context_has_image:
            raise UserFacingError(ErrorKind.edit_needs_image)
        amount = self.gate.accounts.prices.reservation(  # (a chain rebuilt re-sends its prompts)
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
        return await self.runner.enqueue(turn, ready, admitted_now=True)

    async def _rebuilt_chars(self, parent: Turn | None) -> int:
        """Characters of the chain a turn re-sends when it is rebuilt (without stored
        responses, or when the parent has none): counted in its reservation."""
        if parent is None or (self.runner.images.store and parent.response_id):
            return 0
        lineage = await self.store.turns.lineage(parent.id)
        return len(chain_context(lineage, self.runner.max_chain_turns, image=True))

    async def _record(
        self, request: TurnRequest, actor: Actor, policy: EffectivePolicy, hold: Hold | None, *,
        conversation: Conversation, parent: Turn | None, prompt: str, options: ImageOptions,
        inputs: list[InputImage], remix_of: int | None, amount: float,
    ) -> Turn:
        """Admit and record a turn: check, reserve and insert with no gap between, under the
        locks of every limit it counts (`hold`, its earlier admission, is replaced by it)."""
        async def create(own_key: bool) -> int:
            return await self.store.turns.create(
                conversation_id=conversation.id, parent_id=parent.id if parent else None,
                kind=request.kind, guild_id=conversation.guild_id, author_id=request.author_id,
                prompt=prompt, options=options, locale=request.locale,
                source_message_id=request.source_message_id, inputs=inputs,
                remix_of_turn_id=remix_of, variant=_variant_of(request), reserved_usd=amount,
                own_key=own_key, exempt=policy.is_exempt(actor),
            )

        turn_id = await self.gate.record(actor, policy, hold, guild_id=conversation.guild_id,
                                         amount=amount, create=create)
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
            prompt = clean_prompt(request.prompt, max_chars=self.gate.max_prompt_chars)
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
                follows = await head_of(self.store, conversation)
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
            head = await head_of(self.store, conversation) if conversation else None
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

    async def _existing_turn(self, turn_id: int | None, conversation: Conversation) -> Turn:
        turn = await self.store.turns.get(turn_id) if turn_id is not None else None
        if turn is None or turn.conversation_id != conversation.id:
            raise UserFacingError(ErrorKind.unknown_conversation)
        return turn

    # ------------------------------------------------------------------ actions on turns
    async def cancel(self, turn: Turn, actor: Actor) -> bool:
        """Cancel a queued or running turn (its author or a moderator); for a variant, the whole
        set. False if already over."""
        await self.gate.check_owner(turn, actor)
        return await self.runner.cancel(turn)

    async def delete(self, turn: Turn, actor: Actor) -> None:
        """Mark a turn deleted and drop its stored inputs (listeners drop what they cached of
        it). Its children keep their chain; the head moves back if needed."""
        await self.gate.check_owner(turn, actor)
        async with self.store.transaction():
            await self.store.turns.mark_deleted(turn.id)
            conversation = await self.store.conversations.get(turn.conversation_id)
            if conversation and conversation.head_turn_id == turn.id:
                await self.store.conversations.set_head(turn.conversation_id, None)
        self.runner.outcomes.notify("deleted", turn)

    async def continue_from(self, turn: Turn, actor: Actor) -> None:
        conversation = await self.store.conversations.get(turn.conversation_id)
        await self.gate.check_change(actor, conversation)
        if turn.status is not TurnStatus.done or turn.deleted:
            raise UserFacingError(ErrorKind.unknown_conversation)
        await self.store.conversations.set_head(turn.conversation_id, turn.id)

    async def deliver_again(self, turn: Turn, actor: Actor) -> bool:
        """Retry of a turn whose billed result Discord did not take: show that result (never a
        new generation). False if the turn has no such result (then Retry asks anew)."""
        conversation = await self.store.conversations.get(turn.conversation_id)
        await self.gate.check_change(actor, conversation)
        return await self.runner.deliver_again(turn)

    async def plan_upscale(self, turn: Turn) -> UpscalePlan:
        """An upscale of a result at this server's largest size and highest quality."""
        conversation = await self.store.conversations.get(turn.conversation_id)
        policy = await self.gate.policy_for(turn.guild_id,
                                            conversation and conversation.parent_channel_id)
        return self.gate.accounts.upscale_plan(turn, policy)


class TurnListener(Protocol):
    def __call__(self, event: str, turn: Turn, error: UserFacingError | None) -> None: ...
