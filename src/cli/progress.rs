//! Progress a person can watch on stderr while a sync runs: streams done out
//! of all, records and pages per running stream (against the API's estimate,
//! with the time left, where it gives one), requests spent, the current
//! requests per second, and the requests left in the run's budget and the
//! day's quota.
//!
//! It is an [`Output`] decorator: every event passes to the protocol writer
//! unchanged and is also counted here; the engine and the writers know
//! nothing of it. It is only put in place when stderr is a terminal, so runs
//! under a platform, a pipe or CI (stderr captured) are byte-for-byte what
//! they were. Two styles:
//!
//! - **redraw** (Airbyte `read` with stdout not on the terminal): a few lines
//!   redrawn in place with plain ANSI codes, four times a second;
//! - **lines** (Singer mode, whose logs share stderr, or a terminal that also
//!   shows stdout): one ordinary log line every five seconds, which
//!   interleaves cleanly with other log lines.
//!
//! `SOURCE_CONSTANT_CONTACT_PROGRESS=off` turns it off, `=lines` asks for
//! lines in a terminal; it never turns progress on when stderr is not a
//! terminal.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::http::{ApiClient, RequestsSpent, DAILY_REQUEST_QUOTA};
use crate::protocol::{Level, Output, RecordRef, StreamStatus};

/// The environment variable that turns progress off (`off`) or asks for
/// plain lines (`lines`).
pub const PROGRESS_ENV: &str = "SOURCE_CONSTANT_CONTACT_PROGRESS";

/// How often each style draws.
const REDRAW_EVERY: Duration = Duration::from_millis(250);
const LINE_EVERY: Duration = Duration::from_secs(5);
/// The window the current requests/s is measured over.
const RATE_WINDOW: Duration = Duration::from_secs(5);
/// Running streams shown one per line (the engine reads four at a time).
const MAX_STREAM_LINES: usize = 6;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Airbyte,
    Singer,
}

/// Where a run's protocol messages go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Messages {
    Stdout,
    /// A file (`demo`): stdout stays free, even on a terminal.
    File,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// A few lines redrawn in place (ANSI cursor-up and clear).
    Redraw,
    /// One plain log line every few seconds.
    Lines,
}

impl Style {
    /// The style for a run of `protocol` in this process, or none: progress
    /// needs stderr on a terminal, and redrawing needs the messages off that
    /// terminal (they would scroll the drawing away) and no logs on stderr.
    pub fn for_this_process(protocol: Protocol, messages: Messages) -> Option<Style> {
        choose(
            protocol,
            std::io::stderr().is_terminal(),
            messages == Messages::Stdout && std::io::stdout().is_terminal(),
            std::env::var(PROGRESS_ENV).ok().as_deref(),
        )
    }
}

/// The values of [`PROGRESS_ENV`] that turn progress off, and the one that
/// asks for lines.
const OFF: [&str; 4] = ["off", "0", "false", "no"];
const LINES: &str = "lines";

/// The warning for a [`PROGRESS_ENV`] value that means nothing (read as
/// unset), naming the values that do.
fn unknown_setting(setting: Option<&str>) -> Option<String> {
    let value = setting?;
    let trimmed = value.trim();
    if trimmed.is_empty() || trimmed == LINES || OFF.contains(&trimmed) {
        return None;
    }
    Some(format!(
        "{PROGRESS_ENV}={value:?} is not a setting; ignored (progress shows as when unset). \
         Use `off` (or {}) to turn it off, or `{LINES}` for plain lines",
        OFF[1..].join(", ")
    ))
}

/// `messages_tty`: the protocol messages go to a terminal (stdout is one).
fn choose(
    protocol: Protocol,
    stderr_tty: bool,
    messages_tty: bool,
    setting: Option<&str>,
) -> Option<Style> {
    if !stderr_tty {
        return None;
    }
    match setting.map(str::trim) {
        Some(off) if OFF.contains(&off) => None,
        Some(LINES) => Some(Style::Lines),
        _ if protocol == Protocol::Singer || messages_tty => Some(Style::Lines),
        _ => Some(Style::Redraw),
    }
}

type RequestCounter = dyn Fn() -> RequestsSpent + Send + Sync;

/// Counts what passes through to the protocol writer.
pub struct Progress {
    inner: Arc<dyn Output>,
    tracker: Mutex<Tracker>,
    requests: OnceLock<Box<RequestCounter>>,
}

impl Progress {
    /// A decorator of `inner` for a run of `streams` selected streams.
    pub fn new(inner: Arc<dyn Output>, streams: usize) -> Progress {
        Progress {
            inner,
            tracker: Mutex::new(Tracker::new(streams, Instant::now())),
            requests: OnceLock::new(),
        }
    }

