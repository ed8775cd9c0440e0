//! User privileges: which one each API route needs (the contract's
//! `x-authorization-privileges` of its operations), and the guard that answers 403 when
//! the sandbox's user lacks it (`--without-privilege`, repeatable). The guard runs after
//! authentication and the rate limits, as the API's gateway would.

use super::error::ApiError;
use super::state::Shared;
use axum::{
    extract::{Request, State},
    http::Method,
    middleware::Next,
    response::{IntoResponse, Response},
};
use std::sync::Arc;

/// (method, route template, privilege) for every route the sandbox serves that needs
/// one; `/account/user/privileges` needs none.
const NEEDED: &[(Method, &str, &str)] = &[
    (Method::GET, "/v3/account/summary", "account:read"),
    (Method::GET, "/v3/account/emails", "account:read"),
    (Method::GET, "/v3/activities", "contacts:write"),
    (
        Method::GET,
        "/v3/activities/{activity_id}",
        "contacts:write",
    ),
    (
        Method::POST,
        "/v3/activities/contact_exports",
        "contacts:write",
    ),
    (
        Method::GET,
        "/v3/contact_exports/{file_export_id}",
        "contacts:write",
    ),
    (Method::GET, "/v3/contacts", "contacts:read"),
    (Method::GET, "/v3/contacts/counts", "contacts:read"),
    (
        Method::GET,
        "/v3/contacts/sms_engagement_history/{contact_id}",
        "contacts:read",
    ),
    (Method::GET, "/v3/contact_custom_fields", "contacts:read"),
    (Method::GET, "/v3/contact_tags", "contacts:read"),
    (Method::GET, "/v3/contact_lists", "contacts:lists:read"),
    (Method::GET, "/v3/segments", "contacts:lists:read"),
    (
        Method::GET,
        "/v3/segments/{segment_id}",
        "contacts:lists:read",
    ),
    (Method::GET, "/v3/emails", "campaign:read"),
    (Method::GET, "/v3/emails/{campaign_id}", "campaign:read"),
    (Method::GET, "/v3/emails/activities/*", "campaign:read"),
    (Method::GET, "/v3/events", "campaign:read"),
    (Method::GET, "/v3/events/*", "campaign:read"),
    (Method::GET, "/v3/social/*", "campaign:read"),
    (
        Method::GET,
        "/v3/automations/workflows",
        "customer-journey:read",
    ),
    (
        Method::GET,
        "/v3/automations/workflows/{automation_flow_id}",
        "customer-journey:read",
    ),
    (Method::GET, "/v3/reports/*", "ui:campaign:metrics"),
];

/// The privilege `method` on `route` (a route template) needs, if any.
pub(crate) fn needed(method: &Method, route: &str) -> Option<&'static str> {
    NEEDED.iter().find_map(|(m, template, privilege)| {
        let matches = match template.strip_suffix('*') {
            Some(prefix) => route.starts_with(prefix),
            None => route == *template,
        };
        (m == method && matches).then_some(*privilege)
    })
}

/// State of the guard: the route template it stands before.
#[derive(Clone)]
pub(crate) struct Guard {
    pub shared: Arc<Shared>,
    pub route: &'static str,
}

/// 403 when the user lacks the privilege the route needs.
pub(crate) async fn guard(State(g): State<Guard>, req: Request, next: Next) -> Response {
    if let Some(privilege) = needed(req.method(), g.route) {
        if g.shared.data().denied_privileges.contains(privilege) {
            return ApiError::Forbidden(format!(
                "The user lacks the {privilege} privilege this request needs."
            ))
            .into_response();
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_map_to_the_contract_privileges() {
        let get = Method::GET;
        assert_eq!(needed(&get, "/v3/events"), Some("campaign:read"));
        assert_eq!(
            needed(
                &get,
                "/v3/events/{event_id}/tracks/{track_id}/registrations"
            ),
            Some("campaign:read")
        );
        assert_eq!(
            needed(&get, "/v3/automations/workflows"),
            Some("customer-journey:read")
        );
        assert_eq!(
            needed(&get, "/v3/reports/summary_reports/sms_campaign_summaries"),
            Some("ui:campaign:metrics")
        );
        assert_eq!(needed(&get, "/v3/account/user/privileges"), None);
        assert_eq!(
            needed(&Method::POST, "/v3/activities/contact_exports"),
            Some("contacts:write")
        );
        for (_, _, privilege) in NEEDED {
            assert!(
                crate::data::PRIVILEGES.iter().any(|(_, p)| p == privilege),
                "{privilege} is listed by the sandbox"
            );
        }
        // Every API route the sandbox serves is in the table, or needs nothing.
        for (route, _, _) in crate::endpoints::routes() {
            let free =
                route == "/v3/account/user/privileges" || route == "/v3/activities/contact_exports";
            assert!(
                free || needed(&get, route).is_some(),
                "{route} needs a privilege"
            );
        }
    }
}
