#!/usr/bin/env python3
"""Derive the response property paths of every GET endpoint from the
Constant Contact V3 OpenAPI spec, as a JSON fixture the unit test
`spec_coverage_test` reads. The fixture holds facts about the spec (which
properties each response has), none of its text, so it can live in the
repository while the spec itself stays outside it.

    python3 scripts/spec_properties.py [SPEC] [OUTPUT]      # regenerate
    python3 scripts/spec_properties.py --check [SPEC]       # exit 1 on drift

Defaults: SPEC is ../shared/reference/constant-contact-v3.openapi.yml and
OUTPUT is tests/fixtures/spec_response_properties.json, both relative to the
repository root.

For each POST whose JSON body has a `fields` array with an enum (a bulk
export's columns), the key `POST <template> fields` holds that enum, sorted.

For each GET path, keyed by the spec's path template, the value is the sorted
list of property paths of the response body: the 200 response's
application/json schema, or when there is no 200 the first response that has
one; `null` when there is none. `.name` is a property, `[]` an array's items:
`.lists[].list_id`, `[].email_id`, `._links.next.href`. `$ref` and `allOf`
are resolved (allOf merges properties); a `$ref` that repeats on the current
path is not followed again, so cycles end.
"""

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path

try:
    import yaml
except ImportError:  # pragma: no cover - depends on the machine
    sys.exit("spec_properties.py needs PyYAML: pip install pyyaml")

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SPEC = ROOT.parent / "shared" / "reference" / "constant-contact-v3.openapi.yml"
DEFAULT_OUTPUT = ROOT / "tests" / "fixtures" / "spec_response_properties.json"
REGENERATE = "python3 scripts/spec_properties.py"


class Loader(yaml.SafeLoader):
    """YAML 1.2 booleans only: PyYAML's 1.1 rules would turn a property
    named `on`, `off`, `yes`, `no`, `y` or `n` into a boolean."""


Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def string_keys(node):
    """Map keys as strings: response codes such as `200:` load as ints."""
    if isinstance(node, dict):
        return {str(k): string_keys(v) for k, v in node.items()}
    if isinstance(node, list):
        return [string_keys(v) for v in node]
    return node


def pointer(spec, ref):
    """The node a local `$ref` (`#/components/schemas/X`) names."""
    if not ref.startswith("#/"):
        raise ValueError(f"only local $ref are supported, not {ref!r}")
    node = spec
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def flatten(spec, schema, seen):
    """(properties, items, seen) of a schema with `$ref` followed and `allOf`
    merged; `seen` is the set of `$ref` followed on the way here."""
    properties, items = {}, None
    while isinstance(schema, dict) and "$ref" in schema:
        ref = schema["$ref"]
        if ref in seen:
            return {}, None, seen
        seen = seen | {ref}
        schema = pointer(spec, ref)
    if not isinstance(schema, dict):
        return {}, None, seen
    for part in schema.get("allOf", []):
        part_properties, part_items, part_seen = flatten(spec, part, seen)
        properties.update(part_properties)
        items = items if items is not None else part_items
        seen = seen | part_seen
    properties.update(schema.get("properties") or {})
    if "items" in schema:
        items = schema["items"]
    return properties, items, seen


def property_paths(spec, schema, prefix="", seen=frozenset()):
    """Every property path under `schema`, each prefixed with `prefix`."""
    properties, items, seen = flatten(spec, schema, seen)
    out = []
    for name, sub in properties.items():
        path = f"{prefix}.{name}"
        out.append(path)
        out.extend(property_paths(spec, sub, path, seen))
    if items is not None:
        out.extend(property_paths(spec, items, f"{prefix}[]", seen))
    return out


def response_schema(operation):
    """The 200 JSON body schema, else the first response's that has one."""
    responses = operation.get("responses") or {}
    candidates = [responses["200"]] if "200" in responses else list(responses.values())
    for response in candidates:
        json_body = ((response or {}).get("content") or {}).get("application/json")
        if json_body is not None and "schema" in json_body:
            return json_body["schema"]
    return None


