//! A full-refresh child stream that is itself the parent of another stream
//! (`events`, whose details the registrations need for their track) is read
//! through the run's parent cache: its records are read once, however many
//! of the run's streams need them, rather than once as a stream and once as
//! parents. Its records are then held until the stream is read (they are
//! held for the children anyway).

use std::sync::Arc;

use super::{sync, Context, Sink, StreamReport};
use crate::error::Result;
use crate::protocol::RecordRef;
use crate::streams::StreamDef;

/// Whether `def` is read through the parent cache: a child stream read in
/// full that another stream of the registry takes its parents from.
pub fn applies(ctx: &Context, def: &StreamDef, incremental: bool) -> bool {
    ctx.registry.read_as_parents(def, incremental)
}

/// Reads `def` through the parent cache into `sink`.
pub async fn read(
    ctx: &Context,
    def: &Arc<StreamDef>,
    sink: &mut dyn Sink,
    report: &mut StreamReport,
) -> Result<()> {
    let records = ctx.parents.records(ctx, def, None, report).await?;
    for record in records.iter() {
        sink.record(RecordRef::Value(record));
    }
    report.records += records.len() as u64;
    let none = sync::FullRefresh.finish_state();
    sink.state(none.clone(), records.len() as u64);
    sink.finish(none);
    Ok(())
}
