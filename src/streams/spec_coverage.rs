//! Every visible stream's schema carries every property the live contract
//! (Constant Contact's Swagger 2.0 file of the V3 API) documents for the
//! stream's response records.
//!
//! The contract lives outside the repository, so the test reads facts
//! derived from it: `tests/fixtures/spec_response_properties.json`, written
//! by `scripts/spec_properties.py` (which `.ci/run` also runs with `--check`
//! when the contract is at hand). For each GET path template of the contract
//! the fixture maps the property paths of its JSON response (`.name` for a
//! property, `[]` for an array's items: `.lists[]`, `.lists[].list_id`) to
//! the type and format the contract declares for them.
//!
//! Properties the contract does not have are allowed: the keys the
//! connector adds (a parent's id injected into child records, a campaign's
//! `updated_at` carried to its activities) and whatever else the API sends
//! beyond its contract.
//!
//! Custom streams come from a config and are not in the table here. Export
//! streams (`StreamDef::export`) are not checked: their records are rows of
//! a CSV file, which the contract gives no JSON schema for, and its export
//! request takes `fields` as plain strings, with no list to hold the schema
//! against. Nothing else is skipped: a stream whose path is not a GET of the
//! contract, or whose endpoint has no JSON response, fails the test; so does
//! one whose records prefix matches no documented property (a records key
//! the contract does not have).

use serde_json::{json, Map, Value};

use super::{Records, Registry};

/// The streams to check, as `(name, path, records_prefix, schema_json)`:
/// `records_prefix` is where one record sits in the fixture's property paths
/// (`.lists[]` under a key, `[]` in an array body, empty for an object body).
/// The only function here that knows the stream table's API.
fn streams() -> Vec<(String, String, String, Value)> {
    Registry::built_in()
        .visible()
        // CSV rows: the contract has no JSON schema for them (module docs).
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

/// Whether a contract path template matches ours: same segments, literal
/// ones equal, any `{placeholder}` matching any other (`{parent}` vs
/// `{campaign_id}`).
fn template_matches(contract: &str, ours: &str) -> bool {
    let (contract, ours): (Vec<&str>, Vec<&str>) =
        (contract.split('/').collect(), ours.split('/').collect());
    let placeholder = |s: &str| s.starts_with('{') && s.ends_with('}');
    contract.len() == ours.len()
        && contract
            .iter()
            .zip(&ours)
            .all(|(c, o)| c == o || (placeholder(c) && placeholder(o)))
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

/// Our JSON schema's node at the property path, through `properties` and
/// `items`.
fn node_at<'a>(schema: &'a Value, path: &str) -> Option<&'a Value> {
    steps(path)
        .into_iter()
        .try_fold(schema, |node, step| match step {
            Some(name) => node.get("properties").and_then(|p| p.get(name)),
            None => node.get("items"),
        })
}

/// The fixture's properties of one record, relative to the record
/// (`.lists[].name` under `.lists[]` is `.name`), sorted, with what the
/// contract declares for each.
fn record_properties<'a>(
    documented: &'a Map<String, Value>,
    prefix: &str,
) -> Vec<(&'a str, &'a Value)> {
    let mut out: Vec<(&str, &Value)> = documented
        .iter()
        .filter_map(|(path, declared)| Some((path.strip_prefix(prefix)?, declared)))
        .filter(|(rest, _)| rest.starts_with(['.', '[']))
        .collect();
    out.sort_unstable_by_key(|(path, _)| *path);
    out
}

/// `stream: path missing` for each documented property our schema lacks;
/// below a missing property only that property is reported.
fn gaps(
    fixture: &Map<String, Value>,
    (name, path, prefix, schema): &(String, String, String, Value),
) -> Vec<String> {
    let Some(documented) = fixture
        .iter()
        .find(|(template, _)| template.starts_with('/') && template_matches(template, path))
        .map(|(_, documented)| documented)
    else {
        return vec![format!("{name}: {path} is not a GET path of the contract")];
    };
    let Some(documented) = documented.as_object() else {
        return vec![format!(
            "{name}: the contract has no JSON response for {path}"
        )];
    };
    let documented = record_properties(documented, prefix);
    if documented.is_empty() {
        return vec![format!(
            "{name}: the contract documents nothing under `{prefix}` for {path}"
        )];
    }
    let mut stopped: Vec<&str> = Vec::new();
    let mut out = Vec::new();
    for (rel, _) in documented {
        let under_stopped = stopped.iter().any(|m| {
            rel.strip_prefix(m)
                .is_some_and(|r| r.starts_with(['.', '[']))
        });
        if under_stopped {
            continue;
        }
        if node_at(schema, rel).is_none() {
            stopped.push(rel);
            out.push(format!("{name}: {rel} missing"));
        }
    }
    out
}

#[test]
fn schemas_carry_the_contract_fields() {
    let fixture: Value = serde_json::from_str(FIXTURE).expect("the fixture is JSON");
    let fixture = fixture.as_object().expect("the fixture is an object");
    let streams = streams();
    assert!(!streams.is_empty(), "no streams to check");
    let problems: Vec<String> = streams
        .iter()
        .flat_map(|stream| gaps(fixture, stream))
        .collect();
    assert!(
        problems.is_empty(),
        "properties the contract documents that the schemas lack (stream: property):\n  {}",
        problems.join("\n  ")
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
    let schema = json!({"properties": {
        "a": {"type": "array", "items": {"properties": {"b": {}}}},
        "c": {"properties": {"d": {}}}
    }});
    assert!(node_at(&schema, ".a[].b").is_some());
    assert!(node_at(&schema, ".c.d").is_some());
    assert!(node_at(&schema, ".a[].x").is_none());
    assert!(node_at(&schema, ".c[]").is_none());
    assert_eq!(steps("[].x.y[]"), vec![None, Some("x"), Some("y"), None]);
}
