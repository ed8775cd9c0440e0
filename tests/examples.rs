//! What the README promises a new user: the example config and catalog in
//! `examples/` load and run, the settings table lists exactly the fields of
//! `spec`, and every relative link and repository path in README.md and
//! `docs/` leads somewhere.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;
use source_constant_contact::config::LoadedConfig;
use source_constant_contact::protocol::spec::connection_specification;

use common::{run, write_json, Sandbox};

fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn read_text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn read_json(relative: &str) -> Value {
    serde_json::from_str(&read_text(&repo_path(relative)))
        .unwrap_or_else(|e| panic!("{relative} is not JSON: {e}"))
}

#[test]
fn example_config_loads_with_the_connectors_config_loader() {
    let path = repo_path("examples/config.json");
    if let Err(e) = LoadedConfig::from_file(&path) {
        panic!("examples/config.json does not load: {e}");
    }
}

/// The streams `discover` offers, by name.
fn discovered_streams() -> Vec<Value> {
    let run = run(&[
        "discover",
        "--config",
        repo_path("examples/config.json").to_str().unwrap(),
    ]);
    run.assert_ok();
    run.of_type("CATALOG")[0]["catalog"]["streams"]
        .as_array()
        .expect("the catalog has streams")
        .clone()
}

#[test]
fn example_catalog_names_discovered_streams_with_their_keys_and_cursors() {
    let discovered = discovered_streams();
    let catalog = read_json("examples/catalog.json");
    let entries = catalog["streams"]
        .as_array()
        .expect("`streams` is an array");
    assert!(
        !entries.is_empty(),
        "examples/catalog.json selects no stream"
    );
    for entry in entries {
        let name = entry["stream"]["name"].as_str().expect("a stream name");
        let stream = discovered
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| {
                panic!("examples/catalog.json names `{name}`, which discover does not list")
            });
        let mode = &entry["sync_mode"];
        assert!(
            stream["supported_sync_modes"]
                .as_array()
                .unwrap()
                .contains(mode),
            "{name}: sync_mode {mode} is not one discover offers"
        );
        assert_eq!(
            entry["primary_key"], stream["source_defined_primary_key"],
            "{name}: primary_key differs from discover's"
        );
        if mode == "incremental" {
            assert_eq!(
                entry["cursor_field"], stream["default_cursor_field"],
                "{name}: cursor_field differs from discover's"
            );
        }
    }
}

/// The example config pointed at `sandbox`: its credentials and URLs, and a
/// rate the sandbox allows (so the test is quick); every other setting kept.
fn example_config_for(sandbox: &Sandbox) -> Value {
    let mut config = read_json("examples/config.json");
    for key in ["credentials", "api_base_url", "token_url"] {
        config[key] = sandbox.config[key].clone();
    }
    config["requests_per_second"] = 50.into();
    config
}

#[test]
fn example_config_and_catalog_check_and_read_against_the_sandbox() {
    let sandbox = Sandbox::start(&["--contacts", "60", "--rps", "50"]);
    let dir = tempfile::tempdir().unwrap();
    let config = example_config_for(&sandbox);
    let path = write_json(dir.path(), "config.json", &config);
    let check = run(&["check", "--config", path.to_str().unwrap()]);
    let status = &check.of_type("CONNECTION_STATUS")[0]["connectionStatus"];
    assert_eq!(
        status["status"], "SUCCEEDED",
        "check: {status}\n{}",
        check.stderr
    );

    // check refreshed the token, which rotated: read with the config it handed on.
    let path = write_json(dir.path(), "config.json", &check.next_config(&config));
    let catalog = repo_path("examples/catalog.json");
    let read = run(&[
        "read",
        "--config",
        path.to_str().unwrap(),
        "--catalog",
        catalog.to_str().unwrap(),
    ]);
    read.assert_ok();
    let expected = sandbox.expected_counts();
    for entry in read_json("examples/catalog.json")["streams"]
        .as_array()
        .unwrap()
    {
        let name = entry["stream"]["name"].as_str().unwrap();
        let records = read.records(name).len();
        assert!(records > 0, "{name}: no records from the sandbox");
        if let Some(&want) = expected.get(name) {
            assert_eq!(records, want, "{name}: records read vs the sandbox's count");
        }
    }
}

/// The config fields `spec` declares: top-level properties, and the
/// properties of every credentials alternative as `credentials.<field>`.
fn spec_fields() -> BTreeSet<String> {
    let spec = connection_specification();
    let mut fields = BTreeSet::new();
    for (name, property) in spec["properties"].as_object().expect("spec has properties") {
        match property["oneOf"].as_array() {
            Some(alternatives) => {
                for alternative in alternatives {
                    for nested in alternative["properties"].as_object().into_iter().flatten() {
                        fields.insert(format!("{name}.{}", nested.0));
                    }
                }
            }
            None => {
                fields.insert(name.clone());
            }
        }
    }
    fields
}

