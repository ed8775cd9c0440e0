//! `custom_fields_as_columns` in the commands: discover reads the account's
//! custom fields and adds their columns to the streams whose records carry
//! `custom_fields` (`contacts`, `contacts_export`); a read does the same,
//! keeps the columns of the catalog it is given (so a renamed field keeps
//! filling the column the destination has), and fills them in each record on
//! its way to the writer. With the option off nothing here runs and no
//! request is made. The naming rule is in [`crate::streams::custom_fields`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::progress::{plural, Messages, Protocol, Watch};
use super::setup;
use crate::config::LoadedConfig;
use crate::engine::{self, Context, StreamReport, StreamStates};
use crate::error::{Error, Result};
use crate::http::{ApiClient, RetryPolicy};
use crate::protocol::catalog::Selected;
use crate::protocol::{Level, Output, RecordRef, StreamStatus};
use crate::streams::custom_fields::{self, Column, Unmapped};
use crate::streams::Registry;

/// The streams that get the columns (their records carry `custom_fields`),
/// and the one listing the fields.
const STREAMS: &[&str] = &["contacts", "contacts_export"];
const CUSTOM_FIELDS: &str = "custom_fields";

/// Each stream's columns, by `custom_field_id`.
type StreamColumns = BTreeMap<String, Arc<BTreeMap<String, Column>>>;

/// The streams of `discover`: with the option on, `contacts` and
/// `contacts_export` have a column per custom field of the account.
pub fn discover_registry(config: &LoadedConfig, output: &Arc<dyn Output>) -> Result<Arc<Registry>> {
    let registry = setup::registry(config)?;
    if !config.config.custom_fields_as_columns {
        return Ok(registry);
    }
    let runtime = setup::runtime()?;
    let fields = runtime.block_on(async {
        let api = setup::connect(config, RetryPolicy::SYNC, output)?;
        read_fields(config, &registry, &api, output).await
    })?;
    let columns: Vec<(&str, Vec<Column>)> = STREAMS
        .iter()
        .map(|stream| (*stream, live_columns(&registry, stream, &fields)))
        .collect();
    Ok(Arc::new(extended(&registry, &columns)))
}

/// What a read runs with: its streams and, with the option on, the client
/// and runtime the custom fields were read with, reused by the sync, and
/// the columns to fill.
pub struct Prepared {
    pub registry: Arc<Registry>,
    client: Option<(tokio::runtime::Runtime, Arc<ApiClient>)>,
    /// The account's custom fields, handed to the sync so that no stream
    /// asks for them again.
    fields: Vec<Value>,
    columns: Option<StreamColumns>,
}

impl Prepared {
    /// The streams of a read of `catalog` (read only with the option on).
    pub fn read(
        config: &LoadedConfig,
        output: &Arc<dyn Output>,
        catalog: impl FnOnce() -> Result<Value>,
    ) -> Result<Prepared> {
        let registry = setup::registry(config)?;
        let plain = |registry| Prepared {
            registry,
            client: None,
            fields: Vec::new(),
            columns: None,
        };
        if !config.config.custom_fields_as_columns {
            return Ok(plain(registry));
        }
        let catalog = catalog()?;
        let selected: Vec<(&str, Option<&Value>)> = STREAMS
            .iter()
            .filter_map(|stream| catalog_schema(&catalog, stream).map(|schema| (*stream, schema)))
            .collect();
        if selected.is_empty() {
            // No stream to fill: no request.
            return Ok(plain(registry));
        }
        let runtime = setup::runtime()?;
        let (api, fields) = runtime.block_on(async {
            let api = setup::connect(config, RetryPolicy::SYNC, output)?;
            let fields = read_fields(config, &registry, &api, output).await?;
            Ok::<_, Error>((api, fields))
        })?;
        let mut columns: Vec<(&str, Vec<Column>)> = Vec::new();
        for (stream, schema) in selected {
            let live = live_columns(&registry, stream, &fields);
            // The catalog's columns are the destination's: a read fills those.
            columns.push(match schema.and_then(custom_fields::columns_of_schema) {
                Some(pinned) => {
                    warn_of_changes(output, stream, &pinned, &live, &fields);
                    (stream, pinned)
                }
                None => (stream, live),
            });
        }
        Ok(Prepared {
            registry: Arc::new(extended(&registry, &columns)),
            client: Some((runtime, api)),
            fields,
            columns: Some(
                columns
                    .into_iter()
                    .map(|(stream, columns)| {
                        let by_id = columns
                            .into_iter()
                            .map(|c| (c.custom_field_id.clone(), c))
                            .collect();
                        (stream.to_string(), Arc::new(by_id))
                    })
                    .collect(),
            ),
        })
    }

