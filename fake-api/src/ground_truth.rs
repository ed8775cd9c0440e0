//! `GET /__sandbox/ground_truth?stream=NAME`: the primary key of every record the API
//! holds for a stream right now, as the fake itself understands its data (from the API
//! docs, not from the connector). Tests compare the union of what a connector read
//! against it: "nothing lost" is checked by key, not only by count.
//!
//! Covers every stream `endpoints::expected_counts` covers, over the same items, so the
//! number of keys of a stream is its expected count. A stream without a primary key
//! (`contact_consent_counts`, one account-wide record) has no key fields and one empty
//! key per record.

use super::abtests::{has_ab_test, resends};
use super::data::{timestamp, Activity, Campaign, CampaignStatus, Data};
use super::landing_pages;
use super::reports::REPORTS;
use super::tracking::{is_sendable, EventKind, View};
use super::visits::{Kind, View as PageView};
use serde_json::{json, Value};

/// The key fields of `stream` and the key of each of its records, or `None` for a
/// stream the fake keeps no ground truth of.
pub(crate) fn ground_truth(
    data: &Data,
    stream: &str,
) -> Option<(Vec<&'static str>, Vec<Vec<Value>>)> {
    let one = |field: &'static str, keys: Vec<Value>| {
        Some((vec![field], keys.into_iter().map(|k| vec![k]).collect()))
    };
    let live_sendable = || {
        data.live_activities()
            .map(|(_, a)| a)
            .filter(|a| is_sendable(a.role))
    };
    match stream {
        // `status=all` returns deleted contacts too.
        "contacts" => one(
            "contact_id",
            data.contacts.iter().map(|c| json!(c.id)).collect(),
        ),
        // A default export (every field, no filter) holds the live contacts.
        "contacts_export" => one(
            "contact_id",
            data.contacts
                .iter()
                .filter(|c| c.deleted_at.is_none())
                .map(|c| json!(c.id))
                .collect(),
        ),
        "contact_lists" => one("list_id", data.lists.iter().map(|l| json!(l.id)).collect()),
        "contact_tags" => one("tag_id", data.tags.iter().map(|t| json!(t.id)).collect()),
        "segments" => one(
            "segment_id",
            data.segments.iter().map(|s| json!(s.id)).collect(),
        ),
        "custom_fields" => one(
            "custom_field_id",
            data.custom_fields.iter().map(|f| json!(f.id)).collect(),
        ),
        // Every campaign the account has, removed ones included (`GET /emails` lists them).
        "email_campaigns" | "email_campaign_stats" => one(
            "campaign_id",
            data.campaigns.iter().map(|c| json!(c.id)).collect(),
        ),
        "email_campaign_summaries" => one(
            "campaign_id",
            data.summaries().iter().map(|(c, _)| json!(c.id)).collect(),
        ),
        "account_summary" => one("encoded_account_id", vec![json!(data.account.encoded_id)]),
        "account_emails" => one(
            "email_id",
            data.account_emails.iter().map(|e| json!(e.id)).collect(),
        ),
        "user_privileges" => one(
            "privilege_id",
            data.privileges().map(|(id, _)| json!(id)).collect(),
        ),
        "bulk_activities" => one(
            "activity_id",
            data.bulk_activities.iter().map(|b| json!(b.id)).collect(),
        ),
        "email_campaign_activities" => one(
            "campaign_activity_id",
            data.live_activities().map(|(_, a)| json!(a.id)).collect(),
        ),
        // One record per sendable activity (primary_email and resend).
        "campaign_activity_previews" | "email_links" | "email_campaign_activity_stats" => one(
            "campaign_activity_id",
            live_sendable().map(|a| json!(a.id)).collect(),
        ),
        "campaign_activity_schedules" => Some((
            vec!["campaign_activity_id", "scheduled_date"],
            live_sendable()
                .filter_map(|a| {
                    a.scheduled_at
                        .map(|at| vec![json!(a.id), json!(timestamp(at))])
                })
                .collect(),
        )),
        // `send_id` numbers an activity's sends from 1.
        "campaign_activity_send_history" => Some((
            vec!["campaign_activity_id", "send_id"],
            live_sendable()
                .flat_map(|a| {
                    (1..=a.send_history().len()).map(move |i| vec![json!(a.id), json!(i)])
                })
                .collect(),
        )),
        // Children of primary email activities: the connector adds the parent's
        // `campaign_activity_id`, which the records themselves lack.
        "email_campaign_activity_abtests" => one(
            "campaign_activity_id",
            live_campaigns(data)
                .filter(|c| has_ab_test(c))
                .filter_map(primary_email)
                .map(|a| json!(a.id))
                .collect(),
        ),
        "email_campaign_activity_resends" => Some((
            vec!["campaign_activity_id", "resend_request_id"],
            live_campaigns(data)
                .filter_map(|c| primary_email(c).map(|a| (c, json!(a.id))))
                .flat_map(|(c, primary)| {
                    resends(c)
                        .into_iter()
                        .map(move |r| vec![primary.clone(), r["resend_request_id"].clone()])
                })
                .collect(),
        )),
        // One account-wide record, without an id.
        "contact_consent_counts" => Some((Vec::new(), vec![Vec::new()])),
        _ => landing_page_report(data, stream)
            .or_else(|| tracking_report(data, stream))
            .or_else(|| data.engagement.ground_truth(stream)),
    }
}

