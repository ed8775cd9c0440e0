//! The protocol boundary. The engine reports what happens through
//! [`Output`]; each protocol (Airbyte here) turns that into its own
//! messages on stdout. Nothing else in the connector writes to stdout.

pub mod airbyte;
pub mod airbyte_state;
pub mod catalog;
pub mod singer;
pub mod spec;

use std::borrow::Cow;
use std::io::{self, Write};

use serde_json::Value;

pub use crate::diagnostics::Level;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamStatus {
    Started,
    Running,
    Complete,
    Incomplete,
}

/// A record on its way to the writer: the API's JSON text of it, passed
/// through unparsed, or a value built or changed by the connector.
#[derive(Debug, Clone, Copy)]
pub enum RecordRef<'a> {
    /// A JSON object exactly as `serde_json` would write it as a [`Value`]
    /// (compact, keys unique and in order, strings and numbers in its
    /// spelling), so writing it as is gives the same bytes as parsing and
    /// writing it again. Only the engine makes these, from records it
    /// checked (`engine::raw`).
    Raw(&'a str),
    Value(&'a Value),
}

impl<'a> RecordRef<'a> {
    /// The record as a value: parsed, for a raw one.
    pub fn to_value(self) -> Cow<'a, Value> {
        match self {
            RecordRef::Raw(text) => Cow::Owned(
                serde_json::from_str(text).expect("raw records are JSON the engine checked"),
            ),
            RecordRef::Value(value) => Cow::Borrowed(value),
        }
    }

    /// Writes the record as compact JSON.
    pub fn write_json<W: Write + ?Sized>(self, out: &mut W) -> io::Result<()> {
        match self {
            RecordRef::Raw(text) => out.write_all(text.as_bytes()),
            RecordRef::Value(value) => serde_json::to_writer(out, value).map_err(io::Error::from),
        }
    }
}

impl<'a> From<&'a Value> for RecordRef<'a> {
    fn from(value: &'a Value) -> Self {
        RecordRef::Value(value)
    }
}

/// Where a sync's events go. Implementations serialise writes themselves, so
/// concurrent streams can share one `Output`.
pub trait Output: Send + Sync {
    fn record(&self, stream: &str, record: RecordRef<'_>);
    /// A stream's state checkpoint; `records` counts the records emitted for
    /// this stream since its previous checkpoint.
    fn state(&self, stream: &str, state: &Value, records: u64);
    fn stream_status(&self, stream: &str, status: StreamStatus);
    fn log(&self, level: Level, message: &str);
    /// How many records the stream is expected to emit this run, where the
    /// API says (a count it reports, or stats).
    fn estimate(&self, stream: &str, rows: u64);
    /// The token endpoint rotated the refresh token: `config` is the full new
    /// config, to be persisted before the new token is relied on.
    fn config_updated(&self, config: &Value);
    /// Makes everything written so far visible to the reader.
    fn flush(&self);
}
