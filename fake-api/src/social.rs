//! Connected social accounts: the profiles (`/social/profiles`, an array, `include=
//! accessible` adds whether each can be posted to), the connections behind them
//! (`/social/connections`) and the saved hashtag groups (`/social/hashtags/groups`,
//! `limit` 1–5, default 5, `page` from 0, the next page at `_links.next.href`).

use super::data::Data;
use super::engagement::SocialConnection;
use super::error::ApiError;
use super::paging::{EnumParam, Params};
use super::state::{Reply, Route, St};
use axum::{
    extract::{RawQuery, State},
    routing::get,
    Json,
};
use serde_json::{json, Value};

pub(crate) fn routes() -> Vec<Route> {
    vec![
        (
            "/v3/social/profiles",
            const { &[EnumParam::list("include", PROFILE_INCLUDES)] },
            get(profiles),
        ),
        ("/v3/social/connections", &[], get(connections)),
        ("/v3/social/hashtags/groups", &[], get(hashtag_groups)),
    ]
}

pub(crate) fn expected_counts(data: &Data) -> Vec<(&'static str, usize)> {
    let e = &data.engagement;
    vec![
        (
            "social_profiles",
            e.connections.iter().map(|c| c.profiles.len()).sum(),
        ),
        ("social_connections", e.connections.len()),
        ("social_hashtag_groups", e.hashtag_groups.len()),
    ]
}

/// `limit` of the hashtag groups: "Default and maximum is `5`".
const GROUPS_LIMIT: usize = 5;
const PROFILE_INCLUDES: &[&str] = &["accessible"];

fn account_info(c: &SocialConnection) -> Value {
    json!({
        "network": c.network,
        "network_account_id": c.account_id,
        "display_name": c.display_name,
        "username": c.username,
        "image_url": format!("https://images.example.com/{}/{}.png", c.network, c.username),
        "account_url": format!("https://{}.example.com/{}", c.network, c.username),
    })
}

async fn profiles(State(s): St, RawQuery(raw): RawQuery) -> Reply {
    let p = Params::parse(raw.as_deref().unwrap_or(""));
    // `accessible` is the one value the route's enum check lets through.
    let accessible = p.all("include").next().is_some();
    let data = s.data();
    let mut out = Vec::new();
    for c in &data.engagement.connections {
        for &(id, name, handle, reachable) in &c.profiles {
            let mut v = json!({
                "profile_id": id,
                "network": c.network,
                "connected": c.token_valid,
                "name": name,
                "handle": handle,
                "network_profile_id": format!("{}-{}", c.account_id, handle),
                "network_user_id": c.account_id,
                "image_url": format!("https://images.example.com/{}/{handle}.png", c.network),
                "url": format!("https://{}.example.com/{handle}", c.network),
                "account_info": account_info(c),
                // The contract gives each setting no properties.
                "settings": {},
            });
            if accessible {
                v["accessible"] = (reachable && c.token_valid).into();
            }
            out.push(v);
        }
    }
    Ok(Json(Value::Array(out)))
}

async fn connections(State(s): St) -> Reply {
    let data = s.data();
    let list: Vec<Value> = data
        .engagement
        .connections
        .iter()
        .map(|c| {
            let mut status = json!({
                "status": if c.token_valid { 200 } else { 401 },
                "has_token": true,
                "token_is_valid": c.token_valid,
                "token_has_scopes": c.token_valid,
                "is_active_user": true,
                "rate_limited": false,
            });
            if !c.token_valid {
                status["error"] = "The network refused the stored token; reconnect".into();
            }
            json!({"account_info": account_info(c), "connection_status": status})
        })
        .collect();
    Ok(Json(json!({"connections": list})))
}

fn integer(
    p: &Params,
    key: &str,
    default: usize,
    min: usize,
    max: usize,
) -> Result<usize, ApiError> {
    match p.get(key) {
        None => Ok(default),
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| {
                ApiError::bad(format!(
                    "{key} must be an integer from {min} to {max}, got '{v}'"
                ))
            }),
    }
}

async fn hashtag_groups(State(s): St, RawQuery(raw): RawQuery) -> Reply {
    let p = Params::parse(raw.as_deref().unwrap_or(""));
    let limit = integer(&p, "limit", GROUPS_LIMIT, 1, GROUPS_LIMIT)?;
    let page = integer(&p, "page", 0, 0, usize::MAX)?;
    let data = s.data();
    let groups = &data.engagement.hashtag_groups;
    let pages = groups.len().div_ceil(limit);
    let records: Vec<Value> = groups
        .iter()
        .skip(page.saturating_mul(limit))
        .take(limit)
        .map(|g| {
            json!({
                "hashtag_group_id": g.id,
                "hashtag_group_name": g.name,
                "hashtag_names": g.hashtags,
            })
        })
        .collect();
    let links = if page + 1 < pages {
        json!({"next": {"href": format!(
            "/v3/social/hashtags/groups?limit={limit}&page={}", page + 1
        )}})
    } else {
        json!({})
    };
    Ok(Json(json!({
        "hashtag_groups": records,
        "page": {"page": page, "size": limit, "total_elements": groups.len(), "total_pages": pages},
        "_links": links,
    })))
}
