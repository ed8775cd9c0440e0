//! Parents of child streams: the values that fill a child's `{parent}`,
//! taken from another stream's records (read once per run and shared by
//! every child that needs them) or from a list in the config, and the pages
//! of a child across all its parent values.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tokio::sync::OnceCell;

use futures::future::LocalBoxFuture;
use futures::stream::FuturesOrdered;
use futures::StreamExt;

use super::pages::{fetch, first_page, Chain, Fetched};
use super::state::parse_time;
use super::{Context, StreamReport};
use crate::error::{Error, Result};
use crate::protocol::Level;
use crate::streams::{self, ConfigList, Parent, ParentSource, StreamDef};

type Records = Arc<Vec<Value>>;
/// A parent stream and the lower bound its records were read from.
type CacheKey = (String, Option<DateTime<Utc>>);

/// Records of parent streams, read once per key.
#[derive(Default)]
pub struct ParentCache {
    cells: Mutex<HashMap<CacheKey, Arc<OnceCell<Records>>>>,
}

impl ParentCache {
    /// The records of `def` changed after `since` (all when `None`), read
    /// on first use; concurrent callers wait for the one read. A stream
    /// without a parent is listed in full once and filtered here, so
    /// children with different bounds share one listing.
    pub async fn records(
        &self,
        ctx: &Context,
        def: &Arc<StreamDef>,
        since: Option<DateTime<Utc>>,
        report: &mut StreamReport,
    ) -> Result<Records> {
        let read_since = if def.parent.is_some() { since } else { None };
        let cell = {
            let mut cells = self.cells.lock().unwrap_or_else(|p| p.into_inner());
            cells
                .entry((def.name.clone(), read_since))
                .or_default()
                .clone()
        };
        // Boxed: a parent may itself have a parent.
        let records = cell
            .get_or_try_init(|| async {
                Box::pin(super::collect(ctx, def, read_since, report))
                    .await
                    .map(Arc::new)
            })
            .await?
            .clone();
        match (&def.cursor, since, read_since) {
            (Some(cursor), Some(since), None) => Ok(Arc::new(
                records
                    .iter()
                    .filter(|r| {
                        let at = r
                            .get(&cursor.field)
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

/// The config list that names a parent's values in this run: its own list,
/// or the list that names them instead of the stream when that is set.
fn config_source(ctx: &Context, parent: &Parent) -> Option<ConfigList> {
    match (&parent.source, parent.named_by) {
        (ParentSource::Config(list), _) => Some(*list),
        (ParentSource::Stream(_), Some(list)) if !ctx.lists.get(list).is_empty() => Some(list),
        (ParentSource::Stream(_), _) => None,
    }
}

/// The stream a parent's values come from in this run; `None` when a config
/// list names them.
pub fn parent_stream<'a>(ctx: &'a Context, parent: &Parent) -> Result<Option<&'a Arc<StreamDef>>> {
    if config_source(ctx, parent).is_some() {
        return Ok(None);
    }
    match &parent.source {
        ParentSource::Config(_) => Ok(None),
        ParentSource::Stream(name) => ctx
            .registry
            .find_any(name)
            .map(Some)
            .ok_or_else(|| Error::system(format!("unknown parent stream {name}"))),
    }
}

/// The first stream up the parent chain that has a cursor.
pub fn root_with_cursor<'a>(
    ctx: &'a Context,
    def: &'a Arc<StreamDef>,
) -> Result<&'a Arc<StreamDef>> {
    let mut def = def;
    while def.cursor.is_none() {
        def = def
            .parent
            .as_ref()
            .map(|parent| parent_stream(ctx, parent))
            .transpose()?
            .flatten()
            .ok_or_else(|| Error::system(format!("{} has no cursor up its chain", def.name)))?;
    }
    Ok(def)
}

/// What a child request takes from its parent record(s).
#[derive(Debug, Clone)]
pub struct ParentValue {
    /// Fills `{parent}`: one value, or several comma-separated.
    pub key: String,
    /// The parent fields the child carries (`Parent::carry`), for one
    /// parent: (child field, value).
    carried: Vec<(String, Value)>,
    /// The other placeholders of the child's path and their values
    /// (`Parent::path_value`), for one parent.
    path: Vec<(String, String)>,
    /// When the parent last changed, by its stream's cursor field, for one
    /// parent whose stream has one.
    pub changed: Option<DateTime<Utc>>,
}

/// The pages of a child for every parent value, or batch of values as the
/// child's endpoint takes them.
pub struct Children {
    def: Arc<StreamDef>,
    /// Parent values found: listed, named by the config or known from state.
    found: usize,
    /// The config list that names the parents, if one does: values saved
    /// by earlier runs that it does not name are not read.
    configured: Option<ConfigList>,
    /// The stream whose records the parent values are read from, and the
    /// field of theirs each value is: said when a value is gone.
    listed_by: (String, String),
    /// Single parent values not read yet, batched as they are read.
    values: VecDeque<ParentValue>,
    batch: usize,
    /// Values to read one at a time (a batch that failed as a whole).
    unbatched: usize,
    current: Option<(ParentValue, Chain)>,
    /// The next parents, in order, each with its chain and the answer to
    /// its first page, already asked for.
    ahead: FuturesOrdered<LocalBoxFuture<'static, Ahead>>,
}

type Ahead = (ParentValue, Chain, Result<(Fetched, u32)>);

/// Parents whose first page is asked for while the current one is read: a
/// child read is mostly one page per parent, and one request at a time
/// cannot reach the API's 4/s at its round-trip time; a few more keep the
/// shared limiter busy. Requests spent ahead of a run that stops are at most
/// this many.
const PARENTS_AHEAD: usize = 3;

impl Children {
    pub async fn new(
        ctx: &Context,
        def: &Arc<StreamDef>,
        parent: &Parent,
        since: Option<DateTime<Utc>>,
        report: &mut StreamReport,
    ) -> Result<Children> {
        let source = parent_stream(ctx, parent)?;
        let changed_field = source.and_then(|s| s.cursor_field());
        let configured = config_source(ctx, parent);
        if let (Some(source), Some(list)) = (source, parent.named_by) {
            ctx.log_once(
                &format!("searching {}", list.config_field()),
                Level::Info,
                || {
                    let only: Vec<String> = parent
                        .only
                        .iter()
                        .map(|(field, values)| format!("{field} is {}", values.join(" or ")))
                        .collect();
                    format!(
                        "{}: `{}` is not set, so {} are looked for among the records of {} whose \
                     {}, which no API documentation lists (unconfirmed: they may never be \
                     found). Set `{}` to name them.",
                        def.name,
                        list.config_field(),
                        list.what(),
                        source.path.replace("{parent}", "{id}"),
                        only.join(" and whose "),
                        list.config_field(),
                    )
                },
            );
        }
        let records: Records = match source {
            Some(source) => ctx.parents.records(ctx, source, since, report).await?,
            None => {
                let list = configured.expect("parent_stream is None only for config lists");
                let ids = ctx.lists.get(list);
                if ids.is_empty() {
                    ctx.output.log(
                        Level::Warn,
                        &format!(
                            "{}: no {} in the config, so nothing is read",
                            def.name,
                            list.config_field()
                        ),
                    );
                }
                Arc::new(
                    ids.iter()
                        .map(|id| json!({ parent.key.as_str(): id }))
                        .collect(),
                )
            }
        };
        let narrowed = parent
            .narrowed_by
            .map(|list| ctx.lists.get(list))
            .unwrap_or_default();
        let wanted = |key: &str| narrowed.is_empty() || narrowed.iter().any(|v| v == key);
        // Named by the config: the names are the parents, whatever `only`
        // says of the records they would have been found among.
        let values = match configured {
            Some(_) if parent.named_by.is_some() => {
                let plain = Parent {
                    only: Vec::new(),
                    ..parent.clone()
                };
                parent_values(&records, &plain, changed_field, wanted)?
            }
            _ => parent_values(&records, parent, changed_field, wanted)?,
        };
        let mut children = Children {
            def: def.clone(),
            found: values.len(),
            configured,
            listed_by: (
                source.map_or_else(String::new, |s| s.name.clone()),
                parent.key.clone(),
            ),
            values: values.into(),
            batch: parent.batch.max(1),
            unbatched: 0,
            current: None,
            ahead: FuturesOrdered::new(),
        };
        children.stamp(ctx, parent, report).await?;
        Ok(children)
    }

    /// Gives every parent value still to read that lacks it the stamp of
    /// its stats record (`StatsGate::stamp`), for its child records: the
    /// stats are read in batches, shared with the gate and the stats stream.
    pub async fn stamp(
        &mut self,
        ctx: &Context,
        parent: &Parent,
        report: &mut StreamReport,
    ) -> Result<()> {
        let Some(gate) = parent.gate.as_ref().filter(|g| g.stamp.is_some()) else {
            return Ok(());
        };
        let field = gate.stamp.as_ref().map(|(_, field)| field.as_str());
        let stamped = |v: &ParentValue| v.carried.iter().any(|(f, _)| Some(f.as_str()) == field);
        let keys: Vec<String> = self
            .values
            .iter()
            .filter(|v| !stamped(v))
            .map(|v| v.key.clone())
            .collect();
        let stamps = ctx
            .stats
            .stamps(ctx, &self.def.name, gate, &keys, report)
            .await?;
        for value in &mut self.values {
            if let (Some(field), Some(stamp)) = (field, stamps.get(&value.key)) {
                if !stamped(value) {
                    value.carried.push((field.to_string(), stamp.clone()));
                }
            }
        }
        Ok(())
    }

    /// The next page and the parent value(s) it belongs to.
    pub async fn next(
        &mut self,
        ctx: &Context,
        def: &StreamDef,
        report: &mut StreamReport,
    ) -> Result<Option<(ParentValue, Fetched)>> {
        loop {
            if let Some((parent, chain)) = &mut self.current {
                match chain.next(ctx, def, report).await {
                    Ok(Some(page)) => return Ok(Some((parent.clone(), page))),
                    Ok(None) => self.current = None,
                    Err(error) => {
                        let parent = parent.clone();
                        self.current = None;
                        self.current_failed(ctx, parent, error)?;
                    }
                }
            }
            if let Some((parent, mut chain, answer)) = self.ahead.next().await {
                match chain.accept(ctx, def, answer, report) {
                    // A fallback never applies to a first page.
                    Ok(page) => {
                        self.current = Some((parent.clone(), chain));
                        if let Some(page) = page {
                            self.look_ahead(ctx);
                            return Ok(Some((parent, page)));
                        }
                    }
                    Err(error) => self.current_failed(ctx, parent, error)?,
                }
                continue;
            }
            let Some(parent) = self.take_parent() else {
                return Ok(None);
            };
            // A stats stream that gates others is read through their shared
            // cache: what a gate read this run is not asked for again.
            if ctx.registry.gates_on(&self.def.name) {
                // Every value left at once, so what the gates did not read
                // fills whole requests.
                let left: Vec<&str> = parent
                    .key
                    .split(',')
                    .chain(self.values.iter().map(|v| v.key.as_str()))
                    .collect();
                ctx.stats
                    .records(ctx, &self.def.name, &self.def, &left, report)
                    .await?;
                let keys: Vec<&str> = parent.key.split(',').collect();
                let records: Vec<Value> = ctx
                    .stats
                    .records(ctx, &self.def.name, &self.def, &keys, report)
                    .await?
                    .into_iter()
                    .flatten()
                    .collect();
                let body = match &self.def.records {
                    streams::Records::Key(key) => json!({ key.as_str(): records }),
                    _ => Value::Array(records),
                };
                return Ok(Some((parent, Fetched::last(&self.def, &body)?)));
            }
            self.ask_first_page(ctx, parent);
            self.look_ahead(ctx);
        }
    }

    /// The next parent value, or batch of values, to read.
    fn take_parent(&mut self) -> Option<ParentValue> {
        let batch = if self.unbatched > 0 {
            self.unbatched -= 1;
            1
        } else {
            self.batch
        };
        match self.values.len().min(batch) {
            0 => None,
            1 => self.values.pop_front(),
            n => Some(ParentValue {
                key: self
                    .values
                    .drain(..n)
                    .map(|v| v.key)
                    .collect::<Vec<_>>()
                    .join(","),
                carried: Vec::new(),
                path: Vec::new(),
                changed: None,
            }),
        }
    }

    /// Asks for the first page of `parent`, queued after those ahead.
    fn ask_first_page(&mut self, ctx: &Context, parent: ParentValue) {
        let mut path = self.def.path.replace("{parent}", &parent.key);
        for (placeholder, value) in &parent.path {
            path = path.replace(placeholder.as_str(), value);
        }
        let first = first_page(ctx, &self.def, &path, None);
        let page = fetch(ctx, &self.def, first.clone());
        let chain = Chain::new(first);
        self.ahead
            .push_back(Box::pin(async move { (parent, chain, page.await) }));
    }

    /// Keeps [`PARENTS_AHEAD`] first pages asked for, unless a failed batch
    /// is being read one value at a time (its values go first).
    fn look_ahead(&mut self, ctx: &Context) {
        while self.ahead.len() < PARENTS_AHEAD && self.unbatched == 0 {
            let Some(parent) = self.take_parent() else {
                break;
            };
            self.ask_first_page(ctx, parent);
        }
    }

    /// What a parent's failed read leaves to do: one unknown value fails its
    /// whole batch, so the batch's values are asked for one by one to find
    /// it; a single value not found was deleted after it was listed.
    fn current_failed(&mut self, ctx: &Context, parent: ParentValue, error: Error) -> Result<()> {
        match error {
            error if error.not_found && parent.key.contains(',') => {
                let singles: Vec<&str> = parent.key.split(',').collect();
                for key in singles.iter().rev() {
                    self.values.push_front(ParentValue {
                        key: key.to_string(),
                        carried: Vec::new(),
                        path: Vec::new(),
                        changed: None,
                    });
                }
                self.unbatched = singles.len();
                Ok(())
            }
            error if error.not_found => {
                ctx.output.log(Level::Warn, &self.vanished(&parent.key));
                Ok(())
            }
            error => Err(error),
        }
    }

    /// The warning for a parent value the API no longer knows (404): which
    /// config list or parent stream named it, and what to do.
    fn vanished(&self, key: &str) -> String {
        let stream = &self.def.name;
        match self.configured {
            Some(list) => format!(
                "{stream}: {key:?} in `{field}` of the config no longer exists (the API \
                 answered 404); skipped: remove it from `{field}`",
                field = list.config_field()
            ),
            None => {
                let (parent, field) = &self.listed_by;
                format!(
                    "{stream}: the {parent} record with {field} {key:?} no longer exists (deleted \
                     since it was listed); skipped"
                )
            }
        }
    }

    /// When each listed parent's record last changed, where its stream says.
    pub fn changes(&self) -> Vec<(String, DateTime<Utc>)> {
        self.values
            .iter()
            .filter_map(|v| v.changed.map(|at| (v.key.clone(), at)))
            .collect()
    }

    /// The parent values still to read.
    pub fn keys(&self) -> Vec<String> {
        self.values.iter().map(|v| v.key.clone()).collect()
    }

    /// Adds parent values known from saved state that the listing lacks
    /// (their parent record did not change, so it was not listed again).
    /// Parents the config names are all there is: nothing is added.
    pub fn add_keys(&mut self, keys: impl IntoIterator<Item = String>) {
        if self.configured.is_some() {
            return;
        }
        for key in keys {
            if !self.values.iter().any(|v| v.key == key) {
                self.found += 1;
                self.values.push_back(ParentValue {
                    key,
                    carried: Vec::new(),
                    path: Vec::new(),
                    changed: None,
                });
            }
        }
    }

    /// Warns, once per run, when a stream whose parents the config can name
    /// found none: what to set to read them.
    pub fn warn_if_none_found(&self, ctx: &Context) {
        let Some(list) = self.def.parent.as_ref().and_then(|p| p.named_by) else {
            return;
        };
        if self.found > 0 {
            return;
        }
        ctx.log_once(&format!("no {}", list.config_field()), Level::Warn, || {
            format!(
                "{}: no {} found, so the streams that read them read nothing (said once for \
                 all of them). Set `{}` in the config to their ids: no documented API call \
                 lists them.",
                self.def.name,
                list.what(),
                list.config_field(),
            )
        });
    }

    /// Keeps only the parent values `keep` accepts.
    pub fn retain(&mut self, mut keep: impl FnMut(&ParentValue) -> bool) {
        self.values.retain(|v| keep(v));
    }

    /// Reads `parent` once more, next after the parents already asked for.
    pub fn reread(&mut self, parent: ParentValue) {
        self.values.push_front(parent);
    }

    /// Leaves the current parent's remaining pages unread.
    pub fn skip_rest_of_parent(&mut self) {
        self.current = None;
    }
}

/// The values of `parent.key` in the parent records that pass its filter and
/// `wanted`, without repeats, in order.
fn parent_values(
    records: &[Value],
    parent: &Parent,
    changed_field: Option<&str>,
    wanted: impl Fn(&str) -> bool,
) -> Result<Vec<ParentValue>> {
    let mut single: Vec<ParentValue> = Vec::new();
    for record in records {
        let passes = parent.only.iter().all(|(field, allowed)| {
            let value = match record.get(field) {
                Some(Value::String(text)) => Cow::Borrowed(text.as_str()),
                Some(Value::Number(number)) => Cow::Owned(number.to_string()),
                _ => Cow::Borrowed(""),
            };
            allowed.iter().any(|a| *a == value)
        });
        if !passes {
            continue;
        }
        let key = match record.get(&parent.key) {
            Some(Value::String(text)) => text.clone(),
            Some(Value::Number(number)) => number.to_string(),
            _ => {
                return Err(Error::system(format!(
                    "a parent record has no {}: {record}",
                    parent.key
                )))
            }
        };
        // The other values of the child's path; without one there is no child.
        let path: Option<Vec<(String, String)>> = parent
            .path_values
            .iter()
            .map(|(placeholder, pointer)| match record.pointer(pointer) {
                Some(Value::String(text)) if !text.is_empty() => {
                    Some((placeholder.clone(), text.clone()))
                }
                Some(Value::Number(number)) => Some((placeholder.clone(), number.to_string())),
                _ => None,
            })
            .collect();
        let Some(path) = path else {
            continue;
        };
        if wanted(&key) && !single.iter().any(|v| v.key == key && v.path == path) {
            let carried = parent
                .carry
                .iter()
                .filter_map(|(from, to)| field(record, from).map(|v| (to.clone(), v.clone())))
                .collect();
            let changed = changed_field
                .and_then(|field| record.get(field))
                .and_then(Value::as_str)
                .and_then(parse_time);
            single.push(ParentValue {
                key,
                carried,
                path,
                changed,
            });
        }
    }
    Ok(single)
}

/// A record's field by name, or by JSON pointer (`/a/b`).
fn field<'r>(record: &'r Value, name: &str) -> Option<&'r Value> {
    match name.starts_with('/') {
        true => record.pointer(name),
        false => record.get(name),
    }
}

/// The record with what it takes from its parent: the parent value under
/// `inject` and the carried fields, where the record lacks them.
pub fn with_parent<'r>(record: &'r Value, parent: &Parent, value: &ParentValue) -> Cow<'r, Value> {
    let mut additions: Vec<(&str, Value)> = Vec::new();
    if let Some(field) = &parent.inject {
        additions.push((field, Value::from(value.key.as_str())));
    }
    for (field, carried) in &value.carried {
        additions.push((field.as_str(), carried.clone()));
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
