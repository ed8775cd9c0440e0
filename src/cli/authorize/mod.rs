//! `auth`: obtains a refresh token from the terminal and writes a connector config.
//! Two flows: authorization code with PKCE (`code_flow`, the browser comes back to a
//! loopback listener or the user pastes the redirect URL) and the device authorization
//! grant (`device_flow`, for machines without a browser). An application using the
//! authorization-code flow is a confidential client and needs its secret; a PKCE or
//! device-flow application is a public client and has none (PKCE protects the code
//! exchange). Nothing secret is printed: tokens and the client secret only reach the
//! config file, written with mode 0600.

mod browser;
mod callback;
mod code_flow;
mod config_file;
mod device_flow;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use chrono::{SecondsFormat, Utc};
use oauth2::basic::{BasicClient, BasicTokenResponse};
use oauth2::{
    AuthType, ClientId, ClientSecret, EndpointNotSet, EndpointSet, HttpClientError,
    RequestTokenError, Scope, StandardErrorResponse, TokenResponse, TokenUrl,
};
use url::Url;

use crate::config::{Secret, DEFAULT_TOKEN_URL};

const DEFAULT_AUTHORIZE_URL: &str = "https://authz.constantcontact.com/oauth2/default/v1/authorize";
const DEFAULT_DEVICE_URL: &str =
    "https://authz.constantcontact.com/oauth2/default/v1/device/authorize";
const DEFAULT_REDIRECT_URI: &str = "http://127.0.0.1:8719/callback";
const DEFAULT_SCOPES: [&str; 4] = [
    "contact_data",
    "campaign_data",
    "account_read",
    "offline_access",
];
const SECRET_ENV: &str = "CONSTANT_CONTACT_CLIENT_SECRET";

/// Authorize the connector with Constant Contact and write its config.
#[derive(Debug, clap::Args)]
pub struct AuthorizeArgs {
    /// Client ID (API key) of your Constant Contact application.
    #[arg(long)]
    client_id: String,
    /// Client secret of the application. Else $CONSTANT_CONTACT_CLIENT_SECRET, else the
    /// one already in --config (for the same client ID). An application using the
    /// authorization-code flow needs it; a PKCE or device-flow application has none:
    /// without one, auth runs as a public client.
    #[arg(long)]
    client_secret: Option<String>,
    /// Connector config to create or update (other keys are kept; mode 0600).
    #[arg(long, value_name = "OUT.json")]
    config: PathBuf,
    /// Scopes to request, space- or comma-separated.
    #[arg(long, num_args = 1.., default_values = DEFAULT_SCOPES)]
    scopes: Vec<String>,
    /// Use the device authorization flow: sign in from any other device.
    #[arg(long)]
    device: bool,
    /// Redirect URI registered for the application. A loopback http URI is served
    /// here (port 0 picks a free port); for any other, paste the URL the browser
    /// ends on.
    #[arg(long, default_value = DEFAULT_REDIRECT_URI, conflicts_with = "device")]
    redirect_uri: Url,
    /// Do not try to open a browser; only print the URL.
    #[arg(long, conflicts_with = "device")]
    no_browser: bool,
    /// Authorization endpoint.
    #[arg(long, default_value = DEFAULT_AUTHORIZE_URL)]
    authorize_url: Url,
    /// Device authorization endpoint.
    #[arg(long, default_value = DEFAULT_DEVICE_URL)]
    device_url: Url,
    /// Token endpoint; written to the config as `token_url` unless it is the default.
    #[arg(long, default_value = DEFAULT_TOKEN_URL)]
    token_url: Url,
    /// V3 API base URL to write to the config as `api_base_url`.
    #[arg(long)]
    api_base_url: Option<Url>,
    /// Seconds to wait for the user to sign in and consent.
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    timeout: u64,
}

impl AuthorizeArgs {
    fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout)
    }
}

/// An OAuth client with the token endpoint set; each flow adds its own endpoint.
type Client =
    BasicClient<EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// Errors a token or device-authorization request can end with.
type TokenError<T> = RequestTokenError<HttpClientError<reqwest::Error>, StandardErrorResponse<T>>;

pub fn run(args: AuthorizeArgs) -> i32 {
    let result = crate::cli::setup::runtime()
        .map_err(|e| anyhow!(e))
        .and_then(|rt| rt.block_on(authorize(&args)));
    match result {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("auth: {error:#}");
            1
        }
    }
}

async fn authorize(args: &AuthorizeArgs) -> Result<()> {
    for (flag, url) in [
        ("--authorize-url", &args.authorize_url),
        ("--device-url", &args.device_url),
        ("--token-url", &args.token_url),
    ] {
        if !matches!(url.scheme(), "http" | "https") {
            bail!("{flag} must be an http(s) URL, not {url}");
        }
    }
    let existing = config_file::load(&args.config)?;
    let secret = client_secret(args, existing.as_ref());
    let client = BasicClient::new(ClientId::new(args.client_id.clone()))
        .set_token_uri(TokenUrl::from_url(args.token_url.clone()));
    let client = match &secret {
        Some(secret) => client.set_client_secret(ClientSecret::new(secret.expose().to_string())),
        None => {
            eprintln!(
                "No client secret (--client-secret, ${SECRET_ENV}, or credentials.client_secret \
                 in {} for this client ID): authorizing as a public client (a PKCE or \
                 device-flow application).",
                args.config.display()
            );
            client.set_auth_type(AuthType::RequestBody)
        }
    };
    let public = secret.is_none();
    let http = reqwest::Client::builder()
        // The token endpoint must answer itself: a redirect would carry the secret away.
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .user_agent(crate::user_agent::USER_AGENT)
        .build()
        .context("cannot build the HTTP client")?;
    let scopes = scopes(&args.scopes);
    let response = if args.device {
        device_flow::run(args, client, public, &http, scopes).await?
    } else {
        code_flow::run(args, client, public, &http, scopes).await?
    };
    let issued = issued(args, secret, &response)?;
    let config = config_file::merge(existing, &issued);
    if let Err(error) = crate::config::LoadedConfig::from_value(config.clone()) {
        eprintln!("warning: the config does not load yet, fix it before a sync: {error}");
    }
    config_file::write(&args.config, &config)?;
    eprintln!(
        "Authorized. Wrote the credentials to {} (mode 0600). Try it:\n  \
         source-constant-contact check --config {}",
        args.config.display(),
        args.config.display()
    );
    Ok(())
}

