//! Child streams: read once per parent record (or per batch of parent
//! values), with the value in the path's `{parent}`. Parent records are read
//! once per run and shared by every child that needs them; a child is read
//! whether or not its parent is selected.
//!
//! Incrementally, a child either follows its root parent's cursor (only the
//! children of changed parents are read again) or keeps one bookmark per
//! parent over rows the API returns newest first, and stops at it.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Map, Value};
use tokio::sync::OnceCell;

use super::pages::{first_page, records_of, Pages};
use super::{emit, format_time, parse_time, Context, StreamReport, CURSOR_OVERLAP};
use crate::error::{Error, Result};
use crate::protocol::Level;
use crate::streams::{self, ChildSync, Parent, StreamDef};

/// State keys: the root parent's cursor, and the per-parent bookmarks.
const PARENT_CURSOR: &str = "parent_cursor";
const PARENTS: &str = "parents";

type Records = Arc<Vec<Value>>;
/// A parent stream and the lower bound its records were read from.
type ParentKey = (&'static str, Option<DateTime<Utc>>);

/// Records of parent streams, read once per key.
#[derive(Default)]
pub struct ParentCache {
    cells: Mutex<HashMap<ParentKey, Arc<OnceCell<Records>>>>,
}

impl ParentCache {
    /// The records of `def` changed after `since` (all when `None`), read
    /// on first use; concurrent callers wait for the one read. A root
    /// stream is listed in full once and filtered here, so children with
    /// different bounds share one listing.
    async fn records(
        &self,
        ctx: &Context,
        def: &'static StreamDef,
        since: Option<DateTime<Utc>>,
        report: &mut StreamReport,
    ) -> Result<Records> {
        let read_since = if def.parent.is_some() { since } else { None };
        let cell = {
            let mut cells = self.cells.lock().unwrap_or_else(|p| p.into_inner());
            cells.entry((def.name, read_since)).or_default().clone()
        };
        // Boxed: a parent may itself have a parent.
        let records = cell
            .get_or_try_init(|| async {
                Box::pin(collect(ctx, def, read_since, report))
                    .await
                    .map(Arc::new)
            })
            .await?
            .clone();
        match (def.cursor, since, read_since) {
            (Some(cursor), Some(since), None) => Ok(Arc::new(
                records
                    .iter()
                    .filter(|r| {
                        let at = r
                            .get(cursor.field)
                            .and_then(Value::as_str)
                            .and_then(parse_time);
                        at.is_none_or(|at| at > since)
                    })
                    .cloned()
                    .collect(),
            )),
            _ => Ok(records),
        }
    }
}

/// Reads a (parent) stream into memory: its records are ids and small
/// objects, few compared with contacts or tracking rows.
async fn collect(
    ctx: &Context,
    def: &'static StreamDef,
    since: Option<DateTime<Utc>>,
    report: &mut StreamReport,
) -> Result<Vec<Value>> {
    let mut records = Vec::new();
    match def.parent {
        None => {
            let mut pages = Pages::new(first_page(ctx, def, def.path, since));
            while let Some(page) = pages.next(ctx, report).await? {
                records.extend_from_slice(records_of(def, &page)?);
            }
        }
        Some(parent) => {
            let mut pages = ChildPages::new(ctx, def, parent, since, report).await?;
            while let Some((value, page)) = pages.next(report).await? {
                for record in records_of(def, &page)? {
                    records.push(with_parent(record, &parent, &value).into_owned());
                }
            }
        }
    }
    Ok(records)
}

/// The stream a parent chain starts from.
fn parent_def(parent: &Parent) -> Result<&'static StreamDef> {
    streams::find_any(parent.stream)
        .ok_or_else(|| Error::system(format!("unknown parent stream {}", parent.stream)))
}

