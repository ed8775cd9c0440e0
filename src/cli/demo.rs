//! `demo`: the whole product in one command, no account needed. Starts the
//! sandbox in-process, runs a full read of every stream, changes some
//! records, runs an incremental read from the saved state, and prints what
//! each run cost per stream.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use super::progress::{Messages, Protocol, Watch};
use super::setup;
use crate::config::LoadedConfig;
use crate::engine::audit::Audit;
use crate::engine::{self, StreamReport, StreamStates};
use crate::error::{Error, Result};
use crate::protocol::airbyte::AirbyteWriter;
use crate::protocol::catalog::Selected;
use crate::protocol::{Level, Output, RecordRef, StreamStatus};
use crate::streams::Registry;
use constant_contact_fake::{Sandbox, SandboxOptions};

#[derive(Debug, clap::Args)]
pub struct DemoOptions {
    /// Contacts in the sandbox account.
    #[arg(long, default_value_t = 2000)]
    pub contacts: usize,
    /// Where the Airbyte messages of both runs go.
    #[arg(long, default_value = "demo-output.jsonl", conflicts_with = "stdout")]
    pub output: PathBuf,
    /// Write the messages to stdout instead of a file.
    #[arg(long)]
    pub stdout: bool,
    /// Contacts changed between the two runs.
    #[arg(long, default_value_t = 25)]
    pub change: usize,
    /// Requests per second the sandbox allows and the connector sends. The
    /// real API allows 4; the demo defaults higher so it ends in a minute.
    #[arg(long = "requests-per-second", default_value_t = 20)]
    pub requests_per_second: u32,
}

/// Contacts whose contact reports the second run reads.
const REPORTED_CONTACTS: usize = 3;

/// Passes messages to the protocol writer and keeps what the next run needs:
/// the last state of each stream, the newest config, and a few contact ids.
struct Recorder {
    writer: Box<dyn Output>,
    states: Mutex<StreamStates>,
    config: Mutex<Option<Value>>,
    contact_ids: Mutex<Vec<Value>>,
}

impl Output for Recorder {
    fn record(&self, stream: &str, record: RecordRef<'_>) {
        if stream == "contacts" {
            let mut ids = self.contact_ids.lock().unwrap_or_else(|p| p.into_inner());
            if ids.len() < REPORTED_CONTACTS {
                let record = record.to_value();
                if record["deleted_at"].is_null() {
                    ids.push(record["contact_id"].clone());
                }
            }
        }
        self.writer.record(stream, record)
    }
    fn state(&self, stream: &str, state: &Value, records: u64) {
        let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        states.insert(stream.to_string(), state.clone());
        self.writer.state(stream, state, records)
    }
    fn stream_status(&self, stream: &str, status: StreamStatus) {
        self.writer.stream_status(stream, status)
    }
    fn log(&self, level: Level, message: &str) {
        self.writer.log(level, message)
    }
    fn estimate(&self, stream: &str, rows: u64) {
        self.writer.estimate(stream, rows)
    }
    fn config_updated(&self, config: &Value) {
        *self.config.lock().unwrap_or_else(|p| p.into_inner()) = Some(config.clone());
        self.writer.config_updated(config)
    }
    fn flush(&self) {
        self.writer.flush()
    }
}

pub fn run(options: DemoOptions) -> i32 {
    match setup::server_runtime().and_then(|rt| rt.block_on(demo(options))) {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("demo failed: {error}");
            1
        }
    }
}

