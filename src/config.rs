//! The connector's configuration: its typed shape (from which `spec` is
//! generated), loading with errors that name the offending field, and the
//! values derived from it (start date, URLs, rate).

use std::path::Path;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use crate::error::{Error, Result};

pub const DEFAULT_API_BASE_URL: &str = "https://api.cc.email/v3";
pub const DEFAULT_TOKEN_URL: &str = "https://authz.constantcontact.com/oauth2/default/v1/token";
pub const DEFAULT_REQUESTS_PER_SECOND: u32 = 4;

/// A secret string: serialised as is (configs are written back), never shown
/// by `Debug`, so it cannot leak through a log line or an error message.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
#[schemars(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"**********\"")
    }
}

/// Source Constant Contact configuration.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "Constant Contact Source Spec")]
pub struct Config {
    /// How the connector authenticates with the Constant Contact V3 API.
    #[schemars(title = "Authentication", extend("order" = 0))]
    pub credentials: Credentials,

    /// Records created or updated before this moment are not read by incremental
    /// streams on their first sync. `YYYY-MM-DD` or an RFC 3339 date-time (UTC when
    /// no offset is given). Defaults to one year before the sync starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        title = "Start date",
        extend("order" = 1, "examples" = ["2024-01-01", "2024-01-01T00:00:00Z"]),
        regex(pattern = r"^\d{4}-\d{2}-\d{2}([Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})?)?$")
    )]
    pub start_date: Option<String>,

    /// Base URL of the V3 API, ending in `/v3`. Change it only to reach a proxy
    /// or the embedded sandbox.
    #[serde(default = "default_api_base_url")]
    #[schemars(title = "API base URL", extend("order" = 2, "format" = "uri"))]
    pub api_base_url: String,

    /// OAuth2 token endpoint used to refresh access tokens.
    #[serde(default = "default_token_url")]
    #[schemars(title = "Token URL", extend("order" = 3, "format" = "uri"))]
    pub token_url: String,

    /// Requests per second sent to the API, shared by all streams. Constant
    /// Contact allows 4 per second and 10,000 per day for each account.
    #[serde(default = "default_requests_per_second")]
    #[schemars(title = "Requests per second", range(min = 1, max = 100), extend("order" = 4))]
    pub requests_per_second: u32,
}

/// Credentials: an OAuth2 application with a refresh token, or an access token.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "auth_type")]
pub enum Credentials {
    #[serde(rename = "oauth2.0")]
    OAuth2(OAuth2Credentials),
    #[serde(rename = "access_token")]
    AccessToken(AccessTokenCredentials),
}

/// OAuth2 application credentials and a refresh token; the connector refreshes
/// access tokens itself and reports rotated refresh tokens.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "OAuth2.0")]
pub struct OAuth2Credentials {
    /// Client ID (API key) of your Constant Contact application.
    #[schemars(title = "Client ID", extend("airbyte_secret" = true))]
    pub client_id: Secret,
    /// Client secret of your Constant Contact application.
    #[schemars(title = "Client secret", extend("airbyte_secret" = true))]
    pub client_secret: Secret,
    /// Refresh token from the authorization-code flow (scope `offline_access`).
    /// Constant Contact rotates it on every refresh; the connector reports the new one.
    #[schemars(title = "Refresh token", extend("airbyte_secret" = true))]
    pub refresh_token: Secret,
    /// Current access token, reused while it is valid to save a refresh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(title = "Access token", extend("airbyte_secret" = true))]
    pub access_token: Option<Secret>,
    /// When the access token expires (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(title = "Access token expiry", extend("format" = "date-time"))]
    pub token_expiry_date: Option<String>,
}

/// A ready access token, used as is; when it expires the sync fails and a new
/// token must be configured.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "Access token")]
pub struct AccessTokenCredentials {
    /// An OAuth2 access token for the Constant Contact V3 API.
    #[schemars(title = "Access token", extend("airbyte_secret" = true))]
    pub access_token: Secret,
}

