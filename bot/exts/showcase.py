"""Apps → Publish to showcase, Unpublish, auto-publish by ⭐ reactions, and removing a post when
its result is deleted.

A post is a thread in the server's forum or media channel (Resources → Channel: Start Thread in
Forum or Media Channel): titled with the prompt, the image already delivered (downloaded from the
result message, never generated again), credit to the author without a ping, a link back to the
result, and tags from the channel's own.
"""

from __future__ import annotations

import io
import logging
import re

import discord
from discord import app_commands
from discord.app_commands import locale_str
from discord.ext import commands

from bot.ack import acknowledge
from bot.adapter import actor_of, place_of
from bot.core.errors import UserFacingError
from bot.core.gate import Place
from bot.core.models import ShowcasePost, Turn, TurnStatus
from bot.core.policy import Actor
from bot.core.showcase import (
    BY_REACTIONS,
    MAX_TAGS,
    STAR,
    Showcase,
    ShowcaseRefused,
    Target,
    check_author,
)
from bot.exts._bot import BotServices
from bot.ui.forums import TAG_REQUIRED, forum_tags
from bot.ui.i18n import t
from bot.ui.render import (
    MAX_CONTENT,
    clip,
    error_text,
    jump_link,
    permission_name,
    thread_name,
)
from bot.ui.replies import reply_privately, send_error
from bot.ui.router import UNPUBLISH
from bot.ui.showcase_view import UnpublishButton

log = logging.getLogger(__name__)

NO_MENTIONS = discord.AllowedMentions.none()
NEEDED = ("view_channel", "send_messages", "attach_files")  # to post with an image
PICKER_SECONDS = 600.0
TURN_BUTTON = re.compile(r"imagine:[a-z]+:([0-9]+)")  # the buttons under a result (ui/buttons.py)


class TagPicker(discord.ui.View):
    """The tags of a new post (a select of the channel's tags), then Publish."""

    def __init__(self, cog: ShowcaseCog, turn: Turn, forum: discord.ForumChannel,
                 tags: list[discord.ForumTag], locale: str) -> None:
        super().__init__(timeout=PICKER_SECONDS)
        self.cog, self.turn, self.forum, self.locale = cog, turn, forum, locale
        self.required = forum.flags.require_tag
        self.by_id = {str(tag.id): tag for tag in tags}
        self.chosen: list[discord.ForumTag] = []
        select: discord.ui.Select[TagPicker] = discord.ui.Select(
            custom_id="showcase:tags", placeholder=t("showcase.tags_placeholder", locale),
            min_values=1 if self.required else 0, max_values=min(MAX_TAGS, len(tags)),
            options=[discord.SelectOption(label=tag.name[:100], value=str(tag.id),
                                          emoji=tag.emoji) for tag in tags])
        select.callback = self.on_select  # type: ignore[method-assign]
        self.add_item(select)
        button: discord.ui.Button[TagPicker] = discord.ui.Button(
            style=discord.ButtonStyle.success, label=t("button.publish", locale), emoji="🖼️",
            custom_id="showcase:publish")
        button.callback = self.on_publish  # type: ignore[method-assign]
        self.add_item(button)

    async def on_select(self, interaction: discord.Interaction) -> None:
        values = (interaction.data or {}).get("values", [])
        self.chosen = [self.by_id[v] for v in values if v in self.by_id]
        await interaction.response.defer()

    async def on_publish(self, interaction: discord.Interaction) -> None:
        if self.required and not self.chosen:
            await reply_privately(interaction, t("showcase.tag_required", self.locale))
            return
        await interaction.response.defer()
        text = await self.cog.publish_for(interaction, self.turn, self.forum, self.chosen)
        await interaction.edit_original_response(content=text, view=None)
        self.stop()


