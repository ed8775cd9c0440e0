//! Singer messages: SCHEMA before a stream's records, RECORD with
//! `time_extracted`, STATE as `{"bookmarks": {stream: {...}}}`; human logs
//! on stderr. A rotated refresh token is written back to the `--config` file.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::catalog::Selected;
use super::deletions::{self, Deletions};
use super::{to_stderr, written, Level, Output, RecordRef, StreamStatus};
use crate::engine::state::{self, CursorState};
use crate::engine::StreamStates;
use crate::error::{Error, Result};
use crate::streams::{Registry, StreamDef};

struct StreamOut {
    def: Arc<StreamDef>,
    properties: Option<BTreeSet<String>>,
    /// Read incrementally: a full-table read leaves the bookmark alone.
    incremental: bool,
}

pub struct SingerWriter<W: Write + Send> {
    out: Mutex<W>,
    streams: BTreeMap<String, StreamOut>,
    bookmarks: Mutex<Map<String, Value>>,
    config_path: PathBuf,
    /// The selected streams whose deleted records get `_sdc_deleted_at`.
    deletions: Deletions,
}

impl<W: Write + Send> SingerWriter<W> {
    /// `bookmarks` is the incoming Singer state's, carried on into every
    /// STATE so that streams not read this run keep theirs.
    pub fn new(
        out: W,
        selected: &[Selected],
        bookmarks: Map<String, Value>,
        config_path: &Path,
    ) -> Self {
        let streams = selected
            .iter()
            .map(|s| {
                (
                    s.def.name.clone(),
                    StreamOut {
                        def: s.def.clone(),
                        properties: s.properties.clone(),
                        incremental: s.incremental,
                    },
                )
            })
            .collect();
        SingerWriter {
            out: Mutex::new(out),
            streams,
            bookmarks: Mutex::new(bookmarks),
            config_path: config_path.to_path_buf(),
            deletions: Deletions::new(deletions::SINGER, selected.iter().map(|s| &*s.def)),
        }
    }

    fn write(&self, message: &Value, flush: bool) {
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        written(
            serde_json::to_writer(&mut *out, message)
                .map_err(std::io::Error::from)
                .and_then(|()| out.write_all(b"\n"))
                .and_then(|()| if flush { out.flush() } else { Ok(()) }),
        );
    }

    fn schema_message(&self, stream: &StreamOut) -> Value {
        let mut schema = stream.def.schema.clone();
        if let (Some(keep), Some(props)) = (
            &stream.properties,
            schema.get_mut("properties").and_then(Value::as_object_mut),
        ) {
            props.retain(|name, _| keep.contains(name));
        }
        // After the selection: a deletion is never left out.
        deletions::declare(&stream.def, &mut schema, deletions::SINGER);
        let mut message = json!({
            "type": "SCHEMA",
            "stream": stream.def.name,
            "schema": schema,
            "key_properties": stream.def.primary_key,
        });
        if let Some(cursor) = &stream.def.cursor {
            message["bookmark_properties"] = json!([cursor.field]);
        }
        message
    }
}

impl<W: Write + Send> Output for SingerWriter<W> {
    fn record(&self, stream: &str, record: RecordRef<'_>) {
        let time_extracted = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
        let keep = self.streams.get(stream).and_then(|s| s.properties.as_ref());
        let filtered;
        let record = match keep {
            // Only some properties are selected: drop the others.
            Some(keep) => match &*record.to_value() {
                Value::Object(fields) => {
                    filtered = Value::Object(
                        fields
                            .iter()
                            .filter(|(name, _)| keep.contains(*name))
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect(),
                    );
                    RecordRef::Value(&filtered)
                }
                _ => record,
            },
            None => record,
        };
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        written(write_record(
            &mut *out,
            stream,
            record,
            &time_extracted,
            &self.deletions,
        ));
    }

    fn state(&self, stream: &str, state: &Value, _records: u64) {
        let value = {
            let mut bookmarks = self.bookmarks.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(out) = self.streams.get(stream).filter(|s| s.incremental) {
                if let Some(bookmark) = to_bookmark(&out.def, state) {
                    bookmarks.insert(stream.to_string(), bookmark);
                }
            }
            json!({"bookmarks": bookmarks.clone()})
        };
        self.write(&json!({"type": "STATE", "value": value}), true);
    }

