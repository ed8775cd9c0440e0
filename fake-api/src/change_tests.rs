//! Contact changes made through `/__sandbox/mutate`, seen through every read path the way
//! the real API shows them: only personal details move `updated_at`; opt-outs are found
//! with `optout_after`; the rest only by reading everything again.

use super::tests::{opts, quota_exceeded, start, Harness};
use super::{Sandbox, SandboxOptions};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

type Ids = BTreeSet<String>;

fn id_set(v: &Value) -> Ids {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

fn contact_ids(records: &[Value]) -> Ids {
    records
        .iter()
        .map(|c| c["contact_id"].as_str().unwrap().to_owned())
        .collect()
}

/// A query-safe RFC 3339 instant, just before the next change.
fn now_param() -> String {
    chrono::Utc::now()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        .replace('+', "%2B")
}

/// Every contact (deleted ones too) with its list memberships, by id.
async fn everyone(h: &Harness) -> BTreeMap<String, Value> {
    h.read_all(
        "/v3/contacts?status=all&include=list_memberships&limit=500",
        "contacts",
    )
    .await
    .into_iter()
    .map(|c| (c["contact_id"].as_str().unwrap().to_owned(), c))
    .collect()
}

/// `list_id` -> `membership_count` (`all` or `active`).
async fn list_counts(h: &Harness, which: &str) -> BTreeMap<String, u64> {
    h.read_all(
        &format!("/v3/contact_lists?include_membership_count={which}"),
        "lists",
    )
    .await
    .iter()
    .map(|l| {
        let id = l["list_id"].as_str().unwrap().to_owned();
        (id, l["membership_count"].as_u64().unwrap())
    })
    .collect()
}

/// List counts recomputed from contacts' `list_memberships`.
fn counted(
    contacts: &BTreeMap<String, Value>,
    keep: impl Fn(&Value) -> bool,
) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for c in contacts.values().filter(|c| keep(c)) {
        for l in c["list_memberships"].as_array().unwrap() {
            *counts.entry(l.as_str().unwrap().to_owned()).or_default() += 1;
        }
    }
    counts
}

fn without(v: &Value, keys: &[&str]) -> Value {
    let mut v = v.clone();
    for k in keys {
        v.as_object_mut().unwrap().remove(*k);
    }
    v
}

fn email(c: &Value, key: &str) -> Value {
    c["email_address"][key].clone()
}

