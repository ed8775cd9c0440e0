//! Streams read from a bulk export file instead of pages (`Export`): start
//! the export job, wait for its activity to complete, then stream the CSV
//! file it links to, one row at a time, as typed records. The export asks
//! for every field (see [`export_request`]); the file's header names are not
//! documented, so its columns are matched to the schema's fields and the
//! account's custom fields by meaning ([`Matcher`]), and the mapping is
//! logged.
//!
//! Every request goes through the shared `ApiClient` (rate limiter, budget,
//! quota, retries). The job's `POST` is sent again only when the API cannot
//! have acted on it (see `ApiClient::post_json`): a second export would be a
//! second job on the account. Polls and the file's `GET` are idempotent and
//! retried as usual. A file whose body breaks off is asked for again (it is
//! an immutable snapshot) and the rows already handed on are skipped.
//!
//! The cost is a handful of requests whatever the account's size: the
//! account's custom fields (one request per 100, none when
//! `custom_fields_as_columns` read them already), the `POST`, one `GET` per
//! poll (waits of 1 s doubling to 10 s), one `GET` of the file.

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
    // The custom fields first: their columns are matched to them, and a
    // failure here starts no job on the account.
    let custom_fields = ctx.custom_fields(report).await?;
    let url = ctx.api.endpoint(&def.path, &[]);
    let started = ctx
        .api
        .post_json(&url, &export_request())
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
    read_file(ctx, def, &id, &file, &custom_fields, sink, report).await
}

