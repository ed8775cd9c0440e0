//! The built-in streams. Each entry is a [`StreamDef`] built from the
//! declarations that differ from a plain one-record endpoint.

use chrono::Duration;

use super::{
    ChildSync, ConfigList, Cursor, DateWindow, Export, Lookback, Parent, Reconcile, Records,
    StatsGate, StreamDef,
};

macro_rules! schema {
    ($name:literal) => {
        include_str!(concat!("../../schemas/", $name, ".json"))
    };
}

/// Every campaign activity's id and role, from `/emails/{campaign_id}`.
const ACTIVITY_REFS: &str = "campaign_activity_refs";
/// The roles sent to contacts: only their activities have send history,
/// previews, stats and reports.
const SENT_ROLES: (&str, &[&str]) = ("role", &["primary_email", "resend"]);
/// Where children of campaigns keep their campaign's `updated_at`.
const CAMPAIGN_CURSOR: &str = "campaign_updated_at";
/// Where activity refs keep their campaign's `type_code`.
const CAMPAIGN_TYPE_CODE: &str = "campaign_type_code";
/// The campaign `type_code` of A/B tests: creating an A/B test on a
/// campaign's primary email turns its type from Newsletter (10) to A/B Test
/// (57), and deleting it turns it back.
const AB_TEST_TYPE_CODE: &str = "57";
/// The role the connector looks for landing pages by when the config names
/// none (`landing_page_activity_ids`). A guess, and said to be one in the
/// run's log: neither the contract nor the docs list it (their roles are
/// primary_email, permalink, resend), and no public source says how a client
/// finds a landing page's `campaign_activity_id`.
const LANDING_PAGE_ROLE: &str = "landing_page";

/// A child of every campaign activity.
fn activity_child(sync: ChildSync) -> Parent {
    let parent = Parent::stream(ACTIVITY_REFS, "campaign_activity_id");
    match &sync {
        ChildSync::ThroughParent(field) => parent.carry(field, field).sync(sync),
        _ => parent.sync(sync),
    }
}

/// A child of every sent campaign activity.
fn sent_activity_child(sync: ChildSync) -> Parent {
    activity_child(sync).only(SENT_ROLES.0, SENT_ROLES.1)
}

fn through_campaign() -> ChildSync {
    ChildSync::ThroughParent(CAMPAIGN_CURSOR.into())
}

/// A child of every primary email activity.
fn primary_email_child() -> Parent {
    activity_child(through_campaign())
        .only("role", &["primary_email"])
        .inject("campaign_activity_id")
}

/// A landing page report: rows of one landing page activity, newest first.
/// The activities are those `landing_page_activity_ids` names (each read on
/// every run, down to its bookmark), or else those found by the unconfirmed
/// role (read again while their campaign changed within
/// `report_lookback_days`).
fn landing_page_report(name: &str, path: &str, primary_key: &[&str], schema: &str) -> StreamDef {
    StreamDef::new(name, path)
        .records_key("tracking_activities")
        .primary_key(primary_key)
        .page_size(500)
        .schema(schema)
        .parent(
            activity_child(ChildSync::NewestFirst {
                field: "created_time".into(),
                lookback: Some(Lookback::ReportLookbackDays),
            })
            .only("role", &[LANDING_PAGE_ROLE])
            .named_by(ConfigList::LandingPageActivityIds),
        )
}

/// The stats of sent activities, ten a request, whose counts gate the
/// reports of each activity.
const ACTIVITY_STATS: &str = "email_campaign_activity_stats";

/// A report of sent activities, read incrementally only for activities whose
/// `count` of its rows in their stats changed since the last read; each
/// activity's rows are held to that count.
fn counted(sync: ChildSync, count: &str) -> Parent {
    sent_activity_child(sync)
        .gate(StatsGate::new(ACTIVITY_STATS, &[count]))
        .audited_rows(count)
}

/// Where the stats' `last_refresh_time` goes in the records of a report
/// read whole again when its counts change.
const STATS_CURSOR: &str = "stats_last_refresh_time";

/// A report of sent activities that is a current snapshot, not a log: an
/// activity's is read again, whole, when its `counts` changed. Its rows
/// have no time of their own that orders such reads; the stats' refresh
/// time does (the counts change only with a refresh), so each record
/// carries it as its cursor.
fn counted_snapshot(counts: &[&str]) -> Parent {
    sent_activity_child(ChildSync::WholeWhenCountsChange)
        .gate(StatsGate::new(ACTIVITY_STATS, counts).stamp("/last_refresh_time", STATS_CURSOR))
}

