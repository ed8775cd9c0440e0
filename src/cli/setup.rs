//! What every command that talks to the API sets up, in one place: the
//! async runtime, the stream registry (built-in table plus the config's
//! custom streams), and the client chain auth → rate-limited HTTP, wired to
//! the protocol writer through narrow handles (diagnostics, token rotation).

use std::path::Path;
use std::sync::Arc;

use crate::auth::{Auth, TokenRotated};
use crate::config::LoadedConfig;
use crate::diagnostics::Diagnostics;
use crate::engine::Context;
use crate::error::{Error, Result};
use crate::http::{ApiClient, RequestLimits, RetryPolicy};
use crate::protocol::singer::SingerWriter;
use crate::protocol::Output;
use crate::streams::Registry;

/// The runtime of a sync: one thread. A sync waits on the API; its CPU work
/// (a page at a time) gains nothing from a second worker, and one thread
/// keeps every allocation in one allocator arena, so memory stays flat
/// however long the run (two workers' arenas each kept their own high-water
/// mark of HTTP read buffers).
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::system(format!("cannot start the async runtime: {e}")))
}

/// The runtime of the sandbox (alone, or beside a sync in `demo`): a server
/// that renders pages for many clients at once uses both cores.
#[cfg(feature = "sandbox")]
pub fn server_runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::system(format!("cannot start the async runtime: {e}")))
}

/// The streams of a run with this config.
pub fn registry(config: &LoadedConfig) -> Result<Arc<Registry>> {
    Registry::new(&config.config.custom_streams).map(Arc::new)
}

/// The API client for a config: auth, then rate-limited HTTP. Retries and
/// warnings go to the writer's log; a rotated refresh token goes to the
/// writer to persist.
pub fn connect(
    config: &LoadedConfig,
    retry: RetryPolicy,
    output: &Arc<dyn Output>,
) -> Result<Arc<ApiClient>> {
    let log_to = output.clone();
    let diagnostics = Diagnostics::new(move |level, message| log_to.log(level, message));
    let persist_to = output.clone();
    let on_rotation: TokenRotated = Arc::new(move |updated| persist_to.config_updated(updated));
    let auth = Arc::new(Auth::new(config, diagnostics.clone(), on_rotation)?);
    let limits = RequestLimits {
        per_second: config.config.requests_per_second,
        per_run: config.config.max_requests_per_run.map(u64::from),
    };
    Ok(Arc::new(ApiClient::new(
        config.api_base_url.clone(),
        limits,
        auth,
        retry,
        diagnostics,
    )?))
}

/// Everything a sync needs: the client, the registry and the config's
/// window and lists.
pub fn sync_context(
    config: &LoadedConfig,
    registry: Arc<Registry>,
    output: &Arc<dyn Output>,
) -> Result<Context> {
    let api = connect(config, RetryPolicy::SYNC, output)?;
    Ok(Context::new(api, output.clone(), registry, config))
}

/// An output for the requests made before a sync's writer exists (the
/// custom fields of `custom_fields_as_columns`): logs to stderr, a rotated
/// refresh token to the config file, nothing on stdout.
pub fn bare_output(config_path: &Path) -> Arc<dyn Output> {
    Arc::new(SingerWriter::new(
        std::io::sink(),
        &[],
        Default::default(),
        config_path,
    ))
}
