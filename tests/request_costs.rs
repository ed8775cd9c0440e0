//! What incremental syncs cost, counted by the sandbox: a sync with no
//! change reads no report again, and new opens and clicks on one activity
//! cost that activity's affected reports only.
// These tests run the connector binary's `sandbox` subcommand.
#![cfg(feature = "sandbox")]

mod common;

use std::collections::BTreeMap;

use common::{all_streams, catalog, read_counted, Sandbox};
use serde_json::{json, Value};

/// The most a no-change incremental sync of every stream may cost on the
/// sandbox's default account, landing pages and events apart: one request
/// per top-level stream, the activity stats (ten activities a request), and
/// the newest campaign that the cursor overlap lists again.
const NO_CHANGE_BUDGET: usize = 30;

/// The landing-page report streams: nothing says whether a named page has
/// new rows, so each is read (down to its bookmark) every run.
const LANDING_PAGE_STREAMS: usize = 6;

/// Requests of the landing-page reports.
fn landing_page_requests(spent: &BTreeMap<String, usize>) -> usize {
    spent
        .iter()
        .filter(|(route, _)| route.contains("/reports/landing_pages/"))
        .map(|(_, n)| n)
        .sum()
}

/// Requests of the event streams: the API gives no way to tell events or
/// their registrations changed, so each run reads every event and track
/// (`tests/events_and_automations.rs` counts them).
fn event_requests(spent: &BTreeMap<String, usize>) -> usize {
    spent
        .iter()
        .filter(|(route, _)| route.starts_with("GET /v3/events"))
        .map(|(_, n)| n)
        .sum()
}

/// New opens (each followed by a click) the sandbox adds to one activity.
const NEW_OPENS: usize = 3;

/// Routes of per-activity report requests.
fn report_requests(spent: &BTreeMap<String, usize>) -> BTreeMap<String, usize> {
    spent
        .iter()
        .filter(|(route, _)| route.contains("/reports/email_reports/"))
        .map(|(route, n)| (route.clone(), *n))
        .collect()
}

/// Rows of the email tracking reports (the event logs) in a run.
fn tracking_rows(run: &common::Run) -> usize {
    run.of_type("RECORD")
        .iter()
        .filter(|m| {
            let stream = m["record"]["stream"].as_str().unwrap();
            stream.starts_with("email_") && m["record"]["data"].get("created_time").is_some()
        })
        .count()
}

