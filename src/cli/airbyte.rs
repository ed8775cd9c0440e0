//! The Airbyte commands: spec, check, discover and read. Each loads what it
//! needs, runs, and reports in Airbyte messages on stdout; the exit code
//! says whether a read succeeded.

use std::path::Path;
use std::sync::Arc;

use serde_json::json;

use super::columns::{self, Prepared};
use super::progress::{plural, Protocol};
use super::setup;
use crate::config::LoadedConfig;
use crate::engine::StreamReport;
use crate::error::{Error, RunStop};
use crate::http::RetryPolicy;
use crate::protocol::airbyte::AirbyteWriter;
use crate::protocol::{airbyte_state, catalog, Level, Output};

/// Buffered: records are written in blocks; the writer flushes at every
/// checkpoint, log and trace, so nothing a reader waits for stays behind.
type Writer = AirbyteWriter<std::io::BufWriter<std::io::Stdout>>;

fn stdout_writer() -> Arc<Writer> {
    Arc::new(AirbyteWriter::new(std::io::BufWriter::new(
        std::io::stdout(),
    )))
}

pub fn spec() -> i32 {
    stdout_writer().message(&json!({"type": "SPEC", "spec": crate::protocol::spec::spec()}));
    0
}

/// The calls a sync depends on, one per scope: a token that passes all
/// three can read every stream. Lists ask for one item, the cheapest page.
type Query = &'static [(&'static str, &'static str)];
const CHECK_ENDPOINTS: [(&str, Query, &str); 3] = [
    ("/account/summary", &[], "account_read"),
    ("/contact_lists", &[("limit", "1")], "contact_data"),
    ("/emails", &[("limit", "1")], "campaign_data"),
];

pub fn check(config_path: &Path) -> i32 {
    let output = stdout_writer();
    let result = LoadedConfig::from_file(config_path).and_then(|config| {
        setup::runtime()?.block_on(async {
            let output: Arc<dyn Output> = output.clone();
            let api = setup::connect(&config, RetryPolicy::CHECK, &output)?;
            let mut scopes = Ok(());
            for (path, query, scope) in CHECK_ENDPOINTS {
                let params: Vec<(&str, String)> =
                    query.iter().map(|(k, v)| (*k, v.to_string())).collect();
                if let Err(e) = api.get_json(&api.endpoint(path, &params)).await {
                    scopes = Err(e.context(format!("checking scope {scope}")));
                    break;
                }
            }
            // Which privileges the streams that declare one will find, also
            // when a privilege is what the scope check lacked.
            if scopes.as_ref().err().is_none_or(|e| e.forbidden) {
                let registry = crate::streams::Registry::built_in();
                for (level, line) in super::privileges::report(&api, &registry).await {
                    output.log(level, &line);
                }
            }
            scopes
        })
    });
    output.connection_status(&result);
    0
}

pub fn discover(config_path: &Path) -> i32 {
    let output = stdout_writer();
    let sink: Arc<dyn Output> = output.clone();
    match LoadedConfig::from_file(config_path)
        .and_then(|config| columns::discover_registry(&config, &sink))
    {
        Ok(registry) => {
            output.message(&json!({"type": "CATALOG", "catalog": catalog::discover(&registry)}));
            0
        }
        Err(error) => fail(&output, &error),
    }
}

pub fn read(config_path: &Path, catalog_path: &Path, state_path: Option<&Path>) -> i32 {
    let output = stdout_writer();
    let sink: Arc<dyn Output> = output.clone();
    let mut notes = Vec::new();
    let mut state_notes = Vec::new();
    let loaded = LoadedConfig::from_file(config_path).and_then(|config| {
        let prepared = Prepared::read(&config, &sink, || {
            catalog::read_json_file("catalog", catalog_path)
        })?;
        let selected = catalog::load_configured(&prepared.registry, catalog_path, &mut notes)?;
        let states = airbyte_state::load(state_path, &prepared.registry, &mut state_notes)?;
        Ok((config, prepared, selected, states))
    });
    let (config, prepared, selected, states) = match loaded {
        Ok(loaded) => loaded,
        Err(error) => return fail(&output, &error),
    };
    output.mark_deletions(&selected);
    for note in &notes {
        output.log(Level::Info, note);
    }
    for (level, note) in &state_notes {
        output.log(*level, note);
    }
    let outcome = prepared.read_all(
        &config,
        output.clone(),
        Protocol::Airbyte,
        &selected,
        &states,
    );
    let results = match outcome {
        Ok(results) => results,
        Err(error) => return fail(&output, &error),
    };
    let mut failed = false;
    let mut run_stops: Vec<&Error> = Vec::new();
    for (name, result) in &results {
        match result {
            Ok(report) => output.log(Level::Info, &summary(name, report)),
            // What stopped the run is reported once, for the run; a spent
            // request budget is a planned stop, not a failure.
            Err(error) if error.stops_run.is_some() => {
                if run_stops.iter().any(|e| e.stops_run == error.stops_run) {
                    continue;
                }
                run_stops.push(error);
                if error.stops_run == Some(RunStop::BudgetSpent) {
                    output.log(Level::Warn, &error.message);
                } else {
                    failed = true;
                    output.error_trace(error, None);
                }
            }
            Err(error) => {
                failed = true;
                output.error_trace(error, Some(name));
            }
        }
    }
    output.flush();
    i32::from(failed)
}

pub fn summary(name: &str, report: &StreamReport) -> String {
    format!(
        "{name}: {} {}, {} {}, {} {}, {:.1}s",
        report.records,
        plural(report.records, "record"),
        report.pages,
        plural(report.pages, "page"),
        report.requests,
        plural(report.requests, "request"),
        report.elapsed.as_secs_f64()
    )
}

fn fail(output: &Writer, error: &Error) -> i32 {
    output.error_trace(error, None);
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_counts_one_page_as_one_page() {
        let report = StreamReport {
            records: 1200,
            pages: 1,
            requests: 2,
            elapsed: std::time::Duration::from_millis(1500),
            ..StreamReport::default()
        };
        assert_eq!(
            summary("contact_lists", &report),
            "contact_lists: 1200 records, 1 page, 2 requests, 1.5s"
        );
    }
}
