//! The catalog: what `discover` offers, and what a configured catalog
//! selects, in both protocols' shapes (Airbyte's and Singer's).

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{json, Value};

use super::deletions;
use crate::error::{Error, Result};
use std::sync::Arc;

use crate::streams::{Registry, StreamDef};

/// The Airbyte `AirbyteStream` of a stream definition.
pub fn airbyte_stream(def: &StreamDef) -> Value {
    let mut stream = json!({
        "name": def.name,
        "json_schema": deletions::schema(def, deletions::AIRBYTE),
        "supported_sync_modes": ["full_refresh"],
        "source_defined_primary_key": def.primary_key.iter().map(|k| vec![k]).collect::<Vec<_>>(),
        "is_resumable": def.cursor.is_some(),
    });
    if def.supports_incremental() {
        stream["supported_sync_modes"] = json!(["full_refresh", "incremental"]);
        stream["source_defined_cursor"] = json!(true);
        // Children that follow their parent's cursor have none of their own.
        stream["default_cursor_field"] = json!(def.cursor_field().into_iter().collect::<Vec<_>>());
    }
    stream
}

pub fn discover(registry: &Registry) -> Value {
    json!({"streams": registry.visible().map(|def| airbyte_stream(def)).collect::<Vec<_>>()})
}

/// One stream a sync reads.
#[derive(Debug, Clone)]
pub struct Selected {
    pub def: Arc<StreamDef>,
    pub incremental: bool,
    /// Top-level properties to emit; `None` means all.
    pub properties: Option<BTreeSet<String>>,
}

/// What a discover with every stream selected reads: every visible stream
/// but the opt-in ones, incrementally where it can.
pub fn default_selection(registry: &Registry) -> Vec<Selected> {
    registry
        .visible()
        .filter(|def| !def.opt_in())
        .map(|def| Selected {
            def: def.clone(),
            incremental: def.supports_incremental(),
            properties: None,
        })
        .collect()
}

/// Reads a configured catalog. A stream asked for incrementally that only
/// supports full refresh is read as full refresh (PyAirbyte asks for
/// incremental everywhere); `notes` collects such decisions for the log.
pub fn load_configured(
    registry: &Registry,
    path: &Path,
    notes: &mut Vec<String>,
) -> Result<Vec<Selected>> {
    let value = read_json_file("catalog", path)?;
    parse_configured(registry, &value, notes)
        .map_err(|e| e.context(format!("catalog {}", path.display())))
}

