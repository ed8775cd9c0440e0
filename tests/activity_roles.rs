//! Requests only for activities that can have the resource: previews of the
//! roles sent to contacts.
// These tests run the connector binary's `sandbox` subcommand.
#![cfg(feature = "sandbox")]

mod common;

use std::collections::BTreeSet;

use common::{api_requests, catalog, read_counted, Sandbox};
use serde_json::Value;

fn fast(sandbox: &Sandbox) -> Value {
    let mut config = sandbox.config.clone();
    config["requests_per_second"] = 50.into();
    config
}

/// The activity ids of the run's "`stream`: `id` no longer exists" warnings.
fn gone(run: &common::Run, stream: &str) -> BTreeSet<String> {
    let prefix = format!("{stream}: ");
    run.of_type("LOG")
        .into_iter()
        .filter(|m| m["log"]["level"] == "WARN")
        .filter_map(|m| {
            let message = m["log"]["message"].as_str()?;
            let rest = message.strip_prefix(&prefix)?;
            let (id, _) = rest.split_once(" no longer exists")?;
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
