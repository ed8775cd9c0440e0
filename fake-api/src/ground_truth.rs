//! `GET /__sandbox/ground_truth?stream=NAME`: the primary key of every record the API
//! holds for a stream right now, as the fake itself understands its data (from the API
//! docs, not from the connector). Tests compare the union of what a connector read
//! against it: "nothing lost" is checked by key, not only by count.
//!
//! Covers every stream `Data::expected_counts` covers, over the same items, so the
//! number of keys of a stream is its expected count.

use super::data::{timestamp, Data, PRIVILEGES};
use super::reports::REPORTS;
use super::tracking::{is_sendable, EventKind, View};
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
            PRIVILEGES.iter().map(|(id, _)| json!(id)).collect(),
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
        _ => tracking_report(data, stream),
    }
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
    use std::collections::BTreeSet;

    #[test]
    fn ground_truth_covers_every_counted_stream_with_unique_keys() {
        let now = chrono::Utc::now().timestamp_millis();
        for (seed, contacts) in [(42, 300), (7, 1200)] {
            let data = Data::generate(seed, contacts, now);
            for (stream, count) in data.expected_counts() {
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
    fn tracking_keys_are_the_rows_the_report_serves() {
        let data = Data::generate(42, 300, chrono::Utc::now().timestamp_millis());
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
