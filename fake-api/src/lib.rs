//! A local fake of the Constant Contact V3 API (read endpoints, OAuth2 token endpoint,
//! rate limits and scripted faults) for tests and demos.

mod abtests;
mod api;
mod auth;
#[cfg(test)]
mod change_tests;
mod contact_consent;
mod control;
mod data;
mod error;
#[cfg(test)]
mod export_tests;
mod exports;
mod ground_truth;
mod landing_pages;
mod limits;
#[cfg(test)]
mod new_endpoint_tests;
mod oauth_flows;
mod paging;
mod proxy;
mod render;
#[cfg(test)]
mod report_tests;
mod reports;
#[cfg(test)]
mod tests;
mod tracking;

use anyhow::Context;
use axum::{extract::Request, middleware::from_fn_with_state, routing::post, Router};
use chrono::{DateTime, Months, SecondsFormat, Utc};
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::{
    collections::BTreeMap,
    io::Write,
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard},
    time::Duration,
};
use tokio::{net::TcpListener, sync::watch};
use tower::ServiceExt;

pub use proxy::{Exchange, FaultKind, Faults, Proxy, ProxyStats, Recorded};

use auth::AuthState;
use data::Data;
use limits::{DropConnection, Front, Limits};

#[derive(Debug, Clone, clap::Args)]
pub struct SandboxOptions {
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Number of contacts to generate.
    #[arg(long, default_value_t = 1000)]
    pub contacts: usize,
    /// Number of email campaigns to generate, in the default account's mix of
    /// statuses (sent, drafts, scheduled, removed, one executing, one in error).
    #[arg(long, default_value_t = DEFAULT_CAMPAIGNS)]
    pub campaigns: usize,
    /// Seed for all generated data and credentials.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Delay added to every API response.
    #[arg(long = "latency-ms", default_value_t = 0)]
    pub latency_ms: u64,
    /// Requests per second allowed per access token; more get 429.
    #[arg(long, default_value_t = 4)]
    pub rps: u32,
    /// API requests allowed for the account over the sandbox lifetime; more get 429.
    /// 0 is allowed and means the quota is already spent: every API request gets 429.
    #[arg(long = "daily-limit", default_value_t = 10_000)]
    pub daily_limit: u32,
    /// Lifetime of issued access tokens.
    #[arg(long = "token-ttl-secs", default_value_t = 86_400)]
    pub token_ttl_secs: u64,
    /// Whether a refresh rotates the refresh token (Constant Contact's default:
    /// every earlier one dies) or returns the same long-lived one.
    #[arg(long = "refresh-tokens", value_enum, default_value_t = RefreshTokens::Rotating)]
    pub refresh_tokens: RefreshTokens,
    /// Redirect URI registered for the OAuth client (repeatable), besides loopback
    /// `http://127.0.0.1:<any port>/callback`.
    #[arg(long = "redirect-uri")]
    pub redirect_uris: Vec<String>,
    /// Polling interval the device flow asks clients to keep.
    #[arg(long = "device-interval-secs", default_value_t = 5)]
    pub device_interval_secs: u64,
    /// Lifetime of device codes.
    #[arg(long = "device-code-ttl-secs", default_value_t = 600)]
    pub device_code_ttl_secs: u64,
}

/// Largest `--contacts`: beyond it generating and holding the data takes minutes and GBs.
pub const MAX_CONTACTS: usize = 1_000_000;
/// The default account's campaigns: one round of the status mix.
pub const DEFAULT_CAMPAIGNS: usize = 30;
/// Largest `--campaigns`: every sent one carries a tracking simulation.
pub const MAX_CAMPAIGNS: usize = 3_000;
/// Largest `--latency-ms`: one minute, already past most HTTP clients' timeouts.
pub const MAX_LATENCY_MS: u64 = 60_000;
/// Largest `--token-ttl-secs`: one year.
pub const MAX_TOKEN_TTL_SECS: u64 = 365 * 86_400;
/// Largest `--device-code-ttl-secs`: one day.
pub const MAX_DEVICE_CODE_TTL_SECS: u64 = 86_400;

