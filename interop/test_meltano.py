"""Item 8: Meltano runs the binary as the Singer tap `tap-constant-contact`
(plugin definition from the repository's meltano.yml, `executable` pointed at
the built binary) into `target-jsonl` twice; between the runs the sandbox
changes some records, and the second run starts from the state Meltano stored
and brings only the changed records (plus the documented boundary overlap).
A third run, once the stored bookmark says `contacts` last reconciled more
than `contacts_reconcile_days` ago, reads every contact again and brings the
changes no change filter shows: re-subscriptions, list moves, deletions."""

from __future__ import annotations

import copy
import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from support import (
    INCREMENTAL,
    REPO,
    AirbyteConfigStore,
    binary,
    incremental_problems,
    parse_ts,
    require_env,
    require_executable,
    run,
    run_airbyte,
    singer_discover,
    tool_env,
    write_json,
)

TAP = "tap-constant-contact"
STATE_ID = f"dev:{TAP}-to-target-jsonl"
# target-jsonl and its dependencies, pinned (Meltano installs them in its own
# venv inside the throwaway project).
TARGET_JSONL_PIP_URL = (
    "target-jsonl==0.1.4 singer-python==5.8.0 jsonschema==2.6.0 adjust-precision-for-schema==0.3.3 "
    "backoff==1.8.0 ciso8601==2.4.1 python-dateutil==4.0.0 pytz==2018.4 simplejson==3.11.1 tzdata==2026.6"
)


def tap_definition() -> dict:
    """The extractor entry of the repository's example meltano.yml."""
    path = REPO / "meltano.yml"
    if not path.is_file():
        pytest.fail(f"{path} (the Meltano plugin definition of the tap) does not exist")
    project = yaml.safe_load(path.read_text())
    found = [p for p in (project.get("plugins") or {}).get("extractors") or [] if p.get("name") == TAP]
    if len(found) != 1:
        pytest.fail(f"{path} has no single extractor named {TAP}")
    tap = copy.deepcopy(found[0])
    assert tap.get("namespace") == "tap_constant_contact", tap.get("namespace")
    missing = {"catalog", "discover", "state"} - set(tap.get("capabilities") or [])
    assert not missing, f"{TAP} lacks capabilities {missing} that `meltano run` with state needs"
    return tap


class Project:
    def __init__(self, root: Path, meltano: Path):
        self.root = root
        self.meltano = meltano
        self.env = tool_env(PATH=f"{meltano.parent}{os.pathsep}{os.environ.get('PATH', '')}")

    def __call__(self, *args: str, check: bool = True, timeout: float = 600, **env: str):
        e = dict(self.env)
        e.update(env)
        r = run([self.meltano, *args], cwd=self.root, env=e, timeout=timeout, check=False)
        if check and r.returncode != 0:
            pytest.fail(f"meltano {' '.join(args)} failed\n{r.describe(8000)}")
        return r


def full_table_streams(tmp_path: Path, config: dict) -> set[str]:
    catalog = singer_discover(write_json(tmp_path / "discover-config.json", config))
    return {s["tap_stream_id"] for s in catalog["streams"] if s.get("replication_method") == "FULL_TABLE"}


