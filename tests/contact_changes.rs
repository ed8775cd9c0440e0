//! Every kind of change to a contact reaches the destination: personal
//! details and unsubscribes with the next incremental run, re-subscribes,
//! list-membership changes and deletions (which leave `updated_at` alone)
//! with the next run that reconciles.
// These tests run the connector binary's `sandbox` subcommand.
#![cfg(feature = "sandbox")]

mod common;

use std::collections::BTreeMap;

use chrono::{Duration, Utc};
use common::{catalog, read, Run, Sandbox};
use serde_json::{json, Value};

/// How many contacts each kind of change touches.
const EACH: usize = 3;

/// The contacts of `field` in a mutate response, as `contact_id` values.
fn changed(response: &Value, field: &str) -> Vec<Value> {
    let ids = response[field].as_array().unwrap().clone();
    assert_eq!(ids.len(), EACH, "{field}: the sandbox made each change");
    ids
}

/// The last record of each contact in `runs`, by `contact_id`.
fn delivered(runs: &[&Run]) -> BTreeMap<String, Value> {
    let mut latest = BTreeMap::new();
    for run in runs {
        for record in run.records("contacts") {
            latest.insert(record["contact_id"].to_string(), record.clone());
        }
    }
    latest
}

#[test]
fn every_kind_of_contact_change_reaches_the_destination() {
    let sandbox = Sandbox::start(&["--contacts", "300", "--rps", "20"]);
    let dir = tempfile::tempdir().unwrap();
    let mut config = sandbox.config.clone();
    config["requests_per_second"] = json!(20);
    let streams = catalog(&["contacts"], true);
    let first = read(dir.path(), &config, &streams, None);
    first.assert_ok();

    let response = sandbox.control(
        "mutate",
        json!({"contacts": EACH, "unsubscribe_contacts": EACH, "resubscribe_contacts": EACH,
               "list_membership_changes": EACH, "delete_contacts": EACH}),
    );
    let details = changed(&response, "contacts");
    let unsubscribed = changed(&response, "unsubscribed_contacts");
    let later_kinds: Vec<Value> = [
        "resubscribed_contacts",
        "list_changed_contacts",
        "deleted_contacts",
    ]
    .iter()
    .flat_map(|field| changed(&response, field))
    .collect();

    // What the API holds now, every contact in its new form.
    config = first.next_config(&config);
    let truth_run = read(dir.path(), &config, &catalog(&["contacts"], false), None);
    truth_run.assert_ok();
    let truth = delivered(&[&truth_run]);
    let new_form = |id: &Value| truth[&id.to_string()].clone();

    // The next incremental run: personal details and unsubscribes.
    config = truth_run.next_config(&config);
    let second = read(dir.path(), &config, &streams, Some(&first.state_messages()));
    second.assert_ok();
    let after_second = delivered(&[&first, &second]);
    for id in details.iter().chain(&unsubscribed) {
        assert_eq!(after_second[&id.to_string()], new_form(id), "{id}");
    }

    // A week later the incremental run reconciles: every kind has arrived.
    config = second.next_config(&config);
    let mut states = second.state_messages();
    let week_ago = (Utc::now() - Duration::days(8)).to_rfc3339();
    for state in states.as_array_mut().unwrap() {
        if state["stream"]["stream_descriptor"]["name"] == "contacts" {
            state["stream"]["stream_state"]["reconciled_at"] = json!(week_ago);
        }
    }
    let third = read(dir.path(), &config, &streams, Some(&states));
    third.assert_ok();
    let after_third = delivered(&[&first, &second, &third]);
    for id in details.iter().chain(&unsubscribed).chain(&later_kinds) {
        assert_eq!(after_third[&id.to_string()], new_form(id), "{id}");
    }
    assert_eq!(
        third.records("contacts").len(),
        sandbox.expected_counts()["contacts"],
        "the reconciling run read every contact"
    );
    // And it restarted the clock: the next run is incremental again.
    config = third.next_config(&config);
    let fourth = read(dir.path(), &config, &streams, Some(&third.state_messages()));
    fourth.assert_ok();
    assert!(
        fourth.records("contacts").len() < EACH * 5,
        "{}",
        fourth.records("contacts").len()
    );
}
