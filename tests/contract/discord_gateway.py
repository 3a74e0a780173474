"""discord-api-types' gateway dispatch types (v10), as a checker of what the fake gateway sends.

``gateway_schemas/dispatch-data.schema.json`` was generated once from the npm package
discord-api-types (MIT; ``gateway/v10``, which builds on ``payloads/v10``) by
``gateway_schemas/generate.sh``; its README says which parts were written by hand. The tests
read only that committed file (no npm at test time).

The schema maps each dispatch event name (``t``) to the type of its data (``d``). Every dispatch
frame the fake gateway sent (``GatewaySession.sent``) whose event has a schema is validated
against it, whatever feature sent it; an event without a schema is not checked (add it to
``gateway_schemas/dispatch.ts`` and regenerate). The schema is JSON Schema draft 7.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from tests.contract.discord_openapi import _masked
from tests.fakes.discord_gateway import GatewaySession

SCHEMA_PATH = Path(__file__).resolve().parent / "gateway_schemas" / "dispatch-data.schema.json"
_URI = "urn:discord-api-types-gateway"


class GatewayContract:
    """The dispatch schemas, with one cached validator per event."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        self.events = frozenset(schema["definitions"]["DispatchData"]["properties"])
        self._registry = Registry().with_resource(
            _URI, Resource.from_contents(schema, default_specification=DRAFT7))
        self._validators: dict[str, Draft7Validator] = {}
        self._results: dict[tuple[str, str], str | None] = {}

    def validator(self, event: str) -> Draft7Validator:
        validator = self._validators.get(event)
        if validator is None:
            ref = {"$ref": f"{_URI}#/definitions/DispatchData/properties/{event}"}
            validator = self._validators[event] = Draft7Validator(ref, registry=self._registry)
        return validator

    def check(self, event: str, data: Any) -> list[str]:
        """How the data of one ``event`` dispatch disagrees with its type ([] when it agrees or
        the event has no schema)."""
        if event not in self.events:
            return []
        # Many dispatches differ only in ids, text and times, which validate the same whatever
        # their value: results are remembered by the data with those masked.
        key = (event, json.dumps(_masked(data), sort_keys=True))
        if key not in self._results:
            error = best_match(self.validator(event).iter_errors(data))
            problem = None
            if error is not None:
                error = _closest(error)
                where = "/".join(str(p) for p in error.absolute_path) or "(root)"
                problem = f"{event} {where}: {error.message[:300]}"
            self._results[key] = problem
        problem = self._results[key]
        return [problem] if problem else []


def _branches(error: ValidationError) -> list[list[ValidationError]]:
    grouped: dict[Any, list[ValidationError]] = {}
    for inner in error.context:
        grouped.setdefault(inner.relative_schema_path[0], []).append(inner)
    return list(grouped.values())


def _distance(errors: list[ValidationError]) -> tuple[int, int]:
    """How far data is from a branch of a union: wrong tag fields (a ``const`` or ``enum`` such
    as ``type``) first, then the number of errors (through nested unions, their closest branch)."""
    tags = count = 0
    for error in errors:
        if error.context:
            inner_tags, inner_count = min(_distance(b) for b in _branches(error))
        else:
            inner_tags = int(error.validator in ("const", "enum") and len(error.relative_path) <= 1)
            inner_count = 1
        tags, count = tags + inner_tags, count + inner_count
    return tags, count


def _closest(error: ValidationError) -> ValidationError:
    """For "not valid under any of the given schemas" (a union such as APIInteraction), the
    error inside the branch the data came closest to."""
    while error.context:
        closest = min(_branches(error), key=_distance)
        error = best_match(closest) or closest[0]
    return error


@cache
def contract() -> GatewayContract:
    with SCHEMA_PATH.open(encoding="utf-8") as handle:
        return GatewayContract(json.load(handle))


def gateway_problems(sessions: Iterable[GatewaySession]) -> list[str]:
    """Every disagreement of the dispatches sent on ``sessions`` with discord-api-types."""
    checker = contract()
    problems: list[str] = []
    seen: set[str] = set()
    for session in sessions:
        for text in session.sent:
            if text in seen:
                continue
            seen.add(text)
            frame = json.loads(text)
            problems.extend(checker.check(frame["t"], frame["d"]))
    return problems
