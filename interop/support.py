"""Shared helpers for the interop tests: the connector binary, the sandbox it
embeds, running the connector in Airbyte and Singer mode, and the checks that
several tests make on what it prints.

Nothing here skips: a missing tool, binary or variable is a test failure.
"""

from __future__ import annotations

import copy
import json
import os
import shlex
import subprocess
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import urlparse

import pytest

REPO = Path(__file__).resolve().parent.parent
INTEROP = Path(__file__).resolve().parent

# The connector re-reads records updated up to this long before the saved
# cursor on purpose (src/engine.rs CURSOR_OVERLAP), so an incremental read
# brings the changed records plus those boundary records.
CURSOR_OVERLAP = timedelta(minutes=5)

# Incremental streams whose incremental read after `POST /__sandbox/mutate`
# the tests predict exactly (the sandbox's contract), with their cursor field
# and primary key. Other incremental streams get weaker checks.
# Offered by discover but not selected by default: a bulk export job, and the
# social streams (a request each run for a few records).
OPT_IN_STREAMS = {"contacts_export", "social_profiles", "social_connections", "social_hashtag_groups"}
INCREMENTAL = {"contacts": ("updated_at", "contact_id"), "email_campaigns": ("updated_at", "campaign_id")}


def require_env(name: str, what: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        pytest.fail(f"environment variable {name} is not set: it must name {what} (.ci/interop.sh sets it)")
    return value


def require_executable(path: str | Path, what: str) -> Path:
    p = Path(path)
    if not p.is_file() or not os.access(p, os.X_OK):
        pytest.fail(f"{what} not found or not executable at {p}")
    return p


def binary() -> Path:
    default = REPO / "target" / "release" / "source-constant-contact"
    return require_executable(os.environ.get("INTEROP_BINARY") or default, "the connector binary (cargo build --release)")


def tool_env(**extra: str) -> dict[str, str]:
    """The environment for third-party tools: never phone home, and keep logs
    out of the repository (PYTHONDONTWRITEBYTECODE from the caller)."""
    env = dict(os.environ)
    env.update(
        {
            "DO_NOT_TRACK": "1",
            "AIRBYTE_OFFLINE_MODE": "1",
            "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
            "MELTANO_DISABLE_TRACKING": "true",
            "MELTANO_CLI_LOG_LEVEL": env.get("MELTANO_CLI_LOG_LEVEL", "info"),
            "NO_COLOR": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


# --------------------------------------------------------------------------- sandbox


class Sandbox:
    """`source-constant-contact sandbox` in a child process."""

    def __init__(self, workdir: Path, *, contacts: int = 1200, seed: int = 7, rps: int | None = None,
                 report_contacts: int = 3, extra: Iterable[str] = ()):
        # The sandbox allows 4 requests per second per token by default, as
        # the real API does, and reads of every stream take minutes at that
        # pace: the tests raise the limit on both sides (INTEROP_RPS).
        rps = rps or int(os.environ.get("INTEROP_RPS") or 50)
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.stdout_path = workdir / "sandbox.stdout"
        self.stderr_path = workdir / "sandbox.stderr"
        cmd = [str(binary()), "sandbox", "--port", "0", "--contacts", str(contacts), "--seed", str(seed), "--rps", str(rps), *extra]
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=open(self.stdout_path, "w"),
            stderr=open(self.stderr_path, "w"),
        )
        deadline = time.monotonic() + 30
        first = ""
        while time.monotonic() < deadline:
            text = self.stdout_path.read_text()
            if "\n" in text:
                first = text.split("\n", 1)[0]
                break
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        if not first:
            self.close()
            pytest.fail(
                f"sandbox printed no first line within 30 s: {shlex.join(cmd)} (exit {self.proc.returncode}); "
                f"stderr: {self.stderr_path.read_text()[-2000:]}"
            )
        try:
            info = json.loads(first)
            self.base_url: str = info["base_url"]
            self.token_url: str = info["token_url"]
            self.config: dict[str, Any] = info["config"]
            self.config["requests_per_second"] = rps
        except (ValueError, KeyError, TypeError) as e:
            self.close()
            pytest.fail(f"sandbox's first stdout line is not {{base_url, token_url, config}} ({e}): {first!r}")
        u = urlparse(self.base_url)
        self.origin = f"{u.scheme}://{u.netloc}"
        # The contact report streams read only the contacts named in the
        # config's contact_ids: name a few, so that those streams have
        # records to count too.
        if report_contacts:
            self.config["contact_ids"] = self.first_contact_ids(report_contacts)

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.origin + path, data=data, method=method, headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    def state(self) -> dict[str, Any]:
        return self._call("GET", "/__sandbox/state")

    def expected_counts(self) -> dict[str, int]:
        """The sandbox's counts per stream, with those of the contact report
        streams for the config's contact_ids (read from start_date to now)."""
        counts = dict(self.state()["expected_counts"])
        ids = self.config.get("contact_ids")
        if ids:
            query = urllib.parse.urlencode({
                "contact_ids": ",".join(ids),
                "start": self.config["start_date"],
                "end": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            })
            reports = self._call("GET", f"/__sandbox/contact_reports?{query}")["expected_counts"]
            clash = set(reports) & set(counts)
            assert not clash, f"the sandbox counts {clash} twice"
            counts.update(reports)
        return counts

    def read_counts(self) -> dict[str, int]:
        """`expected_counts` of the streams a sync selects by default: the
        opt-in ones (a bulk export job, which also adds an activity) left out."""
        return {k: v for k, v in self.expected_counts().items() if k not in OPT_IN_STREAMS}

    def first_contact_ids(self, n: int) -> list[str]:
        """Ids of n contacts, read from the API with a token of our own; the
        rotated refresh token goes back into self.config."""
        creds = self.config["credentials"]
        form = urllib.parse.urlencode({
            "grant_type": "refresh_token",
            "refresh_token": creds["refresh_token"],
            "client_id": creds["client_id"],
            "client_secret": creds["client_secret"],
        }).encode()
        req = urllib.request.Request(self.token_url, data=form, method="POST",
                                     headers={"content-type": "application/x-www-form-urlencoded"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            token = json.loads(resp.read())
        creds["refresh_token"] = token["refresh_token"]
        req = urllib.request.Request(f"{self.base_url}/contacts?limit={n}",
                                     headers={"authorization": f"Bearer {token['access_token']}"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            contacts = json.loads(resp.read())["contacts"]
        ids = [c["contact_id"] for c in contacts][:n]
        assert len(ids) == n, f"asked the sandbox for {n} contacts, got {ids}"
        return ids

    def mutate(self, contacts: int = 0, campaigns: int = 0, delete_contacts: int = 0, **more: int) -> dict[str, list[str]]:
        """`POST /__sandbox/mutate`; `more` takes the other kinds of change by
        their names there (`resubscribe_contacts`, `list_membership_changes`, …)."""
        body = {"contacts": contacts, "campaigns": campaigns, "delete_contacts": delete_contacts, **more}
        return self._call("POST", "/__sandbox/mutate", body)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --------------------------------------------------------------------------- running things


@dataclass
class Run:
    cmd: list[str]
    returncode: int
    stdout: str
    stderr: str
    lines: list[str] = field(default_factory=list)

    def describe(self, limit: int = 4000) -> str:
        return (
            f"command: {shlex.join(self.cmd)}\nexit code: {self.returncode}\n"
            f"--- stdout (last {limit} chars) ---\n{self.stdout[-limit:]}\n"
            f"--- stderr (last {limit} chars) ---\n{self.stderr[-limit:]}"
        )

    def json_lines(self) -> list[dict[str, Any]]:
        """Every stdout line as a JSON object; any other line fails the test."""
        out = []
        for i, line in enumerate(self.lines, 1):
            try:
                value = json.loads(line)
            except ValueError as e:
                pytest.fail(f"stdout line {i} is not JSON ({e}): {line[:500]!r}\n{self.describe(1500)}")
            if not isinstance(value, dict):
                pytest.fail(f"stdout line {i} is not a JSON object: {line[:500]!r}")
            out.append(value)
        return out


def run(cmd: list[str | Path], *, timeout: float = 600, cwd: Path | None = None, env: dict[str, str] | None = None,
        input: str | None = None, check: bool = True) -> Run:
    cmd = [str(c) for c in cmd]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env,
                           input=input, stdin=None if input is not None else subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"timed out after {timeout} s: {shlex.join(cmd)}\nstdout: {(e.stdout or b'')[-3000:]!r}\nstderr: {(e.stderr or b'')[-3000:]!r}")
    # Every line but a final newline's empty tail counts: an empty or
    # whitespace line is still a line the protocols do not allow.
    body = p.stdout[:-1] if p.stdout.endswith("\n") else p.stdout
    r = Run(cmd, p.returncode, p.stdout, p.stderr, body.split("\n") if body else [])
    if check and p.returncode != 0:
        pytest.fail(f"command failed\n{r.describe()}")
    return r


# --------------------------------------------------------------------------- Airbyte mode

PAYLOAD_KEY = {
    "RECORD": "record",
    "STATE": "state",
    "LOG": "log",
    "SPEC": "spec",
    "CONNECTION_STATUS": "connectionStatus",
    "CATALOG": "catalog",
    "TRACE": "trace",
    "CONTROL": "control",
}


class AirbyteConfigStore:
    """What the Airbyte platform does with a source's config: it persists the
    config of every CONNECTOR_CONFIG control message and hands the latest one to
    the next run (the sandbox rotates refresh tokens on every refresh)."""

    def __init__(self, config: dict[str, Any], workdir: Path):
        self.config = json.loads(json.dumps(config))
        self.workdir = workdir
        self.updates = 0
        self.n = 0

    def path(self) -> Path:
        self.n += 1
        p = self.workdir / f"config-{self.n}.json"
        p.write_text(json.dumps(self.config, indent=2))
        return p

    def absorb(self, messages: list[dict[str, Any]]) -> None:
        for m in messages:
            if m.get("type") == "CONTROL" and (m.get("control") or {}).get("type") == "CONNECTOR_CONFIG":
                self.config = m["control"]["connectorConfig"]["config"]
                self.updates += 1


def airbyte_model_parser():
    """AirbyteMessage's JSON parser, whichever pydantic the package brings."""
    from airbyte_protocol.models import AirbyteMessage

    parse = getattr(AirbyteMessage, "model_validate_json", None) or AirbyteMessage.parse_raw
    return parse


def _unknown_keys(model: Any, raw: Any, path: str, out: list[str]) -> None:
    """Keys in `raw` that the protocol model does not define (the models accept
    them silently), recursing through nested models."""
    try:
        from pydantic import BaseModel
    except ImportError:  # pragma: no cover
        return
    if isinstance(model, BaseModel) and isinstance(raw, dict):
        fields = getattr(type(model), "model_fields", None) or getattr(type(model), "__fields__")
        if not fields:  # a free-form blob such as AirbyteStateBlob
            return
        by_alias = {}
        for name, f in fields.items():
            alias = getattr(f, "alias", None) or name
            by_alias[alias] = name
            by_alias.setdefault(name, name)
        for k, v in raw.items():
            if k not in by_alias:
                out.append(f"{path}.{k}")
                continue
            _unknown_keys(getattr(model, by_alias[k], None), v, f"{path}.{k}", out)
    elif isinstance(model, list) and isinstance(raw, list):
        for i, (m, r) in enumerate(zip(model, raw)):
            _unknown_keys(m, r, f"{path}[{i}]", out)
    elif hasattr(model, "__root__") and not isinstance(model, (str, int, float, bool)):
        _unknown_keys(getattr(model, "__root__"), raw, path, out)


def validate_airbyte_stdout(r: Run) -> list[dict[str, Any]]:
    """Every stdout line of an Airbyte-mode run is an AirbyteMessage the
    protocol models accept, whose type names the payload it carries; returns
    the messages as dicts."""
    parse = airbyte_model_parser()
    messages = r.json_lines()
    problems = []
    for i, (line, msg) in enumerate(zip(r.lines, messages), 1):
        try:
            model = parse(line)
        except Exception as e:  # pydantic.ValidationError, whichever major version
            problems.append(f"line {i}: not a valid AirbyteMessage: {e}\n    {line[:400]}")
            continue
        t = msg.get("type")
        key = PAYLOAD_KEY.get(t)
        if key is None or msg.get(key) is None:
            problems.append(f"line {i}: type {t!r} without its payload field {key!r}: {line[:300]}")
        others = [k for k in PAYLOAD_KEY.values() if k != key and k in msg]
        if others:
            problems.append(f"line {i}: type {t!r} also carries {others}: {line[:300]}")
        unknown: list[str] = []
        _unknown_keys(model, msg, "$", unknown)
        # record.data, catalog json_schema, spec connectionSpecification and
        # control config are free-form; the walk above does not enter them.
        if unknown:
            problems.append(f"line {i}: fields the Airbyte protocol does not define: {unknown}: {line[:300]}")
    if problems:
        pytest.fail(f"{len(problems)} Airbyte protocol violation(s) in {shlex.join(r.cmd)}:\n" + "\n".join(problems[:20]))
    return messages


def run_airbyte(store: AirbyteConfigStore, command: str, *, catalog: Path | None = None, state: Path | None = None,
                timeout: float = 600) -> tuple[Run, list[dict[str, Any]]]:
    cmd: list[str | Path] = [binary(), command, "--config", store.path()]
    if catalog is not None:
        cmd += ["--catalog", catalog]
    if state is not None:
        cmd += ["--state", state]
    r = run(cmd, timeout=timeout, check=False)
    messages = validate_airbyte_stdout(r)
    store.absorb(messages)
    errors = [m for m in messages if m["type"] == "TRACE" and m["trace"].get("type") == "ERROR"]
    if r.returncode != 0 or errors:
        pytest.fail(f"airbyte `{command}` failed: {[e['trace']['error'].get('message') for e in errors]}\n{r.describe()}")
    return r, messages


def configured_catalog(catalog: dict[str, Any], *, incremental: bool = True) -> dict[str, Any]:
    """A configured catalog with every stream but the opt-in ones, incremental
    where supported."""
    streams = []
    for s in catalog["streams"]:
        if s["name"] in OPT_IN_STREAMS:
            continue
        inc = incremental and "incremental" in s.get("supported_sync_modes", [])
        cs: dict[str, Any] = {
            "stream": s,
            "sync_mode": "incremental" if inc else "full_refresh",
            "destination_sync_mode": "append",
        }
        if inc:
            cs["cursor_field"] = s.get("default_cursor_field") or []
        if s.get("source_defined_primary_key"):
            cs["primary_key"] = s["source_defined_primary_key"]
        streams.append(cs)
    return {"streams": streams}


# --------------------------------------------------------------------------- records


def format_checker():
    """A format checker with every format jsonschema can check (uuid too, which
    Draft 7's own checker leaves out), refusing to run without a real
    date-time check."""
    from jsonschema import FormatChecker

    fc = FormatChecker()
    if "date-time" not in fc.checkers or fc.conforms("2024-02-30T25:61:00Z", "date-time") or fc.conforms("yesterday", "date-time"):
        pytest.fail("jsonschema does not check the date-time format: install rfc3339-validator")
    if fc.conforms("2024-13-01", "date") or fc.conforms("not-a-uuid", "uuid"):
        pytest.fail("jsonschema does not check the date or uuid format")
    return fc


def schema_formats(schema: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(schema, dict):
        if isinstance(schema.get("format"), str):
            found.add(schema["format"])
        for v in schema.values():
            found |= schema_formats(v)
    elif isinstance(schema, list):
        for v in schema:
            found |= schema_formats(v)
    return found


def schema_validators(schemas: dict[str, dict[str, Any]]):
    from jsonschema import Draft7Validator
    from jsonschema.validators import validator_for

    fc = format_checker()
    out = {}
    for name, schema in schemas.items():
        cls = validator_for(schema, default=Draft7Validator)
        try:
            cls.check_schema(schema)
        except Exception as e:
            pytest.fail(f"stream {name}: its schema is not a valid JSON Schema: {e}")
        unchecked = schema_formats(schema) - set(fc.checkers)
        if unchecked:
            pytest.fail(f"stream {name}: its schema uses formats no validator here checks: {sorted(unchecked)}")
        out[name] = cls(schema, format_checker=fc)
    return out


def check_records(records: Iterable[tuple[str, dict[str, Any]]], schemas: dict[str, dict[str, Any]]) -> int:
    """Validates each (stream, data) against its stream's schema with formats
    enforced; fails listing the first problems."""
    validators = schema_validators(schemas)
    problems: list[str] = []
    n = 0
    for stream, data in records:
        n += 1
        v = validators.get(stream)
        if v is None:
            problems.append(f"record of stream {stream!r}, which has no schema")
            continue
        for e in v.iter_errors(data):
            where = "/".join(str(p) for p in e.absolute_path)
            problems.append(f"{stream}: /{where}: {e.message} (schema rule {'/'.join(map(str, e.absolute_schema_path))})")
            if len(problems) > 200:
                break
    if problems:
        pytest.fail(f"{len(problems)} record(s) break their stream's schema:\n" + "\n".join(problems[:25]))
    return n


def parse_ts(value: str) -> datetime:
    v = value.strip()
    if v.endswith(("Z", "z")):
        v = v[:-1] + "+00:00"
    dt = datetime.fromisoformat(v)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt


def expected_incremental_ids(previous: list[dict[str, Any]], cursor_field: str, pk: str, saved_cursor: str,
                             changed: Iterable[str]) -> set[str]:
    """What an incremental read after `mutate` must bring: the changed records
    plus the earlier records within CURSOR_OVERLAP before the saved cursor."""
    floor = parse_ts(saved_cursor) - CURSOR_OVERLAP
    boundary = {r[pk] for r in previous if r.get(cursor_field) and parse_ts(r[cursor_field]) >= floor}
    return boundary | set(changed)


def incremental_problems(first: dict[str, list[dict[str, Any]]], second: dict[str, list[dict[str, Any]]],
                         cursors: dict[str, str], changed: dict[str, Any], expected: dict[str, int],
                         full_only: set[str]) -> list[str]:
    """What an incremental read (`second`) after a full one (`first`, which
    saved `cursors` for the INCREMENTAL streams) and `mutate` (`changed`)
    must bring: exactly the changed records and the overlap for the
    INCREMENTAL streams, children only of those campaigns for
    email_campaign_activities, every record (`expected` counts, read after
    the mutation) for full-refresh-only streams, and for the other incremental
    streams no more records than the stream holds."""
    problems = []
    want = {
        # Deletions leave updated_at alone, as on the real API: they arrive
        # with the periodic reconciling read, not here.
        "contacts": expected_incremental_ids(first.get("contacts", []), "updated_at", "contact_id", cursors["contacts"],
                                             changed["contacts"]),
        "email_campaigns": expected_incremental_ids(first.get("email_campaigns", []), "updated_at", "campaign_id",
                                                    cursors["email_campaigns"], changed["campaigns"]),
    }
    for name, (_, pk) in INCREMENTAL.items():
        ids = [r[pk] for r in second.get(name, [])]
        if set(ids) != want[name]:
            problems.append(f"incremental {name}: {diff_sets(want[name], set(ids))}")
        if len(ids) != len(set(ids)):
            problems.append(f"incremental {name}: a record came twice")
    for name, n in expected.items():
        got = len(second.get(name, []))
        if name in full_only and got != n:
            problems.append(f"full-refresh stream {name}: {got} records in the incremental run, the sandbox has {n}")
        elif name not in full_only and name not in INCREMENTAL and got > n:
            problems.append(f"incremental stream {name}: {got} records, more than the {n} it holds")
    if "email_campaign_activities" in expected and "email_campaign_activities" not in full_only:
        parents = {r.get("campaign_id") for r in second.get("email_campaign_activities", [])}
        stray = parents - want["email_campaigns"]
        if stray:
            problems.append(f"email_campaign_activities read again for unchanged campaigns {sorted(map(str, stray))[:5]}")
    return problems


def diff_sets(expected: set[str], got: set[str]) -> str:
    return f"missing {sorted(expected - got)[:10]} ({len(expected - got)}), unexpected {sorted(got - expected)[:10]} ({len(got - expected)})"


def write_json(path: Path, value: Any) -> Path:
    path.write_text(json.dumps(value, indent=2))
    return path


# --------------------------------------------------------------------------- Singer mode

SINGER_TYPES = {"SCHEMA", "RECORD", "STATE", "ACTIVATE_VERSION", "BATCH"}


@dataclass
class SingerRead:
    run: Run
    messages: list[dict[str, Any]]
    schemas: dict[str, dict[str, Any]]
    schema_messages: dict[str, dict[str, Any]]
    records: dict[str, list[dict[str, Any]]]
    last_state: dict[str, Any] | None


def singer_discover(config_path: Path, *extra: str | Path) -> dict[str, Any]:
    r = run([binary(), "--config", config_path, "--discover", *extra], check=False)
    if r.returncode != 0:
        pytest.fail(f"singer discover failed\n{r.describe()}")
    try:
        catalog = json.loads(r.stdout)
    except ValueError as e:
        pytest.fail(f"singer discover's stdout is not one JSON document ({e})\n{r.describe(1500)}")
    if not isinstance(catalog, dict) or not isinstance(catalog.get("streams"), list):
        pytest.fail(f"singer discover's output has no streams list: {r.stdout[:500]}")
    return catalog


def select_streams(catalog: dict[str, Any], selected: Iterable[str] | None = None) -> dict[str, Any]:
    """A copy of a Singer catalog with `selected` set on each stream's top
    metadata: true for `selected` (all but the opt-in streams when None),
    false for the rest."""
    out = copy.deepcopy(catalog)
    chosen = None if selected is None else set(selected)
    for s in out["streams"]:
        top = [m for m in s["metadata"] if m.get("breadcrumb") == []]
        assert len(top) == 1, f"{s.get('tap_stream_id')}: {len(top)} metadata entries with breadcrumb []"
        sid = s["tap_stream_id"]
        top[0]["metadata"]["selected"] = (chosen is None and sid not in OPT_IN_STREAMS) or (
            chosen is not None and sid in chosen
        )
    return out


def validate_singer_stdout(r: Run) -> SingerRead:
    """Every stdout line is a Singer message: SCHEMA before the RECORDs of its
    stream, RECORDs with an RFC 3339 time_extracted, STATE with a value."""
    messages = r.json_lines()
    problems: list[str] = []
    schemas: dict[str, dict[str, Any]] = {}
    schema_messages: dict[str, dict[str, Any]] = {}
    records: dict[str, list[dict[str, Any]]] = {}
    last_state = None
    for i, m in enumerate(messages, 1):
        t = m.get("type")
        if t not in SINGER_TYPES:
            problems.append(f"line {i}: not a Singer message type: {t!r}")
            continue
        if t == "SCHEMA":
            if not isinstance(m.get("stream"), str) or not isinstance(m.get("schema"), dict):
                problems.append(f"line {i}: SCHEMA without stream or schema")
                continue
            kp = m.get("key_properties")
            if not isinstance(kp, list) or not all(isinstance(k, str) and k in m["schema"].get("properties", {}) for k in kp):
                problems.append(f"line {i}: SCHEMA {m['stream']}: key_properties {kp!r} must list properties of the schema")
            bp = m.get("bookmark_properties")
            if bp is not None and (not isinstance(bp, list) or not all(k in m["schema"].get("properties", {}) for k in bp)):
                problems.append(f"line {i}: SCHEMA {m['stream']}: bookmark_properties {bp!r}")
            schemas[m["stream"]] = m["schema"]
            schema_messages[m["stream"]] = m
        elif t == "RECORD":
            s = m.get("stream")
            if s not in schemas:
                problems.append(f"line {i}: RECORD of stream {s!r} before its SCHEMA")
            if not isinstance(m.get("record"), dict):
                problems.append(f"line {i}: RECORD without a record object")
                continue
            te = m.get("time_extracted")
            try:
                if not isinstance(te, str) or parse_ts(te).tzinfo is None or "T" not in te:
                    raise ValueError(te)
            except ValueError:
                problems.append(f"line {i}: RECORD time_extracted {te!r} is not an RFC 3339 date-time")
            records.setdefault(s, []).append(m["record"])
        elif t == "STATE":
            if "value" not in m:
                problems.append(f"line {i}: STATE without value")
            last_state = m.get("value")
        extra = set(m) - {"type", "stream", "schema", "key_properties", "bookmark_properties", "record", "time_extracted", "value", "version"}
        if extra:
            problems.append(f"line {i}: {t} with fields Singer does not define: {sorted(extra)}")
    if problems:
        pytest.fail(f"{len(problems)} Singer protocol problem(s) in {shlex.join(r.cmd)}:\n" + "\n".join(problems[:20]))
    return SingerRead(r, messages, schemas, schema_messages, records, last_state)


def singer_read(config_path: Path, catalog_path: Path, state_path: Path | None = None, *, flag: str = "--catalog") -> SingerRead:
    cmd: list[str | Path] = [binary(), "--config", config_path, flag, catalog_path]
    if state_path is not None:
        cmd += ["--state", state_path]
    r = run(cmd, check=False)
    if r.returncode != 0:
        pytest.fail(f"singer read failed\n{r.describe()}")
    return validate_singer_stdout(r)
