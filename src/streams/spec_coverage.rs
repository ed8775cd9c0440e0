//! Every visible stream's schema carries every property the live contract
//! (Constant Contact's Swagger 2.0 file of the V3 API) documents for the
//! stream's response records, each with the contract's type and format.
//!
//! The contract lives outside the repository, so the test reads facts
//! derived from it: `tests/fixtures/spec_response_properties.json`, written
//! by `scripts/spec_properties.py` (which `.ci/run` also runs with `--check`
//! when the contract is at hand). For each GET path template of the contract
//! the fixture maps the property paths of its JSON response (`.name` for a
//! property, `[]` for an array's items: `.lists[]`, `.lists[].list_id`) to
//! the type and format the contract declares for them.
//!
//! For each documented property of a record the schema must have the
//! property, of the contract's type (`["null", T]` counts as `T`), with the
//! contract's format where that is a string format ([`STRING_FORMATS`]); a
//! format where the contract gives none is allowed (the SMS engagement
//! history's `contact_id` is a `uuid` as everywhere else, though that one
//! definition leaves the format out). Where the API is known to
//! send something other than its contract says, [`exceptions`] names the
//! property, what the schema carries instead and why; an exception that no
//! longer matches a difference fails the test too. Properties the contract
//! does not have are allowed: the keys the connector adds (a parent's id
//! injected into child records, a campaign's `updated_at` carried to its
//! activities) and whatever else the API sends beyond its contract.
//!
//! Custom streams come from a config and are not in the table here. Export
//! streams (`StreamDef::export`) are not checked: their records are rows of
//! a CSV file, which the contract gives no JSON schema for, and its export
//! request takes `fields` as plain strings, with no list to hold the schema
//! against. Nothing else is skipped: a stream whose path is not a GET of the
//! contract, or whose endpoint has no JSON response, fails the test; so does
//! one whose records prefix matches no documented property (a records key
//! the contract does not have).

use std::collections::HashSet;

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

/// The contract's formats that JSON Schema has for strings, which a schema
/// property must carry as the contract does. Its other formats (`int32`,
/// `int64`, `float`, `double`) size numbers; JSON Schema has no such
/// formats, so only the type of those properties is checked.
const STRING_FORMATS: &[&str] = &["date", "date-time", "email", "uuid"];

/// A property whose schema knowingly differs from the contract.
struct Exception {
    stream: &'static str,
    /// The property's path in a record, in the fixture's notation.
    path: &'static str,
    /// What the schema carries instead, as the fixture states the contract's
    /// (`{"type": ..., "format": ...}`).
    ours: Value,
    reason: &'static str,
}

/// Where the API is documented to send something other than its contract
/// says. Each entry must match a difference the test finds.
fn exceptions() -> Vec<Exception> {
    vec![]
}

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

/// The types a schema node allows besides `null`.
fn types(node: &Value) -> Vec<&str> {
    match node.get("type") {
        Some(Value::String(kind)) => vec![kind.as_str()],
        Some(Value::Array(kinds)) => kinds
            .iter()
            .filter_map(Value::as_str)
            .filter(|kind| *kind != "null")
            .collect(),
        _ => Vec::new(),
    }
}

