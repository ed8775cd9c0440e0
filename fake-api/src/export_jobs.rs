//! Contact export jobs in progress, and what `/__sandbox/exports` scripted for the next
//! ones (`exports` serves them).

use super::data::Data;
use std::collections::BTreeMap;
use uuid::Uuid;

/// Polls an export takes to complete unless `/__sandbox/exports` says otherwise.
pub(crate) const DEFAULT_POLLS: u32 = 2;

/// A column of an export file.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExportColumn {
    /// A contact field, by its export name (`exports::FIELDS`).
    Field(&'static str),
    /// A custom field: index into `Data::custom_fields`.
    Custom(usize),
}

/// One export job.
pub(crate) struct Job {
    /// The file's columns and their header text.
    pub columns: Vec<(ExportColumn, String)>,
    /// Indices into `Data::contacts`, chosen when the export was created.
    pub rows: Vec<usize>,
    pub polls: u32,
    pub polls_needed: u32,
    /// `completed`, or the failure state it was scripted to end in.
    pub outcome: &'static str,
}

/// What `/__sandbox/exports` scripted for the exports to come.
#[derive(Default)]
pub(crate) struct Script {
    pub polls: Option<u32>,
    /// Header text of the later exports' columns, by field name or custom field label,
    /// instead of the default spelling; `None` leaves the column out.
    pub headers: BTreeMap<String, Option<String>>,
    /// (end state, how many exports still end so).
    pub failing: Option<(&'static str, usize)>,
}

#[derive(Default)]
pub(crate) struct Exports {
    pub jobs: BTreeMap<Uuid, Job>,
    pub script: Script,
}

impl Exports {
    /// Moves the export `id` (if it is one) on by one poll; its new state when it moved.
    /// `GET /v3/activities/{activity_id}` calls it (and `record_poll`) before it answers.
    pub(crate) fn poll(&mut self, id: &str) -> Option<(Uuid, &'static str)> {
        let id = id.parse::<Uuid>().ok()?;
        let job = self.jobs.get_mut(&id)?;
        if job.polls >= job.polls_needed {
            return None;
        }
        job.polls += 1;
        let state = if job.polls >= job.polls_needed {
            job.outcome
        } else {
            "processing"
        };
        Some((id, state))
    }
}

/// Puts the export's bulk activity in the state `Exports::poll` moved it to.
pub(crate) fn record_poll(data: &mut Data, id: Uuid, state: &'static str) {
    let now = chrono::Utc::now().timestamp_millis();
    if let Some(b) = data.bulk_activities.iter_mut().find(|b| b.id == id) {
        b.state = state;
        if state != "processing" {
            b.finished_at = Some(now);
        }
        if state == "failed" {
            b.errors = 1;
        }
    }
}
