//! Campaign activity children (schedules, send history, previews), email and contact
//! reports, and bulk activities. Every figure comes from the stored tracking events, so
//! reports, stats and counts agree with each other.

use super::data::{date, timestamp, Activity, Campaign, Data};
use super::error::ApiError;
use super::export_jobs::record_poll;
use super::paging::{EnumParam, ListQuery, ListSpec, Params};
use super::render;
use super::state::{Reply, Route, St};
use super::tracking::{
    is_sendable, Event, EventKind, Stats, Tracking, View, BOUNCE_CODES, DEVICES, OPT_OUT_REASONS,
};
use super::visits::Kind as PageKind;
use axum::{
    extract::{Path, RawQuery, State},
    routing::get,
    Json,
};
use serde_json::{json, Map, Value};
use std::cmp::Reverse;
use uuid::Uuid;

/// One `/reports/email_reports/{campaign_activity_id}/tracking/*` report.
pub(crate) struct Report {
    /// Paging; `path` is the route template.
    pub list: ListSpec,
    /// Stream name in `expected_counts`.
    pub stream: &'static str,
    pub activity_type: &'static str,
    pub view: View,
    /// Its enum query parameters.
    pub enums: &'static [EnumParam],
}

/// The bounces report's filter: `bounce_code`, repeated for more than one.
const BOUNCE_CODE: &[EnumParam] = &[EnumParam::single("bounce_code", BOUNCE_CODES)];

const fn report(
    name: &'static str,
    stream: &'static str,
    activity_type: &'static str,
    view: View,
) -> Report {
    // The opt-out and bounce pages require `_links`; the others omit it on the last page.
    let links_always = matches!(
        view,
        View::All(EventKind::Optout) | View::All(EventKind::Bounce)
    );
    let enums = match view {
        View::All(EventKind::Bounce) => BOUNCE_CODE,
        _ => &[],
    };
    Report {
        list: ListSpec {
            path: name,
            records_key: "tracking_activities",
            default_limit: 500,
            max_limit: 500,
            links_always,
        },
        stream,
        activity_type,
        view,
        enums,
    }
}

pub(crate) static REPORTS: [Report; 8] = [
    report(
        "/v3/reports/email_reports/{campaign_activity_id}/tracking/sends",
        "email_sends",
        "em_sends",
        View::All(EventKind::Send),
    ),
    report(
        "/v3/reports/email_reports/{campaign_activity_id}/tracking/opens",
        "email_opens",
        "em_opens",
        View::All(EventKind::Open),
    ),
    report(
        "/v3/reports/email_reports/{campaign_activity_id}/tracking/unique_opens",
        "email_unique_opens",
        "em_opens",
        View::LastOpen,
    ),
    report(
        "/v3/reports/email_reports/{campaign_activity_id}/tracking/didnotopens",
        "email_did_not_opens",
        "em_didnotopens",
        View::NotOpened,
    ),
    report(
        "/v3/reports/email_reports/{campaign_activity_id}/tracking/clicks",
        "email_clicks",
        "em_clicks",
        View::All(EventKind::Click),
    ),
    report(
        "/v3/reports/email_reports/{campaign_activity_id}/tracking/forwards",
        "email_forwards",
        "em_forwards",
        View::All(EventKind::Forward),
    ),
    report(
        "/v3/reports/email_reports/{campaign_activity_id}/tracking/optouts",
        "email_optouts",
        "em_optouts",
        View::All(EventKind::Optout),
    ),
    report(
        "/v3/reports/email_reports/{campaign_activity_id}/tracking/bounces",
        "email_bounces",
        "em_bounces",
        View::All(EventKind::Bounce),
    ),
];

static BULK: ListSpec = ListSpec {
    path: "/v3/activities",
    records_key: "activities",
    default_limit: 50,
    max_limit: 500,
    links_always: false,
};

