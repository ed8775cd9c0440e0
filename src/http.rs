//! The one HTTP client for API requests: every request waits for the shared
//! rate limiter (the account's limit covers all streams together), carries a
//! current token, and is retried on 5xx, timeouts, connection errors and
//! broken or malformed bodies with exponential backoff and jitter, a bounded
//! number of times. A 429 says which limit it hit only in its body's
//! `error_key`: the per-second throttle pauses every stream and is retried
//! within a time budget; the daily quota stops the run.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Days, SecondsFormat, Utc};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use rand::Rng;
use reqwest::StatusCode;
use serde_json::Value;
use url::Url;

use crate::auth::Auth;
use crate::diagnostics::Diagnostics;
use crate::error::{Error, Result, RunStop};
use crate::user_agent::USER_AGENT;

/// Added to the spacing between requests; see `ApiClient::new`.
const SPACING_MARGIN: Duration = Duration::from_millis(5);

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts per request, the first included.
    pub attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// How long one request may keep drawing 429s before it fails.
    pub throttle_budget: Duration,
}

impl RetryPolicy {
    /// For syncs: ride out a few minutes of trouble before giving up.
    pub const SYNC: RetryPolicy = RetryPolicy {
        attempts: 8,
        base_delay: Duration::from_millis(500),
        max_delay: Duration::from_secs(60),
        throttle_budget: Duration::from_secs(10 * 60),
    };
    /// For `check`: a wrong URL should be reported in seconds, not minutes.
    pub const CHECK: RetryPolicy = RetryPolicy {
        attempts: 2,
        base_delay: Duration::from_millis(500),
        max_delay: Duration::from_secs(5),
        throttle_budget: Duration::from_secs(10),
    };

    /// Full jitter over an exponentially growing ceiling.
    fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self
            .base_delay
            .saturating_mul(1 << attempt.min(16))
            .min(self.max_delay);
        ceiling.mul_f64(rand::thread_rng().gen_range(0.5..=1.0))
    }

    /// The pause after the `throttled`-th per-second throttle of one request
    /// in a row (1 for the first). The API sends no `Retry-After` and no rate
    /// headers, so the schedule is ours: never less than the one-second
    /// window the limit counts in, doubling while the 429s go on, at most
    /// `max_delay`, with a little jitter.
    fn throttle_pause(&self, throttled: u32) -> Duration {
        let ceiling = THROTTLE_WINDOW
            .saturating_mul(1 << (throttled.max(1) - 1).min(16))
            .min(self.max_delay.max(THROTTLE_WINDOW));
        ceiling.mul_f64(rand::thread_rng().gen_range(1.0..=1.25))
    }
}

/// The window the API's per-second limit counts requests in.
const THROTTLE_WINDOW: Duration = Duration::from_secs(1);

/// A successful response and how many HTTP requests it took.
pub struct Response {
    pub body: Value,
    pub requests: u32,
}

pub struct ApiClient {
    http: reqwest::Client,
    base: Url,
    auth: Arc<Auth>,
    limiter: DefaultDirectRateLimiter,
    retry: RetryPolicy,
    diagnostics: Diagnostics,
    /// What this run may still spend, and what stops it (shared by all
    /// streams: once the quota or the budget is spent, no stream asks again).
    spending: Spending,
    /// Set by a per-second throttle: no stream sends before this moment.
    /// The limit belongs to the API key, so the 429 one stream drew says the
    /// others' next requests would draw one too.
    paused_until: Mutex<Option<tokio::time::Instant>>,
}

/// Requests a day the API allows one API key, shared by every application
/// using the key. The API does not say how many are left.
pub const DAILY_REQUEST_QUOTA: u64 = 10_000;

/// What the config allows: requests per second (shared by all streams) and
/// per run.
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    pub per_second: u32,
    pub per_run: Option<u64>,
}

/// The run's requests at one moment, for progress displays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestsSpent {
    /// Attempts that have passed the rate limiter and gone out: never more
    /// than the limiter allows, whatever number of requests waits in it.
    pub sent: u64,
    /// `max_requests_per_run`, if set.
    pub budget: Option<u64>,
    /// The API said the key's daily quota is spent (a quota 429).
    pub quota_spent: bool,
}

