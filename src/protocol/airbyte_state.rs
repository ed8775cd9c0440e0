//! Incoming state, in every shape Airbyte clients send: a list of per-stream
//! state messages (nulls, unknown keys and repeated streams allowed; the last
//! one wins), a GLOBAL message, the legacy single blob (bare or wrapped in a
//! LEGACY message), an empty list, or no file at all. What is accepted but
//! worth a word (an empty file, the legacy blob, state of a stream this
//! source does not have) comes back as notes for the log.

use std::path::Path;

use serde_json::Value;

use super::Level;
use crate::engine::StreamStates;
use crate::error::{Error, Result};
use crate::streams::Registry;

/// What a person should know about an accepted state, for the log.
pub type Notes = Vec<(Level, String)>;

pub fn load(path: Option<&Path>, registry: &Registry, notes: &mut Notes) -> Result<StreamStates> {
    let Some(path) = path else {
        return Ok(StreamStates::new());
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::config(format!("cannot read state file {}: {e}", path.display())))?;
    if text.trim().is_empty() {
        notes.push((
            Level::Warn,
            format!(
                "state file {} is empty: every stream is read as if for the first time \
                 (pass no --state, or `[]`, to say so)",
                path.display()
            ),
        ));
        return Ok(StreamStates::new());
    }
    let value: Value = serde_json::from_str(&text).map_err(|e| {
        Error::config(format!(
            "state file {} is not valid JSON: {e}",
            path.display()
        ))
    })?;
    let mut found = Vec::new();
    let states = parse(value, &mut found)
        .map_err(|e| e.context(format!("state file {}", path.display())))?;
    for (level, note) in found {
        notes.push((level, format!("state file {}: {note}", path.display())));
    }
    for name in states.keys() {
        if registry.find(name).is_none() {
            notes.push((
                Level::Warn,
                format!(
                    "state file {} holds state of stream {name:?}, which this source does not \
                     have (renamed, removed, or a custom stream no longer in the config): ignored",
                    path.display()
                ),
            ));
        }
    }
    Ok(states)
}

pub fn parse(value: Value, notes: &mut Notes) -> Result<StreamStates> {
    let mut states = StreamStates::new();
    match value {
        Value::Null => {}
        Value::Array(messages) => {
            for message in messages {
                read_message(message, &mut states, notes)?;
            }
        }
        Value::Object(ref map) if map.contains_key("type") || map.contains_key("stream") => {
            read_message(value, &mut states, notes)?
        }
        Value::Object(map) => read_legacy(map, &mut states, notes)?,
        other => {
            return Err(Error::config(format!(
                "state must be a list of state messages or an object, not {other}"
            )))
        }
    }
    Ok(states)
}

