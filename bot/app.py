"""The bot: a `commands.AutoShardedBot` whose `setup_hook` builds the core and loads the cogs."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import discord
import yarl
from discord import app_commands
from discord.ext import commands
from openai import AsyncOpenAI

from bot.ack import shed
from bot.adapter import DiscordMembers, actor_of
from bot.config import Settings
from bot.core.accounts import Accounts
from bot.core.claim_limits import ClaimLimits
from bot.core.conversations import ConversationService
from bot.core.describe import Describer
from bot.core.errors import UserFacingError
from bot.core.gate import Gate
from bot.core.image_client import ImageClient, RetryPolicy
from bot.core.imaging import warm_up
from bot.core.keys import KeyBox, ServerKeys, audit_keys, probe_key
from bot.core.models import Turn
from bot.core.moderation import Moderation
from bot.core.openai_check import check_openai, models_to_check
from bot.core.options import ImageOptions
from bot.core.policy import Ceilings
from bot.core.retention import InputRetention
from bot.core.runner import Runner
from bot.core.wiring import Core, Ports, build_core
from bot.fleet import FleetScheduler
from bot.metrics import Metrics, MetricsServer
from bot.startup import SettingsRefused, StartupError
from bot.store import open_store, unreachable
from bot.store.postgres.database import PostgresDatabase
from bot.store.protocol import Store
from bot.ui.attachments import AttachmentReader
from bot.ui.buttons import TurnButton
from bot.ui.i18n import Translator, t
from bot.ui.modlog import ModLog
from bot.ui.presenter import DiscordPresenter
from bot.ui.replies import reply_privately, send_error
from bot.ui.router import Router

log = logging.getLogger(__name__)

KEY_CHECK_SECONDS = 15.0  # a server's own key is checked with one call, this long at most
HEALTH_WRITE_SECONDS = 2.0  # /healthz: a database that takes no write this long is unwritable

EXTENSIONS = (
    "bot.exts.imagine", "bot.exts.settings", "bot.exts.usage", "bot.exts.help", "bot.exts.describe",
    "bot.exts.history", "bot.exts.prefs", "bot.exts.remix", "bot.exts.showcase",
    "bot.exts.moderation",
)
COMMANDS_HASH_KEY = "commands_hash"
# Commands that start or continue a generation: the server's access rules are checked before
# they act (before /imagine opens a thread), so such a refusal is private and leaves no thread.
GENERATION_COMMANDS = frozenset({"imagine", "refine", "describe", "Describe"})


def apply_discord_endpoints(settings: Settings) -> None:
    """Point discord.py at a REST/gateway proxy or a local fake (process-wide by design)."""
    if settings.discord_api_base:
        discord.http.Route.BASE = settings.discord_api_base.rstrip("/")
    if settings.discord_gateway_url:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.discord_gateway_url)


def intents_for(settings: Settings) -> discord.Intents:
    intents = discord.Intents.default()
    intents.message_content = settings.message_content_intent
    return intents


@dataclass(frozen=True, slots=True)
class Services:
    """Everything the bot needs besides Discord itself, built from the settings."""

    store: Store
    openai: AsyncOpenAI
    core: Core
    attachments: AttachmentReader


async def build_services(settings: Settings, ports: Ports) -> Services:
    """Open the store and build the OpenAI client, the image client and the core around them,
    with the Discord side's `ports` (tests call this with stand-ins of their own)."""
    s = settings
    store = await open_store(s)
    openai = AsyncOpenAI(
        api_key=s.openai_api_key.get_secret_value(),
        base_url=s.openai_base_url,
        max_retries=0,  # our own retry loop never re-creates a generation it already started
        timeout=s.request_timeout_seconds,
    )
    ceilings = ceilings_for(s)
    core = build_core(
        store,
        image_client_for(s, openai),
        ports,
        ceilings=ceilings,
        prices=s.price_table,
        describer=Describer(openai, model=s.openai_model, prices=s.price_table),
        server_keys=server_keys_for(s, store),
        scheduler=fleet_scheduler_for(s, store, ceilings),
        max_prompt_chars=s.max_prompt_chars,
        max_input_images=s.max_input_images,
        max_attachment_bytes=s.max_attachment_bytes,
        max_concurrent=s.max_concurrent_generations,
        per_user_concurrent=s.per_user_concurrent,
        per_user_queued=s.per_user_queued,
        max_chain_turns=s.max_chain_turns,
        delivery_retry_seconds=s.delivery_retry_seconds,
    )
    return Services(store, openai, core, attachment_reader_for(s))


