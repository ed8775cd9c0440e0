//! Every API endpoint module, listed once: the routes the sandbox serves and the record
//! count a full read of each stream returns are gathered from this list.

use super::data::Data;
use super::error::ApiError;
use super::state::Route;
use super::{
    abtests, api, automations, contact_consent, events, exports, landing_pages, reports,
    sms_reports, social,
};
use axum::http::Uri;
use std::collections::BTreeMap;

/// One endpoint module: its routes, and the records a full read of each stream it
/// serves returns.
struct Endpoints {
    routes: fn() -> Vec<Route>,
    expected_counts: fn(&Data) -> Vec<(&'static str, usize)>,
}

const MODULES: &[Endpoints] = &[
    Endpoints {
        routes: api::routes,
        expected_counts: api::expected_counts,
    },
    Endpoints {
        routes: reports::routes,
        expected_counts: reports::expected_counts,
    },
    Endpoints {
        routes: abtests::routes,
        expected_counts: abtests::expected_counts,
    },
    Endpoints {
        routes: landing_pages::routes,
        expected_counts: landing_pages::expected_counts,
    },
    Endpoints {
        routes: contact_consent::routes,
        expected_counts: contact_consent::expected_counts,
    },
    Endpoints {
        routes: exports::routes,
        expected_counts: exports::expected_counts,
    },
    Endpoints {
        routes: events::routes,
        expected_counts: events::expected_counts,
    },
    Endpoints {
        routes: automations::routes,
        expected_counts: automations::expected_counts,
    },
    Endpoints {
        routes: sms_reports::routes,
        expected_counts: sms_reports::expected_counts,
    },
    Endpoints {
        routes: social::routes,
        expected_counts: social::expected_counts,
    },
];

/// Every API route (the token endpoint, OAuth flows and `/__sandbox` routes are not API
/// routes: the router in `lib.rs` adds them).
pub(crate) fn routes() -> Vec<Route> {
    MODULES.iter().flat_map(|m| (m.routes)()).collect()
}

/// Stream name -> records a full read returns now.
pub(crate) fn expected_counts(data: &Data) -> BTreeMap<String, usize> {
    MODULES
        .iter()
        .flat_map(|m| (m.expected_counts)(data))
        .map(|(stream, n)| (stream.to_string(), n))
        .collect()
}

/// 404 for paths no route matches.
pub(crate) async fn unknown_route(uri: Uri) -> ApiError {
    ApiError::NotFound(format!("No resource found at {}", uri.path()))
}
