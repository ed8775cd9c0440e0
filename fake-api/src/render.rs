//! JSON shapes of each record, following the OpenAPI components
//! (`ContactResource`, `ContactList`, `Tag`, `SegmentMaster`/`SegmentDetail`,
//! `CustomFieldResource`, `EmailCampaigns`, `EmailCampaign`, `EmailCampaignActivity`,
//! `BulkEmailCampaignSummary`, `Customer`, `AccountEmails`, `UserPrivilegesResource`).

use super::data::{
    between, date, new_uuid, timestamp, Account, AccountEmail, Activity, BulkActivity, Campaign,
    CampaignStatus, Contact, ContactList, CustomField, Data, Permission, Segment, Tag, BULK_KINDS,
    CAMPAIGN_TYPES, CITIES, COMPANIES, DAY_MS, FIRST_NAMES, JOB_TITLES, LAST_NAMES, NOTES,
    SMS_PERMISSIONS, STREETS, YEAR_MS,
};
use rand::{seq::index::sample, Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Map, Value};

/// Contact sub-resources selectable with `include` (the contract's enum). The SDK guide
/// also lists `sms_channel`; whether the API takes it is unknown, so the fake takes the
/// contract's word and answers it 400.
pub(crate) const CONTACT_INCLUDES: &[&str] = &[
    "custom_fields",
    "list_memberships",
    "phone_numbers",
    "street_addresses",
    "taggings",
    "notes",
];

const STRING_VALUES: &[&str] = &[
    "Tesla S 2017",
    "Peonies",
    "Gold",
    "Silver",
    "9.5",
    "Downtown",
    "SPRING24",
    "Bronze",
    "Ford F-150 2020",
    "Orchids",
    "Harbor Square",
    "WELCOME10",
];

fn source(by_contact: bool) -> &'static str {
    if by_contact {
        "Contact"
    } else {
        "Account"
    }
}

fn ids_of<T>(items: &[T], bits: u16, id: impl Fn(&T) -> Value) -> Value {
    let ids = items
        .iter()
        .enumerate()
        .filter(|(i, _)| bits & (1 << i) != 0);
    Value::Array(ids.map(|(_, t)| id(t)).collect())
}

fn email_address(c: &Contact) -> Value {
    let mut e = Map::new();
    e.insert("address".into(), c.email().into());
    e.insert("permission_to_send".into(), c.permission.as_str().into());
    e.insert("created_at".into(), timestamp(c.created_at).into());
    e.insert("updated_at".into(), timestamp(c.email_updated_at).into());
    if matches!(c.permission, Permission::Implicit | Permission::Explicit) {
        e.insert("opt_in_source".into(), source(c.opt_in_by_contact).into());
        e.insert("opt_in_date".into(), timestamp(c.opt_in_at).into());
    }
    if let Some(out) = c.opt_out_at {
        let by_contact = c.deleted_at.is_none();
        e.insert("opt_out_source".into(), source(by_contact).into());
        e.insert("opt_out_date".into(), timestamp(out).into());
        if by_contact {
            e.insert(
                "opt_out_reason".into(),
                "I am no longer interested in this service.".into(),
            );
        }
    }
    let confirm = match c.permission {
        Permission::Explicit => Some("confirmed"),
        Permission::PendingConfirmation => Some("pending"),
        _ => None,
    };
    if let Some(status) = confirm {
        e.insert("confirm_status".into(), status.into());
    }
    Value::Object(e)
}

