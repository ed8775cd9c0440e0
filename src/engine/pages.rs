//! Requests and pages: the URL of a stream's first page, the chain of pages
//! linked by `_links.next.href`, and where a page keeps its records.

use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;
use url::Url;

use super::audit::Shortfall;
use super::cursor_pages;
use super::optional::OptionalValues;
use super::raw::{self, PageRecords, Shape};
use super::state::format_time;
use super::{Context, StreamReport};
use crate::error::{Error, Result};
use crate::http::{ApiClient, BodyError};
use crate::protocol::Level;
use crate::streams::{DateWindow, Records, StreamDef};

/// The first page of a stream at `path` (its own, or with the parent values
/// filled in): fixed parameters, config filters, page size, the sync window
/// and, for incremental reads, the lower bound `since`.
pub fn first_page(ctx: &Context, def: &StreamDef, path: &str, since: Option<DateTime<Utc>>) -> Url {
    let change = def
        .cursor
        .as_ref()
        .and_then(|cursor| cursor.param.as_deref())
        .zip(since);
    page_url(ctx, def, path, change, ctx.end_date)
}

/// The first page of one window of a split read ([`super::windows`]):
/// records changed after `after` and before `before` (the config's end date
/// when open).
pub fn window_page(
    ctx: &Context,
    def: &StreamDef,
    after: Option<DateTime<Utc>>,
    before: Option<DateTime<Utc>>,
) -> Url {
    let change = def
        .cursor
        .as_ref()
        .and_then(|cursor| cursor.param.as_deref())
        .zip(after);
    page_url(ctx, def, &def.path, change, before.or(ctx.end_date))
}

/// The first page of a further pass of an incremental read
/// (`Cursor::also`): records changed by `param`'s measure after `since`.
/// The end date is left out: it bounds the cursor's own measure.
pub fn first_page_of_pass(
    ctx: &Context,
    def: &StreamDef,
    param: &str,
    since: DateTime<Utc>,
) -> Url {
    page_url(ctx, def, &def.path, Some((param, since)), None)
}

fn page_url(
    ctx: &Context,
    def: &StreamDef,
    path: &str,
    change: Option<(&str, DateTime<Utc>)>,
    end: Option<DateTime<Utc>>,
) -> Url {
    let mut params: Vec<(&str, String)> = def
        .params
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    for (param, list) in &def.filters {
        let values = ctx.lists.get(*list);
        if !values.is_empty() {
            params.retain(|(k, _)| k != param);
            params.push((param, values.join(",")));
        }
    }
    if let Some(size) = def.page_size {
        params.push(("limit", size.to_string()));
    }
    if let Some((param, at)) = change {
        params.push((param, format_time(at)));
    }
    if let (Some(param), Some(end)) = (def.cursor.as_ref().and_then(|c| c.end_param.as_ref()), end)
    {
        params.push((param, format_time(end)));
    }
    if let Some(window) = &def.window {
        let range = WindowRange::of(ctx, window);
        params.push((&window.start_param, format_time(range.start)));
        params.push((&window.end_param, format_time(range.end)));
    }
    ctx.api.endpoint(path, &params)
}

/// The dates a stream with a [`DateWindow`] asks for: the config's start
/// date to its end date (or the run's start), cut to the endpoint's longest
/// range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowRange {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Set when the window was cut: where it started.
    pub cut_from: Option<DateTime<Utc>>,
}

impl WindowRange {
    pub fn of(ctx: &Context, window: &DateWindow) -> WindowRange {
        WindowRange::between(
            window,
            ctx.start_date,
            ctx.end_date.unwrap_or(ctx.run_started),
        )
    }

    fn between(window: &DateWindow, start: DateTime<Utc>, end: DateTime<Utc>) -> WindowRange {
        let earliest = window
            .longest
            .and_then(|longest| end.checked_sub_signed(longest));
        match earliest {
            Some(earliest) if earliest > start => WindowRange {
                start: earliest,
                end,
                cut_from: Some(start),
            },
            _ => WindowRange {
                start,
                end,
                cut_from: None,
            },
        }
    }
}