    /// Where the requests spent so far are read from (once; the client is
    /// built after the writer it reports to).
    pub fn count_requests(&self, counter: impl Fn() -> RequestsSpent + Send + Sync + 'static) {
        let _ = self.requests.set(Box::new(counter));
    }

    /// What the run has done so far, as of `now`.
    pub fn snapshot(&self, now: Instant) -> Snapshot {
        let requests = self.requests.get().map(|count| count());
        self.tracker().snapshot(now, requests)
    }

    fn tracker(&self) -> std::sync::MutexGuard<'_, Tracker> {
        self.tracker.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Output for Progress {
    fn record(&self, stream: &str, record: RecordRef<'_>) {
        self.tracker().stream(stream).records += 1;
        self.inner.record(stream, record);
    }

    fn state(&self, stream: &str, state: &Value, records: u64) {
        // The engine checkpoints after every page (and once more at the end
        // when the final state differs): checkpoints count pages.
        self.tracker().stream(stream).pages += 1;
        self.inner.state(stream, state, records);
    }

    fn stream_status(&self, stream: &str, status: StreamStatus) {
        {
            let mut tracker = self.tracker();
            let now = Instant::now();
            let counts = tracker.stream(stream);
            match status {
                StreamStatus::Started => {
                    counts.started = Some(now);
                    counts.record_rate = Rate::starting(now);
                }
                StreamStatus::Running => {}
                StreamStatus::Complete => counts.ended = Some((now, true)),
                StreamStatus::Incomplete => counts.ended = Some((now, false)),
            }
        }
        self.inner.stream_status(stream, status);
    }

    fn log(&self, level: Level, message: &str) {
        self.inner.log(level, message);
    }
    fn estimate(&self, stream: &str, rows: u64) {
        self.tracker().stream(stream).estimate = Some(rows);
        self.inner.estimate(stream, rows)
    }

    fn config_updated(&self, config: &Value) {
        self.inner.config_updated(config);
    }

    fn flush(&self) {
        self.inner.flush();
    }
}

#[derive(Debug, Default)]
struct StreamCounts {
    records: u64,
    pages: u64,
    /// The records the API expects this run to read, if it said.
    estimate: Option<u64>,
    record_rate: Rate,
    started: Option<Instant>,
    /// When it ended, and whether complete.
    ended: Option<(Instant, bool)>,
}

/// How fast a count grows over the last [`RATE_WINDOW`], from the samples
/// taken at each snapshot.
#[derive(Debug, Default)]
struct Rate {
    samples: VecDeque<(Instant, u64)>,
}

impl Rate {
    /// A count that was 0 `at`.
    fn starting(at: Instant) -> Rate {
        Rate {
            samples: VecDeque::from([(at, 0)]),
        }
    }

    /// Takes `count` at `now`: its growth per second since the oldest
    /// sample in the window, once that is half a second old.
    fn sample(&mut self, now: Instant, count: u64) -> Option<f64> {
        while self.samples.len() > 1 && now.duration_since(self.samples[1].0) >= RATE_WINDOW {
            self.samples.pop_front();
        }
        let oldest = self.samples.front().copied();
        self.samples.push_back((now, count));
        let (then, before) = oldest?;
        let seconds = now.duration_since(then).as_secs_f64();
        (seconds >= 0.5).then(|| count.saturating_sub(before) as f64 / seconds)
    }
}

struct Tracker {
    started: Instant,
    total: usize,
    /// In the order streams started.
    streams: Vec<(String, StreamCounts)>,
    index: HashMap<String, usize>,
    request_rate: Rate,
}

impl Tracker {
    fn new(total: usize, started: Instant) -> Tracker {
        Tracker {
            started,
            total,
            streams: Vec::new(),
            index: HashMap::new(),
            request_rate: Rate::starting(started),
        }
    }

    fn stream(&mut self, name: &str) -> &mut StreamCounts {
        let at = match self.index.get(name) {
            Some(&at) => at,
            None => {
                self.streams
                    .push((name.to_string(), StreamCounts::default()));
                self.index.insert(name.to_string(), self.streams.len() - 1);
                self.streams.len() - 1
            }
        };
        &mut self.streams[at].1
    }

