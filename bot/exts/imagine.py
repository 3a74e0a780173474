"""`/imagine`, `/refine`, thread replies and result buttons: read the event, acknowledge, call the
core, render. No generation logic lives here.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import discord
from discord.app_commands import Choice
from discord.ext import commands

from bot.ack import acknowledge, at_once, shed
from bot.adapter import (
    GenerationInput,
    actor_for,
    actor_of,
    declared,
    generation_command,
    place_of,
)
from bot.core.admission import Hold
from bot.core.conversations import Ticket
from bot.core.errors import ErrorKind, UserFacingError
from bot.core.models import Conversation, InputImage, Turn, TurnKind, TurnRequest
from bot.core.options import ImageOptions
from bot.core.plans import plan_for
from bot.core.policy import Actor, OncePer
from bot.core.prompts import clean_prompt
from bot.exts._bot import BotServices
from bot.ui.buttons import (
    PLANNED,
    RefineModal,
    RegionModal,
    plan_confirm_view,
    upscale_confirm_view,
)
from bot.ui.choices import size_choices
from bot.ui.details import details_embed
from bot.ui.forums import TAG_REQUIRED, forum_tags
from bot.ui.i18n import t
from bot.ui.render import error_text, jump_link, options_summary, quote, thread_name
from bot.ui.replies import command_mentions, send_error
from bot.ui.router import START_PROMPT, TURN_BUTTON, VARIANT_BUTTON
from bot.ui.variants import VariantButton

log = logging.getLogger(__name__)

DM_NOTE_SECONDS = 3600.0  # a DM refusal is said at most once an hour per user
ButtonHandler = Callable[[discord.Interaction, Turn, Actor], Awaitable[None]]
ThreadMaker = Callable[[], Awaitable[None]]


MAX_VARIANTS = 4
FORMS = ("refine", "edit", "region")  # buttons answered with a form (its submission is checked)
# buttons answered by silently updating the clicked message (the rest answer privately)
SILENT = ("reroll", "retry", "hqgo", "regiongo", *(f"{a}go" for a in PLANNED))


def variants_from(text: str) -> int:
    """The Refine modal's optional "variants" field: empty = 1, else a number from 1 to 4."""
    text = text.strip()
    if not text:
        return 1
    if not text.isdigit() or not 1 <= int(text) <= MAX_VARIANTS:
        raise UserFacingError(ErrorKind.invalid_options, problem="variants_range", value=text[:10])
    return int(text)


