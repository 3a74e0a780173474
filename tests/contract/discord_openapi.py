"""Discord's published OpenAPI 3.1 description of REST API v10, as a checker of recorded traffic.

The spec (MIT, Discord: ``specs/openapi.json`` of discord/discord-api-spec) is not in this
repository. It is read from ``$DISCORD_OPENAPI_SPEC``, else from
``../shared/contracts/discord-openapi.json`` beside the repository; without it the checks skip
with :data:`SKIP_REASON`.

:meth:`DiscordContract.check` takes one :class:`~tests.fakes.discord_models.RecordedRequest`
(what the bot sent and what the fake Discord answered) and returns every disagreement with the
spec: a route or method the spec does not have, an unknown query parameter, a path parameter,
request body (JSON, or a multipart ``payload_json``) or response body that does not validate,
a status the operation does not list. OpenAPI 3.1 schemas are JSON Schema 2020-12; the whole
spec is one ``referencing`` resource, so ``#/components/...`` references resolve, and each
validator is compiled once and cached by its JSON pointer.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.fakes.discord_models import RecordedRequest

SPEC_ENV = "DISCORD_OPENAPI_SPEC"
SPEC_NAME = "discord-openapi.json"
REPO_ROOT = Path(__file__).resolve().parents[2]
SKIP_REASON = (
    f"Discord's OpenAPI spec not found: set ${SPEC_ENV} or place it at "
    f"../shared/contracts/{SPEC_NAME} beside the repository"
)
_URI = "urn:discord-openapi"
_METHODS = ("get", "put", "post", "delete", "patch")


def spec_path() -> Path | None:
    """Where the spec is, or None."""
    configured = os.environ.get(SPEC_ENV)
    candidates = [Path(configured)] if configured else []
    candidates.append(REPO_ROOT.parent / "shared" / "contracts" / SPEC_NAME)
    return next((p for p in candidates if p.is_file()), None)


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


@dataclass(frozen=True)
class Route:
    template: str  # as in the spec, e.g. /channels/{channel_id}/messages/{message_id}
    regex: re.Pattern[str]
    literals: int  # segments without parameters: the more, the more specific

    @classmethod
    def of(cls, template: str) -> Route:
        pattern = "".join(
            f"(?P<{m[1:-1]}>[^/]+)" if m.startswith("{") else re.escape(m)
            for m in re.split(r"(\{[^}]+\})", template)
            if m
        )
        literals = sum(1 for seg in template.split("/") if seg and "{" not in seg)
        return cls(template, re.compile(f"^{pattern}$"), literals)


#: Where the spec is stricter than the developer docs, the docs win (the spec repository's own
#: README says so). Each amendment names its source; nothing else is relaxed.
AMENDMENTS = (
    ("ChannelTypes gains GUILD_MEDIA (16)", "Resources → Channel → Channel Types"),
    ("request bodies may give snowflakes as integers",
     "Reference → Uploading Files (its example sends attachment ids as integers); discord.py "
     "2.7 sends message_reference and attachment ids as integers"),
    ("POST /channels/{channel_id}/threads takes ?use_nested_fields=true",
     "Discord's own client sends it when it opens a forum post (its message fields nested under "
     "`message`); discord.py 2.7 (http.start_thread_in_forum) too"),
)
EXTRA_QUERY = {("/channels/{channel_id}/threads", "post"): {"use_nested_fields"}}


def _amended(spec: dict[str, Any], *, requests: bool) -> dict[str, Any]:
    amended = json.loads(json.dumps(spec))
    schemas = amended["components"]["schemas"]
    schemas["ChannelTypes"]["oneOf"].append(
        {"title": "GUILD_MEDIA", "description": "A channel that can only contain threads, "
         "similar to GUILD_FORUM channels", "const": 16}
    )
    if requests:
        snowflake = schemas["SnowflakeType"]
        schemas["SnowflakeType"] = {"anyOf": [snowflake, {"type": "integer", "minimum": 0}]}
    return amended


class DiscordContract:
    """The spec, its routes, and cached validators (one registry for what the bot sends, with
    the request amendments, one for what the fake answers)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self._registries = {
            side: Registry().with_resource(_URI, Resource.from_contents(
                _amended(spec, requests=side == "request"), default_specification=DRAFT202012))
            for side in ("request", "response")
        }
        routes = [Route.of(t) for t in spec["paths"]]
        self.routes = sorted(routes, key=lambda r: -r.literals)
        self._validators: dict[tuple[str, str], Draft202012Validator] = {}
        self._results: dict[tuple[str, str, str], str | None] = {}

    @classmethod
    def load(cls, path: Path) -> DiscordContract:
        return _load(str(path))

    # ------------------------------------------------------------------ lookups
    def match(self, path: str) -> tuple[Route, dict[str, str]] | None:
        """The most specific spec route for a concrete path (``@original`` beats ``{id}``)."""
        for route in self.routes:
            found = route.regex.match(path)
            if found:
                return route, found.groupdict()
        return None

    def validator(self, pointer: str, side: str = "response") -> Draft202012Validator:
        """A validator for the schema at ``pointer`` (a JSON pointer into the spec)."""
        validator = self._validators.get((side, pointer))
        if validator is None:
            schema = {"$ref": f"{_URI}#{pointer}"}
            validator = Draft202012Validator(schema, registry=self._registries[side])
            self._validators[(side, pointer)] = validator
        return validator

    def _problem(self, pointer: str, instance: Any, side: str = "response") -> str | None:
        # Validating is slow for big bodies (a command sync: ~0.4 s), and most repeat from test
        # to test but for snowflakes, text and times that validate the same whatever their
        # value: results are remembered by the body with those masked.
        key = (side, pointer, json.dumps(_masked(instance), sort_keys=True))
        if key in self._results:
            return self._results[key]
        error = best_match(self.validator(pointer, side).iter_errors(instance))
        problem = None
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "(root)"
            problem = f"{where}: {error.message[:300]}"
        self._results[key] = problem
        return problem

    # ------------------------------------------------------------------ the check
    def check(self, record: RecordedRequest) -> list[str]:
        """Every way ``record`` disagrees with the spec (empty when it agrees)."""
        label = f"{record.method} {record.path}"
        found = self.match(record.path)
        if found is None:
            return [f"{label}: no such route in Discord's OpenAPI spec"]
        route, params = found
        item = self.spec["paths"][route.template]
        method = record.method.lower()
        operation = item.get(method)
        if method not in _METHODS or operation is None:
            return [f"{label}: the spec has no {record.method} on {route.template}"]
        base = f"/paths/{_escape(route.template)}"
        problems = [f"{label}: {p}" for p in self._check_parameters(base, method, params, record)]
        problems += [f"{label} request {p}" for p in self._check_request(base, method, record)]
        problems += [f"{label} response {p}" for p in self._check_response(base, method, record)]
        return problems

    def _parameters(self, base: str, method: str) -> Iterable[tuple[str, dict[str, Any]]]:
        for where, params in (("", _get(self.spec, base).get("parameters") or []),
                              (f"/{method}", _get(self.spec, f"{base}/{method}").get("parameters") or [])):
            for n, param in enumerate(params):
                yield f"{base}{where}/parameters/{n}", param

    def _check_parameters(
        self, base: str, method: str, path_values: dict[str, str], record: RecordedRequest
    ) -> list[str]:
        problems: list[str] = []
        known_query = set(EXTRA_QUERY.get((_unescape(base.removeprefix("/paths/")), method), ()))
        for pointer, param in self._parameters(base, method):
            if param.get("in") == "query":
                known_query.add(param["name"])
            elif param.get("in") == "path" and param["name"] in path_values:
                problem = self._problem(pointer + "/schema", path_values[param["name"]], "request")
                if problem:
                    problems.append(f"path parameter {param['name']} {problem}")
        for name in record.query:
            if name not in known_query:
                problems.append(f"query parameter {name!r} is not in the spec")
        return problems

    def _check_request(self, base: str, method: str, record: RecordedRequest) -> list[str]:
        body = _get(self.spec, f"{base}/{method}").get("requestBody")
        if record.json is None:
            if body and body.get("required") and not record.files:
                return ["has no body, but the spec requires one"]
            return []
        if not body:
            return ["has a body, but the operation takes none"]
        ctype = "multipart/form-data" if record.files else "application/json"
        if ctype not in body.get("content", {}):
            return [f"is {ctype}, which the operation does not accept"]
        pointer = f"{base}/{method}/requestBody/content/{_escape(ctype)}/schema"
        problem = self._problem(pointer, record.json, "request")
        return [problem] if problem else []

    def _check_response(self, base: str, method: str, record: RecordedRequest) -> list[str]:
        status = record.status
        if status is None or status >= 500:
            return []  # server faults are injected by tests; the spec describes no 5xx body
        responses = _get(self.spec, f"{base}/{method}")["responses"]
        key = next((k for k in (str(status), f"{status // 100}XX", "default") if k in responses), None)
        if key is None:
            return [f"status {status} is not among the operation's responses {sorted(responses)}"]
        response = responses[key]
        pointer = f"{base}/{method}/responses/{key}"
        if "$ref" in response:
            pointer = response["$ref"].removeprefix("#")
            response = _get(self.spec, pointer)
        schema = response.get("content", {}).get("application/json", {}).get("schema")
        if schema is None:
            if record.response is not None and status != 204:
                return [f"{status} has a JSON body, but the spec describes none"]
            return []
        if record.response is None:
            return [f"{status} has no body, but the spec describes one"]
        problem = self._problem(f"{pointer}/content/application~1json/schema", record.response)
        return [f"{status} {problem}"] if problem else []


