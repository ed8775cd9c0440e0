//! Landing pages and their reports (`/reports/landing_pages/campaign_details/{id}/p_*`).
//!
//! A landing page is a campaign whose one activity has the role `landing_page`; the
//! spec and the docs name no role for it (their enum is primary_email, permalink,
//! resend), so this is the fake's stand-in, matched by the connector's stream table.
//! Landing pages are generated from their own random stream after everything else, so
//! the rest of the data is the same with or without them.

use super::api::{Reply, St};
use super::data::{
    between, new_uuid, timestamp, Activity, Campaign, CampaignStatus, Contact, Data, DAY_MS,
};
use super::error::ApiError;
use super::paging::{ListQuery, ListSpec};
use super::tracking::DEVICES;
use super::Shared;
use axum::{
    extract::{Path, RawQuery, State},
    routing::{get, MethodRouter},
};
use rand::{seq::index::sample, Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Map, Value};
use std::{cmp::Reverse, collections::BTreeMap, sync::Arc};
use uuid::Uuid;

pub(crate) const LANDING_PAGE_ROLE: &str = "landing_page";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    Open,
    Click,
    Add,
    Update,
    SmsOptIn,
}

impl Kind {
    fn activity_type(self) -> &'static str {
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

const PAGES: &[(&str, &[&str])] = &[
    ("Spring Workshop Signup", &["schedule", "directions"]),
    (
        "Holiday Gift Guide",
        &["bouquets", "gift-cards", "delivery"],
    ),
    ("Loyalty Club", &["rewards"]),
];

/// Adds the landing page campaigns to `campaigns` (kept newest first) and returns the
/// pages with their visitors' events.
pub(crate) fn generate(
    seed: u64,
    contacts: &[Contact],
    campaigns: &mut Vec<Campaign>,
    now: i64,
) -> Vec<LandingPage> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x001A_4D1A_6E0F_A6E5);
    let mut pages = Vec::new();
    for (i, &(name, paths)) in PAGES.iter().enumerate() {
        let created_at = between(&mut rng, now - 200 * DAY_MS, now - 30 * DAY_MS);
        let updated_at = between(&mut rng, created_at, created_at + 5 * DAY_MS);
        let activity = new_uuid(&mut rng);
        let links: Vec<(u64, String)> = paths
            .iter()
            .map(|p| {
                let url_id = rng.gen_range(1_000_000_000u64..9_000_000_000);
                (
                    url_id,
                    format!("https://harborviewflorists.example.com/{p}"),
                )
            })
            .collect();
        let events = visits(&mut rng, contacts, updated_at, now - 60_000, links.len());
        campaigns.push(Campaign {
            id: new_uuid(&mut rng),
            name: format!("{name} Landing Page #{}", i + 1),
            kind: 4,
            status: CampaignStatus::Done,
            created_at,
            updated_at,
            subject: name.to_string(),
            activities: vec![Activity {
                id: activity,
                role: LANDING_PAGE_ROLE,
                lists: 0,
                segment_id: None,
                template_id: rng.gen_range(1_000_000_000_000..2_000_000_000_000),
                permalink: format!("lp{i}{}", activity.simple()),
                links: Vec::new(),
                tracking: None,
                scheduled_at: None,
                failed: None,
            }],
        });
        pages.push(LandingPage {
            activity,
            links,
            events,
        });
    }
    campaigns.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
    pages
}

/// Visitors' events between `from` and `to`: opens (one to three), clicks, and some
/// adds, updates and SMS opt-ins.
fn visits(
    rng: &mut ChaCha8Rng,
    contacts: &[Contact],
    from: i64,
    to: i64,
    links: usize,
) -> Vec<Event> {
    let n = rng.gen_range(20..=60).min(contacts.len());
    let mut events = Vec::new();
    for i in sample(rng, contacts.len(), n).iter() {
        let contact = i as u32;
        let mut at = between(rng, from, to);
        let mut push = |rng: &mut ChaCha8Rng, kind, at| {
            events.push(Event {
                at,
                contact,
                kind,
                device: rng.gen_range(0..DEVICES.len()) as u8,
                link: rng.gen_range(0..links) as u8,
            });
        };
        for _ in 0..rng.gen_range(1..=3) {
            push(rng, Kind::Open, at);
            let later = between(rng, at, to);
            if rng.gen_bool(0.5) {
                push(rng, Kind::Click, later);
            }
            at = later;
        }
        let action = rng.gen_range(0..100);
        let kind = match action {
            0..=24 => Some(Kind::Add),
            25..=49 => Some(Kind::Update),
            _ => None,
        };
        if let Some(kind) = kind {
            push(rng, kind, at);
        }
        if rng.gen_bool(0.2) {
            push(rng, Kind::SmsOptIn, at);
        }
    }
    events
}

/// Which rows a report holds.
#[derive(Clone, Copy)]
pub(crate) enum View {
    /// Every event of the kind.
    All(Kind),
    /// The latest event of the kind per contact (and per link, for clicks).
    Unique(Kind),
}

struct Report {
    list: ListSpec,
    stream: &'static str,
    view: View,
}

const fn report(path: &'static str, stream: &'static str, view: View) -> Report {
    Report {
        list: ListSpec {
            path,
            records_key: "tracking_activities",
            default_limit: 50,
            max_limit: 500,
            links_always: false,
        },
        stream,
        view,
    }
}