/// A contact with the requested sub-resources. Details come from the contact's own seed,
/// drawn in a fixed order so they never depend on what was included.
pub(crate) fn contact(data: &Data, c: &Contact, include: &[&str]) -> Value {
    let mut rng = ChaCha8Rng::seed_from_u64(c.seed);
    let rng = &mut rng;
    let (created, updated) = (c.created_at, c.updated_at);
    let mut o = Map::new();
    o.insert("contact_id".into(), json!(c.id));
    o.insert("email_address".into(), email_address(c));
    o.insert("first_name".into(), FIRST_NAMES[c.first as usize].into());
    o.insert("last_name".into(), LAST_NAMES[c.last as usize].into());
    o.insert("job_title".into(), JOB_TITLES[c.job as usize].into());
    o.insert("company_name".into(), COMPANIES[c.company as usize].into());
    o.insert("birthday_month".into(), rng.gen_range(1..=12).into());
    o.insert("birthday_day".into(), rng.gen_range(1..=28).into());
    o.insert(
        "anniversary".into(),
        date(between(rng, created - 8 * YEAR_MS, created)).into(),
    );
    o.insert("update_source".into(), source(c.updated_by_contact).into());
    o.insert("create_source".into(), source(c.created_by_contact).into());
    o.insert("created_at".into(), timestamp(created).into());
    o.insert("updated_at".into(), timestamp(updated).into());
    if let Some(deleted) = c.deleted_at {
        o.insert("deleted_at".into(), date(deleted).into());
    }

    let amount = rng.gen_range(2..=5);
    let picked = sample(rng, data.custom_fields.len(), amount);
    let custom_fields: Vec<Value> = picked
        .iter()
        .map(|i| {
            let f = &data.custom_fields[i];
            let value = if f.kind == "date" {
                date(between(rng, created - YEAR_MS, created + 30 * DAY_MS))
            } else {
                STRING_VALUES[rng.gen_range(0..STRING_VALUES.len())].to_string()
            };
            json!({"custom_field_id": f.id, "value": value})
        })
        .collect();
    let kinds = ["home", "work", "mobile", "other"];
    let amount = rng.gen_range(1..=2);
    let phones: Vec<Value> = sample(rng, kinds.len(), amount)
        .iter()
        .map(|k| {
            let at = between(rng, created, updated);
            let (exchange, line) = (rng.gen_range(200..1000), rng.gen_range(0..10_000));
            json!({
                "phone_number_id": new_uuid(rng),
                "phone_number": format!("+1-555-{exchange:03}-{line:04}"),
                "kind": kinds[k],
                "created_at": timestamp(at),
                "updated_at": timestamp(between(rng, at, updated)),
                "update_source": source(c.updated_by_contact),
                "create_source": source(c.created_by_contact),
            })
        })
        .collect();
    let (city, state, zip) = CITIES[rng.gen_range(0..CITIES.len())];
    let address_at = between(rng, created, updated);
    let street = format!(
        "{} {}",
        rng.gen_range(1..2000),
        STREETS[rng.gen_range(0..STREETS.len())]
    );
    let address = json!({
        "street_address_id": new_uuid(rng),
        "kind": (["home", "work", "other"][rng.gen_range(0..3)]),
        "street": street,
        "city": city,
        "state": state,
        "postal_code": format!("{zip}{:02}", rng.gen_range(0..100)),
        "country": "United States",
        "created_at": timestamp(address_at),
        "updated_at": timestamp(between(rng, address_at, updated)),
    });
    let notes: Vec<Value> = (0..rng.gen_range(1..=3))
        .map(|_| {
            json!({
                "note_id": new_uuid(rng),
                "created_at": timestamp(between(rng, created, updated)),
                "content": NOTES[rng.gen_range(0..NOTES.len())],
            })
        })
        .collect();

    let sections = [
        ("custom_fields", Value::Array(custom_fields)),
        (
            "list_memberships",
            ids_of(&data.lists, c.lists, |l| json!(l.id)),
        ),
        ("phone_numbers", Value::Array(phones)),
        ("street_addresses", json!([address])),
        ("taggings", ids_of(&data.tags, c.tags, |t| json!(t.id))),
        ("notes", Value::Array(notes)),
    ];
    for (name, value) in sections {
        if include.contains(&name) {
            o.insert(name.into(), value);
        }
    }
    Value::Object(o)
}

/// A contact's SMS channel, as the SDK guide's `include=sms_channel` describes it.
/// `/contacts` does not serve it (the contract's enum lacks the value); the export
/// file's SMS columns come from it.
pub(crate) fn sms_channel(c: &Contact) -> Value {
    let rng = &mut ChaCha8Rng::seed_from_u64(c.seed ^ 0x534d_535f_4348);
    let at = between(rng, c.created_at, c.updated_at);
    let permission = SMS_PERMISSIONS[c.sms as usize].0;
    let mut consent = json!({
        "sms_consent_permission": permission,
        "consent_type": "promotional_sms",
        "opt_in_date": timestamp(at),
        "advertised_frequency": rng.gen_range(1..5).to_string(),
        "advertised_interval": (["daily", "weekly", "monthly"][rng.gen_range(0..3)]),
        "created_at": timestamp(at),
        "updated_at": timestamp(at),
    });
    if permission == "opt_out" {
        let out = between(rng, at, c.updated_at);
        consent["opt_out_date"] = timestamp(out).into();
        consent["updated_at"] = timestamp(out).into();
    }
    json!({
        "sms_channel_id": new_uuid(rng),
        "sms_address": format!("555{:07}", rng.gen_range(0..10_000_000)),
        "dial_code": "1",
        "country_code": "US",
        "update_source": source(c.updated_by_contact),
        "create_source": source(c.created_by_contact),
        "sms_channel_consents": [consent],
    })
}

pub(crate) fn contact_list(l: &ContactList, membership_count: Option<usize>) -> Value {
    let mut v = json!({
        "list_id": l.id,
        "name": l.name,
        "favorite": l.favorite,
        "created_at": timestamp(l.created_at),
        "updated_at": timestamp(l.updated_at),
    });
    if let Some(n) = membership_count {
        v["membership_count"] = n.into();
    }
    v
}