async fn demo(options: DemoOptions) -> Result<()> {
    let sandbox = Sandbox::start(SandboxOptions {
        contacts: options.contacts,
        rps: options.requests_per_second,
        ..SandboxOptions::default()
    })
    .await
    .map_err(|e| Error::system(format!("cannot start the sandbox: {e}")))?;
    eprintln!(
        "sandbox: {} ({} contacts, {} requests/s; Constant Contact allows 4); reading every stream",
        sandbox.base_url(),
        options.contacts,
        options.requests_per_second
    );
    let every_stream = crate::protocol::catalog::default_selection(&Registry::built_in());
    let writer = if options.stdout {
        AirbyteWriter::new(Box::new(BufWriter::new(std::io::stdout())) as Box<dyn Write + Send>)
    } else {
        let file = File::create(&options.output).map_err(|e| {
            Error::config(format!("cannot create {}: {e}", options.output.display()))
        })?;
        AirbyteWriter::new(Box::new(BufWriter::new(file)) as Box<dyn Write + Send>)
    };
    // Deleted contacts carry `_ab_cdc_deleted_at`, as in `read`.
    writer.mark_deletions(&every_stream);
    let writer: Box<dyn Output> = Box::new(writer);
    let recorder = Arc::new(Recorder {
        writer,
        states: Mutex::new(StreamStates::new()),
        config: Mutex::new(None),
        contact_ids: Mutex::new(Vec::new()),
    });

    // The sandbox's tokens must not land in the user's real token cache.
    let cache = std::env::temp_dir().join(format!(
        "source-constant-contact-demo-{}",
        std::process::id()
    ));
    let mut first_config = sandbox.connector_config();
    first_config["token_cache_path"] = Value::from(cache.join("tokens.json").display().to_string());
    let messages = if options.stdout {
        Messages::Stdout
    } else {
        Messages::File
    };
    let full = sync(&first_config, &every_stream, &recorder, messages).await?;
    // Every record arrived: the sandbox knows how many there are.
    let expected = sandbox.expected_counts();
    for (name, report) in &full.0 {
        let read = report.as_ref().map_or(0, |r| r.records);
        // Contact reports depend on the contacts chosen: not counted here.
        let Some(wanted) = expected.get(name).map(|n| *n as u64) else {
            continue;
        };
        if read != wanted {
            return Err(Error::system(format!(
                "{name}: read {read} records, the sandbox holds {wanted}"
            )));
        }
    }
    let changed = sandbox_control(
        &sandbox,
        "mutate",
        json!({"contacts": options.change, "campaigns": 3, "delete_contacts": 2}),
    )
    .await?;
    eprintln!(
        "changed {} contacts, deleted {}, changed {} campaigns; reading incrementally",
        count(&changed["contacts"]),
        count(&changed["deleted_contacts"]),
        count(&changed["campaigns"])
    );
    // The second run starts from what a platform would have stored: the
    // last state of each stream and the newest (rotated) config.
    let mut config = recorder
        .config
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
        .unwrap_or(first_config);
    // Contact reports read one contact per request, only for listed contacts.
    config["contact_ids"] = Value::Array(
        recorder
            .contact_ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone(),
    );
    let incremental = sync(&config, &every_stream, &recorder, messages).await?;
    recorder.flush();

    print_summary(
        Run {
            results: &full.0,
            requests: full.1,
        },
        Run {
            results: &incremental.0,
            requests: incremental.1,
        },
    );
    let _ = std::fs::remove_dir_all(&cache);
    let token_requests: usize = sandbox
        .request_counts()
        .iter()
        .filter(|(route, _)| route.starts_with("POST ") && route.ends_with("/token"))
        .map(|(_, n)| n)
        .sum();
    eprintln!(
        "\nall {} streams complete; token requests: {token_requests} (the second run reused the \
         access token from the rotated config)",
        full.0.len()
    );
    if !options.stdout {
        eprintln!(
            "Airbyte messages of both runs: {}",
            options.output.display()
        );
    }
    Ok(())
}

async fn sync(
    config: &Value,
    streams: &[Selected],
    recorder: &Arc<Recorder>,
    messages: Messages,
) -> Result<(Vec<(String, Result<StreamReport>)>, u64)> {
    let config = LoadedConfig::from_value(config.clone())?;
    let registry = setup::registry(&config)?;
    let states = recorder
        .states
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    // Progress on stderr when it is a terminal, as `read` shows it.
    let watch = Watch::start(recorder.clone(), streams.len(), Protocol::Airbyte, messages);
    let ctx = setup::sync_context(&config, registry, &watch.output())?;
    watch.count_requests(&ctx.api);
    let results = engine::read_all(&ctx, streams, &states).await;
    watch.finish();
    for (_, result) in &results {
        if let Err(error) = result {
            return Err(error.clone());
        }
    }
    Ok((results, ctx.api.requests_spent().sent))
}

/// Posts to a sandbox-only control route (`/__sandbox/<route>`).
async fn sandbox_control(sandbox: &Sandbox, route: &str, body: Value) -> Result<Value> {
    let base = url::Url::parse(&sandbox.base_url()).expect("the sandbox URL is valid");
    let url = base
        .join(&format!("/__sandbox/{route}"))
        .expect("a sandbox route is a valid URL");
    let response = reqwest::Client::new()
        .post(url)
        .json(&body)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| Error::system(format!("sandbox {route}: {e}")))?;
    response
        .json()
        .await
        .map_err(|e| Error::system(format!("sandbox {route}: {e}")))
}

fn count(ids: &Value) -> usize {
    ids.as_array().map_or(0, Vec::len)
}

type Results = [(String, Result<StreamReport>)];

/// One run's results and the requests its client sent (each once, also
/// those several streams shared through a cache).
struct Run<'r> {
    results: &'r Results,
    requests: u64,
}

fn print_summary(full: Run<'_>, incremental: Run<'_>) {
    let _ = std::io::stderr()
        .lock()
        .write_all(summary_table(full, incremental).as_bytes());
}