class Imagine(commands.Cog):
    """Image conversations: starting them, refining them, and the buttons on results."""

    def __init__(self, bot: BotServices) -> None:
        self.bot = bot
        self.service = bot.service
        self._dm_notes = OncePer(DM_NOTE_SECONDS)
        self._holds: dict[int, Hold] = {}  # interaction id -> its admission, until recorded
        # Vary region forms awaiting Confirm: (user, turn) -> (area, instruction); a restart
        # forgets them (Confirm then asks for the form again)
        self._regions: dict[tuple[int, int], tuple[str, str]] = {}

    async def cog_load(self) -> None:
        """Result buttons, variant boards and /describe's suggestions reach this cog."""
        self.bot.router.add(TURN_BUTTON, self.on_turn_button)
        self.bot.router.add(VARIANT_BUTTON, self.on_variant_button)
        self.bot.router.add(START_PROMPT, self.start_offered)

    async def cog_unload(self) -> None:
        for route in (TURN_BUTTON, VARIANT_BUTTON, START_PROMPT):
            self.bot.router.remove(route)

    async def start_offered(self, interaction: discord.Interaction, prompt: str) -> None:
        """Start a conversation from a prompt the bot offered (a /describe suggestion)."""
        await self.start_prompt(interaction, GenerationInput(prompt=prompt))

    # ------------------------------------------------------------------ /imagine
    @generation_command("imagine", "Create an image and start a conversation thread")
    async def imagine(self, interaction: discord.Interaction, request: GenerationInput) -> None:
        try:
            options = self._read(request)
            if options.action == "edit" and not request.attachments:  # a new root has no image
                raise UserFacingError(ErrorKind.edit_needs_image)
        except UserFacingError as error:  # (nothing waited for yet: refused as the answer)
            await send_error(interaction, error)
            return
        await self.start_prompt(interaction, request, options)

    async def start_prompt(
        self, interaction: discord.Interaction, request: GenerationInput,
        options: ImageOptions | None = None,
    ) -> None:
        """Start a conversation from `request` (/imagine's, or a prompt the bot offered, e.g. a
        /describe suggestion): acknowledged first, then checked by the gate (a refusal is
        private: the public "thinking…" goes), then started."""
        if not await acknowledge(interaction, thinking=True):
            return
        try:
            options = options or self._read(request)
            await self._admit(interaction, request, options)
        except UserFacingError as error:
            self.bot.gate.release_hold(self._holds.pop(interaction.id, None))
            await send_error(interaction, error)  # (privately: the placeholder goes)
            return
        await self.start_root(interaction, request.prompt, options, request.attachments,
                              variants=request.variants or 1)

    async def start_root(
        self,
        interaction: discord.Interaction,
        prompt: str,
        options: ImageOptions,
        attachments: list[discord.Attachment],
        *,
        variants: int = 1,
    ) -> None:
        """Acknowledge, open the thread (or DM) and submit the first turn of a conversation
        (`variants` first turns side by side); the interaction is acknowledged."""
        ticket: Ticket | None = None
        try:
            inputs = await self.bot.attachments.read(attachments)
            conversation_id, ticket, make_thread = await self._open_conversation(interaction, prompt)
            submit = functools.partial(
                self._submit, interaction, TurnKind.root, prompt, options, inputs, conversation_id,
                ticket=ticket, variants=variants,
            )
            if make_thread is None:
                await submit()
            else:
                await self._submit_beside(submit, make_thread)
        except UserFacingError as error:
            await self._show_start_error(interaction, error)
        finally:
            self.bot.gate.release_hold(self._holds.pop(interaction.id, None))
            if ticket is not None:
                ticket.done()

    def _read(self, request: GenerationInput) -> ImageOptions:
        """What can be refused before acknowledging (nothing to wait for): the options and the
        prompt as typed."""
        clean_prompt(request.prompt, max_chars=self.bot.gate.max_prompt_chars)
        return request.options()

    async def _admit(
        self, interaction: discord.Interaction, request: GenerationInput, options: ImageOptions,
        *, conversation: Conversation | None = None,
    ) -> None:
        """The gate, after the acknowledgement (it reads and may write the database): access,
        the refine rule of the `conversation` continued, the attachments as declared, queue
        room and limits. A refusal leaves nothing behind (no thread, no turn, nothing
        downloaded). An admission holds its worst-case cost (in `_holds`, by interaction) until
        `_submit` records the turn or the command ends."""
        self._holds[interaction.id] = await self.bot.gate.admit(
            await self._actor(interaction.user, interaction.channel), options,
            prompt=request.prompt, attachments=declared(request.attachments),
            context_image=conversation is not None, conversation=conversation,
        )

    async def _submit_beside(
        self, submit: Callable[..., Awaitable[Turn]], make_thread: ThreadMaker
    ) -> None:
        """The image first: submit the first turn (its image is asked for at once), then create
        its thread while it renders; its progress message waits for the thread (`ready`)."""
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        submitting = asyncio.ensure_future(submit(ready=ready))
        await asyncio.wait([submitting])  # recorded and scheduled: its request goes first
        try:
            await make_thread()
        except BaseException as exc:
            refusal = exc if isinstance(exc, UserFacingError) else UserFacingError(ErrorKind.server)
            ready.set_exception(refusal)  # the turn, if recorded, fails with the thread's reason
            await asyncio.wait([submitting])
            ready.exception()  # (retrieved: the thread's own error is the one shown)
            if not submitting.cancelled():
                submitting.exception()
            raise
        ready.set_result(None)
        await submitting

    async def _open_conversation(
        self,
        interaction: discord.Interaction,
        prompt: str,
    ) -> tuple[int, Ticket | None, ThreadMaker | None]:
        """Find or create the thread (or DM) that holds the conversation; return its id (and,
        for a new thread, this first turn's place in the thread's line, and what creates the
        thread: it is created while the first image renders)."""
        channel = interaction.channel
        user = interaction.user
        guild_id = interaction.guild_id
        if channel is None:
            raise UserFacingError(ErrorKind.unknown_conversation)
        if guild_id is None:  # a DM: the DM channel is the conversation
            await self.service.open_conversation(
                channel.id, guild_id=None, parent_channel_id=None, owner_id=user.id
            )
            await interaction.edit_original_response(content=quote(prompt))
            return channel.id, None, None
        if isinstance(channel, discord.Thread):
            here = await self._own_conversation(channel)
            if here is not None and self.bot.gate.may_start_in(actor_of(user, channel), here):
                await interaction.edit_original_response(content=quote(prompt))
                return channel.id, None, None
            # a thread the bot did not open, or another member's conversation (a first turn
            # there would become its head): the conversation gets a thread of its own beside it
            return await self._open_beside(interaction, channel, prompt), None, None
        self._check_parent_channel(channel)
        if not interaction.app_permissions.create_public_threads:  # said before anything is paid
            log.warning("Cannot open a thread in %s: missing Create Public Threads", channel.id)
            raise UserFacingError(ErrorKind.missing_permissions, permission="Create Public Threads")
        # The deferred reply is the thread's starter message (its id becomes the thread's).
        # A type-5 callback response carries no message (Discord docs, Receiving and
        # Responding → Interaction Callback Response): read it back with GET @original.
        original = await interaction.original_response()
        # The thread takes the id of the message it starts from: record the conversation and
        # take this turn's place in line first, so that a reply posted the moment the thread
        # appears is neither ignored nor run before this first turn.
        ticket = self.service.turnstile.ticket(original.id)
        try:
            await self.service.open_conversation(
                original.id, guild_id=guild_id, parent_channel_id=channel.id, owner_id=user.id
            )
        except BaseException:
            ticket.done()
            raise
        return original.id, ticket, functools.partial(
            self._make_thread, interaction, channel, original, prompt
        )

    async def _make_thread(
        self, interaction: discord.Interaction, channel: discord.TextChannel,
        original: discord.Message, prompt: str,
    ) -> None:
        """Start the conversation's thread from the command's reply and say where it is."""
        try:
            thread = await channel.create_thread(
                name=thread_name(prompt), message=original, auto_archive_duration=1440,
            )
        except discord.Forbidden:
            log.warning("Cannot open a thread in %s: missing Create Public Threads", channel.id)
            raise UserFacingError(
                ErrorKind.missing_permissions, permission="Create Public Threads"
            ) from None
        await self._announce_thread(interaction, thread, prompt, channel.id)

    async def _announce_thread(
        self, interaction: discord.Interaction, thread: discord.Thread, prompt: str,
        parent_id: int,
    ) -> None:
        """Record the new thread as a conversation (unless it was recorded by the id of the
        message it starts from, which it takes) and say where it is."""
        if await self.service.conversation(thread.id) is None:
            await self.service.open_conversation(
                thread.id, guild_id=interaction.guild_id, parent_channel_id=parent_id,
                owner_id=interaction.user.id,
            )
        hint = "thread.hint" if self.bot.intents.message_content else "thread.hint_no_content"
        refine = await self.bot.command_mention("refine")
        await interaction.edit_original_response(
            content=t("thread.started", str(interaction.locale), thread=thread.mention)
            + "\n" + quote(prompt, 300) + "\n-# " + t(hint, str(interaction.locale), refine=refine),
        )
        if not self.bot.intents.message_content:
            await thread.send(t("thread.hint_no_content", str(interaction.guild_locale),
                                refine=refine))

    async def _open_beside(
        self, interaction: discord.Interaction, foreign: discord.Thread, prompt: str
    ) -> int:
        """`/imagine` in a thread the bot did not open: open a conversation thread in the same
        parent channel (a thread cannot hold another), or say why that is impossible here."""
        parent = foreign.parent
        try:
            if isinstance(parent, discord.ForumChannel):
                # a post of a forum: the conversation becomes a new post there
                created = await parent.create_thread(
                    name=thread_name(prompt), content=quote(prompt), applied_tags=forum_tags(parent),
                    allowed_mentions=discord.AllowedMentions.none(),
                )
                thread = created.thread
            elif isinstance(parent, discord.TextChannel):
                # A standalone thread is private unless its type says otherwise (API-NOTES).
                thread = await parent.create_thread(
                    name=thread_name(prompt), type=discord.ChannelType.public_thread,
                    auto_archive_duration=1440,
                )
                await thread.send(quote(prompt), allowed_mentions=discord.AllowedMentions.none())
            else:
                raise UserFacingError(ErrorKind.no_thread_here)
        except discord.Forbidden:
            log.warning("Cannot open a thread in %s: missing Create Public Threads", foreign.parent_id)
            raise UserFacingError(
                ErrorKind.missing_permissions, permission="Create Public Threads"
            ) from None
        except discord.HTTPException as exc:
            if exc.code != TAG_REQUIRED:
                raise
            log.warning("Forum %s requires a tag the bot may not apply", foreign.parent_id)
            raise UserFacingError(ErrorKind.no_thread_here) from None
        await self._announce_thread(interaction, thread, prompt, parent.id)
        return thread.id

    async def _own_conversation(self, channel: Any) -> Conversation | None:
        """The conversation `channel` holds, if it is one: a thread the bot opened, or a DM.
        A conversation recorded before the bot kept track is settled by the thread's owner."""
        conversation = await self.service.conversation(getattr(channel, "id", 0))
        if conversation is None or conversation.bot_opened is not None:
            return conversation if conversation and conversation.bot_opened else None
        me = self.bot.user
        opened = isinstance(channel, discord.Thread) and me is not None and channel.owner_id == me.id
        return await self.service.record_origin(conversation, opened)

    def _check_parent_channel(self, channel: Any) -> None:
        # Only a text channel: a slash command cannot be run in a forum channel itself (it has
        # no message box), only in its posts, which are threads (handled above).
        if not isinstance(channel, discord.TextChannel):
            raise UserFacingError(ErrorKind.unknown_conversation)

    async def _show_start_error(self, interaction: discord.Interaction, error: UserFacingError) -> None:
        text = error_text(error, str(interaction.locale), await command_mentions(self.bot))
        try:
            await interaction.edit_original_response(content=text)
        except discord.HTTPException:
            await send_error(interaction, error)

    async def _submit(
        self,
        interaction: discord.Interaction,
        kind: TurnKind,
        prompt: str,
        options: ImageOptions,
        inputs: list[InputImage],
        conversation_id: int,
        parent_turn_id: int | None = None,
        *,
        ticket: Ticket | None = None,
        variants: int = 1,
        sticky: bool = True,
        ready: Awaitable[None] | None = None,
    ) -> Turn:
        self._check_can_post(interaction)
        request = TurnRequest(
            kind=kind,
            author_id=interaction.user.id,
            prompt=prompt,
            options=options,
            guild_id=interaction.guild_id,
            conversation_id=conversation_id,
            parent_turn_id=parent_turn_id,
            input_images=inputs,
            locale=str(interaction.locale),
            variants=variants,
            sticky=sticky,
        )
        if getattr(interaction.channel, "id", None) == conversation_id:
            await self._own_conversation(interaction.channel)  # settles an older record
        actor = await self._actor(interaction.user, interaction.channel)
        hold = self._holds.pop(interaction.id, None)
        try:
            async with ticket or self.service.turnstile.ticket(conversation_id):
                return await self.service.submit(request, actor, hold=hold, ready=ready)
        finally:
            self.bot.gate.release_hold(hold)  # if submit refused before replacing it

    @staticmethod
    def _check_can_post(interaction: discord.Interaction) -> None:
        """The image is asked for before its progress message is posted: a thread the bot may
        not post in is refused first, from the interaction's `app_permissions` (the bot's
        permissions where it was used) and the thread's lock (only Manage Threads posts in a
        locked thread: Discord docs, Topics → Threads), before anything is paid for."""
        if interaction.guild_id is None:
            return
        allowed = interaction.app_permissions
        if not allowed.send_messages_in_threads:
            raise UserFacingError(ErrorKind.missing_permissions, permission="Send Messages in Threads")
        channel = interaction.channel
        if isinstance(channel, discord.Thread) and channel.locked and not allowed.manage_threads:
            raise UserFacingError(ErrorKind.thread_locked)

    # ------------------------------------------------------------------ /refine
    @generation_command("refine", "Refine the latest image in this conversation")
    async def refine(self, interaction: discord.Interaction, request: GenerationInput) -> None:
        prompt = request.prompt
        try:
            options = self._read(request)
        except UserFacingError as error:  # (nothing waited for yet: refused as the answer)
            await send_error(interaction, error)
            return
        if not await acknowledge(interaction, ephemeral=True, thinking=True):  # always private
            return
        try:
            channel_id = interaction.channel_id or 0
            conversation = await self._own_conversation(interaction.channel)
            if conversation is None:
                raise UserFacingError(ErrorKind.unknown_conversation)
            await self._admit(interaction, request, options, conversation=conversation)
            inputs = await self.bot.attachments.read(request.attachments)
            await self._submit(interaction, TurnKind.reply, prompt, options, inputs, channel_id,
                               variants=request.variants or 1)
            await interaction.followup.send(
                t("ack.queued", str(interaction.locale), prompt=prompt[:200]), ephemeral=True
            )
        except UserFacingError as error:
            await send_error(interaction, error)
        finally:
            self.bot.gate.release_hold(self._holds.pop(interaction.id, None))

    @imagine.autocomplete("size")
    @refine.autocomplete("size")
    async def _size_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[Choice[str]]:
        policy = await self.bot.gate.policy_for(interaction.guild_id)
        return size_choices(current, policy.image_model)  # the sizes the server's model takes

    # ------------------------------------------------------------------ thread replies
    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        if message.author.bot or message.webhook_id is not None:
            return
        if message.type not in (discord.MessageType.default, discord.MessageType.reply):
            return
        ticket = self.service.turnstile.ticket(message.channel.id)
        try:
            await self._on_user_message(message, ticket)
        except UserFacingError as error:
            if self._quiet_in_dm(message, error):
                return
            await self._reply_error(message, error)
        finally:
            ticket.done()

    def _quiet_in_dm(self, message: discord.Message, error: UserFacingError) -> bool:
        """A DM refusal is said once per user per hour, so DMs cannot make the bot spam."""
        return (message.guild is None and error.kind is ErrorKind.not_allowed
                and not self._dm_notes.allow(message.author.id))

    async def _message_turn(
        self, message: discord.Message
    ) -> tuple[TurnKind, Actor, Conversation | None] | None:
        """What a message is to the bot: a new DM conversation, a reply in a conversation (with
        that conversation), or nothing (None). Threads the bot did not open are never
        conversations."""
        channel = message.channel
        if message.guild is None:
            actor = await self._dm_actor(message.author)
            await self.bot.gate.may_use(actor)  # refused before anything is recorded
            conversation = await self._own_conversation(channel)
            if conversation is not None:
                return TurnKind.reply, actor, conversation
            await self.service.open_conversation(
                channel.id, guild_id=None, parent_channel_id=None, owner_id=message.author.id
            )
            return TurnKind.root, actor, None
        conversation = await self._own_conversation(channel)
        if conversation is None:
            if self._mentions_me(message) and isinstance(channel, discord.Thread):
                raise UserFacingError(ErrorKind.unknown_conversation)
            return None
        return TurnKind.reply, actor_of(message.author, channel), conversation

    def _mentions_me(self, message: discord.Message) -> bool:
        me = self.bot.user
        return me is not None and me in message.mentions

    def _prompt_of(self, message: discord.Message) -> str | None:
        """The instruction a message carries (None: nothing the bot can see)."""
        prompt = message.content
        me = self.bot.user
        if me is not None:
            prompt = prompt.replace(f"<@{me.id}>", "").replace(f"<@!{me.id}>", "")
        cannot_see = (not self.bot.intents.message_content and not self._mentions_me(message)
                      and message.guild is not None)
        if not prompt.strip() and not message.attachments and cannot_see:
            return None  # we cannot see what they wrote; the thread hint explains /refine
        return prompt

    async def _on_user_message(self, message: discord.Message, ticket: Any) -> None:
        found = await self._message_turn(message)
        prompt = self._prompt_of(message) if found is not None else None
        if found is None or prompt is None:
            return
        kind, actor, conversation = found
        parent_turn_id = None
        if message.reference is not None and message.reference.message_id is not None:
            replied = await self.service.turn_for_message(message.reference.message_id)
            if replied is not None and replied.conversation_id == message.channel.id:
                parent_turn_id = replied.id
                kind = TurnKind.branch
        # the gate first: nothing is downloaded for a refused message
        hold = await self.bot.gate.admit(
            actor, prompt=prompt, attachments=declared(list(message.attachments)),
            context_image=conversation is not None, conversation=conversation,
        )
        try:
            inputs = await self.bot.attachments.read(list(message.attachments))
            request = TurnRequest(
                kind=kind, author_id=message.author.id, prompt=prompt,
                guild_id=message.guild.id if message.guild else None,
                conversation_id=message.channel.id, parent_turn_id=parent_turn_id,
                input_images=inputs, source_message_id=message.id,
                locale=await self._locale_of(message),
            )
            await ticket.wait()
            await self.service.submit(request, actor, hold=hold)
        finally:
            self.bot.gate.release_hold(hold)

    async def _actor(self, user: discord.abc.User, channel: Any) -> Actor:
        """Who is acting; in a DM, with the servers that may vouch for them."""
        return await actor_for(self.bot.gate, user, channel)

    async def _dm_actor(self, user: discord.abc.User) -> Actor:
        """A DM user, with the first server (of those allowing member DMs) they belong to."""
        return await self.bot.gate.dm_actor(user.id)

    async def _locale_of(self, message: discord.Message) -> str:
        """A message carries no user locale: the one of the author's latest interaction, else
        the server's chosen language, else the server's own."""
        remembered = await self.bot.core.preferences.locale_of(message.author.id)
        if remembered:
            return remembered
        guild = message.guild
        if guild is None:
            return "en-US"
        policy = await self.bot.gate.policy_for(guild.id)
        return policy.policy.locale or str(guild.preferred_locale)

    async def _reply_error(self, message: discord.Message, error: UserFacingError) -> None:
        try:
            await message.reply(
                error_text(error, await self._locale_of(message), await command_mentions(self.bot)),
                mention_author=False, allowed_mentions=discord.AllowedMentions.none(),
            )
        except discord.HTTPException as exc:
            log.info("Could not reply in %s: %s", message.channel.id, exc)

    # ------------------------------------------------------------------ buttons
    async def on_turn_button(self, interaction: discord.Interaction, action: str, turn_id: int) -> None:
        """A click on a result's or a progress message's button: acknowledged first (a form
        opens at once; a confirmed action or a reroll updates the clicked message silently; the
        rest answer privately), then one handler per action."""
        if action in FORMS:
            await self._open_form(interaction, action, turn_id)
            return
        handlers: dict[str, ButtonHandler] = {
            "reroll": self._reroll_button,
            "retry": self._retry_button,
            "hq": self._upscale_button,
            "hqgo": self._upscale_confirm_button,
            "continue": self._continue_button,
            "details": self._details_button,
            "delete": self._delete_button,
            "cancel": self._cancel_button,
            "regiongo": self._region_confirm_button,
            **dict.fromkeys(PLANNED, self._plan_button),
            **dict.fromkeys((f"{a}go" for a in PLANNED), self._plan_confirm_button),
        }
        handler = handlers.get(action)
        if handler is None:
            return
        private = action not in SILENT
        if not await acknowledge(interaction, ephemeral=private, thinking=private):
            return
        try:
            turn = await self.service.turn_in(turn_id, place_of(interaction))
            await handler(interaction, turn, await self._actor(interaction.user, interaction.channel))
        except UserFacingError as error:
            await send_error(interaction, error)

    async def _open_form(self, interaction: discord.Interaction, action: str, turn_id: int) -> None:
        """Refine, Edit prompt and Vary region answer with a form, checking nothing first (its
        submission passes the whole gate); Refine's and Edit prompt's is pre-filled with the
        turn's prompt when it can be read at once."""
        if await shed(interaction):
            return
        locale = str(interaction.locale)
        if action == "region":
            modal: discord.ui.Modal = RegionModal(self, turn_id, locale)
        else:  # "edit" (a failed turn's Edit prompt) and "refine" open the same modal
            modal = RefineModal(self, turn_id, locale, prompt=await self._prefill(interaction, turn_id),
                                mode=action)
        await interaction.response.send_modal(modal)

    async def _prefill(self, interaction: discord.Interaction, turn_id: int) -> str:
        """The turn's prompt for a form, if it can be read at once (else the form opens empty
        rather than late)."""
        turn = await at_once(self.service.turn_in(turn_id, place_of(interaction)), None)
        return turn.prompt if turn is not None else ""

    async def _reroll_button(self, interaction: discord.Interaction, turn: Turn, actor: Actor) -> None:
        await self._submit_turn_action(interaction, turn, TurnKind.reroll, turn.prompt)

    async def _retry_button(self, interaction: discord.Interaction, turn: Turn, actor: Actor) -> None:
        """Retry: a result already paid for, that Discord did not take, is posted; anything else
        is asked for anew. (The click was acknowledged before this handler ran.)"""
        if not await self.service.deliver_again(turn, actor):
            await self._submit_turn_action(interaction, turn, TurnKind.reroll, turn.prompt)

    async def _continue_button(self, interaction: discord.Interaction, turn: Turn, actor: Actor) -> None:
        await self.service.continue_from(turn, actor)
        await interaction.followup.send(t("ack.continue", str(interaction.locale)), ephemeral=True)

    async def _details_button(self, interaction: discord.Interaction, turn: Turn, actor: Actor) -> None:
        embed = details_embed(turn, str(interaction.locale), await self.service.parent_of(turn),
                              await self._remixed_from(turn))
        await interaction.followup.send(embed=embed, ephemeral=True)

    async def _delete_button(self, interaction: discord.Interaction, turn: Turn, actor: Actor) -> None:
        await self.service.delete(turn, actor)
        await interaction.followup.send(t("ack.deleted", str(interaction.locale)), ephemeral=True)
        await self._delete_messages(turn)
        if actor.user_id != turn.author_id and turn.guild_id is not None:  # a moderator's
            self.bot.modlog.spawn(self.bot.modlog.note(
                turn.guild_id, "modlog.did.del", mod=actor.user_id, user=turn.author_id,
                thread=turn.conversation_id, n=turn.number), name=f"modlog-delete-{turn.id}")

    async def _cancel_button(self, interaction: discord.Interaction, turn: Turn, actor: Actor) -> None:
        cancelled = await self.service.cancel(turn, actor)
        key = "ack.cancelled" if cancelled else "ack.already_over"
        await interaction.followup.send(t(key, str(interaction.locale)), ephemeral=True)

    async def on_refine_submit(
        self, interaction: discord.Interaction, turn_id: int, instruction: str, variants: str = ""
    ) -> None:
        try:
            count = variants_from(variants)
        except UserFacingError as error:  # (nothing waited for yet: refused as the answer)
            await send_error(interaction, error)
            return
        if not await acknowledge(interaction):
            return
        try:
            turn = await self.service.turn_in(turn_id, place_of(interaction))
            await self._submit_turn_action(interaction, turn, TurnKind.branch, instruction, count)
        except UserFacingError as error:
            await send_error(interaction, error)

    async def on_edit_submit(
        self, interaction: discord.Interaction, turn_id: int, prompt: str
    ) -> None:
        """A failed turn asked again with an edited prompt: from the same parent (or as a new
        first image), with the same options and attached images."""
        if not await acknowledge(interaction):
            return
        try:
            turn = await self.service.turn_in(turn_id, place_of(interaction))
            kind = TurnKind.branch if turn.parent_id else TurnKind.root
            await self._submit(
                interaction, kind, prompt, turn.options, await self.service.inputs_of(turn),
                turn.conversation_id, parent_turn_id=turn.parent_id,
            )
        except UserFacingError as error:
            await send_error(interaction, error)

    async def _upscale_button(self, interaction: discord.Interaction, turn: Turn, actor: Actor) -> None:
        """Upscale / HQ: say what it will make and cost; a Confirm button starts it."""
        await self._check_refine(turn, actor)
        plan = await self.service.plan_upscale(turn)
        locale = str(interaction.locale)
        await interaction.followup.send(
            t("upscale.confirm", locale, n=turn.number or turn.id,
              options=options_summary(plan.options, locale), cost=f"{plan.cost_usd:.2f}"),
            view=upscale_confirm_view(turn.id, locale), ephemeral=True,
        )

    async def _upscale_confirm_button(
        self, interaction: discord.Interaction, turn: Turn, actor: Actor
    ) -> None:
        await self._check_refine(turn, actor)
        plan = await self.service.plan_upscale(turn)
        locale = str(interaction.locale)
        await interaction.edit_original_response(content=t("upscale.started", locale), view=None)
        await self._submit(
            interaction, TurnKind.branch, t("upscale.prompt", locale), plan.options, [],
            turn.conversation_id, parent_turn_id=turn.id, sticky=False,
        )

    async def _plan_button(self, interaction: discord.Interaction, turn: Turn, actor: Actor) -> None:
        """Animate, Zoom out, Pan: say what it will make and cost; a Confirm button starts it."""
        await self._check_refine(turn, actor)
        action = _button_action(interaction)
        locale = str(interaction.locale)
        plan = await plan_for(self.service, turn, action, t(f"plan.{action}.prompt", locale))
        await interaction.followup.send(
            t("plan.confirm", locale, what=t(f"button.{action}", locale), n=turn.number or turn.id,
              options=options_summary(plan.options, locale), cost=f"{plan.cost_usd:.2f}"),
            view=plan_confirm_view(action, turn.id, locale), ephemeral=True,
        )

    async def _plan_confirm_button(
        self, interaction: discord.Interaction, turn: Turn, actor: Actor
    ) -> None:
        """Confirmed: the plan again (the server's limits may have changed), submitted as a
        branch from the result through the same admission as any turn."""
        await self._check_refine(turn, actor)
        action = _button_action(interaction).removesuffix("go")
        locale = str(interaction.locale)
        await interaction.edit_original_response(content=t("plan.started", locale), view=None)
        prompt = t(f"plan.{action}.prompt", locale)
        plan = await plan_for(self.service, turn, action, prompt)
        await self._submit(interaction, TurnKind.branch, prompt, plan.options, plan.inputs,
                           turn.conversation_id, parent_turn_id=turn.id, sticky=False)

    async def on_region_submit(
        self, interaction: discord.Interaction, turn_id: int, area: str, instruction: str
    ) -> None:
        """Vary region: what it will make and cost (the area read, the mask drawn); Confirm
        starts it."""
        locale = str(interaction.locale)
        if not await acknowledge(interaction, ephemeral=True, thinking=True):
            return
        try:
            turn = await self.service.turn_in(turn_id, place_of(interaction))
            await self._check_refine(turn, await self._actor(interaction.user, interaction.channel))
            prompt = t("plan.region.prompt", locale, area=area, instruction=instruction)
            plan = await plan_for(self.service, turn, "region", prompt, region=area)
            self._regions[(interaction.user.id, turn.id)] = (area, instruction)
            await interaction.followup.send(
                t("plan.confirm", locale, what=t("button.region", locale), n=turn.number or turn.id,
                  options=options_summary(plan.options, locale), cost=f"{plan.cost_usd:.2f}"),
                view=plan_confirm_view("region", turn.id, locale), ephemeral=True,
            )
        except UserFacingError as error:
            await send_error(interaction, error)

    async def _region_confirm_button(
        self, interaction: discord.Interaction, turn: Turn, actor: Actor
    ) -> None:
        await self._check_refine(turn, actor)
        locale = str(interaction.locale)
        asked = self._regions.pop((interaction.user.id, turn.id), None)
        if asked is None:
            raise UserFacingError(ErrorKind.invalid_options, problem="region_again")
        await interaction.edit_original_response(content=t("plan.started", locale), view=None)
        prompt = t("plan.region.prompt", locale, area=asked[0], instruction=asked[1])
        plan = await plan_for(self.service, turn, "region", prompt, region=asked[0])
        await self._submit(interaction, TurnKind.branch, prompt, plan.options, plan.inputs,
                           turn.conversation_id, parent_turn_id=turn.id, sticky=False)

    async def _check_refine(self, turn: Turn, actor: Actor) -> None:
        """Before a form or a confirmation opens: access and the refine rule (the action itself
        passes the whole gate when it is submitted)."""
        await self.bot.gate.check_change(actor, await self.service.conversation(turn.conversation_id))

    async def _submit_turn_action(
        self, interaction: discord.Interaction, turn: Turn, kind: TurnKind, prompt: str,
        variants: int = 1,
    ) -> None:
        await self._submit(
            interaction, kind, prompt, ImageOptions(), [], turn.conversation_id,
            parent_turn_id=turn.id, variants=variants,
        )

    async def on_variant_button(
        self, interaction: discord.Interaction, action: str, turn_id: int
    ) -> None:
        """"Continue from n" and "Reroll all" on a variant board."""
        locale = str(interaction.locale)
        private = action == "continue"
        if not await acknowledge(interaction, ephemeral=private, thinking=private):
            return
        try:
            turn = await self.service.turn_in(turn_id, place_of(interaction))
            actor = await self._actor(interaction.user, interaction.channel)
            if action == "continue":
                await self.service.continue_from(turn, actor)
                await interaction.followup.send(
                    t("variants.continuing", locale, n=turn.variant_index or 1), ephemeral=True
                )
                return
            async with self.service.turnstile.ticket(turn.conversation_id):
                await self.service.reroll_set(turn, actor, locale)
        except UserFacingError as error:
            await send_error(interaction, error)

    async def _delete_messages(self, turn: Turn) -> None:
        channel = self.bot.get_partial_messageable(turn.conversation_id, guild_id=turn.guild_id)
        shown = {*turn.message_ids, turn.progress_message_id} - {None}
        for message_id in shown:
            try:
                await channel.get_partial_message(message_id).delete()
            except discord.HTTPException as exc:
                log.info("Could not delete message %s: %s", message_id, exc)

    async def _remixed_from(self, turn: Turn) -> str | None:
        """The link to the image a remix's first turn started from."""
        if turn.kind is not TurnKind.root:
            return None
        conversation = await self.service.conversation(turn.conversation_id)
        if conversation is None or conversation.remixed_from_message_id is None:
            return None
        return jump_link(conversation.guild_id, conversation.remixed_from_channel_id or 0,
                         conversation.remixed_from_message_id)


async def setup(bot: BotServices) -> None:
    bot.add_dynamic_items(VariantButton)
    await bot.add_cog(Imagine(bot))


def _button_action(interaction: discord.Interaction) -> str:
    """The action in a clicked button's custom_id (`imagine:<action>:<turn>`)."""
    return str((interaction.data or {}).get("custom_id", "")).split(":")[1]
