//! Sync strategies: how a stream's saved state becomes the pages to ask for,
//! which records of a page to keep, and the state each page leaves behind.
//! One strategy per kind of state ([`super::state`]); the page loop is the
//! engine's, shared by all.
//!
//! Incremental reads ask for records changed after the saved cursor minus
//! [`CURSOR_OVERLAP`], so records with equal timestamps or that became
//! visible late are read again rather than lost; destinations deduplicate on
//! the primary key. The pages of one read are not ordered by the cursor, so
//! a cursor only advances once its whole chain is read; until then a
//! checkpoint records the next page instead, and a stopped run resumes there.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use url::Url;

use super::audit::{Audit, Shortfall};
use super::pages::{first_page, first_page_of_pass, Chain};
use super::parents::{parent_stream, root_with_cursor, Children};
use super::state::{
    self, parse_time, CursorState, NoState, PerParentState, Resume, RowsAt, ThroughParentState,
    Timestamp,
};
use super::stats::Counts;
use super::windows::Windows;
use super::{Context, Page, PageSource, Pass, PassPages, StreamReport};
use crate::error::{Error, Result};
use crate::protocol::Level;
use crate::streams::{ChildSync, Lookback, Parent, StreamDef};

/// Keys of rows at a bookmark moment kept in state, at most; beyond that
/// only their number is kept.
const KEYS_AT_BOOKMARK: usize = 100;

/// How far before the saved cursor an incremental read starts again.
pub const CURSOR_OVERLAP: Duration = Duration::minutes(5);

/// What the loop keeps of a page.
pub struct Taken {
    /// Indices of the records kept, in page order.
    pub keep: Vec<usize>,
    /// The rest of the current parent's rows are older than its bookmark.
    pub rest_of_parent_is_older: bool,
    /// The parent just read fell short of its count ([`super::audit`]):
    /// why, to be said as its rows are read once more.
    pub reread_parent: Option<String>,
}

impl Taken {
    fn all(records: &[Value]) -> Taken {
        Taken {
            keep: (0..records.len()).collect(),
            rest_of_parent_is_older: false,
            reread_parent: None,
        }
    }
}

pub trait Strategy {
    fn take(&mut self, page: &Page, records: &[Value]) -> Taken;
    /// The state after `page`.
    fn checkpoint(&mut self, page: &Page) -> Value;
    /// The state once every page is read.
    fn finish(&mut self, ctx: &Context) -> Value;
    /// What holding the rows to the API's counts found, once every page is
    /// read.
    fn audit(&mut self) -> Audit {
        Audit::default()
    }
    /// This read delivers every record from scratch (no resumed position,
    /// no change bound but the start date).
    fn reads_every_record(&self) -> bool {
        false
    }
}

/// The strategy for a stream read (incrementally or not) from `state`, and
/// its pages.
pub async fn plan(
    ctx: &Context,
    def: &Arc<StreamDef>,
    incremental: bool,
    state: Option<&Value>,
    report: &mut StreamReport,
) -> Result<(Box<dyn Strategy>, PageSource)> {
    let name = &def.name;
    let sync = def.parent.as_ref().map(|p| &p.sync);
    let planned: Result<(Box<dyn Strategy>, PageSource)> = match (incremental, &def.cursor, sync) {
        (true, Some(cursor), None) => {
            let saved: CursorState =
                state::parse(name, legacy_cursor(&cursor.field, state).as_ref())?;
            CursorSync::plan(ctx, def, saved)
        }
        (true, _, Some(ChildSync::ThroughParent(_))) => {
            let saved: ThroughParentState = state::parse(name, state)?;
            ThroughParentSync::plan(ctx, def, saved, report).await
        }
        (
            true,
            _,
            Some(
                ChildSync::NewestFirst { .. }
                | ChildSync::WholeWhenCountsChange
                | ChildSync::KnownParents,
            ),
        ) => {
            let saved: PerParentState = state::parse(name, state)?;
            let parent = def.parent.as_ref().expect("a child stream");
            PerParentSync::plan(ctx, def, parent, saved, report).await
        }
        _ => {
            let source = source(ctx, def, None, report).await?;
            Ok((Box::new(FullRefresh), source))
        }
    };
    if let Ok((_, PageSource::Children(children))) = &planned {
        children.warn_if_none_found(ctx);
    }
    planned
}

