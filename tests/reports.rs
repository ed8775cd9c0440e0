//! Report and child streams: parents read once, batched stats, incremental
//! tracking reports, the lookback window and config filters, shown by the
//! sandbox's request counts.
// These tests run the connector binary's `sandbox` subcommand.
#![cfg(feature = "sandbox")]

mod common;

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use common::{catalog, read, read_counted, time, Run, Sandbox};
use serde_json::{json, Value};

/// Requests per second both the sandbox allows and the connector sends:
/// well above the API's 4, so that the rate limit does not slow these tests.
const FAST_RPS: u32 = 50;

/// The most campaign ids one `/reports/stats/email_campaigns/{campaign_ids}`
/// request may carry (the API's limit; the sandbox refuses 151).
const CAMPAIGN_STATS_BATCH: usize = 150;

/// The most activity ids one
/// `/reports/stats/email_campaign_activities/{campaign_activity_ids}` request
/// may carry (the API's limit; the sandbox refuses 11).
const ACTIVITY_STATS_BATCH: usize = 10;

/// Opens (each followed by a click) the sandbox adds to its most recently
/// sent activity between two incremental reads.
const NEW_OPENS: usize = 5;

/// A quiet incremental read re-reads only the activities of the campaigns
/// within the 5-minute cursor overlap: the newest campaign alone (the
/// sandbox's campaigns were last updated at random over a year), whose
/// activities are its primary email and its permalink (with seed 42 it has no
/// resend).
const MOST_ACTIVITIES_REREAD: usize = 2;

/// The relative window of `relative_and_fixed_windows_bound_what_is_read`.
const START_DAYS_AGO: i64 = 120;
const END_DAYS_AGO: i64 = 30;

fn fast(sandbox: &Sandbox) -> Value {
    let mut config = sandbox.config.clone();
    config["requests_per_second"] = FAST_RPS.into();
    config
}

/// 300 contacts: every list and contact report has some, and a full read
/// takes a few seconds.
fn sandbox() -> Sandbox {
    Sandbox::start(&["--contacts", "300", "--rps", &FAST_RPS.to_string()])
}

#[test]
fn parents_are_read_once_and_stats_are_batched() {
    let sandbox = sandbox();
    let dir = tempfile::tempdir().unwrap();
    let streams = catalog(
        &[
            "email_campaign_activities",
            "campaign_activity_schedules",
            "campaign_activity_previews",
            "email_opens",
            "email_campaign_stats",
            "email_campaign_activity_stats",
        ],
        false,
    );
    let (run, spent) = read_counted(&sandbox, dir.path(), &fast(&sandbox), &streams, None);
    run.assert_ok();
    let campaigns = sandbox.expected_counts()["email_campaigns"];
    assert_eq!(
        spent["GET /v3/emails"], 1,
        "one listing of campaigns for every child: {spent:?}"
    );
    assert_eq!(
        spent["GET /v3/emails/{campaign_id}"], campaigns,
        "each campaign read once: {spent:?}"
    );
    assert_eq!(
        spent["GET /v3/reports/stats/email_campaigns/{campaign_ids}"],
        campaigns.div_ceil(CAMPAIGN_STATS_BATCH)
    );
    let sent = sandbox.expected_counts()["email_campaign_activity_stats"];
    assert_eq!(
        spent["GET /v3/reports/stats/email_campaign_activities/{campaign_activity_ids}"],
        sent.div_ceil(ACTIVITY_STATS_BATCH),
        "activity stats are asked {ACTIVITY_STATS_BATCH} at a time"
    );
    for name in [
        "email_campaign_activities",
        "campaign_activity_schedules",
        "email_opens",
        "email_campaign_stats",
        "email_campaign_activity_stats",
    ] {
        assert_eq!(
            run.records(name).len(),
            sandbox.expected_counts()[name],
            "{name}"
        );
    }
    // Children carry their parent's id.
    assert!(run
        .records("campaign_activity_schedules")
        .iter()
        .all(|r| r["campaign_activity_id"].is_string()));
}

