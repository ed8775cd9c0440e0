//! Every stream of the source, as data: a [`StreamDef`] says where a stream's
//! pages are, where the records sit in a page, what identifies a record, how
//! it syncs incrementally and which parent it is read for. The engine reads
//! these definitions and nothing else, so a stream is a table entry
//! ([`table`]) plus `schemas/<name>.json`. A [`Registry`] holds the built-in
//! table and the config's custom streams; it is built once per run and passed
//! to whatever needs it.

mod custom;
pub mod custom_fields;
pub mod engagement;
#[cfg(test)]
mod spec_coverage;
mod table;

use std::sync::Arc;

use serde_json::Value;

use crate::config::CustomStream;
use crate::error::{Error, Result};

/// Where a page's records are in the response body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Records {
    /// An array under this key of the body object.
    Key(String),
    /// The body is itself the only record.
    Object,
    /// The body is an array of records.
    Array,
    /// Unknown ahead of time (custom streams without `records_key`): an array
    /// body holds records, an object body is one.
    ArrayOrObject,
}

/// How a stream reads incrementally: the record field that orders changes,
/// and the query parameters that ask for records changed after (and before)
/// a moment.
#[derive(Debug, Clone)]
pub struct Cursor {
    pub field: String,
    /// `None`: the endpoint has no such filter, so records are compared
    /// with the cursor here (a parent listing that is one request anyway).
    pub param: Option<String>,
    /// Carries the config's `end_date`, where the endpoint has one.
    pub end_param: Option<String>,
    /// Parameters asking for records changed in ways `param` does not
    /// follow (`optout_after`): each is a further pass of an incremental
    /// read, from the last complete run on, merged by primary key.
    pub also: Vec<String>,
    /// Records keep changing for a while after their cursor moment (the
    /// counts of a campaign after its send): an incremental read asks from
    /// this many days before the saved cursor.
    pub lookback: Option<Lookback>,
    /// The endpoint requires `param`: a full read sends the start date.
    pub required: bool,
}

impl Cursor {
    pub fn new(field: &str, param: &str) -> Cursor {
        Cursor {
            param: Some(param.into()),
            ..Cursor::client_side(field)
        }
    }

    /// A cursor the endpoint cannot filter by.
    pub fn client_side(field: &str) -> Cursor {
        Cursor {
            field: field.into(),
            param: None,
            end_param: None,
            also: Vec::new(),
            lookback: None,
            required: false,
        }
    }

    pub fn until(self, end_param: &str) -> Cursor {
        Cursor {
            end_param: Some(end_param.into()),
            ..self
        }
    }

    pub fn also(mut self, param: &str) -> Cursor {
        self.also.push(param.into());
        self
    }

    pub fn lookback(self, lookback: Lookback) -> Cursor {
        Cursor {
            lookback: Some(lookback),
            ..self
        }
    }

    /// The endpoint answers 400 without `param`.
    pub fn required(self) -> Cursor {
        Cursor {
            required: true,
            ..self
        }
    }
}

/// A list the config supplies: a query parameter's values, the parent
/// values of a child stream, or the parent values a child is narrowed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigList {
    ContactStatus,
    ListIds,
    TagIds,
    CampaignIds,
    ContactIds,
    LandingPageActivityIds,
}

impl ConfigList {
    /// The config field that holds the list.
    pub fn config_field(self) -> &'static str {
        match self {
            ConfigList::ContactStatus => "contact_status",
            ConfigList::ListIds => "list_ids",
            ConfigList::TagIds => "tag_ids",
            ConfigList::CampaignIds => "campaign_ids",
            ConfigList::ContactIds => "contact_ids",
            ConfigList::LandingPageActivityIds => "landing_page_activity_ids",
        }
    }

    /// What the list's values are, for messages (plural).
    pub fn what(self) -> &'static str {
        match self {
            ConfigList::ContactStatus => "contact statuses",
            ConfigList::ListIds => "lists",
            ConfigList::TagIds => "tags",
            ConfigList::CampaignIds => "campaigns",
            ConfigList::ContactIds => "contacts",
            ConfigList::LandingPageActivityIds => "landing-page activities",
        }
    }
}

/// A config setting in days that bounds which parents (or, for a cursor,
/// which records) are read again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookback {
    ReportLookbackDays,
}

