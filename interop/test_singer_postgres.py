"""Item 9: `source-constant-contact --config … --catalog … | target-postgres
--config …` loads a real PostgreSQL (started by .ci/interop.sh); each table's
row count equals the sandbox's, and every value, nested objects and arrays
(contacts' email_address, custom_fields, …) included, reads back as the tap
emitted it."""

from __future__ import annotations

import json
import os
import shlex
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from support import (
    binary,
    parse_ts,
    require_env,
    require_executable,
    run,
    select_streams,
    singer_discover,
    tool_env,
    validate_singer_stdout,
    Run,
    SingerRead,
    write_json,
)

SCHEMA = "constant_contact"


def pg_params() -> dict[str, Any]:
    return {
        "host": require_env("INTEROP_PG_HOST", "the PostgreSQL host"),
        "port": int(require_env("INTEROP_PG_PORT", "the PostgreSQL port")),
        "user": require_env("INTEROP_PG_USER", "a PostgreSQL superuser"),
        "password": os.environ.get("INTEROP_PG_PASSWORD", ""),
    }


@pytest.fixture
def database():
    import psycopg

    params = pg_params()
    name = f"interop_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(dbname="postgres", autocommit=True, connect_timeout=10, **params)
    except psycopg.Error as e:
        pytest.fail(f"cannot reach PostgreSQL at {params['host']}:{params['port']}: {e}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield name
    with psycopg.connect(dbname="postgres", autocommit=True, **params) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def property_type(schema: dict, prop: str) -> tuple[set[str], str | None]:
    p = (schema.get("properties") or {}).get(prop) or {}
    t = p.get("type", [])
    return (set([t] if isinstance(t, str) else t), p.get("format"))


def key_of(row: dict, key_properties: list[str], schema: dict) -> tuple:
    """A record's key, timestamps compared as instants (PostgreSQL gives
    them back without the Z)."""
    out = []
    for k in key_properties:
        v = row.get(k)
        if isinstance(v, str) and property_type(schema, k)[1] == "date-time":
            v = parse_ts(v).isoformat()
        out.append(v)
    return tuple(out)


def same(value: Any, stored: Any, types: set[str], fmt: str | None) -> bool:
    if value is None:
        return stored is None
    if fmt == "date-time" and isinstance(value, str):
        return stored is not None and parse_ts(value) == parse_ts(str(stored))
    if fmt == "date" and isinstance(value, str):
        return stored is not None and date.fromisoformat(value) == date.fromisoformat(str(stored)[:10])
    if isinstance(value, float) or isinstance(stored, float):
        return isinstance(stored, (int, float)) and abs(float(value) - float(stored)) <= 1e-9 * max(1.0, abs(float(value)))
    # Objects and arrays must come back exactly: same keys, same values, same order of items.
    return value == stored


def test_tap_pipe_target_postgres(sandbox, database, tmp_path: Path):
    import psycopg

    target = require_executable(require_env("INTEROP_TARGET_POSTGRES", "the target-postgres executable"), "target-postgres")
    params = pg_params()
    tap_config = write_json(tmp_path / "tap-config.json", sandbox.config)
    catalog = write_json(tmp_path / "catalog.json", select_streams(singer_discover(tap_config)))
    target_config = write_json(
        tmp_path / "target-config.json",
        {
            **params,
            "database": database,
            "default_target_schema": SCHEMA,
            "load_method": "upsert",
            "validate_records": True,
        },
    )
    tap = tap_into_postgres(tap_config, catalog, target_config, tmp_path / "tap.jsonl", target)
    expected = sandbox.read_counts()
    assert {k: len(v) for k, v in tap.records.items()} == expected

    problems: list[str] = []
    with psycopg.connect(dbname=database, **params) as conn:
        tables = {row[0] for row in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (SCHEMA,))}
        assert tables >= set(expected), f"tables in {SCHEMA}: {sorted(tables)}, want {sorted(expected)}"
        for stream, n in expected.items():
            count = conn.execute(f'SELECT count(*) FROM "{SCHEMA}"."{stream}"').fetchone()[0]
            if count != n:
                problems.append(f"{stream}: {count} rows in PostgreSQL, the sandbox has {n}")
            kp = tap.schema_messages[stream]["key_properties"]
            schema = tap.schemas[stream]
            rows = conn.execute(f'SELECT to_jsonb(t) FROM "{SCHEMA}"."{stream}" t').fetchall()
            stored = {key_of(row[0], kp, schema): row[0] for row in rows}
            for rec in tap.records[stream]:
                key = key_of(rec, kp, schema)
                row = stored.get(key)
                if row is None:
                    problems.append(f"{stream}: record {key} not in PostgreSQL")
                    continue
                for prop, value in rec.items():
                    if prop not in row:
                        problems.append(f"{stream} {key}: column {prop} missing")
                        continue
                    types, fmt = property_type(schema, prop)
                    if not same(value, row[prop], types, fmt):
                        problems.append(f"{stream} {key}: {prop}: tap {json.dumps(value)[:200]} != stored {json.dumps(row[prop], default=str)[:200]}")
                if len(problems) > 50:
                    break
        # The nested objects the issue names, spelled out.
        contacts = tap.records["contacts"]
        with_fields = [c for c in contacts if c.get("custom_fields")]
        assert with_fields, "no contact with custom_fields to compare"
        c = with_fields[0]
        row = conn.execute(
            f'SELECT email_address, custom_fields FROM "{SCHEMA}".contacts WHERE contact_id = %s', (c["contact_id"],)
        ).fetchone()
        assert row[0] == c["email_address"], f"email_address: {row[0]!r} != {c['email_address']!r}"
        assert row[1] == c["custom_fields"], f"custom_fields: {row[1]!r} != {c['custom_fields']!r}"
    assert not problems, f"{len(problems)} difference(s) between the tap's records and PostgreSQL:\n" + "\n".join(problems[:30])


