//! Streams read from a bulk export file instead of pages (`Export`): start
//! the export job, wait for its activity to complete, then stream the CSV
//! file it links to, one row at a time, as typed records.
//!
//! Every request goes through the shared `ApiClient` (rate limiter, budget,
//! quota, retries). The job's `POST` is sent again only when the API cannot
//! have acted on it (see `ApiClient::post_json`): a second export would be a
//! second job on the account. Polls and the file's `GET` are idempotent and
//! retried as usual. A file whose body breaks off is asked for again (it is
//! an immutable snapshot) and the rows already handed on are skipped.
//!
//! The cost is a handful of requests whatever the account's size: the
//! `POST`, one `GET` per poll (waits of 1 s doubling to 10 s), one `GET` of
//! the file.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};
use url::Url;

use super::state::{self, NoState};
use super::{Context, Sink, StreamReport};
use crate::error::{Error, Result};
use crate::protocol::{Level, RecordRef};
use crate::streams::{Export, StreamDef};

/// The first wait between polls of the export activity; each wait doubles
/// up to [`POLL_MAX`].
const POLL_FIRST: Duration = Duration::from_secs(1);
const POLL_MAX: Duration = Duration::from_secs(10);
/// How long an export may take before the stream gives up on it.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// A checkpoint (with its record count) after this many rows.
const CHECKPOINT_ROWS: u64 = 1000;
/// Reads of the file, the first included, when its body breaks off.
const FILE_ATTEMPTS: u32 = 3;
/// The activity states that end a job without a file.
const FAILED_STATES: &[&str] = &["failed", "cancelled", "timed_out"];

/// Reads `def`, an export stream, into `sink`.
pub(super) async fn read(
    ctx: &Context,
    def: &StreamDef,
    export: Export,
    sink: &mut dyn Sink,
    report: &mut StreamReport,
) -> Result<()> {
    match export {
        Export::Contacts => read_contacts(ctx, def, sink, report).await,
    }
}

async fn read_contacts(
    ctx: &Context,
    def: &StreamDef,
    sink: &mut dyn Sink,
    report: &mut StreamReport,
) -> Result<()> {
    // Every field the schema has is asked for. The live contract takes
    // `fields` as plain strings, with no list of exportable fields to hold
    // the schema against, so no test checks them.
    // No `status`: the export then holds every contact of the account.
    let fields: Vec<&String> = def.schema["properties"]
        .as_object()
        .map(|properties| properties.keys().collect())
        .unwrap_or_default();
    let url = ctx.api.endpoint(&def.path, &[]);
    let started = ctx
        .api
        .post_json(&url, &json!({ "fields": fields }))
        .await
        .map_err(needs_privilege)?;
    report.requests += u64::from(started.requests);
    let id = started
        .body
        .get("activity_id")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            Error::system(format!(
                "POST {}: the answer has no activity_id: {}",
                def.path,
                snippet(&started.body)
            ))
        })?
        .to_string();
    ctx.output.log(
        Level::Info,
        &format!("{}: export activity {id} started", def.name),
    );
    let activity = wait_for(ctx, &id, started.body, report).await?;
    let file = file_url(ctx, &id, &activity)?;
    read_file(ctx, def, &id, &file, sink, report).await
}

/// A 403 of any export request: the user lacks the privilege.
fn needs_privilege(error: Error) -> Error {
    if !error.forbidden {
        return error;
    }
    Error::config(format!(
        "the contact export needs the `contacts:write` user privilege, which the user who \
         authorized the connector lacks (or the token lacks the contact_data scope); grant it \
         (an account owner or administrator can) or deselect the stream contacts_export. \
         The API said: {}",
        error.message
    ))
}

