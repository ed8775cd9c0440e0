//! `plan`: its estimate of a sync's requests, made before any read, against
//! what the sync then costs (counted by the sandbox), on the sandbox's
//! default account and a large one; Singer's `--plan`; and bad input named
//! as `check` names it.
// These tests run the connector binary's `sandbox` subcommand.
#![cfg(feature = "sandbox")]

mod common;

use std::path::Path;

use common::{
    all_streams, api_requests, catalog, read_counted, run_raw as connector, write_json, Sandbox,
};
use serde_json::{json, Value};

/// How far an estimate may be from the requests the sync then takes.
const TOLERANCE: f64 = 0.15;

/// The plan as JSON, with the config the plan left in its file (it rotates
/// the refresh token) and the requests the sandbox served for it.
fn plan(sandbox: &Sandbox, dir: &Path, config: &Value, extra: &[&str]) -> (Value, Value, usize) {
    let path = write_json(dir, "plan-config.json", config);
    let mut args = vec![
        "plan",
        "--config",
        path.to_str().unwrap(),
        "--format",
        "json",
    ];
    args.extend_from_slice(extra);
    let before = sandbox.request_counts();
    let (code, stdout, stderr) = connector(&args);
    assert_eq!(code, 0, "{stderr}");
    let spent: usize = api_requests(&sandbox.requests_since(&before))
        .values()
        .sum();
    let plan = serde_json::from_str(&stdout).expect("the plan is one JSON document");
    let config = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    (plan, config, spent)
}

fn assert_close(what: &str, estimate: u64, actual: usize) {
    let off = (estimate as f64 - actual as f64).abs() / actual as f64;
    assert!(
        off <= TOLERANCE,
        "{what}: estimated {estimate}, took {actual} ({:.0}% off)",
        off * 100.0
    );
}

fn config_at_full_speed(sandbox: &Sandbox) -> Value {
    let mut config = sandbox.config.clone();
    config["requests_per_second"] = json!(100);
    config
}

#[test]
fn the_default_accounts_plan_is_close_to_its_full_and_incremental_syncs() {
    let sandbox = Sandbox::start(&["--rps", "100"]);
    let dir = tempfile::tempdir().unwrap();
    let (plan, config, spent) = plan(&sandbox, dir.path(), &config_at_full_speed(&sandbox), &[]);
    assert_eq!(
        plan["plan_requests"].as_u64().unwrap() as usize,
        spent,
        "the plan reports its own cost"
    );
    assert!(spent < 40, "the plan took {spent} requests");
    assert_eq!(plan["daily_quota"], 10_000);
    assert_eq!(plan["first_sync_days"], 1);

    // Without a catalog, the plan is of what a default selection reads.
    let every = all_streams();
    let names: Vec<&str> = every.iter().map(String::as_str).collect();
    let planned: Vec<&str> = plan["streams"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["read"] == "selected")
        .map(|s| s["stream"].as_str().unwrap())
        .collect();
    assert_eq!(planned, names);

    let streams = catalog(&names, true);
    let (full, spent) = read_counted(&sandbox, dir.path(), &config, &streams, None);
    full.assert_ok();
    let full_requests: usize = api_requests(&spent).values().sum();
    assert_close(
        "full sync",
        plan["full_sync_requests"].as_u64().unwrap(),
        full_requests,
    );

    let config = full.next_config(&config);
    let state = full.state_messages();
    let (quiet, spent) = read_counted(&sandbox, dir.path(), &config, &streams, Some(&state));
    quiet.assert_ok();
    assert_close(
        "no-change incremental sync",
        plan["incremental_requests"].as_u64().unwrap(),
        api_requests(&spent).values().sum(),
    );
}

/// The streams whose cost grows with the account: contacts (pages, cut
/// into windows), per-activity reads and reports, campaign listing.
const SCALING: [&str; 4] = [
    "contacts",
    "email_campaign_activities",
    "email_opens",
    "email_did_not_opens",
];

