//! The connector's configuration: its typed shape (from which `spec` is
//! generated), loading with errors that name the offending field, and the
//! values derived from it (start date, URLs, rate).

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use crate::error::{Error, Misfit, Result, Shown};

pub const DEFAULT_API_BASE_URL: &str = "https://api.cc.email/v3";
pub const DEFAULT_TOKEN_URL: &str = "https://authz.constantcontact.com/oauth2/default/v1/token";
pub const DEFAULT_REQUESTS_PER_SECOND: u32 = 4;
/// Nearly all opens and clicks arrive within days of a send; a month later
/// new tracking rows are rare, so re-reading older activities costs requests
/// for nothing.
pub const DEFAULT_REPORT_LOOKBACK_DAYS: u32 = 30;
/// How often an incremental `contacts` sync reads every contact again.
pub const DEFAULT_CONTACTS_RECONCILE_DAYS: u32 = 7;

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

    /// Incremental streams read no changes after this moment (`YYYY-MM-DD` or RFC
    /// 3339); contact reports end here. Defaults to now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(title = "End date", extend("order" = 6, "examples" = ["2025-12-31"]))]
    pub end_date: Option<String>,

    /// A start date this many days before each run, recomputed every run (instead
    /// of `start_date`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(title = "Start, days ago", range(min = 0, max = 3650), extend("order" = 7))]
    pub start_days_ago: Option<u32>,

    /// An end date this many days before each run, recomputed every run (instead
    /// of `end_date`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(title = "End, days ago", range(min = 0, max = 3650), extend("order" = 8))]
    pub end_days_ago: Option<u32>,

    /// Read campaign activities, their schedules, send history, previews, links,
    /// stats and tracking reports only for these campaigns (ids). Empty: all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(title = "Campaign IDs", extend("order" = 9))]
    pub campaign_ids: Vec<String>,

    /// Contacts whose contact reports (activity summary, activity details, open and
    /// click rates) are read: those endpoints take one contact per request, so
    /// they read only the contacts listed here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(title = "Contact IDs for contact reports", extend("order" = 10))]
    pub contact_ids: Vec<String>,

    /// Read only contacts with these statuses (all, active, deleted, not_set,
    /// pending_confirmation, temp_hold, unsubscribed). Empty: all, deleted included.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(title = "Contact statuses", extend("order" = 11))]
    pub contact_status: Vec<String>,

    /// Read only contacts that are members of these lists (at most 25 ids).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(title = "List IDs", extend("order" = 12))]
    pub list_ids: Vec<String>,

    /// Read only contacts with these tags (at most 50 ids).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(title = "Tag IDs", extend("order" = 13))]
    pub tag_ids: Vec<String>,

    /// Campaign activity ids (UUIDs) of the landing pages whose reports the six
    /// `landing_page_*` streams read. No documented API call lists landing pages,
    /// so they are named here: take each id from Constant Contact (where its web
    /// app shows it is not documented either; Constant Contact support can tell
    /// you). Empty: the connector looks for campaign activities with the role
    /// `landing_page`, a role the API's documentation does not list
    /// (unconfirmed), and warns when it finds none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        title = "Landing page activity IDs",
        inner(regex(pattern = r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$")),
        extend("order" = 19, "examples" = [["0e3feddd-c8da-4d53-a507-aae5082b8b75"]])
    )]
    pub landing_page_activity_ids: Vec<String>,

    /// Incremental syncs re-read the landing-page reports only for activities of
    /// campaigns changed within this many days (email tracking reports are read
    /// again when their stats change, whatever their age).
    #[serde(default = "default_report_lookback_days")]
    #[schemars(title = "Report lookback (days)", range(min = 1, max = 3650), extend("order" = 14))]
    pub report_lookback_days: u32,

    /// The most API requests one run may spend, to leave room on the API key's
    /// 10,000 a day for other applications. A run that reaches it stops cleanly
    /// with every stream's state saved, and the next run continues. Unset: no cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(title = "Max requests per run", range(min = 1), extend("order" = 17))]
    pub max_requests_per_run: Option<u32>,

    /// Every this many days an incremental `contacts` sync reads all contacts
    /// again, to deliver what no change filter of the API reveals: deletions and
    /// list-membership changes leave a contact's `updated_at` alone. 0 turns
    /// the pass off (such changes then reach the destination only with a
    /// later personal-details change or a full refresh).
    #[serde(default = "default_contacts_reconcile_days")]
    #[schemars(title = "Contacts reconciliation (days)", range(min = 0, max = 3650), extend("order" = 16))]
    pub contacts_reconcile_days: u32,

    /// Adds one column per custom field of the account to the `contacts` and
    /// `contacts_export` streams (`cf_` + the field's label in snake case, typed
    /// from the field's type), filled from each record's `custom_fields`, which
    /// stays as it is.
    /// Discover and every read then ask for the account's custom fields (one
    /// request per 100 fields). A read fills the columns of the catalog it is
    /// given: a renamed field keeps its column until the schema is discovered
    /// again, and a field created since is left in `custom_fields` with a
    /// warning.
    #[serde(default)]
    #[schemars(title = "Custom fields as columns", extend("order" = 18))]
    pub custom_fields_as_columns: bool,

    /// Your own streams: any GET endpoint of the V3 API, read like the built-in
    /// ones (pagination, incremental cursor, state).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(title = "Custom streams", extend("order" = 15))]
    pub custom_streams: Vec<CustomStream>,

    /// File where the connector keeps the newest OAuth tokens of every account it
    /// syncs (mode 0600), so that a rotated refresh token is never lost, whatever
    /// runs the connector. Defaults to `$SOURCE_CONSTANT_CONTACT_TOKEN_CACHE`, else
    /// `$XDG_STATE_HOME/source-constant-contact/tokens.json`, else
    /// `~/.local/state/source-constant-contact/tokens.json`. Point it at a mounted
    /// volume when the connector runs in a throwaway container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        title = "Token cache path",
        extend("order" = 5, "examples" = ["/state/tokens.json"])
    )]
    pub token_cache_path: Option<String>,

    /// Ask `/contacts` for each contact's SMS channel (`include=sms_channel`), which
    /// Constant Contact's SDK guide documents and its API contract does not. An API
    /// that refuses it costs one extra request and a warning each run, and the run
    /// goes on without it: set false then to stop asking.
    #[serde(default = "default_true")]
    #[schemars(title = "Contacts: ask for the SMS channel", extend("order" = 19))]
    pub contacts_include_sms_channel: bool,

    /// Fail a stream whose rows stay short of the count the API states for them
    /// (`contacts_count`, an activity's stats) after reading them twice: its
    /// position is not saved, so the next run reads them again. No public source
    /// says the reports list every row the stats count; set false if your
    /// account's never add up, to take the rows as they come with a warning.
    #[serde(default = "default_true")]
    #[schemars(title = "Fail on rows short of the API's counts", extend("order" = 20))]
    pub fail_on_audit_shortfall: bool,
}