/// Says, once per read of `def`, that its window is longer than its endpoint
/// accepts and what is asked for instead.
pub fn log_cut_window(ctx: &Context, def: &StreamDef) {
    let Some(window) = &def.window else {
        return;
    };
    let range = WindowRange::of(ctx, window);
    let (Some(from), Some(longest)) = (range.cut_from, window.longest) else {
        return;
    };
    ctx.output.log(
        Level::Warn,
        &format!(
            "{}: {} accepts at most {} days from `{}` to `{}`; asking for {} to {}, the latest \
             part of the window from the start date {}",
            def.name,
            def.path,
            longest.num_days(),
            window.start_param,
            window.end_param,
            format_time(range.start),
            format_time(range.end),
            format_time(from)
        ),
    );
}

/// A chain of pages linked by `_links.next.href`.
pub struct Chain {
    next: Option<Url>,
    /// Where to start over if the first page (a saved link) fails.
    fallback: Option<Url>,
    /// Hashes of the pages of this chain already read: a link back to one is
    /// a loop. Hashes, not URLs, so a long chain (2,000 pages for a million
    /// contacts) holds 8 bytes a page rather than a ~300-byte URL; with 64
    /// bits and keys chosen per chain, a false match is out of reach.
    visited: HashSet<u64>,
    visited_hasher: RandomState,
    /// How many records the read holds, as its first page said.
    said: Option<u64>,
    /// Records read so far.
    read: u64,
    /// Its first page, where a read short of its count starts again.
    first: Url,
    /// The chain is read from its first page, so its records can be held
    /// to its count (a resumed chain's earlier records came in an earlier
    /// run).
    from_first: bool,
    /// It is being read a second time, after falling short of its count.
    reread: bool,
}

/// A page's records and the link after it, as the API gave them.
pub struct Fetched {
    pub body: PageRecords,
    pub next: Option<String>,
    /// The page's count of the read's records (`StreamDef::count`).
    pub count: Option<u64>,
}

impl Fetched {
    /// A page made by the connector, with no page after it.
    pub fn last(def: &StreamDef, page: &Value) -> Result<Fetched> {
        let records = records_of(def, page, false).map_err(Error::system)?;
        Ok(Fetched {
            body: PageRecords::from_values(def, records.to_vec()),
            next: None,
            count: None,
        })
    }
}

/// A page's text → its records and the link after it. Read the fast way
/// ([`raw::read_page`]) when the page is as expected; otherwise parsed in
/// full and checked as before, which says what is wrong.
fn parse_page(def: &StreamDef, url: &Url, text: String) -> std::result::Result<Fetched, BodyError> {
    // Pages linked by a cursor field are parsed in full (`cursor_pages`).
    let fast = match def.next_cursor {
        Some(_) => Err(text),
        None => raw::read_page(def, text),
    };
    let text = match fast {
        Ok(page) => match next_link_of(page.links.as_ref()) {
            Ok(next) if !page.missing || says_empty(page.count, next.is_some()) => {
                return Ok(Fetched {
                    body: page.records,
                    next,
                    count: page.count,
                })
            }
            _ => page.records.into_text(),
        },
        Err(text) => text,
    };
    let body: Value = serde_json::from_str(&text).map_err(BodyError::NotJson)?;
    let next = match next_link(&body).map_err(BodyError::Problem)? {
        None => cursor_pages::next_page(def, url, &body).map_err(BodyError::Problem)?,
        link => link,
    };
    let records = records_of(def, &body, next.is_some()).map_err(BodyError::Problem)?;
    let count = count_of(def, &body);
    Ok(Fetched {
        body: PageRecords::from_values(def, records.to_vec()),
        next,
        count,
    })
}

impl Chain {
    pub fn new(first: Url) -> Self {
        Chain {
            next: Some(first.clone()),
            fallback: None,
            visited: HashSet::new(),
            visited_hasher: RandomState::new(),
            said: None,
            read: 0,
            first,
            from_first: true,
            reread: false,
        }
    }

    /// A chain that starts at a saved link, or at `fallback` if that link no
    /// longer works (page links may expire).
    pub fn resume(saved: Url, fallback: Url) -> Self {
        Chain {
            fallback: Some(fallback.clone()),
            first: fallback,
            from_first: false,
            ..Chain::new(saved)
        }
    }

