//! The streams of the account beyond email: events and their
//! registrations, automated journeys, SMS campaign summaries and the
//! connected social accounts. Each needs a user privilege
//! ([`StreamDef::privilege`]); a token without it leaves the stream empty
//! with one warning.

use super::{ChildSync, Cursor, Lookback, Parent, Records, StreamDef};

macro_rules! schema {
    ($name:literal) => {
        include_str!(concat!("../../schemas/", $name, ".json"))
    };
}

/// The user privileges the endpoints of the newer streams need (the
/// contract's `x-authorization-privileges`): without one a stream is empty
/// with a warning, and `check` says which the token's user has.
pub const CAMPAIGN_READ: &str = "campaign:read";
pub const CUSTOMER_JOURNEY_READ: &str = "customer-journey:read";
pub const CAMPAIGN_METRICS: &str = "ui:campaign:metrics";

/// Events, ordered as the API lists them; only their ids feed `events`.
const EVENT_LIST: &str = "event_list";
/// Automated journeys as the API lists them (without their definitions).
const AUTOMATION_LIST: &str = "automation_workflow_list";

/// The newer streams: events and their registrations, automations, SMS
/// campaign summaries and the social accounts.
pub fn streams() -> Vec<StreamDef> {
    vec![
        // Cursor paging: `next_cursor`, asked for with `next`; at most 100 a
        // page. No change filter and no change date in the list: read whole.
        StreamDef::new(EVENT_LIST, "/events")
            .records_key("records")
            .primary_key(&["event_id"])
            .page_size(100)
            .next_cursor("next_cursor", "next")
            .privilege(CAMPAIGN_READ)
            .hidden(),
        // Read one by one: only the detail carries the track (whose id the
        // registrations need), the settings and the promotions. Each run
        // reads every event: the list says nothing of what changed.
        StreamDef::new("events", "/events/{parent}")
            .primary_key(&["event_id"])
            .params(&[("include", "true")])
            .privilege(CAMPAIGN_READ)
            .schema(schema!("events"))
            .parent(Parent::stream(EVENT_LIST, "event_id").carry(
                "event_registration_summary_metrics",
                "event_registration_summary_metrics",
            )),
        // The registrations of each event's track (the contract gives an
        // event one, `default_track`). The API says nothing of when a
        // registration or its payment changed: read whole each run.
        StreamDef::new(
            "event_registrations",
            "/events/{parent}/tracks/{track_id}/registrations",
        )
        .records_key("records")
        .primary_key(&["event_id", "registration_id"])
        .page_size(50)
        .next_cursor("next_cursor", "next")
        .privilege(CAMPAIGN_READ)
        .schema(schema!("event_registrations"))
        .parent(
            Parent::stream("events", "event_id")
                .path_value("{track_id}", "/default_track/track_id")
                .inject("event_id")
                .carry("/default_track/track_id", "track_id")
                // The listing's count, carried by `events`.
                .rows("/event_registration_summary_metrics/registration_count"),
        ),
        // The list has no change filter but carries `update_date`: only
        // workflows updated since the last run are read one by one again.
        StreamDef::new(AUTOMATION_LIST, "/automations/workflows")
            .records_key("flow_summaries")
            .primary_key(&["id"])
            .cursor(Cursor::client_side("update_date"))
            .privilege(CUSTOMER_JOURNEY_READ)
            .hidden(),
        StreamDef::new("automation_workflows", "/automations/workflows/{parent}")
            .primary_key(&["id"])
            .privilege(CUSTOMER_JOURNEY_READ)
            .schema(schema!("automation_workflows"))
            .parent(
                Parent::stream(AUTOMATION_LIST, "id")
                    .carry("update_date", "update_date")
                    .carry("created_date", "created_date")
                    .sync(ChildSync::ThroughParent("update_date".into())),
            ),
        // `start_at` (required) bounds the send date; a campaign's counts
        // grow after its send, so an incremental read asks again for the
        // campaigns sent within `report_lookback_days` of the last one.
        StreamDef::new(
            "sms_campaign_summaries",
            "/reports/summary_reports/sms_campaign_summaries",
        )
        .records_key("bulk_sms_campaign_summaries")
        .primary_key(&["campaign_id"])
        .cursor(
            Cursor::new("last_sent_date", "start_at")
                .until("end_at")
                .required()
                .lookback(Lookback::ReportLookbackDays),
        )
        .page_size(50)
        .privilege(CAMPAIGN_METRICS)
        .schema(schema!("sms_campaign_summaries")),
        // A few records each, a request (or two) each run: read on request.
        StreamDef::new("social_profiles", "/social/profiles")
            .records(Records::Array)
            .primary_key(&["profile_id"])
            .params(&[("include", "accessible")])
            .privilege(CAMPAIGN_READ)
            .on_request()
            .schema(schema!("social_profiles")),
        StreamDef::new("social_connections", "/social/connections")
            .records_key("connections")
            .primary_key(&["network", "network_account_id"])
            .lift("/account_info/network", "network")
            .lift("/account_info/network_account_id", "network_account_id")
            .privilege(CAMPAIGN_READ)
            .on_request()
            .schema(schema!("social_connections")),
        StreamDef::new("social_hashtag_groups", "/social/hashtags/groups")
            .records_key("hashtag_groups")
            .primary_key(&["hashtag_group_id"])
            .page_size(5)
            .privilege(CAMPAIGN_READ)
            .on_request()
            .schema(schema!("social_hashtag_groups")),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stream_declares_its_privilege_and_fills_its_path() {
        for def in streams() {
            assert!(def.privilege.is_some(), "{}", def.name);
            if let Some(parent) = &def.parent {
                for (placeholder, pointer) in &parent.path_values {
                    assert!(def.path.contains(placeholder.as_str()), "{}", def.name);
                    assert!(pointer.starts_with('/'), "{}", def.name);
                    // One parent a request: a batch has one value per placeholder.
                    assert_eq!(parent.batch, 1, "{}", def.name);
                }
            }
        }
        let social: Vec<String> = streams()
            .into_iter()
            .filter(|d| d.opt_in())
            .map(|d| d.name)
            .collect();
        assert_eq!(
            social,
            [
                "social_profiles",
                "social_connections",
                "social_hashtag_groups"
            ]
        );
    }
}
