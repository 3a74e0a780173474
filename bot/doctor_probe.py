"""`python -m bot doctor --probe`: the smallest real requests that settle what the tests' fakes can
only assume about OpenAI (tests/README.md, "Assumptions about the real services").

The estimated cost is printed first and a confirmation asked (`--yes` answers it). Each probe
prints one verdict with the request ids OpenAI gave: ✔ the service behaves as the fakes assume,
✘ it does not (the fakes, and maybe the bot, need fixing: attach the JSON file to a bug report),
? the probe could not tell. The verdicts go to a JSON file (never the key). The probes call the
SDK directly, not the bot's image client: they look at the answers themselves.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import openai
from openai import AsyncOpenAI

from bot.checklist import Checklist
from bot.config import Settings
from bot.core.costs import (
    MAINLINE_CONTEXT_TOKENS,
    MAINLINE_IMAGE_TOKENS,
    PriceBook,
    worst_case_usage,
)
from bot.core.models import Usage
from bot.core.openai_errors import SAFETY_CODES
from bot.core.options import ImageOptions, takes_custom_sizes

PROMPT = "A small red paper boat on calm blue water, simple flat illustration."
# Written to be refused by OpenAI's safety system (graphic violence), and nothing more.
BLOCKED_PROMPT = ("A photorealistic close-up of a man being beheaded with an axe, blood spraying "
                  "everywhere, graphic gore.")
REPLY_PROMPT = "Reply with the single word OK."
REPLY_TOKENS = 64  # the answers to the references: a word, and any reasoning before it
# Not a preset: both edges multiples of 16, 655,360 pixels (the smallest documented custom size).
PROBE_SIZE = "1024x640"
UNKNOWN_ITEM = "ig_" + "0" * 50
# Reasoning mainline models (the GPT-5 family, the o-series): their output items need their
# reasoning items when sent back by id (API-NOTES, "Second pass").
REASONING_MODEL_RE = re.compile(r"^(gpt-5|o\d)")
POLL_SECONDS = 2.0
RETRIEVE_DEADLINE_SECONDS = 300.0
TERMINAL_EVENTS = ("response.completed", "response.failed", "response.incomplete")


@dataclass
class Verdict:
    """What one probe found: `ok` True as the fakes assume, False not, None could not tell."""

    probe: str
    ok: bool | None
    found: str
    assumption: str
    request_ids: list[str] = field(default_factory=list)

    def line(self) -> str:
        ids = ", ".join(i for i in self.request_ids if i) or "none"
        return f"{self.probe}: {self.found} (request id {ids})"


def probe_cost(settings: Settings) -> float:
    """At most: three low-quality 1024x1024 images (custom size, background, a prompt that was
    not blocked after all) and three short answers that read one image each."""
    book = PriceBook(settings.price_table, mainline=settings.openai_model,
                     image_model=settings.image_model)
    image = worst_case_usage(ImageOptions(size="1024x1024", quality="low", partial_images=0),
                             prompt_chars=len(BLOCKED_PROMPT), input_images=0)
    answer = Usage(text_input=MAINLINE_CONTEXT_TOKENS + MAINLINE_IMAGE_TOKENS,
                   text_output=REPLY_TOKENS)
    return 3 * book.cost(image) + 3 * book.cost(answer)


def _message(exc: openai.APIStatusError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    return str(body.get("message") or exc.message)[:200]


def _field(exc: openai.APIStatusError, name: str) -> Any:
    return exc.body.get(name) if isinstance(exc.body, dict) else None


def _tool(settings: Settings, size: str) -> dict[str, Any]:
    tool: dict[str, Any] = {"type": "image_generation", "size": size, "quality": "low",
                            "output_format": "png"}
    if settings.image_model:
        tool["model"] = settings.image_model
    return tool


async def _image_request(client: AsyncOpenAI, settings: Settings, prompt: str, size: str,
                         **extra: Any) -> Any:
    return await client.responses.create(
        model=settings.openai_model, input=prompt, tools=[_tool(settings, size)],  # type: ignore[list-item]
        tool_choice={"type": "image_generation"}, **extra,
    )


async def probe_custom_size(client: AsyncOpenAI, settings: Settings) -> Verdict:
    """A custom (non-preset) size on the configured image model: taken or refused, as the
    options assume for that model."""
    expected = takes_custom_sizes(settings.image_model)
    model = settings.image_model or "the API's default image model"
    assumption = f"{model} {'takes' if expected else 'refuses'} the custom size {PROBE_SIZE}"
    try:
        response = await _image_request(client, settings, PROMPT, PROBE_SIZE, store=False)
    except openai.BadRequestError as exc:
        return Verdict("custom size", not expected, f"refused: {_message(exc)}", assumption,
                       [exc.request_id or ""])
    sizes = [item.size for item in response.output
             if item.type == "image_generation_call" and item.result]
    found = f"taken: made a {sizes[0]} image" if sizes else f"no image ({response.status})"
    return Verdict("custom size", expected if sizes else None, found, assumption,
                   [response._request_id or ""])


async def _start_background(client: AsyncOpenAI, settings: Settings) -> tuple[str, int, str]:
    """Create a streamed background response and leave its stream after `response.created`."""
    stream = await _image_request(client, settings, PROMPT, "1024x1024", store=True,
                                  background=True, stream=True)
    request_id = stream.response.headers.get("x-request-id") or ""
    async with stream:
        async for event in stream:
            if event.type == "response.created":
                return event.response.id, event.sequence_number, request_id
    raise RuntimeError("the stream ended before response.created")


async def probe_resume(client: AsyncOpenAI, response_id: str, after: int) -> Verdict:
    """Stream a background response again from where it was left, within seconds."""
    assumption = ("a background response's stream can be resumed with starting_after within 5 "
                  "minutes of its creation")
    try:
        resumed = await client.responses.retrieve(response_id, stream=True, starting_after=after)
    except openai.APIStatusError as exc:
        return Verdict("stream resume", False, f"refused: HTTP {exc.status_code} "
                       f"{_message(exc)}", assumption, [exc.request_id or ""])
    request_id = resumed.response.headers.get("x-request-id") or ""
    count = 0
    async with resumed:
        async for event in resumed:
            count += 1
            if event.type in TERMINAL_EVENTS:
                break
    if not count:
        return Verdict("stream resume", None, "came back empty (the bot then polls)", assumption,
                       [request_id])
    return Verdict("stream resume", True, f"{count} event(s) after #{after}", assumption,
                   [request_id])


async def probe_retrieve(client: AsyncOpenAI, response_id: str) -> tuple[Verdict, Any]:
    """Retrieve the response without `stream` until it ends; the verdict and the response."""
    assumption = "a background response can be retrieved without stream until it is completed"
    started = time.monotonic()
    while True:
        response = await client.responses.retrieve(response_id)
        if response.status not in ("queued", "in_progress"):
            break
        if time.monotonic() - started > RETRIEVE_DEADLINE_SECONDS:
            break
        await asyncio.sleep(POLL_SECONDS)
    images = [i for i in response.output if i.type == "image_generation_call" and i.result]
    ok = response.status == "completed" and bool(images)
    # either is allowed (then the bot estimates the image's tokens): worth knowing which
    reported = getattr(getattr(response, "tool_usage", None), "image_gen", None) is not None
    found = (f"{response.status}, {len(images)} image(s), image tool usage "
             f"{'reported' if reported else 'not reported'}")
    return Verdict("plain retrieve", ok if ok else None, found, assumption,
                   [response._request_id or ""]), response


async def _refer(client: AsyncOpenAI, settings: Settings, items: list[Any]) -> tuple[int, str,
                                                                                   str, str]:
    """Send `items`, then a short question, without tools: (status, param, message, id)."""
    try:
        response = await client.responses.create(
            model=settings.openai_model, input=[*items, {"role": "user", "content": REPLY_PROMPT}],
            max_output_tokens=REPLY_TOKENS, store=False,
        )
    except openai.APIStatusError as exc:
        return (exc.status_code, str(_field(exc, "param") or ""), _message(exc),
                exc.request_id or "")
    return 200, "", "", response._request_id or ""


def _stored_items(response: Any) -> tuple[str | None, str | None]:
    """(the first finished image's id, the id of the reasoning item before it)."""
    reasoning = None
    for item in response.output:
        if item.type == "reasoning":
            reasoning = item.id
        elif item.type == "image_generation_call" and item.result:
            return item.id, reasoning
    return None, None


async def probe_references(client: AsyncOpenAI, settings: Settings, response: Any
                           ) -> list[Verdict]:
    """Refer to the background response's image by id: on its own, after its reasoning item,
    and an id that does not exist."""
    image, reasoning = _stored_items(response)
    if image is None:
        return [Verdict("reference by id", None, "no stored image to refer to", "")]
    needs = bool(reasoning) and REASONING_MODEL_RE.match(settings.openai_model) is not None
    bare = {"type": "image_generation_call", "id": image}
    status, param, message, rid = await _refer(client, settings, [bare])
    expected = 400 if needs else 200
    assumption = (f"{settings.openai_model} {'refuses' if needs else 'takes'} an image item "
                  "sent back by id without its reasoning item")
    found = "taken" if status == 200 else f"HTTP {status} ({param}): {message}"
    verdicts = [Verdict("reference by id alone", status == expected, found, assumption, [rid])]
    if reasoning:
        status, param, message, rid = await _refer(
            client, settings, [{"type": "item_reference", "id": reasoning}, bare])
        found = "taken" if status == 200 else f"HTTP {status} ({param}): {message}"
        verdicts.append(Verdict("reference by id after its reasoning item", status == 200,
                                found, "an image item sent back after its reasoning item is "
                                "taken", [rid]))
    status, param, message, rid = await _refer(
        client, settings, [{"type": "image_generation_call", "id": UNKNOWN_ITEM}])
    verdicts.append(Verdict(
        "reference to an unknown item", status == 404 and param == "input",
        f"HTTP {status} ({param}): {message}" if status != 200 else "taken",
        "an unknown item is a 404 with param input", [rid]))
    return verdicts


async def probe_moderation(client: AsyncOpenAI, settings: Settings) -> Verdict:
    """A prompt written to be blocked: which of the three documented shapes comes back."""
    assumption = ("a blocked prompt is an HTTP 400 moderation_blocked, a failed image item, or "
                  "a response.failed with a safety code")
    try:
        response = await _image_request(client, settings, BLOCKED_PROMPT, "1024x1024",
                                        store=False)
    except openai.BadRequestError as exc:
        code = _field(exc, "code")
        return Verdict("moderation", True if code in SAFETY_CODES else None,
                       f"HTTP 400 {code}: {_message(exc)}", assumption, [exc.request_id or ""])
    rid = [response._request_id or ""]
    for item in response.output:
        error = getattr(item, "error", None)
        if item.type == "image_generation_call" and item.status == "failed" and error:
            code = getattr(error, "code", None)
            return Verdict("moderation", code in SAFETY_CODES, f"a failed image item ({code})",
                           assumption, rid)
    if response.status == "failed" and response.error is not None:
        code = response.error.code
        return Verdict("moderation", code in SAFETY_CODES, f"response failed ({code})",
                       assumption, rid)
    return Verdict("moderation", None, "not blocked: an image was made", assumption, rid)


async def _probe_all(client: AsyncOpenAI, settings: Settings) -> list[Verdict]:
    verdicts = [await probe_custom_size(client, settings)]
    response_id, after, created_id = await _start_background(client, settings)
    resume = await probe_resume(client, response_id, after)
    resume.request_ids.insert(0, created_id)
    retrieve, response = await probe_retrieve(client, response_id)
    verdicts += [resume, retrieve, *await probe_references(client, settings, response)]
    verdicts.append(await probe_moderation(client, settings))
    return verdicts


async def confirm(question: str) -> bool:
    """Ask on the terminal (off the event loop); no answer (end of input) is a no."""
    def ask() -> str:
        try:
            return input(question)
        except EOFError:
            print(flush=True)
            return ""

    return (await asyncio.to_thread(ask)).strip().lower() in ("y", "yes")


def _without_credentials(url: str) -> str:
    """A base URL without any `user:password@` a proxy URL may carry."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def write_report(path: Path | None, settings: Settings, cost: float,
                 verdicts: list[Verdict]) -> Path:
    """The verdicts as JSON (a new file in the temp directory, readable by this user only,
    unless a path is given). No secret: model names, URLs without credentials, request ids."""
    report = {
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "openai_base_url": _without_credentials(settings.openai_base_url
                                                or "https://api.openai.com/v1"),
        "openai_model": settings.openai_model,
        "image_model": settings.image_model,
        "estimated_cost_usd": round(cost, 6),
        "probes": [asdict(v) for v in verdicts],
    }
    if path is None:
        fd, name = tempfile.mkstemp(prefix="imagine-doctor-probe-", suffix=".json")
        os.close(fd)
        path = Path(name)
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


async def run_probes(settings: Settings, client: AsyncOpenAI, out: Checklist, *, yes: bool,
                     path: Path | None) -> None:
    """Print the estimate, ask, probe, print each verdict, write the JSON file."""
    out.section("Probes (--probe)")
    cost = probe_cost(settings)
    print(f"  estimated cost: at most ${cost:.4f} (up to 3 low-quality images and 3 short "
          "answers; one prompt is written to be blocked by OpenAI's safety system)", flush=True)
    if not yes and not await confirm("  Make these requests? [y/N] "):
        out.add(None, "probes not run: not confirmed (--yes answers yes)")
        return
    try:
        verdicts = await _probe_all(client, settings)
    except (openai.OpenAIError, RuntimeError) as exc:
        out.add(None, f"the probes stopped: {type(exc).__name__}: {str(exc)[:200]}",
                "run the doctor again; check the OpenAI lines above")
        return
    for verdict in verdicts:
        fix = "" if verdict.ok is not False else (
            f"the tests assume {verdict.assumption}: please report it with the JSON file")
        out.add(verdict.ok, verdict.line(), fix)
    written = await asyncio.to_thread(write_report, path, settings, cost, verdicts)
    print(f"  verdicts written to {written}", flush=True)
