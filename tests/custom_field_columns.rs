//! `custom_fields_as_columns`: discover (Airbyte and Singer) adds a typed
//! column per custom field to `contacts`, reads fill them with the values of
//! `custom_fields` (kept as it is), the catalog's columns win over renamed
//! labels, a field without a column is warned about once, and with the
//! option off nothing changes.
#![cfg(feature = "sandbox")]

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{connector, read_counted, run, write_json, Run, Sandbox};
use serde_json::{json, Value};

const FIELDS_ROUTE: &str = "GET /v3/contact_custom_fields";
const ID_KEYWORD: &str = "x-custom-field-id";

/// Airbyte discover with `config`; the run and the config to use next.
fn discover(sandbox: &Sandbox, dir: &Path, config: &Value) -> (Run, Value, usize) {
    let before = sandbox.request_counts();
    let path = write_json(dir, "config.json", config);
    let run = run(&["discover", "--config", path.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}\n{:?}", run.stderr, run.errors());
    let spent = sandbox.requests_since(&before);
    let next = run.next_config(config);
    (run, next, spent.get(FIELDS_ROUTE).copied().unwrap_or(0))
}

fn stream<'a>(run: &'a Run, name: &str) -> &'a Value {
    run.of_type("CATALOG")[0]["catalog"]["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap()
}

/// custom_field_id → column name, from a schema.
fn columns(schema: &Value) -> BTreeMap<String, String> {
    schema["properties"]
        .as_object()
        .unwrap()
        .iter()
        .filter_map(|(name, p)| Some((p.get(ID_KEYWORD)?.as_str()?.to_string(), name.clone())))
        .collect()
}

fn configured(streams: &[&Value]) -> Value {
    json!({"streams": streams.iter().map(|s| json!({
        "stream": s, "sync_mode": "full_refresh", "destination_sync_mode": "overwrite"
    })).collect::<Vec<_>>()})
}