/// The client secret from the flag, the environment or the existing config (for the
/// same client ID); `None` for a public client.
fn client_secret(args: &AuthorizeArgs, existing: Option<&serde_json::Value>) -> Option<Secret> {
    let from_config = || {
        let credentials = existing?.get("credentials")?;
        (credentials.get("client_id")?.as_str()? == args.client_id)
            .then(|| {
                credentials
                    .get("client_secret")?
                    .as_str()
                    .map(str::to_string)
            })
            .flatten()
    };
    let given = |s: &String| !s.trim().is_empty();
    args.client_secret
        .clone()
        .filter(given)
        .or_else(|| std::env::var(SECRET_ENV).ok().filter(given))
        .or_else(|| from_config().filter(given))
        .map(Secret::new)
}

fn scopes(given: &[String]) -> Vec<Scope> {
    given
        .iter()
        .flat_map(|s| s.split([' ', ',']))
        .filter(|s| !s.is_empty())
        .map(|s| Scope::new(s.to_string()))
        .collect()
}

/// What a successful flow leaves for the config.
pub struct Issued {
    client_id: String,
    /// `None` for a public client.
    client_secret: Option<Secret>,
    refresh_token: Secret,
    access_token: Secret,
    token_expiry_date: String,
    token_url: Option<Url>,
    api_base_url: Option<Url>,
}

fn issued(
    args: &AuthorizeArgs,
    client_secret: Option<Secret>,
    response: &BasicTokenResponse,
) -> Result<Issued> {
    let refresh_token = response.refresh_token().ok_or_else(|| {
        anyhow!(
            "Constant Contact issued no refresh token: request the offline_access scope \
             (--scopes) so the connector can renew access on its own"
        )
    })?;
    if let Some(granted) = response.scopes() {
        let missing: Vec<&str> = DEFAULT_SCOPES
            .into_iter()
            .filter(|needed| !granted.iter().any(|g| g.as_str() == *needed))
            .collect();
        if !missing.is_empty() {
            eprintln!(
                "warning: the token lacks scopes {}; streams that need them will fail",
                missing.join(", ")
            );
        }
    }
    let lifetime = response.expires_in().unwrap_or(Duration::from_secs(3600));
    let expiry = Utc::now() + chrono::Duration::from_std(lifetime).unwrap_or_default();
    Ok(Issued {
        client_id: args.client_id.clone(),
        client_secret,
        refresh_token: Secret::new(refresh_token.secret().clone()),
        access_token: Secret::new(response.access_token().secret().clone()),
        token_expiry_date: expiry.to_rfc3339_opts(SecondsFormat::Secs, true),
        token_url: (args.token_url.as_str() != DEFAULT_TOKEN_URL).then(|| args.token_url.clone()),
        api_base_url: args.api_base_url.clone(),
    })
}

/// A failed token (or device authorization) request, said so the user knows what to fix;
/// `public` when the client sent no secret.
fn token_error<T: AsRef<str> + oauth2::ErrorResponseType + std::fmt::Display + 'static>(
    url: &Url,
    error: TokenError<T>,
    public: bool,
) -> anyhow::Error {
    let server = match error {
        RequestTokenError::ServerResponse(e) => e,
        RequestTokenError::Request(e) => {
            return anyhow::Error::new(e).context(format!("cannot reach {url}"))
        }
        RequestTokenError::Parse(e, _) => return anyhow!("unexpected answer from {url}: {e}"),
        RequestTokenError::Other(e) => return anyhow!("request to {url} failed: {e}"),
    };
    let code = server.error().as_ref();
    let detail = server
        .error_description()
        .map(|d| format!(": {d}"))
        .unwrap_or_default();
    match code {
        "invalid_client" | "unauthorized_client" if public => anyhow!(
            "{url} rejected the client, which sent no client secret ({code}{detail}): an \
             application using the authorization-code flow is confidential and needs its client \
             secret (--client-secret or ${SECRET_ENV}); a PKCE or device-flow application has \
             none, so check the client ID (API key) and that the application allows this flow"
        ),
        "invalid_client" | "unauthorized_client" => anyhow!(
            "{url} rejected the client ({code}{detail}): check the client ID (API key) and \
             client secret (an application using the authorization-code flow is confidential \
             and needs its secret; a PKCE or device-flow application has none: give none), and \
             that the application allows this flow"
        ),
        "invalid_grant" => anyhow!(
            "{url} rejected the grant (invalid_grant{detail}): the code expired or was already \
             used, or the redirect URI or PKCE verifier did not match; run auth again"
        ),
        "access_denied" => anyhow!("the sign-in was denied (access_denied{detail})"),
        "expired_token" => anyhow!(
            "the device code expired before the sign-in was approved (expired_token{detail}); \
             run auth --device again"
        ),
        "invalid_scope" => anyhow!(
            "{url} rejected the scopes (invalid_scope{detail}): check --scopes against the \
             application's settings"
        ),
        _ => anyhow!("{url} refused the request ({code}{detail})"),
    }
}
