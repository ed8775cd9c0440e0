"""Item 6: every stdout line of `spec`, `check`, `discover` and of a full and an
incremental `read` is an AirbyteMessage that the Airbyte protocol models
accept, and every RECORD is valid against its stream's json_schema from
discover, formats enforced."""

from __future__ import annotations

import copy
import json
import time
from collections import Counter
from pathlib import Path

from jsonschema import Draft7Validator

from support import (
    INCREMENTAL,
    OPT_IN_STREAMS,
    AirbyteConfigStore,
    binary,
    check_records,
    configured_catalog,
    format_checker,
    incremental_problems,
    parse_ts,
    run,
    run_airbyte,
    validate_airbyte_stdout,
    write_json,
)


def only(messages, type_):
    found = [m for m in messages if m["type"] == type_]
    assert len(found) == 1, f"expected exactly one {type_} message, got {len(found)}: {[m['type'] for m in messages]}"
    return found[0]


def connection_spec():
    r = run([binary(), "spec"])
    messages = validate_airbyte_stdout(r)
    return only(messages, "SPEC")["spec"]["connectionSpecification"]


def test_spec(sandbox):
    r = run([binary(), "spec"])
    messages = validate_airbyte_stdout(r)
    spec = only(messages, "SPEC")["spec"]
    schema = spec["connectionSpecification"]
    Draft7Validator.check_schema(schema)
    errors = [e.message for e in Draft7Validator(schema, format_checker=format_checker()).iter_errors(sandbox.config)]
    assert not errors, f"the sandbox's ready config breaks the spec: {errors}"


def test_check(sandbox, tmp_path: Path):
    spec = connection_spec()
    store = AirbyteConfigStore(sandbox.config, tmp_path)
    _, messages = run_airbyte(store, "check")
    status = only(messages, "CONNECTION_STATUS")["connectionStatus"]
    assert status["status"] == "SUCCEEDED", status
    # The config handed back in a CONTROL message is itself a valid config,
    # and the next run, given it, succeeds (the refresh token rotated).
    errors = [e.message for e in Draft7Validator(spec, format_checker=format_checker()).iter_errors(store.config)]
    assert not errors, f"the config of the CONTROL message breaks the spec: {errors}"
    _, messages = run_airbyte(store, "check")
    assert only(messages, "CONNECTION_STATUS")["connectionStatus"]["status"] == "SUCCEEDED"


def test_check_with_bad_credentials_reports_failed(sandbox, tmp_path: Path):
    bad = copy.deepcopy(sandbox.config)
    bad["credentials"]["client_secret"] = "not-the-secret"
    r = run([binary(), "check", "--config", write_json(tmp_path / "bad.json", bad)], check=False)
    messages = validate_airbyte_stdout(r)
    status = only(messages, "CONNECTION_STATUS")["connectionStatus"]
    assert status["status"] == "FAILED", status
    assert status.get("message"), f"a FAILED check should say why: {status}"
    assert r.returncode == 0, f"a check that reports FAILED should still exit 0 (the check ran)\n{r.describe()}"


def test_discover(sandbox, tmp_path: Path):
    store = AirbyteConfigStore(sandbox.config, tmp_path)
    _, messages = run_airbyte(store, "discover")
    catalog = only(messages, "CATALOG")["catalog"]
    names = [s["name"] for s in catalog["streams"]]
    assert len(names) == len(set(names)), f"duplicate stream names: {names}"
    assert set(names) == set(sandbox.expected_counts()), f"streams {names} vs the sandbox's {sorted(sandbox.expected_counts())}"
    for s in catalog["streams"]:
        schema = s["json_schema"]
        Draft7Validator.check_schema(schema)
        props = schema.get("properties") or {}
        modes = s.get("supported_sync_modes") or []
        assert modes and set(modes) <= {"full_refresh", "incremental"}, (s["name"], modes)
        for key in s.get("source_defined_primary_key") or []:
            assert len(key) == 1 and key[0] in props, f"{s['name']}: primary key {key} is not a top-level property"
        if s["name"] in INCREMENTAL:
            cursor, _ = INCREMENTAL[s["name"]]
            assert "incremental" in modes, f"{s['name']} should support incremental: {modes}"
            assert s.get("default_cursor_field") == [cursor], f"{s['name']}: default_cursor_field {s.get('default_cursor_field')}"
        if "incremental" in modes:
            assert s.get("source_defined_cursor") is True, s["name"]
            # A source-defined cursor the destination can use: a strict
            # validator rejects an empty one.
            dcf = s.get("default_cursor_field") or []
            assert len(dcf) == 1 and dcf[0] in props, f"{s['name']}: default_cursor_field {dcf} is empty or not a property"


def stream_statuses(messages) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for m in messages:
        if m["type"] == "TRACE" and m["trace"].get("type") == "STREAM_STATUS":
            st = m["trace"]["stream_status"]
            out.setdefault(st["stream_descriptor"]["name"], []).append(st["status"])
    return out


def last_states(messages) -> dict[str, dict]:
    states: dict[str, dict] = {}
    for m in messages:
        if m["type"] == "STATE":
            st = m["state"]
            assert st.get("type") == "STREAM", f"expected per-stream STATE messages: {st}"
            states[st["stream"]["stream_descriptor"]["name"]] = st
    return states


