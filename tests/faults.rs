//! Retries: 429 and 5xx answers are ridden out with nothing lost, and a
//! failure that persists ends the run with a clear, typed error.
// These tests run the connector binary's `sandbox` subcommand.
#![cfg(feature = "sandbox")]

mod common;

use common::{catalog, read, Sandbox};
use serde_json::json;

#[test]
fn transient_failures_are_retried_without_loss() {
    let sandbox = Sandbox::start(&["--contacts", "1100"]);
    for fault in [
        json!({"path_prefix": "/v3/contacts", "status": 500, "count": 2}),
        json!({"path_prefix": "/v3/contacts", "status": 429, "count": 2, "retry_after": 1}),
        json!({"path_prefix": "/v3/emails", "status": 503, "count": 1}),
        json!({"path_prefix": "/v3/contact_lists", "status": 502, "count": 1, "drop_connection": true}),
    ] {
        sandbox.control("faults", fault);
    }
    let dir = tempfile::tempdir().unwrap();
    let streams = catalog(&["contacts", "email_campaigns", "contact_lists"], true);
    let run = read(dir.path(), &sandbox.config, &streams, None);
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
    let retries = run
        .of_type("LOG")
        .into_iter()
        .filter(|m| m["log"]["message"].as_str().unwrap().contains("retry"))
        .count();
    assert!(
        retries >= 6,
        "each fault is logged as a retry, saw {retries}"
    );
}

#[test]
fn rate_limit_of_the_sandbox_is_never_exceeded_by_default() {
    let sandbox = Sandbox::start(&["--contacts", "2600"]);
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
    let run = read(dir.path(), &sandbox.config, &catalog(&names, false), None);
    run.assert_ok();
    let throttled = run
        .of_type("LOG")
        .into_iter()
        .filter(|m| {
            m["log"]["message"]
                .as_str()
                .unwrap()
                .contains("rate limited (429")
        })
        .count();
    assert_eq!(throttled, 0, "four streams at once stay under 4 requests/s");
}

#[test]
fn persistent_failure_names_the_endpoint_and_fails_the_run() {
    let sandbox = Sandbox::start(&["--contacts", "40"]);
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
    let incomplete = run.of_type("TRACE").into_iter().any(|t| {
        t["trace"]["stream_status"]["status"] == "INCOMPLETE"
            && t["trace"]["stream_status"]["stream_descriptor"]["name"] == "contact_tags"
    });
    assert!(incomplete);
}