/// The run's requests against its limits.
struct Spending {
    /// `max_requests_per_run`, if set.
    budget: Option<u64>,
    /// Attempts counted against the budget, from before they wait in the
    /// rate limiter (so that requests waiting together cannot overrun it).
    reserved: AtomicU64,
    /// Attempts that have passed the rate limiter.
    sent: AtomicU64,
    /// Set once the API says the daily quota is spent, with the error to repeat.
    stopped: Mutex<Option<Error>>,
}

impl Spending {
    /// Counts one request, or says why none may be sent.
    fn spend(&self) -> Result<()> {
        if let Some(error) = self
            .stopped
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            return Err(error);
        }
        let reserved = self.reserved.fetch_add(1, Ordering::SeqCst);
        match self.budget {
            Some(budget) if reserved >= budget => {
                self.reserved.fetch_sub(1, Ordering::SeqCst);
                Err(Error::system(format!(
                    "the run spent its budget of {budget} requests (max_requests_per_run); \
                     the next run continues from the saved state"
                ))
                .stopping(RunStop::BudgetSpent))
            }
            _ => Ok(()),
        }
    }

    fn stop(&self, error: &Error) {
        self.stopped
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert_with(|| error.clone());
    }
}

/// Why one attempt failed, and whether another may succeed.
enum Attempt {
    Retry {
        reason: String,
        wait: Option<Duration>,
    },
    /// The per-second limit (429 `throttled`): retried within the throttle
    /// budget, after a pause of every stream.
    Throttled {
        reason: String,
        /// A `Retry-After` a proxy may add; the API itself sends none.
        wait: Option<Duration>,
    },
    Fail(Error),
}

