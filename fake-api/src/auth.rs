//! OAuth2 token endpoint (refresh-token grant with rotating refresh tokens, as the
//! Okta-based Constant Contact server does; authorization-code and device-code grants
//! from `oauth_flows`) and bearer-token lookup. Two clients are registered, as
//! Constant Contact has two kinds of application: the confidential `sandbox-client`
//! (authorization-code flow), which authenticates with its secret, and the public
//! `sandbox-public-client` (PKCE or device flow), which has no secret and sends its
//! client_id in the form body. Codes and refresh tokens belong to the client they were
//! issued to.

use super::limits::RateWindow;
use super::oauth_flows::{self, Flows};
use super::options::RefreshTokens;
use super::paging::Params;
use super::Shared;
use axum::{
    body::Bytes,
    extract::State,
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use base64::{
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
    Engine,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};
use url::form_urlencoded;

pub(crate) const TOKEN_PATH: &str = "/oauth2/default/v1/token";
pub(crate) const CLIENT_ID: &str = "sandbox-client";
pub(crate) const PUBLIC_CLIENT_ID: &str = "sandbox-public-client";
const SCOPE: &str = "contact_data campaign_data account_read offline_access";

pub(crate) struct AccessToken {
    expires: Instant,
    pub window: RateWindow,
}

/// Credentials of the OAuth clients the sandbox knows (one account).
pub(crate) struct AuthState {
    rng: ChaCha8Rng,
    /// The secret of the confidential client; the public one has none.
    pub client_secret: String,
    /// The only refresh token currently accepted.
    pub refresh_token: String,
    /// The client the refresh token was issued to: only it may redeem it.
    refresh_client: &'static str,
    access: HashMap<String, AccessToken>,
    pub token_requests: usize,
    /// Authorization and device codes awaiting redemption.
    pub flows: Flows,
}

impl AuthState {
    pub(crate) fn new(seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x0A07_4E5E_C2E7);
        let client_secret = random_token(&mut rng, 30);
        let refresh_token = random_token(&mut rng, 40);
        Self {
            rng,
            client_secret,
            refresh_token,
            refresh_client: CLIENT_ID,
            access: HashMap::new(),
            token_requests: 0,
            flows: Flows::default(),
        }
    }

    /// Replaces the refresh token, invalidating every earlier one.
    pub(crate) fn rotate_refresh_token(&mut self) -> String {
        self.refresh_token = random_token(&mut self.rng, 40);
        self.refresh_token.clone()
    }

    fn issue_access_token(&mut self, ttl: Duration) -> String {
        let token = random_token(&mut self.rng, 48);
        let entry = AccessToken {
            expires: Instant::now() + ttl,
            window: RateWindow::default(),
        };
        self.access.insert(token.clone(), entry);
        token
    }

    /// The access token's entry while it is valid.
    pub(crate) fn access_token(&mut self, token: &str, now: Instant) -> Option<&mut AccessToken> {
        self.access.get_mut(token).filter(|t| now < t.expires)
    }

    pub(crate) fn expire_access_tokens(&mut self) {
        self.access.clear();
    }
}

fn random_token(rng: &mut ChaCha8Rng, bytes: usize) -> String {
    let raw: Vec<u8> = (0..bytes).map(|_| rng.gen()).collect();
    URL_SAFE_NO_PAD.encode(raw)
}

/// `Bearer` token of a request, if any.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