    fn snapshot(&mut self, now: Instant, requests: Option<RequestsSpent>) -> Snapshot {
        let rate = requests.and_then(|spent| self.request_rate.sample(now, spent.sent));
        let ended = |c: &StreamCounts, ok: bool| matches!(c.ended, Some((_, done)) if done == ok);
        Snapshot {
            elapsed: now.duration_since(self.started),
            streams_total: self.total.max(self.streams.len()),
            streams_complete: self.streams.iter().filter(|(_, c)| ended(c, true)).count(),
            streams_incomplete: self.streams.iter().filter(|(_, c)| ended(c, false)).count(),
            records: self.streams.iter().map(|(_, c)| c.records).sum(),
            pages: self.streams.iter().map(|(_, c)| c.pages).sum(),
            requests,
            rate,
            running: self
                .streams
                .iter_mut()
                .filter(|(_, c)| c.started.is_some() && c.ended.is_none())
                .map(|(name, c)| RunningStream {
                    name: name.clone(),
                    records: c.records,
                    estimate: c.estimate,
                    rate: c.record_rate.sample(now, c.records),
                    pages: c.pages,
                    elapsed: c.started.map(|s| now.duration_since(s)).unwrap_or_default(),
                })
                .collect(),
        }
    }
}

/// The run at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub elapsed: Duration,
    pub streams_total: usize,
    pub streams_complete: usize,
    pub streams_incomplete: usize,
    pub records: u64,
    pub pages: u64,
    /// Requests sent so far and the limits they count against, once the
    /// client is known.
    pub requests: Option<RequestsSpent>,
    /// Requests per second over the last few seconds.
    pub rate: Option<f64>,
    pub running: Vec<RunningStream>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RunningStream {
    pub name: String,
    pub records: u64,
    /// The records the API expects the stream to read, if it said.
    pub estimate: Option<u64>,
    /// Records per second over the last few seconds.
    pub rate: Option<f64>,
    pub pages: u64,
    pub elapsed: Duration,
}

impl RunningStream {
    /// Records read, against the estimate where there is one:
    /// `600/1,200 records (50%, 0:02 left)`.
    fn records_read(&self) -> String {
        let records = thousands(self.records);
        match self.estimate {
            None => counted(self.records, "record"),
            // The records changed since the API counted them: the estimate
            // says nothing about what is left.
            Some(estimate) if self.records > estimate => {
                format!("{records} records (estimated {})", thousands(estimate))
            }
            Some(estimate) => {
                let percent = (self.records.saturating_mul(100))
                    .checked_div(estimate)
                    .unwrap_or(100);
                let mut text = format!("{records}/{} records ({percent}%", thousands(estimate));
                if let Some(left) = self.time_left() {
                    let _ = write!(text, ", {} left", clock(left));
                }
                text + ")"
            }
        }
    }

    /// The records still expected at the current pace, when both are known.
    pub fn time_left(&self) -> Option<Duration> {
        let remaining = self
            .estimate?
            .checked_sub(self.records)
            .filter(|&left| left > 0)?;
        let rate = self.rate.filter(|&rate| rate > 0.0)?;
        Duration::try_from_secs_f64(remaining as f64 / rate).ok()
    }
}

impl Snapshot {
    /// The run's totals, one line.
    pub fn headline(&self) -> String {
        let mut line = format!(
            "streams {}/{} done",
            self.streams_complete + self.streams_incomplete,
            self.streams_total
        );
        if self.streams_incomplete > 0 {
            let _ = write!(line, " ({} incomplete)", self.streams_incomplete);
        }
        if let Some(requests) = self.requests {
            let _ = write!(line, " | {}", counted(requests.sent, "request"));
            if let Some(rate) = self.rate {
                let _ = write!(line, ", {rate:.1}/s");
            }
        }
        let _ = write!(
            line,
            " | {} | {} | {}",
            counted(self.records, "record"),
            counted(self.pages, "page"),
            clock(self.elapsed)
        );
        line
    }

    /// The requests the run may still send: its budget's (when set), and
    /// at most the day's quota less this run's (the API does not say what
    /// other tools on the key spent), each a line.
    pub fn requests_left(&self) -> Vec<String> {
        let Some(spent) = self.requests else {
            return Vec::new();
        };
        let mut lines = Vec::new();
        if let Some(budget) = spent.budget {
            lines.push(format!(
                "budget: {} left of {}",
                thousands(budget.saturating_sub(spent.sent)),
                thousands(budget)
            ));
        }
        lines.push(if spent.quota_spent {
            "day: the API key's quota is spent (429)".to_string()
        } else {
            format!(
                "day: at most {} of {} left (other tools on the key not counted)",
                thousands(DAILY_REQUEST_QUOTA.saturating_sub(spent.sent)),
                thousands(DAILY_REQUEST_QUOTA)
            )
        });
        lines
    }

    /// The redrawn frame: the headline, the requests left, then a line per
    /// running stream.
    pub fn frame(&self) -> Vec<String> {
        let mut lines = vec![self.headline()];
        lines.extend(self.requests_left());
        for stream in self.running.iter().take(MAX_STREAM_LINES) {
            lines.push(format!(
                "  {}: {}, {}, {}",
                stream.name,
                stream.records_read(),
                counted(stream.pages, "page"),
                clock(stream.elapsed)
            ));
        }
        if self.running.len() > MAX_STREAM_LINES {
            lines.push(format!(
                "  and {} more streams",
                self.running.len() - MAX_STREAM_LINES
            ));
        }
        lines
    }

