//! A large read split into windows of the cursor (`updated_after` …
//! `updated_before`) read as concurrent chains.
//!
//! One chain of pages goes no faster than one request per round trip (about
//! 3 requests/s at 300 ms), under the API's 4/s. A stream that declares
//! `StreamDef::split_by_cursor` starts as one window, the whole read; when a
//! window's first page says it holds more than [`SPLIT_PAGES`] pages, that
//! page is set aside (its records are read again in the pieces: one request
//! spent, no record emitted twice) and the window is cut into pieces at
//! quantiles of its page's cursor values. Pieces are read side by side, up
//! to [`IN_FLIGHT`] requests at once; the shared rate limiter sets the pace.
//! A piece whose own first page shows it far larger than its share is cut
//! again, so a skewed account still spreads out.
//!
//! Bounds are exclusive in the strict reading, and an API may compare whole
//! seconds: neighbouring pieces overlap by [`OVERLAP`], so a record changed
//! at a cut is in one piece at least (in both for the overlap: a duplicate,
//! never a loss).
//!
//! After every page the windows not finished yet, each with its next link,
//! are what a checkpoint saves ([`WindowState`]); a stopped read resumes
//! every window where it stood.
//!
//! A server that ignores the window filters would make this run away: every
//! piece's first page would say it holds the whole read, and be cut again.
//! So a window whose records fall outside its bounds, or a piece whose first
//! page counts no fewer records than the window it was cut from, ends the
//! splitting: the stream is read as one chain from there, with one warning.
//! Independently, the windows together never read more than
//! [`super::pages::RUNAWAY_FACTOR`] times what the first page said the read
//! holds (see [`super::pages::check_runaway`]): past that, the read stops
//! with an error.

use std::sync::Arc;

use chrono::{DateTime, Duration, DurationRound, Utc};
use futures::future::LocalBoxFuture;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use url::Url;

use super::pages::{check_runaway, fetch, window_page, Chain, Fetched};
use super::state::{format_time, parse_time, Timestamp, WindowState};
use super::{Context, StreamReport};
use crate::error::Result;
use crate::protocol::Level;
use crate::streams::StreamDef;

/// A window of more pages than this is split.
const SPLIT_PAGES: u64 = 8;
/// Pages a piece should hold, to choose how many pieces to cut.
const PIECE_PAGES: u64 = 10;
/// Pieces one cut makes, at most, and windows of one read, at most (each
/// unfinished one is a few hundred bytes of every checkpoint).
const MAX_PIECES: u64 = 16;
const MAX_WINDOWS: usize = 32;
/// Pages asked for at once. Two chains side by side keep the limiter's 4/s
/// busy while a round trip is under about half a second (a full sync reads
/// every other stream at the same time as well), and hold two page bodies in
/// memory: with more, the peak memory of long reads crept up.
const IN_FLIGHT: usize = 2;
/// How far each piece reaches back before its cut.
const OVERLAP: Duration = Duration::seconds(1);
/// How far outside its window's bounds a record may be before it shows the
/// filter ignored: the API may compare whole seconds.
const BOUNDS_SLACK: Duration = Duration::seconds(2);

type Answer = (u64, Result<(Fetched, u32)>);

struct Window {
    id: u64,
    after: Option<DateTime<Utc>>,
    before: Option<DateTime<Utc>>,
    chain: Chain,
    /// Its first page is not read yet: it may still be cut.
    fresh: bool,
    /// The records it was cut to hold; `None` for the whole read.
    share: Option<u64>,
    /// The count of the window it was cut from; `None` for the whole read.
    cut_from: Option<u64>,
    in_flight: bool,
}

