"""The core put together: accounts, the gate, the runner, outcomes and the conversation rules,
each given its collaborators and the ports (`ports.py`) it uses when it is built (nothing is
assigned afterwards)."""

from __future__ import annotations

from dataclasses import dataclass

from bot.core.accounts import Accounts
from bot.core.conversations import ConversationService
from bot.core.delivery import DELIVERY_RETRY_SECONDS
from bot.core.describe import Describer
from bot.core.gate import Gate, Policies
from bot.core.generation import Generation
from bot.core.image_client import ImageClient
from bot.core.jobs import JobScheduler, Scheduler
from bot.core.keys import ServerKeys
from bot.core.outcomes import Outcomes
from bot.core.placing import Placements
from bot.core.policy import Ceilings
from bot.core.ports import KeyFailureNotice, Members, Presenter, ResultImages
from bot.core.preferences import Preferences
from bot.core.runner import Runner
from bot.core.submission import Submissions
from bot.core.tasks import BackgroundTasks
from bot.store.protocol import Store


@dataclass(frozen=True, slots=True)
class Ports:
    """What the core asks of the world outside it (the Discord layer implements all four)."""

    presenter: Presenter
    result_images: ResultImages
    members: Members
    key_failures: KeyFailureNotice


@dataclass(frozen=True, slots=True)
class Core:
    """Every part of the core, built once per process."""

    conversations: ConversationService
    gate: Gate
    runner: Runner
    accounts: Accounts
    outcomes: Outcomes
    preferences: Preferences

    async def recover(self) -> int:
        return await self.runner.recover()

    async def shutdown(self, grace: float) -> None:
        await self.runner.shutdown(grace)


def build_core(
    store: Store,
    images: ImageClient,
    ports: Ports,
    *,
    ceilings: Ceilings,
    prices: dict[str, dict[str, float]],
    describer: Describer,
    server_keys: ServerKeys | None,
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
    """The core of one process, around `store`, the operator's image client and the `ports`
    (`server_keys`: None when the instance keeps no servers' keys; `scheduler`: None for this
    process's own queue)."""
    accounts = Accounts(store, ceilings, prices, mainline=images.model,
                        image_model=images.image_model, server_keys=server_keys,
                        per_user_slots=per_user_queued + per_user_concurrent,
                        per_user_queued=per_user_queued)
    if scheduler is None:
        scheduler = JobScheduler(max_concurrent=max_concurrent,
                                 per_user_concurrent=per_user_concurrent,
                                 per_user_queued=per_user_queued)
    policies = Policies(store, ceilings, shared=scheduler.shared)
    gate = Gate(store, policies, accounts, members=ports.members,
                max_prompt_chars=max_prompt_chars, max_input_images=max_input_images,
                max_attachment_bytes=max_attachment_bytes)
    tasks = BackgroundTasks()
    placements = Placements(tasks)
    outcomes = Outcomes(store, accounts, placements, presenter=ports.presenter,
                        key_failures=ports.key_failures,
                        delivery_retry_seconds=delivery_retry_seconds)
    generation = Generation(store, images, accounts, ports.result_images,
                            max_chain_turns=max_chain_turns)
    runner = Runner(store, images, gate=gate, accounts=accounts, outcomes=outcomes,
                    placements=placements, tasks=tasks, generation=generation,
                    presenter=ports.presenter, describer=describer, scheduler=scheduler)
    preferences = Preferences(store, policies)
    submissions = Submissions(store, gate, runner, generation, preferences)
    conversations = ConversationService(store, gate, runner, submissions)
    return Core(conversations, gate, runner, accounts, outcomes, preferences)
