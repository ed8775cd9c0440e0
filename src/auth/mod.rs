//! Access tokens for the API. With OAuth2 the connector refreshes tokens
//! itself: once per run while the token lives, single-flight across streams
//! and — through the token cache's file lock — across processes (a rotated
//! refresh token is single-use, so two concurrent refreshes would kill the
//! connection). Every token response is written to the token cache before
//! anything else, and every rotated refresh token is handed to the protocol
//! (`Output::config_updated`) before it is relied on. The token endpoint
//! allows about one request a second: token requests are spaced so, and its
//! 429s are waited out and retried a bounded number of times.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use oauth2::basic::{BasicClient, BasicErrorResponseType, BasicTokenResponse};
use oauth2::{
    AsyncHttpClient, AuthType, ClientId, ClientSecret, RefreshToken, RequestTokenError,
    TokenResponse, TokenUrl,
};
use tokio::sync::Mutex;

use crate::config::{AccessTokenCredentials, Credentials, LoadedConfig, OAuth2Credentials, Secret};
use crate::diagnostics::{Diagnostics, Level};
use crate::error::{Error, Result};
pub mod token_cache;

use token_cache::{CacheLock, LockError, TokenCache, TokenSet};

/// A token this close to expiry is refreshed before use, so it cannot expire
/// between being handed out and reaching the API.
const EXPIRY_MARGIN: Duration = Duration::minutes(5);
/// Assumed lifetime when the token response omits `expires_in`.
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::hours(1);
/// Network failures, 5xx and 429 of the token endpoint are retried this
/// often, waiting 1, 2, 4, … seconds in between.
const TOKEN_ATTEMPTS: u32 = 6;
/// The token endpoint allows about one request a second (API support,
/// community thread 399094): token requests of this process are spaced so.
const TOKEN_REQUEST_SPACING: StdDuration = StdDuration::from_secs(1);
/// A token endpoint that cannot be reached at all (refused, no route, no
/// name, no answer to connecting) is tried again only while the attempt can
/// end within this long of the first, so an unreachable `token_url` fails
/// within it rather than after every attempt.
const TOKEN_UNREACHABLE_WINDOW: StdDuration = StdDuration::from_secs(12);
/// How long connecting to the token endpoint may take.
const TOKEN_CONNECT_TIMEOUT: StdDuration = StdDuration::from_secs(5);
const SCOPES_NEEDED: [&str; 3] = ["contact_data", "campaign_data", "account_read"];

/// Called with the full new config when the token endpoint rotates the
/// refresh token, before the new token is relied on: the protocol persists it.
pub type TokenRotated = Arc<dyn Fn(&serde_json::Value) + Send + Sync>;

pub struct Auth {
    source: TokenSource,
}

enum TokenSource {
    /// `auth_type: access_token`: used as is, cannot be renewed.
    Fixed(Secret),
    OAuth(Box<OAuth>),
}

struct OAuth {
    client_id: Secret,
    /// `None` for a public client (a PKCE or device-flow application): it
    /// sends its client_id in the form body and authenticates no further.
    client_secret: Option<Secret>,
    token_url: url::Url,
    http: reqwest::Client,
    config: LoadedConfig,
    diagnostics: Diagnostics,
    on_rotation: TokenRotated,
    cache: TokenCache,
    /// The config's refresh token: tried last when a newer one is rejected.
    configured: Secret,
    tokens: Mutex<Tokens>,
    /// When the answer to the latest token request arrived.
    last_token_answer: std::sync::Mutex<Option<tokio::time::Instant>>,
}

/// Where the refresh token in hand came from, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Config,
    Cache,
    /// The token endpoint's answer to an earlier refresh of this run.
    ThisRun,
}

struct Tokens {
    /// The token endpoint refused the credentials, or could not be reached:
    /// every later request for a token gets the same error without asking
    /// again.
    refused: Option<Error>,
    refresh: Secret,
    origin: Origin,
    access: Option<(Secret, DateTime<Utc>)>,
}

impl Tokens {
    fn valid_access(&self) -> Option<Secret> {
        match &self.access {
            Some((token, expires)) if *expires - EXPIRY_MARGIN > Utc::now() => Some(token.clone()),
            _ => None,
        }
    }
}