def source_cursors(catalog) -> dict[str, str]:
    """Each incremental stream's source-defined cursor field."""
    return {s["name"]: s["default_cursor_field"][0] for s in catalog["streams"] if "incremental" in s["supported_sync_modes"]}


def check_read(messages, catalog_names: list[str], started_ms: int, finished_ms: int, cursors: dict[str, str]) -> None:
    """Protocol rules the models alone do not express; `cursors`: each
    incremental stream's cursor field, which its every record carries."""
    problems = []
    for m in messages:
        if m["type"] == "RECORD":
            rec = m["record"]
            if rec["stream"] not in catalog_names:
                problems.append(f"RECORD of a stream not in the configured catalog: {rec['stream']}")
            cursor = cursors.get(rec["stream"])
            if cursor and rec["data"].get(cursor) is None:
                problems.append(f"RECORD of {rec['stream']} without its cursor {cursor}: {json.dumps(rec['data'])[:200]}")
            if type(rec.get("emitted_at")) is not int:
                problems.append(f"RECORD emitted_at must be an integer (ms since epoch): {rec.get('emitted_at')!r}")
            elif not started_ms - 1000 <= rec["emitted_at"] <= finished_ms + 1000:
                problems.append(f"RECORD emitted_at {rec['emitted_at']} outside the run ({started_ms}..{finished_ms})")
    statuses = stream_statuses(messages)
    for name in catalog_names:
        seq = statuses.get(name)
        if not seq or seq[0] != "STARTED" or seq[-1] != "COMPLETE" or any(s not in ("RUNNING",) for s in seq[1:-1]):
            problems.append(f"stream {name}: STREAM_STATUS sequence {seq}, want STARTED, [RUNNING…], COMPLETE")
    assert not problems, "\n".join(problems[:20])


def timed_read(store, catalog_path, state_path=None):
    t0 = int(time.time() * 1000)
    r, messages = run_airbyte(store, "read", catalog=catalog_path, state=state_path)
    return r, messages, t0, int(time.time() * 1000)


def test_full_then_incremental_read(sandbox, tmp_path: Path):
    store = AirbyteConfigStore(sandbox.config, tmp_path)
    _, messages = run_airbyte(store, "discover")
    catalog = only(messages, "CATALOG")["catalog"]
    schemas = {s["name"]: s["json_schema"] for s in catalog["streams"]}
    names = [n for n in schemas if n not in OPT_IN_STREAMS]
    catalog_path = write_json(tmp_path / "configured_catalog.json", configured_catalog(catalog))

    # --- full read
    expected = sandbox.read_counts()
    _, messages, t0, t1 = timed_read(store, catalog_path)
    records = [(m["record"]["stream"], m["record"]["data"]) for m in messages if m["type"] == "RECORD"]
    check_records(records, schemas)
    check_read(messages, names, t0, t1, source_cursors(catalog))
    counts = Counter(s for s, _ in records)
    assert dict(counts) == expected, f"full read record counts {dict(counts)} != sandbox's {expected}"
    by_stream: dict[str, list[dict]] = {}
    for s, d in records:
        by_stream.setdefault(s, []).append(d)
    for s in catalog["streams"]:
        pk = s.get("source_defined_primary_key")
        if pk:
            keys = [tuple(d.get(k[0]) for k in pk) for d in by_stream.get(s["name"], [])]
            dupes = [k for k, n in Counter(keys).items() if n > 1]
            assert not dupes, f"{s['name']}: duplicate primary keys in a full read: {dupes[:5]}"
    states = last_states(messages)
    assert set(states) >= set(INCREMENTAL), f"no final STATE for {set(INCREMENTAL) - set(states)}"
    cursors = {}
    for name, (cursor_field, _) in INCREMENTAL.items():
        stream_state = states[name]["stream"].get("stream_state") or {}
        assert "cursor" in stream_state, f"{name}: state {stream_state} has no cursor"
        cursors[name] = stream_state["cursor"]
        newest = max(parse_ts(d[cursor_field]) for d in by_stream[name])
        assert parse_ts(cursors[name]) >= newest, f"{name}: saved cursor {cursors[name]} is before the newest record {newest}"

    # --- incremental read from the platform's saved per-stream state
    changed = sandbox.mutate(contacts=7, campaigns=3, delete_contacts=2)
    expected2 = sandbox.read_counts()
    state_path = write_json(tmp_path / "state.json", list(states.values()))
    _, messages2, t0, t1 = timed_read(store, catalog_path, state_path)
    records2 = [(m["record"]["stream"], m["record"]["data"]) for m in messages2 if m["type"] == "RECORD"]
    check_records(records2, schemas)
    check_read(messages2, names, t0, t1, source_cursors(catalog))
    got: dict[str, list[dict]] = {}
    for s, d in records2:
        got.setdefault(s, []).append(d)
    full_only = {s["name"] for s in catalog["streams"] if "incremental" not in s["supported_sync_modes"]}
    problems = incremental_problems(by_stream, got, cursors, changed, expected2, full_only)
    assert not problems, "\n".join(problems)
    states2 = last_states(messages2)
    for name, (cursor_field, _) in INCREMENTAL.items():
        new = states2[name]["stream"]["stream_state"]["cursor"]
        assert parse_ts(new) >= parse_ts(cursors[name]), f"{name}: cursor went back from {cursors[name]} to {new}"