/// The pages of `def`: its own chain, or one chain per value of the parents
/// changed after `since`.
pub async fn source(
    ctx: &Context,
    def: &Arc<StreamDef>,
    since: Option<DateTime<Utc>>,
    report: &mut StreamReport,
) -> Result<PageSource> {
    Ok(match &def.parent {
        None => PageSource::Passes([(None, own_pages(ctx, def, since))].into()),
        Some(parent) => PageSource::Children(Box::new(
            Children::new(ctx, def, parent, since, report).await?,
        )),
    })
}

/// The pages of a stream's own pass: one chain, or windows of it where the
/// stream splits large reads.
fn own_pages(ctx: &Context, def: &Arc<StreamDef>, since: Option<DateTime<Utc>>) -> PassPages {
    // An endpoint that requires the change parameter gets the start date on
    // a full read.
    let since = since.or_else(|| {
        def.cursor
            .as_ref()
            .filter(|cursor| cursor.required)
            .map(|_| ctx.start_date)
    });
    if def.split_by_cursor {
        PassPages::Windows(Windows::new(ctx, def, since))
    } else {
        PassPages::Chain(Chain::new(first_page(ctx, def, &def.path, since)))
    }
}

/// A saved moment less the overlap that re-reads late-visible changes.
fn before_overlap(at: DateTime<Utc>) -> DateTime<Utc> {
    at.checked_sub_signed(CURSOR_OVERLAP).unwrap_or(at)
}