#[test]
fn incremental_tracking_reads_only_new_rows_and_stays_cheap() {
    let sandbox = sandbox();
    let dir = tempfile::tempdir().unwrap();
    let streams = catalog(
        &[
            "email_campaigns",
            "email_opens",
            "email_clicks",
            "email_campaign_activities",
        ],
        true,
    );
    let first = read(dir.path(), &fast(&sandbox), &streams, None);
    first.assert_ok();
    assert_eq!(
        first.records("email_opens").len(),
        sandbox.expected_counts()["email_opens"]
    );
    let bookmarks = first.last_state("email_opens")["parents"].clone();
    assert!(
        bookmarks.as_object().is_some_and(|b| !b.is_empty()),
        "{bookmarks}"
    );

    // Nothing changed: one request for the top-level stream…
    let config = first.next_config(&fast(&sandbox));
    let (alone, spent_alone) = read_counted(
        &sandbox,
        dir.path(),
        &config,
        &catalog(&["email_campaigns"], true),
        Some(&first.state_messages()),
    );
    alone.assert_ok();
    assert_eq!(
        spent_alone.get("GET /v3/emails").copied(),
        Some(1),
        "{spent_alone:?}"
    );
    // …and, with the children, only in-window activities' reports are read
    // (the sandbox's campaigns are older than the 30-day lookback window,
    // save the most recent ones).
    let config = alone.next_config(&config);
    let (quiet, spent_quiet) = read_counted(
        &sandbox,
        dir.path(),
        &config,
        &streams,
        Some(&first.state_messages()),
    );
    quiet.assert_ok();
    // The top-level stream's one request, and one listing of campaigns the
    // children share.
    assert!(spent_quiet["GET /v3/emails"] <= 1 + 1, "{spent_quiet:?}");
    let tracked = spent_quiet
        .get("GET /v3/reports/email_reports/{campaign_activity_id}/tracking/opens")
        .copied()
        .unwrap_or(0);
    assert!(
        tracked < first.records("email_campaign_activities").len(),
        "lookback skips old activities"
    );
    assert!(
        quiet.records("email_campaign_activities").len() <= MOST_ACTIVITIES_REREAD,
        "{:?}",
        quiet.records("email_campaign_activities")
    );

    // New tracking rows arrive: exactly those are past the bookmarks.
    let changed = sandbox.control("mutate", json!({"tracking": NEW_OPENS}));
    let activity = changed["tracking_activity"].as_str().unwrap().to_string();
    let config = quiet.next_config(&config);
    let second = read(dir.path(), &config, &streams, Some(&quiet.state_messages()));
    second.assert_ok();
    let bookmark = quiet.last_state("email_opens")["parents"][&activity].clone();
    let new_opens: Vec<&Value> = second
        .records("email_opens")
        .into_iter()
        .filter(|r| bookmark.is_null() || time(&r["created_time"]) > time(&bookmark))
        .collect();
    assert_eq!(
        new_opens.len(),
        NEW_OPENS,
        "exactly the new opens are past the bookmark"
    );
    assert!(new_opens
        .iter()
        .all(|r| r["campaign_activity_id"] == activity.as_str()));
    assert!(second.records("email_opens").len() < first.records("email_opens").len());
}

