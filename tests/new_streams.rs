//! The streams issue 12 added: A/B tests, resends to non-openers, landing page
//! reports, contact consent counts and SMS engagement history. Full reads
//! match the sandbox's counts without a wasted request; incremental reads of
//! campaign children skip unchanged campaigns.
// These tests run the connector binary's `sandbox` subcommand.
#![cfg(feature = "sandbox")]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{catalog, read, Sandbox};
use serde_json::{json, Value};

const NEW_STREAMS: [&str; 10] = [
    "email_campaign_activity_abtests",
    "email_campaign_activity_resends",
    "landing_page_contact_opens",
    "landing_page_unique_contact_opens",
    "landing_page_unique_contact_clicks",
    "landing_page_unique_contact_adds",
    "landing_page_unique_contact_updates",
    "landing_page_unique_contact_sms_optins",
    "contact_consent_counts",
    "contact_sms_engagement_history",
];

const LANDING_PAGE_REPORTS: [&str; 6] = [
    "p_contact_opens",
    "p_unique_contact_opens",
    "p_unique_contact_clicks",
    "p_unique_contact_adds",
    "p_unique_contact_updates",
    "p_unique_contact_sms_optins",
];

fn fast(sandbox: &Sandbox) -> Value {
    let mut config = sandbox.config.clone();
    config["requests_per_second"] = 50.into();
    config
}