/// The first stream up the chain that has a cursor.
fn root_with_cursor(mut def: &'static StreamDef) -> Result<&'static StreamDef> {
    while def.cursor.is_none() {
        let parent = def
            .parent
            .ok_or_else(|| Error::system(format!("{} has no cursor up its chain", def.name)))?;
        def = parent_def(&parent)?;
    }
    Ok(def)
}

/// What a child request takes from its parent record(s).
#[derive(Clone)]
struct ParentValue {
    /// Fills `{parent}`: one value, or several comma-separated.
    key: String,
    /// The parent field the child carries (`Parent::carry`), for one parent.
    carried: Option<Value>,
}

/// The pages of a child for every parent value (or batch of values).
struct ChildPages<'a> {
    ctx: &'a Context,
    def: &'static StreamDef,
    values: std::vec::IntoIter<ParentValue>,
    current: Option<(ParentValue, Pages)>,
}

impl<'a> ChildPages<'a> {
    async fn new(
        ctx: &'a Context,
        def: &'static StreamDef,
        parent: Parent,
        since: Option<DateTime<Utc>>,
        report: &mut StreamReport,
    ) -> Result<ChildPages<'a>> {
        let records: Records = if parent.stream == streams::CONFIGURED_CONTACTS {
            if ctx.filters.contact_ids.is_empty() {
                ctx.output.log(
                    Level::Warn,
                    &format!(
                        "{}: no contact_ids in the config, so no contact is read",
                        def.name
                    ),
                );
            }
            let ids = ctx.filters.contact_ids.iter();
            Arc::new(ids.map(|id| json!({ parent.key: id })).collect())
        } else {
            ctx.parents
                .records(ctx, parent_def(&parent)?, since, report)
                .await?
        };
        // campaign_ids narrows every stream read per campaign.
        let campaigns = &ctx.filters.campaign_ids;
        let wanted = |key: &str| {
            parent.key != "campaign_id"
                || campaigns.is_empty()
                || campaigns.iter().any(|c| c == key)
        };
        let values = parent_values(&records, &parent, wanted)?;
        Ok(ChildPages {
            ctx,
            def,
            values: values.into_iter(),
            current: None,
        })
    }

    /// The next page and the parent value(s) it belongs to.
    async fn next(&mut self, report: &mut StreamReport) -> Result<Option<(ParentValue, Value)>> {
        loop {
            if let Some((parent, pages)) = &mut self.current {
                let key = &parent.key;
                match pages.next(self.ctx, report).await {
                    Ok(Some(page)) => return Ok(Some((parent.clone(), page))),
                    Ok(None) => self.current = None,
                    Err(error) if error.not_found => {
                        // The parent was deleted after it was listed.
                        self.ctx.output.log(
                            Level::Warn,
                            &format!("{}: {key} no longer exists; skipped", self.def.name),
                        );
                        self.current = None;
                    }
                    Err(error) => return Err(error),
                }
            }
            let Some(parent) = self.values.next() else {
                return Ok(None);
            };
            let path = self.def.path.replace("{parent}", &parent.key);
            let first = first_page(self.ctx, self.def, &path, None);
            self.current = Some((parent, Pages::new(first)));
        }
    }

    /// Leaves the current parent's remaining pages unread.
    fn skip_rest_of_parent(&mut self) {
        self.current = None;
    }
}

/// The values of `parent.key` in the parent records that pass its filter and
/// `wanted`, without repeats, in order, batched as the child's endpoint
/// takes them.
fn parent_values(
    records: &[Value],
    parent: &Parent,
    wanted: impl Fn(&str) -> bool,
) -> Result<Vec<ParentValue>> {
    let mut single: Vec<ParentValue> = Vec::new();
    for record in records {
        if let Some((field, allowed)) = parent.only {
            let value = record.get(field).and_then(Value::as_str).unwrap_or("");
            if !allowed.contains(&value) {
                continue;
            }
        }
        let key = match record.get(parent.key) {
            Some(Value::String(text)) => text.clone(),
            Some(Value::Number(number)) => number.to_string(),
            _ => {
                return Err(Error::system(format!(
                    "a {} record has no {}: {record}",
                    parent.stream, parent.key
                )))
            }
        };
        if wanted(&key) && !single.iter().any(|v| v.key == key) {
            let carried = parent.carry.and_then(|(from, _)| record.get(from).cloned());
            single.push(ParentValue { key, carried });
        }
    }
    if parent.batch <= 1 {
        return Ok(single);
    }
    Ok(single
        .chunks(parent.batch)
        .map(|chunk| ParentValue {
            key: chunk
                .iter()
                .map(|v| v.key.as_str())
                .collect::<Vec<_>>()
                .join(","),
            carried: None,
        })
        .collect())
}

