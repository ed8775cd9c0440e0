//! Nothing is lost when answers break: each kind of fault the proxy injects, on a
//! share of the answers of a full read of a representative set of streams, and the
//! records read are compared by primary key with what the sandbox holds.
//!
//! What these would have caught in the connector before it rode faults out:
//! - reset, close, stall, truncate, html: a 200 whose body broke off or was not JSON
//!   failed the stream (INCOMPLETE, exit 1) instead of being asked for again;
//! - drop-records: a page without its records array was taken as an empty page, and
//!   its records were lost with the run still succeeding (only the key comparison
//!   shows that);
//! - bad-link: a page whose next link was not a link ended the chain early, losing
//!   every later page;
//! - cycle-link: a link back to a page already read was followed forever (the time
//!   bound catches the loop);
//! - storm429: a storm longer than the retry count failed the stream;
//! - token5xx: a 5xx of the token endpoint failed the whole run;
//! - missing-array: a last page without its records array was taken as empty, its
//!   records lost with the run exiting 0;
//! - wrong-type: records carrying the string "not-a-list" where their schema declares
//!   an array went on as they were;
//! - ignore-filters: a server that ignores `updated_after`/`updated_before` made the
//!   windowed `contacts` read cut its windows again and again, reading the account
//!   hundreds of times over.
// These tests run the connector binary's `sandbox` subcommand.
#![cfg(feature = "sandbox")]

mod common;

use std::time::{Duration, Instant};

use common::proxy_harness::{assert_nothing_lost, incomplete_streams, merge_state, proxied_config};
use common::{catalog, read, read_counted, Run, Sandbox};
use constant_contact_fake::{FaultKind, Faults, Proxy};
use serde_json::Value;

const STREAMS: [&str; 7] = [
    "contacts",
    "email_campaigns",
    "email_sends",
    "email_opens",
    "email_bounces",
    "contact_lists",
    "email_campaign_activity_stats",
];
/// The connector's request rate, and the sandbox's per-token limit (with room for the
/// requests a fault costs).
const RPS: u32 = 20;
const SANDBOX_RPS: &str = "30";
const RATE: f64 = 0.15;
const SEED: u64 = 20_240_611;

struct Case {
    sandbox: Sandbox,
    proxy: Proxy,
    dir: tempfile::TempDir,
}

fn start(kind: FaultKind) -> Case {
    start_at(kind, RATE)
}

/// [`start`] with the fault on `rate` of the answers it applies to.
fn start_at(kind: FaultKind, rate: f64) -> Case {
    let sandbox = Sandbox::start(&["--contacts", "300", "--rps", SANDBOX_RPS]);
    let mut faults = Faults::new(&[kind], rate);
    // Pages of 100 rather than 500: the small data still spans pages, so there are
    // next links to break and records behind them to lose.
    faults.page_limit = Some(100);
    faults.stall = Duration::from_secs(2);
    faults.storm_after = Duration::from_secs(1);
    faults.storm_for = Duration::from_secs(10);
    let proxy = Proxy::start(&sandbox.base_url, faults, SEED).unwrap();
    Case {
        sandbox,
        proxy,
        dir: tempfile::tempdir().unwrap(),
    }
}

/// A full read through a proxy injecting `kind`: it succeeds, every stream completes,
/// the fault was injected, and nothing is lost.
fn rides_out(kind: FaultKind) {
    let case = start(kind);
    let config = proxied_config(
        &case.sandbox.config,
        &case.proxy.base_url(),
        &case.proxy.token_url(),
        RPS,
    );
    let started = Instant::now();
    let run = read(case.dir.path(), &config, &catalog(&STREAMS, true), None);
    let took = started.elapsed();
    let stats = case.proxy.stats();
    eprintln!("{}: {took:?}, proxy {stats:?}", kind.name());
    assert_eq!(
        run.code,
        0,
        "{}: the run failed: {:?}\n{}",
        kind.name(),
        run.errors(),
        run.stderr
    );
    assert!(run.errors().is_empty(), "{:?}", run.errors());
    assert!(
        incomplete_streams(&run).is_empty(),
        "{}: {:?}",
        kind.name(),
        incomplete_streams(&run)
    );
    let injected = stats.injected.get(kind.name()).copied().unwrap_or(0);
    assert!(
        injected >= 2,
        "{}: injected only {injected} times",
        kind.name()
    );
    assert_nothing_lost(&case.sandbox, &STREAMS, &[&run], kind.name());
}

#[test]
fn connection_reset_mid_body() {
    rides_out(FaultKind::Reset);
}

#[test]
fn connection_closed_mid_body() {
    rides_out(FaultKind::Close);
}

#[test]
fn truncated_json_body() {
    rides_out(FaultKind::Truncate);
}

#[test]
fn html_error_page_with_status_200() {
    rides_out(FaultKind::Html);
}

#[test]
fn stalled_body() {
    rides_out(FaultKind::Stall);
}

#[test]
fn records_array_missing_from_a_page_with_a_next_link() {
    rides_out(FaultKind::DropRecords);
}

