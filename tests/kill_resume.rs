//! Nothing is lost across killed and failed runs: a sync killed at random moments and
//! resumed each time from the last state, as a platform does, reads every record the
//! sandbox holds once a run finally succeeds; so does a sync whose stream failed until
//! its retries ran out.
//!
//! What these would have caught in the connector before per-parent report state kept
//! `unfinished_since`: a tracking report's state held one cursor, the newest
//! `created_time` read; a resumed run read only activities with events within
//! `report_lookback_days` of it, so an older activity whose rows had not been read in
//! full when the run died (or whose endpoint failed) was skipped for good. With a
//! one-day lookback the union of all runs then misses that activity's rows, which the
//! comparison with the ground truth shows stream by stream.
// These tests run the connector binary's `sandbox` subcommand.
#![cfg(feature = "sandbox")]

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::proxy_harness::{
    assert_nothing_lost, incomplete_streams, merge_state, proxied_config, read_killed, Draws,
};
use common::{all_streams, catalog, Run, Sandbox};
use serde_json::{json, Value};

const RPS: u32 = 20;
const RUN_TIMEOUT: Duration = Duration::from_secs(100);

/// Every discovered stream, incremental where supported (as `demo` syncs), but the
/// contact reports, which read only the config's `contact_ids` and so hold nothing to
/// compare here.
fn every_stream() -> Vec<String> {
    all_streams()
        .into_iter()
        .filter(|s| {
            !s.starts_with("contact_activity")
                && s != "contact_open_and_click_rates"
                && s != "contact_sms_engagement_history"
        })
        .collect()
}

fn direct_config(sandbox: &Sandbox) -> Value {
    proxied_config(&sandbox.config, &sandbox.base_url, &sandbox.token_url, RPS)
}

/// Reads `catalog` from the sandbox, killing the first `kills` runs once they
/// printed `kill_point()` records and resuming each from the last state per
/// stream and the newest config, as a platform does, until a run succeeds (two
/// more runs at most). Every run ends killed or complete, and the last one
/// succeeds.
fn killed_and_resumed(
    sandbox: &Sandbox,
    catalog: &Value,
    kills: usize,
    mut kill_point: impl FnMut() -> usize,
) -> Vec<Run> {
    let dir = tempfile::tempdir().unwrap();
    let mut config = direct_config(sandbox);
    let mut state: Option<Value> = None;
    let mut runs: Vec<Run> = Vec::new();
    let started = Instant::now();
    for attempt in 0..=kills + 2 {
        let kill_after = (attempt < kills).then(&mut kill_point);
        let run = read_killed(
            dir.path(),
            &config,
            catalog,
            state.as_ref(),
            kill_after,
            RUN_TIMEOUT,
        );
        eprintln!(
            "run {attempt}: kill after {kill_after:?} records: exit {}, {} records, {} states, {:?} so far",
            run.code,
            run.of_type("RECORD").len(),
            run.of_type("STATE").len(),
            started.elapsed()
        );
        config = run.next_config(&config);
        state = Some(merge_state(state.as_ref(), &run));
        let finished = run.code == 0;
        if finished {
            run.assert_ok();
            assert!(incomplete_streams(&run).is_empty());
        } else {
            assert_eq!(
                run.code,
                -1,
                "only kills end runs early: {:?}\n{}",
                run.errors(),
                run.stderr
            );
        }
        runs.push(run);
        if finished {
            break;
        }
    }
    assert_eq!(
        runs.last().map(|r| r.code),
        Some(0),
        "a run finally succeeds"
    );
    runs
}

#[test]
fn a_sync_killed_at_random_moments_and_resumed_loses_nothing() {
    const SEED: u64 = 7_2024;
    let sandbox = Sandbox::start(&["--contacts", "600", "--rps", "30"]);
    let names = every_stream();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let catalog = catalog(&names, true);
    let mut draws = Draws::new(SEED);
    let kills = draws.between(3, 6);
    // Kill points spread over a run's records (a full one prints some thousands).
    let runs = killed_and_resumed(&sandbox, &catalog, kills, || draws.between(50, 6000));
    // A run may finish before its kill point; the others were killed mid-sync.
    let killed = runs.iter().filter(|r| r.code == -1).count();
    assert!(killed >= 3, "{killed} runs killed of {kills} planned");
    let runs: Vec<&Run> = runs.iter().collect();
    let truth_streams = sandbox.ground_truth_streams();
    let compared: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| truth_streams.iter().any(|t| t == n))
        .collect();
    assert_eq!(
        compared.len(),
        names.len(),
        "a ground truth for every stream synced"
    );
    assert_nothing_lost(&sandbox, &compared, &runs, "killed and resumed");
}

