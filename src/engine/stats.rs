//! Counts that gate per-parent reads ([`StatsGate`]): the stats records of
//! many parents are read in batches, once per run, and shared by every
//! stream gated on them. Each stream that uses a batch counts its request
//! and page once in its own report, whichever stream read it; the run's
//! total comes from the client, which counts every request once.

use std::collections::{HashMap, HashSet};

use serde_json::Value;
use tokio::sync::Mutex;

use super::pages::{first_page, records_of};
use super::{Context, StreamReport};
use crate::error::{Error, Result};
use crate::streams::{StatsGate, StreamDef};

/// A parent's counts: one per pointer of its gate, in order.
pub type Counts = Vec<u64>;

/// Stats records read this run: (stats stream, parent value) → record, or
/// `Null` for a value the endpoint did not answer for.
#[derive(Default)]
pub struct StatsCache {
    read: Mutex<Read>,
}

#[derive(Default)]
struct Read {
    /// (stats stream, parent value) → its record and the batch that read it.
    records: HashMap<(String, String), (Value, usize)>,
    /// The requests each batch took, by batch number.
    batches: Vec<u32>,
    /// (reading stream, batch) pairs already counted in that stream's report.
    counted: HashSet<(String, usize)>,
}

impl StatsCache {
    /// The counts of `keys` by `gate`; a key the stats do not cover has
    /// none (and is read, as one whose counts changed).
    pub async fn counts(
        &self,
        ctx: &Context,
        reader: &str,
        gate: &StatsGate,
        keys: &[String],
        report: &mut StreamReport,
    ) -> Result<HashMap<String, Counts>> {
        Ok(self
            .gate_records(ctx, reader, gate, keys, report)
            .await?
            .into_iter()
            .filter_map(|(key, record)| {
                let record = record?;
                let counts = gate
                    .counts
                    .iter()
                    .map(|pointer| record.pointer(pointer).and_then(Value::as_u64).unwrap_or(0))
                    .collect();
                Some((key.to_string(), counts))
            })
            .collect())
    }

    /// The value at `gate`'s stamp pointer of each of `keys`' stats records,
    /// where it has one.
    pub async fn stamps(
        &self,
        ctx: &Context,
        reader: &str,
        gate: &StatsGate,
        keys: &[String],
        report: &mut StreamReport,
    ) -> Result<HashMap<String, Value>> {
        let Some((pointer, _)) = &gate.stamp else {
            return Ok(HashMap::new());
        };
        Ok(self
            .gate_records(ctx, reader, gate, keys, report)
            .await?
            .into_iter()
            .filter_map(|(key, record)| Some((key.to_string(), record?.pointer(pointer)?.clone())))
            .collect())
    }

    /// Each of `keys` with its record in `gate`'s stats stream, if any.
    async fn gate_records<'k>(
        &self,
        ctx: &Context,
        reader: &str,
        gate: &StatsGate,
        keys: &'k [String],
        report: &mut StreamReport,
    ) -> Result<Vec<(&'k str, Option<Value>)>> {
        let def = ctx.registry.find_any(&gate.stream).ok_or_else(|| {
            Error::system(format!("the stats stream {} does not exist", gate.stream))
        })?;
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let records = self.records(ctx, reader, def, &keys, report).await?;
        Ok(keys.into_iter().zip(records).collect())
    }

    /// The stats records of `keys` from the stats stream `def`, in order
    /// (`None` where the endpoint did not answer for a key), for the stream
    /// `reader`. Records not read yet this run are read, `batch` keys a
    /// request, while the cache is held, so a gate and the stats stream
    /// itself never ask twice; `report` counts each batch holding one of
    /// `keys` once for `reader`.
    pub async fn records(
        &self,
        ctx: &Context,
        reader: &str,
        def: &StreamDef,
        keys: &[&str],
        report: &mut StreamReport,
    ) -> Result<Vec<Option<Value>>> {
        let field = def.primary_key.first().cloned().unwrap_or_default();
        let batch = def.parent.as_ref().map_or(1, |p| p.batch.max(1));
        let entry = |key: &str| (def.name.clone(), key.to_string());
        let mut read = self.read.lock().await;
        let missing: Vec<&str> = keys
            .iter()
            .copied()
            .filter(|key| !read.records.contains_key(&entry(key)))
            .collect();
        for chunk in missing.chunks(batch) {
            let path = def.path.replace("{parent}", &chunk.join(","));
            let url = first_page(ctx, def, &path, None);
            let check = |body: &Value| records_of(def, body, false).map(|_| ());
            let response = ctx.api.get_checked(&url, &check).await?;
            let number = read.batches.len();
            read.batches.push(response.requests);
            let page = records_of(def, &response.body, false).map_err(Error::system)?;
            for key in chunk {
                read.records.insert(entry(key), (Value::Null, number));
            }
            for record in page {
                if let Some(key) = value_text(record.get(&field)) {
                    read.records.insert(entry(&key), (record.clone(), number));
                }
            }
        }
        let found: Vec<(Option<Value>, usize)> = keys
            .iter()
            .filter_map(|key| read.records.get(&entry(key)))
            .map(|(record, number)| (Some(record).filter(|r| !r.is_null()).cloned(), *number))
            .collect();
        for (_, number) in &found {
            if read.counted.insert((reader.to_string(), *number)) {
                report.requests += u64::from(read.batches[*number]);
                report.pages += 1;
            }
        }
        Ok(found.into_iter().map(|(record, _)| record).collect())
    }
}

fn value_text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}