/// Polls the activity until it completes; fails on a failed, cancelled or
/// timed-out activity, or after [`EXPORT_TIMEOUT`].
async fn wait_for(
    ctx: &Context,
    id: &str,
    mut activity: Value,
    report: &mut StreamReport,
) -> Result<Value> {
    let url = ctx.api.endpoint(&format!("/activities/{id}"), &[]);
    let deadline = Instant::now() + EXPORT_TIMEOUT;
    let mut wait = POLL_FIRST;
    loop {
        let state = activity.get("state").and_then(Value::as_str).unwrap_or("");
        if state == "completed" {
            return Ok(activity);
        }
        if FAILED_STATES.contains(&state) {
            let errors: Vec<&str> = activity
                .get("activity_errors")
                .and_then(Value::as_array)
                .map(|errors| errors.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let errors = if errors.is_empty() {
                String::new()
            } else {
                format!(" ({})", errors.join("; "))
            };
            return Err(Error::system(format!(
                "the contact export activity {id} ended {state}{errors}; the next run starts a \
                 new export"
            )));
        }
        if Instant::now() + wait > deadline {
            let done = activity
                .get("percent_done")
                .map(Value::to_string)
                .unwrap_or_else(|| "?".into());
            return Err(Error::system(format!(
                "the contact export activity {id} was still {state:?} ({done}% done) after \
                 {} minutes, giving up; GET /activities/{id} shows its progress",
                EXPORT_TIMEOUT.as_secs() / 60
            )));
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(POLL_MAX);
        let polled = ctx
            .api
            .get_checked(&url, &|body| match body.get("state") {
                Some(Value::String(_)) => Ok(()),
                _ => Err("the activity has no state".into()),
            })
            .await
            .map_err(needs_privilege)
            .map_err(|e| e.context(format!("polling the contact export activity {id}")))?;
        report.requests += u64::from(polled.requests);
        activity = polled.body;
    }
}

/// Where the file is: the activity's `_links.results.href` (host-relative,
/// with `/v3`), or else `/contact_exports/{activity_id}` (the docs' path,
/// whose id is the export activity's).
fn file_url(ctx: &Context, id: &str, activity: &Value) -> Result<Url> {
    match activity
        .pointer("/_links/results/href")
        .and_then(Value::as_str)
    {
        Some(href) => ctx.api.resolve_link(href),
        None => Ok(ctx.api.endpoint(&format!("/contact_exports/{id}"), &[])),
    }
}

/// Why reading the file's body stopped.
enum Stop {
    /// The body broke off: reading it again may succeed.
    Broken(String),
    Fatal(Error),
}

async fn read_file(
    ctx: &Context,
    def: &StreamDef,
    id: &str,
    url: &Url,
    sink: &mut dyn Sink,
    report: &mut StreamReport,
) -> Result<()> {
    let mut rows = Rows::new(def, id);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let (response, requests) = ctx
            .api
            .get_raw(url, "text/csv")
            .await
            .map_err(needs_privilege)?;
        report.requests += u64::from(requests);
        report.pages += 1;
        match rows.read(response, sink, report).await {
            Ok(()) => break,
            Err(Stop::Broken(reason)) if attempt < FILE_ATTEMPTS => {
                ctx.output.log(
                    Level::Warn,
                    &format!(
                        "{}: the export file of activity {id} broke off after {} rows \
                         ({reason}); reading it again from the start, skipping those rows",
                        def.name, rows.emitted
                    ),
                );
            }
            Err(Stop::Broken(reason)) => {
                return Err(Error::system(format!(
                    "the export file of activity {id} broke off {attempt} times, giving up: \
                     {reason}"
                )))
            }
            Err(Stop::Fatal(error)) => return Err(error),
        }
    }
    for warning in rows.warnings() {
        ctx.output
            .log(Level::Warn, &format!("{}: {warning}", def.name));
    }
    let last = state::to_value(&NoState {});
    if rows.unsaved > 0 {
        sink.state(last, rows.unsaved);
    } else {
        sink.finish(last);
    }
    Ok(())
}

/// How a column's text becomes a JSON value, from the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Integer,
    DateTime,
}

impl Kind {
    fn of(schema: &Value) -> Kind {
        let types = match &schema["type"] {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        if types.contains(&"integer") {
            Kind::Integer
        } else if schema["format"] == "date-time" {
            Kind::DateTime
        } else {
            Kind::Text
        }
    }
}

/// The rows of one export file, parsed as they arrive: a chunk of the body
/// is parsed up to its last complete row, the rest waits for the next chunk.
struct Rows<'a> {
    def: &'a StreamDef,
    activity: &'a str,
    /// The schema field and kind of each column; `None` for columns the
    /// schema lacks.
    columns: Option<Vec<Option<(String, Kind)>>>,
    /// Rows handed on (kept across reads of the file).
    emitted: u64,
    /// Rows handed on since the last checkpoint.
    unsaved: u64,
    /// Rows of the current read of the file.
    seen: u64,
    unknown_columns: Vec<String>,
    /// Column → values that were not of the schema's type (emitted as null).
    unparsed: BTreeMap<String, u64>,
    without_key: u64,
}