    /// One log line (the Singer log format, `LEVEL message`).
    pub fn log_line(&self) -> String {
        let mut line = format!("INFO progress: {}", self.headline());
        for left in self.requests_left() {
            let _ = write!(line, " | {left}");
        }
        for (i, stream) in self.running.iter().enumerate() {
            let _ = write!(
                line,
                "{} {} ({}, {})",
                if i == 0 { "; reading" } else { "," },
                stream.name,
                stream.records_read(),
                counted(stream.pages, "page")
            );
        }
        line
    }
}

/// `n` `noun`s for the display, singular for one: `1 page`, `1,200 records`.
pub fn counted(n: u64, noun: &str) -> String {
    format!("{} {}", thousands(n), plural(n, noun))
}

/// `noun` as `n` of it reads: `page` for one, `pages` otherwise. Every noun
/// counted here takes a plain `s`.
pub fn plural(n: u64, noun: &str) -> String {
    let s = if n == 1 { "" } else { "s" };
    format!("{noun}{s}")
}

/// 1234567 as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Minutes and seconds, `m:ss` (hours as minutes).
pub fn clock(elapsed: Duration) -> String {
    let seconds = elapsed.as_secs();
    format!("{}:{:02}", seconds / 60, seconds % 60)
}

/// Draws frames over the previous one: back to the start of its first
/// line, clear to the end of the screen, write the new one. Lines are cut to
/// the terminal's width so none wraps (a wrapped line would throw the
/// count of lines to go back up off).
#[derive(Debug, Default)]
pub struct Redraw {
    /// Lines of the frame on screen (the cursor is at the end of its last).
    drawn: usize,
}

impl Redraw {
    /// The bytes that replace the previous frame with `lines`.
    pub fn draw(&mut self, lines: &[String], width: usize) -> String {
        let mut out = String::new();
        if self.drawn > 0 {
            out.push('\r');
            if self.drawn > 1 {
                let _ = write!(out, "\x1b[{}A", self.drawn - 1);
            }
            out.push_str("\x1b[J");
        }
        for (i, line) in lines.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            // One column spare: a line filling the width leaves some
            // terminals waiting to wrap.
            out.extend(line.chars().take(width.saturating_sub(1).max(1)));
        }
        self.drawn = lines.len();
        out
    }

    /// The last frame, left on screen, and the cursor on a fresh line.
    pub fn finish(&mut self, lines: &[String], width: usize) -> String {
        let mut out = self.draw(lines, width);
        out.push('\n');
        self.drawn = 0;
        out
    }
}

/// The terminal's width in columns (80 when it cannot be told).
fn terminal_width() -> usize {
    rustix::termios::tcgetwinsize(std::io::stderr())
        .ok()
        .map(|size| usize::from(size.ws_col))
        .filter(|&cols| cols >= 20)
        .unwrap_or(80)
}

/// Draws a [`Progress`] from a thread of its own until stopped.
pub struct Ticker {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl Ticker {
    /// Draws `progress` in `style` to `out` (stderr for the CLI), the
    /// terminal `width` given by `width()` at each redraw.
    pub fn start(
        progress: Arc<Progress>,
        style: Style,
        mut out: Box<dyn Write + Send>,
        width: fn() -> usize,
    ) -> Ticker {
        let (stop, stopped) = mpsc::channel::<()>();
        let every = match style {
            Style::Redraw => REDRAW_EVERY,
            Style::Lines => LINE_EVERY,
        };
        let thread = std::thread::spawn(move || {
            let mut redraw = Redraw::default();
            loop {
                let finished =
                    !matches!(stopped.recv_timeout(every), Err(RecvTimeoutError::Timeout));
                let snapshot = progress.snapshot(Instant::now());
                let text = match (style, finished) {
                    (Style::Redraw, false) => redraw.draw(&snapshot.frame(), width()),
                    (Style::Redraw, true) => redraw.finish(&snapshot.frame(), width()),
                    (Style::Lines, _) => snapshot.log_line() + "\n",
                };
                // A terminal that went away is no reason to stop the sync.
                let _ = out.write_all(text.as_bytes());
                let _ = out.flush();
                if finished {
                    break;
                }
            }
        });
        Ticker { stop, thread }
    }