def tap_into_postgres(tap_config: Path, catalog: Path, target_config: Path, tap_out: Path, target: Path) -> SingerRead:
    """One `tap | tee | target-postgres` run; the tap's messages, validated."""
    pipeline = (
        f"set -o pipefail; {shlex.quote(str(binary()))} --config {shlex.quote(str(tap_config))} "
        f"--catalog {shlex.quote(str(catalog))} | tee {shlex.quote(str(tap_out))} | "
        f"{shlex.quote(str(target))} --config {shlex.quote(str(target_config))}"
    )
    r = run(["bash", "-c", pipeline], env=tool_env(), timeout=900, check=False)
    assert r.returncode == 0, f"tap | target-postgres failed\n{r.describe(8000)}"
    text = tap_out.read_text()
    body = text[:-1] if text.endswith("\n") else text
    return validate_singer_stdout(Run(["tap"], 0, text, "", body.split("\n") if body else []))


def contacts_every_run(tap_config: Path, tmp_path: Path) -> Path:
    """A Singer catalog of `contacts` read whole (FULL_TABLE) every run, so a
    contact deleted since the last run is read again, as a deletion."""
    catalog = select_streams(singer_discover(tap_config), ["contacts"])
    for stream in catalog["streams"]:
        for entry in stream["metadata"]:
            if entry.get("breadcrumb") == []:
                entry["metadata"]["replication-method"] = "FULL_TABLE"
    return write_json(tmp_path / "catalog.json", catalog)