/// The per-stream table of both runs, its first column as wide as the
/// longest stream name, and a last row with each run's total. `.ci/image.sh`
/// reads it: the header starts `stream records pages`, and a stream's row
/// its name, then its records in the full read.
fn summary_table(full: Run<'_>, incremental: Run<'_>) -> String {
    const TOTAL: &str = "all streams";
    let by_name: BTreeMap<&str, &StreamReport> = incremental
        .results
        .iter()
        .filter_map(|(name, r)| r.as_ref().ok().map(|r| (name.as_str(), r)))
        .collect();
    let width = full
        .results
        .iter()
        .map(|(name, _)| name.len())
        .chain([TOTAL.len(), "stream".len()])
        .max()
        .unwrap_or_default();
    let mut table = String::new();
    let _ = writeln!(
        table,
        "\n{:<width$} {:>26}   {:>26}   {:>AUDIT$}",
        "", "full read", "incremental read", "audit: delivered/expected"
    );
    let _ = writeln!(
        table,
        "{:<width$} {:>8} {:>5} {:>5} {:>6}   {:>8} {:>5} {:>5} {:>6}   {:>HALF$} {:>HALF$}",
        "stream",
        "records",
        "pages",
        "reqs",
        "secs",
        "records",
        "pages",
        "reqs",
        "secs",
        "full",
        "incr"
    );
    let mut records = (0, 0);
    for (name, report) in full.results {
        let Ok(first) = report else { continue };
        let second = by_name
            .get(name.as_str())
            .copied()
            .cloned()
            .unwrap_or_default();
        records.0 += first.records;
        records.1 += second.records;
        let _ = writeln!(
            table,
            "{:<width$} {:>8} {:>5} {:>5} {:>6.1}   {:>8} {:>5} {:>5} {:>6.1}   {:>HALF$} {:>HALF$}",
            name,
            first.records,
            first.pages,
            first.requests,
            first.elapsed.as_secs_f64(),
            second.records,
            second.pages,
            second.requests,
            second.elapsed.as_secs_f64(),
            audit_cell(&first.audit),
            audit_cell(&second.audit),
        );
    }
    // Streams that share a read (stats several reports use) each count it:
    // the total is the client's count, every request once.
    let _ = writeln!(
        table,
        "{:<width$} {:>8} {:>5} {:>5} {:>6}   {:>8} {:>5} {:>5} {:>6}   {:>AUDIT$}",
        TOTAL, records.0, "", full.requests, "", records.1, "", incremental.requests, "", ""
    );
    table
}

/// Width of each audit column, and of both.
const HALF: usize = 19;
const AUDIT: usize = 2 * HALF + 1;

/// A read's audit as the table shows it: its verdict, with the rows
/// delivered and expected by the API's counts; `-` for a stream the API
/// states no count of.
fn audit_cell(audit: &Audit) -> String {
    if !audit.declared {
        return "-".into();
    }
    format!("{} {}/{}", audit.verdict(), audit.delivered, audit.expected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn report(records: u64, pages: u64, requests: u64) -> Result<StreamReport> {
        Ok(StreamReport {
            records,
            pages,
            requests,
            elapsed: Duration::from_secs(1),
            ..StreamReport::default()
        })
    }

    #[test]
    fn the_summary_columns_fit_the_longest_stream_name() {
        let long = "a_stream_name_much_longer_than_twenty_eight_characters";
        let full = vec![
            ("contacts".to_string(), report(2000, 4, 4)),
            (long.to_string(), report(7, 1, 1)),
        ];
        let mut audited = report(25, 1, 1).unwrap();
        audited.audit.declared = true;
        audited.audit.passed(25, 25);
        let incremental = vec![("contacts".to_string(), Ok(audited))];
        let table = summary_table(
            Run {
                results: &full,
                requests: 5,
            },
            Run {
                results: &incremental,
                requests: 1,
            },
        );
        let lines: Vec<&str> = table.lines().skip(1).collect();
        assert!(lines[1].starts_with("stream "), "{table}");
        // Every row is as long as the header: no column shifts.
        for line in &lines[1..] {
            assert_eq!(line.len(), lines[1].len(), "{table}");
        }
        let row = |name: &str| {
            lines
                .iter()
                .find(|l| l.split_whitespace().next() == Some(name))
                .map(|l| l.split_whitespace().collect::<Vec<_>>())
                .unwrap()
        };
        assert_eq!(row(long)[1..4], ["7", "1", "1"]);
        assert_eq!(row("contacts")[5..8], ["25", "1", "1"]);
        assert_eq!(row("contacts")[9..], ["-", "ok", "25/25"]);
        assert_eq!(row(long)[9..], ["-", "-"]);
        assert_eq!(row("all")[2..], ["2007", "5", "25", "1"]);
    }
}