static CONTACT_DETAILS: ListSpec = ListSpec {
    path: "/v3/reports/contact_reports/{contact_id}/activity_details",
    records_key: "tracking_activities",
    default_limit: 100,
    max_limit: 100,
    links_always: false,
};

/// Route templates and their handlers.
/// Records a full read of each stream these endpoints serve returns.
pub(crate) fn expected_counts(data: &Data) -> Vec<(&'static str, usize)> {
    let live_sendable = || data.live_sendable();
    let counts = [
        (
            "campaign_activity_schedules",
            live_sendable().filter(|a| a.scheduled_at.is_some()).count(),
        ),
        (
            "campaign_activity_send_history",
            live_sendable().map(|a| a.send_history().len()).sum(),
        ),
        ("campaign_activity_previews", live_sendable().count()),
        ("email_links", live_sendable().count()),
        ("email_campaign_stats", data.campaigns.len()),
        ("email_campaign_activity_stats", live_sendable().count()),
        ("bulk_activities", data.bulk_activities.len()),
    ];
    let reports = REPORTS.iter().map(|r| {
        let rows = data.sent().map(|(_, _, t)| t.rows(r.view).len()).sum();
        (r.stream, rows)
    });
    counts.into_iter().chain(reports).collect()
}

pub(crate) fn routes() -> Vec<Route> {
    let tracking_routes = REPORTS.iter().map(|r| {
        let handler = move |s: St, id: Path<String>, raw: RawQuery| tracking(r, s, id, raw);
        (r.list.path, r.enums, get(handler))
    });
    let mut routes: Vec<Route> = vec![
        (
            "/v3/emails/activities/{campaign_activity_id}/schedules",
            &[],
            get(schedules),
        ),
        (
            "/v3/emails/activities/{campaign_activity_id}/send_history",
            &[],
            get(send_history),
        ),
        (
            "/v3/emails/activities/{campaign_activity_id}/previews",
            &[],
            get(preview),
        ),
        (
            "/v3/reports/email_reports/{campaign_activity_id}/links",
            &[],
            get(links),
        ),
        (
            "/v3/reports/stats/email_campaigns/{campaign_ids}",
            &[],
            get(campaign_stats),
        ),
        (
            "/v3/reports/stats/email_campaign_activities/{campaign_activity_ids}",
            &[],
            get(activity_stats),
        ),
        (
            "/v3/reports/contact_reports/{contact_id}/activity_summary",
            &[],
            get(contact_summary),
        ),
        (
            "/v3/reports/contact_reports/{contact_id}/open_and_click_rates",
            &[],
            get(contact_rates),
        ),
        (
            CONTACT_DETAILS.path,
            const {
                &[EnumParam::list(
                    "tracking_activities_list",
                    TRACKING_ACTIVITIES,
                )]
            },
            get(contact_details),
        ),
        (
            BULK.path,
            const { &[EnumParam::single("state", BULK_STATES)] },
            get(bulk_activities),
        ),
        ("/v3/activities/{activity_id}", &[], get(bulk_activity)),
    ];
    routes.extend(tracking_routes);
    routes
}

fn activity_not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("Campaign activity {id} not found"))
}

/// A served activity, or 404.
fn find<'a>(data: &'a Data, id: &str) -> Result<(&'a Campaign, &'a Activity), ApiError> {
    data.activity(id).ok_or_else(|| activity_not_found(id))
}

/// A served activity of a role that is sent to contacts, or 400.
fn find_sendable<'a>(
    data: &'a Data,
    id: &str,
    what: &str,
) -> Result<(&'a Campaign, &'a Activity), ApiError> {
    let (c, a) = find(data, id)?;
    if !is_sendable(a.role) {
        return Err(ApiError::bad(format!(
            "{what} is only available for primary_email and resend activities; {id} is a {} activity",
            a.role
        )));
    }
    Ok((c, a))
}