fn default_api_base_url() -> String {
    DEFAULT_API_BASE_URL.to_string()
}

fn default_token_url() -> String {
    DEFAULT_TOKEN_URL.to_string()
}

fn default_requests_per_second() -> u32 {
    DEFAULT_REQUESTS_PER_SECOND
}

/// A loaded config: the typed view plus the JSON it came from, so that a
/// rewritten config (rotated refresh token) keeps keys this version ignores.
/// `Debug` leaves out `raw`, which holds secrets in the clear.
#[derive(Clone)]
pub struct LoadedConfig {
    pub config: Config,
    pub raw: Value,
    pub start_date: DateTime<Utc>,
    pub api_base_url: Url,
    pub token_url: Url,
}

impl std::fmt::Debug for LoadedConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedConfig")
            .field("config", &self.config)
            .field("start_date", &self.start_date)
            .finish_non_exhaustive()
    }
}

impl LoadedConfig {
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::config(format!("cannot read config file {}: {e}", path.display()))
        })?;
        let raw: Value = serde_json::from_str(&text).map_err(|e| {
            Error::config(format!(
                "config file {} is not valid JSON: {e}",
                path.display()
            ))
        })?;
        Self::from_value(raw).map_err(|e| e.context(format!("config file {}", path.display())))
    }

    pub fn from_value(raw: Value) -> Result<Self> {
        if !raw.is_object() {
            return Err(Error::config("the config must be a JSON object"));
        }
        let config: Config = serde_path_to_error::deserialize(&raw)
            .map_err(|e| credentials_error(&raw).unwrap_or_else(|| field_error("", e)))?;
        config.validate_credentials()?;
        let start_date = match &config.start_date {
            Some(text) => parse_start_date(text)?,
            None => Utc::now() - Duration::days(365),
        };
        let api_base_url = parse_http_url("api_base_url", &config.api_base_url)?;
        let token_url = parse_http_url("token_url", &config.token_url)?;
        if !(1..=100).contains(&config.requests_per_second) {
            return Err(Error::config(format!(
                "invalid config field `requests_per_second`: {} is outside 1..=100 \
                 (Constant Contact allows 4 per second)",
                config.requests_per_second
            )));
        }
        Ok(LoadedConfig {
            config,
            raw,
            start_date,
            api_base_url,
            token_url,
        })
    }

    /// The raw config with the OAuth token fields replaced; other keys untouched.
    pub fn with_tokens(&self, refresh_token: &str, access_token: &str, expiry: &str) -> Value {
        let mut raw = self.raw.clone();
        if let Some(credentials) = raw.get_mut("credentials").and_then(Value::as_object_mut) {
            credentials.insert("refresh_token".into(), Value::from(refresh_token));
            credentials.insert("access_token".into(), Value::from(access_token));
            credentials.insert("token_expiry_date".into(), Value::from(expiry));
        }
        raw
    }
}

impl Config {
    fn validate_credentials(&self) -> Result<()> {
        let blank = |field: &str, value: &Secret| {
            if value.expose().trim().is_empty() {
                Err(Error::config(format!(
                    "invalid config field `credentials.{field}`: it is empty"
                )))
            } else {
                Ok(())
            }
        };
        match &self.credentials {
            Credentials::OAuth2(OAuth2Credentials {
                client_id,
                client_secret,
                refresh_token,
                token_expiry_date,
                ..
            }) => {
                blank("client_id", client_id)?;
                blank("client_secret", client_secret)?;
                blank("refresh_token", refresh_token)?;
                if let Some(expiry) = token_expiry_date {
                    DateTime::parse_from_rfc3339(expiry).map_err(|e| {
                        Error::config(format!(
                            "invalid config field `credentials.token_expiry_date`: \
                             {expiry:?} is not an RFC 3339 date-time ({e})"
                        ))
                    })?;
                }
                Ok(())
            }
            Credentials::AccessToken(AccessTokenCredentials { access_token }) => {
                blank("access_token", access_token)
            }
        }
    }
}

