//! Every sync holds its rows to the API's own counts: `contacts_count` for each
//! chain of `contacts` pages (each window), and each sent activity's stats count
//! for its tracking report. A proxy fault that silently shortens last pages (a
//! well-formed answer with rows missing, which no parser can see) is caught: once,
//! the read is read again and nothing is lost; always, the stream fails naming what
//! fell short, its position does not advance, and a clean resume loses nothing.
// These tests run the connector binary's `sandbox` subcommand.
#![cfg(feature = "sandbox")]

mod common;

use common::proxy_harness::{assert_nothing_lost, incomplete_streams, merge_state, proxied_config};
use common::{catalog, read, Run, Sandbox};
use constant_contact_fake::{FaultKind, Faults, Proxy};
use serde_json::json;

/// The streams audited: `contacts` and the tracking reports with a count in the
/// activity stats.
const AUDITED: [&str; 8] = [
    "contacts",
    "email_sends",
    "email_opens",
    "email_unique_opens",
    "email_clicks",
    "email_forwards",
    "email_optouts",
    "email_bounces",
];
/// The audited streams whose count is exactly their rows. `em_forwards` counts the
/// contacts who forwarded (in the sandbox, as the contract leaves it open), so a
/// second forward by one contact is a row beyond the count: the audit of
/// `email_forwards` catches only shortfalls larger than such repeats.
const EXACT: [&str; 7] = [
    "contacts",
    "email_sends",
    "email_opens",
    "email_unique_opens",
    "email_clicks",
    "email_optouts",
    "email_bounces",
];
const RPS: u32 = 40;

fn sandbox() -> Sandbox {
    // 1,000 contacts in pages of 100 (below): `contacts` is cut into windows.
    Sandbox::start(&["--contacts", "1000", "--rps", "60"])
}

/// The audit line of `stream` in `run`'s log: (expected, delivered, verdict).
fn audit_of(run: &Run, stream: &str) -> Option<(u64, u64, String)> {
    let prefix = format!("audit {stream}: ");
    run.of_type("LOG").into_iter().find_map(|m| {
        let text = m["log"]["message"].as_str()?.strip_prefix(&prefix)?;
        let words: Vec<&str> = text.split_whitespace().collect();
        let expected = words.first()?.parse().ok()?;
        let delivered = words.get(6)?.parse().ok()?;
        Some((
            expected,
            delivered,
            words.get(8)?.trim_end_matches(',').to_string(),
        ))
    })
}

fn assert_audited_green(run: &Run, context: &str) {
    for stream in AUDITED {
        let (expected, delivered, verdict) = audit_of(run, stream)
            .unwrap_or_else(|| panic!("{context}: no audit line for {stream}:\n{}", run.stderr));
        assert_eq!(verdict, "ok", "{context}: {stream}");
        assert!(delivered >= expected, "{context}: {stream}");
    }
}

fn faulty(sandbox: &Sandbox, kind: FaultKind) -> Proxy {
    let mut faults = Faults::new(&[kind], 1.0);
    faults.page_limit = Some(100);
    faults.only_paths = Some(vec!["/v3/contacts".into(), "/tracking/".into()]);
    Proxy::start(&sandbox.base_url, faults, 7).unwrap()
}

/// A read of `streams` through a proxy that injects `kind` into every answer it
/// applies to, with `settings` added to the config.
fn read_through(
    sandbox: &Sandbox,
    kind: FaultKind,
    streams: &[&str],
    settings: serde_json::Value,
    dir: &std::path::Path,
) -> (Run, Proxy) {
    let proxy = faulty(sandbox, kind);
    let mut config = proxied_config(&sandbox.config, &proxy.base_url(), &proxy.token_url(), RPS);
    for (key, value) in settings.as_object().into_iter().flatten() {
        config[key] = value.clone();
    }
    (read(dir, &config, &catalog(streams, true), None), proxy)
}

/// The messages of `run`'s TRACE errors.
fn error_messages(run: &Run) -> Vec<String> {
    run.errors()
        .iter()
        .filter_map(|e| e["message"].as_str().map(str::to_string))
        .collect()
}

