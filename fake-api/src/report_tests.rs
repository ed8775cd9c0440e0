//! Report and campaign-activity child endpoints, checked against each other and against
//! `expected_counts`.

use super::reports::REPORTS;
use super::tests::{opts, start, Harness};
use super::tracking::MAX_RECIPIENTS;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// The sandbox's sent campaigns (status Done): each has a sent primary email,
/// some a resend too.
const SENT_CAMPAIGNS: usize = 18;

/// A loose ceiling on one activity's rows of any tracking report: five per
/// recipient (a send and a few opens or clicks each is more than the
/// generator makes).
const REPORT_ROWS_CEILING: usize = 5 * MAX_RECIPIENTS;

/// The most ids one stats request may carry: campaigns, campaign activities
/// (the API's limits).
const CAMPAIGN_STATS_BATCH: usize = 150;
const ACTIVITY_STATS_BATCH: usize = 10;

/// An odd page size, so that pages and totals never line up by chance.
const SMALL_PAGE: usize = 37;

/// Every campaign activity reachable from `/emails`: (campaign id, activity id, role).
async fn activities(h: &Harness) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for c in h.read_all("/v3/emails?limit=500", "campaigns").await {
        let id = c["campaign_id"].as_str().unwrap();
        let (status, detail) = h.get(&format!("/v3/emails/{id}")).await;
        assert_eq!(status, StatusCode::OK);
        for a in detail["campaign_activities"].as_array().unwrap() {
            out.push((
                id.to_owned(),
                a["campaign_activity_id"].as_str().unwrap().to_owned(),
                a["role"].as_str().unwrap().to_owned(),
            ));
        }
    }
    out
}

/// Activity stats of every primary_email and resend activity, ten per request.
async fn activity_stats(h: &Harness, all: &[(String, String, String)]) -> Vec<Value> {
    let sendable: Vec<&str> = all
        .iter()
        .filter(|(_, _, role)| role == "primary_email" || role == "resend")
        .map(|(_, a, _)| a.as_str())
        .collect();
    let mut results = Vec::new();
    for batch in sendable.chunks(ACTIVITY_STATS_BATCH) {
        let path = format!(
            "/v3/reports/stats/email_campaign_activities/{}",
            batch.join(",")
        );
        let (status, body) = h.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        results.extend(body["results"].as_array().unwrap().iter().cloned());
    }
    results
}

/// Activities that were sent: those whose stats count sends.
async fn sent_activities(h: &Harness, all: &[(String, String, String)]) -> Vec<String> {
    activity_stats(h, all)
        .await
        .iter()
        .filter(|r| r["stats"]["em_sends"].as_u64().unwrap() > 0)
        .map(|r| r["campaign_activity_id"].as_str().unwrap().to_owned())
        .collect()
}

fn created(row: &Value) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(row["created_time"].as_str().unwrap()).unwrap()
}

fn report_path(activity: &str, report: &str) -> String {
    format!("/v3/reports/email_reports/{activity}/tracking/{report}")
}

