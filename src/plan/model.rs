//! The cost model: the requests a sync of the selected streams will take,
//! from the stream table (page sizes, parents, batches, gates, sync kinds)
//! and the counts the [`Survey`] read. Nothing here asks the API.
//!
//! A sync reads each parent stream once per run and shares its records with
//! every child, and reads the stats that gate reports once for all of them:
//! such shared reads are rows of their own ([`Role::Parents`],
//! [`Role::Stats`]), counted once.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use serde_json::{Map, Value};

use super::Survey;
use crate::engine::{first_cut, Lists};
use crate::protocol::catalog::Selected;
use crate::streams::{ChildSync, ConfigList, Parent, ParentSource, Records, Registry, StreamDef};

/// Requests of a bulk export: the job, a poll and the file, at least.
const EXPORT_REQUESTS: f64 = 3.0;

/// What a row of the plan is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A selected stream, incrementally or not.
    Selected { incremental: bool },
    /// A stream listed for the children of selected streams.
    Parents,
    /// The stats read once for the reports gated on them.
    Stats,
}

/// One row of the plan: requests of a first (full) sync and of an
/// incremental sync with no change, and how they were derived.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub stream: String,
    pub role: Role,
    pub full: u64,
    pub incremental: u64,
    pub basis: String,
}

/// Records per page of `page_size`, pages for `rows`: an empty read is
/// still one request.
pub fn pages(rows: u64, page_size: Option<u32>) -> u64 {
    match page_size {
        Some(size) => rows.div_ceil(u64::from(size.max(1))).max(1),
        None => 1,
    }
}

/// Requests of a read of `rows` records `page_size` a page that the engine
/// cuts into windows read side by side: its pages, the first page set
/// aside at the cut, and a part-filled last page in half the windows.
pub fn windowed(rows: u64, page_size: u32) -> u64 {
    let whole = pages(rows, Some(page_size));
    match first_cut(rows, u64::from(page_size)) {
        1 => whole,
        windows => whole + 1 + windows / 2,
    }
}

/// Parent values per request where a child's endpoint takes many.
pub fn batches(values: f64, batch: usize) -> u64 {
    (values.round() as u64).div_ceil(batch.max(1) as u64)
}

/// An estimated record of a parent stream: the fields children filter on,
/// how many such records there are (a mean where sampled), and the key of
/// the stats record of the campaign (or other top-level parent) it belongs
/// to.
#[derive(Debug, Clone)]
struct Estimated {
    fields: Value,
    weight: f64,
    stats: Option<String>,
}

pub struct Model<'a> {
    pub registry: &'a Registry,
    pub survey: &'a Survey,
    pub lists: &'a Lists,
}

