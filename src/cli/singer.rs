//! Singer mode (Meltano and any Singer target): `--discover`, a sync from
//! `--catalog`/`--properties` with optional `--state`, and `--about`.
//! stdout carries Singer messages only; logs and errors go to stderr.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{json, Value};

use super::columns::{self, Prepared};
use super::progress::Protocol;
use super::setup;
use crate::config::LoadedConfig;
use crate::error::{Error, Result, RunStop};
use crate::protocol::catalog::{self, read_json_file};
use crate::protocol::singer::{parse_state, state_notes, SingerWriter};
use crate::protocol::{Level, Output};
use crate::streams::Registry;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AboutFormat {
    Json,
    Markdown,
}

/// The Singer flags, given without a subcommand.
#[derive(Debug, Default, clap::Args)]
pub struct SingerArgs {
    /// Singer: the config file.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Singer: print the catalog.
    #[arg(long)]
    pub discover: bool,
    /// Singer: the catalog of the streams to sync.
    #[arg(long, visible_alias = "properties")]
    pub catalog: Option<PathBuf>,
    /// Singer: the state (bookmarks) to resume from.
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Singer: describe the tap (name, version, capabilities, settings).
    #[arg(long)]
    pub about: bool,
    /// Singer: estimate the requests a sync of --catalog (or of every
    /// stream a default selection reads) will take, before any read.
    #[arg(long, conflicts_with_all = ["discover", "about", "state"])]
    pub plan: bool,
    /// Format of --about (json, markdown) or of --plan (json; a table
    /// without it).
    #[arg(long, value_enum)]
    pub format: Option<AboutFormat>,
}

impl SingerArgs {
    pub fn given(&self) -> bool {
        self.config.is_some() || self.discover || self.catalog.is_some() || self.about || self.plan
    }
}

pub fn run(args: SingerArgs) -> i32 {
    let result = if args.about {
        about(args.format.unwrap_or(AboutFormat::Json));
        Ok(())
    } else if args.plan {
        plan(&args)
    } else if args.format.is_some() {
        Err(Error::config("--format goes with --about or --plan"))
    } else {
        match (&args.config, args.discover, &args.catalog) {
            // Meltano may pass --state along with --discover: it is ignored.
            (Some(config), true, _) => discover(config),
            (Some(config), false, Some(catalog)) => sync(config, catalog, args.state.as_deref()),
            (None, _, _) => Err(Error::config("Singer mode needs --config CONFIG")),
            (Some(_), false, None) => Err(Error::config(
                "Singer mode needs --discover, or --catalog (or --properties) to sync",
            )),
        }
    };
    match result {
        Ok(()) => 0,
        Err(error) => {
            crate::protocol::to_stderr(&format!("CRITICAL {error}"));
            1
        }
    }
}

fn plan(args: &SingerArgs) -> Result<()> {
    let Some(config) = &args.config else {
        return Err(Error::config("Singer mode needs --config CONFIG"));
    };
    let format = match args.format {
        None => super::plan::PlanFormat::Text,
        Some(AboutFormat::Json) => super::plan::PlanFormat::Json,
        Some(AboutFormat::Markdown) => {
            return Err(Error::config(
                "--plan prints a table or, with --format json, JSON",
            ))
        }
    };
    let catalog = args
        .catalog
        .as_deref()
        .map(|path| (path, super::plan::CatalogKind::Singer));
    super::plan::run(config, catalog, format)
}

fn discover(config_path: &Path) -> Result<()> {
    let config = LoadedConfig::from_file(config_path)?;
    let registry = columns::discover_registry(&config, &setup::bare_output(config_path))?;
    crate::protocol::print(&format!(
        "{}\n",
        serde_json::to_string_pretty(&catalog::singer_discover(&registry))
            .expect("a catalog is JSON")
    ));
    Ok(())
}