pub struct Windows {
    def: Arc<StreamDef>,
    /// Unfinished, in order of the cursor.
    windows: Vec<Window>,
    in_flight: FuturesUnordered<LocalBoxFuture<'static, Answer>>,
    /// The id given to the newest window.
    next_id: u64,
    /// The whole read's count, handed on with the first page handed on.
    total: Option<u64>,
    total_given: bool,
    /// Where an open window ends, for cutting it.
    end: DateTime<Utc>,
    /// Records changed after this changed during the run: they may lie past
    /// their window's end.
    run_started: DateTime<Utc>,
    /// The read is in windows (cut, or resumed in windows).
    split: bool,
    /// The bounds of the whole read (of the windows resumed).
    bounds: (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
    /// The server ignores the window filters: the read is one chain, never
    /// cut.
    one_chain: bool,
    /// How many records the whole read holds, as its first page said (not
    /// known for a resumed read).
    said: Option<u64>,
    /// Records handed on so far.
    read: u64,
    /// The endpoint's path, for messages.
    path: String,
}

impl Windows {
    /// The read of the records changed after `after` (all, when `None`),
    /// as one window to start with.
    pub fn new(ctx: &Context, def: &Arc<StreamDef>, after: Option<DateTime<Utc>>) -> Windows {
        let mut windows = Windows::empty(ctx, def);
        windows.bounds = (after, None);
        windows.push(ctx, after, None, None, None);
        windows
    }

    /// The windows a stopped read left, each where it stood.
    pub fn resume(ctx: &Context, def: &Arc<StreamDef>, saved: &[WindowState]) -> Result<Windows> {
        let mut windows = Windows::empty(ctx, def);
        for window in saved {
            let link = match &window.next_page {
                Some(link) => Some(ctx.api.resolve_link(link)?),
                None => None,
            };
            let (after, before) = (window.after.map(|t| t.0), window.before.map(|t| t.0));
            windows.push(ctx, after, before, link, None);
        }
        // The span of the windows resumed (an open end when any is open).
        let afters: Option<Vec<DateTime<Utc>>> =
            saved.iter().map(|w| w.after.map(|t| t.0)).collect();
        let befores: Option<Vec<DateTime<Utc>>> =
            saved.iter().map(|w| w.before.map(|t| t.0)).collect();
        windows.bounds = (
            afters.and_then(|a| a.into_iter().min()),
            befores.and_then(|b| b.into_iter().max()),
        );
        ctx.output.log(
            Level::Info,
            &format!(
                "{}: resuming an unfinished read of {} windows",
                def.name,
                saved.len()
            ),
        );
        // The whole read's count is not known again: no estimate.
        windows.total_given = true;
        windows.split = true;
        Ok(windows)
    }

    fn empty(ctx: &Context, def: &Arc<StreamDef>) -> Windows {
        Windows {
            def: def.clone(),
            windows: Vec::new(),
            in_flight: FuturesUnordered::new(),
            next_id: 0,
            total: None,
            total_given: false,
            end: ctx.end_date.unwrap_or(ctx.run_started),
            run_started: ctx.run_started,
            split: false,
            bounds: (None, None),
            one_chain: false,
            said: None,
            read: 0,
            path: ctx.api.endpoint(&def.path, &[]).path().to_string(),
        }
    }

    /// Adds a window; `resume_at` is a saved link of one already started.
    fn push(
        &mut self,
        ctx: &Context,
        after: Option<DateTime<Utc>>,
        before: Option<DateTime<Utc>>,
        resume_at: Option<Url>,
        share: Option<(u64, u64)>,
    ) {
        let window = self.window(ctx, after, before, resume_at, share);
        self.windows.push(window);
    }

    /// A new window, with the next id; `share` is, for a piece, the records
    /// it was cut to hold and the count of the window it was cut from.
    fn window(
        &mut self,
        ctx: &Context,
        after: Option<DateTime<Utc>>,
        before: Option<DateTime<Utc>>,
        resume_at: Option<Url>,
        share: Option<(u64, u64)>,
    ) -> Window {
        let first = window_page(ctx, &self.def, after, before);
        let fresh = resume_at.is_none();
        let chain = match resume_at {
            Some(saved) => Chain::resume(saved, first),
            None => Chain::new(first),
        };
        self.next_id += 1;
        Window {
            id: self.next_id,
            after,
            before,
            chain,
            fresh,
            share: share.map(|(share, _)| share),
            cut_from: share.map(|(_, count)| count),
            in_flight: false,
        }
    }

