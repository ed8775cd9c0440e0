//! Shared harness: a sandbox process, the connector binary, and the
//! Airbyte messages it prints.
#![allow(dead_code)] // each test binary uses a different part of the harness

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::{json, Value};

pub const BIN: &str = env!("CARGO_BIN_EXE_source-constant-contact");

/// A `source-constant-contact sandbox` process, killed on drop.
pub struct Sandbox {
    child: Child,
    pub base_url: String,
    pub token_url: String,
    pub config: Value,
}

impl Sandbox {
    pub fn start(args: &[&str]) -> Sandbox {
        let mut child = Command::new(BIN)
            .arg("sandbox")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the sandbox starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("the sandbox prints its address");
        let info: Value = serde_json::from_str(&line).expect("the first line is JSON");
        Sandbox {
            child,
            base_url: info["base_url"].as_str().unwrap().to_string(),
            token_url: info["token_url"].as_str().unwrap().to_string(),
            config: info["config"].clone(),
        }
    }

    fn origin(&self) -> String {
        self.base_url.trim_end_matches("/v3").to_string()
    }

    pub fn control(&self, route: &str, body: Value) -> Value {
        let url = format!("{}/__sandbox/{route}", self.origin());
        let text = ureq::post(&url)
            .send_json(body)
            .unwrap_or_else(|e| panic!("sandbox {route}: {e}"))
            .into_string()
            .unwrap();
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// The sandbox's config with the refresh token that is live right now
    /// (earlier runs may have rotated the original one).
    pub fn live_config(&self) -> Value {
        let mut config = self.config.clone();
        config["credentials"]["refresh_token"] = self.state()["current_refresh_token"].clone();
        config
    }

    pub fn state(&self) -> Value {
        ureq::get(&format!("{}/__sandbox/state", self.origin()))
            .call()
            .unwrap()
            .into_json()
            .unwrap()
    }

    pub fn expected_counts(&self) -> BTreeMap<String, usize> {
        serde_json::from_value(self.state()["expected_counts"].clone()).unwrap()
    }

    /// Request counts per route template, e.g. "GET /v3/emails/{campaign_id}".
    pub fn request_counts(&self) -> BTreeMap<String, usize> {
        serde_json::from_value(self.state()["request_counts"].clone()).unwrap()
    }

    /// The first `n` contact ids, read through the connector itself (it
    /// rotates the refresh token: the returned config is the one to use next).
    pub fn contact_ids(&self, dir: &Path, config: &Value, n: usize) -> (Vec<String>, Value) {
        let run = read(dir, config, &catalog(&["contacts"], false), None);
        run.assert_ok();
        let ids = run
            .records("contacts")
            .iter()
            .filter(|c| c["deleted_at"].is_null())
            .take(n)
            .map(|c| c["contact_id"].as_str().unwrap().to_string())
            .collect();
        (ids, run.next_config(config))
    }

    /// What the contact report streams must return for `ids` over all time.
    pub fn contact_report_counts(&self, ids: &[String]) -> BTreeMap<String, usize> {
        let url = format!(
            "{}/__sandbox/contact_reports?contact_ids={}&start=2000-01-01T00:00:00Z&end=2100-01-01T00:00:00Z",
            self.origin(),
            ids.join(",")
        );
        let body: Value = ureq::get(&url).call().unwrap().into_json().unwrap();
        serde_json::from_value(body["expected_counts"].clone()).unwrap()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn write_json(dir: &Path, name: &str, value: &Value) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_string_pretty(value).unwrap()).unwrap();
    path
}

/// A configured catalog of `streams`, incremental where `incremental`.
pub fn catalog(streams: &[&str], incremental: bool) -> Value {
    let discovered = discover();
    let entries: Vec<Value> = streams
        .iter()
        .map(|name| {
            let stream = discovered
                .iter()
                .find(|s| s["name"] == *name)
                .unwrap_or_else(|| panic!("{name} is discovered"))
                .clone();
            let supports = stream["supported_sync_modes"]
                .as_array()
                .unwrap()
                .contains(&json!("incremental"));
            let mode = if incremental && supports { "incremental" } else { "full_refresh" };
            json!({"stream": stream, "sync_mode": mode,
                   "destination_sync_mode": if mode == "incremental" { "append_dedup" } else { "overwrite" }})
        })
        .collect();
    json!({"streams": entries})
}

/// Streams discover offers but a sync reads only when asked (Singer's
/// `selected-by-default: false`): a bulk export starts a job on the account
/// and adds an activity to `bulk_activities` (`tests/contacts_export.rs`
/// reads it); the social streams cost a request each run for a few records
/// (`tests/events_and_automations.rs` reads them).
pub const OPT_IN_STREAMS: &[&str] = &[
    "contacts_export",
    "social_profiles",
    "social_connections",
    "social_hashtag_groups",
];

/// Every stream discover offers, opt-in ones aside.
pub fn all_streams() -> Vec<String> {
    discover()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .filter(|name| !OPT_IN_STREAMS.contains(&name.as_str()))
        .collect()
}

fn discover() -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let config = write_json(
        dir.path(),
        "config.json",
        &json!({"credentials": {"auth_type": "access_token", "access_token": "x"}}),
    );
    let run = run(&["discover", "--config", config.to_str().unwrap()]);
    let catalog = run.of_type("CATALOG");
    catalog[0]["catalog"]["streams"].as_array().unwrap().clone()
}

