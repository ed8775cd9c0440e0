//! Middleware in front of the handlers: request accounting, latency and injected faults
//! (`front`), then bearer authentication and the API key's per-second rate and daily
//! quota (`gate`).

use super::clients::bearer;
use super::error::ApiError;
use super::paging::{EnumParam, Params};
use super::state::Shared;
use axum::{
    extract::{Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
};
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

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

/// 400 for a query value outside its route's enum (`paging::EnumParam`); runs after
/// `gate`, as the API validates what its gateway let through.
pub(crate) async fn check_enums(
    State(enums): State<&'static [EnumParam]>,
    req: Request,
    next: Next,
) -> Response {
    let params = Params::parse(req.uri().query().unwrap_or(""));
    match params.check_enums(enums) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

/// Bearer authentication, then the rate and the daily quota of the API key (client) the
/// token was issued to: every token of one key shares them.
pub(crate) async fn gate(State(s): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    match admit(&s, bearer(req.headers())) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

fn admit(s: &Shared, token: Option<&str>) -> Result<(), ApiError> {
    let now = Instant::now();
    let at = s.clock.now();
    let client = token
        .and_then(|t| s.auth().access_token(t, at).map(|a| a.client))
        .ok_or(ApiError::Unauthorized)?;
    let mut limits = s.limits();
    let key = limits.key(client, at.date_naive());
    if !key.window.has_room(now, s.opts.rps) {
        limits.rate_refused += 1;
        return Err(ApiError::Throttled);
    }
    if key.daily_used >= s.opts.daily_limit {
        limits.quota_refused += 1;
        return Err(ApiError::QuotaExceeded);
    }
    key.daily_used += 1;
    key.window.admit(now);
    Ok(())
}