impl ApiClient {
    pub fn new(
        base: Url,
        limits: RequestLimits,
        auth: Arc<Auth>,
        retry: RetryPolicy,
        diagnostics: Diagnostics,
    ) -> Result<Self> {
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| Error::system(format!("cannot build HTTP client: {e}")))?;
        let rate = NonZeroU32::new(limits.per_second)
            .ok_or_else(|| Error::config("requests_per_second must be at least 1"))?;
        // Evenly spaced, no burst: a burst would put more than `rate`
        // requests into some one-second window and draw 429s. The small
        // margin absorbs jitter between sending and the server's clock.
        let period = (Duration::from_secs(1) / rate.get()).mul_f64(1.02) + SPACING_MARGIN;
        let quota = Quota::with_period(period)
            .expect("period is positive")
            .allow_burst(NonZeroU32::MIN);
        Ok(ApiClient {
            http,
            base,
            auth,
            limiter: RateLimiter::direct(quota),
            retry,
            diagnostics,
            spending: Spending {
                budget: limits.per_run,
                reserved: AtomicU64::new(0),
                sent: AtomicU64::new(0),
                stopped: Mutex::new(None),
            },
            paused_until: Mutex::new(None),
        })
    }

    /// Requests this client has sent so far against its limits, for
    /// progress displays: read-only, it changes nothing.
    pub fn requests_spent(&self) -> RequestsSpent {
        let stopped = self
            .spending
            .stopped
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        RequestsSpent {
            sent: self.spending.sent.load(Ordering::Relaxed),
            budget: self.spending.budget,
            quota_spent: stopped
                .as_ref()
                .is_some_and(|error| error.stops_run == Some(RunStop::QuotaSpent)),
        }
    }

    /// `path` (e.g. `/contacts`) under the configured base URL, with `params`.
    pub fn endpoint(&self, path: &str, params: &[(&str, String)]) -> Url {
        let mut url = self.base.clone();
        let joined = format!("{}{}", self.base.path().trim_end_matches('/'), path);
        url.set_path(&joined);
        if !params.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())));
        }
        url
    }

    /// A `_links.next.href`: host-relative and already carrying `/v3`, so it
    /// is joined to the base URL's origin, not to its path.
    /// Links to another host are refused: the token must not travel there.
    pub fn resolve_link(&self, href: &str) -> Result<Url> {
        let url = self
            .base
            .join(href)
            .map_err(|e| Error::system(format!("the page link {href:?} is not a URL: {e}")))?;
        if url.origin() != self.base.origin() {
            return Err(Error::system(format!(
                "the page link {href:?} leaves the API host {}; refusing to follow it",
                self.base.origin().ascii_serialization()
            )));
        }
        Ok(url)
    }

    /// GETs `url` as JSON, retrying what can be retried.
    pub async fn get_json(&self, url: &Url) -> Result<Response> {
        self.get_checked(url, &|_| Ok(())).await
    }

    /// GETs `url` as JSON whose shape `check` accepts. A body that breaks
    /// off, is not JSON or fails `check` is retried like a server error:
    /// a proxy or the API can garble one answer and give the next one whole.
    pub async fn get_checked(&self, url: &Url, check: &BodyCheck<'_>) -> Result<Response> {
        let (body, requests) = self
            .send(&Call::get(url, "application/json"), |response| async move {
                let body = read_body(response).await?;
                check(&body).map_err(|problem| format!("the API answered 200 but {problem}"))?;
                Ok(body)
            })
            .await?;
        Ok(Response { body, requests })
    }

    /// GETs `url` as JSON text that `parse` turns into a `T` (a page read
    /// without a value per record), retried like [`Self::get_checked`] when
    /// the text is not JSON or `parse` refuses it.
    pub async fn get_parsed<T>(&self, url: &Url, parse: &BodyParse<'_, T>) -> Result<(T, u32)> {
        self.send(&Call::get(url, "application/json"), |response| async move {
            let text = read_text(response).await?;
            // Only for the message, and per page: cheap next to the page.
            let start: String = text.chars().take(80).collect();
            parse(text).map_err(|error| match error {
                BodyError::NotJson(e) => not_json(&e, start),
                BodyError::Problem(problem) => format!("the API answered 200 but {problem}"),
            })
        })
        .await
    }

    /// POSTs `body` as JSON to `url` and returns the JSON answer (200, 201
    /// or 202). Not idempotent: the request is sent again only when the API
    /// cannot have acted on it (the connection was never made, a 429, or a
    /// 401 answered before the token was refreshed); a 5xx, a timeout or a
    /// body that breaks off after the request went out fail at once, since
    /// sending it again could start a second job.
    pub async fn post_json(&self, url: &Url, body: &Value) -> Result<Response> {
        let call = Call {
            method: reqwest::Method::POST,
            url,
            body: Some(body),
            accept: "application/json",
        };
        let (body, requests) = self.send(&call, read_body).await?;
        Ok(Response { body, requests })
    }

    /// GETs `url` accepting `accept` (`text/csv`), retried like any GET until
    /// a 200's headers arrive; the body is the caller's to read (stream it
    /// with `chunk()`: files can be large).
    pub async fn get_raw(&self, url: &Url, accept: &str) -> Result<(reqwest::Response, u32)> {
        self.send(
            &Call::get(url, accept),
            |response| async move { Ok(response) },
        )
        .await
    }

    /// The one request loop: the budget, the shared rate limiter, a current
    /// token, and retries of what can be retried. `read` turns a successful
    /// answer into the result, or says why it is broken (retried like a 5xx
    /// for a GET; final for a POST).
    async fn send<T, F, Fut>(&self, call: &Call<'_>, read: F) -> Result<(T, u32)>
    where
        F: Fn(reqwest::Response) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, String>>,
    {
        let what = format!("{} {}", call.method, call.url.path());
        let idempotent = call.method == reqwest::Method::GET;
        let mut token = self.auth.access_token().await?;
        let mut refreshed = false;
        let mut requests = 0;
        let mut failures = 0;
        let mut throttled = 0;
        let mut throttled_since: Option<Instant> = None;
        loop {
            self.wait_out_pause().await;
            self.spending.spend()?;
            self.limiter.until_ready().await;
            self.spending.sent.fetch_add(1, Ordering::Relaxed);
            requests += 1;
            let mut request = self
                .http
                .request(call.method.clone(), call.url.clone())
                .bearer_auth(token.expose())
                .header(reqwest::header::ACCEPT, call.accept);
            if let Some(body) = call.body {
                request = request.json(body);
            }
            let attempt = match request.send().await {
                // Not connected: the request never reached the API, so even
                // a POST may go again.
                Err(e) if idempotent || e.is_connect() => Attempt::Retry {
                    reason: describe_reqwest(&e),
                    wait: None,
                },
                Err(e) => Attempt::Fail(Error::system(format!(
                    "{what}: {}; not sent again, since the API may have acted on it",
                    describe_reqwest(&e)
                ))),
                Ok(response) => match response.status() {
                    status if call.succeeded(status) => match read(response).await {
                        Ok(value) => return Ok((value, requests)),
                        Err(reason) if idempotent => Attempt::Retry { reason, wait: None },
                        Err(reason) => Attempt::Fail(Error::system(format!(
                            "{what}: {reason}; not sent again, since the API may have acted on it"
                        ))),
                    },
                    StatusCode::UNAUTHORIZED if !refreshed => {
                        refreshed = true;
                        token = self.auth.token_rejected(&token).await?;
                        continue;
                    }
                    status => match classify(&what, status, response).await {
                        Attempt::Retry { reason, .. } if !idempotent => {
                            Attempt::Fail(Error::system(format!(
                                "{what}: {reason}; not sent again, since the API may have \
                                 acted on it"
                            )))
                        }
                        attempt => attempt,
                    },
                },
            };
            match attempt {
                Attempt::Fail(error) => {
                    if error.stops_run.is_some() {
                        self.spending.stop(&error);
                    }
                    return Err(error);
                }
                Attempt::Throttled { reason, wait } => {
                    // Per-second throttling passes: it is retried for as long
                    // as the budget allows, not a number of times. A 429 means
                    // the API did not act, so a POST may go again too.
                    let since = *throttled_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= self.retry.throttle_budget {
                        return Err(Error::system(format!(
                            "{what} was still rate limited after {}s, giving up: {reason}",
                            self.retry.throttle_budget.as_secs()
                        )));
                    }
                    throttled += 1;
                    let wait = wait.unwrap_or_else(|| self.retry.throttle_pause(throttled));
                    self.diagnostics.warn(&format!(
                        "{what}: {reason}; every stream pauses, retrying in {:.1}s",
                        wait.as_secs_f64()
                    ));
                    self.pause_for(wait);
                }
                Attempt::Retry { reason, wait } => {
                    failures += 1;
                    if failures >= self.retry.attempts {
                        return Err(Error::system(format!(
                            "{what} failed {failures} times, giving up: {reason}"
                        )));
                    }
                    let wait = wait.unwrap_or_else(|| self.retry.backoff(failures - 1));
                    self.diagnostics.warn(&format!(
                        "{what}: {reason}; retry {failures} of {} in {:.1}s",
                        self.retry.attempts - 1,
                        wait.as_secs_f64()
                    ));
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// Holds every request back for `wait` from now (or longer, if another
    /// stream's throttle asked for longer).
    fn pause_for(&self, wait: Duration) {
        let until = tokio::time::Instant::now() + wait;
        let mut paused = self.paused_until.lock().unwrap_or_else(|p| p.into_inner());
        if paused.is_none_or(|current| current < until) {
            *paused = Some(until);
        }
    }

    /// Waits out the pause of the last per-second throttle, if any.
    async fn wait_out_pause(&self) {
        let until = *self.paused_until.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(until) = until {
            tokio::time::sleep_until(until).await;
        }
    }
}

/// One request to send (and maybe send again).
struct Call<'a> {
    method: reqwest::Method,
    url: &'a Url,
    body: Option<&'a Value>,
    accept: &'a str,
}

impl<'a> Call<'a> {
    fn get(url: &'a Url, accept: &'a str) -> Call<'a> {
        Call {
            method: reqwest::Method::GET,
            url,
            body: None,
            accept,
        }
    }

    /// A GET succeeds with 200 (a 202 says the result is not ready yet,
    /// and is asked again), or with the 209 the contract gives as the
    /// success of listing automations; a POST that creates a job answers 201
    /// or 202.
    fn succeeded(&self, status: StatusCode) -> bool {
        match self.method {
            reqwest::Method::GET => status == StatusCode::OK || status.as_u16() == 209,
            _ => matches!(
                status,
                StatusCode::OK | StatusCode::CREATED | StatusCode::ACCEPTED
            ),
        }
    }
}

/// Says what is wrong with a 200 body, if anything.
pub type BodyCheck<'a> = dyn Fn(&Value) -> std::result::Result<(), String> + Sync + 'a;

/// Turns a 200 body's text into what the caller wants, or says why it cannot.
pub type BodyParse<'a, T> = dyn Fn(String) -> std::result::Result<T, BodyError> + Sync + 'a;

/// Why a 200 body cannot be used.
pub enum BodyError {
    NotJson(serde_json::Error),
    /// JSON, but not what was asked for.
    Problem(String),
}

/// The whole body of a 200 answer as JSON, or why it could not be had.
async fn read_body(response: reqwest::Response) -> std::result::Result<Value, String> {
    let bytes = response
        .bytes()
        .await
        .map_err(|e| format!("the body broke off ({})", describe_reqwest(&e)))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        not_json(
            &e,
            String::from_utf8_lossy(&bytes).chars().take(80).collect(),
        )
    })
}

