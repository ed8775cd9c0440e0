//! Events (`/events`, `/events/{event_id}`) and the registrations of an event's track
//! (`/events/{event_id}/tracks/{track_id}/registrations`), paged the way the contract
//! describes these endpoints: a page carries `next_cursor` (and `prev_cursor`) when
//! there is a page after (before) it, and the next page is asked for with `next=`.
//! The sandbox sends no `_links` on them: the contract declares `_links` but no source
//! says the API fills it, so a client must do with the cursor alone.

use super::data::{timestamp, Data, CITIES, FIRST_NAMES, LAST_NAMES, STREETS};
use super::engagement::{
    Event, Registration, EVENT_STATUSES, PAYMENT_STATUSES, REGISTRATION_STATUSES,
};
use super::error::ApiError;
use super::paging::{EnumParam, Params};
use super::state::{Reply, Route, St};
use axum::{
    extract::{Path, RawQuery, State},
    routing::get,
    Json,
};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use serde_json::{json, Map, Value};
use url::form_urlencoded;

pub(crate) fn routes() -> Vec<Route> {
    vec![
        (
            "/v3/events",
            const {
                &[
                    EnumParam::single("event_status", EVENT_STATUSES),
                    EnumParam::single("sort_by", EVENT_SORTS),
                    EnumParam::single("sort_order", SORT_ORDERS),
                ]
            },
            get(events),
        ),
        ("/v3/events/{event_id}", &[], get(event)),
        (
            "/v3/events/{event_id}/tracks/{track_id}/registrations",
            const {
                &[
                    EnumParam::single("registration_status", REGISTRATION_STATUSES),
                    EnumParam::single("payment_status", PAYMENT_STATUSES),
                    EnumParam::single("sort_by", REGISTRATION_SORTS),
                    EnumParam::single("sort_order", SORT_ORDERS),
                ]
            },
            get(registrations),
        ),
    ]
}

pub(crate) fn expected_counts(data: &Data) -> Vec<(&'static str, usize)> {
    let e = &data.engagement;
    vec![
        ("events", e.events.len()),
        ("event_registrations", e.registrations().count()),
    ]
}

/// `limit` of `GET /events`: "Default and maximum is `100`".
const EVENTS_LIMIT: usize = 100;
/// `limit` of the registrations: the contract names no default or maximum, only the
/// example 50; the sandbox takes no more than that.
const REGISTRATIONS_LIMIT: usize = 50;

const EVENT_SORTS: &[&str] = &[
    "name",
    "start_time",
    "end_time",
    "created_time",
    "updated_time",
];
const REGISTRATION_SORTS: &[&str] = &[
    "first_name",
    "last_name",
    "email_address",
    "registration_status",
    "payment_status",
    "tickets",
    "total",
];
const SORT_ORDERS: &[&str] = &["ASC", "DESC"];

/// A cursor paged request: its parameters (from the cursor when it carries `next` or
/// `prev`), where its page starts and how many records it holds.
struct CursorPage {
    path: String,
    params: Params,
    start: usize,
    limit: usize,
}

fn invalid_cursor() -> ApiError {
    ApiError::bad("next or prev is not a cursor of this collection")
}

impl CursorPage {
    /// `limit_names`: the parameters that set the page size (`limit`, and for the
    /// registrations `page_size` too, which must then agree).
    fn parse(
        path: String,
        raw: Option<&str>,
        limit_names: &[&str],
        max: usize,
    ) -> Result<CursorPage, ApiError> {
        let asked = Params::parse(raw.unwrap_or(""));
        let cursor = match (asked.get("next"), asked.get("prev")) {
            (Some(_), Some(_)) => return Err(ApiError::bad("next and prev are exclusive")),
            (Some(c), None) | (None, Some(c)) => Some(c),
            (None, None) => None,
        };
        let (params, start) = match cursor {
            None => (asked, 0),
            Some(cursor) => {
                let text = URL_SAFE_NO_PAD
                    .decode(cursor)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(invalid_cursor)?;
                let mut pairs: Vec<(String, String)> = form_urlencoded::parse(text.as_bytes())
                    .into_owned()
                    .collect();
                fn take(pairs: &mut Vec<(String, String)>, key: &str) -> Option<String> {
                    let at = pairs.iter().position(|(k, _)| k == key)?;
                    Some(pairs.remove(at).1)
                }
                if take(&mut pairs, "@path").as_deref() != Some(path.as_str()) {
                    return Err(invalid_cursor());
                }
                let start = take(&mut pairs, "@at")
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(invalid_cursor)?;
                // The page size may change between pages; the filters may not.
                for name in limit_names {
                    take(&mut pairs, name);
                    if let Some(size) = asked.get(name) {
                        pairs.push(((*name).into(), size.into()));
                    }
                }
                let query: String = form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(pairs)
                    .finish();
                (Params::parse(&query), start)
            }
        };
        let mut limit = None;
        for name in limit_names {
            let size = params.int(name, max, max)?;
            if params.get(name).is_some() && limit.is_some_and(|l| l != size) {
                return Err(ApiError::bad(format!(
                    "{} must have the same value",
                    limit_names.join(" and ")
                )));
            }
            if params.get(name).is_some() || limit.is_none() {
                limit = Some(size);
            }
        }
        Ok(CursorPage {
            path,
            params,
            start,
            limit: limit.unwrap_or(max),
        })
    }