#[tokio::test]
async fn tracking_pages_cover_every_row_once_newest_first() {
    let h = start(opts()).await;
    let all = activities(&h).await;
    let sent = sent_activities(&h, &all).await;
    assert!(sent.len() >= SENT_CAMPAIGNS, "{sent:?}");
    let expected = h.sandbox.expected_counts();
    for report in &REPORTS {
        let name = report.list.path.rsplit('/').next().unwrap();
        let mut total = 0;
        for (i, activity) in sent.iter().enumerate() {
            let path = report_path(activity, name);
            let whole = h.read_all(&path, "tracking_activities").await;
            total += whole.len();
            assert!(
                whole.len() <= REPORT_ROWS_CEILING,
                "{name}: {}",
                whole.len()
            );
            assert!(
                whole.windows(2).all(|w| created(&w[0]) >= created(&w[1])),
                "{name} is not newest first"
            );
            for row in &whole {
                assert_eq!(row["campaign_activity_id"], activity.as_str());
                assert_eq!(row["tracking_activity_type"], report.activity_type);
                assert!(row["email_address"].as_str().unwrap().contains('@'));
            }
            // Small pages return the same rows, each once (for the first
            // two activities: enough to show it, and cheap).
            if i < 2 {
                let paged = h
                    .read_all(&format!("{path}?limit={SMALL_PAGE}"), "tracking_activities")
                    .await;
                assert_eq!(paged, whole, "{name}");
            }
            let keys: BTreeSet<String> = whole
                .iter()
                .map(|r| format!("{}|{}|{}", r["contact_id"], r["created_time"], r["url_id"]))
                .collect();
            assert_eq!(keys.len(), whole.len(), "{name}: duplicate keys");
        }
        assert_eq!(total, expected[report.stream], "{}", report.stream);
    }
    assert!(expected["email_sends"] > 0 && expected["email_opens"] > 0);
    assert!(expected["email_clicks"] > 0 && expected["email_bounces"] > 0);

    // Unsent activities have empty reports; unknown ones are 404.
    let draft = all
        .iter()
        .find(|(_, a, role)| role == "primary_email" && !sent.contains(a))
        .unwrap();
    let (status, body) = h.get(&report_path(&draft.1, "bounces")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"tracking_activities": [], "_links": {}}));
    let (status, body) = h.get(&report_path(&draft.1, "opens")).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"tracking_activities": []}))
    );
    let unknown = report_path("00000000-0000-4000-8000-000000000000", "sends");
    let (status, body) = h.get(&unknown).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body[0]["error_key"], "resource.not_found");
    assert_eq!(
        h.get(&format!("{}?limit=501", report_path(&sent[0], "sends")))
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    // Each sent activity's bounces read whole in one page, then the first two
    // in small pages (one each: none bounced more than SMALL_PAGE), and the
    // draft's once.
    assert_eq!(
        h.sandbox.request_counts()
            ["GET /v3/reports/email_reports/{campaign_activity_id}/tracking/bounces"],
        sent.len() + 2 + 1
    );
}