#[test]
fn malformed_next_link() {
    rides_out(FaultKind::BadLink);
}

#[test]
fn storm_of_429s_for_ten_seconds() {
    rides_out(FaultKind::Storm429);
}

#[test]
fn token_endpoint_5xx() {
    rides_out(FaultKind::Token5xx);
}

/// A next link back to a page already read is an error, not a loop: the streams it
/// hits fail naming their endpoint, the run exits 1 in bounded time, and a clean run
/// resumed from the last state reads everything the first one missed.
#[test]
fn next_link_cycle_fails_the_stream_and_a_clean_resume_loses_nothing() {
    let case = start(FaultKind::CycleLink);
    let config = proxied_config(
        &case.sandbox.config,
        &case.proxy.base_url(),
        &case.proxy.token_url(),
        RPS,
    );
    let started = Instant::now();
    let run = read(case.dir.path(), &config, &catalog(&STREAMS, true), None);
    let took = started.elapsed();
    eprintln!("cycle-link: {took:?}, proxy {:?}", case.proxy.stats());
    assert!(
        took < Duration::from_secs(90),
        "a cycle is stopped, not followed ({took:?})"
    );
    assert!(case.proxy.stats().injected["cycle-link"] >= 1);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let failed = incomplete_streams(&run);
    assert!(!failed.is_empty());
    let errors = run.errors();
    assert_eq!(
        errors.len(),
        failed.len(),
        "one error per failed stream: {errors:?}"
    );
    for error in &errors {
        let stream = error["stream_descriptor"]["name"].as_str().unwrap();
        assert!(failed.contains(stream), "{error}");
        let message = error["message"].as_str().unwrap();
        assert!(
            message.contains("GET /v3/") && message.contains("linked back"),
            "the error names the endpoint and the loop: {message}"
        );
    }

    // The resume reads the sandbox directly, from the last state of each stream.
    let mut clean = run.next_config(&config);
    clean["api_base_url"] = case.sandbox.base_url.clone().into();
    clean["token_url"] = case.sandbox.token_url.clone().into();
    let state = merge_state(None, &run);
    let resumed = read(
        case.dir.path(),
        &clean,
        &catalog(&STREAMS, true),
        Some(&state),
    );
    resumed.assert_ok();
    assert!(incomplete_streams(&resumed).is_empty());
    assert_nothing_lost(
        &case.sandbox,
        &STREAMS,
        &[&run, &resumed],
        "cycle-link, resumed",
    );
}

/// Streams whose records carry id lists (`list_memberships`, `contact_list_ids`, …)
/// or lists that may be empty, for the wrong-type fault, and two that carry none.
const TYPED_STREAMS: [&str; 6] = [
    "contacts",
    "email_campaign_activities",
    "email_links",
    "email_campaign_activity_stats",
    "email_campaigns",
    "contact_lists",
];

/// A fault that leaves a page malformed, on `rate` of the answers it applies to: the
/// run either rides it out or the streams it hits fail, each with an error naming its
/// endpoint (never an empty page, never a record passed on as it came); every stream
/// that completed holds all its records; a clean run resumed from the last state then
/// reads the rest, and the two runs together hold every record the sandbox does.
/// Returns the faulted run.
fn rides_out_or_fails_and_resumes(kind: FaultKind, rate: f64, streams: &[&str]) -> Run {
    let case = start_at(kind, rate);
    let config = proxied_config(
        &case.sandbox.config,
        &case.proxy.base_url(),
        &case.proxy.token_url(),
        RPS,
    );
    let run = read(case.dir.path(), &config, &catalog(streams, true), None);
    let stats = case.proxy.stats();
    eprintln!("{}@{rate}: proxy {stats:?}", kind.name());
    let injected = stats.injected.get(kind.name()).copied().unwrap_or(0);
    assert!(
        injected >= 2,
        "{}: injected only {injected} times",
        kind.name()
    );
    let failed = incomplete_streams(&run);
    assert_eq!(run.code == 0, failed.is_empty(), "{}", run.stderr);
    let errors = run.errors();
    assert_eq!(
        errors.len(),
        failed.len(),
        "one error per failed stream: {errors:?}"
    );
    for error in &errors {
        let stream = error["stream_descriptor"]["name"].as_str().unwrap();
        assert!(failed.contains(stream), "{error}");
        let message = error["message"].as_str().unwrap();
        assert!(
            message.contains("GET /v3/") && message.contains("the API answered 200 but"),
            "the error names the endpoint and what is wrong: {message}"
        );
    }
    assert_no_value_of_the_fault(&run);
    // A stream that completed has delivered every record by itself (the run started
    // with no state): a complete stream never hides a page taken as empty.
    let complete: Vec<&str> = streams
        .iter()
        .copied()
        .filter(|s| !failed.contains(*s))
        .collect();
    assert_nothing_lost(
        &case.sandbox,
        &complete,
        &[&run],
        &format!("{}@{rate}, streams that completed", kind.name()),
    );

    let mut clean = run.next_config(&config);
    clean["api_base_url"] = case.sandbox.base_url.clone().into();
    clean["token_url"] = case.sandbox.token_url.clone().into();
    let state = merge_state(None, &run);
    let resumed = read(
        case.dir.path(),
        &clean,
        &catalog(streams, true),
        Some(&state),
    );
    resumed.assert_ok();
    assert!(incomplete_streams(&resumed).is_empty());
    assert_nothing_lost(
        &case.sandbox,
        streams,
        &[&run, &resumed],
        &format!("{}@{rate}, resumed", kind.name()),
    );
    run
}

