//! The core V3 read endpoints: contacts, lists, tags, segments, custom fields, campaigns
//! and their activities, campaign summaries and the account. Collections go through
//! `ListQuery::page`; each handler only parses its own filters and picks the record order.

use super::data::{Contact, Data, SMS_PERMISSIONS};
use super::error::ApiError;
use super::paging::{EnumParam, ListQuery, ListSpec, Params};
use super::render::{self, ACCOUNT_EXTRAS, ACTIVITY_INCLUDES, CONTACT_INCLUDES};
use super::state::{Route, Shared};
use axum::{
    extract::{Path, RawQuery, State},
    http::StatusCode,
    routing::get,
    Json,
};
use serde_json::Value;
use std::{cmp::Reverse, sync::Arc};
use uuid::Uuid;

/// What a handler answers, and the state it is given (shared by every route module).
pub(crate) type Reply = Result<Json<Value>, ApiError>;
pub(crate) type St = State<Arc<Shared>>;

/// Route templates, their enum query parameters and their handlers.
pub(crate) fn routes() -> Vec<Route> {
    vec![
        (
            "/v3/contacts",
            const {
                &[
                    EnumParam::list("status", CONTACT_STATUSES),
                    EnumParam::list("include", CONTACT_INCLUDES),
                    EnumParam::list("sms_status", SMS_STATUSES),
                ]
            },
            get(contacts),
        ),
        (
            "/v3/contact_lists",
            const {
                &[
                    EnumParam::single("include_membership_count", MEMBERSHIP_COUNTS),
                    // "Accepts comma-separated status values", says the contract.
                    EnumParam::list("status", &["all", "active", "deleted"]),
                    EnumParam::single("channel_type", &["email", "sms"]),
                ]
            },
            get(contact_lists),
        ),
        ("/v3/contact_tags", &[], get(contact_tags)),
        (
            "/v3/segments",
            // No enum in the contract; its description names these two.
            const { &[EnumParam::single("sort_by", SEGMENT_SORTS)] },
            get(segments),
        ),
        ("/v3/segments/{segment_id}", &[], get(segment)),
        ("/v3/contact_custom_fields", &[], get(custom_fields)),
        ("/v3/emails", &[], get(campaigns)),
        ("/v3/emails/{campaign_id}", &[], get(campaign)),
        (
            "/v3/emails/activities/{campaign_activity_id}",
            const { &[EnumParam::list("include", ACTIVITY_INCLUDES)] },
            get(activity),
        ),
        (
            "/v3/reports/summary_reports/email_campaign_summaries",
            &[],
            get(summaries),
        ),
        (
            "/v3/account/summary",
            const { &[EnumParam::list("extra_fields", ACCOUNT_EXTRAS)] },
            get(account),
        ),
        (
            "/v3/account/emails",
            const {
                &[
                    EnumParam::single("confirm_status", CONFIRM_STATUSES),
                    EnumParam::single("role_code", ROLE_CODES),
                ]
            },
            get(account_emails),
        ),
        ("/v3/account/user/privileges", &[], get(privileges)),
    ]
}

/// Records a full read of each stream these endpoints serve returns.
pub(crate) fn expected_counts(data: &Data) -> Vec<(&'static str, usize)> {
    vec![
        ("contacts", data.contacts.len()),
        ("contact_lists", data.lists.len()),
        ("contact_tags", data.tags.len()),
        ("segments", data.segments.len()),
        ("custom_fields", data.custom_fields.len()),
        ("email_campaigns", data.campaigns.len()),
        ("email_campaign_summaries", data.summaries().len()),
        ("account_summary", 1),
        ("account_emails", data.account_emails.len()),
        ("user_privileges", data.privileges().count()),
        ("email_campaign_activities", data.live_activities().count()),
    ]
}

const fn spec(path: &'static str, records_key: &'static str, max_limit: usize) -> ListSpec {
    ListSpec {
        path,
        records_key,
        default_limit: 50,
        max_limit,
        links_always: false,
    }
}

static CONTACTS: ListSpec = spec("/v3/contacts", "contacts", 500);
static LISTS: ListSpec = spec("/v3/contact_lists", "lists", 500);
static TAGS: ListSpec = spec("/v3/contact_tags", "tags", 500);
static SEGMENTS: ListSpec = ListSpec {
    default_limit: 1000,
    ..spec("/v3/segments", "segments", 1000)
};
static CUSTOM_FIELDS: ListSpec = spec("/v3/contact_custom_fields", "custom_fields", 100);
static CAMPAIGNS: ListSpec = spec("/v3/emails", "campaigns", 500);
static SUMMARIES: ListSpec = ListSpec {
    links_always: true,
    ..spec(
        "/v3/reports/summary_reports/email_campaign_summaries",
        "bulk_email_campaign_summaries",
        500,
    )
};

