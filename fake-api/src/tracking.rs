//! Email tracking: whom each sent campaign activity reached and what they did with it.
//!
//! Each sent activity stores its events (sends, opens, clicks, forwards, opt-outs,
//! bounces) in the order they were recorded. Every tracking report, link report, stats
//! report, contact report, campaign summary and expected count is derived from them, so
//! they always agree. Within one activity no contact has two events at the same instant.

use std::{
    cmp::Reverse,
    collections::{BTreeMap, BTreeSet},
};

/// `device_type` values; an event whose device is `DEVICES.len()` has none recorded.
pub(crate) const DEVICES: &[&str] = &["computer", "mobile", "tablet", "other"];
/// `bounce_code` values.
pub(crate) const BOUNCE_CODES: &[&str] = &["B", "D", "F", "S", "V", "X", "Z"];
/// `opt_out_reason` values; an opt-out whose detail is `OPT_OUT_REASONS.len()` gave none.
pub(crate) const OPT_OUT_REASONS: &[&str] = &[
    "I never signed up for this mailing list.",
    "The emails are too frequent.",
    "The content is not what I expected.",
    "I am no longer interested in this service.",
];
/// Most recipients one activity is sent to, so reports stay small.
pub(crate) const MAX_RECIPIENTS: usize = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventKind {
    Send,
    Open,
    Click,
    Forward,
    Optout,
    Bounce,
}

/// One tracked action of one contact.
pub(crate) struct Event {
    pub at: i64,
    /// Index into `Data::contacts`.
    pub contact: u32,
    pub kind: EventKind,
    /// Opens and clicks: index into `DEVICES` (or `DEVICES.len()` when not captured).
    pub device: u8,
    /// Clicks: index into `Activity::links`; bounces: into `BOUNCE_CODES`; opt-outs: into
    /// `OPT_OUT_REASONS` (or its length when no reason was given).
    pub detail: u8,
}

/// A link in an activity's content.
pub(crate) struct Link {
    pub url_id: u64,
    pub url: String,
    /// Click segmentation: index of the list a click adds the contact to.
    pub list: Option<usize>,
}

/// The send of one activity and everything tracked since.
pub(crate) struct Tracking {
    pub sent_at: i64,
    pub events: Vec<Event>,
    pub abuse: u32,
}

/// Which events a tracking report lists.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum View {
    /// Every event of the kind.
    All(EventKind),
    /// The latest open of each contact that opened.
    LastOpen,
    /// The send of each contact that neither opened nor bounced.
    NotOpened,
}

/// Roles that are sent to contacts (and so have previews, send history and reports).
pub(crate) fn is_sendable(role: &str) -> bool {
    matches!(role, "primary_email" | "resend")
}

/// Events in report order: newest first, ties by contact id (contacts are sorted by id),
/// then by link.
pub(crate) fn newest_first(events: &mut [&Event]) {
    events.sort_by_key(|e| (Reverse(e.at), e.contact, e.detail));
}

impl Tracking {
    pub(crate) fn of(&self, kind: EventKind) -> impl Iterator<Item = &Event> + '_ {
        self.events.iter().filter(move |e| e.kind == kind)
    }

    pub(crate) fn has(&self, contact: u32, kind: EventKind) -> bool {
        self.of(kind).any(|e| e.contact == contact)
    }

    /// The rows of one report, newest first.
    pub(crate) fn rows(&self, view: View) -> Vec<&Event> {
        let mut rows: Vec<&Event> = match view {
            View::All(kind) => self.of(kind).collect(),
            View::LastOpen => {
                let mut last: BTreeMap<u32, &Event> = BTreeMap::new();
                for e in self.of(EventKind::Open) {
                    let latest = last.entry(e.contact).or_insert(e);
                    if latest.at < e.at {
                        *latest = e;
                    }
                }
                last.into_values().collect()
            }
            View::NotOpened => {
                let engaged: BTreeSet<u32> = self
                    .events
                    .iter()
                    .filter(|e| matches!(e.kind, EventKind::Open | EventKind::Bounce))
                    .map(|e| e.contact)
                    .collect();
                self.of(EventKind::Send)
                    .filter(|s| !engaged.contains(&s.contact))
                    .collect()
            }
        };
        newest_first(&mut rows);
        rows
    }

    /// Contacts this activity went to, in send order.
    pub(crate) fn recipients(&self) -> impl Iterator<Item = u32> + '_ {
        self.of(EventKind::Send).map(|e| e.contact)
    }

    pub(crate) fn stats(&self) -> Stats {
        let mut s = Stats {
            abuse: u64::from(self.abuse),
            ..Stats::default()
        };
        let unique = |kind| {
            let mut contacts: Vec<u32> = self.of(kind).map(|e| e.contact).collect();
            contacts.sort_unstable();
            contacts.dedup();
            contacts.len() as u64
        };
        s.sends = unique(EventKind::Send);
        s.opens = unique(EventKind::Open);
        s.clicks = unique(EventKind::Click);
        s.forwards = unique(EventKind::Forward);
        s.optouts = unique(EventKind::Optout);
        for e in &self.events {
            match e.kind {
                EventKind::Open => s.opens_all[e.device as usize] += 1,
                EventKind::Click => s.clicks_all[e.device as usize] += 1,
                EventKind::Bounce => s.bounces[e.detail as usize] += 1,
                _ => {}
            }
        }
        s
    }
}

/// Totals of one activity (or of several, added up).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stats {
    pub sends: u64,
    pub opens: u64,
    pub clicks: u64,
    pub forwards: u64,
    pub optouts: u64,
    pub abuse: u64,
    /// Non-unique opens and clicks by device (`DEVICES`, then not captured).
    pub opens_all: [u64; 5],
    pub clicks_all: [u64; 5],
    /// Unique bounces by `BOUNCE_CODES`.
    pub bounces: [u64; 7],
}

impl Stats {
    pub(crate) fn bounced(&self) -> u64 {
        self.bounces.iter().sum()
    }

    pub(crate) fn not_opened(&self) -> u64 {
        self.sends.saturating_sub(self.opens + self.bounced())
    }

    pub(crate) fn add(&mut self, o: &Stats) {
        self.sends += o.sends;
        self.opens += o.opens;
        self.clicks += o.clicks;
        self.forwards += o.forwards;
        self.optouts += o.optouts;
        self.abuse += o.abuse;
        for (a, b) in self.opens_all.iter_mut().zip(o.opens_all) {
            *a += b;
        }
        for (a, b) in self.clicks_all.iter_mut().zip(o.clicks_all) {
            *a += b;
        }
        for (a, b) in self.bounces.iter_mut().zip(o.bounces) {
            *a += b;
        }
    }
}
