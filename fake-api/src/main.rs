//! constant-contact-fake: serves the fake Constant Contact V3 API on 127.0.0.1,
//! exactly like `source-constant-contact sandbox` (same flags, same first line
//! of JSON on stdout, serves until SIGINT or SIGTERM).

use clap::Parser;
use constant_contact_fake::{serve_forever, SandboxOptions};

#[derive(Parser)]
#[command(name = "constant-contact-fake", version, about)]
struct Cli {
    #[command(flatten)]
    options: SandboxOptions,
}

fn main() {
    let options = Cli::parse().options;
    // The same runtime as the connector's `sandbox` subcommand.
    let result = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
        .and_then(|rt| {
            rt.block_on(serve_forever(options))
                .map_err(|e| e.to_string())
        });
    if let Err(error) = result {
        eprintln!("sandbox: {error}");
        std::process::exit(1);
    }
}
