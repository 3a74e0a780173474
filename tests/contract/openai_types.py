"""Hold what the fake Responses API sends, and what the bot sends it, to the `openai` SDK's types.

* Stream events validate against `openai.types.responses.ResponseStreamEvent`, JSON answers
  against `Response` (or `openai.types.Model`, or `ErrorObject` inside `{"error": …}`).
  The SDK's models accept fields they do not declare; every such field is reported, unless it is
  listed in `KNOWN_EXTRAS` with the source that shows the real service sends it.
* Request bodies validate against `ResponseCreateParamsStreaming` / `…NonStreaming` (TypedDicts).
  Pydantic ignores keys a TypedDict does not declare, so `unknown_keys` walks the body against the
  TypedDicts itself and reports every undeclared key; `Iterable[...]` fields, which pydantic
  validates lazily, are consumed so that their items are checked too.
"""

from __future__ import annotations

import collections.abc
import types
import typing
from functools import cache
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from openai import BaseModel
from openai.types import Model
from openai.types.responses import Response, ResponseStreamEvent
from openai.types.responses import response_create_params as create_params
from openai.types.responses import response_retrieve_params as retrieve_params
from openai.types.shared import ErrorObject
from pydantic import TypeAdapter, ValidationError
from typing_extensions import is_typeddict

from tests.fakes.openai_server import FakeOpenAI

# Fields the SDK types do not declare but the real service sends (path patterns: `[]` is any
# list index). Each with its source.
KNOWN_EXTRAS = {
    # the image_generation tool echoed in a response carries `n: 1` (recorded real stream:
    # vercel/ai packages/openai/src/responses/__fixtures__/openai-image-generation-tool.1)
    "response.tools[].n",
    "event.response.tools[].n",
    # a response says whether it is stored (`"store": true` in every response of the same
    # recorded real stream); SDK 3.57's `Response` does not declare it
    "response.store",
    "event.response.store",
    # a moderation block's error body carries `moderation_details` (API-NOTES, error shapes;
    # the same object the SDK declares on a failed image_generation_call's error)
    "error.moderation_details",
}


def _bare_reference(item: Any) -> bool:
    """`{"type": "image_generation_call", "id": …}`: how OpenAI's image generation guide refers
    to an earlier image in a multi-turn edit ("using image ID"), although the SDK's
    `ResponseInputItemParam.ImageGenerationCall` TypedDict also requires `result` and `status`.
    Checked here as the `ItemReference` it stands for (a documented exception, unverified)."""
    return isinstance(item, dict) and item.get("type") == "image_generation_call" and set(item) == {
        "type", "id"
    }


def _as_declared(body: dict[str, Any]) -> dict[str, Any]:
    items = body.get("input")
    if not isinstance(items, list) or not any(_bare_reference(i) for i in items):
        return body
    converted = [
        {"type": "item_reference", "id": i["id"]} if _bare_reference(i) else i for i in items
    ]
    return {**body, "input": converted}


def _summary(exc: ValidationError) -> str:
    """The few errors that explain a failed validation (not every member of every union)."""
    errors = [
        e for e in exc.errors()
        if not (e["type"] == "literal_error" and e["loc"] and e["loc"][-1] == "type")
        and e["type"] != "missing"
    ] or exc.errors()
    errors.sort(key=lambda e: -len(e["loc"]))
    shown = "; ".join(
        f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']} (got {e.get('input')!r:.80})"
        for e in errors[:3]
    )
    return f"{exc.error_count()} validation errors, e.g. {shown}"


@cache
def _adapter(kind: str) -> TypeAdapter[Any]:
    types_by_kind: dict[str, Any] = {
        "event": ResponseStreamEvent,
        "response": Response,
        "model": Model,
        "error": ErrorObject,
        "create-stream": create_params.ResponseCreateParamsStreaming,
        "create": create_params.ResponseCreateParamsNonStreaming,
    }
    return TypeAdapter(types_by_kind[kind])


def _generic(path: str) -> str:
    """`response.output[2].content[0]` → `response.output[].content[]`."""
    out, depth = [], 0
    for char in path:
        if char == "[":
            depth += 1
            out.append("[]")
        elif char == "]":
            depth -= 1
        elif depth == 0:
            out.append(char)
    return "".join(out)


