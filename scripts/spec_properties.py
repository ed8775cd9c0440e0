#!/usr/bin/env python3
"""Derive the response properties of every GET endpoint of the Constant
Contact V3 live contract (its Swagger 2.0 file), with each property's
declared type and format, as a JSON fixture the unit tests in
`src/streams/spec_coverage.rs` read. The fixture holds facts about the
contract (which properties each response has, of which type and format),
none of its text, so it can live in the repository while the contract itself
stays outside it.

    python3 scripts/spec_properties.py [SPEC] [OUTPUT]      # regenerate
    python3 scripts/spec_properties.py --check [SPEC]       # exit 1 on drift

Defaults: SPEC is ../shared/reference/constant-contact-v3.swagger.yaml and
OUTPUT is tests/fixtures/spec_response_properties.json, both relative to the
repository root. SPEC must be a Swagger 2.0 file.

For each GET path, keyed by the contract's path template, the value maps
each property path of the response body to what the contract declares for
it: `{"type": ..., "format": ...}`, either left out when the contract gives
none. The body is the 200 response's `schema` (else the first response that
has one); the value is `null` when there is none or the operation produces
no application/json. `.name` is a property, `[]` an array's items:
`.lists[]`, `.lists[].list_id`, `[].email_id`, `._links.next.href`. `$ref`
(`#/definitions/X`, and `#/responses/X` for a whole response) and `allOf`
are resolved (allOf merges properties); a `$ref` that repeats on the current
path is not followed again, so cycles end. A type the contract leaves out is
`object` for a schema with properties, `array` for one with items.
"""

import json
import sys

from swagger import ROOT, load, resolve, run_cli

DEFAULT_OUTPUT = ROOT / "tests" / "fixtures" / "spec_response_properties.json"
REGENERATE = "python3 scripts/spec_properties.py"
JSON = "application/json"


def flatten(spec, schema, seen):
    """(properties, items, type, format, seen) of a schema with `$ref`
    followed and `allOf` merged; `seen` is the set of `$ref` followed on the
    way here. `type` is the declared one, else inferred from properties or
    items; None when neither says."""
    schema, seen = resolve(spec, schema, seen)
    if not isinstance(schema, dict):
        return {}, None, None, None, seen
    properties, items, kind, form = {}, None, None, None
    for part in schema.get("allOf", []):
        p_properties, p_items, p_kind, p_form, p_seen = flatten(spec, part, seen)
        properties.update(p_properties)
        items = items if items is not None else p_items
        kind = kind or p_kind
        form = form or p_form
        seen = seen | p_seen
    properties.update(schema.get("properties") or {})
    if "items" in schema:
        items = schema["items"]
    kind = schema.get("type") or kind
    form = schema.get("format") or form
    if kind is None and properties:
        kind = "object"
    if kind is None and items is not None:
        kind = "array"
    return properties, items, kind, form, seen


def describe(kind, form):
    """The fixture's value for one property: what the contract declares."""
    out = {}
    if kind is not None:
        out["type"] = kind
    if form is not None:
        out["format"] = form
    return out


def property_facts(spec, schema, prefix="", seen=frozenset()):
    """(path, facts) of every property and array items under `schema`, each
    path prefixed with `prefix`."""
    properties, items, kind, _, seen = flatten(spec, schema, seen)
    out = []
    for name, sub in properties.items():
        path = f"{prefix}.{name}"
        _, _, sub_kind, sub_form, _ = flatten(spec, sub, frozenset())
        out.append((path, describe(sub_kind, sub_form)))
        out.extend(property_facts(spec, sub, path, seen))
    if items is not None:
        path = f"{prefix}[]"
        _, _, item_kind, item_form, _ = flatten(spec, items, frozenset())
        out.append((path, describe(item_kind, item_form)))
        out.extend(property_facts(spec, items, path, seen))
    return out


def response_schema(spec, operation):
    """The 200 body schema, else the first response's that has one; None
    when there is none or the operation produces no JSON."""
    if JSON not in (operation.get("produces") or spec.get("produces") or [JSON]):
        return None
    responses = operation.get("responses") or {}
    candidates = [responses["200"]] if "200" in responses else list(responses.values())
    for response in candidates:
        response, _ = resolve(spec, response or {}, frozenset())
        if isinstance(response, dict) and "schema" in response:
            return response["schema"]
    return None


def fixture(spec_path):
    spec, source = load(spec_path)
    if not isinstance(spec, dict) or str(spec.get("swagger")) != "2.0":
        sys.exit(f"{spec_path} is not a Swagger 2.0 file (no `swagger: \"2.0\"`)")
    out = {"source": source}
    for template, item in (spec.get("paths") or {}).items():
        operation = (item or {}).get("get")
        if operation is None:
            continue
        schema = response_schema(spec, operation)
        if schema is None:
            out[template] = None
            continue
        out[template] = dict(property_facts(spec, schema))
    return out


def render(data):
    """JSON with one line per property: sorted, diff-friendly."""
    lines = ["{"]
    keys = sorted(data)
    for i, key in enumerate(keys):
        comma = "," if i + 1 < len(keys) else ""
        value = data[key]
        name = json.dumps(key, ensure_ascii=False)
        if key == "source" or not isinstance(value, dict) or not value:
            text = json.dumps(value, sort_keys=True, ensure_ascii=False)
            lines.append(f" {name}: {text}{comma}")
            continue
        lines.append(f" {name}: {{")
        paths = sorted(value)
        for j, path in enumerate(paths):
            inner = "," if j + 1 < len(paths) else ""
            fact = json.dumps(value[path], sort_keys=True, ensure_ascii=False)
            lines.append(f"  {json.dumps(path, ensure_ascii=False)}: {fact}{inner}")
        lines.append(f" }}{comma}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def drift(old, new):
    """Readable lines saying how the checked-in fixture differs, beyond its
    `source`."""
    lines = []
    endpoints = lambda d: {k for k in d if k != "source"}  # noqa: E731
    for key in sorted(endpoints(new) - endpoints(old)):
        lines.append(f"new endpoint in the contract: {key}")
    for key in sorted(endpoints(old) - endpoints(new)):
        lines.append(f"endpoint gone from the contract: {key}")
    for key in sorted(endpoints(old) & endpoints(new)):
        before, after = old[key], new[key]
        if before == after:
            continue
        if before is None or after is None:
            lines.append(f"{key}: JSON body {'added' if before is None else 'removed'}")
            continue
        if not isinstance(before, dict):
            lines.append(f"{key}: checked in as {type(before).__name__}, not properties with facts")
            continue
        for path in sorted(set(after) - set(before)):
            lines.append(f"{key}: + {path} {after[path]}")
        for path in sorted(set(before) - set(after)):
            lines.append(f"{key}: - {path}")
        for path in sorted(set(before) & set(after)):
            if before[path] != after[path]:
                lines.append(f"{key}: {path} was {before[path]}, now {after[path]}")
    return lines


def summary(data):
    return f"{sum(1 for k in data if k.startswith('/'))} GET endpoints"


def main(argv=None):
    return run_cli(
        __doc__.split("\n\n")[0], DEFAULT_OUTPUT, REGENERATE, fixture, render, drift, summary, argv
    )


if __name__ == "__main__":
    sys.exit(main())