    /// The next page of `def`, counting its requests in `report`. A page
    /// whose records or link are malformed is asked for again, and is an
    /// error if it stays so: never taken as an empty page.
    pub async fn next(
        &mut self,
        ctx: &Context,
        def: &StreamDef,
        report: &mut StreamReport,
    ) -> Result<Option<Fetched>> {
        while let Some(url) = self.pending().cloned() {
            let answer = get_page(&ctx.api, &ctx.optional, def, &url).await;
            if let Some(fetched) = self.accept(ctx, def, answer, report)? {
                return Ok(Some(fetched));
            }
        }
        Ok(None)
    }

    /// The page to read next; `None` once the chain is read.
    pub fn pending(&self) -> Option<&Url> {
        self.next.as_ref()
    }

    /// Takes the answer to the [`pending`](Self::pending) page: its page,
    /// or `None` when the chain starts over at its fallback (call `pending`
    /// again).
    pub fn accept(
        &mut self,
        ctx: &Context,
        def: &StreamDef,
        answer: Result<(Fetched, u32)>,
        report: &mut StreamReport,
    ) -> Result<Option<Fetched>> {
        let Some(url) = self.next.take() else {
            return Ok(None);
        };
        let (fetched, requests) = match answer {
            Ok(answer) => answer,
            Err(error) => match self.fallback.take() {
                Some(fallback) => {
                    ctx.output.log(
                        Level::Warn,
                        &format!(
                            "{}: cannot resume at {url} ({error}); reading again from the cursor",
                            def.name
                        ),
                    );
                    self.next = Some(fallback);
                    self.from_first = true;
                    return Ok(None);
                }
                None => return Err(error),
            },
        };
        self.fallback = None;
        report.requests += u64::from(requests);
        report.pages += 1;
        self.read += fetched.body.len() as u64;
        self.said = self.said.or(fetched.count);
        if let Some(said) = self.said {
            check_runaway(def, url.path(), said, self.read)?;
        }
        self.visited
            .insert(self.visited_hasher.hash_one(url.as_str()));
        if let Some(href) = &fetched.next {
            let link = ctx.api.resolve_link(href)?;
            if self
                .visited
                .contains(&self.visited_hasher.hash_one(link.as_str()))
            {
                return Err(Error::system(format!(
                    "GET {}: the API linked back to a page already read ({href}); stopping \
                     rather than reading it again",
                    url.path()
                )));
            }
            self.next = Some(link);
        } else {
            self.audit(ctx, def, &url, report)?;
        }
        Ok(Some(fetched))
    }

    /// At the chain's end, holds the records read to the count its first
    /// page stated ([`super::audit`]): short once, the chain is read again
    /// from its first page; short twice, the read fails.
    fn audit(
        &mut self,
        ctx: &Context,
        def: &StreamDef,
        url: &Url,
        report: &mut StreamReport,
    ) -> Result<()> {
        let Some(said) = self.said else {
            return Ok(());
        };
        if !self.from_first {
            report.audit.unchecked += 1;
            return Ok(());
        }
        if self.read >= said {
            report.audit.passed(said, self.read);
            return Ok(());
        }
        let read = describe_read(url);
        let count = def.count.clone().unwrap_or_else(|| "count".into());
        if self.reread {
            report.audit.failed(Shortfall {
                read: format!("GET {read}"),
                count,
                expected: said,
                delivered: self.read,
            });
            return match ctx.fail_on_audit_shortfall {
                true => Err(report.audit.error().expect("a shortfall was just recorded")),
                // Said once the stream ends (`read_stream`).
                false => Ok(()),
            };
        }
        ctx.output.log(
            Level::Warn,
            &format!(
                "{}: GET {read} delivered {} records where `{count}` on its first page said {said}; \
                 reading it once more from its first page",
                def.name, self.read
            ),
        );
        report.audit.reread += 1;
        self.reread = true;
        self.next = Some(self.first.clone());
        self.visited.clear();
        self.said = None;
        self.read = 0;
        Ok(())
    }
}

/// A read's path with the query parameters that bound it (its window), for
/// messages.
fn describe_read(url: &Url) -> String {
    let bounds: Vec<String> = url
        .query_pairs()
        .filter(|(k, _)| !matches!(k.as_ref(), "limit" | "include" | "include_count" | "cursor"))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if bounds.is_empty() {
        url.path().to_string()
    } else {
        format!("{}?{}", url.path(), bounds.join("&"))
    }
}