pub fn parse_configured(
    registry: &Registry,
    catalog: &Value,
    notes: &mut Vec<String>,
) -> Result<Vec<Selected>> {
    let entries = catalog
        .get("streams")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::config("a configured catalog needs a `streams` array"))?;
    let mut selected: Vec<Selected> = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        let name = entry
            .pointer("/stream/name")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                let singer = entry.get("tap_stream_id").is_some()
                    || entry.get("stream").is_some_and(Value::is_string);
                Error::config(if singer {
                    format!(
                        "streams[{index}] has no stream.name: this looks like a Singer catalog \
                         (`tap_stream_id`), but `read` needs an Airbyte configured catalog \
                         ({{\"streams\": [{{\"stream\": {{\"name\": …}}, \"sync_mode\": …}}]}}); \
                         read a Singer catalog in Singer mode, without a subcommand: \
                         `source-constant-contact --config CONFIG --catalog CATALOG`"
                    )
                } else {
                    format!(
                        "streams[{index}] has no stream.name: an Airbyte configured catalog \
                         lists {{\"stream\": {{\"name\": …}}, \"sync_mode\": …}} per stream"
                    )
                })
            })?;
        let def = registry.find(name).cloned().ok_or_else(|| {
            Error::config(format!(
                "streams[{index}]: {name:?} is not a stream of this source; run discover for the list"
            ))
        })?;
        let mode = entry
            .get("sync_mode")
            .and_then(Value::as_str)
            .unwrap_or("full_refresh");
        let incremental = match mode {
            "incremental" if def.supports_incremental() => true,
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
        if let (true, Some(cursor)) = (incremental, def.cursor_field()) {
            if let Some(field) = entry.get("cursor_field").and_then(Value::as_array) {
                if !field.is_empty() && field != &[json!(cursor)] {
                    notes.push(format!(
                        "{name}: the cursor is source-defined; using {cursor} instead of {field:?}"
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
        selected.push(Selected {
            def,
            incremental,
            properties: None,
        });
    }
    if selected.is_empty() {
        return Err(Error::config(
            "the configured catalog has no streams: select at least one stream to read",
        ));
    }
    Ok(selected)
}

/// Reads a JSON file given on the command line, naming it in errors.
pub fn read_json_file(what: &str, path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::config(format!("cannot read {what} file {}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| {
        Error::config(format!(
            "{what} file {} is not valid JSON: {e}",
            path.display()
        ))
    })
}

/// The Singer catalog entry of a stream, with the standard metadata: the
/// stream breadcrumb `[]` and one breadcrumb per top-level property.
pub fn singer_stream(def: &StreamDef) -> Value {
    let schema = &deletions::schema(def, deletions::SINGER);
    // A record's deletion is always sent, whatever the selection.
    let automatic: Vec<&str> = def
        .primary_key
        .iter()
        .map(String::as_str)
        .chain(def.cursor_field())
        .chain(def.deleted_when.as_ref().map(|_| deletions::SINGER))
        .collect();
    let mut stream_metadata = json!({
        "inclusion": "available",
        "selected-by-default": !def.opt_in(),
        "table-key-properties": def.primary_key,
        "forced-replication-method": if def.supports_incremental() { "INCREMENTAL" } else { "FULL_TABLE" },
    });
    if let Some(cursor) = def.cursor_field() {
        stream_metadata["valid-replication-keys"] = json!([cursor]);
    }
    let mut metadata = vec![json!({"breadcrumb": [], "metadata": stream_metadata})];
    if let Some(properties) = schema["properties"].as_object() {
        for name in properties.keys() {
            let inclusion = if automatic.contains(&name.as_str()) {
                "automatic"
            } else {
                "available"
            };
            metadata.push(json!({
                "breadcrumb": ["properties", name],
                "metadata": {"inclusion": inclusion, "selected-by-default": true},
            }));
        }
    }
    let mut entry = json!({
        "tap_stream_id": def.name,
        "stream": def.name,
        "schema": schema,
        "key_properties": def.primary_key,
        "metadata": metadata,
    });
    if let Some(cursor) = def.cursor_field() {
        entry["replication_key"] = json!(cursor);
    }
    entry["replication_method"] = json!(if def.supports_incremental() {
        "INCREMENTAL"
    } else {
        "FULL_TABLE"
    });
    entry
}

pub fn singer_discover(registry: &Registry) -> Value {
    json!({"streams": registry.visible().map(|def| singer_stream(def)).collect::<Vec<_>>()})
}

/// Reads a Singer catalog (`--catalog` / `--properties`): a stream is read
/// when its `[]` metadata says `selected: true`, or when `selected` is absent
/// and `selected-by-default` is true; a property is left out when it is
/// deselected and not `automatic`.
pub fn parse_singer(registry: &Registry, catalog: &Value) -> Result<Vec<Selected>> {
    let entries = catalog
        .get("streams")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::config("a Singer catalog needs a `streams` array"))?;
    let mut selected: Vec<Selected> = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        let name = entry
            .get("tap_stream_id")
            .or_else(|| entry.get("stream"))
            .and_then(Value::as_str)
            .ok_or_else(|| {
                let airbyte = entry.pointer("/stream/name").is_some_and(Value::is_string);
                Error::config(if airbyte {
                    format!(
                        "streams[{index}] has no tap_stream_id: this looks like an Airbyte \
                         configured catalog (`stream.name`), but Singer mode needs a Singer \
                         catalog, as `--discover` prints it; read an Airbyte catalog with \
                         `source-constant-contact read --config CONFIG --catalog CATALOG`"
                    )
                } else {
                    format!(
                        "streams[{index}] has no tap_stream_id: a Singer catalog names each \
                         stream in `tap_stream_id`, as `--discover` prints it"
                    )
                })
            })?;
        let def = registry.find(name).cloned().ok_or_else(|| {
            Error::config(format!(
                "streams[{index}]: {name:?} is not a stream of this tap; run --discover for the list"
            ))
        })?;
        let metadata: &[Value] = entry
            .get("metadata")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice);
        let at = |breadcrumb: Value| {
            metadata
                .iter()
                .find(|m| m.get("breadcrumb") == Some(&breadcrumb))
                .and_then(|m| m.get("metadata"))
        };
        let is_selected = |m: Option<&Value>, default: bool| {
            let flag = |key: &str| m.and_then(|m| m.get(key)).and_then(Value::as_bool);
            m.and_then(|m| m.get("inclusion")) == Some(&json!("automatic"))
                || flag("selected")
                    .or_else(|| flag("selected-by-default"))
                    .unwrap_or(default)
        };
        let stream_metadata = at(json!([]));
        // A legacy catalog marks selection on the entry itself.
        let legacy = entry.get("selected").and_then(Value::as_bool);
        let stream_selected = match stream_metadata.and_then(|m| m.get("selected")) {
            Some(flag) => flag.as_bool().unwrap_or(false),
            None => legacy.unwrap_or_else(|| is_selected(stream_metadata, true)),
        };
        if !stream_selected || selected.iter().any(|s| s.def.name == name) {
            continue;
        }
        let all: Vec<&String> = def.schema["properties"]
            .as_object()
            .map(|props| props.keys().collect())
            .unwrap_or_default();
        let chosen: BTreeSet<String> = all
            .iter()
            .filter(|p| is_selected(at(json!(["properties", p])), true))
            .map(|p| p.to_string())
            .collect();
        let properties = (chosen.len() < all.len()).then_some(chosen);
        let method = stream_metadata
            .and_then(|m| m.get("replication-method"))
            .or_else(|| entry.get("replication_method"))
            .and_then(Value::as_str)
            .unwrap_or("INCREMENTAL");
        let incremental = def.supports_incremental() && !method.eq_ignore_ascii_case("FULL_TABLE");
        selected.push(Selected {
            def,
            incremental,
            properties,
        });
    }
    if selected.is_empty() {
        return Err(Error::config(
            "the catalog selects no stream: mark at least one stream selected in its metadata",
        ));
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
            {"stream": {"name": "contact_lists"}, "sync_mode": "incremental", "destination_sync_mode": "append"},
        ]});
        let mut notes = vec![];
        let selected = parse_configured(&Registry::built_in(), &catalog, &mut notes).unwrap();
        assert!(selected[0].incremental);
        assert!(!selected[1].incremental);
        assert_eq!(notes.len(), 1);
    }

    #[test]
    fn unknown_streams_are_named() {
        let catalog =
            json!({"streams": [{"stream": {"name": "nope"}, "sync_mode": "full_refresh"}]});
        let err = parse_configured(&Registry::built_in(), &catalog, &mut vec![]).unwrap_err();
        assert!(err.message.contains("\"nope\""), "{err}");
    }

    #[test]
    fn singer_selection_honours_metadata() {
        let registry = Registry::built_in();
        let mut catalog = singer_discover(&registry);
        let streams = catalog["streams"].as_array_mut().unwrap();
        // contacts: deselect a property, and try to deselect its key.
        for m in streams[0]["metadata"].as_array_mut().unwrap() {
            if m["breadcrumb"] == json!(["properties", "notes"])
                || m["breadcrumb"] == json!(["properties", "contact_id"])
            {
                m["metadata"]["selected"] = json!(false);
            }
        }
        // contact_lists: deselected at the stream level.
        streams[1]["metadata"][0]["metadata"]["selected"] = json!(false);
        let selected = parse_singer(&registry, &catalog).unwrap();
        // Opt-in streams (bulk exports) are not selected by default.
        let by_default = registry.visible().filter(|d| !d.opt_in()).count();
        assert_eq!(selected.len(), by_default - 1);
        assert!(selected.iter().all(|s| s.def.name != "contacts_export"));
        let contacts = selected[0].properties.as_ref().unwrap();
        assert!(!contacts.contains("notes"));
        assert!(contacts.contains("contact_id"), "keys are automatic");
        assert!(selected[0].incremental);
        assert!(selected.iter().all(|s| s.def.name != "contact_lists"));
    }

    #[test]
    fn a_catalog_of_the_other_protocol_is_recognised() {
        let registry = Registry::built_in();
        let singer = singer_discover(&registry);
        let err = parse_configured(&registry, &singer, &mut vec![]).unwrap_err();
        assert!(err.message.contains("looks like a Singer catalog"), "{err}");
        assert!(err.message.contains("--catalog CATALOG"), "{err}");
        let airbyte = json!({"streams": [{"stream": {"name": "contacts"},
            "sync_mode": "full_refresh", "destination_sync_mode": "overwrite"}]});
        let err = parse_singer(&registry, &airbyte).unwrap_err();
        assert!(
            err.message
                .contains("looks like an Airbyte configured catalog"),
            "{err}"
        );
        assert!(
            err.message.contains("source-constant-contact read"),
            "{err}"
        );
        // Neither: say what the expected shape names.
        let err = parse_configured(&registry, &json!({"streams": [{}]}), &mut vec![]).unwrap_err();
        assert!(err.message.contains("stream.name"), "{err}");
        assert!(!err.message.contains("Singer"), "{err}");
    }

    #[test]
    fn discover_marks_cursors() {
        let catalog = discover(&Registry::built_in());
        let contacts = &catalog["streams"][0];
        assert_eq!(contacts["default_cursor_field"], json!(["updated_at"]));
        assert_eq!(
            contacts["source_defined_primary_key"],
            json!([["contact_id"]])
        );
    }
}