def test_deleted_contact_is_no_longer_live_in_postgres(sandbox, database, tmp_path: Path):
    """A contact deleted in the fake arrives as a deletion: its RECORD carries
    `_sdc_deleted_at` (declared in the SCHEMA), and target-postgres, told to
    delete hard, takes it out of the live table. MeltanoLabs target-postgres
    applies `hard_delete` to ACTIVATE_VERSION only; for a record that carries
    `_sdc_deleted_at` it keeps the row with that column set (its soft
    delete), which is what a target without per-record hard deletes does:
    the test accepts the row gone, or there with exactly the tap's
    `_sdc_deleted_at`, and in both cases absent from the live rows
    (`_sdc_deleted_at IS NULL`), every other contact untouched."""
    import psycopg

    target = require_executable(require_env("INTEROP_TARGET_POSTGRES", "the target-postgres executable"), "target-postgres")
    params = pg_params()
    tap_config = write_json(tmp_path / "tap-config.json", sandbox.config)
    catalog_path = contacts_every_run(tap_config, tmp_path)
    target_config = write_json(
        tmp_path / "target-config.json",
        {
            **params,
            "database": database,
            "default_target_schema": SCHEMA,
            "load_method": "upsert",
            "hard_delete": True,
            "add_record_metadata": True,
            "validate_records": True,
        },
    )

    first = tap_into_postgres(tap_config, catalog_path, target_config, tmp_path / "tap-1.jsonl", target)
    assert first.schemas["contacts"]["properties"]["_sdc_deleted_at"]["format"] == "date-time"
    live_before = {c["contact_id"] for c in first.records["contacts"] if not c.get("deleted_at")}
    # Deleted before the first run (the sandbox starts with some): already marked.
    for c in first.records["contacts"]:
        assert (c.get("_sdc_deleted_at") is not None) == bool(c.get("deleted_at")), c

    deleted = sandbox.mutate(delete_contacts=1)["deleted_contacts"]
    assert len(deleted) == 1 and deleted[0] in live_before, deleted
    gone = deleted[0]
    second = tap_into_postgres(tap_config, catalog_path, target_config, tmp_path / "tap-2.jsonl", target)
    marked = [c for c in second.records["contacts"] if c["contact_id"] == gone]
    assert len(marked) == 1 and marked[0].get("_sdc_deleted_at"), f"the deleted contact's record: {marked}"

    with psycopg.connect(dbname=database, **params) as conn:
        rows = conn.execute(
            f'SELECT _sdc_deleted_at FROM "{SCHEMA}".contacts WHERE contact_id::text = %s', (gone,)
        ).fetchall()
        if rows:
            stored = rows[0][0]
            assert stored is not None and parse_ts(str(stored)) == parse_ts(marked[0]["_sdc_deleted_at"]), (
                f"the deleted contact {gone} is still a live row in PostgreSQL: _sdc_deleted_at={stored!r}"
            )
        # contact_id is a uuid column: compared as text.
        live = {str(row[0]) for row in conn.execute(
            f'SELECT contact_id FROM "{SCHEMA}".contacts WHERE _sdc_deleted_at IS NULL')}
    assert gone not in live, f"the deleted contact {gone} is still live in PostgreSQL"
    assert live == live_before - {gone}, "every other live contact is still live"


def test_deleted_contact_disappears_from_postgres_with_hard_deletes(sandbox, database, tmp_path: Path):
    """With a target that deletes per record: pipelinewise-target-postgres,
    `hard_delete: true`, removes the row of every record that carries
    `_sdc_deleted_at`. A contact deleted in the fake is in PostgreSQL after
    the first run and gone after the next, every other contact untouched;
    contacts deleted before the first run never stay."""
    import psycopg

    target = require_executable(
        require_env("INTEROP_PIPELINEWISE_TARGET_POSTGRES", "pipelinewise's target-postgres executable"),
        "target-postgres (pipelinewise)",
    )
    params = pg_params()
    tap_config = write_json(tmp_path / "tap-config.json", sandbox.config)
    catalog_path = contacts_every_run(tap_config, tmp_path)
    target_config = write_json(
        tmp_path / "target-config.json",
        {
            "host": params["host"],
            "port": params["port"],
            "user": params["user"],
            # Required by the target, unused with the trust authentication CI sets up.
            "password": params["password"] or "unused",
            "dbname": database,
            "default_target_schema": SCHEMA,
            "hard_delete": True,
        },
    )

    def stored() -> set[str]:
        with psycopg.connect(dbname=database, **params) as conn:
            return {str(row[0]) for row in conn.execute(f'SELECT contact_id FROM "{SCHEMA}".contacts')}

    first = tap_into_postgres(tap_config, catalog_path, target_config, tmp_path / "tap-1.jsonl", target)
    live_before = {c["contact_id"] for c in first.records["contacts"] if not c.get("_sdc_deleted_at")}
    deleted_before = {c["contact_id"] for c in first.records["contacts"]} - live_before
    assert deleted_before, "the sandbox starts with deleted contacts: a vacuous check otherwise"
    assert stored() == live_before, "after the first run PostgreSQL holds exactly the live contacts"

    gone = sandbox.mutate(delete_contacts=1)["deleted_contacts"][0]
    assert gone in live_before
    tap_into_postgres(tap_config, catalog_path, target_config, tmp_path / "tap-2.jsonl", target)
    assert stored() == live_before - {gone}, f"the deleted contact {gone} is still in PostgreSQL, or another went"
