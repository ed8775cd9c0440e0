//! A stream's saved position, typed: one serde type per sync strategy,
//! parsed once when the stream starts, with errors that name the stream and
//! the field.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::error::{Error, Misfit, Result, Shown};

/// A moment in saved state, written as RFC 3339 with milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(pub DateTime<Utc>);

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(&format_time(self.0))
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_time(&text).map(Timestamp).ok_or_else(|| {
            serde::de::Error::custom(format!("{text:?} is not an RFC 3339 date-time"))
        })
    }
}

pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

pub fn format_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A stream with its own cursor (`contacts`, `email_campaigns`, …).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CursorState {
    /// Every record changed before this was emitted by an earlier run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<Timestamp>,
    /// When the last complete read started: further passes
    /// (`Cursor::also`) ask for changes after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_started: Option<Timestamp>,
    /// When the last complete full read (first sync or reconciliation)
    /// started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconciled_at: Option<Timestamp>,
    /// A chain of pages that a stopped run did not finish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<Resume>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resume {
    /// The link to the first page not read yet, as the API gave it (for a
    /// read of one chain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page: Option<String>,
    /// The windows of a split read not finished yet (for a read split into
    /// windows, [`super::windows`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<WindowState>,
    /// The newest cursor value among the records of the pages already read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cursor: Option<Timestamp>,
    /// The further pass the link belongs to (`None`: the cursor's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pass: Option<String>,
    /// The stopped run was reading everything (first sync or
    /// reconciliation).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub full: bool,
}

/// Where one window of a split read stands: it holds the records changed
/// after `after` and before `before` (open ends: the read's own bounds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Timestamp>,
    /// The link to its first page not read yet; none when it has not
    /// started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page: Option<String>,
}

/// A child that follows the cursor of a stream up its parent chain.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThroughParentState {
    /// Children of parents changed before this were all read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_cursor: Option<Timestamp>,
    /// Parents whose children an unfinished run read in full: its resumption
    /// skips them.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub unfinished_read: BTreeSet<String>,
    /// Parents read in full whose change time lies within the overlap before
    /// `parent_cursor`, with that time: listed again by the overlap, they
    /// are not read again unless they changed since.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub boundary: BTreeMap<String, Timestamp>,
}

/// A child whose rows come newest first: one bookmark per parent value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerParentState {
    /// The parents read in full, each with its newest row (`null` when it
    /// had none). A parent not here has never been read in full.
    #[serde(default)]
    pub parents: BTreeMap<String, Option<Timestamp>>,
    /// Set while a run is unfinished: it was reading the parents changed
    /// after this, and some of them may not have been read yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unfinished_since: Option<Timestamp>,
    /// The parents that unfinished run read in full: its resumption skips
    /// them.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub unfinished_read: BTreeSet<String>,
    /// For a stream gated on counts: each parent's counts when it was last
    /// read in full.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub counts: BTreeMap<String, Vec<u64>>,
    /// Parents of records changed before this were all listed (new parents
    /// come from those changed after it; known ones from this state).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_cursor: Option<Timestamp>,
    /// Rows at each parent's bookmark moment already delivered: read again,
    /// they are not emitted twice.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub at_bookmark: BTreeMap<String, RowsAt>,
    /// For a report held to a count of its rows: the rows delivered for
    /// each parent over the runs that read it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rows: BTreeMap<String, u64>,
    /// For a stream with a lookback: when each parent's record last changed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub changed: BTreeMap<String, Timestamp>,
}

/// The rows delivered at a parent's bookmark moment: their keys' hashes, or,
/// for more rows than are worth keeping, only how many (rows at that moment
/// are then emitted again: duplicates, never a loss).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RowsAt {
    Keys(BTreeSet<String>),
    Many(u64),
}

/// Full-refresh streams save nothing but the fact of a checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoState {}

/// Parses a stream's saved state as `T`; `None` and `{}` are the default.
pub fn parse<T: DeserializeOwned + Default>(stream: &str, state: Option<&Value>) -> Result<T> {
    let Some(value) = state else {
        return Ok(T::default());
    };
    serde_path_to_error::deserialize(value).map_err(|e| {
        let problem = match Misfit::of("", &e, value, Shown::Value) {
            Misfit::Missing(path) => format!("`{path}` is missing"),
            Misfit::Wrong { path, problem } if path.is_empty() => problem,
            Misfit::Wrong { path, problem } => format!("`{path}`: {problem}"),
        };
        Error::config(format!(
            "the saved state of stream {stream} is invalid: {problem}; fix it or reset the stream"
        ))
    })
}

/// The state as JSON, for the protocol writers.
pub fn to_value<T: Serialize>(state: &T) -> Value {
    serde_json::to_value(state).expect("state types serialize to JSON")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn states_round_trip_and_errors_name_stream_and_field() {
        let saved = json!({"cursor": "2025-01-01T00:00:00.000Z",
            "resume": {"next_page": "/v3/contacts?cursor=x"}});
        let state: CursorState = parse("contacts", Some(&saved)).unwrap();
        assert_eq!(to_value(&state), saved);
        let bad = json!({"resume": {"next_page": "/x", "max_cursor": "yesterday"}});
        let error = parse::<CursorState>("contacts", Some(&bad)).unwrap_err();
        assert!(error.message.contains("stream contacts"), "{error}");
        assert!(error.message.contains("resume.max_cursor"), "{error}");
        assert!(error.message.contains("yesterday"), "{error}");
        let unknown = parse::<PerParentState>("email_opens", Some(&json!({"parent": {}})));
        assert!(unknown.unwrap_err().message.contains("parent"));
        assert_eq!(
            parse::<ThroughParentState>("x", None).unwrap(),
            Default::default()
        );
    }
}