fn read_message(message: Value, states: &mut StreamStates, notes: &mut Notes) -> Result<()> {
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
        return read_message(Value::Object(inner), states, notes);
    }
    let kind = message.get("type").and_then(Value::as_str).unwrap_or("");
    match kind {
        "STREAM" | "" if message.get("stream").is_some_and(Value::is_object) => {
            read_stream_state(message.remove("stream").unwrap_or_default(), states)
        }
        "STREAM" => Err(Error::config(match message.get("stream") {
            None => "a STREAM state message has no `stream` object: it needs \
                     {\"stream\": {\"stream_descriptor\": {\"name\": …}, \"stream_state\": {…}}}"
                .to_string(),
            Some(other) => format!(
                "the `stream` of a STREAM state message must be an object with \
                 stream_descriptor and stream_state, not {other}"
            ),
        })),
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
        "LEGACY" | "" => match message.remove("data") {
            Some(Value::Object(data)) => read_legacy(data, states, notes),
            None | Some(Value::Null) => Ok(()),
            Some(other) => Err(Error::config(format!(
                "the data of a LEGACY state message must be an object, not {other}"
            ))),
        },
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

/// The legacy blob, `{stream: state, …}`: still read, and said to be.
fn read_legacy(
    blob: serde_json::Map<String, Value>,
    states: &mut StreamStates,
    notes: &mut Notes,
) -> Result<()> {
    if blob.is_empty() {
        return Ok(());
    }
    notes.push((
        Level::Info,
        "the state is the legacy single object of every stream's state; it is read per \
         stream, and this run writes per-stream STATE messages"
            .to_string(),
    ));
    for (name, state) in blob {
        match state {
            Value::Object(_) => {
                states.insert(name, state);
            }
            // As a per-stream null: start over.
            Value::Null => {}
            other => {
                return Err(Error::config(format!(
                    "in the legacy state, the state of stream {name:?} must be an object, not \
                     {other}"
                )))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse_quietly(value: Value) -> Result<StreamStates> {
        parse(value, &mut Vec::new())
    }

    fn stream(name: &str, state: Value) -> Value {
        json!({"type": "STREAM", "stream": {"stream_descriptor": {"name": name, "namespace": null},
            "stream_state": state}, "sourceStats": {"recordCount": 3.0}, "extra": 1})
    }

    #[test]
    fn per_stream_list_last_wins_and_null_clears() {
        let states = parse_quietly(json!([
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
        assert!(parse_quietly(json!([])).unwrap().is_empty());
        assert!(parse_quietly(json!({})).unwrap().is_empty());
        assert!(parse_quietly(Value::Null).unwrap().is_empty());
        let legacy = parse_quietly(json!({"contacts": {"updated_at": "x"}})).unwrap();
        assert_eq!(legacy["contacts"]["updated_at"], "x");
        let wrapped =
            parse_quietly(json!([{"type": "LEGACY", "data": {"contacts": {"updated_at": "y"}}}]))
                .unwrap();
        assert_eq!(wrapped["contacts"]["updated_at"], "y");
        let global = parse_quietly(json!([{"type": "GLOBAL", "global": {"shared_state": null,
            "stream_states": [{"stream_descriptor": {"name": "contacts"},
            "stream_state": {"updated_at": "z"}}]}}]))
        .unwrap();
        assert_eq!(global["contacts"]["updated_at"], "z");
        let message = parse_quietly(json!([{"type": "STATE", "state": stream("contacts",
            json!({"updated_at": "w"}))}]))
        .unwrap();
        assert_eq!(message["contacts"]["updated_at"], "w");
    }

    /// An empty file, the legacy blob and state of a stream the source does
    /// not have are accepted, each with a note that names it; a plain
    /// per-stream state gets none.
    #[test]
    fn accepted_oddities_are_named() {
        let registry = Registry::built_in();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let load_text = |text: &str| {
            std::fs::write(&path, text).unwrap();
            let mut notes = Vec::new();
            let states = load(Some(&path), &registry, &mut notes).unwrap();
            let notes: Vec<(Level, String)> = notes;
            (states, notes)
        };
        let (states, notes) = load_text(" \n");
        assert!(states.is_empty());
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert_eq!(notes[0].0, Level::Warn);
        assert!(notes[0].1.contains("is empty"), "{notes:?}");

        let (states, notes) = load_text(r#"{"contacts": {"cursor": "2025-01-01T00:00:00Z"}}"#);
        assert_eq!(states.len(), 1);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].1.contains("legacy"), "{notes:?}");

        let unknown = json!([stream("contatcs", json!({"cursor": "x"}))]).to_string();
        let (_, notes) = load_text(&unknown);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert_eq!(notes[0].0, Level::Warn);
        assert!(notes[0].1.contains("\"contatcs\""), "{notes:?}");

        let plain = json!([stream("contacts", json!({"cursor": "x"}))]).to_string();
        assert!(load_text(&plain).1.is_empty());
        assert!(load_text("[]").1.is_empty());
        assert!(load_text("{}").1.is_empty());
    }

    #[test]
    fn bad_shapes_are_named() {
        assert!(parse_quietly(json!(3))
            .unwrap_err()
            .message
            .contains("state must be"));
        for (message, needle) in [
            (json!({"type": "STREAM"}), "has no `stream` object"),
            (json!({"type": "STREAM", "stream": 5}), "must be an object"),
        ] {
            let error = parse_quietly(json!([message])).unwrap_err();
            assert!(error.message.contains(needle), "{error}");
            assert!(!error.message.contains("unknown"), "{error}");
        }
        assert!(parse_quietly(json!([{"type": "BOGUS"}]))
            .unwrap_err()
            .message
            .contains("BOGUS"));
        assert!(parse_quietly(json!([stream("contacts", json!(5))]))
            .unwrap_err()
            .message
            .contains("contacts"));
        // A single stream's state handed over as the whole state.
        let error = parse_quietly(json!({"cursor": "2025-01-01T00:00:00Z"})).unwrap_err();
        assert!(error.message.contains("\"cursor\""), "{error}");
        assert!(error.message.contains("must be an object"), "{error}");
    }
}