impl Model<'_> {
    /// The rows of a sync of `selected`: the streams in order, then the
    /// shared reads they need.
    pub fn rows(&self, selected: &[Selected]) -> Vec<Row> {
        let mut rows = Vec::new();
        // Shared reads a selected stream's own row already counts.
        let mut covered: BTreeSet<(String, bool)> = BTreeSet::new();
        for stream in selected {
            let def = &stream.def;
            let (full, incremental, basis) = self.own(def, stream.incremental);
            rows.push(Row {
                stream: def.name.clone(),
                role: Role::Selected {
                    incremental: stream.incremental,
                },
                full,
                incremental,
                basis,
            });
            if self.registry.read_as_parents(def, stream.incremental) {
                covered.insert((def.name.clone(), false));
            }
            if self.registry.gates_on(&def.name) {
                covered.insert((def.name.clone(), true));
            }
        }
        let mut needed: Vec<(String, bool)> = Vec::new();
        for stream in selected {
            if stream.def.export.is_none() {
                self.shared_needs(&stream.def, &mut needed);
            }
        }
        for (name, stats) in needed {
            if !covered.insert((name.clone(), stats)) {
                continue;
            }
            let Some(def) = self.registry.find_any(&name) else {
                continue;
            };
            let (full, basis) = self.full(def, false);
            let (role, incremental) = if stats {
                (Role::Stats, full)
            } else {
                (Role::Parents, self.listing_again(def, full))
            };
            rows.push(Row {
                stream: name,
                role,
                full,
                incremental,
                basis,
            });
        }
        rows
    }

    /// The shared reads `def` needs: the listings of its parent streams up
    /// the chain (`false`) and the stats its gate reads (`true`).
    fn shared_needs(&self, def: &StreamDef, needed: &mut Vec<(String, bool)>) {
        let Some(parent) = &def.parent else {
            return;
        };
        if let Some(gate) = &parent.gate {
            push_new(needed, (gate.stream.clone(), true));
            if let Some(stats) = self.registry.find_any(&gate.stream) {
                self.shared_needs(stats, needed);
            }
        }
        if let Some(source) = self.parent_stream(def) {
            push_new(needed, (source.name.clone(), false));
            self.shared_needs(source, needed);
        }
    }

    /// The stream a child's parents are listed from; `None` when the config
    /// names them.
    fn parent_stream(&self, def: &StreamDef) -> Option<&Arc<StreamDef>> {
        let parent = def.parent.as_ref()?;
        let named = parent
            .named_by
            .is_some_and(|list| !self.lists.get(list).is_empty());
        match &parent.source {
            ParentSource::Stream(name) if !named => self.registry.find_any(name),
            _ => None,
        }
    }

    /// A selected stream's own requests: a full sync, an incremental one
    /// with no change, and the basis.
    fn own(&self, def: &StreamDef, incremental: bool) -> (u64, u64, String) {
        let (full, basis) = self.full(def, incremental);
        if !incremental || !def.supports_incremental() {
            return (full, full, basis);
        }
        let sync = def.parent.as_ref().map(|p| &p.sync);
        let again = match (&def.cursor, sync) {
            // One page of changes, and one per further change pass.
            (Some(cursor), None) => 1 + cursor.also.len() as u64 + self.refused(def),
            (_, Some(ChildSync::ThroughParent(_))) => 0,
            // Pages the config names are read each run, down to their
            // bookmark; those found are read again only when they change.
            (
                _,
                Some(ChildSync::NewestFirst {
                    lookback: Some(_), ..
                }),
            ) => {
                if self.parent_stream(def).is_none() {
                    total_weight(&self.instances(def)).round() as u64
                } else {
                    0
                }
            }
            // Unchanged counts: nothing read but the shared stats.
            (_, Some(ChildSync::NewestFirst { .. } | ChildSync::WholeWhenCountsChange)) => 0,
            _ => full,
        };
        (full, again, basis)
    }

    /// An unchanged parent listing read again: a top-level one in full, a
    /// child one only for the parents changed since (the newest, which the
    /// cursor overlap lists again).
    fn listing_again(&self, def: &StreamDef, full: u64) -> u64 {
        match def.parent {
            None => full,
            Some(_) => full.min(1),
        }
    }

    /// Optional values the API refused when the survey asked: one request
    /// each per run.
    fn refused(&self, def: &StreamDef) -> u64 {
        u64::from(self.survey.refused.get(&def.name).copied().unwrap_or(0))
    }

    /// Requests of a whole read of `def` (a first sync when `incremental`),
    /// and how they were derived.
    fn full(&self, def: &StreamDef, incremental: bool) -> (u64, String) {
        if def.export.is_some() {
            return (
                EXPORT_REQUESTS as u64,
                "a bulk export: its job, a poll and the file, at least".into(),
            );
        }
        if self.survey.forbidden.contains(&def.name) {
            return (1, "refused: the user lacks its privilege".into());
        }
        let Some(parent) = &def.parent else {
            return self.top_level(def);
        };
        let instances = self.instances(def);
        let values = total_weight(&instances);
        let of = match (self.parent_stream(def), config_list(parent)) {
            (Some(source), _) => source.name.clone(),
            (None, Some(list)) if instances.is_empty() => {
                return (
                    0,
                    format!("none: the config sets no {}", list.config_field()),
                );
            }
            (None, Some(list)) => format!("the config's {}", list.config_field()),
            (None, None) => "the config".into(),
        };
        if parent.batch > 1 {
            return (
                batches(values, parent.batch),
                format!("{values:.0} parents from {of}, {} a request", parent.batch),
            );
        }
        // Each parent's share of its campaign's stats: the activities
        // gated together split their campaign's counts.
        let mut shares: BTreeMap<&str, f64> = BTreeMap::new();
        for e in &instances {
            if let Some(key) = &e.stats {
                *shares.entry(key).or_default() += e.weight;
            }
        }
        let skip_empty = incremental
            && parent.gate.is_some()
            && matches!(parent.sync, ChildSync::NewestFirst { .. });
        let mut requests = 0.0;
        for e in &instances {
            let stats = e
                .stats
                .as_ref()
                .and_then(|key| Some((self.survey.stats.get(key)?, shares[key.as_str()])));
            if skip_empty {
                let gate = parent.gate.as_ref().expect("checked above");
                let empty = stats.is_some_and(|(record, _)| {
                    gate.counts.iter().all(|p| count_at(record, p) == 0)
                });
                if empty {
                    continue;
                }
            }
            let rows = parent.rows.as_ref().and_then(|pointer| match stats {
                Some((record, share)) if parent.gate.is_some() => {
                    Some((count_at(record, pointer) as f64 / share.max(1.0)).ceil() as u64)
                }
                _ => e.fields.pointer(pointer).and_then(Value::as_u64),
            });
            requests += e.weight * rows.map_or(1, |rows| pages(rows, def.page_size)) as f64;
        }
        let per = match (&parent.rows, def.page_size) {
            (Some(pointer), Some(size)) => format!(
                "pages of {size} from each one's {}",
                pointer.rsplit('/').next().unwrap_or(pointer)
            ),
            _ => "one request each".into(),
        };
        let skipped = if skip_empty {
            " (none for those whose counts are 0)"
        } else {
            ""
        };
        (
            requests.round() as u64,
            format!("{values:.0} parents from {of}: {per}{skipped}"),
        )
    }

    /// A stream with no parent: its pages, from the count or listing the
    /// survey read, else one page.
    fn top_level(&self, def: &StreamDef) -> (u64, String) {
        let known = self
            .survey
            .counted
            .get(&def.name)
            .map(|n| (*n, "counted"))
            .or_else(|| {
                let listed = self.survey.listed.get(&def.name)?;
                Some((listed.len() as u64, "listed"))
            });
        let mut overhead = self.refused(def);
        let mut extra = match overhead {
            0 => String::new(),
            n => format!("; +{n} for an optional value the API refuses"),
        };
        // A read of every record is held to the member counts: the
        // account's count and each counting stream's listing.
        if !def.members.is_empty() {
            let audit = 1 + def.members.len() as u64;
            overhead += audit;
            extra += &format!("; +{audit} for the member counts' audit");
        }
        match (known, def.page_size) {
            (Some((rows, how)), Some(size)) => {
                let mut requests = pages(rows, Some(size));
                let mut basis = format!("{rows} records ({how}) / {size} a page");
                if def.split_by_cursor && first_cut(rows, u64::from(size)) > 1 {
                    requests = windowed(rows, size);
                    basis += ", cut into windows (a page set aside, part-filled last pages)";
                }
                (requests + overhead, basis + &extra)
            }
            (Some((rows, how)), None) => (
                1 + overhead,
                format!("{rows} records ({how}), one request{extra}"),
            ),
            (None, Some(_)) => (
                1 + overhead,
                format!("one page assumed: the API gives no count{extra}"),
            ),
            (None, None) => (1 + overhead, format!("one request{extra}")),
        }
    }

    /// The parents a child stream is read for, with the fields its filters
    /// read.
    fn instances(&self, def: &StreamDef) -> Vec<Estimated> {
        let Some(parent) = &def.parent else {
            return Vec::new();
        };
        let configured = match (&parent.source, parent.named_by) {
            (ParentSource::Config(list), _) => Some(*list),
            (ParentSource::Stream(_), Some(list)) if !self.lists.get(list).is_empty() => Some(list),
            _ => None,
        };
        if let Some(list) = configured {
            return self
                .lists
                .get(list)
                .iter()
                .map(|id| Estimated {
                    fields: Value::Object(Map::from_iter([(
                        parent.key.clone(),
                        id.clone().into(),
                    )])),
                    weight: 1.0,
                    stats: None,
                })
                .collect();
        }
        let Some(source) = self.parent_stream(def) else {
            return Vec::new();
        };
        let narrowed = parent
            .narrowed_by
            .map(|list| self.lists.get(list))
            .unwrap_or_default();
        self.records(source)
            .into_iter()
            .filter(|e| {
                parent.only.iter().all(|(field, allowed)| {
                    let value = text(e.fields.get(field));
                    allowed.contains(&value)
                })
            })
            .filter(|e| narrowed.is_empty() || narrowed.contains(&text(e.fields.get(&parent.key))))
            .collect()
    }

    /// The records of a parent stream: listed by the survey, or, for a
    /// child, one per parent (a record body), or as many per parent as the
    /// sampled parents had, by kind.
    fn records(&self, def: &StreamDef) -> Vec<Estimated> {
        if let Some(listed) = self.survey.listed.get(&def.name) {
            let key = def
                .primary_key
                .first()
                .map(String::as_str)
                .unwrap_or_default();
            return listed
                .iter()
                .map(|record| {
                    let id = text(record.get(key));
                    Estimated {
                        fields: record.clone(),
                        weight: 1.0,
                        stats: self.survey.stats.contains_key(&id).then_some(id),
                    }
                })
                .collect();
        }
        let Some(parent) = &def.parent else {
            return Vec::new();
        };
        let parents = self.instances(def);
        let with_carried = |p: &Estimated, fields: &Value| {
            let mut fields = fields.as_object().cloned().unwrap_or_default();
            for (from, to) in &parent.carry {
                let value = match from.starts_with('/') {
                    true => p.fields.pointer(from),
                    false => p.fields.get(from),
                };
                if let Some(value) = value {
                    fields.insert(to.clone(), value.clone());
                }
            }
            Value::Object(fields)
        };
        if def.records == Records::Object {
            return parents
                .iter()
                .map(|p| Estimated {
                    fields: with_carried(p, &p.fields),
                    ..p.clone()
                })
                .collect();
        }
        let kinds = [false, true].map(|sent| self.kinds(def, Some(sent)));
        let unknown = self.kinds(def, None);
        parents
            .iter()
            .flat_map(|p| {
                let kinds = match self.sent(p.stats.as_deref()) {
                    Some(sent) => &kinds[usize::from(sent)],
                    None => &unknown,
                };
                kinds.iter().map(move |(fields, mean)| Estimated {
                    fields: with_carried(p, fields),
                    weight: p.weight * mean,
                    stats: p.stats.clone(),
                })
            })
            .collect()
    }

    /// Whether the parent whose stats record has `key` was sent: any count
    /// in its stats above 0. `None`: no stats say.
    fn sent(&self, key: Option<&str>) -> Option<bool> {
        self.survey.stats.get(key?).map(any_positive)
    }

    /// The kinds of record a parent of `def` has, by the fields `def`'s
    /// children filter on, each with its mean number per parent among the
    /// survey's sampled parents that were `sent` like it (all of them when
    /// none was, or nothing says); one record of no kind when nothing was
    /// sampled.
    fn kinds(&self, def: &StreamDef, sent: Option<bool>) -> Vec<(Value, f64)> {
        let sampled = self
            .survey
            .sampled
            .get(&def.name)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let alike: Vec<&Vec<Value>> = sampled
            .iter()
            .filter(|(key, _)| sent.is_none() || self.sent(Some(key)) == sent)
            .map(|(_, records)| records)
            .collect();
        let samples = match alike.is_empty() {
            true => sampled.iter().map(|(_, records)| records).collect(),
            false => alike,
        };
        if samples.is_empty() {
            return vec![(Value::Object(Map::new()), 1.0)];
        }
        let carried: HashSet<&str> = def
            .parent
            .iter()
            .flat_map(|p| p.carry.iter().map(|(_, to)| to.as_str()))
            .collect();
        let fields: BTreeSet<&str> = self
            .registry
            .visible()
            .filter_map(|child| child.parent.as_ref())
            .filter(|p| p.source == ParentSource::Stream(def.name.clone()))
            .flat_map(|p| p.only.iter().map(|(field, _)| field.as_str()))
            .filter(|field| !carried.contains(field))
            .collect();
        let mut kinds: BTreeMap<String, (Value, f64)> = BTreeMap::new();
        for record in samples.iter().copied().flatten() {
            let kind: Map<String, Value> = fields
                .iter()
                .filter_map(|f| Some((f.to_string(), record.get(*f)?.clone())))
                .collect();
            let kind = Value::Object(kind);
            kinds.entry(kind.to_string()).or_insert((kind, 0.0)).1 += 1.0;
        }
        let n = samples.len() as f64;
        kinds
            .into_values()
            .map(|(kind, count)| (kind, count / n))
            .collect()
    }
}

