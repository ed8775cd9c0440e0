//! Access tokens for the API. With OAuth2 the connector refreshes tokens
//! itself: once per run while the token lives, single-flight across streams
//! (a rotated refresh token is single-use, so two concurrent refreshes would
//! kill the connection), and every rotated refresh token is handed to the
//! protocol (`Output::config_updated`) before it is relied on.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{ClientId, ClientSecret, RefreshToken, RequestTokenError, TokenResponse, TokenUrl};
use tokio::sync::Mutex;

use crate::config::{AccessTokenCredentials, Credentials, LoadedConfig, OAuth2Credentials, Secret};
use crate::error::{Error, Result};
use crate::protocol::{Level, Output};

/// A token this close to expiry is refreshed before use, so it cannot expire
/// between being handed out and reaching the API.
const EXPIRY_MARGIN: Duration = Duration::minutes(5);
/// Assumed lifetime when the token response omits `expires_in`.
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::hours(1);
/// Network failures talking to the token endpoint are retried this often.
const TOKEN_ATTEMPTS: u32 = 3;
const SCOPES_NEEDED: [&str; 3] = ["contact_data", "campaign_data", "account_read"];

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
    client_secret: Secret,
    token_url: url::Url,
    http: reqwest::Client,
    config: LoadedConfig,
    output: Arc<dyn Output>,
    tokens: Mutex<Tokens>,
}

struct Tokens {
    refresh: Secret,
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

impl Auth {
    pub fn new(config: &LoadedConfig, output: Arc<dyn Output>) -> Result<Self> {
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
                let http = reqwest::Client::builder()
                    // The token endpoint must answer itself; following a
                    // redirect would send the client secret elsewhere.
                    .redirect(reqwest::redirect::Policy::none())
                    .timeout(StdDuration::from_secs(60))
                    .user_agent(crate::http::USER_AGENT)
                    .build()
                    .map_err(|e| Error::system(format!("cannot build HTTP client: {e}")))?;
                TokenSource::OAuth(Box::new(OAuth {
                    client_id: client_id.clone(),
                    client_secret: client_secret.clone(),
                    token_url: config.token_url.clone(),
                    http,
                    config: config.clone(),
                    output,
                    tokens: Mutex::new(Tokens {
                        refresh: refresh_token.clone(),
                        access,
                    }),
                }))
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
                    None => oauth.refresh(&mut tokens).await,
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
                    _ => oauth.refresh(&mut tokens).await,
                }
            }
        }
    }
}

impl OAuth {
    /// Runs the refresh-token grant; the caller holds the token lock, so only
    /// one refresh is ever in flight.
    async fn refresh(&self, tokens: &mut Tokens) -> Result<Secret> {
        let client = BasicClient::new(ClientId::new(self.client_id.expose().to_string()))
            .set_client_secret(ClientSecret::new(self.client_secret.expose().to_string()))
            .set_token_uri(TokenUrl::from_url(self.token_url.clone()));
        let refresh = RefreshToken::new(tokens.refresh.expose().to_string());
        let mut attempt = 0;
        let response = loop {
            attempt += 1;
            match client
                .exchange_refresh_token(&refresh)
                .request_async(&self.http)
                .await
            {
                Ok(response) => break response,
                Err(RequestTokenError::ServerResponse(error)) => {
                    return Err(self.rejected(error.error(), error.error_description()))
                }
                Err(error) if attempt < TOKEN_ATTEMPTS => {
                    self.output.log(
                        Level::Warn,
                        &format!(
                            "token endpoint {} failed ({}), retrying",
                            self.token_url,
                            describe(&error)
                        ),
                    );
                    tokio::time::sleep(StdDuration::from_secs(u64::from(attempt))).await;
                }
                Err(error) => {
                    return Err(Error::system(format!(
                        "cannot refresh the access token at token_url {}: {}",
                        self.token_url,
                        describe(&error)
                    )))
                }
            }
        };

        let lifetime = response
            .expires_in()
            .and_then(|d| Duration::from_std(d).ok())
            .unwrap_or(DEFAULT_TOKEN_LIFETIME);
        let expires = Utc::now() + lifetime;
        let access = Secret::new(response.access_token().secret().clone());
        if let Some(scopes) = response.scopes() {
            let granted: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
            let missing: Vec<&str> = SCOPES_NEEDED
                .into_iter()
                .filter(|s| !granted.contains(s))
                .collect();
            if !missing.is_empty() {
                self.output.log(
                    Level::Warn,
                    &format!(
                        "the token lacks scopes {}: streams that need them will fail; \
                         re-authorize the application with those scopes",
                        missing.join(", ")
                    ),
                );
            }
        }
        if let Some(rotated) = response.refresh_token() {
            if rotated.secret() != tokens.refresh.expose() {
                tokens.refresh = Secret::new(rotated.secret().clone());
                // Persist first: the old refresh token is already dead.
                let updated = self.config.with_tokens(
                    tokens.refresh.expose(),
                    access.expose(),
                    &expires.to_rfc3339_opts(SecondsFormat::Secs, true),
                );
                self.output.config_updated(&updated);
            }
        }
        tokens.access = Some((access.clone(), expires));
        Ok(access)
    }

    fn rejected(&self, kind: &BasicErrorResponseType, description: Option<&String>) -> Error {
        let detail = description.map(|d| format!(" ({d})")).unwrap_or_default();
        match kind {
            BasicErrorResponseType::InvalidGrant => Error::config(format!(
                "the refresh token was rejected (invalid_grant{detail}): it was revoked, already \
                 used (Constant Contact rotates refresh tokens) or expired after 180 days unused. \
                 Re-authorize the application to get a new refresh token"
            )),
            BasicErrorResponseType::InvalidClient | BasicErrorResponseType::UnauthorizedClient => {
                Error::config(format!(
                    "the token endpoint rejected client_id/client_secret ({}{detail}): check the \
                     application's API key and client secret",
                    kind.as_ref()
                ))
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

fn describe<RE: std::error::Error, T: oauth2::ErrorResponse>(
    error: &RequestTokenError<RE, T>,
) -> String {
    match error {
        RequestTokenError::Request(e) => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(cause) = source {
                text = format!("{text}: {cause}");
                source = cause.source();
            }
            text
        }
        RequestTokenError::Parse(e, _) => format!("unexpected response: {e}"),
        RequestTokenError::Other(text) => text.clone(),
        RequestTokenError::ServerResponse(e) => e.to_string(),
    }
}
