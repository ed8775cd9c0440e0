//! Incoming state, in every shape Airbyte clients send: a list of per-stream
//! state messages (nulls, unknown keys and repeated streams allowed; the last
//! one wins), a GLOBAL message, the legacy single blob (bare or wrapped in a
//! LEGACY message), an empty list, or no file at all.

use std::path::Path;

use serde_json::Value;

use crate::engine::StreamStates;
use crate::error::{Error, Result};

pub fn load(path: Option<&Path>) -> Result<StreamStates> {
    let Some(path) = path else {
        return Ok(StreamStates::new());
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::config(format!("cannot read state file {}: {e}", path.display())))?;
    if text.trim().is_empty() {
        return Ok(StreamStates::new());
    }
    let value: Value = serde_json::from_str(&text).map_err(|e| {
        Error::config(format!(
            "state file {} is not valid JSON: {e}",
            path.display()
        ))
    })?;
    parse(value).map_err(|e| e.context(format!("state file {}", path.display())))
}

pub fn parse(value: Value) -> Result<StreamStates> {
    let mut states = StreamStates::new();
    match value {
        Value::Null => {}
        Value::Array(messages) => {
            for message in messages {
                read_message(message, &mut states)?;
            }
        }
        Value::Object(ref map) if map.contains_key("type") || map.contains_key("stream") => {
            read_message(value, &mut states)?
        }
        Value::Object(map) => read_legacy(map, &mut states),
        other => {
            return Err(Error::config(format!(
                "state must be a list of state messages or an object, not {other}"
            )))
        }
    }
    Ok(states)
}

fn read_message(message: Value, states: &mut StreamStates) -> Result<()> {
    let Value::Object(mut message) = message else {
        return match message {
            Value::Null => Ok(()),
            other => Err(Error::config(format!(
                "a state message must be an object, not {other}"
            ))),
        };
    };
    // Airbyte wraps messages read back from a sync: {"type":"STATE","state":{…}}.
    if let Some(Value::Object(inner)) = message.remove("state") {
        return read_message(Value::Object(inner), states);
    }
    let kind = message.get("type").and_then(Value::as_str).unwrap_or("");
    match kind {
        "STREAM" | "" if message.get("stream").is_some_and(Value::is_object) => {
            read_stream_state(message.remove("stream").unwrap_or_default(), states)
        }
        "GLOBAL" => {
            let streams = message
                .get_mut("global")
                .and_then(|g| g.get_mut("stream_states"))
                .map(Value::take);
            if let Some(Value::Array(streams)) = streams {
                for stream in streams {
                    read_stream_state(stream, states)?;
                }
            }
            Ok(())
        }
        "LEGACY" | "" => {
            if let Some(Value::Object(data)) = message.remove("data") {
                read_legacy(data, states);
            }
            Ok(())
        }
        other => Err(Error::config(format!(
            "unknown state message type {other:?} (expected STREAM, GLOBAL or LEGACY)"
        ))),
    }
}

fn read_stream_state(stream: Value, states: &mut StreamStates) -> Result<()> {
    let name = stream
        .get("stream_descriptor")
        .and_then(|d| d.get("name"))
        .and_then(Value::as_str)
        .ok_or_else(|| Error::config("a STREAM state lacks stream_descriptor.name"))?
        .to_string();
    match stream.get("stream_state") {
        Some(Value::Object(blob)) => {
            states.insert(name, Value::Object(blob.clone()));
        }
        // A null state means "start over", as if the stream had none.
        None | Some(Value::Null) => {
            states.remove(&name);
        }
        Some(other) => {
            return Err(Error::config(format!(
                "stream_state of stream {name} must be an object, not {other}"
            )))
        }
    }
    Ok(())
}

fn read_legacy(blob: serde_json::Map<String, Value>, states: &mut StreamStates) {
    for (name, state) in blob {
        if state.is_object() {
            states.insert(name, state);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stream(name: &str, state: Value) -> Value {
        json!({"type": "STREAM", "stream": {"stream_descriptor": {"name": name, "namespace": null},
            "stream_state": state}, "sourceStats": {"recordCount": 3.0}, "extra": 1})
    }

    #[test]
    fn per_stream_list_last_wins_and_null_clears() {
        let states = parse(json!([
            stream("contacts", json!({"updated_at": "a"})),
            null,
            stream("contacts", json!({"updated_at": "b"})),
            stream("email_campaigns", json!({"updated_at": "c"})),
            stream("email_campaigns", Value::Null),
        ]))
        .unwrap();
        assert_eq!(states.len(), 1);
        assert_eq!(states["contacts"]["updated_at"], "b");
    }

    #[test]
    fn legacy_global_and_empty_shapes() {
        assert!(parse(json!([])).unwrap().is_empty());
        assert!(parse(json!({})).unwrap().is_empty());
        assert!(parse(Value::Null).unwrap().is_empty());
        let legacy = parse(json!({"contacts": {"updated_at": "x"}})).unwrap();
        assert_eq!(legacy["contacts"]["updated_at"], "x");
        let wrapped =
            parse(json!([{"type": "LEGACY", "data": {"contacts": {"updated_at": "y"}}}])).unwrap();
        assert_eq!(wrapped["contacts"]["updated_at"], "y");
        let global = parse(json!([{"type": "GLOBAL", "global": {"shared_state": null,
            "stream_states": [{"stream_descriptor": {"name": "contacts"},
            "stream_state": {"updated_at": "z"}}]}}]))
        .unwrap();
        assert_eq!(global["contacts"]["updated_at"], "z");
        let message = parse(json!([{"type": "STATE", "state": stream("contacts",
            json!({"updated_at": "w"}))}]))
        .unwrap();
        assert_eq!(message["contacts"]["updated_at"], "w");
    }

    #[test]
    fn bad_shapes_are_named() {
        assert!(parse(json!(3))
            .unwrap_err()
            .message
            .contains("state must be"));
        assert!(parse(json!([{"type": "BOGUS"}]))
            .unwrap_err()
            .message
            .contains("BOGUS"));
        assert!(parse(json!([stream("contacts", json!(5))]))
            .unwrap_err()
            .message
            .contains("contacts"));
    }
}
