//! Airbyte protocol messages (v0), one JSON object per line.

use std::io::Write;
use std::sync::{Mutex, OnceLock};

use serde::Serialize;
use serde_json::{json, Value};

use super::catalog::Selected;
use super::deletions::{self, Deletions};
use super::{written, Level, Output, RecordRef, StreamStatus};
use crate::error::Error;

fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Writes Airbyte messages to any writer (stdout for the CLI, a file for the demo).
pub struct AirbyteWriter<W: Write + Send> {
    out: Mutex<W>,
    /// The streams whose deleted records get `_ab_cdc_deleted_at`, once the
    /// read knows them ([`AirbyteWriter::mark_deletions`]).
    deletions: OnceLock<Deletions>,
}

impl<W: Write + Send> AirbyteWriter<W> {
    pub fn new(out: W) -> Self {
        AirbyteWriter {
            out: Mutex::new(out),
            deletions: OnceLock::new(),
        }
    }

    /// From now on, the deleted records of `streams` carry
    /// `_ab_cdc_deleted_at` (as their discovered schema declares).
    pub fn mark_deletions(&self, streams: &[Selected]) {
        let _ = self.deletions.set(Deletions::new(
            deletions::AIRBYTE,
            streams.iter().map(|s| &*s.def),
        ));
    }

    /// Writes one message; `flush` for messages a reader must see at once.
    fn write<T: Serialize>(&self, message: &T, flush: bool) {
        let mut out = self.out.lock().unwrap_or_else(|poison| poison.into_inner());
        written(
            serde_json::to_writer(&mut *out, message)
                .map_err(std::io::Error::from)
                .and_then(|()| out.write_all(b"\n"))
                .and_then(|()| if flush { out.flush() } else { Ok(()) }),
        );
    }

    pub fn message(&self, message: &Value) {
        self.write(message, true);
    }

    pub fn connection_status(&self, result: &Result<(), Error>) {
        let status = match result {
            Ok(()) => json!({"status": "SUCCEEDED"}),
            Err(e) => json!({"status": "FAILED", "message": e.message}),
        };
        self.message(&json!({"type": "CONNECTION_STATUS", "connectionStatus": status}));
    }

    pub fn error_trace(&self, error: &Error, stream: Option<&str>) {
        let mut trace = json!({
            "message": error.message,
            "internal_message": error.message,
            "failure_type": error.failure.as_airbyte(),
        });
        if let Some(name) = stream {
            trace["stream_descriptor"] = json!({"name": name});
        }
        self.message(&json!({"type": "TRACE", "trace": {
            "type": "ERROR", "emitted_at": now_millis() as f64, "error": trace}}));
    }
}

/// A RECORD message, `{"type":"RECORD","record":{"stream":…,"data":…,
/// "emitted_at":…}}`, written piece by piece so that a raw record goes out
/// as the API sent it, without being parsed into a value and written again.
fn write_record<W: Write + ?Sized>(
    out: &mut W,
    stream: &str,
    record: RecordRef<'_>,
    emitted_at: i64,
    deletions: &Deletions,
) -> std::io::Result<()> {
    out.write_all(br#"{"type":"RECORD","record":{"stream":"#)?;
    serde_json::to_writer(&mut *out, stream)?;
    out.write_all(br#","data":"#)?;
    deletions.write_json(out, stream, record)?;
    writeln!(out, r#","emitted_at":{emitted_at}}}}}"#)
}

impl<W: Write + Send> Output for AirbyteWriter<W> {
    fn record(&self, stream: &str, record: RecordRef<'_>) {
        let emitted_at = now_millis();
        let deletions = self.deletions.get().unwrap_or(&deletions::NONE);
        let mut out = self.out.lock().unwrap_or_else(|poison| poison.into_inner());
        written(write_record(
            &mut *out, stream, record, emitted_at, deletions,
        ));
    }

    fn state(&self, stream: &str, state: &Value, records: u64) {
        self.message(&json!({"type": "STATE", "state": {
            "type": "STREAM",
            "stream": {"stream_descriptor": {"name": stream}, "stream_state": state},
            "sourceStats": {"recordCount": records as f64},
        }}));
    }

    fn stream_status(&self, stream: &str, status: StreamStatus) {
        let status = match status {
            StreamStatus::Started => "STARTED",
            StreamStatus::Running => "RUNNING",
            StreamStatus::Complete => "COMPLETE",
            StreamStatus::Incomplete => "INCOMPLETE",
        };
        self.message(&json!({"type": "TRACE", "trace": {
            "type": "STREAM_STATUS",
            "emitted_at": now_millis() as f64,
            "stream_status": {"stream_descriptor": {"name": stream}, "status": status},
        }}));
    }

    fn log(&self, level: Level, message: &str) {
        let level = match level {
            Level::Info => "INFO",
            Level::Warn => "WARN",
        };
        self.message(&json!({"type": "LOG", "log": {"level": level, "message": message}}));
    }

    fn estimate(&self, stream: &str, rows: u64) {
        self.message(&json!({"type": "TRACE", "trace": {
            "type": "ESTIMATE",
            "emitted_at": now_millis() as f64,
            "estimate": {"name": stream, "type": "STREAM", "row_estimate": rows},
        }}));
    }

    fn config_updated(&self, config: &Value) {
        self.message(&json!({"type": "CONTROL", "control": {
            "type": "CONNECTOR_CONFIG",
            "emitted_at": now_millis() as f64,
            "connectorConfig": {"config": config},
        }}));
    }

    fn flush(&self) {
        let mut out = self.out.lock().unwrap_or_else(|poison| poison.into_inner());
        written(out.flush());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Raw and parsed records give the same message, the one serde wrote
    /// for a struct `{type, record: {stream, data, emitted_at}}` before.
    #[test]
    fn record_messages_are_the_same_raw_or_parsed() {
        let text = r#"{"b":1,"a":"x\u0001é","n":null,"f":1.5,"l":[true,{}]}"#;
        let value: Value = serde_json::from_str(text).unwrap();
        let mut raw = Vec::new();
        write_record(
            &mut raw,
            "con\"tacts",
            RecordRef::Raw(text),
            7,
            &deletions::NONE,
        )
        .unwrap();
        let mut parsed = Vec::new();
        write_record(
            &mut parsed,
            "con\"tacts",
            RecordRef::Value(&value),
            7,
            &deletions::NONE,
        )
        .unwrap();
        assert_eq!(raw, parsed);
        let expected = serde_json::to_string(&json!({"type": "RECORD", "record": {
            "stream": "con\"tacts", "data": value, "emitted_at": 7}}))
        .unwrap();
        assert_eq!(String::from_utf8(raw).unwrap(), expected + "\n");
    }
}
