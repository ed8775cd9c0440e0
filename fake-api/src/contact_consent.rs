//! Contact consent counts (`/contacts/counts`) and a contact's SMS engagement history
//! (`/contacts/sms_engagement_history/{contact_id}`), both derived from the contacts.

use super::data::{timestamp, Contact, Data, Permission, DAY_MS, SMS_PERMISSIONS};
use super::error::ApiError;
use super::paging::{EnumParam, Params};
use super::state::{Reply, Route, St};
use axum::{
    extract::{Path, RawQuery, State},
    routing::get,
    Json,
};
use serde_json::{json, Value};
use uuid::Uuid;

pub(crate) fn routes() -> Vec<Route> {
    vec![
        (
            "/v3/contacts/counts",
            const { &[EnumParam::single("include", COUNT_INCLUDES)] },
            get(counts),
        ),
        (
            "/v3/contacts/sms_engagement_history/{contact_id}",
            &[],
            get(sms_history),
        ),
    ]
}

pub(crate) fn expected_counts(_: &Data) -> Vec<(&'static str, usize)> {
    vec![("contact_consent_counts", 1)]
}

/// `include` values of `/contacts/counts` (the contract's enum; the guide's other
/// spelling, `new_subscribers`, is outside it and answered 400).
const COUNT_INCLUDES: &[&str] = &["new_subscriber"];

async fn counts(State(s): St, RawQuery(raw): RawQuery) -> Reply {
    let include = Params::parse(raw.as_deref().unwrap_or("")).one_of("include", COUNT_INCLUDES)?;
    let data = s.data();
    let live: Vec<&Contact> = data
        .contacts
        .iter()
        .filter(|c| c.deleted_at.is_none())
        .collect();
    let with = |p: Permission| live.iter().filter(|c| c.permission == p).count();
    let mut v = json!({
        "total": live.len(),
        "explicit": with(Permission::Explicit),
        "implicit": with(Permission::Implicit),
        "pending": with(Permission::PendingConfirmation),
        "unsubscribed": with(Permission::Unsubscribed),
    });
    if include.is_some() {
        let since = s.started.timestamp_millis() - 30 * DAY_MS;
        v["new_subscriber"] = live
            .iter()
            .filter(|c| c.created_at >= since && c.is_active())
            .count()
            .into();
    }
    Ok(Json(v))
}

/// Stable id derived from a contact and a salt.
fn derived_id(c: &Contact, salt: u64) -> Uuid {
    Uuid::from_u64_pair(c.seed, c.seed.rotate_left(17) ^ salt)
}

/// The contact's SMS consent changes, oldest first: consent given (or asked for) when
/// the contact was created, and for opted-out contacts the opt-out a day later.
pub(crate) fn history(c: &Contact) -> Vec<Value> {
    let channel = derived_id(c, 0x5353);
    let number = format!("617555{:04}", 100 + c.serial % 900);
    let entry = |n: u64, state: &str, action: &str, medium: &str, at: i64| {
        json!({
            "contact_id": c.id,
            "sms_channel_id": channel,
            "sms_channel_history_id": derived_id(c, 0x4849_5354 + n),
            "insert_time": timestamp(at),
            "history_details": {
                "state": state,
                "source": if medium == "MD" { "C" } else { "A" },
                "consent_type": "promotional_sms",
                "consent_action_time": timestamp(at),
                "consent_action_type": action,
                "consent_medium_type": medium,
                "source_consent_timestamp": timestamp(at),
                "source_sms_number": number,
                "advertised_frequency": 2,
                "advertised_interval": "M",
            },
        })
    };
    let created = c.created_at;
    match SMS_PERMISSIONS[c.sms as usize].0 {
        "explicit" => vec![entry(0, "E", "opt_in", "LF", created)],
        "pending_confirmation" => vec![entry(0, "P", "opt_in_requested", "LF", created)],
        _ => vec![
            entry(0, "E", "opt_in", "LF", created),
            entry(1, "O", "opt_out", "MD", created + DAY_MS),
        ],
    }
}

/// Rows the SMS history stream returns for the contact at `index`.
pub(crate) fn history_len(data: &Data, index: u32) -> usize {
    history(&data.contacts[index as usize]).len()
}

async fn sms_history(State(s): St, Path(id): Path<String>) -> Reply {
    if Uuid::parse_str(&id).is_err() {
        return Err(ApiError::bad(format!(
            "contact_id must be a UUID, got '{id}'"
        )));
    }
    let data = s.data();
    let index = data
        .contact_index(&id)
        .ok_or_else(|| ApiError::NotFound(format!("Contact {id} not found")))?;
    Ok(Json(Value::Array(history(&data.contacts[index as usize]))))
}