/// The whole body of a 200 answer as text, or why it could not be had (a
/// body that is not UTF-8 is not JSON either, and is reported as such).
async fn read_text(mut response: reqwest::Response) -> std::result::Result<String, String> {
    let broke_off = |e: reqwest::Error| format!("the body broke off ({})", describe_reqwest(&e));
    // Rounded up to a power of two: pages of nearly the same size then take
    // blocks of one size, which the allocator reuses; exact sizes leave
    // holes a slightly larger next page does not fit, and memory grows.
    let size = response.content_length().unwrap_or(0).min(64 << 20);
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0).next_power_of_two());
    while let Some(chunk) = response.chunk().await.map_err(broke_off)? {
        bytes.extend_from_slice(&chunk);
    }
    String::from_utf8(bytes).map_err(|e| {
        let bytes = e.into_bytes();
        let start = String::from_utf8_lossy(&bytes).chars().take(80).collect();
        match serde_json::from_slice::<Value>(&bytes) {
            Err(e) => not_json(&e, start),
            Ok(_) => format!("the API answered 200 with a body that is not UTF-8: {start:?}"),
        }
    })
}

fn not_json(error: &serde_json::Error, start: String) -> String {
    format!("the API answered 200 with a body that is not JSON ({error}): {start:?}")
}

