//! Automated journeys: the list (`/automations/workflows`), which the contract
//! documents as answering **209**, not 200, and is not paged, and one workflow with its
//! definitions (`/automations/workflows/{automation_flow_id}`).

use super::data::{timestamp, Data};
use super::engagement::Automation;
use super::error::ApiError;
use super::paging::{EnumParam, Params};
use super::state::{Reply, Route, St};
use axum::{
    extract::{Path, RawQuery, State},
    http::StatusCode,
    routing::get,
    Json,
};
use serde_json::{json, Value};

pub(crate) fn routes() -> Vec<Route> {
    vec![
        (
            "/v3/automations/workflows",
            const {
                &[
                    EnumParam::single("sort_direction", DIRECTIONS),
                    EnumParam::single("created_from", CREATED_FROM),
                ]
            },
            get(list),
        ),
        (
            "/v3/automations/workflows/{automation_flow_id}",
            &[],
            get(workflow),
        ),
    ]
}

pub(crate) fn expected_counts(data: &Data) -> Vec<(&'static str, usize)> {
    vec![("automation_workflows", data.engagement.automations.len())]
}

/// The success status of `GET /automations/workflows` in the contract.
pub(crate) const LIST_STATUS: u16 = 209;

fn tags(a: &Automation) -> Value {
    json!([{"key": "goal", "value": a.goal, "display_value": a.goal.replace('_', " ")}])
}

fn created_from(a: &Automation) -> &'static str {
    if a.template.is_some() {
        "TEMPLATE"
    } else {
        "SCRATCH"
    }
}

/// `AutomationFlowSummaryDto`.
fn summary(a: &Automation) -> Value {
    let mut v = json!({
        "id": a.id,
        "name": a.name,
        "description": a.description,
        "status": a.status,
        "active_state": if a.status == "DRAFT" { "NONE" } else { "PUBLISHED" },
        "draft_state": if a.status == "DRAFT" { "EDITING" } else { "NONE" },
        "created_by_id": "owner",
        "created_date": timestamp(a.created_at),
        "update_date": timestamp(a.updated_at),
        "structured_tags": tags(a),
    });
    if a.status != "DRAFT" {
        v["promoted_by_id"] = "owner".into();
        v["promoted_date"] = timestamp(a.created_at + 3_600_000).into();
    }
    if let Some(template) = a.template {
        v["template_id"] = template.to_string().into();
    }
    v
}

/// `AutomationWorkflowDefinition`: the trigger, then each email after a wait.
fn definition(a: &Automation, state: &str) -> Value {
    let (trigger, action) = a.trigger;
    let mut tasks = Vec::new();
    for (i, email) in a.emails.iter().enumerate() {
        tasks.push(json!({
            "id": format!("wait_{i}"),
            "name": format!("Wait {} days", a.wait_days),
            "kind": "WAIT",
            "timeout": {"amount": a.wait_days, "time_unit": "DAYS"},
        }));
        tasks.push(json!({
            "id": format!("send_{i}"),
            "name": format!("Email {}", i + 1),
            "kind": "SEND_EMAIL",
            "input": {"campaign_activity_id": email.to_string()},
            "correlation_metadata": {"campaign_activity_id": email.to_string()},
            "retry_options": {"maximum_attempts": 3, "initial_interval": 60, "backoff_coefficient": 2},
        }));
    }
    json!({
        "state": state,
        "trigger": {
            "trigger_version": "1",
            "trigger_def": {
                "type": trigger,
                "action_name": action,
                "parameters": [{"parameter_name": "source", "type": "STRING",
                                "parameter_string_value": action}],
            },
        },
        "workflow": {"workflow_def": {
            "status": state,
            "upgradable": false,
            "tasks": tasks,
            "parameters": {"automation_flow_id": a.id.to_string(),
                           "automation_flow_name": a.name},
            "correlation_metadata": {"automation_flow_id": a.id.to_string()},
        }},
    })
}

/// `AutomationCampaign`.
fn detail(a: &Automation) -> Value {
    let mut v = json!({
        "id": a.id,
        "name": a.name,
        "description": a.description,
        "status": a.status,
        "name_explicitly_set": true,
        "structured_tags": tags(a),
    });
    if a.status == "DRAFT" {
        v["draft_definition"] = definition(a, "DRAFT");
    } else {
        v["active_definition"] = definition(a, "PUBLISHED");
    }
    v
}

const DIRECTIONS: &[&str] = &["ASC", "DESC"];
const CREATED_FROM: &[&str] = &["SCRATCH", "TEMPLATE"];

async fn list(
    State(s): St,
    RawQuery(raw): RawQuery,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let p = Params::parse(raw.as_deref().unwrap_or(""));
    let ascending = p.one_of("sort_direction", DIRECTIONS)? == Some("ASC");
    let from = p.one_of("created_from", CREATED_FROM)?;
    // Every workflow of the sandbox sends email.
    let email = p.get("channel").is_none_or(|c| c == "email");
    let data = s.data();
    let mut flows: Vec<&Automation> = data
        .engagement
        .automations
        .iter()
        .filter(|_| email)
        .filter(|a| from.is_none_or(|f| created_from(a) == f))
        .filter(|a| p.get("goals").is_none_or(|g| a.goal == g))
        .filter(|a| p.get("name").is_none_or(|n| a.name == n))
        .collect();
    // Newest first unless asked otherwise.
    flows.sort_by_key(|a| std::cmp::Reverse(a.created_at));
    if ascending {
        flows.reverse();
    }
    let status = StatusCode::from_u16(LIST_STATUS).expect("a valid status");
    Ok((
        status,
        Json(json!({"flow_summaries": flows.into_iter().map(summary).collect::<Vec<_>>()})),
    ))
}

async fn workflow(State(s): St, Path(id): Path<String>) -> Reply {
    let data = s.data();
    data.engagement
        .automations
        .iter()
        .find(|a| a.id.to_string() == id)
        .map(|a| Json(detail(a)))
        .ok_or_else(|| ApiError::NotFound(format!("Automation workflow {id} not found")))
}