_SNOWFLAKE = re.compile(r"^[1-9][0-9]{14,19}$")
# Free text, times and links: the spec constrains them by type and length only (formats are not
# asserted), so a string of the same length validates the same way.
_BY_LENGTH = frozenset({
    "content", "timestamp", "edited_timestamp", "joined_at", "archive_timestamp",
    "create_timestamp", "url", "proxy_url",
})


def _masked(value: Any, key: str = "") -> Any:
    """``value`` with snowflakes, free text, times and links replaced by strings that validate
    the same way (a cache key)."""
    if isinstance(value, str):
        if key in _BY_LENGTH:
            return "x" * len(value)
        return "1" if _SNOWFLAKE.match(value) else value
    if isinstance(value, list):
        return [_masked(item, key) for item in value]
    if isinstance(value, dict):
        return {name: _masked(item, name) for name, item in value.items()}
    return value


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _get(document: Any, pointer: str) -> Any:
    node = document
    for token in pointer.strip("/").split("/"):
        if token:
            node = node[_unescape(token)]
    return node


@cache
def _load(path: str) -> DiscordContract:
    with open(path, encoding="utf-8") as handle:
        return DiscordContract(json.load(handle))


def contract_problems(records: Iterable[RecordedRequest]) -> list[str]:
    """Every disagreement of ``records`` with the spec; [] when the spec is not available."""
    path = spec_path()
    if path is None:
        return []
    contract = DiscordContract.load(path)
    problems: list[str] = []
    for record in records:
        problems.extend(contract.check(record))
    return problems
