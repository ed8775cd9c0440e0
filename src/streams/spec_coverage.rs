//! Every visible stream's schema has every property the official OpenAPI
//! spec documents for the stream's response records.
//!
//! The spec lives outside the repository, so the test reads facts derived
//! from it: `tests/fixtures/spec_response_properties.json`, written by
//! `scripts/spec_properties.py` (which `.ci/run` also runs with `--check`
//! when the spec is at hand). For each GET path template of the spec the
//! fixture lists the property paths of its JSON response: `.name` for a
//! property, `[]` for an array's items (`.lists[].list_id`).
//!
//! Custom streams come from a config and are not in the table here.
//! Export streams (`StreamDef::export`) are checked differently: their
//! records are rows of a CSV file, which the spec gives no JSON schema for,
//! so their schema is held equal to the export request's enum of fields
//! (`POST <path> fields` in the fixture), the columns the stream asks for.
//! Nothing else is skipped: a stream whose path is not in the spec, or whose
//! endpoint has no JSON response, fails the test, as it did in the test this
//! replaces (which read the spec itself); so does one whose records prefix
//! matches no documented property (a records key the spec does not have).

use serde_json::{Map, Value};

use super::{Records, Registry};

/// The streams to check, as `(name, path, records_prefix, schema_json)`:
/// `records_prefix` is where one record sits in the fixture's property paths
/// (`.lists[]` under a key, `[]` in an array body, empty for an object body).
/// The only function here that knows the stream table's API.
fn streams() -> Vec<(String, String, String, Value)> {
    Registry::built_in()
        .visible()
        // Checked against the export's field list instead (below).
        .filter(|def| def.export.is_none())
        .map(|def| {
            let prefix = match &def.records {
                Records::Key(key) => format!(".{key}[]"),
                Records::Array | Records::ArrayOrObject => "[]".to_string(),
                Records::Object => String::new(),
            };
            (
                def.name.clone(),
                def.path.clone(),
                prefix,
                def.schema.clone(),
            )
        })
        .collect()
}

const FIXTURE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/spec_response_properties.json"
));

/// GET endpoints the official spec lacks but the newer per-endpoint docs
/// (the v3 API client docs and their models) have, with the response
/// property paths those models give, in the fixture's notation. They are
/// checked like the spec's own; an endpoint that reaches the spec (and so
/// the fixture) is found there first.
fn doc_only() -> Vec<(String, Vec<&'static str>)> {
    let row = |extra: &[&'static str]| -> Vec<&'static str> {
        let common = [
            "._links",
            "._links.next",
            "._links.next.href",
            ".tracking_activities",
            ".tracking_activities[].campaign_activity_id",
            ".tracking_activities[].contact_id",
            ".tracking_activities[].created_time",
            ".tracking_activities[].deleted_at",
            ".tracking_activities[].email_address",
            ".tracking_activities[].first_name",
            ".tracking_activities[].last_name",
            ".tracking_activities[].sms_channel",
            ".tracking_activities[].sms_channel.country_code",
            ".tracking_activities[].sms_channel.formatted_international",
            ".tracking_activities[].sms_channel.formatted_national",
            ".tracking_activities[].sms_channel.state",
            ".tracking_activities[].tracking_activity_type",
        ];
        common.iter().chain(extra).copied().collect()
    };
    let device = ".tracking_activities[].device_type";
    let landing = "/reports/landing_pages/campaign_details/{campaign_activity_id}";
    let report = |name: &str| format!("{landing}/{name}");
    vec![
        (
            "/emails/activities/{campaign_activity_id}/abtest".into(),
            vec![
                ".alternative_subject",
                ".test_size",
                ".winner_wait_duration",
            ],
        ),
        (
            "/emails/activities/{campaign_activity_id}/non_opener_resends".into(),
            vec![
                "[].delay_days",
                "[].delay_minutes",
                "[].resend_date",
                "[].resend_request_id",
                "[].resend_status",
                "[].resend_subject",
            ],
        ),
        (report("p_contact_opens"), row(&[device])),
        (report("p_unique_contact_opens"), row(&[device])),
        (
            report("p_unique_contact_clicks"),
            row(&[
                device,
                ".tracking_activities[].link_url",
                ".tracking_activities[].url_id",
            ]),
        ),
        (report("p_unique_contact_adds"), row(&[])),
        (report("p_unique_contact_updates"), row(&[])),
        (report("p_unique_contact_sms_optins"), row(&[])),
        (
            "/contacts/counts".into(),
            vec![
                ".explicit",
                ".implicit",
                ".new_subscriber",
                ".pending",
                ".total",
                ".unsubscribed",
            ],
        ),
        (
            "/contacts/sms_engagement_history/{contact_id}".into(),
            vec![
                "[].contact_id",
                "[].history_details",
                "[].history_details.advertised_frequency",
                "[].history_details.advertised_interval",
                "[].history_details.consent_action_time",
                "[].history_details.consent_action_type",
                "[].history_details.consent_medium_type",
                "[].history_details.consent_type",
                "[].history_details.source",
                "[].history_details.source_consent_timestamp",
                "[].history_details.source_ip",
                "[].history_details.source_sms_number",
                "[].history_details.state",
                "[].insert_time",
                "[].sms_channel_id",
                "[].sms_channel_history_id",
            ],
        ),
    ]
}

/// Whether a spec path template matches ours: same segments, literal ones
/// equal, any `{placeholder}` matching any other (`{parent}` vs `{campaign_id}`).
fn template_matches(spec: &str, ours: &str) -> bool {
    let (spec, ours): (Vec<&str>, Vec<&str>) =
        (spec.split('/').collect(), ours.split('/').collect());
    let placeholder = |s: &str| s.starts_with('{') && s.ends_with('}');
    spec.len() == ours.len()
        && spec
            .iter()
            .zip(&ours)
            .all(|(s, o)| s == o || (placeholder(s) && placeholder(o)))
}

/// A property path split into steps: `Some(name)` for `.name`, `None` for `[]`.
fn steps(path: &str) -> Vec<Option<&str>> {
    let mut out = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("[]") {
            out.push(None);
            rest = after;
        } else {
            let after = rest.strip_prefix('.').unwrap_or(rest);
            let end = after.find(['.', '[']).unwrap_or(after.len());
            out.push(Some(&after[..end]));
            rest = &after[end..];
        }
    }
    out
}

