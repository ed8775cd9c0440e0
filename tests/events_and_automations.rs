//! The streams issue 18 added: events and their registrations, automation
//! workflows, SMS campaign summaries and the social streams. A full read
//! matches the sandbox's ground truth with the requests the endpoints need
//! and no more (events read once for both event streams); incremental reads
//! skip unchanged automations and SMS campaigns sent before the lookback;
//! a token whose user lacks a privilege gets one warning per stream and an
//! empty stream, not a failed run, and `check` names the privileges.
// These tests run the connector binary's `sandbox` subcommand.
#![cfg(feature = "sandbox")]

mod common;

use std::collections::BTreeMap;

use common::proxy_harness::{key_of, union_of_keys};
use common::{catalog, read_counted, run, write_json, Sandbox, OPT_IN_STREAMS};
use serde_json::{json, Value};

const STREAMS: [&str; 7] = [
    "events",
    "event_registrations",
    "automation_workflows",
    "sms_campaign_summaries",
    "social_profiles",
    "social_connections",
    "social_hashtag_groups",
];

fn fast(sandbox: &Sandbox) -> Value {
    let mut config = sandbox.config.clone();
    config["requests_per_second"] = 50.into();
    config
}

fn route(spent: &BTreeMap<String, usize>, path: &str) -> usize {
    spent.get(&format!("GET /v3{path}")).copied().unwrap_or(0)
}

const EVENTS: &str = "/events";
const EVENT: &str = "/events/{event_id}";
const REGISTRATIONS: &str = "/events/{event_id}/tracks/{track_id}/registrations";
const FLOWS: &str = "/automations/workflows";
const FLOW: &str = "/automations/workflows/{automation_flow_id}";
const SMS: &str = "/reports/summary_reports/sms_campaign_summaries";

