//! Requests only for activities that can have the resource: previews of the
//! roles sent to contacts, and the landing-page tracking types of the contact
//! activity details report, which the contract lists.
// These tests run the connector binary's `sandbox` subcommand.
#![cfg(feature = "sandbox")]

mod common;

use std::collections::BTreeSet;

use common::{api_requests, catalog, read, read_counted, Sandbox};
use serde_json::Value;

fn fast(sandbox: &Sandbox) -> Value {
    let mut config = sandbox.config.clone();
    config["requests_per_second"] = 50.into();
    config
}

/// The activity ids of the run's "`stream`: the … record with … "`id`" no
/// longer exists" warnings.
fn gone(run: &common::Run, stream: &str) -> BTreeSet<String> {
    let prefix = format!("{stream}: ");
    run.of_type("LOG")
        .into_iter()
        .filter(|m| m["log"]["level"] == "WARN")
        .filter_map(|m| {
            let message = m["log"]["message"].as_str()?;
            let rest = message.strip_prefix(&prefix)?;
            let (named, _) = rest.split_once("\" no longer exists")?;
            let (_, id) = named.rsplit_once('"')?;
            Some(id.to_string())
        })
        .collect()
}

/// Previews are asked for primary emails and resends only: no permalink
/// (nor any other role) is asked for and answered 404. The only 404s are the
/// activities of removed campaigns, which every activity child meets.
#[test]
fn previews_are_asked_for_sent_roles_only() {
    let sandbox = Sandbox::start(&["--contacts", "60", "--rps", "50"]);
    let dir = tempfile::tempdir().unwrap();
    let (run, spent) = read_counted(
        &sandbox,
        dir.path(),
        &fast(&sandbox),
        &catalog(
            &["email_campaign_activities", "campaign_activity_previews"],
            false,
        ),
        None,
    );
    run.assert_ok();
    let previews = run.records("campaign_activity_previews");
    assert_eq!(
        previews.len(),
        sandbox.expected_counts()["campaign_activity_previews"]
    );
    let activities = run.records("email_campaign_activities");
    let role = |id: &Value| {
        activities
            .iter()
            .find(|a| a["campaign_activity_id"] == *id)
            .map(|a| a["role"].as_str().unwrap().to_owned())
    };
    for preview in &previews {
        let role = role(&preview["campaign_activity_id"]).unwrap();
        assert!(
            ["primary_email", "resend"].contains(&role.as_str()),
            "{role}"
        );
    }
    // Every sent-role activity read has its preview.
    let sent_roles = activities
        .iter()
        .filter(|a| ["primary_email", "resend"].contains(&a["role"].as_str().unwrap()))
        .count();
    assert_eq!(previews.len(), sent_roles);
    let missing = gone(&run, "campaign_activity_previews");
    assert!(
        missing.is_subset(&gone(&run, "email_campaign_activities")),
        "previews asked for live activities that have none: {missing:?}"
    );
    let asked = api_requests(&spent)["GET /v3/emails/activities/{campaign_activity_id}/previews"];
    assert_eq!(asked, previews.len() + missing.len());
    assert!(activities.iter().any(|a| a["role"] == "permalink"));
}

/// A contact who visited a landing page has its opens (and clicks, adds,
/// updates) in `contact_activity_details`, with the page's activity id.
#[test]
fn contact_activity_details_include_landing_page_actions() {
    let sandbox = Sandbox::start(&["--contacts", "60", "--rps", "50"]);
    let dir = tempfile::tempdir().unwrap();
    let mut config = fast(&sandbox);
    let visits = read(
        dir.path(),
        &config,
        &catalog(&["landing_page_contact_opens"], false),
        None,
    );
    visits.assert_ok();
    config = visits.next_config(&config);
    let opens = visits.records("landing_page_contact_opens");
    let contact = opens[0]["contact_id"].as_str().unwrap().to_owned();
    let page_opens = opens.iter().filter(|o| o["contact_id"] == *contact).count();
    config["contact_ids"] = vec![contact.clone()].into();
    let run = read(
        dir.path(),
        &config,
        &catalog(&["contact_activity_details"], false),
        None,
    );
    run.assert_ok();
    let details = run.records("contact_activity_details");
    assert_eq!(
        details.len(),
        sandbox.contact_report_counts(&[contact])["contact_activity_details"]
    );
    let pages: BTreeSet<String> = config["landing_page_activity_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap().to_owned())
        .collect();
    let landing: Vec<&&Value> = details
        .iter()
        .filter(|d| {
            d["tracking_activity_type"]
                .as_str()
                .unwrap()
                .starts_with("p_contact_")
        })
        .collect();
    assert!(landing
        .iter()
        .all(|d| pages.contains(d["campaign_activity_id"].as_str().unwrap())));
    let opened = landing
        .iter()
        .filter(|d| d["tracking_activity_type"] == "p_contact_open")
        .count();
    assert_eq!(opened, page_opens);
}
