"""The moderation log as moderators see it: entries (finished turns, reports, moderators' actions,
settings changes), the buttons on them, the Report button and form, and `ModLog`, which posts an
entry to a server's log channel (never pinging anyone) and switches the log off, telling the
server's owner once, when the bot can no longer post there.

Entries are posted in background tasks after the result is delivered: a log that is slow or gone
never delays or loses a member's result.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Coroutine
from typing import Any, Protocol

import discord

from bot.core.errors import UserFacingError
from bot.core.models import Report, Turn, TurnStatus
from bot.core.moderation import BLOCK_DURATIONS, MAX_REASON, Moderation
from bot.core.tasks import BackgroundTasks
from bot.ui.i18n import t
from bot.ui.render import clip, error_text, jump_link
from bot.ui.router import BLOCK, MOD_ACTION, REPORT, dispatch

log = logging.getLogger(__name__)

PROMPT_CHARS = 300  # of a prompt, in an entry
NO_PINGS = discord.AllowedMentions.none()
_COLOURS = {TurnStatus.done: 0x57F287, TurnStatus.failed: 0xED4245,
            TurnStatus.cancelled: 0x99AAB5}
REPORT_COLOUR, ACTION_COLOUR = 0xFEE75C, 0x5865F2
# Why the log channel cannot be used (Discord's JSON error codes: 10003 Unknown Channel, 50001
# Missing Access, 50013 Missing Permissions): the entry's failure, as managers are told it.
LOST_CODES = {10003: "gone", 50001: "access", 50013: "access"}


# ---------------------------------------------------------------------------- components
class ReportButton(discord.ui.DynamicItem[discord.ui.Button[Any]],
                   template=r"modr:report:(?P<turn>[0-9]+)"):
    """"Report" under a result: anyone may press it."""

    def __init__(self, turn_id: int, locale: str | None = None) -> None:
        super().__init__(discord.ui.Button(
            style=discord.ButtonStyle.secondary, label=t("button.report", locale), emoji="🚩",
            custom_id=f"modr:report:{turn_id}"))
        self.turn_id = turn_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Item[Any],
                             match: Any) -> ReportButton:
        return cls(int(match["turn"]), str(interaction.locale))

    async def callback(self, interaction: discord.Interaction) -> None:
        await dispatch(REPORT, interaction, self.turn_id)


class ReportForms(Protocol):
    """Who receives a submitted Report form (the cog that opened it)."""

    async def on_report_submit(self, interaction: discord.Interaction, turn_id: int,
                               reason: str) -> None: ...


class ReportModal(discord.ui.Modal):
    """The short reason form; each opened form has its own custom_id."""

    def __init__(self, cog: ReportForms, turn_id: int, locale: str | None) -> None:
        super().__init__(title=t("report.title", locale),
                         custom_id=f"modr:form:{turn_id}:{secrets.token_hex(6)}")
        self.cog = cog
        self.turn_id = turn_id
        self.reason: discord.ui.TextInput[ReportModal] = discord.ui.TextInput(
            label=t("report.label", locale), placeholder=t("report.placeholder", locale),
            style=discord.TextStyle.paragraph, max_length=MAX_REASON, custom_id="reason")
        self.add_item(self.reason)

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await self.cog.on_report_submit(interaction, self.turn_id, self.reason.value)


MOD_ACTIONS = ("del", "delall", "rdel", "rblock", "dismiss")
_MOD_STYLES = {"del": ("🗑️", discord.ButtonStyle.danger),
               "delall": ("🧹", discord.ButtonStyle.danger),
               "rdel": ("🗑️", discord.ButtonStyle.danger),
               "rblock": ("⛔", discord.ButtonStyle.danger),
               "dismiss": ("✅", discord.ButtonStyle.secondary)}


class ModButton(discord.ui.DynamicItem[discord.ui.Button[Any]],
                template=r"modq:(?P<action>[a-z]+):(?P<turn>[0-9]+)(?::(?P<report>[0-9]+))?"):
    """A moderator's quick action on a turn (and, from a report's entry, on that report)."""

    def __init__(self, action: str, turn_id: int, report_id: int | None = None,
                 locale: str | None = None) -> None:
        emoji, style = _MOD_STYLES[action]
        suffix = f":{report_id}" if report_id is not None else ""
        super().__init__(discord.ui.Button(
            style=style, emoji=emoji, label=t(f"button.mod.{action}", locale),
            custom_id=f"modq:{action}:{turn_id}{suffix}"))
        self.action, self.turn_id, self.report_id = action, turn_id, report_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Item[Any],
                             match: Any) -> ModButton:
        if match["action"] not in MOD_ACTIONS:
            raise ValueError(f"unknown moderation action {match['action']!r}")
        report = int(match["report"]) if match["report"] else None
        return cls(match["action"], int(match["turn"]), report, str(interaction.locale))

    async def callback(self, interaction: discord.Interaction) -> None:
        await dispatch(MOD_ACTION, interaction, self.action, self.turn_id, self.report_id)


class BlockSelect(discord.ui.DynamicItem[discord.ui.Select[Any]],
                  template=r"modb:(?P<turn>[0-9]+)"):
    """Block the turn's author from the bot in this server: 1 hour, 1 day, 7 days, for good."""

    def __init__(self, turn_id: int, locale: str | None = None) -> None:
        options = [discord.SelectOption(label=t(f"block.{d}", locale), value=d)
                   for d in BLOCK_DURATIONS]
        super().__init__(discord.ui.Select(
            custom_id=f"modb:{turn_id}", placeholder=t("block.placeholder", locale),
            options=options, min_values=1, max_values=1))
        self.turn_id = turn_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Item[Any],
                             match: Any) -> BlockSelect:
        return cls(int(match["turn"]), str(interaction.locale))

    async def callback(self, interaction: discord.Interaction) -> None:
        values = (interaction.data or {}).get("values") or []
        if values and values[0] in BLOCK_DURATIONS:
            await dispatch(BLOCK, interaction, self.turn_id, values[0])