    fn stream_status(&self, stream: &str, status: StreamStatus) {
        match (status, self.streams.get(stream)) {
            (StreamStatus::Started, Some(out)) => self.write(&self.schema_message(out), true),
            (StreamStatus::Complete, _) => self.log(Level::Info, &format!("{stream}: complete")),
            (StreamStatus::Incomplete, _) => {
                self.log(Level::Warn, &format!("{stream}: incomplete"))
            }
            _ => {}
        }
    }

    fn log(&self, level: Level, message: &str) {
        let level = match level {
            Level::Info => "INFO",
            Level::Warn => "WARNING",
        };
        to_stderr(&format!("{level} {message}"));
    }

    /// Singer has no estimate message.
    fn estimate(&self, _: &str, _: u64) {}

    fn config_updated(&self, config: &Value) {
        match write_atomically(&self.config_path, config) {
            Ok(()) => self.log(
                Level::Info,
                &format!(
                    "the refresh token was rotated; wrote the new one to {}",
                    self.config_path.display()
                ),
            ),
            Err(error) => self.log(
                Level::Warn,
                &format!(
                    "the refresh token was rotated but {error}; the old refresh token no longer \
                     works: save the new one or re-authorize before the next run"
                ),
            ),
        }
    }

    fn flush(&self) {
        written(self.out.lock().unwrap_or_else(|p| p.into_inner()).flush());
    }
}

