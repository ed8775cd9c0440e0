//! `auth`: the authorization-code flow with PKCE and the device flow, end to end
//! against a sandbox process (the test plays the browser and the user), as the
//! confidential client (with its secret) and as the public one (no secret), and every
//! way they can fail.
// These tests run the connector binary's `sandbox` subcommand.
#![cfg(feature = "sandbox")]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use common::{catalog, read, run, write_json, Sandbox, BIN};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const SECRET_ENV: &str = "CONSTANT_CONTACT_CLIENT_SECRET";
/// The sandbox's confidential client (authorization-code application, with a secret).
const CLIENT: &str = "sandbox-client";
/// The sandbox's public client (PKCE or device-flow application, no secret).
const PUBLIC_CLIENT: &str = "sandbox-public-client";

/// How long `auth` may take to print a line a test waits for: generous, as
/// it prints each at once.
const LINE_TIMEOUT: Duration = Duration::from_secs(20);
/// How long `auth` may take to end once the browser or user is done: room for
/// a few device-flow polls.
const FINISH_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the first device-flow poll may take to come.
const FIRST_POLL_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between two looks at something a test waits for.
const POLL_PAUSE: Duration = Duration::from_millis(50);

/// The device-flow polling interval these tests' sandboxes ask for
/// (`--device-interval-secs`), in seconds: short, so that flows end quickly.
const DEVICE_INTERVAL_SECS: u64 = 1;
/// What a `slow_down` answer adds to the polling interval, in seconds
/// (RFC 8628, section 3.5).
const SLOW_DOWN_SECS: u64 = 5;

/// A sandbox whose device flow asks for polls every `DEVICE_INTERVAL_SECS`.
fn device_sandbox(extra: &[&str]) -> Sandbox {
    let interval = DEVICE_INTERVAL_SECS.to_string();
    let args = [
        &["--contacts", "5", "--device-interval-secs", &interval][..],
        extra,
    ]
    .concat();
    Sandbox::start(&args)
}

fn origin(sandbox: &Sandbox) -> String {
    sandbox.base_url.trim_end_matches("/v3").to_string()
}

fn client_secret(sandbox: &Sandbox) -> String {
    sandbox.config["credentials"]["client_secret"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A running `auth` command whose stderr is read line by line.
struct Auth {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: Arc<Mutex<String>>,
}

struct Finished {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Auth {
    /// `auth` against `sandbox`'s endpoints as the confidential client, writing `out`,
    /// the client secret in the environment; `extra` adds or overrides flags.
    fn start(sandbox: &Sandbox, out: &Path, extra: &[&str]) -> Auth {
        Auth::start_as(sandbox, out, CLIENT, Some(client_secret(sandbox)), extra)
    }

    /// `auth` as `client_id`, with `secret` (if any) in the environment.
    fn start_as(
        sandbox: &Sandbox,
        out: &Path,
        client_id: &str,
        secret: Option<String>,
        extra: &[&str],
    ) -> Auth {
        let origin = origin(sandbox);
        let mut args = vec![
            "auth".to_string(),
            "--client-id".into(),
            client_id.into(),
            "--config".into(),
            out.display().to_string(),
            "--authorize-url".into(),
            format!("{origin}/oauth2/default/v1/authorize"),
            "--device-url".into(),
            format!("{origin}/oauth2/default/v1/device/authorize"),
            "--token-url".into(),
            sandbox.token_url.clone(),
            "--api-base-url".into(),
            sandbox.base_url.clone(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut command = Command::new(BIN);
        command
            .args(&args)
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .env_remove(SECRET_ENV);
        if let Some(secret) = secret {
            command.env(SECRET_ENV, secret);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        let stderr = Arc::new(Mutex::new(String::new()));
        let all = stderr.clone();
        let pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                all.lock().unwrap().push_str(&format!("{line}\n"));
                let _ = tx.send(line);
            }
        });
        Auth {
            child,
            lines,
            stderr,
        }
    }

    /// The first stderr line (trimmed) that `wanted` accepts.
    fn line(&self, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + LINE_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if wanted(line.trim()) => return line.trim().to_string(),
                Ok(_) => {}
                Err(_) => panic!("no such line; stderr:\n{}", self.stderr.lock().unwrap()),
            }
        }
    }

    fn authorize_url(&self, sandbox: &Sandbox) -> String {
        let prefix = format!("{}/oauth2/default/v1/authorize?", origin(sandbox));
        self.line(|l| l.starts_with(&prefix))
    }

    fn paste(&mut self, text: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{text}").unwrap();
    }

    fn finish(mut self) -> Finished {
        let deadline = Instant::now() + FINISH_TIMEOUT;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("auth did not end; stderr:\n{}", self.stderr.lock().unwrap());
            }
            std::thread::sleep(POLL_PAUSE);
        };
        let mut stdout = String::new();
        std::io::Read::read_to_string(&mut self.child.stdout.take().unwrap(), &mut stdout).unwrap();
        // Let the reader thread drain what is left of stderr: it is done once
        // nothing came for a while.
        while self.lines.recv_timeout(4 * POLL_PAUSE).is_ok() {}
        let stderr = self.stderr.lock().unwrap().clone();
        Finished {
            code: status.code().unwrap_or(-1),
            stdout,
            stderr,
        }
    }
}