def quick_actions(turn: Turn, locale: str | None) -> discord.ui.View:
    """Delete this image, delete the member's images here, block the member."""
    view = discord.ui.View(timeout=None)
    if turn.status is TurnStatus.done and not turn.deleted:
        view.add_item(ModButton("del", turn.id, locale=locale))
        view.add_item(ModButton("delall", turn.id, locale=locale))
    view.add_item(BlockSelect(turn.id, locale))
    return view


def report_actions(report: Report, locale: str | None) -> discord.ui.View | None:
    """Delete image, Delete and block author, Dismiss (none once the report is closed)."""
    if report.status != "open":
        return None
    view = discord.ui.View(timeout=None)
    for action in ("rdel", "rblock", "dismiss"):
        view.add_item(ModButton(action, report.turn_id, report.id, locale))
    return view


# ---------------------------------------------------------------------------- entries
def where(turn: Turn) -> str:
    """A link to the result (or to its thread when it has no message)."""
    message = next(iter(turn.message_ids), None) or turn.progress_message_id
    if message is None:
        return f"<#{turn.conversation_id}>"
    return jump_link(turn.guild_id, turn.conversation_id, message)


def turn_entry(turn: Turn, error: UserFacingError | None, locale: str,
               image_url: str | None) -> discord.Embed:
    """One finished turn: author, prompt (clipped), thumbnail, link, cost, and why it failed."""
    embed = discord.Embed(title=t(f"modlog.turn.{turn.status.value}", locale, n=turn.number),
                          description=clip(turn.prompt, PROMPT_CHARS),
                          colour=_COLOURS.get(turn.status, ACTION_COLOUR))
    embed.add_field(name=t("modlog.author", locale), value=f"<@{turn.author_id}>")
    embed.add_field(name=t("modlog.cost", locale), value=f"${turn.cost_usd:.4f}")
    embed.add_field(name=t("modlog.where", locale), value=where(turn))
    if error is not None:
        embed.add_field(name=t("modlog.why", locale), value=clip(error_text(error, locale), 1024),
                        inline=False)
    if image_url:
        embed.set_thumbnail(url=image_url)
    embed.set_footer(text=t("modlog.footer", locale, ref=turn.id))
    return embed


def report_entry(report: Report, turn: Turn, locale: str,
                 image_url: str | None) -> discord.Embed:
    """A report, with every reporter (moderators only see this) and its state."""
    count = len(report.reporters)
    embed = discord.Embed(title=t("modlog.report", locale, count=count),
                          description=clip(turn.prompt, PROMPT_CHARS), colour=REPORT_COLOUR)
    embed.add_field(name=t("modlog.author", locale), value=f"<@{turn.author_id}>")
    embed.add_field(name=t("modlog.where", locale), value=where(turn))
    lines = [f"<@{r.user_id}>: {clip(' '.join(r.reason.split()), 120)}"
             for r in report.reporters]
    embed.add_field(name=t("modlog.reporters", locale), value=clip("\n".join(lines), 1024),
                    inline=False)
    if report.status != "open":
        embed.add_field(name=t("modlog.state", locale),
                        value=t(f"modlog.report.{report.status}", locale), inline=False)
    if image_url:
        embed.set_thumbnail(url=image_url)
    embed.set_footer(text=t("modlog.footer", locale, ref=turn.id))
    return embed


def action_entry(text: str) -> discord.Embed:
    """A moderator's action or a manager's change, as one line."""
    return discord.Embed(description=clip(text, 4096), colour=ACTION_COLOUR)


