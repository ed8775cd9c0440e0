//! The one error type of the connector. Every failure carries the message a
//! user needs (what is wrong, what to do) and whose fault it is, because the
//! Airbyte platform treats `config_error` (the user must act) differently from
//! `system_error` (retry or report a bug).

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureType {
    /// The user's config, catalog, state or account must change.
    Config,
    /// The API or the network failed, or the connector has a bug.
    System,
}

impl FailureType {
    pub fn as_airbyte(self) -> &'static str {
        match self {
            FailureType::Config => "config_error",
            FailureType::System => "system_error",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Error {
    pub failure: FailureType,
    pub message: String,
    /// The API said the resource does not exist (404): for a child of a
    /// parent record that vanished mid-run this is news, not a failure.
    pub not_found: bool,
    /// The API refused the request (403): a missing scope or user privilege,
    /// which a caller that knows the privilege can name.
    pub forbidden: bool,
    /// The API refused the request as invalid (400): its error messages, so
    /// a caller that sent an optional value can see whether they name it.
    pub invalid_request: Option<Vec<String>>,
    /// Nothing else can succeed this run: the other streams stop too, keep
    /// their state, and the reason is reported once.
    pub stops_run: Option<RunStop>,
}

/// Why a whole run stops early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStop {
    /// The token endpoint refused the credentials.
    Refused,
    /// The token endpoint cannot be reached (`token_url`).
    TokenUnreachable,
    /// The API key's daily request quota is spent.
    QuotaSpent,
    /// The run spent the requests the config allows it
    /// (`max_requests_per_run`): a planned stop, not a failure.
    BudgetSpent,
}

impl Error {
    pub fn config(message: impl Into<String>) -> Self {
        Error {
            failure: FailureType::Config,
            message: message.into(),
            not_found: false,
            forbidden: false,
            invalid_request: None,
            stops_run: None,
        }
    }

    pub fn system(message: impl Into<String>) -> Self {
        Error {
            failure: FailureType::System,
            message: message.into(),
            not_found: false,
            forbidden: false,
            invalid_request: None,
            stops_run: None,
        }
    }

    /// The same error, stopping the run for `reason`.
    pub fn stopping(self, reason: RunStop) -> Self {
        Error {
            stops_run: Some(reason),
            ..self
        }
    }

    /// Prefixes the message with where the error happened, keeping its kind.
    pub fn context(self, context: impl fmt::Display) -> Self {
        Error {
            message: format!("{context}: {}", self.message),
            ..self
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

/// `summary` followed by every underlying cause of `error`: library errors
/// keep the useful part ("connection refused") in their sources.
pub fn with_causes(summary: &str, error: &dyn std::error::Error) -> String {
    let mut text = summary.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}

/// What a JSON document (config, saved state) got wrong, read from a serde
/// error: serde says `missing field` under the parent's path and `expected
/// u32` without the value, so both are put back together here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Misfit {
    /// The field at this path (`credentials.refresh_token`) is absent.
    Missing(String),
    /// The value at this path is not what it must be: `problem` says what
    /// was expected and what was given.
    Wrong { path: String, problem: String },
}

impl Misfit {
    /// The misfit `error` found in `root`, with paths under `prefix`
    /// (`credentials.` when `root` is the credentials object). A `Secret`
    /// document's values are not shown, only their kind.
    pub fn of(
        prefix: &str,
        error: &serde_path_to_error::Error<serde_json::Error>,
        root: &serde_json::Value,
        shown: Shown,
    ) -> Misfit {
        let at = error.path().to_string();
        let at = if at == "." { String::new() } else { at };
        let message = error.inner().to_string();
        if let Some(field) = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.strip_suffix('`'))
        {
            let parent = if at.is_empty() { at } else { at + "." };
            return Misfit::Missing(format!("{prefix}{parent}{field}"));
        }
        let given = pointer(error.path()).and_then(|p| root.pointer(&p));
        // serde's "invalid type: string \"x\", expected u32" (or "invalid
        // value"); other messages (an unknown variant) name no value.
        let misfit =
            message.starts_with("invalid type: ") || message.starts_with("invalid value: ");
        let problem = match (message.rsplit_once(", expected ").filter(|_| misfit), given) {
            (Some((_, expected)), Some(given)) => {
                let given = match shown {
                    Shown::Value => value_text(given),
                    Shown::Secret => kind_of(given).to_string(),
                };
                format!("expected {}, got {given}", readable_type(expected))
            }
            // serde's own message shows the value.
            _ if misfit && shown == Shown::Secret => "it has the wrong type".to_string(),
            _ => message,
        };
        let path = format!("{prefix}{at}");
        Misfit::Wrong {
            path: path.trim_end_matches('.').to_string(),
            problem,
        }
    }
}

/// Whether an error may show the values of the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    Value,
    /// Credentials: only what kind of value was given.
    Secret,
}

/// The JSON pointer of a serde path (`/custom_streams/0/path`).
fn pointer(path: &serde_path_to_error::Path) -> Option<String> {
    use serde_path_to_error::Segment;
    let mut pointer = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => pointer.push_str(&format!("/{index}")),
            Segment::Map { key } => {
                pointer.push('/');
                pointer.push_str(&key.replace('~', "~0").replace('/', "~1"));
            }
            Segment::Enum { .. } => {}
            Segment::Unknown => return None,
        }
    }
    Some(pointer)
}

