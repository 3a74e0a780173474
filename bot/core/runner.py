"""The runner: takes a recorded turn through the queue to its result. It places the turn's
progress message, claims and starts (or resumes after a restart) the generation, renders the
request (chained to its parent, or rebuilt from its image and lineage), retries what may be
retried, and hands the result to delivery. It is the only caller of the image and the text
client (`tests/unit/test_code_shape.py` enforces it): nothing reaches the API without passing the
gate first.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from bot.core.accounts import Accounts
from bot.core.admission import Hold
from bot.core.describe import Describer, Description
from bot.core.errors import (
    DeliveryError,
    ErrorKind,
    GenerationError,
    PreviousResponseNotFound,
    ReferenceNotFound,
    ResponseOver,
    UserFacingError,
)
from bot.core.gate import Gate
from bot.core.image_client import GenerationRequest, ImageClient, ProgressSink
from bot.core.jobs import Job, JobScheduler, Scheduler
from bot.core.models import (
    InputImage,
    Progress,
    Stage,
    Turn,
    TurnKind,
    TurnResult,
    TurnStatus,
    Usage,
)
from bot.core.placing import Placements
from bot.core.tasks import BackgroundTasks
from bot.store.protocol import Store

if TYPE_CHECKING:
    from bot.core.conversations import Outcomes, Presenter
    from bot.core.models import Conversation

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


async def render_test_image(images: ImageClient, request: GenerationRequest) -> TurnResult:
    """One generation outside any conversation: the operator's own `python -m bot doctor
    --generate` check (the operator asked for it and is shown its estimate first)."""
    return await images.generate(request)


class Runner:
    """Queues, starts, resumes and renders recorded turns; the only caller of the API clients."""

    def __init__(
        self,
        store: Store,
        images: ImageClient,
        *,
        gate: Gate,
        accounts: Accounts,
        outcomes: Outcomes,
        placements: Placements,
        tasks: BackgroundTasks,
        presenter: Presenter | None = None,
        describer: Describer | None = None,
        scheduler: Scheduler | None = None,
        max_concurrent: int = 4,
        per_user_concurrent: int = 1,
        per_user_queued: int = 3,
        max_chain_turns: int = 20,
    ) -> None:
        self.store = store
        self.images = images
        self.max_chain_turns = max_chain_turns  # prompts a rebuilt chain re-sends
        self.gate = gate
        self.accounts = accounts
        self.outcomes = outcomes
        self.placements = placements
        self.tasks = tasks
        self.presenter = presenter
        self.describer = describer
        self.scheduler: Scheduler = scheduler or JobScheduler(
            max_concurrent=max_concurrent, per_user_concurrent=per_user_concurrent,
            per_user_queued=per_user_queued, on_position=self._on_position,
        )
        self.scheduler.attach(self._run_job, self._on_position)
        self._unplaceable: dict[int, tuple[UserFacingError, bool]] = {}  # (why, show it)
        # turns whose (billed) result is in hand, set once it is posted and recorded
        self._delivering: dict[int, asyncio.Event] = {}
        self._queued_turns: dict[int, Turn] = {}
        self._cancel_requested: set[int] = set()
        self._cancelled_groups: set[int | None] = set()  # variant sets cancelled by a user

    def delivering(self, turn_id: int) -> asyncio.Event | None:
        """Set once the billed result of `turn_id`, in hand, is posted and recorded."""
        return self._delivering.get(turn_id)

    def has_conversation(self, conversation_id: int) -> bool:
        return self.scheduler.has_conversation(conversation_id)

    async def describe(self, image: InputImage, hold: Hold, *, language: str) -> Description:
        """Prompt ideas for an image: a text-only call the gate admitted (`hold`), made with
        the key it is billed to (the server's own, where the gate chose it)."""
        if self.describer is None:
            raise UserFacingError(ErrorKind.server)
        describer = self.describer
        if hold.own_key:
            client = await self.accounts.server_client(hold.guild_id)
            describer = Describer(client.openai, model=describer.model, prices=describer.prices)
        return await describer.describe(image, language=language, user_id=hold.user_id)

    async def enqueue(self, turn: Turn, ready: Awaitable[None] | None = None, *,
                       admitted_now: bool = False) -> Turn:
        """Schedule a recorded turn (`admitted_now`: by `submit`, not recovered after a
        restart). Its progress message is posted beside the generation (with a fleet-wide
        queue, no other process takes the turn until that message exists)."""
        beside = self.presenter is not None and turn.progress_message_id is None
        if turn.id in self._cancel_requested or turn.variant_group in self._cancelled_groups:
            # Cancel was clicked before it reached the queue
            self._cancel_requested.discard(turn.id)
            await self.outcomes.fail(turn, UserFacingError(ErrorKind.cancelled), TurnStatus.cancelled)
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
        self.outcomes.notify("queued", turn)
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
            if error.transient:  # Discord failing for a moment: the turn goes on, and its
                log.info("Turn %s: no progress message (%s); its result will be posted anew",
                         turn.id, error.detail[:200])  # result is posted by the delivery path
                self.placements.take_held(turn.id)
                return None
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
            await self.outcomes.fail(turn, error, show=show)
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
            await self.outcomes.fail(turn, error)
        except DeliveryError as error:
            await self.outcomes.fail(turn, error.user_error(), show=not error.orphaned,
                             detail=("orphaned: " if error.orphaned else "") + error.detail,
                             paid=turn.id in self._delivering)
        except Exception as exc:
            log.exception("Turn %s crashed", turn.id)
            await self.outcomes.fail(turn, UserFacingError(ErrorKind.server), detail=repr(exc))
        finally:
            delivered = self._delivering.pop(turn.id, None)
            if delivered is not None:
                delivered.set()
            self.placements.forget(turn.id)

    async def _render(self, job: Job, turn: Turn) -> None:
        """Generate the turn's image(s), record and deliver them (or deliver what an earlier run
        of the turn recorded: after a restart, a fleet takeover, or Retry)."""
        kept = None if job.admitted_now else await self.outcomes.delivery.recorded(turn)
        if kept is not None:
            self._delivering[turn.id] = asyncio.Event()
            await self.outcomes.delivery.deliver(turn, kept)
            return
        if turn.status is TurnStatus.queued and not job.admitted_now:
            # access may have been taken away while it waited
            conversation = await self.store.conversations.get(turn.conversation_id)
            await self.gate.still_allowed(turn, conversation)
        # recorded as running while the request goes out (before its response id is); a fleet
        # queue's claim has recorded it already
        marked = asyncio.ensure_future(
            asyncio.sleep(0) if self.scheduler.shared else self.store.turns.mark_running(turn.id)
        )
        self.outcomes.notify("running", turn)
        await self._progress(turn, Progress(Stage.started))
        result = await self._generate(turn, marked)
        self._delivering[turn.id] = asyncio.Event()
        delivery = self.outcomes.delivery
        await delivery.deliver(turn, await delivery.record(turn, result))

    async def _refused(self, job: Job, error: UserFacingError) -> None:
        """A turn the fleet queue refused at its claim (recorded as failed there): shown as a
        turn failing before its API call is, with admission's message."""
        turn = await self.store.turns.get(job.turn_id)
        if turn is not None:
            await self.outcomes.fail(turn, error, detail=turn.error_detail or "")

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
            billed = await self._stop_paying(turn)
        if unplaced is not None:
            await self.outcomes.fail(turn, unplaced[0], show=unplaced[1], billed=billed)
            return
        await self.outcomes.fail(turn, UserFacingError(ErrorKind.cancelled), TurnStatus.cancelled,
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
        amount = self.accounts.prices.reservation(
            turn.options, prompt_chars=len(request.prompt) + len(request.context_text or ""),
            input_images=len(request.input_images),
        )
        await self.store.turns.raise_reservation(turn.id, amount)

    async def _stop_paying(self, turn: Turn) -> Usage | None:
        """Cancel a turn's background response with the key that started it (a server's own
        key's response is that account's: another key can neither see nor stop it)."""
        assert turn.response_id is not None
        try:
            images = await self._images_for(turn)
        except UserFacingError:
            log.warning("Turn %s: its server's own key is unusable; its response cannot be "
                        "cancelled", turn.id)
            return None
        return await images.cancel(turn.response_id)

    async def _images_for(self, turn: Turn) -> ImageClient:
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
        parent = await head_of(self.store, conversation) if conversation else None
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

    # ------------------------------------------------------------------ actions on turns
    async def cancel(self, turn: Turn) -> bool:
        """Cancel a queued or running turn; for a variant, the whole set. False if already
        over. (The gate checked who may: `ConversationService.cancel`.)"""
        if turn.variant_group is not None:
            self._cancelled_groups.add(turn.variant_group)  # siblings still being submitted too
            siblings = await self.store.turns.variant_siblings(turn.variant_group)
            results = [await self._cancel_one(sibling) for sibling in siblings
                       if not sibling.status.terminal]
            return any(results) or len(results) == 0
        return await self._cancel_one(turn)

    async def _cancel_one(self, turn: Turn) -> bool:
        if turn.id in self._delivering:
            return False  # paid for: it is being shown (Cancel is too late)
        outcome = await self.scheduler.withdraw(turn.id)
        if outcome == "queued":
            self._queued_turns.pop(turn.id, None)
            await self.outcomes.fail(turn, UserFacingError(ErrorKind.cancelled), TurnStatus.cancelled)
            return True
        if outcome is None:
            current = await self.store.turns.get(turn.id)
            if current is not None and current.status is TurnStatus.queued:
                self._cancel_requested.add(turn.id)  # still on its way into the queue
                return True
        return outcome == "running"

    async def deliver_again(self, turn: Turn) -> bool:
        """Retry of a failed turn whose billed result is recorded: queue it again to show that
        result (once, however many clicks). False if it has no such result."""
        reopened = await self.outcomes.delivery.reopen(turn)
        if reopened:
            await self.enqueue(await self.store.turns.get(turn.id) or turn)
        return reopened is not None

    async def unfinished_of(self, user_id: int) -> list[tuple[Turn, int | None]]:
        """A member's queued and running turns, each with its queue position (None: running)."""
        turns = [t for t in await self.store.turns.unfinished() if t.author_id == user_id]
        return [(t, self.scheduler.position(t.id) if t.status is TurnStatus.queued else None)
                for t in turns]

    # ------------------------------------------------------------------ lifecycle
    async def recover(self) -> int:
        """Pick up every turn a previous run left queued or running, in order. (A fleet-wide
        queue needs no recovery: any process claims such turns, taking over expired leases.)"""
        if self.scheduler.shared:
            return 0
        turns = await self.store.turns.unfinished()
        for turn in turns:
            if (turn.status is TurnStatus.running and turn.response_id
                    and not self.images.background
                    and await self.outcomes.delivery.recorded(turn) is None):
                await self.outcomes.fail(turn, GenerationError(ErrorKind.connection),
                                 detail="interrupted by a restart")
                continue
            try:
                await self.enqueue(turn)
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