pub(crate) fn tag(t: &Tag, contacts_count: Option<usize>) -> Value {
    let mut v = json!({
        "tag_id": t.id,
        "name": t.name,
        "created_at": timestamp(t.created_at),
        "updated_at": timestamp(t.updated_at),
        "tag_source": t.source,
    });
    if let Some(n) = contacts_count {
        v["contacts_count"] = n.into();
    }
    v
}

/// `SegmentMaster` in the collection; `SegmentDetail` (with criteria) for a single segment.
pub(crate) fn segment(s: &Segment, detail: bool) -> Value {
    let mut v = json!({
        "name": s.name,
        "segment_id": s.id,
        "created_at": timestamp(s.created_at),
        "edited_at": timestamp(s.edited_at),
    });
    if detail {
        v["segment_criteria"] = s.criteria.into();
    }
    v
}

/// A custom field's `name`, built from its label.
pub(crate) fn custom_field_name(f: &CustomField) -> String {
    f.label.replace(' ', "_")
}

pub(crate) fn custom_field(f: &CustomField) -> Value {
    json!({
        "custom_field_id": f.id,
        "label": f.label,
        "name": custom_field_name(f),
        "type": f.kind,
        "updated_at": timestamp(f.updated_at),
        "created_at": timestamp(f.created_at),
    })
}

/// `EmailCampaigns` item of `GET /emails`; `detail` adds `campaign_activities`.
pub(crate) fn campaign(c: &Campaign, detail: bool) -> Value {
    let (kind, code) = CAMPAIGN_TYPES[c.kind];
    let mut v = json!({
        "campaign_id": c.id,
        "created_at": timestamp(c.created_at),
        "current_status": c.status.as_str(),
        "name": c.name,
        "type": kind,
        "type_code": code,
        "updated_at": timestamp(c.updated_at),
    });
    if detail {
        let refs: Vec<Value> = c
            .activities
            .iter()
            .map(|a| json!({"campaign_activity_id": a.id, "role": a.role}))
            .collect();
        v["campaign_activities"] = refs.into();
    }
    v
}

/// Optional activity properties selectable with `include`.
pub(crate) const ACTIVITY_INCLUDES: &[&str] = &[
    "physical_address_in_footer",
    "permalink_url",
    "html_content",
    "document_properties",
];

pub(crate) fn activity(data: &Data, c: &Campaign, a: &Activity, include: &[&str]) -> Value {
    // A published permalink stays live once the campaign left draft, unless removed.
    let status = match c.status {
        CampaignStatus::Draft | CampaignStatus::Removed => c.status,
        _ if a.role == "permalink" => CampaignStatus::Done,
        other => other,
    };
    let sender = &data.account_emails[0].address;
    let mut v = json!({
        "campaign_activity_id": a.id,
        "campaign_id": c.id,
        "role": a.role,
        "contact_list_ids": ids_of(&data.lists, a.lists, |l| json!(l.id)),
        "segment_ids": a.segment_id.into_iter().collect::<Vec<_>>(),
        "current_status": status.as_str().to_uppercase(),
        "format_type": 5,
        "from_email": sender,
        "from_name": data.account.organization,
        "reply_to_email": data.account_emails[1].address,
        "subject": c.subject,
        "preheader": "Fresh ideas for the season inside.",
        "template_id": a.template_id.to_string(),
    });
    let optional = [
        ("physical_address_in_footer", footer_address(&data.account)),
        (
            "permalink_url",
            format!("https://conta.cc/{}", a.permalink).into(),
        ),
        (
            "html_content",
            format!(
                "<html><body>[[trackingImage]]<h1>{}</h1><p>{}</p></body></html>",
                c.name, c.subject
            )
            .into(),
        ),
        (
            "document_properties",
            json!({
                "letter_format": "XHTML",
                "greeting_salutation": "Hello",
                "greeting_name_type": "F",
                "greeting_secondary": "Hi there,",
                "subscribe_link_enabled": "false",
                "permission_reminder_enabled": "true",
                "permission_reminder": "You are receiving this because you signed up at our shop.",
                "view_as_webpage_enabled": "true",
                "view_as_webpage_text": "Trouble reading this email?",
                "view_as_webpage_link_name": "Open it in your browser",
                "forward_email_link_enabled": "false",
            }),
        ),
    ];
    for (name, value) in optional {
        if include.contains(&name) {
            v[name] = value;
        }
    }
    v
}

fn footer_address(a: &Account) -> Value {
    json!({
        "address_line1": "48 Harbor Drive",
        "address_line2": "Suite 2",
        "city": "Boston",
        "country_code": "US",
        "country_name": "United States",
        "organization_name": a.organization,
        "postal_code": "02110",
        "state_code": "MA",
        "state_name": "Massachusetts",
    })
}