# ---------------------------------------------------------------------------- posting
class ModLog:
    """Posts entries to a server's log channel; entries are best effort and never ping."""

    def __init__(self, client: discord.Client, moderation: Moderation) -> None:
        self.client = client
        self.moderation = moderation
        self.tasks = BackgroundTasks()

    async def close(self, grace: float = 2.0) -> None:
        """At shutdown: entries being posted get `grace` seconds, then are dropped."""
        await self.tasks.wait(grace)
        await self.tasks.cancel_all()

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        """Post later, in a tracked task whose failure is logged."""
        self.tasks.spawn(coro, name=name)

    async def locale(self, guild_id: int) -> str:
        """Entries are written in the server's chosen language, else its own."""
        policy = await self.moderation.service.gate.policy_for(guild_id)
        guild = self.client.get_guild(guild_id)
        return policy.policy.locale or (str(guild.preferred_locale) if guild else "en-US")

    async def post(self, guild_id: int, embed: discord.Embed,
                   view: discord.ui.View | None = None) -> discord.Message | None:
        """Post an entry to the log channel; None if there is none or it failed."""
        channel_id = await self.moderation.log_channel(guild_id)
        if channel_id is None:
            return None
        channel = self.client.get_partial_messageable(channel_id, guild_id=guild_id)
        try:
            return await channel.send(embed=embed, allowed_mentions=NO_PINGS,
                                      **({"view": view} if view else {}))
        except discord.HTTPException as exc:
            await self.failed(guild_id, channel_id, exc)
            return None

    async def failed(self, guild_id: int, channel_id: int, exc: discord.HTTPException) -> None:
        """An entry could not be posted. If the channel is gone or closed to the bot, the log is
        switched off and the server's owner told, once."""
        why = LOST_CODES.get(exc.code) if isinstance(exc, discord.NotFound | discord.Forbidden) \
            else None
        if why is None:
            log.warning("Could not post to the moderation log of %s: %s", guild_id, exc)
            return
        await self.lost(guild_id, channel_id, why)

    async def lost(self, guild_id: int, channel_id: int, why: str) -> None:
        """Switch the log off (`why`: `gone`, `access`) and tell the owner, once."""
        if not await self.moderation.switch_off(guild_id, channel_id):
            return
        log.info("Moderation log of %s switched off: channel %s %s", guild_id, channel_id, why)
        locale = await self.locale(guild_id)
        await self.tell_owner(guild_id, t(f"modlog.off.{why}", locale, channel=channel_id,
                                          server=self.server_name(guild_id)))

    def server_name(self, guild_id: int) -> str:
        guild = self.client.get_guild(guild_id)
        return guild.name if guild else str(guild_id)

    async def tell_owner(self, guild_id: int, text: str, *, embed: discord.Embed | None = None,
                         view: discord.ui.View | None = None) -> discord.Message | None:
        """A DM to the server's owner (its manager the bot always knows); None if closed."""
        guild = self.client.get_guild(guild_id)
        if guild is None or guild.owner_id is None:
            return None
        try:
            owner = await self.client.fetch_user(guild.owner_id)
            extra: dict[str, Any] = {"embed": embed} if embed else {}
            if view is not None:
                extra["view"] = view
            return await owner.send(text, allowed_mentions=NO_PINGS, **extra)
        except discord.HTTPException as exc:
            log.info("Could not tell the owner of %s: %s", guild_id, exc)
            return None

    async def image_url(self, turn: Turn) -> str | None:
        """The result's image (for a thumbnail), read from its message."""
        if not turn.message_ids or turn.deleted:
            return None
        channel = self.client.get_partial_messageable(turn.conversation_id,
                                                      guild_id=turn.guild_id)
        try:
            message = await channel.fetch_message(turn.message_ids[0])
        except discord.HTTPException as exc:
            log.info("No thumbnail for turn %s: %s", turn.id, exc)
            return None
        return next((a.url for a in message.attachments
                     if (a.content_type or "").startswith("image/")), None)

    async def turn_finished(self, turn_id: int, error: UserFacingError | None) -> None:
        """The entry of a finished turn (read as recorded, with its cost)."""
        turn = await self.moderation.service.turn(turn_id)
        if turn is None or turn.guild_id is None:
            return
        if await self.moderation.log_channel(turn.guild_id) is None:
            return
        locale = await self.locale(turn.guild_id)
        embed = turn_entry(turn, error, locale, await self.image_url(turn))
        await self.post(turn.guild_id, embed, quick_actions(turn, locale))

    async def note(self, guild_id: int, key: str, **params: Any) -> None:
        """A one-line entry (a moderator's action, a manager's change) in the server's language."""
        if await self.moderation.log_channel(guild_id) is None:
            return
        locale = await self.locale(guild_id)
        await self.post(guild_id, action_entry(t(key, locale, **params)))

    async def start(self, guild_id: int, channel_id: int, by: int) -> str | None:
        """Make `channel_id` the log channel if the bot can post there (its first entry says
        who started it); else the problem's key (`gone`, `access`), and nothing changes."""
        locale = await self.locale(guild_id)
        channel = self.client.get_partial_messageable(channel_id, guild_id=guild_id)
        try:
            await channel.send(embed=action_entry(t("modlog.started", locale, user=by)),
                               allowed_mentions=NO_PINGS)
        except discord.HTTPException as exc:
            log.info("Cannot log to %s in %s: %s", channel_id, guild_id, exc)
            return LOST_CODES.get(exc.code, "access")
        await self.moderation.set_log_channel(guild_id, channel_id)
        return None