/// `days` before `at`, or the earliest representable moment.
fn days_before(at: DateTime<Utc>, days: i64) -> DateTime<Utc> {
    Duration::try_days(days)
        .and_then(|span| at.checked_sub_signed(span))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// A saved cursor after the run's start cannot be right (a clock or a
/// hand-edited state): it would read nothing, so it is dropped with a
/// warning and the read starts at the configured start.
fn not_in_future(ctx: &Context, def: &StreamDef, saved: Option<Timestamp>) -> Option<Timestamp> {
    match saved {
        Some(at) if at.0 > ctx.run_started => {
            ctx.output.log(
                Level::Warn,
                &format!(
                    "{}: the saved cursor {} is in the future; reading from the configured \
                     start {} instead",
                    def.name,
                    state::format_time(at.0),
                    state::format_time(ctx.start_date)
                ),
            );
            None
        }
        other => other,
    }
}

/// Earlier versions saved the cursor under the cursor field's own name.
fn legacy_cursor(field: &str, state: Option<&Value>) -> Option<Value> {
    let mut state = state?.clone();
    if let Some(map) = state.as_object_mut() {
        if !map.contains_key("cursor") {
            if let Some(value) = map.remove(field) {
                map.insert("cursor".into(), value);
            }
        }
    }
    Some(state)
}

/// Every record, no state.
pub struct FullRefresh;

impl FullRefresh {
    /// The state a full refresh leaves.
    pub fn finish_state(&self) -> Value {
        state::to_value(&NoState {})
    }
}

impl Strategy for FullRefresh {
    fn take(&mut self, _: &Page, records: &[Value]) -> Taken {
        Taken::all(records)
    }
    fn checkpoint(&mut self, _: &Page) -> Value {
        state::to_value(&NoState {})
    }
    fn finish(&mut self, _: &Context) -> Value {
        state::to_value(&NoState {})
    }
}

/// A stream with its own cursor: records changed after the saved cursor,
/// then, for each further change parameter (`Cursor::also`), records changed
/// by that measure since the last complete run, less those already read. A
/// full read (the first, or a reconciliation when one is due) reads
/// everything in one pass instead.
struct CursorSync {
    field: String,
    saved: CursorState,
    /// Changes after this were asked for.
    lower_bound: DateTime<Utc>,
    max_cursor: Option<Timestamp>,
    run_started: DateTime<Utc>,
    /// This run reads everything.
    full: bool,
    /// The passes after the one being read, with their first pages.
    later: Vec<(Pass, Url)>,
    /// Primary keys of records read this run, when a further pass follows.
    seen: Option<HashSet<String>>,
    primary_key: Vec<String>,
    /// The endpoint has no filter for the cursor.
    client_side: bool,
    /// Records without a valid cursor value.
    unparsable: u64,
}

impl CursorSync {
    fn plan(
        ctx: &Context,
        def: &Arc<StreamDef>,
        saved: CursorState,
    ) -> Result<(Box<dyn Strategy>, PageSource)> {
        let cursor = def
            .cursor
            .as_ref()
            .expect("planned for streams with a cursor");
        let saved = CursorState {
            cursor: not_in_future(ctx, def, saved.cursor),
            ..saved
        };
        let reconcile_due = def.reconcile.is_some_and(|every| {
            let days = i64::from(ctx.days(every));
            days > 0
                && saved
                    .reconciled_at
                    .is_some_and(|at| at.0 <= days_before(ctx.run_started, days))
        });
        let resume = saved.resume.clone();
        let full = match &resume {
            Some(resume) => resume.full,
            None => saved.cursor.is_none() || reconcile_due,
        };
        let lower_bound = match saved.cursor {
            Some(at) if !full => {
                let from = before_overlap(at.0);
                let from = match cursor.lookback {
                    Some(Lookback::ReportLookbackDays) => {
                        days_before(from, ctx.report_lookback_days)
                    }
                    None => from,
                };
                from.max(ctx.start_date)
            }
            _ => ctx.start_date,
        };
        let mut passes: Vec<(Pass, Url)> =
            vec![(None, first_page(ctx, def, &def.path, Some(lower_bound)))];
        if !full {
            let since = saved
                .last_run_started
                .map_or(lower_bound, |at| before_overlap(at.0).max(ctx.start_date));
            for param in &cursor.also {
                passes.push((
                    Some(param.clone()),
                    first_page_of_pass(ctx, def, param, since),
                ));
            }
        }
        if full && reconcile_due && saved.cursor.is_some() {
            ctx.output.log(
                Level::Info,
                &format!("{}: reading every record again to reconcile", def.name),
            );
        }
        let mut max_cursor = None;
        // The pass a stopped run was in, and its pages from where it stopped.
        let mut resumed: Option<(usize, PassPages)> = None;
        if let Some(resume) = resume {
            let index = passes.iter().position(|(pass, _)| *pass == resume.pass);
            match index.map(|i| (i, resume_pages(ctx, def, &resume, passes[i].1.clone()))) {
                Some((index, Ok(pages))) => {
                    max_cursor = resume.max_cursor;
                    resumed = Some((index, pages));
                }
                Some((_, Err(e))) => ctx
                    .output
                    .log(Level::Warn, &format!("{}: {e}; starting over", def.name)),
                None => ctx.output.log(
                    Level::Warn,
                    &format!(
                        "{}: the saved pass {:?} no longer exists; starting over",
                        def.name, resume.pass
                    ),
                ),
            }
        }
        passes.drain(..resumed.as_ref().map_or(0, |(index, _)| *index));
        let later: Vec<(Pass, Url)> = passes[1..].to_vec();
        let mut resumed = resumed.map(|(_, pages)| pages);
        let chains = passes
            .into_iter()
            .map(|(pass, first)| {
                let pages = match (resumed.take(), &pass) {
                    (Some(pages), _) => pages,
                    (None, None) => own_pages(ctx, def, Some(lower_bound)),
                    (None, Some(_)) => PassPages::Chain(Chain::new(first)),
                };
                (pass, pages)
            })
            .collect();
        let strategy = CursorSync {
            field: cursor.field.clone(),
            saved,
            lower_bound,
            max_cursor,
            run_started: ctx.run_started,
            full,
            seen: (!later.is_empty()).then(HashSet::new),
            later,
            primary_key: def.primary_key.clone(),
            client_side: cursor.param.is_none(),
            unparsable: 0,
        };
        Ok((Box::new(strategy), PageSource::Passes(chains)))
    }

    /// The state once every pass is read: the cursor never past the run's
    /// start (see `Context::run_started`); with nothing read, the lower bound.
    fn done(&self) -> CursorState {
        let reached = self
            .max_cursor
            .map(|max| max.min(Timestamp(self.run_started)));
        let started = Some(Timestamp(self.run_started));
        CursorState {
            cursor: self
                .saved
                .cursor
                .max(reached)
                .or(Some(Timestamp(self.lower_bound))),
            last_run_started: started,
            // A state from before reconciliation existed starts its clock.
            reconciled_at: if self.full {
                started
            } else {
                self.saved.reconciled_at.or(started)
            },
            resume: None,
        }
    }

    fn key_of(&self, record: &Value) -> String {
        let key: Vec<&Value> = self
            .primary_key
            .iter()
            .map(|k| &record[k.as_str()])
            .collect();
        serde_json::to_string(&key).expect("JSON values serialize")
    }
}

/// The pages of the pass a stopped read was in (whose first page is
/// `first`), from where it stopped: a saved link, or saved windows of the
/// stream's own pass.
fn resume_pages(
    ctx: &Context,
    def: &Arc<StreamDef>,
    resume: &Resume,
    first: Url,
) -> Result<PassPages> {
    match (&resume.next_page, resume.windows.as_slice()) {
        (Some(link), []) => {
            let url = ctx.api.resolve_link(link)?;
            ctx.output.log(
                Level::Info,
                &format!("{}: resuming an unfinished read at {url}", def.name),
            );
            // A link that no longer works starts the pass over.
            Ok(PassPages::Chain(Chain::resume(url, first)))
        }
        (None, windows) if !windows.is_empty() && resume.pass.is_none() && def.split_by_cursor => {
            Ok(PassPages::Windows(Windows::resume(ctx, def, windows)?))
        }
        _ => Err(Error::config(format!(
            "the saved resume position of stream {} is not one this stream can have",
            def.name
        ))),
    }
}

impl Strategy for CursorSync {
    fn reads_every_record(&self) -> bool {
        self.full && self.saved.resume.is_none()
    }

    fn take(&mut self, page: &Page, records: &[Value]) -> Taken {
        let mut keep = Vec::with_capacity(records.len());
        for (index, record) in records.iter().enumerate() {
            if self.seen.is_some() {
                let key = self.key_of(record);
                let first_time = self.seen.as_mut().is_some_and(|seen| seen.insert(key));
                // A further pass skips what this run read already (an
                // opt-out that also changed personal details).
                if !first_time && page.pass.is_some() {
                    continue;
                }
            }
            match record
                .get(&self.field)
                .and_then(Value::as_str)
                .and_then(parse_time)
            {
                // The endpoint could not filter: older records are skipped here.
                Some(at) if self.client_side && at <= self.lower_bound => continue,
                Some(at) => self.max_cursor = self.max_cursor.max(Some(Timestamp(at))),
                None => self.unparsable += 1,
            }
            keep.push(index);
        }
        Taken {
            keep,
            rest_of_parent_is_older: false,
            reread_parent: None,
        }
    }

    fn checkpoint(&mut self, page: &Page) -> Value {
        // Drop the passes already begun: the next one starts where this ends.
        if let Some(index) = self.later.iter().position(|(pass, _)| *pass == page.pass) {
            self.later.drain(..=index);
        }
        // Where the read goes on: this pass's next page or windows, or the
        // first page of the next pass.
        let next = match (&page.windows, &page.next) {
            (Some(windows), _) if !windows.is_empty() => {
                Some((page.pass.clone(), None, windows.clone()))
            }
            (None, Some(next)) => Some((page.pass.clone(), Some(next.clone()), Vec::new())),
            _ => self
                .later
                .first()
                .map(|(pass, url)| (pass.clone(), Some(url.to_string()), Vec::new())),
        };
        let position = match next {
            Some((pass, next_page, windows)) => CursorState {
                resume: Some(Resume {
                    next_page,
                    windows,
                    pass,
                    max_cursor: self.max_cursor,
                    full: self.full,
                }),
                ..self.saved.clone()
            },
            None => self.done(),
        };
        state::to_value(&position)
    }

    fn finish(&mut self, ctx: &Context) -> Value {
        if self.unparsable > 0 {
            ctx.output.log(
                Level::Warn,
                &format!(
                    "{} records had no valid {}; they were emitted but do not move the cursor",
                    self.unparsable, self.field
                ),
            );
        }
        state::to_value(&self.done())
    }
}

/// Children of the parents changed since the saved cursor of the first
/// stream up the chain that has one.
struct ThroughParentSync {
    saved: Option<Timestamp>,
    since: DateTime<Utc>,
    /// The newest cursor among that stream's records this run.
    reached: Option<Timestamp>,
    /// Parents read in full by this run and an unfinished one it resumes.
    read: BTreeSet<String>,
    /// Parents near the cursor and when they changed: saved, and read now.
    boundary: BTreeMap<String, Timestamp>,
}

impl ThroughParentSync {
    async fn plan(
        ctx: &Context,
        def: &Arc<StreamDef>,
        saved: ThroughParentState,
        report: &mut StreamReport,
    ) -> Result<(Box<dyn Strategy>, PageSource)> {
        let read = saved.unfinished_read;
        let boundary = saved.boundary;
        let saved = not_in_future(ctx, def, saved.parent_cursor);
        let since = saved
            .map(|at| before_overlap(at.0).max(ctx.start_date))
            .unwrap_or(ctx.start_date);
        let mut source = source(ctx, def, Some(since), report).await?;
        if let PageSource::Children(children) = &mut source {
            // Listed again only by the overlap, and unchanged: read already.
            children.retain(|parent| {
                !read.contains(&parent.key)
                    && (parent.changed.is_none()
                        || boundary.get(&parent.key).map(|at| at.0) != parent.changed)
            });
        }
        let reached = reached_root_cursor(ctx, def, since, report).await?;
        let strategy = ThroughParentSync {
            saved,
            since,
            reached,
            read,
            boundary,
        };
        Ok((Box::new(strategy), source))
    }
}

/// The parent a page finished, if it was its last.
fn finished_parent(page: &Page) -> Option<&str> {
    match (&page.parent, &page.next) {
        (Some(parent), None) => Some(&parent.key),
        _ => None,
    }
}

impl Strategy for ThroughParentSync {
    fn take(&mut self, _: &Page, records: &[Value]) -> Taken {
        Taken::all(records)
    }

    fn checkpoint(&mut self, page: &Page) -> Value {
        if let Some(key) = finished_parent(page) {
            self.read.insert(key.to_string());
            if let Some(changed) = page.parent.as_ref().and_then(|p| p.changed) {
                self.boundary.insert(key.to_string(), Timestamp(changed));
            }
        }
        state::to_value(&ThroughParentState {
            parent_cursor: self.saved,
            unfinished_read: self.read.clone(),
            boundary: BTreeMap::new(),
        })
    }

    fn finish(&mut self, _: &Context) -> Value {
        let cursor = self.saved.max(self.reached).or(Some(Timestamp(self.since)));
        let window = cursor.map(|c| before_overlap(c.0));
        let boundary = self
            .boundary
            .iter()
            .filter(|(_, at)| window.is_some_and(|w| at.0 >= w))
            .map(|(key, at)| (key.clone(), *at))
            .collect();
        state::to_value(&ThroughParentState {
            parent_cursor: cursor,
            unfinished_read: BTreeSet::new(),
            boundary,
        })
    }
}

/// Per-parent reads with a bookmark per parent. Rows newest first (`field`)
/// are read down to the parent's bookmark; otherwise a parent's rows are read
/// whole. With a [`StatsGate`], only parents whose counts changed since their
/// last complete read are read (new parents come from parent records changed
/// since the last run, known ones from the state). With a lookback, parents
/// read in full before are read again only when they changed within it. A
/// parent never read in full is always read, and a run that did not finish
/// widens the next run's listing to its own.
struct PerParentSync {
    /// Rows come newest first by this field.
    field: Option<String>,
    /// When each parent's record last changed, for the lookback.
    changed: BTreeMap<String, Timestamp>,
    saved: BTreeMap<String, Option<Timestamp>>,
    saved_counts: BTreeMap<String, Counts>,
    /// The parents changed after this are listed this run.
    since: DateTime<Utc>,
    /// Bookmarks of the parents read in full this run.
    done: BTreeMap<String, Option<Timestamp>>,
    /// Counts of the parents to read this run, and of those read in full.
    counts: HashMap<String, Counts>,
    done_counts: BTreeMap<String, Counts>,
    /// The parent being read.
    current: Option<Reading>,
    /// Rows delivered at each parent's bookmark, saved and read now.
    saved_at: BTreeMap<String, RowsAt>,
    done_at: BTreeMap<String, RowsAt>,
    primary_key: Vec<String>,
    /// Parents read in full by this run and an unfinished one it resumes.
    read: BTreeSet<String>,
    /// With a gate: where the listing of new parents started this run, and
    /// where it starts next run.
    saved_parent_cursor: Option<Timestamp>,
    parent_cursor: Option<Timestamp>,
    /// With audited rows ([`Parent::audit_rows`]) among the gate's counts:
    /// where in `counts` the count is, and its pointer, for messages.
    rows_count: Option<(usize, String)>,
    /// The parent's key field, for messages.
    parent_key: String,
    /// Rows delivered for each parent over the runs, saved and read now.
    saved_rows: BTreeMap<String, u64>,
    done_rows: BTreeMap<String, u64>,
    /// Parents read once more after falling short of their count.
    reread: BTreeSet<String>,
    audit: Audit,
    /// `fail_on_audit_shortfall`: a parent short twice keeps its position.
    fail_on_shortfall: bool,
}

/// The parent a per-parent read is reading.
struct Reading {
    key: String,
    /// Its newest row so far, and the keys of the rows at that moment.
    newest: Option<Timestamp>,
    at_newest: Vec<String>,
    /// Rows kept (delivered) so far.
    delivered: u64,
}

/// How a parent's read ended.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ParentEnd {
    /// At its last page, or where its rows reached its bookmark: all of its
    /// new rows were read, so they can be held to its count.
    Read,
    /// Otherwise (its pages stopped: the parent vanished mid-read).
    Stopped,
}

