//! metadata.yaml (Airbyte connector metadata), Cargo.toml and the Dockerfile
//! must agree: one version, one image name, one entrypoint.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_norway::Value;

const BINARY: &str = "/usr/local/bin/source-constant-contact";

fn read(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn metadata() -> Value {
    serde_norway::from_str(&read("metadata.yaml")).expect("metadata.yaml is valid YAML")
}

fn data() -> Value {
    metadata()
        .get("data")
        .cloned()
        .expect("metadata.yaml has a `data` mapping")
}

fn string(data: &Value, key: &str) -> String {
    match data.get(key) {
        Some(Value::String(s)) => s.clone(),
        other => panic!("metadata.yaml: data.{key} must be a string, found {other:?}"),
    }
}

/// One Dockerfile instruction: keyword (upper case) and its arguments, with
/// continuation lines joined and comments dropped.
struct Instruction {
    keyword: String,
    args: String,
}

fn instructions(dockerfile: &str) -> Vec<Instruction> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in dockerfile.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
            continue;
        }
        current.push_str(trimmed);
        let (keyword, args) = current
            .split_once(char::is_whitespace)
            .unwrap_or((&current, ""));
        out.push(Instruction {
            keyword: keyword.to_ascii_uppercase(),
            args: args.trim().to_string(),
        });
        current.clear();
    }
    assert!(
        current.is_empty(),
        "Dockerfile ends inside a continued line"
    );
    out
}

/// The instructions of the last stage: what the published image is made of.
fn final_stage(all: &[Instruction]) -> &[Instruction] {
    let from = all
        .iter()
        .rposition(|i| i.keyword == "FROM")
        .expect("the Dockerfile has a FROM");
    &all[from..]
}

/// `key=value` pairs as LABEL and ENV write them; values may be double-quoted.
fn pairs(args: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = args.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return out;
        }
        let key: String =
            std::iter::from_fn(|| chars.next_if(|c| *c != '=' && !c.is_whitespace())).collect();
        assert_eq!(
            chars.next(),
            Some('='),
            "expected key=value after `{key}` in `{args}`"
        );
        let mut value = String::new();
        if chars.next_if_eq(&'"').is_some() {
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => value.extend(chars.next()),
                    Some(c) => value.push(c),
                    None => panic!("unterminated quote in `{args}`"),
                }
            }
        } else {
            value.extend(std::iter::from_fn(|| chars.next_if(|c| !c.is_whitespace())));
        }
        out.insert(key, value);
    }
}

fn final_stage_pairs(keyword: &str) -> BTreeMap<String, String> {
    let all = instructions(&read("Dockerfile"));
    final_stage(&all)
        .iter()
        .filter(|i| i.keyword == keyword)
        .flat_map(|i| pairs(&i.args))
        .collect()
}

#[test]
fn required_keys_are_present() {
    let metadata = metadata();
    assert_eq!(
        metadata.get("metadataSpecVersion"),
        Some(&Value::String("1.0".into())),
        "metadataSpecVersion must be the string \"1.0\""
    );
    let data = data();
    for key in [
        "connectorType",
        "connectorSubtype",
        "definitionId",
        "dockerRepository",
        "dockerImageTag",
        "documentationUrl",
        "name",
        "license",
        "releaseStage",
        "supportLevel",
    ] {
        assert!(!string(&data, key).trim().is_empty(), "data.{key} is empty");
    }
    assert_eq!(string(&data, "connectorType"), "source");
    assert_eq!(string(&data, "connectorSubtype"), "api");
    assert_eq!(string(&data, "name"), "Constant Contact");
    assert_eq!(string(&data, "license"), env!("CARGO_PKG_LICENSE"));
    assert_eq!(string(&data, "releaseStage"), "alpha");
    assert_eq!(string(&data, "supportLevel"), "community");
    let id = uuid::Uuid::parse_str(&string(&data, "definitionId")).expect("definitionId is a UUID");
    assert!(!id.is_nil(), "definitionId must not be the nil UUID");
    assert!(
        string(&data, "dockerRepository").ends_with("/source-constant-contact"),
        "dockerRepository must name the source-constant-contact image"
    );
}

#[test]
fn tags_declare_rust() {
    let data = data();
    let tags: Vec<&str> = data
        .get("tags")
        .and_then(Value::as_sequence)
        .expect("data.tags is a list")
        .iter()
        .map(|t| t.as_str().expect("every tag is a string"))
        .collect();
    assert!(
        tags.contains(&"language:rust"),
        "tags {tags:?} lack language:rust"
    );
}

#[test]
fn image_tag_is_the_crate_version() {
    assert_eq!(
        string(&data(), "dockerImageTag"),
        env!("CARGO_PKG_VERSION"),
        "metadata.yaml's dockerImageTag must follow Cargo.toml's version"
    );
}

#[test]
fn dockerfile_labels_match_metadata() {
    let data = data();
    let labels = final_stage_pairs("LABEL");
    assert_eq!(
        labels.get("io.airbyte.version").map(String::as_str),
        Some(env!("CARGO_PKG_VERSION")),
        "the runtime stage's io.airbyte.version label must be Cargo.toml's version"
    );
    assert_eq!(
        labels.get("io.airbyte.name"),
        Some(&string(&data, "dockerRepository")),
        "the runtime stage's io.airbyte.name label must be metadata.yaml's dockerRepository"
    );
}