/// Why a refresh failed: `invalid_grant` may still be cured by another
/// refresh token; anything else is final.
enum Refused {
    InvalidGrant(Option<String>),
    Failed(Error),
}

impl Auth {
    pub fn new(
        config: &LoadedConfig,
        diagnostics: Diagnostics,
        on_rotation: TokenRotated,
    ) -> Result<Self> {
        let source = match &config.config.credentials {
            Credentials::AccessToken(AccessTokenCredentials { access_token }) => {
                TokenSource::Fixed(access_token.clone())
            }
            Credentials::OAuth2(OAuth2Credentials {
                client_id,
                client_secret,
                refresh_token,
                access_token,
                token_expiry_date,
            }) => {
                let access = match (access_token, token_expiry_date) {
                    (Some(token), Some(expiry)) => DateTime::parse_from_rfc3339(expiry)
                        .ok()
                        .map(|at| (token.clone(), at.with_timezone(&Utc))),
                    _ => None,
                };
                let cache_path = config.config.token_cache_path.as_deref();
                if cache_path.is_some_and(|p| p.trim().is_empty()) {
                    return Err(Error::config(
                        "invalid config field `token_cache_path`: it is empty",
                    ));
                }
                let http = reqwest::Client::builder()
                    // The token endpoint must answer itself; following a
                    // redirect would send the client secret or the refresh
                    // token elsewhere.
                    .redirect(reqwest::redirect::Policy::none())
                    .timeout(StdDuration::from_secs(60))
                    .connect_timeout(TOKEN_CONNECT_TIMEOUT)
                    .user_agent(crate::user_agent::USER_AGENT)
                    .build()
                    .map_err(|e| Error::system(format!("cannot build HTTP client: {e}")))?;
                let oauth = OAuth {
                    client_id: client_id.clone(),
                    client_secret: client_secret.clone(),
                    token_url: config.token_url.clone(),
                    http,
                    config: config.clone(),
                    diagnostics,
                    on_rotation,
                    cache: TokenCache::new(cache_path, &config.token_url, client_id),
                    configured: refresh_token.clone(),
                    tokens: Mutex::new(Tokens {
                        refused: None,
                        refresh: refresh_token.clone(),
                        origin: Origin::Config,
                        access,
                    }),
                    last_token_answer: std::sync::Mutex::new(None),
                };
                // A newer token set from an earlier run wins over the config.
                {
                    let mut tokens = oauth.tokens.try_lock().expect("not shared yet");
                    oauth.adopt_cached(&mut tokens);
                }
                TokenSource::OAuth(Box::new(oauth))
            }
        };
        Ok(Auth { source })
    }

    /// A token for the next request: the current one while it is valid,
    /// otherwise a freshly refreshed one.
    pub async fn access_token(&self) -> Result<Secret> {
        match &self.source {
            TokenSource::Fixed(token) => Ok(token.clone()),
            TokenSource::OAuth(oauth) => {
                let mut tokens = oauth.tokens.lock().await;
                match tokens.valid_access() {
                    Some(token) => Ok(token),
                    None => oauth.refresh_once(&mut tokens, None).await,
                }
            }
        }
    }

    /// The API answered 401 to `rejected`. Refresh once, unless another
    /// stream already replaced that token, then the replacement is returned.
    pub async fn token_rejected(&self, rejected: &Secret) -> Result<Secret> {
        match &self.source {
            TokenSource::Fixed(_) => Err(Error::config(
                "the API rejected the configured access token (401): it expired or was revoked. \
                 Configure a new access token, or use auth_type oauth2.0 with a refresh token \
                 so the connector can renew tokens itself",
            )),
            TokenSource::OAuth(oauth) => {
                let mut tokens = oauth.tokens.lock().await;
                match &tokens.access {
                    Some((current, _)) if current != rejected => Ok(current.clone()),
                    _ => oauth.refresh_once(&mut tokens, Some(rejected)).await,
                }
            }
        }
    }
}