impl PerParentSync {
    async fn plan(
        ctx: &Context,
        def: &Arc<StreamDef>,
        parent: &Parent,
        saved: PerParentState,
        report: &mut StreamReport,
    ) -> Result<(Box<dyn Strategy>, PageSource)> {
        let (field, lookback) = match &parent.sync {
            ChildSync::NewestFirst { field, lookback } => (Some(field.clone()), *lookback),
            _ => (None, None),
        };
        // The parents: those known from earlier runs, and those of parent
        // records changed since the last complete run (or since an unfinished
        // run began listing), so unchanged parent records are not listed again.
        let listed_since = saved.parent_cursor.map_or(ctx.start_date, |at| {
            before_overlap(at.0).max(ctx.start_date)
        });
        let since = match saved.unfinished_since {
            Some(unfinished) => listed_since.min(unfinished.0.max(ctx.start_date)),
            None => listed_since,
        };
        let mut source = source(ctx, def, Some(since), report).await?;
        let PageSource::Children(children) = &mut source else {
            unreachable!("per-parent streams have a parent")
        };
        let read = saved.unfinished_read;
        let mut changed: BTreeMap<String, Timestamp> = saved.changed.clone();
        for (key, at) in children.changes() {
            changed.insert(key, Timestamp(at));
        }
        children.add_keys(saved.parents.keys().cloned());
        children.retain(|parent| !read.contains(&parent.key));
        // Parents read in full before whose record has not changed within the
        // lookback are not read again.
        if let (Some(Lookback::ReportLookbackDays), None) = (lookback, &parent.gate) {
            let cutoff = days_before(ctx.run_started, ctx.report_lookback_days);
            let read_before = &saved.parents;
            children.retain(|parent| {
                !read_before.contains_key(&parent.key)
                    || changed.get(&parent.key).is_none_or(|at| at.0 > cutoff)
            });
        }
        let mut counts = HashMap::new();
        let mut done = BTreeMap::new();
        let mut done_counts = BTreeMap::new();
        if let Some(gate) = &parent.gate {
            counts = ctx
                .stats
                .counts(ctx, &def.name, gate, &children.keys(), report)
                .await?;
            let saved_counts = &saved.counts;
            children.retain(|parent| match counts.get(&parent.key) {
                // Unchanged since its last complete read: nothing new.
                Some(now) if saved_counts.get(&parent.key) == Some(now) => false,
                // No such event, so no row to read: done without a request.
                // (Not for whole reads: a links report exists with no click.)
                Some(now) if field.is_some() && now.iter().all(|n| *n == 0) => {
                    done.insert(parent.key.clone(), None);
                    done_counts.insert(parent.key.clone(), now.clone());
                    false
                }
                _ => true,
            });
            // Parents known from earlier runs, added above, get theirs too.
            children.stamp(ctx, parent, report).await?;
        }
        // The stats say how many new event rows the parents hold.
        if field.is_some() && parent.gate.is_some() {
            let rows: u64 = children
                .keys()
                .iter()
                .filter_map(|key| {
                    let now = counts.get(key)?.first()?;
                    let before = saved.counts.get(key).and_then(|c| c.first()).unwrap_or(&0);
                    Some(now.saturating_sub(*before))
                })
                .sum();
            ctx.output.estimate(&def.name, rows);
        }
        let parent_cursor = reached_root_cursor(ctx, def, since, report)
            .await?
            .max(saved.parent_cursor);
        // Only the lookback needs to know when known parents changed.
        if lookback.is_none() {
            changed.clear();
        }
        let strategy = PerParentSync {
            field,
            changed,
            saved: saved.parents,
            saved_counts: saved.counts,
            since,
            done,
            counts,
            done_counts,
            current: None,
            saved_at: saved.at_bookmark,
            done_at: BTreeMap::new(),
            primary_key: def.primary_key.clone(),
            read,
            saved_parent_cursor: saved.parent_cursor,
            parent_cursor,
            rows_count: parent.gate.as_ref().and_then(|gate| {
                let pointer = parent.rows.as_ref().filter(|_| parent.audit_rows)?;
                let index = gate.counts.iter().position(|count| count == pointer)?;
                Some((index, pointer.clone()))
            }),
            parent_key: parent.key.clone(),
            saved_rows: saved.rows,
            done_rows: BTreeMap::new(),
            reread: BTreeSet::new(),
            audit: Audit::default(),
            fail_on_shortfall: ctx.fail_on_audit_shortfall,
        };
        Ok((Box::new(strategy), source))
    }

