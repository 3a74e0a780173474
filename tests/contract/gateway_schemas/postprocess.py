"""Second step of generate.sh: repair what ts-json-schema-generator cannot express, then write
dispatch-data.schema.json.

The generator writes a ``...Flags`` enum as its members only, where the field is a bit field
(see ``_bit_fields``). It leaves an empty schema ``{}`` (which accepts anything) for some fields of a
``Pick<>``/``Partial<>``/``Required<>`` whose source reaches the generic channel base
(``_APIChannelBase<T>``) or a union. Each such hole is filled here, by hand, from the type the
field has in discord-api-types (the rules below say which); any hole left is an error, so a new
version of the types cannot silently weaken the check.

    python3 postprocess.py generated.json dispatch-data.schema.json --types-version V ...
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any
from urllib.parse import unquote

Schema = dict[str, Any]

#: ``Pick<Source, ...>`` types whose holes take the field's schema from ``Source``
#: (payloads/v10: guild.d.ts, _interactions/base.d.ts; gateway/v10.d.ts for the activity emoji).
PICKED_FROM = {
    "APIPartialInteractionGuild": "APIGuild",  # Pick<APIGuild, 'features' | 'id'>
    "PartialAPIMessageInteractionGuildMember": "APIGuildMember",  # Pick<APIGuildMember, ...>
    "GatewayActivityEmoji": "APIEmoji",  # Pick<APIEmoji, 'name' | 'animated' | 'id'>
}
#: APIInteractionDataResolvedChannelBase<T> extends Required<APIPartialChannel>: id and name
#: (``name?: string | null`` made required) — written by hand from channel.d.ts.
RESOLVED_CHANNEL_FIELDS = {
    "id": {"$ref": "#/definitions/Snowflake"},
    "name": {"type": ["string", "null"]},
}
#: The interaction's ``channel?: Partial<APIChannel> & Pick<APIChannel, 'id' | 'type'>``
#: (_interactions/base.d.ts), repaired once and shared under this name.
INTERACTION_CHANNEL = "APIInteractionChannel"
#: Empty schemas that are right: ``not_found?: unknown[]`` of GUILD_MEMBERS_CHUNK, and the
#: ``not: {}`` that says a PING interaction has no ``data`` (``data?: never``).
INTENDED = {
    "/definitions/GatewayGuildMembersChunkDispatchData/properties/not_found/items",
    "/definitions/APIPingInteraction/properties/data/not",
}


def _bit_fields(definitions: dict[str, Schema]) -> None:
    """A TypeScript numeric enum accepts any number, and the ``...Flags`` enums (``1 << n``
    members) are bit fields: 0 or any sum of their members. The generator lists the members
    only, so ``flags: 0`` or ``flags: 6`` would be refused; each is written by hand as a
    non-negative integer, its members kept in the description."""
    for name, schema in definitions.items():
        members = schema.get("enum", [schema["const"]] if "const" in schema else None)
        if name.endswith("Flags") and members is not None:  # a one-member enum is a const
            known = ", ".join(str(value) for value in members)
            definitions[name] = {"type": "integer", "minimum": 0,
                                 "description": f"bit field of {name} ({known})"}


def _holes(node: Any, path: str = "") -> list[str]:
    found = [path] if node == {} and path not in INTENDED else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _holes(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _holes(value, f"{path}/{index}")
    return found


def _deref(definitions: dict[str, Schema], schema: Schema) -> Schema:
    while "$ref" in schema:
        schema = definitions[unquote(schema["$ref"].removeprefix("#/definitions/"))]
    return schema


def _fill_picks(definitions: dict[str, Schema]) -> None:
    for name, source in PICKED_FROM.items():
        properties = definitions[name]["properties"]
        for field, schema in properties.items():
            if schema == {}:
                properties[field] = definitions[source]["properties"][field]
    for name, schema in definitions.items():
        if name.startswith("APIInteractionDataResolvedChannel"):
            for variant in [schema, *schema.get("anyOf", [])]:
                for field, value in variant.get("properties", {}).items():
                    if value == {}:
                        variant["properties"][field] = RESOLVED_CHANNEL_FIELDS[field]


def _channel_field(definitions: dict[str, Schema], field: str) -> Schema:
    """The schema a field has in the variants of APIChannel that declare it."""
    options: list[Schema] = []
    variants = list(definitions["APIChannel"]["anyOf"])
    while variants:
        variant = _deref(definitions, variants.pop(0))
        variants += variant.get("anyOf", [])
        schema = variant.get("properties", {}).get(field)
        if schema is not None and schema not in options:
            options.append(schema)
    return options[0] if len(options) == 1 else {"anyOf": options}


def _repair_channel(definitions: dict[str, Schema], channel: Schema) -> Schema:
    """Partial<APIChannel>: a branch ``{}`` of an anyOf is a variant without the field (the
    field is optional, so it is dropped); a bare ``{}`` takes the field's schema from APIChannel."""
    properties = channel["properties"]
    for field, schema in properties.items():
        if schema == {}:
            properties[field] = _channel_field(definitions, field)
        elif "anyOf" in schema:
            branches = [b for b in schema["anyOf"] if b != {}]
            properties[field] = branches[0] if len(branches) == 1 else {"anyOf": branches}
    return channel


def _share_interaction_channel(definitions: dict[str, Schema]) -> None:
    shared: Schema | None = None
    for schema in definitions.values():
        channel = schema.get("properties", {}).get("channel")
        if channel is None or not _holes(channel) or channel.get("required") != ["id", "type"]:
            continue
        repaired = _repair_channel(definitions, channel)
        if shared is not None and repaired != shared:
            sys.exit("interaction channels differ; repair them one by one")
        shared = repaired
        schema["properties"]["channel"] = {"$ref": f"#/definitions/{INTERACTION_CHANNEL}"}
    if shared is not None:
        definitions[INTERACTION_CHANNEL] = shared


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("generated")
    parser.add_argument("output")
    parser.add_argument("--types-version", required=True)
    parser.add_argument("--generator-version", required=True)
    args = parser.parse_args()
    with open(args.generated, encoding="utf-8") as handle:
        schema = json.load(handle)
    definitions = schema["definitions"]
    _bit_fields(definitions)
    _fill_picks(definitions)
    _share_interaction_channel(definitions)
    left = _holes(schema)
    if left:
        sys.exit("empty schemas left (write them by hand in postprocess.py):\n  " + "\n  ".join(left))
    schema["$comment"] = (
        f"Generated from discord-api-types {args.types_version} (MIT, see LICENSE.discord-api-types)"
        f" by ts-json-schema-generator {args.generator_version} and postprocess.py (which fills by "
        "hand what the generator cannot express); regenerate with generate.sh, do not edit."
    )
    with open(args.output, "w", encoding="utf-8") as handle:
        json.dump(schema, handle, indent=1, sort_keys=True)
        handle.write("\n")


if __name__ == "__main__":
    main()
