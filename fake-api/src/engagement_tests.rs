//! Events, registrations, automations, SMS summaries and social endpoints: their paging
//! at the contract's limits, their 400s, agreement with `expected_counts`, and the 403s
//! of `--without-privilege`.

use super::options::SandboxOptions;
use super::tests::{opts, start, Harness};
use reqwest::StatusCode;
use serde_json::Value;

/// Every record of a collection paged by `next_cursor`, and the pages it took.
async fn by_cursor(h: &Harness, path: &str) -> (Vec<Value>, usize) {
    let mut records = Vec::new();
    let mut pages = 0;
    let mut url = path.to_owned();
    loop {
        let (status, body) = h.get(&url).await;
        assert_eq!(status, StatusCode::OK, "{url}: {body}");
        assert!(body.get("_links").is_none(), "no links: {body}");
        pages += 1;
        records.extend(body["records"].as_array().unwrap().iter().cloned());
        let Some(cursor) = body["next_cursor"].as_str() else {
            return (records, pages);
        };
        assert!(body["total_records"].as_u64().unwrap() > records.len() as u64);
        let sep = if path.contains('?') { '&' } else { '?' };
        url = format!("{path}{sep}next={cursor}");
    }
}

/// Every record under `key` of a collection paged by `_links.next.href`.
async fn by_links(h: &Harness, path: &str, key: &str) -> Vec<Value> {
    let mut records = Vec::new();
    let mut next = Some(path.to_owned());
    while let Some(path) = next {
        let (status, body) = h.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        records.extend(body[key].as_array().unwrap().iter().cloned());
        next = body["_links"]["next"]["href"].as_str().map(str::to_owned);
    }
    records
}