/// A config setting in days after which an incremental read of a cursor
/// stream reads everything again (what no change filter reveals).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reconcile {
    ContactsReconcileDays,
}

/// How a child stream reads incrementally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChildSync {
    /// Always read in full.
    FullRefresh,
    /// Only the children of parents changed since the saved cursor of the
    /// first stream up the parent chain that has a [`Cursor`] are read again;
    /// records carry that stream's cursor value under this field.
    ThroughParent(String),
    /// The API returns each parent's rows newest first by `field`: a read
    /// stops at the parent's saved bookmark. With `lookback`, parents already
    /// read in full are read again only when they changed within that many
    /// days.
    NewestFirst {
        field: String,
        lookback: Option<Lookback>,
    },
    /// A parent's rows are read again, all of them, only when its counts in
    /// the parent's [`StatsGate`] changed.
    WholeWhenCountsChange,
    /// Every parent is read on every run (a snapshot per parent), but the
    /// parents are remembered: only parent records changed since the last
    /// run are listed again.
    KnownParents,
}

/// Counts that say whether a parent has new rows: a parent whose counts
/// are unchanged since its last complete read is not read again, one whose
/// counts are zero is not read at all. The stats are read in batches, one
/// request for many parents, before any parent is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsGate {
    /// The stream whose records hold the counts, one record per parent
    /// value (its first primary-key field), read `batch` values a request.
    pub stream: String,
    /// JSON pointers of the counts in a stats record.
    pub counts: Vec<String>,
    /// A value of the parent's stats record (`.0`, a JSON pointer) that
    /// every child record gets as `.1`: when the stats were refreshed,
    /// which orders the reads of a parent that its changed counts cause,
    /// so it is the child's cursor.
    pub stamp: Option<(String, String)>,
}

impl StatsGate {
    pub fn new(stream: &str, counts: &[&str]) -> StatsGate {
        StatsGate {
            stream: stream.into(),
            counts: strings(counts),
            stamp: None,
        }
    }

    pub fn stamp(self, pointer: &str, field: &str) -> StatsGate {
        StatsGate {
            stamp: Some((pointer.into(), field.into())),
            ..self
        }
    }
}

/// Where a child stream's `{parent}` path values come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParentSource {
    /// The records of another stream (often hidden).
    Stream(String),
    /// A list in the config, each value standing for a record `{key: value}`.
    Config(ConfigList),
}

#[derive(Debug, Clone)]
pub struct Parent {
    pub source: ParentSource,
    /// The field of each parent record that fills `{parent}`.
    pub key: String,
    /// Only parents whose `.0` field is one of `.1`, for every entry (a
    /// number matches its decimal text).
    pub only: Vec<(String, Vec<String>)>,
    /// Only parent values in this config list, when the list is set.
    pub narrowed_by: Option<ConfigList>,
    /// Parents the config names: when this list is set, its values are the
    /// parents and `source` is not read. When it is empty, `source` is
    /// searched (`only`) for them, a search no documentation confirms: the
    /// run says so once, and warns once when the search finds none.
    pub named_by: Option<ConfigList>,
    /// Parent values one request carries, comma-separated.
    pub batch: usize,
    /// Child records get the parent value under this name when they lack it.
    pub inject: Option<String>,
    /// Child records get these fields of the parent record (`.0`, a field
    /// or a JSON pointer into the record) as `.1`.
    pub carry: Vec<(String, String)>,
    /// More placeholders of the child's path (`.0`, such as `{track_id}`)
    /// and the JSON pointer into the parent record that fills each; a
    /// parent record without one has no child. Such children are read one
    /// parent a request.
    pub path_values: Vec<(String, String)>,
    pub sync: ChildSync,
    /// Incrementally, parents are read only when their counts change.
    pub gate: Option<StatsGate>,
    /// Where a parent says how many rows its child holds: a JSON pointer
    /// into its stats record (a gated parent) or else into its record. The
    /// pages a sync will read, for `plan`.
    pub rows: Option<String>,
    /// `rows` only grows while rows are added, so each parent's rows are
    /// held to it: the engine's audit.
    pub audit_rows: bool,
}

impl Parent {
    /// Read once per record of `stream`, one value per request, full refresh.
    pub fn stream(stream: &str, key: &str) -> Parent {
        Parent::from(ParentSource::Stream(stream.into()), key)
    }