/// The `status` values `GET /contacts` accepts (the `status` query parameter's enum in
/// the V3 OpenAPI spec).
const CONTACT_STATUSES: &[&str] = &[
    "all",
    "active",
    "deleted",
    "not_set",
    "pending_confirmation",
    "temp_hold",
    "unsubscribed",
];
const MEMBERSHIP_COUNTS: &[&str] = &["all", "active"];
const SEGMENT_SORTS: &[&str] = &["name", "date"];
const CONFIRM_STATUSES: &[&str] = &["CONFIRMED", "C", "UNCONFIRMED", "U"];
const ROLE_CODES: &[&str] = &[
    "CONTACT",
    "C",
    "BILLING",
    "B",
    "JOURNALING",
    "J",
    "REPLY_TO",
    "R",
    "OTHER",
    "O",
];
const SMS_STATUSES: &[&str] = &[
    "all",
    "explicit",
    "unsubscribed",
    "pending_confirmation",
    "not_set",
];

/// Bit mask of the records in `items` whose id is in `ids`; `None` when no filter was given.
fn id_mask<T>(items: &[T], ids: &[Uuid], id: impl Fn(&T) -> Uuid) -> Option<u16> {
    (!ids.is_empty()).then(|| {
        items
            .iter()
            .enumerate()
            .filter(|(_, t)| ids.contains(&id(t)))
            .fold(0, |mask, (i, _)| mask | (1 << i))
    })
}

fn in_range(t: Option<i64>, after: Option<i64>, before: Option<i64>) -> bool {
    match t {
        Some(t) => after.is_none_or(|a| t > a) && before.is_none_or(|b| t < b),
        None => after.is_none() && before.is_none(),
    }
}

/// Filters of `GET /contacts`. All given filters must hold (they are ANDed), each as the
/// docs describe it:
///
/// - `status` picks the population: none given means every contact not deleted; `all`
///   adds the deleted ones; `deleted` is only them; the permission values (`active` =
///   implicit or explicit) match live contacts only.
/// - `updated_after`/`updated_before` compare the contact's `updated_at`, which only
///   personal details move: an opt-out, an opt-in, a list-membership change or a deletion
///   leaves it alone (Constant Contact support confirmed it for unsubscribes; the sandbox
///   takes the same strict reading for the others, which the API documents no change date
///   for). The bounds are exclusive.
/// - `created_after`/`created_before` compare `created_at`.
/// - `optout_after`/`optout_before` ("contacts that unsubscribed after/before a date")
///   compare `email_address.opt_out_date` of contacts that are unsubscribed now: a
///   resubscribed contact has no opt-out date any more, so it is not returned. A deleted
///   contact carries an opt-out date too (the spec says so), but the docs promise nothing
///   about finding deletions this way, so the strict reading applies: the opt-out filters
///   never return deleted contacts, whatever `status` says (with `status=deleted` they
///   return nothing).
///
/// Dates are ISO-8601 date-times or bare dates (midnight UTC); anything else is a 400.
struct ContactFilter {
    statuses: Vec<&'static str>,
    sms: Vec<&'static str>,
    email: Option<String>,
    lists: Option<u16>,
    tags: Option<u16>,
    updated: (Option<i64>, Option<i64>),
    created: (Option<i64>, Option<i64>),
    optout: (Option<i64>, Option<i64>),
}

impl ContactFilter {
    fn parse(p: &Params, data: &Data) -> Result<Self, ApiError> {
        let range = |key: &str| -> Result<_, ApiError> {
            Ok((
                p.instant(&format!("{key}_after"), true)?,
                p.instant(&format!("{key}_before"), true)?,
            ))
        };
        Ok(Self {
            statuses: p.csv("status", CONTACT_STATUSES)?,
            sms: p.csv("sms_status", SMS_STATUSES)?,
            email: p.get("email").map(str::to_lowercase),
            lists: id_mask(&data.lists, &p.uuids("lists", 25)?, |l| l.id),
            tags: id_mask(&data.tags, &p.uuids("tags", 50)?, |t| t.id),
            updated: range("updated")?,
            created: range("created")?,
            optout: range("optout")?,
        })
    }

