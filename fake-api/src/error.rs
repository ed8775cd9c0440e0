//! Error bodies of the V3 API. Validation and lookup errors come back as an array of
//! `{error_key, error_message}` objects; gateway errors (auth, throttling) as one object.

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
    /// 403 for a request whose user lacks the privilege it needs.
    Forbidden(String),
    /// 429 for the per-token rate or the daily quota.
    TooManyRequests(&'static str),
}

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
            Self::TooManyRequests(m) => {
                gateway_error(StatusCode::TOO_MANY_REQUESTS, "too_many_requests", m)
            }
        }
    }
}
