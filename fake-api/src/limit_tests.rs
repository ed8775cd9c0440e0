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

/// An access token of the confidential client from a refresh of its current refresh
/// token (which rotates it).
async fn confidential_token(h: &Harness) -> String {
    let creds = h.sandbox.connector_config()["credentials"].clone();
    let res = h
        .http
        .post(h.sandbox.token_url())
        .basic_auth("sandbox-client", creds["client_secret"].as_str())
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", creds["refresh_token"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap();
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