/// Whether `run` logged a message `matches` accepts.
fn logged(run: &Run, matches: impl Fn(&str) -> bool) -> bool {
    run.of_type("LOG")
        .into_iter()
        .any(|m| m["log"]["message"].as_str().is_some_and(&matches))
}

/// The config of the run after `run`, straight to the sandbox: the API whole again.
fn clean_config(run: &Run, sandbox: &Sandbox) -> serde_json::Value {
    let mut config = run.next_config(&sandbox.config);
    config["api_base_url"] = json!(sandbox.base_url);
    config["token_url"] = json!(sandbox.token_url);
    config
}

#[test]
fn a_clean_run_audits_green_on_every_audited_stream_full_and_incremental() {
    let sandbox = sandbox();
    let dir = tempfile::tempdir().unwrap();
    let first = read(dir.path(), &sandbox.config, &catalog(&AUDITED, true), None);
    first.assert_ok();
    assert_audited_green(&first, "full sync");
    // The read, and each list's and tag's count of its contacts (a whole
    // account is read: the sandbox's contacts all changed after its start date).
    let (expected, delivered, _) = audit_of(&first, "contacts").unwrap();
    assert!(
        expected > 1000 && delivered >= expected,
        "{expected} {delivered}"
    );
    assert!(
        !first.stderr.contains("member counts not checked"),
        "{}",
        first.stderr
    );
    let (sends, _, _) = audit_of(&first, "email_sends").unwrap();
    assert_eq!(sends as usize, first.records("email_sends").len());

    // New opens and clicks: the incremental read of their activity adds its new
    // rows to those delivered before, and the sum meets the new count.
    sandbox.control("mutate", json!({"tracking": 5}));
    let state = merge_state(None, &first);
    let config = first.next_config(&sandbox.config);
    let second = read(dir.path(), &config, &catalog(&AUDITED, true), Some(&state));
    second.assert_ok();
    let (expected, delivered, verdict) = audit_of(&second, "email_opens").unwrap();
    assert_eq!(verdict, "ok");
    assert!(
        expected > 0 && delivered >= expected,
        "{expected} {delivered}"
    );
    assert_eq!(second.records("email_opens").len(), 5);
}

#[test]
fn a_last_page_short_once_is_read_again_and_nothing_is_lost() {
    let sandbox = sandbox();
    let dir = tempfile::tempdir().unwrap();
    let (run, proxy) = read_through(
        &sandbox,
        FaultKind::ShortLastPageOnce,
        &AUDITED,
        json!({}),
        dir.path(),
    );
    run.assert_ok();
    assert!(proxy.stats().injected["short-last-page-once"] >= 8);
    assert_audited_green(&run, "short once");
    let reread = run
        .of_type("LOG")
        .into_iter()
        .filter_map(|m| m["log"]["message"].as_str())
        .filter(|m| m.contains("once more"))
        .count();
    assert!(reread >= 8, "{reread} reads again:\n{}", run.stderr);
    assert_nothing_lost(&sandbox, &EXACT, &[&run], "short once");
}

