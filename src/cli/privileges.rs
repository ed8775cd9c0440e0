//! What `check` says about user privileges: for each privilege a stream of
//! the table declares ([`StreamDef::privilege`]), whether the token's user
//! has it (`GET /account/user/privileges`), and which streams are empty
//! without it. A missing privilege does not fail the check: those streams
//! read nothing, with a warning, and the others read as usual.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::error::Result;
use crate::http::ApiClient;
use crate::protocol::Level;
use crate::streams::{Registry, StreamDef};

/// The privileges the table's streams declare, each with its streams.
fn declared<'a>(streams: impl Iterator<Item = &'a StreamDef>) -> BTreeMap<&'a str, Vec<&'a str>> {
    let mut out: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for def in streams {
        if let Some(privilege) = &def.privilege {
            out.entry(privilege).or_default().push(&def.name);
        }
    }
    out
}

/// The log lines `check` writes for the privileges in `listed` (the body
/// of `/account/user/privileges`).
fn lines(registry: &Registry, listed: &Value) -> Vec<(Level, String)> {
    let held: BTreeSet<&str> = listed
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("privilege_name").and_then(Value::as_str))
        .collect();
    declared(registry.visible().map(|def| def.as_ref()))
        .into_iter()
        .map(|(privilege, streams)| {
            let streams = streams.join(", ");
            if held.contains(privilege) {
                (
                    Level::Info,
                    format!("privilege {privilege}: the user has it ({streams})"),
                )
            } else {
                (
                    Level::Warn,
                    format!(
                        "privilege {privilege}: the user lacks it, so these streams will be \
                         empty: {streams}"
                    ),
                )
            }
        })
        .collect()
}

/// Reads the user's privileges and says which of the declared ones it has.
pub async fn report(api: &ApiClient, registry: &Registry) -> Vec<(Level, String)> {
    let url = api.endpoint("/account/user/privileges", &[]);
    let listed: Result<Value> = api.get_json(&url).await.map(|r| r.body);
    match listed {
        Ok(listed) => lines(registry, &listed),
        Err(error) => vec![(
            Level::Warn,
            format!("cannot tell which user privileges the token has: {error}"),
        )],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_declared_privilege_is_reported_with_its_streams() {
        let registry = Registry::built_in();
        let listed = json!([
            {"privilege_id": 31, "privilege_name": "campaign:read"},
            {"privilege_id": 3, "privilege_name": "ui:campaign:metrics"}
        ]);
        let lines = lines(&registry, &listed);
        let text = |privilege: &str| {
            lines
                .iter()
                .find(|(_, line)| line.starts_with(&format!("privilege {privilege}:")))
                .unwrap_or_else(|| panic!("{privilege} reported: {lines:?}"))
                .clone()
        };
        let (level, line) = text("campaign:read");
        assert_eq!(level, Level::Info);
        assert!(
            line.contains("events") && line.contains("event_registrations"),
            "{line}"
        );
        let (level, line) = text("customer-journey:read");
        assert_eq!(level, Level::Warn);
        assert!(line.contains("automation_workflows"), "{line}");
        assert_eq!(text("ui:campaign:metrics").0, Level::Info);
    }
}
