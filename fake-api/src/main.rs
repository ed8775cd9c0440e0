//! constant-contact-fake: serves the fake Constant Contact V3 API on 127.0.0.1,
//! exactly like `source-constant-contact sandbox` (same flags, same first line
//! of JSON on stdout, serves until SIGINT or SIGTERM); or, with `proxy`, a
//! fault-injecting proxy in front of a running one.

use clap::{Parser, Subcommand};
use constant_contact_fake::{serve_forever, Faults, Proxy, SandboxOptions};
use std::{io::Write, time::Duration};

#[derive(Parser)]
#[command(
    name = "constant-contact-fake",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    options: SandboxOptions,
}

#[derive(Subcommand)]
enum Command {
    /// Proxy a running sandbox, breaking a share of its answers. Prints one JSON line
    /// with the proxy's base_url and token_url, then serves until SIGINT or SIGTERM.
    Proxy(ProxyArgs),
}

#[derive(clap::Args)]
struct ProxyArgs {
    /// The sandbox's base URL or origin (loopback only), e.g. http://127.0.0.1:4321/v3.
    #[arg(long)]
    upstream: String,
    /// KIND[+KIND...][@RATE]: reset, close, truncate, html, stall, drop-records,
    /// bad-link, cycle-link, storm429, token5xx, missing-array, wrong-type,
    /// ignore-filters; the rate defaults to 0.15.
    #[arg(long, default_value = "none")]
    faults: String,
    /// Seed of the draws that pick the faulted answers.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// How long a stalled body hangs before the connection closes.
    #[arg(long = "stall-ms", default_value_t = 3000)]
    stall_ms: u64,
    /// Delay from the first API request to the 429 storm.
    #[arg(long = "storm-after-ms", default_value_t = 1000)]
    storm_after_ms: u64,
    /// Length of the 429 storm.
    #[arg(long = "storm-secs", default_value_t = 10)]
    storm_secs: u64,
    /// Lower every request's `limit` to this, so small data spans many pages.
    #[arg(long = "page-limit")]
    page_limit: Option<u32>,
}

fn proxy(args: ProxyArgs) -> anyhow::Result<()> {
    let mut faults = Faults::parse(&args.faults)?;
    faults.stall = Duration::from_millis(args.stall_ms);
    faults.storm_after = Duration::from_millis(args.storm_after_ms);
    faults.storm_for = Duration::from_secs(args.storm_secs);
    faults.page_limit = args.page_limit;
    let proxy = Proxy::start_on(&args.upstream, faults, args.seed, args.port)?;
    let line = serde_json::json!({"base_url": proxy.base_url(), "token_url": proxy.token_url()});
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")?;
        out.flush()?;
    }
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            tokio::select! {
                r = tokio::signal::ctrl_c() => r?,
                _ = term.recv() => {}
            }
            anyhow::Ok(())
        })?;
    eprintln!("proxy: {:?}", proxy.stats());
    Ok(())
}

fn main() {
    let cli = Cli::parse();
    let mode = if cli.command.is_some() {
        "proxy"
    } else {
        "sandbox"
    };
    let result = match cli.command {
        Some(Command::Proxy(args)) => proxy(args).map_err(|e| format!("{e:#}")),
        // The same runtime as the connector's `sandbox` subcommand.
        None => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the async runtime: {e}"))
            .and_then(|rt| {
                rt.block_on(serve_forever(cli.options))
                    .map_err(|e| e.to_string())
            }),
    };
    if let Err(error) = result {
        eprintln!("{mode}: {error}");
        std::process::exit(1);
    }
}
