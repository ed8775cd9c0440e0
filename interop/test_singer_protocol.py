"""Singer mode on its own, the ground items 8 and 9 stand on: `--about`,
`--discover` (with and without `--state`, as Meltano calls it), reads of
selected streams with records valid against their SCHEMA, STATE bookmarks,
incremental reads from `--state`, and the refresh token rotated into the
`--config` file in place."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from jsonschema import Draft7Validator

from support import (
    INCREMENTAL,
    OPT_IN_STREAMS,
    binary,
    check_records,
    incremental_problems,
    parse_ts,
    run,
    select_streams,
    singer_discover,
    singer_read,
    write_json,
)


def test_about():
    r = run([binary(), "--about", "--format", "json"])
    about = json.loads(r.stdout)
    assert about.get("name") == "tap-constant-contact", about.get("name")
    assert {"catalog", "discover", "state", "about"} <= set(about.get("capabilities") or []), about.get("capabilities")
    Draft7Validator.check_schema(about["settings"])
    md = run([binary(), "--about", "--format", "markdown"]).stdout
    assert md.strip() and not md.lstrip().startswith("{"), md[:200]
    plain = run([binary(), "--about"]).stdout
    assert plain.strip(), "--about without --format printed nothing"


def test_discover_catalog_shape(sandbox, tmp_path: Path):
    config = write_json(tmp_path / "config.json", sandbox.config)
    catalog = singer_discover(config)
    # Meltano passes --state along with --discover at times.
    state = write_json(tmp_path / "state.json", {"bookmarks": {}})
    assert singer_discover(config, "--state", state) == catalog

    names = [s["tap_stream_id"] for s in catalog["streams"]]
    assert sorted(names) == sorted(sandbox.expected_counts()), names
    problems = []
    for s in catalog["streams"]:
        sid = s["tap_stream_id"]
        Draft7Validator.check_schema(s["schema"])
        props = s["schema"].get("properties") or {}
        if s.get("stream") != sid:
            problems.append(f"{sid}: stream {s.get('stream')!r}")
        kp = s.get("key_properties")
        if not isinstance(kp, list) or not all(k in props for k in kp):
            problems.append(f"{sid}: key_properties {kp!r}")
        tops = [m for m in s["metadata"] if m["breadcrumb"] == []]
        if len(tops) != 1:
            problems.append(f"{sid}: {len(tops)} [] breadcrumbs")
            continue
        top = tops[0]["metadata"]
        if top.get("inclusion") != "available" or top.get("selected-by-default") is not (sid not in OPT_IN_STREAMS):
            problems.append(f"{sid}: stream metadata {top}")
        if top.get("table-key-properties") != kp:
            problems.append(f"{sid}: table-key-properties {top.get('table-key-properties')} != key_properties {kp}")
        rk = s.get("replication_key")
        method = s.get("replication_method")
        if top.get("forced-replication-method") != method or method not in ("INCREMENTAL", "FULL_TABLE"):
            problems.append(f"{sid}: replication_method {method!r}, forced-replication-method {top.get('forced-replication-method')!r}")
        if sid in INCREMENTAL and (method != "INCREMENTAL" or rk != INCREMENTAL[sid][0]):
            problems.append(f"{sid}: replication_method {method!r}, replication_key {rk!r}")
        if rk is not None and (rk not in props or top.get("valid-replication-keys") != [rk]):
            problems.append(f"{sid}: replication_key {rk!r}, valid-replication-keys {top.get('valid-replication-keys')!r}")
        if method == "FULL_TABLE" and (rk or top.get("valid-replication-keys")):
            problems.append(f"{sid}: a FULL_TABLE stream with a replication key: {top}")
        by_prop = {tuple(m["breadcrumb"]): m["metadata"] for m in s["metadata"] if m["breadcrumb"]}
        for p in props:
            m = by_prop.get(("properties", p))
            if m is None:
                problems.append(f"{sid}: no metadata for property {p}")
                continue
            # A deletion (`_sdc_deleted_at`) is never deselected either.
            must = p in (kp or []) or p == rk or p == "_sdc_deleted_at"
            if m.get("inclusion") != ("automatic" if must else "available"):
                problems.append(f"{sid}.{p}: inclusion {m.get('inclusion')!r} (key, replication key or deletion: {must})")
        stray = [b for b in by_prop if len(b) != 2 or b[0] != "properties" or b[1] not in props]
        if stray:
            problems.append(f"{sid}: metadata for unknown breadcrumbs {stray}")
    assert not problems, "\n".join(problems)


def test_read_selected_streams_and_resume_from_state(sandbox, tmp_path: Path):
    config = write_json(tmp_path / "config.json", sandbox.config)
    first_refresh_token = sandbox.config["credentials"]["refresh_token"]
    catalog = singer_discover(config)
    expected = sandbox.read_counts()

    # Selection: `selected: false` leaves a stream out; absent means selected-by-default.
    partial = select_streams(catalog, ["contacts", "custom_fields"])
    for s in partial["streams"]:
        if s["tap_stream_id"] == "segments":
            s["metadata"][[m["breadcrumb"] for m in s["metadata"]].index([])]["metadata"].pop("selected")
    read = singer_read(config, write_json(tmp_path / "partial.json", partial), flag="--properties")
    assert set(read.records) == {"contacts", "custom_fields", "segments"}, sorted(read.records)

    # The refresh rotated the token, and the tap wrote the new one into --config.
    rotated = json.loads(config.read_text())
    current = sandbox.state()["current_refresh_token"]
    assert current != first_refresh_token, "the sandbox did not rotate the refresh token"
    assert rotated["credentials"]["refresh_token"] == current, "the tap did not write the rotated refresh token to --config"

    # A full read of every stream.
    full_catalog = write_json(tmp_path / "catalog.json", select_streams(catalog))
    read = singer_read(config, full_catalog)
    counts = {k: len(v) for k, v in read.records.items()}
    assert counts == expected, f"singer full read {counts} != the sandbox's {expected}"
    assert set(read.schemas) == set(expected)
    discovered = {s["tap_stream_id"]: s["schema"] for s in catalog["streams"]}
    for name, schema in read.schemas.items():
        assert schema == discovered[name], f"{name}: the SCHEMA message differs from the discovered schema"
    check_records(((s, r) for s, rs in read.records.items() for r in rs), read.schemas)
    for name, rs in read.records.items():
        kp = read.schema_messages[name]["key_properties"]
        dupes = [k for k, n in Counter(tuple(r.get(p) for p in kp) for r in rs).items() if n > 1]
        assert not dupes, f"{name}: duplicate keys {dupes[:5]}"
    bookmarks = (read.last_state or {}).get("bookmarks") or {}
    for name, (cursor, _) in INCREMENTAL.items():
        b = bookmarks.get(name) or {}
        assert b.get("replication_key") == cursor and b.get("replication_key_value"), f"{name}: bookmark {b}"
        newest = max(parse_ts(r[cursor]) for r in read.records[name])
        assert parse_ts(b["replication_key_value"]) >= newest, f"{name}: bookmark {b} before newest {newest}"

    # Incremental: from the last STATE, only the changes (and the overlap).
    changed = sandbox.mutate(contacts=4, campaigns=2, delete_contacts=1)
    expected2 = sandbox.read_counts()
    state = write_json(tmp_path / "state.json", read.last_state)
    read2 = singer_read(config, full_catalog, state)
    cursors = {name: bookmarks[name]["replication_key_value"] for name in INCREMENTAL}
    full_only = {s["tap_stream_id"] for s in catalog["streams"] if s.get("replication_method") == "FULL_TABLE"}
    problems = incremental_problems(read.records, read2.records, cursors, changed, expected2, full_only)
    assert not problems, "singer incremental read:\n" + "\n".join(problems)
    check_records(((s, r) for s, rs in read2.records.items() for r in rs), read2.schemas)