async fn schedules(State(s): St, Path(id): Path<String>) -> Reply {
    let data = s.data();
    let (_, a) = find(&data, &id)?;
    let dates = a
        .scheduled_at
        .map(|at| json!({"scheduled_date": timestamp(at)}));
    Ok(Json(Value::Array(dates.into_iter().collect())))
}

async fn send_history(State(s): St, Path(id): Path<String>) -> Reply {
    let data = s.data();
    let (_, a) = find_sendable(&data, &id, "Send history")?;
    let lists = data
        .lists
        .iter()
        .enumerate()
        .filter(|(i, _)| a.lists & (1 << i) != 0)
        .map(|(_, l)| l.id)
        .collect::<Vec<_>>();
    let history = a
        .send_history()
        .into_iter()
        .enumerate()
        .map(|(i, (at, count, reason))| {
            json!({
                "send_id": i + 1,
                "contact_list_ids": lists,
                "segment_ids": a.segment_id.into_iter().collect::<Vec<_>>(),
                "count": count,
                "run_date": timestamp(at),
                "send_status": if reason == 0 { "COMPLETED" } else { "ERRORED" },
                "reason_code": reason,
            })
        })
        .collect();
    Ok(Json(Value::Array(history)))
}

async fn preview(State(s): St, Path(id): Path<String>) -> Reply {
    let data = s.data();
    let (c, a) = find(&data, &id)?;
    if !is_sendable(a.role) {
        return Err(ApiError::NotFound(format!(
            "No preview exists for the {} activity {id}",
            a.role
        )));
    }
    let owner = &data.account_emails[0].address;
    let links: String = a
        .links
        .iter()
        .map(|l| format!("<p><a href=\"{}\">{}</a></p>", l.url, l.url))
        .collect();
    Ok(Json(json!({
        "campaign_activity_id": a.id,
        "from_email": owner,
        "from_name": data.account.organization,
        "preheader": "Fresh ideas for the season inside.",
        // Contact variables are filled in from the account owner (Dana Whitfield).
        "preview_html_content": format!(
            "<html><body><h1>{}</h1><p>Hello Dana,</p><p>{}</p>{links}</body></html>",
            c.name, c.subject
        ),
        "preview_text_content": format!("{}\n\n{}", c.name, c.subject),
        "reply_to_email": data.account_emails[1].address,
        "subject": c.subject,
    })))
}

/// One row of a tracking report, fields in the order of the spec's `*TrackingActivity`.
fn tracking_row(data: &Data, a: &Activity, activity_type: &str, e: &Event) -> Value {
    let c = &data.contacts[e.contact as usize];
    let mut v = Map::new();
    v.insert("contact_id".into(), json!(c.id));
    v.insert("campaign_activity_id".into(), json!(a.id));
    v.insert("tracking_activity_type".into(), activity_type.into());
    v.insert("email_address".into(), c.email().into());
    v.insert("first_name".into(), c.first_name().into());
    v.insert("last_name".into(), c.last_name().into());
    match e.kind {
        EventKind::Open | EventKind::Click => {
            if let Some(device) = DEVICES.get(e.device as usize) {
                v.insert("device_type".into(), (*device).into());
            }
            if e.kind == EventKind::Click {
                let link = &a.links[e.detail as usize];
                v.insert("url_id".into(), link.url_id.to_string().into());
                v.insert("link_url".into(), link.url.clone().into());
            }
        }
        EventKind::Optout => {
            if let Some(reason) = OPT_OUT_REASONS.get(e.detail as usize) {
                v.insert("opt_out_reason".into(), (*reason).into());
            }
        }
        EventKind::Bounce => {
            v.insert("bounce_code".into(), BOUNCE_CODES[e.detail as usize].into());
            v.insert("current_email_address".into(), c.email().into());
        }
        EventKind::Send | EventKind::Forward => {}
    }
    v.insert("created_time".into(), timestamp(e.at).into());
    if let Some(deleted) = c.deleted_at {
        v.insert("deleted_at".into(), date(deleted).into());
    }
    Value::Object(v)
}

