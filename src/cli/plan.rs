//! `plan` (and Singer's `--plan`): the requests a sync of the selected
//! streams will take, estimated before any read, against the API's daily
//! quota. Not a protocol command: the plan goes to stdout as a table, or
//! as JSON with `--format json`; logs go to stderr.

use std::path::Path;

use super::setup;
use crate::config::LoadedConfig;
use crate::error::Result;
use crate::plan::model::Model;
use crate::plan::{survey, Plan};
use crate::protocol::catalog::{self, Selected};
use crate::streams::Registry;

/// How the plan is printed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum PlanFormat {
    /// A table with notes, for people.
    #[default]
    Text,
    Json,
}

/// Which protocol's catalog `--catalog` holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogKind {
    Airbyte,
    Singer,
}

/// Plans a sync of `catalog` (every stream a default selection reads
/// without one) and prints it; exit code 1, with the error on stderr, when
/// the config, catalog or credentials are refused.
pub fn run(
    config_path: &Path,
    catalog: Option<(&Path, CatalogKind)>,
    format: PlanFormat,
) -> Result<()> {
    let config = LoadedConfig::from_file(config_path)?;
    let registry = setup::registry(&config)?;
    let selected = selection(&registry, catalog)?;
    let output = setup::bare_output(config_path);
    let (survey, lists) = setup::runtime()?.block_on(async {
        let ctx = setup::sync_context(&config, registry.clone(), &output)?;
        let survey = survey::survey(&ctx, &selected).await?;
        Ok::<_, crate::error::Error>((survey, ctx.lists.clone()))
    })?;
    let model = Model {
        registry: &registry,
        survey: &survey,
        lists: &lists,
    };
    let plan = Plan {
        rows: model.rows(&selected),
        max_requests_per_run: config.config.max_requests_per_run.map(u64::from),
        survey_requests: survey.requests,
        sampled: survey.sample,
    };
    crate::protocol::print(&match format {
        PlanFormat::Text => plan.text(),
        PlanFormat::Json => format!(
            "{}\n",
            serde_json::to_string_pretty(&plan.json()).expect("a plan is JSON")
        ),
    });
    Ok(())
}

/// The streams of `catalog`, or those a discover with every stream selected
/// reads (opt-in ones aside), incrementally where they can.
fn selection(registry: &Registry, catalog: Option<(&Path, CatalogKind)>) -> Result<Vec<Selected>> {
    match catalog {
        None => Ok(catalog::default_selection(registry)),
        Some((path, CatalogKind::Airbyte)) => {
            let mut notes = Vec::new();
            let selected = catalog::load_configured(registry, path, &mut notes)?;
            for note in notes {
                crate::protocol::to_stderr(&note);
            }
            Ok(selected)
        }
        Some((path, CatalogKind::Singer)) => {
            let catalog_json = catalog::read_json_file("catalog", path)?;
            catalog::parse_singer(registry, &catalog_json)
                .map_err(|e| e.context(format!("catalog {}", path.display())))
        }
    }
}
