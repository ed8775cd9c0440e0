//! The opt-in `contacts_export` stream: a bulk export job read as a CSV file.
// These tests run the connector binary's `sandbox` subcommand.
#![cfg(feature = "sandbox")]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{api_requests, catalog, read, read_counted, Run, Sandbox};
use serde_json::{json, Value};

const STREAM: &str = "contacts_export";

fn schema() -> Value {
    let path = format!("{}/schemas/{STREAM}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn an_export_reads_every_live_contact_in_a_handful_of_requests() {
    let sandbox = Sandbox::start(&["--contacts", "1200", "--rps", "50"]);
    let mut config = sandbox.config.clone();
    config["requests_per_second"] = 50.into();
    let dir = tempfile::tempdir().unwrap();
    let contacts = read(dir.path(), &config, &catalog(&["contacts"], false), None);
    contacts.assert_ok();
    let config = contacts.next_config(&config);
    let bulk_before = sandbox.expected_counts()["bulk_activities"];

    let (run, spent) = read_counted(
        &sandbox,
        dir.path(),
        &config,
        &catalog(&[STREAM], false),
        None,
    );
    run.assert_ok();
    let records = run.records(STREAM);
    let expected = sandbox.expected_counts();
    assert_eq!(records.len(), expected[STREAM]);

    // The live contacts of `contacts`, by contact_id.
    let live: BTreeSet<String> = contacts
        .records("contacts")
        .iter()
        .filter(|c| c["deleted_at"].is_null())
        .map(|c| c["contact_id"].as_str().unwrap().to_string())
        .collect();
    let exported: BTreeSet<String> = records
        .iter()
        .map(|r| r["contact_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(exported.len(), records.len(), "one record per contact");
    assert_eq!(exported, live);

    // Every column of the file is read into a field (none left out), the
    // mapping is logged once, and the headers were not the field names.
    let warnings = log_lines(&run, "WARN");
    assert!(warnings.is_empty(), "{warnings:?}");
    let mappings: Vec<String> = log_lines(&run, "INFO")
        .into_iter()
        .filter(|l| l.contains("columns, as read"))
        .collect();
    assert_eq!(mappings.len(), 1, "{mappings:?}");
    assert!(
        mappings[0].contains("\"Email Address\" → email_address"),
        "{}",
        mappings[0]
    );
    assert!(mappings[0].contains("→ custom field"), "{}", mappings[0]);

    // Every record validates, and the fields are the schema's.
    let schema = schema();
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap();
    let fields: BTreeSet<&String> = schema["properties"].as_object().unwrap().keys().collect();
    for record in &records {
        let errors: Vec<String> = validator
            .iter_errors(record)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{errors:?}\n{record}");
        let keys: BTreeSet<&String> = record.as_object().unwrap().keys().collect();
        assert_eq!(keys, fields);
    }
    // Typed as the schema says: integers and RFC 3339 moments.
    assert!(records.iter().all(|r| r["birthday_month"].is_u64()));
    let by_id = |id: &str| {
        contacts
            .records("contacts")
            .into_iter()
            .find(|c| c["contact_id"] == id)
            .unwrap()
            .clone()
    };
    let first = records[0];
    let contact = by_id(first["contact_id"].as_str().unwrap());
    assert_eq!(first["email_address"], contact["email_address"]["address"]);
    assert_eq!(
        common::time(&first["updated_at"]),
        common::time(&contact["updated_at"])
    );
    // What the export guide adds: custom fields (as `contacts` has them),
    // notes, the SMS fields.
    let as_set = |fields: &Value| -> BTreeSet<(String, String)> {
        fields
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["custom_field_id"].as_str().unwrap().to_string(),
                    f["value"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    for record in &records {
        let contact = by_id(record["contact_id"].as_str().unwrap());
        assert_eq!(
            as_set(&record["custom_fields"]),
            as_set(&contact["custom_fields"])
        );
        let notes: Vec<&str> = contact["notes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["content"].as_str().unwrap())
            .collect();
        assert_eq!(record["notes"], notes.join("\n"));
        // The sandbox's `/contacts` has no SMS channel to compare with (it
        // refuses `include=sms_channel`, as the contract's enum does).
        assert!(record["sms_number"].is_string());
        assert!(record["sms_status"].is_string());
        common::time(&record["sms_consent_date"]); // a time
        assert!(record["source_name"].is_string());
    }

    // A handful of requests whatever the size: the custom fields, the POST,
    // the polls, the file.
    let api = api_requests(&spent);
    assert_eq!(api.get("GET /v3/contact_custom_fields"), Some(&1));
    assert_eq!(api.get("POST /v3/activities/contact_exports"), Some(&1));
    assert_eq!(
        api.get("GET /v3/contact_exports/{file_export_id}"),
        Some(&1)
    );
    let polls = api["GET /v3/activities/{activity_id}"];
    assert!((1..=3).contains(&polls), "{api:?}");
    assert!(api.values().sum::<usize>() <= 6, "{api:?}");

    // The export is a bulk activity like any other.
    assert_eq!(expected["bulk_activities"], bulk_before + 1);
    // Full refresh: a checkpoint whose counts add up to the records.
    assert_eq!(run.checkpointed_records(STREAM), records.len());
    assert_eq!(
        run.stream_statuses(STREAM),
        ["STARTED", "RUNNING", "COMPLETE"]
    );
}

/// The messages of the run's LOG lines at `level`.
fn log_lines(run: &Run, level: &str) -> Vec<String> {
    run.of_type("LOG")
        .into_iter()
        .filter(|m| m["log"]["level"] == level)
        .map(|m| m["log"]["message"].as_str().unwrap().to_string())
        .collect()
}

/// Records by contact_id, without the keys that do not compare.
fn by_contact(run: &Run) -> BTreeMap<String, Value> {
    run.records(STREAM)
        .into_iter()
        .map(|r| (r["contact_id"].as_str().unwrap().to_string(), r.clone()))
        .collect()
}

/// Header names are not documented: other spellings of the same columns
/// give the same records.
#[test]
fn headers_are_read_by_meaning_not_by_one_spelling() {
    let sandbox = Sandbox::start(&["--contacts", "80", "--rps", "50"]);
    let dir = tempfile::tempdir().unwrap();
    let plain = read(
        dir.path(),
        &sandbox.config,
        &catalog(&[STREAM], false),
        None,
    );
    plain.assert_ok();
    let config = plain.next_config(&sandbox.config);
    sandbox.control(
        "exports",
        json!({"headers": {
            "contact_id": "ID",
            "email_address": "E-mail address",
            "first_name": "FIRST_NAME",
            "zip": "Zip/Postal Code",
            "created_at": "created",
            "sms_number": "SMS phone",
            "Shoe size": "SHOE SIZE",
            "Membership level": "membership_level",
        }}),
    );
    let respelled = read(dir.path(), &config, &catalog(&[STREAM], false), None);
    respelled.assert_ok();
    assert_eq!(by_contact(&respelled), by_contact(&plain));
    assert!(log_lines(&respelled, "WARN").is_empty());
}

/// A file without the contact id fails the stream, naming the column and
/// the headers it has; the mapping is logged all the same.
#[test]
fn a_file_without_the_contact_id_fails_naming_it() {
    let sandbox = Sandbox::start(&["--contacts", "40", "--rps", "50"]);
    sandbox.control(
        "exports",
        json!({"headers": {"contact_id": null, "email_address": "Email"}}),
    );
    let dir = tempfile::tempdir().unwrap();
    let run = read(
        dir.path(),
        &sandbox.config,
        &catalog(&[STREAM], false),
        None,
    );
    assert_eq!(run.code, 1);
    let errors = run.errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    let message = errors[0]["message"].as_str().unwrap();
    assert!(message.contains("no contact_id column"), "{message}");
    assert!(
        message.contains("its headers: \"First Name\", \"Last Name\", \"Email\""),
        "{message}"
    );
    assert!(run.records(STREAM).is_empty());
    let mapping = log_lines(&run, "INFO")
        .into_iter()
        .find(|l| l.contains("columns, as read"))
        .expect("the mapping is logged");
    assert!(mapping.contains("\"Email\" → email_address"), "{mapping}");
}

/// With `custom_fields_as_columns` the export gets the same `cf_` columns
/// as `contacts`, filled from its `custom_fields`, and the read asks for the
/// custom fields once for both.
#[test]
fn custom_fields_as_columns_fill_the_export_too() {
    let sandbox = Sandbox::start(&["--contacts", "60", "--rps", "50"]);
    let dir = tempfile::tempdir().unwrap();
    let mut config = sandbox.config.clone();
    config["requests_per_second"] = 50.into();
    config["custom_fields_as_columns"] = true.into();
    let path = common::write_json(dir.path(), "config.json", &config);
    let discovered = common::run(&["discover", "--config", path.to_str().unwrap()]);
    assert_eq!(discovered.code, 0, "{}", discovered.stderr);
    let config = discovered.next_config(&config);
    let streams = discovered.of_type("CATALOG")[0]["catalog"]["streams"]
        .as_array()
        .unwrap()
        .clone();
    let schema_of = |name: &str| streams.iter().find(|s| s["name"] == name).unwrap().clone();
    let columns = |stream: &Value| -> BTreeMap<String, String> {
        stream["json_schema"]["properties"]
            .as_object()
            .unwrap()
            .iter()
            .filter_map(|(name, p)| {
                Some((
                    p.get("x-custom-field-id")?.as_str()?.to_string(),
                    name.clone(),
                ))
            })
            .collect()
    };
    let (export, contacts) = (schema_of(STREAM), schema_of("contacts"));
    let by_id = columns(&export);
    assert!(!by_id.is_empty());
    assert_eq!(by_id, columns(&contacts));

    let entries: Vec<Value> = [&export, &contacts]
        .iter()
        .map(|s| json!({"stream": s, "sync_mode": "full_refresh", "destination_sync_mode": "overwrite"}))
        .collect();
    let catalog = json!({ "streams": entries });
    let (run, spent) = read_counted(&sandbox, dir.path(), &config, &catalog, None);
    run.assert_ok();
    assert_eq!(
        api_requests(&spent).get("GET /v3/contact_custom_fields"),
        Some(&1)
    );
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&export["json_schema"])
        .unwrap();
    let mut filled = 0;
    for record in run.records(STREAM) {
        assert!(validator.is_valid(record), "{record}");
        for entry in record["custom_fields"].as_array().unwrap() {
            let column = &by_id[entry["custom_field_id"].as_str().unwrap()];
            assert!(record[column].is_string(), "{column}: {record}");
            filled += 1;
        }
    }
    assert!(filled > 0);
}

#[test]
fn a_failed_export_names_the_activity_and_fails_the_stream() {
    let sandbox = Sandbox::start(&["--contacts", "40"]);
    sandbox.control("exports", json!({"fail": "failed"}));
    let dir = tempfile::tempdir().unwrap();
    let run = read(
        dir.path(),
        &sandbox.config,
        &catalog(&[STREAM, "contact_tags"], false),
        None,
    );
    assert_eq!(run.code, 1);
    let errors = run.errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    let message = errors[0]["message"].as_str().unwrap();
    assert!(
        message.contains("contact export activity") && message.contains("ended failed"),
        "{message}"
    );
    assert!(
        message.contains("The export could not be completed"),
        "{message}"
    );
    assert_eq!(errors[0]["stream_descriptor"]["name"], STREAM);
    assert!(run.records(STREAM).is_empty());
    assert_eq!(run.stream_statuses(STREAM), ["STARTED", "INCOMPLETE"]);
    // The other stream completes.
    assert_eq!(
        run.records("contact_tags").len(),
        sandbox.expected_counts()["contact_tags"]
    );
}

/// A read of the export whose first `POST` answers with `fault` (the fields
/// of a sandbox fault), with the requests it spent.
fn read_with_export_failing_once(mut fault: Value) -> (Run, BTreeMap<String, usize>) {
    let sandbox = Sandbox::start(&["--contacts", "40"]);
    fault["path_prefix"] = "/v3/activities/contact_exports".into();
    fault["count"] = 1.into();
    sandbox.control("faults", fault);
    let dir = tempfile::tempdir().unwrap();
    read_counted(
        &sandbox,
        dir.path(),
        &sandbox.config,
        &catalog(&[STREAM], false),
        None,
    )
}

#[test]
fn a_403_names_the_contacts_write_privilege() {
    let (run, spent) = read_with_export_failing_once(json!({"status": 403}));
    assert_eq!(run.code, 1);
    let errors = run.errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["failure_type"], "config_error");
    let message = errors[0]["message"].as_str().unwrap();
    assert!(message.contains("`contacts:write`"), "{message}");
    assert!(message.contains("403"), "{message}");
    assert_eq!(run.stream_statuses(STREAM), ["STARTED", "INCOMPLETE"]);
    // Refused, so not sent again.
    assert_eq!(
        api_requests(&spent).get("POST /v3/activities/contact_exports"),
        Some(&1)
    );
}

#[test]
fn a_post_is_not_sent_again_after_a_server_error() {
    let (run, spent) = read_with_export_failing_once(json!({"status": 503, "retry_after": 0}));
    assert_eq!(run.code, 1);
    let message = run.errors()[0]["message"].as_str().unwrap().to_string();
    assert!(
        message.contains("503") && message.contains("not sent again"),
        "{message}"
    );
    assert_eq!(
        api_requests(&spent).get("POST /v3/activities/contact_exports"),
        Some(&1)
    );
}

#[test]
fn the_stream_is_offered_but_not_selected_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::write_json(
        dir.path(),
        "config.json",
        &json!({"credentials": {"auth_type": "access_token", "access_token": "x"}}),
    );
    let output = std::process::Command::new(common::BIN)
        .args(["--config", config.to_str().unwrap(), "--discover"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let catalog: Value = serde_json::from_slice(&output.stdout).unwrap();
    let entry = catalog["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["tap_stream_id"] == STREAM)
        .expect("discovered");
    assert_eq!(
        entry["metadata"][0]["metadata"]["selected-by-default"],
        false
    );
    assert_eq!(entry["key_properties"], json!(["contact_id"]));
    assert_eq!(entry["replication_method"], "FULL_TABLE");
}
