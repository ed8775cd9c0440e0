//! A local fake of the Constant Contact V3 API (read endpoints, OAuth2 token endpoint,
//! rate limits and scripted faults) for tests and demos.
//!
//! Modules import downward only. At the bottom: `error`, `paging`, `options`, `clock`,
//! the records (`tracking`, `visits`, `engagement`, `data`) and `render`; `clients`, `limits`
//! and `export_jobs` hold the rest of the state, and `state` gathers it all in `Shared` with
//! the handler types (`St`, `Reply`, `Route`). Above them: `simulation`, `generate` and
//! `generate_engagement` (data from the seed), then one module per group of endpoints
//! (`api`, `reports`, `abtests`, ...), each with its `routes` (template, the contract's enum
//! query parameters, handler) and the `expected_counts` of its streams; the auth side
//! (`auth`, `oauth_flows`, `middleware`, and `privileges`, which answers 403 where the user
//! lacks a route's privilege) sits beside them. At the top: `endpoints` lists the endpoint
//! modules once, and `ground_truth`, `control` and this file use it. To add an endpoint:
//! write its module, declaring the enum parameters of each route beside it (the router
//! checks them), then add one line to `endpoints::MODULES`.

mod abtests;
mod api;
mod auth;
mod automations;
#[cfg(test)]
mod change_tests;
mod clients;
mod clock;
mod contact_consent;
mod control;
mod data;
mod endpoints;
mod engagement;
#[cfg(test)]
mod engagement_tests;
mod error;
mod events;
mod export_jobs;
#[cfg(test)]
mod export_tests;
mod exports;
mod generate;
mod generate_engagement;
mod ground_truth;
mod landing_pages;
#[cfg(test)]
mod limit_tests;
mod limits;
mod middleware;
#[cfg(test)]
mod new_endpoint_tests;
mod oauth_flows;
mod oauth_grants;
mod options;
mod paging;
mod privileges;
mod proxy;
mod render;
#[cfg(test)]
mod report_tests;
mod reports;
mod simulation;
mod sms_reports;
mod social;
mod state;
#[cfg(test)]
mod tests;
mod tracking;
mod visits;

use axum::{extract::Request, middleware::from_fn_with_state, routing::post, Router};
use chrono::{Months, SecondsFormat};
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::{
    collections::BTreeMap,
    io::Write,
    net::SocketAddr,
    sync::{Arc, Mutex, RwLock},
    time::Duration,
};
use tokio::{net::TcpListener, sync::watch};
use tower::ServiceExt;

pub use options::{
    RefreshTokens, SandboxOptions, DEFAULT_CAMPAIGNS, MAX_CAMPAIGNS, MAX_CONTACTS,
    MAX_DEVICE_CODE_TTL_SECS, MAX_LATENCY_MS, MAX_TOKEN_TTL_SECS,
};
pub use proxy::{Exchange, FaultKind, Faults, Proxy, ProxyStats, Recorded};

use clients::AuthState;
use clock::Clock;
use data::Data;
use limits::DropConnection;
use middleware::Front;
use state::Shared;

/// Why 127.0.0.1:`port` cannot be listened on, and what to do: a busy port
/// is the usual case (a sandbox started earlier), and `--port` is the way out.
pub fn bind_error(port: u16, error: std::io::Error) -> anyhow::Error {
    match error.kind() {
        std::io::ErrorKind::AddrInUse => anyhow::anyhow!(
            "port {port} on 127.0.0.1 is already in use (another sandbox?); pick another with \
             --port, or --port 0 for a free one"
        ),
        _ => anyhow::anyhow!(
            "cannot listen on 127.0.0.1:{port}: {error}; pick another port with --port, or \
             --port 0 for a free one"
        ),
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
            .map_err(|e| bind_error(opts.port, e))?;
        let addr = listener.local_addr()?;
        let clock = Clock::default();
        let started = clock.now();
        let mut data = Data::generate(
            opts.seed,
            opts.contacts,
            opts.campaigns,
            started.timestamp() * 1000,
        );
        data.denied_privileges = opts.without_privileges.iter().cloned().collect();
        let shared = Arc::new(Shared {
            auth: Mutex::new(AuthState::new(opts.seed, started)),
            opts,
            started,
            data: RwLock::new(data),
            limits: Mutex::default(),
            requests: Mutex::default(),
            exports: Mutex::default(),
            clock,
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
                "client_id": clients::CLIENT_ID,
                "client_secret": secret,
                "refresh_token": refresh,
            },
            "start_date": start.to_rfc3339_opts(SecondsFormat::Secs, true),
            "api_base_url": self.base_url(),
            "token_url": self.token_url(),
            "requests_per_second": self.shared.opts.rps,
            // No documented endpoint lists landing pages: the account's are named.
            "landing_page_activity_ids": self.landing_page_activity_ids(),
        })
    }

    /// The campaign activity ids of the account's landing pages, which no endpoint lists.
    pub fn landing_page_activity_ids(&self) -> Vec<String> {
        self.shared
            .data()
            .landing_pages
            .iter()
            .map(|p| p.activity.to_string())
            .collect()
    }

    /// Stream name -> records a full read returns now.
    // Embedding API for tests; the CLI exposes the same data via `/__sandbox/state`.
    pub fn expected_counts(&self) -> BTreeMap<String, usize> {
        endpoints::expected_counts(&self.shared.data())
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
    // The last layer added runs first: the gate (token, rate, quota), the privilege
    // guard, the enum check, then the handler.
    let routes = endpoints::routes().into_iter().map(|(path, enums, route)| {
        let guard = privileges::Guard {
            shared: shared.clone(),
            route: path,
        };
        let route = route
            .route_layer(from_fn_with_state(enums, middleware::check_enums))
            .route_layer(from_fn_with_state(guard, privileges::guard))
            .route_layer(from_fn_with_state(shared.clone(), middleware::gate));
        (path, route)
    });
    for (path, route) in routes.chain([(auth::TOKEN_PATH, post(auth::token))]) {
        let front = Front {
            shared: shared.clone(),
            route: path,
        };
        router = router.route(
            path,
            route.layer(from_fn_with_state(front, middleware::front)),
        );
    }
    router
        .merge(control::routes())
        .merge(exports::control_routes())
        .merge(oauth_flows::routes())
        .fallback(endpoints::unknown_route)
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