/// The body of the export's `POST`: no `fields`, since the export guide says
/// an export then holds every contact field, custom fields included, which is
/// what the stream wants. A list could only lose columns: the contract has no
/// enum of field names, and custom fields have no documented export name. No
/// `status` either: the export then holds every (live) contact.
fn export_request() -> Value {
    json!({})
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
    custom_fields: &[Value],
    sink: &mut dyn Sink,
    report: &mut StreamReport,
) -> Result<()> {
    let mut rows = Rows::new(def, id, Matcher::new(&def.schema, custom_fields));
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
        let result = rows.read(response, sink, report).await;
        // Header names are not documented: how this file's were read is said
        // once, whatever became of the read.
        if let Some(mapping) = rows.mapping.take() {
            ctx.output.log(
                Level::Info,
                &format!(
                    "{}: the export file's columns, as read: {mapping}",
                    def.name
                ),
            );
        }
        match result {
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

/// Where a record keeps its custom fields, as `contacts` does:
/// `[{custom_field_id, value}]`.
const CUSTOM_FIELDS: &str = "custom_fields";

/// Other spellings of the schema's fields a header may use. The export's
/// header names are not documented (nor are the fields', beyond a few the
/// guide names), so headers are matched by meaning: a header is normalised
/// (lowercase letters and digits only: `E-mail address`, `EMAIL_ADDRESS` and
/// `Email Address` are all `emailaddress`) and compared with each field's own
/// name and these words, normalised the same way. Kept small: a header it
/// misses is logged, with every other, when the file is read.
const SYNONYMS: &[(&str, &[&str])] = &[
    ("contact_id", &["id", "contact", "contact uuid"]),
    ("email_address", &["email", "email addr"]),
    ("phone_number", &["phone", "telephone"]),
    ("company_name", &["company"]),
    ("street", &["street address", "address", "address line 1"]),
    (
        "zip",
        &["zip code", "postal code", "postcode", "zip/postal code"],
    ),
    ("state", &["province", "state/province"]),
    ("email_lists", &["lists", "list memberships"]),
    ("created_at", &["created", "date created", "created date"]),
    ("updated_at", &["updated", "date updated", "last updated"]),
    (
        "email_permission",
        &["email permission status", "permission to send"],
    ),
    ("notes", &["note"]),
    ("sms_number", &["sms phone", "sms phone number"]),
];

/// A header as compared: its letters and digits, lowercase.
fn normalise(header: &str) -> String {
    header
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// What a column of the file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Column {
    /// A field of the schema, typed as it says.
    Field(String, Kind),
    /// A custom field of the account, by `custom_field_id`.
    Custom(String),
    /// Nothing the stream knows: left out.
    Unknown,
}

/// Matches header names to the schema's fields and the account's custom
/// fields.
struct Matcher {
    /// Normalised name or synonym → field and its kind.
    fields: BTreeMap<String, (String, Kind)>,
    /// (`custom_field_id`, label, name) of each custom field.
    custom: Vec<(String, String, String)>,
    /// The schema has `custom_fields`, which custom columns fill.
    custom_fields_property: bool,
}

impl Matcher {
    /// From the schema's own properties (not `custom_fields`, nor the
    /// columns `custom_fields_as_columns` adds, which are filled from it) and
    /// the records of `/contact_custom_fields`.
    fn new(schema: &Value, custom_fields: &[Value]) -> Matcher {
        let properties = schema["properties"].as_object();
        let own = crate::streams::custom_fields::own_properties(schema);
        let mut fields = BTreeMap::new();
        for name in own.iter().filter(|n| *n != CUSTOM_FIELDS) {
            let kind = Kind::of(&properties.expect("own properties")[name]);
            fields.insert(normalise(name), (name.clone(), kind));
        }
        for (field, words) in SYNONYMS {
            let Some((_, kind)) = fields.get(&normalise(field)).cloned() else {
                continue;
            };
            for word in *words {
                fields
                    .entry(normalise(word))
                    .or_insert_with(|| (field.to_string(), kind));
            }
        }
        let text = |f: &Value, key: &str| {
            f.get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let custom = custom_fields
            .iter()
            .filter(|f| f.get("custom_field_id").and_then(Value::as_str).is_some())
            .map(|f| {
                (
                    text(f, "custom_field_id"),
                    text(f, "label"),
                    text(f, "name"),
                )
            })
            .collect();
        Matcher {
            fields,
            custom,
            custom_fields_property: own.contains(CUSTOM_FIELDS),
        }
    }

    /// What each header holds. A header naming a field (its name or a
    /// synonym, normalised) is that field, unless an earlier column has it;
    /// else a custom field whose label or name it is (exactly, then ignoring
    /// case, then normalised, where only one field matches); else nothing.
    fn columns(&self, headers: &[&str]) -> Vec<Column> {
        let mut taken: Vec<Column> = Vec::new();
        for header in headers {
            let field = self
                .fields
                .get(&normalise(header))
                .map(|(name, kind)| Column::Field(name.clone(), *kind))
                .filter(|column| !taken.contains(column));
            let column = field
                .or_else(|| self.custom_field(header).map(Column::Custom))
                .filter(|column| !taken.contains(column))
                .unwrap_or(Column::Unknown);
            taken.push(column);
        }
        taken
    }

    fn custom_field(&self, header: &str) -> Option<String> {
        let header = header.trim();
        let tests: [&dyn Fn(&str) -> bool; 3] = [
            &|name| name == header,
            &|name| name.to_lowercase() == header.to_lowercase(),
            &|name| normalise(name) == normalise(header),
        ];
        for test in tests {
            let matching: Vec<&String> = self
                .custom
                .iter()
                .filter(|(_, label, name)| {
                    (!label.is_empty() && test(label)) || (!name.is_empty() && test(name))
                })
                .map(|(id, _, _)| id)
                .collect();
            match matching[..] {
                [id] => return Some(id.clone()),
                [] => continue,
                // Ambiguous at this level: a closer one would have matched.
                _ => return None,
            }
        }
        None
    }
}

/// The header-to-field mapping, for the log: `"Email Address" → email_address`.
fn describe(headers: &[&str], columns: &[Column]) -> String {
    headers
        .iter()
        .zip(columns)
        .map(|(header, column)| {
            let target = match column {
                Column::Field(field, _) => field.clone(),
                Column::Custom(id) => format!("custom field {id}"),
                Column::Unknown => "(left out)".to_string(),
            };
            format!("{header:?} → {target}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The header spellings read as `field`, for messages.
fn spellings(field: &str) -> String {
    let words = SYNONYMS
        .iter()
        .find(|(f, _)| *f == field)
        .map(|(_, words)| *words)
        .unwrap_or_default();
    std::iter::once(field)
        .chain(words.iter().copied())
        .map(|w| format!("{w:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The rows of one export file, parsed as they arrive: a chunk of the body
/// is parsed up to its last complete row, the rest waits for the next chunk.
struct Rows<'a> {
    def: &'a StreamDef,
    activity: &'a str,
    matcher: Matcher,
    /// What each column holds, from the header row.
    columns: Option<Vec<Column>>,
    /// How the header row was read, to log once: `None` once logged.
    mapping: Option<String>,
    mapping_logged: bool,
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
    fn new(def: &'a StreamDef, activity: &'a str, matcher: Matcher) -> Rows<'a> {
        Rows {
            def,
            activity,
            matcher,
            columns: None,
            mapping: None,
            mapping_logged: false,
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
        columns: &mut Option<Vec<Column>>,
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

    /// The columns of the header row, matched to fields by meaning (see
    /// [`Matcher`]); fails when a column the stream needs is missing.
    fn header(&mut self, row: &csv::StringRecord) -> Result<Vec<Column>> {
        let headers: Vec<&str> = row
            .iter()
            .enumerate()
            .map(|(index, name)| {
                if index == 0 {
                    name.trim_start_matches('\u{feff}')
                } else {
                    name
                }
            })
            .collect();
        let columns = self.matcher.columns(&headers);
        if !self.mapping_logged {
            self.mapping_logged = true;
            self.mapping = Some(describe(&headers, &columns));
        }
        for key in &self.def.primary_key {
            let found = columns
                .iter()
                .any(|c| matches!(c, Column::Field(f, _) if f == key));
            if !found {
                return Err(Error::system(format!(
                    "the export file of activity {} has no {key} column, which the stream \
                     needs (a header such as {}); its headers: {}",
                    self.activity,
                    spellings(key),
                    headers
                        .iter()
                        .map(|h| format!("{h:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        for (header, column) in headers.iter().zip(&columns) {
            if *column == Column::Unknown && !self.unknown_columns.iter().any(|c| c == header) {
                self.unknown_columns.push(header.to_string());
            }
        }
        Ok(columns)
    }

    fn record(&mut self, columns: &[Column], row: &csv::StringRecord) -> Value {
        let mut record = Map::new();
        let mut custom = Vec::new();
        for (column, text) in columns.iter().zip(row.iter()) {
            match column {
                Column::Field(field, kind) => {
                    let value = typed(*kind, text);
                    if value.is_null() && !text.trim().is_empty() {
                        *self.unparsed.entry(field.clone()).or_default() += 1;
                    }
                    record.insert(field.clone(), value);
                }
                Column::Custom(id) => {
                    let text = text.trim();
                    if !text.is_empty() {
                        custom.push(json!({"custom_field_id": id, "value": text}));
                    }
                }
                Column::Unknown => {}
            }
        }
        // As `contacts` has them: the fields the contact has a value for.
        if self.matcher.custom_fields_property {
            record.insert(CUSTOM_FIELDS.into(), Value::Array(custom));
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

    fn export_schema() -> Value {
        let registry = crate::streams::Registry::built_in();
        registry.find("contacts_export").unwrap().schema.clone()
    }

    fn custom(id: &str, label: &str) -> Value {
        json!({"custom_field_id": id, "label": label, "name": label.replace(' ', "_")})
    }

    fn account_fields() -> Vec<Value> {
        vec![
            custom("id-shoe", "Shoe size"),
            custom("id-shoe-2", "shoe-SIZE"),
            custom("id-level", "Membership level"),
            custom("id-notes", "Notes"),
        ]
    }

    fn targets(headers: &[&str]) -> Vec<String> {
        let matcher = Matcher::new(&export_schema(), &account_fields());
        matcher
            .columns(headers)
            .into_iter()
            .map(|c| match c {
                Column::Field(f, _) => f,
                Column::Custom(id) => id,
                Column::Unknown => "-".into(),
            })
            .collect()
    }

    #[test]
    fn headers_are_matched_by_meaning() {
        for spelling in [
            "Email Address",
            "email_address",
            "EMAIL",
            "E-mail address",
            " e-mail ",
        ] {
            assert_eq!(targets(&[spelling]), ["email_address"], "{spelling:?}");
        }
        for spelling in ["contact_id", "Contact Id", "CONTACT-ID", "ID", "Contact"] {
            assert_eq!(targets(&[spelling]), ["contact_id"], "{spelling:?}");
        }
        assert_eq!(
            targets(&[
                "Zip/Postal Code",
                "Postal code",
                "State/Province",
                "Date Created"
            ]),
            ["zip", "-", "state", "created_at"],
            "a field already read from an earlier column is not read twice"
        );
        assert_eq!(
            targets(&[
                "SMS Number",
                "Sms Consent Date",
                "sms_status",
                "Source Name"
            ]),
            [
                "sms_number",
                "sms_consent_date",
                "sms_status",
                "source_name"
            ]
        );
        assert_eq!(targets(&["Shoe Size (EU)", "custom_fields"]), ["-", "-"]);
    }

    #[test]
    fn custom_field_columns_are_matched_by_label_or_name() {
        // Exactly first: two labels equal but for case and punctuation.
        assert_eq!(
            targets(&["shoe-SIZE", "Shoe size", "Membership_level"]),
            ["id-shoe-2", "id-shoe", "id-level"]
        );
        // Then ignoring case, where one label matches; then normalised.
        assert_eq!(targets(&["MEMBERSHIP LEVEL"]), ["id-level"]);
        assert_eq!(targets(&["membership-level"]), ["id-level"]);
        // Ambiguous once normalised: left out rather than guessed.
        assert_eq!(targets(&["Shoe Size!"]), ["-"]);
        // A field of the stream wins its header; a second such header is the
        // custom field of that label.
        assert_eq!(targets(&["Notes", "Notes"]), ["notes", "id-notes"]);
        // A column a custom field already has is not read twice.
        assert_eq!(targets(&["Shoe size", "Shoe size"]), ["id-shoe", "-"]);
    }

    #[test]
    fn columns_of_custom_fields_as_columns_are_not_header_targets() {
        let schema = crate::streams::custom_fields::with_columns(
            &export_schema(),
            &crate::streams::custom_fields::columns(&account_fields(), &Default::default()),
        );
        assert!(schema["properties"]["cf_shoe_size"].is_object());
        let matcher = Matcher::new(&schema, &account_fields());
        assert_eq!(
            matcher.columns(&["cf_shoe_size", "Shoe size"]),
            [Column::Unknown, Column::Custom("id-shoe".into())]
        );
    }

    /// The export asks for no field list (all fields, the guide's default),
    /// and every spelling the matcher knows leads to a field of the schema,
    /// each to its own.
    #[test]
    fn the_schema_covers_what_the_export_asks_for_and_the_matcher_knows() {
        assert_eq!(export_request(), json!({}), "no `fields`: every field");
        let schema = export_schema();
        let properties = schema["properties"].as_object().unwrap();
        for key in [
            "notes",
            "source_name",
            "sms_number",
            "sms_consent_date",
            "sms_status",
        ] {
            assert!(properties.contains_key(key), "{key}");
        }
        let contacts = crate::streams::Registry::built_in()
            .find("contacts")
            .unwrap()
            .schema
            .clone();
        for key in ["type", "items"] {
            assert_eq!(
                schema["properties"][CUSTOM_FIELDS][key],
                contacts["properties"][CUSTOM_FIELDS][key],
                "custom_fields as contacts has them"
            );
        }
        let own: Vec<String> = properties.keys().map(|k| normalise(k)).collect();
        let mut seen = BTreeMap::new();
        for (field, words) in SYNONYMS {
            assert!(
                properties.contains_key(*field),
                "{field} is not in the schema"
            );
            for word in *words {
                let key = normalise(word);
                assert!(!own.contains(&key), "{word:?} is a field's own name");
                if let Some(other) = seen.insert(key, *field) {
                    panic!("{word:?} is a synonym of {other} and {field}");
                }
            }
        }
    }

    #[test]
    fn custom_columns_fill_custom_fields_as_contacts_has_them() {
        let schema = export_schema();
        let def = StreamDef::new("contacts_export", "/x")
            .primary_key(&["contact_id"])
            .schema(&schema.to_string());
        let mut rows = Rows::new(&def, "a", Matcher::new(&schema, &account_fields()));
        let header =
            csv::StringRecord::from(vec!["Contact Id", "Shoe size", "Membership level", "Other"]);
        let columns = rows.header(&header).unwrap();
        let record = rows.record(
            &columns,
            &csv::StringRecord::from(vec!["c1", "9.5", " ", "x"]),
        );
        assert_eq!(
            record,
            json!({"contact_id": "c1", "custom_fields": [{"custom_field_id": "id-shoe", "value": "9.5"}]})
        );
        assert_eq!(rows.unknown_columns, ["Other"]);
        assert!(rows
            .mapping
            .as_deref()
            .unwrap()
            .contains("\"Shoe size\" → custom field id-shoe"));

        let missing = csv::StringRecord::from(vec!["Email", "Contact Name"]);
        let error = rows.header(&missing).unwrap_err().message;
        assert!(
            error.contains("no contact_id column") && error.contains("\"Email\", \"Contact Name\""),
            "{error}"
        );
    }

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
