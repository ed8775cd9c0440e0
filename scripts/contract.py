#!/usr/bin/env python3
"""Derive the request and response contract of the operations the connector
can call from Constant Contact's Swagger 2.0 description of the V3 API, as a
JSON fixture that `tests/contract.rs` checks recorded traffic against. The
fixture holds facts (paths, parameters and their rules, response schemas),
none of the contract's prose, so it can live in the repository while the
contract itself stays outside it.

    python3 scripts/contract.py [SWAGGER] [OUTPUT]      # regenerate
    python3 scripts/contract.py --check [SWAGGER]       # exit 1 on drift

Defaults: SWAGGER is ../shared/reference/constant-contact-v3.swagger.yaml and
OUTPUT is tests/fixtures/contract.json, both relative to the repository root.

The fixture:
- `source`: the file name, `info.version` and SHA-256 of the contract read.
- `operations`: keyed `METHOD /v3/template` (basePath included) for every GET
  of the contract and for the other operations the connector sends
  (`CALLED` below). Each has `produces` (media types of its answers),
  `parameters` (path and query: name, in, required, type, format, enum,
  items, collectionFormat, maximum, minimum, maxLength, minLength, pattern,
  maxItems, minItems, default; only those present), `body` (the JSON schema
  of a `body` parameter, with `required`) when it has one, and `responses`:
  status code -> JSON schema of the body, or null when the contract declares
  the status without a body.
- `other_operations`: the contract's remaining `METHOD /v3/template`s, so a
  request to one of them reads as "not in the fixture" rather than "not in
  the contract".
- `definitions`: the contract's definitions that those schemas reach,
  converted to JSON Schema (draft 2019-09); schemas refer to them as
  `#/definitions/NAME`, so a validator is built from one schema plus this
  object.

Conversion of Swagger 2.0 schemas: prose and annotations (`description`,
`example`, `title`, `readOnly`, `default`, `discriminator`, `xml`,
`externalDocs`, `x-*` and the contract's stray `label`/`label_key`) are
dropped; `x-nullable: true` adds `null` to the type (and to an enum); `type:
file` accepts any value; a boolean `exclusiveMaximum`/`exclusiveMinimum`
becomes the numeric form. Any other keyword fails the script, so a new
Swagger-ism cannot slip through unconverted.
"""

import json
import re
import sys

from swagger import ROOT, load, run_cli, unescape

DEFAULT_OUTPUT = ROOT / "tests" / "fixtures" / "contract.json"
REGENERATE = "python3 scripts/contract.py"

# Operations other than GETs that the connector sends (src/engine/export.rs
# starts the bulk contact export). `tests/contract.rs` fails on a request to
# an operation missing from the fixture, naming this list.
CALLED = [("post", "/activities/contact_exports")]

METHODS = ("get", "put", "post", "delete", "options", "head", "patch")

# Parameter fields kept as they are.
PARAMETER_FIELDS = (
    "name",
    "in",
    "required",
    "type",
    "format",
    "enum",
    "collectionFormat",
    "maximum",
    "minimum",
    "exclusiveMaximum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "multipleOf",
    "default",
)

# Schema keywords kept as they are (their meaning is the same in JSON Schema).
KEPT = {
    "type",
    "format",
    "enum",
    "required",
    "maximum",
    "minimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "multipleOf",
    "maxProperties",
    "minProperties",
}
# Schema keywords without a validation meaning, dropped.
DROPPED = {
    "description",
    "example",
    "title",
    "readOnly",
    "default",
    "discriminator",
    "xml",
    "externalDocs",
    # Stray keys of the contract's event definitions (misplaced properties).
    "label",
    "label_key",
}


DEFINITION_REF = re.compile(r"^#/definitions/([^/]+)$")


class Converter:
    """Converts Swagger schemas, collecting the definitions they reach."""

    def __init__(self, spec):
        self.spec = spec
        self.definitions = {}

    def ref(self, ref, where):
        match = DEFINITION_REF.match(ref)
        if not match:
            raise SystemExit(f"{where}: only #/definitions/NAME references are supported, not {ref!r}")
        name = unescape(match.group(1))
        if name not in self.definitions:
            source = (self.spec.get("definitions") or {}).get(name)
            if source is None:
                raise SystemExit(f"{where}: {ref} names no definition")
            self.definitions[name] = None  # placeholder: cycles end here
            self.definitions[name] = self.schema(source, f"definitions/{name}")
        return {"$ref": ref}

    def schema(self, node, where):
        if not isinstance(node, dict):
            raise SystemExit(f"{where}: a schema must be an object, not {node!r}")
        if "$ref" in node:
            converted = self.ref(node["$ref"], where)
            if node.get("x-nullable") is True:
                return {"anyOf": [converted, {"type": "null"}]}
            return converted
        out = {}
        for key, value in node.items():
            if key in DROPPED or key.startswith("x-"):
                continue
            if key == "properties":
                out[key] = {
                    name: self.schema(sub, f"{where}/properties/{name}")
                    for name, sub in (value or {}).items()
                }
            elif key == "items":
                out[key] = self.schema(value, f"{where}/items")
            elif key == "additionalProperties":
                out[key] = value if isinstance(value, bool) else self.schema(value, f"{where}/{key}")
            elif key in ("allOf", "anyOf", "oneOf"):
                out[key] = [self.schema(sub, f"{where}/{key}/{i}") for i, sub in enumerate(value)]
            elif key in ("exclusiveMaximum", "exclusiveMinimum"):
                bound = "maximum" if key == "exclusiveMaximum" else "minimum"
                if value is True and bound in node:
                    out[key] = node[bound]
            elif key in KEPT:
                out[key] = value
            else:
                raise SystemExit(
                    f"{where}: schema keyword {key!r} is neither converted nor known to be "
                    "safe to drop; teach scripts/contract.py about it"
                )
        if out.get("type") == "file":
            del out["type"]
        if out.get("required") == []:
            del out["required"]
        if node.get("x-nullable") is True:
            if "type" in out:
                types = out["type"] if isinstance(out["type"], list) else [out["type"]]
                out["type"] = types + ["null"]
            if "enum" in out and None not in out["enum"]:
                out["enum"] = out["enum"] + [None]
        for bound in ("maximum", "minimum"):
            exclusive = "exclusiveMaximum" if bound == "maximum" else "exclusiveMinimum"
            if exclusive in out:
                del out[bound]
        return out


