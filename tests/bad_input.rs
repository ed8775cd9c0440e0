//! Bad input and refused credentials: a clear error or warning that names
//! the problem, never a panic, a silent skip or a retry storm.
// These tests run the connector binary's `sandbox` subcommand.
#![cfg(feature = "sandbox")]

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{all_streams, catalog, read, Sandbox};
use serde_json::{json, Value};

/// Day counts past the spec's ten years, up to `u32::MAX`: each is refused
/// by name before any date arithmetic (which used to overflow and panic).
#[test]
fn day_counts_out_of_range_are_refused_by_name() {
    let sandbox = Sandbox::start(&["--contacts", "10"]);
    let dir = tempfile::tempdir().unwrap();
    for (field, days) in [
        ("start_days_ago", 100_000_000u64),
        ("end_days_ago", 4_000_000_000),
        ("report_lookback_days", u64::from(u32::MAX)),
        ("start_days_ago", 3651),
    ] {
        let mut config = sandbox.config.clone();
        config.as_object_mut().unwrap().remove("start_date");
        config[field] = json!(days);
        let run = read(
            dir.path(),
            &config,
            &catalog(&["contact_lists"], false),
            None,
        );
        assert_eq!(run.code, 1, "{field}: {days}");
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
        let message = run.errors()[0]["message"].as_str().unwrap().to_string();
        assert!(
            message.contains(field) && message.contains("3650"),
            "{message}"
        );
    }
}

#[test]
fn a_catalog_without_streams_is_an_error() {
    let sandbox = Sandbox::start(&["--contacts", "10"]);
    let dir = tempfile::tempdir().unwrap();
    let run = read(dir.path(), &sandbox.config, &json!({"streams": []}), None);
    assert_eq!(run.code, 1);
    let message = run.errors()[0]["message"].as_str().unwrap().to_string();
    assert!(message.contains("no streams"), "{message}");
}

/// A saved cursor in the future would read nothing: the stream reads from
/// the configured start, and says so.
#[test]
fn a_future_cursor_is_reported_and_read_from_the_start() {
    let sandbox = Sandbox::start(&["--contacts", "40"]);
    let dir = tempfile::tempdir().unwrap();
    let future = "2999-01-01T00:00:00.000Z";
    let state = json!([{"type": "STREAM", "stream": {
        "stream_descriptor": {"name": "contacts"}, "stream_state": {"cursor": future}}}]);
    let run = read(
        dir.path(),
        &sandbox.config,
        &catalog(&["contacts"], true),
        Some(&state),
    );
    run.assert_ok();
    assert_eq!(
        run.records("contacts").len(),
        sandbox.expected_counts()["contacts"]
    );
    let warned = run.of_type("LOG").into_iter().any(|m| {
        let text = m["log"]["message"].as_str().unwrap_or_default();
        m["log"]["level"] == "WARN" && text.contains("contacts") && text.contains(future)
    });
    assert!(warned, "a warning names the stream and the saved value");
}

/// Contact reports with no `contact_ids` have nothing to read, and still
/// end with a STATE message, like every selected stream.
#[test]
fn every_selected_stream_ends_with_a_state() {
    let sandbox = Sandbox::start(&["--contacts", "10"]);
    let dir = tempfile::tempdir().unwrap();
    let streams = ["contact_activity_summary", "contact_lists", "email_opens"];
    let run = read(dir.path(), &sandbox.config, &catalog(&streams, true), None);
    run.assert_ok();
    for stream in streams {
        assert!(
            !run.last_state(stream).is_null(),
            "{stream} ended without a STATE"
        );
    }
}

/// Streams that read nothing without `contact_ids` in the config.
const NEEDS_NO_REQUEST: [&str; 4] = [
    "contact_activity_summary",
    "contact_activity_details",
    "contact_open_and_click_rates",
    "contact_sms_engagement_history",
];

