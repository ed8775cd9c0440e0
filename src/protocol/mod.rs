//! The protocol boundary. The engine reports what happens through
//! [`Output`]; each protocol (Airbyte here) turns that into its own
//! messages on stdout. Nothing else in the connector writes to stdout.

pub mod airbyte;
pub mod airbyte_state;
pub mod catalog;
pub mod singer;
pub mod spec;

use serde_json::Value;

pub use crate::diagnostics::Level;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamStatus {
    Started,
    Running,
    Complete,
    Incomplete,
}

/// Where a sync's events go. Implementations serialise writes themselves, so
/// concurrent streams can share one `Output`.
pub trait Output: Send + Sync {
    fn record(&self, stream: &str, record: &Value);
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
