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