/// Where the connector keeps its token cache when the config has no
/// `token_cache_path`.
pub const TOKEN_CACHE_ENV: &str = "SOURCE_CONSTANT_CONTACT_TOKEN_CACHE";

/// The connector with `args` and its token cache at `token_cache`.
pub fn connector(args: &[&str], token_cache: &Path) -> Command {
    let mut command = Command::new(BIN);
    command.args(args).env(TOKEN_CACHE_ENV, token_cache);
    command
}

/// One finished run of the connector.
pub struct Run {
    pub code: i32,
    pub messages: Vec<Value>,
    pub stdout: String,
    pub stderr: String,
}

pub fn run(args: &[&str]) -> Run {
    // Each run has an empty token cache of its own: tests never touch the
    // user's, and runs share tokens only through what a test hands on.
    let cache = tempfile::tempdir().unwrap();
    let output = connector(args, &cache.path().join("tokens.json"))
        .output()
        .unwrap();
    Run::from_output(
        output.status.code().unwrap_or(-1),
        &output.stdout,
        &output.stderr,
    )
}

/// A run whose output is not one message per line (`--about`, `plan`),
/// with an empty token cache of its own: exit code, stdout, stderr.
pub fn run_raw(args: &[&str]) -> (i32, String, String) {
    let cache = tempfile::tempdir().unwrap();
    let output = connector(args, &cache.path().join("tokens.json"))
        .output()
        .unwrap();
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).to_string();
    (
        output.status.code().unwrap_or(-1),
        text(&output.stdout),
        text(&output.stderr),
    )
}

impl Run {
    pub fn from_output(code: i32, stdout: &[u8], stderr: &[u8]) -> Run {
        let stdout = String::from_utf8_lossy(stdout).to_string();
        let messages = stdout
            .lines()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"))
            })
            .collect();
        Run {
            code,
            messages,
            stdout,
            stderr: String::from_utf8_lossy(stderr).to_string(),
        }
    }

    pub fn of_type(&self, kind: &str) -> Vec<&Value> {
        self.messages.iter().filter(|m| m["type"] == kind).collect()
    }

    pub fn records(&self, stream: &str) -> Vec<&Value> {
        self.of_type("RECORD")
            .into_iter()
            .filter(|m| m["record"]["stream"] == stream)
            .map(|m| &m["record"]["data"])
            .collect()
    }

    pub fn ids(&self, stream: &str, key: &str) -> BTreeSet<String> {
        self.records(stream)
            .iter()
            .map(|r| r[key].to_string())
            .collect()
    }

    /// The state a platform would pass to the next run: every state message.
    pub fn state_messages(&self) -> Value {
        Value::Array(
            self.of_type("STATE")
                .into_iter()
                .map(|m| m["state"].clone())
                .collect(),
        )
    }

    pub fn last_state(&self, stream: &str) -> Value {
        self.of_type("STATE")
            .into_iter()
            .rfind(|m| m["state"]["stream"]["stream_descriptor"]["name"] == stream)
            .map(|m| m["state"]["stream"]["stream_state"].clone())
            .unwrap_or(Value::Null)
    }

    /// The config the next run must use: the last CONTROL message's, as a
    /// platform stores it, else `previous` (refresh tokens rotate).
    pub fn next_config(&self, previous: &Value) -> Value {
        self.of_type("CONTROL")
            .last()
            .map(|m| m["control"]["connectorConfig"]["config"].clone())
            .unwrap_or_else(|| previous.clone())
    }

    pub fn errors(&self) -> Vec<&Value> {
        self.of_type("TRACE")
            .into_iter()
            .filter(|m| m["trace"]["type"] == "ERROR")
            .map(|m| &m["trace"]["error"])
            .collect()
    }

    pub fn assert_ok(&self) -> &Self {
        assert_eq!(
            self.code,
            0,
            "run failed: {:?}\n{}",
            self.errors(),
            self.stderr
        );
        assert!(self.errors().is_empty(), "{:?}", self.errors());
        self
    }
}

/// `read` with files written to `dir`.
pub fn read(dir: &Path, config: &Value, catalog: &Value, state: Option<&Value>) -> Run {
    let args = read_files(dir, config, catalog, state);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(&args)
}

