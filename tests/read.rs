//! Full reads of every stream against the sandbox.
// These tests run the connector binary's `sandbox` subcommand.
#![cfg(feature = "sandbox")]

mod common;

use std::collections::BTreeMap;

use common::{all_streams, catalog, read, Sandbox};
use serde_json::Value;

fn schema_of(stream: &str) -> Value {
    let path = format!("{}/schemas/{stream}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn every_stream_reads_completely_and_validates() {
    let sandbox = Sandbox::start(&["--contacts", "1200", "--rps", "50"]);
    let mut config = sandbox.config.clone();
    config["requests_per_second"] = 50.into();
    let dir = tempfile::tempdir().unwrap();
    // Contact reports read only the contacts the config names.
    let (contact_ids, mut config) = sandbox.contact_ids(dir.path(), &config, 3);
    config["contact_ids"] = contact_ids.clone().into();
    let names = all_streams();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let run = read(dir.path(), &config, &catalog(&names, false), None);
    run.assert_ok();

    let mut expected = sandbox.expected_counts();
    expected.extend(sandbox.contact_report_counts(&contact_ids));
    for name in &names {
        let records = run.records(name);
        assert_eq!(
            Some(&records.len()),
            expected.get(*name),
            "{name}: records read vs the sandbox's count"
        );
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .build(&schema_of(name))
            .unwrap();
        for record in &records {
            let errors: Vec<String> = validator
                .iter_errors(record)
                .map(|e| e.to_string())
                .collect();
            assert!(errors.is_empty(), "{name}: {errors:?}\n{record}");
        }
    }

    // Contacts come with deleted ones and every sub-resource.
    let contacts = run.records("contacts");
    assert!(contacts.iter().any(|c| !c["deleted_at"].is_null()));
    for key in [
        "custom_fields",
        "list_memberships",
        "phone_numbers",
        "street_addresses",
        "taggings",
        "notes",
        "sms_channel",
    ] {
        assert!(
            contacts
                .iter()
                .any(|c| c.get(key).is_some_and(|v| !v.is_null())),
            "{key}"
        );
    }
    assert!(run
        .records("contact_lists")
        .iter()
        .all(|l| l["membership_count"].is_number()));
    assert!(run.records("account_summary")[0]["physical_address"].is_object());

    // A checkpoint after every page, whose counts add up to the records.
    let mut counted: BTreeMap<String, f64> = BTreeMap::new();
    for state in run.of_type("STATE") {
        let name = state["state"]["stream"]["stream_descriptor"]["name"]
            .as_str()
            .unwrap();
        *counted.entry(name.to_string()).or_default() += state["state"]["sourceStats"]
            ["recordCount"]
            .as_f64()
            .unwrap();
    }
    for name in &names {
        assert_eq!(
            counted[*name] as usize,
            run.records(name).len(),
            "{name} recordCount"
        );
    }
    let contact_states = run
        .of_type("STATE")
        .into_iter()
        .filter(|s| s["state"]["stream"]["stream_descriptor"]["name"] == "contacts")
        .count();
    assert_eq!(
        contact_states,
        1200_usize.div_ceil(500),
        "one checkpoint per contacts page"
    );

    // Stream statuses in order for each stream.
    for name in &names {
        let statuses: Vec<&str> = run
            .of_type("TRACE")
            .into_iter()
            .filter(|t| {
                t["trace"]["type"] == "STREAM_STATUS"
                    && t["trace"]["stream_status"]["stream_descriptor"]["name"] == *name
            })
            .map(|t| t["trace"]["stream_status"]["status"].as_str().unwrap())
            .collect();
        assert_eq!(statuses, ["STARTED", "RUNNING", "COMPLETE"], "{name}");
    }
}

#[test]
fn only_selected_streams_are_read() {
    let sandbox = Sandbox::start(&["--contacts", "50"]);
    let dir = tempfile::tempdir().unwrap();
    let run = read(
        dir.path(),
        &sandbox.config,
        &catalog(&["contact_tags"], false),
        None,
    );
    run.assert_ok();
    let streams: std::collections::BTreeSet<&str> = run
        .of_type("RECORD")
        .iter()
        .map(|m| m["record"]["stream"].as_str().unwrap())
        .collect();
    assert_eq!(streams.into_iter().collect::<Vec<_>>(), ["contact_tags"]);
    let requests = sandbox.state()["request_counts"].clone();
    assert!(
        requests.get("GET /v3/contacts").is_none_or(|n| n == 0),
        "{requests}"
    );
}
