//! Both directions against the live contract (`tests/fixtures/contract.json`, from
//! Constant Contact's Swagger file by `scripts/contract.py`): every request the
//! connector sends and every answer the fake sends, recorded by a transparent proxy
//! between them over a full read of every stream (the opt-in `contacts_export`
//! included), an incremental read from its state after the account changed, a read
//! narrowed by the config's filters and a `check`. `CONTRACT_SANDBOX` adds sandbox
//! arguments (another seed, more contacts) to look further.
//!
//! A finding fails the test unless [`CONTRACT_EXCEPTIONS`] excuses it: where the
//! contract itself is wrong, or the connector deliberately sends what another public
//! source documents; each with its reason. An entry that excuses nothing fails the
//! test too, so a fixed cause leaves the list.
// These tests run the connector binary's `sandbox` subcommand.
#![cfg(feature = "sandbox")]

mod common;

use std::collections::BTreeMap;
use std::time::Instant;

use common::contract::{Allowance, Answer, Contract, Report, Side, Traffic};
use common::{all_streams, catalog, read, run, write_json, Sandbox, OPT_IN_STREAMS};
use constant_contact_fake::{Exchange, Proxy};
use serde_json::{json, Value};
use source_constant_contact::streams::Registry;

/// Where the contract is wrong, or the connector deliberately sends something
/// another public source documents. Permanent, each with its reason.
const CONTRACT_EXCEPTIONS: &[Allowance] = &[
    Allowance {
        operation: "GET /v3/contacts",
        side: Side::Request,
        location: "query include",
        rule: "enum",
        value: Some("sms_channel"),
        reason: "the SDK guide (ContactsApi.md) documents include=sms_channel, which returns \
                 each contact's SMS channel; the contract's enum lacks it",
    },
    Allowance {
        operation: "*",
        side: Side::Request,
        location: "query cursor",
        rule: "undeclared",
        value: None,
        reason: "the API's own `_links.next.href` carries the page cursor (the contract's \
                 prose says so on GET /contact_tags), but no operation declares `cursor`; \
                 the connector only follows those links",
    },
    Allowance {
        operation: "GET /v3/reports/landing_pages/campaign_details/*",
        side: Side::Response,
        location: "200 /_links",
        rule: "required",
        value: None,
        reason: "the landing-page report pages require `_links` and in it `next`, which a \
                 last page cannot have; the other report pages make `next` optional",
    },
];

/// Violations found when this check was added, to be fixed next. Temporary: each
/// fix removes its entry (an entry that excuses nothing fails the test).
const TOKEN_PATH: &str = "/oauth2/default/v1/token";

/// Whether the contract covers `target` (the token endpoint and the sandbox's
/// control routes are not the V3 API).
fn in_contract(target: &str) -> bool {
    let path = target.split('?').next().unwrap_or("");
    path != TOKEN_PATH && !path.starts_with("/__sandbox/")
}

fn traffic(exchange: &Exchange) -> Traffic<'_> {
    Traffic {
        method: &exchange.method,
        target: &exchange.target,
        request_body: &exchange.request_body,
        response: exchange.response.as_ref().map(|r| Answer {
            status: r.status,
            content_type: r.header("content-type"),
            body: &r.body,
        }),
    }
}

/// The ids of up to `n` records of `stream` in `run`, as text.
fn some_ids(run: &common::Run, stream: &str, key: &str, n: usize) -> Vec<String> {
    run.records(stream)
        .iter()
        .filter_map(|r| r[key].as_str().map(str::to_string))
        .take(n)
        .collect()
}