/// The arguments of `read`, its config, catalog and state written to `dir`.
pub fn read_files(
    dir: &Path,
    config: &Value,
    catalog: &Value,
    state: Option<&Value>,
) -> Vec<String> {
    let config = write_json(dir, "config.json", config);
    let catalog = write_json(dir, "catalog.json", catalog);
    let mut args = vec![
        "read".to_string(),
        "--config".into(),
        config.display().to_string(),
        "--catalog".into(),
        catalog.display().to_string(),
    ];
    if let Some(state) = state {
        args.push("--state".into());
        args.push(write_json(dir, "state.json", state).display().to_string());
    }
    args
}

/// The fake's route template of the OAuth token endpoint, as `request_counts`
/// names it.
pub const TOKEN_ROUTE: &str = "POST /oauth2/default/v1/token";

impl Sandbox {
    /// Requests served per route since `before` (a `request_counts()`
    /// snapshot); routes with no new request are left out.
    pub fn requests_since(&self, before: &BTreeMap<String, usize>) -> BTreeMap<String, usize> {
        self.request_counts()
            .into_iter()
            .map(|(route, n)| {
                let earlier = before.get(&route).copied().unwrap_or(0);
                (route, n - earlier)
            })
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Refresh-token grants the token endpoint has served.
    pub fn token_requests(&self) -> u64 {
        self.state()["token_requests"].as_u64().unwrap()
    }
}

/// `read`, with the requests the sandbox served for it per route.
pub fn read_counted(
    sandbox: &Sandbox,
    dir: &Path,
    config: &Value,
    catalog: &Value,
    state: Option<&Value>,
) -> (Run, BTreeMap<String, usize>) {
    let before = sandbox.request_counts();
    let run = read(dir, config, catalog, state);
    let spent = sandbox.requests_since(&before);
    (run, spent)
}

/// The requests of `spent` made to the V3 API (the token endpoint left out).
pub fn api_requests(spent: &BTreeMap<String, usize>) -> BTreeMap<String, usize> {
    spent
        .iter()
        .filter(|(route, _)| route.contains(" /v3/"))
        .map(|(route, n)| (route.clone(), *n))
        .collect()
}

/// An RFC 3339 timestamp of a record.
pub fn time(value: &Value) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(value.as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc)
}

impl Run {
    /// The statuses `stream`'s STREAM_STATUS traces went through, in order.
    pub fn stream_statuses(&self, stream: &str) -> Vec<&str> {
        self.of_type("TRACE")
            .into_iter()
            .filter(|t| {
                t["trace"]["type"] == "STREAM_STATUS"
                    && t["trace"]["stream_status"]["stream_descriptor"]["name"] == stream
            })
            .map(|t| t["trace"]["stream_status"]["status"].as_str().unwrap())
            .collect()
    }

    /// Records `stream` counted by its STATE messages' `sourceStats.recordCount`.
    pub fn checkpointed_records(&self, stream: &str) -> usize {
        self.of_type("STATE")
            .into_iter()
            .filter(|s| s["state"]["stream"]["stream_descriptor"]["name"] == stream)
            .map(|s| s["state"]["sourceStats"]["recordCount"].as_f64().unwrap() as usize)
            .sum()
    }

    /// The STATE messages of `stream`.
    pub fn state_count(&self, stream: &str) -> usize {
        self.of_type("STATE")
            .into_iter()
            .filter(|s| s["state"]["stream"]["stream_descriptor"]["name"] == stream)
            .count()
    }

    /// Singer mode: the RECORD messages of `stream`.
    pub fn singer_records(&self, stream: &str) -> Vec<&Value> {
        self.messages
            .iter()
            .filter(|m| m["type"] == "RECORD" && m["stream"] == stream)
            .collect()
    }
}

/// Runs the connector with `args` (token cache at `token_cache`), reading its
/// stdout until `stop` accepts a line, then kills it: what it printed so far.
pub fn run_until(args: &[&str], token_cache: &Path, stop: impl FnMut(&str) -> bool) -> Run {
    let mut stop = stop;
    let mut child = connector(args, token_cache)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut seen = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let done = stop(&line);
        seen.push(line);
        if done {
            child.kill().unwrap();
            break;
        }
    }
    child.wait().unwrap();
    Run::from_output(1, seen.join("\n").as_bytes(), b"")
}

/// The arguments of `read` with the config and catalog files at these paths.
pub fn read_args<'a>(config: &'a Path, catalog: &'a Path) -> [&'a str; 5] {
    [
        "read",
        "--config",
        config.to_str().unwrap(),
        "--catalog",
        catalog.to_str().unwrap(),
    ]
}
/// The API contract (tests/fixtures/contract.json) and the checks of traffic against it.
pub mod contract;
/// Ground truth, proxies, killed runs: the "nothing lost" harness.
pub mod proxy_harness;
