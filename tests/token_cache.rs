//! The token cache: a rotated refresh token survives a client that never
//! stores it (Meltano regenerates its config), two syncs started together,
//! and a process killed right after its refresh; the sandbox's long-lived
//! mode; errors that name the token sources tried; and no token anywhere but
//! in CONTROL messages and the private cache file.
// These tests run the connector binary's `sandbox` subcommand.
#![cfg(feature = "sandbox")]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::{
    catalog, connector, read, read_args, run, run_until, write_json, Run, Sandbox, TOKEN_ROUTE,
};
use serde_json::{json, Value};

/// `config` with its token cache in `dir`.
fn with_cache(config: &Value, dir: &Path) -> (Value, PathBuf) {
    let path = dir.join("state").join("tokens.json");
    let mut config = config.clone();
    config["token_cache_path"] = path.display().to_string().into();
    (config, path)
}

/// Every token the sandbox, the runs and the cache file have seen.
fn secrets(sandbox: &Sandbox, runs: &[&Run], cache: &Path) -> Vec<String> {
    let mut found = vec![
        sandbox.config["credentials"]["client_secret"].clone(),
        sandbox.config["credentials"]["refresh_token"].clone(),
        sandbox.state()["current_refresh_token"].clone(),
    ];
    for run in runs {
        for control in run.of_type("CONTROL") {
            let credentials = &control["control"]["connectorConfig"]["config"]["credentials"];
            found.push(credentials["refresh_token"].clone());
            found.push(credentials["access_token"].clone());
        }
    }
    if let Ok(text) = std::fs::read_to_string(cache) {
        let file: Value = serde_json::from_str(&text).unwrap();
        for entry in file["accounts"].as_array().unwrap() {
            found.push(entry["refresh_token"].clone());
            found.push(entry["access_token"].clone());
        }
    }
    found
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// No token in stderr or in any stdout line but a CONTROL message.
fn assert_no_leak(runs: &[&Run], secrets: &[String]) {
    for run in runs {
        let mut shown = run.stderr.clone();
        for message in run.messages.iter().filter(|m| m["type"] != "CONTROL") {
            shown.push_str(&message.to_string());
        }
        for secret in secrets {
            assert!(!shown.contains(secret.as_str()), "a token leaked");
        }
    }
}

fn assert_private(cache: &Path) {
    let mode = std::fs::metadata(cache).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the token cache is readable by others");
}

/// A Singer catalog (as Meltano builds it) selecting `streams`.
fn singer_catalog(dir: &Path, config: &Path, streams: &[&str]) -> PathBuf {
    let output = connector(
        &["--config", config.to_str().unwrap(), "--discover"],
        &dir.join("unused-tokens.json"),
    )
    .output()
    .unwrap();
    assert!(output.status.success());
    let mut catalog: Value = serde_json::from_slice(&output.stdout).unwrap();
    for stream in catalog["streams"].as_array_mut().unwrap() {
        let selected = streams.contains(&stream["tap_stream_id"].as_str().unwrap());
        for entry in stream["metadata"].as_array_mut().unwrap() {
            if entry["breadcrumb"] == json!([]) {
                entry["metadata"]["selected"] = selected.into();
            }
        }
    }
    write_json(dir, "catalog.json", &catalog)
}

#[test]
fn meltano_like_runs_with_the_original_config_keep_working() {
    let sandbox = Sandbox::start(&["--contacts", "30"]);
    let dir = tempfile::tempdir().unwrap();
    let (original, cache) = with_cache(&sandbox.config, dir.path());
    let catalog_path = singer_catalog(
        dir.path(),
        &write_json(dir.path(), "config.json", &original),
        &["contacts", "contact_lists"],
    );
    let mut runs = Vec::new();
    // Three runs: the first refreshes with the config's token, the next two
    // only with the cache's.
    for n in 1..=3 {
        if n > 1 {
            // The cached access token dies: this run must really refresh.
            sandbox.control("expire_access_tokens", json!({}));
        }
        // Meltano writes its config file anew from its own settings.
        let config = write_json(dir.path(), "config.json", &original);
        let run = run(&[
            "--config",
            config.to_str().unwrap(),
            "--catalog",
            catalog_path.to_str().unwrap(),
        ]);
        assert_eq!(run.code, 0, "run {n}: {}", run.stderr);
        assert_eq!(
            run.singer_records("contacts").len(),
            sandbox.expected_counts()["contacts"]
        );
        assert_eq!(sandbox.token_requests(), n, "run {n} refreshed once");
        if n > 1 {
            assert!(run.stderr.contains("newer tokens from the token cache"));
        }
        runs.push(run);
    }
    assert_private(&cache);
    let text = std::fs::read_to_string(&cache).unwrap();
    let current = sandbox.state()["current_refresh_token"].clone();
    assert!(
        text.contains(current.as_str().unwrap()),
        "the live token is cached"
    );
    let runs: Vec<&Run> = runs.iter().collect();
    assert_no_leak(&runs, &secrets(&sandbox, &runs, &cache));

    // Without the cache the original refresh token is long spent, and the
    // error says which token was tried.
    let elsewhere = tempfile::tempdir().unwrap();
    let (uncached, _) = with_cache(&sandbox.config, elsewhere.path());
    let stale = read(
        dir.path(),
        &uncached,
        &catalog(&["contact_lists"], false),
        None,
    );
    assert_eq!(stale.code, 1);
    let error = stale.errors()[0].clone();
    assert_eq!(error["failure_type"], "config_error");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("the refresh token in the config was rejected (invalid_grant"),
        "{message}"
    );
    assert!(message.contains("Re-authorize"), "{message}");
}