/// A tracking report: rows of one sent activity, newest first, read down to
/// the activity's bookmark when its count of such events changed.
fn tracking(name: &str, path: &str, primary_key: &[&str], count: &str, schema: &str) -> StreamDef {
    StreamDef::new(name, path)
        .records_key("tracking_activities")
        .primary_key(primary_key)
        .page_size(500)
        .schema(schema)
        .parent(counted(
            ChildSync::NewestFirst {
                field: "created_time".into(),
                lookback: None,
            },
            count,
        ))
}

/// The longest range of `open_and_click_rates` (the contract: "cannot exceed
/// 5 years"), as five 365-day years: within the limit however the API
/// counts leap days.
const FIVE_YEARS: Duration = Duration::days(5 * 365);

/// A contact report: the endpoints take one contact per request, so only the
/// config's `contact_ids` are read.
fn contact_report(name: &str, path: &str) -> StreamDef {
    StreamDef::new(name, path)
        .parent(Parent::configured(ConfigList::ContactIds, "contact_id").inject("contact_id"))
}

pub fn streams() -> Vec<StreamDef> {
    let mut streams = vec![
        StreamDef::new("contacts", "/contacts")
            .records_key("contacts")
            .primary_key(&["contact_id"])
            // `updated_after` follows personal details only: opt-outs come
            // through `optout_after`, deletions and list changes through a
            // periodic full pass.
            .cursor(
                Cursor::new("updated_at", "updated_after")
                    .until("updated_before")
                    .also("optout_after"),
            )
            .reconcile(Reconcile::ContactsReconcileDays)
            // `status=all` brings deleted contacts too, with `deleted_at`.
            .deleted_when("deleted_at")
            .page_size(500)
            .params(&[
                ("status", "all"),
                (
                    "include",
                    "custom_fields,list_memberships,phone_numbers,street_addresses,taggings,notes,sms_channel",
                ),
                ("include_count", "true"),
            ])
            // The SDK guide lists `sms_channel`, the contract's `include`
            // enum does not: whether the API takes it is unknown, so a
            // refusal drops it rather than failing the stream.
            .optional("include", "sms_channel", "contacts_include_sms_channel")
            .count("contacts_count")
            // A read of every contact is held to the lists' and tags' own
            // counts of their contacts.
            .members(
                "list_memberships",
                ("contact_lists", "list_id", "membership_count"),
                "lists",
            )
            .members("taggings", ("contact_tags", "tag_id", "contacts_count"), "tags")
            .split_by_cursor()
            .filter("status", ConfigList::ContactStatus)
            .filter("lists", ConfigList::ListIds)
            .filter("tags", ConfigList::TagIds)
            .schema(schema!("contacts")),
        StreamDef::new("contact_lists", "/contact_lists")
            .records_key("lists")
            .primary_key(&["list_id"])
            .page_size(500)
            .params(&[("include_membership_count", "all")])
            .schema(schema!("contact_lists")),
        StreamDef::new("contact_tags", "/contact_tags")
            .records_key("tags")
            .primary_key(&["tag_id"])
            .page_size(500)
            .params(&[("include_count", "true")])
            .schema(schema!("contact_tags")),
        // The listing has no change filter but carries `edited_at`: only
        // segments edited since the last run are read one by one again.
        StreamDef::new("segment_list", "/segments")
            .records_key("segments")
            .primary_key(&["segment_id"])
            .cursor(Cursor::client_side("edited_at"))
            .page_size(1000)
            .params(&[("sort_by", "date")])
            .hidden(),
        // Read one by one: only a single segment carries its criteria.
        StreamDef::new("segments", "/segments/{parent}")
            .primary_key(&["segment_id"])
            .schema(schema!("segments"))
            .parent(
                Parent::stream("segment_list", "segment_id")
                    .sync(ChildSync::ThroughParent("edited_at".into())),
            ),
        StreamDef::new("custom_fields", "/contact_custom_fields")
            .records_key("custom_fields")
            .primary_key(&["custom_field_id"])
            .page_size(100)
            .schema(schema!("custom_fields")),
        StreamDef::new("email_campaigns", "/emails")
            .records_key("campaigns")
            .primary_key(&["campaign_id"])
            .cursor(Cursor::new("updated_at", "after_date").until("before_date"))
            .page_size(500)
            .schema(schema!("email_campaigns")),
        StreamDef::new(ACTIVITY_REFS, "/emails/{parent}")
            .records_key("campaign_activities")
            .primary_key(&["campaign_activity_id"])
            .parent(
                Parent::stream("email_campaigns", "campaign_id")
                    .narrowed_by(ConfigList::CampaignIds)
                    .inject("campaign_id")
                    .carry("updated_at", CAMPAIGN_CURSOR)
                    .carry("type_code", CAMPAIGN_TYPE_CODE)
                    .sync(through_campaign()),
            )
            .hidden(),
        StreamDef::new("email_campaign_activities", "/emails/activities/{parent}")
            .primary_key(&["campaign_activity_id"])
            .params(&[(
                "include",
                "physical_address_in_footer,permalink_url,html_content,document_properties",
            )])
            .schema(schema!("email_campaign_activities"))
            .parent(activity_child(through_campaign())),
        StreamDef::new(
            "campaign_activity_schedules",
            "/emails/activities/{parent}/schedules",
        )
        .records(Records::Array)
        .primary_key(&["campaign_activity_id", "scheduled_date"])
        .schema(schema!("campaign_activity_schedules"))
        .parent(activity_child(through_campaign()).inject("campaign_activity_id")),
        StreamDef::new(
            "campaign_activity_send_history",
            "/emails/activities/{parent}/send_history",
        )
        .records(Records::Array)
        .primary_key(&["campaign_activity_id", "send_id"])
        .schema(schema!("campaign_activity_send_history"))
        .parent(sent_activity_child(through_campaign()).inject("campaign_activity_id")),
        // A preview shows an email "before you send it to contacts" (the
        // contract): only the roles sent to contacts have one. A permalink
        // is the web copy of its primary email, with nothing to preview (the
        // contract lists no role for previews; the sandbox answers 404).
        StreamDef::new(
            "campaign_activity_previews",
            "/emails/activities/{parent}/previews",
        )
        .primary_key(&["campaign_activity_id"])
        .schema(schema!("campaign_activity_previews"))
        .parent(sent_activity_child(through_campaign())),
        tracking(
            "email_sends",
            "/reports/email_reports/{parent}/tracking/sends",
            &["campaign_activity_id", "contact_id", "created_time"],
            "/stats/em_sends",
            schema!("email_sends"),
        ),
        tracking(
            "email_opens",
            "/reports/email_reports/{parent}/tracking/opens",
            &["campaign_activity_id", "contact_id", "created_time"],
            "/stats/em_opens_all",
            schema!("email_opens"),
        ),
        tracking(
            "email_unique_opens",
            "/reports/email_reports/{parent}/tracking/unique_opens",
            &["campaign_activity_id", "contact_id"],
            "/stats/em_opens",
            schema!("email_unique_opens"),
        ),
        tracking(
            "email_did_not_opens",
            "/reports/email_reports/{parent}/tracking/didnotopens",
            &["campaign_activity_id", "contact_id"],
            "/stats/em_not_opened",
            schema!("email_did_not_opens"),
        )
        // A current list, not a log (rows vanish when a contact opens): an
        // activity's list is read again whole when its sends or opens changed.
        .parent(
            counted_snapshot(&["/stats/em_sends", "/stats/em_opens"])
                .rows("/stats/em_not_opened"),
        ),
        tracking(
            "email_clicks",
            "/reports/email_reports/{parent}/tracking/clicks",
            &["campaign_activity_id", "contact_id", "url_id", "created_time"],
            "/stats/em_clicks_all",
            schema!("email_clicks"),
        ),
        tracking(
            "email_forwards",
            "/reports/email_reports/{parent}/tracking/forwards",
            &["campaign_activity_id", "contact_id", "created_time"],
            "/stats/em_forwards",
            schema!("email_forwards"),
        ),
        tracking(
            "email_optouts",
            "/reports/email_reports/{parent}/tracking/optouts",
            &["campaign_activity_id", "contact_id", "created_time"],
            "/stats/em_optouts",
            schema!("email_optouts"),
        ),
        tracking(
            "email_bounces",
            "/reports/email_reports/{parent}/tracking/bounces",
            &["campaign_activity_id", "contact_id", "created_time"],
            "/stats/em_bounces",
            schema!("email_bounces"),
        ),
        StreamDef::new("email_links", "/reports/email_reports/{parent}/links")
            .primary_key(&["campaign_activity_id"])
            .schema(schema!("email_links"))
            // Link click counts change only with clicks.
            .parent(counted_snapshot(&["/stats/em_clicks_all"])),
        StreamDef::new(
            "email_campaign_summaries",
            "/reports/summary_reports/email_campaign_summaries",
        )
        .records_key("bulk_email_campaign_summaries")
        .primary_key(&["campaign_id"])
        .page_size(500)
        .schema(schema!("email_campaign_summaries")),
        // The stats endpoints take many ids per call: up to 150 campaigns, 10
        // activities.
        StreamDef::new(
            "email_campaign_stats",
            "/reports/stats/email_campaigns/{parent}",
        )
        .records_key("results")
        .primary_key(&["campaign_id"])
        .schema(schema!("email_campaign_stats"))
        .parent(
            Parent::stream("email_campaigns", "campaign_id")
                .narrowed_by(ConfigList::CampaignIds)
                .batch(150),
        ),
        StreamDef::new(
            "email_campaign_activity_stats",
            "/reports/stats/email_campaign_activities/{parent}",
        )
        .records_key("results")
        .primary_key(&["campaign_activity_id"])
        // Read again each run; a later refresh is a newer snapshot.
        .record_cursor("last_refresh_time")
        .schema(schema!("email_campaign_activity_stats"))
        // A snapshot of every sent activity, each run; the activities are
        // listed again only for campaigns that changed.
        .parent(sent_activity_child(ChildSync::KnownParents).batch(10)),
        StreamDef::new("account_summary", "/account/summary")
            .primary_key(&["encoded_account_id"])
            .params(&[("extra_fields", "physical_address,company_logo")])
            .schema(schema!("account_summary")),
        StreamDef::new("account_emails", "/account/emails")
            .records(Records::Array)
            .primary_key(&["email_id"])
            .schema(schema!("account_emails")),
        StreamDef::new("user_privileges", "/account/user/privileges")
            .records(Records::Array)
            .primary_key(&["privilege_id"])
            .schema(schema!("user_privileges")),
        contact_report(
            "contact_activity_summary",
            "/reports/contact_reports/{parent}/activity_summary",
        )
        .records_key("campaign_activities")
        .primary_key(&["contact_id", "campaign_activity_id"])
        .schema(schema!("contact_activity_summary"))
        .window(DateWindow::new("start", "end")),
        contact_report(
            "contact_activity_details",
            "/reports/contact_reports/{parent}/activity_details",
        )
        .records_key("tracking_activities")
        .primary_key(&[
            "contact_id",
            "campaign_activity_id",
            "tracking_activity_type",
            "created_time",
        ])
        .page_size(100)
        // Every type the contract lists, the landing-page ones included.
        .params(&[(
            "tracking_activities_list",
            "em_sends,em_opens,em_clicks,em_bounces,em_optouts,em_forwards,\
             p_contact_open,p_contact_click,p_contact_add,p_contact_update",
        )])
        .schema(schema!("contact_activity_details")),
        contact_report(
            "contact_open_and_click_rates",
            "/reports/contact_reports/{parent}/open_and_click_rates",
        )
        .primary_key(&["contact_id"])
        .schema(schema!("contact_open_and_click_rates"))
        .window(DateWindow::new("start", "end").at_most(FIVE_YEARS)),
        StreamDef::new("bulk_activities", "/activities")
            .records_key("activities")
            .primary_key(&["activity_id"])
            .page_size(500)
            .schema(schema!("bulk_activities")),
        // Only primary emails of A/B Test campaigns have one; asking for any
        // other activity's is a 404.
        StreamDef::new(
            "email_campaign_activity_abtests",
            "/emails/activities/{parent}/abtest",
        )
        .primary_key(&["campaign_activity_id"])
        .schema(schema!("email_campaign_activity_abtests"))
        .parent(primary_email_child().only(CAMPAIGN_TYPE_CODE, &[AB_TEST_TYPE_CODE])),
        StreamDef::new(
            "email_campaign_activity_resends",
            "/emails/activities/{parent}/non_opener_resends",
        )
        .records(Records::Array)
        .primary_key(&["campaign_activity_id", "resend_request_id"])
        .schema(schema!("email_campaign_activity_resends"))
        .parent(primary_email_child()),
        landing_page_report(
            "landing_page_contact_opens",
            "/reports/landing_pages/campaign_details/{parent}/p_contact_opens",
            &["campaign_activity_id", "contact_id", "created_time"],
            schema!("landing_page_contact_opens"),
        ),
        landing_page_report(
            "landing_page_unique_contact_opens",
            "/reports/landing_pages/campaign_details/{parent}/p_unique_contact_opens",
            &["campaign_activity_id", "contact_id"],
            schema!("landing_page_unique_contact_opens"),
        ),
        landing_page_report(
            "landing_page_unique_contact_clicks",
            "/reports/landing_pages/campaign_details/{parent}/p_unique_contact_clicks",
            &["campaign_activity_id", "contact_id", "url_id"],
            schema!("landing_page_unique_contact_clicks"),
        ),
        landing_page_report(
            "landing_page_unique_contact_adds",
            "/reports/landing_pages/campaign_details/{parent}/p_unique_contact_adds",
            &["campaign_activity_id", "contact_id"],
            schema!("landing_page_unique_contact_adds"),
        ),
        landing_page_report(
            "landing_page_unique_contact_updates",
            "/reports/landing_pages/campaign_details/{parent}/p_unique_contact_updates",
            &["campaign_activity_id", "contact_id"],
            schema!("landing_page_unique_contact_updates"),
        ),
        landing_page_report(
            "landing_page_unique_contact_sms_optins",
            "/reports/landing_pages/campaign_details/{parent}/p_unique_contact_sms_optins",
            &["campaign_activity_id", "contact_id"],
            schema!("landing_page_unique_contact_sms_optins"),
        ),
        // One account-wide record without an id: read in full each time.
        StreamDef::new("contact_consent_counts", "/contacts/counts")
            .params(&[("include", "new_subscriber")])
            .schema(schema!("contact_consent_counts")),
        contact_report(
            "contact_sms_engagement_history",
            "/contacts/sms_engagement_history/{parent}",
        )
        .records(Records::Array)
        .primary_key(&["contact_id", "sms_channel_history_id"])
        .schema(schema!("contact_sms_engagement_history")),
        // A snapshot of every contact through a bulk export job (opt-in):
        // every field the file holds that the schema names, and the custom
        // fields in `custom_fields`.
        StreamDef::new("contacts_export", "/activities/contact_exports")
            .primary_key(&["contact_id"])
            .export(Export::Contacts)
            .schema(schema!("contacts_export")),
    ];
    streams.extend(super::engagement::streams());
    streams
}