impl Finished {
    fn assert_failed_with(&self, message: &str) {
        assert_ne!(self.code, 0, "auth should fail; stderr:\n{}", self.stderr);
        assert!(
            self.stderr.contains(message),
            "stderr lacks {message:?}:\n{}",
            self.stderr
        );
    }

    fn assert_ok(&self) {
        assert_eq!(self.code, 0, "auth failed; stderr:\n{}", self.stderr);
    }

    /// None of `secrets` shows in stdout or stderr.
    fn assert_silent_about(&self, secrets: &[&str]) {
        for secret in secrets {
            assert!(!secret.is_empty());
            let shown = self.stdout.contains(secret) || self.stderr.contains(secret);
            assert!(!shown, "a secret was printed:\n{}", self.stderr);
        }
    }
}

/// A browser that does not follow redirects.
fn browser() -> ureq::Agent {
    ureq::AgentBuilder::new().redirects(0).build()
}

/// GETs the authorize URL like a browser and returns where it is sent (302 Location).
fn consent(url: &str) -> String {
    let response = browser().get(url).call().expect("authorize answers");
    assert_eq!(
        response.status(),
        302,
        "{}",
        response.into_string().unwrap()
    );
    response.header("location").unwrap().to_string()
}

fn query(url: &str, key: &str) -> Option<String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

fn check(config: &Path) -> Value {
    let run = run(&["check", "--config", config.to_str().unwrap()]);
    run.of_type("CONNECTION_STATUS")[0]["connectionStatus"].clone()
}

fn read_config(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn loopback() -> [&'static str; 3] {
    [
        "--redirect-uri",
        "http://127.0.0.1:0/callback",
        "--no-browser",
    ]
}

fn out_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("out.json")
}