#[test]
fn two_reads_started_together_refresh_once() {
    let sandbox = Sandbox::start(&["--contacts", "30"]);
    // The first token request fails: its process retries a second later,
    // holding the lock, so the other one certainly waits for it.
    sandbox.control(
        "faults",
        json!({"path_prefix": "/oauth2/", "status": 503, "count": 1}),
    );
    let dir = tempfile::tempdir().unwrap();
    let (config, cache) = with_cache(&sandbox.config, dir.path());
    let config = write_json(dir.path(), "config.json", &config);
    let streams = write_json(
        dir.path(),
        "catalog.json",
        &catalog(&["contacts", "contact_tags"], false),
    );
    let args = read_args(&config, &streams);
    let unused = dir.path().join("unused-tokens.json");
    let before = sandbox.request_counts();
    let children: Vec<_> = (0..2)
        .map(|_| {
            connector(&args, &unused)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let runs: Vec<Run> = children
        .into_iter()
        .map(|child| {
            let output = child.wait_with_output().unwrap();
            Run::from_output(
                output.status.code().unwrap_or(-1),
                &output.stdout,
                &output.stderr,
            )
        })
        .collect();
    for run in &runs {
        run.assert_ok();
        assert_eq!(
            run.records("contacts").len(),
            sandbox.expected_counts()["contacts"]
        );
        // Each hands the live refresh token to the platform.
        let updated = run.next_config(&Value::Null);
        assert_eq!(
            updated["credentials"]["refresh_token"],
            sandbox.state()["current_refresh_token"]
        );
    }
    assert_eq!(sandbox.token_requests(), 1, "one refresh for both");
    // The token endpoint saw the failed request and its retry, both the
    // first process's: the second waited for its refresh instead of asking.
    assert_eq!(
        sandbox.requests_since(&before).get(TOKEN_ROUTE).copied(),
        Some(2),
        "the second process waited for the first one's refresh"
    );
    assert!(
        !unused.exists(),
        "token_cache_path wins over the environment"
    );
    assert_private(&cache);
    let runs: Vec<&Run> = runs.iter().collect();
    assert_no_leak(&runs, &secrets(&sandbox, &runs, &cache));
}

#[test]
fn a_run_killed_after_its_refresh_leaves_the_tokens_behind() {
    // 3000 contacts, 200 ms a request: the first page is still on its way
    // when the run is killed.
    let sandbox = Sandbox::start(&["--contacts", "3000", "--latency-ms", "200"]);
    let dir = tempfile::tempdir().unwrap();
    let (original, cache) = with_cache(&sandbox.config, dir.path());
    let config = write_json(dir.path(), "config.json", &original);
    let streams = write_json(dir.path(), "catalog.json", &catalog(&["contacts"], false));
    // The refresh succeeded once its CONTROL message is out; a client that
    // dies now (or drops the message) would lose the rotated token.
    let killed = run_until(
        &read_args(&config, &streams),
        &dir.path().join("unused-tokens.json"),
        |line| line.contains("\"type\":\"CONTROL\""),
    );
    assert_eq!(
        killed.of_type("CONTROL").len(),
        1,
        "killed after its refresh"
    );
    assert_eq!(killed.of_type("RECORD").len(), 0, "killed before any page");
    assert_eq!(sandbox.token_requests(), 1);
    assert_private(&cache);

    // The next run is handed the original config, whose refresh token that
    // refresh spent: the cache's valid access token serves it, no refresh.
    let fast = catalog(&["contact_lists", "contact_tags"], false);
    let next = read(dir.path(), &original, &fast, None);
    next.assert_ok();
    assert_eq!(sandbox.token_requests(), 1, "no second refresh");
    let updated = next.next_config(&Value::Null);
    assert_eq!(
        updated["credentials"]["refresh_token"],
        sandbox.state()["current_refresh_token"],
        "the platform is told the live refresh token"
    );

    // Once that access token dies, the cached refresh token (not the spent
    // one) is used.
    sandbox.control("expire_access_tokens", json!({}));
    let later = read(dir.path(), &original, &fast, None);
    later.assert_ok();
    assert_eq!(sandbox.token_requests(), 2);
    let runs = [&killed, &next, &later];
    assert_no_leak(&runs, &secrets(&sandbox, &runs, &cache));

    // A revoked lineage: the cached token and then the config's are tried,
    // and the error names both.
    sandbox.control("revoke", json!({}));
    sandbox.control("expire_access_tokens", json!({}));
    let revoked = read(dir.path(), &original, &fast, None);
    assert_eq!(revoked.code, 1);
    let error = revoked.errors()[0].clone();
    assert_eq!(error["failure_type"], "config_error");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("from the token cache {}", cache.display()))
            && message.contains("and the refresh token in the config were rejected")
            && message.contains("invalid_grant")
            && message.contains("Re-authorize"),
        "{message}"
    );
}