#[tokio::test]
async fn reports_agree_with_each_other() {
    let h = start(opts()).await;
    let all = activities(&h).await;
    let sent = sent_activities(&h, &all).await;
    for activity in &sent {
        let rows = |name| h.read_all_owned(report_path(activity, name));
        let (sends, opens, unique, not_opened) = (
            rows("sends").await,
            rows("opens").await,
            rows("unique_opens").await,
            rows("didnotopens").await,
        );
        let (clicks, bounces, optouts, forwards) = (
            rows("clicks").await,
            rows("bounces").await,
            rows("optouts").await,
            rows("forwards").await,
        );
        let contacts = |rows: &[Value]| -> BTreeSet<String> {
            rows.iter().map(|r| r["contact_id"].to_string()).collect()
        };
        let (_, stats) = h
            .get(&format!(
                "/v3/reports/stats/email_campaign_activities/{activity}"
            ))
            .await;
        let s = &stats["results"][0]["stats"];
        assert_eq!(s["em_sends"], sends.len());
        assert_eq!(s["em_opens"], unique.len());
        assert_eq!(s["em_opens"], contacts(&opens).len());
        assert_eq!(s["em_opens_all"], opens.len());
        assert_eq!(s["em_clicks_all"], clicks.len());
        assert_eq!(s["em_clicks"], contacts(&clicks).len());
        assert_eq!(s["em_bounces"], bounces.len());
        assert_eq!(s["em_optouts"], optouts.len());
        assert_eq!(s["em_forwards"], contacts(&forwards).len());
        assert_eq!(s["em_not_opened"], not_opened.len());
        assert_eq!(sends.len(), unique.len() + not_opened.len() + bounces.len());
        assert!(contacts(&opens).is_subset(&contacts(&sends)));
        // Bounce codes filter; clicks reference the activity's links.
        let b_only = h
            .read_all(
                &format!(
                    "{}?bounce_code=B&bounce_code=Z",
                    report_path(activity, "bounces")
                ),
                "tracking_activities",
            )
            .await;
        assert!(b_only
            .iter()
            .all(|r| r["bounce_code"] == "B" || r["bounce_code"] == "Z"));
        assert_eq!(
            b_only.len() as u64,
            s["em_bounces_nonexistent_address"].as_u64().unwrap()
                + s["em_bounces_blocked"].as_u64().unwrap()
        );
        let (_, report) = h
            .get(&format!(
                "/v3/reports/email_reports/{activity}/links?no_clicks=true"
            ))
            .await;
        for link in report["link_click_counts"].as_array().unwrap() {
            let of_link: Vec<&Value> = clicks
                .iter()
                .filter(|c| c["url_id"] == link["url_id"])
                .collect();
            let unique: BTreeSet<String> = of_link
                .iter()
                .map(|c| c["contact_id"].to_string())
                .collect();
            assert_eq!(link["unique_clicks"], unique.len());
            assert!(of_link.iter().all(|c| c["link_url"] == link["link_url"]));
            let filtered = h
                .read_all(
                    &format!(
                        "{}?url_id={}",
                        report_path(activity, "clicks"),
                        link["url_id"].as_str().unwrap()
                    ),
                    "tracking_activities",
                )
                .await;
            assert_eq!(filtered.len(), of_link.len());
        }
        assert_eq!(
            clicks.len(),
            clicks
                .iter()
                .filter(|c| report["link_click_counts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|l| l["url_id"] == c["url_id"]))
                .count()
        );
    }
    let expected = h.sandbox.expected_counts();

    // Campaign stats add up their activities and match the summary report.
    let summaries = h
        .read_all(
            "/v3/reports/summary_reports/email_campaign_summaries",
            "bulk_email_campaign_summaries",
        )
        .await;
    let ids: Vec<&str> = all.iter().map(|(c, _, _)| c.as_str()).collect();
    let (status, stats) = h
        .get(&format!(
            "/v3/reports/stats/email_campaigns/{}",
            ids.join(",")
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    let results = stats["results"].as_array().unwrap();
    assert_eq!(results.len(), expected["email_campaign_stats"]);
    assert_eq!(stats["errors"], json!([]));
    for summary in &summaries {
        let r = results
            .iter()
            .find(|r| r["campaign_id"] == summary["campaign_id"])
            .unwrap();
        let u = &summary["unique_counts"];
        for (unique, stat) in [
            ("sends", "em_sends"),
            ("opens", "em_opens"),
            ("clicks", "em_clicks"),
            ("bounces", "em_bounces"),
            ("optouts", "em_optouts"),
            ("not_opened", "em_not_opened"),
        ] {
            assert_eq!(u[unique], r["stats"][stat], "{unique}");
        }
    }
}

impl Harness {
    async fn read_all_owned(&self, path: String) -> Vec<Value> {
        self.read_all(&path, "tracking_activities").await
    }
}

#[tokio::test]
async fn stats_batches_are_limited() {
    let h = start(opts()).await;
    let unknown = |n: usize| {
        (0..n)
            .map(|i| format!("00000000-0000-4000-8000-{i:012}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let campaigns = "/v3/reports/stats/email_campaigns";
    let activities = "/v3/reports/stats/email_campaign_activities";
    let (status, body) = h
        .get(&format!(
            "{campaigns}/{}",
            unknown(CAMPAIGN_STATS_BATCH + 1)
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body[0]["error_key"], "query.param.invalid");
    let (status, body) = h
        .get(&format!("{campaigns}/{}", unknown(CAMPAIGN_STATS_BATCH)))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["results"], json!([]));
    assert_eq!(
        body["errors"].as_array().unwrap().len(),
        CAMPAIGN_STATS_BATCH
    );
    assert_eq!(
        h.get(&format!(
            "{activities}/{}",
            unknown(ACTIVITY_STATS_BATCH + 1)
        ))
        .await
        .0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        h.get(&format!("{activities}/{}", unknown(ACTIVITY_STATS_BATCH)))
            .await
            .0,
        StatusCode::OK
    );
    // One malformed id fails the whole request.
    for base in [campaigns, activities] {
        let (status, body) = h.get(&format!("{base}/{},nope", unknown(2))).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{base}");
        assert_eq!(body[0]["error_key"], "resource.not_found");
    }
}

#[tokio::test]
async fn children_match_expected_counts() {
    let h = start(opts()).await;
    let all = activities(&h).await;
    let expected = h.sandbox.expected_counts();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (campaign, activity, role) in &all {
        let (status, body) = h
            .get(&format!(
                "/v3/emails/activities/{activity}?include=html_content,document_properties"
            ))
            .await;
        if status == StatusCode::NOT_FOUND {
            // Activities of removed campaigns are not served.
            let (_, c) = h.get(&format!("/v3/emails/{campaign}")).await;
            assert_eq!(c["current_status"], "Removed");
            continue;
        }
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["campaign_id"], campaign.as_str());
        assert!(body["html_content"].is_string() && body.get("permalink_url").is_none());
        *counts.entry("email_campaign_activities").or_default() += 1;
        let child = |name: &str| format!("/v3/emails/activities/{activity}/{name}");
        let (status, schedules) = h.get(&child("schedules")).await;
        assert_eq!(status, StatusCode::OK);
        *counts.entry("campaign_activity_schedules").or_default() +=
            schedules.as_array().unwrap().len();
        let (history_status, history) = h.get(&child("send_history")).await;
        let (preview_status, preview) = h.get(&child("previews")).await;
        let (links_status, _) = h
            .get(&format!("/v3/reports/email_reports/{activity}/links"))
            .await;
        if role == "permalink" || role == "landing_page" {
            assert_eq!(history_status, StatusCode::BAD_REQUEST);
            assert_eq!(preview_status, StatusCode::NOT_FOUND);
            assert_eq!(links_status, StatusCode::BAD_REQUEST);
            continue;
        }
        assert_eq!(history_status, StatusCode::OK);
        let history = history.as_array().unwrap();
        assert!(history
            .iter()
            .enumerate()
            .all(|(i, h)| h["send_id"] == i + 1));
        *counts.entry("campaign_activity_send_history").or_default() += history.len();
        assert_eq!(preview_status, StatusCode::OK);
        assert_eq!(preview["campaign_activity_id"], activity.as_str());
        *counts.entry("campaign_activity_previews").or_default() += 1;
        assert_eq!(links_status, StatusCode::OK);
        *counts.entry("email_links").or_default() += 1;
    }
    let stats = activity_stats(&h, &all).await;
    *counts.entry("email_campaign_activity_stats").or_default() += stats.len();
    for (stream, n) in counts {
        assert_eq!(n, expected[stream], "{stream}");
    }
    // Pages of three: the sandbox's eight bulk activities take several.
    let bulk = h.read_all("/v3/activities?limit=3", "activities").await;
    assert_eq!(bulk.len(), expected["bulk_activities"]);
    let completed = h
        .read_all("/v3/activities?state=completed", "activities")
        .await;
    // Five of the sandbox's bulk activities are completed: the filter keeps
    // those (at least three) and only those.
    assert!(completed.len() >= 3 && completed.iter().all(|a| a["state"] == "completed"));
    assert_eq!(
        completed.len(),
        bulk.iter().filter(|a| a["state"] == "completed").count()
    );
    let href = bulk[0]["_links"]["self"]["href"].as_str().unwrap();
    assert_eq!(h.get(href).await, (StatusCode::OK, bulk[0].clone()));
    assert_eq!(
        h.get("/v3/activities?state=done").await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(h.get("/v3/segments/abc").await.0, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn open_and_click_rates_refuse_a_range_over_five_years() {
    let h = start(opts()).await;
    let (_, page) = h.get("/v3/contacts?limit=1").await;
    let contact = page["contacts"][0]["contact_id"].as_str().unwrap();
    let h = &h;
    let rates = |range: &str| {
        let path = format!("/v3/reports/contact_reports/{contact}/open_and_click_rates?{range}");
        async move { h.get(&path).await }
    };
    // Five years of 365 days pass...
    let (status, body) = rates("start=2019-01-02T00:00:00Z&end=2023-12-31T23:59:59Z").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        rates("start=2019-01-02T00:00:00Z&end=2024-01-01T00:00:00Z")
            .await
            .0,
        StatusCode::OK
    );
    // ... a second more does not, and neither do five calendar years with a leap day.
    for range in [
        "start=2019-01-02T00:00:00Z&end=2024-01-01T00:00:01Z",
        "start=2020-01-01&end=2025-01-01",
        "start=2010-01-01T00:00:00Z&end=2020-01-01T00:00:00Z",
    ] {
        let (status, body) = rates(range).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{range}");
        assert_eq!(body[0]["error_key"], "query.param.invalid", "{range}");
        assert!(body[0]["error_message"]
            .as_str()
            .unwrap()
            .contains("5 years"));
    }
}

#[tokio::test]
async fn contact_reports_require_their_parameters() {
    let h = start(opts()).await;
    let all = activities(&h).await;
    let sent = sent_activities(&h, &all).await;
    let sends = h.read_all_owned(report_path(&sent[0], "sends")).await;
    let contact = sends[0]["contact_id"].as_str().unwrap().to_owned();
    let base = format!("/v3/reports/contact_reports/{contact}");
    let range = "start=2000-01-01T00:00:00-0500&end=2100-01-01T00:00:00Z";
    for path in [
        format!("{base}/activity_summary"),
        format!("{base}/activity_summary?start=2020-01-01T00:00:00Z"),
        format!("{base}/activity_summary?end=2020-01-01T00:00:00Z"),
        format!("{base}/activity_summary?start=yesterday&end=2020-01-01T00:00:00Z"),
        format!("{base}/open_and_click_rates?end=2020-01-01T00:00:00Z"),
        format!("{base}/open_and_click_rates?start=2010-01-01T00:00:00Z&end=2020-01-01T00:00:00Z"),
        format!("{base}/activity_details"),
        format!("{base}/activity_details?tracking_activities_list=em_views"),
        format!("{base}/activity_details?tracking_activities_list=em_sends&limit=101"),
    ] {
        let (status, body) = h.get(&path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
    }
    let unknown = "/v3/reports/contact_reports/00000000-0000-4000-8000-000000000000";
    assert_eq!(
        h.get(&format!("{unknown}/activity_summary?{range}"))
            .await
            .0,
        StatusCode::NOT_FOUND
    );

    let (status, summary) = h.get(&format!("{base}/activity_summary?{range}")).await;
    assert_eq!(status, StatusCode::OK);
    let entries = summary["campaign_activities"].as_array().unwrap();
    assert!(entries
        .iter()
        .any(|e| e["campaign_activity_id"] == sent[0].as_str()));
    let (_, rates) = h
        .get(&format!(
            "{base}/open_and_click_rates?start=2021-01-01&end=2025-12-31T00:00:00Z"
        ))
        .await;
    assert!(rates["included_activities_count"].is_u64());
    let everything = "em_sends,em_opens,em_clicks,em_bounces,em_optouts,em_forwards,\
        p_contact_open,p_contact_click,p_contact_add,p_contact_update";
    let details = h
        .read_all(
            &format!("{base}/activity_details?tracking_activities_list={everything}&limit=3"),
            "tracking_activities",
        )
        .await;
    assert!(details.windows(2).all(|w| created(&w[0]) >= created(&w[1])));
    let sends_of_contact = details
        .iter()
        .filter(|d| d["tracking_activity_type"] == "em_sends")
        .count();
    assert_eq!(sends_of_contact, entries.len());
    let opens: u64 = entries
        .iter()
        .map(|e| e["em_opens"].as_u64().unwrap())
        .sum();
    assert_eq!(
        opens as usize,
        details
            .iter()
            .filter(|d| d["tracking_activity_type"] == "em_opens")
            .count()
    );

    let (status, counts) = h
        .get_control(&format!("contact_reports?contact_ids={contact}&{range}"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, sms) = h
        .get(&format!("/v3/contacts/sms_engagement_history/{contact}"))
        .await;
    assert_eq!(
        counts["expected_counts"],
        json!({
            "contact_activity_summary": entries.len(),
            "contact_activity_details": details.len(),
            "contact_open_and_click_rates": 1,
            "contact_sms_engagement_history": sms.as_array().unwrap().len(),
        })
    );
}

/// The landing-page types the contract lists for the contact activity details report,
/// by either parameter: a visitor's rows carry the landing page's activity id.
#[tokio::test]
async fn contact_activity_details_serve_landing_page_types() {
    let h = start(opts()).await;
    let page = h.sandbox.landing_page_activity_ids()[0].clone();
    let opens = h
        .read_all_owned(format!(
            "/v3/reports/landing_pages/campaign_details/{page}/p_contact_opens?limit=500"
        ))
        .await;
    let contact = opens[0]["contact_id"].as_str().unwrap().to_owned();
    let of_contact = opens
        .iter()
        .filter(|o| o["contact_id"] == contact.as_str())
        .count();
    let base = format!("/v3/reports/contact_reports/{contact}/activity_details");
    let types = "p_contact_open,p_contact_click,p_contact_add,p_contact_update";
    let listed = h
        .read_all(
            &format!("{base}?tracking_activities_list={types}"),
            "tracking_activities",
        )
        .await;
    let repeated: String = types
        .split(',')
        .map(|t| format!("tracking_activity_type={t}"))
        .collect::<Vec<_>>()
        .join("&");
    let by_type = h
        .read_all(&format!("{base}?{repeated}"), "tracking_activities")
        .await;
    assert_eq!(listed, by_type);
    let page_opens: Vec<&Value> = listed
        .iter()
        .filter(|d| {
            d["tracking_activity_type"] == "p_contact_open"
                && d["campaign_activity_id"] == page.as_str()
        })
        .collect();
    assert_eq!(page_opens.len(), of_contact);
    assert!(listed.iter().all(|d| d["tracking_activity_type"]
        .as_str()
        .unwrap()
        .starts_with("p_contact_")));
    assert!(listed.windows(2).all(|w| created(&w[0]) >= created(&w[1])));
    for bad in [
        format!("{base}?tracking_activities_list=em_sends&tracking_activity_type=em_opens"),
        format!("{base}?tracking_activity_type=p_contact_sms_optin"),
        format!("{base}?tracking_activities_list=p_contact_sms_optin"),
    ] {
        let (status, body) = h.get(&bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
}

impl Harness {
    async fn get_control(&self, route: &str) -> (StatusCode, Value) {
        let url = format!("{}/__sandbox/{route}", self.origin());
        let res = self.http.get(url).send().await.unwrap();
        (res.status(), res.json().await.unwrap_or(Value::Null))
    }
}

#[tokio::test]
async fn mutate_adds_tracking_and_sends_campaigns() {
    // Opens (each followed by a click) the two mutations add.
    const FIRST: usize = 4;
    const LATER: usize = 3;
    let h = start(opts()).await;
    let before = h.sandbox.expected_counts();
    let sent = h
        .control("mutate", json!({"send_campaign": true, "tracking": FIRST}))
        .await;
    let campaign = sent["sent_campaign"]["campaign_id"].as_str().unwrap();
    let activity = sent["sent_campaign"]["campaign_activity_id"]
        .as_str()
        .unwrap();
    assert_eq!(sent["tracking_activity"], activity);
    let (_, c) = h.get(&format!("/v3/emails/{campaign}")).await;
    assert_eq!(c["current_status"], "Done");
    let after = h.sandbox.expected_counts();
    let sends = h.read_all_owned(report_path(activity, "sends")).await;
    assert!(!sends.is_empty());
    assert_eq!(after["email_sends"], before["email_sends"] + sends.len());
    assert_eq!(after["email_opens"], before["email_opens"] + FIRST);
    assert_eq!(after["email_clicks"], before["email_clicks"] + FIRST);
    assert_eq!(
        after["email_campaign_summaries"],
        before["email_campaign_summaries"] + 1
    );
    assert_eq!(after["email_links"], before["email_links"]);

    // Later tracking lands on the same (most recent) activity, newest first.
    let opens_before = h.read_all_owned(report_path(activity, "opens")).await;
    let newest = created(&opens_before[0]);
    let m = h.control("mutate", json!({"tracking": LATER})).await;
    assert_eq!(m["tracking_activity"], activity);
    let opens = h.read_all_owned(report_path(activity, "opens")).await;
    assert_eq!(opens.len(), opens_before.len() + LATER);
    assert!(opens[..LATER].iter().all(|o| created(o) > newest));
    assert_eq!(opens[LATER..], opens_before[..]);
    // The campaign was just sent: its only clicks are the mutations'.
    let clicks = h.read_all_owned(report_path(activity, "clicks")).await;
    assert_eq!(clicks.len(), FIRST + LATER);
    let (_, stats) = h
        .get(&format!(
            "/v3/reports/stats/email_campaign_activities/{activity}"
        ))
        .await;
    assert_eq!(stats["results"][0]["stats"]["em_opens_all"], FIRST + LATER);
    assert_eq!(
        h.sandbox.expected_counts()["email_opens"],
        after["email_opens"] + LATER
    );
}

#[tokio::test]
async fn segment_contacts_are_prepared_first() {
    let h = start(opts()).await;
    let (_, segments) = h.get("/v3/segments").await;
    let id = segments["segments"][0]["segment_id"].as_i64().unwrap();
    // Pages of 40: a segment's members take several.
    let path = format!("/v3/contacts?segment_id={id}&limit=40");
    assert_eq!(
        h.get(&path).await,
        (StatusCode::ACCEPTED, json!({"contacts": []}))
    );
    let members = h.read_all(&path, "contacts").await;
    assert!(!members.is_empty() && members.len() < opts().contacts);
    assert_eq!(h.read_all(&path, "contacts").await, members);
    assert_eq!(
        h.get(&format!("/v3/contacts?segment_id={id}&status=all"))
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        h.get("/v3/contacts?segment_id=999999").await.0,
        StatusCode::NOT_FOUND
    );
}