#[tokio::test]
async fn events_and_registrations_page_by_cursor() {
    let h = start(opts()).await;
    let expected = h.sandbox.expected_counts();
    let (events, pages) = by_cursor(&h, "/v3/events?limit=100").await;
    assert_eq!(events.len(), expected["events"]);
    assert_eq!(pages, 2, "105 events at 100 a page");
    // The default page is the largest; more is refused.
    let (_, first) = h.get("/v3/events").await;
    assert_eq!(first["records"].as_array().unwrap().len(), 100);
    let (status, _) = h.get("/v3/events?limit=101").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = h.get("/v3/events?next=bogus").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, drafts) = h.get("/v3/events?event_status=DRAFT").await;
    assert!(drafts["records"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["status"] == "DRAFT"));

    let mut registrations = 0;
    let mut paged = 0;
    for e in &events {
        let id = e["event_id"].as_str().unwrap();
        let (status, detail) = h.get(&format!("/v3/events/{id}?include=true")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(detail["event_settings"].is_object());
        let track = detail["default_track"]["track_id"].as_str().unwrap();
        let path = format!("/v3/events/{id}/tracks/{track}/registrations?limit=50");
        let (rows, pages) = by_cursor(&h, &path).await;
        assert_eq!(
            rows.len() as u64,
            e["event_registration_summary_metrics"]["registration_count"]
                .as_u64()
                .unwrap()
        );
        assert!(rows.iter().all(|r| r["track_key"] == track));
        registrations += rows.len();
        paged += usize::from(pages > 1);
    }
    assert_eq!(registrations, expected["event_registrations"]);
    assert!(paged >= 1, "some track pages at 50 registrations");
    let (status, _) = h.get("/v3/events/nope/tracks/x/registrations").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let id = events[0]["event_id"].as_str().unwrap();
    let (status, _) = h
        .get(&format!(
            "/v3/events/{id}/tracks/x/registrations?limit=10&page_size=20"
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn automations_answer_209_and_sms_summaries_need_a_start() {
    let h = start(opts()).await;
    let expected = h.sandbox.expected_counts();
    let res = h.get_raw("/v3/automations/workflows").await;
    assert_eq!(res.status().as_u16(), 209);
    let body: Value = res.json().await.unwrap();
    let flows = body["flow_summaries"].as_array().unwrap();
    assert_eq!(flows.len(), expected["automation_workflows"]);
    for flow in flows {
        let id = flow["id"].as_str().unwrap();
        let (status, detail) = h.get(&format!("/v3/automations/workflows/{id}")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(detail["id"], flow["id"]);
    }

    let (status, _) = h
        .get("/v3/reports/summary_reports/sms_campaign_summaries")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "start_at is required");
    let (status, _) = h
        .get("/v3/reports/summary_reports/sms_campaign_summaries?start_at=2000-01-01T00:00:00Z&limit=51")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let all = by_links(
        &h,
        "/v3/reports/summary_reports/sms_campaign_summaries?start_at=2000-01-01T00:00:00Z",
        "bulk_sms_campaign_summaries",
    )
    .await;
    assert_eq!(all.len(), expected["sms_campaign_summaries"]);
    assert!(all.len() > 50, "pages at the largest limit");
    let sent: Vec<&str> = all
        .iter()
        .map(|c| c["last_sent_date"].as_str().unwrap())
        .collect();
    assert!(sent.windows(2).all(|w| w[0] >= w[1]), "newest first");
    // `start_at` bounds by the send date.
    let recent = by_links(
        &h,
        &format!(
            "/v3/reports/summary_reports/sms_campaign_summaries?start_at={}&limit=3",
            sent[9]
        ),
        "bulk_sms_campaign_summaries",
    )
    .await;
    assert_eq!(recent.len(), 10);

    let changed = h
        .control(
            "mutate",
            serde_json::json!({"automations": 2, "sms_campaigns": 1}),
        )
        .await;
    assert_eq!(changed["automations"].as_array().unwrap().len(), 2);
    assert_eq!(
        h.sandbox.expected_counts()["sms_campaign_summaries"],
        all.len() + 1
    );
}

#[tokio::test]
async fn social_hashtag_groups_page_at_five() {
    let h = start(opts()).await;
    let expected = h.sandbox.expected_counts();
    let groups = by_links(&h, "/v3/social/hashtags/groups", "hashtag_groups").await;
    assert_eq!(groups.len(), expected["social_hashtag_groups"]);
    assert!(groups.len() > 5, "pages at the largest limit");
    let (_, last) = h.get("/v3/social/hashtags/groups?limit=5&page=1").await;
    assert_eq!(last["_links"], serde_json::json!({}));
    assert_eq!(last["page"]["total_pages"], 2);
    let (status, _) = h.get("/v3/social/hashtags/groups?limit=6").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, profiles) = h.get("/v3/social/profiles?include=accessible").await;
    let profiles = profiles.as_array().unwrap();
    assert_eq!(profiles.len(), expected["social_profiles"]);
    assert!(profiles.iter().all(|p| p["accessible"].is_boolean()));
    let (_, plain) = h.get("/v3/social/profiles").await;
    assert!(plain[0].get("accessible").is_none());
    let (_, connections) = h.get("/v3/social/connections").await;
    assert_eq!(
        connections["connections"].as_array().unwrap().len(),
        expected["social_connections"]
    );
}

#[tokio::test]
async fn a_missing_privilege_answers_403_and_is_not_listed() {
    let h = start(SandboxOptions {
        without_privileges: vec!["campaign:read".into(), "customer-journey:read".into()],
        ..opts()
    })
    .await;
    for path in [
        "/v3/events",
        "/v3/emails",
        "/v3/social/profiles",
        "/v3/automations/workflows",
    ] {
        let (status, body) = h.get(path).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(body[0]["error_key"], "forbidden");
    }
    let (status, _) = h
        .get("/v3/reports/summary_reports/sms_campaign_summaries?start_at=2020-01-01")
        .await;
    assert_eq!(status, StatusCode::OK, "ui:campaign:metrics is still held");
    let (_, privileges) = h.get("/v3/account/user/privileges").await;
    let names: Vec<&str> = privileges
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["privilege_name"].as_str().unwrap())
        .collect();
    assert!(!names.contains(&"campaign:read"));
    assert!(names.contains(&"ui:campaign:metrics"));
    assert_eq!(names.len(), h.sandbox.expected_counts()["user_privileges"]);
    // Without a token it is still a 401, not a 403.
    let res = h
        .http
        .get(format!("{}/v3/events", h.origin()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let bad = SandboxOptions {
        without_privileges: vec!["campaign:reed".into()],
        ..opts()
    };
    assert!(bad.validate().is_err());
}
