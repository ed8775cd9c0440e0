//! Contact exports: `POST /v3/activities/contact_exports` starts an export activity
//! (listed by `/v3/activities` like any bulk activity), `GET /v3/activities/{id}` moves
//! it on by one state per poll (initialized → processing → … → completed), and
//! `GET /v3/contact_exports/{file_export_id}` serves the finished file as CSV. The file
//! holds the contacts chosen when the export was created, rendered like `/v3/contacts`
//! renders them. `POST /__sandbox/exports` scripts the next exports: how many polls
//! they take, the state they end in (`failed`, `cancelled`, `timed_out`) and how their
//! headers are spelled. While 1,000 bulk activities wait (initialized or processing), a new
//! export gets 429.
//!
//! As the export guide says, an export without `fields` holds every contact field,
//! custom fields included (notes, source name and the SMS fields among them). The
//! contract has no enum for `fields`: any name is accepted, and the only request
//! refused for its fields is the one the guide calls invalid (email opt-in or opt-out
//! fields without `email_address`). What the API does with a name that is no field is
//! not documented: the fake leaves it out of the file. Neither are the header names
//! (API-FACTS): the fake writes each field name in words, capitalised
//! (`email_address` → `Email Address`), and each custom field's label.

use super::data::{BulkActivity, Contact, Data, Permission, BULK_KINDS};
use super::error::{ApiError, QUEUED_ACTIVITIES_LIMIT};
use super::export_jobs::{ExportColumn, Job, DEFAULT_POLLS};
use super::render;
use super::state::{Route, Shared, St};
use axum::{
    extract::{Path, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use uuid::Uuid;

/// The contact fields of an export, in the order of the file's columns (custom fields
/// follow): the fields an older third-party description of the API enumerated, and
/// those the export guide adds (notes, source name, SMS number, consent date and status).
pub(crate) const FIELDS: &[&str] = &[
    "first_name",
    "last_name",
    "contact_id",
    "email_address",
    "email_lists",
    "phone_number",
    "company_name",
    "job_title",
    "social_profiles",
    "website",
    "street",
    "city",
    "state",
    "zip",
    "country",
    "anniversary",
    "birthday",
    "birthday_day",
    "birthday_month",
    "created_at",
    "updated_at",
    "email_permission",
    "email_optin",
    "email_optin_source",
    "email_optin_date",
    "email_optout_date",
    "email_optout_source",
    "email_optout_reason",
    "notes",
    "source_name",
    "sms_number",
    "sms_consent_date",
    "sms_status",
];

/// Fields that need `email_address` in the same export (the guide says so).
const NEED_EMAIL: &[&str] = &[
    "email_optin_source",
    "email_optin_date",
    "email_optout_source",
    "email_optout_date",
    "email_optout_reason",
];

/// A field name as the file's header spells it by default: words, capitalised.
pub(crate) fn default_header(field: &str) -> String {
    field
        .split('_')
        .map(|word| {
            let mut chars = word.chars();
            match chars.next() {
                Some(first) => first.to_uppercase().chain(chars).collect(),
                None => String::new(),
            }
        })
        .collect::<Vec<String>>()
        .join(" ")
}

/// Index of `export_contacts` in `BULK_KINDS`.
fn export_kind() -> usize {
    BULK_KINDS
        .iter()
        .position(|(name, _)| *name == "export_contacts")
        .expect("export_contacts is a bulk kind")
}

pub(crate) fn routes() -> Vec<Route> {
    vec![
        ("/v3/activities/contact_exports", &[], post(create)),
        ("/v3/contact_exports/{file_export_id}", &[], get(file)),
    ]
}

pub(crate) fn control_routes() -> Router<Arc<Shared>> {
    Router::new().route("/__sandbox/exports", post(script))
}

/// Records a default export (every field, no filter) holds: the live contacts.
pub(crate) fn expected_counts(data: &Data) -> Vec<(&'static str, usize)> {
    let live = data.contacts.iter().filter(|c| c.deleted_at.is_none());
    vec![("contacts_export", live.count())]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScriptRequest {
    /// Polls each later export takes to complete (at least 1).
    #[serde(default)]
    polls: Option<u32>,
    /// The state the next `count` exports end in instead of `completed`.
    #[serde(default)]
    fail: Option<String>,
    #[serde(default = "one")]
    count: usize,
    /// Header text of the later exports' columns, by field name or custom field label
    /// (`null` leaves the column out); replaces what an earlier script said.
    #[serde(default)]
    headers: Option<BTreeMap<String, Option<String>>>,
}

fn one() -> usize {
    1
}

async fn script(
    State(s): St,
    Json(req): Json<ScriptRequest>,
) -> Result<Json<Value>, (StatusCode, String)> {
    let mut exports = s.exports();
    if let Some(polls) = req.polls {
        if polls == 0 {
            return Err((StatusCode::BAD_REQUEST, "polls must be at least 1".into()));
        }
        exports.script.polls = Some(polls);
    }
    if let Some(state) = req.fail {
        let state = ["failed", "cancelled", "timed_out"]
            .into_iter()
            .find(|s| *s == state)
            .ok_or((
                StatusCode::BAD_REQUEST,
                "fail must be failed, cancelled or timed_out".to_string(),
            ))?;
        exports.script.failing = Some((state, req.count));
    }
    if let Some(headers) = req.headers {
        exports.script.headers = headers;
    }
    Ok(Json(json!({"ok": true})))
}

/// The request body (`ContactsExport`).
#[derive(Deserialize)]
struct ExportRequest {
    #[serde(default)]
    contact_ids: Option<Vec<String>>,
    #[serde(default)]
    list_ids: Option<Vec<String>>,
    #[serde(default)]
    segment_id: Option<i64>,
    #[serde(default)]
    fields: Option<Vec<String>>,
    #[serde(default)]
    status: Option<String>,
}

/// Bulk activities still waiting to finish (`initialized` or `processing`).
fn queued(data: &Data) -> usize {
    data.bulk_activities
        .iter()
        .filter(|b| matches!(b.state, "initialized" | "processing"))
        .count()
}

async fn create(State(s): St, body: axum::body::Bytes) -> Result<Response, ApiError> {
    let req: ExportRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad(format!("The request body is not valid: {e}")))?;
    let fields = req.fields.unwrap_or_default();
    // Taken now: `file` holds the exports while it reads the data.
    let headers = s.exports().script.headers.clone();
    if !fields.iter().any(|f| f == "email_address")
        && fields.iter().any(|f| NEED_EMAIL.contains(&f.as_str()))
    {
        return Err(ApiError::bad(
            "email_address must be exported to export email opt-in and opt-out fields",
        ));
    }
    let sources = [
        req.contact_ids.is_some(),
        req.list_ids.is_some(),
        req.segment_id.is_some(),
    ];
    if sources.iter().filter(|s| **s).count() > 1 {
        return Err(ApiError::bad(
            "contact_ids, list_ids and segment_id are mutually exclusive",
        ));
    }
    if req.contact_ids.as_ref().is_some_and(|ids| ids.len() > 500) {
        return Err(ApiError::bad("contact_ids takes at most 500 contacts"));
    }
    if req.list_ids.as_ref().is_some_and(|ids| ids.len() > 50) {
        return Err(ApiError::bad("list_ids takes at most 50 lists"));
    }
    let status = match req.status.as_deref() {
        None => None,
        Some(s @ ("active" | "unsubscribed" | "removed")) => Some(s.to_string()),
        Some(other) => {
            return Err(ApiError::bad(format!(
                "status must be active, unsubscribed or removed, not {other}"
            )))
        }
    };
    let now = chrono::Utc::now().timestamp_millis();
    let mut data = s.data_mut();
    if queued(&data) >= QUEUED_ACTIVITIES_LIMIT {
        return Err(ApiError::QueueFull);
    }
    let list_bits = match &req.list_ids {
        None => None,
        Some(ids) => {
            let mut bits = 0u16;
            for id in ids {
                let i = data
                    .lists
                    .iter()
                    .position(|l| l.id.to_string() == *id)
                    .ok_or_else(|| ApiError::bad(format!("unknown list {id}")))?;
                bits |= 1 << i;
            }
            Some(bits)
        }
    };
    let segment = match req.segment_id {
        None => None,
        Some(id) => Some(
            data.segments
                .iter()
                .position(|seg| seg.id == id)
                .ok_or_else(|| ApiError::bad(format!("unknown segment {id}")))?,
        ),
    };
    let rows: Vec<usize> = data
        .contacts
        .iter()
        .enumerate()
        .filter(|(_, c)| match status.as_deref() {
            None => c.deleted_at.is_none(),
            Some("active") => c.is_active(),
            Some("unsubscribed") => {
                c.deleted_at.is_none() && c.permission == Permission::Unsubscribed
            }
            _ => c.deleted_at.is_some(),
        })
        .filter(|(_, c)| {
            req.contact_ids
                .as_ref()
                .is_none_or(|ids| ids.iter().any(|id| *id == c.id.to_string()))
        })
        .filter(|(_, c)| list_bits.is_none_or(|bits| c.lists & bits != 0))
        .filter(|(_, c)| segment.is_none_or(|i| data.segments[i].contains(c)))
        .map(|(i, _)| i)
        .collect();
    let id = Uuid::new_v4();
    let activity = BulkActivity {
        id,
        kind: export_kind(),
        state: "initialized",
        created_at: now,
        started_at: now,
        finished_at: None,
        items: rows.len() as u32,
        errors: 0,
    };
    let body = render::bulk_activity(&activity);
    data.bulk_activities.insert(0, activity);
    let columns = columns(&data, &fields, &headers);
    drop(data);
    let mut exports = s.exports();
    let outcome = match &mut exports.script.failing {
        Some((state, left)) if *left > 0 => {
            *left -= 1;
            *state
        }
        _ => "completed",
    };
    let polls_needed = exports.script.polls.unwrap_or(DEFAULT_POLLS);
    exports.jobs.insert(
        id,
        Job {
            columns,
            rows,
            polls: 0,
            polls_needed,
            outcome,
        },
    );
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// The file's columns for the requested `fields` (every field and custom field when
/// none), with their headers: the default spelling, or what `/__sandbox/exports` said.
fn columns(
    data: &Data,
    fields: &[String],
    headers: &BTreeMap<String, Option<String>>,
) -> Vec<(ExportColumn, String)> {
    let custom = |name: &str| {
        data.custom_fields
            .iter()
            .position(|f| f.label == name || render::custom_field_name(f) == name)
    };
    let picked: Vec<ExportColumn> = if fields.is_empty() {
        FIELDS
            .iter()
            .map(|f| ExportColumn::Field(f))
            .chain((0..data.custom_fields.len()).map(ExportColumn::Custom))
            .collect()
    } else {
        let mut picked = Vec::new();
        for name in fields {
            let column = match FIELDS.iter().find(|f| **f == name.as_str()) {
                Some(field) => Some(ExportColumn::Field(field)),
                None => custom(name).map(ExportColumn::Custom),
            };
            if let Some(column) = column.filter(|c| !picked.contains(c)) {
                picked.push(column);
            }
        }
        picked
    };
    picked
        .into_iter()
        .filter_map(|column| {
            let (key, default) = match column {
                ExportColumn::Field(field) => (field.to_string(), default_header(field)),
                ExportColumn::Custom(i) => {
                    let label = data.custom_fields[i].label;
                    (label.to_string(), label.to_string())
                }
            };
            match headers.get(&key) {
                Some(None) => None,
                Some(Some(header)) => Some((column, header.clone())),
                None => Some((column, default)),
            }
        })
        .collect()
}

/// `GET /v3/contact_exports/{file_export_id}`: the CSV of a completed export.
async fn file(State(s): St, Path(id): Path<String>) -> Result<Response, ApiError> {
    let missing = || ApiError::NotFound(format!("No export file {id}"));
    let key = id.parse::<Uuid>().map_err(|_| missing())?;
    let exports = s.exports();
    let job = exports.jobs.get(&key).ok_or_else(missing)?;
    if job.polls < job.polls_needed || job.outcome != "completed" {
        return Err(missing());
    }
    let data = s.data();
    let csv = render_csv(&data, &job.columns, &job.rows);
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"contacts-{id}.csv\""),
            ),
        ],
        csv,
    )
        .into_response())
}

