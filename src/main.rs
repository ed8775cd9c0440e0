//! source-constant-contact: reads a Constant Contact account through the V3
//! API and writes it as Airbyte protocol messages (subcommands) or Singer
//! messages (Singer flags, no subcommand). The connector itself is the library
//! (`src/lib.rs`); this is its command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
#[cfg(feature = "sandbox")]
use source_constant_contact::demo;
use source_constant_contact::{airbyte, authorize, singer};

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
        #[arg(long)]
        config: PathBuf,
    },
    /// Print the streams this source offers (CATALOG message).
    Discover {
        #[arg(long)]
        config: PathBuf,
    },
    /// Read the streams selected in a configured catalog.
    Read {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        catalog: PathBuf,
        #[arg(long)]
        state: Option<PathBuf>,
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

fn main() {
    let cli = Cli::parse();
    let Some(command) = cli.command else {
        if !cli.singer.given() {
            let _ = <Cli as clap::CommandFactory>::command().print_help();
            std::process::exit(2);
        }
        std::process::exit(singer::run(cli.singer));
    };
    let code =
        match command {
            Command::Spec => airbyte::spec(),
            Command::Check { config } => airbyte::check(&config),
            Command::Discover { config } => airbyte::discover(&config),
            Command::Read {
                config,
                catalog,
                state,
            } => airbyte::read(&config, &catalog, state.as_deref()),
            #[cfg(feature = "sandbox")]
            Command::Demo(options) => demo::run(options),
            Command::Auth(args) => authorize::run(*args),
            #[cfg(feature = "sandbox")]
            Command::Sandbox(options) => match airbyte::runtime()
                .map_err(|e| e.to_string())
                .and_then(|rt| {
                    rt.block_on(constant_contact_fake::serve_forever(options))
                        .map_err(|e| e.to_string())
                }) {
                Ok(()) => 0,
                Err(error) => {
                    eprintln!("sandbox: {error}");
                    1
                }
            },
        };
    std::process::exit(code);
}