    /// Read once per value of a config list.
    pub fn configured(list: ConfigList, key: &str) -> Parent {
        Parent::from(ParentSource::Config(list), key)
    }

    fn from(source: ParentSource, key: &str) -> Parent {
        Parent {
            source,
            key: key.into(),
            only: Vec::new(),
            narrowed_by: None,
            named_by: None,
            batch: 1,
            inject: None,
            carry: Vec::new(),
            path_values: Vec::new(),
            sync: ChildSync::FullRefresh,
            gate: None,
            rows: None,
            audit_rows: false,
        }
    }

    /// See [`Parent::rows`].
    pub fn rows(self, pointer: &str) -> Parent {
        Parent {
            rows: Some(pointer.into()),
            ..self
        }
    }

    /// [`Parent::rows`], a count each parent's rows are held to
    /// ([`Parent::audit_rows`]).
    pub fn audited_rows(self, pointer: &str) -> Parent {
        Parent {
            audit_rows: true,
            ..self.rows(pointer)
        }
    }

    pub fn gate(self, gate: StatsGate) -> Parent {
        Parent {
            gate: Some(gate),
            ..self
        }
    }

    /// Adds a field the child records get from the parent record (`from`
    /// a field name, or a JSON pointer such as `/default_track/track_id`).
    pub fn carry(mut self, from: &str, to: &str) -> Parent {
        self.carry.push((from.into(), to.into()));
        self
    }

    /// Fills `placeholder` of the child's path with the parent record's
    /// value at `pointer`.
    pub fn path_value(mut self, placeholder: &str, pointer: &str) -> Parent {
        self.path_values.push((placeholder.into(), pointer.into()));
        self
    }

    /// Adds a condition on parent records; all must hold.
    pub fn only(mut self, field: &str, values: &[&str]) -> Parent {
        self.only.push((field.into(), strings(values)));
        self
    }

    pub fn narrowed_by(self, list: ConfigList) -> Parent {
        Parent {
            narrowed_by: Some(list),
            ..self
        }
    }

    pub fn named_by(self, list: ConfigList) -> Parent {
        Parent {
            named_by: Some(list),
            ..self
        }
    }

    pub fn batch(self, batch: usize) -> Parent {
        Parent { batch, ..self }
    }

    pub fn inject(self, field: &str) -> Parent {
        Parent {
            inject: Some(field.into()),
            ..self
        }
    }

    pub fn sync(self, sync: ChildSync) -> Parent {
        Parent { sync, ..self }
    }
}

/// Query parameters that carry the sync window: the config's start date to
/// its end date (or the run's start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateWindow {
    pub start_param: String,
    pub end_param: String,
    /// The longest range the endpoint accepts; a longer window is cut to its
    /// latest part.
    pub longest: Option<chrono::Duration>,
}

impl DateWindow {
    pub fn new(start_param: &str, end_param: &str) -> DateWindow {
        DateWindow {
            start_param: start_param.into(),
            end_param: end_param.into(),
            longest: None,
        }
    }

    pub fn at_most(self, longest: chrono::Duration) -> DateWindow {
        DateWindow {
            longest: Some(longest),
            ..self
        }
    }
}

/// A value of a list parameter (`include=a,b`) that a stream asks for
/// although the API may refuse it: a source documents it, the contract does
/// not list it. Refused (a 400 that names it), it is left out for the rest
/// of the run (`engine::optional`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OptionalValue {
    pub param: String,
    pub value: String,
    /// The boolean config field that, false, stops the connector asking.
    pub switch: String,
}

/// A stream read from a bulk export file rather than from pages: the
/// engine's `export` module starts the export job, waits for it and streams
/// the file's rows as records. Full refresh only, and opt-in (a job on the
/// account, and it needs a privilege other streams do not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Export {
    /// `POST /activities/contact_exports` of every field (no field list),
    /// then the CSV file the activity links to, its columns matched to the
    /// schema's fields and the account's custom fields.
    Contacts,
}