    fn cursor(&self, at: usize) -> String {
        let mut s = form_urlencoded::Serializer::new(String::new());
        s.append_pair("@path", &self.path);
        for (k, v) in self
            .params
            .pairs()
            .filter(|(k, _)| !["next", "prev"].contains(k))
        {
            s.append_pair(k, v);
        }
        s.append_pair("@at", &at.to_string());
        URL_SAFE_NO_PAD.encode(s.finish())
    }

    /// The page of `records` (already filtered and ordered) this request asks for.
    fn page(&self, records: Vec<Value>) -> Result<Json<Value>, ApiError> {
        if self.start > records.len() {
            return Err(invalid_cursor());
        }
        let total = records.len();
        let end = (self.start + self.limit).min(total);
        let mut body = Map::new();
        body.insert(
            "records".into(),
            Value::Array(records[self.start..end].to_vec()),
        );
        body.insert("total_records".into(), total.into());
        if end < total {
            body.insert("next_cursor".into(), self.cursor(end).into());
        }
        if self.start > 0 {
            let prev = self.start.saturating_sub(self.limit);
            body.insert("prev_cursor".into(), self.cursor(prev).into());
        }
        Ok(Json(Value::Object(body)))
    }
}

fn address(e: &Event) -> Value {
    if e.online {
        return json!({"address_type": "NONE"});
    }
    let (city, state, zip) = CITIES[e.city];
    json!({
        "address_type": "PHYSICAL",
        "location_name": "Harborview Florists",
        "line1": format!("{} {}", 10 + e.city * 7, STREETS[e.city % STREETS.len()]),
        "city": city,
        "state": state,
        "postal_code": format!("{zip}{:02}", e.city),
        "country": "United States",
        "country_code": "US",
        "create_time": timestamp(e.created_at),
        "last_update_time": timestamp(e.updated_at),
    })
}

fn location_type(e: &Event) -> &'static str {
    if e.online {
        "ONLINE"
    } else {
        "IN_PERSON"
    }
}

fn event_type(e: &Event) -> &'static str {
    if e.price.is_some() {
        "TICKETED"
    } else {
        "REGISTRATION"
    }
}

fn registration_url(e: &Event) -> String {
    format!("https://events.example.com/e/{}", e.id)
}

/// `EventListingDto`.
fn listing(e: &Event) -> Value {
    json!({
        "event_id": e.id,
        "name": e.name,
        "title": e.name,
        "description": format!("Join us for {}.", e.name),
        "status": e.status,
        "event_type": event_type(e),
        "location_type": location_type(e),
        "time_zone_type": "ACCOUNT",
        "create_time": timestamp(e.created_at),
        "start_time": timestamp(e.start),
        "end_time": timestamp(e.end),
        "registration_url": registration_url(e),
        "address": address(e),
        "event_registration_summary_metrics": {
            "registration_count": e.track.registrations.len(),
            "ticket_sold": e.tickets_sold(),
            "item_sold": 0,
        },
    })
}

