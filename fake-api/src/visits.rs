//! Landing page records: each page's visitor events, and the rows each of its reports
//! holds.

use std::{cmp::Reverse, collections::BTreeMap};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    Open,
    Click,
    Add,
    Update,
    SmsOptIn,
}

impl Kind {
    pub(crate) fn activity_type(self) -> &'static str {
        match self {
            Kind::Open => "p_contact_open",
            Kind::Click => "p_contact_click",
            Kind::Add => "p_contact_add",
            Kind::Update => "p_contact_update",
            Kind::SmsOptIn => "p_contact_sms_optin",
        }
    }
}

pub(crate) struct Event {
    pub at: i64,
    /// Index into `Data::contacts`.
    pub contact: u32,
    pub kind: Kind,
    /// Opens and clicks: index into `DEVICES`.
    pub device: u8,
    /// Clicks: index into `LandingPage::links`.
    pub link: u8,
}

pub(crate) struct LandingPage {
    pub activity: Uuid,
    /// (url_id, url)
    pub links: Vec<(u64, String)>,
    pub events: Vec<Event>,
}

/// Which rows a report holds.
#[derive(Clone, Copy)]
pub(crate) enum View {
    /// Every event of the kind.
    All(Kind),
    /// The latest event of the kind per contact (and per link, for clicks).
    Unique(Kind),
}

impl LandingPage {
    /// The report's rows, newest first (ties by contact, then link).
    pub(crate) fn rows(&self, view: View) -> Vec<&Event> {
        let mut rows: Vec<&Event> = match view {
            View::All(kind) => self.events.iter().filter(|e| e.kind == kind).collect(),
            View::Unique(kind) => {
                let mut latest: BTreeMap<(u32, u8), &Event> = BTreeMap::new();
                for e in self.events.iter().filter(|e| e.kind == kind) {
                    let link = if kind == Kind::Click { e.link } else { 0 };
                    let slot = latest.entry((e.contact, link)).or_insert(e);
                    if e.at > slot.at {
                        *slot = e;
                    }
                }
                latest.into_values().collect()
            }
        };
        rows.sort_by_key(|e| (Reverse(e.at), e.contact, e.link));
        rows
    }
}