#[test]
fn pkce_flow_writes_a_working_config_merged_into_the_existing_file() {
    let sandbox = Sandbox::start(&["--contacts", "5"]);
    let dir = tempfile::tempdir().unwrap();
    let out = write_json(
        dir.path(),
        "out.json",
        &json!({"start_date": "2020-01-01", "requests_per_second": 4, "custom": {"kept": true},
                "credentials": {"auth_type": "oauth2.0", "client_id": "old", "client_secret": "old",
                                "refresh_token": "old", "note": "kept"}}),
    );
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o644)).unwrap();
    let auth = Auth::start(&sandbox, &out, &loopback());

    let url = auth.authorize_url(&sandbox);
    assert_eq!(
        query(&url, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert_eq!(
        query(&url, "scope").as_deref(),
        Some("contact_data campaign_data account_read offline_access")
    );
    let location = consent(&url);
    assert!(location.starts_with("http://127.0.0.1:"), "{location}");
    assert_eq!(query(&location, "state"), query(&url, "state"));
    let code = query(&location, "code").expect("a code");
    let page = browser()
        .get(&location)
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(page.contains("return to the"), "{page}");
    let done = auth.finish();
    done.assert_ok();

    assert_eq!(mode(&out), 0o600);
    let config = read_config(&out);
    let credentials = &config["credentials"];
    assert_eq!(credentials["auth_type"], "oauth2.0");
    assert_eq!(credentials["client_id"], "sandbox-client");
    assert_eq!(
        credentials["client_secret"],
        client_secret(&sandbox).as_str()
    );
    assert_eq!(credentials["note"], "kept");
    assert_eq!(
        credentials["refresh_token"],
        sandbox.state()["current_refresh_token"]
    );
    assert!(credentials["token_expiry_date"].is_string());
    assert_eq!(config["token_url"], sandbox.token_url.as_str());
    assert_eq!(config["api_base_url"], sandbox.base_url.as_str());
    assert_eq!(config["start_date"], "2020-01-01");
    assert_eq!(config["custom"], json!({"kept": true}));
    let secrets = ["client_secret", "refresh_token", "access_token"]
        .map(|k| credentials[k].as_str().unwrap().to_string());
    let mut shown: Vec<&str> = secrets.iter().map(String::as_str).collect();
    shown.push(&code);
    done.assert_silent_about(&shown);

    assert_eq!(check(&out)["status"], "SUCCEEDED");
    // The refresh token works with the refresh grant, which rotates it.
    let mut refresh_only = config.clone();
    let creds = refresh_only["credentials"].as_object_mut().unwrap();
    creds.remove("access_token");
    creds.remove("token_expiry_date");
    let path = write_json(dir.path(), "refresh.json", &refresh_only);
    assert_eq!(check(&path)["status"], "SUCCEEDED");
    assert_ne!(
        sandbox.state()["current_refresh_token"],
        credentials["refresh_token"]
    );
}

#[test]
fn pasted_redirect_url_completes_the_flow_when_the_redirect_uri_is_not_loopback() {
    let redirect = "https://app.example.com/oauth/callback";
    let sandbox = Sandbox::start(&["--contacts", "5", "--redirect-uri", redirect]);
    let dir = tempfile::tempdir().unwrap();
    let out = out_path(&dir);
    let mut auth = Auth::start(&sandbox, &out, &["--redirect-uri", redirect]);
    let location = consent(&auth.authorize_url(&sandbox));
    assert!(location.starts_with(redirect), "{location}");
    auth.paste(&location);
    let done = auth.finish();
    done.assert_ok();
    assert_eq!(mode(&out), 0o600);
    assert_eq!(check(&out)["status"], "SUCCEEDED");
}

#[test]
fn a_pasted_url_at_another_address_is_refused() {
    let redirect = "https://app.example.com/oauth/callback";
    let sandbox = Sandbox::start(&["--contacts", "5", "--redirect-uri", redirect]);
    let dir = tempfile::tempdir().unwrap();
    let out = out_path(&dir);
    let mut auth = Auth::start(&sandbox, &out, &["--redirect-uri", redirect]);
    let location = consent(&auth.authorize_url(&sandbox));
    let code = query(&location, "code").unwrap();
    auth.paste(&location.replace("/oauth/callback", "/elsewhere"));
    let done = auth.finish();
    done.assert_failed_with("is not at the redirect URI");
    done.assert_silent_about(&[&code]);
    assert!(!out.exists());
}

#[test]
fn denied_consent_fails_clearly() {
    let sandbox = Sandbox::start(&["--contacts", "5"]);
    sandbox.control("consent", json!({"deny": true}));
    let dir = tempfile::tempdir().unwrap();
    let out = out_path(&dir);
    let auth = Auth::start(&sandbox, &out, &loopback());
    let location = consent(&auth.authorize_url(&sandbox));
    assert_eq!(query(&location, "error").as_deref(), Some("access_denied"));
    let page = browser()
        .get(&location)
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(page.contains("Authorization failed"), "{page}");
    auth.finish().assert_failed_with("consent was denied");
    assert!(!out.exists());
}

#[test]
fn state_mismatch_fails_clearly() {
    let sandbox = Sandbox::start(&["--contacts", "5"]);
    let dir = tempfile::tempdir().unwrap();
    let out = out_path(&dir);
    let auth = Auth::start(&sandbox, &out, &loopback());
    let location = consent(&auth.authorize_url(&sandbox));
    let state = query(&location, "state").unwrap();
    let forged = location.replace(&format!("state={state}"), "state=forged");
    browser().get(&forged).call().unwrap();
    auth.finish().assert_failed_with("state mismatch");
    assert!(!out.exists());
}

#[test]
fn bad_client_secret_fails_clearly() {
    let sandbox = Sandbox::start(&["--contacts", "5"]);
    let dir = tempfile::tempdir().unwrap();
    let out = out_path(&dir);
    let mut args = loopback().to_vec();
    args.extend(["--client-secret", "not-the-secret"]);
    let auth = Auth::start(&sandbox, &out, &args);
    let location = consent(&auth.authorize_url(&sandbox));
    browser().get(&location).call().unwrap();
    let done = auth.finish();
    done.assert_failed_with("rejected the client (invalid_client");
    done.assert_silent_about(&["not-the-secret"]);
    assert!(!out.exists());
}

#[test]
fn unregistered_redirect_uri_times_out_clearly() {
    let sandbox = Sandbox::start(&["--contacts", "5"]);
    let dir = tempfile::tempdir().unwrap();
    let out = out_path(&dir);
    let args = [
        "--redirect-uri",
        "http://127.0.0.1:0/not-registered",
        "--no-browser",
        "--timeout",
        "2",
    ];
    let auth = Auth::start(&sandbox, &out, &args);
    let url = auth.authorize_url(&sandbox);
    match browser().get(&url).call() {
        Err(ureq::Error::Status(400, _)) => {}
        other => panic!("the authorize endpoint must refuse to redirect: {other:?}"),
    }
    auth.finish()
        .assert_failed_with("timed out after 2 s waiting for the authorization response");
}

#[test]
fn a_confidential_client_without_its_secret_is_refused_clearly_and_a_foreign_file_is_kept() {
    let sandbox = Sandbox::start(&["--contacts", "5"]);
    let dir = tempfile::tempdir().unwrap();
    let out = out_path(&dir);
    // Without a secret auth runs as a public client: the consent goes through, and the
    // token endpoint refuses the confidential client that sent no secret.
    let auth = Auth::start_as(&sandbox, &out, CLIENT, None, &loopback());
    let location = consent(&auth.authorize_url(&sandbox));
    browser().get(&location).call().unwrap();
    let done = auth.finish();
    done.assert_failed_with("authorizing as a public client");
    done.assert_failed_with(
        "rejected the client, which sent no client secret (invalid_client: Client \
         authentication failed.)",
    );
    done.assert_failed_with("is confidential and needs its client secret (--client-secret");
    assert!(!out.exists());
    // The device flow: its authorization endpoint refuses it the same way.
    Auth::start_as(&sandbox, &out, CLIENT, None, &["--device"])
        .finish()
        .assert_failed_with("device/authorize rejected the client, which sent no client secret");
    assert!(!out.exists());

    // A config without the secret of a confidential application.
    let mut config = sandbox.config.clone();
    config["credentials"]
        .as_object_mut()
        .unwrap()
        .remove("client_secret");
    let status = check(&write_json(dir.path(), "no-secret.json", &config));
    assert_eq!(status["status"], "FAILED");
    let message = status["message"].as_str().unwrap();
    assert!(
        message.contains("rejected client_id without a client secret (invalid_client")
            && message.contains(
                "is confidential and needs its client secret in credentials.client_secret"
            ),
        "{message}"
    );

    std::fs::write(&out, "not json").unwrap();
    let done = Auth::start(&sandbox, &out, &loopback()).finish();
    done.assert_failed_with("is not a JSON object; refusing to overwrite it");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "not json");
}