#[test]
fn long_lived_refresh_tokens_are_kept_and_reused() {
    let sandbox = Sandbox::start(&["--contacts", "10", "--refresh-tokens", "long-lived"]);
    let dir = tempfile::tempdir().unwrap();
    let (config, cache) = with_cache(&sandbox.config, dir.path());
    let streams = catalog(&["contact_lists"], false);
    let first = read(dir.path(), &config, &streams, None);
    first.assert_ok();
    assert!(first.of_type("CONTROL").is_empty(), "nothing rotated");
    // The cached access token is reused by a config that holds none.
    read(dir.path(), &config, &streams, None).assert_ok();
    assert_eq!(sandbox.token_requests(), 1);
    sandbox.control("expire_access_tokens", json!({}));
    let third = read(dir.path(), &config, &streams, None);
    third.assert_ok();
    assert!(third.of_type("CONTROL").is_empty());
    assert_eq!(sandbox.token_requests(), 2);
    assert_eq!(
        sandbox.state()["current_refresh_token"],
        sandbox.config["credentials"]["refresh_token"],
        "the sandbox kept the refresh token"
    );
    // Without any cache the same refresh token still works.
    let elsewhere = tempfile::tempdir().unwrap();
    let (uncached, _) = with_cache(&sandbox.config, elsewhere.path());
    read(dir.path(), &uncached, &streams, None).assert_ok();
    assert_eq!(sandbox.token_requests(), 3);
    let runs = [&first, &third];
    assert_no_leak(&runs, &secrets(&sandbox, &runs, &cache));
}
