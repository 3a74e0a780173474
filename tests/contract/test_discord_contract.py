"""Discord's published OpenAPI spec holds both sides of the fake Discord: every REST request the
bot makes (method, path, query, JSON body or multipart ``payload_json``) and every answer the
fake gives. The end-to-end fixture checks each test's traffic the same way
(``tests/e2e/conftest.py``); here the checker itself is tested, and the main flows are run in one
place with the routes they must have used."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.contract.discord_openapi import AMENDMENTS, SKIP_REASON, DiscordContract, spec_path
from tests.e2e.harness import answer, running, start_conversation, wait_results
from tests.fakes.discord_models import RecordedRequest

pytestmark = pytest.mark.skipif(spec_path() is None, reason=SKIP_REASON)


@pytest.fixture(scope="module")
def contract() -> DiscordContract:
    path = spec_path()
    assert path is not None
    return DiscordContract.load(path)


def recorded(method: str, path: str, *, body: Any = None, status: int = 200, response: Any = None,
             query: dict[str, str] | None = None) -> RecordedRequest:
    return RecordedRequest(method=method, path=path, query=query or {}, json=body, files=[],
                           time=time.time(), status=status, response=response)


USER = {"id": "80351110224678912", "username": "nelly", "discriminator": "0", "global_name": None,
        "avatar": None, "public_flags": 0, "flags": 0, "primary_guild": None}
MESSAGE = {"id": "334385199974967042", "channel_id": "290926798999357250", "author": USER,
           "content": "hi", "timestamp": "2017-07-11T17:27:07.299000+00:00",
           "edited_timestamp": None, "tts": False, "mention_everyone": False, "mentions": [],
           "mention_roles": [], "attachments": [], "embeds": [], "pinned": False, "type": 0,
           "flags": 0, "components": []}


def test_the_checker_reports_what_the_spec_does_not_allow(contract: DiscordContract) -> None:
    ok = recorded("POST", "/channels/290926798999357250/messages", body={"content": "hi"},
                  response=MESSAGE)
    assert contract.check(ok) == []
    assert "no such route" in contract.check(recorded("GET", "/channels/1/no-such-thing"))[0]
    assert "has no PUT" in contract.check(recorded("PUT", "/channels/1/typing"))[0]
    unknown_query = recorded("GET", "/users/@me", query={"with_everything": "1"}, response=USER)
    assert "with_everything" in contract.check(unknown_query)[0]
    bad_body = recorded("POST", "/channels/1/messages", body={"content": 42}, response=MESSAGE)
    assert "request content: 42 is not of type 'string'" in contract.check(bad_body)[0]
    incomplete = {k: v for k, v in MESSAGE.items() if k != "author"}
    [problem] = contract.check(recorded("GET", "/channels/1/messages/2", response=incomplete))
    assert "response 200" in problem and "'author' is a required property" in problem
    bad_path = recorded("GET", "/channels/not-a-snowflake/messages/2", response=MESSAGE)
    assert "path parameter channel_id" in contract.check(bad_path)[0]
    error = recorded("GET", "/channels/1", status=404, response={"message": "Unknown Channel"})
    assert "'code' is a required property" in contract.check(error)[0]


def test_literal_routes_win_over_parameters(contract: DiscordContract) -> None:
    route, params = contract.match("/webhooks/1/token/messages/@original") or (None, {})
    assert route is not None and route.template.endswith("/messages/@original") and params
    route, _ = contract.match("/users/@me") or (None, {})
    assert route is not None and route.template == "/users/@me"


def test_amendments_name_their_sources() -> None:
    assert all(len(amendment) == 2 and all(amendment) for amendment in AMENDMENTS)


MAIN_ROUTES = {
    ("GET", "/users/@me"),
    ("GET", "/oauth2/applications/@me"),
    ("PUT", "/applications/{application_id}/commands"),
    ("POST", "/interactions/{interaction_id}/{interaction_token}/callback"),
    ("GET", "/webhooks/{webhook_id}/{webhook_token}/messages/@original"),
    ("PATCH", "/webhooks/{webhook_id}/{webhook_token}/messages/@original"),
    ("POST", "/webhooks/{webhook_id}/{webhook_token}"),
    ("POST", "/channels/{channel_id}/messages/{message_id}/threads"),
    ("POST", "/channels/{channel_id}/messages"),
    ("PATCH", "/channels/{channel_id}/messages/{message_id}"),
    ("DELETE", "/channels/{channel_id}/messages/{message_id}"),
}


async def test_the_main_flows_follow_the_spec_both_ways(
    discord_fake, openai_fake, make_settings, contract: DiscordContract
) -> None:
    """/imagine, a reply, the buttons (reroll, refine through the modal, details, delete),
    /refine, /usage, the server settings, a refusal and a rate-limited upload."""
    alice = discord_fake.add_user("alice")
    admin = discord_fake.add_user("admin", permissions=["manage_guild"])
    async with running(make_settings()):
        thread = await start_conversation(discord_fake, alice, "a lighthouse")
        first = (await wait_results(discord_fake, thread, 1))[0]
        discord_fake.fail_next("POST", rf"/channels/{thread}/messages$", 429, retry_after=0.01)
        await discord_fake.say(alice, thread, "add fog")
        second = (await wait_results(discord_fake, thread, 2))[1]
        await discord_fake.click(alice, second.id, "imagine:reroll:2")
        await wait_results(discord_fake, thread, 3)
        modal = await discord_fake.click(alice, first.id, "imagine:refine:1")
        await discord_fake.submit_modal(alice, modal, {"instruction": "paint it red"})
        await wait_results(discord_fake, thread, 4)
        details = await discord_fake.click(alice, second.id, "imagine:details:2")
        await discord_fake.wait_for(lambda: details.callbacks)
        refined = await discord_fake.slash(alice, thread, "refine", {"prompt": "add stars"})
        await answer(discord_fake, refined)
        await wait_results(discord_fake, thread, 5)
        await discord_fake.click(alice, second.id, "imagine:delete:2")
        await discord_fake.wait_for(lambda: discord_fake.message(second.id).deleted)
        usage = await discord_fake.slash(alice, discord_fake.text_channel_id, "usage")
        await discord_fake.wait_for(lambda: usage.callbacks)
        for sub, options in (("show", {}), ("limits", {"user_daily_images": 50})):
            inter = await discord_fake.slash(admin, discord_fake.text_channel_id,
                                             f"imagine-settings {sub}", options)
            await discord_fake.wait_for(lambda inter=inter: inter.callbacks)
        blank = await discord_fake.slash(alice, discord_fake.text_channel_id, "imagine",
                                         {"prompt": "   "})
        await discord_fake.wait_for(lambda: blank.callbacks)
    log = discord_fake.request_log
    problems = [problem for record in log for problem in contract.check(record)]
    assert problems == []
    used = {(r.method, route.template) for r in log if (found := contract.match(r.path))
            for route in [found[0]]}
    assert used >= MAIN_ROUTES, MAIN_ROUTES - used
    assert any(r.status == 429 for r in log) and any(r.files for r in log)
