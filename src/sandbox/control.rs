//! `/__sandbox/*`: unauthenticated routes that let tests change data, script failures,
//! revoke credentials and inspect the sandbox.

use super::limits::Fault;
use super::Shared;
use axum::{
    extract::State,
    http::StatusCode,
    routing::{get, post},
    Json, Router,
};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/__sandbox/mutate", post(mutate))
        .route("/__sandbox/faults", post(add_fault))
        .route("/__sandbox/revoke", post(revoke))
        .route(
            "/__sandbox/expire_access_tokens",
            post(expire_access_tokens),
        )
        .route("/__sandbox/state", get(state))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MutateRequest {
    #[serde(default)]
    contacts: usize,
    #[serde(default)]
    campaigns: usize,
    #[serde(default)]
    delete_contacts: usize,
}

async fn mutate(State(s): State<Arc<Shared>>, Json(req): Json<MutateRequest>) -> Json<Value> {
    let now = chrono::Utc::now().timestamp_millis();
    let m = s
        .data_mut()
        .mutate(now, req.contacts, req.campaigns, req.delete_contacts);
    Json(json!({
        "contacts": m.contacts,
        "campaigns": m.campaigns,
        "deleted_contacts": m.deleted_contacts,
    }))
}

async fn add_fault(
    State(s): State<Arc<Shared>>,
    Json(fault): Json<Fault>,
) -> Result<Json<Value>, (StatusCode, String)> {
    if fault.count == 0 || StatusCode::from_u16(fault.status).is_err() {
        return Err((
            StatusCode::BAD_REQUEST,
            "count must be >= 1 and status a valid HTTP status".into(),
        ));
    }
    let mut limits = s.limits();
    limits.faults.push(fault);
    Ok(Json(json!({"pending_faults": limits.faults.len()})))
}

/// Invalidates every refresh token; a fresh one (as after re-authorising) replaces it.
async fn revoke(State(s): State<Arc<Shared>>) -> Json<Value> {
    let token = s.auth().rotate_refresh_token();
    Json(json!({"refresh_token": token}))
}

async fn expire_access_tokens(State(s): State<Arc<Shared>>) -> StatusCode {
    s.auth().expire_access_tokens();
    StatusCode::NO_CONTENT
}

async fn state(State(s): State<Arc<Shared>>) -> Json<Value> {
    let (token_requests, current_refresh_token) = {
        let auth = s.auth();
        (auth.token_requests, auth.refresh_token.clone())
    };
    Json(json!({
        "expected_counts": s.data().expected_counts(),
        "request_counts": s.request_counts(),
        "token_requests": token_requests,
        "current_refresh_token": current_refresh_token,
    }))
}
