//! A fault-injecting HTTP/1.1 proxy in front of a sandbox (or any loopback HTTP server).
//!
//! A connector pointed at the proxy (`api_base_url` = [`Proxy::base_url`], `token_url` =
//! [`Proxy::token_url`]) sees the upstream API, except that a configured share of its
//! answers breaks in one of the ways of [`FaultKind`]. The sandbox's `_links.next.href`
//! are host-relative (`/v3/...`), so page links lead back through the proxy.
//!
//! Whether a request is faulted, and how, depends only on the seed, the request line and
//! how often that request line was seen before: a retry of a faulted request gets a
//! fresh draw, and runs with the same seed fault the same requests whatever order
//! concurrent streams send them in.
//!
//! A proxy started with [`Proxy::recording`] also keeps every exchange ([`Exchange`]):
//! the request as the client sent it and the answer as the upstream gave it, for tests
//! that check traffic against the API's contract.
//!
//! Faults that answer instead of the upstream (429 storms, token-endpoint errors) never
//! forward the request: a token request that reached the sandbox would rotate its
//! refresh token, and losing the answer would lose the credentials. Everything else is
//! forwarded first and broken on the way back.

use anyhow::{bail, Context};
use serde_json::Value;
use std::{
    collections::{BTreeMap, HashMap},
    net::SocketAddr,
    sync::{Arc, Mutex, PoisonError},
    thread::JoinHandle,
    time::{Duration, Instant},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
};

use super::auth::TOKEN_PATH;
use super::bind_error;

/// Largest request or response head, and largest body, the proxy handles.
const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 64 * 1024 * 1024;
/// Longest the proxy waits for the client or the upstream.
const IO_TIMEOUT: Duration = Duration::from_secs(60);

/// One way an answer breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum FaultKind {
    /// 200 with headers and half the body, then a TCP reset (SO_LINGER 0).
    Reset,
    /// 200 with headers and half the body, then the connection closes.
    Close,
    /// 200 whose body is the first half of the JSON, with a Content-Length to match.
    Truncate,
    /// 200 with an HTML error page (as a misconfigured gateway sends).
    Html,
    /// 200 with headers and half the body, then nothing for `stall`, then a close.
    Stall,
    /// A page with `_links.next` whose top-level arrays (its records) are removed.
    DropRecords,
    /// A page whose `_links.next.href` is a number rather than a link.
    BadLink,
    /// A page whose `_links.next.href` points back to a page of its chain already served
    /// (an earlier one, or itself on a chain's first page).
    CycleLink,
    /// Every API request answered 429 (the per-second throttle's body, no `Retry-After`,
    /// as the API sends it) for `storm_for`, starting `storm_after` after the first API
    /// request.
    Storm429,
    /// The token endpoint answers 503 or 500 to two requests out of three, without
    /// forwarding them.
    Token5xx,
    /// A JSON object answer whose top-level arrays are removed, last pages included
    /// (meant for list answers: on a one-record answer it drops fields of the record).
    MissingArray,
    /// A JSON answer in which every array that holds no object (an id list such as
    /// `contact_list_ids` or `list_memberships`, an empty list), at any depth, is the
    /// string `"not-a-list"`.
    WrongType,
    /// Every API request forwarded without its `updated_after` and `updated_before`
    /// (a server that ignores the change window), whatever the rate.
    IgnoreFilters,
    /// A last page (no next link) whose top-level arrays each lose their last record: a
    /// well-formed answer with rows missing, which only a count can reveal.
    ShortLastPage,
    /// As `ShortLastPage`, only the first time a request is answered: its retry or a
    /// second read of the chain gets the whole page.
    ShortLastPageOnce,
    /// A page whose records each lose the last id of every top-level list of ids (an
    /// array of strings, such as a contact's `list_memberships` or `taggings`): rows
    /// all there, memberships missing, which only the lists' own counts reveal.
    ThinIdLists,
}

impl FaultKind {
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Reset => "reset",
            FaultKind::Close => "close",
            FaultKind::Truncate => "truncate",
            FaultKind::Html => "html",
            FaultKind::Stall => "stall",
            FaultKind::DropRecords => "drop-records",
            FaultKind::BadLink => "bad-link",
            FaultKind::CycleLink => "cycle-link",
            FaultKind::Storm429 => "storm429",
            FaultKind::Token5xx => "token5xx",
            FaultKind::MissingArray => "missing-array",
            FaultKind::WrongType => "wrong-type",
            FaultKind::IgnoreFilters => "ignore-filters",
            FaultKind::ShortLastPage => "short-last-page",
            FaultKind::ShortLastPageOnce => "short-last-page-once",
            FaultKind::ThinIdLists => "thin-id-lists",
        }
    }

    pub const ALL: [FaultKind; 16] = [
        FaultKind::Reset,
        FaultKind::Close,
        FaultKind::Truncate,
        FaultKind::Html,
        FaultKind::Stall,
        FaultKind::DropRecords,
        FaultKind::BadLink,
        FaultKind::CycleLink,
        FaultKind::Storm429,
        FaultKind::Token5xx,
        FaultKind::MissingArray,
        FaultKind::WrongType,
        FaultKind::IgnoreFilters,
        FaultKind::ShortLastPage,
        FaultKind::ShortLastPageOnce,
        FaultKind::ThinIdLists,
    ];

    /// Breaks a 200 answer of the API (the kinds drawn per response).
    fn per_response(self) -> bool {
        !matches!(
            self,
            FaultKind::Storm429 | FaultKind::Token5xx | FaultKind::IgnoreFilters
        )
    }
}

