//! OAuth: one refresh per run, rotated refresh tokens reported and used,
//! 401 recovery, clear errors, and no secret in any output.
// These tests run the connector binary's `sandbox` subcommand.
#![cfg(feature = "sandbox")]

mod common;

use common::{catalog, read, run, write_json, Sandbox};
use serde_json::{json, Value};

fn secrets(config: &Value) -> Vec<String> {
    ["client_secret", "refresh_token", "access_token"]
        .iter()
        .filter_map(|k| config["credentials"][k].as_str().map(str::to_string))
        .collect()
}

#[test]
fn rotated_refresh_token_is_emitted_and_used_afterwards() {
    let sandbox = Sandbox::start(&["--contacts", "30"]);
    let dir = tempfile::tempdir().unwrap();
    let streams = catalog(
        &[
            "contacts",
            "contact_lists",
            "contact_tags",
            "segments",
            "custom_fields",
        ],
        false,
    );
    let first = read(dir.path(), &sandbox.config, &streams, None);
    first.assert_ok();
    assert_eq!(
        sandbox.token_requests(),
        1,
        "one refresh shared by all streams"
    );

    let controls = first.of_type("CONTROL");
    assert_eq!(controls.len(), 1);
    let updated = &controls[0]["control"]["connectorConfig"]["config"];
    assert_eq!(controls[0]["control"]["type"], "CONNECTOR_CONFIG");
    assert_ne!(
        updated["credentials"]["refresh_token"],
        sandbox.config["credentials"]["refresh_token"]
    );
    assert_eq!(
        updated["api_base_url"], sandbox.config["api_base_url"],
        "other keys kept"
    );
    assert_eq!(
        sandbox.state()["current_refresh_token"],
        updated["credentials"]["refresh_token"]
    );

    // Secrets appear nowhere but in the CONTROL message that must carry them.
    let mut shown = first.stderr.clone();
    for message in first.messages.iter().filter(|m| m["type"] != "CONTROL") {
        shown.push_str(&message.to_string());
    }
    for secret in secrets(&sandbox.config)
        .iter()
        .chain(secrets(updated).iter())
    {
        assert!(!shown.contains(secret.as_str()), "a secret leaked");
    }

    // The updated config works: its access token is reused without a refresh…
    let second = read(dir.path(), updated, &streams, None);
    second.assert_ok();
    assert_eq!(sandbox.token_requests(), 1);
    // …and its refresh token is the live one.
    let mut refresh_only = updated.clone();
    refresh_only["credentials"]
        .as_object_mut()
        .unwrap()
        .remove("access_token");
    refresh_only["credentials"]
        .as_object_mut()
        .unwrap()
        .remove("token_expiry_date");
    read(dir.path(), &refresh_only, &streams, None).assert_ok();
    assert_eq!(sandbox.token_requests(), 2, "the second refresh");

    // The original refresh token was spent: a clear config error.
    let stale = read(dir.path(), &sandbox.config, &streams, None);
    assert_eq!(stale.code, 1);
    let error = &stale.errors()[0];
    assert_eq!(error["failure_type"], "config_error");
    assert!(
        error["message"].as_str().unwrap().contains("invalid_grant"),
        "{error}"
    );
    assert!(
        error["message"].as_str().unwrap().contains("Re-authorize"),
        "{error}"
    );
}

#[test]
fn a_401_mid_sync_refreshes_once_and_retries() {
    let sandbox = Sandbox::start(&["--contacts", "30"]);
    let dir = tempfile::tempdir().unwrap();
    let streams = catalog(&["contacts"], false);
    let first = read(dir.path(), &sandbox.config, &streams, None);
    let updated = first.of_type("CONTROL")[0]["control"]["connectorConfig"]["config"].clone();
    sandbox.control("expire_access_tokens", json!({}));
    let second = read(dir.path(), &updated, &streams, None);
    second.assert_ok();
    assert_eq!(
        second.records("contacts").len(),
        sandbox.expected_counts()["contacts"]
    );
    assert_eq!(
        sandbox.token_requests(),
        2,
        "the first read's refresh, and one after the 401"
    );
}

fn check(config: &Value) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = write_json(dir.path(), "config.json", config);
    let run = run(&["check", "--config", path.to_str().unwrap()]);
    assert_eq!(run.code, 0);
    let status = &run.of_type("CONNECTION_STATUS")[0]["connectionStatus"];
    match status["status"].as_str().unwrap() {
        "SUCCEEDED" => "SUCCEEDED".into(),
        _ => status["message"].as_str().unwrap().to_string(),
    }
}

#[test]
fn check_explains_what_is_wrong() {
    let sandbox = Sandbox::start(&["--contacts", "10"]);
    let good = sandbox.config.clone();

    let mut wrong_secret = good.clone();
    wrong_secret["credentials"]["client_secret"] = "nope".into();
    let message = check(&wrong_secret);
    assert!(message.contains("client_id/client_secret"), "{message}");

    let mut unreachable = good.clone();
    unreachable["api_base_url"] = "http://127.0.0.1:9/v3".into();
    unreachable["credentials"] = json!({"auth_type": "access_token", "access_token": "t"});
    let message = check(&unreachable);
    assert!(message.contains("cannot connect"), "{message}");

    let mut wrong_path = sandbox.live_config();
    wrong_path["api_base_url"] = format!("{}/v9", sandbox.base_url.trim_end_matches("/v3")).into();
    let message = check(&wrong_path);
    assert!(
        message.contains("404") && message.contains("api_base_url"),
        "{message}"
    );

    let bad_token = json!({"credentials": {"auth_type": "access_token", "access_token": "forged"},
        "api_base_url": sandbox.base_url});
    let message = check(&bad_token);
    assert!(
        message.contains("401") || message.contains("rejected"),
        "{message}"
    );

    assert_eq!(check(&sandbox.live_config()), "SUCCEEDED");
    let before_revoke = sandbox.live_config();
    sandbox.control("revoke", json!({}));
    let message = check(&before_revoke);
    assert!(
        message.contains("invalid_grant") && message.contains("Re-authorize"),
        "{message}"
    );
}
