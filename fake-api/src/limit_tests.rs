//! The request limits as Constant Contact documents them: per API key, not per token.

use super::tests::{assert_no_limit_headers, opts, quota_exceeded, start, throttled, Harness};
use super::SandboxOptions;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// POSTs a form to a path of the sandbox's origin, answering status and body.
async fn post_form(h: &Harness, path: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let res = h
        .http
        .post(format!("{}{path}", h.origin()))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// A refresh of the confidential client's current refresh token (which rotates it).
async fn refresh(h: &Harness) -> reqwest::Response {
    let creds = h.sandbox.connector_config()["credentials"].clone();
    h.http
        .post(h.sandbox.token_url())
        .basic_auth("sandbox-client", creds["client_secret"].as_str())
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", creds["refresh_token"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap()
}

/// An access token of the confidential client, from a refresh.
async fn confidential_token(h: &Harness) -> String {
    let res = refresh(h).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

/// An access token of the public client (another API key), through the device flow.
pub(super) async fn public_token(h: &Harness) -> String {
    let client = ("client_id", "sandbox-public-client");
    let scope = ("scope", "contact_data campaign_data offline_access");
    let (status, device) =
        post_form(h, "/oauth2/default/v1/device/authorize", &[client, scope]).await;
    assert_eq!(status, StatusCode::OK, "{device}");
    let user_code = device["user_code"].as_str().unwrap();
    h.control("device", json!({"user_code": user_code, "approve": true}))
        .await;
    let grant = ("grant_type", "urn:ietf:params:oauth:grant-type:device_code");
    let code = ("device_code", device["device_code"].as_str().unwrap());
    let (status, tokens) = post_form(h, "/oauth2/default/v1/token", &[client, grant, code]).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    tokens["access_token"].as_str().unwrap().to_owned()
}

async fn get_with(h: &Harness, token: &str, path: &str) -> (StatusCode, Value) {
    let res = h
        .http
        .get(format!("{}{path}", h.origin()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_no_limit_headers(res.headers());
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn every_token_of_an_api_key_shares_its_rate_and_its_daily_quota() {
    // Per second: two tokens of one key take turns on its 3 requests; the other key
    // still has its own.
    let h = start(SandboxOptions { rps: 3, ..opts() }).await;
    let second = confidential_token(&h).await;
    let public = public_token(&h).await;
    for token in [&h.token, &second, &h.token] {
        assert_eq!(
            get_with(&h, token, "/v3/contact_tags").await.0,
            StatusCode::OK
        );
    }
    assert_eq!(
        get_with(&h, &second, "/v3/contact_tags").await,
        (StatusCode::TOO_MANY_REQUESTS, throttled())
    );
    assert_eq!(
        get_with(&h, &public, "/v3/contact_tags").await.0,
        StatusCode::OK
    );

    // Per day: the same, with a quota of 3.
    let h = start(SandboxOptions {
        daily_limit: 3,
        ..opts()
    })
    .await;
    let second = confidential_token(&h).await;
    let public = public_token(&h).await;
    for token in [&h.token, &second, &second] {
        assert_eq!(get_with(&h, token, "/v3/segments").await.0, StatusCode::OK);
    }
    assert_eq!(
        get_with(&h, &h.token, "/v3/segments").await,
        (StatusCode::TOO_MANY_REQUESTS, quota_exceeded())
    );
    assert_eq!(
        get_with(&h, &public, "/v3/segments").await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_daily_quota_resets_at_midnight_utc() {
    // Access tokens that outlive the day the test moves through.
    let h = start(SandboxOptions {
        daily_limit: 2,
        token_ttl_secs: 7 * 86_400,
        ..opts()
    })
    .await;
    for _ in 0..2 {
        assert_eq!(h.get("/v3/contact_tags").await.0, StatusCode::OK);
    }
    assert_eq!(
        h.get("/v3/contact_tags").await,
        (StatusCode::TOO_MANY_REQUESTS, quota_exceeded())
    );
    // Half a second before the next 00:00 UTC the quota is still spent (a fixed
    // boundary: not 24 hours after the first request, not an hour later)...
    let now = h.advance_clock(0.0).await;
    let midnight = (now.date_naive() + chrono::Days::new(1))
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    let to_midnight = (midnight - now).num_milliseconds() as f64 / 1000.0;
    let before = h.advance_clock(to_midnight - 0.5).await;
    assert_eq!(before.date_naive(), now.date_naive());
    assert_eq!(
        h.get("/v3/contact_tags").await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    // ... and whole again from midnight on, for that day's quota.
    let after = h.advance_clock(1.0).await;
    assert_eq!(after.date_naive(), midnight.date_naive());
    for _ in 0..2 {
        assert_eq!(h.get("/v3/contact_tags").await.0, StatusCode::OK);
    }
    assert_eq!(
        h.get("/v3/contact_tags").await,
        (StatusCode::TOO_MANY_REQUESTS, quota_exceeded())
    );
    // reset_quota still makes a new day at once.
    h.control("reset_quota", json!({})).await;
    assert_eq!(h.get("/v3/contact_tags").await.0, StatusCode::OK);

    // The clock never runs back.
    let res = h
        .http
        .post(format!("{}/__sandbox/clock", h.origin()))
        .json(&json!({"advance_secs": -1}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn access_tokens_expire_on_the_sandbox_clock() {
    let h = start(opts()).await;
    assert_eq!(h.get("/v3/contact_tags").await.0, StatusCode::OK);
    // Access tokens live 24 hours.
    h.advance_clock(86_400.0 - 60.0).await;
    assert_eq!(h.get("/v3/contact_tags").await.0, StatusCode::OK);
    h.advance_clock(60.0).await;
    assert_eq!(h.get("/v3/contact_tags").await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_token_endpoint_allows_one_request_a_second_per_client() {
    let h = start(SandboxOptions {
        token_rps: SandboxOptions::default().token_rps,
        ..opts()
    })
    .await;
    // `start` refreshed just now: a second refresh within the second is refused, in
    // the authorization server's own format, with no rate-limit headers; it does not
    // use up the refresh token.
    let current = h.sandbox.connector_config()["credentials"]["refresh_token"].clone();
    let res = refresh(&h).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_no_limit_headers(res.headers());
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["errorCode"], "E0000047");
    assert!(body.get("error").is_none() && body.get("error_key").is_none());
    assert_eq!(
        h.sandbox.connector_config()["credentials"]["refresh_token"],
        current
    );
    let (_, state) = h.get("/__sandbox/state").await;
    assert_eq!(
        (&state["token_requests"], &state["token_429s"]),
        (&json!(1), &json!(1))
    );
    tokio::time::sleep(std::time::Duration::from_millis(1050)).await;
    assert_eq!(refresh(&h).await.status(), StatusCode::OK);
    // Another client (API key) has its own second.
    public_token(&h).await;
}