def fleet_scheduler_for(s: Settings, store: Store, ceilings: Ceilings) -> FleetScheduler | None:
    """The fleet-wide queue when `FLEET_QUEUE` is on (else None: the in-process scheduler); each
    claim checks a queued turn again against the spend caps and daily images (`ClaimLimits`)."""
    if not s.fleet_queue:
        return None
    db = getattr(store, "db", None)
    assert isinstance(db, PostgresDatabase), "FLEET_QUEUE needs DATABASE_URL"
    return FleetScheduler(
        db,
        max_concurrent=s.max_concurrent_generations,
        per_user_concurrent=s.per_user_concurrent,
        per_user_queued=s.per_user_queued,
        lease_seconds=s.lease_seconds,
        refusal=ClaimLimits(store, ceilings).refusal,
    )


def server_keys_for(s: Settings, store: Store) -> ServerKeys | None:
    """Servers' own keys, when KEY_ENCRYPTION_SECRET is set: one client per key, built once."""
    if s.key_encryption_secret is None:
        return None

    def client(api_key: str) -> AsyncOpenAI:
        return AsyncOpenAI(api_key=api_key, base_url=s.openai_base_url, max_retries=0,
                           timeout=s.request_timeout_seconds)

    async def check(api_key: str) -> str | None:
        probe = client(api_key).with_options(timeout=KEY_CHECK_SECONDS)
        try:
            return await probe_key(probe, s.openai_model)
        finally:
            await probe.close()

    return ServerKeys(store, KeyBox(s.key_encryption_secret.get_secret_value()),
                      make_client=lambda api_key: image_client_for(s, client(api_key)),
                      check=check)


def image_client_for(s: Settings, openai: AsyncOpenAI) -> ImageClient:
    return ImageClient(
        openai,
        model=s.openai_model,
        image_model=s.image_model,
        store=s.store_responses,
        background=s.background_responses,
        retry=RetryPolicy(
            max_attempts=s.retry_max_attempts,
            max_seconds=s.retry_max_seconds,
            base_delay=s.retry_base_delay,
        ),
        queued_deadline=s.queued_deadline_seconds,
    )


def ceilings_for(s: Settings) -> Ceilings:
    """The instance-wide defaults and limits from the environment."""
    return Ceilings(
        default_options=ImageOptions(
            size=s.default_size,
            quality=s.default_quality,
            output_format=s.default_format,
            moderation=s.default_moderation,
            partial_images=s.default_partial_images,
        ),
        max_quality=s.max_quality,
        max_size=s.max_size,
        allow_low_moderation=s.allow_low_moderation,
        image_model=s.image_model,
        allowed_models=s.allowed_image_models,
        max_complexity=s.max_complexity,
        max_gif_frames=s.max_gif_frames,
        user_daily_images=s.user_daily_images,
        guild_daily_spend_usd=s.guild_daily_spend_usd,
        guild_monthly_spend_usd=s.guild_monthly_spend_usd,
        allow_dms=s.allow_dms,
        dm_allowed_users=tuple(s.dm_allowed_users),
        instance_daily_spend_usd=s.instance_daily_spend_usd,
        instance_monthly_spend_usd=s.instance_monthly_spend_usd,
    )


def attachment_reader_for(s: Settings) -> AttachmentReader:
    """Attachments are fetched from Discord's CDN, or from a configured API host (a fake)."""
    extra_hosts = set()
    if s.discord_api_base:
        host = urlsplit(s.discord_api_base).hostname
        if host:
            extra_hosts.add(host)
    return AttachmentReader(max_bytes=s.max_attachment_bytes, extra_hosts=frozenset(extra_hosts))


class ImagineTree(app_commands.CommandTree):
    """The command tree, with the server's access policy checked before generation commands."""

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if interaction.type is discord.InteractionType.application_command and await shed(interaction):
            return False  # too late to start: "busy, try again" now rather than a late answer
        if (
            interaction.type is not discord.InteractionType.application_command
            or interaction.guild_id is None
            or (interaction.data or {}).get("name") not in GENERATION_COMMANDS
        ):
            return True
        gate: Gate = interaction.client.gate  # type: ignore[attr-defined]
        try:
            actor = actor_of(interaction.user, interaction.channel)
            policy = await gate.policy_for(interaction.guild_id, actor.channel_id)
            policy.check_access(actor)
        except UserFacingError as error:
            await send_error(interaction, error)
            return False
        return True


