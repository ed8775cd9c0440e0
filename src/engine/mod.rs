//! The stream engine: reads any stream of the registry page by page with one
//! page loop ([`read_pages`]), emits records as they arrive (one page in
//! memory at a time) and checkpoints typed state after every page. What
//! differs between streams is the [`sync`] strategy: which pages to ask for,
//! which records of a page to keep, and what state a page leaves behind.

pub mod audit;
mod cursor_pages;
mod export;
mod lift;
mod members;
mod optional;
mod pages;
mod parents;
mod privilege;
mod raw;
mod shared_read;
pub mod state;
mod stats;
mod sync;
mod windows;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde_json::Value;

use crate::config::LoadedConfig;
use crate::error::{Error, Result};
use crate::http::ApiClient;
use crate::protocol::catalog::Selected;
use crate::protocol::{Level, Output, RecordRef, StreamStatus};
use crate::streams::{ConfigList, Reconcile, Registry, StreamDef};
use optional::OptionalValues;
use pages::{Chain, Fetched};
use parents::{with_parent, Children, ParentCache, ParentValue};
use sync::Strategy;
pub use windows::first_cut;

/// The stream listing the account's custom fields.
const CUSTOM_FIELDS: &str = "custom_fields";

/// Stream name → that stream's saved state, as the protocol delivered it.
pub type StreamStates = std::collections::BTreeMap<String, Value>;

pub struct Context {
    pub api: Arc<ApiClient>,
    pub output: Arc<dyn Output>,
    pub registry: Arc<Registry>,
    pub start_date: DateTime<Utc>,
    /// Cursors never advance past this: a record changed during the run may
    /// have moved to a page already read.
    pub run_started: DateTime<Utc>,
    /// From the config: no change after this is read; `None` is "now".
    pub end_date: Option<DateTime<Utc>>,
    /// `report_lookback_days` from the config.
    pub report_lookback_days: i64,
    /// `contacts_reconcile_days` from the config.
    pub contacts_reconcile_days: u32,
    /// `fail_on_audit_shortfall` from the config: rows short of their count
    /// twice fail the stream, or are taken with a warning.
    pub fail_on_audit_shortfall: bool,
    pub lists: Lists,
    /// Parent records, read once per run however many children need them.
    parents: ParentCache,
    /// Stats that gate per-parent reads, read once per run.
    stats: stats::StatsCache,
    /// Optional parameter values the API accepted or refused this run.
    optional: Arc<OptionalValues>,
    /// Keys of the messages said once per run ([`Context::log_once`]).
    said: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// The account's custom fields, read once per run when a stream needs
    /// them ([`Context::custom_fields`]).
    custom_fields: tokio::sync::OnceCell<Arc<Vec<Value>>>,
}

/// The lists the config narrows reads with.
#[derive(Debug, Clone, Default)]
pub struct Lists {
    pub contact_status: Vec<String>,
    pub list_ids: Vec<String>,
    pub tag_ids: Vec<String>,
    pub campaign_ids: Vec<String>,
    pub contact_ids: Vec<String>,
    pub landing_page_activity_ids: Vec<String>,
}

impl Lists {
    pub fn get(&self, list: ConfigList) -> &[String] {
        match list {
            ConfigList::ContactStatus => &self.contact_status,
            ConfigList::ListIds => &self.list_ids,
            ConfigList::TagIds => &self.tag_ids,
            ConfigList::CampaignIds => &self.campaign_ids,
            ConfigList::ContactIds => &self.contact_ids,
            ConfigList::LandingPageActivityIds => &self.landing_page_activity_ids,
        }
    }
}