static REPORTS: [Report; 6] = [
    report(
        "/v3/reports/landing_pages/campaign_details/{campaign_activity_id}/p_contact_opens",
        "landing_page_contact_opens",
        View::All(Kind::Open),
    ),
    report(
        "/v3/reports/landing_pages/campaign_details/{campaign_activity_id}/p_unique_contact_opens",
        "landing_page_unique_contact_opens",
        View::Unique(Kind::Open),
    ),
    report(
        "/v3/reports/landing_pages/campaign_details/{campaign_activity_id}/p_unique_contact_clicks",
        "landing_page_unique_contact_clicks",
        View::Unique(Kind::Click),
    ),
    report(
        "/v3/reports/landing_pages/campaign_details/{campaign_activity_id}/p_unique_contact_adds",
        "landing_page_unique_contact_adds",
        View::Unique(Kind::Add),
    ),
    report(
        "/v3/reports/landing_pages/campaign_details/{campaign_activity_id}/p_unique_contact_updates",
        "landing_page_unique_contact_updates",
        View::Unique(Kind::Update),
    ),
    report(
        "/v3/reports/landing_pages/campaign_details/{campaign_activity_id}/p_unique_contact_sms_optins",
        "landing_page_unique_contact_sms_optins",
        View::Unique(Kind::SmsOptIn),
    ),
];

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

/// Which rows the landing page report `stream` holds, or `None` for another stream.
pub(crate) fn report_view(stream: &str) -> Option<View> {
    REPORTS.iter().find(|r| r.stream == stream).map(|r| r.view)
}

pub(crate) fn expected_counts(data: &Data) -> Vec<(&'static str, usize)> {
    REPORTS
        .iter()
        .map(|r| {
            let rows = data
                .landing_pages
                .iter()
                .map(|p| p.rows(r.view).len())
                .sum();
            (r.stream, rows)
        })
        .collect()
}

pub(crate) fn routes() -> Vec<(&'static str, MethodRouter<Arc<Shared>>)> {
    REPORTS
        .iter()
        .map(|r| {
            let handler = move |s: St, id: Path<String>, raw: RawQuery| serve(r, s, id, raw);
            (r.list.path, get(handler))
        })
        .collect()
}

fn row(data: &Data, page: &LandingPage, e: &Event) -> Value {
    let c = &data.contacts[e.contact as usize];
    let mut v = Map::new();
    v.insert("contact_id".into(), json!(c.id));
    v.insert("campaign_activity_id".into(), json!(page.activity));
    v.insert(
        "tracking_activity_type".into(),
        e.kind.activity_type().into(),
    );
    v.insert("email_address".into(), c.email().into());
    v.insert("first_name".into(), c.first_name().into());
    v.insert("last_name".into(), c.last_name().into());
    if matches!(e.kind, Kind::Open | Kind::Click) {
        v.insert("device_type".into(), DEVICES[e.device as usize].into());
    }
    if e.kind == Kind::Click {
        let (url_id, url) = &page.links[e.link as usize];
        v.insert("url_id".into(), url_id.to_string().into());
        v.insert("link_url".into(), url.clone().into());
    }
    v.insert("created_time".into(), timestamp(e.at).into());
    if let Some(deleted) = c.deleted_at {
        v.insert("deleted_at".into(), super::data::date(deleted).into());
    }
    if e.kind == Kind::SmsOptIn {
        let line = 100 + c.serial % 900;
        v.insert(
            "sms_channel".into(),
            json!({
                "country_code": "US",
                "state": "E",
                "formatted_national": format!("(617) 555-{line:04}"),
                "formatted_international": format!("+1 617-555-{line:04}"),
            }),
        );
    }
    Value::Object(v)
}

/// Whether the contact's first name, last name or email contains `filter`, ignoring case.
fn matches_filter(c: &Contact, filter: &str) -> bool {
    [
        c.first_name().to_lowercase(),
        c.last_name().to_lowercase(),
        c.email(),
    ]
    .iter()
    .any(|field| field.contains(filter))
}

async fn serve(
    report: &'static Report,
    State(s): St,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Reply {
    let path = report.list.path.replace("{campaign_activity_id}", &id);
    let q = ListQuery::parse_at(&report.list, path, raw.as_deref())?;
    let filter = q.params.get("contacts_filter").map(str::to_lowercase);
    if filter.as_deref() == Some("") {
        return Err(ApiError::bad("contacts_filter must not be empty"));
    }
    let data = s.data();
    let (_, a) = data
        .activity(&id)
        .ok_or_else(|| ApiError::NotFound(format!("Campaign activity {id} not found")))?;
    let page = data
        .landing_pages
        .iter()
        .find(|p| p.activity == a.id)
        .ok_or_else(|| {
            ApiError::bad(format!(
                "Landing page reports are only available for landing page activities; {id} is a {} activity",
                a.role
            ))
        })?;
    let rows = page.rows(report.view);
    q.page(
        rows.iter(),
        |e| {
            filter
                .as_deref()
                .is_none_or(|f| matches_filter(&data.contacts[e.contact as usize], f))
        },
        |e| row(&data, page, e),
        None,
    )
}