def parameter(converter, raw, where):
    """A path or query parameter's facts, or (for `in: body`) its schema."""
    if raw.get("in") == "body":
        return {
            "required": bool(raw.get("required")),
            "schema": converter.schema(raw.get("schema") or {}, f"{where}/schema"),
        }
    out = {key: raw[key] for key in PARAMETER_FIELDS if key in raw}
    out["required"] = bool(raw.get("required"))
    if "items" in raw:
        out["items"] = {
            key: raw["items"][key] for key in PARAMETER_FIELDS if key in raw["items"]
        }
    return out


def operation(converter, spec, method, template, item):
    op = item[method]
    where = f"{method.upper()} {template}"
    raw_parameters = list(item.get("parameters") or []) + list(op.get("parameters") or [])
    parameters, body = [], None
    for raw in raw_parameters:
        if "$ref" in raw:
            raise SystemExit(f"{where}: parameter references are not supported")
        converted = parameter(converter, raw, where)
        if raw.get("in") == "body":
            body = converted
        elif raw.get("in") in ("path", "query"):
            parameters.append(converted)
        elif raw.get("in") == "formData":
            raise SystemExit(f"{where}: form parameters are not supported (the connector sends none)")
        # header parameters: the connector's headers are not checked
    responses = {}
    for status, response in (op.get("responses") or {}).items():
        response = response or {}
        if "$ref" in response:
            match = re.match(r"^#/responses/(.+)$", response["$ref"])
            response = (spec.get("responses") or {}).get(match.group(1) if match else "") or {}
        schema = response.get("schema")
        responses[status] = (
            None if schema is None else converter.schema(schema, f"{where} {status}")
        )
    out = {
        "produces": op.get("produces") or spec.get("produces") or [],
        "parameters": parameters,
        "responses": dict(sorted(responses.items())),
    }
    if body is not None:
        out["body"] = body
    return out


def fixture(spec_path):
    spec, source = load(spec_path)
    base = (spec.get("basePath") or "").rstrip("/")
    converter = Converter(spec)
    operations, others = {}, []
    called = set(CALLED)
    for template, item in (spec.get("paths") or {}).items():
        for method in METHODS:
            if method not in (item or {}):
                continue
            key = f"{method.upper()} {base}{template}"
            if method == "get" or (method, template) in called:
                operations[key] = operation(converter, spec, method, template, item)
                called.discard((method, template))
            else:
                others.append(key)
    if called:
        missing = ", ".join(f"{m.upper()} {t}" for m, t in sorted(called))
        raise SystemExit(f"the contract has no {missing} (scripts/contract.py CALLED)")
    return {
        "source": source,
        "base_path": base,
        "operations": dict(sorted(operations.items())),
        "other_operations": sorted(others),
        "definitions": dict(sorted(converter.definitions.items())),
    }


def render(data):
    return json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def drift(old, new):
    """Readable lines saying how the checked-in fixture differs, beyond its
    `source`."""
    lines = []
    for section in ("operations", "definitions"):
        before, after = old.get(section) or {}, new.get(section) or {}
        for key in sorted(set(after) - set(before)):
            lines.append(f"new in {section}: {key}")
        for key in sorted(set(before) - set(after)):
            lines.append(f"gone from {section}: {key}")
        for key in sorted(set(before) & set(after)):
            if before[key] != after[key]:
                lines.append(f"changed in {section}: {key}")
    before, after = set(old.get("other_operations") or []), set(new.get("other_operations") or [])
    for key in sorted(after - before):
        lines.append(f"new operation: {key}")
    for key in sorted(before - after):
        lines.append(f"operation gone: {key}")
    return lines


def summary(data):
    return f"{len(data['operations'])} operations, {len(data['definitions'])} definitions"


def main(argv=None):
    return run_cli(
        __doc__.split("\n\n")[0], DEFAULT_OUTPUT, REGENERATE, fixture, render, drift, summary, argv
    )


if __name__ == "__main__":
    sys.exit(main())