#[test]
fn full_then_incremental_reads_match_the_sandbox() {
    let sandbox = Sandbox::start(&["--rps", "100"]);
    let dir = tempfile::tempdir().unwrap();
    let streams = catalog(&STREAMS, true);
    let (full, spent) = read_counted(&sandbox, dir.path(), &fast(&sandbox), &streams, None);
    full.assert_ok();

    // Every record of the API, by key, and each stream pages at least once.
    let expected = sandbox.expected_counts();
    for stream in STREAMS {
        let truth = sandbox.ground_truth(stream);
        assert!(!truth.keys.is_empty(), "{stream} holds records");
        assert_eq!(full.records(stream).len(), expected[stream], "{stream}");
        assert_eq!(
            union_of_keys(&[&full], stream, &truth.key),
            truth.keys,
            "{stream}"
        );
    }
    // Requests: the event list at 100 a page, each event's detail once for
    // both event streams, each track's registrations at 50 a page.
    let events = expected["events"];
    assert!(events > 100);
    assert_eq!(route(&spent, EVENTS), events.div_ceil(100));
    assert_eq!(route(&spent, EVENT), events, "each event read once");
    let registrations = full.records("event_registrations");
    let mut per_event: BTreeMap<String, usize> = BTreeMap::new();
    for r in &registrations {
        *per_event
            .entry(r["event_id"].as_str().unwrap().into())
            .or_default() += 1;
    }
    let pages: usize = full
        .records("events")
        .iter()
        .map(|e| {
            let n = per_event
                .get(e["event_id"].as_str().unwrap())
                .copied()
                .unwrap_or(0);
            n.div_ceil(50).max(1)
        })
        .sum();
    assert!(pages > events, "a track pages at 50 registrations");
    assert_eq!(route(&spent, REGISTRATIONS), pages);
    // Registrations carry their event and track; events their counts.
    let tracks: BTreeMap<&str, &str> = full
        .records("events")
        .iter()
        .map(|e| {
            (
                e["event_id"].as_str().unwrap(),
                e["default_track"]["track_id"].as_str().unwrap(),
            )
        })
        .collect();
    for r in &registrations {
        assert_eq!(tracks[r["event_id"].as_str().unwrap()], r["track_id"]);
        assert_eq!(r["track_id"], r["track_key"]);
    }
    for e in full.records("events") {
        assert!(e["event_registration_summary_metrics"]["registration_count"].is_u64());
    }
    assert_eq!(route(&spent, FLOWS), 1);
    assert_eq!(route(&spent, FLOW), expected["automation_workflows"]);
    assert_eq!(
        route(&spent, SMS),
        expected["sms_campaign_summaries"].div_ceil(50)
    );
    assert_eq!(route(&spent, "/social/hashtags/groups"), 2);
    for c in full.records("social_connections") {
        assert_eq!(c["network"], c["account_info"]["network"]);
        assert_eq!(
            c["network_account_id"],
            c["account_info"]["network_account_id"]
        );
    }

    // No change: the automations are listed, none read again; the SMS report
    // asks from the lookback before the newest send; events are read whole.
    let config = full.next_config(&fast(&sandbox));
    let (quiet, spent) = read_counted(
        &sandbox,
        dir.path(),
        &config,
        &streams,
        Some(&full.state_messages()),
    );
    quiet.assert_ok();
    assert_eq!(route(&spent, FLOWS), 1);
    assert_eq!(route(&spent, FLOW), 0);
    assert!(quiet.records("automation_workflows").is_empty());
    assert_eq!(route(&spent, SMS), 1);
    let newest = full
        .records("sms_campaign_summaries")
        .iter()
        .map(|c| common::time(&c["last_sent_date"]))
        .max()
        .unwrap();
    let lookback = newest - chrono::Duration::days(30) - chrono::Duration::minutes(5);
    let recent = full
        .records("sms_campaign_summaries")
        .iter()
        .filter(|c| common::time(&c["last_sent_date"]) >= lookback)
        .count();
    assert_eq!(quiet.records("sms_campaign_summaries").len(), recent);
    assert!(recent < expected["sms_campaign_summaries"]);
    assert_eq!(quiet.records("events").len(), events);
    assert_eq!(route(&spent, EVENT), events);

    // Two automations edited, an SMS campaign sent, three registrations.
    let changed = sandbox.control(
        "mutate",
        json!({"automations": 2, "sms_campaigns": 1, "registrations": 3}),
    );
    let config = quiet.next_config(&config);
    let (after, spent) = read_counted(
        &sandbox,
        dir.path(),
        &config,
        &streams,
        Some(&quiet.state_messages()),
    );
    after.assert_ok();
    assert_eq!(route(&spent, FLOW), 2);
    let edited: Vec<&Value> = changed["automations"].as_array().unwrap().iter().collect();
    let read: Vec<&Value> = after
        .records("automation_workflows")
        .iter()
        .map(|a| &a["id"])
        .collect();
    assert_eq!(read.len(), 2);
    assert!(read.iter().all(|id| edited.contains(id)));
    let sent = &changed["sms_campaigns"][0];
    assert!(after
        .records("sms_campaign_summaries")
        .iter()
        .any(|c| c["campaign_id"] == *sent));
    assert_eq!(
        after.records("event_registrations").len(),
        registrations.len() + 3
    );
    // Nothing lost over the three runs.
    let runs = [&full, &quiet, &after];
    for stream in STREAMS {
        let truth = sandbox.ground_truth(stream);
        assert_eq!(
            union_of_keys(&runs, stream, &truth.key),
            truth.keys,
            "{stream}"
        );
    }
    // The three new registrations are those of the event `mutate` named.
    let key: Vec<String> = vec!["event_id".into(), "registration_id".into()];
    let before = union_of_keys(&[&full], "event_registrations", &key);
    let new: Vec<&Value> = after
        .records("event_registrations")
        .into_iter()
        .filter(|r| !before.contains(&key_of(r, &key)))
        .collect();
    assert_eq!(new.len(), 3);
    assert!(new
        .iter()
        .all(|r| r["event_id"] == changed["registrations_event"]));
}

#[test]
fn social_streams_are_opt_in_and_events_are_not() {
    for stream in [
        "social_profiles",
        "social_connections",
        "social_hashtag_groups",
    ] {
        assert!(OPT_IN_STREAMS.contains(&stream), "{stream}");
    }
    let all = common::all_streams();
    for stream in [
        "events",
        "event_registrations",
        "automation_workflows",
        "sms_campaign_summaries",
    ] {
        assert!(
            all.iter().any(|s| s == stream),
            "{stream} selected by default"
        );
    }
}

