"""The runner: takes a recorded turn through the queue to its result. It places the turn's
progress message, has `Generation` (`generation.py`) start or resume its request, and hands
the result to delivery; it cancels turns, recovers those a previous run left, and pauses running
ones at shutdown. With `generation.py` it is the only caller of the image and the text client
(`tests/unit/test_gate_shape.py` enforces it): nothing reaches the API without passing the gate
first.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING

from bot.core.accounts import Accounts
from bot.core.admission import Hold
from bot.core.describe import Describer, Description
from bot.core.errors import (
    DeliveryError,
    ErrorKind,
    GenerationError,
    UserFacingError,
)
from bot.core.gate import Gate
from bot.core.generation import Generation
from bot.core.image_client import ImageClient
from bot.core.image_request import GenerationRequest
from bot.core.jobs import Job, Scheduler
from bot.core.models import (
    InputImage,
    Progress,
    Stage,
    Turn,
    TurnResult,
    TurnStatus,
)
from bot.core.placing import Placements
from bot.core.ports import Presenter
from bot.core.tasks import BackgroundTasks
from bot.store.protocol import Store

if TYPE_CHECKING:
    from bot.core.outcomes import Outcomes

log = logging.getLogger(__name__)


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
        generation: Generation,
        presenter: Presenter,
        describer: Describer,
        scheduler: Scheduler,
    ) -> None:
        self.store = store
        self.images = images
        self.generation = generation
        self.gate = gate
        self.accounts = accounts
        self.outcomes = outcomes
        self.placements = placements
        self.tasks = tasks
        self.presenter = presenter
        self.describer = describer
        self.scheduler = scheduler
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
        beside = turn.progress_message_id is None
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


    # ------------------------------------------------------------------ running
    def _on_position(self, turn_id: int, position: int) -> None:
        if position <= 0:  # it left the queue (with a fleet queue: perhaps run elsewhere)
            self._queued_turns.pop(turn_id, None)
            return
        turn = self._queued_turns.get(turn_id)
        if turn is None:
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
        async def on_progress(progress: Progress) -> None:
            await self._progress(turn, progress)

        result = await self.generation.generate(turn, marked, on_progress)
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
            billed = await self.generation.stop_paying(turn)
        if unplaced is not None:
            await self.outcomes.fail(turn, unplaced[0], show=unplaced[1], billed=billed)
            return
        await self.outcomes.fail(turn, UserFacingError(ErrorKind.cancelled), TurnStatus.cancelled,
                                 billed=billed)

    async def _progress(self, turn: Turn, progress: Progress) -> None:
        if self.placements.hold(turn.id, progress):
            return  # (held until the progress message exists)
        if turn.progress_message_id is None:
            turn = self.placements.placed(turn.id) or turn
        try:
            await self.presenter.show_progress(turn, progress)
        except Exception:
            log.warning("Could not show progress of turn %s", turn.id, exc_info=True)













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
        for turn_id in running:
            turn = await self.store.turns.get(turn_id)
            if turn is not None and not turn.status.terminal:
                try:
                    await self.presenter.show_progress(turn, Progress(Stage.paused))
                except Exception:
                    log.info("Could not mark turn %s as paused", turn_id, exc_info=True)

