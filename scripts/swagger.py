"""What the scripts that read Constant Contact's Swagger 2.0 contract share:
loading it (YAML 1.2 booleans, string keys), following its local `$ref`s, and
the command line of a script that derives a checked-in fixture from it
(regenerate, or `--check` for drift).
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
    sys.exit(f"{Path(sys.argv[0]).name} needs PyYAML: pip install pyyaml")

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SPEC = ROOT.parent / "shared" / "reference" / "constant-contact-v3.swagger.yaml"


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


def load(spec_path):
    """(spec, source): the contract at `spec_path` with string keys, and the
    fixture's `source` facts about the file read (name, `info.version`,
    SHA-256)."""
    raw = Path(spec_path).read_bytes()
    spec = string_keys(yaml.load(raw, Loader=Loader))
    info = spec.get("info", {}) if isinstance(spec, dict) else {}
    source = {
        "file": Path(spec_path).name,
        "info_version": str(info.get("version")),
        "sha256": hashlib.sha256(raw).hexdigest(),
    }
    return spec, source


def unescape(token):
    """A JSON Pointer token as the key it names (`~1` is `/`, `~0` is `~`)."""
    return token.replace("~1", "/").replace("~0", "~")


def pointer(spec, ref):
    """The node a local `$ref` (`#/definitions/X`) names."""
    if not ref.startswith("#/"):
        raise ValueError(f"only local $ref are supported, not {ref!r}")
    node = spec
    for part in ref[2:].split("/"):
        node = node[unescape(part)]
    return node


def resolve(spec, node, seen):
    """`node` with its `$ref` chain followed: (node, seen), node None when a
    `$ref` repeats one in `seen` (a cycle)."""
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        if ref in seen:
            return None, seen
        seen = seen | {ref}
        node = pointer(spec, ref)
    return node, seen


def run_cli(description, default_output, regenerate, make_fixture, render, drift, summary, argv=None):
    """The command line of a fixture script: `[SPEC] [OUTPUT]` (or
    `--output`) writes `render(make_fixture(SPEC))` to OUTPUT and prints
    `summary(fixture)`; `--check` compares instead and, on a difference,
    prints how `source` and `drift(old, new)` differ and the `regenerate`
    command, returning 1."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("spec", nargs="?", type=Path, default=DEFAULT_SPEC)
    parser.add_argument("output", nargs="?", type=Path, default=None)
    parser.add_argument("--output", dest="output_option", type=Path, default=None)
    parser.add_argument(
        "--check",
        action="store_true",
        help="compare with the checked-in fixture instead of writing it; exit 1 on drift",
    )
    args = parser.parse_args(argv)
    output = args.output_option or args.output or default_output

    if not args.spec.is_file():
        sys.exit(f"no Swagger contract at {args.spec}")
    new = make_fixture(args.spec)
    text = render(new)

    if not args.check:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
        print(f"wrote {output}: {summary(new)}")
        return 0

    shown = output.relative_to(ROOT) if output.is_relative_to(ROOT) else output
    if not output.is_file():
        print(f"{output} is missing; generate it with: {regenerate} && git add {shown}", file=sys.stderr)
        return 1
    current = output.read_text(encoding="utf-8")
    if current == text:
        print(f"{output} matches {args.spec}")
        return 0
    try:
        old = json.loads(current)
        lines = []
        if old.get("source") != new.get("source"):
            lines.append(f"source: checked in {old.get('source')}, contract now {new.get('source')}")
        lines += drift(old, new)
    except ValueError as error:
        lines = [f"the checked-in fixture is not valid JSON: {error}"]
    if not lines:
        lines = ["same facts, different formatting"]
    print(f"{output} has drifted from {args.spec}:", file=sys.stderr)
    for line in lines:
        print(f"  {line}", file=sys.stderr)
    print(f"regenerate it with: {regenerate} && git add {shown}", file=sys.stderr)
    return 1
