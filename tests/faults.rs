//! Retries: 429 and 5xx answers are ridden out with nothing lost, and a
//! failure that persists ends the run with a clear, typed error.
// These tests run the connector binary's `sandbox` subcommand.
#![cfg(feature = "sandbox")]

mod common;

use std::collections::BTreeMap;

use common::{api_requests, catalog, read, read_counted, Sandbox};
use serde_json::json;

/// The route template `request_counts` gives a request to `path_prefix`
/// (the list endpoints these tests break have no parameters in their path).
fn route(path_prefix: &str) -> String {
    format!("GET {path_prefix}")
}

#[test]
fn transient_failures_are_retried_without_loss() {
    // 1100 contacts: three pages of 500, so that the faults land on the
    // first pages and a retried page must not be read twice. The sandbox's
    // own rate limit is opened up: only the injected faults may cost a
    // request here (the default pace has its own test below).
    let sandbox = Sandbox::start(&["--contacts", "1100", "--rps", "50"]);
    let faults = [
        json!({"path_prefix": "/v3/contacts", "status": 500, "count": 2}),
        json!({"path_prefix": "/v3/contacts", "status": 429, "count": 2}),
        json!({"path_prefix": "/v3/emails", "status": 503, "count": 1}),
        json!({"path_prefix": "/v3/contact_lists", "status": 502, "count": 1, "drop_connection": true}),
    ];
    let mut injected: BTreeMap<String, usize> = BTreeMap::new();
    for fault in &faults {
        sandbox.control("faults", fault.clone());
        *injected
            .entry(route(fault["path_prefix"].as_str().unwrap()))
            .or_default() += fault["count"].as_u64().unwrap() as usize;
    }
    let dir = tempfile::tempdir().unwrap();
    let streams = catalog(&["contacts", "email_campaigns", "contact_lists"], true);
    let (run, spent) = read_counted(&sandbox, dir.path(), &sandbox.config, &streams, None);
    run.assert_ok();
    let expected = sandbox.expected_counts();
    for name in ["contacts", "email_campaigns", "contact_lists"] {
        assert_eq!(run.records(name).len(), expected[name], "{name}");
        let ids = run.ids(
            name,
            match name {
                "contacts" => "contact_id",
                "email_campaigns" => "campaign_id",
                _ => "list_id",
            },
        );
        assert_eq!(
            ids.len(),
            expected[name],
            "{name}: no duplicates from retries"
        );
    }

    // The same read with nothing failing: every fault cost exactly one more
    // request (it was retried, and nothing else was asked again).
    let config = run.next_config(&sandbox.config);
    let (clean, spent_clean) = read_counted(&sandbox, dir.path(), &config, &streams, None);
    clean.assert_ok();
    let mut with_faults = api_requests(&spent_clean);
    for (route, n) in &injected {
        *with_faults.entry(route.clone()).or_default() += n;
    }
    assert_eq!(
        api_requests(&spent),
        with_faults,
        "each injected fault was retried once: {injected:?}"
    );
}

/// The sandbox's rate limit and the connector's default pace, in requests
/// per second (the API's limit).
const DEFAULT_RPS: u32 = 4;

#[test]
fn rate_limit_of_the_sandbox_is_never_exceeded_by_default() {
    // 2600 contacts: six pages, so the read runs for seconds at the limit.
    let contacts = ["--contacts", "2600"];
    let sandbox = Sandbox::start(&contacts);
    let dir = tempfile::tempdir().unwrap();
    // The top-level streams: many at once, all sharing the limiter.
    let names = [
        "contacts",
        "contact_lists",
        "contact_tags",
        "custom_fields",
        "email_campaigns",
        "email_campaign_summaries",
        "account_summary",
        "account_emails",
        "user_privileges",
        "bulk_activities",
    ];
    let streams = catalog(&names, false);
    let (run, spent) = read_counted(&sandbox, dir.path(), &sandbox.config, &streams, None);
    run.assert_ok();

    // The requests the read needs, from a sandbox with the same data that
    // never throttles: every 429 would have cost one more.
    let unlimited = Sandbox::start(&[&contacts[..], &["--rps", "1000"]].concat());
    assert_eq!(unlimited.expected_counts(), sandbox.expected_counts());
    let mut config = unlimited.config.clone();
    config["requests_per_second"] = 100.into(); // the most the config allows
    let (needed_run, needed) = read_counted(&unlimited, dir.path(), &config, &streams, None);
    needed_run.assert_ok();
    assert_eq!(
        api_requests(&spent),
        api_requests(&needed),
        "no request was refused: streams read four at a time stay under {DEFAULT_RPS} requests/s"
    );
}

#[test]
fn persistent_failure_names_the_endpoint_and_fails_the_run() {
    let sandbox = Sandbox::start(&["--contacts", "40"]);
    // 100 failures: far more than the connector's retries.
    sandbox.control(
        "faults",
        json!({"path_prefix": "/v3/contact_tags", "status": 500, "count": 100, "retry_after": 0}),
    );
    let dir = tempfile::tempdir().unwrap();
    let run = read(
        dir.path(),
        &sandbox.config,
        &catalog(&["contact_tags", "segments"], false),
        None,
    );
    assert_eq!(run.code, 1);
    let errors = run.errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["failure_type"], "system_error");
    let message = errors[0]["message"].as_str().unwrap();
    assert!(
        message.contains("/v3/contact_tags") && message.contains("500"),
        "{message}"
    );
    assert_eq!(errors[0]["stream_descriptor"]["name"], "contact_tags");
    // The other stream still completes.
    assert_eq!(
        run.records("segments").len(),
        sandbox.expected_counts()["segments"]
    );
    let statuses = run.stream_statuses("contact_tags");
    assert!(statuses.contains(&"INCOMPLETE"), "{statuses:?}");
}