impl SandboxOptions {
    /// Refuses options the sandbox cannot work with. `Sandbox::start` (and so
    /// `serve_forever` and both binaries) calls it first.
    pub fn validate(&self) -> anyhow::Result<()> {
        let fail = |msg: String| Err(anyhow::anyhow!("invalid sandbox option: {msg}"));
        if self.rps == 0 {
            return fail("--rps must be at least 1 (0 would refuse every request)".into());
        }
        if self.contacts > MAX_CONTACTS {
            return fail(format!(
                "--contacts must be at most {MAX_CONTACTS}, got {}",
                self.contacts
            ));
        }
        if !(1..=MAX_CAMPAIGNS).contains(&self.campaigns) {
            return fail(format!(
                "--campaigns must be from 1 to {MAX_CAMPAIGNS}, got {}",
                self.campaigns
            ));
        }
        if self.latency_ms > MAX_LATENCY_MS {
            return fail(format!(
                "--latency-ms must be at most {MAX_LATENCY_MS}, got {}",
                self.latency_ms
            ));
        }
        if !(1..=MAX_TOKEN_TTL_SECS).contains(&self.token_ttl_secs) {
            return fail(format!(
                "--token-ttl-secs must be from 1 to {MAX_TOKEN_TTL_SECS}, got {} \
                 (0 would issue access tokens that are already expired)",
                self.token_ttl_secs
            ));
        }
        if !(1..=MAX_DEVICE_CODE_TTL_SECS).contains(&self.device_code_ttl_secs) {
            return fail(format!(
                "--device-code-ttl-secs must be from 1 to {MAX_DEVICE_CODE_TTL_SECS}, got {}",
                self.device_code_ttl_secs
            ));
        }
        if self.device_interval_secs >= self.device_code_ttl_secs {
            return fail(format!(
                "--device-interval-secs ({}) must be below --device-code-ttl-secs ({}): \
                 the device code would expire before the first poll",
                self.device_interval_secs, self.device_code_ttl_secs
            ));
        }
        for uri in &self.redirect_uris {
            if url::Url::parse(uri).is_err() {
                return fail(format!(
                    "--redirect-uri must be an absolute URL, got '{uri}'"
                ));
            }
        }
        Ok(())
    }
}

/// What the token endpoint's refresh-token grant does with the refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RefreshTokens {
    /// Each refresh returns a new refresh token and invalidates every earlier one.
    Rotating,
    /// Each refresh returns the same refresh token, which stays valid.
    LongLived,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        Self {
            port: 0,
            contacts: 1000,
            campaigns: DEFAULT_CAMPAIGNS,
            seed: 42,
            latency_ms: 0,
            rps: 4,
            daily_limit: 10_000,
            token_ttl_secs: 86_400,
            refresh_tokens: RefreshTokens::Rotating,
            redirect_uris: Vec::new(),
            device_interval_secs: 5,
            device_code_ttl_secs: 600,
        }
    }
}

/// State shared by all handlers.
pub(crate) struct Shared {
    opts: SandboxOptions,
    started: DateTime<Utc>,
    data: RwLock<Data>,
    auth: Mutex<AuthState>,
    limits: Mutex<Limits>,
    requests: Mutex<BTreeMap<String, usize>>,
    exports: Mutex<exports::Exports>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn data(&self) -> RwLockReadGuard<'_, Data> {
        self.data.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn data_mut(&self) -> RwLockWriteGuard<'_, Data> {
        self.data.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn auth(&self) -> MutexGuard<'_, AuthState> {
        lock(&self.auth)
    }

    fn limits(&self) -> MutexGuard<'_, Limits> {
        lock(&self.limits)
    }

    fn count_request(&self, route: String) {
        *lock(&self.requests).entry(route).or_default() += 1;
    }

    fn request_counts(&self) -> BTreeMap<String, usize> {
        lock(&self.requests).clone()
    }
}

/// A running sandbox; dropping it (or `shutdown`) stops the server.
pub struct Sandbox {
    shared: Arc<Shared>,
    addr: SocketAddr,
    _stop: watch::Sender<()>,
}

impl Sandbox {
    /// Generates the data, binds 127.0.0.1 and serves on the current tokio runtime.
    /// Refuses invalid options (see `SandboxOptions::validate`).
    pub async fn start(opts: SandboxOptions) -> anyhow::Result<Sandbox> {
        opts.validate()?;
        let listener = TcpListener::bind(("127.0.0.1", opts.port))
            .await
            .with_context(|| format!("binding 127.0.0.1:{}", opts.port))?;
        let addr = listener.local_addr()?;
        let started = Utc::now();
        let data = Data::generate(
            opts.seed,
            opts.contacts,
            opts.campaigns,
            started.timestamp() * 1000,
        );
        let shared = Arc::new(Shared {
            auth: Mutex::new(AuthState::new(opts.seed)),
            opts,
            started,
            data: RwLock::new(data),
            limits: Mutex::default(),
            requests: Mutex::default(),
            exports: Mutex::default(),
        });
        let (stop, stopped) = watch::channel(());
        tokio::spawn(accept_loop(listener, router(shared.clone()), stopped));
        Ok(Sandbox {
            shared,
            addr,
            _stop: stop,
        })
    }

    fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn base_url(&self) -> String {
        format!("{}/v3", self.origin())
    }

    pub fn token_url(&self) -> String {
        format!("{}{}", self.origin(), auth::TOKEN_PATH)
    }

    /// Connector config holding the currently valid refresh token.
    pub fn connector_config(&self) -> Value {
        let (secret, refresh) = {
            let auth = self.shared.auth();
            (auth.client_secret.clone(), auth.refresh_token.clone())
        };
        let start = self
            .shared
            .started
            .checked_sub_months(Months::new(24))
            .unwrap_or_default();
        json!({
            "credentials": {
                "auth_type": "oauth2.0",
                "client_id": auth::CLIENT_ID,
                "client_secret": secret,
                "refresh_token": refresh,
            },
            "start_date": start.to_rfc3339_opts(SecondsFormat::Secs, true),
            "api_base_url": self.base_url(),
            "token_url": self.token_url(),
            "requests_per_second": self.shared.opts.rps,
        })
    }

    /// Stream name -> records a full read returns now.
    // Embedding API for tests; the CLI exposes the same data via `/__sandbox/state`.
    pub fn expected_counts(&self) -> BTreeMap<String, usize> {
        self.shared.data().expected_counts()
    }

    /// "METHOD /route/template" -> requests served, whatever their status.
    pub fn request_counts(&self) -> BTreeMap<String, usize> {
        self.shared.request_counts()
    }

    pub fn shutdown(self) {
        drop(self);
    }
}

/// `sandbox` subcommand: print one JSON line with the URLs and config, then serve until
/// SIGINT or SIGTERM.
pub async fn serve_forever(opts: SandboxOptions) -> anyhow::Result<()> {
    let sandbox = Sandbox::start(opts).await?;
    let line = json!({
        "base_url": sandbox.base_url(),
        "token_url": sandbox.token_url(),
        "config": sandbox.connector_config(),
    });
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")?;
        out.flush()?;
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    sandbox.shutdown();
    Ok(())
}

fn router(shared: Arc<Shared>) -> Router {
    let mut router = Router::new();
    let routes = api::routes().into_iter().map(|(path, route)| {
        (
            path,
            route.route_layer(from_fn_with_state(shared.clone(), limits::gate)),
        )
    });
    for (path, route) in routes.chain([(auth::TOKEN_PATH, post(auth::token))]) {
        let front = Front {
            shared: shared.clone(),
            route: path,
        };
        router = router.route(path, route.layer(from_fn_with_state(front, limits::front)));
    }
    router
        .merge(control::routes())
        .merge(exports::control_routes())
        .merge(oauth_flows::routes())
        .fallback(api::unknown_route)
        .with_state(shared)
}

/// Error that makes hyper close the connection without answering.
#[derive(Debug)]
struct ConnectionDropped;

impl std::fmt::Display for ConnectionDropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by an injected fault")
    }
}

impl std::error::Error for ConnectionDropped {}

/// Hands each accepted connection to `serve` until `stop` fires (or its sender is
/// dropped); a failed accept is retried shortly after.
pub(crate) async fn accept_until_stopped(
    listener: TcpListener,
    mut stop: watch::Receiver<()>,
    mut serve: impl FnMut(tokio::net::TcpStream),
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => serve(stream),
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            _ = stop.changed() => return,
        }
    }
}

/// Serves HTTP/1.1 connections until `stop` fires (or its sender is dropped). Hand-rolled
/// rather than `axum::serve` so a fault can drop a connection mid-request.
async fn accept_loop(listener: TcpListener, app: Router, stop: watch::Receiver<()>) {
    let stopping = stop.clone();
    accept_until_stopped(listener, stop, move |stream| {
        let mut stopped = stopping.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let app = app.clone();
                async move {
                    let Ok(response) = app.oneshot(req.map(axum::body::Body::new)).await;
                    match response.extensions().get::<DropConnection>() {
                        Some(_) => Err(ConnectionDropped),
                        None => Ok(response),
                    }
                }
            });
            let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = connection => {}
                _ = stopped.changed() => {}
            }
        });
    })
    .await;
}