/// serde's name of a type, as a person says it.
fn readable_type(expected: &str) -> String {
    let whole = |max: u64| format!("a whole number from 0 to {max}");
    match expected {
        "u8" => whole(u8::MAX.into()),
        "u16" => whole(u16::MAX.into()),
        "u32" => whole(u32::MAX.into()),
        "u64" | "usize" => whole(u64::MAX),
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number".to_string(),
        "f32" | "f64" => "a number".to_string(),
        "a sequence" => "a list".to_string(),
        "a map" => "an object".to_string(),
        struct_name if struct_name.starts_with("struct ") => "an object".to_string(),
        other => other.to_string(),
    }
}

/// What kind of JSON value `value` is.
fn kind_of(value: &serde_json::Value) -> &'static str {
    use serde_json::Value;
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A value as given, cut short when long.
fn value_text(value: &serde_json::Value) -> String {
    const LONGEST: usize = 60;
    let text = value.to_string();
    if text.chars().count() <= LONGEST {
        return text;
    }
    let cut: String = text.chars().take(LONGEST).collect();
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)] // only deserialised, to provoke errors
    struct Outer {
        count: u32,
        inner: Vec<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        name: String,
    }

    fn misfit(prefix: &str, value: serde_json::Value) -> Misfit {
        let error = serde_path_to_error::deserialize::<_, Outer>(&value).unwrap_err();
        Misfit::of(prefix, &error, &value, Shown::Value)
    }

    #[test]
    fn a_missing_field_is_named_by_its_full_path() {
        assert_eq!(
            misfit("", json!({"inner": []})),
            Misfit::Missing("count".into())
        );
        assert_eq!(
            misfit("outer.", json!({"count": 1, "inner": [{"name": "a"}, {}]})),
            Misfit::Missing("outer.inner[1].name".into())
        );
    }

    #[test]
    fn a_wrong_value_names_the_type_expected_and_the_value_given() {
        assert_eq!(
            misfit("", json!({"count": "fast", "inner": []})),
            Misfit::Wrong {
                path: "count".into(),
                problem: "expected a whole number from 0 to 4294967295, got \"fast\"".into()
            }
        );
        assert_eq!(
            misfit("", json!({"count": -1, "inner": []})),
            Misfit::Wrong {
                path: "count".into(),
                problem: "expected a whole number from 0 to 4294967295, got -1".into()
            }
        );
        assert_eq!(
            misfit("", json!({"count": 1, "inner": [{"name": 7}]})),
            Misfit::Wrong {
                path: "inner[0].name".into(),
                problem: "expected a string, got 7".into()
            }
        );
        let Misfit::Wrong { problem, .. } =
            misfit("", json!({"count": 1, "inner": "x".repeat(99)}))
        else {
            panic!("a wrong type")
        };
        assert!(problem.starts_with("expected a list, got \"xxx") && problem.ends_with('…'));
    }

    #[test]
    fn other_serde_messages_are_kept() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        enum Kind {
            Oauth,
        }
        let value = json!("password");
        let error = serde_path_to_error::deserialize::<_, Kind>(&value).unwrap_err();
        assert_eq!(
            Misfit::of("", &error, &value, Shown::Secret),
            Misfit::Wrong {
                path: String::new(),
                problem: "unknown variant `password`, expected `Oauth`".into()
            }
        );
    }

    #[test]
    fn a_secret_value_is_not_shown() {
        let value = json!({"count": "s3cr3t", "inner": []});
        let error = serde_path_to_error::deserialize::<_, Outer>(&value).unwrap_err();
        assert_eq!(
            Misfit::of("", &error, &value, Shown::Secret),
            Misfit::Wrong {
                path: "count".into(),
                problem: "expected a whole number from 0 to 4294967295, got a string".into()
            }
        );
    }
}