/// One user-defined stream.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomStream {
    /// Stream name: lowercase letters, digits and underscores, not a built-in name.
    pub name: String,
    /// Path under the API base URL, e.g. `/contact_lists`.
    pub path: String,
    /// Key of the records array in each response; leave out when the response is
    /// itself the array of records or the one record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records_key: Option<String>,
    /// Fields that identify a record.
    #[serde(default)]
    pub primary_key: Vec<String>,
    /// Record field that orders changes (RFC 3339), for incremental reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor_field: Option<String>,
    /// Query parameter asking for records changed after a moment (with `cursor_field`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor_param: Option<String>,
    /// Query parameter asking for records changed before a moment; carries
    /// `end_date`/`end_days_ago`, which a custom incremental stream needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor_end_param: Option<String>,
    /// Page size, sent as `limit`; leave out for endpoints without pages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_size: Option<u32>,
    /// Fixed query parameters.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
    /// JSON Schema of a record; by default any object with the key and cursor fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_schema: Option<Value>,
}

/// The longest span in days any `*_days*` field accepts (ten years).
const MAX_DAYS: u32 = 3650;

/// The values the API's `/contacts?status=` accepts.
pub const CONTACT_STATUSES: &[&str] = &[
    "all",
    "active",
    "deleted",
    "not_set",
    "pending_confirmation",
    "temp_hold",
    "unsubscribed",
];

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
    /// Client secret of your Constant Contact application: required for an
    /// application using the authorization-code flow (a confidential client).
    /// Leave it out for a PKCE or device-flow application, which has none (a
    /// public client).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(title = "Client secret", extend("airbyte_secret" = true))]
    pub client_secret: Option<Secret>,
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

