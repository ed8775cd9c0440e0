//! The API budget: a spent daily quota stops the run at once with one error
//! and the state saved, and `max_requests_per_run` splits a sync into runs
//! that together deliver exactly what one run would.
// These tests run the connector binary's `sandbox` subcommand.
#![cfg(feature = "sandbox")]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::{catalog, read, Run, Sandbox};
use serde_json::{json, Value};

/// Incremental streams of every kind: a cursor stream with resumable page
/// links, a per-activity report and a child of changed campaigns.
const STREAMS: [&str; 4] = [
    "contacts",
    "email_campaigns",
    "email_sends",
    "email_campaign_activities",
];

/// Per-stream states as a platform keeps them: the last STATE of each
/// stream in each run, the later run's winning.
#[derive(Default)]
struct Saved(BTreeMap<String, Value>);

impl Saved {
    fn absorb(&mut self, run: &Run) {
        for message in run.of_type("STATE") {
            let stream = &message["state"]["stream"];
            let name = stream["stream_descriptor"]["name"]
                .as_str()
                .unwrap()
                .to_string();
            self.0.insert(name, stream["stream_state"].clone());
        }
    }

    fn messages(&self) -> Value {
        Value::Array(
            self.0
                .iter()
                .map(|(name, state)| {
                    json!({"type": "STREAM", "stream": {
                        "stream_descriptor": {"name": name}, "stream_state": state}})
                })
                .collect(),
        )
    }
}

/// Every record of `runs`, per stream, as JSON text: records read again by
/// a resumed run count once.
fn distinct(runs: &[Run]) -> BTreeMap<String, BTreeSet<String>> {
    let mut all: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for run in runs {
        for message in run.of_type("RECORD") {
            let record = &message["record"];
            all.entry(record["stream"].as_str().unwrap().to_string())
                .or_default()
                .insert(record["data"].to_string());
        }
    }
    all
}

fn statuses(run: &Run, status: &str) -> usize {
    run.of_type("TRACE")
        .into_iter()
        .filter(|m| m["trace"]["stream_status"]["status"] == status)
        .count()
}

/// Far more capped runs than a sync at half its cost can need.
const MOST_CAPPED_RUNS: usize = 12;

#[test]
fn capped_runs_together_equal_one_uncapped_run() {
    let sandbox = Sandbox::start(&["--contacts", "1200", "--rps", "50"]);
    let dir = tempfile::tempdir().unwrap();
    let mut config = sandbox.config.clone();
    config["requests_per_second"] = json!(50);
    let streams = catalog(&STREAMS, true);

    let spent_before: usize = sandbox.request_counts().values().sum();
    let whole = read(dir.path(), &config, &streams, None);
    whole.assert_ok();
    config = whole.next_config(&config);
    let uncapped: usize = sandbox.request_counts().values().sum::<usize>() - spent_before;

    // Half of what one run needs: each capped run lists the parents of the
    // report streams again before it reads on, so the sync takes at least
    // three runs.
    let cap = uncapped / 2;
    config["max_requests_per_run"] = json!(cap);
    let mut saved = Saved::default();
    let mut runs = Vec::new();
    loop {
        let before: usize = sandbox.request_counts().values().sum();
        let run = read(dir.path(), &config, &streams, Some(&saved.messages()));
        let spent = sandbox.request_counts().values().sum::<usize>() - before;
        assert_eq!(
            run.code,
            0,
            "a capped run stops cleanly: {:?}",
            run.errors()
        );
        assert!(
            spent <= cap,
            "the run spent {spent} requests, over its cap of {cap}"
        );
        config = run.next_config(&config);
        saved.absorb(&run);
        let stopped = statuses(&run, "INCOMPLETE") > 0;
        if stopped {
            let warned = run.of_type("LOG").into_iter().any(|m| {
                m["log"]["level"] == "WARN"
                    && m["log"]["message"]
                        .as_str()
                        .unwrap()
                        .contains("max_requests_per_run")
            });
            assert!(warned, "the stop is explained in a LOG message");
        }
        runs.push(run);
        if !stopped {
            break;
        }
        assert!(runs.len() < MOST_CAPPED_RUNS, "capped runs make progress");
    }
    assert!(runs.len() >= 3, "took {} runs", runs.len());
    assert_eq!(distinct(&runs), distinct(&[whole]), "record for record");
}

#[test]
fn a_spent_daily_quota_stops_the_run_at_once_and_the_next_day_resumes() {
    let streams = catalog(&STREAMS, true);
    let dir = tempfile::tempdir().unwrap();
    // What the whole sync costs, on a sandbox with the same data and no quota.
    let measure = Sandbox::start(&["--contacts", "1200", "--rps", "50"]);
    let mut config = measure.config.clone();
    config["requests_per_second"] = json!(50);
    read(dir.path(), &config, &streams, None).assert_ok();
    let whole: usize = measure.request_counts().values().sum();
    drop(measure);

    // A day's quota of three quarters of that: the first run stops part-way,
    // the second (after the quota resets) has room for the rest and for
    // listing the report streams' parents again.
    let daily_limit = (whole * 3 / 4).to_string();
    let sandbox = Sandbox::start(&[
        "--contacts",
        "1200",
        "--rps",
        "50",
        "--daily-limit",
        &daily_limit,
    ]);
    let mut config = sandbox.config.clone();
    config["requests_per_second"] = json!(50);
    let started = Instant::now();
    let started_day = chrono::Utc::now().date_naive();
    let stopped = read(dir.path(), &config, &streams, None);
    assert!(
        started.elapsed() < QUICK_STOP,
        "no retry storm: {:?}",
        started.elapsed()
    );
    assert_eq!(stopped.code, 1);
    let errors = stopped.errors();
    assert_eq!(errors.len(), 1, "one error for the run: {errors:?}");
    let message = errors[0]["message"].as_str().unwrap();
    assert!(message.contains("daily request quota"), "{message}");
    // The API sends no Retry-After: the quota resets at the next 00:00 UTC
    // (of the day the run started, or of the next if it ran past midnight).
    let resets = [started_day, chrono::Utc::now().date_naive()]
        .map(|day| format!("resets at {}T00:00:00Z", day + chrono::Days::new(1)));
    assert!(
        resets.iter().any(|reset| message.contains(reset)),
        "{message}: {resets:?}"
    );
    assert!(
        message.contains("resumes from the saved state"),
        "{message}"
    );
    for stream in STREAMS {
        assert!(
            !stopped.last_state(stream).is_null(),
            "{stream} keeps its state"
        );
    }
    let quota_429s = sandbox.state()["quota_rejections"].as_u64();
    let retried = stopped
        .of_type("LOG")
        .into_iter()
        .filter(|m| m["log"]["message"].as_str().unwrap().contains("quota"))
        .count();
    assert_eq!(
        retried, 0,
        "the quota 429 is not retried ({quota_429s:?} rejected)"
    );

    sandbox.control("reset_quota", json!({}));
    let mut saved = Saved::default();
    saved.absorb(&stopped);
    config = stopped.next_config(&config);
    let resumed = read(dir.path(), &config, &streams, Some(&saved.messages()));
    resumed.assert_ok();
    let union = distinct(&[stopped, resumed]);
    let expected = sandbox.expected_counts();
    for stream in STREAMS {
        assert_eq!(
            union[stream].len(),
            expected[stream],
            "{stream}: nothing lost"
        );
    }
}

/// A quota stop ends the run in seconds, not after minutes of retries.
const QUICK_STOP: Duration = Duration::from_secs(30);