/// Turns a non-200 answer into a retry or a final error that says what to do.
async fn classify(what: &str, status: StatusCode, response: reqwest::Response) -> Attempt {
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let body = ErrorBody::parse(&response.text().await.unwrap_or_default());
    let detail = body.detail();
    let code = status.as_u16();
    match status {
        StatusCode::TOO_MANY_REQUESTS => match body.limit() {
            RateLimit::DailyQuota => Attempt::Fail(quota_spent(what, &detail, Utc::now())),
            RateLimit::PerSecond => Attempt::Throttled {
                reason: format!("rate limited (429{detail})"),
                wait: retry_after,
            },
        },
        // 202: the API accepted the request but has not finished it yet.
        StatusCode::ACCEPTED => Attempt::Retry {
            reason: "the API is still preparing the result (202)".into(),
            wait: retry_after,
        },
        s if s.is_server_error() => Attempt::Retry {
            reason: format!("server error {code}{detail}"),
            wait: retry_after,
        },
        StatusCode::BAD_REQUEST => Attempt::Fail(Error {
            invalid_request: Some(body.messages),
            ..Error::system(format!("{what}: the API refused the request (400{detail})"))
        }),
        StatusCode::UNAUTHORIZED => Attempt::Fail(Error::config(format!(
            "{what}: the API rejected a freshly refreshed access token (401{detail}); \
             re-authorize the application"
        ))),
        StatusCode::FORBIDDEN => Attempt::Fail(Error {
            forbidden: true,
            ..Error::config(format!(
                "{what}: forbidden (403{detail}): the token lacks the scope or the user \
                 lacks the privilege this endpoint needs; re-authorize with scopes contact_data \
                 campaign_data account_read offline_access"
            ))
        }),
        StatusCode::NOT_FOUND => Attempt::Fail(Error {
            not_found: true,
            ..Error::config(format!(
                "{what}: not found (404{detail}); check that api_base_url points at the \
                 V3 API (https://api.cc.email/v3)"
            ))
        }),
        _ => Attempt::Fail(Error::system(format!(
            "{what}: unexpected response {code}{detail}"
        ))),
    }
}