fn default_true() -> bool {
    true
}

fn default_contacts_reconcile_days() -> u32 {
    DEFAULT_CONTACTS_RECONCILE_DAYS
}

fn default_report_lookback_days() -> u32 {
    DEFAULT_REPORT_LOOKBACK_DAYS
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
    /// From `start_date` or `start_days_ago`.
    pub start_date: DateTime<Utc>,
    /// From `end_date` or `end_days_ago`; `None` is "now".
    pub end_date: Option<DateTime<Utc>>,
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
        let config: Config = serde_path_to_error::deserialize(&raw).map_err(|e| {
            credentials_error(&raw).unwrap_or_else(|| {
                let shown = if e.path().to_string().starts_with("credentials") {
                    Shown::Secret
                } else {
                    Shown::Value
                };
                field_error("", e, &raw, shown)
            })
        })?;
        config.validate_credentials()?;
        // The spec's bounds, checked before any date arithmetic.
        for (field, days, min) in [
            ("start_days_ago", config.start_days_ago, 0),
            ("end_days_ago", config.end_days_ago, 0),
            ("report_lookback_days", Some(config.report_lookback_days), 1),
            (
                "contacts_reconcile_days",
                Some(config.contacts_reconcile_days),
                0,
            ),
        ] {
            if let Some(days) = days.filter(|d| !(min..=MAX_DAYS).contains(d)) {
                return Err(Error::config(format!(
                    "invalid config field `{field}`: {days} is outside {min}..={MAX_DAYS} days"
                )));
            }
        }
        let now = Utc::now();
        let days_ago = |days: u32| now - Duration::days(i64::from(days));
        let start_date = match (&config.start_date, config.start_days_ago) {
            (Some(_), Some(_)) => return Err(both("start_date", "start_days_ago")),
            (Some(text), None) => parse_date("start_date", text)?,
            (None, Some(days)) => days_ago(days),
            (None, None) => days_ago(365),
        };
        let end_date = match (&config.end_date, config.end_days_ago) {
            (Some(_), Some(_)) => return Err(both("end_date", "end_days_ago")),
            (Some(text), None) => Some(parse_date("end_date", text)?),
            (None, days) => days.map(days_ago),
        };
        if end_date.is_some_and(|end| end <= start_date) {
            return Err(Error::config(
                "invalid config: the end date must come after the start date",
            ));
        }
        config.validate_filters()?;
        if end_date.is_some() {
            config.validate_custom_end()?;
        }
        let api_base_url = parse_http_url("api_base_url", &config.api_base_url)?;
        let token_url = parse_http_url("token_url", &config.token_url)?;
        if !(1..=100).contains(&config.requests_per_second) {
            return Err(Error::config(format!(
                "invalid config field `requests_per_second`: {} is outside 1..=100 \
                 (Constant Contact allows 4 per second)",
                config.requests_per_second
            )));
        }
        if config.max_requests_per_run == Some(0) {
            return Err(Error::config(
                "invalid config field `max_requests_per_run`: 0 would read nothing; leave it \
                 out for no cap",
            ));
        }
        Ok(LoadedConfig {
            config,
            raw,
            start_date,
            end_date,
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

fn both(a: &str, b: &str) -> Error {
    Error::config(format!("invalid config: set `{a}` or `{b}`, not both"))
}

impl Config {
    /// The boolean switches of optional request values (`StreamDef::optional`)
    /// that are off: the engine never asks for those values.
    pub fn optional_values_switched_off(&self) -> std::collections::HashSet<String> {
        [(
            "contacts_include_sms_channel",
            self.contacts_include_sms_channel,
        )]
        .into_iter()
        .filter(|(_, on)| !on)
        .map(|(switch, _)| switch.to_string())
        .collect()
    }

    /// An end date must reach every incremental custom stream's requests.
    fn validate_custom_end(&self) -> Result<()> {
        for (index, stream) in self.custom_streams.iter().enumerate() {
            if stream.cursor_field.is_some() && stream.cursor_end_param.is_none() {
                return Err(Error::config(format!(
                    "invalid config field `custom_streams[{index}]`: with `end_date` or \
                     `end_days_ago` set, the incremental stream {:?} needs `cursor_end_param`, \
                     the query parameter that carries the end date",
                    stream.name
                )));
            }
        }
        Ok(())
    }

    /// The API's own limits, checked up front rather than failing mid-sync.
    fn validate_filters(&self) -> Result<()> {
        if let Some(status) = self
            .contact_status
            .iter()
            .find(|s| !CONTACT_STATUSES.contains(&s.as_str()))
        {
            return Err(Error::config(format!(
                "invalid config field `contact_status`: {status:?} is not one of {}",
                CONTACT_STATUSES.join(", ")
            )));
        }
        for (field, ids, max) in [
            ("list_ids", &self.list_ids, 25),
            ("tag_ids", &self.tag_ids, 50),
        ] {
            if ids.len() > max {
                return Err(Error::config(format!(
                    "invalid config field `{field}`: the API accepts at most {max} ids, got {}",
                    ids.len()
                )));
            }
        }
        for (index, id) in self.landing_page_activity_ids.iter().enumerate() {
            if !is_uuid(id) {
                return Err(Error::config(format!(
                    "invalid config field `landing_page_activity_ids[{index}]`: {id:?} is not a \
                     campaign activity id, which is a UUID such as \
                     0e3feddd-c8da-4d53-a507-aae5082b8b75"
                )));
            }
        }
        if self.report_lookback_days == 0 {
            return Err(Error::config(
                "invalid config field `report_lookback_days`: it must be at least 1",
            ));
        }
        Ok(())
    }

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
                if let Some(client_secret) = client_secret {
                    blank("client_secret", client_secret)?;
                }
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

/// A UUID in its usual text form: 8-4-4-4-12 hex digits.
fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(group, len)| group.len() == len && group.chars().all(|c| c.is_ascii_hexdigit()))
}

fn field_error(
    prefix: &str,
    error: serde_path_to_error::Error<serde_json::Error>,
    root: &Value,
    shown: Shown,
) -> Error {
    match Misfit::of(prefix, &error, root, shown) {
        Misfit::Missing(path) => Error::config(format!(
            "invalid config: `{path}` is missing{}",
            how_to_fill(&path)
        )),
        Misfit::Wrong { path, problem } if path.is_empty() => {
            Error::config(format!("invalid config: {problem}"))
        }
        Misfit::Wrong { path, problem } => {
            Error::config(format!("invalid config field `{path}`: {problem}"))
        }
    }
}

/// Where a new user gets a required field that cannot be guessed.
fn how_to_fill(path: &str) -> &'static str {
    match path {
        "credentials" | "credentials.refresh_token" | "credentials.access_token" => {
            "; run `source-constant-contact auth` to authorize with Constant Contact and write \
             the credentials into the config (see `source-constant-contact auth --help`)"
        }
        "credentials.client_id" => {
            "; it is the API key of your application in Constant Contact's developer portal"
        }
        "credentials.auth_type" => {
            "; set it to \"oauth2.0\" (with a refresh token) or \"access_token\""
        }
        _ => "",
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
    result.map(|e| field_error("credentials.", e, credentials, Shown::Secret))
}

/// Parses `YYYY-MM-DD` (midnight UTC) or an RFC 3339 date-time; a date-time
/// without an offset is read as UTC.
pub fn parse_date(field: &str, text: &str) -> Result<DateTime<Utc>> {
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
        "invalid config field `{field}`: {text:?} is neither YYYY-MM-DD nor an RFC 3339 \
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
        let day = parse_date("start_date", "2024-03-01").unwrap();
        assert_eq!(day.to_rfc3339(), "2024-03-01T00:00:00+00:00");
        let at = parse_date("start_date", "2024-03-01T10:00:00+02:00").unwrap();
        assert_eq!(at.to_rfc3339(), "2024-03-01T08:00:00+00:00");
        assert!(parse_date("start_date", "01/03/2024").is_err());
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
    fn every_optional_value_switch_is_a_config_field_that_turns_it_off() {
        let registry = crate::streams::Registry::built_in();
        for def in registry.visible() {
            for optional in &def.optional {
                let on = LoadedConfig::from_value(oauth(json!({}))).unwrap();
                assert!(on.config.optional_values_switched_off().is_empty());
                let off = LoadedConfig::from_value(oauth(json!({&optional.switch: false})))
                    .unwrap_or_else(|e| panic!("{}: {e}", def.name));
                assert!(
                    off.config
                        .optional_values_switched_off()
                        .contains(&optional.switch),
                    "{}: {optional:?}",
                    def.name
                );
            }
        }
    }

    #[test]
    fn errors_name_the_field() {
        let err =
            LoadedConfig::from_value(oauth(json!({"requests_per_second": "fast"}))).unwrap_err();
        assert!(err.message.contains("requests_per_second"), "{err}");
        assert_eq!(
            err.message,
            "invalid config field `requests_per_second`: expected a whole number from 0 to \
             4294967295, got \"fast\""
        );
        let err = LoadedConfig::from_value(json!({"credentials": {"auth_type": "oauth2.0",
            "client_id": "id", "client_secret": "s"}}))
        .unwrap_err();
        assert!(
            err.message.starts_with(
                "invalid config: `credentials.refresh_token` is missing; run \
                 `source-constant-contact auth`"
            ),
            "{err}"
        );
        let err = LoadedConfig::from_value(json!({"start_date": "2024-01-01"})).unwrap_err();
        assert!(
            err.message
                .starts_with("invalid config: `credentials` is missing; run"),
            "{err}"
        );
        // Credentials are secret: their values never reach a message.
        let err = LoadedConfig::from_value(json!({"credentials": {"auth_type": "oauth2.0",
            "client_id": "id", "refresh_token": 12345}}))
        .unwrap_err();
        assert_eq!(
            err.message,
            "invalid config field `credentials.refresh_token`: expected a string, got a number"
        );
    }

    #[test]
    fn the_client_secret_is_optional_but_never_empty() {
        let mut public = oauth(json!({}));
        public["credentials"]
            .as_object_mut()
            .unwrap()
            .remove("client_secret");
        let loaded = LoadedConfig::from_value(public.clone()).unwrap();
        let Credentials::OAuth2(credentials) = &loaded.config.credentials else {
            panic!("oauth2.0 credentials");
        };
        assert!(credentials.client_secret.is_none());
        let written = serde_json::to_value(&loaded.config).unwrap();
        assert!(written["credentials"].get("client_secret").is_none());

        public["credentials"]["client_secret"] = " ".into();
        let err = LoadedConfig::from_value(public).unwrap_err();
        assert!(err.message.contains("credentials.client_secret"), "{err}");
    }

    #[test]
    fn landing_page_activity_ids_must_be_uuids() {
        let id = "0e3feddd-c8da-4d53-a507-aae5082b8b75";
        let loaded =
            LoadedConfig::from_value(oauth(json!({"landing_page_activity_ids": [id]}))).unwrap();
        assert_eq!(loaded.config.landing_page_activity_ids, [id]);
        assert!(LoadedConfig::from_value(oauth(json!({})))
            .unwrap()
            .config
            .landing_page_activity_ids
            .is_empty());
        for bad in [
            json!([id, "landing-page-1"]),
            json!([id, "0e3feddd-c8da-4d53-a507-aae5082b8b7"]),
            json!([id, "0e3feddd_c8da_4d53_a507_aae5082b8b75"]),
        ] {
            let err = LoadedConfig::from_value(oauth(json!({"landing_page_activity_ids": bad})))
                .unwrap_err();
            assert!(
                err.message.contains("`landing_page_activity_ids[1]`"),
                "{err}"
            );
        }
        let err =
            LoadedConfig::from_value(oauth(json!({"landing_page_activity_ids": id}))).unwrap_err();
        assert!(err.message.contains("landing_page_activity_ids"), "{err}");
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