#[test]
fn a_large_accounts_plan_is_close_to_its_full_sync() {
    let sandbox = Sandbox::start(&["--contacts", "100000", "--campaigns", "300", "--rps", "100"]);
    let dir = tempfile::tempdir().unwrap();
    let streams = catalog(&SCALING, true);
    let catalog_path = write_json(dir.path(), "plan-catalog.json", &streams);
    let (plan, config, _) = plan(
        &sandbox,
        dir.path(),
        &config_at_full_speed(&sandbox),
        &["--catalog", catalog_path.to_str().unwrap()],
    );
    let (run, spent) = read_counted(&sandbox, dir.path(), &config, &streams, None);
    run.assert_ok();
    let actual: usize = api_requests(&spent).values().sum();
    assert!(actual > 1_500, "a large account: {actual} requests");
    assert_close(
        "full sync",
        plan["full_sync_requests"].as_u64().unwrap(),
        actual,
    );
}

#[test]
fn singer_plan_reads_the_singer_catalog_and_prints_a_table_or_json() {
    let sandbox = Sandbox::start(&["--rps", "100"]);
    let dir = tempfile::tempdir().unwrap();
    let config = write_json(dir.path(), "config.json", &config_at_full_speed(&sandbox));
    let config = config.to_str().unwrap();
    let (code, stdout, stderr) = connector(&["--config", config, "--discover"]);
    assert_eq!(code, 0, "{stderr}");
    let mut singer_catalog: Value = serde_json::from_str(&stdout).unwrap();
    for stream in singer_catalog["streams"].as_array_mut().unwrap() {
        let name = stream["tap_stream_id"].as_str().unwrap().to_string();
        stream["metadata"][0]["metadata"]["selected"] =
            json!(name == "contacts" || name == "email_sends");
    }
    let path = write_json(dir.path(), "catalog.json", &singer_catalog);
    let path = path.to_str().unwrap();

    let (code, stdout, stderr) = connector(&[
        "--config",
        config,
        "--plan",
        "--properties",
        path,
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let plan: Value = serde_json::from_str(&stdout).expect("stdout is the plan alone");
    let rows: Vec<(&str, &str)> = plan["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["stream"].as_str().unwrap(), s["read"].as_str().unwrap()))
        .collect();
    assert_eq!(
        rows[..2],
        [("contacts", "selected"), ("email_sends", "selected")]
    );
    // The parents and stats email_sends needs, each counted once.
    for shared in [
        ("campaign_activity_refs", "parents"),
        ("email_campaigns", "parents"),
        ("email_campaign_activity_stats", "stats"),
    ] {
        assert_eq!(rows.iter().filter(|r| **r == shared).count(), 1, "{rows:?}");
    }

    let (code, table, _) = connector(&["--config", config, "--plan", "--catalog", path]);
    assert_eq!(code, 0);
    assert!(table.starts_with("stream"), "{table}");
    assert!(table.contains("\ntotal "), "{table}");
    assert!(table.contains("estimate"), "says the numbers are estimates");

    let (code, _, stderr) = connector(&["--config", config, "--plan", "--format", "markdown"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("--format json"), "{stderr}");
}

#[test]
fn a_missing_config_or_a_refused_token_is_named_as_check_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere.json");
    let missing = missing.to_str().unwrap();
    let status = |config: &str| {
        let (_, stdout, _) = connector(&["check", "--config", config]);
        let message: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
        message["connectionStatus"]["message"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (code, stdout, stderr) = connector(&["plan", "--config", missing]);
    assert_eq!(code, 1);
    assert!(stdout.is_empty());
    assert!(stderr.contains(&status(missing)), "{stderr}");

    let sandbox = Sandbox::start(&["--contacts", "10"]);
    sandbox.control("revoke", json!({}));
    let config = write_json(dir.path(), "config.json", &sandbox.config);
    let config = config.to_str().unwrap();
    let (code, stdout, stderr) = connector(&["plan", "--config", config]);
    assert_eq!(code, 1);
    assert!(stdout.is_empty());
    // Check says which scope it was checking; the refusal is the same.
    let refused = status(config);
    let (_, refusal) = refused.split_once(": ").unwrap();
    assert!(refusal.contains("invalid_grant"), "{refusal}");
    assert!(stderr.contains(refusal), "{stderr}\nvs check: {refusal}");
    let (code, _, singer_stderr) = connector(&["--config", config, "--plan"]);
    assert_eq!(code, 1);
    assert!(singer_stderr.contains("invalid_grant"), "{singer_stderr}");
}