fn form_decode(part: &str) -> String {
    form_urlencoded::parse(format!("v={part}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Client id and secret from an HTTP Basic header (each form-encoded, per RFC 6749).
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((form_decode(id), form_decode(secret)))
}

/// The registered client a token or device authorization request comes from: the
/// confidential one with its secret (HTTP Basic, or `client_id` and `client_secret` in
/// the form body), or the public one by `client_id` in the form body and no secret at
/// all. Anything else is `invalid_client` (401): a confidential client without its
/// secret, a public client with a secret, no client_id. The error is the response.
pub(super) fn authenticate_client(
    auth: &AuthState,
    headers: &HeaderMap,
    form: &Params,
) -> Result<&'static str, Box<Response>> {
    let basic = basic_credentials(headers).map(|(id, secret)| (id, Some(secret)));
    let (client_id, secret) = match (basic, form.get("client_id")) {
        (Some(_), Some(_)) => {
            let msg = "Cannot supply multiple client credentials.";
            return Err(Box::new(oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                msg,
            )));
        }
        (Some(basic), None) => basic,
        (None, Some(id)) => (
            id.to_string(),
            form.get("client_secret").map(str::to_string),
        ),
        (None, None) => (String::new(), None),
    };
    match (client_id.as_str(), secret) {
        (CLIENT_ID, Some(secret)) if secret == auth.client_secret => Ok(CLIENT_ID),
        (PUBLIC_CLIENT_ID, None) => Ok(PUBLIC_CLIENT_ID),
        _ => Err(Box::new(oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication failed.",
        ))),
    }
}

pub(super) fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let body = json!({"error": error, "error_description": description});
    no_store((status, Json(body)).into_response())
}

fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// `POST /oauth2/default/v1/token`.
pub(crate) async fn token(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut auth = s.auth();
    auth.token_requests += 1;
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    let form = match std::str::from_utf8(&body) {
        Ok(text) if is_form => Params::parse(text),
        _ => {
            let msg = "The request must be application/x-www-form-urlencoded.";
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", msg);
        }
    };
    let client = match authenticate_client(&auth, &headers, &form) {
        Ok(client) => client,
        Err(response) => return *response,
    };
    match form.get("grant_type") {
        Some("refresh_token") => {}
        Some(grant @ (oauth_flows::AUTHORIZATION_CODE | oauth_flows::DEVICE_CODE)) => {
            return match auth.flows.redeem(grant, &form, client) {
                Ok(scope) => issue_tokens(&mut auth, client, s.opts.token_ttl_secs, &scope, true),
                Err((error, msg)) => oauth_error(StatusCode::BAD_REQUEST, error, msg),
            };
        }
        Some(_) => {
            let msg = "The authorization grant type is not supported by the authorization server.";
            return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", msg);
        }
        None => {
            let msg = "The request is missing the required parameter 'grant_type'.";
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", msg);
        }
    }
    let Some(presented) = form.get("refresh_token") else {
        let msg = "The request is missing the required parameter 'refresh_token'.";
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", msg);
    };
    // A refresh token issued to the other client is as unknown as a forged one.
    if presented != auth.refresh_token || client != auth.refresh_client {
        let msg = "The refresh token is invalid or expired.";
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", msg);
    }
    let rotate = s.opts.refresh_tokens == RefreshTokens::Rotating;
    issue_tokens(&mut auth, client, s.opts.token_ttl_secs, SCOPE, rotate)
}

/// A token response for `client`: a new access token and, when the scope includes
/// `offline_access`, a refresh token: a new one of `client` that replaces every earlier
/// one when `rotate`, else the current one (`--refresh-tokens long-lived`, whose
/// refresh grant already checked it is `client`'s).
fn issue_tokens(
    auth: &mut AuthState,
    client: &'static str,
    ttl_secs: u64,
    scope: &str,
    rotate: bool,
) -> Response {
    let offline = scope.split(' ').any(|s| s == "offline_access");
    let refresh_token = offline.then(|| {
        if rotate {
            auth.refresh_client = client;
            auth.rotate_refresh_token()
        } else {
            auth.refresh_token.clone()
        }
    });
    let access_token = auth.issue_access_token(Duration::from_secs(ttl_secs));
    let mut body = json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": ttl_secs,
    });
    if let Some(refresh_token) = refresh_token {
        body["refresh_token"] = refresh_token.into();
    }
    body["scope"] = scope.into();
    no_store(Json(body).into_response())
}