    /// Draws the final state and waits until it is written.
    pub fn finish(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}

/// A run's output, watched when this process shows progress: what the
/// engine is given, and the display to end once the run is done.
pub struct Watch {
    output: Arc<dyn Output>,
    shown: Option<(Arc<Progress>, Ticker)>,
}

impl Watch {
    /// Wraps `inner` for a run of `streams` streams when progress is to be
    /// shown (see [`Style::for_this_process`]); otherwise `inner` is used as
    /// is.
    pub fn start(
        inner: Arc<dyn Output>,
        streams: usize,
        protocol: Protocol,
        messages: Messages,
    ) -> Watch {
        if let Some(warning) = unknown_setting(std::env::var(PROGRESS_ENV).ok().as_deref()) {
            inner.log(Level::Warn, &warning);
        }
        match Style::for_this_process(protocol, messages) {
            Some(style) => Watch::with_style(
                inner,
                streams,
                style,
                Box::new(std::io::stderr()),
                terminal_width,
            ),
            None => Watch {
                output: inner,
                shown: None,
            },
        }
    }

    /// Wraps `inner` and draws in `style` to `out`.
    pub fn with_style(
        inner: Arc<dyn Output>,
        streams: usize,
        style: Style,
        out: Box<dyn Write + Send>,
        width: fn() -> usize,
    ) -> Watch {
        let progress = Arc::new(Progress::new(inner, streams));
        let ticker = Ticker::start(progress.clone(), style, out, width);
        Watch {
            output: progress.clone(),
            shown: Some((progress, ticker)),
        }
    }

    /// The output the engine writes to.
    pub fn output(&self) -> Arc<dyn Output> {
        self.output.clone()
    }

    /// Shows the requests `api` has sent, and what its limits leave.
    pub fn count_requests(&self, api: &Arc<ApiClient>) {
        if let Some((progress, _)) = &self.shown {
            let api = api.clone();
            progress.count_requests(move || api.requests_spent());
        }
    }

    /// Draws the final state and stops drawing.
    pub fn finish(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some((_, ticker)) = self.shown.take() {
            ticker.finish();
        }
    }
}

impl Drop for Watch {
    /// An early return still leaves the terminal on a fresh line.
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Every call, as text, in order.
    #[derive(Default)]
    struct Calls(Mutex<Vec<String>>);

    impl Output for Calls {
        fn record(&self, stream: &str, record: RecordRef<'_>) {
            self.push(format!("record {stream} {}", record.to_value()));
        }
        fn state(&self, stream: &str, state: &Value, records: u64) {
            self.push(format!("state {stream} {state} {records}"));
        }
        fn stream_status(&self, stream: &str, status: StreamStatus) {
            self.push(format!("status {stream} {status:?}"));
        }
        fn log(&self, level: Level, message: &str) {
            self.push(format!("log {level:?} {message}"));
        }
        fn estimate(&self, stream: &str, rows: u64) {
            self.push(format!("estimate {stream} {rows}"));
        }
        fn config_updated(&self, config: &Value) {
            self.push(format!("config {config}"));
        }
        fn flush(&self) {
            self.push("flush".into());
        }
    }

    impl Calls {
        fn push(&self, call: String) {
            self.0.lock().unwrap().push(call);
        }
        fn taken(&self) -> Vec<String> {
            self.0.lock().unwrap().clone()
        }
    }

    /// A run's events: two streams, one finishing, one still reading.
    fn feed(output: &dyn Output) {
        output.stream_status("contacts", StreamStatus::Started);
        output.stream_status("email_campaigns", StreamStatus::Started);
        output.log(Level::Info, "hello");
        output.stream_status("contacts", StreamStatus::Running);
        for i in 0..1500 {
            output.record("contacts", RecordRef::Value(&json!({"contact_id": i})));
        }
        output.state("contacts", &json!({"updated_at": "a"}), 1000);
        output.state("contacts", &json!({"updated_at": "b"}), 500);
        output.config_updated(&json!({"credentials": {"refresh_token": "r2"}}));
        output.record(
            "email_campaigns",
            RecordRef::Value(&json!({"campaign_id": "c"})),
        );
        output.state("email_campaigns", &json!({}), 1);
        output.stream_status("email_campaigns", StreamStatus::Complete);
        output.flush();
    }

    /// `sent` requests, no budget, the quota not known to be spent.
    fn spent(sent: u64) -> RequestsSpent {
        RequestsSpent {
            sent,
            budget: None,
            quota_spent: false,
        }
    }

    #[test]
    fn the_writer_sees_exactly_what_it_would_without_progress() {
        let plain = Calls::default();
        feed(&plain);
        let inner = Arc::new(Calls::default());
        let progress = Progress::new(inner.clone(), 3);
        feed(&progress);
        assert_eq!(inner.taken(), plain.taken());
    }

