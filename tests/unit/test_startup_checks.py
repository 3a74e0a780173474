"""The OpenAI start-up check against the fake Responses API, and the one-line explanations of
start-up failures that cannot be produced on 127.0.0.1 (a DNS failure)."""

from __future__ import annotations

import socket

import aiohttp
import openai
from aiohttp.client_reqrep import ConnectionKey

from bot.core.keys import probe_key
from bot.core.openai_check import Finding, check_openai, models_to_check
from bot.startup import StartupError, explain


async def test_key_and_models_pass(openai_client, fake_openai):
    findings = await check_openai(openai_client, models_to_check("gpt-5.5", "gpt-image-2"))
    assert findings == [
        Finding(True, "OpenAI accepts OPENAI_API_KEY"),
        Finding(True, "OPENAI_MODEL=gpt-5.5 exists"),
        Finding(True, "IMAGE_MODEL=gpt-image-2 exists"),
    ]
    assert [r.path for r in fake_openai.requests] == ["/v1/models/gpt-5.5",
                                                       "/v1/models/gpt-image-2"]


async def test_rejected_key_ends_the_check(openai_client, fake_openai):
    fake_openai.key_accepted = False
    [finding] = await check_openai(openai_client, models_to_check("gpt-5.5", "gpt-image-2"))
    assert finding.ok is False
    assert finding.text == "OpenAI rejected OPENAI_API_KEY (invalid_api_key)"
    assert "sk-test" not in finding.line()
    assert len(fake_openai.requests) == 1


async def test_unknown_model_fails_and_names_the_setting(openai_client, fake_openai):
    fake_openai.models.discard("gpt-5.5")
    findings = await check_openai(openai_client, models_to_check("gpt-5.5", None))
    assert [f.ok for f in findings] == [True, False]
    assert findings[1].line() == ("OPENAI_MODEL=gpt-5.5 does not exist or this key cannot use it: "
                                  "set OPENAI_MODEL to a model your OpenAI project can use")


async def test_a_restricted_key_without_the_models_scope_cannot_check_but_does_not_fail(
    openai_client, fake_openai
):
    # 401 "…Missing scopes: …" (API-NOTES, "Second pass"): the key works, it may not list models
    fake_openai.keys_without_models_scope.add("sk-test")
    findings = await check_openai(openai_client, models_to_check("gpt-5.5", "gpt-image-2"))
    assert [f.ok for f in findings] == [None, None, None]
    assert findings[1].text == ("could not check OPENAI_MODEL=gpt-5.5: this restricted key lacks "
                                "the Models read scope (HTTP 401 Missing scopes); generation may "
                                "still work")
    assert [r.path for r in fake_openai.requests] == ["/v1/models/gpt-5.5",
                                                       "/v1/models/gpt-image-2"]


async def test_a_servers_own_restricted_key_without_the_models_scope_is_taken(
    openai_client, fake_openai
):
    # the same 401 "Missing scopes" when a server manager sets a restricted key of their own
    assert await probe_key(openai_client, "gpt-5.5") is None
    fake_openai.keys_without_models_scope.add("sk-test")
    assert await probe_key(openai_client, "gpt-5.5") is None
    fake_openai.rejected_keys.add("sk-test")
    assert await probe_key(openai_client, "gpt-5.5") == "rejected"


async def test_a_server_without_a_models_endpoint_cannot_check_but_does_not_fail(fake_openai):
    # the fake's catch-all answers 404 "Invalid URL" with no code, like a proxy without /models
    base = fake_openai.base_url.removesuffix("/v1") + "/proxy/v1"
    async with openai.AsyncOpenAI(base_url=base, api_key="sk-test", max_retries=0) as client:
        findings = await check_openai(client, models_to_check("gpt-5.5", None))
    assert [f.ok for f in findings] == [None, None]
    assert "no models endpoint" in findings[1].text


async def test_unreachable_openai_cannot_check_but_does_not_fail():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-test",
                                  max_retries=0) as client:
        [finding] = await check_openai(client, models_to_check("gpt-5.5", None))
    assert finding.ok is None
    assert finding.text.startswith(f"could not reach OpenAI at http://127.0.0.1:{port}/v1/")


def test_dns_failure_is_explained():
    key = ConnectionKey("discord.example", 443, True, True, None, None, None, None)
    exc = aiohttp.ClientConnectorDNSError(key, socket.gaierror(-2, "Name or service not known"))
    line = explain(exc)
    assert line is not None
    assert line.startswith("Cannot reach Discord: the name discord.example does not resolve (DNS)")


def test_unknown_errors_are_not_explained():
    assert explain(RuntimeError("boom")) is None
    assert explain(StartupError("exactly this")) == "exactly this"