#[test]
fn pkce_flow_as_a_public_client_needs_no_secret_and_its_tokens_refresh() {
    let sandbox = Sandbox::start(&["--contacts", "5"]);
    let dir = tempfile::tempdir().unwrap();
    // A file of another application, with its secret.
    let out = write_json(
        dir.path(),
        "out.json",
        &json!({"start_date": "2020-01-01",
                "credentials": {"auth_type": "oauth2.0", "client_id": "old",
                                "client_secret": "old-secret", "refresh_token": "old"}}),
    );
    let auth = Auth::start_as(&sandbox, &out, PUBLIC_CLIENT, None, &loopback());
    let url = auth.authorize_url(&sandbox);
    assert_eq!(query(&url, "client_id").as_deref(), Some(PUBLIC_CLIENT));
    assert_eq!(
        query(&url, "code_challenge_method").as_deref(),
        Some("S256")
    );
    let location = consent(&url);
    browser().get(&location).call().unwrap();
    let done = auth.finish();
    done.assert_ok();
    assert!(
        done.stderr.contains("authorizing as a public client"),
        "{}",
        done.stderr
    );
    assert!(!done.stderr.contains("does not load"), "{}", done.stderr);

    let config = read_config(&out);
    assert_eq!(mode(&out), 0o600);
    assert_eq!(config["start_date"], "2020-01-01");
    assert_public(&sandbox, &config);
    let tokens = ["refresh_token", "access_token"]
        .map(|k| config["credentials"][k].as_str().unwrap().to_string());
    done.assert_silent_about(&tokens.each_ref().map(String::as_str));
    assert_eq!(check(&out)["status"], "SUCCEEDED");
    assert_refreshes(&sandbox, dir.path(), &config);
}

