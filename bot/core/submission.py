"""Submitting a request: the prompt cleaned, the parent it continues from resolved (a reroll
repeats its source), the options chosen (request over thread over the member's own defaults over
the server's), the worst case reserved, the turn recorded through the gate's `record` and handed
to the runner; a request for variants becomes that many sibling turns.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
from collections.abc import Awaitable

from bot.core.admission import Hold
from bot.core.errors import ErrorKind, UserFacingError
from bot.core.gate import Gate
from bot.core.generation import Generation, head_of
from bot.core.models import Conversation, InputImage, Turn, TurnKind, TurnRequest, TurnStatus
from bot.core.options import ImageOptions
from bot.core.policy import Actor, EffectivePolicy
from bot.core.preferences import Preferences
from bot.core.prompts import clean_prompt
from bot.core.runner import Runner
from bot.store.protocol import Store

log = logging.getLogger(__name__)


def _variant_of(request: TurnRequest) -> tuple[int, int, int] | None:
    """(group, index, count) of a variant turn, None for a lone one."""
    if request.variant_group is None:
        return None
    return request.variant_group, request.variant_index or 1, request.variants


class Submissions:
    """Records requests as queued turns and hands them to the runner."""

    def __init__(self, store: Store, gate: Gate, runner: Runner, generation: Generation,
                 preferences: Preferences) -> None:
        self.store = store
        self.gate = gate
        self.runner = runner
        self.generation = generation
        self.preferences = preferences

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
        mine = await self.preferences.options_within(request.author_id, policy)
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
            options, prompt_chars=len(prompt) + await self.generation.rebuilt_chars(parent or follows),
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
                await self.gate.check_owner(turn, actor)
                await self.runner.cancel(turn)  # the set was cancelled while it was being asked
        assert first is not None
        return first

    async def _set_cancelled(self, first: Turn) -> bool:
        current = await self.store.turns.get(first.id)
        return current is not None and current.status is TurnStatus.cancelled

    async def _existing_turn(self, turn_id: int | None, conversation: Conversation) -> Turn:
        turn = await self.store.turns.get(turn_id) if turn_id is not None else None
        if turn is None or turn.conversation_id != conversation.id:
            raise UserFacingError(ErrorKind.unknown_conversation)
        return turn
