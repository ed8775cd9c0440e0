//! What the lower layers (auth, HTTP) have to tell a person: retries,
//! warnings, token events. They report through this narrow handle; the
//! command that set up the run decides where it goes (LOG messages for
//! Airbyte, stderr for Singer).

use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
}

type Report = dyn Fn(Level, &str) + Send + Sync;

/// A cheap, clonable handle for human-readable events.
#[derive(Clone)]
pub struct Diagnostics(Arc<Report>);

impl Diagnostics {
    pub fn new(report: impl Fn(Level, &str) + Send + Sync + 'static) -> Self {
        Diagnostics(Arc::new(report))
    }

    pub fn info(&self, message: &str) {
        (self.0)(Level::Info, message)
    }

    pub fn warn(&self, message: &str) {
        (self.0)(Level::Warn, message)
    }

    pub fn log(&self, level: Level, message: &str) {
        (self.0)(level, message)
    }
}