/// Requests served per route between two snapshots.
fn spent(
    before: &BTreeMap<String, usize>,
    after: &BTreeMap<String, usize>,
) -> BTreeMap<String, usize> {
    after
        .iter()
        .map(|(route, n)| (route.clone(), n - before.get(route).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

fn route(spent: &BTreeMap<String, usize>, path: &str) -> usize {
    spent.get(&format!("GET /v3{path}")).copied().unwrap_or(0)
}

fn landing_path(report: &str) -> String {
    format!("/reports/landing_pages/campaign_details/{{campaign_activity_id}}/{report}")
}

fn configured_landing_pages(config: &Value) -> BTreeSet<String> {
    config["landing_page_activity_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap().to_owned())
        .collect()
}

/// The messages of the run's LOG lines at `level`.
fn log_lines(run: &common::Run, level: &str) -> Vec<String> {
    run.of_type("LOG")
        .into_iter()
        .filter(|m| m["log"]["level"] == level)
        .map(|m| m["log"]["message"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn new_streams_read_completely_without_wasted_requests() {
    let sandbox = Sandbox::start(&["--contacts", "300", "--rps", "50"]);
    let dir = tempfile::tempdir().unwrap();
    let (contact_ids, mut config) = sandbox.contact_ids(dir.path(), &fast(&sandbox), 4);
    config["contact_ids"] = contact_ids.clone().into();
    let mut names = NEW_STREAMS.to_vec();
    names.extend(["email_campaigns", "email_campaign_activities"]);
    let before = sandbox.request_counts();
    let run = read(dir.path(), &config, &catalog(&names, false), None);
    run.assert_ok();
    let spent = spent(&before, &sandbox.request_counts());

    let mut expected = sandbox.expected_counts();
    expected.extend(sandbox.contact_report_counts(&contact_ids));
    for name in NEW_STREAMS {
        assert_eq!(run.records(name).len(), expected[name], "{name}");
        assert!(!run.records(name).is_empty(), "{name} has records");
    }

    // Each campaign's activities are listed once for all the children.
    let campaigns = run.records("email_campaigns");
    assert_eq!(route(&spent, "/emails/{campaign_id}"), campaigns.len());

    // A/B tests are asked for only where there is one: primary emails of
    // A/B Test campaigns (type code 57).
    let ab_campaigns: BTreeSet<&str> = campaigns
        .iter()
        .filter(|c| c["type_code"] == 57 && c["current_status"] != "Removed")
        .map(|c| c["campaign_id"].as_str().unwrap())
        .collect();
    let activities = run.records("email_campaign_activities");
    let role_of = |id: &Value| -> (String, String) {
        let a = activities
            .iter()
            .find(|a| a["campaign_activity_id"] == *id)
            .expect("the activity is read");
        (
            a["role"].as_str().unwrap().to_owned(),
            a["campaign_id"].as_str().unwrap().to_owned(),
        )
    };
    let ab_tests = run.records("email_campaign_activity_abtests");
    assert_eq!(
        route(&spent, "/emails/activities/{campaign_activity_id}/abtest"),
        ab_tests.len(),
        "no A/B test request goes unanswered"
    );
    for record in &ab_tests {
        let (role, campaign) = role_of(&record["campaign_activity_id"]);
        assert_eq!(role, "primary_email");
        assert!(ab_campaigns.contains(campaign.as_str()));
        assert!(record["campaign_updated_at"].is_string());
    }
    let count_role = |role: &str| activities.iter().filter(|a| a["role"] == role).count();
    // Every primary email, and those of removed campaigns (listed, then 404
    // and skipped, as for every activity child).
    let removed = campaigns
        .iter()
        .filter(|c| c["current_status"] == "Removed")
        .count();
    assert_eq!(
        route(
            &spent,
            "/emails/activities/{campaign_activity_id}/non_opener_resends"
        ),
        count_role("primary_email") + removed
    );
    for record in run.records("email_campaign_activity_resends") {
        assert_eq!(role_of(&record["campaign_activity_id"]).0, "primary_email");
    }

    // Landing page reports are read for the landing pages the config names
    // (no activity has a landing-page role), one page each at 500 rows a page.
    let landing_pages = configured_landing_pages(&config);
    assert_eq!(landing_pages.len(), 3);
    assert!(activities
        .iter()
        .all(|a| ["primary_email", "permalink", "resend"].contains(&a["role"].as_str().unwrap())));
    for report in LANDING_PAGE_REPORTS {
        assert_eq!(
            route(&spent, &landing_path(report)),
            landing_pages.len(),
            "{report}"
        );
    }
    for name in &NEW_STREAMS[2..8] {
        for record in run.records(name) {
            let id = record["campaign_activity_id"].as_str().unwrap();
            assert!(landing_pages.contains(id), "{name}: {id}");
        }
    }
    let warnings = log_lines(&run, "WARN");
    assert!(
        !warnings.iter().any(|w| w.contains("landing")),
        "{warnings:?}"
    );

    // SMS history of the configured contacts only.
    let read_for: BTreeSet<&str> = run
        .records("contact_sms_engagement_history")
        .iter()
        .map(|r| r["contact_id"].as_str().unwrap())
        .collect();
    let configured: BTreeSet<&str> = contact_ids.iter().map(String::as_str).collect();
    assert_eq!(read_for, configured);
    assert!(run.records("contact_consent_counts")[0]["new_subscriber"].is_u64());
}

#[test]
fn campaign_children_skip_unchanged_campaigns_and_reports_stop_at_bookmarks() {
    let sandbox = Sandbox::start(&["--contacts", "200", "--rps", "50"]);
    let dir = tempfile::tempdir().unwrap();
    let streams = catalog(
        &[
            "email_campaigns",
            "email_campaign_activity_abtests",
            "email_campaign_activity_resends",
            "landing_page_contact_opens",
            "landing_page_unique_contact_clicks",
        ],
        true,
    );
    let first = read(dir.path(), &fast(&sandbox), &streams, None);
    first.assert_ok();
    let expected = sandbox.expected_counts();
    for name in [
        "email_campaign_activity_abtests",
        "email_campaign_activity_resends",
        "landing_page_contact_opens",
        "landing_page_unique_contact_clicks",
    ] {
        assert_eq!(first.records(name).len(), expected[name], "{name}");
    }

    // Nothing changed: campaign children are asked for again only within the
    // cursor's five-minute overlap (the newest campaign), and no landing page
    // row is newer than its bookmark.
    let config = first.next_config(&fast(&sandbox));
    let before = sandbox.request_counts();
    let quiet = read(dir.path(), &config, &streams, Some(&first.state_messages()));
    quiet.assert_ok();
    let spent_quiet = spent(&before, &sandbox.request_counts());
    for child in ["abtest", "non_opener_resends"] {
        let path = format!("/emails/activities/{{campaign_activity_id}}/{child}");
        assert!(route(&spent_quiet, &path) <= 1, "{child}: {spent_quiet:?}");
    }
    for name in [
        "email_campaign_activity_abtests",
        "email_campaign_activity_resends",
    ] {
        assert!(quiet.records(name).len() <= 1, "{name}");
    }
    for name in [
        "landing_page_contact_opens",
        "landing_page_unique_contact_clicks",
    ] {
        assert!(quiet.records(name).is_empty(), "{name}");
    }

    // Campaigns change: only their children are read again.
    let changed = sandbox.control("mutate", json!({"campaigns": 8}));
    let touched: BTreeSet<String> = changed["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    let config = quiet.next_config(&config);
    let before = sandbox.request_counts();
    let second = read(dir.path(), &config, &streams, Some(&quiet.state_messages()));
    second.assert_ok();
    let spent_second = spent(&before, &sandbox.request_counts());
    let resend_requests = route(
        &spent_second,
        "/emails/activities/{campaign_activity_id}/non_opener_resends",
    );
    assert!(
        resend_requests > 0 && resend_requests <= touched.len() + 1,
        "{spent_second:?}"
    );
    let ab_ids: BTreeSet<&str> = first
        .records("email_campaign_activity_abtests")
        .iter()
        .map(|r| r["campaign_activity_id"].as_str().unwrap())
        .collect();
    for record in second.records("email_campaign_activity_abtests") {
        assert!(ab_ids.contains(record["campaign_activity_id"].as_str().unwrap()));
    }
    assert!(second.records("email_campaign_activity_abtests").len() <= touched.len() + 1);
}

/// Without `landing_page_activity_ids` the connector looks for landing pages
/// by a role no documentation lists, says that it does, and, finding none
/// (the API's activities carry only its documented roles), warns once for
/// all six streams what to set. It asks for no report.
#[test]
fn without_landing_page_ids_the_streams_say_once_what_to_set() {
    let sandbox = Sandbox::start(&["--contacts", "60", "--rps", "50"]);
    let dir = tempfile::tempdir().unwrap();
    let mut config = fast(&sandbox);
    config
        .as_object_mut()
        .unwrap()
        .remove("landing_page_activity_ids");
    let landing: Vec<&str> = NEW_STREAMS[2..8].to_vec();
    for incremental in [false, true] {
        let before = sandbox.request_counts();
        let run = read(dir.path(), &config, &catalog(&landing, incremental), None);
        run.assert_ok();
        config = run.next_config(&config);
        let spent = spent(&before, &sandbox.request_counts());
        for name in &landing {
            assert!(run.records(name).is_empty(), "{name}");
            assert_eq!(
                run.stream_statuses(name).last(),
                Some(&"COMPLETE"),
                "{name}"
            );
        }
        for report in LANDING_PAGE_REPORTS {
            assert_eq!(route(&spent, &landing_path(report)), 0, "{report}");
        }
        let warnings: Vec<String> = log_lines(&run, "WARN")
            .into_iter()
            .filter(|w| w.contains("landing"))
            .collect();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("`landing_page_activity_ids`"),
            "{}",
            warnings[0]
        );
        let searching: Vec<String> = log_lines(&run, "INFO")
            .into_iter()
            .filter(|l| l.contains("unconfirmed"))
            .collect();
        assert_eq!(searching.len(), 1, "{searching:?}");
        assert!(
            searching[0].contains("role is landing_page"),
            "{}",
            searching[0]
        );
    }
}

/// Named landing pages are read without listing campaigns; incrementally each
/// is read down to its bookmark every run, and only those named now.
#[test]
fn named_landing_pages_are_read_without_listing_campaigns() {
    let sandbox = Sandbox::start(&["--contacts", "60", "--rps", "50"]);
    let dir = tempfile::tempdir().unwrap();
    let config = fast(&sandbox);
    let landing: Vec<&str> = NEW_STREAMS[2..8].to_vec();
    let streams = catalog(&landing, true);
    let before = sandbox.request_counts();
    let first = read(dir.path(), &config, &streams, None);
    first.assert_ok();
    let spent_first = spent(&before, &sandbox.request_counts());
    let expected = sandbox.expected_counts();
    for name in &landing {
        assert_eq!(first.records(name).len(), expected[*name], "{name}");
    }
    assert_eq!(route(&spent_first, "/emails"), 0, "{spent_first:?}");
    assert_eq!(route(&spent_first, "/emails/{campaign_id}"), 0);
    let logs = log_lines(&first, "INFO");
    assert!(!logs.iter().any(|l| l.contains("unconfirmed")), "{logs:?}");

    // A second run names one page only: that one is read, down to its
    // bookmark (nothing new), and the others are not asked for.
    let mut config = first.next_config(&config);
    let kept = config["landing_page_activity_ids"][1].clone();
    config["landing_page_activity_ids"] = json!([kept]);
    let before = sandbox.request_counts();
    let second = read(dir.path(), &config, &streams, Some(&first.state_messages()));
    second.assert_ok();
    let spent_second = spent(&before, &sandbox.request_counts());
    for report in LANDING_PAGE_REPORTS {
        assert_eq!(route(&spent_second, &landing_path(report)), 1, "{report}");
    }
    for name in &landing {
        assert!(second.records(name).is_empty(), "{name}");
    }
}