#[test]
fn dockerfile_sets_the_airbyte_entrypoint() {
    let env = final_stage_pairs("ENV");
    assert_eq!(
        env.get("AIRBYTE_ENTRYPOINT").map(String::as_str),
        Some(BINARY),
        "the runtime stage must set AIRBYTE_ENTRYPOINT to the binary"
    );
    let all = instructions(&read("Dockerfile"));
    let stage = final_stage(&all);
    let entrypoint = stage
        .iter()
        .rfind(|i| i.keyword == "ENTRYPOINT")
        .expect("the runtime stage has an ENTRYPOINT");
    assert_eq!(entrypoint.args, format!("[\"{BINARY}\"]"));
    let user = stage
        .iter()
        .rfind(|i| i.keyword == "USER")
        .expect("the runtime stage sets a USER");
    let name = user.args.split(':').next().unwrap_or_default();
    assert!(
        name != "root" && name != "0",
        "the image must not run as root"
    );
}

#[test]
fn documentation_url_matches_the_spec() {
    let out = Command::new(env!("CARGO_BIN_EXE_source-constant-contact"))
        .arg("spec")
        .output()
        .expect("the binary runs");
    assert!(
        out.status.success(),
        "spec failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let message: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("spec prints one JSON message");
    assert_eq!(
        message["spec"]["documentationUrl"].as_str(),
        Some(string(&data(), "documentationUrl").as_str()),
        "metadata.yaml's documentationUrl must be the one the SPEC message gives"
    );
}

#[test]
fn dockerfile_parser_reads_labels_and_env() {
    let all = instructions(
        "ARG V=1\nFROM a AS b\nLABEL x=1\nFROM c\n# c\nLABEL k=\"v w\" \\\n  l=2\nENV E=\"/x\"\n",
    );
    let stage = final_stage(&all);
    assert_eq!(stage.len(), 3);
    let labels = pairs(&stage[1].args);
    assert_eq!(labels.get("k").map(String::as_str), Some("v w"));
    assert_eq!(labels.get("l").map(String::as_str), Some("2"));
    assert!(!labels.contains_key("x"));
    assert_eq!(
        pairs(&stage[2].args).get("E").map(String::as_str),
        Some("/x")
    );
}

/// The catalog `discover` prints, in the Airbyte (`["discover", "--config",
/// …]`) or Singer (`["--config", …, "--discover"]`) shape. Discover needs
/// no request: an access token that is never used will do.
fn discovered(singer: bool) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(
        &config,
        r#"{"credentials": {"auth_type": "access_token", "access_token": "x"}}"#,
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let args = if singer {
        ["--config", config, "--discover"]
    } else {
        ["discover", "--config", config]
    };
    let output = Command::new(env!("CARGO_BIN_EXE_source-constant-contact"))
        .args(args)
        .output()
        .unwrap();
    assert!(output.status.success(), "{args:?}: {output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    if singer {
        serde_json::from_str(&text).unwrap()
    } else {
        let message: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        message["catalog"].clone()
    }
}

/// Whether `path` (a cursor field, one name per level) is a property of
/// `schema`.
fn has_property(schema: &serde_json::Value, path: &[serde_json::Value]) -> bool {
    let mut at = schema;
    for name in path {
        let Some(name) = name.as_str() else {
            return false;
        };
        match at["properties"].get(name) {
            Some(property) => at = property,
            None => return false,
        }
    }
    !path.is_empty()
}

/// A destination can use every incremental stream's cursor: each stream
/// that offers incremental sync declares a non-empty `default_cursor_field`
/// that is a property of its schema (a strict Airbyte protocol validator
/// rejects `source_defined_cursor: true` with an empty one), and in Singer
/// a `replication_key` its schema has, listed in `valid-replication-keys`.
#[test]
fn every_incremental_stream_declares_a_cursor_its_schema_has() {
    let airbyte = discovered(false);
    let mut incremental = Vec::new();
    for stream in airbyte["streams"].as_array().unwrap() {
        let name = stream["name"].as_str().unwrap();
        let modes = stream["supported_sync_modes"].as_array().unwrap();
        if !modes.iter().any(|m| m == "incremental") {
            assert!(
                stream.get("default_cursor_field").is_none(),
                "{name}: a cursor on a full-refresh stream"
            );
            continue;
        }
        incremental.push(name.to_string());
        assert_eq!(stream["source_defined_cursor"], true, "{name}");
        let cursor = stream["default_cursor_field"].as_array();
        let cursor = cursor.map(Vec::as_slice).unwrap_or_default();
        assert!(
            has_property(&stream["json_schema"], cursor),
            "{name}: default_cursor_field {cursor:?} is empty or not in its schema"
        );
    }
    assert!(incremental.len() > 20, "{incremental:?}");

    let singer = discovered(true);
    for stream in singer["streams"].as_array().unwrap() {
        let name = stream["tap_stream_id"].as_str().unwrap();
        if stream["replication_method"] != "INCREMENTAL" {
            continue;
        }
        assert!(incremental.iter().any(|n| n == name), "{name}");
        let key = &stream["replication_key"];
        assert!(
            has_property(&stream["schema"], std::slice::from_ref(key)),
            "{name}: replication_key {key} is missing or not in its schema"
        );
        let top = stream["metadata"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["breadcrumb"].as_array().is_some_and(Vec::is_empty))
            .unwrap();
        assert_eq!(
            top["metadata"]["valid-replication-keys"],
            serde_json::json!([key]),
            "{name}"
        );
    }
}