/// Campaigns `GET /emails` lists as not removed, whose activities the API serves.
fn live_campaigns(data: &Data) -> impl Iterator<Item = &Campaign> + '_ {
    data.campaigns
        .iter()
        .filter(|c| c.status != CampaignStatus::Removed)
}

/// A campaign's primary email activity.
fn primary_email(c: &Campaign) -> Option<&Activity> {
    c.activities.iter().find(|a| a.role == "primary_email")
}

/// A `/reports/landing_pages/campaign_details/{id}/p_*` stream: one key per report row
/// of every landing page.
fn landing_page_report(data: &Data, stream: &str) -> Option<(Vec<&'static str>, Vec<Vec<Value>>)> {
    let view = landing_pages::report_view(stream)?;
    let fields = match view {
        PageView::All(_) => vec!["campaign_activity_id", "contact_id", "created_time"],
        // The latest click per contact and link.
        PageView::Unique(Kind::Click) => vec!["campaign_activity_id", "contact_id", "url_id"],
        // The latest event per contact.
        PageView::Unique(_) => vec!["campaign_activity_id", "contact_id"],
    };
    let mut keys = Vec::new();
    for page in &data.landing_pages {
        for e in page.rows(view) {
            let (activity, contact) = (
                json!(page.activity),
                json!(data.contacts[e.contact as usize].id),
            );
            keys.push(match view {
                PageView::All(_) => vec![activity, contact, json!(timestamp(e.at))],
                PageView::Unique(Kind::Click) => vec![
                    activity,
                    contact,
                    json!(page.links[e.link as usize].0.to_string()),
                ],
                PageView::Unique(_) => vec![activity, contact],
            });
        }
    }
    Some((fields, keys))
}

/// A `/reports/email_reports/{id}/tracking/*` stream: one key per report row of every
/// sent activity.
fn tracking_report(data: &Data, stream: &str) -> Option<(Vec<&'static str>, Vec<Vec<Value>>)> {
    let report = REPORTS.iter().find(|r| r.stream == stream)?;
    let fields = match report.view {
        // One row per contact: the contact's latest open, or its send.
        View::LastOpen | View::NotOpened => vec!["campaign_activity_id", "contact_id"],
        View::All(EventKind::Click) => {
            vec![
                "campaign_activity_id",
                "contact_id",
                "url_id",
                "created_time",
            ]
        }
        View::All(_) => vec!["campaign_activity_id", "contact_id", "created_time"],
    };
    let mut keys = Vec::new();
    for (_, a, t) in data.sent() {
        for e in t.rows(report.view) {
            let contact = json!(data.contacts[e.contact as usize].id);
            keys.push(match report.view {
                View::LastOpen | View::NotOpened => vec![json!(a.id), contact],
                View::All(EventKind::Click) => vec![
                    json!(a.id),
                    contact,
                    json!(a.links[e.detail as usize].url_id.to_string()),
                    json!(timestamp(e.at)),
                ],
                View::All(_) => vec![json!(a.id), contact, json!(timestamp(e.at))],
            });
        }
    }
    Some((fields, keys))
}

