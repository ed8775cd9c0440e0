//! The command line: spec, discover, and clear errors for bad input.
// These tests run the connector binary's `sandbox` subcommand.
#![cfg(feature = "sandbox")]

mod common;

use std::path::Path;

use common::{run, write_json};
use serde_json::{json, Value};

fn oauth() -> Value {
    json!({"credentials": {"auth_type": "oauth2.0", "client_id": "id",
        "client_secret": "secret", "refresh_token": "refresh"}})
}

#[test]
fn spec_prints_one_spec_message() {
    let run = run(&["spec"]);
    assert_eq!(run.code, 0);
    assert_eq!(run.messages.len(), 1);
    let spec = &run.messages[0]["spec"];
    assert_eq!(spec["advanced_auth"]["auth_flow_type"], "oauth2.0");
    assert_eq!(
        spec["advanced_auth"]["predicate_key"],
        json!(["credentials", "auth_type"])
    );
    assert!(spec["connectionSpecification"]["properties"]["credentials"]["oneOf"].is_array());
}

#[test]
fn discover_lists_every_stream_with_its_schema() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_json(dir.path(), "config.json", &oauth());
    let run = run(&["discover", "--config", config.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    let streams = run.messages[0]["catalog"]["streams"]
        .as_array()
        .unwrap()
        .clone();
    let names: Vec<&str> = streams
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    for name in [
        "contacts",
        "contact_lists",
        "contact_tags",
        "segments",
        "custom_fields",
        "email_campaigns",
        "email_campaign_summaries",
        "account_summary",
    ] {
        assert!(names.contains(&name), "{name}");
    }
    for name in [
        "contact_activity_summary",
        "contact_activity_details",
        "contact_open_and_click_rates",
    ] {
        let stream = streams.iter().find(|s| s["name"] == name).unwrap();
        let description = stream["json_schema"]["description"].as_str().unwrap();
        assert!(
            description.contains("contact_ids"),
            "{name} must say it reads only contact_ids"
        );
    }
    for stream in &streams {
        assert!(
            stream["json_schema"]["properties"].is_object(),
            "{}",
            stream["name"]
        );
        assert!(stream["source_defined_primary_key"].is_array());
        let incremental = stream["supported_sync_modes"]
            .as_array()
            .unwrap()
            .contains(&json!("incremental"));
        assert_eq!(incremental, stream["default_cursor_field"].is_array());
    }
}

/// Each bad config: the words its error must contain.
fn bad_configs() -> Vec<(&'static str, Option<Value>, &'static str)> {
    let mut missing_refresh = oauth();
    missing_refresh["credentials"]
        .as_object_mut()
        .unwrap()
        .remove("refresh_token");
    let with = |key: &str, value: Value| {
        let mut config = oauth();
        config[key] = value;
        config
    };
    let with_credential = |key: &str, value: Value| {
        let mut config = oauth();
        config["credentials"][key] = value;
        config
    };
    vec![
        (
            "missing credentials",
            Some(json!({"start_date": "2024-01-01"})),
            "credentials",
        ),
        (
            "credentials not an object",
            Some(json!({"credentials": "token"})),
            "credentials",
        ),
        (
            "unknown auth_type",
            Some(with_credential("auth_type", "basic".into())),
            "basic",
        ),
        (
            "missing refresh token",
            Some(missing_refresh),
            "refresh_token",
        ),
        (
            "client_id of the wrong type",
            Some(with_credential("client_id", 42.into())),
            "client_id",
        ),
        (
            "empty client secret",
            Some(with_credential("client_secret", "".into())),
            "client_secret",
        ),
        (
            "start_date in words",
            Some(with("start_date", "yesterday".into())),
            "start_date",
        ),
        (
            "start_date impossible",
            Some(with("start_date", "2024-13-45".into())),
            "start_date",
        ),
        (
            "requests_per_second text",
            Some(with("requests_per_second", "fast".into())),
            "requests_per_second",
        ),
        (
            "requests_per_second zero",
            Some(with("requests_per_second", 0.into())),
            "requests_per_second",
        ),
        (
            "api_base_url not a URL",
            Some(with("api_base_url", "api.cc.email".into())),
            "api_base_url",
        ),
        (
            "token_url not http",
            Some(with("token_url", "ftp://x/token".into())),
            "token_url",
        ),
        (
            "bad token expiry",
            Some(with_credential("token_expiry_date", "soon".into())),
            "token_expiry_date",
        ),
        ("config is a list", Some(json!([1, 2])), "JSON object"),
        ("not JSON", None, "not valid JSON"),
    ]
}

#[test]
fn bad_configs_fail_clearly_without_panic() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = write_json(dir.path(), "catalog.json", &json!({"streams": []}));
    for (what, config, needle) in bad_configs() {
        let path = dir.path().join("config.json");
        match &config {
            Some(config) => std::fs::write(&path, config.to_string()).unwrap(),
            None => std::fs::write(&path, "{\"credentials\": ").unwrap(),
        }
        let path = path.to_str().unwrap();
        for args in [
            vec!["discover", "--config", path],
            vec![
                "read",
                "--config",
                path,
                "--catalog",
                catalog.to_str().unwrap(),
            ],
        ] {
            let run = run(&args);
            assert_eq!(run.code, 1, "{what}: {args:?} should fail");
            assert!(!run.stderr.contains("panicked"), "{what}: {}", run.stderr);
            let errors = run.errors();
            assert_eq!(errors.len(), 1, "{what}");
            assert_eq!(errors[0]["failure_type"], "config_error", "{what}");
            let message = errors[0]["message"].as_str().unwrap();
            assert!(message.contains(needle), "{what}: {message}");
            assert!(
                !message.contains("secret\"") && !message.contains("\"refresh\""),
                "{message}"
            );
        }
        let run = run(&["check", "--config", path]);
        assert_eq!(run.code, 0);
        assert_eq!(
            run.messages[0]["connectionStatus"]["status"], "FAILED",
            "{what}"
        );
    }
    let run = run(&["discover", "--config", "/nonexistent/config.json"]);
    assert_eq!(run.code, 1);
    assert!(run.errors()[0]["message"]
        .as_str()
        .unwrap()
        .contains("cannot read config file"));
}

