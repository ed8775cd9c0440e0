//! Singer mode: discover, selection, SCHEMA/RECORD/STATE, Meltano's state
//! shapes, and the config file rewritten when the refresh token rotates.
// These tests run the connector binary's `sandbox` subcommand.
#![cfg(feature = "sandbox")]

mod common;

use std::collections::BTreeSet;

use common::{run, write_json, Run, Sandbox};
use serde_json::{json, Value};

/// Contacts the sandbox changes between the two syncs.
const CHANGED_CONTACTS: usize = 4;

/// Unchanged contacts the second sync may read again in the 5-minute overlap
/// before its saved cursor: a generous bound, as the sandbox's contacts were
/// last updated at random over a year.
const OVERLAP_SLACK: usize = 10;

fn singer(args: &[&str]) -> Run {
    run(args)
}

/// Output that is not one message per line (`--about`).
fn raw(args: &[&str]) -> (i32, String, String) {
    common::run_raw(args)
}

fn discover(dir: &std::path::Path, config: &Value) -> Value {
    let path = write_json(dir, "config.json", config);
    let state = write_json(dir, "ignored-state.json", &json!({}));
    // Meltano passes --state along with --discover.
    let output = std::process::Command::new(common::BIN)
        .args([
            "--config",
            path.to_str().unwrap(),
            "--discover",
            "--state",
            state.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the catalog is one JSON document")
}

#[test]
fn discover_prints_a_singer_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = discover(
        dir.path(),
        &json!({"credentials": {"auth_type": "access_token", "access_token": "t"}}),
    );
    let contacts = &catalog["streams"][0];
    assert_eq!(contacts["tap_stream_id"], "contacts");
    assert_eq!(contacts["key_properties"], json!(["contact_id"]));
    assert_eq!(contacts["replication_key"], "updated_at");
    assert_eq!(contacts["replication_method"], "INCREMENTAL");
    let top = &contacts["metadata"][0];
    assert_eq!(top["breadcrumb"], json!([]));
    assert_eq!(
        top["metadata"]["table-key-properties"],
        json!(["contact_id"])
    );
    assert_eq!(
        top["metadata"]["valid-replication-keys"],
        json!(["updated_at"])
    );
    let inclusion = |property: &str| {
        contacts["metadata"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["breadcrumb"] == json!(["properties", property]))
            .map(|m| m["metadata"]["inclusion"].clone())
            .unwrap()
    };
    assert_eq!(inclusion("contact_id"), "automatic");
    assert_eq!(inclusion("updated_at"), "automatic");
    assert_eq!(inclusion("first_name"), "available");
}

#[test]
fn sync_honours_selection_and_resumes_from_meltano_state() {
    // 600 contacts: two pages. 20 requests/s on both sides: quick syncs.
    let sandbox = Sandbox::start(&["--contacts", "600", "--rps", "20"]);
    let dir = tempfile::tempdir().unwrap();
    let mut config = sandbox.config.clone();
    config["requests_per_second"] = 20.into();
    let mut catalog = discover(dir.path(), &config);
    for stream in catalog["streams"].as_array_mut().unwrap() {
        let name = stream["tap_stream_id"].as_str().unwrap().to_string();
        for entry in stream["metadata"].as_array_mut().unwrap() {
            if entry["breadcrumb"] == json!([]) {
                entry["metadata"]["selected"] = json!(name == "contacts" || name == "segments");
            }
            if entry["breadcrumb"] == json!(["properties", "notes"]) {
                entry["metadata"]["selected"] = json!(false);
            }
        }
    }
    let config_path = write_json(dir.path(), "config.json", &config);
    let catalog_path = write_json(dir.path(), "catalog.json", &catalog);
    let first = singer(&[
        "--config",
        config_path.to_str().unwrap(),
        "--properties",
        catalog_path.to_str().unwrap(),
    ]);
    assert_eq!(first.code, 0, "{}", first.stderr);

    // Only the selected streams, a SCHEMA before records, no deselected property.
    let streams: BTreeSet<&str> = first
        .messages
        .iter()
        .filter_map(|m| m["stream"].as_str())
        .collect();
    assert_eq!(streams, BTreeSet::from(["contacts", "segments"]));
    let first_schema = first
        .messages
        .iter()
        .position(|m| m["type"] == "SCHEMA" && m["stream"] == "contacts")
        .unwrap();
    let first_record = first
        .messages
        .iter()
        .position(|m| m["type"] == "RECORD" && m["stream"] == "contacts")
        .unwrap();
    assert!(first_schema < first_record);
    assert!(first.messages[first_schema]["schema"]["properties"]
        .get("notes")
        .is_none());
    let contacts = first.singer_records("contacts");
    assert_eq!(contacts.len(), sandbox.expected_counts()["contacts"]);
    assert!(contacts
        .iter()
        .all(|m| m["record"].get("notes").is_none() && m["time_extracted"].is_string()));
    assert!(contacts
        .iter()
        .any(|m| m["record"]["phone_numbers"].is_array()));
    assert!(first
        .messages
        .iter()
        .all(|m| ["SCHEMA", "RECORD", "STATE"].contains(&m["type"].as_str().unwrap())));

    // The rotated refresh token was written back to the config file.
    let rewritten: Value =
        serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
    assert_eq!(
        rewritten["credentials"]["refresh_token"],
        sandbox.state()["current_refresh_token"]
    );
    assert_eq!(rewritten["requests_per_second"], 20, "other keys untouched");
    assert!(first.stderr.contains("rotated"));
    assert!(!first
        .stderr
        .contains(rewritten["credentials"]["refresh_token"].as_str().unwrap()));

    // Meltano hands back the inner state object of the last STATE message.
    let last_state = first
        .messages
        .iter()
        .rev()
        .find(|m| m["type"] == "STATE")
        .unwrap();
    let bookmark = &last_state["value"]["bookmarks"]["contacts"];
    assert_eq!(bookmark["replication_key"], "updated_at");
    assert!(bookmark["replication_key_value"].is_string());
    let state_path = write_json(dir.path(), "state.json", &last_state["value"]);
    let changed = sandbox.control("mutate", json!({"contacts": CHANGED_CONTACTS}));
    let second = singer(&[
        "--config",
        config_path.to_str().unwrap(),
        "--catalog",
        catalog_path.to_str().unwrap(),
        "--state",
        state_path.to_str().unwrap(),
    ]);
    assert_eq!(second.code, 0, "{}", second.stderr);
    let ids: BTreeSet<String> = second
        .singer_records("contacts")
        .iter()
        .map(|m| m["record"]["contact_id"].to_string())
        .collect();
    let changed: BTreeSet<String> = changed["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(Value::to_string)
        .collect();
    assert!(ids.is_superset(&changed));
    assert!(
        ids.len() < CHANGED_CONTACTS + OVERLAP_SLACK,
        "only the changes and the boundary overlap: {}",
        ids.len()
    );
}

#[test]
fn about_and_bad_invocations() {
    let (code, stdout, _) = raw(&["--about", "--format", "json"]);
    assert_eq!(code, 0);
    let info: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        info["capabilities"],
        json!(["catalog", "discover", "state", "about"])
    );
    assert!(info["settings"]["properties"]["credentials"].is_object());
    let (_, markdown, _) = raw(&["--about", "--format", "markdown"]);
    assert!(markdown.starts_with("# tap-constant-contact"));

    let dir = tempfile::tempdir().unwrap();
    let config = write_json(
        dir.path(),
        "config.json",
        &json!({"credentials": {"auth_type": "oauth2.0"}}),
    );
    let (code, stdout, stderr) = raw(&["--config", config.to_str().unwrap(), "--discover"]);
    assert_eq!(code, 1);
    assert!(stdout.is_empty());
    assert!(stderr.contains("client_id"), "{stderr}");
    let (code, _, stderr) = raw(&["--config", config.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(stderr.contains("--discover"), "{stderr}");
}

/// State that is accepted but odd is named on stderr and the sync goes on:
/// an empty state file reads everything; a bookmark of a stream the tap
/// does not have is carried on, unused. An Airbyte state list is no Singer
/// state: refused by name.
#[test]
fn odd_states_are_named_on_stderr() {
    let sandbox = Sandbox::start(&["--contacts", "60"]);
    let dir = tempfile::tempdir().unwrap();
    let mut catalog = discover(dir.path(), &sandbox.config);
    for stream in catalog["streams"].as_array_mut().unwrap() {
        let name = stream["tap_stream_id"].as_str().unwrap().to_string();
        stream["metadata"][0]["metadata"]["selected"] = json!(name == "contacts");
    }
    let config = write_json(dir.path(), "config.json", &sandbox.config);
    let catalog = write_json(dir.path(), "catalog.json", &catalog);
    let state = dir.path().join("state.json");
    let sync = || {
        singer(&[
            "--config",
            config.to_str().unwrap(),
            "--catalog",
            catalog.to_str().unwrap(),
            "--state",
            state.to_str().unwrap(),
        ])
    };

    std::fs::write(&state, "\n").unwrap();
    let first = sync();
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(
        first.singer_records("contacts").len(),
        sandbox.expected_counts()["contacts"]
    );
    assert!(
        first.stderr.contains("WARNING state file") && first.stderr.contains("is empty"),
        "{}",
        first.stderr
    );

    let mut last = first
        .messages
        .iter()
        .rev()
        .find(|m| m["type"] == "STATE")
        .unwrap()["value"]
        .clone();
    last["bookmarks"]["contatcs"] = json!({"replication_key_value": "2025-01-01T00:00:00Z"});
    std::fs::write(&state, last.to_string()).unwrap();
    let second = sync();
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert!(
        second
            .stderr
            .contains("WARNING state: bookmark of stream \"contatcs\""),
        "{}",
        second.stderr
    );
    assert!(!second.stderr.contains("is empty"), "{}", second.stderr);
    let carried = second
        .messages
        .iter()
        .rev()
        .find(|m| m["type"] == "STATE")
        .unwrap();
    assert!(
        carried["value"]["bookmarks"]["contatcs"].is_object(),
        "carried on"
    );

    let airbyte = json!([{"type": "STREAM", "stream": {
        "stream_descriptor": {"name": "contacts"}, "stream_state": {}}}]);
    std::fs::write(&state, airbyte.to_string()).unwrap();
    let third = sync();
    assert_eq!(third.code, 1);
    assert!(
        third.stderr.contains("CRITICAL") && third.stderr.contains("bookmarks"),
        "{}",
        third.stderr
    );
    assert!(third.messages.is_empty());
}

/// A Singer sync of `contacts` alone from files in `dir`: the discovered
/// catalog with only `contacts` selected (incrementally, or as FULL_TABLE),
/// and the config file the tap rewrites when the refresh token rotates.
struct ContactsTap {
    dir: tempfile::TempDir,
    config: std::path::PathBuf,
    incremental: std::path::PathBuf,
    full_table: std::path::PathBuf,
}

impl ContactsTap {
    fn new(config: &Value) -> ContactsTap {
        let dir = tempfile::tempdir().unwrap();
        let mut catalog = discover(dir.path(), config);
        for stream in catalog["streams"].as_array_mut().unwrap() {
            let name = stream["tap_stream_id"].as_str().unwrap().to_string();
            stream["metadata"][0]["metadata"]["selected"] = json!(name == "contacts");
        }
        let incremental = write_json(dir.path(), "catalog.json", &catalog);
        for stream in catalog["streams"].as_array_mut().unwrap() {
            stream["metadata"][0]["metadata"]["replication-method"] = json!("FULL_TABLE");
        }
        let full_table = write_json(dir.path(), "full-table.json", &catalog);
        let config = write_json(dir.path(), "config.json", config);
        ContactsTap {
            dir,
            config,
            incremental,
            full_table,
        }
    }

    fn args<'a>(&'a self, catalog: &'a std::path::Path) -> Vec<&'a str> {
        vec![
            "--config",
            self.config.to_str().unwrap(),
            "--catalog",
            catalog.to_str().unwrap(),
        ]
    }

    /// An incremental sync from `state` (what Meltano hands back: the last
    /// STATE message's value).
    fn sync(&self, state: Option<&Value>) -> Run {
        let state_path = state.map(|s| write_json(self.dir.path(), "state.json", s));
        let mut args = self.args(&self.incremental);
        if let Some(path) = &state_path {
            args.extend(["--state", path.to_str().unwrap()]);
        }
        let run = singer(&args);
        assert_eq!(run.code, 0, "{}", run.stderr);
        run
    }

    /// Every contact as the API holds it now.
    fn truth(&self) -> std::collections::BTreeMap<String, Value> {
        let run = singer(&self.args(&self.full_table));
        assert_eq!(run.code, 0, "{}", run.stderr);
        delivered(&[&run])
    }
}

/// The value of the last STATE message of a Singer run: what Meltano
/// stores and hands to the next run.
fn last_singer_state(run: &Run) -> Value {
    run.messages
        .iter()
        .rev()
        .find(|m| m["type"] == "STATE")
        .map(|m| m["value"].clone())
        .expect("a STATE message")
}

/// The last record of each contact over `runs`, by `contact_id`.
fn delivered(runs: &[&Run]) -> std::collections::BTreeMap<String, Value> {
    let mut latest = std::collections::BTreeMap::new();
    for run in runs {
        for message in run.singer_records("contacts") {
            let record = &message["record"];
            latest.insert(record["contact_id"].to_string(), record.clone());
        }
    }
    latest
}

/// Under Meltano, every kind of change to a contact arrives as it does
/// under Airbyte: personal details and unsubscribes with the next
/// incremental sync; re-subscribes, list-membership changes and deletions
/// (which leave `updated_at` alone) with the sync that reconciles once
/// `contacts_reconcile_days` have passed since the last full read, which the
/// Singer bookmark keeps beside `replication_key_value`, as the Airbyte
/// state does.
#[test]
fn singer_state_reconciles_and_every_kind_of_change_arrives() {
    const EACH: usize = 3;
    const RECONCILE_DAYS: i64 = 7;
    let sandbox = Sandbox::start(&["--contacts", "300", "--rps", "20"]);
    let mut config = sandbox.config.clone();
    config["requests_per_second"] = json!(20);
    config["contacts_reconcile_days"] = json!(RECONCILE_DAYS);
    let tap = ContactsTap::new(&config);
    let first = tap.sync(None);
    assert_eq!(
        first.singer_records("contacts").len(),
        sandbox.expected_counts()["contacts"]
    );
    let state = last_singer_state(&first);
    let bookmark = &state["bookmarks"]["contacts"];

    // The bookmark holds what the Airbyte state of the same read holds,
    // its cursor as the standard replication_key_value.
    let dir = tempfile::tempdir().unwrap();
    let mut airbyte_config = sandbox.live_config();
    airbyte_config["requests_per_second"] = json!(20);
    let airbyte = common::read(
        dir.path(),
        &airbyte_config,
        &common::catalog(&["contacts"], true),
        None,
    );
    airbyte.assert_ok();
    let airbyte_state = airbyte.last_state("contacts");
    let mut airbyte_keys: BTreeSet<String> =
        airbyte_state.as_object().unwrap().keys().cloned().collect();
    assert!(airbyte_keys.remove("cursor"));
    airbyte_keys.extend(["replication_key".into(), "replication_key_value".into()]);
    let singer_keys: BTreeSet<String> = bookmark.as_object().unwrap().keys().cloned().collect();
    assert_eq!(singer_keys, airbyte_keys, "{bookmark} vs {airbyte_state}");
    assert_eq!(bookmark["replication_key"], "updated_at");
    assert!(bookmark["replication_key_value"].is_string(), "{bookmark}");
    assert!(bookmark["reconciled_at"].is_string(), "{bookmark}");
    assert!(bookmark["last_run_started"].is_string(), "{bookmark}");
    std::fs::write(
        &tap.config,
        serde_json::to_string(&{
            let mut c = sandbox.live_config();
            c["requests_per_second"] = json!(20);
            c["contacts_reconcile_days"] = json!(RECONCILE_DAYS);
            c
        })
        .unwrap(),
    )
    .unwrap();

    let response = sandbox.control(
        "mutate",
        json!({"contacts": EACH, "unsubscribe_contacts": EACH, "resubscribe_contacts": EACH,
               "list_membership_changes": EACH, "delete_contacts": EACH}),
    );
    let ids = |field: &str| -> Vec<String> {
        let ids: Vec<String> = response[field]
            .as_array()
            .unwrap()
            .iter()
            .map(Value::to_string)
            .collect();
        assert_eq!(ids.len(), EACH, "{field}: the sandbox made each change");
        ids
    };
    let (details, unsubscribed) = (ids("contacts"), ids("unsubscribed_contacts"));
    let (resubscribed, moved, deleted) = (
        ids("resubscribed_contacts"),
        ids("list_changed_contacts"),
        ids("deleted_contacts"),
    );
    let truth = tap.truth();
    for id in &deleted {
        assert!(truth[id]["deleted_at"].is_string(), "{id} is deleted");
    }

    // The next sync is incremental: personal details and unsubscribes.
    let second = tap.sync(Some(&state));
    let after_second = delivered(&[&first, &second]);
    for id in details.iter().chain(&unsubscribed) {
        assert_eq!(after_second[id], truth[id], "{id}");
    }
    assert!(
        second.singer_records("contacts").len() < EACH * 5,
        "incremental: {}",
        second.singer_records("contacts").len()
    );
    let state = last_singer_state(&second);
    assert_eq!(
        state["bookmarks"]["contacts"]["reconciled_at"], bookmark["reconciled_at"],
        "an incremental sync leaves the reconcile time alone"
    );

    // A week later (the bookmark's reconcile time moved back), the sync
    // reconciles: every kind of change has arrived.
    let mut week_later = state.clone();
    let long_ago = chrono::Utc::now() - chrono::Duration::days(RECONCILE_DAYS + 1);
    week_later["bookmarks"]["contacts"]["reconciled_at"] = json!(long_ago.to_rfc3339());
    let third = tap.sync(Some(&week_later));
    assert!(third.stderr.contains("reconcile"), "{}", third.stderr);
    assert_eq!(
        third.singer_records("contacts").len(),
        sandbox.expected_counts()["contacts"],
        "the reconciling sync read every contact"
    );
    let after_third = delivered(&[&first, &second, &third]);
    for (kind, changed) in [
        ("details", &details),
        ("unsubscribed", &unsubscribed),
        ("re-subscribed", &resubscribed),
        ("moved between lists", &moved),
        ("deleted", &deleted),
    ] {
        for id in changed {
            assert_eq!(after_third[id], truth[id], "{kind}: {id}");
        }
    }
    // The changes only the reconciling sync can see were not in the second.
    for id in resubscribed.iter().chain(&moved).chain(&deleted) {
        assert_ne!(
            after_second[id], truth[id],
            "{id} changed before the reconcile"
        );
    }
    // It restarted the clock: the next sync is incremental again.
    let state = last_singer_state(&third);
    let reconciled = common::time(&state["bookmarks"]["contacts"]["reconciled_at"]);
    assert!(reconciled > long_ago + chrono::Duration::days(RECONCILE_DAYS));
    let fourth = tap.sync(Some(&state));
    assert!(
        fourth.singer_records("contacts").len() < EACH * 5,
        "{}",
        fourth.singer_records("contacts").len()
    );
}

/// A Singer sync killed in the middle of a read split into windows resumes
/// from its last STATE (the bookmark keeps the unfinished windows) and
/// delivers every contact, without reading again the pages it checkpointed.
#[test]
fn killed_singer_sync_resumes_its_windows_without_loss() {
    // 6000 contacts: twelve pages, enough to split into windows; 100 ms a
    // request, slow enough to kill the sync between checkpoints.
    let sandbox = Sandbox::start(&["--contacts", "6000", "--latency-ms", "100"]);
    let tap = ContactsTap::new(&sandbox.config);
    let mut states = 0;
    let cache = tap.dir.path().join("tokens.json");
    let killed = common::run_until(&tap.args(&tap.incremental), &cache, |line| {
        states += usize::from(line.starts_with("{\"type\":\"STATE\""));
        states == 3
    });
    let state = last_singer_state(&killed);
    let bookmark = &state["bookmarks"]["contacts"];
    assert!(
        bookmark["resume"]["windows"].is_array(),
        "the bookmark keeps the unfinished windows: {bookmark}"
    );
    std::fs::write(&tap.config, sandbox.live_config().to_string()).unwrap();
    let resumed = tap.sync(Some(&state));
    assert!(
        resumed.stderr.contains("resum"),
        "the sync said it resumes: {}",
        resumed.stderr
    );
    let all = delivered(&[&killed, &resumed]);
    let total = sandbox.expected_counts()["contacts"];
    assert_eq!(all.len(), total, "nothing lost");
    assert!(
        resumed.singer_records("contacts").len() < total,
        "the resumed sync did not start over"
    );
    assert!(last_singer_state(&resumed)["bookmarks"]["contacts"]
        .get("resume")
        .is_none());
}