/// The error that stops the run when the API key's daily quota is spent at
/// `now`: it names when the quota resets (the API counts the day from
/// 00:00:00 UTC and sends no `Retry-After`).
fn quota_spent(what: &str, detail: &str, now: DateTime<Utc>) -> Error {
    let resets = next_utc_midnight(now).to_rfc3339_opts(SecondsFormat::Secs, true);
    Error::system(format!(
        "{what}: the API key's daily request quota is spent (429{detail}); it resets at \
         {resets} (00:00 UTC), and the next run then resumes from the saved state"
    ))
    .stopping(RunStop::QuotaSpent)
}

/// The first 00:00:00 UTC after `now`.
fn next_utc_midnight(now: DateTime<Utc>) -> DateTime<Utc> {
    (now.date_naive() + Days::new(1))
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc()
}

/// The limit a 429 hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RateLimit {
    /// `throttled`: the API key's requests per second; passes in a second.
    PerSecond,
    /// `quota_exceeded`: the API key's requests per day; resets at 00:00 UTC.
    DailyQuota,
}

/// What an error answer's body says. The API writes `{error_key,
/// error_message}`: one object for gateway errors (authorization, limits),
/// an array of them for validation errors. Anything else is kept as the
/// start of its text.
#[derive(Debug)]
struct ErrorBody {
    keys: Vec<String>,
    messages: Vec<String>,
}

impl ErrorBody {
    fn parse(text: &str) -> ErrorBody {
        fn field(value: &Value, name: &str) -> Option<String> {
            value.get(name).and_then(Value::as_str).map(String::from)
        }
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Array(items)) => ErrorBody {
                keys: items.iter().filter_map(|i| field(i, "error_key")).collect(),
                messages: items
                    .iter()
                    .filter_map(|i| field(i, "error_message"))
                    .collect(),
            },
            Ok(object @ Value::Object(_)) => ErrorBody {
                keys: field(&object, "error_key").into_iter().collect(),
                messages: field(&object, "error_message")
                    .or_else(|| field(&object, "message"))
                    .into_iter()
                    .collect(),
            },
            _ => {
                let start: String = text.trim().chars().take(200).collect();
                ErrorBody {
                    keys: Vec::new(),
                    messages: (!start.is_empty()).then_some(start).into_iter().collect(),
                }
            }
        }
    }

    /// The messages, for an error text: `": first; second"`, or nothing.
    fn detail(&self) -> String {
        if self.messages.is_empty() {
            String::new()
        } else {
            format!(": {}", self.messages.join("; "))
        }
    }

    /// Which limit a 429 with this body hit: its `error_key` says. Only a
    /// body without a key this connector knows is judged by its wording.
    fn limit(&self) -> RateLimit {
        let has_key = |key: &str| self.keys.iter().any(|k| k == key);
        if has_key("quota_exceeded") {
            RateLimit::DailyQuota
        } else if has_key("throttled") {
            RateLimit::PerSecond
        } else if self.messages.iter().any(|m| names_daily_quota(m)) {
            RateLimit::DailyQuota
        } else {
            RateLimit::PerSecond
        }
    }
}

/// Whether a 429's message is about the day's quota rather than the
/// per-second rate: the fallback for bodies without a known `error_key`.
fn names_daily_quota(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    ["daily", "per day", "quota"]
        .iter()
        .any(|word| message.contains(word))
}

