//! Contact exports: the activity's states across polls, the listing in `/activities`,
//! the CSV and its agreement with `/contacts`, the request's validation, and scripted
//! failures.

use super::data::SMS_PERMISSIONS;
use super::error::QUEUED_ACTIVITIES_LIMIT;
use super::exports::{default_header, FIELDS};
use super::tests::{assert_no_limit_headers, opts, start, Harness};
use super::SandboxOptions;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::BTreeMap;

impl Harness {
    async fn post_export(&self, body: Value) -> (StatusCode, Value) {
        let res = self
            .http
            .post(format!(
                "{}/activities/contact_exports",
                self.sandbox.base_url()
            ))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = res.status();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// Polls the activity until its state is not `initialized`/`processing`.
    async fn finish(&self, id: &str) -> (Vec<String>, Value) {
        let mut states = Vec::new();
        for _ in 0..10 {
            let (status, body) = self.get(&format!("/v3/activities/{id}")).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let state = body["state"].as_str().unwrap().to_owned();
            states.push(state.clone());
            if state != "processing" && state != "initialized" {
                return (states, body);
            }
        }
        panic!("activity {id} never finished: {states:?}");
    }
}

/// Parses a CSV file (RFC 4180: quoted cells may hold commas, quotes and line breaks)
/// into rows of cells.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let (mut rows, mut row, mut cell) = (Vec::new(), Vec::new(), String::new());
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(ch) = chars.next() {
        match ch {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cell.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => row.push(std::mem::take(&mut cell)),
            '\r' if !quoted && chars.peek() == Some(&'\n') => {}
            '\n' if !quoted => {
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
            }
            other => cell.push(other),
        }
    }
    if !cell.is_empty() || !row.is_empty() {
        row.push(cell);
        rows.push(row);
    }
    rows
}

impl Harness {
    /// The finished file of a new export of `body`.
    async fn export_file(&self, body: Value) -> Vec<Vec<String>> {
        let (status, created) = self.post_export(body).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let id = created["activity_id"].as_str().unwrap().to_owned();
        self.finish(&id).await;
        let text = self
            .get_raw(&format!("/v3/contact_exports/{id}"))
            .await
            .text()
            .await
            .unwrap();
        parse_csv(&text)
    }
}