#[test]
fn device_flow_as_a_public_client_needs_no_secret_and_its_tokens_refresh() {
    let sandbox = device_sandbox(&[]);
    let dir = tempfile::tempdir().unwrap();
    let out = out_path(&dir);
    let (auth, user_code) = start_device_as(&sandbox, &out, PUBLIC_CLIENT, None);
    device(&sandbox, json!({"user_code": user_code, "approve": true}));
    let done = auth.finish();
    done.assert_ok();
    assert!(
        done.stderr.contains("authorizing as a public client"),
        "{}",
        done.stderr
    );
    assert_eq!(
        device(&sandbox, json!({"user_code": user_code}))["decision"],
        "redeemed"
    );

    let config = read_config(&out);
    assert_eq!(mode(&out), 0o600);
    assert_public(&sandbox, &config);
    let tokens = ["refresh_token", "access_token"]
        .map(|k| config["credentials"][k].as_str().unwrap().to_string());
    done.assert_silent_about(&tokens.each_ref().map(String::as_str));
    assert_eq!(check(&out)["status"], "SUCCEEDED");
    assert_refreshes(&sandbox, dir.path(), &config);
}

/// `config` is the public client's, without a client secret, and holds the live
/// refresh token.
fn assert_public(sandbox: &Sandbox, config: &Value) {
    let credentials = &config["credentials"];
    assert_eq!(credentials["auth_type"], "oauth2.0");
    assert_eq!(credentials["client_id"], PUBLIC_CLIENT);
    assert!(credentials.get("client_secret").is_none(), "{config}");
    assert_eq!(
        credentials["refresh_token"],
        sandbox.state()["current_refresh_token"]
    );
    assert!(credentials["access_token"].is_string());
    assert!(credentials["token_expiry_date"].is_string());
}

/// A `read` with `config` whose access token is gone refreshes it (client_id in the
/// form body, no secret: the sandbox refuses anything else for the public client),
/// rotates the refresh token and hands the new one on; so does a later `read` of that
/// config once the sandbox forgot its access token (a 401, then a refresh).
fn assert_refreshes(sandbox: &Sandbox, dir: &Path, config: &Value) {
    let streams = catalog(&["contact_lists"], false);
    let mut previous = config.clone();
    let credentials = previous["credentials"].as_object_mut().unwrap();
    credentials.remove("access_token");
    credentials.remove("token_expiry_date");
    for n in 0..2 {
        if n > 0 {
            sandbox.control("expire_access_tokens", json!({}));
        }
        let before = sandbox.token_requests();
        let run = read(dir, &previous, &streams, None);
        run.assert_ok();
        assert_eq!(
            sandbox.token_requests(),
            before + 1,
            "read {n} refreshed once"
        );
        assert!(!run.records("contact_lists").is_empty());
        let next = run.next_config(&Value::Null);
        let rotated = &next["credentials"]["refresh_token"];
        assert!(rotated.is_string(), "read {n} reported no rotated token");
        assert_ne!(rotated, &previous["credentials"]["refresh_token"]);
        assert_eq!(rotated, &sandbox.state()["current_refresh_token"]);
        assert_eq!(next["credentials"]["client_id"], PUBLIC_CLIENT);
        assert!(next["credentials"].get("client_secret").is_none());
        previous = next;
    }
}

/// Starts `auth --device` as the confidential client, waits for its first poll and
/// returns the user code.
fn start_device(sandbox: &Sandbox, out: &Path) -> (Auth, String) {
    start_device_as(sandbox, out, CLIENT, Some(client_secret(sandbox)))
}

/// Starts `auth --device` as `client_id` with `secret`, waits for its first poll and
/// returns the user code.
fn start_device_as(
    sandbox: &Sandbox,
    out: &Path,
    client_id: &str,
    secret: Option<String>,
) -> (Auth, String) {
    let auth = Auth::start_as(sandbox, out, client_id, secret, &["--device"]);
    let url = auth.line(|l| l.ends_with("/activate"));
    assert!(url.starts_with(&origin(sandbox)), "{url}");
    // A user code is shown as XXXX-XXXX.
    let user_code = auth.line(|l| l.len() == 9 && l.as_bytes()[4] == b'-');
    let deadline = Instant::now() + FIRST_POLL_TIMEOUT;
    while device(sandbox, json!({"user_code": user_code}))["polls_ms"]
        .as_array()
        .unwrap()
        .is_empty()
    {
        assert!(Instant::now() < deadline, "auth --device never polled");
        std::thread::sleep(POLL_PAUSE);
    }
    (auth, user_code)
}

fn device(sandbox: &Sandbox, body: Value) -> Value {
    sandbox.control("device", body)
}

