//! Progress on stderr: shown when stderr is a terminal, never otherwise.
//! Without a terminal, `read` and Singer syncs write to stderr exactly what
//! they did before; under `script` (util-linux, a pseudo-terminal) the
//! progress appears while stdout still carries protocol messages only.
// These tests run the connector binary's `sandbox` subcommand.
#![cfg(feature = "sandbox")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{all_streams, catalog, read, write_json, Run, Sandbox, BIN, TOKEN_CACHE_ENV};
use serde_json::{json, Value};

const PROGRESS_ENV: &str = "SOURCE_CONSTANT_CONTACT_PROGRESS";

/// A sandbox with three contact pages, and its config at 20 requests/s.
fn sandbox() -> (Sandbox, Value) {
    let sandbox = Sandbox::start(&["--contacts", "1200", "--rps", "20"]);
    let mut config = sandbox.config.clone();
    config["requests_per_second"] = 20.into();
    // No warning for the `include=sms_channel` the sandbox refuses.
    config["contacts_include_sms_channel"] = false.into();
    (sandbox, config)
}

const STREAMS: [&str; 3] = ["contacts", "contact_lists", "email_campaigns"];

#[test]
fn a_read_without_a_terminal_writes_nothing_to_stderr() {
    let (_sandbox, config) = sandbox();
    let dir = tempfile::tempdir().unwrap();
    let run = read(dir.path(), &config, &catalog(&STREAMS, true), None);
    run.assert_ok();
    assert_eq!(run.stderr, "", "stderr of a read without a terminal");
    assert!(!run.stdout.contains('\x1b'));
    assert_eq!(run.records("contacts").len(), 1200);
}