#[test]
fn bad_catalogs_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_json(dir.path(), "config.json", &oauth());
    for (catalog, needle) in [
        (
            json!({"streams": [{"stream": {"name": "nope"}, "sync_mode": "full_refresh"}]}),
            "\"nope\"",
        ),
        (
            json!({"streams": [{"stream": {"name": "contacts"}, "sync_mode": "sometimes"}]}),
            "sometimes",
        ),
        (json!({"stream": []}), "streams"),
    ] {
        let path = write_json(dir.path(), "catalog.json", &catalog);
        let run = run(&[
            "read",
            "--config",
            config.to_str().unwrap(),
            "--catalog",
            path.to_str().unwrap(),
        ]);
        assert_eq!(run.code, 1);
        let message = run.errors()[0]["message"].as_str().unwrap().to_string();
        assert!(message.contains(needle), "{message}");
    }
}

/// The origin the fixtures in integration_tests/ name: a user's
/// `sandbox --port 8718`.
const FIXTURE_ORIGIN: &str = "http://127.0.0.1:8718";

/// The fixture `name` from integration_tests/, written into `dir` with its
/// URLs pointing at `sandbox`: the test's sandbox listens on a free port, so
/// a sandbox the user runs on 8718 neither breaks the test nor answers it.
fn fixture_at(sandbox: &common::Sandbox, dir: &Path, name: &str) -> String {
    let path = format!("{}/integration_tests/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    let origin = sandbox.base_url.trim_end_matches("/v3");
    let copy = dir.join(name);
    std::fs::write(&copy, text.replace(FIXTURE_ORIGIN, origin)).unwrap();
    copy.display().to_string()
}

/// The fixtures in integration_tests/ match `sandbox --port 8718` (seed 42).
#[test]
fn integration_fixtures_work_against_the_sandbox() {
    let fixtures = format!("{}/integration_tests", env!("CARGO_MANIFEST_DIR"));
    let sandbox = common::Sandbox::start(&["--port", "0", "--contacts", "40", "--rps", "50"]);
    let copies = tempfile::tempdir().unwrap();
    for name in ["sample_config.json", "invalid_config.json"] {
        let text = std::fs::read_to_string(format!("{fixtures}/{name}")).unwrap();
        assert!(
            text.contains(FIXTURE_ORIGIN),
            "{name} names {FIXTURE_ORIGIN}"
        );
    }
    let sample = fixture_at(&sandbox, copies.path(), "sample_config.json");
    let invalid = fixture_at(&sandbox, copies.path(), "invalid_config.json");
    let catalog = format!("{fixtures}/configured_catalog.json");

    let check = run(&["check", "--config", &invalid]);
    assert_eq!(check.messages[0]["connectionStatus"]["status"], "FAILED");
    let check = run(&["check", "--config", &sample]);
    let status = &check.of_type("CONNECTION_STATUS")[0]["connectionStatus"];
    assert_eq!(status["status"], "SUCCEEDED", "{status}");

    // The check rotated the refresh token; the platform keeps the new config.
    let dir = tempfile::tempdir().unwrap();
    let sample: Value = serde_json::from_str(&std::fs::read_to_string(&sample).unwrap()).unwrap();
    // No endpoint lists landing pages: the sample names seed 42's.
    assert_eq!(
        sample["landing_page_activity_ids"],
        sandbox.config["landing_page_activity_ids"]
    );
    let mut config = check.next_config(&sample);
    config["requests_per_second"] = 50.into(); // the sample's 4/s would take minutes here
    let config = write_json(dir.path(), "config.json", &config);
    let read = run(&[
        "read",
        "--config",
        config.to_str().unwrap(),
        "--catalog",
        &catalog,
    ]);
    read.assert_ok();
    // The fixture catalog holds every stream but the opt-in ones.
    for (stream, count) in sandbox.expected_counts() {
        if common::OPT_IN_STREAMS.contains(&stream.as_str()) {
            continue;
        }
        assert_eq!(read.records(&stream).len(), count, "{stream}");
    }
}
