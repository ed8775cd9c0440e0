//! Deletions arrive as deletions: a deleted contact (the API keeps it, with
//! `deleted_at` set) carries `_ab_cdc_deleted_at` in Airbyte mode and
//! `_sdc_deleted_at` in Singer mode, each declared in that protocol's
//! schema of `contacts` only, so that a destination that honours it (append
//! + deduped; a Singer target with hard deletes) removes the row. Records go
//!   out raw (as the API's text) or rebuilt (custom-field columns, Singer
//!   property selection): both ways are marked.
// These tests run the connector binary's `sandbox` subcommand.
#![cfg(feature = "sandbox")]

mod common;

use std::collections::BTreeSet;

use common::{catalog, read, run, write_json, Run, Sandbox};
use serde_json::{json, Value};

const AIRBYTE: &str = "_ab_cdc_deleted_at";
const SINGER: &str = "_sdc_deleted_at";

/// Contacts the sandbox deletes between two reads.
const DELETED: usize = 3;

/// The marker a deleted contact must carry: its `deleted_at` date as
/// midnight UTC.
fn expected_marker(record: &Value) -> Value {
    match record["deleted_at"].as_str() {
        Some(date) => json!(format!("{date}T00:00:00Z")),
        None => Value::Null,
    }
}

/// Every record of `records` carries `marker` exactly when it is deleted,
/// and never the other protocol's; returns the deleted ones' ids.
fn check_marked(records: &[&Value], marker: &str, other: &str) -> BTreeSet<String> {
    let mut deleted = BTreeSet::new();
    for record in records {
        let expected = expected_marker(record);
        if expected.is_null() {
            assert!(record.get(marker).is_none(), "a live contact: {record}");
        } else {
            assert_eq!(record[marker], expected, "{record}");
            deleted.insert(record["contact_id"].to_string());
        }
        assert!(record.get(other).is_none(), "{record}");
    }
    deleted
}