impl OAuth {
    /// Refreshes, unless the credentials were already refused this run: one
    /// refused refresh token is one token request and one error, shared by
    /// every stream (which stops the run).
    async fn refresh_once(&self, tokens: &mut Tokens, rejected: Option<&Secret>) -> Result<Secret> {
        if let Some(error) = &tokens.refused {
            return Err(error.clone());
        }
        let result = self.refresh(tokens, rejected).await;
        if let Err(error) = &result {
            let stop = if error.failure == crate::error::FailureType::Config {
                Some(error.clone().stopping(crate::error::RunStop::Refused))
            } else {
                // An unreachable token endpoint: tried for every stream,
                // it would cost each the same seconds for the same error.
                error.stops_run.map(|_| error.clone())
            };
            if let Some(error) = stop {
                tokens.refused = Some(error.clone());
                return Err(error);
            }
        }
        result
    }

    /// Takes the cached token set of the lineage of the refresh token in hand
    /// when it is newer: another run (or another process, while this one
    /// waited for the lock) refreshed since that token was issued. A newer
    /// refresh token is reported like a rotated one, so every client that
    /// can persist it does.
    fn adopt_cached(&self, tokens: &mut Tokens) {
        let cached = match self.cache.lookup(&self.cache.key(&tokens.refresh)) {
            Ok(Some(cached)) => cached,
            Ok(None) => return,
            Err(error) => {
                self.diagnostics
                    .log(Level::Warn, &format!("ignoring the token cache: {error}"));
                return;
            }
        };
        if cached.refresh_token != tokens.refresh {
            self.diagnostics.log(
                Level::Info,
                &format!(
                    "using the newer tokens from the token cache {}",
                    self.cache.path().display()
                ),
            );
            tokens.refresh = cached.refresh_token.clone();
            tokens.origin = Origin::Cache;
            tokens.access = Some((cached.access_token.clone(), cached.expires));
            self.report(&cached);
        } else if tokens
            .access
            .as_ref()
            .is_none_or(|(_, expires)| *expires < cached.expires)
        {
            tokens.access = Some((cached.access_token, cached.expires));
        }
    }

    /// Refreshes under the cross-process lock, unless the cache already holds
    /// a valid access token other than `rejected`; the caller holds the
    /// in-process token lock, so only one refresh is ever in flight.
    async fn refresh(&self, tokens: &mut Tokens, rejected: Option<&Secret>) -> Result<Secret> {
        let _lock = self.lock().await?;
        self.adopt_cached(tokens);
        if let Some(access) = tokens.valid_access() {
            if rejected != Some(&access) {
                return Ok(access);
            }
        }
        let mut tried = Vec::new();
        let response = loop {
            tried.push(tokens.origin);
            match self.exchange(&tokens.refresh).await {
                Ok(response) => break response,
                // The cache may hold a token of a server that forgot it (a
                // restarted sandbox); the config's is the last resort.
                Err(Refused::InvalidGrant(_))
                    if tokens.origin != Origin::Config && tokens.refresh != self.configured =>
                {
                    self.diagnostics.log(
                        Level::Warn,
                        &format!(
                            "{} was rejected (invalid_grant); trying the one in the config",
                            self.describe(tokens.origin)
                        ),
                    );
                    tokens.refresh = self.configured.clone();
                    tokens.origin = Origin::Config;
                }
                Err(Refused::InvalidGrant(description)) => {
                    return Err(self.invalid_grant(&tried, description))
                }
                Err(Refused::Failed(error)) => return Err(error),
            }
        };

        let lifetime = response
            .expires_in()
            .and_then(|d| Duration::from_std(d).ok())
            .unwrap_or(DEFAULT_TOKEN_LIFETIME);
        self.check_scopes(&response);
        let spent = tokens.refresh.clone();
        let set = TokenSet {
            refresh_token: response
                .refresh_token()
                .map(|t| Secret::new(t.secret().clone()))
                .unwrap_or_else(|| spent.clone()),
            access_token: Secret::new(response.access_token().secret().clone()),
            expires: Utc::now() + lifetime,
        };
        // Persist, then hand it on at once, before any other work: the
        // rotated refresh token has killed the spent one.
        let keys = [&self.configured, &spent, &set.refresh_token].map(|t| self.cache.key(t));
        match self.cache.store(&keys, &set) {
            Ok(None) => {}
            Ok(Some(warning)) => self.diagnostics.log(Level::Warn, &warning),
            Err(error) => self.diagnostics.log(
                Level::Warn,
                &format!(
                    "{error}: the new tokens are kept only where the client stores them; \
                     set token_cache_path to a writable file"
                ),
            ),
        }
        if set.refresh_token != spent {
            self.report(&set);
        }
        tokens.refresh = set.refresh_token.clone();
        tokens.origin = Origin::ThisRun;
        tokens.access = Some((set.access_token.clone(), set.expires));
        Ok(set.access_token)
    }