#[test]
fn device_flow_honours_interval_and_slow_down_then_writes_a_working_config() {
    let sandbox = device_sandbox(&[]);
    let dir = tempfile::tempdir().unwrap();
    let out = out_path(&dir);
    let (auth, user_code) = start_device(&sandbox, &out);
    // Approved, but the next poll is told to slow down first.
    device(
        &sandbox,
        json!({"user_code": user_code, "approve": true, "slow_down": true}),
    );
    let done = auth.finish();
    done.assert_ok();
    let slowed = DEVICE_INTERVAL_SECS + SLOW_DOWN_SECS;
    assert!(
        done.stderr
            .contains(&format!("Now polling every {slowed} s")),
        "{}",
        done.stderr
    );

    let log = device(&sandbox, json!({"user_code": user_code}));
    assert_eq!(log["decision"], "redeemed");
    // Only the forced slow_down: the client never polled faster than asked.
    assert_eq!(log["slow_downs"], 1, "{log}");
    let polls: Vec<u64> = serde_json::from_value(log["polls_ms"].clone()).unwrap();
    let gaps: Vec<u64> = polls.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps.len() >= 2, "{polls:?}");
    assert!(
        gaps.iter().all(|&g| g >= DEVICE_INTERVAL_SECS * 1000),
        "{gaps:?}"
    );
    assert!(
        *gaps.last().unwrap() >= slowed * 1000,
        "slow_down adds {SLOW_DOWN_SECS} s: {gaps:?}"
    );

    assert_eq!(mode(&out), 0o600);
    let config = read_config(&out);
    let secrets = ["client_secret", "refresh_token", "access_token"]
        .map(|k| config["credentials"][k].as_str().unwrap().to_string());
    done.assert_silent_about(&secrets.each_ref().map(String::as_str));
    assert_eq!(check(&out)["status"], "SUCCEEDED");
}

#[test]
fn device_flow_reports_access_denied() {
    let sandbox = device_sandbox(&[]);
    let dir = tempfile::tempdir().unwrap();
    let out = out_path(&dir);
    let (auth, user_code) = start_device(&sandbox, &out);
    device(&sandbox, json!({"user_code": user_code, "approve": false}));
    auth.finish()
        .assert_failed_with("the sign-in was denied (access_denied");
    assert!(!out.exists());
}

#[test]
fn device_flow_reports_expired_token() {
    // Device codes that expire after two polls, none approved.
    let sandbox = device_sandbox(&["--device-code-ttl-secs", "2"]);
    let dir = tempfile::tempdir().unwrap();
    let out = out_path(&dir);
    let (auth, user_code) = start_device(&sandbox, &out);
    let done = auth.finish();
    done.assert_failed_with("the device code expired before the sign-in was approved");
    let log = device(&sandbox, json!({"user_code": user_code}));
    assert_eq!(log["decision"], "pending");
    assert!(!out.exists());
}

/// The sandbox's authorization-code grant on its own: PKCE, redirect URI, single use.
#[test]
fn sandbox_code_grant_checks_pkce_redirect_uri_and_single_use() {
    // Token requests back to back: the token endpoint's one a second is not
    // what this test is about.
    let sandbox = Sandbox::start(&["--contacts", "5", "--token-rps", "1000"]);
    let redirect = "http://127.0.0.1:9/callback";
    let verifier = "a-verifier-of-at-least-forty-three-characters-long";
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let authorize = |params: &[(&str, &str)]| {
        let mut url =
            url::Url::parse(&format!("{}/oauth2/default/v1/authorize", origin(&sandbox))).unwrap();
        let base = [
            ("client_id", "sandbox-client"),
            ("redirect_uri", redirect),
            ("response_type", "code"),
            ("scope", "contact_data offline_access"),
            ("state", "s1"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ];
        for (key, value) in base {
            let value = params
                .iter()
                .find(|(k, _)| *k == key)
                .map_or(value, |p| p.1);
            if !value.is_empty() {
                url.query_pairs_mut().append_pair(key, value);
            }
        }
        // (status, Location)
        match browser().get(url.as_str()).call() {
            Ok(response) => (
                response.status(),
                response.header("location").map(str::to_string),
            ),
            Err(ureq::Error::Status(status, _)) => (status, None),
            Err(e) => panic!("{e}"),
        }
    };
    let token = |code: &str, verifier: &str, redirect: &str| {
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("code_verifier", verifier),
            ("redirect_uri", redirect),
            ("client_id", "sandbox-client"),
        ];
        let secret = client_secret(&sandbox);
        let mut form = form.to_vec();
        form.push(("client_secret", &secret));
        match ureq::post(&sandbox.token_url).send_form(&form) {
            Ok(response) => (200, response.into_json::<Value>().unwrap()),
            Err(ureq::Error::Status(status, response)) => {
                (status, response.into_json::<Value>().unwrap())
            }
            Err(e) => panic!("{e}"),
        }
    };
    let code = || {
        let location = authorize(&[]).1.unwrap();
        assert_eq!(query(&location, "state").as_deref(), Some("s1"));
        query(&location, "code").unwrap()
    };

    let first = code();
    let (status, body) = token(&first, verifier, redirect);
    assert_eq!(status, 200, "{body}");
    assert!(body["refresh_token"].is_string() && body["access_token"].is_string());
    assert_eq!(body["scope"], "contact_data offline_access");
    let (status, body) = token(&first, verifier, redirect);
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    let (status, body) = token(
        &code(),
        "another-verifier-of-at-least-forty-three-chars",
        redirect,
    );
    assert_eq!(
        (status, body["error_description"].as_str()),
        (400, Some("PKCE verification failed."))
    );
    let (_, body) = token(&code(), verifier, "http://127.0.0.1:10/callback");
    assert_eq!(body["error"], "invalid_grant");

    // Without offline_access there is no refresh token.
    let location = authorize(&[("scope", "contact_data")]).1.unwrap();
    let plain = query(&location, "code").unwrap();
    let (_, body) = token(&plain, verifier, redirect);
    assert!(body["access_token"].is_string() && body.get("refresh_token").is_none());

    // Errors the client can be told about come back on the redirect; the others cannot.
    let error_of = |params: &[(&str, &str)]| {
        let (status, location) = authorize(params);
        assert_eq!(status, 302);
        query(&location.unwrap(), "error").unwrap()
    };
    assert_eq!(error_of(&[("code_challenge", "")]), "invalid_request");
    assert_eq!(
        error_of(&[("code_challenge_method", "plain")]),
        "invalid_request"
    );
    assert_eq!(error_of(&[("state", "")]), "invalid_request");
    assert_eq!(error_of(&[("scope", "everything")]), "invalid_scope");
    assert_eq!(
        error_of(&[("response_type", "token")]),
        "unsupported_response_type"
    );
    for bad in [
        ("client_id", "someone-else"),
        ("redirect_uri", "https://evil.example/cb"),
    ] {
        assert_eq!(authorize(&[bad]), (400, None), "{bad:?} must not redirect");
    }
}