impl<'a> Rows<'a> {
    fn new(def: &'a StreamDef, activity: &'a str) -> Rows<'a> {
        Rows {
            def,
            activity,
            columns: None,
            emitted: 0,
            unsaved: 0,
            seen: 0,
            unknown_columns: Vec::new(),
            unparsed: BTreeMap::new(),
            without_key: 0,
        }
    }

    async fn read(
        &mut self,
        mut response: reqwest::Response,
        sink: &mut dyn Sink,
        report: &mut StreamReport,
    ) -> std::result::Result<(), Stop> {
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if content_type.contains("json") || content_type.contains("html") {
            return Err(Stop::Fatal(Error::system(format!(
                "the export file of activity {} came as {content_type}, not CSV",
                self.activity
            ))));
        }
        self.columns = None;
        self.seen = 0;
        let mut splitter = Splitter::default();
        loop {
            let chunk = response
                .chunk()
                .await
                .map_err(|e| Stop::Broken(crate::error::with_causes("the body broke off", &e)))?;
            let complete = match &chunk {
                Some(bytes) => splitter.push(bytes),
                None => splitter.rest(),
            };
            if !complete.is_empty() {
                self.parse(&complete, sink, report).map_err(Stop::Fatal)?;
            }
            if chunk.is_none() {
                break;
            }
        }
        if self.columns.is_none() {
            return Err(Stop::Fatal(Error::system(format!(
                "the export file of activity {} is empty: it has no header row",
                self.activity
            ))));
        }
        Ok(())
    }

    /// Parses complete rows and hands on those not handed on before.
    fn parse(
        &mut self,
        bytes: &[u8],
        sink: &mut dyn Sink,
        report: &mut StreamReport,
    ) -> Result<()> {
        let mut columns = self.columns.take();
        let result = self.parse_rows(bytes, &mut columns, sink, report);
        self.columns = columns;
        result
    }

    fn parse_rows(
        &mut self,
        bytes: &[u8],
        columns: &mut Option<Vec<Option<(String, Kind)>>>,
        sink: &mut dyn Sink,
        report: &mut StreamReport,
    ) -> Result<()> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(bytes);
        for row in reader.records() {
            let row = row.map_err(|e| {
                Error::system(format!(
                    "the export file of activity {} is not valid CSV after row {}: {e}",
                    self.activity, self.seen
                ))
            })?;
            let Some(columns) = columns.as_deref() else {
                *columns = Some(self.header(&row)?);
                continue;
            };
            self.seen += 1;
            if self.seen <= self.emitted {
                continue;
            }
            let record = self.record(columns, &row);
            self.emitted += 1;
            if record.get("contact_id").is_none_or(Value::is_null) {
                self.without_key += 1;
                continue;
            }
            sink.record(RecordRef::Value(&record));
            self.unsaved += 1;
            report.records += 1;
            if self.unsaved >= CHECKPOINT_ROWS {
                sink.state(state::to_value(&NoState {}), self.unsaved);
                self.unsaved = 0;
            }
        }
        Ok(())
    }

    /// The columns of the header row, matched to schema fields by name
    /// (case and spaces aside: `Email Address` is `email_address`).
    fn header(&mut self, row: &csv::StringRecord) -> Result<Vec<Option<(String, Kind)>>> {
        let properties = self.def.schema["properties"].as_object();
        let mut columns = Vec::new();
        for (index, name) in row.iter().enumerate() {
            let name = if index == 0 {
                name.trim_start_matches('\u{feff}')
            } else {
                name
            };
            let field = name.trim().to_ascii_lowercase().replace([' ', '-'], "_");
            match properties.and_then(|p| p.get(&field)) {
                Some(schema) => columns.push(Some((field, Kind::of(schema)))),
                None => {
                    if !self.unknown_columns.iter().any(|c| c == name) {
                        self.unknown_columns.push(name.to_string());
                    }
                    columns.push(None);
                }
            }
        }
        if !columns.iter().flatten().any(|(f, _)| f == "contact_id") {
            return Err(Error::system(format!(
                "the export file of activity {} has no contact_id column (its columns: {})",
                self.activity,
                row.iter().collect::<Vec<_>>().join(", ")
            )));
        }
        Ok(columns)
    }

    fn record(&mut self, columns: &[Option<(String, Kind)>], row: &csv::StringRecord) -> Value {
        let mut record = Map::new();
        for (column, text) in columns.iter().zip(row.iter()) {
            let Some((field, kind)) = column else {
                continue;
            };
            let value = typed(*kind, text);
            if value.is_null() && !text.trim().is_empty() {
                *self.unparsed.entry(field.clone()).or_default() += 1;
            }
            record.insert(field.clone(), value);
        }
        Value::Object(record)
    }

    fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.unknown_columns.is_empty() {
            out.push(format!(
                "the export file has columns the schema lacks, left out: {}",
                self.unknown_columns.join(", ")
            ));
        }
        for (field, count) in &self.unparsed {
            out.push(format!(
                "{count} values of the column {field} were not of its type; emitted as null"
            ));
        }
        if self.without_key > 0 {
            out.push(format!(
                "{} rows had no contact_id and were left out",
                self.without_key
            ));
        }
        out
    }
}

