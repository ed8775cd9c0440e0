//! `plan`: what a sync of the selected streams will cost in requests,
//! before any read. The [`survey`] asks the API for the counts that drive
//! the cost (contacts, campaigns and their stats, events, a sample of the
//! campaigns' activities) with as few requests as it can; the [`model`]
//! turns them into requests per stream through the stream table. Both
//! halves are estimates, and the output says how each number was derived.

pub mod model;
pub mod survey;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::{json, Value};

use crate::http::DAILY_REQUEST_QUOTA;
pub use model::{Role, Row};

/// What the survey learned from the API.
#[derive(Debug, Clone, Default)]
pub struct Survey {
    /// Records of the streams listed in full: the top-level parents of the
    /// selected streams (campaigns, segments, events, automations).
    pub listed: BTreeMap<String, Arc<Vec<Value>>>,
    /// Records a read holds, as the first page of a one-record read said
    /// (`StreamDef::count`).
    pub counted: BTreeMap<String, u64>,
    /// Optional values the API refused on the count's request, per stream.
    pub refused: BTreeMap<String, u32>,
    /// Of a stream read per parent whose records per parent only a read
    /// tells (the activities of a campaign): the records of a few parents,
    /// by the parent's key.
    pub sampled: BTreeMap<String, Vec<(String, Vec<Value>)>>,
    /// Parents sampled, of those listed, where a stream was sampled.
    pub sample: Option<(usize, usize)>,
    /// The stats record of each campaign, by its id: the counts of the
    /// reports of its activities, summed.
    pub stats: BTreeMap<String, Value>,
    /// Streams the user's privileges leave empty (the API refused them).
    pub forbidden: BTreeSet<String>,
    /// Requests the survey took.
    pub requests: u64,
}

/// The plan: rows, totals, and the budget they are measured against.
#[derive(Debug, Clone)]
pub struct Plan {
    pub rows: Vec<Row>,
    /// `max_requests_per_run`, when the config sets it.
    pub max_requests_per_run: Option<u64>,
    pub survey_requests: u64,
    /// Campaigns whose activities were read to learn their kinds, of all.
    pub sampled: Option<(usize, usize)>,
}

impl Plan {
    pub fn full_total(&self) -> u64 {
        self.rows.iter().map(|r| r.full).sum()
    }

    pub fn incremental_total(&self) -> u64 {
        self.rows.iter().map(|r| r.incremental).sum()
    }

    /// Requests one run (one a day) may spend: the config's cap, at most
    /// the daily quota.
    pub fn per_run(&self) -> u64 {
        self.max_requests_per_run
            .unwrap_or(DAILY_REQUEST_QUOTA)
            .min(DAILY_REQUEST_QUOTA)
    }

    /// Days (runs, one a day) the first sync needs.
    pub fn first_sync_days(&self) -> u64 {
        self.full_total().div_ceil(self.per_run()).max(1)
    }

    /// How the numbers were derived, for the output.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = vec![
            "Every number is an estimate: pages = ceil(records / page size) from the counts \
             the plan read; a stream whose count the API does not give is taken as one page."
                .to_string(),
            "Shared reads are counted once: parent listings (parents) and the stats that gate \
             the email reports (stats)."
                .to_string(),
            "The incremental column is a run with no change since the last; each campaign \
             changed or sent adds its activities' reads."
                .to_string(),
        ];
        if let Some((sampled, of)) = self.sampled {
            notes.push(format!(
                "Activities per campaign (resends, landing pages) are the mean of {sampled} of \
                 the {of} campaigns, read one request each; the report rows of a campaign's \
                 activities come from its stats, split evenly among them."
            ));
        }
        if self.max_requests_per_run.is_some() {
            notes.push(
                "With max_requests_per_run, each capped run lists the parents again before it \
                 reads on: the runs together spend somewhat more than one run would."
                    .into(),
            );
        }
        notes
    }

    /// The plan as a table, for people.
    pub fn text(&self) -> String {
        let width = self
            .rows
            .iter()
            .map(|r| r.stream.len())
            .max()
            .unwrap_or(6)
            .max(6);
        let mut out = format!(
            "{:<width$}  {:<7} {:>9} {:>11}  basis\n",
            "stream", "read", "full sync", "incremental"
        );
        for row in &self.rows {
            let read = match row.role {
                Role::Selected { incremental: true } => "incr",
                Role::Selected { incremental: false } => "full",
                Role::Parents => "parents",
                Role::Stats => "stats",
            };
            out += &format!(
                "{:<width$}  {:<7} {:>9} {:>11}  {}\n",
                row.stream, read, row.full, row.incremental, row.basis
            );
        }
        let (full, incremental) = (self.full_total(), self.incremental_total());
        out += &format!(
            "{:<width$}  {:<7} {:>9} {:>11}\n\n",
            "total", "", full, incremental
        );
        let quota = DAILY_REQUEST_QUOTA;
        out += &format!(
            "First sync: about {full} requests, {:.0}% of the API's daily quota of {quota} \
             requests per API key.\n",
            percent(full, quota)
        );
        let budget = match self.max_requests_per_run {
            Some(cap) => format!(
                "{} requests a run (max_requests_per_run)",
                self.per_run().min(cap)
            ),
            None => format!("{quota} requests a day (the daily quota)"),
        };
        out += &format!(
            "At {budget}, the first sync takes {} day(s), one run a day.\n",
            self.first_sync_days()
        );
        out += &format!(
            "Incremental sync with no change: about {incremental} requests ({:.0}% of the quota).\n",
            percent(incremental, quota)
        );
        out += &format!("This plan cost {} requests.\n\n", self.survey_requests);
        for note in self.notes() {
            out += &format!("- {note}\n");
        }
        out
    }

    /// The plan as JSON, for machines.
    pub fn json(&self) -> Value {
        let streams: Vec<Value> = self
            .rows
            .iter()
            .map(|row| {
                let (read, mode) = match row.role {
                    Role::Selected { incremental } => (
                        "selected",
                        Some(if incremental {
                            "incremental"
                        } else {
                            "full_refresh"
                        }),
                    ),
                    Role::Parents => ("parents", None),
                    Role::Stats => ("stats", None),
                };
                json!({
                    "stream": row.stream,
                    "read": read,
                    "sync_mode": mode,
                    "full_sync_requests": row.full,
                    "incremental_requests": row.incremental,
                    "basis": row.basis,
                })
            })
            .collect();
        json!({
            "streams": streams,
            "full_sync_requests": self.full_total(),
            "incremental_requests": self.incremental_total(),
            "daily_quota": DAILY_REQUEST_QUOTA,
            "max_requests_per_run": self.max_requests_per_run,
            "requests_per_run": self.per_run(),
            "first_sync_days": self.first_sync_days(),
            "plan_requests": self.survey_requests,
            "estimates": self.notes(),
        })
    }
}

fn percent(part: u64, whole: u64) -> f64 {
    100.0 * part as f64 / whole as f64
}