    /// Records the current parent's bookmark (its newest row, or the old
    /// one) and the counts it was read at, unless its rows fall short of its
    /// count: then says why it is to be read once more, or, read twice
    /// already, leaves its position where it was.
    fn finish_parent(&mut self, end: ParentEnd) -> Option<String> {
        let Reading {
            key: batch,
            newest,
            at_newest,
            delivered,
        } = self.current.take()?;
        if end == ParentEnd::Read {
            match self.audit_parent(&batch, delivered) {
                Ok(Some(total)) => {
                    self.done_rows.insert(batch.clone(), total);
                }
                Ok(None) => {}
                Err(reread) => return reread,
            }
        }
        // A batch of parent values is read in full together.
        for key in batch.split(',') {
            let old = self.saved.get(key).copied().flatten();
            if let Some(counts) = self.counts.get(key) {
                self.done_counts.insert(key.to_string(), counts.clone());
            }
            // The rows at the new bookmark: those read now, and those of the
            // old one when it stays.
            let mut rows: BTreeSet<String> = at_newest.iter().cloned().collect();
            if newest <= old {
                match self.saved_at.get(key) {
                    Some(RowsAt::Keys(keys)) => rows.extend(keys.iter().cloned()),
                    Some(RowsAt::Many(_)) | None => {}
                }
            }
            if !rows.is_empty() {
                let at = if rows.len() > KEYS_AT_BOOKMARK {
                    RowsAt::Many(rows.len() as u64)
                } else {
                    RowsAt::Keys(rows)
                };
                self.done_at.insert(key.to_string(), at);
            }
            self.read.insert(key.to_string());
            self.done.insert(key.to_string(), old.max(newest));
        }
        None
    }