/// No record holds the string the wrong-type fault puts in place of a list.
fn assert_no_value_of_the_fault(run: &Run) {
    fn holds(value: &Value) -> bool {
        match value {
            Value::String(text) => text == "not-a-list",
            Value::Array(items) => items.iter().any(holds),
            Value::Object(map) => map.values().any(holds),
            _ => false,
        }
    }
    for record in run.of_type("RECORD") {
        assert!(
            !holds(&record["record"]["data"]),
            "passed on as it came: {record}"
        );
    }
}

#[test]
fn records_array_missing_from_any_answer_last_pages_included() {
    rides_out_or_fails_and_resumes(FaultKind::MissingArray, RATE, &STREAMS);
}

#[test]
fn values_of_the_wrong_type() {
    rides_out_or_fails_and_resumes(FaultKind::WrongType, RATE, &TYPED_STREAMS);
}

/// Every answer with an id list broken: the streams whose records carry one fail (after
/// their retries), the others complete, and nothing is lost once a clean run resumes.
#[test]
fn wrong_types_in_every_answer_fail_the_streams_they_reach() {
    let run = rides_out_or_fails_and_resumes(FaultKind::WrongType, 1.0, &TYPED_STREAMS);
    assert_eq!(run.code, 1);
    let failed = incomplete_streams(&run);
    for stream in ["contacts", "email_campaign_activities"] {
        assert!(failed.contains(stream), "{stream} failed: {failed:?}");
    }
    let message = run
        .errors()
        .into_iter()
        .map(|e| e["message"].as_str().unwrap().to_string())
        .find(|m| m.contains("GET /v3/emails/activities/"))
        .expect("email_campaign_activities failed");
    assert!(
        message.contains("contact_list_ids is \"not-a-list\" where the schema declares an array"),
        "{message}"
    );
}

/// Contacts in the sandbox account of the ignored-filters test, and the pages a plain
/// read of them takes (500 a page).
const MANY_CONTACTS: usize = 20_000;
const THEIR_PAGES: usize = MANY_CONTACTS / 500;

/// A server that ignores `updated_after`/`updated_before`: the windowed `contacts` read
/// sees it, warns once and reads the account as one chain. A first sync costs at most
/// 1.3 times the account's pages, an incremental one (which the server answers with
/// the whole account) as much again plus its opt-out pass, and both deliver every
/// contact and end.
#[test]
fn a_server_that_ignores_the_window_filters_is_read_as_one_chain() {
    let contacts = MANY_CONTACTS.to_string();
    let sandbox = Sandbox::start(&["--contacts", &contacts, "--rps", "200"]);
    let proxy = Proxy::start(
        &sandbox.base_url,
        Faults::new(&[FaultKind::IgnoreFilters], 1.0),
        SEED,
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = proxied_config(&sandbox.config, &proxy.base_url(), &proxy.token_url(), 100);
    let streams = catalog(&["contacts"], true);
    let bound = THEIR_PAGES * 13 / 10;
    let truth = sandbox.ground_truth("contacts");
    let warnings = |run: &Run| {
        run.of_type("LOG")
            .into_iter()
            .filter_map(|m| m["log"]["message"].as_str())
            .filter(|m| m.contains("seems to ignore `updated_after`/`updated_before`"))
            .count()
    };

    let started = Instant::now();
    let (first, spent) = read_counted(&sandbox, dir.path(), &config, &streams, None);
    eprintln!("first sync: {:?}, {spent:?}", started.elapsed());
    first.assert_ok();
    let requests = spent["GET /v3/contacts"];
    assert!(
        requests <= bound,
        "{requests} requests for {THEIR_PAGES} pages"
    );
    assert_eq!(warnings(&first), 1, "{}", first.stderr);
    let read = common::proxy_harness::union_of_keys(&[&first], "contacts", &truth.key);
    assert_eq!(
        read, truth.keys,
        "every contact, once the windows are given up"
    );
    assert!(proxy.stats().injected["ignore-filters"] > 0);

    let config = first.next_config(&config);
    let (second, spent) = read_counted(
        &sandbox,
        dir.path(),
        &config,
        &streams,
        Some(&first.state_messages()),
    );
    second.assert_ok();
    // The opt-out pass is filtered (by `optout_after`): one page.
    let requests = spent["GET /v3/contacts"];
    assert!(
        requests <= bound + 1,
        "{requests} requests for {THEIR_PAGES} pages"
    );
    assert_eq!(warnings(&second), 1, "{}", second.stderr);
    let read = common::proxy_harness::union_of_keys(&[&second], "contacts", &truth.key);
    assert_eq!(read, truth.keys);
}