fn warnings(run: &Run) -> Vec<String> {
    run.of_type("LOG")
        .into_iter()
        .filter(|m| m["log"]["level"] == "WARN")
        .map(|m| m["log"]["message"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn discover_adds_typed_columns_and_reads_fill_them() {
    let sandbox = Sandbox::start(&["--contacts", "60", "--rps", "50"]);
    let dir = tempfile::tempdir().unwrap();
    let mut config = sandbox.config.clone();
    config["requests_per_second"] = 50.into();
    config["custom_fields_as_columns"] = true.into();
    // No warning for the `include=sms_channel` the sandbox refuses.
    config["contacts_include_sms_channel"] = false.into();

    let (discovered, config, cost) = discover(&sandbox, dir.path(), &config);
    assert_eq!(cost, 1, "one request for up to 100 custom fields");
    let contacts = stream(&discovered, "contacts").clone();
    let schema = &contacts["json_schema"];
    let by_id = columns(schema);
    let fields_stream = stream(&discovered, "custom_fields").clone();

    // Read the fields and the contacts with the discovered catalog.
    let (read, spent) = read_counted(
        &sandbox,
        dir.path(),
        &config,
        &configured(&[&contacts, &fields_stream]),
        None,
    );
    read.assert_ok();
    assert_eq!(
        spent.get(FIELDS_ROUTE),
        Some(&2),
        "the read's own + the stream"
    );
    let config = read.next_config(&config);
    let fields = read.records("custom_fields");
    assert_eq!(fields.len(), sandbox.expected_counts()["custom_fields"]);
    assert_eq!(by_id.len(), fields.len(), "a column per field: {by_id:?}");

    // Names and types follow the fields' labels and types.
    let label_of = |id: &str| {
        fields.iter().find(|f| f["custom_field_id"] == id).unwrap()["label"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let named: BTreeMap<String, String> = by_id
        .iter()
        .map(|(id, name)| (label_of(id), name.clone()))
        .collect();
    assert_eq!(
        named["Vehicle make and model year"],
        "cf_vehicle_make_and_model_year"
    );
    assert_eq!(named["Café préféré"], "cf_cafe_prefere");
    // "Shoe size" and "shoe-SIZE" collide: one keeps the name, the other
    // gets its id's first 8 hex digits.
    let shoes = [&named["Shoe size"], &named["shoe-SIZE"]];
    assert!(shoes.contains(&&"cf_shoe_size".to_string()), "{shoes:?}");
    assert!(
        shoes.iter().any(|n| n.len() == "cf_shoe_size_".len() + 8),
        "{shoes:?}"
    );
    for field in &fields {
        let column = &schema["properties"][&by_id[field["custom_field_id"].as_str().unwrap()]];
        assert_eq!(column["type"], json!(["null", "string"]));
        let date = field["type"] == "date";
        assert_eq!(
            column.get("format") == Some(&json!("date")),
            date,
            "{column}"
        );
    }

    // Records carry each value under its column, equal to the array's, and
    // validate against the discovered schema.
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(schema)
        .unwrap();
    let records = read.records("contacts");
    assert_eq!(records.len(), sandbox.expected_counts()["contacts"]);
    let mut filled = 0;
    for record in &records {
        let errors: Vec<String> = validator
            .iter_errors(record)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{errors:?}\n{record}");
        let entries = record["custom_fields"].as_array().unwrap();
        for entry in entries {
            let column = &by_id[entry["custom_field_id"].as_str().unwrap()];
            assert_eq!(record[column], entry["value"], "{column} of {record}");
            filled += 1;
        }
        let carried = record
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| k.starts_with("cf_"))
            .count();
        assert_eq!(
            carried,
            entries.len(),
            "no column without an entry: {record}"
        );
    }
    assert!(filled > records.len(), "contacts carry custom fields");
    assert!(warnings(&read).is_empty(), "{:?}", warnings(&read));

    // The catalog the destination has wins: a column named before a label
    // changed keeps being filled (with a warning naming the new name), and a
    // field the catalog lacks stays in the array with one warning.
    let mut older = contacts.clone();
    let properties = older["json_schema"]["properties"].as_object_mut().unwrap();
    let renamed_id = by_id
        .iter()
        .find(|(_, n)| *n == "cf_favorite_product")
        .unwrap()
        .0
        .clone();
    let column = properties.remove("cf_favorite_product").unwrap();
    properties.insert("cf_favourite_product".into(), column);
    let dropped_id = by_id
        .iter()
        .find(|(_, n)| *n == "cf_referral_code")
        .unwrap()
        .0
        .clone();
    properties.remove("cf_referral_code");
    let (read, _) = read_counted(&sandbox, dir.path(), &config, &configured(&[&older]), None);
    read.assert_ok();
    let config = read.next_config(&config);
    let records = read.records("contacts");
    let entry = |record: &Value, id: &str| {
        record["custom_fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["custom_field_id"] == id)
            .map(|e| e["value"].clone())
    };
    let mut saw_dropped = false;
    for record in &records {
        assert!(record.get("cf_favorite_product").is_none());
        assert_eq!(
            record.get("cf_favourite_product").cloned(),
            entry(record, &renamed_id)
        );
        assert!(record.get("cf_referral_code").is_none());
        saw_dropped |= entry(record, &dropped_id).is_some();
    }
    assert!(
        saw_dropped,
        "the field without a column stays in custom_fields"
    );
    let warned = warnings(&read);
    assert_eq!(
        warned.iter().filter(|w| w.contains(&dropped_id)).count(),
        1,
        "once per field: {warned:?}"
    );
    assert!(
        warned
            .iter()
            .any(|w| w.contains("cf_favourite_product") && w.contains("cf_favorite_product")),
        "{warned:?}"
    );

    // A read without contacts does not ask for the fields.
    let (read, spent) = read_counted(
        &sandbox,
        dir.path(),
        &config,
        &configured(&[&fields_stream]),
        None,
    );
    read.assert_ok();
    let config = read.next_config(&config);
    assert_eq!(
        spent.get(FIELDS_ROUTE),
        Some(&1),
        "the stream's own request only"
    );

    // Singer: discover has the same columns, a sync fills them.
    let cache = dir.path().join("tokens.json");
    let path = write_json(dir.path(), "singer-config.json", &config);
    let output = connector(&["--config", path.to_str().unwrap(), "--discover"], &cache)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let singer: Value = serde_json::from_slice(&output.stdout).unwrap();
    let entry = singer["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["tap_stream_id"] == "contacts")
        .unwrap()
        .clone();
    assert_eq!(columns(&entry["schema"]), by_id);
    let catalog = write_json(
        dir.path(),
        "singer-catalog.json",
        &json!({"streams": [entry]}),
    );
    let output = connector(
        &[
            "--config",
            path.to_str().unwrap(),
            "--catalog",
            catalog.to_str().unwrap(),
        ],
        &cache,
    )
    .output()
    .unwrap();
    let sync = Run::from_output(
        output.status.code().unwrap(),
        &output.stdout,
        &output.stderr,
    );
    assert_eq!(sync.code, 0, "{}", sync.stderr);
    let schema_message = sync
        .messages
        .iter()
        .find(|m| m["type"] == "SCHEMA")
        .unwrap();
    assert_eq!(columns(&schema_message["schema"]), by_id);
    let records = sync.singer_records("contacts");
    assert_eq!(records.len(), sandbox.expected_counts()["contacts"]);
    for record in records {
        let record = &record["record"];
        for entry in record["custom_fields"].as_array().unwrap() {
            let column = &by_id[entry["custom_field_id"].as_str().unwrap()];
            assert_eq!(record[column], entry["value"]);
        }
    }
}

#[test]
fn with_the_option_off_nothing_changes() {
    let sandbox = Sandbox::start(&["--contacts", "20", "--rps", "50"]);
    let dir = tempfile::tempdir().unwrap();
    let mut config = sandbox.config.clone();
    config["requests_per_second"] = 50.into();
    let (off, config, cost) = discover(&sandbox, dir.path(), &config);
    assert_eq!(cost, 0);
    let contacts = stream(&off, "contacts").clone();
    let mut shipped: Value = serde_json::from_str(
        &std::fs::read_to_string(format!(
            "{}/schemas/contacts.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap(),
    )
    .unwrap();
    // Airbyte's own field for deleted contacts (`tests/deletions.rs`).
    shipped["properties"]["_ab_cdc_deleted_at"] =
        json!({"type": ["null", "string"], "format": "date-time"});
    assert_eq!(contacts["json_schema"], shipped);

    let (read, spent) = read_counted(
        &sandbox,
        dir.path(),
        &config,
        &configured(&[&contacts]),
        None,
    );
    read.assert_ok();
    assert_eq!(spent.get(FIELDS_ROUTE), None);
    let records = read.records("contacts");
    assert!(records
        .iter()
        .any(|r| !r["custom_fields"].as_array().unwrap().is_empty()));
    assert!(records
        .iter()
        .all(|r| r.as_object().unwrap().keys().all(|k| !k.starts_with("cf_"))));
}