#[tokio::test]
async fn only_personal_details_move_updated_at() {
    let h = start(opts()).await;
    let old = everyone(&h).await;
    let old_counts = list_counts(&h, "all").await;
    let since = now_param();
    let m = h
        .control(
            "mutate",
            json!({
                "contacts": 4,
                "unsubscribe_contacts": 5,
                "resubscribe_contacts": 3,
                "list_membership_changes": 6,
                "delete_contacts": 2,
            }),
        )
        .await;
    let updated = id_set(&m["contacts"]);
    let unsubscribed = id_set(&m["unsubscribed_contacts"]);
    let resubscribed = id_set(&m["resubscribed_contacts"]);
    let list_changed = id_set(&m["list_changed_contacts"]);
    let deleted = id_set(&m["deleted_contacts"]);
    let kinds = [
        &updated,
        &unsubscribed,
        &resubscribed,
        &list_changed,
        &deleted,
    ];
    assert_eq!(kinds.map(BTreeSet::len), [4, 5, 3, 6, 2], "{m}");
    let changed: Ids = kinds.iter().flat_map(|k| k.iter().cloned()).collect();
    assert_eq!(changed.len(), 20, "each contact changes one way at most");

    // Each was picked among the contacts the change makes sense for.
    let permission = |c: &Value| email(c, "permission_to_send");
    for id in &changed {
        assert!(
            old[id].get("deleted_at").is_none(),
            "{id} was already deleted"
        );
    }
    for id in &unsubscribed {
        assert!(["implicit", "explicit"].contains(&permission(&old[id]).as_str().unwrap()));
    }
    for id in &resubscribed {
        assert_eq!(permission(&old[id]), "unsubscribed");
    }

    // Incremental reads by updated_at see the personal-details updates only.
    for status in ["", "&status=all"] {
        let path = format!("/v3/contacts?updated_after={since}{status}&limit=3");
        assert_eq!(
            contact_ids(&h.read_all(&path, "contacts").await),
            updated,
            "{path}"
        );
    }
    // optout_after finds the new opt-outs (not the deletions, whatever the status).
    for status in ["", "&status=all", "&status=unsubscribed"] {
        let path = format!("/v3/contacts?optout_after={since}{status}");
        let found = h.read_all(&path, "contacts").await;
        assert_eq!(contact_ids(&found), unsubscribed, "{path}");
    }
    // Opted back in: no opt-out date left, so no opt-out filter finds them any more.
    let ever = h
        .read_all("/v3/contacts?optout_after=2000-01-01&limit=500", "contacts")
        .await;
    assert!(contact_ids(&ever).is_disjoint(&resubscribed));
    assert!(contact_ids(&ever).is_superset(&unsubscribed));

    // A full read shows every contact in its new form; nothing else moved.
    let new = everyone(&h).await;
    assert_eq!(new.len(), h.sandbox.expected_counts()["contacts"]);
    assert_eq!(
        new.keys().collect::<Vec<_>>(),
        old.keys().collect::<Vec<_>>()
    );
    let after = |t: &Value| t.as_str().unwrap() > since.replace("%2B", "+").as_str();
    for (id, c) in &new {
        let was = &old[id];
        if updated.contains(id) {
            assert!(after(&c["updated_at"]), "{c}");
            assert_ne!(c["job_title"], was["job_title"]);
            assert_eq!(c["email_address"], was["email_address"]);
            continue;
        }
        // Nothing but personal details moves updated_at.
        assert_eq!(c["updated_at"], was["updated_at"], "{id}");
        let e = &c["email_address"];
        if unsubscribed.contains(id) {
            assert_eq!(e["permission_to_send"], "unsubscribed", "{c}");
            assert_eq!(e["opt_out_source"], "Contact");
            assert!(e["opt_out_reason"].is_string());
            assert!(after(&e["opt_out_date"]));
            assert_eq!(e["updated_at"], e["opt_out_date"]);
            assert!(e.get("opt_in_date").is_none() && e.get("confirm_status").is_none());
            assert_eq!(e["created_at"], was["email_address"]["created_at"]);
            assert_eq!(
                without(c, &["email_address"]),
                without(was, &["email_address"])
            );
        } else if resubscribed.contains(id) {
            assert_eq!(e["permission_to_send"], "explicit", "{c}");
            for gone in ["opt_out_source", "opt_out_date", "opt_out_reason"] {
                assert!(e.get(gone).is_none(), "{c}");
            }
            assert!(after(&e["updated_at"]));
            assert_eq!(e["opt_in_date"], e["updated_at"]);
            assert_eq!(e["opt_in_source"], "Contact");
            assert_eq!(
                without(c, &["email_address"]),
                without(was, &["email_address"])
            );
        } else if list_changed.contains(id) {
            assert_ne!(c["list_memberships"], was["list_memberships"], "{id}");
            assert_eq!(
                without(c, &["list_memberships"]),
                without(was, &["list_memberships"])
            );
        } else if deleted.contains(id) {
            let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
            assert!(c["deleted_at"].as_str().unwrap() >= &since[..10]);
            assert!(c["deleted_at"].as_str().unwrap() <= today.as_str());
            assert_eq!(e["opt_out_source"], "Account");
            assert!(after(&e["opt_out_date"]) && after(&e["updated_at"]));
            assert_eq!(c["list_memberships"], json!([]));
            let keep = ["email_address", "deleted_at", "list_memberships"];
            assert_eq!(without(c, &keep), without(was, &keep));
        } else {
            assert_eq!(c, was, "{id} was not changed");
        }
    }
    // Deleted contacts leave the default read.
    let live = h.read_all("/v3/contacts?limit=500", "contacts").await;
    assert!(contact_ids(&live).is_disjoint(&deleted));
    let gone = h
        .read_all("/v3/contacts?status=deleted&limit=500", "contacts")
        .await;
    assert!(contact_ids(&gone).is_superset(&deleted));

    // List member counts follow the memberships (deletions leave every list).
    let counts = list_counts(&h, "all").await;
    let expected = counted(&new, |_| true);
    for (list, n) in &counts {
        assert_eq!(*n, expected.get(list).copied().unwrap_or(0), "{list}");
    }
    assert_ne!(counts, old_counts);
    let active = list_counts(&h, "active").await;
    let subscribed = |c: &Value| {
        c.get("deleted_at").is_none()
            && ["implicit", "explicit"].contains(&permission(c).as_str().unwrap())
    };
    let expected = counted(&new, subscribed);
    for (list, n) in &active {
        assert_eq!(*n, expected.get(list).copied().unwrap_or(0), "{list}");
    }
    // `lists=` filters on the new memberships.
    let (list, n) = expected.iter().next().unwrap();
    let members = h
        .read_all(&format!("/v3/contacts?lists={list}&limit=500"), "contacts")
        .await;
    let live_members = counted(&new, |c| c.get("deleted_at").is_none())[list];
    assert_eq!(members.len() as u64, live_members);
    assert!(live_members >= *n);
}

