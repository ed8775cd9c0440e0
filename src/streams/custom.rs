//! User-defined streams (`custom_streams` in the config): any GET endpoint of
//! the V3 API, read by the same engine as the built-in streams — the
//! equivalent of other products' "make an API call" module.

use serde_json::{json, Value};

use super::{Cursor, Records, StreamDef};
use crate::config::CustomStream;
use crate::error::{Error, Result};

/// The stream definition of a custom stream, checked.
pub fn definition(stream: &CustomStream) -> Result<StreamDef> {
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
    let mut def = StreamDef::new(&stream.name, &stream.path);
    def.records = match &stream.records_key {
        Some(key) => Records::Key(key.clone()),
        None => Records::ArrayOrObject,
    };
    def.primary_key = stream.primary_key.clone();
    def.page_size = stream.page_size;
    def.params = stream.params.clone().into_iter().collect();
    def.cursor = match (&stream.cursor_field, &stream.cursor_param) {
        (Some(field), Some(param)) => Some(Cursor {
            end_param: stream.cursor_end_param.clone(),
            ..Cursor::new(field, param)
        }),
        (None, None) if stream.cursor_end_param.is_none() => None,
        _ => {
            return Err(Error::config(
                "cursor_field and cursor_param go together (cursor_end_param needs both): \
                 set both or neither",
            ))
        }
    };
    def.schema = match &stream.json_schema {
        Some(schema) if schema.is_object() => schema.clone(),
        Some(_) => return Err(Error::config("json_schema must be a JSON object")),
        None => default_schema(stream),
    };
    Ok(def)
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
            "records_key": "lists", "primary_key": ["list_id"], "page_size": 500,
            "cursor_field": "updated_at", "cursor_param": "after", "cursor_end_param": "before"}));
        let def = definition(&good).unwrap();
        assert_eq!(def.records, Records::Key("lists".into()));
        assert_eq!(def.primary_key, ["list_id"]);
        assert_eq!(def.cursor.unwrap().end_param.as_deref(), Some("before"));
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
            (
                json!({"name": "x", "path": "/x", "cursor_end_param": "before"}),
                "together",
            ),
        ] {
            let err = definition(&custom(bad)).unwrap_err();
            assert!(err.message.contains(needle), "{err}");
        }
    }
}