#[test]
fn the_connector_and_the_fake_keep_to_the_contract() {
    let started = Instant::now();
    let contract = Contract::load();
    let mut args = vec!["--rps".to_string(), "100".into()];
    // Another generated account, to look further: `CONTRACT_SANDBOX="--seed 7
    // --contacts 3000" cargo test --test contract`.
    if let Ok(more) = std::env::var("CONTRACT_SANDBOX") {
        args.extend(more.split_whitespace().map(str::to_string));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let sandbox = Sandbox::start(&args);
    let proxy = Proxy::recording(&sandbox.base_url).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = sandbox.config.clone();
    config["api_base_url"] = json!(proxy.base_url());
    config["token_url"] = json!(proxy.token_url());
    config["requests_per_second"] = json!(50);

    // The contact reports read the config's contacts.
    let (contact_ids, next) = sandbox.contact_ids(dir.path(), &config, 2);
    config = next;
    config["contact_ids"] = json!(contact_ids);

    // A full read of every stream, then an incremental one from its state.
    let mut every = all_streams();
    every.extend(OPT_IN_STREAMS.iter().map(|s| s.to_string()));
    let names: Vec<&str> = every.iter().map(String::as_str).collect();
    let streams = catalog(&names, true);
    let full = read(dir.path(), &config, &streams, None);
    full.assert_ok();
    config = full.next_config(&config);
    // Changes for the incremental read to pick up: new, unsubscribed and deleted
    // contacts, edited and newly sent campaigns, new opens and clicks.
    sandbox.control(
        "mutate",
        json!({"contacts": 5, "unsubscribe_contacts": 3, "delete_contacts": 2,
               "list_membership_changes": 3, "campaigns": 2, "tracking": 3,
               "send_campaign": true}),
    );
    let again = read(dir.path(), &config, &streams, Some(&full.state_messages()));
    again.assert_ok();
    config = again.next_config(&config);

    // The config's filters: lists, tags, statuses and campaigns.
    let mut narrowed = config.clone();
    narrowed["list_ids"] = json!(some_ids(&full, "contact_lists", "list_id", 2));
    narrowed["tag_ids"] = json!(some_ids(&full, "contact_tags", "tag_id", 2));
    narrowed["contact_status"] = json!(["active", "unsubscribed"]);
    narrowed["campaign_ids"] = json!(some_ids(&full, "email_campaigns", "campaign_id", 2));
    let filtered = read(
        dir.path(),
        &narrowed,
        &catalog(
            &[
                "contacts",
                "email_campaign_activities",
                "email_campaign_stats",
            ],
            false,
        ),
        None,
    );
    filtered.assert_ok();
    config = filtered.next_config(&config);

    let path = write_json(dir.path(), "check.json", &config);
    let check = run(&["check", "--config", path.to_str().unwrap()]);
    assert_eq!(
        check.of_type("CONNECTION_STATUS")[0]["connectionStatus"]["status"],
        "SUCCEEDED"
    );

    let exchanges = proxy.exchanges();
    let checked: Vec<&Exchange> = exchanges
        .iter()
        .filter(|e| in_contract(&e.target))
        .collect();
    let mut report = Report::default();
    // Operation -> status -> answers.
    let mut exercised: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for exchange in &checked {
        let (path, _) = exchange
            .target
            .split_once('?')
            .unwrap_or((&exchange.target, ""));
        if let Some(op) = contract.operation_of(&exchange.method, path) {
            let status = exchange
                .response
                .as_ref()
                .map_or("no answer".into(), |r| r.status.to_string());
            *exercised
                .entry(op.to_string())
                .or_default()
                .entry(status)
                .or_default() += 1;
        }
        report.add(contract.check(&traffic(exchange)));
    }

    // Not vacuous: every stream's endpoint was asked for.
    let registry = Registry::built_in();
    let mut unexercised = Vec::new();
    for def in registry.visible() {
        let path = format!("/v3{}", def.path.replace("{parent}", "x"));
        let method = if def.export.is_some() { "POST" } else { "GET" };
        match contract.operation_of(method, &path) {
            Some(op) if exercised.contains_key(op) => {}
            Some(op) => unexercised.push(format!("{}: {op}", def.name)),
            None => unexercised.push(format!(
                "{}: {method} {path} (not in the contract)",
                def.name
            )),
        }
    }
    assert!(
        unexercised.is_empty(),
        "streams whose endpoint was never asked for: {unexercised:#?}"
    );

    let all = report.lines();
    let statuses: Vec<String> = exercised
        .iter()
        .map(|(op, statuses)| format!("  {op}: {statuses:?}"))
        .collect();
    eprintln!(
        "{} exchanges checked ({} bodies against a schema), {} operations (answers by \
         status):\n{}\n{} distinct findings in {:.0?}:\n{}",
        checked.len(),
        contract.bodies_validated(),
        exercised.len(),
        statuses.join("\n"),
        all.len(),
        started.elapsed(),
        all.join("\n")
    );
    // Not vacuous either: most answers are JSON bodies with a declared schema.
    assert!(
        contract.bodies_validated() * 2 > checked.len(),
        "only {} of {} exchanges had a body checked against a schema",
        contract.bodies_validated(),
        checked.len()
    );
    let unexcused = report.unexcused(CONTRACT_EXCEPTIONS);
    let stale: Vec<String> = report
        .unused(CONTRACT_EXCEPTIONS)
        .into_iter()
        .map(Allowance::describe)
        .collect();
    assert!(
        unexcused.is_empty() && stale.is_empty(),
        "{} contract violations (operation | side location | rule | value | detail):\n{}\n\n\
         allowances that excuse nothing (fixed? remove them): {stale:#?}",
        unexcused.len(),
        unexcused.join("\n")
    );
}

/// The checker itself catches a bad request and a bad answer.
#[test]
fn the_checker_catches_bad_parameters_and_bad_bodies() {
    let contract = Contract::load();
    let get = |target, status, body: Value| {
        let body = serde_json::to_vec(&body).unwrap();
        let traffic = Traffic {
            method: "GET",
            target,
            request_body: b"",
            response: Some(Answer {
                status,
                content_type: Some("application/json"),
                body: &body,
            }),
        };
        contract
            .check(&traffic)
            .into_iter()
            .map(|v| (v.location, v.rule, v.value))
            .collect::<Vec<_>>()
    };
    let has = |found: &[(String, String, String)], location: &str, rule: &str, value: &str| {
        assert!(
            found
                .iter()
                .any(|(l, r, v)| l == location && r == rule && v == value),
            "expected {location} | {rule} | {value} in {found:#?}"
        );
    };

    // Clean traffic has no findings.
    let clean = get(
        "/v3/contact_tags?limit=500&include_count=true",
        200,
        json!({"tags": [{"tag_id": "3fa85f64-5717-4562-b3fc-2c963f66afa6", "name": "vip",
                         "contacts_count": 3}]}),
    );
    assert!(clean.is_empty(), "{clean:#?}");

    // Bad parameters: beyond the maximum, outside the enum (one item of a list),
    // not a date-time, undeclared, a required one missing.
    let found = get(
        "/v3/contacts?limit=501&include=custom_fields,bogus&updated_after=yesterday&colour=red",
        200,
        json!({"contacts": []}),
    );
    has(&found, "query limit", "maximum", "501");
    has(&found, "query include", "enum", "bogus");
    has(&found, "query updated_after", "format", "yesterday");
    has(&found, "query colour", "undeclared", "red");
    assert_eq!(found.len(), 4, "{found:#?}");
    let found = get(
        "/v3/reports/contact_reports/1/open_and_click_rates?end=2025-01-01",
        200,
        json!({}),
    );
    has(&found, "query start", "required", "(absent)");
    let found = get(
        "/v3/reports/email_reports/not-a-uuid/tracking/bounces?bounce_code=B&bounce_code=Q",
        200,
        json!({"tracking_activities": []}),
    );
    has(&found, "path campaign_activity_id", "format", "not-a-uuid");
    has(&found, "query bounce_code", "enum", "Q");

    // A bad body: a property of the wrong type, a bad uuid, an undeclared
    // property, and a status the operation does not declare.
    let found = get(
        "/v3/contact_tags",
        200,
        json!({"tags": [{"tag_id": "nope", "name": 5, "colour": "red"}]}),
    );
    has(&found, "200 /tags/*/name", "type", "5");
    has(&found, "200 /tags/*/tag_id", "format", "\"nope\"");
    has(
        &found,
        "200 /tags/*/colour",
        "undeclared property",
        "\"red\"",
    );
    let found = get("/v3/contact_tags", 418, json!({}));
    has(&found, "status", "status", "418");

    // A bad request body: an item of the wrong type and an undeclared property.
    let found: std::collections::BTreeSet<(String, String)> = contract
        .check(&Traffic {
            method: "POST",
            target: "/v3/activities/contact_exports",
            request_body: br#"{"fields": ["email", 5], "colour": "red"}"#,
            response: None,
        })
        .into_iter()
        .map(|v| (v.location, v.rule))
        .collect();
    let expected = [
        ("body /colour", "undeclared property"),
        ("body /fields/*", "type"),
    ]
    .map(|(l, r)| (l.to_string(), r.to_string()));
    assert_eq!(found, expected.into());

    // Unknown operations.
    let found = get("/v3/no_such_thing", 200, json!({}));
    has(&found, "path", "operation", "GET /v3/no_such_thing");
    let found = contract.check(&Traffic {
        method: "DELETE",
        target: "/v3/contacts/1",
        request_body: b"",
        response: None,
    });
    assert!(found[0].detail.contains("CALLED"), "{found:#?}");
}