/// One refused refresh token: one token request, one error for the run,
/// every stream stopped with its state.
#[test]
fn refused_credentials_stop_the_run_once() {
    let sandbox = Sandbox::start(&["--contacts", "10"]);
    let dir = tempfile::tempdir().unwrap();
    sandbox.control("revoke", json!({}));
    let every: Vec<String> = all_streams();
    let names: Vec<&str> = every.iter().map(String::as_str).collect();
    let tokens_before = sandbox.state()["token_requests"].as_u64().unwrap();
    let run = read(dir.path(), &sandbox.config, &catalog(&names, true), None);
    assert_eq!(run.code, 1);
    let tokens = sandbox.state()["token_requests"].as_u64().unwrap() - tokens_before;
    assert_eq!(tokens, 1, "one token request for the whole run");
    let errors = run.errors();
    assert_eq!(errors.len(), 1, "one error for the run: {errors:?}");
    assert_eq!(errors[0]["failure_type"], "config_error");
    assert!(errors[0]["message"]
        .as_str()
        .unwrap()
        .contains("invalid_grant"));
    for stream in &names {
        let statuses: Vec<Value> = run
            .of_type("TRACE")
            .into_iter()
            .filter(|m| m["trace"]["stream_status"]["stream_descriptor"]["name"] == *stream)
            .map(|m| m["trace"]["stream_status"]["status"].clone())
            .collect();
        // Contact reports read only the config's contact_ids: with none,
        // they need no token and have nothing to stop.
        if !NEEDS_NO_REQUEST.contains(stream) {
            assert_eq!(statuses.last(), Some(&json!("INCOMPLETE")), "{stream}");
        }
        assert!(
            !run.last_state(stream).is_null(),
            "{stream} keeps its state"
        );
    }
}

/// What a run with its stdout closed before it wrote a byte did: its exit
/// code, its stderr and how long it took.
fn with_closed_stdout(args: &[&str], dir: &std::path::Path) -> (Option<i32>, String, Duration) {
    // The pipe's reader is gone before the connector starts, as after
    // `| head -c 0`: its first write meets a closed pipe, whatever its size.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let writer = {
        let _inside = runtime.enter();
        let (writer, reader) = tokio::net::unix::pipe::pipe().unwrap();
        drop(reader);
        writer.into_blocking_fd().unwrap()
    };
    let started = Instant::now();
    let output = common::connector(args, &dir.join("tokens.json"))
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).to_string(),
        started.elapsed(),
    )
}

/// A reader that goes away (`--discover | head -c 10`, `--about | head`,
/// `read … | head`) ends the run quietly: no panic, nothing on stderr, a
/// non-zero exit (141, as a shell reports a process a closed pipe stopped),
/// and a sync stops at once instead of reading the account into the void.
#[test]
fn a_closed_stdout_ends_the_run_quietly() {
    let sandbox = Sandbox::start(&["--contacts", "2000", "--rps", "50"]);
    let dir = tempfile::tempdir().unwrap();
    let config = common::write_json(dir.path(), "config.json", &sandbox.config);
    let config = config.to_str().unwrap();
    let streams = all_streams();
    let names: Vec<&str> = streams.iter().map(String::as_str).collect();
    let airbyte = common::write_json(dir.path(), "catalog.json", &catalog(&names, false));
    let singer_catalog = {
        let output = common::connector(&["--config", config, "--discover"], dir.path())
            .output()
            .unwrap();
        let path = dir.path().join("singer-catalog.json");
        std::fs::write(&path, output.stdout).unwrap();
        path
    };
    let before = sandbox.request_counts();
    for args in [
        vec!["spec"],
        vec!["discover", "--config", config],
        vec![
            "read",
            "--config",
            config,
            "--catalog",
            airbyte.to_str().unwrap(),
        ],
        vec!["--about"],
        vec!["--about", "--format", "markdown"],
        vec!["--config", config, "--discover"],
        vec![
            "--config",
            config,
            "--catalog",
            singer_catalog.to_str().unwrap(),
        ],
    ] {
        let (code, stderr, took) = with_closed_stdout(&args, dir.path());
        assert_eq!(code, Some(141), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(!stderr.contains("Broken pipe"), "{args:?}: {stderr}");
        assert!(took < Duration::from_secs(10), "{args:?} took {took:?}");
    }
    // The syncs stopped at their first message: far fewer requests than
    // the account's pages (2,000 contacts alone are 4 pages, the reports
    // hundreds).
    let spent: usize = sandbox.requests_since(&before).values().sum();
    assert!(spent < 40, "{spent} requests after stdout was closed");
}

/// The LOG messages of a run at `level` that contain every one of `words`.
fn logs_with<'r>(run: &'r common::Run, level: &str, words: &[&str]) -> Vec<&'r str> {
    run.of_type("LOG")
        .into_iter()
        .filter(|m| m["log"]["level"] == level)
        .filter_map(|m| m["log"]["message"].as_str())
        .filter(|text| words.iter().all(|w| text.contains(w)))
        .collect()
}

