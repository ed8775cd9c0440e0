//! The flows that grant a first refresh token: authorization code with PKCE (S256) and
//! the device authorization grant (RFC 8628). The token endpoint (`auth.rs`) redeems
//! what they issue. Sandbox-only routes stand in for the user: `/__sandbox/consent`
//! makes the authorize endpoint deny consent, `/__sandbox/device` approves or denies a
//! user code (and can force one `slow_down`). Both registered clients, the confidential
//! and the public one, may use both flows; what a flow issues can be redeemed only by
//! the client that started it.

use super::clients::{authenticate_client, oauth_error, CLIENT_ID, PUBLIC_CLIENT_ID};
use super::oauth_grants::{CodeGrant, Decision, Device, CODE_TTL};
use super::options::SandboxOptions;
use super::paging::Params;
use super::state::Shared;
use axum::{
    body::Bytes,
    extract::{RawQuery, State},
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use rand::Rng;
use serde::Deserialize;
use serde_json::{json, Value};

use std::{
    sync::Arc,
    time::{Duration, Instant},
};
use url::Url;

pub(crate) const AUTHORIZE_PATH: &str = "/oauth2/default/v1/authorize";
pub(crate) const DEVICE_PATH: &str = "/oauth2/default/v1/device/authorize";
const VERIFICATION_PATH: &str = "/activate";
const KNOWN_SCOPES: [&str; 5] = [
    "account_read",
    "account_update",
    "contact_data",
    "campaign_data",
    "offline_access",
];
pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route(AUTHORIZE_PATH, get(authorize))
        .route(DEVICE_PATH, post(device_authorize))
        .route(VERIFICATION_PATH, get(verification_page))
        .route("/__sandbox/consent", post(consent))
        .route("/__sandbox/device", post(decide_device))
}

fn random_code(bytes: usize) -> String {
    let raw: Vec<u8> = (0..bytes).map(|_| rand::thread_rng().gen()).collect();
    URL_SAFE_NO_PAD.encode(raw)
}

/// `XXXX-XXXX` from consonants only, as RFC 8628 §6.1 suggests.
fn user_code() -> String {
    const ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";
    let mut rng = rand::thread_rng();
    let mut code: String = (0..8)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect();
    code.insert(4, '-');
    code
}

/// The space-separated scope, when every scope in it is one Constant Contact knows.
fn valid_scope(scope: Option<&str>) -> Option<String> {
    let scopes: Vec<&str> = scope?.split_whitespace().collect();
    let known = !scopes.is_empty() && scopes.iter().all(|s| KNOWN_SCOPES.contains(s));
    known.then(|| scopes.join(" "))
}

/// Registered redirect URIs: loopback `/callback` on any port (RFC 8252 §7.3) and those
/// given with `--redirect-uri`.
fn registered(opts: &SandboxOptions, uri: &str) -> bool {
    let loopback = Url::parse(uri).is_ok_and(|u| {
        u.scheme() == "http"
            && matches!(u.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"))
            && u.path() == "/callback"
            && u.query().is_none()
            && u.fragment().is_none()
    });
    loopback || opts.redirect_uris.iter().any(|r| r == uri)
}

/// The page an authorization server shows when it cannot redirect back.
fn error_page(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        format!("Authorization error: {message}\n"),
    )
        .into_response()
}

fn redirect(to: &str, params: &[(&str, &str)]) -> Response {
    let mut url = Url::parse(to).expect("registered redirect URIs parse");
    url.query_pairs_mut().extend_pairs(params);
    (StatusCode::FOUND, [(header::LOCATION, url.to_string())]).into_response()
}

/// `GET /oauth2/default/v1/authorize`: the test user is signed in and consents at once
/// (unless consent is denied), so the answer is the redirect back to the client.
async fn authorize(State(s): State<Arc<Shared>>, RawQuery(query): RawQuery) -> Response {
    let q = Params::parse(query.as_deref().unwrap_or_default());
    let client = match q.get("client_id") {
        Some(CLIENT_ID) => CLIENT_ID,
        Some(PUBLIC_CLIENT_ID) => PUBLIC_CLIENT_ID,
        _ => return error_page("invalid_client: the client_id is missing or unknown."),
    };
    let Some(redirect_uri) = q.get("redirect_uri").filter(|r| registered(&s.opts, r)) else {
        return error_page("the redirect_uri is missing or not registered for this client.");
    };
    let state = q.get("state").unwrap_or_default();
    let fail = |error: &str, description: &str| {
        let mut params = vec![("error", error), ("error_description", description)];
        if !state.is_empty() {
            params.push(("state", state));
        }
        redirect(redirect_uri, &params)
    };
    if q.get("response_type") != Some("code") {
        return fail(
            "unsupported_response_type",
            "The response type is not supported by the authorization server; use 'code'.",
        );
    }
    if state.is_empty() {
        return fail("invalid_request", "The 'state' parameter is required.");
    }
    let challenge = q.get("code_challenge").unwrap_or_default();
    if q.get("code_challenge_method") != Some("S256") || challenge.len() != 43 {
        return fail(
            "invalid_request",
            "PKCE is required: send code_challenge with code_challenge_method S256.",
        );
    }
    let Some(scope) = valid_scope(q.get("scope")) else {
        return fail(
            "invalid_scope",
            "One or more scopes are not configured for the authorization server resource.",
        );
    };
    let mut auth = s.auth();
    if auth.flows.deny_consent {
        return fail("access_denied", "The resource owner denied the request.");
    }
    let code = random_code(32);
    let grant = CodeGrant {
        client,
        challenge: challenge.to_string(),
        redirect_uri: redirect_uri.to_string(),
        scope,
        expires: Instant::now() + CODE_TTL,
    };
    auth.flows.codes.insert(code.clone(), grant);
    redirect(redirect_uri, &[("code", &code), ("state", state)])
}

