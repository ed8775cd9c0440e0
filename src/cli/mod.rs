//! The command line: Airbyte subcommands, Singer flags (no subcommand),
//! `auth`, and the sandbox-backed `demo` and `sandbox`. Each command loads
//! its inputs, sets up a run through [`setup`], and turns the outcome into
//! an exit code.

pub mod airbyte;
pub mod authorize;
mod columns;
#[cfg(feature = "sandbox")]
pub mod demo;
pub mod plan;
mod privileges;
pub mod progress;
pub mod setup;
pub mod singer;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "source-constant-contact",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    singer: singer::SingerArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Print the connector's specification (SPEC message).
    Spec,
    /// Check that the config can read the account (CONNECTION_STATUS message).
    Check {
        /// The connector config (JSON); `spec` shows its fields, `auth`
        /// writes one.
        #[arg(long)]
        config: PathBuf,
    },
    /// Print the streams this source offers (CATALOG message).
    Discover {
        /// The connector config (JSON); `spec` shows its fields, `auth`
        /// writes one.
        #[arg(long)]
        config: PathBuf,
    },
    /// Read the streams selected in a configured catalog.
    Read {
        /// The connector config (JSON); `spec` shows its fields, `auth`
        /// writes one.
        #[arg(long)]
        config: PathBuf,
        /// The Airbyte configured catalog: the streams to read, from
        /// `discover`, each with its sync_mode.
        #[arg(long)]
        catalog: PathBuf,
        /// The state a previous read left (its STATE messages, as a list);
        /// without it, incremental streams start from the start date.
        #[arg(long)]
        state: Option<PathBuf>,
    },
    /// Estimate the requests a sync will take (full and incremental), before
    /// any read, against the API's daily quota: a table on stdout, or JSON.
    Plan {
        /// The connector config (JSON); `spec` shows its fields, `auth`
        /// writes one.
        #[arg(long)]
        config: PathBuf,
        /// A configured catalog; without one, every stream a default
        /// selection reads.
        #[arg(long)]
        catalog: Option<PathBuf>,
        /// A table for people, or JSON for machines.
        #[arg(long, value_enum, default_value_t)]
        format: plan::PlanFormat,
    },
    /// Serve a fake Constant Contact V3 API on 127.0.0.1 for tests and trials.
    #[cfg(feature = "sandbox")]
    Sandbox(constant_contact_fake::SandboxOptions),
    /// Authorize with Constant Contact (browser with PKCE, or --device) and write
    /// the credentials into a connector config.
    Auth(Box<authorize::AuthorizeArgs>),
    /// Full then incremental sync of every stream against an in-process
    /// sandbox, with a per-stream summary on stderr.
    #[cfg(feature = "sandbox")]
    Demo(demo::DemoOptions),
}

/// Parses the command line, runs the command, and returns the exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    let Some(command) = cli.command else {
        if !cli.singer.given() {
            let _ = <Cli as clap::CommandFactory>::command().print_help();
            return 2;
        }
        return singer::run(cli.singer);
    };
    match command {
        Command::Spec => airbyte::spec(),
        Command::Check { config } => airbyte::check(&config),
        Command::Discover { config } => airbyte::discover(&config),
        Command::Read {
            config,
            catalog,
            state,
        } => airbyte::read(&config, &catalog, state.as_deref()),
        Command::Plan {
            config,
            catalog,
            format,
        } => {
            let catalog = catalog.as_deref().map(|p| (p, plan::CatalogKind::Airbyte));
            match plan::run(&config, catalog, format) {
                Ok(()) => 0,
                Err(error) => {
                    crate::protocol::to_stderr(&format!("plan: {error}"));
                    1
                }
            }
        }
        Command::Auth(args) => authorize::run(*args),
        #[cfg(feature = "sandbox")]
        Command::Demo(options) => demo::run(options),
        #[cfg(feature = "sandbox")]
        Command::Sandbox(options) => sandbox(options),
    }
}

#[cfg(feature = "sandbox")]
fn sandbox(options: constant_contact_fake::SandboxOptions) -> i32 {
    let served = setup::server_runtime()
        .map_err(|e| e.to_string())
        .and_then(|rt| {
            rt.block_on(constant_contact_fake::serve_forever(options))
                .map_err(|e| e.to_string())
        });
    match served {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("sandbox: {error}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--help` of every command explains every option it lists.
    #[test]
    fn every_option_of_every_command_has_help_text() {
        fn undocumented(command: &clap::Command, path: &str, found: &mut Vec<String>) {
            for arg in command.get_arguments() {
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    found.push(format!("{path} --{}", arg.get_id()));
                }
            }
            for sub in command.get_subcommands() {
                undocumented(sub, &format!("{path} {}", sub.get_name()), found);
            }
        }
        let mut command = <Cli as clap::CommandFactory>::command();
        command.build();
        let mut found = Vec::new();
        undocumented(&command, "source-constant-contact", &mut found);
        assert!(found.is_empty(), "options without help: {found:?}");
    }
}