/// State that is accepted but odd is named in a LOG line, and the run goes
/// on: an empty file reads everything, state of a stream the source does
/// not have is ignored, the legacy blob is used as per-stream state.
#[test]
fn odd_airbyte_states_are_named_and_the_run_proceeds() {
    let sandbox = Sandbox::start(&["--contacts", "60"]);
    let dir = tempfile::tempdir().unwrap();
    let streams = catalog(&["contacts"], true);
    let all = sandbox.expected_counts()["contacts"];

    // An empty state file: a first sync, said so.
    let args = common::read_files(dir.path(), &sandbox.config, &streams, Some(&json!([])));
    std::fs::write(dir.path().join("state.json"), "").unwrap();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let first = common::run(&args);
    first.assert_ok();
    assert_eq!(first.records("contacts").len(), all);
    let said = logs_with(&first, "WARN", &["state.json", "is empty"]);
    assert_eq!(said.len(), 1, "{:?}", first.of_type("LOG"));
    let saved = first.last_state("contacts");
    let config = first.next_config(&sandbox.config);

    // The legacy blob with the saved state and a stream this source does
    // not have: the state is used (nothing new to read), and both are said.
    let legacy = json!({"contacts": saved, "contatcs": {"cursor": "2025-01-01T00:00:00Z"}});
    let second = read(dir.path(), &config, &streams, Some(&legacy));
    second.assert_ok();
    assert!(
        second.records("contacts").len() < all,
        "the legacy state was used"
    );
    assert_eq!(
        logs_with(&second, "INFO", &["state.json", "legacy"]).len(),
        1
    );
    let unknown = logs_with(&second, "WARN", &["\"contatcs\"", "does not have"]);
    assert_eq!(unknown.len(), 1, "{:?}", second.of_type("LOG"));

    // A plain per-stream state says nothing about the state.
    let config = second.next_config(&config);
    let third = read(
        dir.path(),
        &config,
        &streams,
        Some(&second.state_messages()),
    );
    third.assert_ok();
    let about_state: Vec<&Value> = third
        .of_type("LOG")
        .into_iter()
        .filter(|m| m["log"]["message"].as_str().unwrap().contains("state file"))
        .collect();
    assert!(about_state.is_empty(), "{about_state:?}");
}

/// A port on this host where connecting hangs, as at an address that drops
/// packets: a listener that accepts nothing, with its backlog of one filled
/// (the kernel then drops further connection attempts). Open while the
/// returned values live.
fn blackhole() -> (
    tokio::runtime::Runtime,
    tokio::net::TcpListener,
    Vec<std::net::TcpStream>,
    String,
) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let listener = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        socket.listen(0).unwrap()
    });
    let address = listener.local_addr().unwrap();
    let mut held = Vec::new();
    while let Ok(stream) =
        std::net::TcpStream::connect_timeout(&address, Duration::from_millis(300))
    {
        held.push(stream);
        assert!(held.len() < 100, "the backlog never filled");
    }
    (runtime, listener, held, format!("http://{address}/token"))
}

