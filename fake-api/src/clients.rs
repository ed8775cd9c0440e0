//! The OAuth clients the sandbox registers and the credentials it has issued (refresh
//! token, access tokens with the client each belongs to, pending grants), with client
//! authentication and bearer lookup. Two clients are registered, as Constant Contact has
//! two kinds of application: the confidential `sandbox-client` (authorization-code
//! flow), which authenticates with its secret, and the public `sandbox-public-client`
//! (PKCE or device flow), which has no secret and sends its client_id in the form body.

use super::oauth_grants::Flows;
use super::paging::Params;
use axum::{
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use base64::{
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
    Engine,
};
use chrono::{DateTime, TimeDelta, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use std::{collections::HashMap, time::Duration};
use url::form_urlencoded;

pub(crate) const CLIENT_ID: &str = "sandbox-client";
pub(crate) const PUBLIC_CLIENT_ID: &str = "sandbox-public-client";
/// How long a refresh token (rotating or long-lived) lives unused.
pub(crate) const REFRESH_TOKEN_IDLE: TimeDelta = TimeDelta::days(180);
/// An access token: until when it is valid, and the client (API key) it was issued to,
/// whose limits its requests count against.
pub(crate) struct AccessToken {
    expires: DateTime<Utc>,
    pub client: &'static str,
}

/// Credentials of the OAuth clients the sandbox knows (one account).
pub(crate) struct AuthState {
    rng: ChaCha8Rng,
    /// The secret of the confidential client; the public one has none.
    pub client_secret: String,
    /// The only refresh token currently accepted.
    pub refresh_token: String,
    /// The client the refresh token was issued to: only it may redeem it.
    pub refresh_client: &'static str,
    /// When the refresh token was issued or last redeemed: it expires unused for
    /// `REFRESH_TOKEN_IDLE` after.
    refresh_used_at: DateTime<Utc>,
    access: HashMap<String, AccessToken>,
    /// Token requests let through the token endpoint's rate (whatever they got).
    pub token_requests: usize,
    /// Authorization and device codes awaiting redemption.
    pub flows: Flows,
}

impl AuthState {
    pub(crate) fn new(seed: u64, now: DateTime<Utc>) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x0A07_4E5E_C2E7);
        let client_secret = random_token(&mut rng, 30);
        let refresh_token = random_token(&mut rng, 40);
        Self {
            rng,
            client_secret,
            refresh_token,
            refresh_client: CLIENT_ID,
            refresh_used_at: now,
            access: HashMap::new(),
            token_requests: 0,
            flows: Flows::default(),
        }
    }

    /// Replaces the refresh token at `now`, invalidating every earlier one at once (no
    /// grace period: none is documented).
    pub(crate) fn rotate_refresh_token(&mut self, now: DateTime<Utc>) -> String {
        self.refresh_used_at = now;
        self.refresh_token = random_token(&mut self.rng, 40);
        self.refresh_token.clone()
    }

    /// Whether `presented` is the refresh token of `client`, and used within the last
    /// `REFRESH_TOKEN_IDLE`.
    pub(crate) fn refresh_token_valid(
        &self,
        presented: &str,
        client: &str,
        now: DateTime<Utc>,
    ) -> bool {
        presented == self.refresh_token
            && client == self.refresh_client
            && now - self.refresh_used_at < REFRESH_TOKEN_IDLE
    }

    /// Counts a redemption of the (long-lived) refresh token at `now`.
    pub(crate) fn refresh_token_used(&mut self, now: DateTime<Utc>) {
        self.refresh_used_at = now;
    }

    /// A new access token of `client`, valid for `ttl` from `now`.
    pub(crate) fn issue_access_token(
        &mut self,
        ttl: Duration,
        client: &'static str,
        now: DateTime<Utc>,
    ) -> String {
        let token = random_token(&mut self.rng, 48);
        let entry = AccessToken {
            expires: now + ttl,
            client,
        };
        self.access.insert(token.clone(), entry);
        token
    }

    /// The access token's entry while it is valid.
    pub(crate) fn access_token(&self, token: &str, now: DateTime<Utc>) -> Option<&AccessToken> {
        self.access.get(token).filter(|t| now < t.expires)
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

/// The registered client a request says it comes from (HTTP Basic, else `client_id` in
/// the form), authenticated or not; "" for none or an unknown one.
pub(crate) fn claimed_client(headers: &HeaderMap, form: Option<&Params>) -> &'static str {
    let id = match basic_credentials(headers) {
        Some((id, _)) => Some(id),
        None => form.and_then(|f| f.get("client_id")).map(str::to_string),
    };
    match id.as_deref() {
        Some(CLIENT_ID) => CLIENT_ID,
        Some(PUBLIC_CLIENT_ID) => PUBLIC_CLIENT_ID,
        _ => "",
    }
}

/// The registered client a token or device authorization request comes from: the
/// confidential one with its secret (HTTP Basic, or `client_id` and `client_secret` in
/// the form body), or the public one by `client_id` in the form body and no secret at
/// all. Anything else is `invalid_client` (401): a confidential client without its
/// secret, a public client with a secret, no client_id. The error is the response.
pub(crate) fn authenticate_client(
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

pub(crate) fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let body = json!({"error": error, "error_description": description});
    no_store((status, Json(body)).into_response())
}

pub(crate) fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}