/// The config list a child's parents come from or may be named by.
fn config_list(parent: &Parent) -> Option<ConfigList> {
    match &parent.source {
        ParentSource::Config(list) => Some(*list),
        ParentSource::Stream(_) => parent.named_by,
    }
}

/// How many parents `estimated` stands for.
fn total_weight(estimated: &[Estimated]) -> f64 {
    estimated.iter().fold(0.0, |sum, e| sum + e.weight)
}

fn push_new(needed: &mut Vec<(String, bool)>, item: (String, bool)) {
    if !needed.contains(&item) {
        needed.push(item);
    }
}

/// A field as text, as parent filters compare it (a number as its decimal
/// text).
fn text(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Number(number)) => number.to_string(),
        _ => String::new(),
    }
}

/// Whether any number in `value` is above 0.
fn any_positive(value: &Value) -> bool {
    match value {
        Value::Number(n) => n.as_f64().is_some_and(|n| n > 0.0),
        Value::Array(items) => items.iter().any(any_positive),
        Value::Object(map) => map.values().any(any_positive),
        _ => false,
    }
}

fn count_at(record: &Value, pointer: &str) -> u64 {
    record.pointer(pointer).and_then(Value::as_u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pages_are_a_request_each_and_an_empty_read_is_one() {
        assert_eq!(pages(0, Some(500)), 1);
        assert_eq!(pages(1, Some(500)), 1);
        assert_eq!(pages(500, Some(500)), 1);
        assert_eq!(pages(501, Some(500)), 2);
        assert_eq!(pages(12_345, None), 1, "an unpaged endpoint");
    }

    #[test]
    fn batches_carry_many_values_a_request() {
        assert_eq!(batches(0.0, 10), 0);
        assert_eq!(batches(10.0, 10), 1);
        assert_eq!(batches(11.0, 10), 2);
        assert_eq!(batches(33.4, 10), 4, "a mean rounds to whole values");
    }

    #[test]
    fn a_read_cut_into_windows_costs_its_pages_and_a_few_more() {
        // Not cut: a few pages.
        assert_eq!(windowed(4_000, 500), 8);
        // 200 pages in 16 windows: a page set aside and half a page each.
        assert_eq!(windowed(100_000, 500), 200 + 1 + 8);
    }

    /// Two campaigns, one sent (a primary email with 600 sends, a
    /// permalink) and one draft (no sends), each sampled.
    fn account() -> Survey {
        let campaign = |id: &str, type_code: u32| json!({"campaign_id": id, "type_code": type_code, "updated_at": "2025-01-01T00:00:00Z"});
        let stats = |id: &str, sends: u64| json!({"campaign_id": id, "stats": {"em_sends": sends}});
        let refs = |roles: &[&str]| -> Vec<Value> {
            roles
                .iter()
                .map(|role| json!({"campaign_activity_id": format!("a-{role}"), "role": role}))
                .collect()
        };
        let mut survey = Survey::default();
        survey.listed.insert(
            "email_campaigns".into(),
            Arc::new(vec![campaign("sent", 10), campaign("draft", 57)]),
        );
        survey.stats.insert("sent".into(), stats("sent", 600));
        survey.stats.insert("draft".into(), stats("draft", 0));
        survey.sampled.insert(
            "campaign_activity_refs".into(),
            vec![
                (
                    "sent".into(),
                    refs(&["primary_email", "permalink", "resend"]),
                ),
                ("draft".into(), refs(&["primary_email", "permalink"])),
            ],
        );
        survey
    }

    fn rows(survey: &Survey, streams: &[(&str, bool)]) -> Vec<Row> {
        let registry = Registry::built_in();
        let lists = Lists::default();
        let model = Model {
            registry: &registry,
            survey,
            lists: &lists,
        };
        let selected: Vec<Selected> = streams
            .iter()
            .map(|(name, incremental)| Selected {
                def: registry.find(name).unwrap().clone(),
                incremental: *incremental,
                properties: None,
            })
            .collect();
        model.rows(&selected)
    }

    fn find<'r>(rows: &'r [Row], stream: &str, role: Role) -> &'r Row {
        rows.iter()
            .find(|r| r.stream == stream && r.role == role)
            .unwrap_or_else(|| panic!("no {stream} {role:?} row in {rows:?}"))
    }

    #[test]
    fn gated_reports_read_pages_of_their_stats_rows_and_skip_empty_parents() {
        let survey = account();
        let rows = rows(
            &survey,
            &[("email_sends", true), ("email_campaign_activities", true)],
        );
        let incremental = Role::Selected { incremental: true };
        // The sent campaign's 600 sends split between its primary email and
        // its resend: a page each; the draft's primary email has none.
        let sends = find(&rows, "email_sends", incremental);
        assert_eq!((sends.full, sends.incremental), (2, 0));
        // Every activity: 3 of the sent campaign's kinds, 2 of the draft's.
        let activities = find(&rows, "email_campaign_activities", incremental);
        assert_eq!((activities.full, activities.incremental), (5, 0));
        // Shared reads, once each: the campaigns' activities (one request a
        // campaign; again only for the newest), the listing, the stats of
        // the 3 sent-role activities (10 a request).
        let refs = find(&rows, "campaign_activity_refs", Role::Parents);
        assert_eq!((refs.full, refs.incremental), (2, 1));
        assert_eq!(find(&rows, "email_campaigns", Role::Parents).full, 1);
        assert_eq!(
            find(&rows, "email_campaign_activity_stats", Role::Stats).full,
            1
        );
        assert_eq!(rows.len(), 5, "{rows:?}");
    }

    #[test]
    fn a_full_refresh_reads_every_parent_and_filters_follow_carried_fields() {
        let survey = account();
        let rows = rows(
            &survey,
            &[
                ("email_sends", false),
                ("email_campaign_activity_abtests", true),
            ],
        );
        // Full refresh: the draft's empty primary email is read too.
        let sends = find(&rows, "email_sends", Role::Selected { incremental: false });
        assert_eq!(sends.full, 3);
        // Only the A/B test campaign's (type 57) primary email.
        let abtests = find(
            &rows,
            "email_campaign_activity_abtests",
            Role::Selected { incremental: true },
        );
        assert_eq!(abtests.full, 1);
    }

    #[test]
    fn counted_streams_cost_their_pages_and_a_refused_optional_value() {
        let mut survey = Survey::default();
        survey.counted.insert("contacts".into(), 1_000);
        survey.refused.insert("contacts".into(), 1);
        let rows = rows(&survey, &[("contacts", true), ("contact_lists", false)]);
        let contacts = find(&rows, "contacts", Role::Selected { incremental: true });
        // Two pages, the refusal and the member counts' audit (the
        // account's count, the lists', the tags'); then a page of changes,
        // the opt-out pass and the refusal.
        assert_eq!((contacts.full, contacts.incremental), (6, 3));
        assert!(contacts.basis.contains("+3 for the member counts' audit"));
        let lists = find(
            &rows,
            "contact_lists",
            Role::Selected { incremental: false },
        );
        assert_eq!((lists.full, lists.incremental), (1, 1));
        assert!(lists.basis.contains("assumed"), "{}", lists.basis);
    }
}