class ImagineBot(commands.AutoShardedBot):
    """The Discord client. Everything it needs is built in `setup_hook` from `settings`."""

    settings: Settings
    core: Core
    service: ConversationService  # the conversation rules (core.conversations)
    gate: Gate
    runner: Runner
    accounts: Accounts
    store: Store
    openai: AsyncOpenAI
    presenter: DiscordPresenter
    attachments: AttachmentReader
    modlog: ModLog  # the moderation log (settings changes are logged by the settings cog)
    router: Router  # components reach the cogs that serve them (bot/ui/router.py)
    metrics_server: MetricsServer | None = None

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        # The bot never joins voice: discord.py's "PyNaCl/davey is not installed" warnings would
        # only be noise on stderr (where a start-up failure must be the one line shown).
        discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents_for(settings),
            shard_count=settings.shard_count,
            shard_ids=settings.shard_ids,
            allowed_mentions=discord.AllowedMentions.none(),
            help_command=None,
            tree_cls=ImagineTree,
            **kwargs,
        )
        self.settings = settings
        self._closing = False
        self.ready_once = asyncio.Event()
        self._command_ids: dict[str, int] | None = None
        self.router = Router()

    async def setup_hook(self) -> None:
        s = self.settings
        if s.discord_gateway_url and self.shard_count is None:
            # AutoShardedBot would connect to the URL /gateway/bot returns; a configured gateway
            # (a proxy, or a local fake) must win, so take only the shard count from there.
            self.shard_count, _, _ = await self.http.get_bot_gateway()
        self.presenter = DiscordPresenter(self, siblings=self._variant_set,
                                          edit_interval=s.progress_edit_interval)
        members = DiscordMembers(self)
        services = await build_services(s, Ports(presenter=self.presenter,
                                                 result_images=self.presenter,
                                                 members=members, key_failures=members))
        self.store, self.openai = services.store, services.openai
        self.core, self.attachments = services.core, services.attachments
        self.service, self.gate = self.core.conversations, self.core.gate
        self.runner, self.accounts = self.core.runner, self.core.accounts
        await self.check_server_keys()
        await self.check_openai_access()
        if s.metrics_port is not None:
            metrics = Metrics(queued=lambda: self.runner.scheduler.queued,
                              running=lambda: self.runner.scheduler.running)
            self.core.outcomes.listeners.append(metrics)
            self.metrics_server = MetricsServer(
                metrics, host=s.metrics_host, port=s.metrics_port, ready=self.is_ready,
                writable=self.database_writable,
            )
            await self.metrics_server.start()
        self.modlog = ModLog(self, Moderation(self.service))
        await asyncio.to_thread(warm_up)
        await self.tree.set_translator(Translator())
        self.tree.on_error = self.on_app_command_error
        self.add_dynamic_items(TurnButton)
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        await self.sync_commands_if_changed()
        if s.background_downgraded:
            log.warning("BACKGROUND_RESPONSES=true needs STORE_RESPONSES=true: background mode "
                        "is off (a restart cannot resume a running generation)")
        if not s.message_content_intent:
            log.warning(
                "MESSAGE_CONTENT intent is off: plain thread replies can't be read. Users can "
                "refine with /refine, by @mentioning the bot, or by replying to a result."
            )
        # Before the gateway connects, so no new event can race the turns a previous run left.
        retention = InputRetention(self.store, s.input_retention_days, self.runner.tasks)
        self.core.outcomes.listeners.append(retention)
        await self.core.recover()
        retention.start()
        if isinstance(self.runner.scheduler, FleetScheduler):
            await self.runner.scheduler.start()

    async def _variant_set(self, turn: Turn) -> list[Turn]:
        """A variant set's siblings, for the presenter's board (asked only once turns run)."""
        return await self.service.variant_set(turn)

    async def check_server_keys(self) -> None:
        """Refuse to start when servers' keys are stored and the secret is missing or opens
        none of them (exit 2); a key it cannot open is marked failed, its owner told once the
        bot is online."""
        keys = self.accounts.server_keys
        audit = await audit_keys(self.store, keys.box if keys is not None else None)
        refusal = audit.refusal(keys is not None)
        if refusal is not None:
            raise SettingsRefused(refusal)
        if audit.legacy:
            log.warning("%d server key(s) are sealed the old way: run `python -m bot "
                        "rotate-key-secret` to re-seal them", audit.legacy)
        if keys is None or not audit.unreadable:
            return
        log.warning("KEY_ENCRYPTION_SECRET does not open the key of %d server(s): marked failed",
                    len(audit.unreadable))
        for guild_id in audit.unreadable:
            if await keys.mark_failed(guild_id):
                self.runner.tasks.spawn(self._tell_key_failed(guild_id),
                                         name=f"key-failed-{guild_id}")

    async def _tell_key_failed(self, guild_id: int) -> None:
        await self.ready_once.wait()  # (the server and its owner are known once online)
        await DiscordMembers(self).tell_key_failed(guild_id)

    async def check_openai_access(self) -> None:
        """Refuse to start with a rejected key or an unknown model; warn when it cannot check."""
        s = self.settings
        for finding in await check_openai(self.openai,
                                          models_to_check(s.openai_model, s.image_model,
                                                          s.allowed_image_models)):
            if finding.ok is False:
                raise StartupError(finding.line())
            if finding.ok is None:
                log.warning("OpenAI start-up check: %s", finding.line())

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        """Remember each member's locale: messages addressed to them later (thread replies,
        pings) are written in it."""
        try:
            await self.core.preferences.remember_locale(interaction.user.id,
                                                        str(interaction.locale))
        except Exception:
            log.warning("Could not remember the locale of user %s", interaction.user.id,
                        exc_info=True)

    async def database_writable(self) -> bool:
        """Whether the database takes a write within a couple of seconds (for /healthz)."""
        try:
            await asyncio.wait_for(self.store.meta.put("health_check", str(time.time())),
                                   HEALTH_WRITE_SECONDS)
        except Exception as exc:  # locked, read-only, disk full, connection lost
            log.warning("Health check: the database did not take a write (%s)", exc or type(exc))
            return False
        return True

    async def on_ready(self) -> None:
        log.info("Logged in as %s (%s) in %d guild(s)", self.user, getattr(self.user, "id", "?"),
                 len(self.guilds))
        self.ready_once.set()

    async def command_payload(self) -> list[dict[str, Any]]:
        translator = self.tree.translator
        payload = []
        for command in self.tree.get_commands():
            if translator is not None:
                payload.append(await command.get_translated_payload(self.tree, translator))
            else:
                payload.append(command.to_dict(self.tree))
        return payload

    async def sync_commands_if_changed(self) -> bool:
        """Sync app commands only when their definition changed since the last sync."""
        guild = discord.Object(self.settings.dev_guild_id) if self.settings.dev_guild_id else None
        if guild is not None:
            self.tree.copy_global_to(guild=guild)
        payload = await self.command_payload()
        digest = hashlib.sha256(
            json.dumps(payload, sort_keys=True, default=str).encode()
        ).hexdigest()
        key = f"{COMMANDS_HASH_KEY}:{guild.id if guild else 'global'}"
        if await self.store.meta.get(key) == digest:
            log.info("App commands unchanged; not syncing")
            return False
        synced = await self.tree.sync(guild=guild)
        self._command_ids = {c.name: c.id for c in synced}
        await self.store.meta.put(key, digest)
        log.info("Synced %d app command(s)", len(payload))
        return True

    async def command_mention(self, name: str) -> str:
        """`</name:id>` (Discord shows it clickable, in the reader's language), else `/name`.
        `name` may carry a subcommand (`"imagine-settings show"`)."""
        if self._command_ids is None:
            guild = discord.Object(self.settings.dev_guild_id) if self.settings.dev_guild_id else None
            try:
                fetched = await self.tree.fetch_commands(guild=guild)
            except discord.HTTPException as exc:
                log.info("Could not fetch the app commands: %s", exc)
                return f"/{name}"
            self._command_ids = {c.name: c.id for c in fetched}
        command_id = self._command_ids.get(name.split()[0])
        return f"</{name}:{command_id}>" if command_id else f"/{name}"

    async def on_app_command_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        original = getattr(error, "original", error)
        if isinstance(error, app_commands.CheckFailure) and interaction.response.is_done():
            return  # the check has already told the user why
        if isinstance(original, UserFacingError):
            await send_error(interaction, original)
            return
        name = getattr(interaction.command, "name", "?")
        if unreachable(original):
            log.warning("Command %s: the database is unreachable: %r", name, original)
            await reply_privately(interaction, t("generic.store_unreachable", str(interaction.locale)))
            return
        log.error("Command %s failed", name, exc_info=original)
        await reply_privately(interaction, t("generic.unexpected", str(interaction.locale)))

    async def close(self) -> None:
        """Graceful shutdown: no new turns, running ones get a grace period, then clean up."""
        if self._closing:
            return
        self._closing = True
        core = getattr(self, "core", None)
        if core is not None:
            log.info("Shutting down: letting running turns finish (up to %.0fs)",
                     self.settings.shutdown_grace_seconds)
            await core.shutdown(self.settings.shutdown_grace_seconds)
        presenter = getattr(self, "presenter", None)
        if presenter is not None:
            await presenter.close()
        if getattr(self, "modlog", None) is not None:
            await self.modlog.close()
        if self.metrics_server is not None:
            await self.metrics_server.stop()
        await super().close()
        if getattr(self, "openai", None) is not None:
            await self.openai.close()
        if getattr(self, "store", None) is not None:
            await self.store.close()
