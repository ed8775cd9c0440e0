//! The requests the plan makes: for each selected stream with a count, one
//! one-record page (`contacts`: `limit=1&include_count=true` with the read's
//! status and filters); the full listings of the top-level parents the
//! selected streams need (campaigns, segments, events, automations: the
//! same listings the sync reads, 500 or 1,000 a page); the campaigns' stats
//! (150 campaigns a request) when reports gated on stats are selected; and
//! the activities of a sample of campaigns, one request each, since no
//! listing says how many a campaign has.

use std::sync::Arc;

use serde_json::Value;

use super::Survey;
use crate::engine::{self, Context};
use crate::error::Result;
use crate::protocol::catalog::Selected;
use crate::streams::{ParentSource, Records, StreamDef};

/// Campaigns whose activities are read to learn how many of each kind a
/// campaign has: enough that a few resends among hundreds of campaigns
/// show, few enough to cost a fraction of a sync.
pub const SAMPLE: usize = 20;

/// The stats of whole campaigns: the same counts as the stats of their
/// activities, summed per campaign, 150 campaigns a request (the activity
/// stats take 10, and need the activities first).
const CAMPAIGN_STATS: &str = "email_campaign_stats";

/// Reads what the plan of `selected` needs.
pub async fn survey(ctx: &Context, selected: &[Selected]) -> Result<Survey> {
    let before = ctx.api.requests_spent().sent;
    let mut survey = Survey::default();
    for stream in selected {
        let def = &stream.def;
        if def.parent.is_some() || def.count.is_none() || def.page_size.is_none() {
            continue;
        }
        match engine::first_page_count(ctx, def).await {
            Ok((count, requests)) => {
                if let Some(count) = count {
                    survey.counted.insert(def.name.clone(), count);
                }
                if requests > 1 {
                    survey.refused.insert(def.name.clone(), requests - 1);
                }
            }
            Err(error) if error.forbidden => {
                survey.forbidden.insert(def.name.clone());
            }
            Err(error) => return Err(error.context(format!("counting {}", def.name))),
        }
    }
    let needs = Needs::of(ctx, selected);
    for def in &needs.top_level {
        match engine::parent_records(ctx, def).await {
            Ok((records, _)) => {
                survey.listed.insert(def.name.clone(), records);
            }
            Err(error) if error.forbidden => {
                survey.forbidden.insert(def.name.clone());
            }
            Err(error) => return Err(error.context(format!("listing {}", def.name))),
        }
    }
    if needs.stats {
        if let Some(def) = ctx.registry.find_any(CAMPAIGN_STATS) {
            let key = def.primary_key.first().cloned().unwrap_or_default();
            let (records, _) = engine::read_to_vec(ctx, def)
                .await
                .map_err(|e| e.context("reading the campaigns' stats"))?;
            for record in records {
                if let Some(Value::String(id)) = record.get(&key) {
                    survey.stats.insert(id.clone(), record);
                }
            }
        }
    }
    for def in &needs.sampled {
        let (samples, of) = sample(ctx, def, &survey).await?;
        survey.sample = Some((samples.len(), of));
        survey.sampled.insert(def.name.clone(), samples);
    }
    survey.requests = ctx.api.requests_spent().sent - before;
    Ok(survey)
}

/// The parent streams the selected streams need.
#[derive(Default)]
struct Needs {
    /// Listed in full.
    top_level: Vec<Arc<StreamDef>>,
    /// Read per parent, many records a parent: sampled.
    sampled: Vec<Arc<StreamDef>>,
    /// Some stream is gated on stats, or is such stats.
    stats: bool,
}

impl Needs {
    fn of(ctx: &Context, selected: &[Selected]) -> Needs {
        let mut needs = Needs::default();
        for stream in selected {
            needs.stats |= ctx.registry.gates_on(&stream.def.name);
            needs.walk(ctx, &stream.def);
        }
        needs
    }

    fn walk(&mut self, ctx: &Context, def: &StreamDef) {
        let Some(parent) = &def.parent else {
            return;
        };
        if let Some(gate) = &parent.gate {
            self.stats = true;
            if let Some(stats) = ctx.registry.find_any(&gate.stream) {
                self.walk(ctx, stats);
            }
        }
        let named = parent
            .named_by
            .is_some_and(|list| !ctx.lists.get(list).is_empty());
        let ParentSource::Stream(name) = &parent.source else {
            return;
        };
        let Some(source) = ctx.registry.find_any(name).filter(|_| !named) else {
            return;
        };
        if source.parent.is_none() {
            if !self.top_level.iter().any(|d| d.name == source.name) {
                self.top_level.push(source.clone());
            }
            return;
        }
        if source.records != Records::Object && !self.sampled.iter().any(|d| d.name == source.name)
        {
            self.sampled.push(source.clone());
        }
        self.walk(ctx, source);
    }
}

/// The records of `def` for up to [`SAMPLE`] of its parents, evenly spread
/// over the listing, one request each; and how many parents were listed.
async fn sample(
    ctx: &Context,
    def: &StreamDef,
    survey: &Survey,
) -> Result<(Vec<(String, Vec<Value>)>, usize)> {
    let listed = def.parent.as_ref().and_then(|parent| match &parent.source {
        ParentSource::Stream(source) => Some((parent, survey.listed.get(source)?)),
        ParentSource::Config(_) => None,
    });
    let Some((parent, parents)) = listed else {
        return Ok((Vec::new(), 0));
    };
    let n = parents.len();
    let take = n.min(SAMPLE);
    let params: Vec<(&str, String)> = def
        .params
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    let mut samples = Vec::with_capacity(take);
    for i in 0..take {
        let Some(Value::String(key)) = parents[i * n / take].get(&parent.key) else {
            continue;
        };
        let url = ctx
            .api
            .endpoint(&def.path.replace("{parent}", key), &params);
        let body = match ctx.api.get_json(&url).await {
            Ok(response) => response.body,
            // Deleted since it was listed.
            Err(error) if error.not_found => continue,
            Err(error) => return Err(error.context(format!("sampling {}", def.name))),
        };
        let records = match (&def.records, body) {
            (Records::Key(key), body) => body.get(key).cloned().unwrap_or(Value::Null),
            (_, body) => body,
        };
        let records = match records {
            Value::Array(records) => records,
            Value::Null => Vec::new(),
            record => vec![record],
        };
        samples.push((key.clone(), records));
    }
    Ok((samples, n))
}
