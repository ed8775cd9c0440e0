//! The protocol boundary. The engine reports what happens through
//! [`Output`]; each protocol (Airbyte here) turns that into its own
//! messages on stdout. Nothing else in the connector writes to stdout.

pub mod airbyte;
pub mod airbyte_state;
pub mod catalog;
pub mod deletions;
pub mod singer;
pub mod spec;

use std::borrow::Cow;
use std::io::{self, Write};

use serde_json::Value;

pub use crate::diagnostics::Level;

/// The exit code of a run whose stdout was closed under it (`| head`, a
/// reader that went away): what a shell reports for a process a closed pipe
/// stopped (128 + SIGPIPE).
pub const CLOSED_STDOUT_EXIT: i32 = 141;

/// Every write of protocol messages ends here. stdout is the reader's only
/// channel, so a write that fails means nothing written later can reach it:
/// a closed pipe ends the process quietly with [`CLOSED_STDOUT_EXIT`];
/// any other failure (a full disk under a redirect) is said on stderr and
/// ends it with 1. Never a panic, and never a sync that goes on reading
/// into the void.
pub fn written(result: io::Result<()>) {
    let Err(error) = result else {
        return;
    };
    if error.kind() == io::ErrorKind::BrokenPipe {
        std::process::exit(CLOSED_STDOUT_EXIT);
    }
    to_stderr(&format!(
        "CRITICAL cannot write protocol messages to stdout: {error}; stopping"
    ));
    std::process::exit(1);
}

/// Writes `text` to stdout and flushes it, through [`written`].
pub fn print(text: &str) {
    let mut out = io::stdout().lock();
    written(out.write_all(text.as_bytes()).and_then(|()| out.flush()));
}

/// A line for a person on stderr. A closed stderr has no one to tell, so
/// it is no reason to panic (as `eprintln!` would).
pub fn to_stderr(line: &str) {
    let _ = writeln!(io::stderr().lock(), "{line}");
}

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