/// A read stops with an error once it has read more than this many times
/// what the API said it holds (plus [`RUNAWAY_SLACK_PAGES`] pages): records
/// may move between pages or windows while they are read, and windows
/// overlap, but not by that much. More means a server that ignores the
/// read's filters or paging, which would otherwise spend the API key's daily
/// quota on copies of the same records.
pub const RUNAWAY_FACTOR: u64 = 2;
const RUNAWAY_SLACK_PAGES: u64 = 2;

/// An error once `read` records of a read of `def` at `path` are more than
/// its count `said` allows ([`RUNAWAY_FACTOR`]).
pub fn check_runaway(def: &StreamDef, path: &str, said: u64, read: u64) -> Result<()> {
    let slack = RUNAWAY_SLACK_PAGES * u64::from(def.page_size.unwrap_or(500));
    if read <= said.saturating_mul(RUNAWAY_FACTOR).saturating_add(slack) {
        return Ok(());
    }
    Err(Error::system(format!(
        "GET {path}: read {read} records where the API said the read holds {said} (`{}`); \
         stopping rather than reading on, more than {RUNAWAY_FACTOR} times over: the server \
         seems to ignore this read's filters or paging",
        def.count.as_deref().unwrap_or("count")
    )))
}

/// Asks for one page of `def`, owning what it needs, so that several can be
/// in flight at once.
pub fn fetch(
    ctx: &Context,
    def: &Arc<StreamDef>,
    url: Url,
) -> impl std::future::Future<Output = Result<(Fetched, u32)>> + 'static {
    let (api, optional, def) = (ctx.api.clone(), ctx.optional.clone(), def.clone());
    async move { get_page(&api, &optional, &def, &url).await }
}

/// Asks for the page of `def` at `url`, leaving out the optional values
/// the API refused.
async fn get_page(
    api: &ApiClient,
    optional: &OptionalValues,
    def: &StreamDef,
    url: &Url,
) -> Result<(Fetched, u32)> {
    let parse = |text: String| parse_page(def, url, text);
    let parse = &parse;
    optional
        .get(
            def,
            url,
            |url| async move { api.get_parsed(&url, parse).await },
        )
        .await
}

/// The page's `_links.next.href`, if it has one.
fn next_link(page: &Value) -> std::result::Result<Option<String>, String> {
    next_link_of(page.get("_links"))
}

/// `next.href` of a page's `_links`, if it has one.
fn next_link_of(links: Option<&Value>) -> std::result::Result<Option<String>, String> {
    match links.and_then(|links| links.pointer("/next/href")) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(href)) => Ok(Some(href.clone())),
        Some(other) => Err(format!("_links.next.href is {other}, not a link")),
    }
}

/// The records of a page, as the stream's definition places them, each an
/// object of the stream's [`Shape`]; anything else is a malformed page (an
/// error: retried, then the stream fails), never an empty one.
///
/// A page without its records array is malformed, on every endpoint. The live
/// contract marks the array required on the tracking reports
/// (`tracking_activities` of `/reports/email_reports/…/tracking/*` and of the
/// landing-page reports), `/segments` and a contact's `activity_summary`; on
/// the other list endpoints it declares the array without `required`, as it
/// declares nearly every field, and no description says an empty array is
/// left out. So nothing reads that as "may be missing". The one exception is
/// where the API itself says there is nothing: a page whose count of the read
/// (`StreamDef::count`, e.g. `contacts_count`) is 0, with no next link, is
/// empty even without its array. (The stats that gate a report say so too:
/// an activity whose count of an event is 0 is not asked for that report at
/// all, see `sync::PerParentSync`.)
pub fn records_of<'a>(
    def: &StreamDef,
    page: &'a Value,
    has_next: bool,
) -> std::result::Result<&'a [Value], String> {
    let shape_error =
        |expected: &str| format!("expected {expected}, got {}", truncate(&page.to_string()));
    let records: &[Value] = match &def.records {
        Records::Key(key) => match page.get(key) {
            Some(Value::Array(items)) => items,
            None if page.is_object() && says_empty(count_of(def, page), has_next) => &[],
            None if page.is_object() => {
                return Err(format!(
                    "the page has no `{key}` array (and no count of 0 says the read is empty): {}",
                    truncate(&page.to_string())
                ))
            }
            _ => return Err(shape_error(&format!("an array `{key}`"))),
        },
        Records::Array => page.as_array().ok_or_else(|| shape_error("an array"))?,
        Records::ArrayOrObject => match page {
            Value::Array(items) => items,
            Value::Object(_) => std::slice::from_ref(page),
            _ => return Err(shape_error("an array or an object")),
        },
        Records::Object if page.is_object() => std::slice::from_ref(page),
        Records::Object => return Err(shape_error("an object")),
    };
    if records.iter().any(|record| !record.is_object()) {
        return Err(shape_error("records that are objects"));
    }
    let shape = Shape::of(&def.schema);
    for (index, record) in records.iter().enumerate() {
        if let Some(problem) = shape.mismatch(record) {
            return Err(format!(
                "record {index} of the page is malformed: {problem}"
            ));
        }
    }
    Ok(records)
}