/// The first cells of the table rows in README.md's section `heading`.
fn readme_first_cells(heading: &str) -> Vec<String> {
    let readme = read_text(&repo_path("README.md"));
    let section = readme
        .split(&format!("\n## {heading}\n"))
        .nth(1)
        .unwrap_or_else(|| panic!("README.md has a `## {heading}` section"));
    let section = section.split("\n## ").next().unwrap();
    section
        .lines()
        .filter(|line| line.starts_with("| `"))
        .map(|line| line.split('|').nth(1).unwrap().trim().to_string())
        .collect()
}

#[test]
fn readme_streams_table_names_exactly_the_discovered_streams() {
    let in_table: BTreeSet<String> = readme_first_cells("Streams")
        .iter()
        .flat_map(|cell| {
            // The names are the code spans; the rest is explanation.
            cell.split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    let discovered: BTreeSet<String> = discovered_streams()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    assert_same_names("streams", &in_table, &discovered, "discover");
}

/// A README table names exactly the things `source` lists: none missing,
/// none unknown.
fn assert_same_names(
    table: &str,
    in_table: &BTreeSet<String>,
    listed: &BTreeSet<String>,
    source: &str,
) {
    let missing: Vec<_> = listed.difference(in_table).collect();
    let unknown: Vec<_> = in_table.difference(listed).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "README.md's {table} table is missing {missing:?} and names some {source} does not list: {unknown:?}"
    );
}

/// The first column of the table under README.md's `## Settings`.
fn readme_settings_rows() -> Vec<String> {
    readme_first_cells("Settings")
        .into_iter()
        .map(|cell| {
            assert!(
                cell.len() > 2 && cell.matches('`').count() == 2 && cell.ends_with('`'),
                "a settings row names one field in backticks, found {cell:?}"
            );
            cell.trim_matches('`').to_string()
        })
        .collect()
}

#[test]
fn readme_settings_table_lists_exactly_the_fields_of_spec() {
    let rows = readme_settings_rows();
    let in_table: BTreeSet<String> = rows.iter().cloned().collect();
    assert_eq!(in_table.len(), rows.len(), "a field has two rows: {rows:?}");
    assert_same_names("settings", &in_table, &spec_fields(), "spec");
}

/// README.md and every Markdown file under docs/.
fn documents() -> Vec<PathBuf> {
    let mut files = vec![repo_path("README.md")];
    let docs = std::fs::read_dir(repo_path("docs")).expect("a docs/ folder");
    for entry in docs {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            files.push(path);
        }
    }
    files
}

/// GitHub's anchor for a heading: lower case, punctuation other than `-`
/// and `_` dropped, spaces as `-`.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a Markdown file's headings (code blocks skipped).
fn anchors(text: &str) -> BTreeSet<String> {
    let mut in_code = false;
    let mut found = BTreeSet::new();
    for line in text.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        } else if !in_code && line.starts_with('#') {
            found.insert(anchor(line.trim_start_matches('#')));
        }
    }
    found
}

/// The targets of `[text](target)` links.
fn link_targets(text: &str) -> Vec<String> {
    text.split("](")
        .skip(1)
        .filter_map(|rest| rest.split_once(')').map(|(target, _)| target.to_string()))
        .collect()
}

/// Code spans that name a path inside the repository: their first
/// component is one of the repository's top-level entries (`src/http.rs`,
/// `scripts/bench.py`), as opposed to API paths (`/contacts`) or paths on
/// the user's machine.
fn repository_paths(text: &str, top_level: &BTreeSet<String>) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter(|span| {
            span.contains('/')
                && span
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-'))
                && top_level.contains(span.split('/').next().unwrap())
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn links_and_repository_paths_in_readme_and_docs_resolve() {
    let root = repo_path("");
    let top_level: BTreeSet<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != "target")
        .collect();
    let mut broken = Vec::new();
    for document in documents() {
        let text = read_text(&document);
        let dir = document.parent().unwrap();
        let name = document.strip_prefix(&root).unwrap().display().to_string();
        for target in link_targets(&text) {
            if target.starts_with("http://") || target.starts_with("https://") {
                continue;
            }
            let (path, fragment) = target.split_once('#').unwrap_or((&target, ""));
            let file = if path.is_empty() {
                document.clone()
            } else {
                dir.join(path)
            };
            if !file.exists() {
                broken.push(format!("{name}: link to {target}: no such file"));
            } else if !fragment.is_empty() && !anchors(&read_text(&file)).contains(fragment) {
                broken.push(format!("{name}: link to {target}: no such heading"));
            }
        }
        for path in repository_paths(&text, &top_level) {
            if !root.join(&path).exists() {
                broken.push(format!("{name}: `{path}` does not exist in the repository"));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "broken references:\n{}",
        broken.join("\n")
    );
}