class ShowcaseCog(commands.Cog):
    def __init__(self, bot: BotServices) -> None:
        self.bot = bot
        self.service = bot.service
        self.showcase = Showcase(bot.store, bot.gate.policy_for)
        self.menu = app_commands.ContextMenu(name=locale_str("Publish to showcase"),
                                             callback=self.publish_menu)
        self.menu.guild_only = True

    async def cog_load(self) -> None:
        self.bot.tree.add_command(self.menu)
        self.bot.router.add(UNPUBLISH, self.unpublish)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.menu.name, type=self.menu.type)
        self.bot.router.remove(UNPUBLISH)

    # ------------------------------------------------------------------ publishing by hand
    async def publish_menu(self, interaction: discord.Interaction, message: discord.Message) -> None:
        """Apps → Publish to showcase, on a result (or on its post: offers Unpublish); answered
        privately, acknowledged first."""
        locale = str(interaction.locale)
        if not await acknowledge(interaction, ephemeral=True, thinking=True):
            return
        try:
            post = await self.showcase.by_post(message.id)
            place = place_of(interaction)  # (a post is in the server's showcase channel)
            turn = (await self.service.turn_in(post.turn_id, place, server_wide=True) if post
                    else await self._turn_of(message, place))
            actor = actor_of(interaction.user, interaction.channel)
            target = await self.showcase.publishable(turn, actor)
            assert turn is not None
            await self._offer(interaction, turn, actor, target, locale)
        except ShowcaseRefused as refused:
            await reply_privately(interaction, t(f"showcase.{refused.reason}", locale,
                                                 **refused.params))
        except UserFacingError as error:
            await send_error(interaction, error)

    async def _turn_of(self, message: discord.Message, place: Place) -> Turn | None:
        """The turn a result message shows; one being recorded this moment (its buttons name
        it, checked to be of this channel) once it is recorded."""
        turn = await self.service.turn_for_message(message.id)
        if turn is not None and turn.status is TurnStatus.done:
            return turn
        named = (TURN_BUTTON.fullmatch(getattr(item, "custom_id", None) or "")
                 for row in message.components for item in getattr(row, "children", ()))
        turn_id = turn.id if turn else next((int(m[1]) for m in named if m), None)
        return await self.service.turn_in(turn_id, place) if turn_id else None

    async def _offer(self, interaction: discord.Interaction, turn: Turn, actor: Actor,
                     target: Target, locale: str) -> None:
        """Already published: its link and Unpublish. Else the tag picker, or publish now."""
        existing = await self.showcase.post_of(turn.id)
        if existing is not None:
            view = discord.ui.View(timeout=None)
            view.add_item(UnpublishButton(turn.id, locale))
            await interaction.followup.send(
                t("showcase.already", locale, link=f"<#{existing.post_id}>"), view=view,
                ephemeral=True)
            return
        forum = self._forum(interaction.guild, target.channel_id, locale)
        tags = self._choosable_tags(forum, actor)
        if tags:
            key = "showcase.pick_tags_required" if forum.flags.require_tag else "showcase.pick_tags"
            await interaction.followup.send(
                t(key, locale, channel=f"<#{forum.id}>", count=min(MAX_TAGS, len(tags))),
                view=TagPicker(self, turn, forum, tags, locale), ephemeral=True)
            return
        await interaction.followup.send(await self.publish_for(interaction, turn, forum, []),
                                        ephemeral=True)

    def _forum(self, guild: discord.Guild | None, channel_id: int,
               locale: str) -> discord.ForumChannel:
        """The showcase channel, with what the bot needs to post there."""
        forum = guild.get_channel(channel_id) if guild else None
        if not isinstance(forum, discord.ForumChannel):
            raise ShowcaseRefused("gone")
        perms = forum.permissions_for(forum.guild.me)
        missing = next((p for p in NEEDED if not getattr(perms, p)), None)
        if missing is not None:
            raise ShowcaseRefused("missing_permission", channel=f"<#{forum.id}>",
                                  permission=permission_name(missing, locale))
        return forum

    @staticmethod
    def _choosable_tags(forum: discord.ForumChannel, actor: Actor) -> list[discord.ForumTag]:
        """The tags a member may pick: a moderated tag only for a moderator, and only when the
        bot may apply it (Forum Tag Object: moderated tags need Manage Threads)."""
        bot_moderates = forum.permissions_for(forum.guild.me).manage_threads
        return [tag for tag in forum.available_tags
                if not tag.moderated or (actor.is_moderator and bot_moderates)][:25]

    async def publish_for(self, interaction: discord.Interaction, turn: Turn,
                          forum: discord.ForumChannel, tags: list[discord.ForumTag]) -> str:
        """Publish for the member who asked; what to tell them."""
        locale = str(interaction.locale)
        try:
            actor = actor_of(interaction.user, interaction.channel)
            await self.showcase.publishable(await self.service.current(turn), actor)
            async with self.showcase.publishing:
                existing = await self.showcase.post_of(turn.id)
                if existing is not None:
                    return t("showcase.already", locale, link=f"<#{existing.post_id}>")
                thread = await self._post(turn, forum, tags, actor.user_id)
            return t("showcase.published", locale, link=thread.mention)
        except ShowcaseRefused as refused:
            return t(f"showcase.{refused.reason}", locale, **refused.params)
        except UserFacingError as error:
            return error_text(error, locale)

    async def _post(self, turn: Turn, forum: discord.ForumChannel,
                    tags: list[discord.ForumTag], by: int) -> discord.Thread:
        """Create the post from the result's own image and record it."""
        images = await self.bot.presenter.fetch_result_images(turn)
        if not images:
            raise ShowcaseRefused("not_result")  # the result's message is gone
        locale = await self._server_locale(forum.guild)
        link = jump_link(turn.guild_id, turn.conversation_id, turn.message_ids[0])
        prompt = "\n".join(f"> {line}" for line in turn.prompt.splitlines() if line.strip())
        credit = t("showcase.credit", locale, author=f"<@{turn.author_id}>", link=link)
        try:
            created = await forum.create_thread(
                name=thread_name(turn.prompt), content=clip(prompt, MAX_CONTENT - 200) + "\n" + credit,
                files=[discord.File(io.BytesIO(i.data), filename=i.filename) for i in images[:10]],
                applied_tags=tags, allowed_mentions=NO_MENTIONS)
        except discord.Forbidden:
            raise ShowcaseRefused("missing_permission", channel=f"<#{forum.id}>",
                                  permission=permission_name("send_messages", locale)) from None
        except discord.HTTPException as exc:
            if exc.code == TAG_REQUIRED:
                raise ShowcaseRefused("tag_required") from None
            raise ShowcaseRefused("failed", reason=exc.text or exc.status) from None
        first = await self.showcase.record(ShowcasePost(turn.id, forum.guild.id, forum.id,
                                                        created.thread.id, turn.author_id, by))
        if first is not None:  # another process of a fleet published it meanwhile
            await self._delete_thread(created.thread.id, turn.guild_id)
            raise ShowcaseRefused("already", link=f"<#{first.post_id}>")
        return created.thread

    async def _server_locale(self, guild: discord.Guild) -> str:
        """A post is public: the server's chosen language, else its own."""
        policy = await self.bot.gate.policy_for(guild.id)
        return policy.policy.locale or str(guild.preferred_locale)

    # ------------------------------------------------------------------ unpublishing
    async def unpublish(self, interaction: discord.Interaction, turn_id: int) -> None:
        locale = str(interaction.locale)
        if not await acknowledge(interaction, ephemeral=True, thinking=True):
            return
        try:  # (asked from the result's thread or from its post in the showcase channel)
            await self.service.turn_in(turn_id, place_of(interaction), server_wide=True)
        except UserFacingError as error:
            await send_error(interaction, error)
            return
        post = await self.showcase.post_of(turn_id)
        if post is None:
            await reply_privately(interaction, t("showcase.not_published", locale))
            return
        try:
            check_author(post.author_id, actor_of(interaction.user, interaction.channel))
        except UserFacingError as error:
            await send_error(interaction, error)
            return
        await self.remove_post(post)
        await interaction.followup.send(t("showcase.unpublished", locale), ephemeral=True)

    async def remove_post(self, post: ShowcasePost) -> None:
        """Delete a post (its thread: Manage Threads), else at least its image (the bot's own
        first message), and forget it."""
        await self.showcase.forget(post.turn_id)
        await self._delete_thread(post.post_id, post.guild_id)

    async def _delete_thread(self, post_id: int, guild_id: int | None) -> None:
        try:
            thread = self.bot.get_channel(post_id) or await self.bot.fetch_channel(post_id)
            await thread.delete()  # type: ignore[union-attr]
            return
        except discord.NotFound:
            return
        except discord.HTTPException as exc:
            log.info("Could not delete showcase post %s (%s); deleting its image", post_id, exc)
        try:
            channel = self.bot.get_partial_messageable(post_id, guild_id=guild_id)
            await channel.get_partial_message(post_id).delete()
        except discord.HTTPException as exc:
            log.info("Could not delete the first message of post %s: %s", post_id, exc)

    # ------------------------------------------------------------------ events
    @commands.Cog.listener()
    async def on_raw_message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        """A result deleted in its conversation takes its post along; a post's first message
        deleted (by a moderator) forgets the post."""
        if payload.guild_id is None:
            return
        own = await self.showcase.by_post(payload.message_id)
        if own is not None:
            await self.showcase.forget(own.turn_id)
            return
        turn = await self.service.turn_for_message(payload.message_id)
        post = await self.showcase.post_of(turn.id) if turn else None
        if post is not None:
            await self.remove_post(post)

    @commands.Cog.listener()
    async def on_raw_thread_delete(self, payload: discord.RawThreadDeleteEvent) -> None:
        """A post deleted is forgotten; a conversation deleted takes its posts along."""
        own = await self.showcase.by_post(payload.thread_id)
        if own is not None:
            await self.showcase.forget(own.turn_id)
            return
        for post in await self.showcase.in_conversation(payload.thread_id):
            await self.remove_post(post)

    @commands.Cog.listener()
    async def on_guild_channel_delete(self, channel: discord.abc.GuildChannel) -> None:
        """The showcase channel deleted: the server has no showcase until one is named again."""
        policy = await self.bot.gate.policy_for(channel.guild.id)
        if policy.policy.showcase_channel == channel.id:
            await self.bot.gate.policies.update_policy(channel.guild.id, showcase_channel=None,
                                             showcase_stars=None)

    @commands.Cog.listener()
    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        """A ⭐ on a result: at the server's threshold (not counting the author's own star or
        the bot's), the result is published by itself."""
        me = self.bot.user
        if payload.guild_id is None or str(payload.emoji) != STAR or (me and payload.user_id == me.id):
            return
        turn = await self.service.turn_for_message(payload.message_id)
        target = await self.showcase.auto_target(turn)
        if turn is None or target is None:
            return
        if await self._stars(payload, turn) < target.stars:
            return
        guild = self.bot.get_guild(payload.guild_id)
        try:
            forum = self._forum(guild, target.channel_id, "en-US")
            async with self.showcase.publishing:
                if await self.showcase.post_of(turn.id) is None:
                    await self._post(turn, forum, forum_tags(forum), BY_REACTIONS)
        except ShowcaseRefused as refused:
            log.info("Turn %s reached %s ⭐ but was not published: %s %s", turn.id, target.stars,
                     refused.reason, refused.params)

    async def _stars(self, payload: discord.RawReactionActionEvent, turn: Turn) -> int:
        """Members other than the author (and the bot) who starred the result."""
        channel = self.bot.get_partial_messageable(payload.channel_id, guild_id=payload.guild_id)
        try:
            message = await channel.fetch_message(payload.message_id)
            reaction = discord.utils.find(lambda r: str(r.emoji) == STAR, message.reactions)
            if reaction is None:
                return 0
            users = [u.id async for u in reaction.users(limit=100)]
        except discord.HTTPException as exc:
            log.info("Could not count the stars of message %s: %s", payload.message_id, exc)
            return 0
        me = self.bot.user.id if self.bot.user else 0
        return len(set(users) - {me, turn.author_id})


async def setup(bot: BotServices) -> None:
    bot.add_dynamic_items(UnpublishButton)
    await bot.add_cog(ShowcaseCog(bot))