/// A RECORD message, `{"type":"RECORD","stream":…,"record":…,
/// "time_extracted":…}`, written piece by piece so that a raw record goes out
/// as the API sent it.
fn write_record<W: Write + ?Sized>(
    out: &mut W,
    stream: &str,
    record: RecordRef<'_>,
    time_extracted: &str,
    deletions: &Deletions,
) -> std::io::Result<()> {
    out.write_all(br#"{"type":"RECORD","stream":"#)?;
    serde_json::to_writer(&mut *out, stream)?;
    out.write_all(br#","record":"#)?;
    deletions.write_json(out, stream, record)?;
    out.write_all(br#","time_extracted":"#)?;
    serde_json::to_writer(&mut *out, time_extracted)?;
    out.write_all(b"}\n")
}

/// A stream's Singer bookmark: the standard `replication_key` and
/// `replication_key_value`, then the rest of the stream's typed engine state
/// (the very state the Airbyte per-stream STATE carries: reconcile time,
/// unfinished windows, per-parent bookmarks, …), so that a Singer state fed
/// back resumes exactly as an Airbyte one does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Bookmark {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    replication_key: Option<String>,
    /// A stream with its own cursor: the engine state's `cursor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    replication_key_value: Option<Value>,
    /// The rest of the engine state, parsed by the engine's own typed parser
    /// (`engine::state`) when the stream starts.
    #[serde(flatten)]
    state: Map<String, Value>,
}

/// Engine state → Singer bookmark. A stream with its own cursor gets the
/// standard `replication_key_value` (its `cursor`) beside the rest of its
/// [`CursorState`]; other incremental streams (children) keep their engine
/// state in the bookmark as is.
fn to_bookmark(def: &StreamDef, state: &Value) -> Option<Value> {
    if !def.supports_incremental() {
        return None;
    }
    let bookmark = match &def.cursor {
        Some(cursor) => {
            let position: CursorState = state::parse(&def.name, Some(state)).ok()?;
            let replication_key_value = position.cursor.map(|at| state::to_value(&at));
            let rest = CursorState {
                cursor: None,
                ..position
            };
            Bookmark {
                replication_key: Some(cursor.field.clone()),
                replication_key_value,
                state: object(state::to_value(&rest)),
            }
        }
        None => Bookmark {
            replication_key: def.cursor_field().map(str::to_string),
            replication_key_value: None,
            state: object(state.clone()),
        },
    };
    Some(state::to_value(&bookmark))
}

/// Singer bookmark → engine state: the standard keys taken off, the
/// `replication_key_value` of a stream with its own cursor as its `cursor`.
fn from_bookmark(def: &StreamDef, bookmark: Value) -> Result<Value> {
    let Bookmark {
        replication_key_value,
        mut state,
        ..
    } = serde_json::from_value(bookmark).map_err(|e| {
        Error::config(format!(
            "state: the bookmark of {} is not a bookmark: {e}",
            def.name
        ))
    })?;
    if let Some(value) = replication_key_value.filter(|v| !v.is_null()) {
        if def.cursor.is_some() {
            state.insert("cursor".into(), value);
        }
    }
    Ok(Value::Object(state))
}

/// The fields of a state that is a JSON object (as every engine state is).
fn object(state: Value) -> Map<String, Value> {
    match state {
        Value::Object(fields) => fields,
        _ => Map::new(),
    }
}

/// Singer state (`{"bookmarks": …}`, possibly wrapped as a STATE message or
/// in `value`) → the engine's per-stream states, and the bookmarks to carry.
pub fn parse_state(
    registry: &Registry,
    state: &Value,
) -> Result<(StreamStates, Map<String, Value>)> {
    // A STATE message keeps it under `value`; `meltano state get` prints it
    // under `singer_state`.
    let inner = ["value", "singer_state"]
        .iter()
        .find_map(|key| state.get(key).filter(|v| v.is_object()))
        .unwrap_or(state);
    let bookmarks = match inner.get("bookmarks") {
        // Not a Singer state at all: an Airbyte state list, say.
        None if !inner.is_null() && inner.as_object().is_none_or(|m| !m.is_empty()) => {
            return Err(Error::config(
                "state: expected {\"bookmarks\": {…}} (or a STATE message, or `meltano state get` \
                 output); nothing in this state would be used",
            ))
        }
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => map.clone(),
        Some(other) => {
            return Err(Error::config(format!(
                "state: bookmarks must be an object, not {other}"
            )))
        }
    };
    let mut states = StreamStates::new();
    for (stream, bookmark) in &bookmarks {
        let Some(def) = registry.find(stream).filter(|d| d.supports_incremental()) else {
            continue;
        };
        if !bookmark.is_object() {
            return Err(Error::config(format!(
                "state: the bookmark of {stream} must be an object, not {bookmark}"
            )));
        }
        states.insert(stream.clone(), from_bookmark(def, bookmark.clone())?);
    }
    Ok((states, bookmarks))
}

/// What a person should know about the bookmarks of an accepted state:
/// each bookmark of a stream this tap does not have (renamed, removed, a
/// custom stream gone from the config), which is carried on but not used.
pub fn state_notes(registry: &Registry, bookmarks: &Map<String, Value>) -> Vec<String> {
    bookmarks
        .keys()
        .filter(|stream| registry.find(stream).is_none())
        .map(|stream| {
            format!(
                "state: bookmark of stream {stream:?}, which this tap does not have (renamed, \
                 removed, or a custom stream no longer in the config): not used, carried on \
                 unchanged"
            )
        })
        .collect()
}

/// Rewrites the config file in place, keeping its permissions.
fn write_atomically(path: &Path, value: &Value) -> std::result::Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .permissions()
        .mode()
        & 0o7777;
    crate::files::write_json_atomically(path, value, mode)
        .map_err(|e| format!("cannot update {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bookmarks_round_trip_through_engine_state() {
        let registry = Registry::built_in();
        let singer = json!({"bookmarks": {
            "contacts": {"replication_key": "updated_at", "replication_key_value": "2025-01-01T00:00:00.000Z"},
            "email_campaigns": {"replication_key": "updated_at", "replication_key_value": null,
                                "resume": {"next_page": "/v3/emails?cursor=x"}},
            "retired_stream": {"replication_key_value": 5}
        }});
        let (states, carried) = parse_state(&registry, &singer).unwrap();
        assert_eq!(
            states["contacts"],
            json!({"cursor": "2025-01-01T00:00:00.000Z"})
        );
        assert_eq!(
            states["email_campaigns"],
            json!({"resume": {"next_page": "/v3/emails?cursor=x"}})
        );
        assert!(!states.contains_key("retired_stream"));
        assert_eq!(carried.len(), 3);
        let contacts = registry.find("contacts").unwrap();
        assert_eq!(
            to_bookmark(contacts, &states["contacts"]).unwrap(),
            singer["bookmarks"]["contacts"]
        );
        let wrapped = json!({"type": "STATE", "value": singer});
        assert_eq!(parse_state(&registry, &wrapped).unwrap().0, states);
        let meltano = json!({"singer_state": singer});
        assert_eq!(parse_state(&registry, &meltano).unwrap().0, states);
        assert!(
            parse_state(&registry, &json!({"contacts": {}})).is_err(),
            "an unknown shape is refused"
        );
        assert!(parse_state(&registry, &json!({})).unwrap().0.is_empty());
        assert!(parse_state(&registry, &Value::Null).unwrap().0.is_empty());
        let airbyte = json!([{"type": "STREAM", "stream": {
            "stream_descriptor": {"name": "contacts"}, "stream_state": {}}}]);
        let error = parse_state(&registry, &airbyte).unwrap_err();
        assert!(error.message.contains("bookmarks"), "{error}");
        let notes = state_notes(&registry, &carried);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains("\"retired_stream\""), "{notes:?}");
    }

    /// Whatever an engine state holds (the Airbyte per-stream state), the
    /// Singer bookmark carries it all and gives it back unchanged: a stream
    /// with its own cursor (reconcile time, unfinished windows), a child
    /// with per-parent bookmarks, and one that follows its parent.
    #[test]
    fn every_engine_state_survives_its_bookmark() {
        let registry = Registry::built_in();
        let cursor = json!({"cursor": "2025-01-02T00:00:00.000Z",
            "last_run_started": "2025-01-03T00:00:00.000Z",
            "reconciled_at": "2024-12-20T00:00:00.000Z",
            "resume": {"windows": [{"after": "2025-01-01T00:00:00.000Z",
                "before": "2025-01-02T00:00:00.000Z", "next_page": "/v3/contacts?cursor=w"},
                {"after": "2025-01-02T00:00:00.000Z"}],
                "max_cursor": "2025-01-02T00:00:00.000Z", "full": true}});
        let per_parent = json!({"parents": {"a": "2025-01-01T00:00:00.000Z", "b": null},
            "unfinished_since": "2025-01-01T00:00:00.000Z", "unfinished_read": ["a"],
            "counts": {"a": [1, 2]}, "parent_cursor": "2025-01-01T00:00:00.000Z",
            "at_bookmark": {"a": ["k1"], "b": 40}, "changed": {"a": "2025-01-01T00:00:00.000Z"}});
        let mut checked = BTreeSet::new();
        for def in registry.visible().filter(|d| d.supports_incremental()) {
            let state = if def.cursor.is_some() {
                cursor.clone()
            } else if matches!(
                def.parent.as_ref().map(|p| &p.sync),
                Some(crate::streams::ChildSync::ThroughParent(_))
            ) {
                json!({"parent_cursor": "2025-01-01T00:00:00.000Z", "unfinished_read": ["p"],
                    "boundary": {"p": "2025-01-01T00:00:00.000Z"}})
            } else {
                per_parent.clone()
            };
            let bookmark = to_bookmark(def, &state).unwrap();
            assert_eq!(
                bookmark["replication_key"].as_str(),
                def.cursor_field(),
                "{}",
                def.name
            );
            if def.cursor.is_some() {
                assert_eq!(bookmark["replication_key_value"], state["cursor"]);
                assert!(bookmark.get("cursor").is_none(), "{bookmark}");
            }
            let singer = json!({"bookmarks": {def.name.clone(): bookmark}});
            let (states, _) = parse_state(&registry, &singer).unwrap();
            assert_eq!(states[&def.name], state, "{}", def.name);
            checked.insert(state.to_string());
        }
        assert_eq!(checked.len(), 3, "every kind of state was checked");
    }

    /// Raw and parsed records give the same message, the one `json!` wrote
    /// before.
    #[test]
    fn record_messages_are_the_same_raw_or_parsed() {
        let text = r#"{"b":1,"a":"x\u0001é","n":null,"f":1.5,"l":[true,{}]}"#;
        let value: Value = serde_json::from_str(text).unwrap();
        let mut raw = Vec::new();
        write_record(
            &mut raw,
            "contacts",
            RecordRef::Raw(text),
            "2025-01-01T00:00:00.000000Z",
            &deletions::NONE,
        )
        .unwrap();
        let mut parsed = Vec::new();
        let at = "2025-01-01T00:00:00.000000Z";
        write_record(
            &mut parsed,
            "contacts",
            RecordRef::Value(&value),
            at,
            &deletions::NONE,
        )
        .unwrap();
        assert_eq!(raw, parsed);
        let expected = serde_json::to_string(&json!({"type": "RECORD", "stream": "contacts",
            "record": value, "time_extracted": at}))
        .unwrap();
        assert_eq!(String::from_utf8(raw).unwrap(), expected + "\n");
    }

    #[test]
    fn config_keeps_its_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, "{}").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        write_atomically(&path, &json!({"a": 1})).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
    }
}