#[test]
fn campaign_filter_cuts_requests() {
    let sandbox = sandbox();
    let dir = tempfile::tempdir().unwrap();
    let everything = read(
        dir.path(),
        &fast(&sandbox),
        &catalog(&["email_campaigns"], false),
        None,
    );
    let campaign = everything.records("email_campaigns")[0]["campaign_id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut config = everything.next_config(&fast(&sandbox));
    config["campaign_ids"] = json!([campaign]);
    let (run, spent) = read_counted(
        &sandbox,
        dir.path(),
        &config,
        &catalog(&["email_campaign_activities", "email_sends"], false),
        None,
    );
    run.assert_ok();
    assert_eq!(spent["GET /v3/emails/{campaign_id}"], 1, "{spent:?}");
    assert!(run
        .records("email_campaign_activities")
        .iter()
        .all(|a| a["campaign_id"] == campaign.as_str()));
    assert!(run.records("email_sends").iter().all(|s| {
        run.records("email_campaign_activities")
            .iter()
            .any(|a| a["campaign_activity_id"] == s["campaign_activity_id"])
    }));
}

#[test]
fn contact_filters_and_contact_reports() {
    let sandbox = sandbox();
    let dir = tempfile::tempdir().unwrap();
    // Two contacts: the reports of more than one contact are read.
    let (ids, config) = sandbox.contact_ids(dir.path(), &fast(&sandbox), 2);
    let lists = read(
        dir.path(),
        &config,
        &catalog(&["contact_lists"], false),
        None,
    );
    let list = lists.records("contact_lists")[0]["list_id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut config = lists.next_config(&config);
    config["list_ids"] = json!([list]);
    config["contact_status"] = json!(["active"]);
    config["contact_ids"] = json!(ids);
    let streams = catalog(
        &[
            "contacts",
            "contact_activity_summary",
            "contact_activity_details",
            "contact_open_and_click_rates",
        ],
        false,
    );
    let run = read(dir.path(), &config, &streams, None);
    run.assert_ok();
    let contacts = run.records("contacts");
    assert!(!contacts.is_empty());
    assert!(contacts.iter().all(|c| c["list_memberships"]
        .as_array()
        .unwrap()
        .contains(&json!(list))));
    assert!(contacts.iter().all(|c| c["deleted_at"].is_null()));
    let expected = sandbox.contact_report_counts(&ids);
    for name in [
        "contact_activity_summary",
        "contact_activity_details",
        "contact_open_and_click_rates",
    ] {
        assert_eq!(run.records(name).len(), expected[name], "{name}");
        let seen: BTreeSet<&str> = run
            .records(name)
            .iter()
            .map(|r| r["contact_id"].as_str().unwrap())
            .collect();
        assert!(seen.iter().all(|id| ids.iter().any(|i| i == id)), "{name}");
    }

    // Bad filter values are refused up front.
    let mut bad = config.clone();
    bad["contact_status"] = json!(["sleeping"]);
    let run: Run = read(dir.path(), &bad, &streams, None);
    assert_eq!(run.code, 1);
    assert!(run.errors()[0]["message"]
        .as_str()
        .unwrap()
        .contains("contact_status"));
}

#[test]
fn custom_streams_are_read_by_the_same_engine() {
    let sandbox = sandbox();
    let dir = tempfile::tempdir().unwrap();
    let mut config = fast(&sandbox);
    config["custom_streams"] = json!([
        {"name": "active_lists", "path": "/contact_lists", "records_key": "lists",
         "primary_key": ["list_id"], "page_size": 5, "params": {"include_membership_count": "active"}},
        {"name": "campaigns_changed", "path": "/emails", "records_key": "campaigns",
         "primary_key": ["campaign_id"], "cursor_field": "updated_at", "cursor_param": "after_date",
         "page_size": 50},
        {"name": "my_privileges", "path": "/account/user/privileges", "primary_key": ["privilege_id"]}
    ]);
    let config_path = common::write_json(dir.path(), "custom.json", &config);
    let discovered = common::run(&["discover", "--config", config_path.to_str().unwrap()]);
    let streams = discovered.messages[0]["catalog"]["streams"].clone();
    let custom: Vec<Value> = streams
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| ["active_lists", "campaigns_changed", "my_privileges"].contains(&s["name"].as_str().unwrap()))
        .map(|s| {
            let incremental = s["supported_sync_modes"].as_array().unwrap().contains(&json!("incremental"));
            json!({"stream": s, "sync_mode": if incremental { "incremental" } else { "full_refresh" },
                   "destination_sync_mode": "append"})
        })
        .collect();
    assert_eq!(custom.len(), 3);
    let run = read(dir.path(), &config, &json!({"streams": custom}), None);
    run.assert_ok();
    let expected = sandbox.expected_counts();
    assert_eq!(
        run.records("active_lists").len(),
        expected["contact_lists"],
        "paged by 5"
    );
    assert_eq!(
        run.records("campaigns_changed").len(),
        expected["email_campaigns"]
    );
    assert_eq!(
        run.records("my_privileges").len(),
        expected["user_privileges"]
    );
    assert!(run.last_state("campaigns_changed")["cursor"].is_string());

    // The config's end date reaches a custom stream's request through its
    // cursor_end_param, exactly as it reaches the built-in stream.
    let campaigns = run.records("campaigns_changed");
    let mut times: Vec<DateTime<Utc>> = campaigns.iter().map(|c| time(&c["updated_at"])).collect();
    times.sort();
    let middle = times[times.len() / 2];
    let mut ended = run.next_config(&config);
    ended["end_date"] = Value::from(middle.to_rfc3339());
    ended["custom_streams"][1]["cursor_end_param"] = json!("before_date");
    let mut both_streams = catalog(&["email_campaigns"], false);
    both_streams["streams"]
        .as_array_mut()
        .unwrap()
        .push(custom[1].clone());
    let bounded = read(dir.path(), &ended, &both_streams, None);
    bounded.assert_ok();
    let mut ended = bounded.next_config(&ended);
    let before_end = times.iter().filter(|at| **at < middle).count();
    assert!(
        before_end < times.len(),
        "the end date leaves some campaigns out"
    );
    assert_eq!(bounded.records("campaigns_changed").len(), before_end);
    assert_eq!(bounded.records("email_campaigns").len(), before_end);
    // Without the parameter the end date could not reach the request: refused.
    ended["custom_streams"][1]
        .as_object_mut()
        .unwrap()
        .remove("cursor_end_param");
    let refused = read(dir.path(), &ended, &both_streams, None);
    assert_eq!(refused.code, 1);
    assert!(refused.errors()[0]["message"]
        .as_str()
        .unwrap()
        .contains("cursor_end_param"));

    let mut clash = ended.clone();
    clash["custom_streams"] = json!([{"name": "contacts", "path": "/contacts"}]);
    let run = read(dir.path(), &clash, &json!({"streams": []}), None);
    assert_eq!(run.code, 1);
    assert!(run.errors()[0]["message"]
        .as_str()
        .unwrap()
        .contains("custom_streams[0]"));
}

#[test]
fn open_and_click_rates_ask_for_the_latest_five_years_of_a_longer_window() {
    let sandbox = sandbox();
    let dir = tempfile::tempdir().unwrap();
    let (ids, mut config) = sandbox.contact_ids(dir.path(), &fast(&sandbox), 2);
    config["contact_ids"] = json!(ids);
    // Over 16 years: the API refuses a range of more than 5 (400).
    config["start_date"] = json!("2010-01-01");
    let streams = catalog(&["contact_open_and_click_rates"], false);
    let run = read(dir.path(), &config, &streams, None);
    run.assert_ok();
    let expected = sandbox.contact_report_counts(&ids);
    assert_eq!(
        run.records("contact_open_and_click_rates").len(),
        expected["contact_open_and_click_rates"]
    );
    let said: Vec<&str> = run
        .of_type("LOG")
        .into_iter()
        .filter_map(|m| m["log"]["message"].as_str())
        .filter(|m| m.contains("accepts at most 1825 days"))
        .collect();
    assert_eq!(
        said.len(),
        1,
        "one line for the stream, not one per contact: {said:?}"
    );
    assert!(
        said[0].starts_with("contact_open_and_click_rates: ") && said[0].contains("2010-01-01"),
        "{}",
        said[0]
    );
}

#[test]
fn relative_and_fixed_windows_bound_what_is_read() {
    let sandbox = sandbox();
    let dir = tempfile::tempdir().unwrap();
    let everything = read(
        dir.path(),
        &fast(&sandbox),
        &catalog(&["contacts"], true),
        None,
    );
    everything.assert_ok();
    let updated: Vec<DateTime<Utc>> = everything
        .records("contacts")
        .iter()
        .map(|c| time(&c["updated_at"]))
        .collect();

    let mut config = everything.next_config(&fast(&sandbox));
    config.as_object_mut().unwrap().remove("start_date");
    config["start_days_ago"] = START_DAYS_AGO.into();
    config["end_days_ago"] = END_DAYS_AGO.into();
    let run = read(dir.path(), &config, &catalog(&["contacts"], true), None);
    run.assert_ok();
    let now = Utc::now();
    let (start, end) = (
        now - chrono::Duration::days(START_DAYS_AGO),
        now - chrono::Duration::days(END_DAYS_AGO),
    );
    let inside = updated
        .iter()
        .filter(|at| **at > start && **at < end)
        .count();
    assert!(inside > 0, "the sandbox has contacts in the window");
    assert_eq!(run.records("contacts").len(), inside);
    assert!(time(&run.last_state("contacts")["cursor"]) <= end);

    let mut both = config.clone();
    both["start_date"] = "2024-01-01".into();
    let run = read(dir.path(), &both, &catalog(&["contacts"], true), None);
    assert_eq!(run.code, 1);
    assert!(run.errors()[0]["message"]
        .as_str()
        .unwrap()
        .contains("start_days_ago"));
}

/// The pages and requests a run's summary LOG line gives `stream`.
fn summary_counts(run: &Run, stream: &str) -> (u64, u64) {
    let prefix = format!("{stream}: ");
    let line = run
        .of_type("LOG")
        .into_iter()
        .filter_map(|m| m["log"]["message"].as_str())
        .find(|text| text.starts_with(&prefix) && text.contains(" request"))
        .unwrap_or_else(|| panic!("no summary of {stream}"))
        .to_string();
    let before = |noun: &str| -> u64 {
        let words: Vec<&str> = line.split_whitespace().collect();
        let at = words
            .iter()
            .position(|w| w.trim_end_matches(',').trim_end_matches('s') == noun)
            .unwrap_or_else(|| panic!("no {noun} in {line:?}"));
        words[at - 1].replace(',', "").parse().unwrap()
    };
    (before("page"), before("request"))
}

/// The activity stats are read once for the reports they gate and the stats
/// stream alike; each stream still counts the stats requests it used, so the
/// stats stream never shows records read with no page or request.
#[test]
fn the_stats_stream_counts_the_requests_it_shares_with_its_gates() {
    let sandbox = sandbox();
    let dir = tempfile::tempdir().unwrap();
    let (run, spent) = read_counted(
        &sandbox,
        dir.path(),
        &fast(&sandbox),
        &catalog(&["email_links", "email_campaign_activity_stats"], true),
        None,
    );
    run.assert_ok();
    assert!(!run.records("email_campaign_activity_stats").is_empty());
    let stats_requests: u64 = spent
        .iter()
        .filter(|(route, _)| route.starts_with("GET /v3/reports/stats/email_campaign_activities/"))
        .map(|(_, n)| *n as u64)
        .sum();
    assert!(stats_requests > 0);
    let (pages, requests) = summary_counts(&run, "email_campaign_activity_stats");
    assert_eq!(
        requests, stats_requests,
        "every stats request is the stats stream's"
    );
    assert_eq!(
        pages, stats_requests,
        "one page a request (no retries here)"
    );
    // The gated report counts the stats it used besides its own pages.
    let (_, links_requests) = summary_counts(&run, "email_links");
    let links_own: u64 = spent
        .iter()
        .filter(|(route, _)| route.contains("/links"))
        .map(|(_, n)| *n as u64)
        .sum();
    assert!(
        links_requests > links_own,
        "{links_requests} vs {links_own}"
    );
}
