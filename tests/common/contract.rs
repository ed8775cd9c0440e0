//! Checks HTTP traffic against the API's contract: `tests/fixtures/contract.json`,
//! which `scripts/contract.py` derives from Constant Contact's Swagger 2.0 file.
//!
//! A request must name an operation of the contract (method and path), declare
//! every query parameter it sends, send every required one, and keep each value
//! within its parameter's rules: type, enum (item by item for comma-separated
//! lists), maximum/minimum, format (date-time, date, uuid, int32...), length and
//! pattern, and the count of items of a list. A JSON request body must match the
//! operation's `body` schema. An answer must have a status the operation
//! declares, a media type it `produces`, and a JSON body that matches the
//! schema declared for that status.
//!
//! Schemas are checked strictly: an object's properties are the ones the
//! contract declares (`additionalProperties: false` wherever it says nothing),
//! so a property the contract does not know is reported, not waved through.
//!
//! Findings are [`Violation`]s; [`Allowance`]s excuse the known ones, each with
//! its reason, and [`Report`] sorts the rest out.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use jsonschema::error::ValidationErrorKind;
use jsonschema::{Draft, Validator};
use serde_json::{json, Map, Value};

/// The contract fixture, read from the repository (never from outside it).
pub const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/contract.json");

/// One request and the answer to it, as recorded.
pub struct Traffic<'a> {
    pub method: &'a str,
    /// Path and query, as sent (`/v3/contacts?limit=500`).
    pub target: &'a str,
    pub request_body: &'a [u8],
    /// `None` when nothing answered (or the answer was not the API's).
    pub response: Option<Answer<'a>>,
}

pub struct Answer<'a> {
    pub status: u16,
    pub content_type: Option<&'a str>,
    pub body: &'a [u8],
}

/// Who broke the contract: the client's request or the server's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Side {
    Request,
    Response,
}

/// One finding. `location` names where, with array indexes as `*` so the same
/// finding on many records is one key: `query include`, `path campaign_ids`,
/// `body /fields/*`, `200 /contacts/*/email_address/opt_out_source`, `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// `GET /v3/contacts` (the contract's template), or the request line when
    /// no operation matched.
    pub operation: String,
    pub side: Side,
    pub location: String,
    /// The rule broken: a parameter rule (`undeclared`, `required`, `enum`,
    /// `format`, `maximum`, `type`, `items`...), a schema keyword (`type`,
    /// `required`, `format`, `enum`, `maxLength`...), `undeclared property`,
    /// `status`, `content type`, `operation`.
    pub rule: String,
    /// The offending value (a parameter item, a JSON value, a status).
    pub value: String,
    /// The validator's words.
    pub detail: String,
}

impl Violation {
    pub fn key(&self) -> (String, Side, String, String) {
        (
            self.operation.clone(),
            self.side,
            self.location.clone(),
            self.rule.clone(),
        )
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let side = match self.side {
            Side::Request => "request",
            Side::Response => "response",
        };
        write!(
            f,
            "{} | {side} {} | {} | value {} | {}",
            self.operation,
            self.location,
            self.rule,
            shorten(&self.value, 120),
            shorten(&self.detail, 200)
        )
    }
}

/// A finding that does not fail the check. It matches a violation with the same
/// operation (a trailing `*` matches any rest: `GET /v3/reports/*`, `*`), side, location and rule, and, when `value` is set,
/// the same value (a parameter item such as `sms_channel`).
#[derive(Debug, Clone, Copy)]
pub struct Allowance {
    pub operation: &'static str,
    pub side: Side,
    pub location: &'static str,
    pub rule: &'static str,
    pub value: Option<&'static str>,
    pub reason: &'static str,
}

impl Allowance {
    pub fn matches(&self, v: &Violation) -> bool {
        let operation = match self.operation.strip_suffix('*') {
            Some(prefix) => v.operation.starts_with(prefix),
            None => self.operation == v.operation,
        };
        operation
            && self.side == v.side
            && self.location == v.location
            && self.rule == v.rule
            && self.value.is_none_or(|value| value == v.value)
    }

