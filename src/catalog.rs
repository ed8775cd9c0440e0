//! The catalog: what `discover` offers, and what a configured catalog selects.

use std::path::Path;

use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::streams::{self, StreamDef, STREAMS};

/// The Airbyte `AirbyteStream` of a stream definition.
pub fn airbyte_stream(def: &StreamDef) -> Value {
    let mut stream = json!({
        "name": def.name,
        "json_schema": def.schema_json(),
        "supported_sync_modes": ["full_refresh"],
        "source_defined_primary_key": def.primary_key.iter().map(|k| vec![*k]).collect::<Vec<_>>(),
        "is_resumable": def.cursor.is_some(),
    });
    if let Some(cursor) = def.cursor {
        stream["supported_sync_modes"] = json!(["full_refresh", "incremental"]);
        stream["source_defined_cursor"] = json!(true);
        stream["default_cursor_field"] = json!([cursor.field]);
    }
    stream
}

pub fn discover() -> Value {
    json!({"streams": STREAMS.iter().map(airbyte_stream).collect::<Vec<_>>()})
}

/// One stream a sync reads.
#[derive(Debug, Clone, Copy)]
pub struct Selected {
    pub def: &'static StreamDef,
    pub incremental: bool,
}

/// Reads a configured catalog. A stream asked for incrementally that only
/// supports full refresh is read as full refresh (PyAirbyte asks for
/// incremental everywhere); `notes` collects such decisions for the log.
pub fn load_configured(path: &Path, notes: &mut Vec<String>) -> Result<Vec<Selected>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::config(format!("cannot read catalog file {}: {e}", path.display())))?;
    let value: Value = serde_json::from_str(&text).map_err(|e| {
        Error::config(format!(
            "catalog file {} is not valid JSON: {e}",
            path.display()
        ))
    })?;
    parse_configured(&value, notes).map_err(|e| e.context(format!("catalog {}", path.display())))
}

pub fn parse_configured(catalog: &Value, notes: &mut Vec<String>) -> Result<Vec<Selected>> {
    let entries = catalog
        .get("streams")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::config("a configured catalog needs a `streams` array"))?;
    let mut selected: Vec<Selected> = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        let name = entry
            .pointer("/stream/name")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::config(format!("streams[{index}] has no stream.name")))?;
        let def = streams::find(name).ok_or_else(|| {
            Error::config(format!(
                "streams[{index}]: {name:?} is not a stream of this source; run discover for the list"
            ))
        })?;
        let mode = entry
            .get("sync_mode")
            .and_then(Value::as_str)
            .unwrap_or("full_refresh");
        let incremental = match mode {
            "incremental" if def.cursor.is_some() => true,
            "incremental" => {
                notes.push(format!(
                    "{name} supports only full refresh; reading it as full refresh"
                ));
                false
            }
            "full_refresh" => false,
            other => {
                return Err(Error::config(format!(
                    "streams[{index}] ({name}): unknown sync_mode {other:?}"
                )))
            }
        };
        if let (true, Some(cursor)) = (incremental, def.cursor) {
            if let Some(field) = entry.get("cursor_field").and_then(Value::as_array) {
                if !field.is_empty() && field != &[json!(cursor.field)] {
                    notes.push(format!(
                        "{name}: the cursor is source-defined; using {} instead of {field:?}",
                        cursor.field
                    ));
                }
            }
        }
        if selected.iter().any(|s| s.def.name == name) {
            notes.push(format!(
                "{name} is listed twice in the catalog; reading it once"
            ));
            continue;
        }
        selected.push(Selected { def, incremental });
    }
    Ok(selected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incremental_only_where_a_cursor_exists() {
        let catalog = json!({"streams": [
            {"stream": {"name": "contacts"}, "sync_mode": "incremental", "destination_sync_mode": "append_dedup"},
            {"stream": {"name": "segments"}, "sync_mode": "incremental", "destination_sync_mode": "append"},
        ]});
        let mut notes = vec![];
        let selected = parse_configured(&catalog, &mut notes).unwrap();
        assert!(selected[0].incremental);
        assert!(!selected[1].incremental);
        assert_eq!(notes.len(), 1);
    }

    #[test]
    fn unknown_streams_are_named() {
        let catalog =
            json!({"streams": [{"stream": {"name": "nope"}, "sync_mode": "full_refresh"}]});
        let err = parse_configured(&catalog, &mut vec![]).unwrap_err();
        assert!(err.message.contains("\"nope\""), "{err}");
    }

    #[test]
    fn discover_marks_cursors() {
        let catalog = discover();
        let contacts = &catalog["streams"][0];
        assert_eq!(contacts["default_cursor_field"], json!(["updated_at"]));
        assert_eq!(
            contacts["source_defined_primary_key"],
            json!([["contact_id"]])
        );
    }
}
