"""How each turn ended, recorded and shown: a result delivered and recorded (through
`Deliveries`, the one path of every billed result), a failure recorded and shown, the requester
pinged, a server's managers told that its own key failed, listeners told of every event."""

from __future__ import annotations

import logging

from bot.core.accounts import Accounts
from bot.core.delivery import DELIVERY_RETRY_SECONDS, Deliveries
from bot.core.errors import ErrorKind, UserFacingError
from bot.core.models import Turn, TurnStatus, Usage
from bot.core.placing import Placements
from bot.core.ports import KeyFailureNotice, Presenter, TurnListener
from bot.store.protocol import Store

log = logging.getLogger(__name__)


class Outcomes:
    """The record of how each turn ended and how it is shown: the result delivered and recorded,
    a failure recorded and shown, the requester pinged, listeners told."""

    def __init__(
        self,
        store: Store,
        accounts: Accounts,
        placements: Placements,
        *,
        presenter: Presenter,
        key_failures: KeyFailureNotice,
        delivery_retry_seconds: float = DELIVERY_RETRY_SECONDS,
    ) -> None:
        self.store = store
        self.accounts = accounts
        self.placements = placements
        self.presenter = presenter
        self.key_failures = key_failures
        self.listeners: list[TurnListener] = []  # (metrics, retention, cogs' caches)
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
        if show:
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
        if turn.guild_id is not None:
            try:
                await self.key_failures.tell_key_failed(turn.guild_id)
            except Exception:
                log.warning("Could not tell server %s its key failed", turn.guild_id,
                            exc_info=True)
