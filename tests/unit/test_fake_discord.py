"""Runs small, real discord.py bots against the fake Discord in ``tests/fakes``."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import re
import sys
import time
import urllib.request
from typing import Any

import discord
import pytest
import yarl
from discord import app_commands
from discord.ext import commands

from tests.contract.discord_openapi import contract_problems
from tests.fakes.discord_models import PERMISSION_BITS
from tests.fakes.discord_server import FakeDiscord, FakeDiscordError, running_bot

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAIAAAADCAIAAAA2iEnWAAAAEklEQVR4nGP8z8DAwMDAxAAGAA4KAQNt4UdNAAAAAElFTkSuQmCC"
)


@pytest.fixture(autouse=True)
def no_discord_errors(caplog: pytest.LogCaptureFixture) -> Any:
    """discord.py logs (and swallows) exceptions in handlers and parsers: none may occur."""
    caplog.set_level(logging.WARNING, logger="discord")
    yield
    errors = [r for r in caplog.records if r.name.startswith("discord") and r.levelno >= logging.ERROR]
    assert not errors, "\n".join(r.getMessage() + (f"\n{r.exc_text}" if r.exc_text else "") for r in errors)


@pytest.fixture
async def fake() -> Any:
    server = FakeDiscord(ack_deadline=0.5, upload_limit=64 * 1024)
    await server.start()
    yield server
    await server.stop()


class AgainView(discord.ui.View):
    def __init__(self) -> None:
        super().__init__(timeout=None)

    @discord.ui.button(label="Again", custom_id="probe:again", style=discord.ButtonStyle.primary)
    async def again(self, interaction: discord.Interaction, button: discord.ui.Button[Any]) -> None:
        await interaction.response.edit_message(content="clicked", view=self)


class VariantButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"variant:(?P<n>\d+)"):
    def __init__(self, n: int) -> None:
        super().__init__(discord.ui.Button(label=f"Variant {n}", custom_id=f"variant:{n}"))
        self.n = n

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> VariantButton:
        return cls(int(match["n"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(
            f"variant {self.n}", ephemeral=True, file=discord.File(io.BytesIO(PNG), "variant.png")
        )


class SettingsModal(discord.ui.Modal, title="Settings"):
    size = discord.ui.TextInput(label="Size", custom_id="size")
    note = discord.ui.TextInput(label="Note", custom_id="note", required=False)

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(
            f"size={self.size.value} note={self.note.value}", ephemeral=True
        )


class Probe(commands.Cog):
    """Commands exercising the fake like the real bot will."""

    admin = app_commands.Group(
        name="admin",
        description="Admin commands",
        default_permissions=discord.Permissions(manage_guild=True),
    )

    def __init__(self, bot: ProbeBot) -> None:
        self.bot = bot

    @app_commands.command(description="Create an image")
    async def imagine(
        self, interaction: discord.Interaction, prompt: str, image: discord.Attachment | None = None
    ) -> None:
        await interaction.response.defer()
        data = await image.read() if image else PNG
        msg = await interaction.followup.send(f"**{prompt}**", wait=True)
        channel = interaction.channel
        assert isinstance(channel, discord.TextChannel)
        thread = await channel.create_thread(name=prompt[:90], message=msg)
        view = AgainView()
        view.add_item(VariantButton(1))
        await thread.send("here", file=discord.File(io.BytesIO(data), "result.png"), view=view)

    @app_commands.command(description="Open settings")
    async def settings(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_modal(SettingsModal())

    @app_commands.command(description="Answers too late")
    async def slow(self, interaction: discord.Interaction) -> None:
        await asyncio.sleep(0.7)
        try:
            await interaction.response.defer()
        except discord.NotFound as exc:
            self.bot.errors.append(exc)

    @app_commands.command(description="Pick a style")
    async def pick(self, interaction: discord.Interaction, style: str, count: int = 1) -> None:
        await interaction.response.send_message(f"{style} x{count}")

    @pick.autocomplete("style")
    async def pick_style(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return [
            app_commands.Choice(name=s, value=s) for s in ("anime", "photo", "pixel") if s.startswith(current)
        ]

    @app_commands.command(description="Credit someone")
    async def credit(
        self,
        interaction: discord.Interaction,
        who: discord.Member,
        where: discord.TextChannel | None = None,
        amount: app_commands.Range[int, 1, 5] = 1,
    ) -> None:
        await interaction.response.defer(thinking=True)
        place = where.name if where else "-"
        await interaction.edit_original_response(content=f"{who.display_name} {place} {amount}")

    @admin.command(name="ping", description="Moderators only")
    async def admin_ping(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message("pong", ephemeral=True)

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        self.bot.seen.append(message)


class ProbeBot(commands.Bot):
    def __init__(self, *, message_content: bool = True, **kwargs: Any) -> None:
        intents = discord.Intents.default()
        intents.message_content = message_content
        super().__init__(command_prefix="!", intents=intents, guild_ready_timeout=0.05, **kwargs)
        self.seen: list[discord.Message] = []
        self.errors: list[Exception] = []

    async def setup_hook(self) -> None:
        await self.add_cog(Probe(self))
        self.add_dynamic_items(VariantButton)
        self.add_view(AgainView())

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        pass  # the default sleeps 5 s before re-IDENTIFYing

    def seen_text(self, text: str) -> discord.Message | None:
        return next((m for m in self.seen if m.content == text), None)


class AutoProbeBot(commands.AutoShardedBot):
    def __init__(self) -> None:
        super().__init__(command_prefix="!", intents=discord.Intents.default(), guild_ready_timeout=0.05)


async def test_login_ready_guild_and_restores_globals(fake: FakeDiscord) -> None:
    base, gateway = discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    async with running_bot(fake, ProbeBot()) as bot:
        assert bot.user is not None and bot.user.id == fake.application_id
        assert bot.application_id == fake.application_id
        guild = bot.get_guild(fake.guild_id)
        assert guild is not None and guild.me is not None
        assert isinstance(guild.get_channel(fake.text_channel_id), discord.TextChannel)
        forum = guild.get_channel(fake.forum_channel_id)
        assert isinstance(forum, discord.ForumChannel) and len(forum.available_tags) == 2
        assert guild.get_role(fake.moderator_role_id) is not None
        me = guild.me
        assert guild.get_channel(fake.text_channel_id).permissions_for(me).send_messages  # type: ignore[union-attr]
        intents = fake.identify_payloads[-1]["intents"]
        assert intents & (1 << 15) and "shard" not in fake.identify_payloads[-1]
        assert [r.path for r in fake.request_log[:2]] == ["/users/@me", "/oauth2/applications/@me"]
    assert base == discord.http.Route.BASE
    assert gateway == discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY


async def test_slash_defer_followup_thread_file_and_thread_messages(fake: FakeDiscord) -> None:
    async with running_bot(fake, ProbeBot()) as bot:
        synced = await bot.tree.sync()
        assert {c.name for c in synced} == {"imagine", "settings", "slow", "pick", "credit", "admin"}
        await bot.tree.sync()
        assert fake.command_syncs == 2
        assert [c["id"] for c in fake.commands[None]] == [str(c.id) for c in synced]
        alice = fake.add_user("alice")
        inter = await fake.slash(
            alice,
            fake.text_channel_id,
            "imagine",
            {"prompt": "a red fox"},
            attachments={"image": ("fox.png", PNG, "image/png")},
        )
        thread_id = await fake.wait_for(lambda: next(iter(fake.threads), None))
        files = await fake.wait_for(lambda: [m for m in fake.messages(thread_id) if m.attachments])
        assert inter.response_type == 5 and inter.error is None
        assert inter.original is not None and inter.followups == [inter.original]
        assert inter.original.content == "**a red fox**" and not inter.original.loading
        assert thread_id == inter.original.id
        thread = fake.threads[thread_id]
        assert thread["type"] == 11 and thread["owner_id"] == str(fake.application_id)
        att = files[0].attachments[0]
        assert att.data == PNG and att.content_type == "image/png" and (att.width, att.height) == (2, 3)
        assert await asyncio.to_thread(lambda: urllib.request.urlopen(att.url).read()) == PNG
        assert any(r.files and r.path == f"/channels/{thread_id}/messages" for r in fake.request_log)

        # people reply in the thread: content and attachments arrive
        payload = await fake.say(
            alice, thread_id, "make it blue", attachments=[("my ref.png", PNG, "image/png")]
        )
        got = await fake.wait_for(lambda: bot.seen_text("make it blue"))
        assert isinstance(got.channel, discord.Thread) and got.channel.id == thread_id
        assert isinstance(got.author, discord.Member) and got.author.id == int(alice["id"])
        assert got.attachments[0].filename == "my ref.png" and await got.attachments[0].read() == PNG
        # replies carry message_reference
        await fake.say(alice, thread_id, "no, green", reply_to=int(payload["id"]))
        reply = await fake.wait_for(lambda: bot.seen_text("no, green"))
        assert reply.reference is not None and reply.reference.message_id == int(payload["id"])
        assert reply.type is discord.MessageType.reply


async def test_without_message_content_intent_content_is_empty(fake: FakeDiscord) -> None:
    async with running_bot(fake, ProbeBot(message_content=False)) as bot:
        alice = fake.add_user("alice")
        await fake.say(alice, fake.text_channel_id, "secret words")
        await fake.say(alice, fake.text_channel_id, "hello bot", mention_bot=True)
        await fake.dm(alice, "a private note")
        await fake.wait_for(lambda: len(bot.seen) == 3)
        assert [m.content for m in bot.seen] == [
            "",
            f"<@{fake.application_id}> hello bot",
            "a private note",
        ]
        assert isinstance(bot.seen[2].channel, discord.DMChannel)


async def test_disallowed_message_content_intent_closes_with_4014() -> None:
    server = FakeDiscord(message_content_intent_allowed=False)
    await server.start()
    try:
        with pytest.raises(discord.PrivilegedIntentsRequired):
            async with running_bot(server, ProbeBot()):
                pass
    finally:
        await server.stop()


async def test_buttons_dynamic_items_and_modal(fake: FakeDiscord) -> None:
    async with running_bot(fake, ProbeBot()) as bot:
        await bot.tree.sync()
        alice = fake.add_user("alice")
        await fake.slash(alice, fake.text_channel_id, "imagine", {"prompt": "owl"})
        thread_id = await fake.wait_for(lambda: next(iter(fake.threads), None))
        msg = (await fake.wait_for(lambda: [m for m in fake.messages(thread_id) if m.components]))[0]

        click = await fake.click(alice, msg.id, "probe:again")
        await fake.wait_for(lambda: click.response_type == 7)
        assert msg.content == "clicked" and msg.edits[0].content == "here"
        assert click.original is msg

        variant = await fake.click(alice, msg.id, "variant:1")
        await fake.wait_for(lambda: variant.ephemeral_messages)
        assert variant.ephemeral_messages[0].content == "variant 1"
        assert variant.ephemeral_messages[0].attachments[0].data == PNG
        assert all(m.content != "variant 1" for m in fake.messages(thread_id))

        opened = await fake.slash(alice, fake.text_channel_id, "settings")
        submitted = await fake.submit_modal(alice, opened, {"size": "1024x1024"})
        assert opened.modal is not None and opened.modal["title"] == "Settings"
        await fake.wait_for(lambda: submitted.ephemeral_messages)
        assert submitted.ephemeral_messages[0].content == "size=1024x1024 note="

        with pytest.raises(FakeDiscordError):
            await fake.click(alice, msg.id, "nope")


async def test_autocomplete_subcommands_and_permissions(fake: FakeDiscord) -> None:
    async with running_bot(fake, ProbeBot()) as bot:
        guild = discord.Object(fake.guild_id)
        bot.tree.copy_global_to(guild=guild)
        await bot.tree.sync(guild=guild)
        assert fake.commands[fake.guild_id][0]["guild_id"] == str(fake.guild_id)
        alice = fake.add_user("alice")
        mod = fake.add_user("mod", roles=[fake.moderator_role_id])
        assert await fake.autocomplete(alice, fake.text_channel_id, "pick", {}, "style") == [
            {"name": s, "value": s} for s in ("anime", "photo", "pixel")
        ]
        assert await fake.autocomplete(alice, fake.text_channel_id, "pick", {"style": "p"}, "style") == [
            {"name": "photo", "value": "photo"},
            {"name": "pixel", "value": "pixel"},
        ]
        picked = await fake.slash(alice, fake.text_channel_id, "pick", {"style": "anime", "count": 2})
        await fake.wait_for(lambda: picked.original)
        assert picked.original is not None and picked.original.content == "anime x2"
        assert picked.original.interaction_metadata["name"] == "pick"  # type: ignore[index]
        credit = await fake.slash(
            alice, fake.text_channel_id, "credit", {"who": mod, "where": fake.other_channel_id, "amount": 3}
        )
        await fake.wait_for(lambda: credit.original)
        await fake.wait_for(lambda: credit.original and credit.original.content)
        assert credit.original is not None and credit.original.content == "Mod random 3"
        assert credit.original.edits[0].flags & 128  # it was the "thinking" message
        with pytest.raises(FakeDiscordError, match="outside"):
            await fake.slash(alice, fake.text_channel_id, "credit", {"who": mod, "amount": 9})
        with pytest.raises(FakeDiscordError, match="default_member_permissions"):
            await fake.slash(alice, fake.text_channel_id, "admin ping")
        pong = await fake.slash(mod, fake.text_channel_id, "admin ping")
        await fake.wait_for(lambda: pong.ephemeral_messages)
        assert pong.payload["data"]["options"][0] == {"name": "ping", "type": 1, "options": []}


async def test_late_ack_double_ack_and_expired_token(fake: FakeDiscord) -> None:
    async with running_bot(fake, ProbeBot()) as bot:
        await bot.tree.sync()
        alice = fake.add_user("alice")
        late = await fake.slash(alice, fake.text_channel_id, "slow")
        await fake.wait_for(lambda: late.errors, timeout=3)
        assert late.error == 10062 and late.response_type is None
        assert isinstance(bot.errors[0], discord.NotFound) and bot.errors[0].code == 10062

        # a second callback is refused with 40060; followups after the token lifetime with 50027
        picked = await fake.slash(alice, fake.text_channel_id, "pick", {"style": "anime"})
        await fake.wait_for(lambda: picked.original)
        route = discord.http.Route("POST", "/interactions/{i}/{t}/callback", i=picked.id, t=picked.token)
        async with running_bot(fake, ProbeBot(), wait_ready=True) as other:
            with pytest.raises(discord.HTTPException) as err:
                await other.http.request(route, json={"type": 4, "data": {"content": "again"}})
            assert err.value.code == 40060
            fake.token_lifetime = 0
            with pytest.raises(discord.HTTPException) as err:
                await other.http.request(
                    discord.http.Route("POST", "/webhooks/{a}/{t}", a=fake.application_id, t=picked.token),
                    json={"content": "late"},
                )
            assert err.value.status == 401 and err.value.code == 50027
        assert picked.errors == [40060, 50027]


async def test_rest_errors_oversize_locked_denied_and_429_retry(fake: FakeDiscord) -> None:
    async with running_bot(fake, ProbeBot()) as bot:
        channel = bot.get_channel(fake.text_channel_id)
        assert isinstance(channel, discord.TextChannel)
        with pytest.raises(discord.HTTPException) as err:
            await channel.send(file=discord.File(io.BytesIO(b"x" * (fake.upload_limit + 1)), "big.bin"))
        assert err.value.status == 413 and err.value.code == 40005
        with pytest.raises(discord.HTTPException) as err:
            await channel.send("x" * 2001)
        assert err.value.code == 50035 and "content" in json.dumps(err.value.text or "") + str(err.value)
        with pytest.raises(discord.HTTPException) as err:
            await channel.send(embed=discord.Embed(description="d" * 4097))
        assert err.value.code == 50035

        thread = await channel.create_thread(name="standalone", type=discord.ChannelType.public_thread)
        await fake.wait_for(lambda: bot.get_channel(thread.id))
        assert fake.messages(fake.text_channel_id)[-1].type == 18  # "started a thread" notice
        fake.archive_thread(thread.id)
        await fake.wait_for(lambda: bot.get_channel(thread.id) is None)  # archived: dropped from cache
        first = await thread.send("wakes it up", file=discord.File(io.BytesIO(PNG), "one.png"))
        assert fake.threads[thread.id]["thread_metadata"]["archived"] is False
        edited = await first.edit(
            content="edited",
            attachments=[first.attachments[0], discord.File(io.BytesIO(PNG), "two.png")],
        )
        assert [a.filename for a in edited.attachments] == ["one.png", "two.png"]
        assert edited.attachments[0].id == first.attachments[0].id
        history = [m async for m in thread.history(limit=10)]
        assert [m.content for m in history] == ["edited"]
        with pytest.raises(discord.HTTPException) as err:
            await first.create_thread(name="again")  # a thread-in-thread is not allowed
        assert err.value.code == 50024
        root = await channel.send("root of a thread")
        await root.create_thread(name="first")
        with pytest.raises(discord.HTTPException) as err:
            await channel.create_thread(name="second", message=root)
        assert err.value.code == 160004
        fake.lock_thread(thread.id)
        with pytest.raises(discord.Forbidden) as forbidden:
            await thread.send("hello?")
        assert forbidden.value.code == 160005

        fake.deny(fake.other_channel_id, "send_messages")
        other = bot.get_channel(fake.other_channel_id)
        assert isinstance(other, discord.TextChannel)
        await fake.wait_for(lambda: not other.permissions_for(other.guild.me).send_messages)
        with pytest.raises(discord.Forbidden) as forbidden:
            await other.send("hi")
        assert forbidden.value.code == 50013
        fake.deny(fake.text_channel_id, "create_public_threads")
        msg = await channel.send("root")
        with pytest.raises(discord.Forbidden):
            await msg.create_thread(name="nope")

        fake.fail_next("POST", rf"/channels/{fake.text_channel_id}/messages$", 429, retry_after=0.05)
        sent = await channel.send("after a rate limit")
        posts = [r for r in fake.request_log if (r.json or {}).get("content") == "after a rate limit"]
        assert [r.status for r in posts] == [429, 200] and sent.content == "after a rate limit"


async def test_forum_posts_and_interaction_app_permissions(fake: FakeDiscord) -> None:
    async with running_bot(fake, ProbeBot()) as bot:
        forum = bot.get_channel(fake.forum_channel_id)
        assert isinstance(forum, discord.ForumChannel)
        with pytest.raises(discord.HTTPException) as err:
            await bot.http.send_message(forum.id, params=discord.http.handle_message_parameters(content="x"))
        assert err.value.code == 40058
        post = await forum.create_thread(
            name="gallery post",
            content="look",
            file=discord.File(io.BytesIO(PNG), "a.png"),
            applied_tags=[forum.available_tags[0]],
        )
        assert post.thread.id == post.message.id and post.message.attachments[0].filename == "a.png"
        assert fake.messages(post.thread.id)[0].id == post.thread.id
        # REQUIRE_TAG: an untagged post is refused (40067); a tagged one is fine
        fake.require_forum_tags(forum.id)
        await fake.wait_for(lambda: forum.flags.require_tag)
        with pytest.raises(discord.HTTPException) as err:
            await forum.create_thread(name="untagged", content="no tag")
        assert err.value.code == 40067
        await forum.create_thread(name="tagged", content="ok", applied_tags=[forum.available_tags[1]])

        await bot.tree.sync()
        fake.deny(fake.other_channel_id, "attach_files")
        alice = fake.add_user("alice")
        with pytest.raises(FakeDiscordError, match="forum"):  # no message box to type it into
            await fake.slash(alice, fake.forum_channel_id, "pick", {"style": "x"})
        await fake.slash(alice, post.thread.id, "pick", {"style": "in a post"})  # a post is fine
        inter = await fake.slash(alice, fake.other_channel_id, "pick", {"style": "x"})
        assert not int(inter.payload["app_permissions"]) & discord.Permissions(attach_files=True).value
        await fake.wait_for(lambda: inter.original)


async def test_media_channels_moderated_tags_and_members_reactions(fake: FakeDiscord) -> None:
    """A media channel is thread-only like a forum and its posts need an attachment; a
    moderated tag needs Manage Threads; at most 5 tags, each the channel's own; a member's ⭐
    arrives as MESSAGE_REACTION_ADD with the member, and Get Reactions lists who reacted."""
    reactions: list[discord.RawReactionActionEvent] = []
    bot = ProbeBot()

    async def on_raw_reaction_add(payload: discord.RawReactionActionEvent) -> None:
        reactions.append(payload)

    bot.add_listener(on_raw_reaction_add)
    async with running_bot(fake, bot) as bot:
        media_id = fake.add_channel("art", media=True)
        secret = fake.add_forum_tag(media_id, "staff pick", moderated=True)
        media = await fake.wait_for(lambda: (c := bot.get_channel(media_id)) and
                                    len(c.available_tags) == 3 and c)
        assert isinstance(media, discord.ForumChannel) and media.is_media()
        with pytest.raises(discord.HTTPException) as err:
            await bot.http.send_message(media_id, params=discord.http.handle_message_parameters(content="x"))
        assert err.value.code == 40058
        with pytest.raises(discord.HTTPException) as err:
            await media.create_thread(name="words only", content="no image")
        assert err.value.code == 50035
        moderated = next(t for t in media.available_tags if str(t.id) == secret)
        with pytest.raises(discord.Forbidden):
            await media.create_thread(name="p", content="x", applied_tags=[moderated],
                                      file=discord.File(io.BytesIO(PNG), "a.png"))
        with pytest.raises(discord.HTTPException) as err:
            await media.create_thread(name="p", content="x", applied_tags=[discord.Object(1)] * 6,
                                      file=discord.File(io.BytesIO(PNG), "a.png"))
        assert err.value.code == 50035
        fake.grant(media_id, "manage_threads")
        post = await media.create_thread(name="p", content="x", applied_tags=[moderated],
                                         file=discord.File(io.BytesIO(PNG), "a.png"))
        assert fake.threads[post.thread.id]["applied_tags"] == [secret]

        alice, bob = fake.add_user("alice"), fake.add_user("bob")
        await fake.react(alice, post.message.id)
        await fake.react(alice, post.message.id)  # once per member and emoji
        await fake.react(bob, post.message.id)
        await fake.wait_for(lambda: len(reactions) == 2)
        assert reactions[0].user_id == int(alice["id"]) and str(reactions[0].emoji) == "⭐"
        assert reactions[0].member is not None and reactions[0].member.id == int(alice["id"])
        message = await post.thread.fetch_message(post.message.id)
        [star] = message.reactions
        assert star.count == 2 and not star.me
        assert {u.id async for u in star.users()} == {int(alice["id"]), int(bob["id"])}


async def test_dms_and_commands_surviving_a_restart(fake: FakeDiscord) -> None:
    alice = fake.add_user("alice")
    shy = fake.add_user("shy", dms_open=False)
    async with running_bot(fake, ProbeBot()) as bot:
        await bot.tree.sync()
        user = await bot.fetch_user(int(alice["id"]))
        sent = await user.send("hello in private")
        assert sent.guild is None and fake.messages(fake.dm_channel(alice))[-1].content == "hello in private"
        with pytest.raises(discord.Forbidden) as err:
            await (await bot.fetch_user(int(shy["id"]))).send("hi")
        assert err.value.code == 50007
    async with running_bot(fake, ProbeBot()) as bot:  # a restart: the commands are still synced
        assert {c.name for c in await bot.tree.fetch_commands()} >= {"imagine", "pick"}
        inter = await fake.slash(alice, fake.dm_channel(alice), "pick", {"style": "dm"})
        await fake.wait_for(lambda: inter.original)
        assert inter.original is not None and inter.original.guild_id is None
        assert "user" in inter.payload and "member" not in inter.payload
    assert len(fake.identify_payloads) == 2 and fake.command_syncs == 1


async def test_gateway_resume_replays_missed_dispatches(fake: FakeDiscord) -> None:
    async with running_bot(fake, ProbeBot()) as bot:
        alice = fake.add_user("alice")
        resumed = asyncio.Event()

        async def on_resumed() -> None:
            resumed.set()

        bot.add_listener(on_resumed)
        await fake.drop_gateway(hold=True)
        await fake.say(alice, fake.text_channel_id, "while you were away")
        fake.release_gateway()
        await asyncio.wait_for(resumed.wait(), 5)
        await fake.wait_for(lambda: bot.seen_text("while you were away"))
        assert fake.gateway.resumed_count == 1 and len(fake.sessions) == 1
        # op 7 RECONNECT also resumes
        await fake.request_reconnect()
        await fake.wait_for(lambda: fake.gateway.resumed_count == 2)
        await fake.say(alice, fake.text_channel_id, "still here")
        await fake.wait_for(lambda: bot.seen_text("still here"))


async def test_gateway_invalid_session_reidentifies(fake: FakeDiscord) -> None:
    async with running_bot(fake, ProbeBot()) as bot:
        alice = fake.add_user("alice")
        await fake.drop_gateway(resume=False)
        await fake.wait_for(lambda: len(fake.identify_payloads) == 2 and fake.connected)
        assert fake.gateway.invalidated_count == 1 and fake.gateway.resumed_count == 0
        await bot.wait_until_ready()
        await fake.say(alice, fake.text_channel_id, "after the new session")
        await fake.wait_for(lambda: bot.seen_text("after the new session"))
        assert bot.get_guild(fake.guild_id) is not None


async def test_auto_sharded_bot_uses_gateway_bot(fake: FakeDiscord) -> None:
    async with running_bot(fake, AutoProbeBot()) as bot:
        assert bot.shard_count == 1 and bot.get_guild(fake.guild_id) is not None
        assert any(r.path == "/gateway/bot" for r in fake.request_log)
        assert fake.identify_payloads[-1]["shard"] == [0, 1]


async def test_standalone_process_and_control_api() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.fakes.discord_server",
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode().split()
        assert line[0] == "READY" and line[1].endswith("/api/v10") and line[2].endswith("/gateway")
        base = str(yarl.URL(line[1]).origin())

        def call(method: str, path: str, body: Any = None) -> Any:
            data = None if body is None else json.dumps(body).encode()
            req = urllib.request.Request(base + path, data=data, method=method)
            with urllib.request.urlopen(req) as resp:
                assert resp.headers["Content-Type"] == "application/json"
                return json.loads(resp.read())

        state = await asyncio.to_thread(call, "GET", "/_control/state")
        me = await asyncio.to_thread(call, "GET", "/api/v10/users/@me")
        assert me["id"] == state["application_id"] and me["bot"] is True
        user = await asyncio.to_thread(call, "POST", "/_control/users", {"name": "bob"})
        said = await asyncio.to_thread(
            call,
            "POST",
            "/_control/say",
            {"user_id": user["id"], "channel_id": state["text_channel_id"], "content": "hi"},
        )
        transcript = await asyncio.to_thread(call, "GET", f"/_control/messages/{state['text_channel_id']}")
        assert [m["id"] for m in transcript] == [said["id"]]
        guild = await asyncio.to_thread(call, "POST", "/_control/guilds", {"shard": [1, 2]})
        assert (int(guild["id"]) >> 22) % 2 == 1
        carol = await asyncio.to_thread(
            call, "POST", "/_control/users", {"name": "carol", "guild_id": guild["id"]}
        )
        member = await asyncio.to_thread(
            call, "GET", f"/api/v10/guilds/{guild['id']}/members/{carol['id']}"
        )
        assert member["user"]["id"] == carol["id"]
        state = await asyncio.to_thread(call, "GET", "/_control/state")
        assert [g["id"] for g in state["guilds"]] == [state["guild_id"], guild["id"]]
    finally:
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 10) is not None


@pytest.mark.wall_clock
async def test_wait_for_times_out_with_a_description(fake: FakeDiscord) -> None:
    start = time.monotonic()
    with pytest.raises(TimeoutError, match="never_true"):
        await fake.wait_for(lambda: "never_true" == "x", timeout=0.05)
    assert time.monotonic() - start < 1


async def test_deferred_callback_responses_carry_no_message(fake: FakeDiscord) -> None:
    """Receiving and Responding → Interaction Callback Response: ``resource.message`` exists only
    for types 4 and 7; after a type-5 deferral the message is read with GET @original."""
    async with running_bot(fake, ProbeBot()) as bot:
        await bot.tree.sync()
        alice = fake.add_user("alice")
        deferred = await fake.slash(alice, fake.text_channel_id, "credit", {"who": alice})
        answered = await fake.slash(alice, fake.text_channel_id, "pick", {"style": "anime"})
        await fake.wait_for(lambda: deferred.original and not deferred.original.loading)
        await fake.wait_for(lambda: answered.original)
    callbacks = {
        r.path.split("/")[2]: r.response for r in fake.request_log if r.path.endswith("/callback")
    }
    after_defer = callbacks[str(deferred.id)]
    assert "resource" not in after_defer
    assert after_defer["interaction"]["response_message_loading"] is True
    assert after_defer["interaction"]["response_message_id"] == str(deferred.original.id)
    assert callbacks[str(answered.id)]["resource"]["message"]["content"] == "anime x1"


async def test_bot_uploads_follow_the_servers_boosts_not_the_users_nitro() -> None:
    """Reference → Uploading Files: an interaction's ``attachment_size_limit`` is the larger of
    the server's boost limit and the user's Nitro limit; the bot's own uploads get the server's."""
    mib = 1024 * 1024
    server = FakeDiscord()
    await server.start()
    try:
        async with running_bot(server, ProbeBot()) as bot:
            await bot.tree.sync()
            nitro = server.add_user("nitro", nitro="nitro")
            plain = server.add_user("plain")
            inter = await server.slash(nitro, server.text_channel_id, "pick", {"style": "anime"})
            other = await server.slash(plain, server.text_channel_id, "pick", {"style": "anime"})
            await server.wait_for(lambda: inter.original and other.original)
            assert inter.payload["attachment_size_limit"] == 500 * mib
            assert other.payload["attachment_size_limit"] == 10 * mib
            channel = bot.get_channel(server.text_channel_id)
            assert isinstance(channel, discord.TextChannel)
            assert channel.guild.filesize_limit == 10 * mib
            big = b"x" * (10 * mib + 1)
            with pytest.raises(discord.HTTPException) as err:
                await channel.send(file=discord.File(io.BytesIO(big), "big.bin"))
            assert err.value.status == 413 and err.value.code == 40005
            server.set_premium_tier(2)
            await server.wait_for(lambda: channel.guild.premium_tier == 2)
            assert channel.guild.filesize_limit == 50 * mib
            sent = await channel.send(file=discord.File(io.BytesIO(big), "big.bin"))
            assert sent.attachments[0].size == len(big)
            dm = await bot.create_dm(discord.Object(int(nitro["id"])))
            with pytest.raises(discord.HTTPException) as err:
                await dm.send(file=discord.File(io.BytesIO(big), "big.bin"))
            assert err.value.code == 40005
    finally:
        await server.stop()


async def test_locked_and_archived_threads_follow_the_threads_topic(fake: FakeDiscord) -> None:
    """Topics → Threads: archived threads cannot be edited in but sending unarchives them (unless
    locked); in a locked thread a bot without Manage Threads can neither send nor edit, and may
    delete only while the thread is active."""
    async with running_bot(fake, ProbeBot()) as bot:
        channel = bot.get_channel(fake.text_channel_id)
        assert isinstance(channel, discord.TextChannel)
        root = await channel.send("root")
        thread = await channel.create_thread(name="t", message=root)
        first = await thread.send("one")
        second = await thread.send("two")

        fake.archive_thread(thread.id)
        with pytest.raises(discord.HTTPException) as err:
            await first.edit(content="edited while archived")
        assert err.value.code == 50083
        await second.delete()  # deleting is the one thing allowed in an archived thread
        assert fake.threads[thread.id]["thread_metadata"]["archived"] is True
        await thread.send("wakes it")
        assert fake.threads[thread.id]["thread_metadata"]["archived"] is False

        fake.lock_thread(thread.id)
        for attempt in (first.edit(content="edited while locked"), thread.send("sent while locked")):
            with pytest.raises(discord.HTTPException) as err:
                await attempt
            assert err.value.code == 160005
        fake.archive_thread(thread.id)
        with pytest.raises(discord.HTTPException):
            await first.delete()  # locked and archived: not even deleting
        role = fake.roles[fake.bot_role_id]
        role["permissions"] = str(int(role["permissions"]) | PERMISSION_BITS["manage_threads"])
        fake.archive_thread(thread.id, False)
        edited = await first.edit(content="a moderator bot may")  # locked, but Manage Threads
        assert edited.content == "a moderator bot may"


async def test_guilds_on_two_shards_reach_only_their_shard(fake: FakeDiscord) -> None:
    """Topics → Gateway → Sharding: a guild's READY entry, GUILD_CREATE, messages and
    interactions go to shard ``(guild_id >> 22) % num_shards`` only; REST answers for every guild,
    with its own members, channels and boost tier."""
    home_shard = (fake.guild_id >> 22) % 2
    second = fake.add_guild("Second", shard=(1 - home_shard, 2), premium_tier=2)
    assert (second.id >> 22) % 2 == 1 - home_shard and second.shard(2) == 1 - home_shard
    alice = fake.add_user("alice")
    bob = fake.add_user("bob", guild_id=second.id)
    async with (
        running_bot(fake, ProbeBot(shard_id=0, shard_count=2)) as zero,
        running_bot(fake, ProbeBot(shard_id=1, shard_count=2)) as one,
    ):
        home, away = (zero, one) if home_shard == 0 else (one, zero)
        assert [g.id for g in home.guilds] == [fake.guild_id]
        assert [g.id for g in away.guilds] == [second.id]
        guild = away.get_guild(second.id)
        assert guild is not None and guild.premium_tier == 2 and guild.filesize_limit == 50 * 1024**2
        assert guild.member_count == 3  # the owner, the bot and bob
        assert {c.id for c in guild.channels} == {
            second.text_channel_id, second.other_channel_id, second.forum_channel_id
        }
        await zero.tree.sync()

        await fake.say(bob, second.text_channel_id, "hello second")
        await fake.say(alice, fake.text_channel_id, "hello home")
        await fake.wait_for(lambda: away.seen_text("hello second") and home.seen_text("hello home"))
        assert away.seen_text("hello home") is None and home.seen_text("hello second") is None

        inter = await fake.slash(bob, second.text_channel_id, "imagine", {"prompt": "a heron"})
        thread_id = await fake.wait_for(lambda: next(iter(fake.threads), None))
        assert inter.guild_id == second.id and fake.threads[thread_id]["guild_id"] == str(second.id)
        assert fake.guild_of(thread_id) == second.id
        sessions = {s.shard_id: s for s in fake.sessions}
        assert "INTERACTION_CREATE" in sessions[1 - home_shard].events
        assert "INTERACTION_CREATE" not in sessions[home_shard].events
        with pytest.raises(FakeDiscordError, match="not a member"):
            await fake.slash(alice, second.text_channel_id, "imagine", {"prompt": "x"})

        fetched = await home.fetch_guild(second.id)  # REST needs no shard
        assert fetched.id == second.id and fetched.premium_tier == 2
        channels = await fetched.fetch_channels()
        assert {c.id for c in channels} == {
            second.text_channel_id, second.other_channel_id, second.forum_channel_id
        }
        member = await fetched.fetch_member(int(bob["id"]))
        assert member.id == int(bob["id"])
        with pytest.raises(discord.NotFound):
            await fetched.fetch_member(int(alice["id"]))
        active = await fetched.active_threads()
        assert [t.id for t in active] == [thread_id]
        assert [g.id async for g in home.fetch_guilds()] == [fake.guild_id, second.id]
    # these answers are what Discord's OpenAPI spec describes (nothing checked without the spec)
    assert contract_problems(fake.request_log) == []


async def test_a_guild_added_later_arrives_as_a_join_on_its_shard(fake: FakeDiscord) -> None:
    async with running_bot(fake, ProbeBot(shard_id=0, shard_count=2)) as bot:
        joined = fake.add_guild("Joined", shard=(0, 2))
        skipped = fake.add_guild("Elsewhere", shard=(1, 2))
        await fake.wait_for(lambda: bot.get_guild(joined.id))
        assert bot.get_guild(skipped.id) is None
        session = fake.sessions[-1]
        assert session.events.count("GUILD_CREATE") == (1 if (fake.guild_id >> 22) % 2 == 0 else 0) + 1


async def test_a_channel_gone_or_closed_to_the_bot_and_five_message_commands_at_most(
    fake: FakeDiscord,
) -> None:
    """What a moderation log meets: 10003 for a deleted channel, 50001 without View Channel,
    50013 without Send Messages; and an app gets at most five message commands per scope."""
    async with running_bot(fake, ProbeBot()) as bot:
        hidden, closed, gone = (fake.add_channel(n) for n in ("hidden", "closed", "gone"))
        fake.deny(hidden, "view_channel")
        fake.deny(closed, "send_messages")
        await fake.delete_channel(gone)
        for channel_id, status, code in ((hidden, 403, 50001), (closed, 403, 50013),
                                         (gone, 404, 10003)):
            with pytest.raises(discord.HTTPException) as err:
                await bot.get_partial_messageable(channel_id).send("entry")
            assert (err.value.status, err.value.code) == (status, code)

        menus = [{"name": f"Menu {n}", "type": 3} for n in range(6)]
        app_id = bot.application_id
        assert app_id is not None
        with pytest.raises(discord.HTTPException) as err:  # (discord.py refuses this itself)
            await bot.http.bulk_upsert_global_commands(app_id, menus)
        assert err.value.code == 30032
        assert len(await bot.http.bulk_upsert_global_commands(app_id, menus[:5])) == 5
