//! Incremental reads: changed records only, nothing lost at the cursor
//! boundary, and a killed read resumes where it stopped.
// These tests run the connector binary's `sandbox` subcommand.
#![cfg(feature = "sandbox")]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Duration, Utc};
use common::{catalog, read, read_args, run_until, time, write_json, Sandbox};
use serde_json::{json, Value};

/// How far before its saved cursor an incremental read starts again, so that
/// records sharing the cursor's timestamp are not lost (the connector's
/// `CURSOR_OVERLAP`).
const CURSOR_OVERLAP_MINUTES: i64 = 5;

/// What the sandbox changes between the first and second read (contacts:
/// personal details, which move `updated_at`; other kinds of change are
/// `tests/contact_changes.rs`'s).
const CHANGED_CONTACTS: usize = 9;
const CHANGED_CAMPAIGNS: usize = 2;

/// Contacts of the sandbox's own data that may fall within the overlap before
/// the changed ones: its contacts were last updated at random over a year, up
/// to a minute before it started.
const OVERLAP_SLACK: usize = 2;

/// Contacts the connector asks for per page: the API's largest page.
const CONTACTS_PAGE: usize = 500;

/// Checkpoints the killed read gets out before it is killed.
const CHECKPOINTS_BEFORE_KILL: usize = 2;

fn ids(values: &Value) -> BTreeSet<String> {
    values
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.to_string())
        .collect()
}

#[test]
fn second_read_brings_exactly_the_changes() {
    // 700 contacts: two pages. 20 requests/s on both sides: quick reads.
    let sandbox = Sandbox::start(&["--contacts", "700", "--rps", "20"]);
    let mut config = sandbox.config.clone();
    config["requests_per_second"] = 20.into();
    let dir = tempfile::tempdir().unwrap();
    let streams = catalog(&["contacts", "email_campaigns"], true);
    let first = read(dir.path(), &config, &streams, None);
    first.assert_ok();
    let expected = sandbox.expected_counts();
    assert_eq!(first.records("contacts").len(), expected["contacts"]);
    assert_eq!(
        first.records("email_campaigns").len(),
        expected["email_campaigns"]
    );

    let changed = sandbox.control(
        "mutate",
        json!({"contacts": CHANGED_CONTACTS, "campaigns": CHANGED_CAMPAIGNS}),
    );
    let config = first.next_config(&config);
    let second = read(dir.path(), &config, &streams, Some(&first.state_messages()));
    second.assert_ok();

    for (stream, key, changed) in [
        ("contacts", "contact_id", ids(&changed["contacts"])),
        ("email_campaigns", "campaign_id", ids(&changed["campaigns"])),
    ] {
        let cursor = time(&first.last_state(stream)["cursor"]);
        let read_again = second.ids(stream, key);
        // Past the saved cursor: exactly the changed records.
        let after_cursor: BTreeSet<String> = second
            .records(stream)
            .iter()
            .filter(|r| time(&r["updated_at"]) > cursor)
            .map(|r| r[key].to_string())
            .collect();
        assert_eq!(after_cursor, changed, "{stream}: records past the cursor");
        // Anything else is the deliberate overlap just before the cursor.
        for record in second.records(stream) {
            if !changed.contains(&record[key].to_string()) {
                assert!(
                    time(&record["updated_at"])
                        >= cursor - Duration::minutes(CURSOR_OVERLAP_MINUTES),
                    "{record}"
                );
            }
        }
        assert!(read_again.is_superset(&changed));
        assert!(
            time(&second.last_state(stream)["cursor"]) > cursor,
            "{stream} advanced"
        );
    }
    // A third run with no changes re-reads only the overlap (the changed
    // contacts, stamped alike), one page each.
    let config = second.next_config(&config);
    let third = read(
        dir.path(),
        &config,
        &streams,
        Some(&second.state_messages()),
    );
    third.assert_ok();
    let overlap = CHANGED_CONTACTS;
    assert!(
        third.records("contacts").len() <= overlap + OVERLAP_SLACK,
        "{}",
        third.records("contacts").len()
    );
}

#[test]
fn killed_read_resumes_without_loss() {
    // 3000 contacts, 150 ms a request: six pages, slow enough to kill the
    // read between two of them.
    let sandbox = Sandbox::start(&["--contacts", "3000", "--latency-ms", "150"]);
    let dir = tempfile::tempdir().unwrap();
    let config = write_json(dir.path(), "config.json", &sandbox.config);
    let streams = write_json(dir.path(), "catalog.json", &catalog(&["contacts"], true));
    let mut states = 0;
    let killed = run_until(
        &read_args(&config, &streams),
        &dir.path().join("tokens.json"),
        |line| {
            states += usize::from(line.contains("\"type\":\"STATE\""));
            states == CHECKPOINTS_BEFORE_KILL
        },
    );
    let config = killed.next_config(&sandbox.config);
    let checkpoint = killed.last_state("contacts");
    assert!(
        checkpoint["resume"]["next_page"].is_string(),
        "{checkpoint}"
    );

    let resumed = common::read(
        dir.path(),
        &config,
        &catalog(&["contacts"], true),
        Some(&killed.state_messages()),
    );
    resumed.assert_ok();
    let all: BTreeSet<String> = killed
        .ids("contacts", "contact_id")
        .union(&resumed.ids("contacts", "contact_id"))
        .cloned()
        .collect();
    assert_eq!(
        all.len(),
        sandbox.expected_counts()["contacts"],
        "nothing lost"
    );
    let checkpointed = killed.checkpointed_records("contacts");
    assert_eq!(checkpointed, CHECKPOINTS_BEFORE_KILL * CONTACTS_PAGE);
    assert!(
        resumed.records("contacts").len() <= sandbox.expected_counts()["contacts"] - checkpointed,
        "the resumed run started after the pages already read"
    );
    assert!(resumed.last_state("contacts")["resume"].is_null());
}

