//! Error bodies of the V3 API. The contract defines two shapes: an array of
//! `{error_key, error_message}` objects (`APIErrorSchema`, validation and lookup errors)
//! and one such object (`AuthorizationErrorSchema`, what the gateway answers: auth and
//! the request limits). The limits differ only by `error_key` (`throttled`,
//! `quota_exceeded`) and send no `Retry-After` or rate-limit headers.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use serde_json::json;

#[derive(Debug)]
pub(crate) enum ApiError {
    /// 400 for a malformed or out-of-range query parameter (or cursor).
    BadParam(String),
    /// 404 for an unknown id in a path.
    NotFound(String),
    /// 401 for a missing, unknown or expired access token.
    Unauthorized,
    /// 429 for the API key's requests per second.
    Throttled,
    /// 429 for the API key's requests per day.
    QuotaExceeded,
    /// 429 from a bulk activity endpoint while `QUEUED_ACTIVITIES_LIMIT` activities wait.
    QueueFull,
    /// 403 for a request whose user lacks the privilege it needs.
    Forbidden(String),
}

/// Bulk activities an account may have waiting (initialized or processing); a bulk
/// activity endpoint refuses more with 429 (the contract says so on those operations).
pub(crate) const QUEUED_ACTIVITIES_LIMIT: usize = 1_000;

impl ApiError {
    pub(crate) fn bad(msg: impl Into<String>) -> Self {
        Self::BadParam(msg.into())
    }
}

/// Gateway-style single-object error body.
pub(crate) fn gateway_error(status: StatusCode, key: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error_key": key, "error_message": message})),
    )
        .into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let list = |status, key: &str, message: String| {
            (
                status,
                Json(json!([{"error_key": key, "error_message": message}])),
            )
                .into_response()
        };
        match self {
            Self::BadParam(m) => list(StatusCode::BAD_REQUEST, "query.param.invalid", m),
            Self::NotFound(m) => list(StatusCode::NOT_FOUND, "resource.not_found", m),
            Self::Forbidden(m) => list(StatusCode::FORBIDDEN, "forbidden", m),
            Self::Unauthorized => {
                gateway_error(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized")
            }
            Self::Throttled => gateway_error(
                StatusCode::TOO_MANY_REQUESTS,
                "throttled",
                "Too Many Requests",
            ),
            Self::QuotaExceeded => gateway_error(
                StatusCode::TOO_MANY_REQUESTS,
                "quota_exceeded",
                "Limit Exceeded",
            ),
            // Undocumented beyond the status: one object like the other limits, with a
            // key that is neither of theirs, so that a client cannot take it for either.
            Self::QueueFull => gateway_error(
                StatusCode::TOO_MANY_REQUESTS,
                "activities.queue.full",
                &format!("{QUEUED_ACTIVITIES_LIMIT} bulk activities are already waiting"),
            ),
        }
    }
}
