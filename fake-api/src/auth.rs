//! OAuth2 token endpoint: the refresh-token grant with rotating refresh tokens, as the
//! Okta-based Constant Contact server does, and the authorization-code and device-code
//! grants that `oauth_flows` starts. Codes and refresh tokens belong to the client they
//! were issued to (see `clients`). Each client may ask about once a second
//! (`--token-rps`); a faster request gets 429.

use super::clients::{authenticate_client, claimed_client, no_store, oauth_error, AuthState};
use super::oauth_grants::{AUTHORIZATION_CODE, DEVICE_CODE};
use super::options::RefreshTokens;
use super::paging::Params;
use super::state::Shared;
use axum::{
    body::Bytes,
    extract::State,
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use chrono::{DateTime, Utc};
use serde_json::json;
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

pub(crate) const TOKEN_PATH: &str = "/oauth2/default/v1/token";
const SCOPE: &str = "contact_data campaign_data account_read offline_access";

/// `POST /oauth2/default/v1/token`.
pub(crate) async fn token(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut auth = s.auth();
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    let form = std::str::from_utf8(&body)
        .ok()
        .filter(|_| is_form)
        .map(Params::parse);
    // The limit comes first: whatever the request, a client's second one within the
    // second is refused.
    let claimed = claimed_client(&headers, form.as_ref());
    let now = Instant::now();
    {
        let mut limits = s.limits();
        let window = limits.token_windows.entry(claimed).or_default();
        if !window.has_room(now, s.opts.token_rps) {
            limits.token_refused += 1;
            return token_throttled();
        }
        window.admit(now);
    }
    auth.token_requests += 1;
    let Some(form) = form else {
        let msg = "The request must be application/x-www-form-urlencoded.";
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", msg);
    };
    let client = match authenticate_client(&auth, &headers, &form) {
        Ok(client) => client,
        Err(response) => return *response,
    };
    match form.get("grant_type") {
        Some("refresh_token") => {}
        Some(grant @ (AUTHORIZATION_CODE | DEVICE_CODE)) => {
            return match auth.flows.redeem(grant, &form, client) {
                Ok(scope) => {
                    let ttl = s.opts.token_ttl_secs;
                    issue_tokens(&mut auth, client, ttl, &scope, true, s.clock.now())
                }
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
    // A refresh token issued to the other client is as unknown as a forged one, and
    // one unused for 180 days as one never issued.
    let now = s.clock.now();
    if !auth.refresh_token_valid(presented, client, now) {
        let msg = "The refresh token is invalid or expired.";
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", msg);
    }
    let rotate = s.opts.refresh_tokens == RefreshTokens::Rotating;
    let ttl = s.opts.token_ttl_secs;
    issue_tokens(&mut auth, client, ttl, SCOPE, rotate, now)
}

/// The token endpoint's 429. What it answers is undocumented; the fake answers what the
/// Okta authorization server Constant Contact runs sends for its rate limits
/// (`errorCode` E0000047): neither an OAuth error (`error`) nor the V3 API's
/// (`error_key`), and without Okta's `X-Rate-Limit-*` headers, so a client can only go
/// by the status.
fn token_throttled() -> Response {
    let id = uuid::Uuid::new_v4().simple();
    let body = json!({
        "errorCode": "E0000047",
        "errorSummary": "API call exceeded rate limit due to too many requests.",
        "errorLink": "E0000047",
        "errorId": format!("oae{id}"),
        "errorCauses": [],
    });
    (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response()
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
    now: DateTime<Utc>,
) -> Response {
    let offline = scope.split(' ').any(|s| s == "offline_access");
    let refresh_token = offline.then(|| {
        if rotate {
            auth.refresh_client = client;
            auth.rotate_refresh_token(now)
        } else {
            auth.refresh_token_used(now);
            auth.refresh_token.clone()
        }
    });
    let access_token = auth.issue_access_token(Duration::from_secs(ttl_secs), client, now);
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