/// A cell as the schema types it; empty cells (and values not of the type)
/// are null.
fn typed(kind: Kind, text: &str) -> Value {
    let text = text.trim();
    if text.is_empty() {
        return Value::Null;
    }
    match kind {
        Kind::Text => Value::from(text),
        Kind::Integer => text.parse::<i64>().map(Value::from).unwrap_or(Value::Null),
        Kind::DateTime => moment(text)
            .map(|t| Value::from(t.to_rfc3339_opts(SecondsFormat::AutoSi, true)))
            .unwrap_or(Value::Null),
    }
}

/// RFC 3339, or a date and time without zone (taken as UTC), or a date.
fn moment(text: &str) -> Option<DateTime<Utc>> {
    if let Some(t) = state::parse_time(text) {
        return Some(t);
    }
    for format in [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
        "%m/%d/%Y %H:%M:%S",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Some(t.and_utc());
        }
    }
    for format in ["%Y-%m-%d", "%m/%d/%Y"] {
        if let Ok(d) = NaiveDate::parse_from_str(text, format) {
            return d.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
        }
    }
    None
}

/// Splits a CSV body arriving in chunks at row boundaries: a newline outside
/// quotes ends a row. A quote toggles quoting, so the doubled quote of an
/// escaped one toggles twice and changes nothing (RFC 4180).
#[derive(Default)]
struct Splitter {
    buffer: Vec<u8>,
    /// Bytes of `buffer` already scanned, and the quoting state after them.
    scanned: usize,
    quoted: bool,
}

impl Splitter {
    /// Adds a chunk; returns the complete rows the buffer now starts with.
    fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        self.buffer.extend_from_slice(chunk);
        let mut end = None;
        for (offset, &byte) in self.buffer[self.scanned..].iter().enumerate() {
            match byte {
                b'"' => self.quoted = !self.quoted,
                b'\n' if !self.quoted => end = Some(self.scanned + offset + 1),
                _ => {}
            }
        }
        self.scanned = self.buffer.len();
        match end {
            Some(end) => {
                let rest = self.buffer.split_off(end);
                self.scanned -= end;
                std::mem::replace(&mut self.buffer, rest)
            }
            None => Vec::new(),
        }
    }

    /// What is left once the body ended: a last row without a newline.
    fn rest(&mut self) -> Vec<u8> {
        self.scanned = 0;
        std::mem::take(&mut self.buffer)
    }
}

/// The start of a JSON value, for error messages.
fn snippet(value: &Value) -> String {
    value.to_string().chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_all(body: &[u8], size: usize) -> Vec<Vec<u8>> {
        let mut splitter = Splitter::default();
        let mut parts: Vec<Vec<u8>> = body
            .chunks(size)
            .map(|chunk| splitter.push(chunk))
            .filter(|part| !part.is_empty())
            .collect();
        let rest = splitter.rest();
        if !rest.is_empty() {
            parts.push(rest);
        }
        parts
    }

    #[test]
    fn rows_split_outside_quotes_only() {
        let body = b"a,b\n1,\"x\ny\"\n2,\"say \"\"hi\"\"\"\n3,z";
        for size in 1..body.len() {
            let parts = split_all(body, size);
            assert_eq!(parts.concat(), body.to_vec(), "chunk size {size}");
            for part in &parts[..parts.len() - 1] {
                assert!(part.ends_with(b"\n"), "chunk size {size}: {part:?}");
            }
            let rows: usize = parts
                .iter()
                .map(|p| {
                    csv::ReaderBuilder::new()
                        .has_headers(false)
                        .from_reader(&p[..])
                        .records()
                        .count()
                })
                .sum();
            assert_eq!(rows, 4, "chunk size {size}");
        }
    }

    #[test]
    fn cells_are_typed_by_the_schema() {
        assert_eq!(typed(Kind::Integer, " 12 "), json!(12));
        assert_eq!(typed(Kind::Integer, "twelve"), Value::Null);
        assert_eq!(typed(Kind::Text, ""), Value::Null);
        assert_eq!(
            typed(Kind::DateTime, "2024-03-01T10:00:00-05:00"),
            json!("2024-03-01T15:00:00Z")
        );
        assert_eq!(
            typed(Kind::DateTime, "2024-03-01 10:00:00"),
            json!("2024-03-01T10:00:00Z")
        );
        assert_eq!(
            typed(Kind::DateTime, "03/01/2024"),
            json!("2024-03-01T00:00:00Z")
        );
        assert_eq!(
            Kind::of(&json!({"type": ["null", "integer"]})),
            Kind::Integer
        );
        assert_eq!(
            Kind::of(&json!({"type": ["null", "string"], "format": "date-time"})),
            Kind::DateTime
        );
    }
}