    fn status_matches(&self, c: &Contact) -> bool {
        if self.statuses.is_empty() {
            return c.deleted_at.is_none();
        }
        self.statuses.iter().any(|&s| match s {
            "all" => true,
            "deleted" => c.deleted_at.is_some(),
            "active" => c.is_active(),
            other => c.deleted_at.is_none() && c.permission.as_str() == other,
        })
    }

    fn matches(&self, c: &Contact) -> bool {
        let sms = SMS_PERMISSIONS[c.sms as usize].1;
        self.status_matches(c)
            && (self.sms.is_empty() || self.sms.iter().any(|&s| s == "all" || s == sms))
            && self.email.as_ref().is_none_or(|e| *e == c.email())
            && self.lists.is_none_or(|m| c.lists & m != 0)
            && self.tags.is_none_or(|m| c.tags & m != 0)
            && in_range(Some(c.updated_at), self.updated.0, self.updated.1)
            && in_range(Some(c.created_at), self.created.0, self.created.1)
            && in_range(
                c.opt_out_at.filter(|_| c.deleted_at.is_none()),
                self.optout.0,
                self.optout.1,
            )
    }
}

/// `GET /contacts?segment_id=`: only `limit` may come with it. The first request for a
/// segment is answered 202 with no contacts while the result is prepared (as the API
/// documents); later ones (and their pages) get the segment's contacts.
fn segment_contacts(
    s: &Shared,
    q: &ListQuery,
    id: &str,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if let Some((key, _)) = q
        .params
        .pairs()
        .find(|(k, _)| !matches!(*k, "segment_id" | "limit"))
    {
        return Err(ApiError::bad(format!(
            "segment_id can only be combined with limit, got {key}"
        )));
    }
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::bad(format!("segment_id must be an integer, got '{id}'")))?;
    let mut data = s.data_mut();
    let Some(segment) = data.segments.iter().position(|seg| seg.id == id) else {
        return Err(ApiError::NotFound(format!("Segment {id} not found")));
    };
    if data.prepared_segments.insert(id) {
        return Ok((
            StatusCode::ACCEPTED,
            Json(serde_json::json!({"contacts": []})),
        ));
    }
    let segment = &data.segments[segment];
    let page = q.page(
        data.contacts.iter(),
        |c| segment.contains(c),
        |c| render::contact(&data, c, &[]),
        None,
    )?;
    Ok((StatusCode::OK, page))
}

async fn contacts(
    State(s): St,
    RawQuery(raw): RawQuery,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let q = ListQuery::parse(&CONTACTS, raw.as_deref())?;
    if let Some(id) = q.params.get("segment_id") {
        return segment_contacts(&s, &q, id);
    }
    let data = s.data();
    let filter = ContactFilter::parse(&q.params, &data)?;
    let include = q.params.csv("include", CONTACT_INCLUDES)?;
    let count = q.params.flag("include_count")?.then_some("contacts_count");
    let page = q.page(
        data.contacts.iter(),
        |c| filter.matches(c),
        |c| render::contact(&data, c, &include),
        count,
    )?;
    Ok((StatusCode::OK, page))
}

/// Position of `item` in `items` (records are matched to per-index counts by identity).
fn index_of<T>(items: &[T], item: &T) -> usize {
    items
        .iter()
        .position(|t| std::ptr::eq(t, item))
        .unwrap_or_default()
}

async fn contact_lists(State(s): St, RawQuery(raw): RawQuery) -> Reply {
    let q = ListQuery::parse(&LISTS, raw.as_deref())?;
    let count = q.params.flag("include_count")?.then_some("lists_count");
    let membership = q
        .params
        .one_of("include_membership_count", MEMBERSHIP_COUNTS)?;
    let data = s.data();
    let counts = membership.map(|m| {
        data.bit_counts(|c| {
            if m == "active" && !c.is_active() {
                0
            } else {
                c.lists
            }
        })
    });
    q.page(
        data.lists.iter(),
        |_| true,
        |l| render::contact_list(l, counts.map(|n| n[index_of(&data.lists, l)])),
        count,
    )
}

async fn contact_tags(State(s): St, RawQuery(raw): RawQuery) -> Reply {
    let q = ListQuery::parse(&TAGS, raw.as_deref())?;
    let data = s.data();
    let counts = q
        .params
        .flag("include_count")?
        .then(|| data.bit_counts(|c| if c.deleted_at.is_none() { c.tags } else { 0 }));
    q.page(
        data.tags.iter(),
        |_| true,
        |t| render::tag(t, counts.map(|n| n[index_of(&data.tags, t)])),
        None,
    )
}