/// Whether our JSON schema has the property path, through `properties` and `items`.
fn has_path(schema: &Value, path: &str) -> bool {
    let mut node = schema;
    for step in steps(path) {
        let next = match step {
            Some(name) => node.get("properties").and_then(|p| p.get(name)),
            None => node.get("items"),
        };
        match next {
            Some(next) => node = next,
            None => return false,
        }
    }
    true
}

/// The fixture's property paths of one record, relative to the record
/// (`.lists[].name` under `.lists[]` is `.name`), sorted.
fn record_paths<'a>(documented: &'a [Value], prefix: &str) -> Vec<&'a str> {
    let mut out: Vec<&str> = documented
        .iter()
        .filter_map(Value::as_str)
        .filter_map(|p| p.strip_prefix(prefix))
        .filter(|rest| rest.starts_with(['.', '[']))
        .collect();
    out.sort_unstable();
    out
}

/// `stream: path` for each documented property our schema lacks; below a
/// missing property only that property is reported.
fn gaps(
    fixture: &Map<String, Value>,
    name: &str,
    path: &str,
    prefix: &str,
    schema: &Value,
) -> Vec<String> {
    let doc_only = doc_only()
        .into_iter()
        .find(|(template, _)| template_matches(template, path))
        .map(|(_, paths)| Value::from(paths));
    let Some(documented) = fixture
        .iter()
        .find(|(template, _)| template.starts_with('/') && template_matches(template, path))
        .map(|(_, documented)| documented)
        .or(doc_only.as_ref())
    else {
        return vec![format!("{name}: {path} is not a GET path of the spec")];
    };
    let Some(documented) = documented.as_array() else {
        return vec![format!("{name}: the spec has no JSON response for {path}")];
    };
    let documented = record_paths(documented, prefix);
    if documented.is_empty() {
        return vec![format!(
            "{name}: the spec documents nothing under `{prefix}` for {path}"
        )];
    }
    let mut missing: Vec<&str> = Vec::new();
    for rel in documented {
        let under_missing = missing.iter().any(|m| {
            rel.strip_prefix(m)
                .is_some_and(|r| r.starts_with(['.', '[']))
        });
        if !under_missing && !has_path(schema, rel) {
            missing.push(rel);
        }
    }
    missing.iter().map(|m| format!("{name}: {m}")).collect()
}

#[test]
fn schemas_cover_the_official_response_schemas() {
    let fixture: Value = serde_json::from_str(FIXTURE).expect("the fixture is JSON");
    let fixture = fixture.as_object().expect("the fixture is an object");
    let streams = streams();
    assert!(!streams.is_empty(), "no streams to check");
    let missing: Vec<String> = streams
        .iter()
        .flat_map(|(name, path, prefix, schema)| gaps(fixture, name, path, prefix, schema))
        .collect();
    assert!(
        missing.is_empty(),
        "properties the spec documents but the schemas lack (stream: property):\n  {}",
        missing.join("\n  ")
    );
}

#[test]
fn templates_match_by_segment() {
    assert!(template_matches(
        "/emails/activities/{campaign_activity_id}",
        "/emails/activities/{parent}"
    ));
    assert!(!template_matches(
        "/emails/activities/{id}",
        "/emails/activities/{parent}/previews"
    ));
    assert!(!template_matches(
        "/emails/{campaign_id}",
        "/emails/activities"
    ));
    assert!(template_matches("/contact_lists", "/contact_lists"));
}

#[test]
fn property_paths_walk_properties_and_items() {
    let schema = serde_json::json!({"properties": {
        "a": {"type": "array", "items": {"properties": {"b": {}}}},
        "c": {"properties": {"d": {}}}
    }});
    assert!(has_path(&schema, ".a[].b"));
    assert!(has_path(&schema, ".c.d"));
    assert!(!has_path(&schema, ".a[].x"));
    assert!(!has_path(&schema, ".c[]"));
    assert_eq!(steps("[].x.y[]"), vec![None, Some("x"), Some("y"), None]);
}