#[tokio::test]
async fn an_export_progresses_and_serves_every_live_contact() {
    let h = start(opts()).await;
    let before = h.sandbox.expected_counts();
    // No `fields`: every field, custom fields included (the export guide).
    let (status, created) = h.post_export(json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["state"], "initialized");
    let id = created["activity_id"].as_str().unwrap().to_owned();

    // The activity is listed like any bulk activity, and counted.
    let listed = h.read_all("/v3/activities?limit=500", "activities").await;
    assert!(listed.iter().any(|a| a["activity_id"] == id.as_str()));
    let after = h.sandbox.expected_counts();
    assert_eq!(after["bulk_activities"], before["bulk_activities"] + 1);
    assert_eq!(after["bulk_activities"], listed.len());

    // Not ready yet: no file.
    let href = created["_links"]["results"]["href"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(href, format!("/v3/contact_exports/{id}"));
    assert_eq!(h.get(&href).await.0, StatusCode::NOT_FOUND);

    let (states, done) = h.finish(&id).await;
    assert_eq!(states, ["processing", "completed"]);
    assert_eq!(done["percent_done"], 100);
    assert!(done["completed_at"].is_string());

    let res = h.get_raw(&href).await;
    assert_eq!(res.status(), StatusCode::OK);
    let content_type = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/csv"), "{content_type}");
    let rows = parse_csv(&res.text().await.unwrap());
    let custom_fields = h
        .read_all("/v3/contact_custom_fields?limit=100", "custom_fields")
        .await;
    let headers: Vec<String> = FIELDS
        .iter()
        .map(|f| default_header(f))
        .chain(
            custom_fields
                .iter()
                .map(|f| f["label"].as_str().unwrap().to_owned()),
        )
        .collect();
    assert_eq!(rows[0], headers);
    assert!(rows[0].contains(&"Email Address".to_string()));
    let body = &rows[1..];
    assert_eq!(body.len(), after["contacts_export"]);
    assert!(body.iter().all(|r| r.len() == headers.len()));

    // The same contacts, with the same values, as `/contacts` (live ones).
    let contacts: BTreeMap<String, Value> = h
        .read_all(
            "/v3/contacts?status=all&limit=500&include=list_memberships,phone_numbers,street_addresses,custom_fields,notes",
            "contacts",
        )
        .await
        .into_iter()
        .filter(|c| c["deleted_at"].is_null())
        .map(|c| (c["contact_id"].as_str().unwrap().to_owned(), c))
        .collect();
    assert_eq!(contacts.len(), body.len());
    let col = |name: &str| FIELDS.iter().position(|f| *f == name).unwrap();
    let mut with_notes_on_lines = 0;
    for row in body {
        let c = &contacts[&row[col("contact_id")]];
        // Notes, one a line; the SMS number, consent date and status.
        let notes: Vec<&str> = c["notes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["content"].as_str().unwrap())
            .collect();
        assert_eq!(row[col("notes")], notes.join("\n"));
        with_notes_on_lines += usize::from(notes.len() > 1);
        // `/contacts` serves no SMS channel to compare with (the contract's
        // `include` enum lacks it): the columns hold a number, a time, a status.
        let number = &row[col("sms_number")];
        assert!(number.len() == 10 && number.bytes().all(|b| b.is_ascii_digit()));
        assert!(chrono::DateTime::parse_from_rfc3339(&row[col("sms_consent_date")]).is_ok());
        assert!(SMS_PERMISSIONS
            .iter()
            .any(|(status, _)| *status == row[col("sms_status")]));
        assert!(!row[col("source_name")].is_empty());
        // Each custom field in the column of its label; the others empty.
        for (i, field) in custom_fields.iter().enumerate() {
            let value = c["custom_fields"]
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["custom_field_id"] == field["custom_field_id"])
                .map_or("", |v| v["value"].as_str().unwrap());
            assert_eq!(row[FIELDS.len() + i], value);
        }
        assert_eq!(row[col("email_address")], c["email_address"]["address"]);
        assert_eq!(row[col("first_name")], c["first_name"]);
        assert_eq!(row[col("updated_at")], c["updated_at"]);
        assert_eq!(row[col("birthday_month")], c["birthday_month"].to_string());
        assert_eq!(
            row[col("email_permission")],
            c["email_address"]["permission_to_send"]
        );
        assert_eq!(row[col("zip")], c["street_addresses"][0]["postal_code"]);
        let lists = row[col("email_lists")]
            .split(", ")
            .filter(|l| !l.is_empty());
        assert_eq!(
            lists.count(),
            c["list_memberships"].as_array().unwrap().len()
        );
    }
    assert!(with_notes_on_lines > 0, "no cell with line breaks");
}

#[tokio::test]
async fn exports_follow_the_requested_fields_and_filters() {
    let h = start(opts()).await;
    // Any name is accepted (the contract has no enum): fields and custom fields (by
    // label or name) get columns in the order asked; a name that is neither none.
    let rows = h
        .export_file(json!({
            "fields": ["email_address", "contact_id", "Shoe size", "Membership_level", "shoe_size_eu", "notes"],
            "status": "unsubscribed",
        }))
        .await;
    assert_eq!(
        rows[0],
        [
            "Email Address",
            "Contact Id",
            "Shoe size",
            "Membership level",
            "Notes"
        ]
    );
    let unsubscribed = h
        .read_all("/v3/contacts?status=unsubscribed&limit=500", "contacts")
        .await;
    assert_eq!(rows.len() - 1, unsubscribed.len());
    assert!(!unsubscribed.is_empty());
}

#[tokio::test]
async fn bad_export_requests_get_400() {
    let h = start(opts()).await;
    for body in [
        // The guide's one rule on fields: opt-in and opt-out fields need the address.
        json!({"fields": ["email_optout_date"]}),
        json!({"fields": ["contact_id", "email_optin_source"]}),
        json!({"status": "all"}),
        json!({"contact_ids": [], "list_ids": []}),
        json!({"list_ids": ["not-a-list"]}),
    ] {
        let (status, answer) = h.post_export(body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_eq!(answer[0]["error_key"], "query.param.invalid");
    }
}

/// `/__sandbox/exports` spells the next files' headers (or leaves columns out).
#[tokio::test]
async fn scripted_headers_respell_and_drop_columns() {
    let h = start(opts()).await;
    h.control(
        "exports",
        json!({"headers": {"email_address": "E-mail address", "contact_id": null, "Shoe size": "SHOE SIZE"}}),
    )
    .await;
    let rows = h
        .export_file(json!({"fields": ["contact_id", "email_address", "first_name", "Shoe size"]}))
        .await;
    assert_eq!(rows[0], ["E-mail address", "First Name", "SHOE SIZE"]);
    assert!(rows[1..].iter().all(|r| r.len() == 3));
}

#[tokio::test]
async fn scripted_exports_fail_and_take_longer() {
    let h = start(opts()).await;
    h.control("exports", json!({"fail": "failed", "polls": 3}))
        .await;
    let (_, created) = h.post_export(json!({})).await;
    let id = created["activity_id"].as_str().unwrap().to_owned();
    let (states, done) = h.finish(&id).await;
    assert_eq!(states, ["processing", "processing", "failed"]);
    assert!(!done["activity_errors"].as_array().unwrap().is_empty());
    assert_eq!(
        h.get(&format!("/v3/contact_exports/{id}")).await.0,
        StatusCode::NOT_FOUND
    );
    // Only the next one failed.
    let (_, created) = h.post_export(json!({})).await;
    let (_, done) = h.finish(created["activity_id"].as_str().unwrap()).await;
    assert_eq!(done["state"], "completed");
}

#[tokio::test]
async fn a_thousand_waiting_bulk_activities_refuse_another_export() {
    // A thousand exports take well under a second: no rate limit in the way.
    let h = start(SandboxOptions {
        contacts: 5,
        rps: 1_000_000,
        ..opts()
    })
    .await;
    let waiting = |activities: &[Value]| {
        activities
            .iter()
            .filter(|a| matches!(a["state"].as_str(), Some("initialized" | "processing")))
            .count()
    };
    let listed = h.read_all("/v3/activities?limit=500", "activities").await;
    let mut created = Vec::new();
    for _ in waiting(&listed)..QUEUED_ACTIVITIES_LIMIT {
        let (status, body) = h.post_export(json!({})).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        created.push(body["activity_id"].as_str().unwrap().to_owned());
    }
    let listed = h.read_all("/v3/activities?limit=500", "activities").await;
    assert_eq!(waiting(&listed), QUEUED_ACTIVITIES_LIMIT);
    let res = h
        .http
        .post(format!(
            "{}/activities/contact_exports",
            h.sandbox.base_url()
        ))
        .bearer_auth(&h.token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_no_limit_headers(res.headers());
    let body: Value = res.json().await.unwrap();
    let key = body["error_key"].as_str().unwrap();
    assert!(key != "throttled" && key != "quota_exceeded", "{body}");
    // One finished export makes room for one more.
    h.finish(&created[0]).await;
    assert_eq!(h.post_export(json!({})).await.0, StatusCode::CREATED);
    assert_eq!(
        h.post_export(json!({})).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
}