    /// The cross-process refresh lock; a cache that cannot be locked at all
    /// (read-only disk) only costs the cross-process guarantee.
    async fn lock(&self) -> Result<Option<CacheLock>> {
        let waiting = || {
            self.diagnostics.log(
                Level::Info,
                "waiting for another process refreshing a token of the same token cache",
            )
        };
        match self.cache.lock(waiting).await {
            Ok(lock) => Ok(Some(lock)),
            Err(LockError::Unavailable(error)) => {
                self.diagnostics.log(
                    Level::Warn,
                    &format!("{error}: refreshing without the cross-process lock"),
                );
                Ok(None)
            }
            Err(LockError::TimedOut(error)) => Err(Error::system(error)),
        }
    }

    /// Hands the full updated config to the protocol (CONTROL message,
    /// rewritten `--config` file).
    fn report(&self, set: &TokenSet) {
        let updated = self.config.with_tokens(
            set.refresh_token.expose(),
            set.access_token.expose(),
            &set.expires.to_rfc3339_opts(SecondsFormat::Secs, true),
        );
        (self.on_rotation)(&updated);
    }

    /// Runs the refresh-token grant, retrying network failures. A confidential
    /// client authenticates with HTTP Basic; a public one sends its client_id
    /// in the form body, with no secret.
    async fn exchange(&self, refresh: &Secret) -> std::result::Result<BasicTokenResponse, Refused> {
        let client = BasicClient::new(ClientId::new(self.client_id.expose().to_string()))
            .set_token_uri(TokenUrl::from_url(self.token_url.clone()));
        let client = match &self.client_secret {
            Some(secret) => {
                client.set_client_secret(ClientSecret::new(secret.expose().to_string()))
            }
            None => client.set_auth_type(AuthType::RequestBody),
        };
        let refresh = RefreshToken::new(refresh.expose().to_string());
        let http = &self.http;
        // The token endpoint's own failures (5xx, 429, an error page) are
        // told apart from its OAuth answers, so they are retried and their
        // status named.
        let call = |request: oauth2::HttpRequest| async move {
            let response = http.call(request).await.map_err(|e| {
                let text = crate::error::with_causes(&e.to_string(), &e);
                match &e {
                    oauth2::HttpClientError::Reqwest(inner) if inner.is_connect() => {
                        TokenHttpError::Unreachable(text)
                    }
                    _ => TokenHttpError::Transport(text),
                }
            })?;
            let status = response.status().as_u16();
            match status {
                200..=299 | 400 | 401 => Ok(response),
                _ => Err(TokenHttpError::Status(status)),
            }
        };
        let started = std::time::Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let wait = StdDuration::from_secs(1 << (attempt - 1));
            self.wait_for_token_slot().await;
            let answer = client
                .exchange_refresh_token(&refresh)
                .request_async(&call)
                .await;
            *self
                .last_token_answer
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = Some(tokio::time::Instant::now());
            match answer {
                Ok(response) => return Ok(response),
                Err(RequestTokenError::ServerResponse(error)) => {
                    let description = error.error_description().cloned();
                    return Err(match error.error() {
                        BasicErrorResponseType::InvalidGrant => Refused::InvalidGrant(description),
                        other => Refused::Failed(self.rejected(other, description)),
                    });
                }
                Err(RequestTokenError::Request(TokenHttpError::Status(status)))
                    if !retryable(status) =>
                {
                    return Err(Refused::Failed(Error::system(format!(
                        "cannot refresh the access token: token_url {} answered HTTP {status}",
                        self.token_url
                    ))))
                }
                Err(error)
                    if attempt < TOKEN_ATTEMPTS
                        && !(unreachable(&error)
                            && started.elapsed() + wait + TOKEN_CONNECT_TIMEOUT
                                > TOKEN_UNREACHABLE_WINDOW) =>
                {
                    let failure = match &error {
                        RequestTokenError::Request(TokenHttpError::Status(429)) => {
                            "is rate limited (HTTP 429; it allows about one request a second)"
                                .to_string()
                        }
                        other => format!("failed ({})", describe(other)),
                    };
                    self.diagnostics.log(
                        Level::Warn,
                        &format!(
                            "token endpoint {} {failure}, retrying in {}s",
                            self.token_url,
                            wait.as_secs()
                        ),
                    );
                    tokio::time::sleep(wait).await;
                }
                Err(error) => {
                    let failed = Error::system(format!(
                        "cannot refresh the access token at token_url {}: {}",
                        self.token_url,
                        describe(&error)
                    ));
                    // No stream can do better this run.
                    return Err(Refused::Failed(if unreachable(&error) {
                        failed.stopping(crate::error::RunStop::TokenUnreachable)
                    } else {
                        failed
                    }));
                }
            }
        }
    }

    /// Waits until a token request may go out: [`TOKEN_REQUEST_SPACING`]
    /// after the answer to the one before (a refresh, its retries, and a
    /// second refresh token tried after `invalid_grant` alike), so the
    /// endpoint, too, sees them at least that far apart. Token requests are
    /// sent one at a time (under the token lock), so the answer is known.
    async fn wait_for_token_slot(&self) {
        let last = *self
            .last_token_answer
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(last) = last {
            tokio::time::sleep_until(last + TOKEN_REQUEST_SPACING).await;
        }
    }

    fn check_scopes(&self, response: &BasicTokenResponse) {
        let Some(scopes) = response.scopes() else {
            return;
        };
        let granted: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
        let missing: Vec<&str> = SCOPES_NEEDED
            .into_iter()
            .filter(|s| !granted.contains(s))
            .collect();
        if !missing.is_empty() {
            self.diagnostics.log(
                Level::Warn,
                &format!(
                    "the token lacks scopes {}: streams that need them will fail; \
                     re-authorize the application with those scopes",
                    missing.join(", ")
                ),
            );
        }
    }

    fn describe(&self, origin: Origin) -> String {
        match origin {
            Origin::Config => "the refresh token in the config".into(),
            Origin::Cache => format!(
                "the refresh token from the token cache {}",
                self.cache.path().display()
            ),
            Origin::ThisRun => "the refresh token this run received".into(),
        }
    }

    fn invalid_grant(&self, tried: &[Origin], description: Option<String>) -> Error {
        let detail = description.map(|d| format!(" ({d})")).unwrap_or_default();
        let tried: Vec<String> = tried.iter().map(|&o| self.describe(o)).collect();
        let subject = match tried.as_slice() {
            [one] => format!("{one} was"),
            many => format!("{} were", many.join(" and ")),
        };
        Error::config(format!(
            "{subject} rejected (invalid_grant{detail}): revoked, already used (Constant \
             Contact rotates refresh tokens) or expired after 180 days unused. Re-authorize the \
             application to get a new refresh token"
        ))
    }

    fn rejected(&self, kind: &BasicErrorResponseType, description: Option<String>) -> Error {
        let detail = description.map(|d| format!(" ({d})")).unwrap_or_default();
        match kind {
            BasicErrorResponseType::InvalidClient | BasicErrorResponseType::UnauthorizedClient => {
                let kind = kind.as_ref();
                Error::config(match self.client_secret {
                    Some(_) => format!(
                        "the token endpoint rejected client_id/client_secret ({kind}{detail}): \
                         check the application's API key and client secret (an application \
                         using the authorization-code flow is confidential and needs its \
                         client secret; a PKCE or device-flow application has none, so leave \
                         credentials.client_secret out)"
                    ),
                    None => format!(
                        "the token endpoint rejected client_id without a client secret \
                         ({kind}{detail}): an application using the authorization-code flow \
                         is confidential and needs its client secret in \
                         credentials.client_secret; a PKCE or device-flow application has \
                         none, so check its API key"
                    ),
                })
            }
            BasicErrorResponseType::InvalidScope => Error::config(format!(
                "the token endpoint rejected the scopes (invalid_scope{detail}): re-authorize with \
                 contact_data campaign_data account_read offline_access"
            )),
            other => Error::system(format!(
                "the token endpoint {} refused to refresh the token ({}{detail})",
                self.token_url,
                other.as_ref()
            )),
        }
    }
}

