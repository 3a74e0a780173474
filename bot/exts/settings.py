"""`/imagine-settings`: per-server settings for members with Manage Server."""

from __future__ import annotations

import logging
from typing import Any

import discord
from discord import app_commands
from discord.app_commands import Choice, locale_str
from discord.ext import commands

from bot.ack import acknowledge
from bot.adapter import actor_of
from bot.core.errors import ErrorKind, UserFacingError
from bot.core.image_models import spec_of
from bot.core.options import parse_size
from bot.exts._bot import BotServices
from bot.ui.channel_rules import rules_text
from bot.ui.choices import COMPLEXITY_CHOICES, QUALITY_CHOICES
from bot.ui.i18n import t
from bot.ui.key_modal import KeyModal
from bot.ui.render import MAX_CONTENT, clip, permission_name
from bot.ui.replies import reply_privately, send_error
from bot.ui.settings_text import changes_text, format_settings

log = logging.getLogger(__name__)

REFINE_CHOICES = [
    Choice(name="anyone allowed", value="anyone"),
    Choice(name="only the starter and moderators", value="starter"),
]
KEY_CHOICES = [Choice(name=locale_str("set"), value="set"),
               Choice(name=locale_str("remove"), value="remove")]
TOGGLE_CHOICES = [Choice(name="add", value="add"), Choice(name="remove", value="remove")]
LOCALE_CHOICES = [Choice(name="English", value="en-US"), Choice(name="简体中文", value="zh-CN")]
ON_OFF = [Choice(name=locale_str("on"), value="on"), Choice(name=locale_str("off"), value="off")]
# what the bot needs in a showcase channel to post there (Start Thread in Forum or Media Channel:
# SEND_MESSAGES; the image needs ATTACH_FILES)
SHOWCASE_PERMISSIONS = ("view_channel", "send_messages", "attach_files")


def _toggle(values: list[int], item: int, mode: str) -> list[int]:
    if mode == "add" and item not in values:
        return [*values, item]
    if mode == "remove":
        return [v for v in values if v != item]
    return values