#[derive(Debug, Clone)]
pub struct StreamDef {
    pub name: String,
    /// Path under the API base URL; a child's holds `{parent}`.
    pub path: String,
    pub records: Records,
    pub primary_key: Vec<String>,
    pub cursor: Option<Cursor>,
    /// Largest page the endpoint allows, sent as `limit`; `None` when the
    /// endpoint is not paginated.
    pub page_size: Option<u32>,
    /// Fixed query parameters.
    pub params: Vec<(String, String)>,
    /// Values in `params` the API may refuse.
    pub optional: Vec<OptionalValue>,
    /// Query parameters whose values come from the config (replacing a
    /// fixed parameter of the same name when the list is set).
    pub filters: Vec<(String, ConfigList)>,
    /// Parameters that carry the sync window's start and end.
    pub window: Option<DateWindow>,
    pub schema: Value,
    /// Set for streams read once per parent record.
    pub parent: Option<Parent>,
    /// Feeds children only; not offered by discover.
    pub hidden: bool,
    /// Incremental reads read everything again this often.
    pub reconcile: Option<Reconcile>,
    /// Read from a bulk export file; such streams are opt-in.
    pub export: Option<Export>,
    /// The top-level field where a first page says how many records the
    /// read holds, for the protocol's estimate.
    pub count: Option<String>,
    /// A large read is cut into windows of the cursor read side by side
    /// (`engine::windows`); needs the cursor's parameter, its end parameter,
    /// a page size and a count.
    pub split_by_cursor: bool,
    /// The record field that orders the versions of a record read again,
    /// for a stream that reads incrementally with no cursor of its own (a
    /// snapshot per parent, read again each run).
    pub record_cursor: Option<String>,
    /// Pages name the next one by a cursor field rather than by
    /// `_links.next.href` (which is still followed where a page has it).
    pub next_cursor: Option<NextCursor>,
    /// The user privilege the endpoint needs (the contract's
    /// `x-authorization-privileges`): a 403 then leaves the stream empty with
    /// one warning naming it, rather than failing the run.
    pub privilege: Option<String>,
    /// Offered by discover, read only when selected (a request each run
    /// for little data).
    pub on_request: bool,
    /// Fields each record holds nested (a JSON pointer, `.0`) copied to the
    /// top level as `.1` where the record lacks it: a key needs a top-level
    /// field (Singer's `key_properties`).
    pub lift: Vec<(String, String)>,
    /// The top-level field the API sets on a record it reports deleted (a
    /// deleted contact keeps its row, with the date in `deleted_at`): the
    /// protocol writers mark such records as deletions
    /// (`protocol::deletions`).
    pub deleted_when: Option<String>,
    /// Counts other streams state of this stream's records (a list's
    /// members): a read of every record is held to them.
    pub members: Vec<MemberCount>,
}

/// A count of a stream's records that belong to a record of another stream:
/// a list's `membership_count` of the contacts whose `list_memberships` hold
/// the list's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberCount {
    /// The field of each record listing the ids it belongs to.
    pub field: String,
    /// The stream whose records state the counts, their id and count
    /// fields.
    pub stream: String,
    pub key: String,
    pub count: String,
    /// The request parameter that reads only the members of one id.
    pub filter: String,
}

/// Cursor paging by a field of the page: the next page is the same request
/// with `param` set to the page's `field`, while the page has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextCursor {
    pub field: String,
    pub param: String,
}

impl StreamDef {
    /// Whether its reads are held to a count the API states: the read's own
    /// (`count`) or its parents' stats (`Parent::audit_rows`).
    pub fn audited(&self) -> bool {
        self.count.is_some()
            || !self.members.is_empty()
            || self.parent.as_ref().is_some_and(|p| p.audit_rows)
    }

    /// A stream whose body is one record, no key, full refresh; the
    /// builder methods below set what differs.
    pub fn new(name: &str, path: &str) -> StreamDef {
        StreamDef {
            name: name.into(),
            path: path.into(),
            records: Records::Object,
            primary_key: Vec::new(),
            cursor: None,
            page_size: None,
            params: Vec::new(),
            optional: Vec::new(),
            filters: Vec::new(),
            window: None,
            schema: serde_json::json!({"type": "object"}),
            parent: None,
            hidden: false,
            reconcile: None,
            export: None,
            count: None,
            split_by_cursor: false,
            record_cursor: None,
            next_cursor: None,
            privilege: None,
            on_request: false,
            lift: Vec::new(),
            deleted_when: None,
            members: Vec::new(),
        }
    }