/// Why a token request failed below the OAuth layer.
#[derive(Debug)]
enum TokenHttpError {
    /// Connecting failed: the endpoint cannot be reached.
    Unreachable(String),
    Transport(String),
    Status(u16),
}

fn unreachable<T: oauth2::ErrorResponse>(error: &RequestTokenError<TokenHttpError, T>) -> bool {
    matches!(
        error,
        RequestTokenError::Request(TokenHttpError::Unreachable(_))
    )
}

impl std::fmt::Display for TokenHttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenHttpError::Unreachable(text) | TokenHttpError::Transport(text) => {
                f.write_str(text)
            }
            TokenHttpError::Status(status) => write!(f, "HTTP {status}"),
        }
    }
}

impl std::error::Error for TokenHttpError {}

/// Statuses of the token endpoint worth asking again.
fn retryable(status: u16) -> bool {
    status == 429 || status >= 500
}

fn describe<RE: std::error::Error, T: oauth2::ErrorResponse>(
    error: &RequestTokenError<RE, T>,
) -> String {
    match error {
        RequestTokenError::Request(e) => crate::error::with_causes(&e.to_string(), e),
        RequestTokenError::Parse(e, _) => format!("unexpected response: {e}"),
        RequestTokenError::Other(text) => text.clone(),
        RequestTokenError::ServerResponse(e) => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scripted_server::{Answer, ScriptedServer};

    /// Its body does not matter: the status says it.
    const RATE_LIMITED: &str = r#"{"error":"too_many_requests"}"#;

    fn token(access: &str) -> String {
        format!(
            r#"{{"access_token":"{access}","token_type":"Bearer","expires_in":86400,"refresh_token":"refresh-after-{access}"}}"#
        )
    }

    #[tokio::test]
    async fn token_endpoint_429s_are_waited_out_and_requests_stay_a_second_apart() {
        let server = ScriptedServer::start(vec![
            Answer::json(429, RATE_LIMITED),
            Answer::json(200, &token("first")),
            Answer::json(200, &token("second")),
        ])
        .await;
        let cache = tempfile::tempdir().unwrap();
        let config = LoadedConfig::from_value(serde_json::json!({
            "credentials": {"auth_type": "oauth2.0", "client_id": "id",
                "client_secret": "secret", "refresh_token": "refresh"},
            "token_url": server.url.join("token").unwrap().as_str(),
            "token_cache_path": cache.path().join("tokens.json").to_str().unwrap(),
        }))
        .unwrap();
        let warnings = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let log = warnings.clone();
        let diagnostics = Diagnostics::new(move |_, message| {
            log.lock().unwrap().push(message.to_string());
        });
        let auth = Auth::new(&config, diagnostics, Arc::new(|_| {})).unwrap();

        let first = auth.access_token().await.expect("the 429 is ridden out");
        assert_eq!(first.expose(), "first");
        // The API refuses the new token at once: the second refresh still
        // waits for its second.
        let second = auth.token_rejected(&first).await.unwrap();
        assert_eq!(second.expose(), "second");

        let asked = server.asked();
        assert_eq!(asked.len(), 3);
        assert!(asked[0].body.contains("grant_type=refresh_token"));
        for pair in asked.windows(2) {
            let gap = pair[1].at - pair[0].at;
            assert!(gap >= TOKEN_REQUEST_SPACING, "{gap:?}");
        }
        let warnings = warnings.lock().unwrap();
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("429") && w.contains("retrying")),
            "{warnings:?}"
        );
    }
}
