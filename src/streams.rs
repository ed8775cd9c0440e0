//! Every stream of the source, as data. The engine reads this table and
//! nothing else, so a plain stream is one entry here plus `schemas/<name>.json`.

/// Where a page's records are in the response body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Records {
    /// An array under this key of the body object.
    Key(&'static str),
    /// The body is itself the only record.
    Object,
    /// The body is an array of records.
    Array,
    /// An array body holds records, an object body is one (custom streams).
    Auto,
}

/// How a stream reads incrementally: the record field that orders changes,
/// and the query parameter that asks for records changed after a moment.
#[derive(Debug, Clone, Copy)]
pub struct Cursor {
    pub field: &'static str,
    pub param: &'static str,
    /// The parameter asking for records changed before a moment (`end_date`).
    pub end_param: &'static str,
}

/// A query parameter whose value comes from the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// `contact_status`, replacing the table's `status`.
    ContactStatus,
    ListIds,
    TagIds,
}

/// How a child stream reads incrementally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildSync {
    /// Always read in full.
    FullRefresh,
    /// Only the children of parents changed since the saved cursor of the
    /// root parent stream (which must have a [`Cursor`]) are read again;
    /// records carry the root's cursor value under this field.
    ThroughParent(&'static str),
    /// The API returns each parent's rows newest first by this field: a
    /// read stops at the parent's saved bookmark.
    NewestFirst(&'static str),
}

/// Where a child stream's `{parent}` path values come from.
#[derive(Debug, Clone, Copy)]
pub struct Parent {
    /// The stream (often hidden) whose records supply the values, or
    /// [`CONFIGURED_CONTACTS`].
    pub stream: &'static str,
    /// The field of each parent record that fills `{parent}`.
    pub key: &'static str,
    /// Only parents whose `.0` field is one of `.1`.
    pub only: Option<(&'static str, &'static [&'static str])>,
    /// Parent values one request carries, comma-separated.
    pub batch: usize,
    /// Child records get the parent value under this name when they lack it.
    pub inject: Option<&'static str>,
    /// Child records get this field of the parent record (`.0`) as `.1`.
    pub carry: Option<(&'static str, &'static str)>,
    pub sync: ChildSync,
}

impl Parent {
    /// One parent value per request, nothing injected, full refresh.
    const fn of(stream: &'static str, key: &'static str) -> Parent {
        Parent {
            stream,
            key,
            only: None,
            batch: 1,
            inject: None,
            carry: None,
            sync: ChildSync::FullRefresh,
        }
    }

    const fn carry(self, from: &'static str, to: &'static str) -> Parent {
        Parent {
            carry: Some((from, to)),
            ..self
        }
    }

    const fn only(self, field: &'static str, values: &'static [&'static str]) -> Parent {
        Parent {
            only: Some((field, values)),
            ..self
        }
    }

    const fn batch(self, batch: usize) -> Parent {
        Parent { batch, ..self }
    }

    const fn inject(self, field: &'static str) -> Parent {
        Parent {
            inject: Some(field),
            ..self
        }
    }

    const fn sync(self, sync: ChildSync) -> Parent {
        Parent { sync, ..self }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct StreamDef {
    pub name: &'static str,
    /// Path under the API base URL.
    pub path: &'static str,
    pub records: Records,
    pub primary_key: &'static [&'static str],
    pub cursor: Option<Cursor>,
    /// Largest page the endpoint allows, sent as `limit`; `None` when the
    /// endpoint is not paginated.
    pub page_size: Option<u32>,
    /// Fixed query parameters.
    pub params: &'static [(&'static str, &'static str)],
    /// The stream's JSON Schema, embedded at build time.
    pub schema: &'static str,
    /// Set for streams read once per parent record: `path` holds `{parent}`.
    pub parent: Option<Parent>,
    /// Feeds children only; not offered by discover.
    pub hidden: bool,
    /// Query parameters set from the config.
    pub filters: &'static [(&'static str, Filter)],
    /// Parameters that carry the sync window's start and end.
    pub window: Option<(&'static str, &'static str)>,
}

impl StreamDef {
    pub fn schema_json(&self) -> serde_json::Value {
        serde_json::from_str(self.schema).expect("schemas/*.json are checked by a unit test")
    }

    pub fn supports_incremental(&self) -> bool {
        self.cursor.is_some()
            || self
                .parent
                .is_some_and(|p| p.sync != ChildSync::FullRefresh)
    }

    /// The record field that orders changes, where records carry one.
    pub fn cursor_field(&self) -> Option<&'static str> {
        match (self.cursor, self.parent.map(|p| p.sync)) {
            (Some(cursor), _) => Some(cursor.field),
            (None, Some(ChildSync::NewestFirst(field) | ChildSync::ThroughParent(field))) => {
                Some(field)
            }
            _ => None,
        }
    }
}

/// The values the API's `/contacts?status=` accepts.
pub const CONTACT_STATUSES: &[&str] = &[
    "all",
    "active",
    "deleted",
    "not_set",
    "pending_confirmation",
    "temp_hold",
    "unsubscribed",
];

/// The parent of contact reports: the config's `contact_ids`, as records
/// with a `contact_id`.
pub const CONFIGURED_CONTACTS: &str = "configured_contacts";

/// A plain top-level stream; the table below overrides what differs.
pub const BASE: StreamDef = StreamDef {
    name: "",
    path: "",
    records: Records::Object,
    primary_key: &[],
    cursor: None,
    page_size: None,
    params: &[],
    schema: "{}",
    parent: None,
    hidden: false,
    filters: &[],
    window: None,
};

/// Every campaign activity's id and role, from `/emails/{campaign_id}`.
const ACTIVITY_REFS: &str = "campaign_activity_refs";
/// Activities that were sent, and so have reports.
const SENT_ROLES: (&str, &[&str]) = ("role", &["primary_email", "resend"]);

/// Where children of campaigns keep their campaign's `updated_at`.
const CAMPAIGN_CURSOR: &str = "campaign_updated_at";

const fn activity_child(sync: ChildSync) -> Parent {
    let parent = Parent::of(ACTIVITY_REFS, "campaign_activity_id").sync(sync);
    match sync {
        ChildSync::ThroughParent(field) => parent.carry(field, field),
        _ => parent,
    }
}

/// A tracking report: newest-first rows of one sent activity.
const fn tracking(
    name: &'static str,
    path: &'static str,
    primary_key: &'static [&'static str],
    schema: &'static str,
) -> StreamDef {
    StreamDef {
        name,
        path,
        records: Records::Key("tracking_activities"),
        primary_key,
        page_size: Some(500),
        schema,
        parent: Some(
            activity_child(ChildSync::NewestFirst("created_time")).only(SENT_ROLES.0, SENT_ROLES.1),
        ),
        ..BASE
    }
}

macro_rules! schema {
    ($name:literal) => {
        include_str!(concat!("../schemas/", $name, ".json"))
    };
}

pub const STREAMS: &[StreamDef] = &[
    StreamDef {
        name: "contacts",
        path: "/contacts",
        records: Records::Key("contacts"),
        primary_key: &["contact_id"],
        cursor: Some(Cursor {
            field: "updated_at",
            param: "updated_after",
            end_param: "updated_before",
        }),
        page_size: Some(500),
        params: &[
            ("status", "all"),
            (
                "include",
                "custom_fields,list_memberships,phone_numbers,street_addresses,taggings,notes,sms_channel",
            ),
        ],
        schema: schema!("contacts"),
        filters: &[
            ("status", Filter::ContactStatus),
            ("lists", Filter::ListIds),
            ("tags", Filter::TagIds),
        ],
        ..BASE
    },
    StreamDef {
        name: "contact_lists",
        path: "/contact_lists",
        records: Records::Key("lists"),
        primary_key: &["list_id"],
        page_size: Some(500),
        params: &[("include_membership_count", "all")],
        schema: schema!("contact_lists"),
        ..BASE
    },
    StreamDef {
        name: "contact_tags",
        path: "/contact_tags",
        records: Records::Key("tags"),
        primary_key: &["tag_id"],
        page_size: Some(500),
        params: &[("include_count", "true")],
        schema: schema!("contact_tags"),
        ..BASE
    },
    StreamDef {
        name: "segment_list",
        path: "/segments",
        records: Records::Key("segments"),
        primary_key: &["segment_id"],
        page_size: Some(1000),
        params: &[("sort_by", "date")],
        hidden: true,
        ..BASE
    },
    // Read one by one: only a single segment carries its criteria.
    StreamDef {
        name: "segments",
        path: "/segments/{parent}",
        primary_key: &["segment_id"],
        schema: schema!("segments"),
        parent: Some(Parent::of("segment_list", "segment_id")),
        ..BASE
    },
    StreamDef {
        name: "custom_fields",
        path: "/contact_custom_fields",
        records: Records::Key("custom_fields"),
        primary_key: &["custom_field_id"],
        page_size: Some(100),
        schema: schema!("custom_fields"),
        ..BASE
    },
    StreamDef {
        name: "email_campaigns",
        path: "/emails",
        records: Records::Key("campaigns"),
        primary_key: &["campaign_id"],
        cursor: Some(Cursor {
            field: "updated_at",
            param: "after_date",
            end_param: "before_date",
        }),
        page_size: Some(500),
        schema: schema!("email_campaigns"),
        ..BASE
    },
    StreamDef {
        name: ACTIVITY_REFS,
        path: "/emails/{parent}",
        records: Records::Key("campaign_activities"),
        primary_key: &["campaign_activity_id"],
        parent: Some(
            Parent::of("email_campaigns", "campaign_id")
                .inject("campaign_id")
                .carry("updated_at", CAMPAIGN_CURSOR)
                .sync(ChildSync::ThroughParent(CAMPAIGN_CURSOR)),
        ),
        hidden: true,
        ..BASE
    },
    StreamDef {
        name: "email_campaign_activities",
        path: "/emails/activities/{parent}",
        primary_key: &["campaign_activity_id"],
        params: &[(
            "include",
            "physical_address_in_footer,permalink_url,html_content,document_properties",
        )],
        schema: schema!("email_campaign_activities"),
        parent: Some(activity_child(ChildSync::ThroughParent(CAMPAIGN_CURSOR))),
        ..BASE
    },
    StreamDef {
        name: "campaign_activity_schedules",
        path: "/emails/activities/{parent}/schedules",
        records: Records::Array,
        primary_key: &["campaign_activity_id", "scheduled_date"],
        schema: schema!("campaign_activity_schedules"),
        parent: Some(activity_child(ChildSync::ThroughParent(CAMPAIGN_CURSOR)).inject("campaign_activity_id")),
        ..BASE
    },
    StreamDef {
        name: "campaign_activity_send_history",
        path: "/emails/activities/{parent}/send_history",
        records: Records::Array,
        primary_key: &["campaign_activity_id", "send_id"],
        schema: schema!("campaign_activity_send_history"),
        parent: Some(
            activity_child(ChildSync::ThroughParent(CAMPAIGN_CURSOR))
                .only(SENT_ROLES.0, SENT_ROLES.1)
                .inject("campaign_activity_id"),
        ),
        ..BASE
    },
    StreamDef {
        name: "campaign_activity_previews",
        path: "/emails/activities/{parent}/previews",
        primary_key: &["campaign_activity_id"],
        schema: schema!("campaign_activity_previews"),
        parent: Some(activity_child(ChildSync::ThroughParent(CAMPAIGN_CURSOR))),
        ..BASE
    },
    tracking(
        "email_sends",
        "/reports/email_reports/{parent}/tracking/sends",
        &["campaign_activity_id", "contact_id", "created_time"],
        schema!("email_sends"),
    ),
    tracking(
        "email_opens",
        "/reports/email_reports/{parent}/tracking/opens",
        &["campaign_activity_id", "contact_id", "created_time"],
        schema!("email_opens"),
    ),
    tracking(
        "email_unique_opens",
        "/reports/email_reports/{parent}/tracking/unique_opens",
        &["campaign_activity_id", "contact_id"],
        schema!("email_unique_opens"),
    ),
    // A current list, not a log: rows vanish when a contact opens, so it is
    // read in full each time.
    StreamDef {
        parent: Some(activity_child(ChildSync::FullRefresh).only(SENT_ROLES.0, SENT_ROLES.1)),
        ..tracking(
            "email_did_not_opens",
            "/reports/email_reports/{parent}/tracking/didnotopens",
            &["campaign_activity_id", "contact_id"],
            schema!("email_did_not_opens"),
        )
    },
    tracking(
        "email_clicks",
        "/reports/email_reports/{parent}/tracking/clicks",
        &["campaign_activity_id", "contact_id", "url_id", "created_time"],
        schema!("email_clicks"),
    ),
    tracking(
        "email_forwards",
        "/reports/email_reports/{parent}/tracking/forwards",
        &["campaign_activity_id", "contact_id", "created_time"],
        schema!("email_forwards"),
    ),
    tracking(
        "email_optouts",
        "/reports/email_reports/{parent}/tracking/optouts",
        &["campaign_activity_id", "contact_id", "created_time"],
        schema!("email_optouts"),
    ),
    tracking(
        "email_bounces",
        "/reports/email_reports/{parent}/tracking/bounces",
        &["campaign_activity_id", "contact_id", "created_time"],
        schema!("email_bounces"),
    ),
    StreamDef {
        name: "email_links",
        path: "/reports/email_reports/{parent}/links",
        primary_key: &["campaign_activity_id"],
        schema: schema!("email_links"),
        parent: Some(activity_child(ChildSync::FullRefresh).only(SENT_ROLES.0, SENT_ROLES.1)),
        ..BASE
    },
    StreamDef {
        name: "email_campaign_summaries",
        path: "/reports/summary_reports/email_campaign_summaries",
        records: Records::Key("bulk_email_campaign_summaries"),
        primary_key: &["campaign_id"],
        page_size: Some(500),
        schema: schema!("email_campaign_summaries"),
        ..BASE
    },
    // The stats endpoints take many ids per call: up to 150 campaigns, 10 activities.
    StreamDef {
        name: "email_campaign_stats",
        path: "/reports/stats/email_campaigns/{parent}",
        records: Records::Key("results"),
        primary_key: &["campaign_id"],
        schema: schema!("email_campaign_stats"),
        parent: Some(Parent::of("email_campaigns", "campaign_id").batch(150)),
        ..BASE
    },
    StreamDef {
        name: "email_campaign_activity_stats",
        path: "/reports/stats/email_campaign_activities/{parent}",
        records: Records::Key("results"),
        primary_key: &["campaign_activity_id"],
        schema: schema!("email_campaign_activity_stats"),
        parent: Some(
            activity_child(ChildSync::FullRefresh)
                .only(SENT_ROLES.0, SENT_ROLES.1)
                .batch(10),
        ),
        ..BASE
    },
    StreamDef {
        name: "account_summary",
        path: "/account/summary",
        primary_key: &["encoded_account_id"],
        params: &[("extra_fields", "physical_address,company_logo")],
        schema: schema!("account_summary"),
        ..BASE
    },
    StreamDef {
        name: "account_emails",
        path: "/account/emails",
        records: Records::Array,
        primary_key: &["email_id"],
        schema: schema!("account_emails"),
        ..BASE
    },
    StreamDef {
        name: "user_privileges",
        path: "/account/user/privileges",
        records: Records::Array,
        primary_key: &["privilege_id"],
        schema: schema!("user_privileges"),
        ..BASE
    },
    // Contact reports take one contact per request: only `contact_ids` are read.
    StreamDef {
        name: "contact_activity_summary",
        path: "/reports/contact_reports/{parent}/activity_summary",
        records: Records::Key("campaign_activities"),
        primary_key: &["contact_id", "campaign_activity_id"],
        schema: schema!("contact_activity_summary"),
        parent: Some(Parent::of(CONFIGURED_CONTACTS, "contact_id").inject("contact_id")),
        window: Some(("start", "end")),
        ..BASE
    },
    StreamDef {
        name: "contact_activity_details",
        path: "/reports/contact_reports/{parent}/activity_details",
        records: Records::Key("tracking_activities"),
        primary_key: &[
            "contact_id",
            "campaign_activity_id",
            "tracking_activity_type",
            "created_time",
        ],
        page_size: Some(100),
        params: &[(
            "tracking_activities_list",
            "em_sends,em_opens,em_clicks,em_bounces,em_optouts,em_forwards",
        )],
        schema: schema!("contact_activity_details"),
        parent: Some(Parent::of(CONFIGURED_CONTACTS, "contact_id").inject("contact_id")),
        ..BASE
    },
    StreamDef {
        name: "contact_open_and_click_rates",
        path: "/reports/contact_reports/{parent}/open_and_click_rates",
        primary_key: &["contact_id"],
        schema: schema!("contact_open_and_click_rates"),
        parent: Some(Parent::of(CONFIGURED_CONTACTS, "contact_id").inject("contact_id")),
        window: Some(("start", "end")),
        ..BASE
    },
    StreamDef {
        name: "bulk_activities",
        path: "/activities",
        records: Records::Key("activities"),
        primary_key: &["activity_id"],
        page_size: Some(500),
        schema: schema!("bulk_activities"),
        ..BASE
    },
];

/// The streams users can select.
pub fn visible() -> impl Iterator<Item = &'static StreamDef> {
    STREAMS
        .iter()
        .filter(|def| !def.hidden)
        .chain(crate::custom_streams::registered())
}