    /// The next page of any window, with where every unfinished window
    /// stands once it is handed on (none while the read is one window: its
    /// page's next link says it); `None` when all are read.
    pub async fn next(
        &mut self,
        ctx: &Context,
        report: &mut StreamReport,
    ) -> Result<Option<(Fetched, Option<Vec<WindowState>>)>> {
        loop {
            self.launch(ctx);
            let Some((id, answer)) = self.in_flight.next().await else {
                return Ok(None);
            };
            // An answer for a window given up (see `one_chain`) is dropped.
            let Some(index) = self.windows.iter().position(|w| w.id == id) else {
                continue;
            };
            let window = &mut self.windows[index];
            window.in_flight = false;
            let Some(fetched) = window.chain.accept(ctx, &self.def, answer, report)? else {
                continue;
            };
            let fresh = std::mem::replace(&mut window.fresh, false);
            if fresh && self.total.is_none() {
                self.total = fetched.count;
            }
            // The first page of the whole read (a resumed read has none).
            if fresh && !self.split {
                self.said = fetched.count;
            }
            if !self.one_chain {
                if let Some(sign) = self.filter_ignored(index, &fetched, fresh) {
                    if self.one_chain(ctx, index, &sign) {
                        continue;
                    }
                }
            }
            if fresh && !self.one_chain {
                if let Some(pieces) = self.cut(index, &fetched) {
                    self.split(ctx, index, pieces, fetched.count.unwrap_or_default());
                    continue;
                }
            }
            if self.windows[index].chain.pending().is_none() {
                self.windows.remove(index);
            }
            self.read += fetched.body.len() as u64;
            if let Some(said) = self.said {
                check_runaway(&self.def, &self.path, said, self.read)?;
            }
            let count = if self.total_given {
                None
            } else {
                self.total_given = true;
                self.total
            };
            let positions = self.split.then(|| self.positions());
            return Ok(Some((Fetched { count, ..fetched }, positions)));
        }
    }

    /// What shows that the server ignored the filters of window `index`,
    /// whose page is `page` (`first`: its first page): a record outside the
    /// window's bounds, or, on the first page of a piece, a count no smaller
    /// than that of the window it was cut from. Every record of a first page
    /// is looked at, the first and last of a later one (a page that ignores
    /// the filter has records from the whole read: both are unlikely to fall
    /// inside a window; looking at them all would cost a few percent of the
    /// CPU of a read).
    fn filter_ignored(&self, index: usize, page: &Fetched, first: bool) -> Option<String> {
        let window = &self.windows[index];
        if let (true, Some(whole), Some(count)) = (first, window.cut_from, page.count) {
            if count >= whole {
                return Some(format!(
                    "a window cut from one of {whole} records says it holds {count}"
                ));
            }
        }
        let field = &self.def.cursor.as_ref()?.field;
        let after = window.after;
        let before = window.before.unwrap_or(self.end);
        let views = &page.body.views;
        let last = views.len().saturating_sub(1);
        let looked_at = views
            .iter()
            .enumerate()
            .filter(|(i, _)| first || *i == 0 || *i == last);
        looked_at.map(|(_, view)| view).find_map(|view| {
            let at = view.get(field)?.as_str().and_then(parse_time)?;
            let early = after
                .and_then(|after| after.checked_sub_signed(BOUNDS_SLACK))
                .is_some_and(|after| at < after);
            // Later than the run's start, it changed during the run.
            let late = before
                .checked_add_signed(BOUNDS_SLACK)
                .is_some_and(|before| at > before && at <= self.run_started);
            (early || late).then(|| {
                let bound = |t: Option<DateTime<Utc>>| t.map_or("…".into(), format_time);
                format!(
                    "a record whose {field} is {} came back for the window {} to {}",
                    format_time(at),
                    bound(after),
                    bound(Some(before))
                )
            })
        })
    }