#[tokio::test]
async fn a_contact_can_unsubscribe_and_come_back() {
    let h = start(SandboxOptions {
        contacts: 40,
        ..opts()
    })
    .await;
    let since = now_param();
    let m = h
        .control("mutate", json!({"unsubscribe_contacts": 1}))
        .await;
    let id = m["unsubscribed_contacts"][0].as_str().unwrap().to_owned();
    let path = format!("/v3/contacts?optout_after={since}");
    assert_eq!(h.read_all(&path, "contacts").await.len(), 1);

    // Ask for more than qualify: every unsubscribed live contact opts back in.
    let m = h
        .control("mutate", json!({"resubscribe_contacts": 1000}))
        .await;
    assert!(id_set(&m["resubscribed_contacts"]).contains(&id));
    assert!(h.read_all(&path, "contacts").await.is_empty());
    let (_, left) = h
        .get("/v3/contacts?status=unsubscribed&include_count=true")
        .await;
    assert_eq!(left["contacts_count"], 0);
    let (_, none) = h.get(&format!("/v3/contacts?updated_after={since}")).await;
    assert_eq!(none["contacts"], json!([]));
    // Nobody is left to resubscribe: an empty list, not an error.
    let m = h
        .control("mutate", json!({"resubscribe_contacts": 1}))
        .await;
    assert_eq!(m["resubscribed_contacts"], json!([]));
    // Existing fields keep working alongside.
    let m = h
        .control("mutate", json!({"contacts": 2, "campaigns": 1}))
        .await;
    assert_eq!(id_set(&m["contacts"]).len(), 2);
    assert_eq!(id_set(&m["campaigns"]).len(), 1);
}

#[tokio::test]
async fn date_filters_follow_their_own_field() {
    let h = start(opts()).await;
    let all: Vec<Value> = everyone(&h).await.into_values().collect();
    let live: Vec<&Value> = all
        .iter()
        .filter(|c| c.get("deleted_at").is_none())
        .collect();
    // A moment in the middle of the data, and the set each filter must return.
    let mut created: Vec<&str> = live
        .iter()
        .map(|c| c["created_at"].as_str().unwrap())
        .collect();
    created.sort();
    let mid = created[created.len() / 2];
    let field = |c: &Value, key: &str| -> Option<String> {
        let v = match key {
            "optout" => &c["email_address"]["opt_out_date"],
            "created" => &c["created_at"],
            _ => &c["updated_at"],
        };
        v.as_str().map(str::to_owned)
    };
    for key in ["created", "updated", "optout"] {
        for (dir, keep) in [
            (
                "after",
                (|t: &str, m: &str| t > m) as fn(&str, &str) -> bool,
            ),
            ("before", |t, m| t < m),
        ] {
            let want: Ids = live
                .iter()
                .filter(|c| field(c, key).is_some_and(|t| keep(&t, mid)))
                .map(|c| c["contact_id"].as_str().unwrap().to_owned())
                .collect();
            let path = format!("/v3/contacts?{key}_{dir}={mid}&limit=500");
            let got = contact_ids(&h.read_all(&path, "contacts").await);
            assert_eq!(got, want, "{path}");
            assert!(!want.is_empty(), "{path}");
        }
    }
    // Combined: a window, with a status.
    let path = format!("/v3/contacts?created_after=2000-01-01&created_before={mid}&status=active");
    let got = h.read_all(&path, "contacts").await;
    assert!(!got.is_empty());
    assert!(got.iter().all(|c| {
        ["implicit", "explicit"]
            .contains(&c["email_address"]["permission_to_send"].as_str().unwrap())
            && c["created_at"].as_str().unwrap() < mid
    }));
    // Opt-out filters never match subscribed or deleted contacts.
    for status in ["active", "deleted"] {
        let (_, body) = h
            .get(&format!(
                "/v3/contacts?optout_after=2000-01-01&status={status}"
            ))
            .await;
        assert_eq!(body["contacts"], json!([]), "{status}");
    }
}