/// The route's answer for `stream`.
pub(crate) fn response(data: &Data, stream: &str) -> Option<Value> {
    let (key, keys) = ground_truth(data, stream)?;
    Some(json!({"stream": stream, "key": key, "keys": keys}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::DEFAULT_CAMPAIGNS;
    use std::collections::BTreeSet;

    #[test]
    fn ground_truth_covers_every_counted_stream_with_unique_keys() {
        let now = chrono::Utc::now().timestamp_millis();
        let default_campaigns = Data::generate(7, 1200, DEFAULT_CAMPAIGNS, now)
            .campaigns
            .len();
        for (seed, contacts, campaigns) in [(42, 300, DEFAULT_CAMPAIGNS), (7, 1200, 75)] {
            let data = Data::generate(seed, contacts, campaigns, now);
            // `--campaigns` adds generated campaigns to those the account always has.
            assert_eq!(
                data.campaigns.len(),
                default_campaigns + campaigns - DEFAULT_CAMPAIGNS
            );
            for (stream, count) in crate::endpoints::expected_counts(&data) {
                let (fields, keys) = ground_truth(&data, &stream)
                    .unwrap_or_else(|| panic!("{stream}: no ground truth"));
                assert_eq!(keys.len(), count, "{stream}: keys vs expected_counts");
                assert!(keys.iter().all(|k| k.len() == fields.len()), "{stream}");
                let unique: BTreeSet<String> = keys.iter().map(|k| json!(k).to_string()).collect();
                assert_eq!(unique.len(), keys.len(), "{stream}: keys are unique");
            }
            assert!(ground_truth(&data, "no_such_stream").is_none());
        }
    }

    #[test]
    fn new_streams_are_keyed_as_the_connector_declares() {
        let data = Data::generate(
            42,
            300,
            DEFAULT_CAMPAIGNS,
            chrono::Utc::now().timestamp_millis(),
        );
        let fields = |stream| ground_truth(&data, stream).unwrap().0;
        assert_eq!(
            ground_truth(&data, "contact_consent_counts").unwrap(),
            (Vec::<&str>::new(), vec![Vec::<Value>::new()])
        );
        assert_eq!(
            fields("email_campaign_activity_abtests"),
            ["campaign_activity_id"]
        );
        assert_eq!(
            fields("email_campaign_activity_resends"),
            ["campaign_activity_id", "resend_request_id"]
        );
        assert_eq!(
            fields("landing_page_contact_opens"),
            ["campaign_activity_id", "contact_id", "created_time"]
        );
        assert_eq!(
            fields("landing_page_unique_contact_clicks"),
            ["campaign_activity_id", "contact_id", "url_id"]
        );
        for stream in [
            "landing_page_unique_contact_opens",
            "landing_page_unique_contact_adds",
            "landing_page_unique_contact_updates",
            "landing_page_unique_contact_sms_optins",
        ] {
            assert_eq!(fields(stream), ["campaign_activity_id", "contact_id"]);
        }
        // Resends are keyed by their primary email activity, whose endpoint serves them.
        let (_, keys) = ground_truth(&data, "email_campaign_activity_resends").unwrap();
        assert!(!keys.is_empty());
        for k in &keys {
            let (_, a) = data.activity(k[0].as_str().unwrap()).unwrap();
            assert_eq!(a.role, "primary_email");
            assert!(k[1].is_string());
        }
        let (_, keys) = ground_truth(&data, "landing_page_unique_contact_clicks").unwrap();
        assert!(!keys.is_empty());
    }

    #[test]
    fn tracking_keys_are_the_rows_the_report_serves() {
        let data = Data::generate(
            42,
            300,
            DEFAULT_CAMPAIGNS,
            chrono::Utc::now().timestamp_millis(),
        );
        let (fields, keys) = ground_truth(&data, "email_opens").unwrap();
        assert_eq!(
            fields,
            ["campaign_activity_id", "contact_id", "created_time"]
        );
        assert!(!keys.is_empty());
        let (_, a, t) = data.sent().next().unwrap();
        let first = t.rows(View::All(EventKind::Open));
        if let Some(e) = first.first() {
            let expected = vec![
                json!(a.id),
                json!(data.contacts[e.contact as usize].id),
                json!(timestamp(e.at)),
            ];
            assert!(keys.contains(&expected));
        }
    }
}