/// What the proxy injects.
#[derive(Debug, Clone)]
pub struct Faults {
    /// The kinds in play; a faulted response gets one of those that apply to it.
    pub kinds: Vec<FaultKind>,
    /// Share of API 200 answers that are broken (0.0..=1.0).
    pub rate: f64,
    /// How long a stalled body hangs before the connection closes.
    pub stall: Duration,
    /// Delay from the first API request to the start of the 429 storm.
    pub storm_after: Duration,
    /// Length of the 429 storm.
    pub storm_for: Duration,
    /// When set, a request's `limit` query parameter is lowered to this, so small data
    /// still spans many pages (and many next links to break).
    pub page_limit: Option<u32>,
    /// When set, only answers to paths containing one of these are faulted.
    pub only_paths: Option<Vec<String>>,
}

impl Faults {
    /// `kinds` on `rate` of the answers, with short stalls and a 10-second storm.
    pub fn new(kinds: &[FaultKind], rate: f64) -> Faults {
        Faults {
            kinds: kinds.to_vec(),
            rate,
            stall: Duration::from_secs(3),
            storm_after: Duration::from_secs(1),
            storm_for: Duration::from_secs(10),
            page_limit: None,
            only_paths: None,
        }
    }

    /// No faults: a transparent proxy.
    pub fn none() -> Faults {
        Faults::new(&[], 0.0)
    }

    /// `KIND[+KIND...][@RATE]`, e.g. `reset+truncate@0.15`, `storm429`, `none`.
    /// The rate defaults to 0.15.
    pub fn parse(spec: &str) -> anyhow::Result<Faults> {
        let (kinds, rate) = match spec.split_once('@') {
            Some((kinds, rate)) => (
                kinds,
                rate.parse::<f64>()
                    .with_context(|| format!("fault rate {rate:?}"))?,
            ),
            None => (spec, 0.15),
        };
        if !(0.0..=1.0).contains(&rate) {
            bail!("the fault rate must be within 0..=1, not {rate}");
        }
        let mut parsed = Vec::new();
        for name in kinds.split('+').map(str::trim).filter(|k| *k != "none") {
            let kind = FaultKind::ALL
                .into_iter()
                .find(|k| k.name() == name)
                .with_context(|| {
                    let names: Vec<&str> = FaultKind::ALL.iter().map(|k| k.name()).collect();
                    format!("unknown fault {name:?}; known: {}", names.join(", "))
                })?;
            parsed.push(kind);
        }
        Ok(Faults::new(&parsed, rate))
    }

    fn has(&self, kind: FaultKind) -> bool {
        self.kinds.contains(&kind)
    }
}

/// One request as the client sent it, with the upstream's answer (`None` when the proxy
/// answered itself, as injected 429s and token-endpoint errors do, or the upstream did
/// not answer).
#[derive(Debug, Clone)]
pub struct Exchange {
    pub method: String,
    /// The request target: path and query, as sent.
    pub target: String,
    pub request_headers: Vec<(String, String)>,
    pub request_body: Vec<u8>,
    pub response: Option<Recorded>,
}

/// An upstream answer as [`Exchange`] keeps it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    /// The value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

/// What the proxy did so far.
#[derive(Debug, Clone, Default)]
pub struct ProxyStats {
    /// Requests passed to the upstream.
    pub forwarded: usize,
    /// Fault name -> times injected.
    pub injected: BTreeMap<&'static str, usize>,
}

struct Inner {
    upstream: SocketAddr,
    faults: Faults,
    seed: u64,
    /// Whether exchanges are kept (`Proxy::recording`).
    record: bool,
    mutable: Mutex<Mutable>,
}

#[derive(Default)]
struct Mutable {
    stats: ProxyStats,
    /// Request line -> times seen.
    seen: HashMap<String, u64>,
    token_requests: u64,
    storm: Option<(Instant, Instant)>,
    /// Request target of a page -> its chain's id (the chain's first target).
    chain_of: HashMap<String, String>,
    /// Chain id -> targets of its pages served so far, in order.
    chains: HashMap<String, Vec<String>>,
    /// Exchanges so far, in the order their answers came (when recording).
    exchanges: Vec<Exchange>,
}

impl Inner {
    fn state(&self) -> std::sync::MutexGuard<'_, Mutable> {
        self.mutable.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn count(&self, kind: FaultKind) {
        *self.state().stats.injected.entry(kind.name()).or_default() += 1;
    }

    /// Keeps `request` (as the client sent it) and the upstream's answer, when recording.
    fn record(&self, request: &Request, response: Option<&Response>) {
        if !self.record {
            return;
        }
        let exchange = Exchange {
            method: request.method.clone(),
            target: request.target.clone(),
            request_headers: request.headers.clone(),
            request_body: request.body.clone(),
            response: response.map(|r| Recorded {
                status: r.status,
                headers: r.headers.clone(),
                body: r.body.clone(),
            }),
        };
        self.state().exchanges.push(exchange);
    }
}