impl Context {
    pub fn new(
        api: Arc<ApiClient>,
        output: Arc<dyn Output>,
        registry: Arc<Registry>,
        config: &LoadedConfig,
    ) -> Self {
        let settings = &config.config;
        let optional = Arc::new(OptionalValues::new(
            output.clone(),
            settings.optional_values_switched_off(),
        ));
        Context {
            api,
            output,
            registry,
            start_date: config.start_date,
            run_started: Utc::now(),
            end_date: config.end_date,
            report_lookback_days: i64::from(settings.report_lookback_days),
            contacts_reconcile_days: settings.contacts_reconcile_days,
            fail_on_audit_shortfall: settings.fail_on_audit_shortfall,
            lists: Lists {
                contact_status: settings.contact_status.clone(),
                list_ids: settings.list_ids.clone(),
                tag_ids: settings.tag_ids.clone(),
                campaign_ids: settings.campaign_ids.clone(),
                contact_ids: settings.contact_ids.clone(),
                landing_page_activity_ids: settings.landing_page_activity_ids.clone(),
            },
            parents: ParentCache::default(),
            stats: stats::StatsCache::default(),
            optional,
            said: Default::default(),
            custom_fields: tokio::sync::OnceCell::new(),
        }
    }

    /// This context with the account's custom fields already read (by
    /// `custom_fields_as_columns`, before the sync), so no stream asks again.
    pub fn with_custom_fields(self, fields: Vec<Value>) -> Context {
        Context {
            custom_fields: tokio::sync::OnceCell::new_with(Some(Arc::new(fields))),
            ..self
        }
    }

    /// The account's custom fields (`/contact_custom_fields`, one request per
    /// 100), read on first use; the requests count for `report`.
    pub async fn custom_fields(&self, report: &mut StreamReport) -> Result<Arc<Vec<Value>>> {
        let def = self
            .registry
            .find_any(CUSTOM_FIELDS)
            .cloned()
            .ok_or_else(|| Error::system("the table has no custom_fields stream"))?;
        let mut spent = StreamReport::default();
        let fields = self
            .custom_fields
            .get_or_try_init(|| async { collect(self, &def, None, &mut spent).await.map(Arc::new) })
            .await
            .map_err(|e| e.context("reading the account's custom fields"))?
            .clone();
        report.requests += spent.requests;
        report.pages += spent.pages;
        Ok(fields)
    }

    /// Logs `message` unless a message with this `key` was logged already in
    /// this run: what holds for several streams is said once.
    pub fn log_once(&self, key: &str, level: Level, message: impl FnOnce() -> String) {
        let first = self
            .said
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.to_string());
        if first {
            self.output.log(level, &message());
        }
    }
}