#[test]
fn incremental_request_on_a_full_refresh_stream_is_read_in_full() {
    let sandbox = Sandbox::start(&["--contacts", "20"]);
    let dir = tempfile::tempdir().unwrap();
    let mut streams = catalog(&["contact_lists"], false);
    streams["streams"][0]["sync_mode"] = "incremental".into();
    let run = read(dir.path(), &sandbox.config, &streams, None);
    run.assert_ok();
    assert_eq!(
        run.records("contact_lists").len(),
        sandbox.expected_counts()["contact_lists"]
    );
}

#[test]
fn every_state_shape_is_accepted() {
    let sandbox = Sandbox::start(&["--contacts", "30"]);
    let dir = tempfile::tempdir().unwrap();
    let streams = catalog(&["contacts"], true);
    // A cursor 90 days back: some of the sandbox's contacts (updated over the
    // past year) are older, some newer.
    let recent = (Utc::now() - Duration::days(90)).to_rfc3339();
    let total = sandbox.expected_counts()["contacts"];
    let mut config = sandbox.config.clone();
    for state in [
        json!([]),
        json!({}),
        json!({"contacts": {"updated_at": recent}}),
        json!([{"type": "LEGACY", "data": {"contacts": {"updated_at": recent}}}]),
        json!([null, {"type": "STREAM", "stream": {"stream_descriptor": {"name": "contacts", "namespace": null},
            "stream_state": {"updated_at": "2000-01-01T00:00:00Z"}}, "extra": true},
            {"type": "STREAM", "stream": {"stream_descriptor": {"name": "contacts"},
            "stream_state": {"updated_at": recent}}}]),
    ] {
        let run = read(dir.path(), &config, &streams, Some(&state));
        run.assert_ok();
        config = run.next_config(&config);
        let n = run.records("contacts").len();
        assert!(n > 0 && n <= total, "{state}: {n}");
        if state.to_string().contains(&recent) {
            assert!(n < total, "{state}: the saved cursor was ignored");
        }
    }
    let run = read(dir.path(), &config, &streams, Some(&json!("nonsense")));
    assert_eq!(run.code, 1);
    assert_eq!(run.errors()[0]["failure_type"], "config_error");
}

/// Every record of a stream read incrementally carries its declared cursor,
/// in a first read and an incremental one; and where a report is a
/// snapshot read again whole (did-not-opens, links, the activity stats),
/// the cursor of the new read is later than the old one's, so a
/// destination that keeps the latest version by cursor keeps the new one.
#[test]
fn every_incremental_record_carries_a_cursor_that_orders_its_reads() {
    let sandbox = Sandbox::start(&["--contacts", "200", "--rps", "50"]);
    let dir = tempfile::tempdir().unwrap();
    let mut config = sandbox.config.clone();
    config["requests_per_second"] = json!(50);
    let discovered = common::run(&[
        "discover",
        "--config",
        write_json(dir.path(), "config.json", &config)
            .to_str()
            .unwrap(),
    ]);
    let cursors: Vec<(String, String)> = discovered.of_type("CATALOG")[0]["catalog"]["streams"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| !common::OPT_IN_STREAMS.contains(&s["name"].as_str().unwrap()))
        .filter_map(|s| {
            let field = s["default_cursor_field"].get(0)?.as_str()?;
            Some((s["name"].as_str()?.to_string(), field.to_string()))
        })
        .collect();
    let names: Vec<&str> = cursors.iter().map(|(name, _)| name.as_str()).collect();
    let streams = catalog(&names, true);

    let first = read(dir.path(), &config, &streams, None);
    first.assert_ok();
    // Enough new opens that some come from contacts who had not opened.
    let changed = sandbox.control("mutate", json!({"tracking": 10}));
    let activity = changed["tracking_activity"].as_str().unwrap();
    let config = first.next_config(&config);
    let second = read(dir.path(), &config, &streams, Some(&first.state_messages()));
    second.assert_ok();

    for run in [&first, &second] {
        for (stream, field) in &cursors {
            for record in run.records(stream) {
                assert!(
                    record[field.as_str()].is_string(),
                    "{stream}: a record without its cursor {field}: {record}"
                );
            }
        }
    }
    // The cursors of each activity's rows in a run.
    let cursors = |run: &common::Run, stream: &str, field: &str| {
        let mut of: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for record in run.records(stream) {
            of.entry(record["campaign_activity_id"].as_str().unwrap().into())
                .or_default()
                .insert(record[field].as_str().unwrap().into());
        }
        of
    };
    for (stream, field) in [
        ("email_did_not_opens", "stats_last_refresh_time"),
        ("email_links", "stats_last_refresh_time"),
        ("email_campaign_activity_stats", "last_refresh_time"),
    ] {
        let (before, after) = (
            cursors(&first, stream, field),
            cursors(&second, stream, field),
        );
        assert!(
            after.contains_key(activity),
            "{stream}: the changed activity was read again"
        );
        for (id, now) in &after {
            let Some(then) = before.get(id) else {
                continue;
            };
            let (then, now) = (then.last().unwrap(), now.first().unwrap());
            // The stats stream reads unchanged activities again too.
            if id != activity && stream == "email_campaign_activity_stats" {
                assert!(time(&json!(now)) >= time(&json!(then)), "{stream}: {id}");
                continue;
            }
            assert!(
                time(&json!(now)) > time(&json!(then)),
                "{stream}: {id} read again with {field} {now}, not after {then}"
            );
        }
    }
}
