"""Does the OpenAI key work, and do the configured models exist? (start-up and `bot doctor`)

One cheap `GET /models/{model}` per model (`client.models.retrieve`): no tokens, nothing billed.
A rejected key (401) and an unknown model (404 `model_not_found`) are definite failures. Anything
that only prevents the check (no connection, a restricted key without the Models read scope —
401 "…Missing scopes: …", or 403 —, a proxy without a models endpoint) is reported as "could not
check", not a failure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import openai
from openai import AsyncOpenAI

CHECK_TIMEOUT_SECONDS = 15.0
KEY_FIX = (
    "create a key at platform.openai.com -> API keys and set OPENAI_API_KEY "
    "(and check OPENAI_BASE_URL, if set)"
)


@dataclass(frozen=True, slots=True)
class Finding:
    """One checked fact: `ok` is True (pass), False (fail) or None (could not check)."""

    ok: bool | None
    text: str
    fix: str = ""

    def line(self) -> str:
        """The finding as one line, with its fix when it did not pass."""
        return f"{self.text}: {self.fix}" if self.fix and self.ok is not True else self.text


def missing_scope(exc: openai.APIStatusError) -> bool:
    """A restricted key that lacks a scope: 401 "You have insufficient permissions for this
    operation. Missing scopes: …" (API-NOTES, "Second pass"). The key itself works."""
    return exc.status_code == 401 and "missing scopes" in exc.message.lower()


def _code(exc: openai.APIStatusError) -> str | None:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and isinstance(error.get("code"), str):
            return error["code"]
    return None


async def _check_model(client: AsyncOpenAI, setting: str, model: str) -> Finding:
    """Retrieve one model; an AuthenticationError propagates (it concerns every model)."""
    try:
        await client.models.retrieve(model)
    except openai.AuthenticationError as exc:
        if not missing_scope(exc):
            raise
        return Finding(None, f"could not check {setting}={model}: this restricted key lacks the "
                             "Models read scope (HTTP 401 Missing scopes); generation may still "
                             "work")
    except openai.NotFoundError as exc:
        if _code(exc) == "model_not_found":
            return Finding(False, f"{setting}={model} does not exist or this key cannot use it",
                           f"set {setting} to a model your OpenAI project can use")
        return Finding(None, f"could not check {setting}={model}: the server has no models "
                             "endpoint (HTTP 404)")
    except openai.PermissionDeniedError:
        return Finding(None, f"could not check {setting}={model}: this key may not read models "
                             "(HTTP 403); generation may still work")
    except openai.APIStatusError as exc:
        return Finding(None, f"could not check {setting}={model}: OpenAI answered HTTP "
                             f"{exc.status_code}")
    return Finding(True, f"{setting}={model} exists")


async def check_openai(client: AsyncOpenAI, models: Mapping[str, str]) -> list[Finding]:
    """Check the key, then each model (setting name -> model name), in order.

    The first finding is about the key: a failure there ends the list.
    """
    client = client.with_options(timeout=CHECK_TIMEOUT_SECONDS, max_retries=0)
    findings: list[Finding] = []
    try:
        for setting, model in models.items():
            findings.append(await _check_model(client, setting, model))
    except openai.AuthenticationError as exc:
        code = _code(exc) or "401"
        return [Finding(False, f"OpenAI rejected OPENAI_API_KEY ({code})", KEY_FIX)]
    except openai.APIConnectionError as exc:
        kind = "timed out" if isinstance(exc, openai.APITimeoutError) else "connection failed"
        return [Finding(None, f"could not reach OpenAI at {client.base_url} ({kind})",
                        "check the network, a proxy or OPENAI_BASE_URL")]
    key = Finding(True, "OpenAI accepts OPENAI_API_KEY")
    if all(f.ok is None for f in findings):
        key = Finding(None, "OpenAI did not reject OPENAI_API_KEY, but no model could be checked")
    return [key, *findings]


def models_to_check(openai_model: str, image_model: str | None,
                    others: tuple[str, ...] = ()) -> dict[str, str]:
    """The configured models by setting name (IMAGE_MODEL when set; each of IMAGE_MODELS)."""
    models = {"OPENAI_MODEL": openai_model}
    if image_model:
        models["IMAGE_MODEL"] = image_model
    for model in others:
        if model != image_model:
            models[f"IMAGE_MODELS {model}"] = model
    return models