/// `EventDto`; `include=true` adds the settings.
fn detail(e: &Event, include: bool) -> Value {
    let track = &e.track;
    let mut tickets = Vec::new();
    if let Some(price) = e.price {
        tickets.push(json!({
            "item_id": format!("{}-general", track.id),
            "name": "General admission",
            "price": price,
            "quantity_total": track.capacity,
            "quantity_sold": e.tickets_sold(),
            "quantity_remaining": track.capacity.saturating_sub(e.tickets_sold()),
            "display_order": 1,
            "hidden_flag": false,
            "paused_flag": false,
        }));
    }
    let mut v = json!({
        "event_id": e.id,
        "campaign_id": e.campaign_id,
        "name": e.name,
        "title": e.name,
        "description": format!("Join us for {}.", e.name),
        "status": e.status,
        "event_type": event_type(e),
        "location_type": location_type(e),
        "time_zone": "America/New_York",
        "time_zone_abbreviation": "ET",
        "currency_type": "USD",
        "event_start": timestamp(e.start),
        "event_end": timestamp(e.end),
        "create_time": timestamp(e.created_at),
        "last_update_time": timestamp(e.updated_at),
        "registration_url": registration_url(e),
        "event_calendar_url": format!("{}/calendar", registration_url(e)),
        "display_contact_flag": true,
        "display_end_time_flag": true,
        "display_on_calendar_flag": e.status == "ACTIVE",
        "display_time_zone_flag": false,
        "notify_owner_on_reg": true,
        "address": address(e),
        "contact": {
            "name": "Event desk",
            "organization_name": "Harborview Florists",
            "email_address": "events@harborviewflorists.example.com",
            "phone_number": "6175550100",
        },
        "default_track": {
            "track_id": track.id,
            "campaign_activity_id": track.activity,
            "conf_email_campaign_activity_id": track.confirmation_activity,
            "registration_type": if e.price.is_some() { "TICKETING" } else { "REGISTRATION" },
            "overall_ticket_capacity": track.capacity,
            "reg_manually_closed_flag": false,
            "restrict_to_single_ticket_flag": false,
            "registration_end_time": timestamp(e.start),
            "items": tickets,
            "create_time": timestamp(e.created_at),
            "last_update_time": timestamp(e.updated_at),
        },
        "event_metadata": {
            "paid_event": e.price.is_some(),
            "items_enabled": e.price.is_some(),
            "promo_codes_enabled": false,
        },
        "event_promotions": [{
            "campaign_activity_id": track.activity,
            "assoc_activity_sub_type": "REGISTRATION_FORM",
            "default": true,
        }],
    });
    if e.online {
        v["online_meeting"] = json!({
            "enabled_flag": true,
            "provider_type": "ZOOM",
            "label": "Join online",
            "url": format!("https://meet.example.com/{}", track.id),
            "instructions": "The link opens ten minutes before the start.",
        });
    }
    match e.status {
        "ACTIVE" | "COMPLETE" => v["active_time"] = timestamp(e.created_at + 3_600_000).into(),
        "CANCELLED" => v["cancelled_time"] = timestamp(e.updated_at).into(),
        "DELETED" => v["deleted_time"] = timestamp(e.updated_at).into(),
        _ => {}
    }
    if include {
        v["event_settings"] = json!({
            "event_requires_payments": e.price.is_some(),
            "payment_configured": e.price.is_some(),
            "online_payment_configured": e.price.is_some(),
            "ticket_configured": e.price.is_some(),
            "item_configured": false,
            "promo_code_configured": false,
        });
    }
    v
}

fn email(r: &Registration) -> String {
    format!(
        "{}.{}{}@example.net",
        FIRST_NAMES[r.first], LAST_NAMES[r.last], r.serial
    )
    .to_lowercase()
}

/// `RegistrantInformationLiteDto`.
fn registrant(e: &Event, r: &Registration) -> Value {
    let mut v = json!({
        "registration_id": r.id,
        "track_key": e.track.id,
        "first_name": FIRST_NAMES[r.first],
        "last_name": LAST_NAMES[r.last],
        "email_address": email(r),
        "registration_status": r.status,
        "registration_time": timestamp(r.at),
        "tickets": r.tickets,
        "checkedIn_tickets": r.checked_in,
        "eligible_checkin_tickets": r.tickets - r.checked_in,
        "checkin_status": match r.checked_in {
            0 => "NOT_CHECKED_IN",
            n if n == r.tickets => "CHECKED_IN",
            _ => "PARTIALLY_CHECKED_IN",
        },
        "new_contact": r.new_contact,
    });
    if let (Some(status), Some(price)) = (r.payment, e.price) {
        v["payment_status"] = status.into();
        v["total"] = (price * f64::from(r.tickets)).into();
    }
    v
}

