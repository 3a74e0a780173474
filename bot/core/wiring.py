"""The core put together: accounts, the gate, the runner, outcomes and the conversation rules,
each given its collaborators when it is built (nothing is assigned afterwards)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.core.accounts import Accounts
from bot.core.conversations import ConversationService, Outcomes, Presenter
from bot.core.delivery import DELIVERY_RETRY_SECONDS
from bot.core.describe import Describer
from bot.core.gate import Gate, Members, Policies
from bot.core.image_client import ImageClient
from bot.core.jobs import Scheduler
from bot.core.keys import ServerKeys
from bot.core.placing import Placements
from bot.core.policy import Ceilings
from bot.core.runner import Runner
from bot.core.tasks import BackgroundTasks
from bot.store.protocol import Store


@dataclass(frozen=True, slots=True)
class Core:
    """Every part of the core, built once per process."""

    conversations: ConversationService
    gate: Gate
    runner: Runner
    accounts: Accounts
    outcomes: Outcomes

    async def recover(self) -> int:
        return await self.runner.recover()

    async def shutdown(self, grace: float) -> None:
        await self.runner.shutdown(grace)


def build_core(
    store: Store,
    images: ImageClient,
    *,
    ceilings: Ceilings,
    prices: dict[str, dict[str, float]],
    presenter: Presenter | None = None,
    members: Members | None = None,
    key_failed: Callable[[int], Awaitable[None]] | None = None,
    describer: Describer | None = None,
    server_keys: ServerKeys | None = None,
    scheduler: Scheduler | None = None,
    max_prompt_chars: int = 4000,
    max_input_images: int = 4,
    max_attachment_bytes: int = 20 * 1024 * 1024,
    max_concurrent: int = 4,
    per_user_concurrent: int = 1,
    per_user_queued: int = 3,
    max_chain_turns: int = 20,
    delivery_retry_seconds: float = DELIVERY_RETRY_SECONDS,
) -> Core:
    """The core of one process, around `store` and the operator's image client."""
    accounts = Accounts(store, ceilings, prices, mainline=images.model,
                        image_model=images.image_model, server_keys=server_keys,
                        per_user_slots=per_user_queued + per_user_concurrent,
                        per_user_queued=per_user_queued)
    policies = Policies(store, ceilings, shared=bool(scheduler is not None and scheduler.shared))
    gate = Gate(store, policies, accounts, members=members, max_prompt_chars=max_prompt_chars,
                max_input_images=max_input_images, max_attachment_bytes=max_attachment_bytes)
    tasks = BackgroundTasks()
    placements = Placements(tasks)
    outcomes = Outcomes(store, accounts, placements, presenter=presenter, key_failed=key_failed,
                        delivery_retry_seconds=delivery_retry_seconds)
    runner = Runner(store, images, gate=gate, accounts=accounts, outcomes=outcomes,
                    placements=placements, tasks=tasks, presenter=presenter, describer=describer,
                    scheduler=scheduler, max_concurrent=max_concurrent,
                    per_user_concurrent=per_user_concurrent, per_user_queued=per_user_queued,
                    max_chain_turns=max_chain_turns)
    conversations = ConversationService(store, gate, runner)
    return Core(conversations, gate, runner, accounts, outcomes)