/// An unreachable `token_url` (a closed port, or one where connecting hangs)
/// fails a check and a read of every stream within 15 s, with one error
/// naming the token URL: retried only briefly, and not once per stream.
#[test]
fn an_unreachable_token_url_fails_within_seconds_and_once() {
    let (_runtime, _listener, _held, hanging) = blackhole();
    let streams = all_streams();
    let names: Vec<&str> = streams.iter().map(String::as_str).collect();
    let dir = tempfile::tempdir().unwrap();
    for token_url in ["http://127.0.0.1:1/token", hanging.as_str()] {
        let config = json!({
            "credentials": {"auth_type": "oauth2.0", "client_id": "id",
                "client_secret": "secret", "refresh_token": "refresh"},
            "token_url": token_url,
            // Never reached: no token, no API request.
            "api_base_url": "http://127.0.0.1:1/v3",
        });
        let path = common::write_json(dir.path(), "config.json", &config);
        let started = Instant::now();
        let check = common::run(&["check", "--config", path.to_str().unwrap()]);
        let took = started.elapsed();
        let status = &check.of_type("CONNECTION_STATUS")[0]["connectionStatus"];
        assert_eq!(status["status"], "FAILED", "{status}");
        let message = status["message"].as_str().unwrap();
        assert!(
            message.contains("cannot refresh the access token") && message.contains(token_url),
            "{message}"
        );
        assert!(took < Duration::from_secs(15), "check took {took:?}");

        let started = Instant::now();
        let run = read(dir.path(), &config, &catalog(&names, false), None);
        let took = started.elapsed();
        assert_eq!(run.code, 1);
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
        let errors = run.errors();
        assert_eq!(errors.len(), 1, "one error for the run: {errors:?}");
        // The same message as the check's, up to the cause the client gives,
        // which names whichever of its timeouts fired first.
        let said = errors[0]["message"].as_str().unwrap();
        let named = format!("cannot refresh the access token at token_url {token_url}: ");
        assert!(said.starts_with(&named), "{said}");
        assert!(message.contains(&named), "{message}");
        assert!(took < Duration::from_secs(15), "read took {took:?}");
    }
}

/// A contact the config names but the account does not have: the warning
/// says which config list named it and what to do.
#[test]
fn a_configured_id_that_is_gone_names_its_config_list() {
    let sandbox = Sandbox::start(&["--contacts", "10"]);
    let dir = tempfile::tempdir().unwrap();
    let mut config = sandbox.config.clone();
    let gone = "00000000-0000-4000-8000-000000000000";
    config["contact_ids"] = json!([gone]);
    let run = read(
        dir.path(),
        &config,
        &catalog(&["contact_activity_summary"], false),
        None,
    );
    run.assert_ok();
    let said = logs_with(&run, "WARN", &[gone, "`contact_ids`", "remove it"]);
    assert_eq!(said.len(), 1, "{:?}", run.of_type("LOG"));
}

/// `sandbox --port` on a port already taken says so and names the way out.
#[test]
fn a_busy_sandbox_port_is_named_with_the_way_out() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let output = std::process::Command::new(common::BIN)
        .args(["sandbox", "--port", &port])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("port {port} on 127.0.0.1 is already in use"))
            && stderr.contains("--port 0"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());
}

/// The first lines a new user meets for a config or catalog of the wrong
/// shape name the problem and what to do.
#[test]
fn config_and_catalog_mistakes_say_what_to_do() {
    let sandbox = Sandbox::start(&["--contacts", "10"]);
    let dir = tempfile::tempdir().unwrap();
    let mut no_refresh_token = sandbox.config.clone();
    no_refresh_token["credentials"]
        .as_object_mut()
        .unwrap()
        .remove("refresh_token");
    let mut slow = sandbox.config.clone();
    slow["requests_per_second"] = json!("fast");
    for (config, needles) in [
        (
            no_refresh_token,
            [
                "`credentials.refresh_token` is missing",
                "source-constant-contact auth",
            ],
        ),
        (
            slow,
            [
                "`requests_per_second`: expected a whole number",
                "got \"fast\"",
            ],
        ),
    ] {
        let path = common::write_json(dir.path(), "config.json", &config);
        let check = common::run(&["check", "--config", path.to_str().unwrap()]);
        let status = &check.of_type("CONNECTION_STATUS")[0]["connectionStatus"];
        let message = status["message"].as_str().unwrap();
        assert!(needles.iter().all(|n| message.contains(n)), "{message}");
    }

    // A Singer catalog handed to Airbyte `read`.
    let config = common::write_json(dir.path(), "config.json", &sandbox.config);
    let singer = std::process::Command::new(common::BIN)
        .args(["--config", config.to_str().unwrap(), "--discover"])
        .env(common::TOKEN_CACHE_ENV, dir.path().join("tokens.json"))
        .output()
        .unwrap();
    assert!(singer.status.success());
    let catalog: Value = serde_json::from_slice(&singer.stdout).unwrap();
    let run = read(dir.path(), &sandbox.config, &catalog, None);
    assert_eq!(run.code, 1);
    let message = run.errors()[0]["message"].as_str().unwrap().to_string();
    assert!(
        message.contains("looks like a Singer catalog") && message.contains("--catalog"),
        "{message}"
    );
}
