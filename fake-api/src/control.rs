//! `/__sandbox/*`: unauthenticated routes that let tests change data, script failures,
//! revoke credentials and inspect the sandbox.

use super::endpoints;
use super::error::ApiError;
use super::generate::MutationRequest;
use super::generate_engagement::EngagementChange;
use super::limits::Fault;
use super::paging::Params;
use super::reports;
use super::state::Shared;
use axum::{
    extract::{RawQuery, State},
    http::StatusCode,
    routing::{get, post},
    Json, Router,
};
use chrono::SecondsFormat;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::sync::Arc;

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/__sandbox/mutate", post(mutate))
        .route("/__sandbox/faults", post(add_fault))
        .route("/__sandbox/revoke", post(revoke))
        .route(
            "/__sandbox/expire_access_tokens",
            post(expire_access_tokens),
        )
        .route("/__sandbox/reset_quota", post(reset_quota))
        .route("/__sandbox/clock", get(clock).post(advance_clock))
        .route("/__sandbox/state", get(state))
        .route("/__sandbox/contact_reports", get(contact_reports))
        .route("/__sandbox/ground_truth", get(ground_truth))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MutateRequest {
    /// Personal-details updates (the only contact change that moves `updated_at`).
    #[serde(default)]
    contacts: usize,
    /// Live subscribed contacts that opt out.
    #[serde(default)]
    unsubscribe_contacts: usize,
    /// Live unsubscribed contacts that opt back in.
    #[serde(default)]
    resubscribe_contacts: usize,
    /// Live contacts that join and/or leave a list.
    #[serde(default)]
    list_membership_changes: usize,
    #[serde(default)]
    delete_contacts: usize,
    #[serde(default)]
    campaigns: usize,
    /// Opens (each followed by a click) to add to the most recently sent activity.
    #[serde(default)]
    tracking: usize,
    /// Send the newest draft campaign now.
    #[serde(default)]
    send_campaign: bool,
    /// Automated journeys edited now (a new `update_date`).
    #[serde(default)]
    automations: usize,
    /// SMS campaigns sent now.
    #[serde(default)]
    sms_campaigns: usize,
    /// Registrations added now to the newest active event.
    #[serde(default)]
    registrations: usize,
}

async fn mutate(
    State(s): State<Arc<Shared>>,
    Json(req): Json<MutateRequest>,
) -> Result<Json<Value>, (StatusCode, String)> {
    let now = chrono::Utc::now().timestamp_millis();
    let request = MutationRequest {
        contacts: req.contacts,
        unsubscribes: req.unsubscribe_contacts,
        resubscribes: req.resubscribe_contacts,
        list_changes: req.list_membership_changes,
        deletes: req.delete_contacts,
        campaigns: req.campaigns,
        send_campaign: req.send_campaign,
        tracking: req.tracking,
    };
    let change = EngagementChange {
        automations: req.automations,
        sms_campaigns: req.sms_campaigns,
        registrations: req.registrations,
    };
    let (m, (automations, sms_campaigns, event)) = {
        let mut data = s.data_mut();
        let m = data
            .mutate(now, &request)
            .map_err(|e| (StatusCode::CONFLICT, e))?;
        (m, data.engagement.mutate(now + 1, &change))
    };
    let mut body = json!({
        "contacts": m.contacts,
        "unsubscribed_contacts": m.unsubscribed_contacts,
        "resubscribed_contacts": m.resubscribed_contacts,
        "list_changed_contacts": m.list_changed_contacts,
        "deleted_contacts": m.deleted_contacts,
        "campaigns": m.campaigns,
        "automations": automations,
        "sms_campaigns": sms_campaigns,
    });
    if let Some(event) = event {
        body["registrations_event"] = json!(event);
    }
    if let Some((campaign, activity)) = m.sent_campaign {
        body["sent_campaign"] = json!({"campaign_id": campaign, "campaign_activity_id": activity});
    }
    if let Some(activity) = m.tracking_activity {
        body["tracking_activity"] = json!(activity);
    }
    Ok(Json(body))
}