fn describe_reqwest(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    crate::error::with_causes(kind, error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LoadedConfig;
    use crate::scripted_server::{Answer, ScriptedServer};

    const THROTTLED: &str = r#"{"error_key": "throttled", "error_message": "Too Many Requests"}"#;
    const QUOTA: &str = r#"[{"error_key": "quota_exceeded", "error_message": "Limit Exceeded"}]"#;

    /// A client of `server` with a fixed access token.
    fn client(server: &ScriptedServer) -> ApiClient {
        client_at(server, 100)
    }

    /// [`client`] sending at most `per_second` requests a second.
    fn client_at(server: &ScriptedServer, per_second: u32) -> ApiClient {
        let config = LoadedConfig::from_value(serde_json::json!({
            "credentials": {"auth_type": "access_token", "access_token": "token"},
            "api_base_url": server.url.as_str(),
        }))
        .unwrap();
        let quiet = Diagnostics::new(|_, _| {});
        let auth = Auth::new(&config, quiet.clone(), Arc::new(|_| {})).unwrap();
        let limits = RequestLimits {
            per_second,
            per_run: None,
        };
        ApiClient::new(
            config.api_base_url,
            limits,
            Arc::new(auth),
            RetryPolicy::SYNC,
            quiet,
        )
        .unwrap()
    }

    #[test]
    fn api_errors_are_summarised() {
        let detail = |text: &str| ErrorBody::parse(text).detail();
        let body = r#"[{"error_key":"query.param.invalid","error_message":"limit too big"}]"#;
        assert_eq!(detail(body), ": limit too big");
        assert_eq!(detail(r#"{"message":"gone"}"#), ": gone");
        assert_eq!(detail(""), "");
        assert_eq!(detail("<html>oops"), ": <html>oops");
    }

    #[test]
    fn a_429_is_told_apart_by_its_error_key_in_an_object_or_an_array() {
        let limit = |text: &str| ErrorBody::parse(text).limit();
        // The bodies the API documents, as one object and as an array.
        let quota = r#"{"error_key": "quota_exceeded", "error_message": "Limit Exceeded"}"#;
        assert_eq!(limit(THROTTLED), RateLimit::PerSecond);
        assert_eq!(limit(quota), RateLimit::DailyQuota);
        assert_eq!(limit(&format!("[{THROTTLED}]")), RateLimit::PerSecond);
        assert_eq!(limit(QUOTA), RateLimit::DailyQuota);
        // The key wins over the wording.
        let worded =
            r#"[{"error_key":"throttled","error_message":"daily quota of calls per second"}]"#;
        assert_eq!(limit(worded), RateLimit::PerSecond);
        // Without a key this connector knows, the wording decides.
        let unkeyed =
            r#"{"error_key":"too_many_requests","error_message":"Daily request quota exceeded."}"#;
        assert_eq!(limit(unkeyed), RateLimit::DailyQuota);
        assert_eq!(
            limit(r#"[{"error_message":"Limit per day reached"}]"#),
            RateLimit::DailyQuota
        );
        assert_eq!(
            limit(r#"{"error_message":"Too many requests"}"#),
            RateLimit::PerSecond
        );
        assert_eq!(limit(""), RateLimit::PerSecond);
        assert_eq!(limit("<html>quota</html>"), RateLimit::DailyQuota);
    }

    #[test]
    fn a_spent_quota_resets_at_the_next_midnight_utc_and_stops_the_run() {
        let at = |text: &str| DateTime::parse_from_rfc3339(text).unwrap().to_utc();
        assert_eq!(
            next_utc_midnight(at("2026-08-13T17:45:10Z")),
            at("2026-08-14T00:00:00Z")
        );
        assert_eq!(
            next_utc_midnight(at("2026-12-31T23:59:59.999Z")),
            at("2027-01-01T00:00:00Z")
        );
        assert_eq!(
            next_utc_midnight(at("2026-08-13T00:00:00Z")),
            at("2026-08-14T00:00:00Z")
        );
        let error = quota_spent(
            "GET /contacts",
            ": Limit Exceeded",
            at("2026-08-13T17:45:10Z"),
        );
        assert_eq!(error.stops_run, Some(RunStop::QuotaSpent));
        assert!(
            error.message.contains("resets at 2026-08-14T00:00:00Z")
                && error.message.contains("GET /contacts")
                && error.message.contains("next run then resumes"),
            "{}",
            error.message
        );
    }

    #[test]
    fn a_throttle_pauses_at_least_a_second_and_longer_while_it_lasts() {
        let policy = RetryPolicy::SYNC;
        for throttled in 1..=3 {
            let pause = policy.throttle_pause(throttled);
            let floor = THROTTLE_WINDOW * (1 << (throttled - 1));
            assert!(pause >= floor && pause <= floor.mul_f64(1.25), "{pause:?}");
        }
        assert!(policy.throttle_pause(40) <= policy.max_delay.mul_f64(1.25));
        // A short `max_delay` (check) still waits out the window.
        assert!(RetryPolicy::CHECK.throttle_pause(10) >= THROTTLE_WINDOW);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let policy = RetryPolicy::SYNC;
        assert!(policy.backoff(0) <= Duration::from_millis(500));
        assert!(policy.backoff(3) >= Duration::from_secs(2));
        assert!(policy.backoff(30) <= Duration::from_secs(60));
    }

    /// Requests waiting in the rate limiter are not sent yet: progress shows
    /// what has gone out, never more than the limiter lets through.
    #[tokio::test]
    async fn requests_count_as_sent_once_past_the_rate_limiter() {
        const WAITING: usize = 12;
        let server =
            ScriptedServer::start((0..WAITING).map(|_| Answer::json(200, "{}")).collect()).await;
        let api = client_at(&server, 4);
        let urls: Vec<Url> = (0..WAITING)
            .map(|i| api.endpoint(&format!("/{i}"), &[]))
            .collect();
        let started = Instant::now();
        let all = futures::future::join_all(urls.iter().map(|url| api.get_json(url)));
        let watch = async {
            let mut most = 0;
            while started.elapsed() < Duration::from_millis(1600) {
                let sent = api.requests_spent().sent;
                // One at once, then one every quarter second.
                let allowed = 1 + (started.elapsed().as_secs_f64() * 4.0) as u64;
                assert!(sent <= allowed, "{sent} sent after {:?}", started.elapsed());
                most = most.max(sent);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            most
        };
        let (answers, most) = tokio::join!(all, watch);
        assert!(answers.into_iter().all(|a| a.is_ok()));
        assert!(most >= 4, "requests went out meanwhile: {most}");
        assert_eq!(api.requests_spent().sent, WAITING as u64);
    }

    #[tokio::test]
    async fn a_throttle_pauses_every_stream_for_a_second_and_is_retried() {
        let server = ScriptedServer::start(vec![
            Answer::json(429, THROTTLED),
            Answer::json(200, r#"{"first": true}"#),
            Answer::json(200, r#"{"second": true}"#),
        ])
        .await;
        let api = client(&server);
        let first = api.endpoint("/first", &[]);
        let throttled = api.get_json(&first);
        // Another stream asks once the first one's 429 is in.
        let other = async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            api.get_json(&api.endpoint("/second", &[])).await
        };
        let (throttled, other) = tokio::join!(throttled, other);
        assert_eq!(throttled.unwrap().requests, 2, "retried once");
        assert_eq!(other.unwrap().requests, 1);
        let asked = server.asked();
        assert_eq!(asked.len(), 3);
        for later in &asked[1..] {
            let after = later.at - asked[0].at;
            assert!(after >= THROTTLE_WINDOW, "{} after {after:?}", later.target);
        }
    }

    #[tokio::test]
    async fn a_quota_429_stops_every_later_request_without_asking() {
        let server = ScriptedServer::start(vec![Answer::json(429, QUOTA)]).await;
        let api = client(&server);
        let started = Instant::now();
        let error = api
            .get_json(&api.endpoint("/contacts", &[]))
            .await
            .err()
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(1), "not retried");
        assert_eq!(error.stops_run, Some(RunStop::QuotaSpent));
        let midnight = next_utc_midnight(Utc::now()).to_rfc3339_opts(SecondsFormat::Secs, true);
        assert!(
            error.message.contains("GET /contacts") && error.message.contains(&midnight),
            "{}",
            error.message
        );
        let again = api
            .get_json(&api.endpoint("/emails", &[]))
            .await
            .err()
            .unwrap();
        assert_eq!(again.stops_run, Some(RunStop::QuotaSpent));
        assert_eq!(server.asked().len(), 1, "nothing more is sent");
        assert!(api.requests_spent().quota_spent);
    }

    #[tokio::test]
    async fn a_400_keeps_the_api_messages_for_the_caller() {
        let body = r#"[{"error_key":"contacts.api.validation.error","error_message":"include has an invalid value: sms_channel"}]"#;
        let server = ScriptedServer::start(vec![Answer::json(400, body)]).await;
        let api = client(&server);
        let error = api
            .get_json(&api.endpoint("/contacts", &[("include", "sms_channel".into())]))
            .await
            .err()
            .unwrap();
        assert_eq!(
            error.invalid_request,
            Some(vec!["include has an invalid value: sms_channel".to_string()])
        );
        assert!(
            error.message.starts_with("GET /contacts: "),
            "{}",
            error.message
        );
        assert_eq!(server.asked().len(), 1, "a 400 is not retried");
    }
}