    #[test]
    fn counts_streams_records_pages_and_requests() {
        let progress = Progress::new(Arc::new(Calls::default()), 3);
        let start = progress.tracker().started;
        feed(&progress);
        let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = sent.clone();
        progress.count_requests(move || spent(counter.load(std::sync::atomic::Ordering::Relaxed)));
        sent.store(40, std::sync::atomic::Ordering::Relaxed);
        let snapshot = progress.snapshot(start + Duration::from_secs(10));
        assert_eq!(snapshot.streams_total, 3);
        assert_eq!(snapshot.streams_complete, 1);
        assert_eq!(snapshot.streams_incomplete, 0);
        assert_eq!(snapshot.records, 1501);
        assert_eq!(snapshot.pages, 3);
        assert_eq!(snapshot.requests, Some(spent(40)));
        assert_eq!(snapshot.rate, Some(4.0));
        assert_eq!(snapshot.running.len(), 1);
        assert_eq!(snapshot.running[0].name, "contacts");
        assert_eq!(snapshot.running[0].records, 1500);
        assert_eq!(snapshot.running[0].pages, 2);
        assert_eq!(snapshot.elapsed, Duration::from_secs(10));
    }

    #[test]
    fn the_rate_is_over_the_last_seconds() {
        let progress = Progress::new(Arc::new(Calls::default()), 1);
        let start = progress.tracker().started;
        let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = sent.clone();
        progress.count_requests(move || spent(counter.load(std::sync::atomic::Ordering::Relaxed)));
        // 10 requests/s for 10 s, then nothing for 6 s.
        for second in 1..=10u64 {
            sent.store(second * 10, std::sync::atomic::Ordering::Relaxed);
            progress.snapshot(start + Duration::from_secs(second));
        }
        let busy = progress.snapshot(start + Duration::from_secs(10));
        assert_eq!(busy.rate, Some(10.0));
        for second in 11..=16u64 {
            progress.snapshot(start + Duration::from_secs(second));
        }
        let idle = progress.snapshot(start + Duration::from_secs(16));
        assert_eq!(idle.rate, Some(0.0));
        assert_eq!(idle.requests, Some(spent(100)));
    }

    #[test]
    fn a_stream_that_stops_counts_as_incomplete() {
        let progress = Progress::new(Arc::new(Calls::default()), 2);
        progress.stream_status("contacts", StreamStatus::Started);
        progress.stream_status("contacts", StreamStatus::Incomplete);
        let snapshot = progress.snapshot(Instant::now());
        assert_eq!(snapshot.streams_incomplete, 1);
        assert!(snapshot.running.is_empty());
        assert!(snapshot
            .headline()
            .starts_with("streams 1/2 done (1 incomplete) |"));
    }

    fn sample() -> Snapshot {
        Snapshot {
            elapsed: Duration::from_secs(75),
            streams_total: 36,
            streams_complete: 3,
            streams_incomplete: 0,
            records: 1_234_567,
            pages: 2470,
            requests: Some(spent(2501)),
            rate: Some(3.94),
            running: vec![
                RunningStream {
                    name: "contacts".into(),
                    records: 12_000,
                    estimate: None,
                    rate: Some(2000.0),
                    pages: 24,
                    elapsed: Duration::from_secs(6),
                },
                RunningStream {
                    name: "email_opens".into(),
                    records: 7,
                    estimate: None,
                    rate: None,
                    pages: 1,
                    elapsed: Duration::from_secs(1),
                },
            ],
        }
    }

    #[test]
    fn renders_a_frame_and_a_log_line() {
        let snapshot = sample();
        assert_eq!(
            snapshot.frame(),
            vec![
                "streams 3/36 done | 2,501 requests, 3.9/s | 1,234,567 records | 2,470 pages \
                 | 1:15",
                "day: at most 7,499 of 10,000 left (other tools on the key not counted)",
                "  contacts: 12,000 records, 24 pages, 0:06",
                "  email_opens: 7 records, 1 page, 0:01",
            ]
        );
        assert_eq!(
            snapshot.log_line(),
            "INFO progress: streams 3/36 done | 2,501 requests, 3.9/s | 1,234,567 records \
             | 2,470 pages | 1:15 | day: at most 7,499 of 10,000 left (other tools on the key \
             not counted); reading contacts (12,000 records, 24 pages), \
             email_opens (7 records, 1 page)"
        );
        let unknown = Snapshot {
            requests: None,
            rate: None,
            running: vec![],
            ..sample()
        };
        assert_eq!(
            unknown.frame(),
            vec!["streams 3/36 done | 1,234,567 records | 2,470 pages | 1:15"]
        );
    }