@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
class ServerSettings(commands.GroupCog, group_name="imagine-settings",
                     group_description="Server settings for the image bot"):
    """Stored per server; the instance's environment sets the ceilings."""

    def __init__(self, bot: BotServices) -> None:
        self.bot = bot
        self.service = bot.service
        super().__init__()

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        member = interaction.user
        if not isinstance(member, discord.Member) or not member.guild_permissions.manage_guild:
            await send_error(interaction, UserFacingError(ErrorKind.not_allowed,
                                                          reason="manage_guild"))
            return False
        options = (interaction.data or {}).get("options") or [{}]
        if options[0].get("name") == "key":  # its form must be the first response
            return True
        # every other answer is private and comes after reads and writes: acknowledged first
        return await acknowledge(interaction, ephemeral=True, thinking=True)

    @app_commands.command(name="show", description=locale_str("Show the current settings"))
    async def show(self, interaction: discord.Interaction) -> None:
        assert interaction.guild_id is not None
        data = await self.bot.gate.policies.guild_settings(interaction.guild_id)
        locale = str(interaction.locale)
        await interaction.followup.send(
            clip(t("settings.current", locale, settings=format_settings(data, locale)),
                 MAX_CONTENT), ephemeral=True,
            allowed_mentions=discord.AllowedMentions.none(),
        )

    @app_commands.command(name="key",
                          description=locale_str("Set or remove this server's own OpenAI key"))
    @app_commands.describe(action="Set a key (a private form) or remove the one set")
    @app_commands.choices(action=KEY_CHOICES)
    async def key(self, interaction: discord.Interaction, action: str = "set") -> None:
        assert interaction.guild_id is not None
        locale = str(interaction.locale)
        keys = self.bot.accounts.server_keys
        if keys is None:
            await reply_privately(interaction, t("key.disabled", locale))
            return
        if action == "remove":
            if not await acknowledge(interaction, ephemeral=True, thinking=True):
                return
            await keys.remove(interaction.guild_id)
            await reply_privately(interaction, t("key.removed", locale))
            self._log(interaction, "modlog.did.key_removed")
            return
        await interaction.response.send_modal(KeyModal(self.on_key_submit, locale))

    async def on_key_submit(self, interaction: discord.Interaction, api_key: str) -> None:
        """Check the key with one call, store it sealed, say so; the key is never echoed."""
        assert interaction.guild_id is not None and self.bot.accounts.server_keys is not None
        locale = str(interaction.locale)
        if not await acknowledge(interaction, ephemeral=True, thinking=True):
            return
        problem = await self.bot.accounts.server_keys.set(interaction.guild_id, api_key)
        text = t("key.saved", locale) if problem is None else t(f"key.problem.{problem}", locale)
        await interaction.followup.send(text, ephemeral=True)
        if problem is None:
            self._log(interaction, "modlog.did.key_set")

    @app_commands.command(name="limits",
                          description=locale_str("Change generation defaults and limits"))
    @app_commands.describe(
        default_quality="Quality used when a user doesn't choose",
        max_quality="Highest quality members may choose",
        default_size="Size used when a user doesn't choose (auto, preset or WxH)",
        max_size="Largest size members may ask for (WxH, compared by pixel count)",
        previews="Default number of live previews (0-3)",
        moderation="Allow members to choose moderation=low",
        user_daily_images="Images per member per day (0 = no server limit)",
        daily_spend_usd="Server spend cap per day in USD (0 = none)",
        monthly_spend_usd="Server spend cap per month in USD (0 = none)",
        language="Language for messages when a member's own locale isn't known",
    )
    @app_commands.choices(default_quality=QUALITY_CHOICES, max_quality=QUALITY_CHOICES,
                          moderation=[Choice(name="auto only", value="auto"),
                                      Choice(name="allow low", value="low")],
                          language=LOCALE_CHOICES)
    async def limits(
        self,
        interaction: discord.Interaction,
        default_quality: str | None = None,
        max_quality: str | None = None,
        default_size: str | None = None,
        max_size: str | None = None,
        previews: app_commands.Range[int, 0, 3] | None = None,
        moderation: str | None = None,
        user_daily_images: app_commands.Range[int, 0, 10000] | None = None,
        daily_spend_usd: app_commands.Range[float, 0, 100000] | None = None,
        monthly_spend_usd: app_commands.Range[float, 0, 1000000] | None = None,
        language: str | None = None,
    ) -> None:
        assert interaction.guild_id is not None
        try:
            size = parse_size(default_size) if default_size else None
            largest = parse_size(max_size) if max_size else None
            if largest == "auto":
                raise UserFacingError(ErrorKind.invalid_options, problem="size_format", value="auto")
        except UserFacingError as error:
            await send_error(interaction, error)
            return
        changes: dict[str, Any] = {}
        for key, value in (
            ("default_quality", default_quality), ("max_quality", max_quality),
            ("default_size", size), ("max_size", largest), ("default_partial_images", previews),
            ("moderation", moderation), ("user_daily_images", user_daily_images),
            ("daily_spend_usd", daily_spend_usd), ("monthly_spend_usd", monthly_spend_usd),
            ("locale", language),
        ):
            if value is not None:
                changes[key] = value or None if key in ("user_daily_images", "daily_spend_usd",
                                                         "monthly_spend_usd") else value
        await self.bot.gate.policies.update_policy(interaction.guild_id, **changes)
        await self._saved(interaction, changes=changes)

    @app_commands.command(name="access",
                          description=locale_str("Change who may use the bot and where"))
    @app_commands.describe(
        mode="Add to or remove from the list",
        channel="Allow generation in this channel (none listed = everywhere)",
        role="Allow this role (none listed = everyone)",
        blocked_user="Block this member from generating",
        exempt_role="This role is not subject to usage limits",
        refine="Who may refine a conversation",
        member_dms="Members may generate in DMs with the bot (if its operator allows DMs)",
    )
    @app_commands.choices(mode=TOGGLE_CHOICES, refine=REFINE_CHOICES)
    async def access(
        self,
        interaction: discord.Interaction,
        mode: str = "add",
        channel: discord.TextChannel | discord.ForumChannel | None = None,
        role: discord.Role | None = None,
        blocked_user: discord.Member | None = None,
        exempt_role: discord.Role | None = None,
        refine: str | None = None,
        member_dms: bool | None = None,
    ) -> None:
        assert interaction.guild_id is not None
        data = await self.bot.gate.policies.guild_settings(interaction.guild_id)
        changes: dict[str, Any] = {}
        for key, obj in (("allowed_channels", channel), ("allowed_roles", role),
                         ("blocked_users", blocked_user), ("exempt_roles", exempt_role)):
            if obj is not None:
                changes[key] = _toggle(list(data.get(key, [])), obj.id, mode)
        if refine is not None:
            changes["refine_mode"] = refine
        if member_dms is not None:
            changes["allow_member_dms"] = member_dms
        if blocked_user is not None and mode == "remove":  # unblocked: a timed block ends too
            changes["blocked_until"] = {k: v for k, v in (data.get("blocked_until") or {}).items()
                                        if k != str(blocked_user.id)}
        await self.bot.gate.policies.update_policy(interaction.guild_id, **changes)
        await self._saved(interaction, changes=changes)
        if blocked_user is not None and mode == "add":  # nothing of theirs runs on, or is billed
            moderation, actor = self.bot.modlog.moderation, actor_of(interaction.user, None)
            self.bot.modlog.spawn(moderation.cancel_turns_of(
                interaction.guild_id, blocked_user.id, actor), name=f"block-{interaction.id}")

    @app_commands.command(name="channel-rules", description=locale_str(
        "Rules of one channel on top of the server's settings"))
    @app_commands.describe(
        channel="The channel (a thread follows its parent channel)",
        max_quality="Highest quality in this channel",
        max_size="Largest size in this channel (WxH, compared by pixel count)",
        previews="Live previews in this channel",
        imagine_allowed="Whether images may be generated in this channel",
        reset="Clear every rule of this channel first",
    )
    @app_commands.choices(max_quality=QUALITY_CHOICES, previews=ON_OFF, imagine_allowed=ON_OFF)
    async def channel_rules(
        self, interaction: discord.Interaction,
        channel: discord.TextChannel | discord.ForumChannel,
        max_quality: str | None = None, max_size: str | None = None,
        previews: str | None = None, imagine_allowed: str | None = None, reset: bool = False,
    ) -> None:
        assert interaction.guild_id is not None
        try:
            largest = parse_size(max_size) if max_size else None
            if largest == "auto":
                raise UserFacingError(ErrorKind.invalid_options, problem="size_format", value="auto")
        except UserFacingError as error:
            await send_error(interaction, error)
            return
        stored = dict((await self.bot.gate.policies.guild_settings(interaction.guild_id))
                      .get("channel_rules") or {})
        rules = {} if reset else dict(stored.get(str(channel.id)) or {})
        for key, value in (("max_quality", max_quality), ("max_size", largest),
                           ("previews", previews), ("imagine", imagine_allowed)):
            if value is not None:
                rules[key] = value if key.startswith("max_") else value == "on"
        stored[str(channel.id)] = rules
        policy = await self.bot.gate.policies.update_policy(interaction.guild_id, channel_rules=stored)
        locale = str(interaction.locale)
        text = f"{t('settings.saved', locale)}\n<#{channel.id}>: "
        await reply_privately(interaction, text + rules_text(policy.rules_for(channel.id), locale))
        server_locale = await self.bot.modlog.locale(interaction.guild_id)
        self._log(interaction, "modlog.did.settings", changes=f"<#{channel.id}>: " + rules_text(
            policy.rules_for(channel.id), server_locale))

    @app_commands.command(name="showcase", description=locale_str(
        "Name the forum or media channel where results are published"))
    @app_commands.describe(
        channel="The forum or media channel",
        stars="Publish a result by itself at this many ⭐ reactions (0 = never)",
        off="Turn the showcase off",
    )
    async def showcase(
        self, interaction: discord.Interaction, channel: discord.ForumChannel | None = None,
        stars: app_commands.Range[int, 0, 100] | None = None, off: bool = False,
    ) -> None:
        assert interaction.guild_id is not None and interaction.guild is not None
        locale = str(interaction.locale)
        changes: dict[str, Any] = {}
        if off:
            changes["showcase_channel"] = changes["showcase_stars"] = None
        if channel is not None and not off:
            perms = channel.permissions_for(interaction.guild.me)
            missing = next((p for p in SHOWCASE_PERMISSIONS if not getattr(perms, p)), None)
            if missing is not None:
                await reply_privately(interaction, t(
                    "showcase.missing_permission", locale, channel=f"<#{channel.id}>",
                    permission=permission_name(missing, locale)))
                return
            changes["showcase_channel"] = channel.id
        if stars is not None and not off:
            changes["showcase_stars"] = stars or None
        await self.bot.gate.policies.update_policy(interaction.guild_id, **changes)
        note = ""
        if channel is not None and not off and not channel.permissions_for(
                interaction.guild.me).manage_threads:
            note = "\n" + t("showcase.no_manage_threads", locale, channel=f"<#{channel.id}>")
        await self._saved(interaction, note, changes=changes)

    @app_commands.command(name="log",
                          description=locale_str("Post every image and moderator action to a channel"))
    @app_commands.describe(channel="The moderation log channel (leave out to stop logging)")
    async def log_channel(self, interaction: discord.Interaction,
                          channel: discord.TextChannel | None = None) -> None:
        assert interaction.guild_id is not None
        locale = str(interaction.locale)
        modlog = self.bot.modlog
        if channel is None:  # the last entry of that channel says who stopped it
            await modlog.note(interaction.guild_id, "modlog.did.log_off", user=interaction.user.id)
            await modlog.moderation.set_log_channel(interaction.guild_id, None)
            await interaction.followup.send(t("modlog.off", locale), ephemeral=True)
            return
        problem = await modlog.start(interaction.guild_id, channel.id, interaction.user.id)
        text = t("modlog.on" if problem is None else f"modlog.cannot.{problem}", locale,
                 channel=channel.id)
        if problem is None and channel.permissions_for(channel.guild.default_role).view_channel:
            text += "\n" + t("modlog.public", locale)  # reports name their reporters there
        await interaction.followup.send(text, ephemeral=True,
                                        allowed_mentions=discord.AllowedMentions.none())

    def _log(self, interaction: discord.Interaction, key: str, **params: Any) -> None:
        """A manager's change goes to the moderation log (posted later, never in the way)."""
        assert interaction.guild_id is not None
        modlog = self.bot.modlog
        modlog.spawn(modlog.note(interaction.guild_id, key, user=interaction.user.id, **params),
                     name=f"modlog-settings-{interaction.id}")

    @app_commands.command(name="models",
                          description=locale_str("Choose this server's image model and its limits"))
    @app_commands.describe(
        image_model="The image model members use (among those the operator allows)",
        max_complexity="Highest complexity members may choose",
        max_gif_frames="Most frames an animated GIF may have (2-16)",
    )
    @app_commands.choices(max_complexity=COMPLEXITY_CHOICES)
    async def models(
        self,
        interaction: discord.Interaction,
        image_model: str | None = None,
        max_complexity: str | None = None,
        max_gif_frames: app_commands.Range[int, 2, 16] | None = None,
    ) -> None:
        assert interaction.guild_id is not None
        allowed = self.bot.settings.allowed_image_models
        if image_model is not None and image_model not in allowed:
            await send_error(interaction, UserFacingError(
                ErrorKind.invalid_options, problem="model_not_allowed", value=image_model,
                model=", ".join(allowed)))
            return
        changes = {key: value for key, value in (
            ("image_model", image_model), ("max_complexity", max_complexity),
            ("max_gif_frames", max_gif_frames)) if value is not None}
        await self.bot.gate.policies.update_policy(interaction.guild_id, **changes)
        await self._saved(interaction, changes=changes)

    @models.autocomplete("image_model")
    async def _model_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[Choice[str]]:
        """The operator's IMAGE_MODELS, each with what it takes (its capability row)."""
        return [Choice(name=f"{model}: {', '.join(spec_of(model).features())}"[:100], value=model)
                for model in self.bot.settings.allowed_image_models
                if current.lower() in model.lower()][:25]

    async def _saved(self, interaction: discord.Interaction, note: str = "",
                     changes: dict[str, Any] | None = None) -> None:
        assert interaction.guild_id is not None
        data = await self.bot.gate.policies.guild_settings(interaction.guild_id)
        locale = str(interaction.locale)
        await interaction.followup.send(
            clip(t("settings.saved", locale) + note + "\n" + format_settings(data, locale),
                 MAX_CONTENT),
            ephemeral=True,
            allowed_mentions=discord.AllowedMentions.none(),
        )
        if changes:
            server_locale = await self.bot.modlog.locale(interaction.guild_id)
            self._log(interaction, "modlog.did.settings",
                      changes=clip(changes_text(data, changes, server_locale), 3000))


async def setup(bot: BotServices) -> None:
    await bot.add_cog(ServerSettings(bot))