/// A running proxy on 127.0.0.1, served by a thread of its own (so synchronous tests can
/// use it); dropping it stops it.
pub struct Proxy {
    addr: SocketAddr,
    inner: Arc<Inner>,
    stop: Option<watch::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Proxies `upstream` (a loopback origin or base URL such as
    /// `http://127.0.0.1:4321/v3`) on a free port, injecting `faults` as `seed` draws them.
    pub fn start(upstream: &str, faults: Faults, seed: u64) -> anyhow::Result<Proxy> {
        Proxy::start_on(upstream, faults, seed, 0)
    }

    /// [`Proxy::start`] on `port` (0 picks a free one).
    pub fn start_on(upstream: &str, faults: Faults, seed: u64, port: u16) -> anyhow::Result<Proxy> {
        Proxy::launch(upstream, faults, seed, port, false)
    }

    /// A transparent proxy of `upstream` on a free port that keeps every exchange; take
    /// them with [`Proxy::exchanges`].
    pub fn recording(upstream: &str) -> anyhow::Result<Proxy> {
        Proxy::launch(upstream, Faults::none(), 0, 0, true)
    }

    fn launch(
        upstream: &str,
        faults: Faults,
        seed: u64,
        port: u16,
        record: bool,
    ) -> anyhow::Result<Proxy> {
        let url = url::Url::parse(upstream).with_context(|| format!("upstream {upstream:?}"))?;
        if url.scheme() != "http" {
            bail!("the upstream must be plain http, not {upstream}");
        }
        let loopback = match url.host() {
            Some(url::Host::Domain(host)) => host == "localhost",
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        };
        if !loopback {
            bail!("the upstream {upstream} is not on the loopback interface");
        }
        let upstream = url
            .socket_addrs(|| Some(80))?
            .into_iter()
            .find(|a| a.ip().is_loopback())
            .with_context(|| format!("the upstream {upstream} is not on the loopback interface"))?;
        let listener =
            std::net::TcpListener::bind(("127.0.0.1", port)).map_err(|e| bind_error(port, e))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Inner {
            upstream,
            faults,
            seed,
            record,
            mutable: Mutex::default(),
        });
        let (stop, stopped) = watch::channel(());
        let served = inner.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name("fault-proxy".into())
            .spawn(move || {
                runtime.block_on(async move {
                    if let Ok(listener) = TcpListener::from_std(listener) {
                        accept_loop(listener, served, stopped).await;
                    }
                });
            })?;
        Ok(Proxy {
            addr,
            inner,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The API base URL to give the connector.
    pub fn base_url(&self) -> String {
        format!("{}/v3", self.origin())
    }

    /// The token URL to give the connector.
    pub fn token_url(&self) -> String {
        format!("{}{TOKEN_PATH}", self.origin())
    }

    pub fn stats(&self) -> ProxyStats {
        self.inner.state().stats.clone()
    }

    /// The exchanges recorded since the last call (none unless started with
    /// [`Proxy::recording`]), in the order they were answered.
    pub fn exchanges(&self) -> Vec<Exchange> {
        std::mem::take(&mut self.inner.state().exchanges)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn accept_loop(listener: TcpListener, inner: Arc<Inner>, stop: watch::Receiver<()>) {
    crate::accept_until_stopped(listener, stop, |stream| {
        let inner = inner.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(IO_TIMEOUT * 3, serve(stream, &inner)).await;
        });
    })
    .await;
}

struct Request {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

struct Response {
    status: u16,
    reason: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn new(status: u16, reason: &str, content_type: &str, body: Vec<u8>) -> Response {
        Response {
            status,
            reason: reason.into(),
            headers: vec![("Content-Type".into(), content_type.into())],
            body,
        }
    }

    /// The head, announcing `content_length` bytes of body.
    fn head(&self, content_length: usize) -> Vec<u8> {
        let mut head = format!("HTTP/1.1 {} {}\r\n", self.status, self.reason);
        for (name, value) in &self.headers {
            if !is_hop_header(name) {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        head.push_str(&format!(
            "Content-Length: {content_length}\r\nConnection: close\r\n\r\n"
        ));
        head.into_bytes()
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = self.head(self.body.len());
        out.extend_from_slice(&self.body);
        out
    }
}

fn is_hop_header(name: &str) -> bool {
    [
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
    ]
    .iter()
    .any(|h| name.eq_ignore_ascii_case(h))
}

/// One request per connection: every answer says `Connection: close`.
async fn serve(mut client: TcpStream, inner: &Inner) -> anyhow::Result<()> {
    let request = tokio::time::timeout(IO_TIMEOUT, read_request(&mut client)).await??;
    let path = request.target.split('?').next().unwrap_or("").to_string();
    let is_api = path.starts_with("/v3/");
    let is_token = path == TOKEN_PATH;
    let faults = &inner.faults;
    let (draw, first_time) = {
        let mut state = inner.state();
        let line = format!("{} {}", request.method, request.target);
        let seen = state.seen.entry(line.clone()).or_default();
        *seen += 1;
        (hash(inner.seed, &line, *seen), *seen == 1)
    };

    if is_token && faults.has(FaultKind::Token5xx) {
        let n = {
            let mut state = inner.state();
            state.token_requests += 1;
            state.token_requests
        };
        if n % 3 != 0 {
            inner.count(FaultKind::Token5xx);
            let (status, reason) = if n % 3 == 1 {
                (503, "Service Unavailable")
            } else {
                (500, "Internal Server Error")
            };
            let body = format!(r#"{{"error":"server_error","error_description":"{reason}"}}"#);
            let response = Response::new(status, reason, "application/json", body.into_bytes());
            inner.record(&request, None);
            return write_all(&mut client, &response.bytes()).await;
        }
    }
    if is_api && faults.has(FaultKind::Storm429) && in_storm(inner) {
        inner.count(FaultKind::Storm429);
        let body = br#"{"error_key":"throttled","error_message":"Too Many Requests"}"#;
        let response = Response::new(429, "Too Many Requests", "application/json", body.to_vec());
        inner.record(&request, None);
        return write_all(&mut client, &response.bytes()).await;
    }

    // Chains are remembered by the targets the client asked for: a link back must name
    // a URL the client itself read, not the one the proxy rewrote its limit in.
    let asked = request.target.clone();
    // What the client sent, before the limit is lowered (kept only when recording).
    let sent = inner.record.then(|| Request {
        method: request.method.clone(),
        target: asked.clone(),
        headers: request.headers.clone(),
        body: request.body.clone(),
    });
    let mut forwarded = request;
    if let (true, Some(limit)) = (is_api, faults.page_limit) {
        forwarded.target = lower_limit(&forwarded.target, limit);
    }
    if is_api && faults.has(FaultKind::IgnoreFilters) {
        let stripped = without_params(&forwarded.target, &["updated_after", "updated_before"]);
        if stripped != forwarded.target {
            inner.count(FaultKind::IgnoreFilters);
            forwarded.target = stripped;
        }
    }
    let upstream = tokio::time::timeout(IO_TIMEOUT, forward(inner.upstream, &forwarded)).await;
    inner.state().stats.forwarded += 1;
    if let Some(sent) = &sent {
        inner.record(sent, upstream.as_ref().ok().and_then(|r| r.as_ref().ok()));
    }
    let mut response = match upstream {
        Ok(Ok(response)) => response,
        _ => Response::new(
            502,
            "Bad Gateway",
            "text/plain",
            b"the proxy's upstream did not answer".to_vec(),
        ),
    };
    let page: Option<Value> = (is_api && response.status == 200)
        .then(|| serde_json::from_slice(&response.body).ok())
        .flatten();
    let next = page
        .as_ref()
        .and_then(|p| p.pointer("/_links/next/href"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let chain_pages = is_api.then(|| remember_page(inner, &asked, next.as_deref()));

    let chosen = faults
        .only_paths
        .as_ref()
        .is_none_or(|only| only.iter().any(|p| path.contains(p.as_str())));
    let faulted = is_api && chosen && response.status == 200 && unit(draw) < faults.rate;
    let applicable: Vec<FaultKind> = faults
        .kinds
        .iter()
        .copied()
        .filter(|k| k.per_response())
        .filter(|k| match k {
            FaultKind::DropRecords => {
                next.is_some()
                    && page
                        .as_ref()
                        .and_then(Value::as_object)
                        .is_some_and(|o| o.values().any(Value::is_array))
            }
            FaultKind::BadLink | FaultKind::CycleLink => next.is_some(),
            FaultKind::MissingArray => page
                .as_ref()
                .and_then(Value::as_object)
                .is_some_and(|o| o.values().any(Value::is_array)),
            FaultKind::WrongType => page.as_ref().is_some_and(has_list_of_no_objects),
            FaultKind::ShortLastPage | FaultKind::ShortLastPageOnce => {
                next.is_none()
                    && (first_time || *k == FaultKind::ShortLastPage)
                    && page
                        .as_ref()
                        .and_then(Value::as_object)
                        .is_some_and(|o| o.values().any(has_objects))
            }
            FaultKind::ThinIdLists => page.as_ref().is_some_and(|p| !id_lists(p).is_empty()),
            _ => true,
        })
        .collect();
    if !faulted || applicable.is_empty() {
        return write_all(&mut client, &response.bytes()).await;
    }
    let pick = hash(inner.seed ^ 0x5EED, &forwarded.target, draw);
    let kind = applicable[(pick % applicable.len() as u64) as usize];
    inner.count(kind);
    let half = response.body.len() / 2;
    match kind {
        FaultKind::Reset | FaultKind::Close | FaultKind::Stall => {
            let mut out = response.head(response.body.len());
            out.extend_from_slice(&response.body[..half]);
            tokio::time::timeout(IO_TIMEOUT, async {
                client.write_all(&out).await?;
                client.flush().await
            })
            .await??;
            match kind {
                FaultKind::Reset => {
                    // A zero linger makes the close a reset; it does not block (the
                    // deprecation is about positive lingers).
                    #[allow(deprecated)]
                    client.set_linger(Some(Duration::ZERO))?;
                }
                FaultKind::Stall => {
                    tokio::time::sleep(faults.stall).await;
                    client.shutdown().await?;
                }
                _ => client.shutdown().await?,
            }
            Ok(())
        }
        FaultKind::Truncate => {
            response.body.truncate(half);
            write_all(&mut client, &response.bytes()).await
        }
        FaultKind::Html => {
            let body = b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\
                <body><h1>Bad Gateway</h1><p>The upstream server is temporarily unavailable.</p>\
                </body></html>\n";
            let response = Response::new(200, "OK", "text/html; charset=utf-8", body.to_vec());
            write_all(&mut client, &response.bytes()).await
        }
        FaultKind::DropRecords
        | FaultKind::MissingArray
        | FaultKind::WrongType
        | FaultKind::BadLink
        | FaultKind::CycleLink
        | FaultKind::ShortLastPage
        | FaultKind::ShortLastPageOnce
        | FaultKind::ThinIdLists => {
            let mut page = page.unwrap_or_default();
            match kind {
                FaultKind::ThinIdLists => {
                    for (record, field) in id_lists(&page) {
                        page[record.0.as_str()][record.1][field.as_str()]
                            .as_array_mut()
                            .map(Vec::pop);
                    }
                }
                FaultKind::ShortLastPage | FaultKind::ShortLastPageOnce => {
                    if let Some(o) = page.as_object_mut() {
                        for value in o.values_mut() {
                            if has_objects(value) {
                                value.as_array_mut().map(Vec::pop);
                            }
                        }
                    }
                }
                FaultKind::DropRecords | FaultKind::MissingArray => {
                    if let Some(o) = page.as_object_mut() {
                        o.retain(|_, v| !v.is_array());
                    }
                }
                FaultKind::WrongType => not_a_list(&mut page),
                FaultKind::BadLink => page["_links"]["next"]["href"] = 12345.into(),
                _ => {
                    let pages = chain_pages.unwrap_or_default();
                    let earlier = pages
                        .get((pick / 7 % pages.len().max(1) as u64) as usize)
                        .cloned()
                        .unwrap_or_else(|| asked.clone());
                    page["_links"]["next"]["href"] = earlier.into();
                }
            }
            response.body = serde_json::to_vec(&page)?;
            write_all(&mut client, &response.bytes()).await
        }
        FaultKind::Storm429 | FaultKind::Token5xx | FaultKind::IgnoreFilters => {
            unreachable!("not drawn per response")
        }
    }
}

/// Where a page's records hold non-empty lists of ids: ((records key, record index),
/// field).
fn id_lists(page: &Value) -> Vec<((String, usize), String)> {
    let Some(page) = page.as_object() else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for (key, records) in page.iter().filter(|(_, v)| has_objects(v)) {
        for (index, record) in records.as_array().into_iter().flatten().enumerate() {
            for (field, value) in record.as_object().into_iter().flatten() {
                let ids = value
                    .as_array()
                    .is_some_and(|items| !items.is_empty() && items.iter().all(Value::is_string));
                if ids {
                    found.push(((key.clone(), index), field.clone()));
                }
            }
        }
    }
    found
}

/// Whether `value` is an array of records (objects).
fn has_objects(value: &Value) -> bool {
    value
        .as_array()
        .is_some_and(|items| items.first().is_some_and(Value::is_object))
}

/// Whether the 429 storm is on now (it is timed from the first API request).
fn in_storm(inner: &Inner) -> bool {
    let now = Instant::now();
    let mut state = inner.state();
    let (start, end) = *state.storm.get_or_insert_with(|| {
        let start = now + inner.faults.storm_after;
        (start, start + inner.faults.storm_for)
    });
    start <= now && now < end
}

/// Records a served page in its chain and returns the chain's pages so far (this one
/// included).
fn remember_page(inner: &Inner, target: &str, next: Option<&str>) -> Vec<String> {
    let mut state = inner.state();
    let chain = state
        .chain_of
        .get(target)
        .cloned()
        .unwrap_or_else(|| target.to_string());
    let pages = state.chains.entry(chain.clone()).or_default();
    if !pages.iter().any(|p| p == target) {
        pages.push(target.to_string());
    }
    let pages = pages.clone();
    if let Some(next) = next {
        state.chain_of.insert(next.to_string(), chain);
    }
    pages
}

/// `target` with its `limit` query parameter lowered to at most `max`.
fn lower_limit(target: &str, max: u32) -> String {
    let Some((path, query)) = target.split_once('?') else {
        return target.to_string();
    };
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some(("limit", n)) => match n.parse::<u32>() {
                Ok(n) if n > max => format!("limit={max}"),
                _ => pair.to_string(),
            },
            _ => pair.to_string(),
        })
        .collect();
    format!("{path}?{}", query.join("&"))
}

/// `target` without the query parameters named in `names`.
fn without_params(target: &str, names: &[&str]) -> String {
    let Some((path, query)) = target.split_once('?') else {
        return target.to_string();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| !names.contains(&pair.split_once('=').map_or(*pair, |(k, _)| k)))
        .collect();
    if kept.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", kept.join("&"))
    }
}

/// Whether `value` holds an array with no object in it (what [`not_a_list`] breaks).
fn has_list_of_no_objects(value: &Value) -> bool {
    match value {
        Value::Array(items) => {
            !items.iter().any(Value::is_object) || items.iter().any(has_list_of_no_objects)
        }
        Value::Object(map) => map.values().any(has_list_of_no_objects),
        _ => false,
    }
}

/// Every array in `value` that holds no object becomes the string `"not-a-list"`.
fn not_a_list(value: &mut Value) {
    match value {
        Value::Array(items) if !items.iter().any(Value::is_object) => {
            *value = Value::String("not-a-list".into());
        }
        Value::Array(items) => items.iter_mut().for_each(not_a_list),
        Value::Object(map) => map.values_mut().for_each(not_a_list),
        _ => {}
    }
}

/// FNV-1a over the seed, the text and the occurrence, finished by splitmix64.
fn hash(seed: u64, text: &str, n: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
    for b in text.bytes().chain(n.to_le_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h = h.wrapping_add(0x9E37_79B9_7F4A_7C15);
    h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    h ^ (h >> 31)
}

/// A draw in [0, 1).
fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

async fn write_all(stream: &mut TcpStream, bytes: &[u8]) -> anyhow::Result<()> {
    tokio::time::timeout(IO_TIMEOUT, async {
        stream.write_all(bytes).await?;
        stream.flush().await?;
        stream.shutdown().await
    })
    .await??;
    Ok(())
}

/// Reads until the end of the head; returns the head and what came after it.
async fn read_head(stream: &mut TcpStream) -> anyhow::Result<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            return Ok((head, buf[end + 4..].to_vec()));
        }
        if buf.len() > MAX_HEAD {
            bail!("head too large");
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            bail!("connection closed before the end of the head");
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn parse_headers<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<(String, String)> {
    lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_string(), value.trim().to_string()))
        .collect()
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn content_length(headers: &[(String, String)]) -> anyhow::Result<Option<usize>> {
    let Some(value) = header(headers, "content-length") else {
        return Ok(None);
    };
    let n: usize = value.parse().context("Content-Length")?;
    if n > MAX_BODY {
        bail!("body too large");
    }
    Ok(Some(n))
}

async fn read_request(stream: &mut TcpStream) -> anyhow::Result<Request> {
    let (head, mut body) = read_head(stream).await?;
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or("").split(' ');
    let (Some(method), Some(target)) = (request_line.next(), request_line.next()) else {
        bail!("bad request line");
    };
    let headers = parse_headers(lines);
    if header(&headers, "transfer-encoding").is_some() {
        bail!("chunked request bodies are not supported");
    }
    let length = content_length(&headers)?.unwrap_or(0);
    let mut chunk = [0u8; 8192];
    while body.len() < length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            bail!("the request body broke off");
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    Ok(Request {
        method: method.to_string(),
        target: target.to_string(),
        headers,
        body,
    })
}

/// Sends `request` upstream on a connection of its own and reads the whole answer.
async fn forward(upstream: SocketAddr, request: &Request) -> anyhow::Result<Response> {
    let mut stream = TcpStream::connect(upstream).await?;
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: {upstream}\r\n",
        request.method, request.target
    );
    for (name, value) in &request.headers {
        if !is_hop_header(name) && !name.eq_ignore_ascii_case("host") {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    if !request.body.is_empty() || request.method != "GET" {
        head.push_str(&format!("Content-Length: {}\r\n", request.body.len()));
    }
    head.push_str("Connection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&request.body).await?;
    stream.flush().await?;

    let (head, mut rest) = read_head(&mut stream).await?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let _version = parts.next();
    let status: u16 = parts.next().unwrap_or("").parse().context("status")?;
    let reason = parts.next().unwrap_or("").to_string();
    let headers = parse_headers(lines);
    let chunked = header(&headers, "transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let length = content_length(&headers)?;
    let mut chunk = [0u8; 16384];
    loop {
        if !chunked && length.is_some_and(|n| rest.len() >= n) {
            break;
        }
        if rest.len() > MAX_BODY {
            bail!("body too large");
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        rest.extend_from_slice(&chunk[..n]);
    }
    let body = if chunked {
        dechunk(&rest)?
    } else {
        match length {
            Some(n) if rest.len() < n => bail!("the upstream body broke off"),
            Some(n) => rest[..n].to_vec(),
            None => rest,
        }
    };
    Ok(Response {
        status,
        reason,
        headers,
        body,
    })
}

fn dechunk(mut raw: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let end = find(raw, b"\r\n").context("chunk size line")?;
        let size_text = String::from_utf8_lossy(&raw[..end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .context("chunk size")?;
        raw = &raw[end + 2..];
        if size == 0 {
            return Ok(body);
        }
        if raw.len() < size + 2 {
            bail!("a chunk broke off");
        }
        body.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        let f = Faults::parse("reset+truncate@0.2").unwrap();
        assert_eq!(f.kinds, [FaultKind::Reset, FaultKind::Truncate]);
        assert_eq!(f.rate, 0.2);
        assert_eq!(Faults::parse("storm429").unwrap().rate, 0.15);
        assert!(Faults::parse("none").unwrap().kinds.is_empty());
        assert!(Faults::parse("melt").is_err());
        assert!(Faults::parse("reset@2").is_err());
        let remote = Proxy::start("http://example.com/v3", Faults::none(), 1);
        assert!(remote.err().unwrap().to_string().contains("loopback"));
        for kind in FaultKind::ALL {
            assert_eq!(Faults::parse(kind.name()).unwrap().kinds, [kind]);
        }
    }

    #[test]
    fn limits_are_lowered_and_draws_are_uniform() {
        assert_eq!(lower_limit("/v3/a?limit=500&x=1", 50), "/v3/a?limit=50&x=1");
        assert_eq!(lower_limit("/v3/a?limit=10", 50), "/v3/a?limit=10");
        assert_eq!(lower_limit("/v3/a", 50), "/v3/a");
        assert_eq!(
            without_params(
                "/v3/contacts?updated_after=x&limit=5&updated_before=y",
                &["updated_after", "updated_before"]
            ),
            "/v3/contacts?limit=5"
        );
        assert_eq!(
            without_params("/v3/a?updated_after=x", &["updated_after"]),
            "/v3/a"
        );
        let mut page = serde_json::json!({"rows": [{"ids": ["a"], "n": [], "o": [{}]}], "x": [1]});
        assert!(has_list_of_no_objects(&page));
        not_a_list(&mut page);
        assert_eq!(
            page,
            serde_json::json!({"rows": [{"ids": "not-a-list", "n": "not-a-list", "o": [{}]}],
                "x": "not-a-list"})
        );
        assert!(!has_list_of_no_objects(
            &serde_json::json!({"rows": [{"o": [{}]}]})
        ));
        let hits = (0..10_000)
            .filter(|n| unit(hash(7, "GET /v3/contacts", *n)) < 0.15)
            .count();
        assert!((1200..1800).contains(&hits), "{hits}");
        assert_eq!(
            dechunk(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").unwrap(),
            b"abcde"
        );
    }
}

#[cfg(test)]
mod through_a_sandbox {
    use super::*;
    use crate::{Sandbox, SandboxOptions};
    use reqwest::Client;

    async fn token(http: &Client, sandbox: &Sandbox, token_url: &str) -> reqwest::Response {
        let creds = sandbox.connector_config()["credentials"].clone();
        http.post(token_url)
            .basic_auth(
                creds["client_id"].as_str().unwrap(),
                creds["client_secret"].as_str(),
            )
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", creds["refresh_token"].as_str().unwrap()),
            ])
            .send()
            .await
            .unwrap()
    }

    async fn sandbox() -> Sandbox {
        let opts = SandboxOptions {
            contacts: 120,
            rps: 1000,
            ..SandboxOptions::default()
        };
        Sandbox::start(opts).await.unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_clean_proxy_is_transparent_and_pages_link_through_it() {
        let sandbox = sandbox().await;
        let mut faults = Faults::none();
        faults.page_limit = Some(50);
        let proxy = Proxy::start(&sandbox.base_url(), faults, 1).unwrap();
        let http = Client::new();
        let tokens: Value = token(&http, &sandbox, &proxy.token_url())
            .await
            .json()
            .await
            .unwrap();
        let access = tokens["access_token"].as_str().unwrap();
        let mut url = format!("{}/contacts?limit=500&status=all", proxy.base_url());
        let mut seen = 0;
        for _ in 0..10 {
            let page: Value = http
                .get(&url)
                .bearer_auth(access)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            seen += page["contacts"].as_array().unwrap().len();
            match page.pointer("/_links/next/href").and_then(Value::as_str) {
                Some(href) => url = format!("{}{href}", proxy.origin()),
                None => break,
            }
        }
        assert_eq!(seen, sandbox.expected_counts()["contacts"]);
        assert_eq!(
            proxy.stats().forwarded,
            4,
            "120 contacts in pages of 50, plus the token"
        );
        assert!(proxy.stats().injected.is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_recording_proxy_keeps_each_request_and_answer() {
        let sandbox = sandbox().await;
        let http = Client::new();
        let proxy = Proxy::recording(&sandbox.base_url()).unwrap();
        let tokens: Value = token(&http, &sandbox, &proxy.token_url())
            .await
            .json()
            .await
            .unwrap();
        let access = tokens["access_token"].as_str().unwrap();
        let url = format!("{}/contacts?limit=50", proxy.base_url());
        let page: Value = http
            .get(&url)
            .bearer_auth(access)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let exchanges = proxy.exchanges();
        assert_eq!(exchanges.len(), 2, "the token and the page");
        assert_eq!(exchanges[0].method, "POST");
        assert_eq!(exchanges[0].target, TOKEN_PATH);
        assert!(!exchanges[0].request_body.is_empty());
        let get = &exchanges[1];
        assert_eq!(
            (get.method.as_str(), get.target.as_str()),
            ("GET", "/v3/contacts?limit=50")
        );
        let answer = get.response.as_ref().unwrap();
        assert_eq!(answer.status, 200);
        assert!(answer
            .header("Content-Type")
            .unwrap()
            .starts_with("application/json"));
        assert_eq!(serde_json::from_slice::<Value>(&answer.body).unwrap(), page);
        assert!(proxy.exchanges().is_empty(), "taken once");

        // A proxy started without recording keeps nothing.
        let plain = Proxy::start(&sandbox.base_url(), Faults::none(), 1).unwrap();
        let _ = http
            .get(format!("{}/contacts?limit=50", plain.base_url()))
            .bearer_auth(access)
            .send()
            .await
            .unwrap();
        assert!(plain.exchanges().is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn faults_break_answers_as_configured() {
        let sandbox = sandbox().await;
        let http = Client::new();
        // Token errors: two of three token requests fail without reaching the sandbox.
        let proxy =
            Proxy::start(&sandbox.base_url(), Faults::parse("token5xx").unwrap(), 1).unwrap();
        let statuses = [
            token(&http, &sandbox, &proxy.token_url())
                .await
                .status()
                .as_u16(),
            token(&http, &sandbox, &proxy.token_url())
                .await
                .status()
                .as_u16(),
        ];
        assert_eq!(statuses, [503, 500]);
        let ok: Value = token(&http, &sandbox, &proxy.token_url())
            .await
            .json()
            .await
            .unwrap();
        let access = ok["access_token"].as_str().unwrap().to_string();
        assert_eq!(proxy.stats().injected["token5xx"], 2);

        let get = |proxy: &Proxy| {
            http.get(format!("{}/contacts?limit=50", proxy.base_url()))
                .bearer_auth(&access)
                .send()
        };
        let truncate =
            Proxy::start(&sandbox.base_url(), Faults::parse("truncate@1").unwrap(), 1).unwrap();
        let body = get(&truncate).await.unwrap().bytes().await.unwrap();
        assert!(serde_json::from_slice::<Value>(&body).is_err());
        assert!(body.starts_with(b"{"));

        let html = Proxy::start(&sandbox.base_url(), Faults::parse("html@1").unwrap(), 1).unwrap();
        let answer = get(&html).await.unwrap();
        assert_eq!(answer.status(), 200);
        assert!(answer.text().await.unwrap().contains("Bad Gateway"));

        for kind in ["reset", "close"] {
            let broken = Proxy::start(
                &sandbox.base_url(),
                Faults::parse(&format!("{kind}@1")).unwrap(),
                1,
            )
            .unwrap();
            let answer = get(&broken).await.unwrap();
            assert!(answer.bytes().await.is_err(), "{kind}: the body breaks off");
        }

        let dropped = Proxy::start(
            &sandbox.base_url(),
            Faults::parse("drop-records@1").unwrap(),
            1,
        )
        .unwrap();
        let page: Value = get(&dropped).await.unwrap().json().await.unwrap();
        assert!(page.get("contacts").is_none());
        assert!(page.pointer("/_links/next/href").is_some());

        let bad =
            Proxy::start(&sandbox.base_url(), Faults::parse("bad-link@1").unwrap(), 1).unwrap();
        let page: Value = get(&bad).await.unwrap().json().await.unwrap();
        assert_eq!(page["_links"]["next"]["href"], 12345);

        // A cycle: the first page links to itself; later pages to a page already served.
        let cycle = Proxy::start(
            &sandbox.base_url(),
            Faults::parse("cycle-link@1").unwrap(),
            1,
        )
        .unwrap();
        let page: Value = get(&cycle).await.unwrap().json().await.unwrap();
        assert_eq!(page["_links"]["next"]["href"], "/v3/contacts?limit=50");
        // With limits lowered, the link back names the URL the client asked for.
        let mut lowered = Faults::parse("cycle-link@1").unwrap();
        lowered.page_limit = Some(20);
        let lowered = Proxy::start(&sandbox.base_url(), lowered, 1).unwrap();
        let page: Value = get(&lowered).await.unwrap().json().await.unwrap();
        assert_eq!(page["contacts"].as_array().unwrap().len(), 20);
        assert_eq!(page["_links"]["next"]["href"], "/v3/contacts?limit=50");

        let mut storm = Faults::parse("storm429").unwrap();
        storm.storm_after = Duration::ZERO;
        storm.storm_for = Duration::from_millis(500);
        let storm = Proxy::start(&sandbox.base_url(), storm, 1).unwrap();
        let answer = get(&storm).await.unwrap();
        assert_eq!(answer.status(), 429);
        assert!(answer.headers().get("retry-after").is_none());
        assert_eq!(
            answer.json::<Value>().await.unwrap(),
            serde_json::json!({"error_key": "throttled", "error_message": "Too Many Requests"})
        );
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(get(&storm).await.unwrap().status(), 200);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stalled_body_ends_after_the_stall() {
        let sandbox = sandbox().await;
        let http = Client::new();
        let mut faults = Faults::parse("stall@1").unwrap();
        faults.stall = Duration::from_millis(300);
        let proxy = Proxy::start(&sandbox.base_url(), faults, 1).unwrap();
        // The token endpoint is not an API page: it passes unbroken.
        let tokens: Value = token(&http, &sandbox, &proxy.token_url())
            .await
            .json()
            .await
            .unwrap();
        let started = Instant::now();
        let answer = http
            .get(format!("{}/contacts", proxy.base_url()))
            .bearer_auth(tokens["access_token"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        assert!(answer.bytes().await.is_err(), "the body never completes");
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_secs(5),
            "{took:?}"
        );
        assert_eq!(proxy.stats().injected["stall"], 1);
    }
}