    /// Holds a parent's rows, those delivered by earlier runs and the
    /// `delivered` now, to its count: `Ok` with the rows delivered in all
    /// when they reach it (or `None` when there is no count to hold them
    /// to); otherwise `Err` with why it is read once more, or `Err(None)`
    /// when it was read twice.
    fn audit_parent(
        &mut self,
        key: &str,
        delivered: u64,
    ) -> std::result::Result<Option<u64>, Option<String>> {
        let Some((index, pointer)) = &self.rows_count else {
            return Ok(None);
        };
        // No stats for the parent: read as changed, with nothing to hold to.
        let Some(expected) = self.counts.get(key).and_then(|c| c.get(*index)).copied() else {
            self.audit.unchecked += 1;
            return Ok(None);
        };
        // Rows newer than a bookmark come on top of those delivered before;
        // state from before the audit kept only the count they were read at.
        let before = match self.saved.get(key) {
            Some(Some(_)) if self.field.is_some() => self
                .saved_rows
                .get(key)
                .copied()
                .or_else(|| self.saved_counts.get(key)?.get(*index).copied()),
            _ => Some(0),
        };
        let Some(before) = before else {
            self.audit.unchecked += 1;
            return Ok(None);
        };
        let total = before + delivered;
        if total >= expected {
            self.audit.passed(expected, total);
            return Ok(Some(total));
        }
        if self.reread.insert(key.to_string()) {
            self.audit.reread += 1;
            return Err(Some(format!(
                "{} {key}: {total} rows delivered where `{pointer}` says {expected}; reading \
                 it once more",
                self.parent_key
            )));
        }
        self.audit.failed(Shortfall {
            read: format!("{} {key}", self.parent_key),
            count: pointer.clone(),
            expected,
            delivered: total,
        });
        match self.fail_on_shortfall {
            true => Err(None),
            false => Ok(Some(total)),
        }
    }

