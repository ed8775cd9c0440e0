//! The SMS campaign summary report (`/reports/summary_reports/sms_campaign_summaries`):
//! SMS campaigns sent from `start_at` (required) to `end_at`, most recently sent first,
//! `limit` 1–50 (default 50), paged by `_links.next.href`, with the percentages over
//! every campaign of the range.

use super::data::{timestamp, Data};
use super::engagement::SmsCampaign;
use super::paging::{ListQuery, ListSpec};
use super::state::{Reply, Route, St};
use axum::{
    extract::{RawQuery, State},
    routing::get,
    Json,
};
use serde_json::{json, Value};
use url::form_urlencoded;

pub(crate) fn routes() -> Vec<Route> {
    vec![(
        "/v3/reports/summary_reports/sms_campaign_summaries",
        &[],
        get(summaries),
    )]
}

pub(crate) fn expected_counts(data: &Data) -> Vec<(&'static str, usize)> {
    vec![(
        "sms_campaign_summaries",
        data.engagement.sms_campaigns.len(),
    )]
}

static SUMMARIES: ListSpec = ListSpec {
    path: "/v3/reports/summary_reports/sms_campaign_summaries",
    records_key: "bulk_sms_campaign_summaries",
    default_limit: 50,
    max_limit: 50,
    links_always: false,
};

/// `BulkCampaignSummary`.
fn summary(c: &SmsCampaign) -> Value {
    json!({
        "campaign_id": c.id,
        "campaign_name": c.name,
        "campaign_type": "SMS",
        "last_sent_date": timestamp(c.last_sent),
        "unique_counts": {
            "sends": c.sends,
            "delivers": c.delivers,
            "clicks": c.clicks,
            "optouts": c.optouts,
        },
    })
}

/// `BulkSmsCampaignSummariesPercents` over `campaigns`.
fn percents(campaigns: &[&SmsCampaign]) -> Value {
    let total =
        |f: fn(&SmsCampaign) -> u32| -> f64 { campaigns.iter().map(|c| f64::from(f(c))).sum() };
    let (sends, delivers) = (total(|c| c.sends), total(|c| c.delivers));
    let share = |part: f64, of: f64| {
        if of == 0.0 {
            0.0
        } else {
            (part * 1000.0 / of).round() / 10.0
        }
    };
    json!({
        "deliver": share(delivers, sends),
        "bounce": share(sends - delivers, sends),
        "click": share(total(|c| c.clicks), delivers),
        "unsubscribe": share(total(|c| c.optouts), delivers),
    })
}

async fn summaries(State(s): St, RawQuery(raw): RawQuery) -> Reply {
    let q = ListQuery::parse(&SUMMARIES, raw.as_deref())?;
    let start = q.params.iso8601("start_at")?;
    let end = q.params.instant("end_at", true)?;
    let data = s.data();
    let sent = &data.engagement.sms_campaigns;
    let keep = |c: &SmsCampaign| c.last_sent >= start && end.is_none_or(|e| c.last_sent <= e);
    let Json(mut body) = q.page(sent.iter(), keep, summary, None)?;
    // The next link repeats the required `start_at` (and `end_at`): a request
    // without it is one the contract does not allow.
    if let Some(Value::String(href)) = body.pointer_mut("/_links/next/href") {
        let mut extra = form_urlencoded::Serializer::new(String::new());
        for key in ["start_at", "end_at"] {
            if let Some(value) = q.params.get(key) {
                extra.append_pair(key, value);
            }
        }
        href.push('&');
        href.push_str(&extra.finish());
    }
    let in_range: Vec<&SmsCampaign> = sent.iter().filter(|c| keep(c)).collect();
    body["aggregate_percents"] = percents(&in_range);
    Ok(Json(body))
}