    /// Runs `sync` with the read's context: the client the custom fields were
    /// read with (so one run spends one budget), and an output that fills the
    /// columns of `contacts` records.
    pub fn run<T>(
        self,
        config: &LoadedConfig,
        output: &Arc<dyn Output>,
        sync: impl AsyncFnOnce(Context) -> T,
    ) -> Result<T> {
        let Prepared {
            registry,
            client,
            fields,
            columns,
        } = self;
        let output: Arc<dyn Output> = match columns {
            Some(columns) => Arc::new(FillColumns {
                inner: output.clone(),
                columns,
                warned: Mutex::new(BTreeSet::new()),
            }),
            None => output.clone(),
        };
        match client {
            Some((runtime, api)) => {
                let ctx = Context::new(api, output, registry, config).with_custom_fields(fields);
                Ok(runtime.block_on(sync(ctx)))
            }
            None => setup::runtime()?.block_on(async {
                let ctx = setup::sync_context(config, registry, &output)?;
                Ok(sync(ctx).await)
            }),
        }
    }

    /// Reads the selected streams (see [`Self::run`]), with progress on
    /// stderr when it is a terminal.
    pub fn read_all(
        self,
        config: &LoadedConfig,
        output: Arc<dyn Output>,
        protocol: Protocol,
        selected: &[Selected],
        states: &StreamStates,
    ) -> Result<Vec<(String, Result<StreamReport>)>> {
        let watch = Watch::start(output, selected.len(), protocol, Messages::Stdout);
        let results = self.run(config, &watch.output(), async |ctx| {
            watch.count_requests(&ctx.api);
            engine::read_all(&ctx, selected, states).await
        });
        watch.finish();
        results
    }
}

/// The account's custom fields, through the engine (one request per 100).
async fn read_fields(
    config: &LoadedConfig,
    registry: &Arc<Registry>,
    api: &Arc<ApiClient>,
    output: &Arc<dyn Output>,
) -> Result<Vec<Value>> {
    let def = registry
        .find_any(CUSTOM_FIELDS)
        .cloned()
        .expect("the table has custom_fields");
    let ctx = Context::new(api.clone(), output.clone(), registry.clone(), config);
    let (fields, requests) = engine::read_to_vec(&ctx, &def)
        .await
        .map_err(|e| e.context("custom_fields_as_columns: reading the account's custom fields"))?;
    output.log(
        Level::Info,
        &format!(
            "custom_fields_as_columns: the account has {} {} ({requests} {})",
            fields.len(),
            plural(fields.len() as u64, "custom field"),
            plural(requests, "request")
        ),
    );
    Ok(fields)
}

/// The columns of `fields` as discover names them now in `stream`.
fn live_columns(registry: &Registry, stream: &str, fields: &[Value]) -> Vec<Column> {
    let own = custom_fields::own_properties(&schema_of(registry, stream));
    custom_fields::columns(fields, &own)
}

fn schema_of(registry: &Registry, stream: &str) -> Value {
    registry
        .find_any(stream)
        .map(|def| def.schema.clone())
        .expect("the table has the streams with custom fields")
}

/// `registry` with each stream's schema extended by its columns.
fn extended(registry: &Registry, columns: &[(&str, Vec<Column>)]) -> Registry {
    columns
        .iter()
        .fold(registry.clone(), |registry, (stream, columns)| {
            let schema = custom_fields::with_columns(&schema_of(&registry, stream), columns);
            registry.with_schema(stream, schema)
        })
}

/// `stream`'s entry in a configured catalog (`None` when it has none), and
/// the schema of that entry, Airbyte's (`streams[].stream.json_schema`) or
/// Singer's (`streams[].schema`), if it carries one.
fn catalog_schema<'a>(catalog: &'a Value, stream: &str) -> Option<Option<&'a Value>> {
    catalog
        .get("streams")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find_map(|entry| {
            if entry.pointer("/stream/name").and_then(Value::as_str) == Some(stream) {
                return Some(entry.pointer("/stream/json_schema"));
            }
            let id = entry
                .get("tap_stream_id")
                .or_else(|| entry.get("stream"))
                .and_then(Value::as_str);
            (id == Some(stream)).then(|| entry.get("schema"))
        })
}