/// The page's count of the read's records, where the stream has one.
fn count_of(def: &StreamDef, page: &Value) -> Option<u64> {
    def.count
        .as_ref()
        .and_then(|key| page.get(key))
        .and_then(Value::as_u64)
}

/// Whether a page without its records array is empty because the API says
/// so: its count of the read is 0 and no page follows.
fn says_empty(count: Option<u64>, has_next: bool) -> bool {
    count == Some(0) && !has_next
}

fn truncate(text: &str) -> String {
    const LIMIT: usize = 300;
    match text.char_indices().nth(LIMIT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::RecordRef;
    use crate::streams::Cursor;

    /// What the page loop had before pages were read the fast way: the body
    /// parsed in full, its link and records checked.
    fn slow(
        def: &StreamDef,
        text: &str,
    ) -> std::result::Result<(Vec<Value>, Option<String>), String> {
        let body: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let next = next_link(&body)?;
        Ok((records_of(def, &body, next.is_some())?.to_vec(), next))
    }

    fn fast(
        def: &StreamDef,
        text: &str,
    ) -> std::result::Result<(Vec<Value>, Option<String>), String> {
        let url = Url::parse("http://api.test/v3/things").unwrap();
        match parse_page(def, &url, text.to_string()) {
            Ok(page) => {
                let mut records = Vec::new();
                for i in 0..page.body.len() {
                    let record = page.body.get(i);
                    // Raw text is exactly what writing the value gives.
                    if let RecordRef::Raw(raw) = record {
                        let value: Value = serde_json::from_str(raw).unwrap();
                        assert_eq!(serde_json::to_string(&value).unwrap(), raw);
                    }
                    let value = record.to_value().into_owned();
                    let view = &page.body.views[i];
                    for field in raw::fields_read(def) {
                        assert_eq!(view.get(field), value.get(field), "{text}");
                    }
                    records.push(value);
                }
                Ok((records, page.next))
            }
            Err(BodyError::NotJson(e)) => Err(format!("not JSON: {e}")),
            Err(BodyError::Problem(problem)) => Err(problem),
        }
    }

    /// A schema declaring containers: arrays and objects, nullable or not,
    /// nested, and a property whose key needs an escape.
    const TYPED: &str = r#"{
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": ["null", "string"]},
            "lists": {
                "type": ["null", "array"],
                "items": {
                    "type": ["null", "object"],
                    "properties": {"ids": {"type": ["null", "array"], "items": {"type": "string"}}}
                }
            },
            "address": {
                "type": ["null", "object"],
                "properties": {
                    "tags": {"type": "array"},
                    "city": {"type": ["string", "object"]}
                }
            },
            "li\"sts": {"type": "array"}
        }
    }"#;

    #[test]
    fn a_window_longer_than_the_endpoint_accepts_keeps_its_latest_part() {
        let at = |text: &str| DateTime::parse_from_rfc3339(text).unwrap().to_utc();
        let five_years = chrono::Duration::days(5 * 365);
        let limited = DateWindow::new("start", "end").at_most(five_years);
        let end = at("2026-08-13T12:00:00Z");
        let long = WindowRange::between(&limited, at("2010-01-01T00:00:00Z"), end);
        assert_eq!(long.end, end);
        assert_eq!(long.end - long.start, five_years);
        assert_eq!(long.cut_from, Some(at("2010-01-01T00:00:00Z")));
        // A window within the limit, or on an endpoint without one, stays.
        let short = WindowRange::between(&limited, at("2024-01-01T00:00:00Z"), end);
        assert_eq!(
            (short.start, short.cut_from),
            (at("2024-01-01T00:00:00Z"), None)
        );
        let open = DateWindow::new("start", "end");
        let whole = WindowRange::between(&open, at("2010-01-01T00:00:00Z"), end);
        assert_eq!(
            (whole.start, whole.cut_from),
            (at("2010-01-01T00:00:00Z"), None)
        );
    }

    #[test]
    fn pages_read_fast_read_as_before() {
        let keyed = StreamDef::new("things", "/things")
            .records_key("things")
            .primary_key(&["id"])
            .cursor(Cursor::new("updated_at", "updated_after"));
        let array = StreamDef::new("rows", "/rows").records(Records::Array);
        let either = StreamDef::new("rows", "/rows").records(Records::ArrayOrObject);
        let object = StreamDef::new("one", "/one");
        let counted = StreamDef::new("things", "/things")
            .records_key("things")
            .count("things_count");
        let typed = StreamDef::new("things", "/things")
            .records_key("things")
            .primary_key(&["id"])
            .schema(TYPED);
        let typed_object = StreamDef::new("one", "/one").schema(TYPED);
        let pages = [
            r#"{"things":[{"id":1,"updated_at":"2025-01-01T00:00:00Z","x":{"id":2}}],"_links":{"next":{"href":"/v3/things?cursor=a"}}}"#,
            r#" {"_links":{"next":{"href":"/a"}},"things":[{"id":"a"},{"id":"b","id":"c"},{"id": "d"},{"s":"\/"}]} "#,
            r#"{"things":[{"id":1}],"things":[{"id":2}],"_links":{"next":{"href":"/x"}},"_links":{}}"#,
            r#"{"things":[]}"#,
            r#"{}"#,
            r#"{"_links":{"next":{"href":"/more"}}}"#,
            r#"{"things":[{"id":1}],"_links":{"next":{"href":5}}}"#,
            r#"{"things":[{"id":1}],"_links":{"next":null}}"#,
            r#"{"things":[{"id":1}],"_links":[]}"#,
            r#"{"things":{"id":1}}"#,
            r#"{"things":[1,2]}"#,
            r#"{"things":[{"id":1.50e2}]}"#,
            r#"{"things":[{"id":"\ud800"}]}"#,
            r#"{"things":[{"id":1}]"#,
            r#"{"things":[{"id":1}]} x"#,
            r#"[{"id":1},{"id":2}]"#,
            r#"[]"#,
            r#"[{"id":1},[]]"#,
            r#"{"id":1,"updated_at":"2025-01-01T00:00:00Z"}"#,
            r#"{"id":1, "updated_at":"2025-01-01T00:00:00Z"}"#,
            r#""text""#,
            r#"null"#,
            r#"5"#,
            "",
            // A missing array is empty only where the page's count says so.
            r#"{"things_count":0}"#,
            r#"{"things_count":0,"_links":{"next":{"href":"/x"}}}"#,
            r#"{"things_count":3}"#,
            r#"{"things_count":"0"}"#,
            r#"{"things_count":0,"things_count":1}"#,
            r#"{"things_count":1,"things_count":0}"#,
            r#"{"things":[],"things_count":0}"#,
            // Declared containers of another type, at any depth.
            r#"{"things":[{"id":1,"lists":"not-a-list"}]}"#,
            r#"{"things":[{"id":1,"lists":null,"address":null,"name":[1]}]}"#,
            r#"{"things":[{"id":1,"lists":[{"ids":["a"]},null,{"ids":null}]}]}"#,
            r#"{"things":[{"id":1,"lists":[{"ids":"a"}]}]}"#,
            r#"{"things":[{"id":1,"lists":[5]}]}"#,
            r#"{"things":[{"id":1,"lists":{}}]}"#,
            r#"{"things":[{"id":1,"address":{"tags":[]}},{"id":2,"address":{"tags":null}}]}"#,
            r#"{"things":[{"id":1,"address":{"tags":{}}}]}"#,
            r#"{"things":[{"id":1,"address":[]}]}"#,
            r#"{"things":[{"id":1,"address":{"tags":[1],"city":{"x":[]}}}]}"#,
            r#"{"things":[{"id":1,"address":{"city":["any"],"tags":true}}]}"#,
            r#"{"things":[{"id":1, "lists":"spaced, so not canonical"}]}"#,
            r#"{"things":[{"id":1,"lists":"first","lists":[]}]}"#,
            r#"{"things":[{"id":1,"lists":[],"lists":"last"}]}"#,
            r#"{"things":[{"id":1,"\u006cists":"escaped key"}]}"#,
            r#"{"things":[{"id":1,"li\"sts":"an odd key"}]}"#,
            r#"{"id":1,"lists":"not-a-list"}"#,
            r#"{"id":1,"lists":["a"],"address":{"tags":[]}}"#,
        ];
        for def in [
            &keyed,
            &array,
            &either,
            &object,
            &counted,
            &typed,
            &typed_object,
        ] {
            for text in pages {
                assert_eq!(
                    fast(def, text),
                    slow(def, text),
                    "{:?}: {text}",
                    def.records
                );
            }
        }
    }

    /// Both ways agree (above); this says what they agree on.
    #[test]
    fn a_page_that_breaks_its_shape_is_an_error_never_an_empty_page() {
        let keyed = StreamDef::new("things", "/things").records_key("things");
        let counted = keyed.clone().count("things_count");
        let typed = keyed.clone().schema(TYPED);
        let empty: std::result::Result<(Vec<Value>, Option<String>), String> =
            Ok((Vec::new(), None));
        for (def, page) in [
            (&keyed, r#"{}"#),
            (&keyed, r#"{"_links":{}}"#),
            (&counted, r#"{}"#),
            (&counted, r#"{"things_count":12}"#),
            (
                &counted,
                r#"{"things_count":0,"_links":{"next":{"href":"/x"}}}"#,
            ),
        ] {
            let error = fast(def, page).unwrap_err();
            assert!(error.contains("no `things` array"), "{page}: {error}");
        }
        assert_eq!(fast(&counted, r#"{"things_count":0}"#), empty);
        assert_eq!(fast(&keyed, r#"{"things":[]}"#), empty);

        let error = fast(
            &typed,
            r#"{"things":[{"lists":[]},{"lists":"not-a-list"}]}"#,
        );
        assert_eq!(
            error.unwrap_err(),
            "record 1 of the page is malformed: lists is \"not-a-list\" where the schema \
             declares an array or null"
        );
        let error = fast(&typed, r#"{"things":[{"lists":[{"ids":{"a":1}}]}]}"#).unwrap_err();
        assert!(error.contains("lists[0].ids is {\"a\":1}"), "{error}");
        let error = fast(&typed, r#"{"things":[{"address":{"tags":null}}]}"#).unwrap_err();
        assert!(error.ends_with("address.tags is null where the schema declares an array"));
        // Scalars, and values the schema does not declare, are not checked.
        let page = r#"{"things":[{"id":"1","name":[],"address":{"city":5},"other":"x"}]}"#;
        assert_eq!(fast(&typed, page).unwrap().0.len(), 1);
        // A record of its shape still goes on as the API's text.
        let page = r#"{"things":[{"id":1,"lists":[{"ids":["a"]}],"address":{"tags":[]}}]}"#;
        let url = Url::parse("http://api.test/v3/things").unwrap();
        let read = parse_page(&typed, &url, page.to_string()).ok().unwrap();
        assert!(matches!(read.body.get(0), RecordRef::Raw(_)));
    }

    #[test]
    fn a_read_stops_once_it_reads_far_more_than_the_api_said_it_holds() {
        let def = StreamDef::new("contacts", "/contacts")
            .records_key("contacts")
            .page_size(500)
            .count("contacts_count");
        // Twice the count, and two pages for records moving while they are read.
        assert!(check_runaway(&def, "/v3/contacts", 100_000, 201_000).is_ok());
        let error = check_runaway(&def, "/v3/contacts", 100_000, 201_001).unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("GET /v3/contacts: read 201001 records where the API said the read holds 100000 (`contacts_count`)"),
            "{message}"
        );
        // An empty read still has its slack.
        assert!(check_runaway(&def, "/v3/contacts", 0, 1_000).is_ok());
        assert!(check_runaway(&def, "/v3/contacts", 0, 1_001).is_err());
    }
}
