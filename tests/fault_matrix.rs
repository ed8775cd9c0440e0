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
//! - token5xx: a 5xx of the token endpoint failed the whole run.
// These tests run the connector binary's `sandbox` subcommand.
#![cfg(feature = "sandbox")]

mod common;

use std::time::{Duration, Instant};

use common::proxy_harness::{assert_nothing_lost, incomplete_streams, merge_state, proxied_config};
use common::{catalog, read, Sandbox};
use constant_contact_fake::{FaultKind, Faults, Proxy};

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
    let sandbox = Sandbox::start(&["--contacts", "300", "--rps", SANDBOX_RPS]);
    let mut faults = Faults::new(&[kind], RATE);
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