fn field_error(prefix: &str, error: serde_path_to_error::Error<serde_json::Error>) -> Error {
    let path = error.path().to_string();
    let inner = error.into_inner();
    if path == "." {
        Error::config(format!("invalid config{prefix}: {inner}"))
    } else {
        Error::config(format!("invalid config field `{prefix}{path}`: {inner}"))
    }
}

/// serde reads a tagged enum through a buffer and so loses the path of an
/// error inside it; reading the chosen variant again recovers the field name.
fn credentials_error(raw: &Value) -> Option<Error> {
    let credentials = raw.get("credentials")?;
    let result = match credentials.get("auth_type")?.as_str()? {
        "oauth2.0" => serde_path_to_error::deserialize::<_, OAuth2Credentials>(credentials).err(),
        "access_token" => {
            serde_path_to_error::deserialize::<_, AccessTokenCredentials>(credentials).err()
        }
        _ => None,
    };
    result.map(|e| field_error("credentials.", e))
}

/// Parses `YYYY-MM-DD` (midnight UTC) or an RFC 3339 date-time; a date-time
/// without an offset is read as UTC.
pub fn parse_start_date(text: &str) -> Result<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(date
            .and_hms_opt(0, 0, 0)
            .expect("midnight exists")
            .and_utc());
    }
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    if let Ok(at) = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f") {
        return Ok(at.and_utc());
    }
    Err(Error::config(format!(
        "invalid config field `start_date`: {text:?} is neither YYYY-MM-DD nor an RFC 3339 \
         date-time such as 2024-01-01T00:00:00Z"
    )))
}

fn parse_http_url(field: &str, text: &str) -> Result<Url> {
    let url = Url::parse(text).map_err(|e| {
        Error::config(format!(
            "invalid config field `{field}`: {text:?} is not a URL ({e})"
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(Error::config(format!(
            "invalid config field `{field}`: {text:?} must be an http(s) URL with a host"
        )));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn oauth(extra: Value) -> Value {
        let mut config = json!({"credentials": {"auth_type": "oauth2.0", "client_id": "id",
            "client_secret": "secret", "refresh_token": "refresh"}});
        for (k, v) in extra.as_object().unwrap() {
            config[k] = v.clone();
        }
        config
    }

    #[test]
    fn start_date_accepts_date_and_date_time() {
        let day = parse_start_date("2024-03-01").unwrap();
        assert_eq!(day.to_rfc3339(), "2024-03-01T00:00:00+00:00");
        let at = parse_start_date("2024-03-01T10:00:00+02:00").unwrap();
        assert_eq!(at.to_rfc3339(), "2024-03-01T08:00:00+00:00");
        assert!(parse_start_date("01/03/2024").is_err());
    }

    #[test]
    fn defaults_apply() {
        let loaded = LoadedConfig::from_value(oauth(json!({}))).unwrap();
        assert_eq!(loaded.api_base_url.as_str(), DEFAULT_API_BASE_URL);
        assert_eq!(loaded.config.requests_per_second, 4);
        let age = Utc::now() - loaded.start_date;
        assert!((364..=366).contains(&age.num_days()));
    }

    #[test]
    fn errors_name_the_field() {
        let err =
            LoadedConfig::from_value(oauth(json!({"requests_per_second": "fast"}))).unwrap_err();
        assert!(err.message.contains("requests_per_second"), "{err}");
        let err = LoadedConfig::from_value(json!({"credentials": {"auth_type": "oauth2.0",
            "client_id": "id", "client_secret": "s"}}))
        .unwrap_err();
        assert!(err.message.contains("refresh_token"), "{err}");
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let loaded = LoadedConfig::from_value(oauth(json!({}))).unwrap();
        let shown = format!("{:?}", loaded.config);
        assert!(
            !shown.contains("secret\"") && !shown.contains("\"refresh\""),
            "{shown}"
        );
    }
}