#[test]
fn a_missing_privilege_empties_its_streams_with_one_warning() {
    let sandbox = Sandbox::start(&[
        "--rps",
        "100",
        "--without-privilege",
        "campaign:read",
        "--without-privilege",
        "customer-journey:read",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let (run_, _) = read_counted(
        &sandbox,
        dir.path(),
        &fast(&sandbox),
        &catalog(&STREAMS, true),
        None,
    );
    run_.assert_ok();
    let warnings: Vec<&str> = run_
        .of_type("LOG")
        .iter()
        .filter(|m| m["log"]["level"] == "WARN")
        .map(|m| m["log"]["message"].as_str().unwrap())
        .collect();
    for stream in STREAMS {
        let privilege = match stream {
            "automation_workflows" => Some("customer-journey:read"),
            "sms_campaign_summaries" => None,
            _ => Some("campaign:read"),
        };
        let about: Vec<&&str> = warnings
            .iter()
            .filter(|w| w.starts_with(&format!("{stream}: ")))
            .collect();
        match privilege {
            Some(privilege) => {
                assert_eq!(about.len(), 1, "{stream}: {warnings:?}");
                assert!(about[0].contains(&format!("`{privilege}`")), "{}", about[0]);
                assert!(run_.records(stream).is_empty(), "{stream}");
                let statuses = run_.stream_statuses(stream);
                assert_eq!(statuses.last(), Some(&"COMPLETE"), "{stream}");
            }
            None => {
                assert!(about.is_empty(), "{stream}: {about:?}");
                assert_eq!(
                    run_.records(stream).len(),
                    sandbox.expected_counts()[stream]
                );
            }
        }
    }

    // `check` names which privileges the user has, and the streams of each.
    let config = run_.next_config(&fast(&sandbox));
    let path = write_json(dir.path(), "check.json", &config);
    let check = run(&["check", "--config", path.to_str().unwrap()]);
    let logs: Vec<(&str, &str)> = check
        .of_type("LOG")
        .iter()
        .map(|m| {
            (
                m["log"]["level"].as_str().unwrap(),
                m["log"]["message"].as_str().unwrap(),
            )
        })
        .collect();
    let line = |privilege: &str| {
        logs.iter()
            .find(|(_, m)| m.starts_with(&format!("privilege {privilege}:")))
            .copied()
            .unwrap_or_else(|| panic!("{privilege}: {logs:?}"))
    };
    let (level, text) = line("campaign:read");
    assert_eq!(level, "WARN");
    assert!(text.contains("events, event_registrations"), "{text}");
    assert_eq!(line("customer-journey:read").0, "WARN");
    let (level, text) = line("ui:campaign:metrics");
    assert_eq!(level, "INFO");
    assert!(text.contains("sms_campaign_summaries"), "{text}");
    // Without campaign:read the email campaigns are forbidden too: the check
    // fails on that scope, having said which privileges are missing.
    assert_eq!(
        check.of_type("CONNECTION_STATUS")[0]["connectionStatus"]["status"],
        "FAILED"
    );
}

#[test]
fn check_succeeds_and_reports_a_missing_journey_privilege() {
    let sandbox = Sandbox::start(&["--without-privilege", "customer-journey:read"]);
    let dir = tempfile::tempdir().unwrap();
    let path = write_json(dir.path(), "check.json", &sandbox.config);
    let check = run(&["check", "--config", path.to_str().unwrap()]);
    assert_eq!(
        check.of_type("CONNECTION_STATUS")[0]["connectionStatus"]["status"],
        "SUCCEEDED"
    );
    let logs: Vec<String> = check
        .of_type("LOG")
        .iter()
        .map(|m| {
            format!(
                "{} {}",
                m["log"]["level"].as_str().unwrap(),
                m["log"]["message"].as_str().unwrap()
            )
        })
        .collect();
    assert!(
        logs.iter()
            .any(|l| l.starts_with("WARN privilege customer-journey:read")
                && l.contains("automation_workflows")),
        "{logs:?}"
    );
    assert!(
        logs.iter()
            .any(|l| l.starts_with("INFO privilege campaign:read")),
        "{logs:?}"
    );
}
