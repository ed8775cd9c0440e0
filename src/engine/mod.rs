//! The stream engine: reads any stream of the table page by page, follows
//! `_links.next.href`, emits records as they arrive (one page in memory at a
//! time), keeps cursors and checkpoints state after every page.
//!
//! Incremental streams ask the API for records changed after the saved
//! cursor minus [`CURSOR_OVERLAP`], so records with equal timestamps or that
//! became visible late are read again rather than lost; destinations
//! deduplicate on the primary key. The pages of one read are not ordered by
//! the cursor, so the cursor only advances once the whole chain is read;
//! until then a checkpoint records the next page instead, and a killed run
//! resumes from it.

mod children;
mod pages;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use futures::StreamExt;
use serde_json::{json, Map, Value};

use crate::catalog::Selected;
use crate::config::LoadedConfig;
use crate::error::{Error, Result};
use crate::http::ApiClient;
use crate::protocol::{Level, Output, StreamStatus};
use crate::state::StreamStates;
use crate::streams::{Filter, StreamDef};
use pages::{first_page, records_of, Pages};

/// How far before the saved cursor an incremental read starts again.
pub const CURSOR_OVERLAP: chrono::Duration = chrono::Duration::minutes(5);
/// Streams read at once; they share the rate limiter, so more would only
/// interleave, not speed up.
const PARALLEL_STREAMS: usize = 4;

pub struct Context {
    pub api: Arc<ApiClient>,
    pub output: Arc<dyn Output>,
    pub start_date: DateTime<Utc>,
    /// Cursors never advance past this: a record changed during the run may
    /// have moved to a page already read.
    pub run_started: DateTime<Utc>,
    /// From the config: no change after this is read; `None` is "now".
    pub end_date: Option<DateTime<Utc>>,
    /// Tracking reports are read again only for activities of campaigns
    /// changed within this many days.
    pub report_lookback_days: i64,
    pub filters: Filters,
    /// Parent records, read once per run however many children need them.
    parents: children::ParentCache,
}

/// What the config narrows reads to.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    pub contact_status: Vec<String>,
    pub list_ids: Vec<String>,
    pub tag_ids: Vec<String>,
    /// Campaigns whose children and reports are read; empty: all.
    pub campaign_ids: Vec<String>,
    /// Contacts whose contact reports are read.
    pub contact_ids: Vec<String>,
}

impl Filters {
    pub fn values(&self, filter: Filter) -> &[String] {
        match filter {
            Filter::ContactStatus => &self.contact_status,
            Filter::ListIds => &self.list_ids,
            Filter::TagIds => &self.tag_ids,
        }
    }
}