    /// Gives up the windows (`sign` says why): the read goes on as one
    /// chain, never cut, with one warning. A read still in its first window
    /// goes on as it is; otherwise the windows are dropped (answers in flight
    /// for them are too) and one chain reads the whole read again, which
    /// may repeat records already handed on, never loses one. Returns whether
    /// window `index`'s page is dropped.
    fn one_chain(&mut self, ctx: &Context, index: usize, sign: &str) -> bool {
        self.one_chain = true;
        let filters: Vec<&str> = self
            .def
            .cursor
            .iter()
            .flat_map(|c| c.param.iter().chain(c.end_param.iter()))
            .map(String::as_str)
            .collect();
        ctx.output.log(
            Level::Warn,
            &format!(
                "{}: {sign}: the server seems to ignore `{}`; reading the stream as one chain \
                 instead of windows side by side",
                self.def.name,
                filters.join("`/`")
            ),
        );
        let whole = (self.windows[index].after, self.windows[index].before) == self.bounds;
        if !self.split && whole {
            return false;
        }
        let (after, before) = self.bounds;
        self.windows.clear();
        self.push(ctx, after, before, None, None);
        // Never cut, so nothing to save but the chain's next link.
        self.windows[0].fresh = false;
        self.split = false;
        true
    }

    /// Asks for the pending page of windows not in flight, in cursor order,
    /// up to [`IN_FLIGHT`] at once.
    fn launch(&mut self, ctx: &Context) {
        for window in &mut self.windows {
            if self.in_flight.len() >= IN_FLIGHT {
                break;
            }
            let Some(url) = window.chain.pending().filter(|_| !window.in_flight) else {
                continue;
            };
            window.in_flight = true;
            let (id, page) = (window.id, fetch(ctx, &self.def, url.clone()));
            self.in_flight
                .push(Box::pin(async move { (id, page.await) }));
        }
    }

    /// Where the unfinished windows stand.
    fn positions(&self) -> Vec<WindowState> {
        self.windows
            .iter()
            .map(|w| WindowState {
                after: w.after.map(Timestamp),
                before: w.before.map(Timestamp),
                next_page: (!w.fresh)
                    .then(|| w.chain.pending().map(Url::to_string))
                    .flatten(),
            })
            .collect()
    }

    /// The cuts of window `index`, whose first page is `page`, if it is
    /// worth splitting.
    fn cut(&self, index: usize, page: &Fetched) -> Option<Vec<DateTime<Utc>>> {
        let window = &self.windows[index];
        let (count, page_size) = (page.count?, u64::from(self.def.page_size?));
        page.next.as_ref()?;
        let room = (MAX_WINDOWS + 1).saturating_sub(self.windows.len()) as u64;
        let pieces = pieces(count, page_size, window.share, room)?;
        let field = &self.def.cursor.as_ref()?.field;
        let times: Vec<DateTime<Utc>> = page
            .body
            .views
            .iter()
            .filter_map(|view| view.get(field)?.as_str().and_then(parse_time))
            .collect();
        let cuts = cuts_at_quantiles(
            times,
            window.after,
            window.before.unwrap_or(self.end),
            pieces,
        );
        (!cuts.is_empty()).then_some(cuts)
    }