    /// See [`MemberCount`]: `stream`'s records, by `key`, state in `count`
    /// how many of this stream's records list them in `field`; `filter`
    /// reads one's members.
    pub fn members(
        mut self,
        field: &str,
        (stream, key, count): (&str, &str, &str),
        filter: &str,
    ) -> StreamDef {
        self.members.push(MemberCount {
            field: field.into(),
            stream: stream.into(),
            key: key.into(),
            count: count.into(),
            filter: filter.into(),
        });
        self
    }

    /// See [`StreamDef::deleted_when`].
    pub fn deleted_when(self, field: &str) -> StreamDef {
        StreamDef {
            deleted_when: Some(field.into()),
            ..self
        }
    }

    /// See [`StreamDef::record_cursor`].
    pub fn record_cursor(self, field: &str) -> StreamDef {
        StreamDef {
            record_cursor: Some(field.into()),
            ..self
        }
    }

    /// Pages carry the next page's cursor in `field`, asked for with `param`.
    pub fn next_cursor(self, field: &str, param: &str) -> StreamDef {
        StreamDef {
            next_cursor: Some(NextCursor {
                field: field.into(),
                param: param.into(),
            }),
            ..self
        }
    }

    pub fn privilege(self, privilege: &str) -> StreamDef {
        StreamDef {
            privilege: Some(privilege.into()),
            ..self
        }
    }

    /// Read only when selected: not selected by default.
    pub fn on_request(self) -> StreamDef {
        StreamDef {
            on_request: true,
            ..self
        }
    }

    /// Copies the value at `pointer` to the top-level field `field`.
    pub fn lift(mut self, pointer: &str, field: &str) -> StreamDef {
        self.lift.push((pointer.into(), field.into()));
        self
    }

    pub fn split_by_cursor(self) -> StreamDef {
        StreamDef {
            split_by_cursor: true,
            ..self
        }
    }

    /// The first page's count of the read's records (asked for with a
    /// fixed parameter in `params`).
    pub fn count(self, field: &str) -> StreamDef {
        StreamDef {
            count: Some(field.into()),
            ..self
        }
    }

    pub fn records_key(self, key: &str) -> StreamDef {
        self.records(Records::Key(key.into()))
    }

    pub fn records(self, records: Records) -> StreamDef {
        StreamDef { records, ..self }
    }

    pub fn primary_key(self, fields: &[&str]) -> StreamDef {
        StreamDef {
            primary_key: strings(fields),
            ..self
        }
    }

    pub fn cursor(self, cursor: Cursor) -> StreamDef {
        StreamDef {
            cursor: Some(cursor),
            ..self
        }
    }

    pub fn page_size(self, size: u32) -> StreamDef {
        StreamDef {
            page_size: Some(size),
            ..self
        }
    }

    pub fn params(self, params: &[(&str, &str)]) -> StreamDef {
        StreamDef {
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..self
        }
    }

    /// Marks `value`, one of `param`'s comma-separated values in `params`,
    /// as one the API may refuse, and asked for only while the config's
    /// boolean `switch` is true.
    pub fn optional(mut self, param: &str, value: &str, switch: &str) -> StreamDef {
        self.optional.push(OptionalValue {
            param: param.into(),
            value: value.into(),
            switch: switch.into(),
        });
        self
    }

    pub fn filter(mut self, param: &str, list: ConfigList) -> StreamDef {
        self.filters.push((param.into(), list));
        self
    }

    pub fn window(self, window: DateWindow) -> StreamDef {
        StreamDef {
            window: Some(window),
            ..self
        }
    }

    /// The stream's JSON Schema (`schemas/<name>.json`, embedded at build time).
    pub fn schema(self, text: &str) -> StreamDef {
        let schema = serde_json::from_str(text).unwrap_or_else(|e| {
            panic!(
                "schemas/{}.json is not JSON ({e}); a unit test checks every schema",
                self.name
            )
        });
        StreamDef { schema, ..self }
    }

    pub fn parent(self, parent: Parent) -> StreamDef {
        StreamDef {
            parent: Some(parent),
            ..self
        }
    }

    pub fn reconcile(self, every: Reconcile) -> StreamDef {
        StreamDef {
            reconcile: Some(every),
            ..self
        }
    }

    pub fn export(self, export: Export) -> StreamDef {
        StreamDef {
            export: Some(export),
            ..self
        }
    }