/// Expected counts of the contact report streams for the given contacts:
/// `?contact_ids=a,b&start=…&end=…[&tracking_activities_list=…]` (details default to
/// every activity type). `contact_activity_summary` counts `campaign_activities` entries.
async fn contact_reports(
    State(s): State<Arc<Shared>>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, (StatusCode, String)> {
    let bad = |e: ApiError| (StatusCode::BAD_REQUEST, format!("{e:?}"));
    let p = Params::parse(raw.as_deref().unwrap_or(""));
    let (start, end) = (
        p.iso8601("start").map_err(bad)?,
        p.iso8601("end").map_err(bad)?,
    );
    let kinds = reports::activity_types(&p)
        .map_err(bad)?
        .unwrap_or_else(|| {
            reports::CONTACT_ACTIVITY_TYPES
                .iter()
                .map(|(_, k)| *k)
                .collect()
        });
    let data = s.data();
    let mut per_contact = Map::new();
    let (mut summary, mut details, mut sms) = (0, 0, 0);
    for id in p.required("contact_ids").map_err(bad)?.split(',') {
        let Some(c) = data.contact_index(id.trim()) else {
            return Err((StatusCode::NOT_FOUND, format!("unknown contact {id}")));
        };
        let sent = reports::contact_activities(&data, c, start, end).len();
        let events = reports::contact_events(&data, c, &kinds).len();
        (summary, details) = (summary + sent, details + events);
        sms += super::contact_consent::history_len(&data, c);
        per_contact.insert(
            id.trim().to_owned(),
            json!({"campaign_activities": sent, "tracking_activities": events}),
        );
    }
    Ok(Json(json!({
        "expected_counts": {
            "contact_activity_summary": summary,
            "contact_activity_details": details,
            "contact_open_and_click_rates": per_contact.len(),
            "contact_sms_engagement_history": sms,
        },
        "contacts": per_contact,
    })))
}

async fn add_fault(
    State(s): State<Arc<Shared>>,
    Json(fault): Json<Fault>,
) -> Result<Json<Value>, (StatusCode, String)> {
    let Some(status) = StatusCode::from_u16(fault.status)
        .ok()
        .filter(|_| fault.count > 0)
    else {
        return Err((
            StatusCode::BAD_REQUEST,
            "count must be >= 1 and status a valid HTTP status".into(),
        ));
    };
    if fault.retry_after.is_some() && !status.is_server_error() {
        return Err((
            StatusCode::BAD_REQUEST,
            format!(
                "retry_after is for 5xx faults only, not {status}: the API sends no \
                 Retry-After with its 429s"
            ),
        ));
    }
    let mut limits = s.limits();
    limits.faults.push(fault);
    Ok(Json(json!({"pending_faults": limits.faults.len()})))
}

/// Invalidates every refresh token; a fresh one (as after re-authorising) replaces it.
async fn revoke(State(s): State<Arc<Shared>>) -> Json<Value> {
    let token = s.auth().rotate_refresh_token(s.clock.now());
    Json(json!({"refresh_token": token}))
}

/// Every API key's daily request quota is whole again, as at 00:00 UTC (which the
/// sandbox's clock also reaches, `/__sandbox/clock`).
async fn reset_quota(State(s): State<Arc<Shared>>) -> StatusCode {
    s.limits().reset_daily_quota();
    StatusCode::NO_CONTENT
}

/// `GET /__sandbox/clock`: the sandbox's time, `{"now": "…Z"}`.
async fn clock(State(s): State<Arc<Shared>>) -> Json<Value> {
    Json(json!({"now": s.clock.now().to_rfc3339_opts(SecondsFormat::Millis, true)}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AdvanceRequest {
    advance_secs: f64,
}

/// `POST /__sandbox/clock {"advance_secs": N}`: moves the sandbox's time N seconds
/// forward (a fraction is fine), so a test reaches the next 00:00 UTC (when each API
/// key's daily quota resets), an access token's expiry or a refresh token's 180 days
/// unused at once. Answers the new time as `GET` does.
async fn advance_clock(
    State(s): State<Arc<Shared>>,
    Json(req): Json<AdvanceRequest>,
) -> Result<Json<Value>, (StatusCode, String)> {
    const MAX_SECS: f64 = 10.0 * 365.0 * 86_400.0;
    if !(0.0..=MAX_SECS).contains(&req.advance_secs) {
        return Err((
            StatusCode::BAD_REQUEST,
            format!("advance_secs must be from 0 (time never runs back) to {MAX_SECS} (ten years)"),
        ));
    }
    let ms = (req.advance_secs * 1000.0).round() as i64;
    s.clock.advance(chrono::Duration::milliseconds(ms));
    Ok(clock(State(s)).await)
}

async fn expire_access_tokens(State(s): State<Arc<Shared>>) -> StatusCode {
    s.auth().expire_access_tokens();
    StatusCode::NO_CONTENT
}

async fn state(State(s): State<Arc<Shared>>) -> Json<Value> {
    let (token_requests, current_refresh_token) = {
        let auth = s.auth();
        (auth.token_requests, auth.refresh_token.clone())
    };
    let (rate_refused, quota_refused, token_refused) = {
        let limits = s.limits();
        (
            limits.rate_refused,
            limits.quota_refused,
            limits.token_refused,
        )
    };
    Json(json!({
        "expected_counts": endpoints::expected_counts(&s.data()),
        "request_counts": s.request_counts(),
        "rate_limit_429s": rate_refused,
        "daily_quota_429s": quota_refused,
        // Those the token endpoint's rate let through: a refused one is in token_429s.
        "token_requests": token_requests,
        "token_429s": token_refused,
        "current_refresh_token": current_refresh_token,
    }))
}

/// `?stream=NAME`: the primary keys of every record the API holds for the stream now.
async fn ground_truth(
    State(s): State<Arc<Shared>>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, (StatusCode, String)> {
    let p = Params::parse(raw.as_deref().unwrap_or(""));
    let stream = p
        .required("stream")
        .map_err(|e| (StatusCode::BAD_REQUEST, format!("{e:?}")))?;
    super::ground_truth::response(&s.data(), stream)
        .map(Json)
        .ok_or_else(|| {
            (
                StatusCode::NOT_FOUND,
                format!("no ground truth for {stream}"),
            )
        })
}