    /// A short, stable fingerprint of a row's primary key.
    fn row_key(&self, row: &Value) -> String {
        let key: Vec<&Value> = self.primary_key.iter().map(|k| &row[k.as_str()]).collect();
        let text = serde_json::to_string(&key).expect("JSON values serialize");
        // FNV-1a: stable across versions, unlike the standard hasher.
        let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        format!("{hash:016x}")
    }

    fn position(&self, unfinished: bool) -> Value {
        let mut parents = self.saved.clone();
        parents.extend(self.done.clone());
        let mut counts = self.saved_counts.clone();
        counts.extend(self.done_counts.clone());
        let mut at_bookmark = self.saved_at.clone();
        at_bookmark.extend(self.done_at.clone());
        let mut rows = self.saved_rows.clone();
        rows.extend(self.done_rows.clone());
        state::to_value(&PerParentState {
            parents,
            unfinished_since: unfinished.then_some(Timestamp(self.since)),
            unfinished_read: if unfinished {
                self.read.clone()
            } else {
                BTreeSet::new()
            },
            counts,
            at_bookmark,
            rows,
            changed: self.changed.clone(),
            // Listing resumes from the saved cursor until the run completes.
            parent_cursor: if unfinished {
                self.saved_parent_cursor
            } else {
                self.parent_cursor
            },
        })
    }
}