/// A stream users can select, by name.
pub fn find(name: &str) -> Option<&'static StreamDef> {
    visible().find(|def| def.name == name)
}

/// Any stream, hidden ones included (parents of children).
pub fn find_any(name: &str) -> Option<&'static StreamDef> {
    STREAMS
        .iter()
        .chain(crate::custom_streams::registered())
        .find(|def| def.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_is_valid_and_requires_its_keys() {
        for def in visible() {
            let schema = def.schema_json();
            jsonschema::draft7::new(&schema)
                .unwrap_or_else(|e| panic!("schemas/{}.json: {e}", def.name));
            let required: Vec<&str> = schema["required"]
                .as_array()
                .map(|r| r.iter().filter_map(|v| v.as_str()).collect())
                .unwrap_or_default();
            for key in def
                .primary_key
                .iter()
                .chain(def.cursor.iter().map(|c| &c.field))
            {
                assert!(required.contains(key), "{}: {key} not required", def.name);
            }
        }
    }

    #[test]
    fn parents_exist_and_paths_take_them() {
        for def in STREAMS {
            let Some(parent) = def.parent else { continue };
            assert!(def.path.contains("{parent}"), "{}", def.name);
            if parent.stream == CONFIGURED_CONTACTS {
                continue;
            }
            let source = find_any(parent.stream).expect("the parent stream exists");
            assert!(def.path.contains("{parent}"), "{}", def.name);
            if let ChildSync::ThroughParent(_) = parent.sync {
                let root = find_any(source.parent.map_or(source.name, |p| p.stream)).unwrap();
                assert!(
                    root.cursor.is_some() || source.cursor.is_some(),
                    "{}",
                    def.name
                );
            }
        }
    }

    #[test]
    fn names_are_unique() {
        for (i, def) in STREAMS.iter().enumerate() {
            assert!(STREAMS[i + 1..].iter().all(|d| d.name != def.name));
        }
    }
}