fn sync(config_path: &Path, catalog_path: &Path, state_path: Option<&Path>) -> Result<()> {
    let config = LoadedConfig::from_file(config_path)?;
    let catalog = read_json_file("catalog", catalog_path)?;
    let prepared = Prepared::read(&config, &setup::bare_output(config_path), || {
        Ok(catalog.clone())
    })?;
    let selected = catalog::parse_singer(&prepared.registry, &catalog)
        .map_err(|e| e.context(format!("catalog {}", catalog_path.display())))?;
    let log = setup::bare_output(config_path);
    let state = match state_path {
        Some(path) if !path.exists() => {
            return Err(Error::config(format!(
                "cannot read state file {}: it does not exist",
                path.display()
            )))
        }
        Some(path) if is_blank(path)? => {
            log.log(
                Level::Warn,
                &format!(
                    "state file {} is empty: every stream is read as if for the first time \
                     (pass no --state, or `{{}}`, to say so)",
                    path.display()
                ),
            );
            json!({})
        }
        Some(path) => read_json_file("state", path)?,
        None => json!({}),
    };
    let (states, bookmarks) =
        parse_state(&prepared.registry, &state).map_err(|e| match state_path {
            Some(path) => e.context(format!("state file {}", path.display())),
            None => e,
        })?;
    for note in state_notes(&prepared.registry, &bookmarks) {
        log.log(Level::Warn, &note);
    }
    let writer = Arc::new(SingerWriter::new(
        std::io::BufWriter::new(std::io::stdout()),
        &selected,
        bookmarks,
        config_path,
    ));
    // Progress as log lines on stderr when it is a terminal (see progress.rs).
    let results = prepared.read_all(
        &config,
        writer.clone(),
        Protocol::Singer,
        &selected,
        &states,
    )?;
    let output: Arc<dyn Output> = writer.clone();
    output.flush();
    let mut failures = Vec::new();
    let mut stopped_by_budget = false;
    for (name, result) in results {
        match result {
            Ok(report) => output.log(Level::Info, &super::airbyte::summary(&name, &report)),
            Err(error) if error.stops_run == Some(RunStop::BudgetSpent) => {
                if !stopped_by_budget {
                    output.log(Level::Warn, &error.message);
                }
                stopped_by_budget = true;
            }
            Err(error) if !failures.contains(&error.message) => failures.push(error.message),
            Err(_) => {}
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(Error::system(failures.join("; ")))
    }
}

/// Whether a file holds nothing but white space.
fn is_blank(path: &Path) -> Result<bool> {
    std::fs::read_to_string(path)
        .map(|text| text.trim().is_empty())
        .map_err(|e| Error::config(format!("cannot read state file {}: {e}", path.display())))
}

fn about(format: AboutFormat) {
    let settings = crate::protocol::spec::connection_specification();
    let about = json!({
        "name": "tap-constant-contact",
        "description": "Constant Contact V3 API source (Singer tap and Airbyte source in one binary)",
        "version": env!("CARGO_PKG_VERSION"),
        "capabilities": ["catalog", "discover", "state", "about"],
        "settings": settings,
        "streams": Registry::built_in().visible().map(|s| s.name.clone()).collect::<Vec<_>>(),
    });
    match format {
        AboutFormat::Json => crate::protocol::print(&format!(
            "{}\n",
            serde_json::to_string_pretty(&about).expect("JSON")
        )),
        AboutFormat::Markdown => crate::protocol::print(&about_markdown(&about)),
    }
}

fn about_markdown(about: &Value) -> String {
    let mut text = format!(
        "# {}\n\n{}\n\nVersion: {}\n\n## Capabilities\n\n",
        about["name"].as_str().unwrap_or_default(),
        about["description"].as_str().unwrap_or_default(),
        about["version"].as_str().unwrap_or_default()
    );
    for capability in about["capabilities"].as_array().into_iter().flatten() {
        text += &format!("- {}\n", capability.as_str().unwrap_or_default());
    }
    text += "\n## Settings\n\n| Setting | Description |\n| --- | --- |\n";
    if let Some(properties) = about["settings"]["properties"].as_object() {
        for (name, property) in properties {
            let description = property["description"]
                .as_str()
                .unwrap_or_default()
                .replace('\n', " ");
            text += &format!("| {name} | {description} |\n");
        }
    }
    text += "\n## Streams\n\n";
    for stream in about["streams"].as_array().into_iter().flatten() {
        text += &format!("- {}\n", stream.as_str().unwrap_or_default());
    }
    text
}