async fn events(State(s): St, RawQuery(raw): RawQuery) -> Reply {
    let page = CursorPage::parse(
        "/v3/events".into(),
        raw.as_deref(),
        &["limit"],
        EVENTS_LIMIT,
    )?;
    let p = &page.params;
    let status = p.one_of("event_status", EVENT_STATUSES)?;
    let sort = p.one_of("sort_by", EVENT_SORTS)?;
    let descending = p.one_of("sort_order", SORT_ORDERS)? == Some("DESC");
    let text = p.get("search_text").map(str::to_lowercase);
    let data = s.data();
    let mut events: Vec<&Event> = data
        .engagement
        .events
        .iter()
        .filter(|e| status.is_none_or(|s| e.status == s))
        .filter(|e| {
            text.as_deref()
                .is_none_or(|t| e.name.to_lowercase().contains(t))
        })
        .collect();
    match sort {
        Some("name") => events.sort_by(|a, b| a.name.cmp(&b.name)),
        Some("start_time") => events.sort_by_key(|e| e.start),
        Some("end_time") => events.sort_by_key(|e| e.end),
        Some("updated_time") => events.sort_by_key(|e| e.updated_at),
        // Unsorted: in the order they were created.
        _ => events.sort_by_key(|e| e.created_at),
    }
    if descending {
        events.reverse();
    }
    page.page(events.into_iter().map(listing).collect())
}

async fn event(State(s): St, Path(id): Path<String>, RawQuery(raw): RawQuery) -> Reply {
    let include = Params::parse(raw.as_deref().unwrap_or("")).flag("include")?;
    let data = s.data();
    let e = data
        .engagement
        .event(&id)
        .ok_or_else(|| ApiError::NotFound(format!("Event {id} not found")))?;
    Ok(Json(detail(e, include)))
}

async fn registrations(
    State(s): St,
    Path((event_id, track_id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Reply {
    let path = format!("/v3/events/{event_id}/tracks/{track_id}/registrations");
    let page = CursorPage::parse(
        path,
        raw.as_deref(),
        &["limit", "page_size"],
        REGISTRATIONS_LIMIT,
    )?;
    let p = &page.params;
    let status = p.one_of("registration_status", REGISTRATION_STATUSES)?;
    let payment = p.one_of("payment_status", PAYMENT_STATUSES)?;
    let sort = p.one_of("sort_by", REGISTRATION_SORTS)?;
    let descending = p.one_of("sort_order", SORT_ORDERS)? == Some("DESC");
    let text = p.get("search_text").map(str::to_lowercase);
    let data = s.data();
    let e = data
        .engagement
        .event(&event_id)
        .filter(|e| e.track.id == track_id)
        .ok_or_else(|| {
            ApiError::NotFound(format!("Track {track_id} of event {event_id} not found"))
        })?;
    let mut rows: Vec<&Registration> = e
        .track
        .registrations
        .iter()
        .filter(|r| status.is_none_or(|s| r.status == s))
        .filter(|r| payment.is_none_or(|s| r.payment == Some(s)))
        .filter(|r| {
            text.as_deref().is_none_or(|t| {
                let names = format!(
                    "{} {} {}",
                    FIRST_NAMES[r.first],
                    LAST_NAMES[r.last],
                    email(r)
                );
                names.to_lowercase().contains(t)
            })
        })
        .collect();
    match sort {
        Some("first_name") => rows.sort_by_key(|r| FIRST_NAMES[r.first]),
        Some("last_name") => rows.sort_by_key(|r| LAST_NAMES[r.last]),
        Some("email_address") => rows.sort_by_key(|r| email(r)),
        Some("registration_status") => rows.sort_by_key(|r| r.status),
        Some("payment_status") => rows.sort_by_key(|r| r.payment),
        Some("tickets" | "total") => rows.sort_by_key(|r| r.tickets),
        // Unsorted: in the order they registered.
        _ => rows.sort_by_key(|r| r.at),
    }
    if descending {
        rows.reverse();
    }
    page.page(rows.into_iter().map(|r| registrant(e, r)).collect())
}