    /// Replaces window `index` by the pieces between its bounds and `cuts`.
    fn split(&mut self, ctx: &Context, index: usize, cuts: Vec<DateTime<Utc>>, count: u64) {
        let window = self.windows.remove(index);
        let share = Some((count / (cuts.len() as u64 + 1), count));
        let mut pieces = Vec::with_capacity(cuts.len() + 1);
        let mut after = window.after;
        for cut in &cuts {
            pieces.push(self.window(ctx, after, Some(*cut), None, share));
            after = Some(*cut - OVERLAP);
        }
        pieces.push(self.window(ctx, after, window.before, None, share));
        ctx.output.log(
            Level::Info,
            &format!(
                "{}: {count} records in {} pages; reading them as {} windows side by side",
                self.def.name,
                count.div_ceil(u64::from(self.def.page_size.unwrap_or(1))),
                pieces.len()
            ),
        );
        self.windows.splice(index..index, pieces);
        self.split = true;
    }
}

/// Cuts between `after` and `before` at the `pieces`-quantiles of a sample of
/// cursor values, on whole seconds and at least twice [`OVERLAP`] from each
/// other and from the bounds (a piece never holds less than its overlap).
/// Fewer when the sample is too narrow; none when it cannot be cut.
/// How many pieces a window of `count` records, cut to hold `share` (the
/// whole read: `None`), is cut into with `room` windows left; `None`: it is
/// not cut.
fn pieces(count: u64, page_size: u64, share: Option<u64>, room: u64) -> Option<u64> {
    let threshold = (SPLIT_PAGES * page_size).max(share.map_or(0, |share| 2 * share));
    let pieces = count
        .div_ceil(PIECE_PAGES * page_size)
        .min(MAX_PIECES)
        .min(room);
    (count > threshold && pieces >= 2).then_some(pieces)
}

/// The windows a whole read of `count` records is cut into at its first
/// page (1: not cut), for estimates of what the read costs.
pub fn first_cut(count: u64, page_size: u64) -> u64 {
    pieces(count, page_size, None, MAX_WINDOWS as u64).unwrap_or(1)
}

fn cuts_at_quantiles(
    mut times: Vec<DateTime<Utc>>,
    after: Option<DateTime<Utc>>,
    before: DateTime<Utc>,
    pieces: u64,
) -> Vec<DateTime<Utc>> {
    let gap = OVERLAP * 2;
    times.retain(|t| after.is_none_or(|a| *t > a) && *t < before);
    times.sort_unstable();
    let mut cuts: Vec<DateTime<Utc>> = Vec::new();
    for i in 1..pieces {
        let Some(at) = times.get((i as usize * times.len()) / pieces as usize) else {
            break;
        };
        let Ok(cut) = at.duration_trunc(Duration::seconds(1)) else {
            continue;
        };
        let lower = cuts.last().copied().or(after);
        if lower.is_none_or(|lower| cut >= lower + gap) && cut + gap <= before {
            cuts.push(cut);
        }
    }
    cuts
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + seconds, 0).unwrap()
    }

    #[test]
    fn cuts_fall_at_quantiles_on_whole_seconds_within_the_bounds() {
        let times: Vec<_> = (0..100)
            .map(|i| at(i * 10) + Duration::milliseconds(250))
            .collect();
        let cuts = cuts_at_quantiles(times.clone(), None, at(2_000), 4);
        assert_eq!(cuts, vec![at(250), at(500), at(750)]);
        // Values outside the window are not part of its sample.
        let cuts = cuts_at_quantiles(times, Some(at(495)), at(2_000), 2);
        assert_eq!(cuts, vec![at(750)]);
    }

    #[test]
    fn a_narrow_sample_gives_fewer_cuts_or_none() {
        let same_second = vec![at(100); 500];
        assert_eq!(
            cuts_at_quantiles(same_second, None, at(1_000), 8),
            vec![at(100)]
        );
        // Every value within the overlap of the lower bound: nothing to cut.
        let near_start: Vec<_> = (0..50).map(|_| at(1)).collect();
        assert!(cuts_at_quantiles(near_start, Some(at(0)), at(1_000), 4).is_empty());
        let near_end = vec![at(999); 10];
        assert!(cuts_at_quantiles(near_end, Some(at(0)), at(1_000), 4).is_empty());
        assert!(cuts_at_quantiles(Vec::new(), None, at(1_000), 4).is_empty());
    }
}