/// `POST /oauth2/default/v1/device/authorize`.
async fn device_authorize(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = Params::parse(std::str::from_utf8(&body).unwrap_or_default());
    let mut auth = s.auth();
    // RFC 8628 §3.1: a confidential client authenticates here as at the token endpoint.
    let client = match authenticate_client(&auth, &headers, &form) {
        Ok(client) => client,
        Err(response) => return *response,
    };
    let Some(scope) = valid_scope(form.get("scope")) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "One or more scopes are not configured for the authorization server resource.",
        );
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let verification_uri = format!("http://{host}{VERIFICATION_PATH}");
    let (device_code, user_code) = (random_code(32), user_code());
    let now = Instant::now();
    let device = Device {
        client,
        user_code: user_code.clone(),
        scope,
        issued: now,
        expires: now + Duration::from_secs(s.opts.device_code_ttl_secs),
        interval: Duration::from_secs(s.opts.device_interval_secs),
        decision: Decision::Pending,
        last_poll: None,
        polls: Vec::new(),
        force_slow_down: false,
        slow_downs: 0,
    };
    auth.flows.devices.insert(device_code.clone(), device);
    Json(json!({
        "device_code": device_code,
        "user_code": user_code,
        "verification_uri": verification_uri,
        "verification_uri_complete": format!("{verification_uri}?user_code={user_code}"),
        "expires_in": s.opts.device_code_ttl_secs,
        "interval": s.opts.device_interval_secs,
    }))
    .into_response()
}

/// `GET /activate`: where a real user would sign in and enter the code.
async fn verification_page() -> &'static str {
    "Sandbox: approve or deny a user code with POST /__sandbox/device \
     {\"user_code\": \"XXXX-XXXX\", \"approve\": true}\n"
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsentRequest {
    deny: bool,
}

/// `POST /__sandbox/consent {"deny": true}`: later authorization requests are denied
/// (`access_denied`) until `{"deny": false}`.
async fn consent(State(s): State<Arc<Shared>>, Json(req): Json<ConsentRequest>) -> Json<Value> {
    s.auth().flows.deny_consent = req.deny;
    Json(json!({"deny": req.deny}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceRequest {
    user_code: String,
    /// Approve (true) or deny (false) the sign-in; absent leaves it as it is.
    #[serde(default)]
    approve: Option<bool>,
    /// Answer the next poll with `slow_down`, however late it comes.
    #[serde(default)]
    slow_down: bool,
}

/// `POST /__sandbox/device`: decides a user code and reports how the client polled.
async fn decide_device(
    State(s): State<Arc<Shared>>,
    Json(req): Json<DeviceRequest>,
) -> Result<Json<Value>, (StatusCode, String)> {
    let mut auth = s.auth();
    let device = auth
        .flows
        .devices
        .values_mut()
        .find(|d| d.user_code.eq_ignore_ascii_case(req.user_code.trim()))
        .ok_or((StatusCode::NOT_FOUND, "unknown user_code".to_string()))?;
    if let (Some(approve), Decision::Pending) = (req.approve, device.decision) {
        device.decision = if approve {
            Decision::Approved
        } else {
            Decision::Denied
        };
    }
    device.force_slow_down |= req.slow_down;
    let decision = match device.decision {
        Decision::Pending => "pending",
        Decision::Approved => "approved",
        Decision::Denied => "denied",
        Decision::Redeemed => "redeemed",
    };
    let polls: Vec<u128> = device.polls.iter().map(Duration::as_millis).collect();
    Ok(Json(json!({
        "user_code": device.user_code,
        "decision": decision,
        "interval_secs": device.interval.as_secs(),
        "polls_ms": polls,
        "slow_downs": device.slow_downs,
    })))
}