/// Singer's catalog with only `streams` selected.
fn singer_catalog(dir: &Path, config: &Path, streams: &[&str]) -> std::path::PathBuf {
    let output = Command::new(BIN)
        .args(["--config", config.to_str().unwrap(), "--discover"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let mut catalog: Value = serde_json::from_slice(&output.stdout).unwrap();
    for stream in catalog["streams"].as_array_mut().unwrap() {
        let name = stream["tap_stream_id"].as_str().unwrap().to_string();
        for entry in stream["metadata"].as_array_mut().unwrap() {
            if entry["breadcrumb"] == json!([]) {
                entry["metadata"]["selected"] = json!(streams.contains(&name.as_str()));
            }
        }
    }
    write_json(dir, "singer-catalog.json", &catalog)
}

#[test]
fn singer_without_a_terminal_logs_as_before() {
    let (_sandbox, config) = sandbox();
    let dir = tempfile::tempdir().unwrap();
    let config = write_json(dir.path(), "config.json", &config);
    let catalog = singer_catalog(dir.path(), &config, &STREAMS);
    let output = Command::new(BIN)
        .args(["--config", config.to_str().unwrap()])
        .args(["--catalog", catalog.to_str().unwrap()])
        .env(TOKEN_CACHE_ENV, dir.path().join("tokens.json"))
        .output()
        .unwrap();
    let run = Run::from_output(
        output.status.code().unwrap_or(-1),
        &output.stdout,
        &output.stderr,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    // Only the log lines it always wrote: a rotated token, each stream
    // complete, each stream's summary.
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert!(!lines.is_empty());
    for line in &lines {
        assert!(
            line.starts_with("INFO ") && !line.contains("progress"),
            "unexpected stderr line {line:?}"
        );
    }
    for stream in STREAMS {
        assert!(lines.contains(&format!("INFO {stream}: complete").as_str()));
        assert!(lines
            .iter()
            .any(|l| l.starts_with(&format!("INFO {stream}: ")) && l.contains(" request")));
    }
    assert_eq!(run.singer_records("contacts").len(), 1200);
}

fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// `command` run by `sh` under `script`, so that its stderr is a
/// pseudo-terminal: what the terminal showed, or `None` without `script`.
fn in_a_terminal(command: &str, dir: &Path, progress: Option<&str>) -> Option<String> {
    let found = Command::new("script")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !found.is_ok_and(|s| s.success()) {
        eprintln!("`script` (util-linux) is not installed: skipping the terminal test");
        return None;
    }
    let mut script = Command::new("script");
    script
        .args(["-q", "-e", "-c", command, "/dev/null"])
        .current_dir(dir)
        .env(TOKEN_CACHE_ENV, dir.join("tokens.json"))
        .env_remove(PROGRESS_ENV)
        .stdin(Stdio::null());
    if let Some(setting) = progress {
        script.env(PROGRESS_ENV, setting);
    }
    let output = script.output().unwrap();
    let screen = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(output.status.success(), "{command} failed: {screen}");
    Some(screen)
}

/// An incremental Airbyte `read` of `streams` in a terminal, its files in
/// `dir` and its stdout in `out.jsonl` there: what the terminal showed, and
/// that file (`None` without `script`).
fn read_in_a_terminal(
    dir: &Path,
    config: &Value,
    streams: &[&str],
    progress: Option<&str>,
) -> Option<(String, PathBuf)> {
    let config = write_json(dir, "config.json", config);
    let catalog = write_json(dir, "catalog.json", &catalog(streams, true));
    let out = dir.join("out.jsonl");
    let command = format!(
        "{} read --config {} --catalog {} > {}",
        shell_quote(BIN),
        shell_quote(config.to_str().unwrap()),
        shell_quote(catalog.to_str().unwrap()),
        shell_quote(out.to_str().unwrap())
    );
    in_a_terminal(&command, dir, progress).map(|screen| (screen, out))
}

/// The number before `word` in `text` (`1,234 requests` gives 1234).
fn number_before(text: &str, word: &str) -> u64 {
    let before = &text[..text
        .find(word)
        .unwrap_or_else(|| panic!("{word:?} in {text:?}"))];
    let digits = before
        .trim_end()
        .rsplit(' ')
        .next()
        .unwrap()
        .replace(',', "");
    digits
        .parse()
        .unwrap_or_else(|_| panic!("a number before {word:?} in {text:?}"))
}

#[test]
fn a_read_in_a_terminal_shows_progress_on_stderr_only() {
    let (_sandbox, mut config) = sandbox();
    config["max_requests_per_run"] = 1000.into();
    let dir = tempfile::tempdir().unwrap();
    let Some((screen, out)) = read_in_a_terminal(dir.path(), &config, &STREAMS, None) else {
        return;
    };
    // The final frame, redrawn in place, left on its own line at the end.
    let last_frame = screen.rsplit("\x1b[J").next().unwrap();
    assert!(
        last_frame.starts_with("streams 3/3 done | "),
        "the last frame: {last_frame:?}\nthe screen: {screen:?}"
    );
    // The rate ("N requests, R/s") needs half a second of samples, which a
    // quick read may not last: the count alone is certain.
    assert!(last_frame.contains(" requests"), "{last_frame:?}");
    assert!(
        last_frame.contains("1,2"),
        "records counted: {last_frame:?}"
    );
    assert!(last_frame.ends_with('\n'));
    // What the budget and the day's quota leave, counted from the requests
    // the headline shows.
    let requests = number_before(last_frame, " requests");
    let lines: Vec<&str> = last_frame.lines().map(str::trim_end).collect();
    assert_eq!(
        lines[1],
        format!("budget: {} left of 1,000", 1000 - requests),
        "{last_frame:?}"
    );
    assert_eq!(
        number_before(
            lines[2],
            " of 10,000 left (other tools on the key not counted)"
        ),
        10_000 - requests,
        "{last_frame:?}"
    );
    assert!(lines[2].starts_with("day: at most "), "{last_frame:?}");

    // stdout (the file) has the protocol messages only, all of them.
    let stdout = std::fs::read(&out).unwrap();
    let run = Run::from_output(0, &stdout, b"");
    assert!(!run.stdout.contains('\x1b'));
    assert_eq!(run.records("contacts").len(), 1200);
    let summaries = run
        .of_type("LOG")
        .iter()
        .filter(|m| m["log"]["message"].as_str().unwrap().contains(" request"))
        .count();
    assert_eq!(summaries, STREAMS.len());

    // Asked not to, it shows nothing: the config from the last run, whose
    // refresh token is the live one.
    let (screen, _) =
        read_in_a_terminal(dir.path(), &run.next_config(&config), &STREAMS, Some("off")).unwrap();
    assert_eq!(screen, "");
}

#[test]
fn a_slow_read_in_a_terminal_shows_the_estimate_of_the_stream_being_read() {
    // At 2 requests/s the two contact pages after the first (which carries
    // the count) take a second: several frames show the stream running.
    let (_sandbox, mut config) = sandbox();
    config["requests_per_second"] = 2.into();
    let dir = tempfile::tempdir().unwrap();
    let Some((screen, out)) = read_in_a_terminal(dir.path(), &config, &["contacts"], None) else {
        return;
    };
    assert!(
        screen.contains("  contacts: 500/1,200 records (41%"),
        "the estimate in a frame: {screen:?}"
    );
    let stdout = std::fs::read(&out).unwrap();
    let run = Run::from_output(0, &stdout, b"");
    let estimates = run.of_type("TRACE");
    assert!(
        estimates
            .iter()
            .any(|m| m["trace"]["estimate"]["row_estimate"] == 1200),
        "the ESTIMATE message the frame shows: {estimates:?}"
    );
}

#[test]
fn demo_shows_progress_in_a_terminal_and_its_summary_either_way() {
    let dir = tempfile::tempdir().unwrap();
    let demo = |out: &str| {
        format!(
            "{} demo --contacts 300 --change 5 --requests-per-second 100 --output {out}",
            shell_quote(BIN)
        )
    };
    let streams = all_streams().len();
    let summary = format!("all {streams} streams complete");
    let Some(screen) = in_a_terminal(&demo("terminal.jsonl"), dir.path(), None) else {
        return;
    };
    // Each run ends on its final frame, then demo goes on as before.
    let done = format!("streams {streams}/{streams} done | ");
    let changed = screen.find("changed 5 contacts").expect(&screen);
    let table = screen.find("full read").expect(&screen);
    let first = screen[..changed].rsplit("\x1b[J").next().unwrap();
    let second = screen[changed..table].rsplit("\x1b[J").next().unwrap();
    for frame in [first, second] {
        assert!(frame.starts_with(&done), "{frame:?}");
        assert!(frame.contains("\nday: at most "), "{frame:?}");
    }
    assert!(screen.contains(&summary), "{screen}");
    // The event streams' stats give estimates, shown while they are read
    // (`  email_sends: 544/2,298 records (23%, 0:08 left), …`).
    let with_estimate = |line: &&str| {
        let Some((_, read)) = line.trim_start().split_once(": ") else {
            return false;
        };
        read.split_once(" records (")
            .is_some_and(|(count, rest)| count.contains('/') && rest.split_once('%').is_some())
    };
    assert!(screen.lines().any(|line| with_estimate(&line)), "{screen}");
    let messages = std::fs::read_to_string(dir.path().join("terminal.jsonl")).unwrap();
    assert!(!messages.contains('\x1b'));

    // Not on a terminal: the summary, no progress.
    let output = Command::new("sh")
        .args(["-c", &demo("plain.jsonl")])
        .current_dir(dir.path())
        .env(TOKEN_CACHE_ENV, dir.path().join("tokens.json"))
        .env_remove(PROGRESS_ENV)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains(&summary), "{stderr}");
    assert!(
        !stderr.contains('\x1b') && !stderr.contains("day: "),
        "{stderr}"
    );
}

#[test]
fn singer_in_a_terminal_logs_progress_lines() {
    let (_sandbox, config) = sandbox();
    let dir = tempfile::tempdir().unwrap();
    let config_path = write_json(dir.path(), "config.json", &config);
    let catalog = singer_catalog(dir.path(), &config_path, &STREAMS);
    let out = dir.path().join("out.jsonl");
    let command = format!(
        "{} --config {} --catalog {} > {}",
        shell_quote(BIN),
        shell_quote(config_path.to_str().unwrap()),
        shell_quote(catalog.to_str().unwrap()),
        shell_quote(out.to_str().unwrap())
    );
    let Some(screen) = in_a_terminal(&command, dir.path(), None) else {
        return;
    };
    assert!(!screen.contains('\x1b'), "plain lines: {screen:?}");
    let progress: Vec<&str> = screen
        .lines()
        .filter(|l| l.starts_with("INFO progress: "))
        .collect();
    // At least the final line, before the per-stream summaries.
    let last = progress.last().expect("a progress line");
    assert!(
        last.starts_with("INFO progress: streams 3/3 done | "),
        "{screen}"
    );
    let last_at = screen.find(last).unwrap();
    let summary_at = screen.find("INFO contacts: 1200 records");
    assert!(summary_at.is_some_and(|s| s > last_at), "{screen}");
    let stdout = std::fs::read_to_string(&out).unwrap();
    assert!(!stdout.contains("progress"));
}