#[tokio::test]
async fn bad_dates_get_the_api_400() {
    let h = start(opts()).await;
    for key in [
        "updated_after",
        "updated_before",
        "created_after",
        "created_before",
        "optout_after",
        "optout_before",
    ] {
        for bad in ["yesterday", "2024-13-01", "2024-01-01T25:00:00Z", ""] {
            let path = format!("/v3/contacts?{key}={bad}");
            let (status, body) = h.get(&path).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
            assert_eq!(body[0]["error_key"], "query.param.invalid", "{path}");
            assert!(body[0]["error_message"].as_str().unwrap().contains(key));
        }
        for good in [
            "2024-01-01",
            "2024-01-01T10:00:00Z",
            "2024-01-01T10:00:00.123-05:00",
        ] {
            let path = format!("/v3/contacts?{key}={}", good.replace('+', "%2B"));
            assert_eq!(h.get(&path).await.0, StatusCode::OK, "{path}");
        }
    }
}

#[tokio::test]
async fn mutate_refuses_unknown_fields() {
    let h = start(opts()).await;
    let res = h
        .http
        .post(format!("{}/__sandbox/mutate", h.origin()))
        .json(&json!({"unsubscribes": 1}))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_client_error(), "{}", res.status());
}

#[tokio::test]
async fn options_that_cannot_work_are_refused() {
    let refused = |o: SandboxOptions, flag: &'static str| async move {
        let Err(e) = Sandbox::start(o).await else {
            panic!("{flag} was accepted");
        };
        assert!(e.to_string().contains(flag), "{flag}: {e}");
    };
    let d = SandboxOptions::default;
    refused(SandboxOptions { rps: 0, ..d() }, "--rps").await;
    refused(
        SandboxOptions {
            token_rps: 0,
            ..d()
        },
        "--token-rps",
    )
    .await;
    refused(
        SandboxOptions {
            contacts: 10_000_000,
            ..d()
        },
        "--contacts",
    )
    .await;
    refused(
        SandboxOptions {
            latency_ms: 3_600_000,
            ..d()
        },
        "--latency-ms",
    )
    .await;
    refused(
        SandboxOptions {
            token_ttl_secs: 0,
            ..d()
        },
        "--token-ttl-secs",
    )
    .await;
    refused(
        SandboxOptions {
            token_ttl_secs: u64::MAX,
            ..d()
        },
        "--token-ttl-secs",
    )
    .await;
    let forever = SandboxOptions {
        device_code_ttl_secs: u64::MAX,
        ..d()
    };
    refused(forever, "--device-code-ttl-secs").await;
    let slow = SandboxOptions {
        device_interval_secs: 10,
        device_code_ttl_secs: 10,
        ..d()
    };
    refused(slow, "--device-interval-secs").await;
    let uri = SandboxOptions {
        redirect_uris: vec!["not a url".into()],
        ..d()
    };
    refused(uri, "--redirect-uri").await;
}

#[tokio::test]
async fn edge_options_that_work() {
    // No contacts at all: every stream still reads.
    let h = start(SandboxOptions {
        contacts: 0,
        ..opts()
    })
    .await;
    assert_eq!(h.sandbox.expected_counts()["contacts"], 0);
    let (status, body) = h.get("/v3/contacts?status=all&include_count=true").await;
    assert_eq!(
        (status, &body["contacts_count"]),
        (StatusCode::OK, &json!(0))
    );
    assert!(list_counts(&h, "all").await.values().all(|&n| n == 0));
    let m = h
        .control("mutate", json!({"contacts": 1, "unsubscribe_contacts": 1}))
        .await;
    assert_eq!(m["contacts"], json!([]));

    // A daily limit of 0 is a quota already spent: every API call gets 429.
    let h = start(SandboxOptions {
        daily_limit: 0,
        ..opts()
    })
    .await;
    let (status, body) = h.get("/v3/contact_lists").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body, quota_exceeded());
}