/// The oldest sent activity with opens: a resumed run's one-day lookback from the
/// newest open read would not reach it.
fn oldest_activity_with_opens(sandbox: &Sandbox) -> String {
    let truth = sandbox.ground_truth("email_opens");
    let mut newest_open: std::collections::BTreeMap<String, String> = Default::default();
    for key in &truth.keys {
        let key: Vec<String> = serde_json::from_str(key).unwrap();
        let newest = newest_open.entry(key[0].clone()).or_default();
        if *newest < key[2] {
            *newest = key[2].clone();
        }
    }
    let activities: BTreeSet<(String, String)> =
        newest_open.into_iter().map(|(a, t)| (t, a)).collect();
    assert!(activities.len() >= 3, "several activities have opens");
    activities.into_iter().next().unwrap().1
}

#[test]
fn a_stream_failed_until_retries_ran_out_resumes_without_loss() {
    let sandbox = Sandbox::start(&["--contacts", "600", "--rps", "30"]);
    let names = [
        "email_campaigns",
        "email_sends",
        "email_opens",
        "email_clicks",
        "email_campaign_activity_stats",
    ];
    let catalog = catalog(&names, true);
    let dir = tempfile::tempdir().unwrap();
    let activity = oldest_activity_with_opens(&sandbox);
    let endpoint = format!("/v3/reports/email_reports/{activity}/tracking/opens");
    // As many 500s as the connector makes attempts (8, `RetryPolicy::SYNC`): every
    // attempt of this run fails, and the fault is spent when the next run asks.
    sandbox.control(
        "faults",
        json!({"path_prefix": endpoint, "status": 500, "count": 8, "retry_after": 0}),
    );
    let config = direct_config(&sandbox);
    let started = Instant::now();
    let failed = read_killed(dir.path(), &config, &catalog, None, None, RUN_TIMEOUT);
    eprintln!("failed run: {:?}", started.elapsed());
    assert_ne!(failed.code, 0, "the run fails");
    assert_eq!(
        incomplete_streams(&failed),
        BTreeSet::from(["email_opens".to_string()]),
        "{:?}",
        failed.errors()
    );
    let errors = failed.errors();
    assert!(
        errors
            .iter()
            .any(|e| e["message"].as_str().is_some_and(|m| m.contains(&endpoint))),
        "the error names the endpoint: {errors:?}"
    );
    // Its rows are missing so far: the resume has something to prove.
    let truth = sandbox.ground_truth("email_opens");
    let read_so_far = common::proxy_harness::union_of_keys(&[&failed], "email_opens", &truth.key);
    assert!(truth
        .keys
        .difference(&read_so_far)
        .any(|k| k.contains(&activity)));

    let state = merge_state(None, &failed);
    let resumed = read_killed(
        dir.path(),
        &failed.next_config(&config),
        &catalog,
        Some(&state),
        None,
        RUN_TIMEOUT,
    );
    eprintln!("resumed: {:?}", started.elapsed());
    resumed.assert_ok();
    assert!(incomplete_streams(&resumed).is_empty());
    assert_nothing_lost(
        &sandbox,
        &names,
        &[&failed, &resumed],
        "failed, then resumed",
    );
}

/// A large `contacts` read is cut into windows of `updated_at` read side by side; a
/// run killed while several windows are half read resumes each where it stood.
#[test]
fn contacts_read_in_windows_killed_and_resumed_loses_nothing() {
    const SEED: u64 = 11_2026;
    // 24 pages of 500: enough to be cut into windows.
    const CONTACTS: usize = 12_000;
    let sandbox = Sandbox::start(&["--contacts", &CONTACTS.to_string(), "--rps", "30"]);
    let catalog = catalog(&["contacts"], true);
    let mut draws = Draws::new(SEED);
    // Each kill early enough that the resumed run has not finished yet.
    let runs = killed_and_resumed(&sandbox, &catalog, 3, || draws.between(1_000, CONTACTS / 4));
    let most_windows_saved = runs
        .iter()
        .flat_map(|run| run.of_type("STATE"))
        .map(|saved| {
            saved["state"]["stream"]["stream_state"]["resume"]["windows"]
                .as_array()
                .map_or(0, Vec::len)
        })
        .max()
        .unwrap_or(0);
    assert!(
        runs.iter().filter(|r| r.code == -1).count() >= 2,
        "runs were killed mid-read"
    );
    assert!(
        most_windows_saved >= 2,
        "checkpoints saved several unfinished windows ({most_windows_saved} at most)"
    );
    // A server that honours the window filters is never taken for one that ignores
    // them (which would read the stream as one chain).
    for run in &runs {
        for log in run.of_type("LOG") {
            let message = log["log"]["message"].as_str().unwrap_or_default();
            assert!(!message.contains("seems to ignore"), "{message}");
        }
    }
    let runs: Vec<&Run> = runs.iter().collect();
    assert_nothing_lost(&sandbox, &["contacts"], &runs, "windows killed and resumed");
}