#[cfg(test)]
mod tests {
    use super::super::{ParentSource, Registry};
    use super::*;

    #[test]
    fn every_schema_is_valid_and_requires_its_keys() {
        for def in Registry::built_in().visible() {
            jsonschema::draft7::new(&def.schema)
                .unwrap_or_else(|e| panic!("schemas/{}.json: {e}", def.name));
            let required: Vec<&str> = def.schema["required"]
                .as_array()
                .map(|r| r.iter().filter_map(|v| v.as_str()).collect())
                .unwrap_or_default();
            for key in def
                .primary_key
                .iter()
                .chain(def.cursor.iter().map(|c| &c.field))
            {
                assert!(
                    required.contains(&key.as_str()),
                    "{}: {key} not required",
                    def.name
                );
            }
        }
    }

    #[test]
    fn parents_exist_and_paths_take_them() {
        let registry = Registry::built_in();
        for def in streams() {
            let Some(parent) = &def.parent else {
                assert!(!def.path.contains("{parent}"), "{}", def.name);
                continue;
            };
            assert!(def.path.contains("{parent}"), "{}", def.name);
            let ParentSource::Stream(name) = &parent.source else {
                continue;
            };
            let source = registry.find_any(name).expect("the parent stream exists");
            if let ChildSync::ThroughParent(_) = parent.sync {
                let mut up = source.clone();
                while up.cursor.is_none() {
                    let Some(ParentSource::Stream(next)) = up.parent.as_ref().map(|p| &p.source)
                    else {
                        panic!("{}: no cursor up the parent chain", def.name)
                    };
                    up = registry.find_any(next).unwrap().clone();
                }
            }
        }
    }

    #[test]
    fn optional_values_are_values_the_stream_asks_for() {
        for def in streams() {
            for optional in &def.optional {
                let asked = def.params.iter().any(|(param, values)| {
                    *param == optional.param && values.split(',').any(|v| v == optional.value)
                });
                assert!(asked, "{}: {optional:?}", def.name);
            }
        }
    }

    #[test]
    fn names_are_unique() {
        let all = streams();
        for (i, def) in all.iter().enumerate() {
            assert!(
                all[i + 1..].iter().all(|d| d.name != def.name),
                "{}",
                def.name
            );
        }
    }
}