    #[test]
    fn renders_the_budget_the_estimate_and_the_time_left() {
        let mut snapshot = sample();
        snapshot.requests = Some(RequestsSpent {
            budget: Some(3000),
            ..spent(2501)
        });
        // 12,000 of 30,000 at 2,000 records/s: 9 s left.
        snapshot.running[0].estimate = Some(30_000);
        // No pace yet: no time left.
        snapshot.running[1].estimate = Some(70);
        assert_eq!(
            snapshot.frame(),
            vec![
                "streams 3/36 done | 2,501 requests, 3.9/s | 1,234,567 records | 2,470 pages \
                 | 1:15",
                "budget: 499 left of 3,000",
                "day: at most 7,499 of 10,000 left (other tools on the key not counted)",
                "  contacts: 12,000/30,000 records (40%, 0:09 left), 24 pages, 0:06",
                "  email_opens: 7/70 records (10%), 1 page, 0:01",
            ]
        );
        assert_eq!(
            snapshot.log_line(),
            "INFO progress: streams 3/36 done | 2,501 requests, 3.9/s | 1,234,567 records \
             | 2,470 pages | 1:15 | budget: 499 left of 3,000 | day: at most 7,499 of 10,000 \
             left (other tools on the key not counted); reading contacts (12,000/30,000 \
             records (40%, 0:09 left), 24 pages), email_opens (7/70 records (10%), 1 page)"
        );
    }

    #[test]
    fn spent_limits_read_as_nothing_left() {
        let mut snapshot = sample();
        snapshot.requests = Some(RequestsSpent {
            sent: 10_250,
            budget: Some(10_000),
            quota_spent: true,
        });
        assert_eq!(
            snapshot.requests_left(),
            vec![
                "budget: 0 left of 10,000",
                "day: the API key's quota is spent (429)"
            ]
        );
        snapshot.requests = Some(spent(10_250));
        assert_eq!(
            snapshot.requests_left(),
            vec!["day: at most 0 of 10,000 left (other tools on the key not counted)"]
        );
    }

    #[test]
    fn estimates_that_say_nothing_give_no_percentage_or_time() {
        let stream = |records, estimate, rate| RunningStream {
            name: "contacts".into(),
            records,
            estimate,
            rate,
            pages: 1,
            elapsed: Duration::ZERO,
        };
        // More records than the API counted: the estimate was stale.
        let passed = stream(1300, Some(1200), Some(50.0));
        assert_eq!(passed.records_read(), "1,300 records (estimated 1,200)");
        assert_eq!(passed.time_left(), None);
        // Nothing expected, nothing read: done, no division by zero.
        let empty = stream(0, Some(0), Some(0.0));
        assert_eq!(empty.records_read(), "0/0 records (100%)");
        assert_eq!(empty.time_left(), None);
        // Stalled: no pace, no time.
        let stalled = stream(500, Some(1200), Some(0.0));
        assert_eq!(stalled.records_read(), "500/1,200 records (41%)");
        assert_eq!(stalled.time_left(), None);
        let done = stream(1200, Some(1200), Some(100.0));
        assert_eq!(done.records_read(), "1,200/1,200 records (100%)");
    }

    #[test]
    fn keeps_each_streams_estimate_and_pace() {
        let inner = Arc::new(Calls::default());
        let progress = Progress::new(inner.clone(), 2);
        progress.stream_status("contacts", StreamStatus::Started);
        progress.estimate("contacts", 2000);
        let read = |n: usize| {
            for i in 0..n {
                progress.record("contacts", RecordRef::Value(&json!({"contact_id": i})));
            }
        };
        let started = progress.tracker().stream("contacts").started.unwrap();
        read(500);
        let first = progress.snapshot(started + Duration::from_secs(2));
        assert_eq!(first.running[0].estimate, Some(2000));
        assert_eq!(first.running[0].rate, Some(250.0));
        read(500);
        let second = progress.snapshot(started + Duration::from_secs(4));
        // 1,000 left at 250 records/s.
        assert_eq!(second.running[0].time_left(), Some(Duration::from_secs(4)));
        assert!(second.frame()[1..]
            .contains(&"  contacts: 1,000/2,000 records (50%, 0:04 left), 0 pages, 0:04".into()));
        assert!(inner
            .taken()
            .contains(&"estimate contacts 2000".to_string()));
    }

    #[test]
    fn many_running_streams_are_summed_up() {
        let mut snapshot = sample();
        snapshot.running = (0..9)
            .map(|i| RunningStream {
                name: format!("s{i}"),
                records: 0,
                estimate: None,
                rate: None,
                pages: 0,
                elapsed: Duration::ZERO,
            })
            .collect();
        let frame = snapshot.frame();
        // The headline, the day's quota, six streams and the rest.
        assert_eq!(frame.len(), 2 + MAX_STREAM_LINES + 1);
        assert_eq!(frame.last().unwrap(), "  and 3 more streams");
    }