type RowFilter = Box<dyn Fn(&Event) -> bool>;

/// Row filter of the clicks (`url_id`) and bounces (`bounce_code`, repeatable) reports.
fn row_filter(report: &Report, p: &Params, a: &Activity) -> Result<RowFilter, ApiError> {
    match report.view {
        View::All(EventKind::Click) => {
            let Some(raw) = p.get("url_id") else {
                return Ok(Box::new(|_| true));
            };
            let url_id: u64 = raw
                .parse()
                .map_err(|_| ApiError::bad(format!("url_id must be an integer, got '{raw}'")))?;
            let link = a.links.iter().position(|l| l.url_id == url_id);
            Ok(Box::new(move |e| Some(e.detail as usize) == link))
        }
        View::All(EventKind::Bounce) => {
            let codes = p
                .all("bounce_code")
                .map(|code| {
                    BOUNCE_CODES.iter().position(|c| *c == code).ok_or_else(|| {
                        ApiError::bad(format!(
                            "bounce_code has invalid value '{code}'; allowed: {}",
                            BOUNCE_CODES.join(", ")
                        ))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Box::new(move |e| {
                codes.is_empty() || codes.contains(&(e.detail as usize))
            }))
        }
        _ => Ok(Box::new(|_| true)),
    }
}

/// Every tracking report: newest first, cursor-paged, empty for unsent activities.
async fn tracking(
    report: &'static Report,
    State(s): St,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Reply {
    let path = report.list.path.replace("{campaign_activity_id}", &id);
    let q = ListQuery::parse_at(&report.list, path, raw.as_deref())?;
    let data = s.data();
    let (_, a) = find(&data, &id)?;
    let keep = row_filter(report, &q.params, a)?;
    let rows = a
        .tracking
        .as_ref()
        .map(|t| t.rows(report.view))
        .unwrap_or_default();
    q.page(
        rows.iter(),
        |e| keep(e),
        |e| tracking_row(&data, a, report.activity_type, e),
        None,
    )
}

/// Distinct contacts that clicked each link of the activity.
fn unique_clicks(t: Option<&Tracking>, link: usize) -> usize {
    let mut contacts: Vec<u32> = t
        .map(|t| {
            t.events
                .iter()
                .filter(|e| e.kind == EventKind::Click && e.detail as usize == link)
                .map(|e| e.contact)
                .collect()
        })
        .unwrap_or_default();
    contacts.sort_unstable();
    contacts.dedup();
    contacts.len()
}

async fn links(State(s): St, Path(id): Path<String>, RawQuery(raw): RawQuery) -> Reply {
    let no_clicks = Params::parse(raw.as_deref().unwrap_or("")).flag("no_clicks")?;
    let data = s.data();
    let (_, a) = find_sendable(&data, &id, "The links report")?;
    let counts = a
        .links
        .iter()
        .enumerate()
        .filter_map(|(i, l)| {
            let clicks = unique_clicks(a.tracking.as_ref(), i);
            if clicks == 0 && !no_clicks {
                return None;
            }
            let mut v = json!({
                "link_url": l.url,
                "url_id": l.url_id.to_string(),
                "unique_clicks": clicks,
            });
            if let Some(list) = l.list {
                v["list_action"] = "add".into();
                v["list_id"] = json!(data.lists[list].id);
            }
            Some(v)
        })
        .collect::<Vec<_>>();
    Ok(Json(
        json!({"campaign_activity_id": a.id, "link_click_counts": counts}),
    ))
}

/// Comma-separated ids of a stats path: at most `max` (else 400), all UUIDs (else 404
/// for all), duplicates dropped.
fn stats_ids(raw: &str, what: &str, max: usize) -> Result<Vec<Uuid>, ApiError> {
    let parts: Vec<&str> = raw.split(',').map(str::trim).collect();
    if parts.len() > max {
        return Err(ApiError::bad(format!(
            "{what} accepts at most {max} ids, got {}",
            parts.len()
        )));
    }
    let mut ids = Vec::new();
    for p in parts {
        let id = Uuid::parse_str(p)
            .map_err(|_| ApiError::NotFound(format!("{what} contains an invalid id '{p}'")))?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

fn percent(n: u64, of: u64) -> f64 {
    if of == 0 {
        0.0
    } else {
        (n as f64 * 1000.0 / of as f64).round() / 10.0
    }
}

/// `StatsEmail`, or `StatsEmailActivity` (with abuse and bounces by reason) when
/// `activity`.
fn stats_json(s: &Stats, activity: bool) -> Value {
    let mut v = Map::new();
    let mut put = |k: &str, n: u64| {
        v.insert(k.into(), n.into());
    };
    // A total and one count per device type.
    let mut put_by_device = |key: &str, counts: [u64; 5]| {
        put(key, counts.iter().sum());
        for (device, n) in ["computer", "mobile", "tablet", "other", "none"]
            .iter()
            .zip(counts)
        {
            put(&format!("{key}_{device}"), n);
        }
    };
    put_by_device("em_clicks_all", s.clicks_all);
    put_by_device("em_opens_all", s.opens_all);
    put("em_bounces", s.bounced());
    put("em_clicks", s.clicks);
    put("em_forwards", s.forwards);
    put("em_not_opened", s.not_opened());
    put("em_opens", s.opens);
    put("em_optouts", s.optouts);
    put("em_sends", s.sends);
    if activity {
        put("em_abuse", s.abuse);
        for (name, code) in [
            ("blocked", 6),
            ("mailbox_full", 2),
            ("nonexistent_address", 0),
            ("other", 5),
            ("suspended", 3),
            ("undeliverable", 1),
            ("vacation", 4),
        ] {
            put(&format!("em_bounces_{name}"), s.bounces[code]);
        }
    }
    Value::Object(v)
}

fn percents_json(s: &Stats) -> Value {
    let delivered = s.sends - s.bounced();
    let opens: u64 = s.opens_all.iter().sum();
    let clicks: u64 = s.clicks_all.iter().sum();
    json!({
        "bounce": percent(s.bounced(), s.sends),
        "click": percent(s.clicks, s.opens),
        "desktop_click": percent(s.clicks_all[0], clicks),
        "desktop_open": percent(s.opens_all[0], opens),
        "did_not_open": percent(s.not_opened(), delivered),
        "mobile_click": percent(s.clicks_all[1] + s.clicks_all[2], clicks),
        "mobile_open": percent(s.opens_all[1] + s.opens_all[2], opens),
        "open": percent(s.opens, delivered),
        "unsubscribe": percent(s.optouts, delivered),
    })
}

/// When the stats last changed: the latest tracked event.
fn refreshed(t: &Tracking) -> i64 {
    t.events.iter().map(|e| e.at).max().unwrap_or(t.sent_at)
}

fn stats_error(key: &str, id: Uuid, what: &str) -> Value {
    json!({
        "error_key": key,
        "error_message": format!("Could not find any stats for {what} {id}."),
    })
}

async fn campaign_stats(State(s): St, Path(ids): Path<String>) -> Reply {
    let ids = stats_ids(&ids, "campaign_ids", 150)?;
    let data = s.data();
    let (mut results, mut errors) = (Vec::new(), Vec::new());
    for id in ids {
        let Some(c) = data.campaigns.iter().find(|c| c.id == id) else {
            let key = "reportingsvc.not_found.invalid_path_param.campaign_ids";
            errors.push(stats_error(key, id, "campaign"));
            continue;
        };
        let stats = c.stats();
        let refreshed = c
            .activities
            .iter()
            .filter_map(|a| a.tracking.as_ref().map(refreshed))
            .max()
            .unwrap_or(c.updated_at);
        results.push(json!({
            "campaign_id": c.id,
            "stats": stats_json(&stats, false),
            "percents": percents_json(&stats),
            "last_refresh_time": timestamp(refreshed),
        }));
    }
    Ok(Json(json!({"results": results, "errors": errors})))
}

async fn activity_stats(State(s): St, Path(ids): Path<String>) -> Reply {
    let ids = stats_ids(&ids, "campaign_activity_ids", 10)?;
    let data = s.data();
    let (mut results, mut errors) = (Vec::new(), Vec::new());
    for id in ids {
        let found = data.activity(&id.to_string());
        let Some((c, a)) = found.filter(|(_, a)| is_sendable(a.role)) else {
            let key = "reportingsvc.not_found.invalid_path_param.campaign_activity_ids";
            errors.push(stats_error(key, id, "campaign activity"));
            continue;
        };
        let t = a.tracking.as_ref();
        let stats = t.map(Tracking::stats).unwrap_or_default();
        results.push(json!({
            "campaign_id": c.id,
            "campaign_activity_id": a.id,
            "stats": stats_json(&stats, true),
            "last_refresh_time": timestamp(t.map_or(c.updated_at, refreshed)),
        }));
    }
    Ok(Json(json!({"results": results, "errors": errors})))
}

/// A contact's index, or 404.
fn contact(data: &Data, id: &str) -> Result<u32, ApiError> {
    data.contact_index(id)
        .ok_or_else(|| ApiError::NotFound(format!("Contact {id} not found")))
}

/// Required `start` and `end` of a contact report, `end` not before `start`.
fn date_range(p: &Params) -> Result<(i64, i64), ApiError> {
    let (start, end) = (p.iso8601("start")?, p.iso8601("end")?);
    if end < start {
        return Err(ApiError::bad("end must not be before start"));
    }
    Ok((start, end))
}

/// Per activity sent to the contact with the send in `[start, end]`: the activity, its
/// send to the contact and the contact's events; most recent send first, at most 200.
pub(crate) fn contact_activities(
    data: &Data,
    contact: u32,
    start: i64,
    end: i64,
) -> Vec<(&Activity, i64, Vec<&Event>)> {
    let mut sent: Vec<(&Activity, i64, Vec<&Event>)> = data
        .sent()
        .filter_map(|(_, a, t)| {
            let events: Vec<&Event> = t.events.iter().filter(|e| e.contact == contact).collect();
            let send = events.iter().find(|e| e.kind == EventKind::Send)?.at;
            (start..=end).contains(&send).then_some((a, send, events))
        })
        .collect();
    sent.sort_by_key(|(a, send, _)| (Reverse(*send), a.id));
    sent.truncate(200);
    sent
}

async fn contact_summary(State(s): St, Path(id): Path<String>, RawQuery(raw): RawQuery) -> Reply {
    let (start, end) = date_range(&Params::parse(raw.as_deref().unwrap_or("")))?;
    let data = s.data();
    let c = contact(&data, &id)?;
    let summaries: Vec<Value> = contact_activities(&data, c, start, end)
        .into_iter()
        .map(|(a, send, events)| {
            let n = |kind| events.iter().filter(|e| e.kind == kind).count();
            json!({
                "campaign_activity_id": a.id,
                "start_on": timestamp(send),
                "em_bounces": n(EventKind::Bounce),
                "em_clicks": n(EventKind::Click),
                "em_forwards": n(EventKind::Forward),
                "em_opens": n(EventKind::Open),
                "em_sends": n(EventKind::Send),
                "em_unsubscribes": n(EventKind::Optout),
            })
        })
        .collect();
    Ok(Json(json!({
        "contact_id": data.contacts[c as usize].id,
        "campaign_activities": summaries,
    })))
}

/// Longest `start`..`end` of `open_and_click_rates`: the contract says 5 years, without
/// saying how it counts them; the strict reading is five years of 365 days (1,825 days),
/// so five calendar years that hold a 29 February are already too long.
const MAX_RATES_RANGE_MS: i64 = 5 * 365 * 86_400_000;

async fn contact_rates(State(s): St, Path(id): Path<String>, RawQuery(raw): RawQuery) -> Reply {
    let (start, end) = date_range(&Params::parse(raw.as_deref().unwrap_or("")))?;
    if end - start > MAX_RATES_RANGE_MS {
        return Err(ApiError::bad(
            "start to end spans more than 5 years (1825 days), the longest range allowed",
        ));
    }
    let data = s.data();
    let c = contact(&data, &id)?;
    let sent = contact_activities(&data, c, start, end);
    let rate = |kind| {
        let hits = sent
            .iter()
            .filter(|(_, _, events)| events.iter().any(|e| e.kind == kind))
            .count();
        percent(hits as u64, sent.len() as u64) / 100.0
    };
    Ok(Json(json!({
        "contact_id": data.contacts[c as usize].id,
        "included_activities_count": sent.len(),
        "average_open_rate": rate(EventKind::Open),
        "average_click_rate": rate(EventKind::Click),
    })))
}

/// A tracking activity type of the contact activity details report: an email event or a
/// landing page one (the contract lists `p_contact_open`, `p_contact_click`,
/// `p_contact_add` and `p_contact_update`; no SMS opt-in).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum ActivityType {
    Email(EventKind),
    Page(PageKind),
}

/// `tracking_activities_list` / `tracking_activity_type` values, in report order.
pub(crate) const CONTACT_ACTIVITY_TYPES: &[(&str, ActivityType)] = &[
    ("em_sends", ActivityType::Email(EventKind::Send)),
    ("em_opens", ActivityType::Email(EventKind::Open)),
    ("em_clicks", ActivityType::Email(EventKind::Click)),
    ("em_bounces", ActivityType::Email(EventKind::Bounce)),
    ("em_optouts", ActivityType::Email(EventKind::Optout)),
    ("em_forwards", ActivityType::Email(EventKind::Forward)),
    ("p_contact_open", ActivityType::Page(PageKind::Open)),
    ("p_contact_click", ActivityType::Page(PageKind::Click)),
    ("p_contact_add", ActivityType::Page(PageKind::Add)),
    ("p_contact_update", ActivityType::Page(PageKind::Update)),
];

/// One row of the contact activity details report.
pub(crate) struct ContactEvent {
    pub activity: Uuid,
    pub at: i64,
    pub kind: &'static str,
}

/// The contact's events of the given types over every email activity and landing page,
/// newest first.
pub(crate) fn contact_events(
    data: &Data,
    contact: u32,
    types: &[ActivityType],
) -> Vec<ContactEvent> {
    let name = |t: ActivityType| {
        CONTACT_ACTIVITY_TYPES
            .iter()
            .find(|(_, k)| *k == t)
            .map_or("", |(n, _)| *n)
    };
    let emails = data
        .sent()
        .flat_map(|(_, a, t)| t.events.iter().map(move |e| (a.id, e)))
        .filter(|(_, e)| e.contact == contact && types.contains(&ActivityType::Email(e.kind)))
        .map(|(activity, e)| ContactEvent {
            activity,
            at: e.at,
            kind: name(ActivityType::Email(e.kind)),
        });
    let pages = data
        .landing_pages
        .iter()
        .flat_map(|p| p.events.iter().map(move |e| (p.activity, e)))
        .filter(|(_, e)| e.contact == contact && types.contains(&ActivityType::Page(e.kind)))
        .map(|(activity, e)| ContactEvent {
            activity,
            at: e.at,
            kind: name(ActivityType::Page(e.kind)),
        });
    let mut rows: Vec<ContactEvent> = emails.chain(pages).collect();
    rows.sort_by_key(|r| (Reverse(r.at), r.activity, r.kind));
    rows
}

/// `tracking_activities_list` values (the contract's enum), landing-page ones included.
const TRACKING_ACTIVITIES: &[&str] = &[
    "em_sends",
    "em_opens",
    "em_clicks",
    "em_bounces",
    "em_optouts",
    "em_forwards",
    "p_contact_open",
    "p_contact_click",
    "p_contact_add",
    "p_contact_update",
];

/// The requested activity types: `tracking_activities_list` (comma-separated) or
/// `tracking_activity_type` (repeated, or comma-separated), which are mutually
/// exclusive; `None` when neither is given.
pub(crate) fn activity_types(p: &Params) -> Result<Option<Vec<ActivityType>>, ApiError> {
    let names: Vec<&'static str> = CONTACT_ACTIVITY_TYPES.iter().map(|(n, _)| *n).collect();
    let repeated: Vec<&str> = p.all("tracking_activity_type").collect();
    let picked: Vec<&str> = match (p.get("tracking_activities_list"), repeated.is_empty()) {
        (Some(_), false) => {
            return Err(ApiError::bad(
                "tracking_activities_list and tracking_activity_type are mutually exclusive",
            ))
        }
        (Some(_), true) => p.csv("tracking_activities_list", &names)?,
        (None, false) => {
            let mut picked = Vec::new();
            for value in repeated.iter().flat_map(|v| v.split(',')) {
                let value = value.trim();
                let known = names.iter().find(|n| **n == value).ok_or_else(|| {
                    ApiError::bad(format!(
                        "tracking_activity_type: {value} is not one of {}",
                        names.join(", ")
                    ))
                })?;
                picked.push(*known);
            }
            picked
        }
        (None, true) => return Ok(None),
    };
    Ok(Some(
        CONTACT_ACTIVITY_TYPES
            .iter()
            .filter(|(n, _)| picked.contains(n))
            .map(|(_, k)| *k)
            .collect(),
    ))
}

async fn contact_details(State(s): St, Path(id): Path<String>, RawQuery(raw): RawQuery) -> Reply {
    let path = CONTACT_DETAILS.path.replace("{contact_id}", &id);
    let q = ListQuery::parse_at(&CONTACT_DETAILS, path, raw.as_deref())?;
    let types = activity_types(&q.params)?.ok_or_else(|| {
        ApiError::bad("tracking_activities_list or tracking_activity_type is required")
    })?;
    let data = s.data();
    let c = contact(&data, &id)?;
    let rows = contact_events(&data, c, &types);
    let contact_id = data.contacts[c as usize].id;
    q.page(
        rows.iter(),
        |_| true,
        |r| {
            json!({
                "contact_id": contact_id,
                "campaign_activity_id": r.activity,
                "created_time": timestamp(r.at),
                "tracking_activity_type": r.kind,
            })
        },
        None,
    )
}

/// `state` values of `GET /activities` (the contract's enum: no `initialized`).
const BULK_STATES: &[&str] = &[
    "processing",
    "completed",
    "cancelled",
    "failed",
    "timed_out",
];

async fn bulk_activities(State(s): St, RawQuery(raw): RawQuery) -> Reply {
    let q = ListQuery::parse(&BULK, raw.as_deref())?;
    let state = q.params.one_of("state", BULK_STATES)?;
    let data = s.data();
    q.page(
        data.bulk_activities.iter(),
        |b| state.is_none_or(|st| st == b.state),
        render::bulk_activity,
        None,
    )
}

async fn bulk_activity(State(s): St, Path(id): Path<String>) -> Reply {
    if let Some((export, state)) = s.exports().poll(&id) {
        record_poll(&mut s.data_mut(), export, state);
    }
    let data = s.data();
    data.bulk_activities
        .iter()
        .find(|b| b.id.to_string() == id)
        .map(|b| Json(render::bulk_activity(b)))
        .ok_or_else(|| ApiError::NotFound(format!("Activity {id} not found")))
}
