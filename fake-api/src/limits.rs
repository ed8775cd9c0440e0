//! The account's limits: scripted faults, the daily quota and the 429s answered so far
//! (`middleware` applies them).

use super::error::{gateway_error, ApiError};
use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use serde::Deserialize;

/// A scripted failure for the next `count` requests whose path starts with `path_prefix`.
/// A 429 answers as the per-second throttle does (`throttled`, no `Retry-After`).
#[derive(Debug, Deserialize)]
pub(crate) struct Fault {
    pub path_prefix: String,
    pub status: u16,
    pub count: usize,
    /// Seconds for a `Retry-After` header, on a 5xx only (`/__sandbox/faults` refuses it
    /// on anything else). The API documents none on any answer, and none on its limits
    /// for sure; a proxy or load balancer in front of it may add one to a 5xx, and tests
    /// use `0` to have a failure retried at once.
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
    pub daily_used: u32,
    /// 429s answered for the per-token rate, and for the daily quota.
    pub rate_refused: u64,
    pub quota_refused: u64,
}

impl Limits {
    /// (429s for the rate, 429s for the quota) so far.
    pub(crate) fn refused(&self) -> (u64, u64) {
        (self.rate_refused, self.quota_refused)
    }

    pub(crate) fn reset_daily_quota(&mut self) {
        self.daily_used = 0;
    }

    pub(crate) fn take_fault(&mut self, path: &str) -> Option<Response> {
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
    if status == StatusCode::TOO_MANY_REQUESTS {
        return ApiError::Throttled.into_response();
    }
    let reason = status.canonical_reason().unwrap_or("Error");
    let key = reason.to_ascii_lowercase().replace([' ', '-'], "_");
    let mut response = gateway_error(status, &key, reason);
    if let Some(secs) = fault.retry_after.filter(|_| status.is_server_error()) {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}
