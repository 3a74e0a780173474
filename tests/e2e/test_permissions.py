"""Missing Discord permissions are explained where the user can see it, and logged by name."""

from __future__ import annotations

import logging
import sqlite3

from tests.e2e.harness import answer, running, start_conversation, wait_results


async def test_no_thread_permission_is_explained_without_an_api_call(
    discord_fake, openai_fake, make_settings, caplog
):
    discord_fake.deny(discord_fake.text_channel_id, "create_public_threads")
    alice = discord_fake.add_user("alice")
    async with running(make_settings()):
        interaction = await discord_fake.slash(
            alice, discord_fake.text_channel_id, "imagine", {"prompt": "a kite"}
        )
        text = await discord_fake.wait_for(
            lambda: interaction.original is not None
            and "Create Public Threads" in interaction.original.content
            and interaction.original.content
        )
    assert "missing the **Create Public Threads** permission" in text
    assert openai_fake.create_requests() == []
    assert discord_fake.threads == {}
    assert any("Create Public Threads" in r.getMessage() for r in caplog.records
               if r.levelno == logging.WARNING)


async def test_no_send_permission_in_the_thread_is_explained_privately(
    discord_fake, openai_fake, make_settings
):
    alice = discord_fake.add_user("alice")
    async with running(make_settings()):
        thread = await start_conversation(discord_fake, alice, "a kite")
        await wait_results(discord_fake, thread, 1)
        discord_fake.deny(thread, "send_messages_in_threads")
        interaction = await discord_fake.slash(alice, thread, "refine", {"prompt": "in red"})
        reply = await answer(discord_fake, interaction, "permission")
    assert reply.ephemeral and "**Send Messages in Threads**" in reply.content
    assert len(openai_fake.create_requests()) == 1  # the refusal cost nothing


async def test_no_attach_permission_turns_the_progress_message_into_an_explanation(
    discord_fake, openai_fake, make_settings
):
    settings = make_settings()
    alice = discord_fake.add_user("alice")
    async with running(settings):
        thread = await start_conversation(discord_fake, alice, "a kite")
        await wait_results(discord_fake, thread, 1)
        discord_fake.deny(thread, "attach_files")
        await discord_fake.say(alice, thread, "two kites")
        text = await discord_fake.wait_for(lambda: next(
            (m.content for m in discord_fake.messages(thread)
             if "Attach Files" in m.content), None))
    assert "> two kites" in text and "missing the **Attach Files** permission" in text
    db = sqlite3.connect(settings.database_path)
    status, kind = db.execute("SELECT status, error_kind FROM turns WHERE id = 2").fetchone()
    assert (status, kind) == ("failed", "missing_permissions")