    /// Offered by discover but not selected unless asked for (Singer's
    /// `selected-by-default`, `demo`): bulk exports, and streams read on
    /// request.
    pub fn opt_in(&self) -> bool {
        self.export.is_some() || self.on_request
    }

    pub fn hidden(self) -> StreamDef {
        StreamDef {
            hidden: true,
            ..self
        }
    }

    pub fn supports_incremental(&self) -> bool {
        self.cursor.is_some()
            || self
                .parent
                .as_ref()
                .is_some_and(|p| p.sync != ChildSync::FullRefresh)
    }

    /// The record field that orders changes, where records carry one: the
    /// cursor, the field a child's rows are ordered by or carry from their
    /// parent, the stamp of a stats gate, or the record's own.
    pub fn cursor_field(&self) -> Option<&str> {
        if let Some(cursor) = &self.cursor {
            return Some(&cursor.field);
        }
        let parent = self.parent.as_ref();
        match parent.map(|p| &p.sync) {
            Some(ChildSync::NewestFirst { field, .. } | ChildSync::ThroughParent(field)) => {
                Some(field)
            }
            _ => parent
                .and_then(|p| p.gate.as_ref())
                .and_then(|gate| gate.stamp.as_ref())
                .map(|(_, field)| field.as_str())
                .or(self.record_cursor.as_deref()),
        }
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The streams of one run: the built-in table plus the config's custom
/// streams.
#[derive(Debug, Clone)]
pub struct Registry {
    streams: Vec<Arc<StreamDef>>,
}

impl Registry {
    /// The built-in streams and `custom`, whose names must not clash.
    pub fn new(custom: &[CustomStream]) -> Result<Registry> {
        let mut streams: Vec<Arc<StreamDef>> = table::streams().into_iter().map(Arc::new).collect();
        for (index, stream) in custom.iter().enumerate() {
            let field = || format!("invalid config field `custom_streams[{index}]`");
            let def = custom::definition(stream).map_err(|e| e.context(field()))?;
            if streams.iter().any(|d| d.name == def.name) {
                return Err(Error::config(format!(
                    "{}: the name {:?} is taken",
                    field(),
                    def.name
                )));
            }
            streams.push(Arc::new(def));
        }
        Ok(Registry { streams })
    }

    /// The built-in streams alone.
    pub fn built_in() -> Registry {
        Registry::new(&[]).expect("the built-in table has unique names")
    }

    /// This registry with `name`'s schema replaced (custom-field columns of
    /// `contacts`, see [`custom_fields`]).
    pub fn with_schema(mut self, name: &str, schema: Value) -> Registry {
        for def in self.streams.iter_mut().filter(|d| d.name == name) {
            let mut changed = StreamDef::clone(def);
            changed.schema = schema.clone();
            *def = Arc::new(changed);
        }
        self
    }

    /// The streams users can select.
    pub fn visible(&self) -> impl Iterator<Item = &Arc<StreamDef>> {
        self.streams.iter().filter(|def| !def.hidden)
    }

    /// A stream users can select, by name.
    pub fn find(&self, name: &str) -> Option<&Arc<StreamDef>> {
        self.visible().find(|def| def.name == name)
    }

    /// Whether some stream's [`StatsGate`] reads its counts from `name`.
    pub fn gates_on(&self, name: &str) -> bool {
        self.streams.iter().any(|def| {
            def.parent
                .as_ref()
                .and_then(|p| p.gate.as_ref())
                .is_some_and(|gate| gate.stream == name)
        })
    }

    /// Whether a read of `def` is the listing of parents another stream
    /// takes them from: a child stream read in full that is a parent of a
    /// visible stream (`engine::shared_read`).
    pub fn read_as_parents(&self, def: &StreamDef, incremental: bool) -> bool {
        let parent_of_another = self.visible().any(|other| {
            other
                .parent
                .as_ref()
                .is_some_and(|p| p.source == ParentSource::Stream(def.name.clone()))
        });
        let full = !incremental || !def.supports_incremental();
        full && def.parent.is_some() && def.export.is_none() && parent_of_another
    }

    /// Any stream, hidden ones included (parents of children).
    pub fn find_any(&self, name: &str) -> Option<&Arc<StreamDef>> {
        self.streams.iter().find(|def| def.name == name)
    }
}
