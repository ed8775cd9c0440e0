//! The flows that grant a first refresh token: authorization code with PKCE (S256) and
//! the device authorization grant (RFC 8628). The token endpoint (`auth.rs`) redeems
//! what they issue. Sandbox-only routes stand in for the user: `/__sandbox/consent`
//! makes the authorize endpoint deny consent, `/__sandbox/device` approves or denies a
//! user code (and can force one `slow_down`). Both registered clients, the confidential
//! and the public one, may use both flows; what a flow issues can be redeemed only by
//! the client that started it.

use super::auth::{authenticate_client, oauth_error, CLIENT_ID, PUBLIC_CLIENT_ID};
use super::options::SandboxOptions;
use super::paging::Params;
use super::Shared;
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
use sha2::{Digest, Sha256};
use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};
use url::Url;

pub(crate) const AUTHORIZE_PATH: &str = "/oauth2/default/v1/authorize";
pub(crate) const DEVICE_PATH: &str = "/oauth2/default/v1/device/authorize";
pub(crate) const AUTHORIZATION_CODE: &str = "authorization_code";
pub(crate) const DEVICE_CODE: &str = "urn:ietf:params:oauth:grant-type:device_code";
const VERIFICATION_PATH: &str = "/activate";
const KNOWN_SCOPES: [&str; 5] = [
    "account_read",
    "account_update",
    "contact_data",
    "campaign_data",
    "offline_access",
];
/// Authorization codes live five minutes, as Constant Contact's do.
const CODE_TTL: Duration = Duration::from_secs(300);
/// RFC 8628 §3.5: every `slow_down` raises the polling interval by five seconds.
const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);

/// Pending authorization codes and device codes.
#[derive(Default)]
pub(crate) struct Flows {
    codes: HashMap<String, CodeGrant>,
    /// Keyed by device code; redeemed entries stay so their poll log can be inspected.
    devices: HashMap<String, Device>,
    deny_consent: bool,
}

struct CodeGrant {
    client: &'static str,
    challenge: String,
    redirect_uri: String,
    scope: String,
    expires: Instant,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Decision {
    Pending,
    Approved,
    Denied,
    Redeemed,
}

struct Device {
    client: &'static str,
    user_code: String,
    scope: String,
    issued: Instant,
    expires: Instant,
    interval: Duration,
    decision: Decision,
    last_poll: Option<Instant>,
    polls: Vec<Duration>,
    force_slow_down: bool,
    slow_downs: usize,
}

/// An OAuth error for the token endpoint: code and description.
pub(crate) type GrantError = (&'static str, &'static str);

impl Flows {
    /// Redeems an authorization code or polls a device code for `client` (the
    /// authenticated client of the token request); the granted scope on success.
    pub(crate) fn redeem(
        &mut self,
        grant: &str,
        form: &Params,
        client: &str,
    ) -> Result<String, GrantError> {
        let now = Instant::now();
        if grant == AUTHORIZATION_CODE {
            self.redeem_code(form, client, now)
        } else {
            let code = form.get("device_code").ok_or((
                "invalid_request",
                "The request is missing the required parameter 'device_code'.",
            ))?;
            self.poll_device(code, client, now)
        }
    }

    fn redeem_code(
        &mut self,
        form: &Params,
        client: &str,
        now: Instant,
    ) -> Result<String, GrantError> {
        let code = form.get("code").ok_or((
            "invalid_request",
            "The request is missing the required parameter 'code'.",
        ))?;
        // Removed on first presentation: a code is single-use whatever happens next.
        let grant = self
            .codes
            .remove(code)
            .filter(|g| now < g.expires && g.client == client)
            .ok_or((
                "invalid_grant",
                "The authorization code is invalid or has expired.",
            ))?;
        if form.get("redirect_uri") != Some(grant.redirect_uri.as_str()) {
            return Err((
                "invalid_grant",
                "The 'redirect_uri' does not match the redirection URI used in the authorization request.",
            ));
        }
        let verifier = form.get("code_verifier").ok_or((
            "invalid_request",
            "PKCE code verifier is required when the authorization request included a code challenge.",
        ))?;
        if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != grant.challenge {
            return Err(("invalid_grant", "PKCE verification failed."));
        }
        Ok(grant.scope)
    }

    fn poll_device(
        &mut self,
        code: &str,
        client: &str,
        now: Instant,
    ) -> Result<String, GrantError> {
        let device = self
            .devices
            .get_mut(code)
            .filter(|d| d.client == client)
            .ok_or(("invalid_grant", "The device code is invalid."))?;
        let previous = device.last_poll.replace(now);
        device.polls.push(now - device.issued);
        if now >= device.expires {
            return Err(("expired_token", "The device code has expired."));
        }
        let too_fast = previous.is_some_and(|at| now - at < device.interval);
        if device.force_slow_down || too_fast {
            device.force_slow_down = false;
            device.interval += SLOW_DOWN_STEP;
            device.slow_downs += 1;
            return Err(("slow_down", "The client is polling too frequently."));
        }
        match device.decision {
            Decision::Pending => Err((
                "authorization_pending",
                "The device authorization is pending. Please try again later.",
            )),
            Decision::Denied => Err(("access_denied", "The resource owner denied the request.")),
            Decision::Redeemed => Err(("invalid_grant", "The device code was already used.")),
            Decision::Approved => {
                device.decision = Decision::Redeemed;
                Ok(device.scope.clone())
            }
        }
    }
}

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