#[test]
fn a_last_page_always_short_fails_the_stream_and_a_clean_resume_loses_nothing() {
    let sandbox = sandbox();
    let dir = tempfile::tempdir().unwrap();
    let (run, _proxy) = read_through(
        &sandbox,
        FaultKind::ShortLastPage,
        &AUDITED,
        json!({}),
        dir.path(),
    );
    assert_ne!(run.code, 0, "a run short of the API's counts exits 0");
    let incomplete = incomplete_streams(&run);
    assert!(
        EXACT.iter().all(|s| incomplete.contains(*s)),
        "{incomplete:?}"
    );
    let errors = error_messages(&run);
    let named = |words: &[&str]| errors.iter().any(|e| words.iter().all(|w| e.contains(w)));
    assert!(
        named(&[
            "stream contacts",
            "GET /v3/contacts",
            "`contacts_count` says"
        ]),
        "{errors:#?}"
    );
    assert!(
        named(&[
            "stream email_sends",
            "campaign_activity_id ",
            "`/stats/em_sends` says",
            "more such reads"
        ]),
        "{errors:#?}"
    );
    for stream in EXACT {
        let (expected, delivered, verdict) = audit_of(&run, stream)
            .unwrap_or_else(|| panic!("no audit line for {stream}: {errors:#?}\n{}", run.stderr));
        assert_eq!(verdict, "SHORT", "{stream}");
        assert!(delivered < expected, "{stream}");
    }
    // Nothing short counts as read: `contacts` keeps the state it started from,
    // and no short activity is among a report's parents read.
    assert_eq!(run.last_state("contacts"), json!({}));
    let sends = run.last_state("email_sends");
    let read_parents = sends["parents"].as_object().cloned().unwrap_or_default();
    assert!(
        read_parents
            .keys()
            .all(|key| !errors.iter().any(|e| e.contains(key.as_str()))),
        "{sends}"
    );

    // The next run, with the API whole again, delivers what was missing.
    let state = merge_state(None, &run);
    let config = clean_config(&run, &sandbox);
    let resumed = read(dir.path(), &config, &catalog(&AUDITED, true), Some(&state));
    resumed.assert_ok();
    assert_audited_green(&resumed, "clean resume");
    assert_nothing_lost(
        &sandbox,
        &EXACT,
        &[&run, &resumed],
        "always short, then resumed",
    );
}

#[test]
fn with_fail_on_audit_shortfall_off_a_shortfall_is_a_warning_and_the_position_moves_on() {
    let sandbox = sandbox();
    let dir = tempfile::tempdir().unwrap();
    let (run, _proxy) = read_through(
        &sandbox,
        FaultKind::ShortLastPage,
        &["contacts", "email_sends"],
        json!({"fail_on_audit_shortfall": false}),
        dir.path(),
    );
    run.assert_ok();
    for stream in ["contacts", "email_sends"] {
        let (_, _, verdict) = audit_of(&run, stream).unwrap();
        assert_eq!(verdict, "SHORT", "{stream}");
        let warned = logged(&run, |t| {
            t.starts_with(stream) && t.contains("taken as read")
        });
        assert!(warned, "{stream}: no warning:\n{}", run.stderr);
    }
    assert!(
        run.last_state("contacts")["cursor"].is_string(),
        "{}",
        run.last_state("contacts")
    );
}

#[test]
fn memberships_missing_from_contacts_fail_the_list_and_tag_counts_and_nothing_counts_as_read() {
    let sandbox = sandbox();
    let dir = tempfile::tempdir().unwrap();
    let (run, _proxy) = read_through(
        &sandbox,
        FaultKind::ThinIdLists,
        &["contacts"],
        json!({}),
        dir.path(),
    );
    assert_ne!(run.code, 0, "a run whose memberships fall short exits 0");
    let errors = error_messages(&run);
    let named = |words: &[&str]| errors.iter().any(|e| words.iter().all(|w| e.contains(w)));
    assert!(
        named(&[
            "stream contacts",
            "the members of list_id ",
            "`contact_lists.membership_count` says"
        ]),
        "{errors:#?}"
    );
    assert!(named(&["more such reads"]), "{errors:#?}");
    let reread_tags = logged(&run, |t| {
        t.contains("records list tag_id ") && t.contains("once more")
    });
    assert!(reread_tags, "no tag was read again:\n{}", run.stderr);
    let (expected, delivered, verdict) = audit_of(&run, "contacts").unwrap();
    assert_eq!(verdict, "SHORT");
    assert!(delivered < expected);
    // The read of every contact does not count as done: the next run reads
    // them all again, with their memberships.
    assert_eq!(run.last_state("contacts"), json!({}));
    let again = read(
        dir.path(),
        &clean_config(&run, &sandbox),
        &catalog(&["contacts"], true),
        Some(&merge_state(None, &run)),
    );
    again.assert_ok();
    assert_eq!(audit_of(&again, "contacts").unwrap().2, "ok");
}
