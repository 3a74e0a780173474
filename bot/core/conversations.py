"""The rules of a conversation: the service the Discord layer calls. It looks up turns and
conversations (checked against where an interaction came from), keeps requests of one conversation
in arrival order, and makes the changes members ask for (continue from, delete, cancel, retry).

Nothing here knows Discord. Requests are recorded by `Submissions` (`submission.py`) through the
gate (`gate.py`), rendered by the runner (`runner.py`), and `Outcomes` (`outcomes.py`) records and
shows how each ended through the ports (`ports.py`) the Discord layer implements.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections import deque
from collections.abc import Awaitable
from typing import TYPE_CHECKING

from bot.core.accounts import UpscalePlan
from bot.core.admission import Hold
from bot.core.errors import ErrorKind, UserFacingError
from bot.core.generation import head_of
from bot.core.models import (
    Conversation,
    InputImage,
    Turn,
    TurnKind,
    TurnRequest,
    TurnStatus,
)
from bot.core.options import ImageOptions
from bot.core.policy import Actor
from bot.store.protocol import Store

if TYPE_CHECKING:
    from bot.core.gate import Gate, Place
    from bot.core.runner import Runner
    from bot.core.submission import Submissions

log = logging.getLogger(__name__)

# how long a button on a result just posted waits for that result to be recorded (it must
# still answer within Discord's 3 s: Receiving and Responding → Responding to an Interaction)
DELIVERY_WAIT_SECONDS = 2.0








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
    """The rules of a conversation: what a request continues from, recorded through the gate and
    handed to the runner; and the changes members make to a conversation (continue from, delete,
    cancel), after the gate's access and ownership checks."""

    def __init__(self, store: Store, gate: Gate, runner: Runner, submissions: Submissions) -> None:
        self.store = store
        self.gate = gate
        self.runner = runner
        self.submissions = submissions
        self.turnstile = Turnstile()






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


    async def turns_in(self, conversation_id: int) -> list[Turn]:
        """Every turn of a conversation, oldest first (for /history and exports)."""
        return await self.store.turns.in_conversation(conversation_id)

    # ------------------------------------------------------------------ submitting
    async def submit(self, request: TurnRequest, actor: Actor, *, hold: Hold | None = None,
                     ready: Awaitable[None] | None = None) -> Turn:
        """Validate a request, record it as a queued turn (admitted and reserved atomically;
        `hold`, from `admit`, is replaced by it), schedule it; its message waits for `ready`
        (`Submissions.submit`)."""
        return await self.submissions.submit(request, actor, hold=hold, ready=ready)








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
