//! A read of every record held to the counts other streams state of them
//! ([`MemberCount`]): each list's `membership_count` and each tag's
//! `contacts_count` against the contacts delivered that list it.
//!
//! Only a read of the whole account can be held so: a first sync or a
//! reconciliation of `contacts`, with no filter or end date, whose count
//! equals the account's (the start date leaves out contacts changed before
//! it). That costs one request for the account's count and one for each
//! counting stream's listing (shared with a stream that lists them in the same
//! run). Counted records may be delivered twice (windows overlap by a second),
//! so a count is a floor: fewer members than it are read again, by the
//! request for that one list's or tag's members; still fewer fail the stream.

use std::collections::HashMap;

use serde_json::Value;
use url::Url;

use super::audit::Shortfall;
use super::pages::{first_page, Chain};
use super::{Context, Sink, StreamReport};
use crate::error::{Error, Result};
use crate::protocol::Level;
use crate::streams::{MemberCount, StreamDef};

/// Per member count of the stream, and per id: the records delivered that
/// list the id.
#[derive(Debug, Default)]
pub struct Tally {
    ids: HashMap<(usize, String), u64>,
}

impl Tally {
    /// Counts the ids a record's `view` lists in each member field.
    pub fn add(&mut self, def: &StreamDef, view: &Value) {
        for (index, member) in def.members.iter().enumerate() {
            for id in listed(view, member) {
                *self.ids.entry((index, id.to_string())).or_default() += 1;
            }
        }
    }
}

fn listed<'v>(view: &'v Value, member: &MemberCount) -> impl Iterator<Item = &'v str> {
    view.get(&member.field)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

/// Holds a whole read of `def` (whose first page said it holds `said`
/// records) to its member counts; an error when members stay short with
/// `fail_on_audit_shortfall` on.
pub async fn audit(
    ctx: &Context,
    def: &StreamDef,
    said: Option<u64>,
    tally: Tally,
    sink: &mut dyn Sink,
    report: &mut StreamReport,
) -> Result<()> {
    let filtered = def
        .filters
        .iter()
        .any(|(_, list)| !ctx.lists.get(*list).is_empty());
    let Some(said) = said.filter(|_| !filtered && ctx.end_date.is_none()) else {
        return Ok(());
    };
    let total = account_count(ctx, def, report).await?;
    if total != Some(said) {
        report.audit.unchecked += def.members.len() as u64;
        ctx.output.log(
            Level::Info,
            &format!(
                "{}: list and tag member counts not checked: this read holds {said} of the \
                 account's {} records (the start date leaves the others out)",
                def.name,
                total.map_or("?".into(), |t| t.to_string())
            ),
        );
        return Ok(());
    }
    for (index, member) in def.members.iter().enumerate() {
        let counting = ctx
            .registry
            .find_any(&member.stream)
            .ok_or_else(|| Error::system(format!("the table has no {} stream", member.stream)))?;
        let mut listing = StreamReport::default();
        let records = ctx
            .parents
            .records(ctx, counting, None, &mut listing)
            .await?;
        report.requests += listing.requests;
        report.pages += listing.pages;
        for record in records.iter() {
            let (Some(id), Some(expected)) = (
                record.get(&member.key).and_then(Value::as_str),
                record.get(&member.count).and_then(Value::as_u64),
            ) else {
                continue;
            };
            let delivered = tally
                .ids
                .get(&(index, id.to_string()))
                .copied()
                .unwrap_or(0);
            if delivered >= expected {
                report.audit.passed(expected, delivered);
                continue;
            }
            ctx.output.log(
                Level::Warn,
                &format!(
                    "{}: {delivered} records list {} {id} where its `{}` says {expected}; \
                     reading its members once more",
                    def.name, member.key, member.count
                ),
            );
            report.audit.reread += 1;
            let members = reread(ctx, def, member, id, sink, report).await?;
            if members >= expected {
                report.audit.passed(expected, members);
            } else {
                report.audit.failed(Shortfall {
                    read: format!("the members of {} {id}", member.key),
                    count: format!("{}.{}", member.stream, member.count),
                    expected,
                    delivered: members,
                });
            }
        }
    }
    match report.audit.error() {
        Some(error) if ctx.fail_on_audit_shortfall => Err(error),
        _ => Ok(()),
    }
}

/// How many records the account holds: one request for one record, with
/// the read's fixed parameters and no change bounds.
async fn account_count(
    ctx: &Context,
    def: &StreamDef,
    report: &mut StreamReport,
) -> Result<Option<u64>> {
    let url = with_param(first_page(ctx, def, &def.path, None), "limit", "1");
    let page = Chain::new(url).next(ctx, def, report).await?;
    Ok(page.and_then(|page| page.count))
}

/// Reads the members of `id` again (the read with `member.filter` set to
/// it), delivering them, and says how many list it.
async fn reread(
    ctx: &Context,
    def: &StreamDef,
    member: &MemberCount,
    id: &str,
    sink: &mut dyn Sink,
    report: &mut StreamReport,
) -> Result<u64> {
    let url = with_param(first_page(ctx, def, &def.path, None), &member.filter, id);
    let mut chain = Chain::new(url);
    let mut members = 0;
    while let Some(page) = chain.next(ctx, def, report).await? {
        for (index, view) in page.body.views.iter().enumerate() {
            members += u64::from(listed(view, member).any(|listed| listed == id));
            sink.record(page.body.get(index));
        }
        report.records += page.body.len() as u64;
    }
    Ok(members)
}

/// `url` with `param` set to `value`, replacing any value it had.
fn with_param(mut url: Url, param: &str, value: &str) -> Url {
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != param)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    url.query_pairs_mut()
        .clear()
        .extend_pairs(pairs)
        .append_pair(param, value);
    url
}
