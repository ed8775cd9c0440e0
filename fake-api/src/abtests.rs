//! A/B tests and resends to non-openers of primary email activities
//! (`/emails/activities/{id}/abtest`, `/emails/activities/{id}/non_opener_resends`).
//!
//! Campaigns with an A/B test have the type A/B Test (code 57), as creating one turns a
//! campaign's type to it; the test itself (alternate subject, test size, wait) derives
//! from the campaign id, so adding it draws nothing from the generator. A campaign's
//! resend to non-openers is its `resend` activity.

use super::data::{ab_test_kind, Activity, Campaign, CampaignStatus, Data};
use super::error::ApiError;
use super::state::{Reply, Route, St};
use axum::{
    extract::{Path, State},
    routing::get,
    Json,
};
use serde_json::{json, Value};

pub(crate) fn has_ab_test(c: &Campaign) -> bool {
    c.kind == ab_test_kind()
}

/// `GetABTestEmailCampaign200Response` of a campaign with an A/B test.
fn ab_test(c: &Campaign) -> Value {
    let b = c.id.as_bytes();
    let wait = [6, 12, 24, 48][usize::from(b[1]) % 4];
    json!({
        "alternative_subject": format!("Don't miss it: {}", c.subject),
        "test_size": 5 + u64::from(b[0]) % 46,
        "winner_wait_duration": wait,
    })
}

/// The resends to non-openers of a campaign: its `resend` activity, if any.
pub(crate) fn resends(c: &Campaign) -> Vec<Value> {
    c.activities
        .iter()
        .filter(|a| a.role == "resend")
        .map(|a| resend(c, a))
        .collect()
}

fn resend(c: &Campaign, a: &Activity) -> Value {
    let b = a.id.as_bytes();
    let mut v = json!({
        "resend_subject": format!("In case you missed it: {}", c.subject),
        "resend_request_id": (u32::from_be_bytes([b[0], b[1], b[2], b[3]]) % 900_000 + 100_000).to_string(),
    });
    // Delays of whole days come back in both units, others in minutes only.
    let minutes = 720 + u64::from(b[4]) * 10 % 13_680;
    if b[5] % 2 == 0 {
        let days = 1 + minutes / 1440;
        v["delay_days"] = days.into();
        v["delay_minutes"] = (days * 1440).into();
    } else {
        v["delay_minutes"] = minutes.into();
    }
    match &a.tracking {
        Some(t) => {
            v["resend_date"] = super::data::timestamp(t.sent_at).into();
            v["resend_status"] = "SENT".into();
        }
        None if a.scheduled_at.is_some() => v["resend_status"] = "SCHEDULED".into(),
        None => {}
    }
    v
}

/// Records a full read of the streams returns.
pub(crate) fn expected_counts(data: &Data) -> Vec<(&'static str, usize)> {
    let live = || {
        data.campaigns
            .iter()
            .filter(|c| c.status != CampaignStatus::Removed)
    };
    vec![
        (
            "email_campaign_activity_abtests",
            live().filter(|c| has_ab_test(c)).count(),
        ),
        (
            "email_campaign_activity_resends",
            live().map(|c| resends(c).len()).sum(),
        ),
    ]
}

pub(crate) fn routes() -> Vec<Route> {
    vec![
        (
            "/v3/emails/activities/{campaign_activity_id}/abtest",
            &[],
            get(get_ab_test),
        ),
        (
            "/v3/emails/activities/{campaign_activity_id}/non_opener_resends",
            &[],
            get(get_resends),
        ),
    ]
}

/// A served primary email activity, 404 for an unknown id and 400 for another role.
fn primary<'a>(data: &'a Data, id: &str, what: &str) -> Result<&'a Campaign, ApiError> {
    let (c, a) = data
        .activity(id)
        .ok_or_else(|| ApiError::NotFound(format!("Campaign activity {id} not found")))?;
    if a.role != "primary_email" {
        return Err(ApiError::bad(format!(
            "{what} are only available for primary_email activities; {id} is a {} activity",
            a.role
        )));
    }
    Ok(c)
}

async fn get_ab_test(State(s): St, Path(id): Path<String>) -> Reply {
    let data = s.data();
    let c = primary(&data, &id, "A/B tests")?;
    if !has_ab_test(c) {
        return Err(ApiError::NotFound(format!(
            "No A/B test exists for campaign activity {id}"
        )));
    }
    Ok(Json(ab_test(c)))
}

async fn get_resends(State(s): St, Path(id): Path<String>) -> Reply {
    let data = s.data();
    let c = primary(&data, &id, "Resends to non-openers")?;
    Ok(Json(Value::Array(resends(c))))
}
