//! The limits: each API key's (OAuth client's) requests per second and per day, shared
//! by every access token issued to it, as Constant Contact counts them; scripted faults;
//! and the 429s answered so far (`middleware` applies them).

use super::error::{gateway_error, ApiError};
use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use chrono::NaiveDate;
use serde::Deserialize;
use std::{
    collections::{HashMap, VecDeque},
    time::{Duration, Instant},
};

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

const WINDOW: Duration = Duration::from_secs(1);

/// Admission times of one API key's requests within the last second.
#[derive(Default)]
pub(crate) struct RateWindow(VecDeque<Instant>);

impl RateWindow {
    pub(crate) fn has_room(&mut self, now: Instant, rps: u32) -> bool {
        while self
            .0
            .front()
            .is_some_and(|&t| now.duration_since(t) >= WINDOW)
        {
            self.0.pop_front();
        }
        self.0.len() < rps as usize
    }

    /// Counts a request admitted at `now`.
    pub(crate) fn admit(&mut self, now: Instant) {
        self.0.push_back(now);
    }
}

/// What one API key has used.
#[derive(Default)]
pub(crate) struct KeyUsage {
    pub window: RateWindow,
    /// The UTC day `daily_used` counts.
    day: NaiveDate,
    /// API requests admitted on `day`.
    pub daily_used: u32,
}

#[derive(Default)]
pub(crate) struct Limits {
    pub faults: Vec<Fault>,
    /// Client id -> its usage.
    keys: HashMap<&'static str, KeyUsage>,
    /// Client id ("" for none or an unknown one) -> its token endpoint requests.
    pub token_windows: HashMap<&'static str, RateWindow>,
    /// 429s answered for the per-second rate, and for the daily quota.
    pub rate_refused: u64,
    pub quota_refused: u64,
    /// 429s the token endpoint answered.
    pub token_refused: u64,
}

impl Limits {
    /// What the API key `client` has used, its daily count starting again on each UTC
    /// day: the quota resets at 00:00 UTC, a fixed boundary, not 24 hours after the first
    /// request.
    pub(crate) fn key(&mut self, client: &'static str, today: NaiveDate) -> &mut KeyUsage {
        let usage = self.keys.entry(client).or_default();
        if usage.day != today {
            usage.day = today;
            usage.daily_used = 0;
        }
        usage
    }

    /// Every API key's daily quota is whole again.
    pub(crate) fn reset_daily_quota(&mut self) {
        for usage in self.keys.values_mut() {
            usage.daily_used = 0;
        }
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
