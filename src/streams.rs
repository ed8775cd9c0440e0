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
}

/// How a stream reads incrementally: the record field that orders changes,
/// and the query parameter that asks for records changed after a moment.
#[derive(Debug, Clone, Copy)]
pub struct Cursor {
    pub field: &'static str,
    pub param: &'static str,
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
}

impl StreamDef {
    pub fn schema_json(&self) -> serde_json::Value {
        serde_json::from_str(self.schema).expect("schemas/*.json are checked by a unit test")
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
    },
    StreamDef {
        name: "contact_lists",
        path: "/contact_lists",
        records: Records::Key("lists"),
        primary_key: &["list_id"],
        cursor: None,
        page_size: Some(500),
        params: &[("include_membership_count", "all")],
        schema: schema!("contact_lists"),
    },
    StreamDef {
        name: "contact_tags",
        path: "/contact_tags",
        records: Records::Key("tags"),
        primary_key: &["tag_id"],
        cursor: None,
        page_size: Some(500),
        params: &[("include_count", "true")],
        schema: schema!("contact_tags"),
    },
    StreamDef {
        name: "segments",
        path: "/segments",
        records: Records::Key("segments"),
        primary_key: &["segment_id"],
        cursor: None,
        page_size: Some(1000),
        params: &[("sort_by", "date")],
        schema: schema!("segments"),
    },
    StreamDef {
        name: "custom_fields",
        path: "/contact_custom_fields",
        records: Records::Key("custom_fields"),
        primary_key: &["custom_field_id"],
        cursor: None,
        page_size: Some(100),
        params: &[],
        schema: schema!("custom_fields"),
    },
    StreamDef {
        name: "email_campaigns",
        path: "/emails",
        records: Records::Key("campaigns"),
        primary_key: &["campaign_id"],
        cursor: Some(Cursor {
            field: "updated_at",
            param: "after_date",
        }),
        page_size: Some(500),
        params: &[],
        schema: schema!("email_campaigns"),
    },
    StreamDef {
        name: "email_campaign_summaries",
        path: "/reports/summary_reports/email_campaign_summaries",
        records: Records::Key("bulk_email_campaign_summaries"),
        primary_key: &["campaign_id"],
        cursor: None,
        page_size: Some(500),
        params: &[],
        schema: schema!("email_campaign_summaries"),
    },
    StreamDef {
        name: "account_summary",
        path: "/account/summary",
        records: Records::Object,
        primary_key: &["encoded_account_id"],
        cursor: None,
        page_size: None,
        params: &[("extra_fields", "physical_address,company_logo")],
        schema: schema!("account_summary"),
    },
    StreamDef {
        name: "account_emails",
        path: "/account/emails",
        records: Records::Array,
        primary_key: &["email_id"],
        cursor: None,
        page_size: None,
        params: &[],
        schema: schema!("account_emails"),
    },
    StreamDef {
        name: "user_privileges",
        path: "/account/user/privileges",
        records: Records::Array,
        primary_key: &["privilege_id"],
        cursor: None,
        page_size: None,
        params: &[],
        schema: schema!("user_privileges"),
    },
];

pub fn find(name: &str) -> Option<&'static StreamDef> {
    STREAMS.iter().find(|def| def.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_is_valid_and_requires_its_keys() {
        for def in STREAMS {
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
    fn names_are_unique() {
        for (i, def) in STREAMS.iter().enumerate() {
            assert!(STREAMS[i + 1..].iter().all(|d| d.name != def.name));
        }
    }
}
