//! The SPEC message: the config's JSON Schema, generated from the Rust type,
//! plus what Airbyte's UI needs to run the OAuth flow for the user.

use schemars::generate::SchemaSettings;
use serde_json::{json, Value};

use crate::config::Config;

/// Cargo.toml's `homepage`, so the crate and the SPEC message name one place.
pub const DOCUMENTATION_URL: &str = env!("CARGO_PKG_HOMEPAGE");

/// The config's JSON Schema (draft 7, inlined: Airbyte's UI does not follow `$ref`).
pub fn connection_specification() -> Value {
    let generator = SchemaSettings::draft07()
        .with(|settings| settings.inline_subschemas = true)
        .into_generator();
    let schema = generator.into_root_schema_for::<Config>();
    let mut schema = serde_json::to_value(schema).expect("a schema is JSON");
    drop_integer_formats(&mut schema);
    schema
}

/// schemars marks Rust integer widths as formats (`uint32`), which are not
/// JSON Schema formats and which strict validators reject; the ranges
/// already say what is allowed.
fn drop_integer_formats(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            let rust_width = map
                .get("format")
                .and_then(Value::as_str)
                .is_some_and(|f| f.starts_with("uint") || f.starts_with("int"));
            if rust_width {
                map.remove("format");
            }
            map.values_mut().for_each(drop_integer_formats);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_integer_formats),
        _ => {}
    }
}

pub fn spec() -> Value {
    json!({
        "documentationUrl": DOCUMENTATION_URL,
        "connectionSpecification": connection_specification(),
        "supportsIncremental": true,
        "supported_destination_sync_modes": ["overwrite", "append", "append_dedup"],
        "advanced_auth": {
            "auth_flow_type": "oauth2.0",
            "predicate_key": ["credentials", "auth_type"],
            "predicate_value": "oauth2.0",
            "oauth_config_specification": {
                "complete_oauth_output_specification": {
                    "type": "object",
                    "additionalProperties": false,
                    "properties": {
                        "refresh_token": {"type": "string", "path_in_connector_config": ["credentials", "refresh_token"]},
                        "access_token": {"type": "string", "path_in_connector_config": ["credentials", "access_token"]},
                        "token_expiry_date": {"type": "string", "format": "date-time", "path_in_connector_config": ["credentials", "token_expiry_date"]}
                    }
                },
                "complete_oauth_server_input_specification": {
                    "type": "object",
                    "additionalProperties": false,
                    "properties": {
                        "client_id": {"type": "string"},
                        "client_secret": {"type": "string"}
                    }
                },
                "complete_oauth_server_output_specification": {
                    "type": "object",
                    "additionalProperties": false,
                    "properties": {
                        "client_id": {"type": "string", "path_in_connector_config": ["credentials", "client_id"]},
                        "client_secret": {"type": "string", "path_in_connector_config": ["credentials", "client_secret"]}
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_marked_and_fields_documented() {
        let spec = connection_specification();
        let text = spec.to_string();
        assert!(!text.contains("$ref"), "Airbyte's UI needs inlined schemas");
        assert!(!text.contains("uint"), "no Rust integer formats");
        assert_eq!(spec["required"], json!(["credentials"]));
        for field in [
            "start_date",
            "api_base_url",
            "token_url",
            "requests_per_second",
            "landing_page_activity_ids",
        ] {
            let property = &spec["properties"][field];
            assert!(property["title"].is_string(), "{field} has no title");
            assert!(
                property["description"].is_string(),
                "{field} has no description"
            );
        }
        let variants = spec["properties"]["credentials"]["oneOf"]
            .as_array()
            .unwrap();
        assert_eq!(variants.len(), 2);
        let oauth = variants
            .iter()
            .find(|v| v["properties"]["auth_type"]["const"] == "oauth2.0")
            .unwrap();
        for secret in ["client_secret", "refresh_token", "access_token"] {
            assert_eq!(
                oauth["properties"][secret]["airbyte_secret"], true,
                "{secret}"
            );
        }
    }
}