def fixture(spec_path):
    raw = spec_path.read_bytes()
    spec = string_keys(yaml.load(raw, Loader=Loader))
    out = {
        "source": {
            "file": spec_path.name,
            "info_version": str(spec.get("info", {}).get("version")),
            "sha256": hashlib.sha256(raw).hexdigest(),
        }
    }
    for template, item in (spec.get("paths") or {}).items():
        operation = (item or {}).get("get")
        if operation is None:
            continue
        schema = response_schema(operation)
        out[template] = None if schema is None else sorted(set(property_paths(spec, schema)))
    for template, item in (spec.get("paths") or {}).items():
        fields = export_fields(spec, (item or {}).get("post"))
        if fields is not None:
            out[f"POST {template} fields"] = fields
    return out


def export_fields(spec, operation):
    """The enum of a POST's JSON body `fields` array (the columns a bulk
    export can ask for), sorted; None when the body has no such enum."""
    body = (((operation or {}).get("requestBody") or {}).get("content") or {}).get(
        "application/json"
    )
    if body is None or "schema" not in body:
        return None
    properties, _, _ = flatten(spec, body["schema"], frozenset())
    _, items, _ = flatten(spec, properties.get("fields") or {}, frozenset())
    while isinstance(items, dict) and "$ref" in items:
        items = pointer(spec, items["$ref"])
    enum = (items or {}).get("enum") if isinstance(items, dict) else None
    return sorted(enum) if enum else None


def render(data):
    return json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def drift(old, new):
    """Readable lines saying how the checked-in fixture differs."""
    lines = []
    if old.get("source") != new.get("source"):
        lines.append(f"source: checked in {old.get('source')}, spec now {new.get('source')}")
    endpoints = lambda d: {k for k in d if k != "source"}  # noqa: E731
    for key in sorted(endpoints(new) - endpoints(old)):
        lines.append(f"new endpoint in the spec: {key}")
    for key in sorted(endpoints(old) - endpoints(new)):
        lines.append(f"endpoint gone from the spec: {key}")
    for key in sorted(endpoints(old) & endpoints(new)):
        before, after = old[key], new[key]
        if before == after:
            continue
        if before is None or after is None:
            lines.append(f"{key}: JSON body {'added' if before is None else 'removed'}")
            continue
        for path in sorted(set(after) - set(before)):
            lines.append(f"{key}: + {path}")
        for path in sorted(set(before) - set(after)):
            lines.append(f"{key}: - {path}")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("spec", nargs="?", type=Path, default=DEFAULT_SPEC)
    parser.add_argument("output", nargs="?", type=Path, default=None)
    parser.add_argument("--output", dest="output_option", type=Path, default=None)
    parser.add_argument(
        "--check",
        action="store_true",
        help="compare with the checked-in fixture instead of writing it; exit 1 on drift",
    )
    args = parser.parse_args(argv)
    output = args.output_option or args.output or DEFAULT_OUTPUT

    if not args.spec.is_file():
        sys.exit(f"no OpenAPI spec at {args.spec}")
    new = fixture(args.spec)
    text = render(new)

    if not args.check:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
        endpoints = sum(1 for k in new if k.startswith("/"))
        print(f"wrote {output}: {endpoints} GET endpoints")
        return 0

    if not output.is_file():
        print(f"{output} is missing; generate it with: {REGENERATE}", file=sys.stderr)
        return 1
    current = output.read_text(encoding="utf-8")
    if current == text:
        print(f"{output} matches {args.spec}")
        return 0
    try:
        lines = drift(json.loads(current), new)
    except ValueError as error:
        lines = [f"the checked-in fixture is not valid JSON: {error}"]
    if not lines:
        lines = ["same facts, different formatting"]
    print(f"{output} has drifted from {args.spec}:", file=sys.stderr)
    for line in lines:
        print(f"  {line}", file=sys.stderr)
    shown = output.relative_to(ROOT) if output.is_relative_to(ROOT) else output
    print(f"regenerate it with: {REGENERATE} && git add {shown}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