def model_extras(value: Any, path: str) -> list[str]:
    """Every field of a validated SDK model (recursively) that its type does not declare."""
    found: list[str] = []
    if isinstance(value, BaseModel):
        for key in value.model_extra or {}:
            found.append(f"{path}.{key}")
        for name in type(value).model_fields:
            found += model_extras(getattr(value, name), f"{path}.{name}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found += model_extras(item, f"{path}[{index}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            found += model_extras(item, f"{path}.{key}")
    return found


def _unexpected(extras: list[str]) -> list[str]:
    return [e for e in extras if _generic(e) not in KNOWN_EXTRAS]


# `ResponseError.code` values the real service sends that the SDK's Literal does not list:
# `insufficient_quota` in `response.failed` (recorded: vercel/ai openai-error.1.chunks.txt).
RECORDED_FAILURE_CODES = frozenset({"insufficient_quota"})


def _recorded_error_event(event: dict[str, Any]) -> list[str] | None:
    """An `error` event in its recorded wire shape, `{"type": "error", "sequence_number": n,
    "error": {type, code, message, param}}` (vercel/ai openai-error.1.chunks.txt), which the
    SDK's `ResponseErrorEvent` (flat fields) does not describe; the SDK raises it as an
    `APIError` whose body is the inner object, checked here as an `ErrorObject`. None for any
    other event."""
    if event.get("type") != "error" or not isinstance(event.get("error"), dict):
        return None
    where = f"event error #{event.get('sequence_number')}"
    if set(event) != {"type", "sequence_number", "error"}:
        return [f"{where}: unexpected keys {sorted(set(event))}"]
    try:
        model = _adapter("error").validate_python(event["error"])
    except ValidationError as exc:
        return [f"{where}: {_summary(exc)}"]
    return [f"{where}: undeclared {e}" for e in _unexpected(model_extras(model, "error"))]


def _typed_response(response: Any) -> Any:
    """A failed response whose code is one of `RECORDED_FAILURE_CODES`, checked as if it were
    `server_error` (everything else about it still checked)."""
    error = response.get("error") if isinstance(response, dict) else None
    if isinstance(error, dict) and error.get("code") in RECORDED_FAILURE_CODES:
        return {**response, "error": {**error, "code": "server_error"}}
    return response


def _as_typed(event: dict[str, Any]) -> dict[str, Any]:
    if isinstance(event.get("response"), dict):
        return {**event, "response": _typed_response(event["response"])}
    return event


def check_event(event: dict[str, Any]) -> list[str]:
    """Problems with one emitted stream event: a validation error or undeclared fields."""
    recorded = _recorded_error_event(event)
    if recorded is not None:
        return recorded
    event = _as_typed(event)
    try:
        model = _adapter("event").validate_python(event)
    except ValidationError as exc:
        return [f"event {event.get('type')} #{event.get('sequence_number')}: {_summary(exc)}"]
    where = f"event {event.get('type')} #{event.get('sequence_number')}"
    return [f"{where}: undeclared {e}" for e in _unexpected(model_extras(model, "event"))]


def _answer_kind(method: str, path: str, status: int) -> str | None:
    if status >= 400:
        return "error"
    parts = path.strip("/").split("/")
    if parts[:2] == ["v1", "models"] and len(parts) == 3:
        return "model"
    if parts[:2] == ["v1", "responses"] and method in ("GET", "POST") and len(parts) in (2, 3, 4):
        return "response"
    return None  # e.g. DELETE /v1/responses/{id}: the SDK returns nothing for it


def check_answer(method: str, path: str, status: int, body: Any) -> list[str]:
    """Problems with one JSON answer of the fake."""
    kind = _answer_kind(method, path, status)
    where = f"{method} {path} → {status}"
    if kind is None:
        return []
    if kind == "error":
        if not isinstance(body, dict) or set(body) != {"error"}:
            return [f"{where}: an error body must be exactly {{'error': {{…}}}}, got {body!r:.200}"]
        body = body["error"]
    if kind == "response":
        body = _typed_response(body)
    try:
        model = _adapter(kind).validate_python(body)
    except ValidationError as exc:
        return [f"{where}: {_summary(exc)}"]
    root = "error" if kind == "error" else "response"
    return [f"{where}: undeclared {e}" for e in _unexpected(model_extras(model, root))]


def _consume(value: Any) -> Any:
    """Force pydantic's lazy `Iterable` validation (raises its ValidationError)."""
    if isinstance(value, collections.abc.Iterator):  # pydantic's ValidatorIterator
        return [_consume(v) for v in value]
    if isinstance(value, dict):
        return {k: _consume(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_consume(v) for v in value]
    return value


def _strip(hint: Any) -> Any:
    """Unwrap Annotated / Required / NotRequired / ReadOnly."""
    while True:
        origin = get_origin(hint)
        if origin is typing.Annotated or origin in (typing.Required, typing.NotRequired):
            hint = get_args(hint)[0]
        else:
            return hint


@cache
def _required_keys(typed_dict: Any) -> frozenset[str]:
    """The keys a TypedDict requires. (`__required_keys__` is empty for the SDK's `total=False`
    classes, whose `Required[...]` sit in string annotations.)"""
    required = set()
    total = getattr(typed_dict, "__total__", True)
    for key, hint in get_type_hints(typed_dict, include_extras=True).items():
        while get_origin(hint) is typing.Annotated:
            hint = get_args(hint)[0]
        origin = get_origin(hint)
        if origin is typing.Required or (total and origin is not typing.NotRequired):
            required.add(key)
    return frozenset(required)


def _fits(hint: Any, value: Any) -> bool:
    """Could `value` be meant as `hint`? (Decides between the members of a union.)"""
    hint = _strip(hint)
    origin = get_origin(hint)
    if is_typeddict(hint):
        if not isinstance(value, dict):
            return False
        hints = get_type_hints(hint, include_extras=True)
        type_hint = _strip(hints.get("type"))
        if "type" in value and get_origin(type_hint) is Literal:
            return value["type"] in get_args(type_hint)
        return _required_keys(hint) <= set(value)
    if origin is Literal:
        return value in get_args(hint)
    if origin in (list, collections.abc.Iterable, collections.abc.Sequence):
        return isinstance(value, list)
    if hint in (str, int, float, bool):
        return isinstance(value, hint)
    return True


def unknown_keys(hint: Any, value: Any, path: str) -> list[str]:
    """Keys of `value` (recursively) that the TypedDicts of `hint` do not declare."""
    hint = _strip(hint)
    origin = get_origin(hint)
    if is_typeddict(hint):
        if not isinstance(value, dict):
            return []
        hints = get_type_hints(hint, include_extras=True)
        found = [f"{path}.{key}" for key in value if key not in hints]
        for key, item in value.items():
            if key in hints:
                found += unknown_keys(hints[key], item, f"{path}.{key}")
        return found
    if origin in (Union, types.UnionType):
        candidates = [arg for arg in get_args(hint) if _fits(arg, value)]
        results = [unknown_keys(arg, value, path) for arg in candidates]
        return min(results, key=len) if results else []
    if origin in (list, collections.abc.Iterable, collections.abc.Sequence) and isinstance(value, list):
        (item_hint,) = get_args(hint) or (Any,)
        return [u for i, item in enumerate(value) for u in unknown_keys(item_hint, item, f"{path}[{i}]")]
    if origin is dict and isinstance(value, dict):
        item_hint = get_args(hint)[1] if get_args(hint) else Any
        return [u for k, item in value.items() for u in unknown_keys(item_hint, item, f"{path}.{k}")]
    return []


def check_create_request(body: Any) -> list[str]:
    """Problems with one `POST /v1/responses` body the bot sent."""
    if not isinstance(body, dict):
        return [f"create request: not a JSON object: {body!r:.200}"]
    body = _as_declared(body)
    streaming = body.get("stream") is True
    kind = "create-stream" if streaming else "create"
    try:
        _consume(_adapter(kind).validate_python(body))
    except ValidationError as exc:
        return [f"create request: {_summary(exc)}"]
    params = (
        create_params.ResponseCreateParamsStreaming
        if streaming
        else create_params.ResponseCreateParamsNonStreaming
    )
    return [f"create request: unknown key {k}" for k in unknown_keys(params, body, "body")]


def check_retrieve_query(query: dict[str, str]) -> list[str]:
    """`GET /v1/responses/{id}` query parameters the SDK's `ResponseRetrieveParams` declare."""
    declared: set[str] = set()
    for params in (retrieve_params.ResponseRetrieveParamsStreaming,
                   retrieve_params.ResponseRetrieveParamsNonStreaming):
        declared |= set(get_type_hints(params))
    return [f"retrieve query: unknown parameter {k}" for k in query if k not in declared]


def contract_problems(fake: FakeOpenAI) -> list[str]:
    """Everything recorded by `fake` that breaks the SDK's types (an empty list when all hold)."""
    problems: list[str] = []
    for event in fake.events:
        problems += check_event(event)
    for answer in fake.answers:
        problems += check_answer(answer.method, answer.path, answer.status, answer.json)
    for request in fake.requests:
        if request.method == "POST" and request.path == "/v1/responses":
            problems += check_create_request(request.json)
        elif request.method == "GET" and request.path.startswith("/v1/responses/"):
            problems += check_retrieve_query(request.query)
    return problems