impl Context {
    /// The config's days for a reconciliation setting of the table.
    pub fn days(&self, setting: Reconcile) -> u32 {
        match setting {
            Reconcile::ContactsReconcileDays => self.contacts_reconcile_days,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct StreamReport {
    pub records: u64,
    pub pages: u64,
    pub requests: u64,
    pub elapsed: Duration,
    /// The read held to the API's counts, where it states them.
    pub audit: audit::Audit,
}

/// Reads the selected streams concurrently; one stream failing does not stop
/// the others, unless its error stops the run (refused credentials): then
/// the streams not started yet are not read, and repeat their saved state.
/// Results come back in catalog order.
pub async fn read_all(
    ctx: &Context,
    selected: &[Selected],
    states: &StreamStates,
) -> Vec<(String, Result<StreamReport>)> {
    let stopped: std::sync::Mutex<Option<Error>> = std::sync::Mutex::new(None);
    let stopped = &stopped;
    let mut results: Vec<(usize, String, Result<StreamReport>)> =
        futures::stream::iter(selected.iter().enumerate())
            .map(|(index, stream)| async move {
                let name = stream.def.name.clone();
                let state = if stream.incremental {
                    states.get(&name)
                } else {
                    None
                };
                let earlier = stopped.lock().unwrap_or_else(|p| p.into_inner()).clone();
                let result = match earlier {
                    Some(error) => {
                        keep_state(ctx, &name, state);
                        ctx.output.stream_status(&name, StreamStatus::Incomplete);
                        Err(error)
                    }
                    None => read_stream(ctx, stream, state).await,
                };
                if let Err(error) = &result {
                    if error.stops_run.is_some() {
                        stopped
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .get_or_insert(error.clone());
                    }
                }
                (index, name, result)
            })
            // Every stream at once: the shared rate limiter, not a stream
            // count, sets the pace, so one stream's round trips never leave
            // the request budget of a second unused.
            .buffer_unordered(selected.len().max(1))
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
    let def = &stream.def;
    ctx.output.stream_status(&def.name, StreamStatus::Started);
    let started = Instant::now();
    let mut report = StreamReport::default();
    let mut sink = Emit {
        ctx,
        def,
        running: false,
        last_state: None,
    };
    let result = async {
        if let Some(export) = def.export {
            return export::read(ctx, def, export, &mut sink, &mut report).await;
        }
        if shared_read::applies(ctx, def, stream.incremental) {
            return shared_read::read(ctx, def, &mut sink, &mut report).await;
        }
        pages::log_cut_window(ctx, def);
        let (mut strategy, source) =
            sync::plan(ctx, def, stream.incremental, state, &mut report).await?;
        read_pages(ctx, def, source, &mut *strategy, &mut sink, &mut report).await
    }
    .await;
    report.elapsed = started.elapsed();
    // A read short of the API's count fails the stream. Short parents of a
    // finished read kept their saved position in its last state; a chain
    // short twice stopped the read mid-way, so the stream's saved state is
    // repeated: nothing read since counts as read.
    let rewind = result.is_err() && !report.audit.short.is_empty();
    let result = match report.audit.error() {
        Some(error) if !ctx.fail_on_audit_shortfall => {
            ctx.output.log(
                Level::Warn,
                &format!(
                    "{}: {error} (taken as read: fail_on_audit_shortfall is false)",
                    def.name
                ),
            );
            result
        }
        Some(error) => result.and(Err(error)),
        None => result,
    };
    report.audit.declared = def.audited();
    if report.audit.declared {
        let level = if report.audit.short.is_empty() {
            Level::Info
        } else {
            Level::Warn
        };
        ctx.output.log(level, &report.audit.summary(&def.name));
    }
    if rewind {
        keep_state(ctx, &def.name, state);
    }
    // A privilege the user lacks empties the stream, with one warning.
    let result = match result {
        Err(error) => match privilege::missing_privilege(def, &error) {
            Some(warning) => {
                ctx.output.log(Level::Warn, &warning);
                if sink.last_state.is_none() {
                    keep_state(ctx, &def.name, state);
                }
                Ok(())
            }
            None => Err(error),
        },
        ok => ok,
    };
    match result {
        Ok(()) => {
            ctx.output.stream_status(&def.name, StreamStatus::Complete);
            Ok(report)
        }
        Err(error) => {
            // A stream stopped before its first checkpoint keeps its state.
            if sink.last_state.is_none() {
                keep_state(ctx, &def.name, state);
            }
            ctx.output
                .stream_status(&def.name, StreamStatus::Incomplete);
            if error.stops_run.is_some() {
                return Err(error);
            }
            Err(error.context(format!("stream {}", def.name)))
        }
    }
}

/// Repeats a stream's saved state (`{}` when it had none), so that a stream
/// that stops before its first checkpoint still ends with a STATE.
fn keep_state(ctx: &Context, name: &str, state: Option<&Value>) {
    let kept = state
        .cloned()
        .unwrap_or_else(|| Value::Object(Default::default()));
    ctx.output.state(name, &kept, 0);
}

/// Reads a (parent) stream into memory: its records are ids and small
/// objects, few compared with contacts or tracking rows.
async fn collect(
    ctx: &Context,
    def: &Arc<StreamDef>,
    since: Option<DateTime<Utc>>,
    report: &mut StreamReport,
) -> Result<Vec<Value>> {
    // The requests count for the stream that needed the parents; the
    // parent records are not its records.
    let mut parents = StreamReport::default();
    let source = sync::source(ctx, def, since, &mut parents).await;
    let mut sink = Vec::new();
    let read = match source {
        Ok(source) => {
            read_pages(
                ctx,
                def,
                source,
                &mut sync::FullRefresh,
                &mut sink,
                &mut parents,
            )
            .await
        }
        Err(error) => Err(error),
    };
    report.requests += parents.requests;
    report.pages += parents.pages;
    read.map(|()| sink)
}

/// Every record of a small stream, read in full outside a sync (the
/// account's custom fields, before discover and read), with the requests it
/// took.
pub async fn read_to_vec(ctx: &Context, def: &Arc<StreamDef>) -> Result<(Vec<Value>, u64)> {
    let mut report = StreamReport::default();
    let records = collect(ctx, def, None, &mut report).await?;
    Ok((records, report.requests))
}

/// The records of `def` as the children of a sync list them (in full, once
/// per run, through the context's parent cache: later children and
/// [`read_to_vec`] of them ask no more), with the requests this call took.
pub async fn parent_records(ctx: &Context, def: &Arc<StreamDef>) -> Result<(Arc<Vec<Value>>, u64)> {
    let mut report = StreamReport::default();
    let records = ctx.parents.records(ctx, def, None, &mut report).await?;
    Ok((records, report.requests))
}

/// How many records a read of `def` holds, as the first page of its own
/// read says (`StreamDef::count`), asked for with a one-record page and the
/// read's parameters and filters, with the requests it took (a refused
/// optional value costs one more, as in the sync).
pub async fn first_page_count(ctx: &Context, def: &StreamDef) -> Result<(Option<u64>, u32)> {
    let one = Arc::new(StreamDef {
        page_size: Some(1),
        ..def.clone()
    });
    let url = pages::first_page(ctx, &one, &one.path, None);
    let (page, requests) = pages::fetch(ctx, &one, url).await?;
    Ok((page.count, requests))
}

/// Where a stream's pages come from: passes read one after the other (one,
/// or one per pass of an incremental read), or a chain per parent value.
pub enum PageSource {
    Passes(std::collections::VecDeque<(Pass, PassPages)>),
    Children(Box<Children>),
}

/// The pages of one pass: a chain, or windows of it read side by side.
pub enum PassPages {
    Chain(Chain),
    Windows(windows::Windows),
}

/// Which pass of a read a chain belongs to: the stream's own (`None`), or
/// the one asking by a further change parameter (`Cursor::also`).
pub type Pass = Option<String>;

/// A page of a stream: its records, the parent value or pass it was read
/// for and the link to the page after it.
pub struct Page {
    pub parent: Option<ParentValue>,
    pub pass: Pass,
    pub body: raw::PageRecords,
    pub next: Option<String>,
    /// How many records the read holds, where the page says.
    pub count: Option<u64>,
    /// For a pass read in windows: where its unfinished windows stand once
    /// this page is read (empty: the pass is done).
    pub windows: Option<Vec<state::WindowState>>,
}

impl PageSource {
    async fn next(
        &mut self,
        ctx: &Context,
        def: &StreamDef,
        report: &mut StreamReport,
    ) -> Result<Option<Page>> {
        let (parent, pass, fetched, windows) = match self {
            PageSource::Passes(passes) => loop {
                let Some((pass, pages)) = passes.front_mut() else {
                    return Ok(None);
                };
                let page = match pages {
                    PassPages::Chain(chain) => {
                        chain.next(ctx, def, report).await?.map(|f| (f, None))
                    }
                    PassPages::Windows(windows) => windows.next(ctx, report).await?,
                };
                match page {
                    Some((fetched, windows)) => break (None, pass.clone(), fetched, windows),
                    None => passes.pop_front(),
                };
            },
            PageSource::Children(children) => match children.next(ctx, def, report).await? {
                Some((parent, fetched)) => (Some(parent), None, fetched, None),
                None => return Ok(None),
            },
        };
        let Fetched { body, next, count } = fetched;
        Ok(Some(Page {
            parent,
            pass,
            body,
            next,
            count,
            windows,
        }))
    }

    fn skip_rest_of_parent(&mut self) {
        if let PageSource::Children(children) = self {
            children.skip_rest_of_parent();
        }
    }

    fn reread_parent(&mut self, parent: ParentValue) {
        if let PageSource::Children(children) = self {
            children.reread(parent);
        }
    }
}

/// Where the records and checkpoints of a read go.
trait Sink {
    fn record(&mut self, record: RecordRef<'_>);
    /// A checkpoint after `records` more records.
    fn state(&mut self, state: Value, records: u64);
    /// The state once the stream is read, unless the last checkpoint said it.
    fn finish(&mut self, state: Value);
    /// How many records the read is expected to hold.
    fn estimate(&mut self, stream: &str, rows: u64);
}

/// To the protocol writer: RECORD and STATE messages, RUNNING with the
/// first page.
struct Emit<'a> {
    ctx: &'a Context,
    def: &'a StreamDef,
    running: bool,
    last_state: Option<Value>,
}

impl Sink for Emit<'_> {
    fn record(&mut self, record: RecordRef<'_>) {
        if !self.running {
            self.running = true;
            self.ctx
                .output
                .stream_status(&self.def.name, StreamStatus::Running);
        }
        self.ctx.output.record(&self.def.name, record);
    }

    fn state(&mut self, state: Value, records: u64) {
        self.ctx.output.state(&self.def.name, &state, records);
        self.last_state = Some(state);
    }

    fn finish(&mut self, state: Value) {
        if self.last_state.as_ref() != Some(&state) {
            self.state(state, 0);
        }
    }

    fn estimate(&mut self, stream: &str, rows: u64) {
        self.ctx.output.estimate(stream, rows);
    }
}

/// Into memory, for parents; their state is their children's business.
impl Sink for Vec<Value> {
    fn record(&mut self, record: RecordRef<'_>) {
        self.push(record.to_value().into_owned());
    }
    fn state(&mut self, _: Value, _: u64) {}
    fn finish(&mut self, _: Value) {}
    fn estimate(&mut self, _: &str, _: u64) {}
}

/// The page loop every stream is read with: fetch a page, keep the records
/// the strategy takes, hand them on, checkpoint.
async fn read_pages(
    ctx: &Context,
    def: &StreamDef,
    mut source: PageSource,
    strategy: &mut dyn Strategy,
    sink: &mut dyn Sink,
    report: &mut StreamReport,
) -> Result<()> {
    let mut counted = None;
    // A read of every record is held to the counts other streams state of
    // them (`members`).
    let mut tally =
        (!def.members.is_empty() && strategy.reads_every_record()).then(members::Tally::default);
    while let Some(page) = source.next(ctx, def, report).await? {
        // The first page of the stream's own pass may say how many follow.
        if let (None, None, None, Some(rows)) = (counted, &page.parent, &page.pass, page.count) {
            counted = Some(rows);
            sink.estimate(&def.name, rows);
        }
        // Strategies decide on the fields they read (`raw::fields_read`);
        // records go on as the API wrote them where nothing changes them.
        let taken = strategy.take(&page, &page.body.views);
        if let Some(tally) = &mut tally {
            for &index in &taken.keep {
                tally.add(def, &page.body.views[index]);
            }
        }
        for record in taken.keep.iter().map(|&i| page.body.get(i)) {
            match (&page.parent, &def.parent) {
                (Some(value), Some(parent)) => {
                    let record = record.to_value();
                    let record = with_parent(&record, parent, value);
                    sink.record(RecordRef::Value(&lift::lifted(def, record)))
                }
                // Records with nested keys to copy up (`StreamDef::lift`).
                _ if !def.lift.is_empty() => {
                    sink.record(RecordRef::Value(&lift::lifted(def, record.to_value())))
                }
                _ => sink.record(record),
            }
        }
        let count = taken.keep.len() as u64;
        report.records += count;
        if taken.rest_of_parent_is_older {
            source.skip_rest_of_parent();
        }
        if let (Some(why), Some(parent)) = (&taken.reread_parent, &page.parent) {
            ctx.output.log(Level::Warn, &format!("{}: {why}", def.name));
            source.reread_parent(parent.clone());
        }
        sink.state(strategy.checkpoint(&page), count);
    }
    let last = strategy.finish(ctx);
    sink.finish(last);
    report.audit.merge(strategy.audit());
    match tally {
        Some(tally) => members::audit(ctx, def, counted, tally, sink, report).await,
        None => Ok(()),
    }
}
