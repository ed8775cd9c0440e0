use super::{RefreshTokens, Sandbox, SandboxOptions};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// The largest page of contacts the API serves (`limit=500`).
const CONTACTS_PAGE: usize = 500;

/// An odd page size, so that pages and totals never line up by chance.
const SMALL_PAGE: usize = 37;

/// 600 contacts (two pages of the largest size), and rate limits (the API's and the
/// token endpoint's) no test reaches unless it asks for lower ones.
pub(super) fn opts() -> SandboxOptions {
    SandboxOptions {
        contacts: 600,
        rps: 1000,
        token_rps: 1000,
        ..SandboxOptions::default()
    }
}

pub(super) struct Harness {
    pub sandbox: Sandbox,
    pub http: Client,
    pub token: String,
}

async fn refresh(sandbox: &Sandbox, http: &Client, refresh_token: &str) -> reqwest::Response {
    let creds = sandbox.connector_config()["credentials"].clone();
    http.post(sandbox.token_url())
        .basic_auth(
            creds["client_id"].as_str().unwrap(),
            creds["client_secret"].as_str(),
        )
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ])
        .send()
        .await
        .unwrap()
}

pub(super) async fn start(opts: SandboxOptions) -> Harness {
    let sandbox = Sandbox::start(opts).await.unwrap();
    let http = Client::new();
    let rt = sandbox.connector_config()["credentials"]["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let body: Value = refresh(&sandbox, &http, &rt).await.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap().to_owned();
    Harness {
        sandbox,
        http,
        token,
    }
}

impl Harness {
    pub fn origin(&self) -> String {
        self.sandbox.base_url().trim_end_matches("/v3").to_owned()
    }

    /// GET a host-relative path such as `/v3/contacts?limit=5`.
    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let res = self.get_raw(path).await;
        let status = res.status();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    pub async fn control(&self, route: &str, body: Value) -> Value {
        let url = format!("{}/__sandbox/{route}", self.origin());
        let res = self.http.post(url).json(&body).send().await.unwrap();
        assert!(res.status().is_success(), "{route}: {}", res.status());
        res.json().await.unwrap_or(Value::Null)
    }

    /// Follows `_links.next` from `path`, returning every record under `key`.
    pub async fn read_all(&self, path: &str, key: &str) -> Vec<Value> {
        let mut records = Vec::new();
        let mut next = Some(path.to_owned());
        while let Some(path) = next {
            let (status, body) = self.get(&path).await;
            assert_eq!(status, StatusCode::OK, "{path}: {body}");
            records.extend(body[key].as_array().unwrap().iter().cloned());
            next = body["_links"]["next"]["href"].as_str().map(str::to_owned);
            if let Some(href) = &next {
                let query = href.split_once('?').unwrap().1;
                assert!(
                    query.starts_with("cursor=") && !query.contains('&'),
                    "{href}"
                );
            }
        }
        records
    }
}

/// The body of a 429 for the API key's requests per second, as the API documents it.
pub(super) fn throttled() -> Value {
    json!({"error_key": "throttled", "error_message": "Too Many Requests"})
}

/// The body of a 429 for the API key's requests per day, as the API documents it.
pub(super) fn quota_exceeded() -> Value {
    json!({"error_key": "quota_exceeded", "error_message": "Limit Exceeded"})
}

/// The API sends no `Retry-After` and no rate-limit headers: a client counts its own
/// requests.
pub(super) fn assert_no_limit_headers(headers: &reqwest::header::HeaderMap) {
    for name in headers.keys() {
        let name = name.as_str();
        assert!(
            name != "retry-after" && !name.contains("ratelimit") && !name.contains("rate-limit"),
            "{name}"
        );
    }
}

fn ids(records: &[Value], key: &str) -> BTreeSet<String> {
    records
        .iter()
        .map(|r| r[key].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn refresh_tokens_rotate() {
    let sandbox = Sandbox::start(opts()).await.unwrap();
    let http = Client::new();
    let first = sandbox.connector_config()["credentials"]["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = refresh(&sandbox, &http, &first).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], opts().token_ttl_secs);
    let second = body["refresh_token"].as_str().unwrap();
    assert_ne!(second, first);
    assert_eq!(
        sandbox.connector_config()["credentials"]["refresh_token"],
        second
    );

    // Single-use, with no grace period: the first is dead the moment the second exists.
    let reused = refresh(&sandbox, &http, &first).await;
    assert_eq!(reused.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        reused.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
    assert_eq!(
        refresh(&sandbox, &http, second).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn refresh_tokens_expire_after_180_days_unused() {
    const DAY: f64 = 86_400.0;
    for kind in [RefreshTokens::Rotating, RefreshTokens::LongLived] {
        let h = start(SandboxOptions {
            refresh_tokens: kind,
            ..opts()
        })
        .await;
        let current = || {
            h.sandbox.connector_config()["credentials"]["refresh_token"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        // Each use starts the 180 days again, whatever the token's age...
        for _ in 0..2 {
            h.advance_clock(180.0 * DAY - 1.0).await;
            let res = refresh(&h.sandbox, &h.http, &current()).await;
            assert_eq!(res.status(), StatusCode::OK, "{kind:?}");
        }
        // ... and 180 days without one end it.
        h.advance_clock(180.0 * DAY).await;
        let res = refresh(&h.sandbox, &h.http, &current()).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{kind:?}");
        assert_eq!(res.json::<Value>().await.unwrap()["error"], "invalid_grant");
    }
}

#[tokio::test]
async fn token_endpoint_rejects_bad_requests() {
    let sandbox = Sandbox::start(opts()).await.unwrap();
    let http = Client::new();
    let config = sandbox.connector_config();
    let secret = config["credentials"]["client_secret"].as_str().unwrap();
    let rt = config["credentials"]["refresh_token"].as_str().unwrap();
    let post = |form: Vec<(&'static str, &str)>, basic: Option<&str>| {
        let mut req = http.post(sandbox.token_url()).form(&form);
        if let Some(secret) = basic {
            req = req.basic_auth("sandbox-client", Some(secret));
        }
        async move {
            let res = req.send().await.unwrap();
            (
                res.status(),
                res.json::<Value>().await.unwrap()["error"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            )
        }
    };
    let grant = vec![("grant_type", "refresh_token"), ("refresh_token", rt)];
    assert_eq!(
        post(grant.clone(), Some("wrong")).await,
        (StatusCode::UNAUTHORIZED, "invalid_client".into())
    );
    assert_eq!(
        post(grant.clone(), None).await,
        (StatusCode::UNAUTHORIZED, "invalid_client".into())
    );
    let both = [
        grant.clone(),
        vec![("client_id", "sandbox-client"), ("client_secret", secret)],
    ]
    .concat();
    assert_eq!(
        post(both, Some(secret)).await,
        (StatusCode::BAD_REQUEST, "invalid_request".into())
    );
    let password = vec![("grant_type", "password")];
    assert_eq!(
        post(password, Some(secret)).await,
        (StatusCode::BAD_REQUEST, "unsupported_grant_type".into())
    );
    let missing = vec![("grant_type", "refresh_token")];
    assert_eq!(
        post(missing, Some(secret)).await,
        (StatusCode::BAD_REQUEST, "invalid_request".into())
    );

    // Credentials in the form body work too.
    let in_body = [
        grant,
        vec![("client_id", "sandbox-client"), ("client_secret", secret)],
    ]
    .concat();
    let res = http
        .post(sandbox.token_url())
        .form(&in_body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn api_requires_a_valid_bearer_token() {
    let h = start(opts()).await;
    let url = format!("{}/contacts", h.sandbox.base_url());
    let unauthorized = json!({"error_key": "unauthorized", "error_message": "Unauthorized"});
    for req in [
        h.http.get(&url),
        h.http.get(&url).bearer_auth("not-a-token"),
    ] {
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(res.json::<Value>().await.unwrap(), unauthorized);
    }
    assert_eq!(h.get("/v3/contacts").await.0, StatusCode::OK);
    h.control("expire_access_tokens", json!({})).await;
    assert_eq!(
        h.get("/v3/contacts").await,
        (StatusCode::UNAUTHORIZED, unauthorized)
    );
}

#[tokio::test]
async fn revoke_invalidates_refresh_tokens() {
    let h = start(opts()).await;
    let old = h.sandbox.connector_config()["credentials"]["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let fresh = h.control("revoke", json!({})).await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(old, fresh);
    assert_eq!(
        refresh(&h.sandbox, &h.http, &old).await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        refresh(&h.sandbox, &h.http, &fresh).await.status(),
        StatusCode::OK
    );
    // Access tokens issued before the revoke stay valid until they expire.
    assert_eq!(h.get("/v3/contact_tags").await.0, StatusCode::OK);
}

#[tokio::test]
async fn pagination_returns_every_contact_once() {
    let h = start(opts()).await;
    let expected = h.sandbox.expected_counts()["contacts"];
    let include = "custom_fields,list_memberships,phone_numbers,street_addresses,taggings,notes";
    let all = h
        .read_all(
            &format!("/v3/contacts?status=all&limit={CONTACTS_PAGE}&include={include}"),
            "contacts",
        )
        .await;
    assert_eq!(all.len(), expected);
    assert_eq!(ids(&all, "contact_id").len(), expected);
    let deleted: Vec<_> = all
        .iter()
        .filter(|c| c.get("deleted_at").is_some())
        .collect();
    // About 5% of the sandbox's contacts are deleted: some, under a tenth.
    assert!(!deleted.is_empty() && deleted.len() < expected / 10);
    assert!(all.iter().all(|c| c["notes"].is_array()));

    let small_pages = h
        .read_all(&format!("/v3/contacts?limit={SMALL_PAGE}"), "contacts")
        .await;
    assert_eq!(small_pages.len(), expected - deleted.len());
    assert!(small_pages
        .iter()
        .all(|c| c.get("deleted_at").is_none() && c.get("notes").is_none()));

    let (_, body) = h
        .get("/v3/contacts?status=all&include_count=true&limit=1")
        .await;
    assert_eq!(body["contacts_count"], expected);
    // Both paged reads, and the one request for the count.
    let requests = expected.div_ceil(CONTACTS_PAGE) + small_pages.len().div_ceil(SMALL_PAGE) + 1;
    assert_eq!(h.sandbox.request_counts()["GET /v3/contacts"], requests);
}

#[tokio::test]
async fn every_stream_reads_its_expected_count() {
    let h = start(opts()).await;
    let expected = h.sandbox.expected_counts();
    // Small pages, each endpoint's own, so that every list is read in pages.
    let paged = [
        (
            "contact_lists",
            "/v3/contact_lists?limit=5&include_membership_count=all",
            "lists",
        ),
        (
            "contact_tags",
            "/v3/contact_tags?limit=4&include_count=true",
            "tags",
        ),
        ("segments", "/v3/segments?limit=2&sort_by=name", "segments"),
        (
            "custom_fields",
            "/v3/contact_custom_fields?limit=3",
            "custom_fields",
        ),
        ("email_campaigns", "/v3/emails?limit=7", "campaigns"),
        (
            "email_campaign_summaries",
            "/v3/reports/summary_reports/email_campaign_summaries?limit=5",
            "bulk_email_campaign_summaries",
        ),
    ];
    for (stream, path, key) in paged {
        let records = h.read_all(path, key).await;
        assert_eq!(records.len(), expected[stream], "{stream}");
    }
    let lists = h
        .read_all("/v3/contact_lists?include_membership_count=all", "lists")
        .await;
    let members: u64 = lists
        .iter()
        .map(|l| l["membership_count"].as_u64().unwrap())
        .sum();
    let contacts = h
        .read_all(
            "/v3/contacts?include=list_memberships&limit=500",
            "contacts",
        )
        .await;
    let memberships: usize = contacts
        .iter()
        .map(|c| c["list_memberships"].as_array().unwrap().len())
        .sum();
    assert_eq!(members as usize, memberships);

    let (_, summaries) = h
        .get("/v3/reports/summary_reports/email_campaign_summaries")
        .await;
    assert_eq!(summaries["_links"], json!({}));
    let (_, account) = h.get("/v3/account/summary").await;
    assert!(account.get("physical_address").is_none());
    let (_, account) = h
        .get("/v3/account/summary?extra_fields=physical_address,company_logo")
        .await;
    assert!(account["physical_address"].is_object() && account["company_logo"].is_object());
    let (_, emails) = h.get("/v3/account/emails").await;
    assert_eq!(emails.as_array().unwrap().len(), expected["account_emails"]);
    let (_, privileges) = h.get("/v3/account/user/privileges").await;
    assert_eq!(
        privileges.as_array().unwrap().len(),
        expected["user_privileges"]
    );

    let campaigns = h.read_all("/v3/emails?limit=500", "campaigns").await;
    let id = campaigns[0]["campaign_id"].as_str().unwrap();
    let (status, detail) = h.get(&format!("/v3/emails/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    let activity_id = detail["campaign_activities"][0]["campaign_activity_id"]
        .as_str()
        .unwrap();
    let (status, activity) = h
        .get(&format!(
            "/v3/emails/activities/{activity_id}?include=permalink_url"
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(activity["campaign_id"], id);
    assert!(activity["permalink_url"].is_string() && activity.get("html_content").is_none());
    assert_eq!(
        h.get("/v3/emails/00000000-0000-4000-8000-000000000000")
            .await
            .0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn invalid_parameters_get_400() {
    let h = start(opts()).await;
    // Each limit is one past the endpoint's largest page.
    for path in [
        "/v3/contacts?limit=501",
        "/v3/contacts?limit=0",
        "/v3/contacts?limit=ten",
        "/v3/contacts?status=gone",
        "/v3/contacts?include=everything",
        "/v3/contacts?updated_after=yesterday",
        "/v3/contacts?include_count=yes",
        "/v3/contacts?cursor=not-a-cursor",
        "/v3/contact_lists?limit=501",
        "/v3/contact_lists?include_membership_count=some",
        "/v3/contact_tags?limit=501",
        "/v3/segments?limit=1001",
        "/v3/segments?sort_by=size",
        "/v3/contact_custom_fields?limit=101",
        "/v3/emails?limit=501",
        "/v3/emails?after_date=2024-01-01",
        "/v3/reports/summary_reports/email_campaign_summaries?limit=501",
        "/v3/account/summary?extra_fields=plan",
    ] {
        let (status, body) = h.get(path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(body[0]["error_key"], "query.param.invalid", "{path}");
        assert!(body[0]["error_message"].is_string());
    }
    // A cursor from one endpoint is not valid on another.
    let (_, body) = h.get("/v3/emails?limit=1").await;
    let cursor = body["_links"]["next"]["href"]
        .as_str()
        .unwrap()
        .split_once('?')
        .unwrap()
        .1
        .to_owned();
    assert_eq!(
        h.get(&format!("/v3/contacts?{cursor}")).await.0,
        StatusCode::BAD_REQUEST
    );
    // The cursor wins over parameters sent next to it.
    let (status, page) = h.get(&format!("/v3/emails?{cursor}&limit=501")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["campaigns"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn values_outside_the_contracts_enums_get_400_naming_them() {
    let h = start(opts()).await;
    // The check comes before any lookup: these ids need not exist.
    let id = "00000000-0000-4000-8000-000000000000";
    let (_, page) = h.get("/v3/contacts?limit=1").await;
    let next = page["_links"]["next"]["href"].as_str().unwrap().to_owned();
    for (path, value) in [
        // Lists are checked item by item.
        ("/v3/contacts?include=notes,sms_channel".to_owned(), "sms_channel"),
        ("/v3/contacts?include=".to_owned(), ""),
        ("/v3/contacts?status=active,gone".to_owned(), "gone"),
        ("/v3/contacts?sms_status=maybe".to_owned(), "maybe"),
        // Also next to a cursor.
        (format!("{next}&include=sms_channel"), "sms_channel"),
        ("/v3/contact_lists?include_membership_count=some".to_owned(), "some"),
        ("/v3/contact_lists?status=all,archived".to_owned(), "archived"),
        ("/v3/contact_lists?channel_type=fax".to_owned(), "fax"),
        ("/v3/segments?sort_by=size".to_owned(), "size"),
        (
            format!("/v3/emails/activities/{id}?include=permalink_url,thumbnail"),
            "thumbnail",
        ),
        ("/v3/account/summary?extra_fields=plan".to_owned(), "plan"),
        ("/v3/account/emails?confirm_status=MAYBE".to_owned(), "MAYBE"),
        ("/v3/account/emails?role_code=OWNER".to_owned(), "OWNER"),
        ("/v3/contacts/counts?include=new_subscribers".to_owned(), "new_subscribers"),
        (
            format!(
                "/v3/reports/contact_reports/{id}/activity_details?tracking_activities_list=em_sends,em_views"
            ),
            "em_views",
        ),
        // A repeated parameter, each time.
        (
            format!("/v3/reports/email_reports/{id}/tracking/bounces?bounce_code=B&bounce_code=Q"),
            "Q",
        ),
        ("/v3/activities?state=initialized".to_owned(), "initialized"),
    ] {
        let (status, body) = h.get(&path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert_eq!(body[0]["error_key"], "query.param.invalid", "{path}");
        let message = body[0]["error_message"].as_str().unwrap();
        assert!(message.contains(&format!("'{value}'")), "{path}: {message}");
    }
    // Every value of the enums passes.
    for path in [
        "/v3/contacts?include=custom_fields,list_memberships,phone_numbers,street_addresses,taggings,notes&status=all&sms_status=all",
        "/v3/contact_lists?include_membership_count=active&status=all,active,deleted&channel_type=email",
        "/v3/contacts/counts?include=new_subscriber",
        "/v3/activities?state=timed_out",
    ] {
        assert_eq!(h.get(path).await.0, StatusCode::OK, "{path}");
    }
    // The gateway answers first: no token, 401 whatever the query.
    let res = h
        .http
        .get(format!("{}/v3/contacts?include=sms_channel", h.origin()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn updated_after_returns_exactly_the_updated_contacts() {
    let h = start(opts()).await;
    let before = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    const UPDATED: usize = 7;
    const DELETED: usize = 3;
    let m = h
        .control(
            "mutate",
            json!({"contacts": UPDATED, "campaigns": 2, "delete_contacts": DELETED}),
        )
        .await;
    let as_set = |v: &Value| -> BTreeSet<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_owned())
            .collect()
    };
    let (updated, deleted) = (as_set(&m["contacts"]), as_set(&m["deleted_contacts"]));
    assert_eq!((updated.len(), deleted.len()), (UPDATED, DELETED));

    let since = format!("updated_after={}", before.replace('+', "%2B"));
    // Pages of two: the changes span several.
    let live = h
        .read_all(&format!("/v3/contacts?{since}&limit=2"), "contacts")
        .await;
    assert_eq!(ids(&live, "contact_id"), updated);
    // A deletion does not move updated_at (only personal details do), so even with
    // status=all the deleted contacts stay out of an updated_after read.
    let all = h
        .read_all(&format!("/v3/contacts?{since}&status=all"), "contacts")
        .await;
    assert_eq!(ids(&all, "contact_id"), updated);
    let gone = h
        .read_all("/v3/contacts?status=deleted&limit=500", "contacts")
        .await;
    assert!(ids(&gone, "contact_id").is_superset(&deleted));
    assert!(gone.iter().all(|c| c["deleted_at"].is_string()));

    let campaigns = h
        .read_all(
            &format!("/v3/emails?after_date={}", before.replace('+', "%2B")),
            "campaigns",
        )
        .await;
    assert_eq!(ids(&campaigns, "campaign_id"), as_set(&m["campaigns"]));
}

#[tokio::test]
async fn exceeding_the_rate_limit_gets_429() {
    const RPS: u32 = 3;
    const OVER: usize = 2;
    let h = start(SandboxOptions { rps: RPS, ..opts() }).await;
    let mut statuses = Vec::new();
    for _ in 0..RPS as usize + OVER {
        let res = h.get_raw("/v3/contact_tags").await;
        statuses.push(res.status());
        assert_no_limit_headers(res.headers());
        if res.status() == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(res.json::<Value>().await.unwrap(), throttled());
        }
    }
    let (within, over) = statuses.split_at(RPS as usize);
    assert_eq!(within, [StatusCode::OK; RPS as usize]);
    assert_eq!(over, [StatusCode::TOO_MANY_REQUESTS; OVER]);
    let (_, state) = h.get("/__sandbox/state").await;
    assert_eq!(state["rate_limit_429s"], OVER);
    assert_eq!(state["daily_quota_429s"], 0);
    // Just past the one-second window the first requests were counted in.
    tokio::time::sleep(std::time::Duration::from_millis(1050)).await;
    assert_eq!(h.get("/v3/contact_tags").await.0, StatusCode::OK);
}

#[tokio::test]
async fn daily_limit_gets_429() {
    const DAILY_LIMIT: u32 = 2;
    let h = start(SandboxOptions {
        daily_limit: DAILY_LIMIT,
        ..opts()
    })
    .await;
    for _ in 0..DAILY_LIMIT {
        assert_eq!(h.get("/v3/segments").await.0, StatusCode::OK);
    }
    let res = h.get_raw("/v3/segments").await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_no_limit_headers(res.headers());
    assert_eq!(res.json::<Value>().await.unwrap(), quota_exceeded());
    let (_, state) = h.get("/__sandbox/state").await;
    assert_eq!(state["daily_quota_429s"], 1);
}

#[tokio::test]
async fn injected_faults_fail_the_next_matching_requests() {
    const RPS: u32 = 2;
    const FAULTS: usize = 2;
    let h = start(SandboxOptions { rps: RPS, ..opts() }).await;
    h.control(
        "faults",
        json!({"path_prefix": "/v3/contact_tags", "status": 503, "count": FAULTS, "retry_after": 7}),
    )
    .await;
    for _ in 0..FAULTS {
        let res = h.get_raw("/v3/contact_tags").await;
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()["retry-after"], "7");
        assert_eq!(
            res.json::<Value>().await.unwrap()["error_key"],
            "service_unavailable"
        );
    }
    // Faults did not consume the rate budget: a whole second's worth passes.
    for _ in 0..RPS {
        assert_eq!(h.get("/v3/contact_tags").await.0, StatusCode::OK);
    }

    // A scripted 429 is the per-second throttle, without Retry-After; asking for one
    // with a Retry-After is refused, as the API never sends it.
    let url = format!("{}/__sandbox/faults", h.origin());
    let with_header =
        json!({"path_prefix": "/v3/emails", "status": 429, "count": 1, "retry_after": 1});
    let refused = h.http.post(&url).json(&with_header).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert!(refused.text().await.unwrap().contains("retry_after"));
    h.control(
        "faults",
        json!({"path_prefix": "/v3/emails", "status": 429, "count": 1}),
    )
    .await;
    let res = h.get_raw("/v3/emails").await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_no_limit_headers(res.headers());
    assert_eq!(res.json::<Value>().await.unwrap(), throttled());

    h.control(
        "faults",
        json!({"path_prefix": "/v3/segments", "status": 500, "count": 1, "drop_connection": true}),
    )
    .await;
    let dropped = h
        .http
        .get(format!("{}/segments", h.sandbox.base_url()))
        .bearer_auth(&h.token)
        .send()
        .await;
    assert!(dropped.is_err(), "{dropped:?}");
    assert_eq!(
        h.sandbox.request_counts()["GET /v3/contact_tags"],
        FAULTS + RPS as usize,
        "failed requests are counted too"
    );
}

impl Harness {
    /// Moves the sandbox's clock `secs` forward; its new time.
    pub async fn advance_clock(&self, secs: f64) -> chrono::DateTime<chrono::Utc> {
        let now = self.control("clock", json!({"advance_secs": secs})).await;
        now["now"].as_str().unwrap().parse().unwrap()
    }

    /// GET a host-relative path, with the harness's token, as it answers.
    pub async fn get_raw(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.origin()))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
    }
}