    #[test]
    fn redraw_goes_back_over_the_previous_frame() {
        let mut redraw = Redraw::default();
        let three = vec!["a".to_string(), "b".into(), "c".into()];
        assert_eq!(redraw.draw(&three, 80), "a\nb\nc");
        assert_eq!(redraw.draw(&["d".to_string()], 80), "\r\x1b[2A\x1b[Jd");
        assert_eq!(redraw.draw(&three, 80), "\r\x1b[Ja\nb\nc");
        assert_eq!(redraw.finish(&three, 80), "\r\x1b[2A\x1b[Ja\nb\nc\n");
        // After finishing, the next frame starts on the fresh line.
        assert_eq!(redraw.draw(&["e".to_string()], 80), "e");
    }

    #[test]
    fn redraw_cuts_lines_to_the_width() {
        let mut redraw = Redraw::default();
        let long = vec!["x".repeat(100), "y".repeat(5)];
        assert_eq!(
            redraw.draw(&long, 20),
            format!("{}\n{}", "x".repeat(19), "y".repeat(5))
        );
    }

    #[test]
    fn progress_only_on_a_terminal() {
        use Protocol::{Airbyte, Singer};
        assert_eq!(choose(Airbyte, false, false, None), None);
        assert_eq!(choose(Airbyte, false, true, Some("lines")), None);
        assert_eq!(choose(Singer, false, false, None), None);
        assert_eq!(choose(Airbyte, true, false, None), Some(Style::Redraw));
        assert_eq!(choose(Airbyte, true, true, None), Some(Style::Lines));
        assert_eq!(
            choose(Airbyte, true, false, Some("lines")),
            Some(Style::Lines)
        );
        assert_eq!(choose(Airbyte, true, false, Some("off")), None);
        assert_eq!(choose(Singer, true, false, None), Some(Style::Lines));
        assert_eq!(choose(Singer, true, false, Some("off")), None);
    }

    #[test]
    fn an_unknown_setting_is_named_with_the_accepted_ones() {
        for known in [None, Some(""), Some("off"), Some(" no "), Some("lines")] {
            assert_eq!(unknown_setting(known), None, "{known:?}");
        }
        let warning = unknown_setting(Some("bogus")).unwrap();
        assert!(warning.contains("\"bogus\""), "{warning}");
        assert!(
            warning.contains("`off`") && warning.contains("`lines`"),
            "{warning}"
        );
    }

    #[test]
    fn counts_are_singular_for_one() {
        assert_eq!(counted(1, "page"), "1 page");
        assert_eq!(counted(0, "page"), "0 pages");
        assert_eq!(counted(1200, "record"), "1,200 records");
        assert_eq!(plural(1, "request"), "request");
        assert_eq!(plural(2, "request"), "requests");
    }

    #[test]
    fn thousands_and_clock() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(clock(Duration::from_millis(65_900)), "1:05");
        assert_eq!(clock(Duration::from_secs(3725)), "62:05");
    }

    /// A `Write` whose bytes a test can read while the ticker owns it.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_watch_draws_until_finished_and_ends_on_a_fresh_line() {
        let inner = Arc::new(Calls::default());
        let screen = Shared::default();
        let watch = Watch::with_style(
            inner.clone(),
            3,
            Style::Redraw,
            Box::new(screen.clone()),
            || 60,
        );
        feed(&*watch.output());
        std::thread::sleep(REDRAW_EVERY * 3);
        watch.finish();
        let text = String::from_utf8(screen.0.lock().unwrap().clone()).unwrap();
        assert!(text.contains("\x1b[J"), "redrawn: {text:?}");
        assert!(text.ends_with("\n"), "{text:?}");
        let last: Vec<&str> = text.rsplit("\x1b[J").next().unwrap().lines().collect();
        assert_eq!(last.len(), 2, "{text:?}");
        assert!(
            last[0].starts_with("streams 1/3 done | 1,501 records | 3 pages | 0:0"),
            "{text:?}"
        );
        assert_eq!(last[1], "  contacts: 1,500 records, 2 pages, 0:00");
        let plain = Calls::default();
        feed(&plain);
        assert_eq!(inner.taken(), plain.taken());
    }

    #[test]
    fn a_lines_watch_writes_whole_log_lines() {
        let screen = Shared::default();
        let watch = Watch::with_style(
            Arc::new(Calls::default()),
            3,
            Style::Lines,
            Box::new(screen.clone()),
            || 60,
        );
        feed(&*watch.output());
        watch.finish();
        let text = String::from_utf8(screen.0.lock().unwrap().clone()).unwrap();
        assert!(!text.contains('\x1b'), "{text:?}");
        assert!(
            text.starts_with(
                "INFO progress: streams 1/3 done | 1,501 records | 3 pages | 0:00; \
                 reading contacts (1,500 records, 2 pages)\n"
            ),
            "{text:?}"
        );
    }
}
