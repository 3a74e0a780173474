"""Asking the API for one turn's result: the request (chained to the parent's response, or the
chain rebuilt from the parent's image and prompt lineage; a remix referring to its source image by
id, or sending its bytes), started or resumed after a restart with the key the turn is billed to,
and stopped when its user cancels it. The runner's half that calls the image client
(`tests/unit/test_gate_shape.py`: only the runner's modules do).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from bot.core.accounts import Accounts
from bot.core.errors import (
    ErrorKind,
    GenerationError,
    PreviousResponseNotFound,
    ReferenceNotFound,
    ResponseOver,
    UserFacingError,
)
from bot.core.image_client import ImageClient
from bot.core.image_request import GenerationRequest
from bot.core.image_stream import ProgressSink
from bot.core.models import Conversation, InputImage, Turn, TurnKind, TurnResult, TurnStatus, Usage
from bot.core.ports import ResultImages
from bot.store.protocol import Store

log = logging.getLogger(__name__)


async def head_of(store: Store, conversation: Conversation) -> Turn | None:
    """The turn a plain reply continues from: the pinned head, else the latest result."""
    if conversation.head_turn_id is not None:
        turn = await store.turns.get(conversation.head_turn_id)
        if turn is not None and turn.status is TurnStatus.done and not turn.deleted:
            return turn
    return await store.turns.latest_done(conversation.id)


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


class Generation:
    """Builds, starts, resumes and stops the API request of a turn."""

    def __init__(self, store: Store, images: ImageClient, accounts: Accounts,
                 result_images: ResultImages, *, max_chain_turns: int = 20) -> None:
        self.store = store
        self.images = images  # the operator's
        self.accounts = accounts
        self.result_images = result_images
        self.max_chain_turns = max_chain_turns  # prompts a rebuilt chain re-sends

    async def rebuilt_chars(self, parent: Turn | None) -> int:
        """Characters of the chain a turn re-sends when it is rebuilt (without stored
        responses, or when the parent has none): counted in its reservation."""
        if parent is None or (self.images.store and parent.response_id):
            return 0
        lineage = await self.store.turns.lineage(parent.id)
        return len(chain_context(lineage, self.max_chain_turns, image=True))

    async def generate(self, turn: Turn, marked: asyncio.Future[None],
                       on_progress: ProgressSink) -> TurnResult:
        """The turn's result, asked for (or resumed) while `marked` records it as running;
        its progress goes to `on_progress`."""
        async def on_response_id(response_id: str, sequence: int | None) -> None:
            await asyncio.shield(marked)  # (running first, then its response id)
            await self.store.turns.set_response_id(turn.id, response_id, sequence)

        images = await self.images_for(turn)
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
        amount = self.accounts.prices.reservation(
            turn.options, prompt_chars=len(request.prompt) + len(request.context_text or ""),
            input_images=len(request.input_images),
        )
        await self.store.turns.raise_reservation(turn.id, amount)

    async def stop_paying(self, turn: Turn) -> Usage | None:
        """Cancel a turn's background response with the key that started it (a server's own
        key's response is that account's: another key can neither see nor stop it)."""
        assert turn.response_id is not None
        try:
            images = await self.images_for(turn)
        except UserFacingError:
            log.warning("Turn %s: its server's own key is unusable; its response cannot be "
                        "cancelled", turn.id)
            return None
        return await images.cancel(turn.response_id)

    async def images_for(self, turn: Turn) -> ImageClient:
        """The operator's image client, or the one of the server's own key (never the
        operator's for a server that pays itself)."""
        if not turn.own_key:
            return self.images
        return await self.accounts.server_client(turn.guild_id)

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
        try:
            images = await self.result_images.fetch_result_images(source)
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
        parent = await head_of(self.store, conversation) if conversation else None
        if parent is not None:
            await self.store.turns.set_parent(turn.id, parent.id)
        return parent

    async def _reroot(self, request: GenerationRequest, parent: Turn) -> None:
        """Carry the chain without the API's memory: the parent image plus the prompt lineage."""
        request.previous_response_id = None
        lineage = await self.store.turns.lineage(parent.id)
        images: list[InputImage] = []
        if parent.images:
            try:
                images = await self.result_images.fetch_result_images(parent)
            except Exception:
                log.warning("Could not fetch the images of turn %s", parent.id, exc_info=True)
        if not images and request.options.action == "edit" and not request.input_images:
            raise UserFacingError(ErrorKind.edit_needs_image)
        request.context_text = chain_context(lineage, self.max_chain_turns, image=bool(images))
        request.input_images = images + request.input_images