/// The record with what it takes from its parent: the parent value under
/// `inject` and the carried field, where the record lacks them.
fn with_parent<'r>(record: &'r Value, parent: &Parent, value: &ParentValue) -> Cow<'r, Value> {
    let mut additions: Vec<(&str, Value)> = Vec::new();
    if let Some(field) = parent.inject {
        additions.push((field, Value::from(value.key.as_str())));
    }
    if let (Some((_, field)), Some(carried)) = (parent.carry, &value.carried) {
        additions.push((field, carried.clone()));
    }
    match record {
        Value::Object(map) if additions.iter().any(|(f, _)| !map.contains_key(*f)) => {
            let mut map = map.clone();
            for (field, added) in additions {
                map.entry(field).or_insert(added);
            }
            Cow::Owned(Value::Object(map))
        }
        _ => Cow::Borrowed(record),
    }
}

fn saved_time(def: &StreamDef, what: &str, value: &Value) -> Result<DateTime<Utc>> {
    value.as_str().and_then(parse_time).ok_or_else(|| {
        Error::config(format!(
            "the saved state of stream {} has {what} {value} that is not an RFC 3339 date-time; \
             fix it or reset the stream",
            def.name
        ))
    })
}

/// Reads a child stream, emitting its records and checkpointing after every page.
pub async fn read(
    ctx: &Context,
    def: &'static StreamDef,
    parent: Parent,
    incremental: bool,
    state: Option<&Value>,
    report: &mut StreamReport,
) -> Result<()> {
    match (incremental, parent.sync) {
        (true, ChildSync::ThroughParent(_)) => {
            through_parent(ctx, def, parent, state, report).await
        }
        (true, ChildSync::NewestFirst(field)) => {
            newest_first(ctx, def, parent, field, state, report).await
        }
        _ => {
            let mut pages = ChildPages::new(ctx, def, parent, None, report).await?;
            while let Some((value, page)) = pages.next(report).await? {
                let records = records_of(def, &page)?
                    .iter()
                    .map(|r| with_parent(r, &parent, &value));
                let count = emit_owned(ctx, def, records, report);
                ctx.output.state(def.name, &json!({}), count);
            }
            Ok(())
        }
    }
}

fn emit_owned<'r>(
    ctx: &Context,
    def: &StreamDef,
    records: impl Iterator<Item = Cow<'r, Value>>,
    report: &mut StreamReport,
) -> u64 {
    let records: Vec<Cow<Value>> = records.collect();
    emit(ctx, def, records.iter().map(|r| r.as_ref()), report, |_| {})
}

/// Children of the parents changed since the saved root cursor.
async fn through_parent(
    ctx: &Context,
    def: &'static StreamDef,
    parent: Parent,
    state: Option<&Value>,
    report: &mut StreamReport,
) -> Result<()> {
    let saved = match state.and_then(|s| s.get(PARENT_CURSOR)) {
        None | Some(Value::Null) => None,
        Some(value) => Some(saved_time(def, PARENT_CURSOR, value)?),
    };
    let since = saved
        .map(|at| (at - CURSOR_OVERLAP).max(ctx.start_date))
        .unwrap_or(ctx.start_date);
    let pending = json!({ PARENT_CURSOR: saved.map(format_time) });
    let mut pages = ChildPages::new(ctx, def, parent, Some(since), report).await?;
    while let Some((value, page)) = pages.next(report).await? {
        let records = records_of(def, &page)?
            .iter()
            .map(|r| with_parent(r, &parent, &value));
        let count = emit_owned(ctx, def, records, report);
        ctx.output.state(def.name, &pending, count);
    }
    // The root's records are cached: this costs no request.
    let root = root_with_cursor(def)?;
    let field = root.cursor.map(|c| c.field).unwrap_or_default();
    let reached = ctx
        .parents
        .records(ctx, root, Some(since), report)
        .await?
        .iter()
        .filter_map(|r| r.get(field).and_then(Value::as_str).and_then(parse_time))
        .max()
        .map(|max| max.min(ctx.run_started));
    let cursor = saved.max(reached).unwrap_or(since);
    ctx.output
        .state(def.name, &json!({ PARENT_CURSOR: format_time(cursor) }), 0);
    Ok(())
}