async fn segments(State(s): St, RawQuery(raw): RawQuery) -> Reply {
    let q = ListQuery::parse(&SEGMENTS, raw.as_deref())?;
    let sort = q.params.one_of("sort_by", SEGMENT_SORTS)?.unwrap_or("date");
    let data = s.data();
    let mut order: Vec<_> = data.segments.iter().collect();
    if sort == "name" {
        order.sort_by_key(|s| (s.name, s.id));
    } else {
        order.sort_by_key(|s| (Reverse(s.edited_at), s.id));
    }
    q.page(
        order.iter().copied(),
        |_| true,
        |s| render::segment(s, false),
        None,
    )
}

async fn segment(State(s): St, Path(id): Path<String>) -> Reply {
    let Ok(number) = id.parse::<i64>() else {
        return Err(ApiError::bad(format!(
            "segment_id must be an integer, got '{id}'"
        )));
    };
    let data = s.data();
    data.segments
        .iter()
        .find(|seg| seg.id == number)
        .map(|seg| Json(render::segment(seg, true)))
        .ok_or_else(|| ApiError::NotFound(format!("Segment {id} not found")))
}

async fn custom_fields(State(s): St, RawQuery(raw): RawQuery) -> Reply {
    let q = ListQuery::parse(&CUSTOM_FIELDS, raw.as_deref())?;
    let data = s.data();
    q.page(
        data.custom_fields.iter(),
        |_| true,
        render::custom_field,
        None,
    )
}

async fn campaigns(State(s): St, RawQuery(raw): RawQuery) -> Reply {
    let q = ListQuery::parse(&CAMPAIGNS, raw.as_deref())?;
    let after = q.params.instant("after_date", false)?;
    let before = q.params.instant("before_date", false)?;
    let data = s.data();
    q.page(
        data.campaigns.iter(),
        |c| in_range(Some(c.updated_at), after, before),
        |c| render::campaign(c, false),
        None,
    )
}

async fn campaign(State(s): St, Path(id): Path<String>) -> Reply {
    let data = s.data();
    data.campaigns
        .iter()
        .find(|c| c.id.to_string() == id)
        .map(|c| Json(render::campaign(c, true)))
        .ok_or_else(|| ApiError::NotFound(format!("Campaign {id} not found")))
}

async fn activity(State(s): St, Path(id): Path<String>, RawQuery(raw): RawQuery) -> Reply {
    let include = Params::parse(raw.as_deref().unwrap_or("")).csv("include", ACTIVITY_INCLUDES)?;
    let data = s.data();
    data.activity(&id)
        .map(|(c, a)| Json(render::activity(&data, c, a, &include)))
        .ok_or_else(|| ApiError::NotFound(format!("Campaign activity {id} not found")))
}

async fn summaries(State(s): St, RawQuery(raw): RawQuery) -> Reply {
    let q = ListQuery::parse(&SUMMARIES, raw.as_deref())?;
    let data = s.data();
    let sent = data.summaries();
    q.page(
        sent.iter(),
        |_| true,
        |&(c, last_sent)| render::campaign_summary(c, last_sent),
        None,
    )
}

async fn account(State(s): St, RawQuery(raw): RawQuery) -> Reply {
    let extra = Params::parse(raw.as_deref().unwrap_or("")).csv("extra_fields", ACCOUNT_EXTRAS)?;
    Ok(Json(render::account(&s.data(), &extra)))
}

async fn account_emails(State(s): St, RawQuery(raw): RawQuery) -> Reply {
    let p = Params::parse(raw.as_deref().unwrap_or(""));
    let confirm = p.one_of("confirm_status", CONFIRM_STATUSES)?;
    let role = p.one_of("role_code", ROLE_CODES)?;
    let address = p.get("email_address");
    let data = s.data();
    let emails = data
        .account_emails
        .iter()
        .filter(|e| confirm.is_none_or(|c| c.starts_with('C') == e.confirmed_at.is_some()))
        .filter(|e| role.is_none_or(|r| e.roles.iter().any(|have| have.starts_with(r))))
        .filter(|e| address.is_none_or(|a| a.eq_ignore_ascii_case(&e.address)))
        .map(render::account_email)
        .collect();
    Ok(Json(Value::Array(emails)))
}

async fn privileges(State(s): St) -> Json<Value> {
    Json(s.data().privileges().map(render::privilege).collect())
}
