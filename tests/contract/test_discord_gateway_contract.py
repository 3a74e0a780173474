"""discord-api-types' gateway types hold the fake gateway's dispatches: the checker itself, the
committed schemas, and the flows that send each kind of event, checked in one place. Every e2e
test's dispatches are checked the same way at teardown (``tests/e2e/conftest.py``)."""

from __future__ import annotations

import copy
import json
from typing import Any

from tests.contract.discord_gateway import SCHEMA_PATH, contract, gateway_problems
from tests.contract.gateway_schemas.postprocess import _holes
from tests.e2e.harness import answer, running, start_conversation, wait_results
from tests.fakes.discord_gateway import GatewaySession

USER = {"id": "80351110224678912", "username": "nelly", "discriminator": "0", "global_name": None,
        "avatar": None, "flags": 0}
READY = {"v": 10, "user": USER, "guilds": [{"id": "41771983423143937", "unavailable": True}],
         "session_id": "abc", "resume_gateway_url": "ws://127.0.0.1:1",
         "application": {"id": "41771983423143936", "flags": 8953856, "flags_new": "8953856"}}
MESSAGE = {"id": "334385199974967042", "channel_id": "290926798999357250", "author": USER,
           "content": "hi", "timestamp": "2017-07-11T17:27:07.299000+00:00",
           "edited_timestamp": None, "tts": False, "mention_everyone": False, "mentions": [],
           "mention_roles": [], "attachments": [], "embeds": [], "pinned": False, "type": 0,
           "flags": 0, "components": []}
#: The events the issue names; the flows below must send each (THREAD_* as the fake has them).
NAMED = {"READY", "GUILD_CREATE", "INTERACTION_CREATE", "MESSAGE_CREATE", "MESSAGE_UPDATE",
         "THREAD_CREATE", "THREAD_UPDATE", "THREAD_DELETE"}


def session_with(*frames: tuple[str, Any]) -> GatewaySession:
    session = GatewaySession(session_id="s", intents=0, shard_id=0, shard_count=1, identify={})
    for event, data in frames:
        session.push(event, data)
    return session


def without(data: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != key}


def test_a_malformed_dispatch_is_caught() -> None:
    bad_author = copy.deepcopy(MESSAGE)
    bad_author["author"]["id"] = 80351110224678912  # a snowflake is a string
    sent = session_with(
        ("READY", READY),
        ("MESSAGE_CREATE", MESSAGE),
        ("READY", without(READY, "session_id")),
        ("MESSAGE_CREATE", bad_author),
        ("MESSAGE_UPDATE", {**MESSAGE, "flags": -1}),
        ("MESSAGE_CREATE", {**MESSAGE, "type": 999}),
        ("SOMETHING_NEW", {"anything": True}),  # no schema: not checked
    )
    problems = gateway_problems([sent])
    assert problems == [
        "READY (root): 'session_id' is a required property",
        "MESSAGE_CREATE author/id: 80351110224678912 is not of type 'string'",
        "MESSAGE_UPDATE flags: -1 is less than the minimum of 0",
        problems[3],
    ]
    assert problems[3].startswith("MESSAGE_CREATE type: 999 is not one of [0, 1, 2")


def test_a_union_names_the_field_of_the_closest_variant() -> None:
    """An interaction is one of several types (APIInteraction); the problem names the field
    that is wrong in the variant the data matches best, not the whole union."""
    interaction = {"id": "1", "application_id": "2", "type": 3, "token": "t", "version": 1,
                   "app_permissions": "0", "locale": "en-US", "entitlements": [],
                   "authorizing_integration_owners": {}, "attachment_size_limit": 8388608,
                   "channel": {"id": "3", "type": 11}, "channel_id": "3", "user": USER,
                   "message": MESSAGE, "data": {"custom_id": "x", "component_type": 2}}
    assert contract().check("INTERACTION_CREATE", interaction) == []
    broken = {**interaction, "channel": {"id": "3"}}
    assert contract().check("INTERACTION_CREATE", broken) == [
        "INTERACTION_CREATE channel: 'type' is a required property"]


def test_bit_fields_take_any_sum_of_their_members() -> None:
    for flags in (0, 1 << 12 | 1 << 6, 1 << 15):
        assert contract().check("MESSAGE_CREATE", {**MESSAGE, "flags": flags}) == []
    assert contract().check("MESSAGE_CREATE", {**MESSAGE, "flags": "64"}) != []


def test_the_committed_schemas_cover_the_named_events_without_holes() -> None:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    assert contract().events >= NAMED | {"THREAD_LIST_SYNC", "THREAD_MEMBER_UPDATE",
                                         "THREAD_MEMBERS_UPDATE"}
    assert _holes(schema) == []  # no empty schema (one that accepts anything) is left
    assert "discord-api-types 0.38.57" in schema["$comment"]
    assert (SCHEMA_PATH.parent / "LICENSE.discord-api-types").read_text().startswith("MIT License")


async def test_the_flows_dispatch_what_the_types_allow(discord_fake, openai_fake, make_settings) -> None:
    """/imagine, a reply, a button, a modal, a message command, autocomplete, a DM, thread
    rename/archive/delete, a channel made and changed, the bot removed and invited again: every
    dispatch validates, and the named events were sent."""
    alice = discord_fake.add_user("alice")
    async with running(make_settings(allow_dms=True, dm_allowed_users=[int(alice["id"])])):
        thread = await start_conversation(discord_fake, alice, "a lighthouse")
        first = (await wait_results(discord_fake, thread, 1))[0]
        await discord_fake.say(alice, thread, "add fog")
        await wait_results(discord_fake, thread, 2)
        modal = await discord_fake.click(alice, first.id, "imagine:refine:1")
        await discord_fake.submit_modal(alice, modal, {"instruction": "paint it red"})
        await wait_results(discord_fake, thread, 3)
        await answer(discord_fake, await discord_fake.message_command(alice, first.id, "Describe"))
        await discord_fake.autocomplete(alice, discord_fake.text_channel_id, "imagine",
                                        {"prompt": "x", "size": "9:16"}, "size")
        await discord_fake.dm(alice, "a paper crane")
        await wait_results(discord_fake, discord_fake.dm_channel(alice), 1)
        discord_fake.deny(discord_fake.add_channel("news"), "send_messages")
        discord_fake.update_thread(thread, name="renamed")
        discord_fake.archive_thread(thread)
        await discord_fake.delete_channel(thread)
        discord_fake.readd_bot()
    events = {e for s in discord_fake.sessions for e in s.events}
    assert gateway_problems(discord_fake.gateway.sessions) == []
    # (the bot asks for no GUILD_MEMBERS intent, so member joins and role changes are not sent)
    assert events >= NAMED | {"CHANNEL_CREATE", "CHANNEL_UPDATE", "GUILD_DELETE"}, NAMED - events