/// The file: a header row, then one row per contact, CRLF line ends.
pub(crate) fn render_csv(
    data: &Data,
    columns: &[(ExportColumn, String)],
    rows: &[usize],
) -> String {
    let mut out = String::new();
    let header: Vec<String> = columns.iter().map(|(_, h)| quote(h)).collect();
    out.push_str(&header.join(","));
    out.push_str("\r\n");
    for &i in rows {
        let c = &data.contacts[i];
        let contact = render::contact(data, c, render::CONTACT_INCLUDES);
        let cells: Vec<String> = columns
            .iter()
            .map(|(column, _)| quote(&cell(data, c, &contact, *column)))
            .collect();
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    out
}

/// One column of a contact as the file writes it; empty when the contact has none.
fn cell(data: &Data, c: &Contact, contact: &Value, column: ExportColumn) -> String {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let field = match column {
        ExportColumn::Field(field) => field,
        ExportColumn::Custom(i) => {
            let id = data.custom_fields[i].id.to_string();
            return contact["custom_fields"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|f| f["custom_field_id"] == id.as_str())
                .map(|f| text(&f["value"]))
                .unwrap_or_default();
        }
    };
    let email = &contact["email_address"];
    let address = &contact["street_addresses"][0];
    let sms = render::sms_channel(c);
    let consent = &sms["sms_channel_consents"][0];
    match field {
        "email_address" => text(&email["address"]),
        "email_lists" => data
            .lists
            .iter()
            .enumerate()
            .filter(|(i, _)| c.lists & (1 << i) != 0)
            .map(|(_, l)| l.name)
            .collect::<Vec<_>>()
            .join(", "),
        "phone_number" => text(&contact["phone_numbers"][0]["phone_number"]),
        "street" | "city" | "state" | "country" => text(&address[field]),
        "zip" => text(&address["postal_code"]),
        "email_permission" => text(&email["permission_to_send"]),
        "email_optin" => {
            let opted_in = matches!(c.permission, Permission::Implicit | Permission::Explicit);
            (if opted_in { "yes" } else { "no" }).to_string()
        }
        "email_optin_source" => text(&email["opt_in_source"]),
        "email_optin_date" => text(&email["opt_in_date"]),
        "email_optout_source" => text(&email["opt_out_source"]),
        "email_optout_date" => text(&email["opt_out_date"]),
        "email_optout_reason" => text(&email["opt_out_reason"]),
        // Every note, newest last, one a line (a quoted cell with line breaks).
        "notes" => contact["notes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|n| text(&n["content"]))
            .collect::<Vec<_>>()
            .join("\n"),
        "source_name" => match text(&contact["create_source"]).as_str() {
            "Contact" => "Website sign-up form".to_string(),
            _ => "Added by the account".to_string(),
        },
        "sms_number" => text(&sms["sms_address"]),
        "sms_consent_date" => text(&consent["opt_in_date"]),
        "sms_status" => text(&consent["sms_consent_permission"]),
        "social_profiles" | "website" | "birthday" => String::new(),
        other => text(&contact[other]),
    }
}

/// A CSV cell, quoted when it holds a comma, a quote or a line break (RFC 4180).
fn quote(cell: &str) -> String {
    if cell.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", cell.replace('"', "\"\""))
    } else {
        cell.to_string()
    }
}