    pub fn describe(&self) -> String {
        format!(
            "{} | {:?} {} | {}{}",
            self.operation,
            self.side,
            self.location,
            self.rule,
            self.value.map(|v| format!(" = {v}")).unwrap_or_default()
        )
    }
}

struct Operation {
    key: String,
    method: String,
    segments: Vec<String>,
    parameters: Vec<Value>,
    body: Option<Value>,
    produces: Vec<String>,
    responses: Map<String, Value>,
}

impl Operation {
    /// Path parameter values by name when `segments` fit the template.
    fn bind(&self, segments: &[&str]) -> Option<Vec<(String, String)>> {
        if segments.len() != self.segments.len() {
            return None;
        }
        let mut bound = Vec::new();
        for (template, actual) in self.segments.iter().zip(segments) {
            match template.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
                Some(name) if !actual.is_empty() => {
                    bound.push((name.to_string(), percent_decode(actual)))
                }
                Some(_) => return None,
                None if template == actual => {}
                None => return None,
            }
        }
        Some(bound)
    }

    fn literal_segments(&self) -> usize {
        self.segments.iter().filter(|s| !s.starts_with('{')).count()
    }

    fn parameter(&self, name: &str, place: &str) -> Option<&Value> {
        self.parameters
            .iter()
            .find(|p| p["name"] == name && p["in"] == place)
    }
}

/// The contract, ready to check traffic.
pub struct Contract {
    operations: Vec<Operation>,
    others: Vec<String>,
    definitions: Value,
    /// Compiled body validators by `operation status` (or `operation body`).
    validators: Mutex<HashMap<String, std::sync::Arc<Validator>>>,
    /// Bodies checked against a schema so far (requests and answers).
    validated: AtomicUsize,
}

impl Contract {
    pub fn load() -> Contract {
        let text = std::fs::read_to_string(FIXTURE)
            .unwrap_or_else(|e| panic!("{FIXTURE}: {e} (python3 scripts/contract.py makes it)"));
        Contract::from_fixture(&serde_json::from_str(&text).expect("the fixture is JSON"))
    }

    pub fn from_fixture(fixture: &Value) -> Contract {
        let operations = fixture["operations"]
            .as_object()
            .expect("operations")
            .iter()
            .map(|(key, op)| {
                let (method, template) = key.split_once(' ').expect("METHOD /path");
                Operation {
                    key: key.clone(),
                    method: method.to_string(),
                    segments: template.split('/').map(str::to_string).collect(),
                    parameters: op["parameters"].as_array().cloned().unwrap_or_default(),
                    body: op.get("body").cloned(),
                    produces: op["produces"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|m| m.as_str().map(str::to_string))
                        .collect(),
                    responses: op["responses"].as_object().cloned().unwrap_or_default(),
                }
            })
            .collect();
        let others = fixture["other_operations"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|o| o.as_str().map(str::to_string))
            .collect();
        let mut definitions = fixture["definitions"].clone();
        if let Value::Object(map) = &mut definitions {
            map.values_mut().for_each(strict);
        }
        Contract {
            operations,
            others,
            definitions,
            validators: Mutex::default(),
            validated: AtomicUsize::new(0),
        }
    }

    /// The operation key (`GET /v3/contacts`) a request names, if any.
    pub fn operation_of(&self, method: &str, path: &str) -> Option<&str> {
        self.find(method, path).map(|(op, _)| op.key.as_str())
    }

    fn find(&self, method: &str, path: &str) -> Option<(&Operation, Vec<(String, String)>)> {
        let segments: Vec<&str> = path.split('/').collect();
        self.operations
            .iter()
            .filter(|op| op.method == method)
            .filter_map(|op| op.bind(&segments).map(|bound| (op, bound)))
            .max_by_key(|(op, _)| op.literal_segments())
    }

