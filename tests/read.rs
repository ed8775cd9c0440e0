//! Full reads of every stream against the sandbox.
// These tests run the connector binary's `sandbox` subcommand.
#![cfg(feature = "sandbox")]

mod common;

use common::{all_streams, api_requests, catalog, read, read_counted, Sandbox};
use serde_json::Value;

/// Contacts the connector asks for per page: the API's largest page.
const CONTACTS_PAGE: usize = 500;

fn schema_of(stream: &str) -> Value {
    let path = format!("{}/schemas/{stream}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn every_stream_reads_completely_and_validates() {
    // 1200 contacts: three pages, the last one partial. 50 requests/s on both
    // sides: the rate limit does not slow the test.
    let sandbox = Sandbox::start(&["--contacts", "1200", "--rps", "50"]);
    let mut config = sandbox.config.clone();
    config["requests_per_second"] = 50.into();
    let dir = tempfile::tempdir().unwrap();
    // Contact reports read only the contacts the config names: a few.
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
    ] {
        assert!(
            contacts
                .iter()
                .any(|c| c.get(key).is_some_and(|v| !v.is_null())),
            "{key}"
        );
    }
    // The sandbox refuses `include=sms_channel`, as the contract's enum does: the
    // read goes on without it, with one warning that says how to stop asking.
    let refusals: Vec<&Value> = run
        .of_type("LOG")
        .into_iter()
        .filter(|m| {
            m["log"]["message"]
                .as_str()
                .is_some_and(|t| t.contains("contacts_include_sms_channel"))
        })
        .collect();
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert_eq!(refusals[0]["log"]["level"], "WARN");
    assert!(contacts.iter().all(|c| c.get("sms_channel").is_none()));
    assert!(run
        .records("contact_lists")
        .iter()
        .all(|l| l["membership_count"].is_number()));
    assert!(run.records("account_summary")[0]["physical_address"].is_object());

    // A checkpoint after every page, whose counts add up to the records.
    for name in &names {
        assert!(run.state_count(name) > 0, "{name} has no checkpoint");
        assert_eq!(
            run.checkpointed_records(name),
            run.records(name).len(),
            "{name} recordCount"
        );
    }
    assert_eq!(
        run.state_count("contacts"),
        expected["contacts"].div_ceil(CONTACTS_PAGE),
        "one checkpoint per contacts page"
    );

    // Stream statuses in order for each stream.
    for name in &names {
        assert_eq!(
            run.stream_statuses(name),
            ["STARTED", "RUNNING", "COMPLETE"],
            "{name}"
        );
    }
}

#[test]
fn only_selected_streams_are_read() {
    let sandbox = Sandbox::start(&["--contacts", "50"]);
    let dir = tempfile::tempdir().unwrap();
    let (run, spent) = read_counted(
        &sandbox,
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
    assert_eq!(
        api_requests(&spent).keys().collect::<Vec<_>>(),
        ["GET /v3/contact_tags"],
        "{spent:?}"
    );
}