/// The newest cursor value, capped at the run's start, of the first stream up
/// `def`'s parent chain that has a cursor, among its records changed after
/// `since` (read and cached while listing the parents: no request).
async fn reached_root_cursor(
    ctx: &Context,
    def: &Arc<StreamDef>,
    since: DateTime<Utc>,
    report: &mut StreamReport,
) -> Result<Option<Timestamp>> {
    // Parents the config names are not listed: no cursor to reach.
    if let Some(parent) = &def.parent {
        if parent_stream(ctx, parent)?.is_none() {
            return Ok(None);
        }
    }
    let root = root_with_cursor(ctx, def)?;
    let field = root
        .cursor
        .as_ref()
        .map(|c| c.field.as_str())
        .unwrap_or_default();
    Ok(ctx
        .parents
        .records(ctx, root, Some(since), report)
        .await?
        .iter()
        .filter_map(|r| r.get(field).and_then(Value::as_str).and_then(parse_time))
        .max()
        .map(|max| Timestamp(max.min(ctx.run_started))))
}

impl Strategy for PerParentSync {
    /// Rows newest first: new ones are kept, down to the parent's bookmark;
    /// rows at the bookmark moment are kept unless delivered already. (No
    /// overlap here: event rows do not change once written.)
    fn take(&mut self, page: &Page, records: &[Value]) -> Taken {
        let key = page
            .parent
            .as_ref()
            .map(|p| p.key.clone())
            .unwrap_or_default();
        if self.current.as_ref().is_some_and(|r| r.key != key) {
            self.finish_parent(ParentEnd::Stopped);
        }
        let bookmark = match &self.field {
            Some(_) => self.saved.get(&key).copied().flatten(),
            None => None,
        };
        let delivered = match self.saved_at.get(&key) {
            Some(RowsAt::Keys(keys)) => Some(keys),
            _ => None,
        };
        let mut current = self.current.take().unwrap_or(Reading {
            key,
            newest: None,
            at_newest: Vec::new(),
            delivered: 0,
        });
        let mut keep = Vec::with_capacity(records.len());
        let mut older = false;
        for (index, row) in records.iter().enumerate() {
            let at = self
                .field
                .as_ref()
                .and_then(|field| row.get(field))
                .and_then(Value::as_str)
                .and_then(parse_time)
                .map(Timestamp);
            if self.field.is_some() && at.is_some() {
                if at > current.newest {
                    current.newest = at;
                    current.at_newest.clear();
                }
                if matches!((at, bookmark), (Some(at), Some(mark)) if at < mark) {
                    older = true;
                    break;
                }
                // Keys are hashed only for rows at the newest or the
                // bookmark moment: the others need none.
                let at_bookmark = at.is_some() && at == bookmark;
                if at == current.newest || at_bookmark {
                    let row_key = self.row_key(row);
                    let delivered_before =
                        at_bookmark && delivered.is_some_and(|d| d.contains(&row_key));
                    if at == current.newest {
                        current.at_newest.push(row_key);
                    }
                    if delivered_before {
                        continue;
                    }
                }
            }
            keep.push(index);
        }
        current.delivered += keep.len() as u64;
        self.current = Some(current);
        // A parent is read in full at its last page, or where its rows
        // reach its bookmark.
        let reread_parent = if older || page.next.is_none() {
            self.finish_parent(ParentEnd::Read)
        } else {
            None
        };
        Taken {
            keep,
            rest_of_parent_is_older: older,
            reread_parent,
        }
    }

    fn checkpoint(&mut self, _: &Page) -> Value {
        self.position(true)
    }

    fn finish(&mut self, _: &Context) -> Value {
        self.finish_parent(ParentEnd::Stopped);
        // Parents short of their count are not read: the run is left
        // unfinished, so the next one lists them again.
        self.position(self.fail_on_shortfall && !self.audit.short.is_empty())
    }

    fn audit(&mut self) -> Audit {
        std::mem::take(&mut self.audit)
    }
}