    /// Every violation of one exchange.
    pub fn check(&self, traffic: &Traffic) -> Vec<Violation> {
        let (path, query) = traffic
            .target
            .split_once('?')
            .unwrap_or((traffic.target, ""));
        let Some((op, bound)) = self.find(traffic.method, path) else {
            return vec![self.unknown_operation(traffic.method, path)];
        };
        let mut out = Vec::new();
        let mut found = |side, location: String, rule: &str, value: String, detail: String| {
            out.push(Violation {
                operation: op.key.clone(),
                side,
                location,
                rule: rule.to_string(),
                value,
                detail,
            })
        };

        // Path parameters.
        for (name, value) in &bound {
            match op.parameter(name, "path") {
                Some(parameter) => {
                    for (rule, item, detail) in check_parameter(parameter, &[value.as_str()]) {
                        found(Side::Request, format!("path {name}"), &rule, item, detail);
                    }
                }
                None => found(
                    Side::Request,
                    format!("path {name}"),
                    "undeclared",
                    value.clone(),
                    "the template's placeholder has no parameter".into(),
                ),
            }
        }

        // Query parameters.
        let mut values: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
            values
                .entry(name.into_owned())
                .or_default()
                .push(value.into_owned());
        }
        for (name, sent) in &values {
            let Some(parameter) = op.parameter(name, "query") else {
                found(
                    Side::Request,
                    format!("query {name}"),
                    "undeclared",
                    sent.join("&"),
                    "the operation declares no such query parameter".into(),
                );
                continue;
            };
            let sent: Vec<&str> = sent.iter().map(String::as_str).collect();
            for (rule, item, detail) in check_parameter(parameter, &sent) {
                found(Side::Request, format!("query {name}"), &rule, item, detail);
            }
        }
        for parameter in &op.parameters {
            let name = parameter["name"].as_str().unwrap_or_default();
            if parameter["in"] == "query"
                && parameter["required"] == true
                && !values.contains_key(name)
            {
                found(
                    Side::Request,
                    format!("query {name}"),
                    "required",
                    "(absent)".into(),
                    "a required parameter is missing".into(),
                );
            }
        }

        // The request body.
        match (&op.body, traffic.request_body.is_empty()) {
            (Some(body), true) if body["required"] == true => found(
                Side::Request,
                "body".into(),
                "required",
                "(absent)".into(),
                "the operation requires a body".into(),
            ),
            (Some(body), false) => match serde_json::from_slice::<Value>(traffic.request_body) {
                Ok(sent) => {
                    let validator = self.validator(&format!("{} body", op.key), &body["schema"]);
                    for (location, rule, value, detail) in schema_errors(&validator, &sent) {
                        found(
                            Side::Request,
                            format!("body {location}"),
                            &rule,
                            value,
                            detail,
                        );
                    }
                }
                Err(e) => found(
                    Side::Request,
                    "body".into(),
                    "JSON",
                    snippet(traffic.request_body),
                    e.to_string(),
                ),
            },
            (None, false) => found(
                Side::Request,
                "body".into(),
                "undeclared",
                snippet(traffic.request_body),
                "the operation takes no body".into(),
            ),
            _ => {}
        }