/// A form to POST; owned, so tests can build one from any values.
type Form = Vec<(&'static str, String)>;

fn form(pairs: &[(&'static str, &str)]) -> Form {
    pairs.iter().map(|&(k, v)| (k, v.to_string())).collect()
}

fn plus(mut form: Form, more: &[(&'static str, &str)]) -> Form {
    form.extend(more.iter().map(|&(k, v)| (k, v.to_string())));
    form
}

/// POSTs `form` to `url`, with HTTP Basic credentials if given: (status, error, body).
fn post_form(url: &str, form: &Form, basic: Option<(&str, &str)>) -> (u16, Option<String>, Value) {
    let mut request = ureq::post(url);
    if let Some((id, password)) = basic {
        let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{password}"));
        request = request.set("authorization", &format!("Basic {encoded}"));
    }
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, body) = match request.send_form(&pairs) {
        Ok(response) => (200, response.into_json::<Value>().unwrap()),
        Err(ureq::Error::Status(status, response)) => {
            (status, response.into_json::<Value>().unwrap())
        }
        Err(e) => panic!("{e}"),
    };
    let error = body["error"].as_str().map(str::to_string);
    (status, error, body)
}

/// The sandbox's two clients at its endpoints: the public one is known by its client_id
/// in the form body and must send no secret, the confidential one must send its secret,
/// and neither can redeem what the other was issued.
#[test]
fn sandbox_public_client_authenticates_by_client_id_alone() {
    // Token requests back to back: the token endpoint's one a second is not
    // what this test is about.
    let sandbox = Sandbox::start(&["--contacts", "5", "--token-rps", "1000"]);
    let secret = client_secret(&sandbox);
    let secret = secret.as_str();
    let redirect = "http://127.0.0.1:9/callback";
    let verifier = "a-verifier-of-at-least-forty-three-characters-long";
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let code_of = |client: &str| {
        let mut url =
            url::Url::parse(&format!("{}/oauth2/default/v1/authorize", origin(&sandbox))).unwrap();
        url.query_pairs_mut().extend_pairs([
            ("client_id", client),
            ("redirect_uri", redirect),
            ("response_type", "code"),
            ("scope", "contact_data offline_access"),
            ("state", "s1"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ]);
        query(&consent(url.as_str()), "code").unwrap()
    };
    let redeem = |code: &str| {
        form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("code_verifier", verifier),
            ("redirect_uri", redirect),
        ])
    };
    let token = |form: &Form, basic| {
        let (status, error, body) = post_form(&sandbox.token_url, form, basic);
        ((status, error), body)
    };
    let public = [("client_id", PUBLIC_CLIENT)];
    let invalid_client = (401, Some("invalid_client".to_string()));
    let invalid_grant = (400, Some("invalid_grant".to_string()));

    // A public client's code: refused with a secret (in the body or by HTTP Basic) and
    // without a client_id; the confidential client cannot redeem it.
    let code = code_of(PUBLIC_CLIENT);
    for (form, basic) in [
        (
            plus(
                redeem(&code),
                &[("client_id", PUBLIC_CLIENT), ("client_secret", "x")],
            ),
            None,
        ),
        (
            plus(
                redeem(&code),
                &[("client_id", PUBLIC_CLIENT), ("client_secret", "")],
            ),
            None,
        ),
        (redeem(&code), Some((PUBLIC_CLIENT, ""))),
        (redeem(&code), None),
    ] {
        let (outcome, body) = token(&form, basic);
        assert_eq!(outcome, invalid_client, "{form:?} {basic:?}: {body}");
    }
    let (outcome, _) = token(&redeem(&code), Some((CLIENT, secret)));
    assert_eq!(outcome, invalid_grant, "another client's code");

    // Its own fresh code, with client_id and no secret: tokens.
    let (outcome, body) = token(&plus(redeem(&code_of(PUBLIC_CLIENT)), &public), None);
    assert_eq!(outcome.0, 200, "{body}");
    let refresh = body["refresh_token"].as_str().unwrap().to_string();
    let grant = form(&[("grant_type", "refresh_token"), ("refresh_token", &refresh)]);
    // Its refresh token is not the confidential client's, nor usable with a secret.
    let (outcome, _) = token(&grant, Some((CLIENT, secret)));
    assert_eq!(outcome, invalid_grant, "another client's refresh token");
    let with_secret = plus(
        grant.clone(),
        &[("client_id", PUBLIC_CLIENT), ("client_secret", secret)],
    );
    assert_eq!(token(&with_secret, None).0, invalid_client);
    assert_eq!(token(&grant, None).0, invalid_client, "no client_id");
    let (outcome, body) = token(&plus(grant, &public), None);
    assert_eq!(outcome.0, 200, "{body}");
    assert_ne!(body["refresh_token"], refresh.as_str(), "rotated");
    assert_eq!(
        body["refresh_token"],
        sandbox.state()["current_refresh_token"]
    );

    // The confidential client still needs its secret, and a code issued to it.
    let no_secret = plus(redeem(&code_of(CLIENT)), &[("client_id", CLIENT)]);
    assert_eq!(token(&no_secret, None).0, invalid_client, "no secret");
    let theirs = plus(redeem(&code_of(CLIENT)), &public);
    assert_eq!(
        token(&theirs, None).0,
        invalid_grant,
        "another client's code"
    );
    let (outcome, body) = token(&redeem(&code_of(CLIENT)), Some((CLIENT, secret)));
    assert_eq!(outcome.0, 200, "{body}");

    // The device flow: the public client with client_id alone, the confidential one
    // only with its secret; a device code polled by the other client is unknown to it.
    let device_url = format!("{}/oauth2/default/v1/device/authorize", origin(&sandbox));
    let scope = ("scope", "contact_data offline_access");
    for (form, basic) in [
        (
            form(&[
                ("client_id", PUBLIC_CLIENT),
                ("client_secret", secret),
                scope,
            ]),
            None,
        ),
        (form(&[scope]), Some((PUBLIC_CLIENT, ""))),
        (form(&[("client_id", CLIENT), scope]), None),
        (form(&[scope]), None),
    ] {
        let (status, error, _) = post_form(&device_url, &form, basic);
        assert_eq!((status, error), invalid_client, "{form:?} {basic:?}");
    }
    let (status, _, body) = post_form(&device_url, &form(&[scope]), Some((CLIENT, secret)));
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = post_form(&device_url, &form(&[public[0], scope]), None);
    assert_eq!(status, 200, "{body}");
    let user_code = body["user_code"].as_str().unwrap();
    device(&sandbox, json!({"user_code": user_code, "approve": true}));
    let poll = form(&[
        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ("device_code", body["device_code"].as_str().unwrap()),
    ]);
    let (outcome, _) = token(&poll, Some((CLIENT, secret)));
    assert_eq!(outcome, invalid_grant, "another client's device code");
    let (outcome, body) = token(&plus(poll, &public), None);
    assert_eq!(outcome.0, 200, "{body}");
    assert_eq!(
        body["refresh_token"],
        sandbox.state()["current_refresh_token"]
    );
}
