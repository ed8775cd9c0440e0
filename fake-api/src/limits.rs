//! Request accounting, injected faults, per-token rate limit and the daily quota,
//! applied as middleware in front of the handlers.

use super::clients::bearer;
use super::error::{gateway_error, ApiError};
use super::Shared;
use axum::{
    extract::{Request, State},
    http::{header, HeaderValue, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

/// A scripted failure for the next `count` requests whose path starts with `path_prefix`.
#[derive(Debug, Deserialize)]
pub(crate) struct Fault {
    pub path_prefix: String,
    pub status: u16,
    pub count: usize,
    #[serde(default)]
    pub retry_after: Option<u64>,
    #[serde(default)]
    pub drop_connection: bool,
}

/// Marks a response whose connection must be closed without sending it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DropConnection;

#[derive(Default)]
pub(crate) struct Limits {
    pub faults: Vec<Fault>,
    daily_used: u32,
    /// 429s answered for the per-token rate, and for the daily quota.
    rate_refused: u64,
    quota_refused: u64,
}

impl Limits {
    /// (429s for the rate, 429s for the quota) so far.
    pub(crate) fn refused(&self) -> (u64, u64) {
        (self.rate_refused, self.quota_refused)
    }

    pub(crate) fn reset_daily_quota(&mut self) {
        self.daily_used = 0;
    }

    fn take_fault(&mut self, path: &str) -> Option<Response> {
        let i = self
            .faults
            .iter()
            .position(|f| path.starts_with(&f.path_prefix))?;
        let fault = &mut self.faults[i];
        fault.count -= 1;
        let response = fault_response(fault);
        if fault.count == 0 {
            self.faults.remove(i);
        }
        Some(response)
    }
}

fn fault_response(fault: &Fault) -> Response {
    if fault.drop_connection {
        let mut response = StatusCode::INTERNAL_SERVER_ERROR.into_response();
        response.extensions_mut().insert(DropConnection);
        return response;
    }
    let status = StatusCode::from_u16(fault.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let reason = status.canonical_reason().unwrap_or("Error");
    let key = reason.to_ascii_lowercase().replace([' ', '-'], "_");
    let mut response = gateway_error(status, &key, reason);
    if let Some(secs) = fault.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// State of the outermost middleware: which route template it guards.
#[derive(Clone)]
pub(crate) struct Front {
    pub shared: Arc<Shared>,
    pub route: &'static str,
}

/// Counts the request, adds the configured latency to API calls and serves injected faults.
pub(crate) async fn front(State(f): State<Front>, req: Request, next: Next) -> Response {
    f.shared
        .count_request(format!("{} {}", req.method(), f.route));
    let latency = f.shared.opts.latency_ms;
    if latency > 0 && f.route.starts_with("/v3/") {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    if let Some(response) = f.shared.limits().take_fault(req.uri().path()) {
        return response;
    }
    next.run(req).await
}

/// Bearer authentication, then the per-token rate and the account's daily quota.
pub(crate) async fn gate(State(s): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    match admit(&s, bearer(req.headers())) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

fn admit(s: &Shared, token: Option<&str>) -> Result<(), ApiError> {
    let now = Instant::now();
    let mut auth = s.auth();
    let access = token
        .and_then(|t| auth.access_token(t, now))
        .ok_or(ApiError::Unauthorized)?;
    let mut limits = s.limits();
    if !access.window.has_room(now, s.opts.rps) {
        limits.rate_refused += 1;
        return Err(ApiError::TooManyRequests(
            "Request rate limit exceeded for this access token.",
        ));
    }
    if limits.daily_used >= s.opts.daily_limit {
        limits.quota_refused += 1;
        return Err(ApiError::TooManyRequests(
            "Daily request quota exceeded for this account.",
        ));
    }
    limits.daily_used += 1;
    access.window.admit(now);
    Ok(())
}