fn discovered_schema(run: &Run, stream: &str) -> Value {
    run.of_type("CATALOG")[0]["catalog"]["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == stream)
        .map(|s| s["json_schema"].clone())
        .unwrap()
}

#[test]
fn airbyte_marks_deleted_contacts_with_ab_cdc_deleted_at() {
    // About 5% of the sandbox's contacts are deleted from the start.
    let sandbox = Sandbox::start(&["--contacts", "300", "--rps", "20"]);
    let dir = tempfile::tempdir().unwrap();
    let mut config = sandbox.config.clone();
    config["requests_per_second"] = json!(20);

    let config_path = write_json(dir.path(), "config.json", &config);
    let discovered = run(&["discover", "--config", config_path.to_str().unwrap()]);
    let schema = discovered_schema(&discovered, "contacts");
    assert_eq!(
        schema["properties"][AIRBYTE],
        json!({"type": ["null", "string"], "format": "date-time"})
    );
    assert!(schema["properties"].get(SINGER).is_none());
    for stream in discovered.of_type("CATALOG")[0]["catalog"]["streams"]
        .as_array()
        .unwrap()
    {
        if stream["name"] != "contacts" {
            assert!(
                stream["json_schema"]["properties"].get(AIRBYTE).is_none(),
                "{}: only contacts are deleted as rows",
                stream["name"]
            );
        }
    }
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap();

    // An incremental read of the records as the API sent them (the raw path).
    let streams = catalog(&["contacts"], true);
    let first = read(dir.path(), &config, &streams, None);
    first.assert_ok();
    let records = first.records("contacts");
    assert_eq!(records.len(), sandbox.expected_counts()["contacts"]);
    let deleted_before = check_marked(&records, AIRBYTE, SINGER);
    assert!(
        !deleted_before.is_empty(),
        "the sandbox has deleted contacts"
    );
    for record in &records {
        let errors: Vec<String> = validator
            .iter_errors(record)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{errors:?}\n{record}");
    }

    // Contacts deleted now arrive marked with the run that reconciles.
    let response = sandbox.control("mutate", json!({"delete_contacts": DELETED}));
    let newly: BTreeSet<String> = response["deleted_contacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(Value::to_string)
        .collect();
    assert_eq!(newly.len(), DELETED);
    let mut states = first.state_messages();
    let long_ago = (chrono::Utc::now() - chrono::Duration::days(400)).to_rfc3339();
    for state in states.as_array_mut().unwrap() {
        state["stream"]["stream_state"]["reconciled_at"] = json!(long_ago);
    }
    config = first.next_config(&config);
    let second = read(dir.path(), &config, &streams, Some(&states));
    second.assert_ok();
    let deleted_after = check_marked(&second.records("contacts"), AIRBYTE, SINGER);
    assert!(deleted_after.is_superset(&newly), "{deleted_after:?}");
    assert_eq!(deleted_after.len(), deleted_before.len() + DELETED);

    // Records rebuilt on their way out (custom-field columns) are marked
    // the same way.
    config = second.next_config(&config);
    config["custom_fields_as_columns"] = json!(true);
    let config_path = write_json(dir.path(), "config.json", &config);
    let discovered = run(&["discover", "--config", config_path.to_str().unwrap()]);
    config = discovered.next_config(&config);
    let contacts = json!({"name": "contacts", "json_schema": discovered_schema(&discovered, "contacts"),
        "supported_sync_modes": ["full_refresh"]});
    let streams = json!({"streams": [{"stream": contacts, "sync_mode": "full_refresh",
        "destination_sync_mode": "overwrite"}]});
    let columns = read(dir.path(), &config, &streams, None);
    columns.assert_ok();
    let records = columns.records("contacts");
    assert!(records
        .iter()
        .any(|r| r.as_object().unwrap().keys().any(|k| k.starts_with("cf_"))));
    assert_eq!(check_marked(&records, AIRBYTE, SINGER), deleted_after);
}

/// The discovered Singer catalog of `config`, with only `contacts`
/// selected and, when `without` is given, that property deselected.
fn singer_catalog(config: &std::path::Path, without: Option<&str>) -> Value {
    let output = std::process::Command::new(common::BIN)
        .args(["--config", config.to_str().unwrap(), "--discover"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let mut catalog: Value = serde_json::from_slice(&output.stdout).unwrap();
    for stream in catalog["streams"].as_array_mut().unwrap() {
        let name = stream["tap_stream_id"].as_str().unwrap().to_string();
        if name != "contacts" {
            assert!(
                stream["schema"]["properties"].get(SINGER).is_none(),
                "{name}"
            );
        }
        for entry in stream["metadata"].as_array_mut().unwrap() {
            if entry["breadcrumb"] == json!([]) {
                entry["metadata"]["selected"] = json!(name == "contacts");
            }
            if let Some(property) = without {
                if entry["breadcrumb"] == json!(["properties", property]) {
                    entry["metadata"]["selected"] = json!(false);
                }
            }
        }
    }
    catalog
}

#[test]
fn singer_marks_deleted_contacts_with_sdc_deleted_at() {
    let sandbox = Sandbox::start(&["--contacts", "300", "--rps", "20"]);
    let dir = tempfile::tempdir().unwrap();
    let mut config = sandbox.config.clone();
    config["requests_per_second"] = json!(20);
    let config_path = write_json(dir.path(), "config.json", &config);

    let catalog = singer_catalog(&config_path, None);
    let contacts = catalog["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["tap_stream_id"] == "contacts")
        .unwrap();
    assert_eq!(
        contacts["schema"]["properties"][SINGER],
        json!({"type": ["null", "string"], "format": "date-time"})
    );
    assert!(contacts["schema"]["properties"].get(AIRBYTE).is_none());
    let inclusion = contacts["metadata"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["breadcrumb"] == json!(["properties", SINGER]))
        .map(|m| m["metadata"]["inclusion"].clone());
    assert_eq!(inclusion, Some(json!("automatic")));

    // Every property (records go out raw), then one deselected (records
    // rebuilt without it): deleted contacts are marked both ways, and the
    // SCHEMA message declares the marker both ways.
    let mut deleted_sets = Vec::new();
    for without in [None, Some("notes")] {
        let catalog_path = write_json(
            dir.path(),
            "catalog.json",
            &singer_catalog(&config_path, without),
        );
        let sync = run(&[
            "--config",
            config_path.to_str().unwrap(),
            "--catalog",
            catalog_path.to_str().unwrap(),
        ]);
        assert_eq!(sync.code, 0, "{}", sync.stderr);
        let schema = sync
            .messages
            .iter()
            .find(|m| m["type"] == "SCHEMA" && m["stream"] == "contacts")
            .unwrap();
        assert_eq!(
            schema["schema"]["properties"][SINGER]["format"], "date-time",
            "{without:?}"
        );
        let records: Vec<&Value> = sync
            .singer_records("contacts")
            .into_iter()
            .map(|m| &m["record"])
            .collect();
        assert_eq!(records.len(), sandbox.expected_counts()["contacts"]);
        if let Some(property) = without {
            assert!(records.iter().all(|r| r.get(property).is_none()));
        }
        let deleted = check_marked(&records, SINGER, AIRBYTE);
        assert!(!deleted.is_empty(), "the sandbox has deleted contacts");
        deleted_sets.push(deleted);
    }
    assert_eq!(deleted_sets[0], deleted_sets[1]);
}