def read_jsonl_dir(d: Path) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for f in sorted(d.glob("*.jsonl")):
        out[f.stem] = [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
    return out


def test_meltano_run_twice_resumes_from_stored_state(sandbox, tmp_path: Path):
    meltano = require_executable(require_env("INTEROP_MELTANO", "the meltano executable of the Meltano venv"), "meltano")

    # Meltano writes a fresh config file for every run from meltano.yml, so a
    # rotated refresh token would be lost: give it an access token (and its
    # expiry) that needs no refresh, obtained from a first Airbyte-mode run.
    store = AirbyteConfigStore(sandbox.config, tmp_path)
    run_airbyte(store, "check")
    tap_config = store.config
    assert tap_config["credentials"].get("access_token"), tap_config["credentials"].keys()

    tap = tap_definition()
    tap["executable"] = str(binary())
    tap.pop("pip_url", None)
    tap["config"] = tap_config
    root = tmp_path / "meltano-project"
    root.mkdir()
    (root / "meltano.yml").write_text(
        yaml.safe_dump(
            {
                "default_environment": "dev",
                "project_id": "source-constant-contact-interop",
                "send_anonymous_usage_stats": False,
                "environments": [{"name": "dev"}],
                "plugins": {
                    "extractors": [tap],
                    "loaders": [
                        {
                            "name": "target-jsonl",
                            "namespace": "target_jsonl",
                            "pip_url": TARGET_JSONL_PIP_URL,
                            "executable": "target-jsonl",
                            "settings": [
                                {"name": "destination_path", "kind": "string"},
                                {"name": "do_timestamp_file", "kind": "boolean"},
                            ],
                            "config": {"destination_path": "output", "do_timestamp_file": False},
                        }
                    ],
                },
            },
            sort_keys=False,
        )
    )
    project = Project(root, meltano)
    project("install", timeout=900)

    token_requests = sandbox.state()["token_requests"]

    # --- first run: everything
    expected1 = sandbox.read_counts()
    out1 = root / "out1"
    out1.mkdir()
    project("run", TAP, "target-jsonl", TARGET_JSONL_DESTINATION_PATH=str(out1))
    got1 = read_jsonl_dir(out1)
    counts1 = {k: len(v) for k, v in got1.items()}
    assert counts1 == expected1, f"first meltano run: {counts1} != the sandbox's {expected1}"

    state1 = json.loads(project("state", "get", STATE_ID).stdout.strip() or "null")
    assert state1, f"meltano stored no state under {STATE_ID}"
    bookmarks1 = state1["singer_state"]["bookmarks"]
    for name, (cursor, _) in INCREMENTAL.items():
        b = bookmarks1.get(name) or {}
        assert b.get("replication_key") == cursor, f"{name}: bookmark {b}"
        newest = max(parse_ts(r[cursor]) for r in got1[name])
        assert parse_ts(b["replication_key_value"]) >= newest, f"{name}: bookmark {b} is before the newest record {newest}"

    # --- change some records, second run from the stored state
    changed = sandbox.mutate(contacts=5, campaigns=2, delete_contacts=2)
    expected2 = sandbox.read_counts()
    out2 = root / "out2"
    out2.mkdir()
    project("run", TAP, "target-jsonl", TARGET_JSONL_DESTINATION_PATH=str(out2))
    got2 = read_jsonl_dir(out2)
    cursors = {name: bookmarks1[name]["replication_key_value"] for name in INCREMENTAL}
    problems = incremental_problems(got1, got2, cursors, changed, expected2, full_table_streams(tmp_path, tap_config))
    assert not problems, "second meltano run:\n" + "\n".join(problems)

    state2 = json.loads(project("state", "get", STATE_ID).stdout.strip())
    for name, (cursor, _) in INCREMENTAL.items():
        before = bookmarks1[name]["replication_key_value"]
        after = state2["singer_state"]["bookmarks"][name]["replication_key_value"]
        newest = max(parse_ts(r[cursor]) for r in got2[name])
        assert parse_ts(after) >= max(parse_ts(before), newest), f"{name}: bookmark {before} -> {after}, newest record {newest}"

    # --- a week later: the run that reconciles brings what no change filter shows
    contacts_bookmark = state2["singer_state"]["bookmarks"]["contacts"]
    assert contacts_bookmark.get("reconciled_at"), f"the contacts bookmark keeps when it last reconciled: {contacts_bookmark}"
    each = 2
    later = sandbox.mutate(resubscribe_contacts=each, list_membership_changes=each, delete_contacts=each)
    state3 = copy.deepcopy(state2)
    week_ago = (datetime.now(timezone.utc) - timedelta(days=8)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    state3["singer_state"]["bookmarks"]["contacts"]["reconciled_at"] = week_ago
    project("state", "set", "--force", STATE_ID, json.dumps(state3))
    out3 = root / "out3"
    out3.mkdir()
    project("run", TAP, "target-jsonl", TARGET_JSONL_DESTINATION_PATH=str(out3))
    got3 = read_jsonl_dir(out3)
    assert len(got3["contacts"]) == sandbox.read_counts()["contacts"], "the reconciling run reads every contact"
    before = {c["contact_id"]: c for c in got1["contacts"] + got2["contacts"]}
    now = {c["contact_id"]: c for c in got3["contacts"]}
    for kind, field in (("resubscribed_contacts", "email_address"), ("list_changed_contacts", "list_memberships"),
                        ("deleted_contacts", "deleted_at")):
        ids = later[kind]
        assert len(ids) == each, f"{kind}: {ids}"
        for cid in ids:
            assert now[cid].get(field) != before[cid].get(field), f"{kind} {cid}: {field} still {before[cid].get(field)!r}"
    for cid in later["deleted_contacts"]:
        assert now[cid].get("_sdc_deleted_at"), f"deleted contact {cid} arrived without _sdc_deleted_at: {now[cid]}"
    state4 = json.loads(project("state", "get", STATE_ID).stdout.strip())
    reconciled = state4["singer_state"]["bookmarks"]["contacts"]["reconciled_at"]
    assert parse_ts(reconciled) > parse_ts(week_ago) + timedelta(days=7), f"the reconcile clock restarted: {reconciled}"

    assert sandbox.state()["token_requests"] == token_requests, "the tap refreshed its token although the config held a valid access token"


def test_meltano_settings_match_the_spec():
    """Every config field of the connector's spec is a setting of the Meltano
    plugin definition (credentials.* for the fields of each credentials
    variant), and no setting names a field the spec does not have."""
    r = run([binary(), "spec"])
    spec = json.loads(r.lines[0])["spec"]["connectionSpecification"]
    fields = set()
    for name, prop in spec["properties"].items():
        if name == "credentials":
            for variant in prop.get("oneOf") or [prop]:
                fields |= {f"credentials.{p}" for p in variant.get("properties", {})}
        else:
            fields.add(name)
    settings = {s["name"] for s in tap_definition().get("settings") or []}
    assert fields == settings, (
        f"spec fields without a Meltano setting: {sorted(fields - settings)}; "
        f"Meltano settings the spec lacks: {sorted(settings - fields)}"
    )