/// Rows newest first per parent: read each parent down to its bookmark.
/// Parents are those changed since `start_date` on the first run and within
/// the report lookback window afterwards; bookmarks of parents outside the
/// window are dropped, which keeps the state small.
async fn newest_first(
    ctx: &Context,
    def: &'static StreamDef,
    parent: Parent,
    field: &'static str,
    state: Option<&Value>,
    report: &mut StreamReport,
) -> Result<()> {
    let mut saved: BTreeMap<String, DateTime<Utc>> = BTreeMap::new();
    if let Some(Value::Object(map)) = state.and_then(|s| s.get(PARENTS)) {
        for (key, value) in map {
            saved.insert(
                key.clone(),
                saved_time(def, &format!("{PARENTS}.{key}"), value)?,
            );
        }
    }
    let since = if state.is_some() {
        (ctx.run_started - Duration::days(ctx.report_lookback_days)).max(ctx.start_date)
    } else {
        ctx.start_date
    };
    let mut pages = ChildPages::new(ctx, def, parent, Some(since), report).await?;
    let mut done: Map<String, Value> = Map::new();
    let mut newest: Option<(String, Option<DateTime<Utc>>)> = None;
    // Until the run ends, parents not read yet keep their saved bookmarks.
    let checkpoint = |done: &Map<String, Value>| {
        let mut all: Map<String, Value> = saved
            .iter()
            .map(|(k, at)| (k.clone(), Value::from(format_time(*at))))
            .collect();
        all.extend(done.clone());
        json!({ PARENTS: all })
    };
    while let Some((ParentValue { key, .. }, page)) = pages.next(report).await? {
        if newest.as_ref().is_some_and(|(k, _)| *k != key) {
            finish(&mut done, &saved, newest.take());
        }
        let entry = newest.get_or_insert_with(|| (key.clone(), None));
        let lower = saved.get(&key).map(|at| *at - CURSOR_OVERLAP);
        let mut reached_bookmark = false;
        let rows: Vec<&Value> = records_of(def, &page)?
            .iter()
            .take_while(|row| {
                let at = row.get(field).and_then(Value::as_str).and_then(parse_time);
                entry.1 = entry.1.max(at);
                let older = matches!((at, lower), (Some(at), Some(lower)) if at < lower);
                reached_bookmark |= older;
                !older
            })
            .collect();
        let count = emit(ctx, def, rows, report, |_| {});
        if reached_bookmark {
            pages.skip_rest_of_parent();
        }
        ctx.output.state(def.name, &checkpoint(&done), count);
    }
    finish(&mut done, &saved, newest.take());
    ctx.output.state(def.name, &json!({ PARENTS: done }), 0);
    Ok(())
}

/// Records a parent's new bookmark: its newest row, or the old bookmark.
fn finish(
    done: &mut Map<String, Value>,
    saved: &BTreeMap<String, DateTime<Utc>>,
    parent: Option<(String, Option<DateTime<Utc>>)>,
) {
    if let Some((key, newest)) = parent {
        let bookmark = saved.get(&key).copied().max(newest);
        if let Some(at) = bookmark {
            done.insert(key, Value::from(format_time(at)));
        }
    }
}