#[test]
fn incremental_syncs_pay_only_for_what_changed() {
    let sandbox = Sandbox::start(&["--rps", "50"]);
    let dir = tempfile::tempdir().unwrap();
    let mut config = sandbox.config.clone();
    config["requests_per_second"] = json!(50);
    let every = all_streams();
    let names: Vec<&str> = every.iter().map(String::as_str).collect();
    let streams = catalog(&names, true);

    let (full, _) = read_counted(&sandbox, dir.path(), &config, &streams, None);
    full.assert_ok();
    config = full.next_config(&config);

    // No change: few requests, no report read, no tracking row again.
    let (quiet, spent) = read_counted(
        &sandbox,
        dir.path(),
        &config,
        &streams,
        Some(&full.state_messages()),
    );
    quiet.assert_ok();
    config = quiet.next_config(&config);
    let api: usize = common::api_requests(&spent).values().sum();
    let pages = config["landing_page_activity_ids"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(
        landing_page_requests(&spent),
        LANDING_PAGE_STREAMS * pages,
        "one request per named landing page and stream: {spent:?}"
    );
    let api = api - LANDING_PAGE_STREAMS * pages - event_requests(&spent);
    assert!(api <= NO_CHANGE_BUDGET, "{api} requests: {spent:?}");
    assert!(report_requests(&spent).is_empty(), "{spent:?}");
    assert_eq!(tracking_rows(&quiet), 0, "a tracking row came twice");

    // New opens and clicks on one activity: only its opens and clicks
    // reports (and those whose counts follow: unique opens, did-not-opens,
    // links) are read, for that activity alone.
    let changed = sandbox.control("mutate", json!({"tracking": NEW_OPENS}));
    let activity = changed["tracking_activity"].as_str().unwrap().to_string();
    let (after, spent) = read_counted(
        &sandbox,
        dir.path(),
        &config,
        &streams,
        Some(&quiet.state_messages()),
    );
    after.assert_ok();
    let reports = report_requests(&spent);
    assert!(!reports.is_empty());
    for route in reports.keys() {
        assert!(
            [
                "/opens",
                "/unique_opens",
                "/clicks",
                "/didnotopens",
                "/links"
            ]
            .iter()
            .any(|kind| route.ends_with(kind)),
            "{route} was read although its count did not change: {reports:?}"
        );
    }
    let read_for: Vec<&Value> = after
        .of_type("RECORD")
        .into_iter()
        .filter(|m| {
            m["record"]["stream"]
                .as_str()
                .unwrap()
                .starts_with("email_")
        })
        .filter(|m| m["record"]["data"].get("created_time").is_some())
        .map(|m| &m["record"]["data"]["campaign_activity_id"])
        .collect();
    assert!(
        read_for.iter().all(|id| *id == activity.as_str()),
        "tracking rows of other activities came again"
    );
    let opens = after.records("email_opens").len();
    assert_eq!(opens, NEW_OPENS, "exactly the new opens");
}

/// Airbyte ESTIMATE traces give a stream's expected rows where the API
/// reports them: `contacts_count` on the first contacts page, the stats'
/// counts of new events for the tracking reports.
#[test]
fn estimates_come_from_the_api_counts() {
    let sandbox = Sandbox::start(&["--contacts", "700", "--rps", "50"]);
    let dir = tempfile::tempdir().unwrap();
    let mut config = sandbox.config.clone();
    config["requests_per_second"] = json!(50);
    let streams = catalog(&["contacts", "email_opens"], true);
    let (run, _) = read_counted(&sandbox, dir.path(), &config, &streams, None);
    run.assert_ok();
    let estimate = |stream: &str| -> Option<u64> {
        run.of_type("TRACE")
            .into_iter()
            .find(|m| m["trace"]["type"] == "ESTIMATE" && m["trace"]["estimate"]["name"] == stream)
            .and_then(|m| m["trace"]["estimate"]["row_estimate"].as_u64())
    };
    let expected = sandbox.expected_counts();
    assert_eq!(estimate("contacts"), Some(expected["contacts"] as u64));
    assert_eq!(
        estimate("email_opens"),
        Some(run.records("email_opens").len() as u64)
    );
}

/// A large `contacts` read is cut into windows of `updated_at` read side by side,
/// for speed; its cost is its pages, one page set aside per cut (the page that
/// showed the count), and at most one part-filled page per window. The estimate
/// still gives the whole read's count, every record arrives once, and an
/// incremental read of the same range afterwards (a small one) is not cut.
#[test]
fn a_large_contacts_read_in_windows_costs_its_pages_and_a_request_per_cut() {
    const CONTACTS: usize = 12_000;
    const PAGE: usize = 500;
    let sandbox = Sandbox::start(&["--contacts", &CONTACTS.to_string(), "--rps", "50"]);
    let dir = tempfile::tempdir().unwrap();
    let mut config = sandbox.config.clone();
    config["requests_per_second"] = json!(50);
    // The sandbox refuses `include=sms_channel` as the contract does; asking
    // costs one request a run (engine::optional's tests), not counted here.
    config["contacts_include_sms_channel"] = json!(false);
    let streams = catalog(&["contacts"], true);
    let (run, spent) = read_counted(&sandbox, dir.path(), &config, &streams, None);
    run.assert_ok();
    let cuts = run
        .of_type("LOG")
        .iter()
        .filter(|m| {
            m["log"]["message"]
                .as_str()
                .is_some_and(|text| text.contains("windows side by side"))
        })
        .count();
    assert!(cuts >= 1, "the read was cut into windows");
    let windows = run
        .of_type("STATE")
        .iter()
        .map(|m| {
            m["state"]["stream"]["stream_state"]["resume"]["windows"]
                .as_array()
                .map_or(0, Vec::len)
        })
        .max()
        .unwrap();
    let requests: usize = common::api_requests(&spent).values().sum();
    let pages = CONTACTS.div_ceil(PAGE);
    // A read of every contact is held to the lists' and tags' counts: the
    // account's count, and the lists' and the tags' listing.
    const MEMBER_AUDIT: usize = 3;
    assert!(
        requests > pages && requests <= pages + cuts + windows + MEMBER_AUDIT,
        "{requests} requests for {pages} pages, {cuts} cuts, {windows} windows"
    );
    let ids = run.ids("contacts", "contact_id");
    assert_eq!(ids.len(), CONTACTS);
    assert_eq!(run.records("contacts").len(), CONTACTS, "no record twice");
    let estimates: Vec<u64> = run
        .of_type("TRACE")
        .iter()
        .filter(|m| m["trace"]["type"] == "ESTIMATE")
        .filter_map(|m| m["trace"]["estimate"]["row_estimate"].as_u64())
        .collect();
    assert_eq!(estimates, vec![CONTACTS as u64]);
    let config = run.next_config(&config);
    let (again, spent) = read_counted(
        &sandbox,
        dir.path(),
        &config,
        &streams,
        Some(&run.state_messages()),
    );
    again.assert_ok();
    let optout_pass = 1;
    assert_eq!(
        common::api_requests(&spent).values().sum::<usize>(),
        1 + optout_pass,
        "a no-change read is one page and the opt-out pass"
    );
}
