#!/usr/bin/env python3
"""Write a stream's JSON Schema (draft 7, as `schemas/*.json` hold them) from a
response definition of the live contract (Constant Contact's Swagger 2.0 file),
for a new stream; the schema is then the stream's own file, edited by hand
where the connector adds fields (a parent's id, a carried cursor).

    python3 scripts/schema_from_contract.py DEFINITION OUT.json \\
        --title "..." --description "..." --key FIELD [--key FIELD] \\
        [--add FIELD=TYPE[:FORMAT]] [--spec SPEC]

Every property of DEFINITION (`$ref`s resolved; `allOf` merged) becomes a
property of the same type and string format, nullable (`["null", T]`) except
the `--key` fields, which are required and not nullable. A `$ref` that repeats
on its own path (recursive definitions) becomes an open object, as do maps
(`additionalProperties`) and objects without properties. `--add` adds a field
the connector puts in each record. Only types and formats are taken from the
contract, none of its prose. The default SPEC is
../shared/reference/constant-contact-v3.swagger.yaml, relative to the
repository root; `src/streams/spec_coverage.rs` checks the result.
"""

import argparse
import json
import sys
from pathlib import Path

import swagger

STRING_FORMATS = {"date", "date-time", "email", "uuid"}


def resolve(spec, node, seen):
    """The node with its `$ref` followed and `allOf` merged, and the refs now
    on the path; None for the node when a `$ref` repeats (a cycle)."""
    node, seen = swagger.resolve(spec, node, seen)
    if node is not None and "allOf" in node:
        merged = {"type": "object", "properties": {}, "required": []}
        for part in node["allOf"]:
            part, seen = resolve(spec, part, seen)
            if part:
                merged["properties"].update(part.get("properties", {}))
        node = merged
    return node, seen


def open_object():
    return {"type": ["null", "object"], "additionalProperties": True}


def convert(spec, node, seen, nullable=True):
    node, seen = resolve(spec, node, seen)
    if node is None:
        return open_object()
    kind = node.get("type")
    if kind is None:
        kind = "array" if "items" in node else "object"
    typed = ["null", kind] if nullable else kind
    if kind == "object":
        props = node.get("properties") or {}
        if not props:
            return open_object()
        return {
            "type": typed,
            "additionalProperties": True,
            "properties": {
                name: convert(spec, sub, seen) for name, sub in props.items()
            },
        }
    if kind == "array":
        return {"type": typed, "items": convert(spec, node.get("items", {}), seen)}
    out = {"type": typed}
    if kind == "string" and node.get("format") in STRING_FORMATS:
        out["format"] = node["format"]
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("definition")
    parser.add_argument("out")
    parser.add_argument("--title", required=True)
    parser.add_argument("--description", required=True)
    parser.add_argument("--key", action="append", default=[])
    parser.add_argument("--add", action="append", default=[])
    parser.add_argument("--spec", default=str(swagger.DEFAULT_SPEC))
    args = parser.parse_args(argv)
    spec, _ = swagger.load(args.spec)
    body = convert(spec, {"$ref": f"#/definitions/{args.definition}"}, frozenset())
    properties = body.get("properties", {})
    for added in args.add:
        name, _, kind = added.partition("=")
        kind, _, form = kind.partition(":")
        properties[name] = {"type": ["null", kind]}
        if form:
            properties[name]["format"] = form
    for key in args.key:
        if key not in properties:
            sys.exit(f"--key {key}: not a property of {args.definition}")
        kind = properties[key]["type"]
        properties[key]["type"] = [k for k in kind if k != "null"][0]
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": args.title,
        "description": args.description,
        "type": "object",
        "additionalProperties": True,
        "required": args.key,
        "properties": properties,
    }
    Path(args.out).write_text(json.dumps(schema, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