/// Unique counts of every sent activity of the campaign, added up.
pub(crate) fn campaign_summary(c: &Campaign, last_sent: i64) -> Value {
    let s = c.stats();
    json!({
        "campaign_id": c.id,
        "campaign_type": CAMPAIGN_TYPES[c.kind].0,
        "last_sent_date": timestamp(last_sent),
        "unique_counts": {
            "sends": s.sends,
            "opens": s.opens,
            "clicks": s.clicks,
            "forwards": s.forwards,
            "optouts": s.optouts,
            "abuse": s.abuse,
            "bounces": s.bounced(),
            "not_opened": s.not_opened(),
        },
    })
}

/// Account extra fields selectable with `extra_fields`.
pub(crate) const ACCOUNT_EXTRAS: &[&str] = &["physical_address", "company_logo"];

pub(crate) fn account(data: &Data, extra: &[&str]) -> Value {
    let a = &data.account;
    let mut v = json!({
        "contact_email": data.account_emails[0].address,
        "contact_phone": "6175550142",
        "country_code": "US",
        "encoded_account_id": a.encoded_id,
        "first_name": "Dana",
        "last_name": "Whitfield",
        "organization_name": a.organization,
        "organization_phone": "617-555-0142",
        "state_code": "MA",
        "time_zone_id": "US/Eastern",
        "website": format!("https://{}", a.domain),
    });
    if extra.contains(&"physical_address") {
        v["physical_address"] = json!({
            "address_line1": "48 Harbor Drive",
            "address_line2": "Suite 2",
            "city": "Boston",
            "state_code": "MA",
            "postal_code": "02110",
            "country_code": "US",
        });
    }
    if extra.contains(&"company_logo") {
        v["company_logo"] = json!({
            "url": format!("https://files.constantcontact.com/{}/logo.png", a.encoded_id),
            "external_url": format!("https://{}/images/logo.png", a.domain),
            "internal_id": "ACCOUNT.IMAGE.5",
        });
    }
    v
}

pub(crate) fn account_email(e: &AccountEmail) -> Value {
    let mut v = json!({
        "email_address": e.address,
        "email_id": e.id,
        "confirm_status": if e.confirmed_at.is_some() { "CONFIRMED" } else { "UNCONFIRMED" },
        "roles": e.roles,
        "pending_roles": e.pending_roles,
    });
    if let Some(at) = e.confirmed_at {
        v["confirm_time"] = timestamp(at).into();
        v["confirm_source_type"] = e.source.into();
    }
    v
}

pub(crate) fn privilege(&(id, name): &(i64, &str)) -> Value {
    json!({"privilege_id": id, "privilege_name": name})
}

/// `Activity` of a bulk activity (`GET /activities`, `GET /activities/{id}`).
pub(crate) fn bulk_activity(b: &BulkActivity) -> Value {
    let (kind, file) = BULK_KINDS[b.kind];
    let percent = match b.state {
        "initialized" => 0,
        "processing" => 40,
        "cancelled" => 20,
        _ => 100,
    };
    let done = if b.state == "failed" {
        0
    } else {
        b.items * percent / 100
    };
    let mut status = json!({
        "items_total_count": b.items,
        "items_completed_count": done,
    });
    if kind.ends_with("import") {
        status["person_count"] = done.into();
        status["error_count"] = b.errors.into();
        status["correctable_count"] = 0.into();
        status["cannot_add_to_list_count"] = 0.into();
    } else if kind.ends_with("list_memberships") {
        status["list_count"] = 2.into();
    }
    let href = format!("/v3/activities/{}", b.id);
    let mut links = json!({"self": {"href": href}});
    // The file's path is the docs' `/contact_exports/{file_export_id}` (the spec's
    // example link spells it `contacts_exports`; it documents no such path).
    if kind == "export_contacts" {
        links["results"] = json!({"href": format!("/v3/contact_exports/{}", b.id)});
    }
    let mut v = json!({
        "activity_id": b.id,
        "state": b.state,
        "started_at": timestamp(b.started_at),
        "created_at": timestamp(b.created_at),
        "updated_at": timestamp(b.finished_at.unwrap_or(b.started_at)),
        "percent_done": percent,
        "activity_errors": if b.errors > 0 && kind == "export_contacts" {
            vec!["The export could not be completed."]
        } else if b.errors > 0 {
            vec!["Row 1: the email address is missing or invalid."]
        } else {
            Vec::new()
        },
        "status": status,
        "_links": links,
    });
    if let Some(at) = b.finished_at {
        v["completed_at"] = timestamp(at).into();
    }
    if let Some(file) = file {
        v["source_file_name"] = file.into();
    }
    v
}
