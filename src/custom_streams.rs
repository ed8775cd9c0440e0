//! User-defined streams (`custom_streams` in the config): any GET endpoint of
//! the V3 API, read by the same engine as the built-in streams — the
//! equivalent of other products' "make an API call" module.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::streams::{self, Cursor, Records, StreamDef, BASE};

/// One user-defined stream.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomStream {
    /// Stream name: lowercase letters, digits and underscores, not a built-in name.
    pub name: String,
    /// Path under the API base URL, e.g. `/contact_lists`.
    pub path: String,
    /// Key of the records array in each response; leave out when the response is
    /// itself the array of records or the one record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records_key: Option<String>,
    /// Fields that identify a record.
    #[serde(default)]
    pub primary_key: Vec<String>,
    /// Record field that orders changes (RFC 3339), for incremental reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor_field: Option<String>,
    /// Query parameter asking for records changed after a moment (with `cursor_field`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor_param: Option<String>,
    /// Page size, sent as `limit`; leave out for endpoints without pages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_size: Option<u32>,
    /// Fixed query parameters.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
    /// JSON Schema of a record; by default any object with the key and cursor fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_schema: Option<Value>,
}

static REGISTERED: OnceLock<Vec<StreamDef>> = OnceLock::new();

/// The registered custom streams (none before [`register`]).
pub fn registered() -> &'static [StreamDef] {
    REGISTERED.get().map_or(&[], Vec::as_slice)
}

/// Turns the config's custom streams into stream definitions, once per
/// process. They live as long as the process, hence the leaked strings.
pub fn register(custom: &[CustomStream]) -> Result<()> {
    let mut defs = Vec::with_capacity(custom.len());
    for (index, stream) in custom.iter().enumerate() {
        let def = definition(stream)
            .map_err(|e| e.context(format!("invalid config field `custom_streams[{index}]`")))?;
        let built_in = streams::STREAMS.iter().any(|d| d.name == def.name);
        if built_in || defs.iter().any(|d: &StreamDef| d.name == def.name) {
            return Err(Error::config(format!(
                "invalid config field `custom_streams[{index}]`: the name {:?} is taken",
                def.name
            )));
        }
        defs.push(def);
    }
    // A second registration (the demo's two runs) must agree with the first.
    let first = REGISTERED.get_or_init(|| defs.clone());
    let names = |d: &[StreamDef]| d.iter().map(|d| d.name).collect::<Vec<_>>();
    if names(first) != names(&defs) {
        return Err(Error::system(
            "custom streams cannot change within one process",
        ));
    }
    Ok(())
}

fn leak(text: &str) -> &'static str {
    Box::leak(text.to_string().into_boxed_str())
}

fn leak_all(items: &[String]) -> &'static [&'static str] {
    Box::leak(
        items
            .iter()
            .map(|s| leak(s))
            .collect::<Vec<_>>()
            .into_boxed_slice(),
    )
}

fn definition(stream: &CustomStream) -> Result<StreamDef> {
    let name_ok = !stream.name.is_empty()
        && stream
            .name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !name_ok {
        return Err(Error::config(format!(
            "name {:?} must be lowercase letters, digits and underscores",
            stream.name
        )));
    }
    // Only paths on the API host: the token must not travel elsewhere.
    if !stream.path.starts_with('/') || stream.path.contains("://") || stream.path.contains('?') {
        return Err(Error::config(format!(
            "path {:?} must be a path such as /contact_lists, without host or query \
             (put query parameters in `params`)",
            stream.path
        )));
    }
    let cursor = match (&stream.cursor_field, &stream.cursor_param) {
        (Some(field), Some(param)) => Some(Cursor {
            field: leak(field),
            param: leak(param),
            end_param: "",
        }),
        (None, None) => None,
        _ => {
            return Err(Error::config(
                "cursor_field and cursor_param go together: set both or neither",
            ))
        }
    };
    let schema = match &stream.json_schema {
        Some(schema) if schema.is_object() => schema.clone(),
        Some(_) => return Err(Error::config("json_schema must be a JSON object")),
        None => default_schema(stream),
    };
    let params: Vec<(&'static str, &'static str)> = stream
        .params
        .iter()
        .map(|(k, v)| (leak(k), leak(v)))
        .collect();
    Ok(StreamDef {
        name: leak(&stream.name),
        path: leak(&stream.path),
        records: stream
            .records_key
            .as_deref()
            .map_or(Records::Auto, |key| Records::Key(leak(key))),
        primary_key: leak_all(&stream.primary_key),
        cursor,
        page_size: stream.page_size,
        params: Box::leak(params.into_boxed_slice()),
        schema: leak(&schema.to_string()),
        ..BASE
    })
}

/// Any object, with the key and cursor fields declared.
fn default_schema(stream: &CustomStream) -> Value {
    let mut properties = serde_json::Map::new();
    for key in &stream.primary_key {
        properties.insert(key.clone(), json!({}));
    }
    if let Some(field) = &stream.cursor_field {
        properties.insert(
            field.clone(),
            json!({"type": ["null", "string"], "format": "date-time"}),
        );
    }
    json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "additionalProperties": true,
        "properties": properties,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn custom(value: Value) -> CustomStream {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn definitions_are_checked() {
        let good = custom(json!({"name": "lists_again", "path": "/contact_lists",
            "records_key": "lists", "primary_key": ["list_id"], "page_size": 500}));
        let def = definition(&good).unwrap();
        assert_eq!(def.records, Records::Key("lists"));
        assert_eq!(def.primary_key, ["list_id"]);
        for (bad, needle) in [
            (json!({"name": "Bad Name", "path": "/x"}), "lowercase"),
            (
                json!({"name": "x", "path": "https://evil.example/x"}),
                "without host",
            ),
            (
                json!({"name": "x", "path": "/x", "cursor_field": "updated_at"}),
                "together",
            ),
        ] {
            let err = definition(&custom(bad)).unwrap_err();
            assert!(err.message.contains(needle), "{err}");
        }
    }
}
