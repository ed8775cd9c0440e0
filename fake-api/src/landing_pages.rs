//! Landing pages and their reports (`/reports/landing_pages/campaign_details/{id}/p_*`).
//!
//! A landing page is known by its `campaign_activity_id` only: no documented endpoint
//! lists landing pages or says how a client finds that id (the contract's activity
//! roles are primary_email, permalink and resend), so no `/emails` campaign or activity
//! leads to one here either; a client must be told the ids (the sandbox's
//! `connector_config` names them in `landing_page_activity_ids`). The records are in
//! `visits`; `generate` makes them.

use super::data::{timestamp, Contact, Data};
use super::error::ApiError;
use super::paging::{ListQuery, ListSpec};
use super::state::{Reply, Route, St};
use super::tracking::DEVICES;
use super::visits::{Event, Kind, LandingPage, View};
use axum::{
    extract::{Path, RawQuery, State},
    routing::get,
};
use serde_json::{json, Map, Value};

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

pub(crate) fn routes() -> Vec<Route> {
    REPORTS
        .iter()
        .map(|r| {
            let handler = move |s: St, id: Path<String>, raw: RawQuery| serve(r, s, id, raw);
            (r.list.path, &[] as &[_], get(handler))
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
    let page = data
        .landing_pages
        .iter()
        .find(|p| p.activity.to_string() == id)
        .ok_or_else(|| match data.activity(&id) {
            Some((_, a)) => ApiError::bad(format!(
                "Landing page reports are only available for landing page activities; {id} is a {} activity",
                a.role
            )),
            None => ApiError::NotFound(format!("Campaign activity {id} not found")),
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
