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
    let output = std::process::Command::new(common::BIN)
        .args(args)
        .output()
        .unwrap();
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).to_string();
    (
        output.status.code().unwrap_or(-1),
        text(&output.stdout),
        text(&output.stderr),
    )
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