/// Says, before the read, where the catalog's columns and the account's
/// fields part: a field renamed since discover (its column keeps being
/// filled), a field deleted since (its column stays empty).
fn warn_of_changes(
    output: &Arc<dyn Output>,
    stream: &str,
    pinned: &[Column],
    live: &[Column],
    fields: &[Value],
) {
    let label = |id: &str| {
        fields
            .iter()
            .find(|f| f.get("custom_field_id").and_then(Value::as_str) == Some(id))
            .and_then(|f| f.get("label"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    for column in pinned {
        match live
            .iter()
            .find(|l| l.custom_field_id == column.custom_field_id)
        {
            Some(now) if now.name != column.name => output.log(
                Level::Warn,
                &format!(
                    "{stream}: custom field {:?} ({}) fills column {} of the catalog; discover \
                     would now name it {} (its label changed). It keeps filling {} until the \
                     schema is discovered again (refresh the source schema); from then on {} \
                     is filled and {} is no longer.",
                    label(&column.custom_field_id),
                    column.custom_field_id,
                    column.name,
                    now.name,
                    column.name,
                    now.name,
                    column.name
                ),
            ),
            Some(_) => {}
            None => output.log(
                Level::Warn,
                &format!(
                    "{stream}: the custom field {} of column {} no longer exists; the column \
                     stays empty until the schema is discovered again",
                    column.custom_field_id, column.name
                ),
            ),
        }
    }
}

/// The writer, behind a step that adds the columns to the records of the
/// streams that have them and warns once per stream and custom field whose
/// values get no column.
struct FillColumns {
    inner: Arc<dyn Output>,
    columns: StreamColumns,
    warned: Mutex<BTreeSet<String>>,
}

impl FillColumns {
    fn warn_once(&self, key: &str, message: impl FnOnce() -> String) {
        let first = self
            .warned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.to_string());
        if first {
            self.inner.log(Level::Warn, &message());
        }
    }
}

impl Output for FillColumns {
    fn record(&self, stream: &str, record: RecordRef<'_>) {
        let Some(columns) = self.columns.get(stream) else {
            return self.inner.record(stream, record);
        };
        let value = record.to_value();
        let Some(fields) = value.as_object() else {
            return self.inner.record(stream, record);
        };
        let mut filled = fields.clone();
        for unmapped in custom_fields::fill(&mut filled, columns) {
            match unmapped {
                Unmapped::UnknownField(id) => self.warn_once(&format!("{stream} {id}"), || {
                    format!(
                        "{stream}: custom field {id} has no column in the catalog (created \
                         after the schema was discovered?); its values stay in custom_fields. \
                         Discover the schema again (refresh the source schema) for a column."
                    )
                }),
                Unmapped::NotADate { column, value } => {
                    self.warn_once(&format!("{stream} {column}"), || {
                        format!(
                            "{stream}: {value} is not a date, but column {column} holds dates; \
                             such values stay in custom_fields only"
                        )
                    })
                }
            }
        }
        self.inner
            .record(stream, RecordRef::Value(&Value::Object(filled)));
    }

    fn state(&self, stream: &str, state: &Value, records: u64) {
        self.inner.state(stream, state, records);
    }

    fn stream_status(&self, stream: &str, status: StreamStatus) {
        self.inner.stream_status(stream, status);
    }

    fn log(&self, level: Level, message: &str) {
        self.inner.log(level, message);
    }
    fn estimate(&self, stream: &str, rows: u64) {
        self.inner.estimate(stream, rows)
    }

    fn config_updated(&self, config: &Value) {
        self.inner.config_updated(config);
    }

    fn flush(&self) {
        self.inner.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn catalogs_of_both_protocols_give_their_schema() {
        let schema = json!({"properties": {"cf_a": {"x-custom-field-id": "a"}}});
        let airbyte = json!({"streams": [
            {"stream": {"name": "contact_lists", "json_schema": {}}},
            {"stream": {"name": "contacts", "json_schema": schema}},
        ]});
        assert_eq!(catalog_schema(&airbyte, "contacts"), Some(Some(&schema)));
        let singer = json!({"streams": [{"tap_stream_id": "contacts", "schema": schema}]});
        assert_eq!(catalog_schema(&singer, "contacts"), Some(Some(&schema)));
        let bare = json!({"streams": [{"stream": {"name": "contacts"}}]});
        assert_eq!(catalog_schema(&bare, "contacts"), Some(None));
        assert_eq!(catalog_schema(&singer, "segments"), None);
    }
}