/// How our schema node differs from what the contract declares for it
/// (`{"type": ..., "format": ...}`); `None` when it agrees.
fn difference(declared: &Value, ours: &Value) -> Option<String> {
    let kind = declared.get("type").and_then(Value::as_str);
    let format = declared
        .get("format")
        .and_then(Value::as_str)
        .filter(|f| kind == Some("string") && STRING_FORMATS.contains(f));
    let our_types = types(ours);
    let our_format = ours.get("format").and_then(Value::as_str);
    let mut out = Vec::new();
    if let Some(kind) = kind {
        if our_types != [kind] {
            out.push(format!("type {our_types:?}, the contract's is {kind:?}"));
        }
    }
    if let Some(format) = format.filter(|f| our_format != Some(*f)) {
        out.push(format!(
            "format {our_format:?}, the contract's is {format:?}"
        ));
    }
    (!out.is_empty()).then(|| out.join("; "))
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

/// `stream: path ...` for each documented property our schema lacks or
/// types differently; below such a property nothing more is reported.
/// Exceptions that excuse a difference are added to `used`.
fn gaps(
    fixture: &Map<String, Value>,
    (name, path, prefix, schema): &(String, String, String, Value),
    exceptions: &[Exception],
    used: &mut HashSet<(String, String)>,
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
    for (rel, declared) in documented {
        let under_stopped = stopped.iter().any(|m| {
            rel.strip_prefix(m)
                .is_some_and(|r| r.starts_with(['.', '[']))
        });
        if under_stopped {
            continue;
        }
        let Some(node) = node_at(schema, rel) else {
            stopped.push(rel);
            out.push(format!("{name}: {rel} missing"));
            continue;
        };
        let Some(difference) = difference(declared, node) else {
            continue;
        };
        let excused = exceptions
            .iter()
            .find(|e| e.stream == name && e.path == rel)
            .filter(|e| self::difference(&e.ours, node).is_none());
        if let Some(exception) = excused {
            used.insert((exception.stream.into(), exception.path.into()));
            continue;
        }
        stopped.push(rel);
        out.push(format!("{name}: {rel} {difference}"));
    }
    out
}

#[test]
fn schemas_carry_the_contract_fields_and_formats() {
    let fixture: Value = serde_json::from_str(FIXTURE).expect("the fixture is JSON");
    let fixture = fixture.as_object().expect("the fixture is an object");
    let streams = streams();
    assert!(!streams.is_empty(), "no streams to check");
    let exceptions = exceptions();
    let mut used = HashSet::new();
    let problems: Vec<String> = streams
        .iter()
        .flat_map(|stream| gaps(fixture, stream, &exceptions, &mut used))
        .collect();
    assert!(
        problems.is_empty(),
        "properties the contract documents that the schemas lack or type differently \
         (stream: property):\n  {}",
        problems.join("\n  ")
    );
    let stale: Vec<String> = exceptions
        .iter()
        .filter(|e| !used.contains(&(e.stream.to_string(), e.path.to_string())))
        .map(|e| format!("{}: {} ({})", e.stream, e.path, e.reason))
        .collect();
    assert!(
        stale.is_empty(),
        "exceptions that excuse no difference any more (the contract or the schema \
         changed; drop them):\n  {}",
        stale.join("\n  ")
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

#[test]
fn types_and_string_formats_are_compared() {
    let declared = json!({"type": "string", "format": "date-time"});
    let nullable = json!({"type": ["null", "string"], "format": "date-time"});
    assert_eq!(difference(&declared, &nullable), None);
    let no_format = json!({"type": ["null", "string"]});
    assert!(difference(&declared, &no_format).is_some());
    let date = json!({"type": "string", "format": "date"});
    assert!(difference(&declared, &date).is_some());
    let integer = json!({"type": "integer", "format": "int64"});
    assert!(difference(&integer, &json!({"type": ["null", "integer"]})).is_none());
    assert!(difference(&integer, &json!({"type": ["null", "string"]})).is_some());
    // A format the contract does not give is the schema's to add.
    let plain = json!({"type": "string"});
    assert!(difference(&plain, &json!({"type": "string", "format": "uuid"})).is_none());
    assert!(difference(&json!({"type": "string", "format": "int32"}), &plain).is_none());
    assert!(difference(&json!({}), &json!({"type": "object"})).is_none());
}

#[test]
fn exceptions_excuse_only_the_difference_they_name() {
    let fixture = json!({"/things": {
        ".things[]": {"type": "object"},
        ".things[].day": {"type": "string", "format": "date-time"},
        ".things[].at": {"type": "string", "format": "date-time"},
        ".things[].box": {"type": "object"},
        ".things[].box.inner": {"type": "string"}
    }});
    let fixture = fixture.as_object().unwrap();
    let schema = json!({"properties": {
        "day": {"type": ["null", "string"], "format": "date"},
        "at": {"type": ["null", "string"], "format": "date"},
        "box": {"type": ["null", "string"]},
        "added": {"type": "string"}
    }});
    let stream = (
        "things".to_string(),
        "/things".to_string(),
        ".things[]".to_string(),
        schema,
    );
    let exceptions = vec![Exception {
        stream: "things",
        path: ".day",
        ours: json!({"type": "string", "format": "date"}),
        reason: "the API sends a date",
    }];
    let mut used = HashSet::new();
    let problems = gaps(fixture, &stream, &exceptions, &mut used);
    assert_eq!(
        problems,
        [
            r#"things: .at format Some("date"), the contract's is "date-time""#,
            r#"things: .box type ["string"], the contract's is "object""#,
        ]
    );
    assert!(used.contains(&("things".to_string(), ".day".to_string())));
}
