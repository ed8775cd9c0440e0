//! "Nothing lost" checks: the fake's ground truth of every stream, the union of the
//! records of several runs compared with it by primary key, runs the connector killed
//! mid-sync, and the state a platform hands to the next run.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};

use super::{connector, read_files, Run, Sandbox};

/// The primary keys of every record the sandbox holds for a stream now.
pub struct GroundTruth {
    pub key: Vec<String>,
    pub keys: BTreeSet<String>,
}

impl Sandbox {
    /// `GET /__sandbox/ground_truth?stream=NAME`; keys are JSON arrays as text.
    pub fn ground_truth(&self, stream: &str) -> GroundTruth {
        let url = format!("{}/__sandbox/ground_truth?stream={stream}", self.origin());
        let body: Value = ureq::get(&url)
            .call()
            .unwrap_or_else(|e| panic!("ground truth of {stream}: {e}"))
            .into_json()
            .unwrap();
        GroundTruth {
            key: serde_json::from_value(body["key"].clone()).unwrap(),
            keys: body["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(Value::to_string)
                .collect(),
        }
    }

    /// The streams the sandbox keeps a ground truth of.
    pub fn ground_truth_streams(&self) -> Vec<String> {
        self.expected_counts().into_keys().collect()
    }
}

/// The primary key of `record` as a JSON array text, as the ground truth lists keys.
pub fn key_of(record: &Value, key: &[String]) -> String {
    Value::Array(key.iter().map(|f| record[f.as_str()].clone()).collect()).to_string()
}

/// The keys of `stream`'s records over all `runs`.
pub fn union_of_keys(runs: &[&Run], stream: &str, key: &[String]) -> BTreeSet<String> {
    runs.iter()
        .flat_map(|run| run.records(stream))
        .map(|r| key_of(r, key))
        .collect()
}

/// Asserts that the union of `runs`' records of each stream is exactly the sandbox's
/// ground truth: nothing missing, nothing that the API does not hold.
pub fn assert_nothing_lost(sandbox: &Sandbox, streams: &[&str], runs: &[&Run], context: &str) {
    let mut problems = Vec::new();
    for stream in streams {
        let truth = sandbox.ground_truth(stream);
        assert!(
            !truth.keys.is_empty() || *stream == "campaign_activity_schedules",
            "{stream}: the sandbox holds no records: a vacuous check"
        );
        let read = union_of_keys(runs, stream, &truth.key);
        let missing: Vec<&String> = truth.keys.difference(&read).collect();
        let unknown: Vec<&String> = read.difference(&truth.keys).collect();
        if !missing.is_empty() || !unknown.is_empty() {
            problems.push(format!(
                "{stream}: {} of {} records missing (e.g. {:?}), {} not in the API (e.g. {:?})",
                missing.len(),
                truth.keys.len(),
                missing.iter().take(3).collect::<Vec<_>>(),
                unknown.len(),
                unknown.iter().take(3).collect::<Vec<_>>(),
            ));
        }
    }
    assert!(problems.is_empty(), "{context}:\n{}", problems.join("\n"));
}

/// Streams a run reported INCOMPLETE.
pub fn incomplete_streams(run: &Run) -> BTreeSet<String> {
    run.of_type("TRACE")
        .into_iter()
        .filter(|t| t["trace"]["stream_status"]["status"] == "INCOMPLETE")
        .map(|t| {
            t["trace"]["stream_status"]["stream_descriptor"]["name"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

/// The state a platform passes to the run after `run`: per stream, the last STATE
/// message `run` printed, else the one from `previous` (an array of state messages).
pub fn merge_state(previous: Option<&Value>, run: &Run) -> Value {
    let name = |s: &Value| {
        s["stream"]["stream_descriptor"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let mut per_stream: BTreeMap<String, Value> = previous
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|s| (name(s), s.clone()))
        .collect();
    for message in run.of_type("STATE") {
        assert_eq!(
            message["state"]["type"], "STREAM",
            "per-stream state: {message}"
        );
        per_stream.insert(name(&message["state"]), message["state"].clone());
    }
    Value::Array(per_stream.into_values().collect())
}

/// `config` reading through a proxy at `base_url` and `token_url`, at `rps`, with a
/// one-day report lookback (short, so a resume that skipped unread parents would show).
pub fn proxied_config(config: &Value, base_url: &str, token_url: &str, rps: u32) -> Value {
    let mut config = config.clone();
    config["api_base_url"] = json!(base_url);
    config["token_url"] = json!(token_url);
    config["requests_per_second"] = json!(rps);
    config["report_lookback_days"] = json!(1);
    config
}

/// One `read`, SIGKILLed once it has printed `kill_after` RECORD lines (if it gets
/// that far). Everything printed before the kill counts, as a platform reading stdout
/// has it; a line cut by the kill is dropped. `Run::code` is -1 when killed.
pub fn read_killed(
    dir: &Path,
    config: &Value,
    catalog: &Value,
    state: Option<&Value>,
    kill_after: Option<usize>,
    timeout: Duration,
) -> Run {
    let args = read_files(dir, config, catalog, state);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let cache = tempfile::tempdir().unwrap();
    let stderr_path = dir.join("stderr.txt");
    let mut child = connector(&args, &cache.path().join("tokens.json"))
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    // A watchdog: a run that neither finishes nor is killed in time is a hang.
    let pid = child.id();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if done_rx.recv_timeout(timeout).is_err() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            return true;
        }
        false
    });
    let mut lines = Vec::new();
    let mut records = 0;
    let mut killed = false;
    for line in BufReader::new(stdout).split(b'\n') {
        let Ok(line) = line else { break };
        let Ok(message) = serde_json::from_slice::<Value>(&line) else {
            continue;
        };
        if message["type"] == "RECORD" {
            records += 1;
        }
        lines.push(message);
        if !killed && kill_after.is_some_and(|k| records >= k) {
            child.kill().unwrap();
            killed = true;
        }
    }
    let status = child.wait().unwrap();
    let _ = done_tx.send(());
    let hung = watchdog.join().unwrap();
    assert!(
        !hung,
        "the run did not finish within {timeout:?} (a hang or a loop); it printed {} messages, last: {:?}\n{}",
        lines.len(),
        lines.last(),
        std::fs::read_to_string(&stderr_path).unwrap_or_default()
    );
    let stdout: String = lines.iter().map(|m| format!("{m}\n")).collect();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let code = if killed {
        -1
    } else {
        status.code().unwrap_or(-1)
    };
    Run::from_output(code, stdout.as_bytes(), stderr.as_bytes())
}

/// A small deterministic generator for kill points (the tests need no more).
pub struct Draws(u64);

impl Draws {
    pub fn new(seed: u64) -> Draws {
        Draws(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// Uniform in `lo..hi`.
    pub fn between(&mut self, lo: usize, hi: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        lo + ((self.0 >> 33) as usize) % (hi - lo).max(1)
    }
}