impl Context {
    pub fn new(api: Arc<ApiClient>, output: Arc<dyn Output>, config: &LoadedConfig) -> Self {
        let settings = &config.config;
        Context {
            api,
            output,
            start_date: config.start_date,
            run_started: Utc::now(),
            end_date: config.end_date,
            report_lookback_days: i64::from(settings.report_lookback_days),
            filters: Filters {
                contact_status: settings.contact_status.clone(),
                list_ids: settings.list_ids.clone(),
                tag_ids: settings.tag_ids.clone(),
                campaign_ids: settings.campaign_ids.clone(),
                contact_ids: settings.contact_ids.clone(),
            },
            parents: children::ParentCache::default(),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct StreamReport {
    pub records: u64,
    pub pages: u64,
    pub requests: u64,
    pub elapsed: Duration,
    /// RUNNING was reported (with the stream's first page).
    running: bool,
}

/// Reads the selected streams concurrently; one stream failing does not stop
/// the others. Results come back in catalog order.
pub async fn read_all(
    ctx: &Context,
    selected: &[Selected],
    states: &StreamStates,
) -> Vec<(&'static str, Result<StreamReport>)> {
    let mut results: Vec<(usize, &'static str, Result<StreamReport>)> =
        futures::stream::iter(selected.iter().enumerate())
            .map(|(index, stream)| async move {
                let name = stream.def.name;
                let state = if stream.incremental {
                    states.get(name)
                } else {
                    None
                };
                (index, name, read_stream(ctx, stream, state).await)
            })
            .buffer_unordered(PARALLEL_STREAMS)
            .collect()
            .await;
    results.sort_by_key(|(index, _, _)| *index);
    results
        .into_iter()
        .map(|(_, name, result)| (name, result))
        .collect()
}

/// Reads one stream, reporting its status; on failure the last checkpoint
/// emitted is the one to resume from.
pub async fn read_stream(
    ctx: &Context,
    stream: &Selected,
    state: Option<&Value>,
) -> Result<StreamReport> {
    let def = stream.def;
    ctx.output.stream_status(def.name, StreamStatus::Started);
    let started = Instant::now();
    let mut report = StreamReport::default();
    let result = match (stream.incremental, def.cursor, def.parent) {
        (_, _, Some(parent)) => {
            children::read(ctx, def, parent, stream.incremental, state, &mut report).await
        }
        (true, Some(_), None) => read_incremental(ctx, def, state, &mut report).await,
        _ => read_full(ctx, def, &mut report).await,
    };
    report.elapsed = started.elapsed();
    match result {
        Ok(()) => {
            ctx.output.stream_status(def.name, StreamStatus::Complete);
            Ok(report)
        }
        Err(error) => {
            ctx.output.stream_status(def.name, StreamStatus::Incomplete);
            Err(error.context(format!("stream {}", def.name)))
        }
    }
}

async fn read_full(ctx: &Context, def: &StreamDef, report: &mut StreamReport) -> Result<()> {
    let mut pages = Pages::new(first_page(ctx, def, def.path, None));
    while let Some(page) = pages.next(ctx, report).await? {
        let records = emit(ctx, def, records_of(def, &page)?, report, |_| {});
        ctx.output.state(def.name, &json!({}), records);
    }
    Ok(())
}

/// The saved position of an incremental stream.
struct CursorState {
    /// Every record changed before this was emitted by an earlier run.
    cursor: Option<DateTime<Utc>>,
    /// A chain of pages that a killed run did not finish.
    resume: Option<Resume>,
}

struct Resume {
    next_page: String,
    max_cursor: Option<DateTime<Utc>>,
}

impl CursorState {
    fn parse(def: &StreamDef, field: &str, state: Option<&Value>) -> Result<Self> {
        let bad = |what: &str, value: &Value| {
            Error::config(format!(
                "the saved state of stream {} has {what} {value} that is not an RFC 3339 \
                 date-time; fix it or reset the stream",
                def.name
            ))
        };
        let time = |what: &str, value: Option<&Value>| -> Result<Option<DateTime<Utc>>> {
            match value {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v
                    .as_str()
                    .and_then(parse_time)
                    .map(Some)
                    .ok_or_else(|| bad(what, v)),
            }
        };
        let Some(state) = state else {
            return Ok(CursorState {
                cursor: None,
                resume: None,
            });
        };
        let cursor = time(field, state.get(field))?;
        let resume = match state.get("resume") {
            Some(resume) => match resume.get("next_page").and_then(Value::as_str) {
                Some(next_page) => Some(Resume {
                    next_page: next_page.to_string(),
                    max_cursor: time("resume.max_cursor", resume.get("max_cursor"))?,
                }),
                None => None,
            },
            None => None,
        };
        Ok(CursorState { cursor, resume })
    }

    fn to_value(&self, field: &str) -> Value {
        let mut map = Map::new();
        if let Some(cursor) = self.cursor {
            map.insert(field.into(), Value::from(format_time(cursor)));
        }
        if let Some(resume) = &self.resume {
            let mut saved = json!({"next_page": resume.next_page});
            if let Some(max) = resume.max_cursor {
                saved["max_cursor"] = Value::from(format_time(max));
            }
            map.insert("resume".into(), saved);
        }
        Value::Object(map)
    }
}

async fn read_incremental(
    ctx: &Context,
    def: &StreamDef,
    state: Option<&Value>,
    report: &mut StreamReport,
) -> Result<()> {
    let cursor = def.cursor.expect("incremental streams have a cursor");
    let saved = CursorState::parse(def, cursor.field, state)?;
    // Changes after `lower_bound` are asked for; start_date bounds it below.
    let lower_bound = saved
        .cursor
        .map(|c| (c - CURSOR_OVERLAP).max(ctx.start_date))
        .unwrap_or(ctx.start_date);
    let fresh = first_page(ctx, def, def.path, Some(lower_bound));

    let mut max_cursor = None;
    let mut resuming = false;
    let mut pages = Pages::new(fresh.clone());
    if let Some(resume) = &saved.resume {
        match ctx.api.resolve_link(&resume.next_page) {
            Ok(url) => {
                ctx.output.log(
                    Level::Info,
                    &format!("{}: resuming an unfinished read at {url}", def.name),
                );
                pages = Pages::new(url);
                max_cursor = resume.max_cursor;
                resuming = true;
            }
            Err(e) => ctx
                .output
                .log(Level::Warn, &format!("{}: {e}; starting over", def.name)),
        }
    }

    let mut unparsable = 0u64;
    loop {
        let page = match pages.next(ctx, report).await {
            Err(error) if resuming => {
                // The saved page link may have expired; the cursor is still safe.
                ctx.output.log(
                    Level::Warn,
                    &format!(
                        "{}: cannot resume ({error}); reading again from the cursor",
                        def.name
                    ),
                );
                resuming = false;
                max_cursor = None;
                pages = Pages::new(fresh.clone());
                continue;
            }
            result => result?,
        };
        resuming = false;
        let Some(page) = page else { break };
        let records = emit(
            ctx,
            def,
            records_of(def, &page)?,
            report,
            |record| match record
                .get(cursor.field)
                .and_then(Value::as_str)
                .and_then(parse_time)
            {
                Some(at) => max_cursor = max_cursor.max(Some(at)),
                None => unparsable += 1,
            },
        );
        let position = match pages.pending() {
            Some(next) => CursorState {
                cursor: saved.cursor,
                resume: Some(Resume {
                    next_page: next.to_string(),
                    max_cursor,
                }),
            },
            None => CursorState {
                // Never past the run's start (see `Context::run_started`);
                // with nothing read, the lower bound stays.
                cursor: saved
                    .cursor
                    .max(max_cursor.map(|max| max.min(ctx.run_started)))
                    .or(Some(lower_bound)),
                resume: None,
            },
        };
        ctx.output
            .state(def.name, &position.to_value(cursor.field), records);
    }
    if unparsable > 0 {
        ctx.output.log(
            Level::Warn,
            &format!(
                "{}: {unparsable} records had no valid {}; they were emitted but do not move \
                 the cursor",
                def.name, cursor.field
            ),
        );
    }
    Ok(())
}

/// Emits a page's records of the stream (RUNNING goes out with the first
/// page), showing each to `observe`; returns how many.
fn emit<'a>(
    ctx: &Context,
    def: &StreamDef,
    records: impl IntoIterator<Item = &'a Value>,
    report: &mut StreamReport,
    mut observe: impl FnMut(&Value),
) -> u64 {
    if !report.running {
        report.running = true;
        ctx.output.stream_status(def.name, StreamStatus::Running);
    }
    let mut count = 0;
    for record in records {
        observe(record);
        ctx.output.record(def.name, record);
        count += 1;
    }
    report.records += count;
    count
}

pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

pub fn format_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}
