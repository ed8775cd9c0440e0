//! The A/B test, resend, landing page, consent count and SMS history endpoints: which
//! activities have them, their limits and 400s, and agreement with `expected_counts`.

use super::tests::{opts, start, Harness};
use reqwest::StatusCode;
use serde_json::Value;

/// Every served campaign with its detail (type code and activity refs).
async fn campaigns(h: &Harness) -> Vec<Value> {
    let mut out = Vec::new();
    for c in h.read_all("/v3/emails?limit=500", "campaigns").await {
        if c["current_status"] == "Removed" {
            continue;
        }
        let (status, detail) = h
            .get(&format!(
                "/v3/emails/{}",
                c["campaign_id"].as_str().unwrap()
            ))
            .await;
        assert_eq!(status, StatusCode::OK);
        out.push(detail);
    }
    out
}

fn activity_of(campaign: &Value, role: &str) -> Option<String> {
    campaign["campaign_activities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["role"] == role)
        .map(|a| a["campaign_activity_id"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn ab_tests_and_resends_follow_the_campaigns() {
    let h = start(opts()).await;
    let expected = h.sandbox.expected_counts();
    let (mut ab_tests, mut resends) = (0, 0);
    for c in campaigns(&h).await {
        let Some(primary) = activity_of(&c, "primary_email") else {
            continue;
        };
        let (status, body) = h
            .get(&format!("/v3/emails/activities/{primary}/abtest"))
            .await;
        if c["type_code"] == 57 {
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(c["type"], "A/B Test");
            let size = body["test_size"].as_u64().unwrap();
            assert!((5..=50).contains(&size));
            assert!([6, 12, 24, 48].contains(&body["winner_wait_duration"].as_u64().unwrap()));
            assert!(body["alternative_subject"].is_string());
            ab_tests += 1;
        } else {
            assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
            assert_eq!(body[0]["error_key"], "resource.not_found");
        }
        let (status, body) = h
            .get(&format!(
                "/v3/emails/activities/{primary}/non_opener_resends"
            ))
            .await;
        assert_eq!(status, StatusCode::OK);
        let list = body.as_array().unwrap();
        assert_eq!(list.len(), usize::from(activity_of(&c, "resend").is_some()));
        for r in list {
            assert!(r["resend_request_id"].is_string());
            assert_eq!(r["resend_status"], "SENT");
            assert!(r["resend_date"].is_string());
        }
        resends += list.len();
        // Other roles are a 400 in the list shape.
        let permalink = activity_of(&c, "permalink").unwrap();
        for child in ["abtest", "non_opener_resends"] {
            let (status, body) = h
                .get(&format!("/v3/emails/activities/{permalink}/{child}"))
                .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{child}");
            assert_eq!(body[0]["error_key"], "query.param.invalid");
        }
    }
    assert!(ab_tests > 0 && resends > 0);
    assert_eq!(expected["email_campaign_activity_abtests"], ab_tests);
    assert_eq!(expected["email_campaign_activity_resends"], resends);
    let (status, _) = h
        .get("/v3/emails/activities/00000000-0000-0000-0000-000000000000/abtest")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

const LANDING_REPORTS: [(&str, &str); 6] = [
    ("p_contact_opens", "landing_page_contact_opens"),
    (
        "p_unique_contact_opens",
        "landing_page_unique_contact_opens",
    ),
    (
        "p_unique_contact_clicks",
        "landing_page_unique_contact_clicks",
    ),
    ("p_unique_contact_adds", "landing_page_unique_contact_adds"),
    (
        "p_unique_contact_updates",
        "landing_page_unique_contact_updates",
    ),
    (
        "p_unique_contact_sms_optins",
        "landing_page_unique_contact_sms_optins",
    ),
];

#[tokio::test]
async fn landing_page_reports_page_filter_and_count() {
    let h = start(opts()).await;
    let expected = h.sandbox.expected_counts();
    let all = campaigns(&h).await;
    // No listing leads to a landing page: every activity has one of the contract's
    // roles, and the pages are those the connector config names.
    for c in &all {
        for a in c["campaign_activities"].as_array().unwrap() {
            let role = a["role"].as_str().unwrap();
            assert!(
                ["primary_email", "permalink", "resend"].contains(&role),
                "{role}"
            );
        }
    }
    let pages: Vec<String> = h.sandbox.connector_config()["landing_page_activity_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(pages, h.sandbox.landing_page_activity_ids());
    assert_eq!(pages.len(), 3);
    let base = "/v3/reports/landing_pages/campaign_details";
    for (report, stream) in LANDING_REPORTS {
        let mut total = 0;
        for page in &pages {
            let rows = h
                .read_all(
                    &format!("{base}/{page}/{report}?limit=7"),
                    "tracking_activities",
                )
                .await;
            // Newest first, every row of this landing page.
            let times: Vec<&str> = rows
                .iter()
                .map(|r| r["created_time"].as_str().unwrap())
                .collect();
            assert!(times.windows(2).all(|w| w[0] >= w[1]), "{report}");
            assert!(rows
                .iter()
                .all(|r| r["campaign_activity_id"] == page.as_str()));
            total += rows.len();
        }
        assert_eq!(expected[stream], total, "{stream}");
        assert!(total > 0, "{stream}");
    }
    // Unique clicks: one row per contact and link.
    let page = &pages[0];
    let clicks = h
        .read_all(
            &format!("{base}/{page}/p_unique_contact_clicks?limit=500"),
            "tracking_activities",
        )
        .await;
    let mut keys: Vec<(String, String)> = clicks
        .iter()
        .map(|r| (r["contact_id"].to_string(), r["url_id"].to_string()))
        .collect();
    let n = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), n);
    // contacts_filter matches part of a name or email, ignoring case.
    let opens = h
        .read_all(
            &format!("{base}/{page}/p_contact_opens?limit=500"),
            "tracking_activities",
        )
        .await;
    let name = opens[0]["first_name"].as_str().unwrap().to_string();
    let part = name[..3].to_uppercase();
    let filtered = h
        .read_all(
            &format!("{base}/{page}/p_contact_opens?contacts_filter={part}"),
            "tracking_activities",
        )
        .await;
    assert!(!filtered.is_empty() && filtered.len() <= opens.len());
    let lower = part.to_lowercase();
    assert!(filtered.iter().all(|r| {
        ["first_name", "last_name", "email_address"]
            .iter()
            .any(|k| r[*k].as_str().unwrap().to_lowercase().contains(&lower))
    }));
    // Limits, and activities that are not landing pages.
    for bad in ["limit=0", "limit=501", "limit=x"] {
        let (status, body) = h.get(&format!("{base}/{page}/p_contact_opens?{bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(body[0]["error_key"], "query.param.invalid");
    }
    let primary = all
        .iter()
        .find_map(|c| activity_of(c, "primary_email"))
        .unwrap();
    let (status, _) = h.get(&format!("{base}/{primary}/p_contact_opens")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let unknown = "00000000-0000-4000-8000-000000000000";
    let (status, _) = h.get(&format!("{base}/{unknown}/p_contact_opens")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = h.get(&format!("{base}/{page}/p_contact_opens")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body["tracking_activities"].as_array().unwrap().len() <= 50,
        "default page of 50"
    );
}

#[tokio::test]
async fn consent_counts_and_sms_history() {
    let h = start(opts()).await;
    let (status, counts) = h.get("/v3/contacts/counts").await;
    assert_eq!(status, StatusCode::OK);
    assert!(counts.get("new_subscriber").is_none());
    let parts: u64 = ["explicit", "implicit", "pending", "unsubscribed"]
        .iter()
        .map(|k| counts[*k].as_u64().unwrap())
        .sum();
    assert!(parts <= counts["total"].as_u64().unwrap());
    let (status, with_new) = h.get("/v3/contacts/counts?include=new_subscriber").await;
    assert_eq!(status, StatusCode::OK);
    assert!(with_new["new_subscriber"].is_u64());
    let (status, body) = h.get("/v3/contacts/counts?include=everything").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body[0]["error_key"], "query.param.invalid");

    let contacts = h.read_all("/v3/contacts?limit=500", "contacts").await;
    let total = contacts.len() as u64;
    assert_eq!(counts["total"].as_u64().unwrap(), total);
    let id = contacts[0]["contact_id"].as_str().unwrap();
    let (status, history) = h
        .get(&format!("/v3/contacts/sms_engagement_history/{id}"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let history = history.as_array().unwrap();
    assert!(!history.is_empty());
    assert!(history.iter().all(|e| e["contact_id"] == id));
    let (status, _) = h.get("/v3/contacts/sms_engagement_history/nope").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = h
        .get("/v3/contacts/sms_engagement_history/00000000-0000-0000-0000-000000000000")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// The sample config of `integration_tests/` names the landing pages of seed 42, whatever
/// the number of contacts.
#[test]
fn landing_page_ids_depend_on_the_seed_alone() {
    use super::data::Data;
    use super::DEFAULT_CAMPAIGNS;
    let now = chrono::Utc::now().timestamp_millis();
    let ids = |seed, contacts| -> Vec<String> {
        Data::generate(seed, contacts, DEFAULT_CAMPAIGNS, now)
            .landing_pages
            .iter()
            .map(|p| p.activity.to_string())
            .collect()
    };
    assert_eq!(ids(42, 40), ids(42, 1000));
    assert_eq!(ids(42, 40).len(), 3);
    assert_ne!(ids(42, 40), ids(7, 40));
}