        // The answer.
        let Some(answer) = &traffic.response else {
            return out;
        };
        let status = answer.status.to_string();
        let Some(schema) = op
            .responses
            .get(&status)
            .or_else(|| op.responses.get("default"))
        else {
            let declared: Vec<&String> = op.responses.keys().collect();
            found(
                Side::Response,
                "status".into(),
                "status",
                status,
                format!("the operation declares {declared:?}"),
            );
            return out;
        };
        let media = answer.content_type.map(|c| {
            c.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
        if !answer.body.is_empty() {
            match &media {
                Some(media) if op.produces.iter().any(|p| p == media) => {}
                _ if !(200..300).contains(&answer.status) => {}
                _ => found(
                    Side::Response,
                    format!("{status} content type"),
                    "content type",
                    media.clone().unwrap_or_else(|| "(none)".into()),
                    format!("the operation produces {:?}", op.produces),
                ),
            }
        }
        let is_json = media
            .as_deref()
            .is_some_and(|m| m == "application/json" || m.ends_with("+json"));
        if schema.is_null() || !is_json {
            return out;
        }
        match serde_json::from_slice::<Value>(answer.body) {
            Ok(body) => {
                let validator = self.validator(&format!("{} {status}", op.key), schema);
                for (location, rule, value, detail) in schema_errors(&validator, &body) {
                    found(
                        Side::Response,
                        format!("{status} {location}"),
                        &rule,
                        value,
                        detail,
                    );
                }
            }
            Err(e) => found(
                Side::Response,
                format!("{status} body"),
                "JSON",
                snippet(answer.body),
                e.to_string(),
            ),
        }
        out
    }

    fn unknown_operation(&self, method: &str, path: &str) -> Violation {
        let segments: Vec<&str> = path.split('/').collect();
        let other = self.others.iter().find(|key| {
            let (m, template) = key.split_once(' ').unwrap_or_default();
            let op = Operation {
                key: String::new(),
                method: m.into(),
                segments: template.split('/').map(str::to_string).collect(),
                parameters: vec![],
                body: None,
                produces: vec![],
                responses: Map::new(),
            };
            m == method && op.bind(&segments).is_some()
        });
        let path_known = self
            .operations
            .iter()
            .any(|op| op.bind(&segments).is_some());
        let detail = match other {
            Some(key) => format!(
                "{key} is in the contract but not in the fixture: add it to CALLED in \
                 scripts/contract.py and regenerate"
            ),
            None if path_known => format!("the contract has the path, but no {method} on it"),
            None => "the contract has no such path".into(),
        };
        Violation {
            operation: format!("{method} {path}"),
            side: Side::Request,
            location: "path".into(),
            rule: "operation".into(),
            value: format!("{method} {path}"),
            detail,
        }
    }

    /// How many bodies (requests' and answers') were checked against a schema.
    pub fn bodies_validated(&self) -> usize {
        self.validated.load(Ordering::Relaxed)
    }

    fn validator(&self, key: &str, schema: &Value) -> std::sync::Arc<Validator> {
        self.validated.fetch_add(1, Ordering::Relaxed);
        let mut cache = self.validators.lock().unwrap();
        cache
            .entry(key.to_string())
            .or_insert_with(|| {
                let mut document = schema.clone();
                strict(&mut document);
                let document = match document {
                    Value::Object(mut map) => {
                        map.insert("definitions".into(), self.definitions.clone());
                        Value::Object(map)
                    }
                    other => json!({"allOf": [other], "definitions": self.definitions}),
                };
                std::sync::Arc::new(
                    jsonschema::options()
                        .with_draft(Draft::Draft201909)
                        .should_validate_formats(true)
                        .build(&document)
                        .unwrap_or_else(|e| {
                            panic!("{key}: the fixture's schema does not compile: {e}")
                        }),
                )
            })
            .clone()
    }
}

/// `additionalProperties: false` on every object schema that declares
/// properties and says nothing about others.
fn strict(schema: &mut Value) {
    let Value::Object(map) = schema else { return };
    if map.contains_key("properties") && !map.contains_key("additionalProperties") {
        map.insert("additionalProperties".into(), Value::Bool(false));
    }
    if let Some(Value::Object(properties)) = map.get_mut("properties") {
        properties.values_mut().for_each(strict);
    }
    for key in ["items", "additionalProperties"] {
        if let Some(sub) = map.get_mut(key) {
            strict(sub);
        }
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        if let Some(Value::Array(subs)) = map.get_mut(key) {
            subs.iter_mut().for_each(strict);
        }
    }
}

/// (location, rule, value, detail) of each schema error, array indexes as `*`.
fn schema_errors(validator: &Validator, instance: &Value) -> Vec<(String, String, String, String)> {
    let mut out = Vec::new();
    for error in validator.iter_errors(instance) {
        let pointer = generic_pointer(error.instance_path.as_str());
        match &error.kind {
            ValidationErrorKind::AdditionalProperties { unexpected } => {
                for name in unexpected {
                    let value = error.instance.get(name).cloned().unwrap_or(Value::Null);
                    out.push((
                        format!("{pointer}/{name}"),
                        "undeclared property".to_string(),
                        value.to_string(),
                        "the contract declares no such property".to_string(),
                    ));
                }
            }
            // A missing property is named in the location, so an allowance can
            // excuse it alone.
            ValidationErrorKind::Required { property } => out.push((
                format!("{pointer}/{}", property.as_str().unwrap_or_default()),
                "required".to_string(),
                "(absent)".to_string(),
                error.to_string(),
            )),
            _ => {
                let keyword = error
                    .schema_path
                    .as_str()
                    .rsplit('/')
                    .next()
                    .unwrap_or("")
                    .to_string();
                out.push((
                    if pointer.is_empty() {
                        "/".into()
                    } else {
                        pointer
                    },
                    keyword,
                    error.instance.to_string(),
                    error.to_string(),
                ));
            }
        }
    }
    out
}

/// A JSON pointer with its array indexes (all-digit segments) as `*`.
pub fn generic_pointer(pointer: &str) -> String {
    pointer
        .split('/')
        .map(|s| {
            if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
                "*"
            } else {
                s
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// (rule, item, detail) of each way `sent` (the values of one parameter, one
/// per occurrence) breaks `parameter`.
fn check_parameter(parameter: &Value, sent: &[&str]) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let kind = parameter["type"].as_str().unwrap_or("string");
    let format = parameter["format"].as_str();
    let collection = parameter["collectionFormat"].as_str();
    let multi = collection == Some("multi");
    if sent.len() > 1 && !multi {
        out.push((
            "repeated".into(),
            sent.join("&"),
            "the parameter may be sent once (collectionFormat is not multi)".into(),
        ));
    }
    // A string parameter with a maximum is a number written as text when its
    // default is one or its format is an integer's (`limit`); otherwise the
    // maximum counts its comma-separated items (`lists`, `campaign_ids`).
    let numeric_text = kind == "string"
        && (parameter["default"]
            .as_str()
            .is_some_and(|d| d.parse::<f64>().is_ok())
            || matches!(format, Some("int32" | "int64")));
    let counted = kind == "string" && parameter.get("maximum").is_some() && !numeric_text;
    let separator = match collection {
        Some("ssv") => Some(' '),
        Some("tsv") => Some('\t'),
        Some("pipes") => Some('|'),
        _ if kind == "array" || format == Some("csv") || collection.is_some() || counted => {
            Some(',')
        }
        _ => None,
    };
    let items: Vec<&str> = sent
        .iter()
        .flat_map(|value| match separator {
            Some(separator) => value.split(separator).collect::<Vec<_>>(),
            None => vec![*value],
        })
        .collect();
    let max_items = parameter["maxItems"]
        .as_u64()
        .or_else(|| counted.then(|| parameter["maximum"].as_u64()).flatten());
    if let Some(max) = max_items {
        if items.len() as u64 > max {
            out.push((
                "items".into(),
                format!("{} items", items.len()),
                format!("at most {max} items"),
            ));
        }
    }
    if let Some(min) = parameter["minItems"].as_u64() {
        if (items.len() as u64) < min {
            out.push((
                "items".into(),
                format!("{} items", items.len()),
                format!("at least {min} items"),
            ));
        }
    }

    // The schema of one item.
    let source = if kind == "array" {
        &parameter["items"]
    } else {
        parameter
    };
    let item_type = if numeric_text {
        "number"
    } else {
        source["type"].as_str().unwrap_or("string")
    };
    let mut schema = Map::new();
    schema.insert("type".into(), json!(item_type));
    for key in [
        "format",
        "enum",
        "maximum",
        "minimum",
        "exclusiveMaximum",
        "exclusiveMinimum",
        "maxLength",
        "minLength",
        "pattern",
        "multipleOf",
    ] {
        let value = source.get(key).or_else(|| parameter.get(key));
        if let Some(value) = value {
            if (key == "maximum" && counted) || (key == "format" && value == "csv") {
                continue;
            }
            schema.insert(key.into(), value.clone());
        }
    }
    let schema = Value::Object(schema);
    let validator = jsonschema::options()
        .with_draft(Draft::Draft201909)
        .should_validate_formats(true)
        .build(&schema)
        .unwrap_or_else(|e| panic!("parameter schema {schema}: {e}"));
    let item_format = schema["format"].as_str();
    for item in items {
        let value = match item_type {
            "integer" => item.parse::<i64>().map(Value::from).ok(),
            "number" => item.parse::<f64>().ok().map(|n| json!(n)),
            "boolean" => match item {
                "true" => Some(Value::Bool(true)),
                "false" => Some(Value::Bool(false)),
                _ => None,
            },
            _ => Some(Value::String(item.to_string())),
        };
        let Some(value) = value else {
            out.push((
                "type".into(),
                item.to_string(),
                format!("not a {item_type}"),
            ));
            continue;
        };
        // Integer formats bound the range (JSON Schema formats apply to strings only).
        let range = match item_format {
            Some("int32") => Some((i32::MIN as i64, i32::MAX as i64)),
            Some("int64") => Some((i64::MIN, i64::MAX)),
            _ => None,
        };
        if let (Some((lo, hi)), Some(n)) = (range, value.as_i64()) {
            if n < lo || n > hi {
                out.push(("format".into(), item.to_string(), "out of range".into()));
            }
        }
        for error in validator.iter_errors(&value) {
            let keyword = error
                .schema_path
                .as_str()
                .rsplit('/')
                .next()
                .unwrap_or("")
                .to_string();
            out.push((keyword, item.to_string(), error.to_string()));
        }
    }
    out
}

fn percent_decode(segment: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", segment.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn snippet(bytes: &[u8]) -> String {
    shorten(&String::from_utf8_lossy(bytes), 120)
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        format!("{}…", text.chars().take(max).collect::<String>())
    }
}

/// The violations of many exchanges sorted into excused, known and new.
#[derive(Default)]
pub struct Report {
    /// Violation key -> (count, first violation).
    pub found: BTreeMap<(String, Side, String, String), (usize, Violation)>,
}

impl Report {
    pub fn add(&mut self, violations: Vec<Violation>) {
        for violation in violations {
            self.found
                .entry(violation.key())
                .or_insert((0, violation))
                .0 += 1;
        }
    }

    /// Findings no allowance of `allowed` excuses, one line each.
    pub fn unexcused(&self, allowed: &[Allowance]) -> Vec<String> {
        self.found
            .values()
            .filter(|(_, v)| !allowed.iter().any(|a| a.matches(v)))
            .map(|(n, v)| format!("{v} ({n}x)"))
            .collect()
    }

    /// Allowances of `list` that excused nothing: fixed, or no longer exercised.
    pub fn unused<'a>(&self, list: &'a [Allowance]) -> Vec<&'a Allowance> {
        list.iter()
            .filter(|a| !self.found.values().any(|(_, v)| a.matches(v)))
            .collect()
    }

    pub fn lines(&self) -> Vec<String> {
        self.found
            .values()
            .map(|(n, v)| format!("{v} ({n}x)"))
            .collect()
    }
}
